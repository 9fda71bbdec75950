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
    let report = sample_customers_load(&root, "200", "50");
    assert_eq!(report["refused"], serde_json::json!({}), "{report}");
    assert_eq!(report["committed"], 200, "{report}");
    // Four batches in flight per validator unless asked otherwise.
    assert_eq!(report["submitters_per_validator"], 4, "{report}");

    // Accounts of its own: opened and funded by the banks' operators, then paying each
    // other (the binary batch form), at a fixed offered rate; the report in a file.
    let file = root.join("report.json");
    let manifest = root.join("localnet.json");
    run(
        "interpool-wallet",
        [
            "load",
            "--manifest",
            path(&manifest),
            "--accounts",
            "24",
            "--txs",
            "300",
            "--rate",
            "600",
            "--batch",
            "40",
            "--submitters",
            "1",
            "--seed",
            "5",
            "--out",
            path(&file),
            "--timeout",
            "60",
        ],
    )
    .success();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("report file"))
            .expect("JSON report");
    assert_eq!(report["accounts"], 24, "{report}");
    assert_eq!(report["accepted"], 300, "{report}");
    assert_eq!(report["committed"], 300, "{report}");
    assert_eq!(report["not_seen"], 0, "{report}");
    assert_eq!(report["refused"], serde_json::json!({}), "{report}");
    assert_eq!(report["rate"], "600", "{report}");
    assert_eq!(report["submitters_per_validator"], 1, "{report}");
    // A count, not a duration: nothing to run out of.
    assert!(report["plan_ran_out_s"].is_null(), "{report}");
    assert!(
        report["blocks"].as_u64().is_some_and(|b| b >= 1),
        "{report}"
    );
    assert!(report["latency_ms"]["p50"].as_u64().is_some(), "{report}");
    let per_second = report["per_second"].as_array().expect("per second");
    let committed: u64 = per_second
        .iter()
        .map(|s| s["committed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 300, "{report}");
    // Its own CPU over the load, beside the nodes': the machine is shared with them.
    assert_eq!(report["load_generator"]["name"], "wallet", "{report}");
    assert!(
        report["load_generator"]["cpu_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0),
        "{report}"
    );
    // The machine's speed before and after, by the probe: runs compare beside it.
    for when in ["before_us_per_signature", "after_us_per_signature"] {
        assert!(
            report["machine"][when]
                .as_f64()
                .is_some_and(|us| us.is_finite() && us > 0.0),
            "{when}: {report}"
        );
    }
    // And the arithmetic the probe ran on: probes compare only between runs on the same.
    assert!(
        ["AVX-512 IFMA", "AVX2", "portable"]
            .iter()
            .any(|name| report["machine"]["arithmetic"] == *name),
        "{report}"
    );
    // Each probe once the nodes were quiet, or saying they never were (a shared machine).
    for when in ["before_quiet_after_s", "after_quiet_after_s"] {
        let waited = &report["machine"][when];
        assert!(
            waited.is_null() || waited.as_f64().is_some_and(|s| (0.0..=40.0).contains(&s)),
            "{when}: {report}"
        );
    }

    // The same seed again: the accounts exist; opening them again is refused in the
    // ledger, the deposits land, and the transfers still commit.
    run(
        "interpool-wallet",
        [
            "load",
            "--manifest",
            path(&manifest),
            "--accounts",
            "24",
            "--txs",
            "48",
            "--seed",
            "5",
            "--timeout",
            "60",
        ],
    )
    .success();

    // A few payers, as fast as accepted, each sending far more than the chain lets a nonce
    // run ahead of what has committed (256): what is refused as too far ahead is sent again
    // once the payer's earlier transfers commit, and everything commits. (Before, most of
    // the load was refused `nonce_too_far_ahead` for good.)
    let report = sample_customers_load(&root, "4000", "500");
    assert_eq!(report["refused"], serde_json::json!({}), "{report}");
    assert_eq!(report["committed"], 4000, "{report}");
    assert!(
        report["retried"]["nonce_too_far_ahead"]
            .as_u64()
            .is_some_and(|tries| tries > 0),
        "the payers ran ahead of the chain: {report}"
    );

    // Bad input is refused before anything is sent.
    run(
        "interpool-wallet",
        ["load", "--manifest", path(&manifest), "--rate", "0"],
    )
    .failure(2, "not a rate");
    run(
        "interpool-wallet",
        ["load", "--manifest", path(&manifest), "--accounts", "1"],
    )
    .failure(1, "at least 2");
    for submitters in ["0", "65"] {
        run(
            "interpool-wallet",
            [
                "load",
                "--manifest",
                path(&manifest),
                "--submitters",
                submitters,
            ],
        )
        .failure(1, "--submitters must be between 1 and 64");
    }
    run(
        "interpool-wallet",
        [
            "load",
            "--manifest",
            path(&manifest),
            "--accounts",
            "5",
            "--sign-only",
            path(&root.join("x")),
        ],
    )
    .failure(1, "--sign-only signs for the localnet's sample customers");
}

/// `interpool-wallet --json load` of `transfers` between the localnet at `root`'s sample
/// customers, in batches of `batch`, as fast as accepted: its report.
fn sample_customers_load(
    root: &std::path::Path,
    transfers: &str,
    batch: &str,
) -> serde_json::Value {
    let report = run(
        "interpool-wallet",
        [
            "--json",
            "load",
            "--localnet",
            path(root),
            "--accounts",
            "0",
            "--transfers",
            transfers,
            "--batch",
            batch,
            "--timeout",
            "90",
        ],
    )
    .success();
    serde_json::from_str(&report).expect("json report")
}
