//! A real local consortium: four validators and an observer as separate `interpool-node`
//! processes on 127.0.0.1, driven over HTTP.

use std::collections::HashMap;
use std::time::Duration;

use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::{BlockView, TxStatus};
use interpool_contracts::{Amount, Body, Hash, Ledger, SignedTransaction};
use serde_json::Value;

use crate::localnet::{
    account, get, post, status, submit_batch, transfer, tx_status, wait_for, Localnet, CHAIN_ID,
};

/// The certificate is checked by the observer tests; here it is opaque.
type Block = BlockView<Value>;

#[test]
fn consortium_commits_1000_transfers_agrees_and_refuses_bad_input() {
    let net = Localnet::start(4, 1, 2);
    let all = net.rpcs();
    wait_for(Duration::from_secs(120), "every node past height 2", || {
        all.iter()
            .all(|rpc| status(rpc).is_some_and(|s| s.height >= 2))
    });
    let validator = &all[0];
    let observer = &all[4];

    // 1,000 cross-bank transfers both ways, 250 from each of four accounts, submitted in
    // batches to different validators.
    let senders = [
        (net.account_key(0, 0), net.account_key(1, 0).1),
        (net.account_key(0, 1), net.account_key(1, 1).1),
        (net.account_key(1, 0), net.account_key(0, 0).1),
        (net.account_key(1, 1), net.account_key(0, 1).1),
    ];
    let mut submitted: HashMap<Hash, SignedTransaction> = HashMap::new();
    for chunk in 0..10u64 {
        let txs: Vec<SignedTransaction> = (chunk * 25..chunk * 25 + 25)
            .flat_map(|nonce| {
                senders.iter().enumerate().map(move |(i, ((key, _), to))| {
                    transfer(key, *to, nonce, 1 + (nonce + i as u64) % 7)
                })
            })
            .collect();
        let rpc = &all[(chunk % 4) as usize];
        for hash in submit_batch(rpc, &txs, true) {
            let tx = txs.iter().find(|tx| tx.hash() == hash).expect("ours");
            submitted.insert(hash, tx.clone());
        }
    }
    assert_eq!(submitted.len(), 1_000);
    wait_for(
        Duration::from_secs(180),
        "all 1,000 transfers committed on every node",
        || {
            all.iter().all(|rpc| {
                senders
                    .iter()
                    .all(|((_, id), _)| account(rpc, id).is_some_and(|v| v.nonce == 250))
            })
        },
    );

    // Every node, the observer included, has the same blocks and state roots up to a
    // common height, and the ledger's own execution of those blocks gives the same roots.
    let height = all
        .iter()
        .map(|rpc| status(rpc).expect("status").height)
        .min()
        .expect("nodes");
    let mut ledger = Ledger::from_genesis(&net.genesis).expect("genesis");
    let mut previous_root = ledger.state_root();
    for h in 1..=height {
        let blocks: Vec<Block> = all
            .iter()
            .map(|rpc| get(rpc, &format!("/v1/blocks/{h}")).expect("block"))
            .collect();
        // Certificates may differ: each node keeps the quorum of COMMITs it gathered.
        assert!(
            blocks.windows(2).all(|w| (
                &w[0].hash,
                &w[0].header,
                &w[0].transactions,
                w[0].state_root
            ) == (
                &w[1].hash,
                &w[1].header,
                &w[1].transactions,
                w[1].state_root
            )),
            "nodes disagree on block {h}"
        );
        let txs: Vec<_> = blocks[0]
            .transactions
            .iter()
            .map(|hash| {
                submitted[hash]
                    .clone()
                    .check_stateless(CHAIN_ID)
                    .expect("valid")
            })
            .collect();
        let outcome = ledger.apply_block(h, blocks[0].header.timestamp_ms, &txs);
        ledger.check_invariants().expect("invariants");
        assert_eq!(
            outcome.state_root, blocks[0].state_root,
            "state root at {h}"
        );
        assert_eq!(
            blocks[0].header.previous_state_root,
            previous_root,
            "block {h} certifies the root after {}",
            h - 1
        );
        previous_root = outcome.state_root;
    }
    for rpc in &all {
        for ((_, id), to) in &senders {
            for who in [id, to] {
                let view = account(rpc, who).expect("account");
                let own = ledger.account(who).expect("known");
                assert_eq!(
                    (view.balance.clone(), view.nonce),
                    (own.balance.format(2), own.nonce),
                    "at {rpc}\n{}",
                    net.logs()
                );
            }
        }
    }
    let views: Vec<_> = submitted
        .keys()
        .step_by(97)
        .map(|hash| {
            let views: Vec<_> = all
                .iter()
                .map(|rpc| tx_status(rpc, hash).expect("status"))
                .collect();
            assert_eq!(views[0].status, TxStatus::Committed);
            assert!(
                views.windows(2).all(|w| w[0] == w[1]),
                "nodes disagree on {hash}: {views:?}"
            );
            views[0].clone()
        })
        .collect();
    assert!(!views.is_empty());
    assert_eq!(
        tx_status(validator, &Hash([7; 32])).expect("status").status,
        TxStatus::Unknown
    );

    // Writes to an observer are refused.
    let ((key_a, a), b) = (&senders[0].0, senders[0].1);
    let fresh = to_hex(&transfer(key_a, b, 250, 1).encode());
    let (code, body) = post(
        observer,
        "/v1/transactions",
        serde_json::json!({ "tx": fresh }).to_string(),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("read_only")),
        "{body}"
    );

    // Bad input: each gets its specific 4xx and changes nothing.
    let replay = to_hex(&transfer(key_a, b, 0, 1).encode());
    let mut forged = transfer(key_a, b, 250, 1);
    forged.tx.body = Body::Transfer {
        to: b,
        amount: Amount(999),
        end_to_end_id: "F".into(),
        reference: String::new(),
        terms: Default::default(),
    };
    let mut other_chain = transfer(key_a, b, 250, 1).tx;
    other_chain.chain_id = "elsewhere".into();
    let valid = transfer(key_a, b, 250, 1).encode();
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "bad_json"),
        (r#"{"tx": "zz"}"#.into(), 400, "bad_hex"),
        (
            serde_json::json!({ "tx": to_hex(&valid[..valid.len() - 3]) }).to_string(),
            400,
            "malformed_transaction",
        ),
        (
            serde_json::json!({ "tx": to_hex(&forged.encode()) }).to_string(),
            400,
            "bad_signature",
        ),
        (
            serde_json::json!({ "tx": to_hex(&other_chain.sign(key_a).encode()) }).to_string(),
            400,
            "wrong_chain",
        ),
        (
            serde_json::json!({ "tx": replay }).to_string(),
            409,
            "already_included",
        ),
        (
            format!(r#"{{"tx": "{}"}}"#, "00".repeat(3 << 20)),
            413,
            "body_too_large",
        ),
    ];
    let before = account(validator, a).expect("account");
    for (body, code, error) in cases {
        let (got, answer) = post(validator, "/v1/transactions", body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (code, Some(error)),
            "{answer}"
        );
    }
    assert_eq!(account(validator, a).expect("account"), before);
}

