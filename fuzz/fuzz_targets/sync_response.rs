//! Sync responses from a peer: decoding, the consecutive-heights check, each certificate
//! verified against a fixed validator set, block decoding. See
//! `interpool_node::fuzzing::sync_response`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| interpool_node::fuzzing::sync_response(data));
