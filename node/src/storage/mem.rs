//! An in-memory [`ChainStore`] that models what a crash does to RocksDB: the deterministic
//! simulation runs the node's own core on it.
//!
//! Every write is appended to a log and applied at once (a later read sees it, as RocksDB's
//! memtable does). A synced write makes itself and every earlier write durable (RocksDB's
//! write-ahead log is one ordered file: syncing it syncs everything before). A simulated
//! crash ([`MemStore::crash`]) keeps the durable writes and a prefix of the unsynced ones
//! (a power cut loses a suffix of the log, never a write from its middle) and drops the rest.
//!
//! [`MemStore::fail_after`] arms a crash *at* a later write: that write fails and is not
//! applied, and the store refuses everything after it until it is crashed and reopened,
//! like a process killed in the middle of its write path.
//!
//! [`MemStore::hold_next_record`] holds the next record of acknowledged transactions
//! (`save_pending`) until the test lets it go: a record in flight, held open.
//! [`MemStore::hold_next_checkpoint`] does the same to the next `write_checkpoint`.
//! [`MemStore::panic_in_next_record`] makes the next record panic: a bug in the write path.

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

use interpool_contracts::block::ChainTip;
use interpool_contracts::ledger::{EndToEndArchive, StateEntry};
use interpool_contracts::outcome::BlockOutcome;
use interpool_contracts::{Hash, SignedTransaction, VerifiedTransaction};

use super::{ChainStore, CheckpointInfo, CommittedBlock, Location, StorageError};

/// One write, as the log records it.
#[derive(Debug, Clone)]
enum Write {
    Genesis(Hash),
    Commit(Box<CommittedBlock>),
    ConsensusState {
        state: Vec<u8>,
        add: Vec<([u8; 32], Vec<u8>)>,
        remove: Vec<[u8; 32]>,
    },
    SavePending(Vec<SignedTransaction>),
    ForgetPending(Vec<Hash>),
    Prune(u64),
    Adopt(u64),
    Checkpoint(std::sync::Arc<(CheckpointInfo, BTreeMap<Hash, StateEntry>)>),
    Remember(Vec<(u64, Arc<Vec<Hash>>)>),
    ForgetRemembered(u64),
}

impl Write {
    /// Whether the write is synced (and so makes every earlier one durable).
    fn synced(&self) -> bool {
        matches!(
            self,
            Write::Genesis(_)
                | Write::ConsensusState { .. }
                | Write::SavePending(_)
                | Write::Checkpoint(_)
                | Write::Adopt(_)
        )
    }
}

/// The tables, as reads see them.
#[derive(Debug, Clone, Default)]
struct Tables {
    genesis: Option<Hash>,
    height: u64,
    blocks: BTreeMap<u64, (Vec<u8>, Vec<u8>, BlockOutcome)>,
    tx_index: HashMap<Hash, Location>,
    consensus_state: Option<Vec<u8>>,
    payloads: BTreeMap<[u8; 32], Vec<u8>>,
    pending: BTreeMap<Hash, SignedTransaction>,
    checkpoint: Option<std::sync::Arc<(CheckpointInfo, BTreeMap<Hash, StateEntry>)>>,
    /// Heights below are pruned (0 and 1: none).
    earliest: u64,
    /// The end-to-end archive: each key's latest height, and each height's list.
    remembered: HashMap<Hash, u64>,
    remembered_lists: BTreeMap<u64, Arc<Vec<Hash>>>,
}

impl Tables {
    fn remember(&mut self, height: u64, keys: &Arc<Vec<Hash>>) {
        for key in keys.iter() {
            self.remembered.insert(*key, height);
        }
        self.remembered_lists.insert(height, keys.clone());
    }
}

