//! Faults lose nothing (issue 11): an acknowledged transfer survives the crash of the node
//! that acknowledged it, and a crash at any write of the commit path or of the consensus
//! state leaves no divergence and no double signature.

use std::time::Duration;

use interpool_contracts::views::TxStatus;
use interpool_node::failpoints::POINTS;

use crate::audit::{audit_json, data_dir};
use crate::localnet::{metric, status, transfer, tx_status, wait_for, Localnet};

/// Submits one transfer to `rpc`; the HTTP status (no status: the node died before it
/// answered).
fn submit(rpc: &str, tx: &interpool_contracts::SignedTransaction) -> Option<u16> {
    let body = serde_json::json!({
        "tx": interpool_contracts::primitives::to_hex(&tx.encode())
    })
    .to_string();
    crate::localnet::client()
        .post(format!("{rpc}/v1/transactions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .ok()
        .map(|response| response.status().as_u16())
}

#[test]
fn an_acknowledged_transfer_survives_the_crash_of_the_node_that_acknowledged_it() {
    let mut net = Localnet::generate(4, 0, 2, &Default::default());
    for i in 1..4 {
        net.start_node(i);
    }
    // Validator 0 answers, then holds the gossip back for a minute: the window in which a
    // crash used to lose an acknowledged transfer for good, held open.
    net.start_node_with_env(0, &[("INTERPOOL_GOSSIP_DELAY_MS", "60000")]);
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let rpcs = net.rpcs();
    let (key, _) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let tx = transfer(&key, payee, 0, 7);
    assert_eq!(submit(&rpcs[0], &tx), Some(202), "acknowledged");
    net.kill(0);
    // Nobody else heard of it.
    for rpc in &rpcs[1..] {
        assert_eq!(
            tx_status(rpc, &tx.hash()).expect("status").status,
            TxStatus::Unknown
        );
    }
    // Restarted (without the delay), the node offers what it acknowledged again.
    net.start_node(0);
    wait_for(
        Duration::from_secs(120),
        "the acknowledged transfer committed",
        || tx_status(&rpcs[1], &tx.hash()).is_some_and(|v| v.status == TxStatus::Committed),
    );
}

#[test]
fn a_crash_at_every_write_of_the_commit_path_and_the_consensus_state_loses_and_forks_nothing() {
    let mut net = Localnet::generate(4, 0, 2, &Default::default());
    // Every validator journals what it receives: the equivocation check reads them all.
    for i in 0..4 {
        net.set_config_text(i, "journal", "false", "true");
    }
    net.start_all();
    let all = [0, 1, 2, 3];
    net.wait_height(&all, 2, Duration::from_secs(120));
    let rpcs = net.rpcs();
    let (key, payer) = net.account_key(0, 1);
    let payee = net.account_key(1, 1).1;
    let mut nonce = 0;
    let victim = 1;
    let mut walked = Vec::new();
    for point in POINTS {
        // Several heights: the first time the point is reached, and a later one.
        for hit in [1, 3] {
            net.kill(victim);
            let spec = format!("{point}:{hit}");
            net.start_node_with_env(victim, &[("INTERPOOL_CRASH_AT", &spec)]);
            // Admission points are reached by a client's transfer; the others by blocks.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let status = loop {
                if point.starts_with("admission") {
                    // Acknowledged (202), or acknowledged before a crash and offered again
                    // after the restart (409 already pending): the next nonce. No answer:
                    // the node died; the same transfer is sent again after the restart.
                    let tx = transfer(&key, payee, nonce, 1);
                    if matches!(submit(&rpcs[victim], &tx), Some(202 | 409)) {
                        nonce += 1;
                    }
                }
                if let Some(status) = net.try_exit(victim) {
                    break status;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{spec} was never reached"
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            assert!(!status.success(), "{spec}: the node aborted ({status})");
            walked.push(spec);
            // Restarted on the same data, it catches up and the network goes on.
            net.start_node(victim);
            if point.starts_with("admission") {
                // The transfer in doubt: acknowledged durably (after_persist) or never
                // (before_persist); either way the payer can go on from what the node says.
                let tx = transfer(&key, payee, nonce, 1);
                wait_for(
                    Duration::from_secs(60),
                    "the restarted node answering",
                    || matches!(submit(&rpcs[victim], &tx), Some(202 | 409)),
                );
                nonce += 1;
            }
            let height = status_height(&rpcs[0]) + 2;
            net.wait_height(&all, height, Duration::from_secs(120));
        }
    }
    assert_eq!(walked.len(), POINTS.len() * 2, "{walked:?}");

    // Every transfer acknowledged on the way commits...
    wait_for(
        Duration::from_secs(120),
        "acknowledged transfers committed",
        || crate::localnet::account(&rpcs[0], &payer).is_some_and(|a| a.nonce >= nonce),
    );
    // ...no validator signed two different messages for one height and round (neither as
    // the engines saw it nor across everything every validator received)...
    for rpc in &rpcs {
        assert_eq!(metric(rpc, "interpool_equivocations"), Some(0), "at {rpc}");
    }
    let mut args = vec![
        "equivocations".to_string(),
        "--genesis".into(),
        crate::localnet::path(&net.root().join("genesis.json")).to_string(),
    ];
    for node in &net.nodes {
        args.push(
            crate::localnet::path(&data_dir(&node.config).join("consensus-journal")).to_string(),
        );
    }
    let report = interpool_tests::run("interpool-node", &args).success();
    let findings: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert!(findings["valid"].as_u64().unwrap_or(0) > 100, "{findings}");
    // ...and every node holds the same chain, which audits.
    let common = rpcs
        .iter()
        .map(|rpc| status_height(rpc))
        .min()
        .expect("nodes");
    for height in [1, common / 2, common] {
        let hashes: Vec<_> = rpcs
            .iter()
            .map(|rpc| {
                crate::localnet::get::<interpool_contracts::views::BlockView<serde_json::Value>>(
                    rpc,
                    &format!("/v1/blocks/{height}"),
                )
                .expect("block")
                .hash
            })
            .collect();
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1]),
            "height {height}: {hashes:?}"
        );
    }
    let summary = audit_json(
        &data_dir(&net.nodes[victim].config),
        &net.root().join("genesis.json"),
    );
    assert!(
        summary["blocks"].as_u64().unwrap_or(0) >= common,
        "{summary}"
    );
}

fn status_height(rpc: &str) -> u64 {
    status(rpc).map_or(0, |s| s.height)
}
