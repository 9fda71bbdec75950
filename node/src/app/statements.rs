//! Statements: at every cycle's close, each bank's statement of its pool and of its
//! customers' accounts (`contracts::statement`), made from the stored blocks of the cycle by
//! a thread of its own and written to the store (`GET /v1/banks/{id}/statements/{cycle}`).
//!
//! The core hands the writer the ledgers it needs, in height order: the ledger it started
//! from ([`StatementJob::Opening`], at the genesis or a checkpoint) and each ledger that
//! closed a cycle ([`StatementJob::Closed`]), which is also the next cycle's opening ledger.
//! Holding them costs the core only the copies of what later blocks change (persistent
//! maps, as for checkpoints). Every statement is checked before it is written: opening
//! balance plus entries must be what the closing ledger holds, for every account and pool.
//!
//! A cycle whose blocks this node does not hold (it joined by state sync after the cycle
//! began, or pruned them) gets no statement here: it is recorded as done, and the API says
//! the statement is not on this node. A checkpoint is written only after the statements of
//! every cycle it closed ([`StatementProgress::wait_for`]), so a restart from it never needs
//! a cycle's opening ledger it no longer has; pruning never removes the open cycle's blocks.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use interpool_contracts::statement::{BankStatement, CycleBooks, StatementError};
use interpool_contracts::{Block, Hash, Ledger, Transaction};

use crate::storage::{StorageError, Store};

/// Largest block read back (the consensus payload limit).
const MAX_BLOCK_BYTES: u64 = interpool_consensus::MAX_PAYLOAD_BYTES as u64;

/// A ledger for the writer.
pub enum StatementJob {
    /// The ledger the core started from: opening balances for the cycle it is in.
    Opening(Arc<Ledger>),
    /// The ledger a cycle's last block left.
    Closed(Arc<Ledger>),
}

/// How far the writer got: the last cycle it handled (written, or found impossible).
#[derive(Debug, Default)]
pub struct StatementProgress {
    handled: Mutex<u64>,
    changed: Condvar,
}

impl StatementProgress {
    /// Progress starting at `cycle`.
    pub fn at(cycle: u64) -> StatementProgress {
        StatementProgress {
            handled: Mutex::new(cycle),
            changed: Condvar::new(),
        }
    }

    /// The last cycle handled.
    pub fn handled(&self) -> u64 {
        *self
            .handled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, cycle: u64) {
        let mut handled = self
            .handled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *handled = (*handled).max(cycle);
        self.changed.notify_all();
    }

    /// Waits until cycle `cycle` is handled, at most `timeout`; true if it is.
    pub fn wait_for(&self, cycle: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut handled = self
            .handled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *handled < cycle {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            handled = match self.changed.wait_timeout(handled, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

/// Why a cycle's statements could not be made.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error("block {0} is not on this node")]
    MissingBlock(u64),
    #[error("stored block {height} does not decode: {message}")]
    BadBlock { height: u64, message: String },
    #[error("no opening ledger for cycle {0} (the node started after it began)")]
    NoOpening(u64),
}

/// The statement writer: a thread that makes and writes each closed cycle's statements.
pub struct StatementWriter {
    jobs: Option<Sender<StatementJob>>,
    thread: Option<JoinHandle<()>>,
    progress: Arc<StatementProgress>,
}

impl StatementWriter {
    /// Starts the writer over `store`, then gives it `backlog` (the jobs of the start-up
    /// replay, in order).
    pub fn spawn(store: Arc<Store>, backlog: Vec<StatementJob>) -> std::io::Result<Self> {
        // The cycles before the one the node starts in cannot be made without their
        // opening ledgers, if they were not written before (a node that joined by state
        // sync, or a database from before statements): they count as handled, and the API
        // says this node has no statement of them.
        let through = store.statements_through().unwrap_or(0);
        let started_in = match backlog.first() {
            // The first cycle it can make: the one its start ledger is in, or the one that
            // ledger closed (opening and closing ledger at once).
            Some(StatementJob::Opening(ledger)) => match ledger.latest_settlement_report() {
                Some(report) if report.height == ledger.height() => report.cycle,
                _ => ledger.current_cycle(),
            }
            .saturating_sub(1),
            _ => 0,
        };
        let progress = Arc::new(StatementProgress::at(through.max(started_in)));
        let (jobs, queue) = mpsc::channel::<StatementJob>();
        let thread_progress = progress.clone();
        let thread = std::thread::Builder::new()
            .name("statements".into())
            .spawn(move || {
                // Should this thread die, checkpoints must not wait for it forever.
                let _guard = GiveUpOnPanic(thread_progress.clone());
                let mut opening: Option<Arc<Ledger>> = None;
                for job in queue {
                    let closing = match job {
                        StatementJob::Opening(ledger) => {
                            opening = Some(ledger);
                            continue;
                        }
                        StatementJob::Closed(ledger) => ledger,
                    };
                    if let Some(report) = closing.latest_settlement_report() {
                        if report.cycle > thread_progress.handled() {
                            write_cycle(&store, report.cycle, opening.as_deref(), &closing);
                            thread_progress.set(report.cycle);
                        }
                    }
                    opening = Some(closing);
                }
            })?;
        for job in backlog {
            let _ = jobs.send(job);
        }
        Ok(StatementWriter {
            jobs: Some(jobs),
            thread: Some(thread),
            progress,
        })
    }

    /// The writer's progress (for checkpoints and the API).
    pub fn progress(&self) -> Arc<StatementProgress> {
        self.progress.clone()
    }

    /// Hands the writer a job.
    pub fn send(&self, job: StatementJob) {
        if let Some(jobs) = &self.jobs {
            if jobs.send(job).is_err() {
                tracing::error!("the statement writer has stopped");
            }
        }
    }

    /// Waits for the jobs given so far to be done (tests, shutdown).
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StatementWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Marks every cycle handled if the writer thread panics, so that checkpoints go on.
struct GiveUpOnPanic(Arc<StatementProgress>);

impl Drop for GiveUpOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the statement writer stopped; no more statements on this node");
            self.0.set(u64::MAX);
        }
    }
}

/// Attempts at a cycle whose blocks cannot be read for now (a storage error).
const ATTEMPTS: u32 = 5;

/// Makes and writes the statements of `cycle`, closed by `closing`. A cycle this node cannot
/// make (no opening ledger, blocks not here) is recorded as done with no statements; a
/// storage error is retried a few times; a statement that does not balance is a bug of
/// ours and is not written (both logged as errors).
fn write_cycle(store: &Store, cycle: u64, opening: Option<&Ledger>, closing: &Ledger) {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = opening
            .ok_or(WriteError::NoOpening(cycle))
            .and_then(|open| make(store, cycle, open, closing));
        let written = match result {
            Ok(statements) => {
                let accounts: usize = statements.iter().map(|s| s.accounts.len()).sum();
                tracing::info!(
                    cycle,
                    banks = statements.len(),
                    accounts,
                    millis = started.elapsed().as_millis() as u64,
                    "wrote statements"
                );
                store.write_statements(cycle, &statements)
            }
            // Not on this node: blocks pruned or before its state sync, a released transfer
            // queued before it joined.
            Err(
                error @ (WriteError::MissingBlock(_)
                | WriteError::NoOpening(_)
                | WriteError::Statement(StatementError::MissingTransfer(_))),
            ) => {
                tracing::info!(cycle, %error, "no statements for this cycle on this node");
                store.write_statements(cycle, &[])
            }
            Err(error @ WriteError::Statement(_)) => {
                tracing::error!(cycle, %error, "this cycle's statements do not balance; not written");
                return;
            }
            Err(error @ WriteError::Storage(_)) if attempt < ATTEMPTS => {
                tracing::warn!(cycle, %error, attempt, "cannot make this cycle's statements; retrying");
                std::thread::sleep(Duration::from_secs(1 << attempt));
                continue;
            }
            Err(error) => {
                tracing::error!(cycle, %error, "cannot make this cycle's statements; giving up");
                return;
            }
        };
        match written {
            Ok(()) => return,
            Err(error) if attempt < ATTEMPTS => {
                tracing::warn!(cycle, %error, attempt, "cannot write statements; retrying");
                std::thread::sleep(Duration::from_secs(1 << attempt));
            }
            Err(error) => {
                tracing::error!(cycle, %error, "cannot write statements; giving up");
                return;
            }
        }
    }
}

