//! Faults with real processes: `kill -9` of the proposer under load.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interpool_contracts::views::{BlockView, TxStatus};
use interpool_contracts::{AccountId, Hash, SignedTransaction};
use serde_json::Value;

use crate::localnet::{account, client, get, status, transfer, tx_status, wait_for, Localnet};

/// Transactions each sender puts in one batch.
const PER_BATCH: u64 = 10;

/// Keeps submitting transfers to the live validators until stopped. Nonces advance only
/// over what a node accepted; a transaction is re-signed identically (same hash) when its
/// fate is unknown, so nothing is ever lost to a gap.
struct Load {
    stop: Arc<AtomicBool>,
    /// Hashes some validator accepted.
    accepted: Arc<Mutex<BTreeSet<Hash>>>,
    /// Validators to submit to (the test removes one before killing it).
    targets: Arc<Mutex<Vec<String>>>,
    /// Each sender's id and the nonce it has reached.
    progress: Arc<Mutex<Vec<(AccountId, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(senders: Vec<(ed25519_dalek::SigningKey, AccountId)>, targets: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(BTreeSet::new()));
        let targets = Arc::new(Mutex::new(targets));
        let progress = Arc::new(Mutex::new(
            senders
                .iter()
                .map(|(key, _)| (AccountId(key.verifying_key().to_bytes()), 0))
                .collect::<Vec<_>>(),
        ));
        let thread = {
            let (stop, accepted, targets, progress) = (
                stop.clone(),
                accepted.clone(),
                targets.clone(),
                progress.clone(),
            );
            std::thread::spawn(move || {
                let http = client();
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let rpc = {
                        let targets = targets.lock().expect("targets");
                        targets[round % targets.len()].clone()
                    };
                    round += 1;
                    let next: Vec<u64> = progress
                        .lock()
                        .expect("progress")
                        .iter()
                        .map(|p| p.1)
                        .collect();
                    let txs: Vec<SignedTransaction> = senders
                        .iter()
                        .zip(&next)
                        .flat_map(|((key, to), &first)| {
                            (first..first + PER_BATCH)
                                .map(move |nonce| transfer(key, *to, nonce, 1 + nonce % 5))
                        })
                        .collect();
                    let hex: Vec<String> = txs
                        .iter()
                        .map(|tx| interpool_contracts::primitives::to_hex(&tx.encode()))
                        .collect();
                    let answer: Option<Value> = http
                        .post(format!("{rpc}/v1/transactions/batch"))
                        .json(&serde_json::json!({ "txs": hex }))
                        .send()
                        .ok()
                        .and_then(|r| r.json().ok());
                    if let Some(results) = answer.as_ref().and_then(|a| a["results"].as_array()) {
                        let mut progress = progress.lock().expect("progress");
                        let mut accepted = accepted.lock().expect("accepted");
                        for (s, chunk) in results.chunks(PER_BATCH as usize).enumerate() {
                            for (k, result) in chunk.iter().enumerate() {
                                let code = result["error"]["code"].as_str();
                                let ok = result.get("hash").is_some()
                                    || matches!(code, Some("already_pending" | "already_included"));
                                if !ok {
                                    break;
                                }
                                accepted.insert(txs[s * PER_BATCH as usize + k].hash());
                                progress[s].1 = progress[s].1.max(next[s] + k as u64 + 1);
                            }
                        }
                    }
                    // Pacing between batches (this is load generation, not waiting).
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            })
        };
        Load {
            stop,
            accepted,
            targets,
            progress,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("load thread");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn committed_on(rpc: &str, hash: &Hash) -> bool {
    tx_status(rpc, hash).is_some_and(|v| v.status == TxStatus::Committed)
}

#[test]
fn killing_the_proposer_under_load_loses_nothing_and_it_catches_up() {
    let mut net = Localnet::start(4, 0, 2);
    let all = net.rpcs();
    let everyone = [0, 1, 2, 3];
    net.wait_height(&everyone, 2, Duration::from_secs(120));
    let senders = vec![
        (net.account_key(0, 0).0, net.account_key(1, 0).1),
        (net.account_key(0, 1).0, net.account_key(1, 1).1),
        (net.account_key(1, 0).0, net.account_key(0, 1).1),
    ];
    let mut load = Load::start(senders.clone(), all.clone());

    // Under load, note what is acknowledged as committed, then kill the proposer of the
    // next height at once.
    wait_for(Duration::from_secs(60), "some load committed", || {
        load.accepted.lock().expect("accepted").len() >= 150
            && load
                .accepted
                .lock()
                .expect("accepted")
                .iter()
                .take(10)
                .all(|h| committed_on(&all[0], h))
    });
    let accepted: Vec<Hash> = load
        .accepted
        .lock()
        .expect("accepted")
        .iter()
        .copied()
        .collect();
    let acknowledged: Vec<Hash> = accepted
        .into_iter()
        .filter(|h| committed_on(&all[0], h))
        .collect();
    assert!(!acknowledged.is_empty());
    let height = status(&all[0]).expect("status").height;
    let victim = net.proposer(height + 1);
    load.targets
        .lock()
        .expect("targets")
        .retain(|rpc| *rpc != all[victim]);
    let survivors: Vec<usize> = everyone.iter().copied().filter(|&i| i != victim).collect();
    let top = |which: &[usize]| {
        which
            .iter()
            .filter_map(|&i| status(&all[i]).map(|s| s.height))
            .max()
            .unwrap_or(0)
    };
    let before = top(&survivors);
    let killed_at = Instant::now();
    net.kill(victim);
    eprintln!(
        "killed {} (proposer of height {}) at height {before}",
        net.nodes[victim].name,
        height + 1
    );
    wait_for(Duration::from_secs(60), "a commit after the kill", || {
        top(&survivors) > before
    });
    eprintln!(
        "proposer kill -> next commit: {} ms",
        killed_at.elapsed().as_millis()
    );
    // Commits go on under load without the victim.
    let resumed = top(&survivors);
    net.wait_height(&survivors, resumed + 5, Duration::from_secs(120));

    // The victim restarts from its data directory and catches up.
    net.start_node(victim);
    let target = top(&survivors);
    net.wait_height(&[victim], target, Duration::from_secs(120));
    load.stop();

    // Every transfer a validator accepted commits everywhere, in particular those that were
    // acknowledged as committed before the kill. A batch the victim accepted just before it
    // died may never have been gossiped: like any client, send again what has not committed
    // (the same signed bytes, so nothing can commit twice).
    let progress: Vec<(AccountId, u64)> = load.progress.lock().expect("progress").clone();
    for ((key, to), (id, reached)) in senders.iter().zip(&progress) {
        let committed = account(&all[0], id).expect("account").nonce;
        let again: Vec<SignedTransaction> = (committed..*reached)
            .map(|nonce| transfer(key, *to, nonce, 1 + nonce % 5))
            .collect();
        if !again.is_empty() {
            eprintln!(
                "sending {} uncommitted transfers of {id} again",
                again.len()
            );
            crate::localnet::submit_batch(&all[0], &again, false);
        }
    }
    wait_for(
        Duration::from_secs(120),
        "every accepted transfer committed on every node",
        || {
            all.iter().all(|rpc| {
                progress
                    .iter()
                    .all(|(id, nonce)| account(rpc, id).is_some_and(|a| a.nonce == *nonce))
            })
        },
    );
    for hash in &acknowledged {
        for rpc in &all {
            assert!(
                committed_on(rpc, hash),
                "{hash} lost at {rpc}\n{}",
                net.logs()
            );
        }
    }
    let accepted = load.accepted.lock().expect("accepted").clone();
    for hash in accepted.iter().step_by(13) {
        for rpc in &all {
            assert!(committed_on(rpc, hash), "{hash} not committed at {rpc}");
        }
    }

    // No fork: the same block and state root at every height on every node.
    let common = everyone
        .iter()
        .map(|&i| status(&all[i]).expect("status").height)
        .min()
        .expect("nodes");
    for h in 1..=common {
        let blocks: Vec<BlockView<Value>> = all
            .iter()
            .map(|rpc| get(rpc, &format!("/v1/blocks/{h}")).expect("block"))
            .collect();
        assert!(
            blocks
                .windows(2)
                .all(|w| (w[0].hash, w[0].state_root) == (w[1].hash, w[1].state_root)),
            "nodes disagree at height {h}\n{}",
            net.logs()
        );
    }
    eprintln!(
        "{} transfers accepted, {} acknowledged before the kill, {} blocks compared",
        accepted.len(),
        acknowledged.len(),
        common
    );
}
