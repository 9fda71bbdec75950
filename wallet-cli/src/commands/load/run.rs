//! Submitting the load and following it to its outcomes.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use interpool_contracts::batch::{encode_batch, BATCH_CONTENT_TYPE};
use interpool_contracts::outcome::Outcome;
use interpool_contracts::views::EventView;
use interpool_contracts::Hash;
use serde::Deserialize;

use crate::client::{ClientError, Node};
use crate::sse::SseParser;

/// Pause before sending a batch again that a node refused at one of its limits; doubled
/// while the node keeps refusing, up to [`MAX_RETRY_PAUSE`].
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The longest pause between two tries of a refused batch: well under a block's time at
/// volume, so a node's mempool is topped up again soon after a commit makes room, while a
/// full node is not asked ten times a second by every submitter (each try costs it a
/// batch's framing and TLS).
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(800);

/// The pause before try `tries + 1` of a refused batch.
fn retry_pause(tries: u32) -> Duration {
    RETRY_PAUSE
        .saturating_mul(1u32 << tries.min(3))
        .min(MAX_RETRY_PAUSE)
}

/// The offered rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// As fast as the validators accept: each submitter sends its next batch once the
    /// previous one is answered.
    Max,
    /// Transfers per second, paced from the start.
    PerSecond(u64),
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        if text == "max" {
            return Ok(Rate::Max);
        }
        match text.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!(
                "'{text}' is not a rate: transfers per second (at least 1) or 'max'"
            )),
            Ok(rate) => Ok(Rate::PerSecond(rate)),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(rate) => write!(f, "{rate}"),
        }
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    hash: Option<Hash>,
    error: Option<ErrorPart>,
}

#[derive(Deserialize)]
struct ErrorPart {
    code: String,
}

/// How the submission went, shared by the submitters.
#[derive(Default)]
pub struct Submission {
    /// Transfers sent (in batches that were answered).
    pub sent: AtomicUsize,
    /// Of those, acknowledged.
    pub accepted: AtomicUsize,
    /// Refusals by code.
    pub refused: Mutex<BTreeMap<String, usize>>,
    /// Batches sent again after a refusal at a node's limit, by code.
    pub retried: Mutex<BTreeMap<String, usize>>,
    /// Errors that stopped a submitter.
    pub failures: Mutex<Vec<String>>,
    /// When each acknowledged transfer was first sent, in microseconds from the start (0:
    /// it was not acknowledged).
    pub submitted_at_us: Vec<AtomicU64>,
    /// When the last batch was answered, microseconds from the start.
    pub ended_us: AtomicU64,
}

/// What the submitters are given.
pub struct Plan {
    /// The transfers' encodings, in order.
    pub encoded: Vec<Vec<u8>>,
    /// Each transfer's payer (its customer's position), in the same order.
    pub payers: Vec<usize>,
    /// Transfers per request.
    pub batch: usize,
    /// Submitters (batch requests in flight) per validator.
    pub submitters_per_validator: usize,
    /// The offered rate.
    pub rate: Rate,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    /// Give up a batch a node keeps refusing at its limits after this long.
    pub patience: Duration,
}