/// An oversized body is answered `413 body_too_large` every time, whatever its size up to
/// a generous bound and however the client writes it: the node reads and discards the rest
/// of the body before it answers, so the client is never cut off mid-write with a broken
/// pipe and never loses the answer (the way CI once saw it, over TLS). The connection then
/// serves the next request.
#[test]
fn an_oversized_body_is_answered_413_every_time_and_the_connection_serves_on() {
    let net = Localnet::start(1, 0, 1);
    let rpc = &net.rpcs()[0];
    wait_for(
        Duration::from_secs(60),
        "the validator past height 1",
        || status(rpc).is_some_and(|s| s.height >= 1),
    );
    let http = crate::localnet::client_timeout(Duration::from_secs(60));
    // Declared (`Content-Length`) and chunked, when the node only finds out as it reads.
    let sizes = [
        (5usize, false),
        (8, false),
        (24, false),
        (8, true),
        (24, true),
    ];
    for (round, (mebibytes, chunked)) in sizes.into_iter().cycle().take(25).enumerate() {
        let body = format!(r#"{{"tx": "{}"}}"#, "00".repeat(mebibytes << 19));
        let request = http
            .post(format!("{rpc}/v1/transactions"))
            .header("content-type", "application/json");
        let request = if chunked {
            request.chunked(body)
        } else {
            request.body(body)
        };
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("round {round}, {mebibytes} MiB, chunked {chunked}: {e:?}"));
        assert_eq!(response.status().as_u16(), 413, "round {round}");
        let answer: Value = response.json().expect("a JSON error");
        assert_eq!(answer["error"]["code"], "body_too_large", "{answer}");
    }
    let (key, _) = net.account_key(0, 0);
    let to = net.account_key(0, 1).1;
    let response = http
        .post(format!("{rpc}/v1/transactions"))
        .json(&serde_json::json!({ "tx": to_hex(&transfer(&key, to, 0, 1).encode()) }))
        .send()
        .expect("the next request");
    assert_eq!(response.status().as_u16(), 202, "{:?}", response.text());
}
