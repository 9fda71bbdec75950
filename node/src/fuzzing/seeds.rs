//! Seed inputs of the node's fuzz targets: valid encodings of what a peer or a client sends,
//! each kind of flaw the checks look for, and the edges of each format. Written into
//! `fuzz/corpus/<target>/` by `write_fuzz_seeds` (an ignored test).

use interpool_contracts::primitives::to_hex;
use interpool_contracts::testkit::{account, customer_seed, key};
use interpool_contracts::{Amount, Block, BlockHeader, Body, Hash, SignedTransaction, Transaction};

use super::{HTTP_MAX_BODY_BYTES, MAX_FRAME_BYTES, SYNC_FROM_HEIGHT};
use crate::net::sync::{SyncResponse, SyncedBlock};
use crate::testkit::{certificate, certificate_by, domain, genesis, VALIDATOR_SEEDS};
use interpool_contracts::codec;

/// A transfer of `amount` from customer `(bank, 0)` to customer `(1 - bank, 0)` of the
/// testkit genesis, signed.
pub(super) fn transfer(bank: usize, nonce: u64, amount: u64) -> SignedTransaction {
    let from = customer_seed(bank, 0);
    Transaction {
        chain_id: "test".into(),
        signer: account(from),
        nonce,
        valid_until_height: 1_000,
        body: Body::Transfer {
            to: account(customer_seed(1 - bank, 0)),
            amount: Amount(amount),
            end_to_end_id: format!("SEED-{bank}-{nonce}"),
            reference: "fuzz seed".into(),
            terms: Default::default(),
        },
    }
    .sign(&key(from))
}

fn block(height: u64) -> Vec<u8> {
    Block {
        header: BlockHeader {
            chain_id: "test".into(),
            height,
            parent_hash: Hash([height as u8; 32]),
            previous_state_root: Hash([7; 32]),
            timestamp_ms: 1_700_000_000_000 + height,
            proposer: account(VALIDATOR_SEEDS[height as usize % 4]),
        },
        transactions: vec![transfer(0, height, 10), transfer(1, height, 20)],
    }
    .encode()
}

fn synced(height: u64, payload: Vec<u8>) -> SyncedBlock {
    SyncedBlock {
        height,
        certificate: certificate(height, &payload).encode(),
        payload,
    }
}

pub(super) fn sync_response() -> Vec<Vec<u8>> {
    let from = SYNC_FROM_HEIGHT;
    let chain: Vec<SyncedBlock> = (from..from + 3).map(|h| synced(h, block(h))).collect();
    let mut responses = vec![
        // Three certified blocks from the height asked for; nothing yet; one opaque payload.
        SyncResponse {
            blocks: chain.clone(),
            tip: from + 2,
        },
        SyncResponse {
            blocks: Vec::new(),
            tip: 0,
        },
        SyncResponse {
            blocks: vec![synced(from, b"not a block".to_vec())],
            tip: from,
        },
        // Starting elsewhere; a gap.
        SyncResponse {
            blocks: chain[1..].to_vec(),
            tip: from + 2,
        },
        SyncResponse {
            blocks: vec![chain[0].clone(), chain[2].clone()],
            tip: from + 2,
        },
    ];
    // Certificates that do not prove the block: too few signers, a repeated signer, for
    // another payload, for another height, not a certificate at all.
    let payload = block(from);
    for certificate in [
        certificate_by(&domain(&genesis()), from, &payload, &[0, 1]).encode(),
        certificate_by(&domain(&genesis()), from, &payload, &[0, 0, 1]).encode(),
        certificate(from, b"another block").encode(),
        certificate(from + 1, &payload).encode(),
        vec![0xff; 40],
    ] {
        responses.push(SyncResponse {
            blocks: vec![SyncedBlock {
                height: from,
                payload: payload.clone(),
                certificate,
            }],
            tip: from,
        });
    }
    let mut seeds: Vec<Vec<u8>> = responses.iter().map(codec::encode).collect();
    // Edges of the format: empty, truncated, trailing bytes, a hostile block count.
    let valid = seeds[0].clone();
    seeds.push(Vec::new());
    seeds.push(valid[..valid.len() / 2].to_vec());
    let mut trailing = valid;
    trailing.push(0);
    seeds.push(trailing);
    let mut hostile = vec![0xfd];
    hostile.extend_from_slice(&u64::MAX.to_le_bytes());
    seeds.push(hostile);
    seeds
}