/// Sends `plan` to `validators` in batches from `plan.submitters_per_validator` submitters
/// per validator; returns
/// their handles. Each payer belongs to one submitter (its lane, [`lanes`]), which sends
/// that payer's transfers in the plan's order, a batch at a time, each batch again until it
/// is taken: a payer's transfer reaches a node only after all its earlier ones did. Were a
/// payer's transfers spread over several submitters (and nodes), a batch one node refused
/// for now would leave a gap in the payer's nonces while a later batch was taken
/// elsewhere, and every later transfer of that payer would wait, counted in the latency,
/// until the refused one got in. Once the duration is over a submitter sends no new batch,
/// so nothing is left behind a gap either.
pub fn submit(
    plan: Arc<Plan>,
    validators: &[Node],
    started: Instant,
    submission: Arc<Submission>,
) -> Vec<thread::JoinHandle<()>> {
    let submitters = validators
        .len()
        .saturating_mul(plan.submitters_per_validator);
    let lanes = lanes(&plan.payers, submitters);
    // Transfers handed out so far, to time each batch at a fixed rate.
    let handed_out = Arc::new(AtomicUsize::new(0));
    lanes
        .into_iter()
        .enumerate()
        .map(|(t, lane)| {
            let plan = plan.clone();
            let node = validators[t % validators.len()].clone();
            let submission = submission.clone();
            let handed_out = handed_out.clone();
            thread::spawn(move || {
                for batch in lane.chunks(plan.batch.max(1)) {
                    if plan.duration.is_some_and(|d| started.elapsed() >= d) {
                        break;
                    }
                    if let Rate::PerSecond(rate) = plan.rate {
                        // Due when the transfers handed out before it have had their time:
                        // the submitters take turns, a batch each `batch / rate` seconds in
                        // all, however many payers each one has. (Timed by its first
                        // transfer's place in the plan instead, every submitter's first,
                        // second, ... batch fell due at once, and p99 at 1,000/s rose from
                        // 71 to 105 ms; each submitter paced at its own share drifted into
                        // the same bursts.)
                        let before = handed_out.fetch_add(batch.len(), Ordering::Relaxed);
                        let due = Duration::from_secs_f64(before as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            thread::sleep(wait);
                        }
                    }
                    if let Err(error) = send_batch(&node, &plan, batch, started, &submission) {
                        lock(&submission.failures).push(error.to_string());
                        break;
                    }
                }
                submission
                    .ended_us
                    .fetch_max(micros(started.elapsed()), Ordering::Relaxed);
            })
        })
        .collect()
}

/// The plan's transfers (their positions) split over `submitters`: each payer's in one
/// lane, every lane in the plan's order, the payers dealt out in turn so that the lanes
/// are as long as one another (a submitter whose lane was longer would fall behind the
/// rate). They are dealt in the order of a mix of their positions, not the positions
/// themselves: customers are given banks in turn, so dealing them in order would give each
/// lane (and node) the payers of one bank, and a lane running ahead of the others would
/// push its bank past its net debit cap (101,305 of 346,500 transfers queued instead of
/// committed, measured).
fn lanes(payers: &[usize], submitters: usize) -> Vec<Vec<usize>> {
    let submitters = submitters.max(1);
    let mut distinct: Vec<usize> = payers.to_vec();
    // In the dealing order; a payer's copies end up side by side.
    distinct.sort_unstable_by_key(|&payer| (mix(payer), payer));
    distinct.dedup();
    let lane_of: HashMap<usize, usize> = distinct
        .iter()
        .enumerate()
        .map(|(rank, &payer)| (payer, rank % submitters))
        .collect();
    let mut lanes = vec![Vec::with_capacity(payers.len() / submitters + 1); submitters];
    for (index, payer) in payers.iter().enumerate() {
        lanes[lane_of[payer]].push(index);
    }
    lanes
}

