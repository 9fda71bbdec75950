//! `interpool-node audit` on a real validator's data directory: a running node's chain
//! verifies in place, a stopped node's chain verifies with the right counts, and a copy with
//! one altered block fails and names it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interpool_consensus::MAX_PAYLOAD_BYTES;
use interpool_contracts::block::Block;
use interpool_contracts::views::BlockView;
use interpool_contracts::{Body, SignedTransaction};
use interpool_node::storage::{RecordKind, Store};
use interpool_tests::run;
use serde_json::Value;

use crate::localnet::{account, get, path, status, submit_batch, transfer, wait_for, Localnet};

/// Transfers each of the four senders submits.
const PER_SENDER: u64 = 10;

/// The node's `data_dir` from its config file (relative to the config's folder, as
/// `NodeConfig::load` resolves it).
pub fn data_dir(config: &Path) -> PathBuf {
    let text = fs::read_to_string(config).expect("config");
    let value = text
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "data_dir").then(|| value.trim().trim_matches('"').to_string())
        })
        .expect("data_dir in config");
    let dir = PathBuf::from(value);
    if dir.is_absolute() {
        dir
    } else {
        config.parent().expect("config folder").join(dir)
    }
}

/// `interpool-node audit --json` on `data`: its summary, after asserting it passed.
pub fn audit_json(data: &Path, genesis: &Path) -> Value {
    let stdout = run(
        "interpool-node",
        [
            "audit",
            "--data-dir",
            path(data),
            "--genesis",
            path(genesis),
            "--json",
        ],
    )
    .success();
    serde_json::from_str(&stdout).expect("json summary")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[test]
fn audit_verifies_a_stopped_validator_and_names_an_altered_block() {
    let mut net = Localnet::start(4, 0, 2);
    let all = net.rpcs();
    net.wait_height(&[0, 1, 2, 3], 1, Duration::from_secs(120));

    // Cross-bank transfers both ways.
    let senders = [
        (net.account_key(0, 0), net.account_key(1, 0).1),
        (net.account_key(0, 1), net.account_key(1, 1).1),
        (net.account_key(1, 0), net.account_key(0, 0).1),
        (net.account_key(1, 1), net.account_key(0, 1).1),
    ];
    let txs: Vec<SignedTransaction> = (0..PER_SENDER)
        .flat_map(|nonce| {
            senders
                .iter()
                .map(move |((key, _), to)| transfer(key, *to, nonce, 1 + nonce % 7))
        })
        .collect();
    submit_batch(&all[0], &txs, true);
    let audited = 3;
    let rpc = all[audited].clone();
    wait_for(
        Duration::from_secs(120),
        "every transfer committed on the audited validator",
        || {
            senders
                .iter()
                .all(|((_, id), _)| account(&rpc, id).is_some_and(|v| v.nonce == PER_SENDER))
        },
    );
    let committed_at = status(&rpc).expect("status").height;
    net.wait_height(&[audited], committed_at + 3, Duration::from_secs(60));
    let data = data_dir(&net.nodes[audited].config);
    let genesis = net.root().join("genesis.json");

    // A running node's chain can be audited in place: read-only, as it stands when the
    // audit opens it, while the node goes on committing.
    let live = audit_json(&data, &genesis);
    let live_blocks = live["blocks"].as_u64().expect("blocks");
    assert!(live_blocks >= committed_at + 3, "{live}");
    net.assert_running(&[audited]);
    net.wait_height(&[audited], live_blocks + 2, Duration::from_secs(60));

    net.kill(audited);
    let started = Instant::now();
    let summary = run(
        "interpool-node",
        [
            "audit",
            "--data-dir",
            path(&data),
            "--genesis",
            path(&genesis),
        ],
    )
    .success();
    let elapsed = started.elapsed();

    // The truth to compare with, from elsewhere than the audit: the stored height, read by
    // the storage layer on a copy, and the blocks a live validator serves.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(&data, copy.path());
    let store = Store::open(&copy.path().join("db")).expect("open the copy");
    let height = store.height().expect("height");
    assert!(height > committed_at, "{height} blocks");
    net.wait_height(&[0], height, Duration::from_secs(60));
    let per_block: Vec<usize> = (1..=height)
        .map(|h| {
            get::<BlockView<Value>>(&all[0], &format!("/v1/blocks/{h}"))
                .expect("block from a live validator")
                .transactions
                .len()
        })
        .collect();
    let transactions: usize = per_block.iter().sum();
    assert_eq!(transactions, txs.len());
    eprintln!("audit of {height} blocks, {transactions} transactions: {elapsed:?}\n{summary}");
    assert!(summary.contains(&format!("blocks: {height} ")), "{summary}");
    assert!(
        summary.contains(&format!("transactions: {transactions} (")),
        "{summary}"
    );
    let json = audit_json(&data, &genesis);
    assert_eq!(json["blocks"], height, "{json}");
    assert_eq!(json["final_height"], height, "{json}");
    assert_eq!(json["transactions"], transactions, "{json}");
    assert_eq!(
        json["committed"]
            .as_u64()
            .zip(json["queued"].as_u64())
            .map(|(c, q)| c + q),
        Some(transactions as u64),
        "{json}"
    );

    // Alter one transfer's amount in a block of the copy: its certificate no longer names it.
    let altered = per_block
        .iter()
        .position(|n| *n > 0)
        .map(|i| i as u64 + 1)
        .expect("a block with transactions");
    let bytes = store.block(altered).expect("read").expect("stored");
    let mut block = Block::decode(&bytes, MAX_PAYLOAD_BYTES as u64).expect("decode");
    let Body::Transfer { amount, .. } = &mut block.transactions[0].tx.body else {
        panic!("block {altered} starts with a transfer");
    };
    amount.0 += 1_000;
    store
        .overwrite_record(RecordKind::Block, altered, &block.encode())
        .expect("overwrite");
    drop(store);
    let failed = run(
        "interpool-node",
        [
            "audit",
            "--data-dir",
            path(copy.path()),
            "--genesis",
            path(&genesis),
        ],
    )
    .failure(1, &format!("block {altered}: certificate does not verify"));
    assert!(failed.stdout.is_empty(), "{failed:#?}");

    // Usage and setup errors are exit code 2, not a verdict on the chain.
    let empty = tempfile::tempdir().expect("tempdir");
    run(
        "interpool-node",
        [
            "audit",
            "--data-dir",
            path(empty.path()),
            "--genesis",
            path(&genesis),
        ],
    )
    .failure(2, "no node database");
    run("interpool-node", ["audit", "--genesis", path(&genesis)]).failure(2, "--data-dir");
}
