//! Signed transactions as a client or a peer sends them: decoding, the stateless checks, and
//! batch verdicts equal to single ones. See `interpool_contracts::fuzzing::transaction`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| interpool_contracts::fuzzing::transaction(data));