impl Tables {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Genesis(hash) => self.genesis = Some(*hash),
            Write::Commit(committed) => {
                for receipt in &committed.outcome.receipts {
                    self.pending.remove(&receipt.tx_hash);
                    self.tx_index
                        .entry(receipt.tx_hash)
                        .or_insert((receipt.height, receipt.index));
                }
                self.blocks.insert(
                    committed.height,
                    (
                        committed.block.clone(),
                        committed.certificate.clone(),
                        committed.outcome.clone(),
                    ),
                );
                self.height = committed.height;
                if let Some(keys) = &committed.remembered {
                    self.remember(committed.height, keys);
                }
            }
            Write::Remember(lists) => {
                for (height, keys) in lists {
                    self.remember(*height, keys);
                }
            }
            Write::ForgetRemembered(floor) => {
                self.remembered_lists = self.remembered_lists.split_off(floor);
                self.remembered.retain(|_, height| *height >= *floor);
            }
            Write::ConsensusState { state, add, remove } => {
                for (digest, payload) in add {
                    self.payloads.insert(*digest, payload.clone());
                }
                for digest in remove {
                    self.payloads.remove(digest);
                }
                self.consensus_state = Some(state.clone());
            }
            Write::SavePending(txs) => {
                for tx in txs {
                    self.pending.insert(tx.hash(), tx.clone());
                }
            }
            Write::ForgetPending(hashes) => {
                for hash in hashes {
                    self.pending.remove(hash);
                }
            }
            Write::Checkpoint(checkpoint) => self.checkpoint = Some(checkpoint.clone()),
            Write::Adopt(height) => {
                self.height = *height;
                self.earliest = height + 1;
            }
            Write::Prune(floor) => {
                self.blocks = self.blocks.split_off(floor);
                self.tx_index.retain(|_, (height, _)| *height >= *floor);
                self.earliest = self.earliest.max(*floor);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Every write since the store was made (or last crashed), in order.
    log: Vec<Write>,
    /// `log[..durable]` survives any crash.
    durable: usize,
    /// What reads see: the whole log applied.
    current: Tables,
    /// The tables after `log[..durable]` (what a crash starts from).
    base: Tables,
    /// Writes until the armed crash (the write that brings it to zero fails).
    fail_after: Option<u64>,
    /// Crashed: everything fails until [`MemStore::crash`].
    dead: bool,
    /// Writes done, ever (for statistics).
    writes: u64,
}

/// A write held before it starts, once armed: who to tell that it started, and what lets
/// it go on. Apart from the tables, so that the store is read while it waits.
#[derive(Debug, Default)]
struct Hold(Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>);

impl Hold {
    /// Arms the hold: the receiver hears when the write starts, and it goes on when the
    /// sender sends (or is dropped, by a failing test).
    fn arm(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (tell_started, started) = mpsc::channel();
        let (release, released) = mpsc::channel();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((tell_started, released));
        (started, release)
    }

    /// Where the held write starts: waits there if armed (once).
    fn pass(&self) {
        let armed = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((tell_started, released)) = armed {
            let _ = tell_started.send(());
            let _ = released.recv();
        }
    }
}

/// The in-memory store. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
    /// An armed [`MemStore::hold_next_record`].
    held_record: Hold,
    /// An armed [`MemStore::hold_next_checkpoint`].
    held_checkpoint: Hold,
    /// An armed [`MemStore::panic_in_next_record`].
    panic_record: std::sync::atomic::AtomicBool,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the next `save_pending` before it writes: the receiver hears when it starts,
    /// and it goes on when the sender sends (or is dropped, by a failing test). Everything
    /// else goes on meanwhile.
    pub fn hold_next_record(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        self.held_record.arm()
    }

    /// Holds the next `write_checkpoint` before it writes, as
    /// [`MemStore::hold_next_record`] does the next record: a checkpoint writer kept busy.
    pub fn hold_next_checkpoint(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        self.held_checkpoint.arm()
    }

    /// Makes the next `save_pending` panic before it writes (once).
    pub fn panic_in_next_record(&self) {
        self.panic_record
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Arms a crash at the `n`-th write from now (`n ≥ 1`): that write fails unapplied and
    /// the store is dead from then on.
    pub fn fail_after(&self, n: u64) {
        self.lock().fail_after = Some(n.max(1));
    }

    /// Whether an armed crash has happened.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// Unsynced writes a crash could lose now.
    pub fn unsynced(&self) -> usize {
        let inner = self.lock();
        inner.log.len() - inner.durable
    }

    /// Writes done so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// A crash: keeps the durable writes and the first `keep` unsynced ones, drops the
    /// rest, and makes the store usable again (as reopened after the restart).
    pub fn crash(&self, keep: usize) {
        let mut inner = self.lock();
        let keep = inner.durable + keep.min(inner.log.len() - inner.durable);
        inner.log.truncate(keep);
        let mut tables = inner.base.clone();
        for write in inner.log.iter().skip(inner.durable) {
            tables.apply(write);
        }
        // What survived one crash is on disk: it survives the next.
        inner.base = tables.clone();
        inner.current = tables;
        inner.durable = inner.log.len();
        inner.dead = false;
        inner.fail_after = None;
    }

    fn write(&self, write: Write) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.dead {
            return Err(StorageError::Crashed);
        }
        if let Some(left) = inner.fail_after {
            if left <= 1 {
                inner.dead = true;
                inner.fail_after = None;
                return Err(StorageError::Crashed);
            }
            inner.fail_after = Some(left - 1);
        }
        inner.writes += 1;
        inner.current.apply(&write);
        let synced = write.synced();
        inner.log.push(write);
        if synced {
            let Inner {
                log, durable, base, ..
            } = &mut *inner;
            for write in log.iter().skip(*durable) {
                base.apply(write);
            }
            *durable = log.len();
        }
        Ok(())
    }

