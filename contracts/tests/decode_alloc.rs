//! Hostile bytes never make a decoder allocate much: a capped global allocator turns any
//! allocation past the budget into an abort, which fails this test.
//!
//! One test in its own binary, so that nothing else allocates while the cap is set.

use std::alloc::System;

use cap::Cap;
use interpool_contracts::testkit::{account, key};
use interpool_contracts::tx::MAX_TX_BYTES;
use interpool_contracts::{Amount, Body, SignedTransaction, Transaction};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Generous for a 2 KiB transaction; far below what a hostile length prefix would ask for.
const BUDGET_BYTES: usize = 256 * 1024;

fn hostile_inputs() -> Vec<Vec<u8>> {
    let valid = Transaction {
        chain_id: "test".into(),
        signer: account(1),
        nonce: 3,
        valid_until_height: 9,
        body: Body::Transfer {
            to: account(2),
            amount: Amount(5),
            end_to_end_id: "E2E".into(),
            reference: "ref".into(),
            terms: Default::default(),
        },
    }
    .sign(&key(1))
    .encode();
    let mut inputs = Vec::new();
    // Every truncation of a valid encoding.
    for len in 0..valid.len() {
        inputs.push(valid[..len].to_vec());
    }
    // Length prefixes claiming huge strings at every position (varint tags 251–254).
    for at in 0..valid.len() {
        for tag in [251u8, 252, 253, 254] {
            let mut bytes = valid[..at].to_vec();
            bytes.push(tag);
            bytes.extend_from_slice(&[0xff; 8]);
            bytes.extend_from_slice(&valid[at..]);
            bytes.truncate(MAX_TX_BYTES as usize);
            inputs.push(bytes);
        }
    }
    // Deterministic pseudo-random garbage (xorshift; no RNG crate needed).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2_000 {
        let mut bytes = Vec::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % (MAX_TX_BYTES + 64)) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state as u8);
        }
        inputs.push(bytes);
    }
    inputs
}

#[test]
fn decoding_hostile_bytes_stays_within_a_small_allocation_budget() {
    let inputs = hostile_inputs();
    let mut accepted = 0;
    let baseline = ALLOCATOR.allocated();
    ALLOCATOR
        .set_limit(baseline + BUDGET_BYTES)
        .expect("limit above current use");
    for bytes in &inputs {
        if SignedTransaction::decode(bytes).is_ok() {
            accepted += 1;
        }
    }
    ALLOCATOR.set_limit(usize::MAX).expect("lift the limit");
    // Only the untouched valid encoding can decode; the prefixes and garbage cannot.
    assert!(accepted <= 1, "{accepted} hostile inputs decoded");
}
