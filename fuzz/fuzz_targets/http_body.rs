//! Bodies of `POST /v1/transactions` and `POST /v1/transactions/batch` through the real
//! router over a temporary core: never a panic or a 5xx, every 4xx in the error shape. See
//! `interpool_node::fuzzing::http_body`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| interpool_node::fuzzing::http_body(data));
