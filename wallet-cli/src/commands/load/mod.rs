//! `load`: the load generator of a localnet (`scripts/bench.sh` runs it). Opens and funds
//! `--accounts` customer accounts spread over the banks (with the bank operators' keys from
//! the manifest), pre-signs transfers between them on every core, submits them in binary
//! batches to every validator in turn at a fixed offered rate or as fast as they are
//! accepted, follows `GET /v1/events` to each one's outcome, and reports (a progress bar
//! while it runs, one JSON document at the end): offered and accepted rates, the committed
//! rate over the steady state, submit-to-commit latency percentiles, refusals and
//! rejections by code, blocks, and each local node's CPU time and peak memory from `/proc`
//! (its own too: it shares the machine with them).
//! Measurements for closing notes, never assertions.
//!
//! With `--sign-only FILE` it signs transfers between the manifest's sample customers and
//! writes them to FILE (`HASH HEX` a line) instead of submitting them, for a submitter of
//! its own (`scripts/chaos.sh` has one that fails over between nodes).

mod plan;
mod report;
mod run;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use interpool_contracts::primitives::to_hex;
use interpool_contracts::{AccountId, Amount};
use interpool_genesis::files::read_genesis;
use serde::{Deserialize, Serialize};

use crate::client::Node;
use crate::exit::Exit;
use crate::keyfile::load_signing_key;
use crate::output::{fields, line, Output};
use plan::Customer;
use report::{Bucket, Codes, Latency, MachineSpeed, NodeUsage, Probe, Second, SteadyState};
pub use run::Rate;

/// Accounts opened by default.
pub const DEFAULT_ACCOUNTS: usize = 10_000;
/// Transfers sent by default (when neither a count nor a duration is given).
pub const DEFAULT_TRANSFERS: usize = 10_000;
/// Transfers pre-signed per second of a `--duration` run at `--rate max` (the most it can
/// offer): above every rate measured on the reference machine (one validator: 34,700/s;
/// with 30,000 a second planned, a 60-s run there ran out after 51 s). A faster consortium
/// runs out before the duration, and the report says so ([`report::ran_out`]).
const MAX_RATE_PRESIGNED: u64 = 40_000;
/// The most transfers a `--rate max` run pre-signs unless `--txs` asks for more: every
/// transfer is signed before the load starts and held until it ends (about 650 bytes each:
/// 1.6 GB and 25 s of signing on 2 cores), so a long run at full speed runs out rather
/// than taking the machine's memory.
const MAX_PRESIGNED: u64 = 2_500_000;
/// An operator's transactions pending at once while accounts are opened (a node's mempool
/// holds at most 1,000 per signer by default; the genesis's nonce lookahead may allow
/// fewer).
const OPENING_WINDOW: usize = 400;
/// What each opened account is funded with, in minor units (transfers take 1 to 100).
const DEPOSIT: Amount = Amount(1_000_000_000);
/// Most transactions in one batch request (the node's limit).
const MAX_BATCH: usize = 10_000;
/// Submitters per validator by default: batch requests in flight at once to each. A
/// submitter waits for a batch's answer (the node verifies its signatures and records it
/// durably first) before sending its next, so at `--rate max` too few of them measure their
/// own round trips rather than the consortium: with two, one validator acknowledged 27,600
/// transfers/s with no refusal, and committed 27,900/s; with four, 34,700/s on the same
/// build and machine (issue 12); with eight, 32,300/s, the node refusing some for a moment
/// (its mempool full, its clients' rate) and p99 at 2.0 s instead of 0.9 s. At a fixed rate
/// they take turns, so their number changes only how many batches may be answered late at
/// once.
pub const DEFAULT_SUBMITTERS: usize = 4;
/// The most submitters per validator (threads of this process).
const MAX_SUBMITTERS: usize = 64;

