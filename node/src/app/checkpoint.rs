//! Checkpoints: the ledger state written to the store every
//! `[storage] checkpoint_interval_blocks`, so that a start replays at most that many blocks
//! instead of the whole history, state sync has a fixed state to serve, and pruning has a
//! state to keep blocks from (ADR 0011).
//!
//! A checkpoint is the state's entries ([`Ledger::state_entries`]), written by a thread of
//! its own from the ledger of the checkpoint's height (a persistent map: holding it costs the
//! core only the copies of what later blocks change), so the commit path never waits for
//! one. Loading checks the rebuilt state root against the checkpoint's and every invariant;
//! the first replayed block then checks its header's link to the checkpoint's block hash and
//! state root. A checkpoint that fails any of that is not used: the node replays from the
//! genesis instead, and says so.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use interpool_contracts::block::{Block, ChainTip};
use interpool_contracts::{Genesis, Ledger};

use super::replay::Replay;
use super::statements::StatementProgress;
use crate::metrics::Metrics;
use crate::storage::{ChainStore, CheckpointInfo, StorageError};

/// How long a checkpoint waits for the statements of the cycles it closed.
const STATEMENTS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// State entries read from the store at a time when loading a checkpoint.
const LOAD_PAGE: usize = 50_000;

/// How the last start rebuilt the ledger (`GET /v1/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartReport {
    /// The checkpoint height the ledger was restored from (0: the genesis).
    pub restored_from_height: u64,
    /// Blocks re-executed after it.
    pub replayed_blocks: u64,
    /// How long rebuilding took, in milliseconds.
    pub millis: u64,
}

/// Why a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading it failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Its entries are not a ledger.
    #[error(transparent)]
    Snapshot(#[from] interpool_contracts::ledger::SnapshotError),
    /// It is not the state it claims to be.
    #[error("checkpoint {height}: {message}")]
    Mismatch {
        /// Its height.
        height: u64,
        /// What differs.
        message: String,
    },
}

/// Every entry of the checkpoint at `height`, in tree-key order.
pub fn read_entries(
    store: &dyn ChainStore,
    height: u64,
) -> Result<Vec<interpool_contracts::ledger::StateEntry>, StorageError> {
    let mut entries = Vec::new();
    loop {
        let after = entries
            .last()
            .map(|e: &interpool_contracts::ledger::StateEntry| e.key.tree_key());
        let page = store.checkpoint_entries(height, after.as_ref(), LOAD_PAGE)?;
        let done = page.len() < LOAD_PAGE;
        entries.extend(page);
        if done {
            return Ok(entries);
        }
    }
}

/// Rebuilds the ledger of the checkpoint `info` from this node's own store: the state root
/// must be the checkpoint's and the stored block at its height must have its hash.
pub fn load(
    genesis: &Genesis,
    store: &dyn ChainStore,
    info: &CheckpointInfo,
) -> Result<Replay, CheckpointError> {
    let mismatch = |message: String| CheckpointError::Mismatch {
        height: info.height,
        message,
    };
    let entries = read_entries(store, info.height)?;
    if entries.len() as u64 != info.entries {
        return Err(mismatch(format!(
            "{} entries stored, {} written",
            entries.len(),
            info.entries
        )));
    }
    let ledger = Ledger::from_state_entries(genesis, info.height, entries)?;
    if ledger.state_root() != info.state_root {
        return Err(mismatch(format!(
            "the entries hash to {}, the checkpoint says {}",
            ledger.state_root(),
            info.state_root
        )));
    }
    match store.block(info.height)? {
        // Pruned below the checkpoint's own block: the next block's link checks it.
        None => {}
        Some(bytes) if Block::hash_of(&bytes) == info.block_hash => {}
        Some(_) => {
            return Err(mismatch(
                "the stored block at its height has another hash".into(),
            ))
        }
    }
    Ok(Replay::from_parts(ledger, info.tip(&genesis.chain_id)))
}

/// The lowest block the open cycle's statement needs: the one before the cycle (its time
/// opens the statement) and the block of every transfer the cycle releases from a queue
/// (read from there to book it). A transfer released in the cycle, or still queued, was
/// queued at most `queue_expiry_blocks` before the cycle's start.
fn statement_floor(ledger: &Ledger) -> u64 {
    ledger
        .current_cycle_start()
        .saturating_sub(ledger.params().queue_expiry_blocks.max(1))
        .max(1)
}

