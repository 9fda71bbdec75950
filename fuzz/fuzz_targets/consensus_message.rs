//! Consensus messages and commit certificates from a peer: decoding, the encoding round trip,
//! verification against a fixed 4-validator set. See
//! `interpool_consensus::fuzzing::consensus_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| interpool_consensus::fuzzing::consensus_message(data));