/// SplitMix64's finalizer of `payer`.
fn mix(payer: usize) -> u64 {
    let mut z = (payer as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Sends `entries` (transaction encodings) as one binary batch; a refusal of the whole
/// batch at one of the node's limits (429, 503) is retried after a pause (counted by code
/// in `retried`), for at most `patience`. Each entry's hash, or the code it was refused
/// with.
pub fn post_batch<'a>(
    node: &Node,
    entries: impl IntoIterator<Item = &'a [u8]>,
    patience: Duration,
    retried: Option<&Mutex<BTreeMap<String, usize>>>,
) -> Result<Vec<Result<Hash, String>>, ClientError> {
    let body = encode_batch(entries);
    let first_try = Instant::now();
    let mut tries = 0;
    let answer: BatchAnswer = loop {
        match node.post_bytes("/v1/transactions/batch", BATCH_CONTENT_TYPE, body.clone()) {
            Err(error)
                if matches!(error.status(), Some(429 | 503))
                    && first_try.elapsed() + retry_pause(tries) < patience =>
            {
                if let Some(retried) = retried {
                    let code = error.code().unwrap_or("unknown").to_string();
                    *lock(retried).entry(code).or_default() += 1;
                }
                thread::sleep(retry_pause(tries));
                tries += 1;
            }
            answer => break answer?,
        }
    };
    Ok(answer
        .results
        .into_iter()
        .map(|result| match (result.hash, result.error) {
            (Some(hash), _) => Ok(hash),
            (None, error) => Err(error.map_or_else(|| "unknown".into(), |e| e.code)),
        })
        .collect())
}

/// Refusals that mean "come back shortly" for one transaction (the node is full for now,
/// or the payer's earlier transfers, sent before it, have not committed yet and it is
/// further ahead of them than the chain lets a nonce be): sent again, in order, after a
/// pause. Refusing them for good would leave a gap in the payer's nonces that holds back
/// every later transfer of that payer.
const RETRYABLE: [&str; 5] = [
    "mempool_full",
    "too_many_pending",
    "rate_limited",
    "busy",
    "nonce_too_far_ahead",
];

/// Sends the plan's transfers at `batch` (positions) as one batch and records the
/// answers; transfers refused for now ([`RETRYABLE`]) are sent again, in order, until
/// accepted or out of patience.
fn send_batch(
    node: &Node,
    plan: &Plan,
    batch: &[usize],
    started: Instant,
    submission: &Submission,
) -> Result<(), ClientError> {
    let sent_at = micros(started.elapsed());
    let first_try = Instant::now();
    let mut pending: Vec<usize> = batch.to_vec();
    submission.sent.fetch_add(pending.len(), Ordering::Relaxed);
    // Tries in a row that the node refused whole for now.
    let mut refused_tries = 0;
    while !pending.is_empty() {
        let results = post_batch(
            node,
            pending.iter().map(|&index| plan.encoded[index].as_slice()),
            plan.patience,
            Some(&submission.retried),
        )?;
        let mut again = Vec::new();
        let pause = retry_pause(refused_tries);
        let tried = pending.len();
        for (index, result) in pending.iter().copied().zip(results) {
            match result {
                Ok(_) => {
                    submission.submitted_at_us[index].store(sent_at, Ordering::Relaxed);
                    submission.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(code)
                    if RETRYABLE.contains(&code.as_str())
                        && first_try.elapsed() + pause < plan.patience =>
                {
                    *lock(&submission.retried).entry(code).or_default() += 1;
                    again.push(index);
                }
                Err(code) => *lock(&submission.refused).entry(code).or_default() += 1,
            }
        }
        if !again.is_empty() {
            thread::sleep(pause);
            // Longer pauses only while the node takes nothing of the batch.
            refused_tries = if again.len() == tried {
                refused_tries.saturating_add(1)
            } else {
                0
            };
        }
        pending = again;
    }
    Ok(())
}

/// The event stream's read buffer: a node sends a block's events together.
const STREAM_BUFFER: usize = 1 << 16;

/// One transfer's outcome, from the event stream.
pub struct Seen {
    /// Its position in the plan.
    pub index: usize,
    /// `committed`, `queued` or `rejected`.
    pub kind: &'static str,
    /// The rejection's code.
    pub code: Option<&'static str>,
    /// The block.
    pub height: u64,
    /// When the event arrived, microseconds from the start.
    pub at_us: u64,
}

/// Follows `node`'s event stream (`initial`, opened by the caller before anything was
/// submitted, then resumed after a dropped connection) and sends the outcome of every
/// transfer of `index` until `stop` is set or the receiver hangs up. Outcomes go to the
/// receiver together, whenever what has arrived so far is read (a wake-up of the receiving
/// thread per outcome was the load generator's largest cost at volume).
pub fn follow(
    node: Node,
    mut initial: Option<reqwest::blocking::Response>,
    index: Arc<HashMap<Hash, usize>>,
    started: Instant,
    stop: Arc<AtomicBool>,
    sender: mpsc::Sender<Vec<Seen>>,
) -> Result<(), ClientError> {
    let mut last_id: Option<String> = None;
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) {
        let opened = match initial.take() {
            Some(response) => Ok(response),
            None => node.events(None, last_id.as_deref()),
        };
        let response = match opened {
            Ok(response) => response,
            Err(error) => {
                failures += 1;
                if failures > 20 {
                    return Err(error);
                }
                thread::sleep(Duration::from_millis(250));
                continue;
            }
        };
        let mut parser = SseParser::new();
        let mut reader = BufReader::with_capacity(STREAM_BUFFER, response);
        let mut line = String::new();
        let mut arrived = Vec::new();
        loop {
            if reader.buffer().is_empty() && !arrived.is_empty() {
                // Everything read so far is handled: hand it over before waiting for more.
                if sender.send(std::mem::take(&mut arrived)).is_err() {
                    return Ok(());
                }
            }
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break, // resumed from the last event
                Ok(_) => {}
            }
            let Some(event) = parser.push_line(&line) else {
                continue;
            };
            if event.id.is_some() {
                last_id.clone_from(&event.id);
            }
            let Ok(EventView::Transaction { receipt, .. }) = serde_json::from_str(&event.data)
            else {
                continue;
            };
            let Some(&position) = index.get(&receipt.tx_hash) else {
                continue;
            };
            let (kind, code) = match &receipt.outcome {
                Outcome::Committed => ("committed", None),
                Outcome::Queued { .. } => ("queued", None),
                Outcome::Rejected { error } => ("rejected", Some(error.code())),
            };
            arrived.push(Seen {
                index: position,
                kind,
                code,
                height: receipt.height,
                at_us: micros(started.elapsed()),
            });
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        if !arrived.is_empty() && sender.send(arrived).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_payer_goes_through_one_lane_in_the_plans_order() {
        // Payers as the plan makes them (transfer i paid by customer i % 7), 4 lanes.
        let payers: Vec<usize> = (0..100).map(|i| i % 7).collect();
        let lanes = lanes(&payers, 4);
        assert_eq!(lanes.len(), 4);
        let mut all: Vec<usize> = lanes.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..100).collect::<Vec<_>>(),
            "every transfer exactly once"
        );
        for payer in 0..7 {
            let holding: Vec<&Vec<usize>> = lanes
                .iter()
                .filter(|lane| lane.iter().any(|&i| payers[i] == payer))
                .collect();
            assert_eq!(holding.len(), 1, "payer {payer} in one lane");
        }
        for lane in &lanes {
            assert!(lane.windows(2).all(|w| w[0] < w[1]), "in the plan's order");
        }
        assert_eq!(super::lanes(&[], 0), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn every_lane_gets_payers_of_every_bank() {
        // 10,000 customers given 4 banks in turn (bank = position % 4), 8 lanes.
        let payers: Vec<usize> = (0..10_000).collect();
        for lane in lanes(&payers, 8) {
            let mut per_bank = [0usize; 4];
            for &payer in &lane {
                per_bank[payer % 4] += 1;
            }
            let (least, most) = (per_bank.iter().min(), per_bank.iter().max());
            assert!(
                least.zip(most).is_some_and(|(l, m)| *l * 10 >= *m * 8),
                "{per_bank:?}"
            );
        }
    }

    #[test]
    fn the_lanes_are_as_long_as_one_another() {
        // 60,000 transfers paid by 10,000 customers in turn (6 each), 8 lanes: 7,500 each.
        let payers: Vec<usize> = (0..60_000).map(|i| i % 10_000).collect();
        let lengths: Vec<usize> = lanes(&payers, 8).iter().map(Vec::len).collect();
        assert_eq!(lengths, vec![7_500; 8]);
    }
}