/// What `load` needs from the command line.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    /// The localnet's manifest (`localnet.json`; keys and nodes are found beside it).
    pub manifest: PathBuf,
    /// Accounts to open and fund (0: the manifest's sample customers); default
    /// [`DEFAULT_ACCOUNTS`], or 0 with `sign_only`.
    pub accounts: Option<usize>,
    /// Transfers to send.
    pub txs: Option<usize>,
    /// Or send for this many seconds.
    pub duration: Option<u64>,
    /// The offered rate.
    pub rate: Rate,
    /// Transfers per batch request.
    pub batch: usize,
    /// Submitters per validator ([`DEFAULT_SUBMITTERS`]).
    pub submitters: usize,
    /// Seconds to wait for the last outcome (and for a node that keeps refusing at its
    /// limits).
    pub timeout: u64,
    /// Also write the JSON report here.
    pub out: Option<PathBuf>,
    /// Seed of the opened accounts' keys (default: a fresh one per run).
    pub seed: Option<u64>,
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
    /// Reads (the outcomes the load follows) are signed as the regulator, who sees all.
    regulator_key_file: PathBuf,
    /// The consortium CA, when the nodes serve TLS.
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct ManifestNode {
    name: String,
    role: String,
    rpc_url: String,
}

#[derive(Deserialize)]
struct ManifestBank {
    id: String,
    operator_key_file: PathBuf,
    accounts: Vec<ManifestAccount>,
}

#[derive(Deserialize)]
struct ManifestAccount {
    key_file: PathBuf,
}

/// The localnet the load runs against.
struct Localnet {
    dir: PathBuf,
    manifest: Manifest,
    validators: Vec<Node>,
    max_validity_blocks: u64,
    max_nonce_lookahead: u64,
}