    fn read<T>(&self, read: impl FnOnce(&Tables) -> T) -> Result<T, StorageError> {
        let inner = self.lock();
        if inner.dead {
            return Err(StorageError::Crashed);
        }
        Ok(read(&inner.current))
    }
}

impl ChainStore for MemStore {
    fn bind_genesis(&self, genesis: &Hash) -> Result<Option<Hash>, StorageError> {
        match self.read(|t| t.genesis)? {
            Some(stored) => Ok((stored != *genesis).then_some(stored)),
            None => {
                self.write(Write::Genesis(*genesis))?;
                Ok(None)
            }
        }
    }

    fn height(&self) -> Result<u64, StorageError> {
        self.read(|t| t.height)
    }

    fn commit_block(&self, committed: &CommittedBlock) -> Result<(), StorageError> {
        let stored = self.height()?;
        if committed.height != stored + 1 || committed.outcome.height != committed.height {
            return Err(StorageError::OutOfOrder {
                stored,
                got: committed.height,
            });
        }
        self.write(Write::Commit(Box::new(committed.clone())))
    }

    fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(|t| t.blocks.get(&height).map(|b| b.0.clone()))
    }

    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(|t| t.blocks.get(&height).map(|b| b.1.clone()))
    }

    fn outcome(&self, height: u64) -> Result<Option<BlockOutcome>, StorageError> {
        self.read(|t| t.blocks.get(&height).map(|b| b.2.clone()))
    }

    fn tx_location(&self, tx_hash: &Hash) -> Result<Option<Location>, StorageError> {
        self.read(|t| t.tx_index.get(tx_hash).copied())
    }

    fn tx_locations(&self, hashes: &[Hash]) -> Result<Vec<Option<Location>>, StorageError> {
        self.read(|t| hashes.iter().map(|h| t.tx_index.get(h).copied()).collect())
    }

    fn save_consensus_state(
        &self,
        state: &[u8],
        add: &[(&[u8; 32], &[u8])],
        remove: &[[u8; 32]],
    ) -> Result<(), StorageError> {
        self.write(Write::ConsensusState {
            state: state.to_vec(),
            add: add.iter().map(|(d, p)| (**d, p.to_vec())).collect(),
            remove: remove.to_vec(),
        })
    }

    fn consensus_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(|t| t.consensus_state.clone())
    }

    fn consensus_payload(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(|t| t.payloads.get(digest).cloned())
    }

    // The armed panic is the point: a test's stand-in for a bug in the write path.
    #[allow(clippy::panic)]
    fn save_pending(&self, txs: &[VerifiedTransaction]) -> Result<(), StorageError> {
        if txs.is_empty() {
            return Ok(());
        }
        self.held_record.pass();
        if self
            .panic_record
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("the record panicked, as armed by panic_in_next_record");
        }
        self.write(Write::SavePending(
            txs.iter().map(|tx| tx.signed().clone()).collect(),
        ))
    }

    fn forget_pending(&self, hashes: &[Hash]) -> Result<(), StorageError> {
        // As the store: only what is recorded here is written.
        let recorded: Vec<Hash> = self.read(|t| {
            hashes
                .iter()
                .filter(|h| t.pending.contains_key(h))
                .copied()
                .collect()
        })?;
        if recorded.is_empty() {
            return Ok(());
        }
        self.write(Write::ForgetPending(recorded))
    }

    fn pending_transactions(&self) -> Result<Vec<SignedTransaction>, StorageError> {
        self.read(|t| t.pending.values().cloned().collect())
    }

    fn write_checkpoint(
        &self,
        tip: &ChainTip,
        entries: &mut dyn Iterator<Item = StateEntry>,
    ) -> Result<CheckpointInfo, StorageError> {
        self.held_checkpoint.pass();
        let mut info = CheckpointInfo::of(tip);
        let mut map = BTreeMap::new();
        for entry in entries {
            info.entries += 1;
            info.bytes += interpool_contracts::codec::encoded_len(&entry);
            map.insert(entry.key.tree_key(), entry);
        }
        self.write(Write::Checkpoint(std::sync::Arc::new((info.clone(), map))))?;
        Ok(info)
    }

    fn checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError> {
        self.read(|t| t.checkpoint.as_ref().map(|c| c.0.clone()))
    }

    fn previous_checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError> {
        Ok(None) // the simulator keeps one
    }

    fn earliest_height(&self) -> Result<u64, StorageError> {
        self.read(|t| t.earliest.max(1))
    }

    fn adopt_checkpoint(&self, height: u64) -> Result<(), StorageError> {
        self.write(Write::Adopt(height))
    }

    fn prune_below(&self, floor: u64) -> Result<u64, StorageError> {
        let (earliest, height) = self.read(|t| (t.earliest.max(1), t.height))?;
        let floor = floor.min(height + 1);
        if floor <= earliest {
            return Ok(0);
        }
        self.write(Write::Prune(floor))?;
        Ok(floor - earliest)
    }

    fn checkpoint_entries(
        &self,
        height: u64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<StateEntry>, StorageError> {
        use std::ops::Bound;
        self.read(|t| match &t.checkpoint {
            Some(c) if c.0.height == height => {
                let from = after.map_or(Bound::Unbounded, |key| Bound::Excluded(*key));
                c.1.range((from, Bound::Unbounded))
                    .take(limit)
                    .map(|(_, e)| e.clone())
                    .collect()
            }
            _ => Vec::new(),
        })
    }
    fn statements_through(&self) -> Result<u64, StorageError> {
        Ok(u64::MAX)
    }
    fn remember_end_to_end_lists(
        &self,
        lists: &mut dyn Iterator<Item = (u64, &Arc<Vec<Hash>>)>,
    ) -> Result<u64, StorageError> {
        let missing: Vec<(u64, Arc<Vec<Hash>>)> = {
            let inner = self.lock();
            lists
                .filter(|(height, _)| !inner.current.remembered_lists.contains_key(height))
                .map(|(height, keys)| (height, keys.clone()))
                .collect()
        };
        let written = missing.len() as u64;
        self.write(Write::Remember(missing))?;
        Ok(written)
    }
    fn forget_end_to_end_below(&self, floor: u64) -> Result<(), StorageError> {
        self.write(Write::ForgetRemembered(floor))
    }
}

