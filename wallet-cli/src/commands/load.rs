//! `load`: a load generator for a localnet. Signs transfers between the manifest's sample
//! customers (always across banks), submits them in batches to the validators in turn,
//! and follows `GET /v1/events` to time each one from submission to its commit. Prints
//! throughput and latency percentiles (measurements for closing notes, never assertions).
//! With `--sign-only FILE` it writes the signed transfers to FILE instead of submitting them,
//! for a submitter of its own (`scripts/chaos.sh` has one that fails over between nodes).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use interpool_contracts::outcome::Outcome;
use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::EventView;
use interpool_contracts::{AccountId, Amount, Body, Hash, SignedTransaction, Transaction};
use interpool_genesis::files::read_genesis;
use serde::{Deserialize, Serialize};

use crate::client::Node;
use crate::exit::Exit;
use crate::keyfile::load_signing_key;
use crate::output::{fields, line, Output};
use crate::sse::SseParser;

/// What `load` needs from the command line.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    /// The localnet folder (with `localnet.json`).
    pub localnet: PathBuf,
    /// Transfers to send.
    pub transfers: usize,
    /// Transfers per batch request.
    pub batch: usize,
    /// Target submission rate (transfers per second); as fast as possible when absent.
    pub rate: Option<u64>,
    /// Seconds to wait for the last commit.
    pub timeout: u64,
    /// Write the signed transfers here (`HASH HEX` a line, in submission order) and submit
    /// nothing.
    pub sign_only: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Manifest {
    chain_id: String,
    genesis: PathBuf,
    nodes: Vec<ManifestNode>,
    banks: Vec<ManifestBank>,
}

#[derive(Deserialize)]
struct ManifestNode {
    role: String,
    rpc_url: String,
}

#[derive(Deserialize)]
struct ManifestBank {
    accounts: Vec<ManifestAccount>,
}

#[derive(Deserialize)]
struct ManifestAccount {
    key_file: PathBuf,
}