impl Localnet {
    fn read(path: &Path) -> Result<Localnet> {
        let path = if path.is_dir() {
            path.join("localnet.json")
        } else {
            path.to_path_buf()
        };
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a localnet manifest", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let access = crate::client::Access {
            ca: manifest.ca_file.as_ref().map(|file| resolve(&dir, file)),
            key: Some(
                crate::keyfile::load_signing_key(&resolve(&dir, &manifest.regulator_key_file))?.0,
            ),
        };
        let validators: Vec<Node> = manifest
            .nodes
            .iter()
            .filter(|n| n.role == "validator")
            .map(|n| Node::with_access(&n.rpc_url, &access))
            .collect::<Result<_, _>>()?;
        if validators.is_empty() {
            bail!("{} lists no validator", path.display());
        }
        if manifest.banks.is_empty() {
            bail!("{} lists no bank", path.display());
        }
        let genesis = read_genesis(&resolve(&dir, &manifest.genesis))?;
        Ok(Localnet {
            dir,
            manifest,
            validators,
            max_validity_blocks: genesis.max_validity_blocks,
            max_nonce_lookahead: genesis.max_nonce_lookahead,
        })
    }

    fn first(&self) -> &Node {
        &self.validators[0]
    }

    /// The manifest's sample customers, with their next nonces.
    fn sample_customers(&self) -> Result<Vec<Customer>> {
        let mut customers = Vec::new();
        for (bank, entry) in self.manifest.banks.iter().enumerate() {
            for account in &entry.accounts {
                let (key, id) = load_signing_key(&resolve(&self.dir, &account.key_file))?;
                let nonce = self.first().account(&id)?.nonce;
                customers.push(Customer::new(key, bank, nonce));
            }
        }
        if customers.len() < 2 {
            bail!("the localnet needs at least two sample customers");
        }
        Ok(customers)
    }

    /// Waits until every validator has reached the height the furthest one is at now: what
    /// any of them has committed, each may then be asked about (waiting for the first
    /// validator's height only, a deposit one validator had committed was sometimes not yet
    /// on the first, and the load stopped with "opened but not funded").
    fn wait_all_caught_up(&self, timeout: Duration) -> Result<()> {
        let mut height = 0;
        for node in &self.validators {
            height = height.max(node.status()?.height);
        }
        self.wait_all_at(height, timeout)
    }

    /// Waits until every validator has reached `height` (what one has committed, all may be
    /// asked about).
    fn wait_all_at(&self, height: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for node in &self.validators {
            while node.status()?.height < height {
                if Instant::now() > deadline {
                    bail!("{} did not reach height {height} in time", node.base_url());
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

fn resolve(base: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    }
}

fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Opens and funds `customers` with their banks' operator keys, a window at a time per
/// operator (the mempool's per-signer bound), waiting for each window to commit.
fn open_accounts(
    net: &Localnet,
    customers: &[&Customer],
    valid_until: u64,
    timeout: Duration,
) -> Result<()> {
    let mut operators = Vec::new();
    let mut operator_ids = Vec::new();
    for bank in &net.manifest.banks {
        let (key, id) = load_signing_key(&resolve(&net.dir, &bank.operator_key_file))?;
        let nonce = net
            .first()
            .signer(&id)
            .with_context(|| format!("the operator of {}", bank.id))?
            .pending_nonce;
        operators.push((key, nonce));
        operator_ids.push(id);
    }
    let lists = plan::openings(
        &net.manifest.chain_id,
        customers,
        &operators,
        DEPOSIT,
        valid_until,
    );
    let total: usize = lists.iter().flatten().map(Vec::len).sum();
    let bar = progress(total as u64, "opening and funding accounts");
    // Every opening committed before any deposit is sent.
    let window = OPENING_WINDOW
        .min(usize::try_from(net.max_nonce_lookahead).unwrap_or(usize::MAX))
        .max(1);
    let mut done = 0;
    let mut next_nonce: Vec<u64> = operators.iter().map(|(_, nonce)| *nonce).collect();
    for phase in 0..2 {
        let phase_lists: Vec<&plan::Signed> = lists.iter().map(|both| &both[phase]).collect();
        let mut cursors = vec![0usize; phase_lists.len()];
        loop {
            let mut waits = Vec::new();
            for (bank, list) in phase_lists.iter().enumerate() {
                let start = cursors[bank];
                if start >= list.len() {
                    continue;
                }
                let end = (start + window).min(list.len());
                // One node per operator: its nonces arrive in order.
                let node = &net.validators[bank % net.validators.len()];
                let results = run::post_batch(
                    node,
                    list[start..end].iter().map(|(_, bytes)| bytes.as_slice()),
                    timeout,
                    None,
                )?;
                for result in results {
                    if let Err(code) = result {
                        bail!(
                            "{} refused an account opening or deposit by the operator of {}: {code}",
                            node.base_url(),
                            net.manifest.banks[bank].id
                        );
                    }
                }
                cursors[bank] = end;
                next_nonce[bank] += (end - start) as u64;
                done += end - start;
                waits.push(bank);
            }
            if waits.is_empty() {
                break;
            }
            let deadline = Instant::now() + timeout;
            for bank in waits {
                // Asked of the node the operator's next window goes to: a node a block behind
                // the others would refuse that window's last nonces as too far ahead of the
                // one it knows (seen once, waiting on the first validator instead).
                let node = &net.validators[bank % net.validators.len()];
                while node.signer(&operator_ids[bank])?.nonce < next_nonce[bank] {
                    if Instant::now() > deadline {
                        bail!(
                            "the account openings of {} did not commit within {} s",
                            net.manifest.banks[bank].id,
                            timeout.as_secs()
                        );
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            }
            bar.set_position(done as u64);
        }
        // Every validator holds the openings before a deposit reaches it, and the deposits
        // before the check below.
        net.wait_all_caught_up(timeout)?;
    }
    bar.finish_and_clear();
    // Each bank's last customer is open and funded (its deposit committed last).
    if customers.is_empty() {
        return Ok(());
    }
    let mut last_of_bank: BTreeMap<usize, AccountId> = BTreeMap::new();
    for customer in customers {
        last_of_bank.insert(customer.bank, customer.id);
    }
    for id in last_of_bank.values() {
        let account = net
            .first()
            .account(id)
            .with_context(|| format!("load account {id} was not opened"))?;
        if account.balance.trim_start_matches(['0', '.']).is_empty() {
            bail!("load account {id} was opened but not funded");
        }
    }
    Ok(())
}

/// The measurements.
#[derive(Debug, Serialize)]
struct Report {
    manifest: String,
    validators: usize,
    /// Accounts that signed the transfers.
    accounts: usize,
    seed: u64,
    rate: String,
    batch: usize,
    /// Batch requests in flight at once per validator.
    submitters_per_validator: usize,
    duration_s: Option<u64>,
    /// At `--rate max` with a duration: when the last planned transfer was answered, if that
    /// was before the duration ended (the load stopped early; `--txs` plans more).
    plan_ran_out_s: Option<f64>,
    /// Opening and funding the accounts.
    setup_seconds: f64,
    signing_seconds: f64,
    transfers_planned: usize,
    /// Transfers sent in answered batches.
    sent: usize,
    accepted: usize,
    refused: Codes,
    /// Batches (429, 503) and single transfers (`mempool_full`, …) sent again, by code.
    retried: Codes,
    failures: Vec<String>,
    /// First to last batch answer.
    submit_seconds: f64,
    offered_per_second: f64,
    accepted_per_second: f64,
    committed: usize,
    queued: usize,
    rejected: usize,
    rejected_by_code: Codes,
    not_seen: usize,
    /// Every outcome over the time from the first submission to the last outcome.
    included_per_second: f64,
    steady_state: SteadyState,
    latency_ms: Latency,
    blocks: usize,
    transactions_per_block: f64,
    nodes: Vec<NodeUsage>,
    /// This process over the same time (submitting and following the outcomes): on a
    /// machine shared with the nodes, the CPU they did not get.
    load_generator: Option<NodeUsage>,
    /// The machine's speed before and after the load ([`MachineSpeed`]): compare two runs
    /// beside it.
    machine: MachineSpeed,
    per_second: Vec<Second>,
    latency_histogram: Vec<Bucket>,
}

/// Runs the load and prints the report.
pub fn load(out: Output, args: &LoadArgs) -> Result<Exit> {
    if args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--batch must be between 1 and {MAX_BATCH}");
    }
    if args.submitters == 0 || args.submitters > MAX_SUBMITTERS {
        bail!("--submitters must be between 1 and {MAX_SUBMITTERS}");
    }
    if args.txs == Some(0) || args.duration == Some(0) {
        bail!("--txs and --duration must be at least 1");
    }
    let accounts = args.accounts.unwrap_or(if args.sign_only.is_some() {
        0
    } else {
        DEFAULT_ACCOUNTS
    });
    if args.sign_only.is_some() && accounts > 0 {
        bail!(
            "--sign-only signs for the localnet's sample customers (it submits nothing, so it \
             opens no accounts): leave out --accounts or pass --accounts 0"
        );
    }
    if accounts == 1 {
        bail!("--accounts must be 0 (the sample customers) or at least 2");
    }
    let net = Localnet::read(&args.manifest)?;
    let timeout = Duration::from_secs(args.timeout);
    let height = net.first().status()?.height;
    // Valid for half the genesis's validity horizon: within it at every node, also one a
    // little behind the others.
    let valid_until = height.saturating_add(net.max_validity_blocks / 2);
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });

    let setup = Instant::now();
    let customers = if accounts == 0 {
        net.sample_customers()?
    } else {
        let mut customers = plan::derive_customers(seed, accounts, net.manifest.banks.len());
        // A seed given again names accounts an earlier run opened: those keep their
        // nonces and are not opened again.
        let mut missing: Vec<&Customer> = customers.iter().collect();
        if args.seed.is_some() {
            let mut nonces = Vec::with_capacity(customers.len());
            for customer in &customers {
                nonces.push(match net.first().account(&customer.id) {
                    Ok(account) => Some(account.nonce),
                    Err(error) if error.status() == Some(404) => None,
                    Err(error) => return Err(error.into()),
                });
            }
            for (customer, nonce) in customers.iter_mut().zip(&nonces) {
                customer.nonce = nonce.unwrap_or(0);
            }
            missing = customers
                .iter()
                .zip(&nonces)
                .filter(|(_, nonce)| nonce.is_none())
                .map(|(customer, _)| customer)
                .collect();
        }
        open_accounts(&net, &missing, valid_until, timeout)?;
        customers
    };
    let setup_seconds = setup.elapsed().as_secs_f64();

    let count = match (args.txs, args.duration, args.rate) {
        (Some(n), _, _) => n,
        (None, Some(seconds), Rate::PerSecond(rate)) => seconds.saturating_mul(rate) as usize,
        (None, Some(seconds), Rate::Max) => seconds
            .saturating_mul(MAX_RATE_PRESIGNED)
            .min(MAX_PRESIGNED) as usize,
        (None, None, _) => DEFAULT_TRANSFERS,
    };
    let signing = Instant::now();
    let txs = plan::transfers(&net.manifest.chain_id, &customers, count, valid_until);
    let payer_of: HashMap<AccountId, usize> = customers
        .iter()
        .enumerate()
        .map(|(position, customer)| (customer.id, position))
        .collect();
    let payers: Vec<usize> = txs.iter().map(|tx| payer_of[&tx.signer]).collect();
    let signed = plan::sign_all(txs, &customers);
    let signing_seconds = signing.elapsed().as_secs_f64();
    if let Some(file) = &args.sign_only {
        let text: String = signed
            .iter()
            .map(|(hash, bytes)| format!("{hash} {}\n", to_hex(bytes)))
            .collect();
        std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
        return Ok(Exit::Success);
    }

    let index: Arc<HashMap<_, _>> = Arc::new(
        signed
            .iter()
            .enumerate()
            .map(|(i, (hash, _))| (*hash, i))
            .collect(),
    );
    let plan = Arc::new(run::Plan {
        encoded: signed.into_iter().map(|(_, bytes)| bytes).collect(),
        payers,
        batch: args.batch,
        submitters_per_validator: args.submitters,
        rate: args.rate,
        duration: args.duration.map(Duration::from_secs),
        patience: timeout,
    });
    let submission = Arc::new(run::Submission {
        submitted_at_us: (0..count).map(|_| AtomicU64::new(0)).collect(),
        ..run::Submission::default()
    });
    // Timed before this process's CPU is first read, so that its own CPU over the load
    // leaves the probe out; each time once the nodes are quiet.
    let probe = Probe::new();
    let named: Vec<(String, u32)> = (net.manifest.nodes.iter())
        .filter_map(|n| Some((n.name.clone(), report::node_pid(&net.dir, &n.name)?)))
        .collect();
    let pids: Vec<u32> = named.iter().map(|(_, pid)| *pid).collect();
    let quiet = || {
        report::wait_quiet(
            &pids,
            report::QUIET_SHARE_OF_A_CORE,
            report::QUIET_WINDOW,
            report::QUIET_DEADLINE,
        )
    };
    let mut machine = MachineSpeed {
        before_quiet_after_s: quiet(),
        before_us_per_signature: probe.as_ref().and_then(Probe::us_per_signature),
        arithmetic: interpool_contracts::zip215::arithmetic(),
        ..MachineSpeed::default()
    };
    let nodes: Vec<(String, u32, f64)> = named
        .into_iter()
        .filter_map(|(name, pid)| Some((name, pid, report::cpu_seconds(pid)?)))
        .collect();
    let this_process = std::process::id();
    let generator_before = report::cpu_seconds(this_process);

    // Follow outcomes from before the first submission.
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, outcomes) = mpsc::channel();
    let stream = net.first().events(None, None)?;
    let started = Instant::now();
    {
        let (node, index, stop) = (net.first().clone(), index.clone(), stop.clone());
        thread::spawn(move || run::follow(node, Some(stream), index, started, stop, sender));
    }
    let submitters = run::submit(plan.clone(), &net.validators, started, submission.clone());

    let bar = progress(count as u64, "included");
    let mut seen: Vec<Option<run::Seen>> = (0..count).map(|_| None).collect();
    let mut seen_count = 0usize;
    let mut finished_at: Option<Instant> = None;
    loop {
        match outcomes.recv_timeout(Duration::from_millis(200)) {
            Ok(first) => {
                for outcome in std::iter::once(first).chain(outcomes.try_iter()).flatten() {
                    let slot = &mut seen[outcome.index];
                    if slot.is_none() {
                        *slot = Some(outcome);
                        seen_count += 1;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let accepted = submission.accepted.load(Ordering::Relaxed);
        bar.set_position(seen_count as u64);
        bar.set_message(format!(
            "included · {accepted} acknowledged · {:.0}/s",
            seen_count as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
        if submitters.iter().all(thread::JoinHandle::is_finished) {
            if seen_count >= accepted {
                break;
            }
            if finished_at.get_or_insert_with(Instant::now).elapsed() > timeout {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(outcomes);
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let usage: Vec<NodeUsage> = nodes
        .into_iter()
        .filter_map(|(name, pid, before)| {
            let cpu = report::cpu_seconds(pid)? - before;
            Some(NodeUsage {
                name,
                pid,
                cpu_seconds: cpu,
                cpu_percent: 100.0 * cpu / wall.max(1e-9),
                peak_rss_mib: report::status_mib(pid, "VmHWM:").unwrap_or(0.0),
                rss_mib: report::status_mib(pid, "VmRSS:").unwrap_or(0.0),
            })
        })
        .collect();
    let load_generator = generator_before.and_then(|before| {
        let cpu = report::cpu_seconds(this_process)? - before;
        Some(NodeUsage {
            name: "wallet".to_string(),
            pid: this_process,
            cpu_seconds: cpu,
            cpu_percent: 100.0 * cpu / wall.max(1e-9),
            peak_rss_mib: report::status_mib(this_process, "VmHWM:").unwrap_or(0.0),
            rss_mib: report::status_mib(this_process, "VmRSS:").unwrap_or(0.0),
        })
    });

    machine.after_quiet_after_s = quiet();
    machine.after_us_per_signature = probe.as_ref().and_then(Probe::us_per_signature);

    let report = measure(
        args,
        &net,
        accounts.max(customers.len()),
        seed,
        (setup_seconds, signing_seconds),
        &submission,
        &seen,
        (usage, load_generator),
        machine,
    );
    if let Some(file) = &args.out {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(file, text + "\n")
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    print(&out, &report)?;
    Ok(
        if report.not_seen == 0
            && report.refused.is_empty()
            && report.rejected == 0
            && report.failures.is_empty()
        {
            Exit::Success
        } else {
            Exit::Failure
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &LoadArgs,
    net: &Localnet,
    accounts: usize,
    seed: u64,
    (setup_seconds, signing_seconds): (f64, f64),
    submission: &run::Submission,
    seen: &[Option<run::Seen>],
    (nodes, load_generator): (Vec<NodeUsage>, Option<NodeUsage>),
    machine: MachineSpeed,
) -> Report {
    let mut latencies = Vec::new();
    let mut accepted_us = Vec::new();
    let mut included_us = Vec::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rejected_by_code = Codes::new();
    let mut heights = HashSet::new();
    let mut not_seen = 0;
    for (submitted, outcome) in submission.submitted_at_us.iter().zip(seen) {
        let submitted = submitted.load(Ordering::Relaxed);
        if submitted > 0 {
            accepted_us.push(submitted);
        }
        match outcome {
            Some(outcome) => {
                *kinds.entry(outcome.kind).or_default() += 1;
                if let Some(code) = outcome.code {
                    *rejected_by_code.entry(code.to_string()).or_default() += 1;
                }
                heights.insert(outcome.height);
                included_us.push(outcome.at_us);
                if submitted > 0 {
                    latencies.push(outcome.at_us.saturating_sub(submitted) / 1_000);
                }
            }
            None if submitted > 0 => not_seen += 1,
            None => {}
        }
    }
    latencies.sort_unstable();
    included_us.sort_unstable();
    let sent = submission.sent.load(Ordering::Relaxed);
    let accepted = submission.accepted.load(Ordering::Relaxed);
    let first_submit = accepted_us.iter().min().copied().unwrap_or(0);
    let submit_seconds = (submission
        .ended_us
        .load(Ordering::Relaxed)
        .saturating_sub(first_submit)) as f64
        / 1e6;
    let last_outcome = included_us.last().copied().unwrap_or(0);
    Report {
        manifest: args.manifest.display().to_string(),
        validators: net.validators.len(),
        accounts,
        seed,
        rate: args.rate.to_string(),
        batch: args.batch,
        submitters_per_validator: args.submitters,
        duration_s: args.duration,
        plan_ran_out_s: report::ran_out(
            args.rate,
            args.duration,
            (submission.submitted_at_us.len(), sent),
            submission.ended_us.load(Ordering::Relaxed),
        ),
        setup_seconds,
        signing_seconds,
        transfers_planned: submission.submitted_at_us.len(),
        sent,
        accepted,
        refused: lock_clone(&submission.refused),
        retried: lock_clone(&submission.retried),
        failures: submission
            .failures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default(),
        submit_seconds,
        offered_per_second: sent as f64 / submit_seconds.max(1e-9),
        accepted_per_second: accepted as f64 / submit_seconds.max(1e-9),
        committed: kinds.get("committed").copied().unwrap_or(0),
        queued: kinds.get("queued").copied().unwrap_or(0),
        rejected: kinds.get("rejected").copied().unwrap_or(0),
        rejected_by_code,
        not_seen,
        included_per_second: included_us.len() as f64
            / (last_outcome.saturating_sub(first_submit) as f64 / 1e6).max(1e-9),
        steady_state: SteadyState::of(&included_us),
        latency_ms: Latency::of(&latencies),
        blocks: heights.len(),
        transactions_per_block: included_us.len() as f64 / heights.len().max(1) as f64,
        nodes,
        load_generator,
        machine,
        per_second: report::per_second(&accepted_us, &included_us),
        latency_histogram: report::histogram(&latencies),
    }
}

fn lock_clone(codes: &std::sync::Mutex<Codes>) -> Codes {
    codes.lock().map(|c| c.clone()).unwrap_or_default()
}

fn print(out: &Output, report: &Report) -> Result<()> {
    if out.json {
        return out.json(report);
    }
    let codes = |codes: &Codes| {
        if codes.is_empty() {
            "none".to_string()
        } else {
            codes
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut rows = vec![
        (
            "load",
            format!(
                "{} transfers planned between {} accounts, to {} validators, rate {}, batches of {}, \
                 {} in flight per validator",
                report.transfers_planned,
                report.accounts,
                report.validators,
                report.rate,
                report.batch,
                report.submitters_per_validator
            ),
        ),
        (
            "set-up",
            format!(
                "{:.1} s opening accounts, {:.1} s signing",
                report.setup_seconds, report.signing_seconds
            ),
        ),
        (
            "submitted",
            format!(
                "{} sent in {:.1} s ({:.0}/s offered), {} acknowledged ({:.0}/s); refused: {}; \
                 sent again: {}",
                report.sent,
                report.submit_seconds,
                report.offered_per_second,
                report.accepted,
                report.accepted_per_second,
                codes(&report.refused),
                codes(&report.retried)
            ),
        ),
        (
            "outcomes",
            format!(
                "{} committed, {} queued, {} rejected ({}), {} not seen",
                report.committed,
                report.queued,
                report.rejected,
                codes(&report.rejected_by_code),
                report.not_seen
            ),
        ),
        (
            "throughput",
            format!(
                "{:.0}/s steady state ({:.1} s to {:.1} s), {:.0}/s first submit to last outcome",
                report.steady_state.committed_per_second,
                report.steady_state.from_s,
                report.steady_state.to_s,
                report.included_per_second
            ),
        ),
        (
            "latency",
            format!(
                "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (submit to commit event)",
                report.latency_ms.p50,
                report.latency_ms.p90,
                report.latency_ms.p99,
                report.latency_ms.max
            ),
        ),
        (
            "blocks",
            format!(
                "{} ({:.0} transfers per block)",
                report.blocks, report.transactions_per_block
            ),
        ),
    ];
    if let (Some(at), Some(asked)) = (report.plan_ran_out_s, report.duration_s) {
        rows.push((
            "ran out",
            format!(
                "all {} planned transfers were sent {at:.1} s into the {asked} s asked: the \
                 load stopped early (--txs plans more)",
                report.transfers_planned
            ),
        ));
    }
    for (label, node) in (report.nodes.iter().map(|n| ("node", n)))
        .chain(report.load_generator.iter().map(|g| ("generator", g)))
    {
        rows.push((
            label,
            format!(
                "{:<12} {:6.1} s CPU ({:3.0} % of a core), peak RSS {:.0} MiB",
                node.name, node.cpu_seconds, node.cpu_percent, node.peak_rss_mib
            ),
        ));
    }
    let probe = |us: Option<f64>| us.map_or("unmeasured".to_string(), |us| format!("{us:.1}"));
    let machine = &report.machine;
    let busy = [
        ("before", machine.before_quiet_after_s),
        ("after", machine.after_quiet_after_s),
    ]
    .iter()
    .filter(|(_, quiet)| quiet.is_none())
    .map(|(when, _)| format!("; the nodes were still busy at the probe {when} the load"))
    .collect::<String>();
    rows.push((
        "machine",
        format!(
            "{} µs per signature before the load, {} after (ZIP-215 batches of {}, one \
             thread, {} arithmetic, the nodes quiet: compare runs beside it){busy}",
            probe(machine.before_us_per_signature),
            probe(machine.after_us_per_signature),
            report::PROBE_BATCH,
            machine.arithmetic
        ),
    ));
    for failure in &report.failures {
        rows.push(("failure", failure.clone()));
    }
    line(&fields(&rows))
}