/// The transaction of a transfer released from a queue: in `block` itself, or in the block
/// the store's index says it was queued in (`None` if that is not on this node).
pub(crate) fn queued_transaction(
    store: &Store,
    block: &Block,
    hash: &Hash,
) -> Result<Option<Transaction>, StorageError> {
    if let Some(tx) = block.transactions.iter().find(|t| t.hash() == *hash) {
        return Ok(Some(tx.tx.clone()));
    }
    let Some((at, index)) = store.tx_location(hash)? else {
        return Ok(None);
    };
    let Some(bytes) = store.block(at)? else {
        return Ok(None);
    };
    let queued_in = Block::decode(&bytes, MAX_BLOCK_BYTES).map_err(|e| StorageError::Corrupt {
        cf: "blocks",
        key: at.to_string(),
        message: e.to_string(),
    })?;
    Ok(usize::try_from(index)
        .ok()
        .and_then(|i| queued_in.transactions.get(i))
        .filter(|t| t.hash() == *hash)
        .map(|t| t.tx.clone()))
}

fn read_block(store: &Store, height: u64) -> Result<Block, WriteError> {
    let bytes = store
        .block(height)?
        .ok_or(WriteError::MissingBlock(height))?;
    Block::decode(&bytes, MAX_BLOCK_BYTES).map_err(|e| WriteError::BadBlock {
        height,
        message: e.to_string(),
    })
}

/// The statements of `cycle`, closed by `closing`, opening from `opening`.
fn make(
    store: &Store,
    cycle: u64,
    opening: &Ledger,
    closing: &Ledger,
) -> Result<Vec<BankStatement>, WriteError> {
    let Some(report) = closing.settlement_report(cycle) else {
        return Err(WriteError::NoOpening(cycle));
    };
    if opening.height().saturating_add(1) < report.start_height || opening.height() > report.height
    {
        return Err(WriteError::NoOpening(cycle));
    }
    let earliest = store.earliest_height()?;
    if earliest > report.start_height {
        return Err(WriteError::MissingBlock(report.start_height));
    }
    let from_ms = match report.start_height.checked_sub(1) {
        Some(before) if before >= earliest && before > 0 => {
            Some(read_block(store, before)?.header.timestamp_ms)
        }
        _ => None,
    };
    let mut books = CycleBooks::new(cycle, report.start_height, from_ms);
    for height in report.start_height..=report.height {
        let block = read_block(store, height)?;
        let outcome = store
            .outcome(height)?
            .ok_or(WriteError::MissingBlock(height))?;
        let mut lookup_error = None;
        let released = |hash: &Hash| match queued_transaction(store, &block, hash) {
            Ok(tx) => tx,
            Err(error) => {
                lookup_error = Some(error);
                None
            }
        };
        let added = books.add_block(&block, &outcome, released);
        if let Some(error) = lookup_error {
            return Err(WriteError::Storage(error));
        }
        added?;
    }
    Ok(books.finish(opening, closing)?)
}