/// The measurements.
#[derive(Debug, Serialize)]
struct Report {
    transfers: usize,
    validators: usize,
    signing_seconds: f64,
    submit_seconds: f64,
    submitted_per_second: f64,
    refused: usize,
    committed: usize,
    queued: usize,
    rejected: usize,
    not_seen: usize,
    /// From the first submission to the last commit seen.
    throughput_per_second: f64,
    latency_ms_p50: u64,
    latency_ms_p90: u64,
    latency_ms_p99: u64,
    latency_ms_max: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The transfers to send: senders in turn, each to a customer of the next bank.
fn plan(
    chain_id: &str,
    customers: &[(SigningKey, AccountId, usize)],
    nonces: &[u64],
    count: usize,
    valid_until_height: u64,
) -> Vec<SignedTransaction> {
    let mut next = nonces.to_vec();
    (0..count)
        .map(|i| {
            let s = i % customers.len();
            let (key, from, bank) = &customers[s];
            let to = customers
                .iter()
                .cycle()
                .skip(s + 1)
                .find(|(_, _, b)| b != bank)
                .map_or(*from, |(_, id, _)| *id);
            let nonce = next[s];
            next[s] += 1;
            Transaction {
                chain_id: chain_id.to_string(),
                signer: *from,
                nonce,
                valid_until_height,
                body: Body::Transfer {
                    to,
                    amount: Amount(1),
                    end_to_end_id: format!("LOAD-{nonce}"),
                    reference: String::new(),
                },
            }
            .sign(key)
        })
        .collect()
}

/// Reads transaction events from an open event stream until the receiver hangs up; sends
/// `(hash, outcome kind, when)` for each.
fn follow(
    response: reqwest::blocking::Response,
    sender: mpsc::Sender<(Hash, &'static str, Instant)>,
) -> Result<()> {
    let mut parser = SseParser::new();
    for text in BufReader::new(response).lines() {
        let text = text.context("reading the event stream")?;
        let Some(event) = parser.push_line(&text) else {
            continue;
        };
        let Ok(EventView::Transaction { receipt, .. }) = serde_json::from_str(&event.data) else {
            continue;
        };
        let kind = match receipt.outcome {
            Outcome::Committed => "committed",
            Outcome::Queued { .. } => "queued",
            Outcome::Rejected { .. } => "rejected",
        };
        if sender
            .send((receipt.tx_hash, kind, Instant::now()))
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Pause before sending a batch again that the node refused at a limit.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Submits one batch; a refusal at one of the node's limits (429 `rate_limited`, 503
/// `busy`: "come back shortly") is retried after a pause, for at most `patience`.
fn post_batch(
    node: &Node,
    body: &serde_json::Value,
    patience: Duration,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    loop {
        match node.post("/v1/transactions/batch", body) {
            Err(error)
                if matches!(error.status(), Some(429 | 503))
                    && started.elapsed() + RETRY_PAUSE < patience =>
            {
                thread::sleep(RETRY_PAUSE);
            }
            answer => return Ok(answer?),
        }
    }
}

/// Runs the load and prints the report.
pub fn load(out: Output, args: &LoadArgs) -> Result<Exit> {
    if args.transfers == 0 || args.batch == 0 {
        bail!("--transfers and --batch must be at least 1");
    }
    let path = args.localnet.join("localnet.json");
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a localnet manifest", path.display()))?;
    let validators: Vec<Node> = manifest
        .nodes
        .iter()
        .filter(|n| n.role == "validator")
        .map(|n| Node::new(&n.rpc_url))
        .collect::<Result<_, _>>()?;
    let Some(first) = validators.first() else {
        bail!("the manifest lists no validator");
    };
    let mut customers = Vec::new();
    for (bank, entry) in manifest.banks.iter().enumerate() {
        for account in &entry.accounts {
            let (key, id) = load_signing_key(&resolve(&args.localnet, &account.key_file))?;
            customers.push((key, id, bank));
        }
    }
    if manifest.banks.len() < 2 || customers.is_empty() {
        bail!("the localnet needs at least two banks with sample accounts");
    }
    let nonces: Vec<u64> = customers
        .iter()
        .map(|(_, id, _)| first.account(id).map(|a| a.nonce))
        .collect::<Result<_, _>>()?;
    let height = first.status()?.height;
    // Valid for half the genesis's validity horizon: within it at every node, also one a
    // little behind the others.
    let horizon = read_genesis(&resolve(&args.localnet, &manifest.genesis))?.max_validity_blocks;

    let started = Instant::now();
    let txs = plan(
        &manifest.chain_id,
        &customers,
        &nonces,
        args.transfers,
        height.saturating_add(horizon / 2),
    );
    let signing_seconds = started.elapsed().as_secs_f64();
    let encoded: Vec<(Hash, String)> = txs
        .iter()
        .map(|tx| (tx.hash(), to_hex(&tx.encode())))
        .collect();
    if let Some(file) = &args.sign_only {
        let text: String = encoded
            .iter()
            .map(|(hash, hex)| format!("{hash} {hex}\n"))
            .collect();
        std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
        return Ok(Exit::Success);
    }

    // Follow commits from before the first submission.
    let (sender, commits) = mpsc::channel();
    let events = first.events(None, None)?;
    let stream = thread::spawn(move || follow(events, sender));

    let mut submitted: HashMap<Hash, Instant> = HashMap::with_capacity(encoded.len());
    let mut refused = 0;
    let submit_start = Instant::now();
    for (i, chunk) in encoded.chunks(args.batch).enumerate() {
        if let Some(rate) = args.rate {
            // Pace to the target rate: the batch may go once its share of time has come.
            let due = Duration::from_secs_f64((i * args.batch) as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(submit_start.elapsed()) {
                thread::sleep(wait);
            }
        }
        let node = &validators[i % validators.len()];
        let body =
            serde_json::json!({ "txs": chunk.iter().map(|(_, hex)| hex).collect::<Vec<_>>() });
        let now = Instant::now();
        let answer = post_batch(node, &body, Duration::from_secs(args.timeout))?;
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        for ((hash, _), result) in chunk.iter().zip(&results) {
            if result.get("hash").is_some() {
                submitted.insert(*hash, now);
            } else {
                refused += 1;
            }
        }
    }
    let submit_seconds = submit_start.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut latencies = Vec::with_capacity(submitted.len());
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut last_commit = submit_start;
    while latencies.len() < submitted.len() {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        let Ok((hash, kind, at)) = commits.recv_timeout(left) else {
            break;
        };
        if let Some(sent) = submitted.get(&hash) {
            latencies.push(at.duration_since(*sent).as_millis() as u64);
            *counts.entry(kind).or_default() += 1;
            last_commit = last_commit.max(at);
        }
    }
    drop(commits);
    drop(stream); // the follower thread ends with its connection
    latencies.sort_unstable();
    let seen = latencies.len();
    let report = Report {
        transfers: args.transfers,
        validators: validators.len(),
        signing_seconds,
        submit_seconds,
        submitted_per_second: submitted.len() as f64 / submit_seconds.max(1e-9),
        refused,
        committed: counts.get("committed").copied().unwrap_or(0),
        queued: counts.get("queued").copied().unwrap_or(0),
        rejected: counts.get("rejected").copied().unwrap_or(0),
        not_seen: submitted.len() - seen,
        throughput_per_second: seen as f64
            / last_commit
                .duration_since(submit_start)
                .as_secs_f64()
                .max(1e-9),
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p90: percentile(&latencies, 0.90),
        latency_ms_p99: percentile(&latencies, 0.99),
        latency_ms_max: latencies.last().copied().unwrap_or(0),
    };
    if out.json {
        out.json(&report)?;
    } else {
        line(&fields(&[
            (
                "transfers",
                format!("{} to {} validators", report.transfers, report.validators),
            ),
            ("signed in", format!("{:.2} s", report.signing_seconds)),
            (
                "submitted",
                format!(
                    "{} in {:.2} s ({:.0}/s), {} refused",
                    submitted.len(),
                    report.submit_seconds,
                    report.submitted_per_second,
                    report.refused
                ),
            ),
            (
                "outcomes",
                format!(
                    "{} committed, {} queued, {} rejected, {} not seen",
                    report.committed, report.queued, report.rejected, report.not_seen
                ),
            ),
            (
                "throughput",
                format!(
                    "{:.0} transfers/s (first submit to last commit)",
                    report.throughput_per_second
                ),
            ),
            (
                "latency",
                format!(
                    "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (submit to commit event)",
                    report.latency_ms_p50,
                    report.latency_ms_p90,
                    report.latency_ms_p99,
                    report.latency_ms_max
                ),
            ),
        ]))?;
    }
    Ok(if report.not_seen == 0 && report.refused == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn resolve(base: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(seed: u8, bank: usize) -> (SigningKey, AccountId, usize) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let id = AccountId(key.verifying_key().to_bytes());
        (key, id, bank)
    }

    #[test]
    fn plan_sends_across_banks_with_consecutive_nonces() {
        let customers = vec![customer(1, 0), customer(2, 0), customer(3, 1)];
        let txs = plan("c", &customers, &[5, 0, 9], 7, 100);
        assert_eq!(txs.len(), 7);
        let mut last: HashMap<AccountId, u64> = HashMap::new();
        for tx in &txs {
            let Body::Transfer { to, .. } = &tx.tx.body else {
                panic!("transfer");
            };
            let bank_of = |id: &AccountId| customers.iter().find(|c| c.1 == *id).map(|c| c.2);
            assert_ne!(bank_of(&tx.tx.signer), bank_of(to), "cross-bank only");
            if let Some(previous) = last.insert(tx.tx.signer, tx.tx.nonce) {
                assert_eq!(tx.tx.nonce, previous + 1);
            }
            assert!(tx.clone().check_stateless("c").is_ok());
        }
        assert_eq!(last[&customers[0].1], 7);
        assert_eq!(last[&customers[2].1], 10);
    }

    #[test]
    fn percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