/// The writer's queue: at most one checkpoint waiting, and the newest offer takes its
/// place. A checkpoint offered while the previous one is still being written is written
/// next, whichever offers came between: the latest state (the halt height's among them,
/// which an upgraded node starts from) is never the one skipped for being busy.
#[derive(Default)]
struct Offered {
    slot: Mutex<Slot>,
    ready: Condvar,
}

#[derive(Default)]
struct Slot {
    waiting: Option<(ChainTip, Arc<Ledger>)>,
    /// No more offers: the writer writes what is waiting and stops.
    closed: bool,
}

impl Offered {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `tip`'s state in the slot; the height of the one it replaces, if any.
    fn offer(&self, tip: ChainTip, ledger: Arc<Ledger>) -> Option<u64> {
        let replaced = self.lock().waiting.replace((tip, ledger));
        self.ready.notify_one();
        replaced.map(|(tip, ledger)| {
            // Perhaps the last holder of that height's ledger: freeing it walks what the
            // blocks since copied, off the commit path.
            super::view::retire(ledger);
            tip.height
        })
    }

    /// The next checkpoint to write, waiting for one; `None` once closed and empty.
    fn next(&self) -> Option<(ChainTip, Arc<Ledger>)> {
        let mut slot = self.lock();
        loop {
            if let Some(job) = slot.waiting.take() {
                return Some(job);
            }
            if slot.closed {
                return None;
            }
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

/// The checkpoint writer: a thread that writes the checkpoints the core offers it.
pub struct Checkpointer {
    interval: u64,
    offered: Arc<Offered>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the writer for a checkpoint every `interval` blocks (at least 1).
    /// With `retain` (at least 1), after each checkpoint the blocks below the last `retain`
    /// heights are pruned ([`ChainStore::prune_below`]), never the checkpoint's own block or
    /// any after it, nor the block after the previous checkpoint (which certifies its
    /// state) or any after that.
    pub fn spawn(
        store: Arc<dyn ChainStore>,
        interval: u64,
        retain: Option<u64>,
        metrics: Arc<Metrics>,
        statements: Option<Arc<StatementProgress>>,
    ) -> std::io::Result<Checkpointer> {
        let offered = Arc::new(Offered::default());
        let queue = offered.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || {
                while let Some((tip, ledger)) = queue.next() {
                    write_one(
                        &*store,
                        &tip,
                        &ledger,
                        retain,
                        &metrics,
                        statements.as_deref(),
                    );
                }
            })?;
        Ok(Checkpointer {
            interval: interval.max(1),
            offered,
            thread: Some(thread),
        })
    }

    /// After a commit: hands the state after `tip` to the writer if `tip` is at a
    /// checkpoint height, or `always` (the halt height: the upgraded node starts from it).
    /// A checkpoint still waiting for the writer is replaced by this newer one.
    pub fn after_commit(&self, tip: &ChainTip, ledger: &Arc<Ledger>, always: bool) {
        if !tip.height.is_multiple_of(self.interval) && !always {
            return;
        }
        if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            tracing::error!(height = tip.height, "the checkpoint writer has stopped");
            return;
        }
        if let Some(replaced) = self.offered.offer(tip.clone(), ledger.clone()) {
            tracing::warn!(
                height = tip.height,
                replaced,
                "previous checkpoint still being written; this one replaces the one waiting"
            );
        }
    }

    /// Waits for the checkpoints offered so far to be written (tests, shutdown).
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.offered.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes the checkpoint of `tip`, then prunes what `retain` lets go.
fn write_one(
    store: &dyn ChainStore,
    tip: &ChainTip,
    ledger: &Ledger,
    retain: Option<u64>,
    metrics: &Metrics,
    statements: Option<&StatementProgress>,
) {
    // A restart from this checkpoint must not need the opening ledger of a cycle it
    // closed: wait for those statements, or skip this checkpoint (the next interval
    // brings another).
    let closed = ledger.current_cycle().saturating_sub(1);
    if let Some(progress) = statements {
        if !progress.wait_for(closed, STATEMENTS_WAIT) {
            tracing::error!(
                height = tip.height,
                cycle = closed,
                "the statements of the cycles before this checkpoint are not written; \
                 skipping the checkpoint"
            );
            return;
        }
    }
    let started = Instant::now();
    let info = match store.write_checkpoint(tip, &mut ledger.state_entries()) {
        Ok(info) => info,
        Err(error) => {
            tracing::error!(height = tip.height, %error, "cannot write checkpoint");
            return;
        }
    };
    metrics.checkpoint(&info);
    tracing::info!(
        height = info.height,
        entries = info.entries,
        bytes = info.bytes,
        millis = started.elapsed().as_millis() as u64,
        "wrote checkpoint"
    );
    let Some(retain) = retain.filter(|r| *r > 0) else {
        return;
    };
    // The block after the previous checkpoint stays too: its certified header is what
    // certifies that checkpoint's state, from which `audit` verifies the chain (a
    // checkpoint at the tip has no such block yet).
    let certifying = match store.previous_checkpoint() {
        Ok(previous) => previous.map_or(u64::MAX, |p| p.height.saturating_add(1)),
        Err(error) => {
            tracing::error!(%error, "cannot read the previous checkpoint");
            0
        }
    };
    let floor = info
        .height
        .saturating_add(1)
        .saturating_sub(retain)
        .min(statement_floor(ledger))
        .min(certifying);
    match store.prune_below(floor.min(info.height)) {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(below = floor, blocks = pruned, "pruned blocks"),
        Err(error) => tracing::error!(%error, "cannot prune blocks"),
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStore;
    use interpool_contracts::testkit;

    /// How long a test waits for the held write to start before it fails.
    const STARTED_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

    fn ledger_and_tips() -> (Arc<Ledger>, impl Fn(u64) -> ChainTip) {
        let genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000);
        let ledger = Arc::new(Ledger::from_genesis(&genesis).expect("genesis"));
        let genesis_tip = ChainTip::genesis(&genesis, ledger.state_root());
        let tip = move |height| ChainTip {
            height,
            ..genesis_tip.clone()
        };
        (ledger, tip)
    }

    /// A writer for a checkpoint every `interval` blocks, kept busy with the first one
    /// offered to it (`tip`) until the returned sender lets it go on.
    fn busy_writer(
        interval: u64,
        tip: &ChainTip,
        ledger: &Arc<Ledger>,
    ) -> (Arc<MemStore>, Checkpointer, std::sync::mpsc::Sender<()>) {
        let store = Arc::new(MemStore::new());
        let writer = Checkpointer::spawn(
            store.clone(),
            interval,
            None,
            Arc::new(Metrics::new()),
            None,
        )
        .expect("spawn the writer");
        // Armed after the writer, so that a failing test drops the release first and the
        // writer's join does not wait on it.
        let (started, release) = store.hold_next_checkpoint();
        writer.after_commit(tip, ledger, false);
        started
            .recv_timeout(STARTED_WAIT)
            .expect("the writer starts on the first checkpoint");
        (store, writer, release)
    }

    /// Before, the queue held one: with the writer busy on 7 and 8 waiting, 9 (the halt
    /// height's, say) was dropped and the store ended at 8.
    #[test]
    fn a_checkpoint_offered_while_the_writer_is_busy_replaces_the_one_waiting() {
        let (ledger, tip) = ledger_and_tips();
        let (store, writer, release) = busy_writer(1, &tip(7), &ledger);
        // Busy with 7: 8 waits, then 9 takes its place.
        writer.after_commit(&tip(8), &ledger, false);
        writer.after_commit(&tip(9), &ledger, true);
        release.send(()).expect("let 7 go on");
        writer.finish();

        let written = store.checkpoint().expect("read").expect("a checkpoint");
        assert_eq!(
            written.height, 9,
            "the newest offer is the one written last"
        );
    }

    /// Closed (the node stops) while a checkpoint waits behind one being written: the one
    /// waiting is still written before the writer ends.
    #[test]
    fn a_checkpoint_waiting_when_the_writer_stops_is_still_written() {
        let (ledger, tip) = ledger_and_tips();
        let (store, writer, release) = busy_writer(4, &tip(4), &ledger);
        // Not at a checkpoint height: not offered.
        writer.after_commit(&tip(7), &ledger, false);
        writer.after_commit(&tip(8), &ledger, false);
        writer.offered.close();
        release.send(()).expect("let 4 go on");
        writer.finish();
        assert_eq!(store.checkpoint().expect("read").map(|c| c.height), Some(8));
    }
}
