//! Running a consortium for years (issue 13): restarts independent of history, coordinated
//! halts.

use std::time::{Duration, Instant};

use crate::localnet::{status, wait_for, Localnet, Options};

#[test]
fn a_restart_replays_at_most_the_checkpoint_interval() {
    let mut net = Localnet::generate(
        1,
        1,
        2,
        &Options {
            empty_block_interval_ms: Some(20),
            ..Options::default()
        },
    );
    for i in 0..2 {
        net.set_config(i, "checkpoint_interval_blocks", 1000, 7);
    }
    net.start_all();
    net.wait_height(&[0, 1], 40, Duration::from_secs(120));
    let rpcs = net.rpcs();
    for rpc in &rpcs {
        let first = status(rpc).expect("status");
        assert_eq!(
            (first.restored_from_height, first.replayed_blocks),
            (0, 0),
            "a fresh node starts from the genesis"
        );
        assert_eq!(first.earliest_height, 1);
    }
    for i in [1, 0] {
        net.terminate(i, Duration::from_secs(30));
    }
    let stopped = [net.stored_height(0), net.stored_height(1)];
    net.start_all();
    for i in 0..2 {
        wait_for(
            Duration::from_secs(60),
            "the restarted node answers",
            || status(&rpcs[i]).is_some(),
        );
        let after = status(&rpcs[i]).expect("status");
        assert!(
            after.restored_from_height > 0 && after.restored_from_height.is_multiple_of(7),
            "{}: restored from {} (stopped at {})",
            net.nodes[i].name,
            after.restored_from_height,
            stopped[i]
        );
        assert_eq!(
            after.restored_from_height + after.replayed_blocks,
            stopped[i],
            "the start rebuilt exactly the stored chain"
        );
        assert!(
            after.replayed_blocks <= 7,
            "{}: replayed {} blocks, the interval is 7",
            net.nodes[i].name,
            after.replayed_blocks
        );
    }
    // And the chain goes on, the observer with it.
    net.wait_height(&[0, 1], stopped[0] + 5, Duration::from_secs(60));
    // A checkpoint one suspects can be passed over: every stored block replayed instead.
    net.terminate(1, Duration::from_secs(30));
    let stored = net.stored_height(1);
    net.start_node_with(1, &[], &["--replay-from-genesis"]);
    wait_for(Duration::from_secs(60), "the observer answers", || {
        status(&rpcs[1]).is_some()
    });
    let replayed = status(&rpcs[1]).expect("status");
    assert_eq!(
        (replayed.restored_from_height, replayed.replayed_blocks),
        (0, stored)
    );
}

#[test]
fn the_halt_height_holds_across_a_restart_and_raised_it_goes_on() {
    let mut net = Localnet::generate(
        4,
        1,
        2,
        &Options {
            empty_block_interval_ms: Some(50),
            ..Options::default()
        },
    );
    let all: Vec<usize> = (0..5).collect();
    for &i in &all {
        net.set_halt_height(i, Some(6));
    }
    net.start_all();
    let stop_at = |net: &mut Localnet, height: u64| {
        for &i in &all {
            stop_at_one(net, i, height);
        }
    };
    // Every node, the observer too (it fetches the last block before the validators go).
    stop_at(&mut net, 6);
    assert!(
        net.logs_full()
            .matches("stopped at the halt height")
            .count()
            >= all.len(),
        "each node says why it stopped"
    );
    // The same setting: started again, it does not go past it, and says so.
    net.start_node(0);
    stop_at_one(&mut net, 0, 6);
    assert!(net.logs_full().contains("not going past it"));
    // Raised: every node goes on to the new halt height.
    for &i in &all {
        net.set_halt_height(i, Some(10));
    }
    net.start_all();
    stop_at(&mut net, 10);
    // Removed: it runs on.
    for &i in &all {
        net.set_halt_height(i, None);
    }
    net.start_all();
    net.wait_height(&all, 12, Duration::from_secs(120));
}

