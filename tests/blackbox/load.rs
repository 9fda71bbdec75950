//! `interpool-wallet load` against a real localnet: what it signs is valid there (within the
//! genesis's validity horizon) and commits; `--sign-only` writes the transfers and submits
//! nothing.

use std::time::Duration;

use interpool_contracts::primitives::from_hex_vec;
use interpool_contracts::tx::MAX_TX_BYTES;
use interpool_contracts::SignedTransaction;
use interpool_tests::run;

use crate::localnet::{account, path, Localnet};

#[test]
fn the_load_generator_commits_what_it_signs() {
    let net = Localnet::start(4, 0, 2);
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let root = net.root();

    // Signed only: one `HASH HEX` line per transfer, and nothing reaches the nodes.
    let file = root.join("signed.txt");
    run(
        "interpool-wallet",
        [
            "load",
            "--localnet",
            path(&root),
            "--transfers",
            "10",
            "--sign-only",
            path(&file),
        ],
    )
    .success();
    let text = std::fs::read_to_string(&file).expect("signed transfers");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    for line in &lines {
        let (hash, hex) = line.split_once(' ').expect("HASH HEX");
        let bytes = from_hex_vec(hex, MAX_TX_BYTES as usize).expect("hex");
        let tx = SignedTransaction::decode(&bytes).expect("a signed transaction");
        assert_eq!(tx.hash().to_string(), hash);
    }
    let (_, payer) = net.account_key(0, 0);
    assert_eq!(
        account(&net.nodes[0].rpc, &payer).expect("account").nonce,
        0
    );

    // Submitted: every transfer is admitted and commits (a validity beyond the genesis's
    // horizon had every one refused).
    let report = run(
        "interpool-wallet",
        [
            "--json",
            "load",
            "--localnet",
            path(&root),
            "--transfers",
            "200",
            "--batch",
            "50",
            "--timeout",
            "50",
        ],
    )
    .success();
    let report: serde_json::Value = serde_json::from_str(&report).expect("json report");
    assert_eq!(report["refused"], 0, "{report}");
    assert_eq!(report["committed"], 200, "{report}");
}