/// `frames` written one after the other, each with its 4-byte big-endian length.
fn frames(frames: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for frame in frames {
        wire.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        wire.extend_from_slice(frame);
    }
    wire
}

pub(super) fn p2p_frame() -> Vec<Vec<u8>> {
    let max = vec![0xab; MAX_FRAME_BYTES];
    let mut seeds = vec![
        frames(&[b"prepare"]),
        frames(&[b""]),
        frames(&[&max]),
        frames(&[b"one", b"", b"three", &max[..100]]),
        Vec::new(),
        vec![0, 0],
    ];
    // One byte over the limit; the largest length a prefix can say; truncated frames.
    let mut over = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
    over.extend_from_slice(&[1; 8]);
    seeds.push(over);
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&[7; 64]);
    seeds.push(huge);
    let mut truncated = frames(&[b"commit vote"]);
    truncated.truncate(9);
    seeds.push(truncated);
    let mut then_truncated = frames(&[b"round change", b"proposal"]);
    then_truncated.pop();
    seeds.push(then_truncated);
    seeds
}

pub(super) fn single(hex: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "tx": hex })).expect("JSON")
}

fn batch(hexes: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "txs": hexes })).expect("JSON")
}

pub(super) fn http_body() -> Vec<Vec<u8>> {
    let valid = to_hex(&transfer(0, 0, 100).encode());
    let other = to_hex(&transfer(1, 0, 100).encode());
    let next_nonce = to_hex(&transfer(0, 1, 100).encode());
    let same_nonce = to_hex(&transfer(0, 0, 101).encode());
    let too_much = to_hex(&transfer(0, 0, 100_000_000).encode());
    let mut wrong_chain = transfer(0, 0, 100);
    wrong_chain.tx.chain_id = "other".into();
    let wrong_chain = to_hex(
        &wrong_chain
            .tx
            .clone()
            .sign(&key(customer_seed(0, 0)))
            .encode(),
    );
    let mut forged = transfer(0, 0, 100);
    forged.tx.nonce = 9;
    let forged = to_hex(&forged.encode());
    let unknown_signer = to_hex(
        &Transaction {
            chain_id: "test".into(),
            signer: account(7_777),
            nonce: 0,
            valid_until_height: 1_000,
            body: Body::SettleCycle,
        }
        .sign(&key(7_777))
        .encode(),
    );
    let malformed = to_hex(b"\x00\x01 not a transaction");

    let mut seeds = vec![
        single(&valid),
        single(&valid.to_uppercase()),
        single(&next_nonce),
        single(&too_much),
        single(&wrong_chain),
        single(&forged),
        single(&unknown_signer),
        single(&malformed),
        single(""),
        single("abc"),
        single("zz"),
        batch(&[]),
        batch(&[valid.clone(), other.clone()]),
        batch(&[
            valid.clone(),
            same_nonce,
            valid.clone(),
            "zz".into(),
            malformed,
            wrong_chain,
            forged,
            unknown_signer,
            too_much,
            other,
        ]),
    ];
    // JSON that is not the body the route takes.
    for text in [
        "",
        "{",
        "null",
        "[]",
        "\"tx\"",
        "{}",
        "{\"tx\": 1}",
        "{\"tx\": null}",
        "{\"txs\": \"00\"}",
        "{\"txs\": [1, 2]}",
        "{\"tx\": \"00\", \"txs\": []}",
        "{\"tx\": \"00\", \"tx\": \"00\"}",
        "{\"tx\": \"\\u0000\\ud800\"}",
        "\u{feff}{\"tx\": \"00\"}",
        "{\"txs\": [\"00\"], \"extra\": true}",
        "{\"tx\": 1e999}",
    ] {
        seeds.push(text.as_bytes().to_vec());
    }
    // Serde reads a struct from a sequence of its fields, too.
    seeds.push(format!("[\"{valid}\"]").into_bytes());
    seeds.push(format!("[[\"{valid}\"]]").into_bytes());
    // Deep nesting; over the body limit.
    seeds.push(format!("{}{}", "[".repeat(4_000), "]".repeat(4_000)).into_bytes());
    seeds.push(batch(&vec![valid; HTTP_MAX_BODY_BYTES / 300]));
    seeds
}