/// Process `pid`'s environment as the kernel holds it: what it was started (or `exec`ed)
/// with, which is where its allocators read their settings.
fn environment_of(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read /proc/PID/environ");
    raw.split(|b| *b == 0)
        .filter(|var| !var.is_empty())
        .map(|var| String::from_utf8_lossy(var).into_owned())
        .collect()
}

#[test]
fn a_node_bounds_what_its_allocators_keep_however_it_is_started_and_the_operator_can_override() {
    let mut net = Localnet::generate(1, 1, 2, &Options::default());
    net.start_node(0);
    net.start_node_with_env(1, &[("MALLOC_ARENA_MAX", "4")]);
    net.wait_height(&[0, 1], 3, Duration::from_secs(60));
    // What this test's own environment already says wins for node 0 as it would for an
    // operator's.
    let own = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_string());
    let purge_delay = ("MIMALLOC_PURGE_DELAY", own("MIMALLOC_PURGE_DELAY", "100"));
    let expected = [
        [
            purge_delay.clone(),
            ("MALLOC_ARENA_MAX", own("MALLOC_ARENA_MAX", "2")),
        ],
        [purge_delay, ("MALLOC_ARENA_MAX", "4".to_string())],
    ];
    for (i, expected) in expected.iter().enumerate() {
        // The process the test started is the node that serves (it ran itself again in
        // place, under the same pid), and its environment holds each setting once.
        let environment = environment_of(net.pid(i));
        for (name, value) in expected {
            let set: Vec<&str> = environment
                .iter()
                .filter_map(|var| var.strip_prefix(&format!("{name}=")))
                .collect();
            assert_eq!(
                set,
                vec![value.as_str()],
                "{}: {name} in its environment: {environment:?}",
                net.nodes[i].name
            );
        }
    }
}