// What reads see, also after an armed crash: the core that asks is about to be discarded
// with the crashed store's other readers.
#[allow(clippy::panic)]
impl EndToEndArchive for MemStore {
    fn latest(&self, key: &Hash) -> Option<u64> {
        self.lock().current.remembered.get(key).copied()
    }

    fn list(&self, height: u64) -> Arc<Vec<Hash>> {
        match self.lock().current.remembered_lists.get(&height) {
            Some(keys) => keys.clone(),
            None => panic!("the simulated store has no end-to-end list for height {height}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::outcome::{Outcome, Receipt};

    fn committed(height: u64, tx: u8) -> CommittedBlock {
        CommittedBlock {
            checked_new: false,
            end_to_end_ids: Vec::new(),
            remembered: None,
            height,
            block: vec![height as u8; 3],
            certificate: vec![1],
            outcome: BlockOutcome {
                height,
                receipts: vec![Receipt {
                    tx_hash: Hash([tx; 32]),
                    height,
                    index: 0,
                    outcome: Outcome::Committed,
                }],
                released: vec![],
                expired: vec![],
                dropped: vec![],
                warned: vec![],
                gridlock: None,
                day_report: None,
                settlement: None,
                state_root: Hash([height as u8; 32]),
            },
            parties: vec![],
        }
    }

    #[test]
    fn a_crash_keeps_synced_writes_and_a_prefix_of_the_rest() {
        let store = MemStore::new();
        store.commit_block(&committed(1, 1)).expect("1");
        store.commit_block(&committed(2, 2)).expect("2");
        // A synced write makes both blocks durable.
        store.save_consensus_state(b"s1", &[], &[]).expect("state");
        store.commit_block(&committed(3, 3)).expect("3");
        store.commit_block(&committed(4, 4)).expect("4");
        assert_eq!(store.unsynced(), 2);
        store.crash(1);
        assert_eq!(store.height().expect("height"), 3);
        assert!(store.block(4).expect("read").is_none());
        assert!(store.tx_location(&Hash([4; 32])).expect("read").is_none());
        assert_eq!(store.consensus_state().expect("read"), Some(b"s1".to_vec()));
        // A second crash cannot lose what the first kept.
        store.crash(0);
        assert_eq!(store.height().expect("height"), 3);
    }

    #[test]
    fn an_armed_crash_fails_that_write_and_everything_after() {
        let store = MemStore::new();
        store.fail_after(2);
        store.commit_block(&committed(1, 1)).expect("1");
        assert!(matches!(
            store.save_consensus_state(b"s", &[], &[]),
            Err(StorageError::Crashed)
        ));
        assert!(store.is_dead());
        assert!(matches!(store.height(), Err(StorageError::Crashed)));
        store.crash(usize::MAX);
        assert_eq!(store.height().expect("height"), 1);
        assert_eq!(store.consensus_state().expect("read"), None);
    }

    #[test]
    fn committing_forgets_pending_and_indexes_the_first_receipt_only() {
        let store = MemStore::new();
        store.commit_block(&committed(1, 7)).expect("1");
        store.commit_block(&committed(2, 7)).expect("2");
        assert_eq!(
            store.tx_location(&Hash([7; 32])).expect("read"),
            Some((1, 0))
        );
        assert!(matches!(
            store.commit_block(&committed(4, 1)),
            Err(StorageError::OutOfOrder { stored: 2, got: 4 })
        ));
    }
}
