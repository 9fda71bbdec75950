//! Readers never wait on consensus: on a localnet with a few thousand blocks, 64 event
//! streams replaying from the first block, and history, proof and status requests in loops,
//! run while transfers arrive at a fixed rate. The validators keep committing without a
//! round change, and every stream gets every event.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use interpool_contracts::views::EventView;
use interpool_contracts::Hash;

use crate::localnet::{
    client, metric, status, submit_batch, transfer, wait_for, Localnet, Options,
};

/// Blocks on the chain before the readers start.
const BLOCKS: u64 = 2_000;
/// Event streams replaying from the first block.
const STREAMS: usize = 64;
/// Transfers submitted while the readers read, one every [`TRANSFER_EVERY`].
const TRANSFERS: u64 = 100;
const TRANSFER_EVERY: Duration = Duration::from_millis(100);

/// Reads `url` as an event stream until every hash in `wanted` went by; the hashes seen.
fn read_all(url: &str, wanted: &BTreeSet<Hash>, deadline: Duration) -> BTreeSet<Hash> {
    let http = crate::localnet::client_timeout(deadline);
    let response = http.get(url).send().expect("event stream");
    assert!(response.status().is_success(), "{}", response.status());
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    let mut data = String::new();
    for line in BufReader::new(response).lines() {
        let Ok(line) = line else { break };
        if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            if let Ok(EventView::Transaction { receipt, .. }) = serde_json::from_str(&data) {
                seen.insert(receipt.tx_hash);
            }
            data.clear();
            if wanted.is_subset(&seen) {
                break;
            }
        }
        if started.elapsed() > deadline {
            break;
        }
    }
    seen
}

fn round_changes(net: &Localnet) -> Vec<u64> {
    (0..4)
        .map(|i| metric(&net.nodes[i].rpc, "interpool_round_changes").expect("metrics"))
        .collect()
}

#[test]
fn heavy_reads_do_not_slow_consensus_and_every_stream_gets_its_events() {
    let mut net = Localnet::generate(
        4,
        0,
        2,
        &Options {
            // Blocks as fast as the validators agree: a few thousand in a minute or two.
            empty_block_interval_ms: Some(1),
            // It loads the machine on purpose: other localnets' deadlines must not suffer.
            exclusive: true,
            ..Options::default()
        },
    );
    // A round change here must mean the readers held consensus up, not that this shared
    // 2-core machine was busy for a moment: a round lasts 10 s instead of 2 s. And one
    // client (this test) makes all the reads: lift its per-client rate, which exists to
    // stop exactly that, so that the node-wide limits are what the load meets.
    for i in 0..net.nodes.len() {
        net.set_config(i, "round_timeout_ms", 2_000, 10_000);
        net.set_config(i, "rate_limit_per_second", 100, 1_000_000);
        net.set_config(i, "rate_limit_burst", 200, 1_000_000);
    }
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], BLOCKS, Duration::from_secs(600));
    let rpcs = net.rpcs();
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let before = round_changes(&net);
    let height_before = status(&rpcs[0]).expect("status").height;

    // The transfers, signed ahead so that the streams know what to wait for.
    let txs: Vec<_> = (0..TRANSFERS)
        .map(|nonce| transfer(&key, payee, nonce, 1))
        .collect();
    let wanted: BTreeSet<Hash> = txs.iter().map(|tx| tx.hash()).collect();

    // The read load: history pages, proofs and status in loops on every validator, until
    // the streams are done.
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = (0..3)
        .map(|kind| {
            let (rpcs, done, reads) = (rpcs.clone(), done.clone(), reads.clone());
            thread::spawn(move || {
                let http = client();
                let route = match kind {
                    0 => format!("/v1/accounts/{payer}/transactions?limit=200"),
                    1 => format!("/v1/accounts/{payer}/proof"),
                    _ => "/v1/status".to_string(),
                };
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    let rpc = &rpcs[i % 4];
                    i += 1;
                    // The status is anyone's to read; the others are signed reads.
                    let request = http.get(format!("{rpc}{route}"));
                    let request = if kind == 2 {
                        request.anonymous()
                    } else {
                        request
                    };
                    if let Ok(response) = request.send() {
                        // Busy (503) and one key over its rate of signed requests (429) are
                        // legitimate answers to an overload; anything else must be a success.
                        let code = response.status().as_u16();
                        assert!(code == 200 || code == 503 || code == 429, "{route}: {code}");
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    // 64 streams replaying everything from the first block, spread over the validators;
    // each reads until it has seen every transfer.
    let streams: Vec<_> = (0..STREAMS)
        .map(|i| {
            let url = format!("{}/v1/events?after=0:0", rpcs[i % 4]);
            let wanted = wanted.clone();
            thread::spawn(move || read_all(&url, &wanted, Duration::from_secs(600)))
        })
        .collect();

    // Meanwhile, transfers at a fixed rate, to the validators in turn.
    for (nonce, tx) in txs.iter().enumerate() {
        submit_batch(&rpcs[nonce % 4], std::slice::from_ref(tx), true);
        thread::sleep(TRANSFER_EVERY);
    }
    for (i, stream) in streams.into_iter().enumerate() {
        let seen = stream.join().expect("stream");
        let missing: Vec<&Hash> = wanted.difference(&seen).collect();
        assert!(
            missing.is_empty(),
            "stream {i} missed {} of {} transfers",
            missing.len(),
            wanted.len()
        );
    }
    done.store(true, Ordering::Relaxed);
    for read_loop in loops {
        read_loop.join().expect("read loop");
    }
    eprintln!(
        "{} reads served; heights {height_before} → {}",
        reads.load(Ordering::Relaxed),
        status(&rpcs[0]).map_or(0, |s| s.height)
    );

    // Consensus went on: every transfer committed, heights moved, no round change.
    wait_for(Duration::from_secs(120), "every transfer committed", || {
        crate::localnet::account(&rpcs[0], &payer).is_some_and(|a| a.nonce == TRANSFERS)
    });
    let height_after = status(&rpcs[0]).expect("status").height;
    assert!(
        height_after > height_before + 10,
        "validators stalled: {height_before} → {height_after}"
    );
    let after = round_changes(&net);
    assert_eq!(
        after,
        before,
        "the read load caused round changes (per validator, before {before:?}, after \
         {after:?}; {} reads served)",
        reads.load(Ordering::Relaxed)
    );
    net.assert_running(&[0, 1, 2, 3]);
}