/// Waits for node `i` to exit on its own (failing the test after `deadline`); its exit code.
fn wait_exit(net: &mut Localnet, i: usize, deadline: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = net.try_exit(i) {
            return status.code();
        }
        assert!(
            started.elapsed() < deadline,
            "{} did not stop within {deadline:?}",
            net.nodes[i].name
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Waits for node `i` to exit cleanly at `height`.
fn stop_at_one(net: &mut Localnet, i: usize, height: u64) {
    let code = wait_exit(net, i, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{} exits cleanly", net.nodes[i].name);
    assert_eq!(
        net.stored_height(i),
        height,
        "{} stopped at {height}",
        net.nodes[i].name
    );
}

/// `GET /v1/health` of `rpc`: HTTP status and body.
fn health(rpc: &str) -> Option<(u16, interpool_contracts::views::HealthView)> {
    let response = crate::localnet::client()
        .get(format!("{rpc}/v1/health"))
        .send()
        .ok()?;
    let code = response.status().as_u16();
    Some((code, response.json().ok()?))
}

#[test]
fn with_two_of_four_validators_stopped_the_others_health_says_there_is_no_quorum() {
    let mut net = Localnet::start(4, 1, 2);
    let all = [0, 1, 2, 3, 4];
    net.wait_height(&all, 2, Duration::from_secs(120));
    let rpcs = net.rpcs();
    wait_for(Duration::from_secs(60), "every node healthy", || {
        rpcs.iter().all(|rpc| {
            health(rpc).is_some_and(|(code, view)| {
                code == 200 && view.status == "ok" && view.reasons.is_empty()
            })
        })
    });
    let (_, view) = health(&rpcs[0]).expect("health");
    assert_eq!(
        (
            view.validators,
            view.validators_needed,
            view.validators_reachable
        ),
        (4, 3, 4)
    );
    assert_eq!(view.role, "validator");
    assert!(view.mempool_capacity > 0 && view.queue_capacity > 0);
    let (_, observer) = health(&rpcs[4]).expect("observer health");
    assert_eq!(
        (observer.role.as_str(), observer.validators_needed),
        ("observer", 1)
    );

    net.kill(2);
    net.kill(3);
    // Three round timeouts (2 s each, the localnet's setting), and a margin for a shared
    // machine: the deadline is the issue's, not a measurement.
    let deadline = Duration::from_secs(3 * 2 + 10);
    for i in [0, 1] {
        wait_for(deadline, "the survivors report the missing quorum", || {
            health(&rpcs[i]).is_some_and(|(code, view)| {
                code == 503
                    && view.status == "stalled"
                    && view
                        .reasons
                        .iter()
                        .any(|r| r == "no quorum: 2 of 4 validators reachable, 3 needed")
            })
        });
    }
    // And, soon after, that nothing commits: the observer follows nothing new either.
    for rpc in [&rpcs[0], &rpcs[4]] {
        wait_for(deadline, "no commit for too long", || {
            health(rpc).is_some_and(|(code, view)| {
                code == 503 && view.reasons.iter().any(|r| r.starts_with("no commit for"))
            })
        });
    }
    // Back: healthy again.
    net.start_node(2);
    net.start_node(3);
    wait_for(Duration::from_secs(120), "healthy again", || {
        [0, 1, 2, 3]
            .iter()
            .all(|&i| health(&rpcs[i]).is_some_and(|(code, _)| code == 200))
    });
}

#[test]
fn a_backup_taken_under_load_restores_into_a_node_that_rejoins_and_agrees() {
    let mut net = Localnet::generate(
        4,
        1,
        2,
        &Options {
            empty_block_interval_ms: Some(100),
            ..Options::default()
        },
    );
    for i in 0..5 {
        net.set_config(i, "checkpoint_interval_blocks", 1000, 5);
    }
    net.start_all();
    let all = [0, 1, 2, 3, 4];
    net.wait_height(&all, 6, Duration::from_secs(120));
    let rpcs = net.rpcs();
    // Load: a stream of transfers from two customers while the backup is taken.
    let payers = [net.account_key(0, 0), net.account_key(1, 1)];
    let payee = net.account_key(1, 0).1;
    let load = {
        let rpc = rpcs[0].clone();
        std::thread::spawn(move || {
            for nonce in 0..40 {
                let txs: Vec<_> = payers
                    .iter()
                    .map(|(key, _)| crate::localnet::transfer(key, payee, nonce, 1))
                    .collect();
                crate::localnet::submit_batch(&rpc, &txs, true);
            }
        })
    };
    let work = tempfile::tempdir().expect("tempdir");
    let backup = work.path().join("backup");
    let validator_data = crate::audit::data_dir(&net.nodes[1].config);
    let out = crate::localnet::run_node_command(&[
        "backup",
        "--data-dir",
        crate::localnet::path(&validator_data),
        "--out",
        crate::localnet::path(&backup),
    ]);
    let info: serde_json::Value = serde_json::from_str(out.trim()).expect("backup.json line");
    assert!(info["height"].as_u64().expect("height") >= 6, "{info}");
    assert!(
        info["checkpoint_height"].as_u64().expect("checkpoint") >= 5,
        "{info}"
    );
    load.join().expect("load");

    // The observer loses its disk and is restored from the validator's backup.
    let observer = 4;
    net.terminate(observer, Duration::from_secs(30));
    let observer_data = crate::audit::data_dir(&net.nodes[observer].config);
    std::fs::remove_dir_all(observer_data.join("db")).expect("wipe");
    let genesis = net.root().join("genesis.json");
    crate::localnet::run_node_command(&[
        "restore",
        "--from",
        crate::localnet::path(&backup),
        "--data-dir",
        crate::localnet::path(&observer_data),
        "--genesis",
        crate::localnet::path(&genesis),
    ]);
    net.start_node(observer);
    wait_for(
        Duration::from_secs(60),
        "the restored observer answers",
        || status(&rpcs[observer]).is_some(),
    );
    let restarted = status(&rpcs[observer]).expect("status");
    assert_eq!(
        restarted.restored_from_height,
        info["checkpoint_height"].as_u64().expect("checkpoint"),
        "the restored node starts from the backup's checkpoint"
    );
    // It rejoins and agrees with the validators on the state root (its own execution's).
    let target = status(&rpcs[0]).expect("status").height + 3;
    net.wait_height(&all, target, Duration::from_secs(120));
    wait_for(
        Duration::from_secs(60),
        "the same height and state root",
        || match (status(&rpcs[0]), status(&rpcs[observer])) {
            (Some(v), Some(o)) => v.height == o.height && v.state_root == o.state_root,
            _ => false,
        },
    );

    // A backup of another chain is refused, at restore and at start.
    let other = Localnet::generate(1, 0, 1, &Options::default());
    let other_genesis = other.root().join("genesis.json");
    let refused = crate::localnet::run_node_command_failing(&[
        "restore",
        "--from",
        crate::localnet::path(&backup),
        "--data-dir",
        crate::localnet::path(&work.path().join("other")),
        "--genesis",
        crate::localnet::path(&other_genesis),
    ]);
    assert!(refused.contains("another chain"), "{refused}");
    let mut other = other;
    let other_data = crate::audit::data_dir(&other.nodes[0].config);
    crate::localnet::run_node_command(&[
        "restore",
        "--from",
        crate::localnet::path(&backup),
        "--data-dir",
        crate::localnet::path(&other_data),
    ]);
    other.start_node(0);
    let code = wait_exit(&mut other, 0, Duration::from_secs(60));
    assert_ne!(code, Some(0));
    assert!(
        other.logs_full().contains("belongs to another chain"),
        "{}",
        other.logs_full()
    );
}

#[test]
fn a_pruned_node_answers_gone_below_what_it_keeps_and_audits_from_its_checkpoint() {
    // Short cycles and queue expiry: pruning keeps what the open cycle's statement needs
    // (the cycle's blocks, and those a transfer it may release was queued in).
    let mut net = Localnet::generate(
        1,
        0,
        2,
        &Options {
            empty_block_interval_ms: Some(20),
            genesis_args: ["--cycle-blocks", "10", "--queue-expiry-blocks", "3"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Options::default()
        },
    );
    net.set_config(0, "checkpoint_interval_blocks", 1000, 5);
    net.set_config(0, "retain_blocks", 0, 3);
    net.start_all();
    let rpc = net.rpcs()[0].clone();
    net.wait_height(&[0], 1, Duration::from_secs(60));
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let tx = crate::localnet::transfer(&key, payee, 0, 5);
    crate::localnet::submit_batch(&rpc, std::slice::from_ref(&tx), true);
    wait_for(Duration::from_secs(60), "the transfer committed", || {
        crate::localnet::tx_status(&rpc, &tx.hash())
            .is_some_and(|s| s.status == interpool_contracts::views::TxStatus::Committed)
    });
    net.wait_height(&[0], 40, Duration::from_secs(120));
    let pruned = status(&rpc).expect("status");
    assert!(
        pruned.earliest_height > 20,
        "earliest {} at height {}",
        pruned.earliest_height,
        pruned.height
    );
    let get = |route: &str| {
        let response = crate::localnet::client()
            .get(format!("{rpc}{route}"))
            .send()
            .expect("request");
        let code = response.status().as_u16();
        (
            code,
            response.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    let (code, body) = get("/v1/blocks/1");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (410, Some("pruned")),
        "{body}"
    );
    // The node goes on committing (and pruning, every 5 blocks of 20 ms): the earliest
    // kept block is served unless a prune passed it between the two requests, and then the
    // status says so.
    wait_for(
        Duration::from_secs(30),
        "the earliest kept block served",
        || {
            let before = status(&rpc).expect("status").earliest_height;
            match get(&format!("/v1/blocks/{before}")).0 {
                200 => true,
                410 => {
                    let after = status(&rpc).expect("status").earliest_height;
                    assert!(
                        after > before,
                        "block {before} is gone but still the earliest"
                    );
                    false
                }
                code => panic!("block {before}, the earliest kept: {code}"),
            }
        },
    );
    let (code, body) = get("/v1/events?after=1:0");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (410, Some("pruned")),
        "{body}"
    );
    let (code, body) = get(&format!("/v1/accounts/{payer}/transactions?before=2:0"));
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (410, Some("pruned")),
        "{body}"
    );
    // Within what it keeps, the history answers.
    let (code, body) = get(&format!("/v1/accounts/{payer}/transactions"));
    assert_eq!(code, 200, "{body}");
    // The balances are the state's, not the history's: still there.
    let account = crate::localnet::account(&rpc, &payer).expect("account");
    assert_eq!(account.nonce, 1);

    net.terminate(0, Duration::from_secs(30));
    let data = crate::audit::data_dir(&net.nodes[0].config);
    let report = crate::audit::audit_json(&data, &net.root().join("genesis.json"));
    // Re-executed from a checkpoint whose state a kept block's certified header names: the
    // block after it is kept (the checkpoint's own block may be pruned).
    let from = report["from_checkpoint"].as_u64().expect("from_checkpoint");
    assert!(from + 1 >= pruned.earliest_height && from > 0, "{report}");
    assert!(
        report["final_height"].as_u64().expect("final") >= 40,
        "{report}"
    );
}

#[test]
fn a_late_observer_joins_by_state_sync_refusing_wrong_chunks_and_agrees_with_the_validators() {
    let mut net = Localnet::generate(
        4,
        1,
        2,
        &Options {
            empty_block_interval_ms: Some(200),
            ..Options::default()
        },
    );
    for i in 0..5 {
        net.set_config(i, "checkpoint_interval_blocks", 1000, 10);
    }
    let observer = 4;
    net.set_config_text(observer, "state_sync", "false", "true");
    let validators = [0, 1, 2, 3];
    // Every validator lies in the first chunk it serves: the observer must refuse each lie,
    // penalise its peer, and get the chunk right in the end.
    for &i in &validators {
        net.start_node_with_env(i, &[("INTERPOOL_CORRUPT_STATE_CHUNKS", "1")]);
    }
    net.wait_height(&validators, 2, Duration::from_secs(120));
    let rpcs = net.rpcs();
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let txs: Vec<_> = (0..5)
        .map(|nonce| crate::localnet::transfer(&key, payee, nonce, 3))
        .collect();
    crate::localnet::submit_batch(&rpcs[0], &txs, true);
    net.wait_height(&validators, 21, Duration::from_secs(120));

    net.start_node(observer);
    wait_for(Duration::from_secs(120), "the observer joined", || {
        status(&rpcs[observer]).is_some()
    });
    let joined = status(&rpcs[observer]).expect("status");
    assert!(
        joined.restored_from_height >= 20 && joined.restored_from_height.is_multiple_of(10),
        "joined at {} (validators above 21)",
        joined.restored_from_height
    );
    assert_eq!(joined.earliest_height, joined.restored_from_height + 1);
    let logs = net.logs_full();
    assert!(
        logs.contains("wrong chunk refused"),
        "the lies were noticed"
    );
    assert!(logs.contains("joined by state sync"));
    // It follows from there and agrees with the validators.
    wait_for(
        Duration::from_secs(60),
        "the same height and state root",
        || match (status(&rpcs[0]), status(&rpcs[observer])) {
            (Some(v), Some(o)) => v.height == o.height && v.state_root == o.state_root,
            _ => false,
        },
    );
    // Its state is the chain's: the payer's nonce and balance, as a validator sees them.
    let here = crate::localnet::account(&rpcs[observer], &payer).expect("account");
    let there = crate::localnet::account(&rpcs[0], &payer).expect("account");
    assert_eq!((here.nonce, &here.balance), (there.nonce, &there.balance));
    assert_eq!(here.nonce, 5);
    // Blocks before its start are not here: it never had them.
    let code = crate::localnet::client()
        .get(format!("{}/v1/blocks/1", rpcs[observer]))
        .send()
        .expect("request")
        .status()
        .as_u16();
    assert_eq!(code, 410);
    // Restarted, it starts from its own checkpoint, not from the genesis.
    net.terminate(observer, Duration::from_secs(30));
    net.start_node(observer);
    wait_for(
        Duration::from_secs(60),
        "the observer answers again",
        || status(&rpcs[observer]).is_some(),
    );
    assert!(
        status(&rpcs[observer])
            .expect("status")
            .restored_from_height
            >= joined.restored_from_height
    );
}
