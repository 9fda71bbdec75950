//! The node's database: RocksDB with one column family per kind of record.
//!
//! | column family  | key                 | value                                        |
//! |----------------|---------------------|----------------------------------------------|
//! | `blocks`       | height (big-endian) | the encoded block (the consensus payload)    |
//! | `certificates` | height              | the encoded commit certificate               |
//! | `outcomes`     | height              | the block's execution outcome (receipts, ...) |
//! | `tx_index`     | transaction hash    | `(height, index)` of its first receipt (never overwritten) |
//! | `queue_index`  | transaction hash    | `(height, fate)` a queued transfer left the queue |
//! | `account_index`| account ‖ height ‖ index | empty: the account is a party to that receipt |
//! | `meta`         | `height`            | the last committed height                    |
//! | `meta`         | `genesis`           | the genesis hash the database belongs to      |
//! | `consensus`    | `state`             | the engine's persisted state (lock, votes), payloads by digest |
//! | `consensus`    | `payload/` digest   | a payload that state refers to                |
//! | `pending`      | record number (8 bytes, big-endian) | a transaction the API acknowledged, until it commits ([`PendingRecords`]) |
//! | `checkpoints`  | height ‖ tree key   | one state entry of the checkpoint at that height (ADR 0011) |
//! | `meta`         | `checkpoint`        | the last complete checkpoint ([`CheckpointInfo`]) |
//! | `meta`         | `checkpoint/previous` | the one before, kept while state sync may still be fetching it |
//! | `meta`         | `earliest`          | the lowest height still stored (absent: 1; see [`Store::prune_below`]) |
//! | `end_to_end`   | len ‖ end-to-end id ‖ signer ‖ tx hash | empty: a transfer with that id was included |
//! | `statements`   | cycle ‖ bank id     | the bank's statement of that closed cycle    |
//! | `remembered`   | end-to-end key      | the latest height whose block remembered it (8 bytes) |
//! | `remembered_lists` | height          | the end-to-end keys the block remembered, in order |
//! | `meta`         | `statements`        | the last cycle whose statements were written (or found impossible) |
//!
//! `remembered` and `remembered_lists` are the ledger's duplicate window, kept here instead
//! of in memory ([`EndToEndArchive`]): what a node's ledger has archived is always here. They
//! are derived data (a node writes what its ledger holds in memory when it starts), so a
//! database written before they existed needs no migration; entries older than the window
//! go by themselves ([`Store::forget_end_to_end_below`]).
//!
//! Committing a block is exactly one atomic `WriteBatch` (block, certificate, outcome,
//! index entries, height): after a crash at any moment the store holds either all of a
//! block or none of it. Blocks are written without fsync: RocksDB's write-ahead log
//! survives a killed process, and a block lost to a power cut is fetched again from peers.
//! The consensus state is the one synced write, because a validator must never forget a
//! vote it sent (STYLE.md, "save first, then speak").
//!
//! Everything read back is decoded with the same bounded decoders as network input and
//! checked against its key.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use interpool_contracts::block::ChainTip;
use interpool_contracts::codec;
use interpool_contracts::ledger::{EndToEndArchive, StateEntry, MAX_ENTRY_BYTES};
use interpool_contracts::outcome::{BlockOutcome, DropReason};
use interpool_contracts::{AccountId, Hash, SignedTransaction, VerifiedTransaction};

pub mod mem;

use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use thiserror::Error;

const CF_BLOCKS: &str = "blocks";
const CF_CERTIFICATES: &str = "certificates";
const CF_OUTCOMES: &str = "outcomes";
const CF_TX_INDEX: &str = "tx_index";
const CF_QUEUE_INDEX: &str = "queue_index";
const CF_ACCOUNT_INDEX: &str = "account_index";
const CF_META: &str = "meta";
const CF_CONSENSUS: &str = "consensus";
const CF_PENDING: &str = "pending";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_END_TO_END: &str = "end_to_end";
const CF_STATEMENTS: &str = "statements";
const CF_REMEMBERED: &str = "remembered";
const CF_REMEMBERED_LISTS: &str = "remembered_lists";
const COLUMN_FAMILIES: [&str; 14] = [
    CF_BLOCKS,
    CF_CERTIFICATES,
    CF_OUTCOMES,
    CF_TX_INDEX,
    CF_QUEUE_INDEX,
    CF_ACCOUNT_INDEX,
    CF_META,
    CF_CONSENSUS,
    CF_PENDING,
    CF_CHECKPOINTS,
    CF_END_TO_END,
    CF_STATEMENTS,
    CF_REMEMBERED,
    CF_REMEMBERED_LISTS,
];

const KEY_HEIGHT: &[u8] = b"height";
const KEY_GENESIS: &[u8] = b"genesis";
const KEY_CONSENSUS_STATE: &[u8] = b"state";
const KEY_CHECKPOINT: &[u8] = b"checkpoint";
const KEY_PREVIOUS_CHECKPOINT: &[u8] = b"checkpoint/previous";
const KEY_EARLIEST: &[u8] = b"earliest";
const KEY_STATEMENTS: &[u8] = b"statements";
const KEY_FORMAT: &[u8] = b"format";

/// The layout of the database this node writes and reads: its column families, keys and
/// record encodings. A database records the version it was written in (`meta/format`, 8 bytes
/// big-endian); a node refuses to open one of another version rather than misread it, so
/// that a release that changes the layout must say how to migrate (or resync). Databases
/// written before the version was recorded have this layout: they are taken as version 1,
/// and the version is recorded when a node opens them.
///
/// Format 2 keys `pending` by record number instead of transaction hash
/// ([`PendingRecords`]); nothing else differs. A node opening a database of format 1
/// rewrites its `pending` records in the new keys and records format 2, in one atomic batch;
/// a reader ([`Store::open_secondary`]) takes either (it never reads `pending`).
pub const STORAGE_FORMAT_VERSION: u64 = 2;
/// The earlier format this release still opens (see [`STORAGE_FORMAT_VERSION`]).
const PENDING_BY_HASH_FORMAT: u64 = 1;
/// Largest statement record read back.
const MAX_STATEMENT_BYTES: u64 = 1 << 30;
/// Heights of end-to-end lists cleared at a time ([`Store::forget_end_to_end_below`]).
const FORGET_LISTS_STEP: u64 = 1024;
/// Heights pruned per write batch.
const PRUNE_BATCH_HEIGHTS: u64 = 32;
const PREFIX_CONSENSUS_PAYLOAD: &[u8] = b"payload/";

fn payload_key(digest: &[u8; 32]) -> Vec<u8> {
    [PREFIX_CONSENSUS_PAYLOAD, digest.as_slice()].concat()
}

/// Largest outcome record read back (receipts of a maximal block).
const MAX_OUTCOME_BYTES: u64 = 256 << 20;

/// A storage failure. Any of these stops the node: it cannot vouch for its state.
#[derive(Debug, Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record read back is not what was written there.
    #[error("corrupt record in {cf} at {key}: {message}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// The key, readable.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A record could not be read while reading every record ([`Store::summarize`],
    /// [`Store::copy_to`]): a table file is missing, unreadable or fails its checksum.
    #[error("reading column family {cf}: {source}")]
    Unreadable {
        /// Column family.
        cf: &'static str,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// The scratch folder of a secondary instance could not be made.
    #[error("cannot create a scratch folder for reading the database: {0}")]
    Scratch(std::io::Error),
    /// The database's folder could not be made.
    #[error("cannot create the database folder: {0}")]
    Folder(std::io::Error),
    /// The simulator's in-memory store crashed ([`mem::MemStore::fail_after`]).
    #[error("the store crashed (simulated)")]
    Crashed,
    /// The database was written in another layout ([`STORAGE_FORMAT_VERSION`]).
    #[error(
        "the database is in storage format {found}, this node reads format {supported} \
         (and upgrades format 1): \
         use the release that wrote it, or migrate it (or resync into an empty data folder)"
    )]
    Format {
        /// The database's version.
        found: u64,
        /// The version this node writes (it also upgrades format 1).
        supported: u64,
    },
    /// A block was offered out of order.
    #[error("block {got} cannot follow stored height {stored}")]
    OutOfOrder {
        /// The stored height.
        stored: u64,
        /// The offered block's height.
        got: u64,
    },
}

/// How a queued transfer left its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFate {
    /// Released: executed.
    Released,
    /// Expired: refunded.
    Expired,
    /// Cancelled by its payer or its bank's operator: refunded.
    Cancelled,
    /// Past its reject time: refunded.
    RejectTime,
    /// Rejected at the customer cut-off: refunded.
    Cutoff,
}

impl QueueFate {
    /// Its byte in the queue index.
    fn byte(self) -> u8 {
        match self {
            QueueFate::Released => 1,
            QueueFate::Expired => 2,
            QueueFate::Cancelled => 3,
            QueueFate::RejectTime => 4,
            QueueFate::Cutoff => 5,
        }
    }

    fn of_reason(reason: &DropReason) -> QueueFate {
        match reason {
            DropReason::Cancelled { .. } => QueueFate::Cancelled,
            DropReason::RejectTime => QueueFate::RejectTime,
            DropReason::Cutoff => QueueFate::Cutoff,
        }
    }
}

/// Everything stored for one committed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlock {
    /// Height.
    pub height: u64,
    /// The encoded block (its SHA-256 is the block hash).
    pub block: Vec<u8>,
    /// The encoded commit certificate.
    pub certificate: Vec<u8>,
    /// What executing it produced.
    pub outcome: BlockOutcome,
    /// For each receipt index, the accounts it concerns (for account histories).
    pub parties: Vec<Vec<AccountId>>,
    /// Each transfer's `(signer, end_to_end_id, transaction hash)`, for lookups by
    /// end-to-end id (ISO 20022 status reports).
    pub end_to_end_ids: Vec<(AccountId, String, Hash)>,
    /// The end-to-end keys the ledger remembered in this block, in its order (the list
    /// [`Ledger::end_to_end_list`](interpool_contracts::Ledger::end_to_end_list) holds),
    /// if it remembered any: written to the ledger's archive with the block.
    pub remembered: Option<Arc<Vec<Hash>>>,
    /// This node checked, on the block's parent, that none of its transactions is in the
    /// transaction index and that none repeats (a proposal it validated): their entries
    /// are written without asking the index first. `false` for a block taken on its
    /// certificate alone, whose transactions are looked up (see [`Store::commit_block`]).
    pub checked_new: bool,
}

/// The `end_to_end` index key of a transfer: the id's length and bytes, the signer, the
/// transaction hash (so a prefix of the first two finds every transfer with that id).
fn end_to_end_key(end_to_end_id: &str, signer: Option<&AccountId>, tx: Option<&Hash>) -> Vec<u8> {
    let id = end_to_end_id.as_bytes();
    let mut key = Vec::with_capacity(1 + id.len() + 64);
    key.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(id);
    if let Some(signer) = signer {
        key.extend_from_slice(&signer.0);
    }
    if let Some(tx) = tx {
        key.extend_from_slice(tx.as_bytes());
    }
    key
}

fn statement_key(cycle: u64, bank: &interpool_contracts::BankId) -> Vec<u8> {
    [&cycle.to_be_bytes()[..], bank.as_str().as_bytes()].concat()
}

/// A complete checkpoint: the state after block `height`, as state entries (ADR 0011).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointInfo {
    /// The height whose state it is.
    pub height: u64,
    /// That block's hash.
    pub block_hash: Hash,
    /// The state root after that block.
    pub state_root: Hash,
    /// That block's timestamp.
    pub timestamp_ms: u64,
    /// How many state entries it holds.
    pub entries: u64,
    /// Their encoded size, in bytes.
    pub bytes: u64,
}

impl CheckpointInfo {
    /// The description of a checkpoint of the state after `tip`, before any entry.
    pub fn of(tip: &ChainTip) -> CheckpointInfo {
        CheckpointInfo {
            height: tip.height,
            block_hash: tip.hash,
            state_root: tip.state_root,
            timestamp_ms: tip.timestamp_ms,
            entries: 0,
            bytes: 0,
        }
    }

    /// The tip the checkpoint's state is after.
    pub fn tip(&self, chain_id: &str) -> ChainTip {
        ChainTip {
            chain_id: chain_id.to_string(),
            height: self.height,
            hash: self.block_hash,
            state_root: self.state_root,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Largest checkpoint description read back.
const MAX_CHECKPOINT_INFO_BYTES: u64 = 1 << 10;
/// State entries per write batch of a checkpoint.
const CHECKPOINT_BATCH_ENTRIES: usize = 20_000;

fn checkpoint_key(height: u64, tree_key: &Hash) -> [u8; 40] {
    let mut key = [0; 40];
    key[..8].copy_from_slice(&height.to_be_bytes());
    key[8..].copy_from_slice(tree_key.as_bytes());
    key
}

/// Where a receipt is: `(height, index)`; also the cursor of account histories.
pub type Location = (u64, u32);

fn account_key(account: &AccountId, (height, index): Location) -> [u8; 44] {
    let mut key = [0; 44];
    key[..32].copy_from_slice(&account.0);
    key[32..40].copy_from_slice(&height.to_be_bytes());
    key[40..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Decodes a `tx_index` record of `tx_hash`.
fn parse_location(tx_hash: &Hash, bytes: &[u8]) -> Result<Location, StorageError> {
    let corrupt = || StorageError::Corrupt {
        cf: CF_TX_INDEX,
        key: tx_hash.to_hex(),
        message: format!("{} bytes, expected 12", bytes.len()),
    };
    let height: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let index: [u8; 4] = bytes
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    if bytes.len() != 12 {
        return Err(corrupt());
    }
    Ok((u64::from_be_bytes(height), u32::from_be_bytes(index)))
}

/// A per-height record, for [`Store::overwrite_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The encoded block (`blocks`).
    Block,
    /// The encoded commit certificate (`certificates`).
    Certificate,
    /// The encoded execution outcome (`outcomes`).
    Outcome,
}

/// What the core, the consensus state and the admission pipeline need of a store: the
/// node's one store is RocksDB ([`Store`]); the deterministic simulator runs the same code
/// over [`mem::MemStore`], which can lose its unsynced writes at a simulated crash.
///
/// Which writes are synced is part of the contract: `bind_genesis`, `save_consensus_state`
/// and `save_pending` are durable when they return (and make every earlier write durable, as
/// a synced write-ahead log does); `commit_block` and `forget_pending` may be lost by a crash
/// of the machine (not of the process) until a later synced write.
///
/// Every store is also the archive of its ledger's end-to-end ids ([`EndToEndArchive`]): it
/// holds every list committed with a block ([`CommittedBlock::remembered`]) or written by
/// [`ChainStore::remember_end_to_end_lists`]. Ledgers reach it through [`archive_of`].
pub trait ChainStore: EndToEndArchive + Send + Sync {
    /// See [`Store::bind_genesis`].
    fn bind_genesis(&self, genesis: &Hash) -> Result<Option<Hash>, StorageError>;
    /// See [`Store::height`].
    fn height(&self) -> Result<u64, StorageError>;
    /// See [`Store::commit_block`].
    fn commit_block(&self, committed: &CommittedBlock) -> Result<(), StorageError>;
    /// See [`Store::block`].
    fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// See [`Store::certificate`].
    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// See [`Store::outcome`].
    fn outcome(&self, height: u64) -> Result<Option<BlockOutcome>, StorageError>;
    /// See [`Store::tx_location`].
    fn tx_location(&self, tx_hash: &Hash) -> Result<Option<Location>, StorageError>;
    /// See [`Store::tx_locations`].
    fn tx_locations(&self, hashes: &[Hash]) -> Result<Vec<Option<Location>>, StorageError>;
    /// See [`Store::save_consensus_state`].
    fn save_consensus_state(
        &self,
        state: &[u8],
        add: &[(&[u8; 32], &[u8])],
        remove: &[[u8; 32]],
    ) -> Result<(), StorageError>;
    /// See [`Store::consensus_state`].
    fn consensus_state(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// See [`Store::consensus_payload`].
    fn consensus_payload(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StorageError>;
    /// See [`Store::save_pending`].
    fn save_pending(&self, txs: &[VerifiedTransaction]) -> Result<(), StorageError>;
    /// See [`Store::forget_pending`].
    fn forget_pending(&self, hashes: &[Hash]) -> Result<(), StorageError>;
    /// See [`Store::pending_transactions`].
    fn pending_transactions(&self) -> Result<Vec<SignedTransaction>, StorageError>;
    /// See [`Store::write_checkpoint`].
    fn write_checkpoint(
        &self,
        tip: &ChainTip,
        entries: &mut dyn Iterator<Item = StateEntry>,
    ) -> Result<CheckpointInfo, StorageError>;
    /// See [`Store::checkpoint`].
    fn checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError>;
    /// See [`Store::previous_checkpoint`].
    fn previous_checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError>;
    /// See [`Store::earliest_height`].
    fn earliest_height(&self) -> Result<u64, StorageError>;
    /// See [`Store::prune_below`].
    fn prune_below(&self, floor: u64) -> Result<u64, StorageError>;
    /// See [`Store::adopt_checkpoint`].
    fn adopt_checkpoint(&self, height: u64) -> Result<(), StorageError>;
    /// See [`Store::checkpoint_entries`].
    fn checkpoint_entries(
        &self,
        height: u64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<StateEntry>, StorageError>;
    /// See [`Store::statements_through`]. A store that keeps no statements (the
    /// simulator's) answers `u64::MAX`: none to write.
    fn statements_through(&self) -> Result<u64, StorageError>;
    /// See [`Store::remember_end_to_end_lists`].
    fn remember_end_to_end_lists(
        &self,
        lists: &mut dyn Iterator<Item = (u64, &Arc<Vec<Hash>>)>,
    ) -> Result<u64, StorageError>;
    /// See [`Store::forget_end_to_end_below`].
    fn forget_end_to_end_below(&self, floor: u64) -> Result<(), StorageError>;
}

/// `store` as the archive a ledger asks ([`Ledger::archive_end_to_end_ids`]), without
/// keeping it open: ledgers outlive the core that made them (readers' views, the views
/// retired on a background thread), and the database must close when the node lets go of
/// it, so that it can be opened again. A ledger that asks after that (a reader's, as the
/// node stops) is answered "not remembered"; nothing it decides is committed.
///
/// [`Ledger::archive_end_to_end_ids`]: interpool_contracts::Ledger::archive_end_to_end_ids
pub fn archive_of(store: &Arc<dyn ChainStore>) -> Arc<dyn EndToEndArchive> {
    Arc::new(StoreArchive(Arc::downgrade(store)))
}

struct StoreArchive(std::sync::Weak<dyn ChainStore>);

impl std::fmt::Debug for StoreArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreArchive")
    }
}

// The checkpoint writer, the one caller of `list`, holds the store while it writes.
#[allow(clippy::panic)]
impl EndToEndArchive for StoreArchive {
    fn latest(&self, key: &Hash) -> Option<u64> {
        self.0.upgrade().and_then(|store| store.latest(key))
    }

    fn latest_of_many(&self, keys: &[Hash]) -> Vec<Option<u64>> {
        match self.0.upgrade() {
            Some(store) => store.latest_of_many(keys),
            None => vec![None; keys.len()],
        }
    }

    fn list(&self, height: u64) -> Arc<Vec<Hash>> {
        match self.0.upgrade() {
            Some(store) => store.list(height),
            None => panic!(
                "the end-to-end list of height {height} was asked for after its store closed"
            ),
        }
    }
}

impl ChainStore for Store {
    fn bind_genesis(&self, genesis: &Hash) -> Result<Option<Hash>, StorageError> {
        Store::bind_genesis(self, genesis)
    }
    fn height(&self) -> Result<u64, StorageError> {
        Store::height(self)
    }
    fn commit_block(&self, committed: &CommittedBlock) -> Result<(), StorageError> {
        Store::commit_block(self, committed)
    }
    fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Store::block(self, height)
    }
    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Store::certificate(self, height)
    }
    fn outcome(&self, height: u64) -> Result<Option<BlockOutcome>, StorageError> {
        Store::outcome(self, height)
    }
    fn tx_location(&self, tx_hash: &Hash) -> Result<Option<Location>, StorageError> {
        Store::tx_location(self, tx_hash)
    }
    fn tx_locations(&self, hashes: &[Hash]) -> Result<Vec<Option<Location>>, StorageError> {
        Store::tx_locations(self, hashes)
    }
    fn save_consensus_state(
        &self,
        state: &[u8],
        add: &[(&[u8; 32], &[u8])],
        remove: &[[u8; 32]],
    ) -> Result<(), StorageError> {
        Store::save_consensus_state(self, state, add, remove)
    }
    fn consensus_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Store::consensus_state(self)
    }
    fn consensus_payload(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StorageError> {
        Store::consensus_payload(self, digest)
    }
    fn save_pending(&self, txs: &[VerifiedTransaction]) -> Result<(), StorageError> {
        Store::save_pending(self, txs)
    }
    fn forget_pending(&self, hashes: &[Hash]) -> Result<(), StorageError> {
        Store::forget_pending(self, hashes)
    }
    fn pending_transactions(&self) -> Result<Vec<SignedTransaction>, StorageError> {
        Store::pending_transactions(self)
    }
    fn write_checkpoint(
        &self,
        tip: &ChainTip,
        entries: &mut dyn Iterator<Item = StateEntry>,
    ) -> Result<CheckpointInfo, StorageError> {
        Store::write_checkpoint(self, tip, entries)
    }
    fn checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError> {
        Store::checkpoint(self)
    }
    fn previous_checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError> {
        Store::previous_checkpoint(self)
    }
    fn earliest_height(&self) -> Result<u64, StorageError> {
        Store::earliest_height(self)
    }
    fn prune_below(&self, floor: u64) -> Result<u64, StorageError> {
        Store::prune_below(self, floor)
    }
    fn adopt_checkpoint(&self, height: u64) -> Result<(), StorageError> {
        Store::adopt_checkpoint(self, height)
    }
    fn checkpoint_entries(
        &self,
        height: u64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<StateEntry>, StorageError> {
        Store::checkpoint_entries(self, height, after, limit)
    }
    fn statements_through(&self) -> Result<u64, StorageError> {
        Store::statements_through(self)
    }
    fn remember_end_to_end_lists(
        &self,
        lists: &mut dyn Iterator<Item = (u64, &Arc<Vec<Hash>>)>,
    ) -> Result<u64, StorageError> {
        Store::remember_end_to_end_lists(self, lists)
    }
    fn forget_end_to_end_below(&self, floor: u64) -> Result<(), StorageError> {
        Store::forget_end_to_end_below(self, floor)
    }
}

// A read failure of the archive while a block executes leaves the node nothing correct to
// do: it stops (the same block on a healthy disk is executed after the restart). Not
// something input can cause.
#[allow(clippy::expect_used, clippy::panic)]
impl EndToEndArchive for Store {
    fn latest(&self, key: &Hash) -> Option<u64> {
        let found = self
            .db
            .get_pinned_cf(self.cf(CF_REMEMBERED), key.as_bytes())
            .expect("reading the end-to-end archive (column family `remembered`)")?;
        Some(remembered_height(key, &found))
    }

    fn latest_of_many(&self, keys: &[Hash]) -> Vec<Option<u64>> {
        // `ask_archive` hands the keys over sorted.
        let sorted = keys.is_sorted();
        self.db
            .batched_multi_get_cf(
                self.cf(CF_REMEMBERED),
                keys.iter().map(Hash::as_bytes),
                sorted,
            )
            .into_iter()
            .zip(keys)
            .map(|(found, key)| {
                found
                    .expect("reading the end-to-end archive (column family `remembered`)")
                    .map(|found| remembered_height(key, &found))
            })
            .collect()
    }

    fn list(&self, height: u64) -> Arc<Vec<Hash>> {
        match self.remembered_list(height) {
            Ok(Some(keys)) => Arc::new(keys),
            Ok(None) => panic!(
                "the end-to-end archive has no list for height {height}, which the ledger archived"
            ),
            Err(error) => panic!("reading the end-to-end archive: {error}"),
        }
    }
}

/// The height an entry of `remembered` holds.
#[allow(clippy::panic)] // see the archive's implementation above
fn remembered_height(key: &Hash, value: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(value) {
        Ok(height) => u64::from_be_bytes(height),
        Err(_) => panic!("column family `remembered`: the entry of {key} is not a height"),
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

/// The node's database.
pub struct Store {
    db: DB,
    /// What CF `pending` holds (this node's acknowledged transactions not yet committed):
    /// a committed block deletes only those, instead of writing a tombstone for every
    /// transaction it holds (most of which other nodes acknowledged).
    pending: std::sync::Mutex<PendingRecords>,
    /// A secondary instance's own folder (its info logs), removed after the database is
    /// closed (fields drop in declaration order).
    _scratch: Option<tempfile::TempDir>,
    /// Entries of `remembered` below this height are dropped when RocksDB compacts them
    /// ([`Store::forget_end_to_end_below`]).
    end_to_end_floor: Arc<AtomicU64>,
    /// The height below which `remembered_lists` was last cleared.
    lists_cleared_below: AtomicU64,
    /// Whether table files are written with direct I/O ([`direct_io_works`]).
    direct_io: bool,
}

/// The families asked about (almost always in vain) for every transaction admitted,
/// proposed or executed: see [`family_options`].
const LOOKED_UP_PER_TRANSACTION: [&str; 3] = [CF_TX_INDEX, CF_QUEUE_INDEX, CF_REMEMBERED];

/// A column family's options. The transaction and queue indexes are asked, for every
/// transaction a node admits and every block it commits, about hashes that are almost never
/// there ("already in a block?"): bloom filters, in the memtable and in every table file,
/// answer those misses without searching (without them a validator spent 6 % of its CPU on
/// the index lookups of admission alone at 4,000 transfers/s, issue 12's profile).
///
/// Every family reads through one block cache of [`BLOCK_CACHE_BYTES`] (RocksDB's default
/// is a cache per family).
///
/// So do the table files' indexes, except in the families looked up for every transaction
/// ([`LOOKED_UP_PER_TRANSACTION`], the only ones with bloom filters). RocksDB otherwise keeps
/// every table file's index in memory outside any cache, so that a node's memory grew with
/// everything it stored; in the cache the indexes are partitioned, so that a read loads only
/// the partitions it needs, and each file's top level, and the whole of the newest files'
/// (level 0), stay pinned. The families looked up per transaction keep their indexes and
/// filters outside the cache: there, a cache lookup per key and table file cost a sixth of a
/// validator's throughput at full load (issue 12: 7,560-7,823 against 9,024-9,375
/// transfers/s). The transaction and queue indexes' still grow with the chain (about 1.5
/// bytes a transaction); `remembered`'s are bounded by the duplicate window.
fn family_options(
    name: &str,
    cache: &rocksdb::Cache,
    end_to_end_floor: &Arc<AtomicU64>,
) -> Options {
    let mut options = Options::default();
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    if !LOOKED_UP_PER_TRANSACTION.contains(&name) {
        table.set_cache_index_and_filter_blocks(true);
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    }
    if name == CF_REMEMBERED {
        // Asked about every transfer admitted, proposed and executed, and almost never
        // holding it: the same bloom filters as the transaction index. Entries the window
        // has passed are dropped as RocksDB compacts them, without a read or a delete.
        let floor = end_to_end_floor.clone();
        options.set_compaction_filter(
            "interpool-remembered-window",
            move |_level: u32, _key: &[u8], value: &[u8]| {
                let height = <[u8; 8]>::try_from(value).map(u64::from_be_bytes);
                match height {
                    Ok(height) if height < floor.load(Ordering::Relaxed) => {
                        rocksdb::compaction_filter::Decision::Remove
                    }
                    _ => rocksdb::compaction_filter::Decision::Keep,
                }
            },
        );
    }
    if LOOKED_UP_PER_TRANSACTION.contains(&name) {
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(true);
        options.set_memtable_prefix_bloom_ratio(0.1);
        options.set_memtable_whole_key_filtering(true);
    }
    if WRITTEN_AT_RANDOM.contains(&name) {
        options.set_level_zero_file_num_compaction_trigger(LEVEL0_FILES_TO_COMPACT);
    }
    options.set_block_based_table_factory(&table);
    options
}

/// The key of the `pending` record numbered `number`.
fn pending_key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

/// What the `pending` column family holds, in memory: this node's acknowledged transactions
/// not yet committed, each under a record number.
///
/// Records are numbered in the order they are written, from one more than the highest
/// found at the start, so that every write lands at the end of the family: RocksDB's
/// memtable appends it where a transaction hash's place had to be searched among random
/// keys (or, in the vector memtable used before, every record sorted at each flush: 3.6 %
/// of a validator's CPU at 1-validator load, issue 12's profile). Transactions mostly
/// commit in the order they were acknowledged, so the records a block lets go are mostly
/// the oldest: all those below the oldest still pending go in one range deletion, and only
/// those that committed ahead of an older one are deleted one by one. Flushed, the records
/// and the range deletion cancel out: what reaches the table files is the range deletion
/// and the few records still pending.
#[derive(Debug, Default)]
pub(crate) struct PendingRecords {
    /// Each pending transaction's record number.
    numbers: std::collections::HashMap<Hash, u64>,
    /// The record numbers still pending, oldest first.
    pending: std::collections::BTreeSet<u64>,
    /// The number the next record gets.
    next: u64,
    /// Every record numbered below this has been deleted.
    deleted_below: u64,
}

impl PendingRecords {
    /// Numbers the record of `hash`; `None` if it has one already.
    fn add(&mut self, hash: Hash) -> Option<u64> {
        if self.numbers.contains_key(&hash) {
            return None;
        }
        let number = self.next;
        self.next += 1;
        self.numbers.insert(hash, number);
        self.pending.insert(number);
        Some(number)
    }

    /// Takes back the record `add` numbered for `hash` (its write failed).
    fn take_back(&mut self, hash: &Hash, number: u64) {
        if self.numbers.get(hash) == Some(&number) {
            self.numbers.remove(hash);
            self.pending.remove(&number);
        }
    }

    /// Puts into `batch` the deletion of the records of `hashes` (those that have one):
    /// one range deletion up to the oldest record still pending, and the records above it
    /// one by one.
    fn delete<'a>(
        &mut self,
        hashes: impl IntoIterator<Item = &'a Hash>,
        family: &rocksdb::ColumnFamily,
        batch: &mut WriteBatch,
    ) {
        let mut deleted = Vec::new();
        for hash in hashes {
            if let Some(number) = self.numbers.remove(hash) {
                self.pending.remove(&number);
                deleted.push(number);
            }
        }
        if deleted.is_empty() {
            return;
        }
        let oldest = self.pending.first().copied().unwrap_or(self.next);
        if oldest > self.deleted_below {
            batch.delete_range_cf(family, pending_key(self.deleted_below), pending_key(oldest));
            self.deleted_below = oldest;
        }
        deleted.sort_unstable();
        for number in deleted {
            if number >= self.deleted_below {
                batch.delete_cf(family, pending_key(number));
            }
        }
    }
}

/// The record number a `pending` key holds.
fn parse_pending_key(key: &[u8]) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            cf: CF_PENDING,
            key: interpool_contracts::primitives::to_hex(key),
            message: format!("{} bytes, expected a record number (8)", key.len()),
        })
}

/// The transaction of a `pending` record; under format 1 (`by_hash`), keyed by its hash.
fn decode_pending(
    key: &[u8],
    value: &[u8],
    by_hash: bool,
) -> Result<SignedTransaction, StorageError> {
    let corrupt = |message: String| StorageError::Corrupt {
        cf: CF_PENDING,
        key: interpool_contracts::primitives::to_hex(key),
        message,
    };
    let tx = SignedTransaction::decode(value).map_err(|e| corrupt(e.to_string()))?;
    if by_hash && tx.hash().as_bytes() != key {
        return Err(corrupt("the record is another transaction".into()));
    }
    Ok(tx)
}

/// The families written once per transaction under keys spread over the whole key space
/// (hashes, accounts): every table file flushed from them overlaps all of level 1, so each
/// compaction of level 0 rewrites the whole of level 1.
const WRITTEN_AT_RANDOM: [&str; 5] = [
    CF_TX_INDEX,
    CF_ACCOUNT_INDEX,
    CF_END_TO_END,
    CF_REMEMBERED,
    CF_QUEUE_INDEX,
];

/// Level-0 files of a [`WRITTEN_AT_RANDOM`] family that start a compaction (RocksDB's
/// default is 4): twice as many files per rewrite of level 1. Measured at 4 validators and
/// full load for 180 s (issue 12, alternated runs): the compaction threads' CPU fell from
/// 21.2-22.1 s to 7.4-7.5 s over the four validators, and throughput rose from
/// 8,768-8,893/s to 9,128-9,395/s with the machine no faster. A lookup checks up to twice
/// as many level-0 bloom filters (in memory); writes slow down at 20 files, as before.
const LEVEL0_FILES_TO_COMPACT: i32 = 8;

/// The memory all column families' memtables may take together before RocksDB flushes
/// one (the family holding the oldest memtable). RocksDB's default is 64 MiB per family,
/// twice over: with twelve families a node under load grew past 800 MB of resident memory
/// (issue 12 asks for 500 MB), most of it memtables of write-once indexes that are rarely
/// read back.
const MEMTABLE_BUDGET_BYTES: usize = 96 << 20;

/// The block cache shared by every column family.
const BLOCK_CACHE_BYTES: usize = 32 << 20;

/// The database's options: created if missing, every column family with
/// [`family_options`], memtables within [`MEMTABLE_BUDGET_BYTES`], table files written with
/// direct I/O if `direct_io` (see [`direct_io_works`]).
fn database_options(
    end_to_end_floor: &Arc<AtomicU64>,
    direct_io: bool,
) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES);
    options.set_use_direct_io_for_flush_and_compaction(direct_io);
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let families = COLUMN_FAMILIES
        .iter()
        .map(|name| {
            ColumnFamilyDescriptor::new(*name, family_options(name, &cache, end_to_end_floor))
        })
        .collect();
    (options, families)
}

/// What a [`Store`]'s RocksDB holds in memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Memtables, mutable and immutable (within [`MEMTABLE_BUDGET_BYTES`]).
    pub memtables: u64,
    /// The block cache (within [`BLOCK_CACHE_BYTES`] unless pinned blocks exceed it): data
    /// blocks, and the indexes of the families not looked up per transaction.
    pub block_cache: u64,
    /// The part of the block cache pinned: level 0's indexes, every file's top-level index,
    /// and blocks that reads in progress hold.
    pub block_cache_pinned: u64,
    /// Open table files outside the cache: the readers themselves, and the indexes and
    /// filters of the families looked up per transaction (these grow with the chain).
    pub table_readers: u64,
}

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

// Every column family is created when the database is opened (or the open fails): a
// missing one here is a broken invariant of ours, not something input can cause.
#[allow(clippy::expect_used)]
fn family<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("every column family is created at open")
}

/// Every record of a database summed up ([`Store::summarize`], [`Store::copy_to`]): two
/// databases with the same summary hold the same records, family by family, key by key.
/// Backups record it, and a restore checks it (`crate::backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSummary {
    /// Records (key-value pairs), in all column families.
    pub records: u64,
    /// Their size in bytes (keys and values).
    pub bytes: u64,
    /// A SHA-256 chain over every record, in a fixed order (`ContentDigest` in this
    /// module says how).
    pub digest: Hash,
}

/// The domain of [`ContentDigest`]: no other hash of ours starts from it.
const CONTENT_DIGEST_DOMAIN: &[u8] = b"interpool/store-content/v1";

/// The running digest of [`ContentSummary`]: a SHA-256 chain over the records in the order
/// [`Store::summarize`] reads them (column families by name, keys in order),
/// `d₀ = sha256(domain)`, `dᵢ = sha256(dᵢ₋₁ ‖ len ‖ family ‖ len ‖ key ‖ len ‖ value)`, each
/// length 8 bytes big-endian so that no two sequences of records read alike. A chain of
/// one-shot hashes because this crate hashes through
/// [`interpool_contracts::primitives::sha256`]; records are small, so it costs about one
/// compression per record more than a single SHA-256 stream would.
///
/// A family without records adds nothing: a database of an earlier release, which lacks
/// the families added since, sums up as its copy does (which has them all, empty).
struct ContentDigest {
    records: u64,
    bytes: u64,
    chain: Hash,
}

impl ContentDigest {
    fn new() -> ContentDigest {
        ContentDigest {
            records: 0,
            bytes: 0,
            chain: interpool_contracts::primitives::sha256(&[CONTENT_DIGEST_DOMAIN]),
        }
    }

    fn add(&mut self, name: &str, key: &[u8], value: &[u8]) {
        let length = |bytes: &[u8]| (bytes.len() as u64).to_be_bytes();
        self.chain = interpool_contracts::primitives::sha256(&[
            self.chain.as_bytes(),
            &length(name.as_bytes()),
            name.as_bytes(),
            &length(key),
            key,
            &length(value),
            value,
        ]);
        self.records += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }

    fn finish(self) -> ContentSummary {
        ContentSummary {
            records: self.records,
            bytes: self.bytes,
            digest: self.chain,
        }
    }
}

/// Whether files in `dir` can be written with direct I/O (`O_DIRECT`): a 4 KiB aligned
/// write to a probe file, removed again. RocksDB then writes its table files (flushes and
/// compactions) past the page cache. Through the page cache, a flush left tens of megabytes
/// dirty that the kernel wrote back while the node's synced writes (consensus state, client
/// acknowledgements) waited behind them; and the kernel's copy into the page cache was a
/// tenth of a validator's CPU at one-validator load (issue 12's profile). Measured at one
/// validator, full load, 60 s, alternated: p99 425-580 ms against 957-1,229 ms, the
/// throughput the same. File systems that refuse it (tmpfs before Linux 6.6, some network
/// file systems) answer `false`, and table files go through the page cache as before.
pub fn direct_io_works(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        /// The largest logical block size a device may ask writes to be aligned to.
        const BLOCK: usize = 4096;
        let probe = dir.join("DIRECT_IO_PROBE");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&probe)
            .and_then(|mut file| {
                // An aligned block inside a buffer twice its size.
                let buffer = vec![0u8; 2 * BLOCK];
                let start = buffer.as_ptr().align_offset(BLOCK);
                let block = buffer
                    .get(start..start.saturating_add(BLOCK))
                    .ok_or(std::io::ErrorKind::InvalidInput)?;
                file.write_all(block)?;
                file.sync_all()
            });
        let _ = std::fs::remove_file(&probe);
        written.is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

impl Store {
    /// Opens (or creates) the database in `path`; its table files are written with direct
    /// I/O where the file system takes it ([`direct_io_works`]).
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        std::fs::create_dir_all(path).map_err(StorageError::Folder)?;
        let direct_io = direct_io_works(path);
        tracing::info!(
            path = %path.display(),
            direct_io,
            "opening the database (table files written with direct I/O: {direct_io})"
        );
        let end_to_end_floor = Arc::new(AtomicU64::new(0));
        let (options, families) = database_options(&end_to_end_floor, direct_io);
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let store = Store {
            db,
            pending: Default::default(),
            _scratch: None,
            end_to_end_floor,
            lists_cleared_below: AtomicU64::new(0),
            direct_io,
        };
        // Nothing is read before the layout is known to be one this node reads.
        let format = store.format_version()?;
        let mut batch = WriteBatch::default();
        *store.pending_records() = store.load_pending(format, &mut batch)?;
        if format != Some(STORAGE_FORMAT_VERSION) {
            batch.put_cf(
                store.cf(CF_META),
                KEY_FORMAT,
                STORAGE_FORMAT_VERSION.to_be_bytes(),
            );
        }
        if !batch.is_empty() {
            let mut options = WriteOptions::default();
            options.set_sync(true);
            store.db.write_opt(batch, &options)?;
        }
        Ok(store)
    }

    /// Reads the `pending` records into memory ([`PendingRecords`]). A database of format
    /// 1 (or unversioned) holds them under their transactions' hashes: `batch` gets them
    /// rewritten under record numbers, in the order found. A second record of a transaction
    /// already found is deleted in `batch`.
    fn load_pending(
        &self,
        format: Option<u64>,
        batch: &mut WriteBatch,
    ) -> Result<PendingRecords, StorageError> {
        let by_hash = format != Some(STORAGE_FORMAT_VERSION);
        let family = self.cf(CF_PENDING);
        let mut records = PendingRecords::default();
        for item in self.db.iterator_cf(family, IteratorMode::Start) {
            let (key, value) = item?;
            let hash = decode_pending(&key, &value, by_hash)?.hash();
            if by_hash {
                batch.delete_cf(family, &key);
                if let Some(number) = records.add(hash) {
                    batch.put_cf(family, pending_key(number), &value);
                }
                continue;
            }
            let number = parse_pending_key(&key)?;
            records.next = records.next.max(number.saturating_add(1));
            match records.numbers.entry(hash) {
                std::collections::hash_map::Entry::Occupied(_) => batch.delete_cf(family, &key),
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert(number);
                    records.pending.insert(number);
                }
            }
        }
        Ok(records)
    }

    /// The database's recorded storage format, refused if it is neither
    /// [`STORAGE_FORMAT_VERSION`] nor the format 1 this node upgrades; `None` if none is
    /// recorded (new, or written before the version was: format 1's layout).
    fn format_version(&self) -> Result<Option<u64>, StorageError> {
        match self.meta_height(KEY_FORMAT)? {
            Some(found) if found != STORAGE_FORMAT_VERSION && found != PENDING_BY_HASH_FORMAT => {
                Err(StorageError::Format {
                    found,
                    supported: STORAGE_FORMAT_VERSION,
                })
            }
            recorded => Ok(recorded),
        }
    }

    fn pending_records(&self) -> std::sync::MutexGuard<'_, PendingRecords> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the existing database in `path` read-only, as a RocksDB secondary instance: it
    /// takes no lock, so a running node's database can be read while the node goes on
    /// writing, as it stood at this moment (every block is one atomic batch, so that is a
    /// consistent chain). Nothing is written under `path`; the instance's own logs go to a
    /// temporary folder removed with the store. Writing through it fails.
    pub fn open_secondary(path: &Path) -> Result<Store, StorageError> {
        let scratch = tempfile::Builder::new()
            .prefix("interpool-reader-")
            .tempdir()
            .map_err(StorageError::Scratch)?;
        let mut options = Options::default();
        // A secondary must keep every table file open: the primary may compact and delete
        // files while they are being read.
        options.set_max_open_files(-1);
        // A database an earlier release wrote, not yet opened by this one, lacks the families
        // added since (the end-to-end archive's): a reader opens those there are.
        let existing = DB::list_cf(&options, path)?;
        let families = COLUMN_FAMILIES
            .iter()
            .filter(|name| existing.iter().any(|found| found == *name));
        let db = DB::open_cf_as_secondary(&options, path, scratch.path(), families)?;
        let store = Store {
            db,
            pending: Default::default(),
            _scratch: Some(scratch),
            end_to_end_floor: Arc::new(AtomicU64::new(0)),
            lists_cleared_below: AtomicU64::new(0),
            direct_io: false,
        };
        store.format_version()?;
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        family(&self.db, name)
    }

    /// What RocksDB holds in memory, summed over the column families (for `/metrics`).
    pub fn memory(&self) -> Result<StoreMemory, StorageError> {
        let mut memory = StoreMemory::default();
        // By handle, not [`Self::cf`]: a secondary opened on an older database lacks the
        // families added since ([`Store::open_secondary`]).
        let families: Vec<_> = COLUMN_FAMILIES
            .iter()
            .filter_map(|name| self.db.cf_handle(name))
            .collect();
        for cf in &families {
            let read = |property: &str| -> Result<u64, StorageError> {
                Ok(self.db.property_int_value_cf(cf, property)?.unwrap_or(0))
            };
            memory.memtables = memory
                .memtables
                .saturating_add(read("rocksdb.cur-size-all-mem-tables")?);
            memory.table_readers = memory
                .table_readers
                .saturating_add(read("rocksdb.estimate-table-readers-mem")?);
        }
        // One cache for every family: any family's property reports all of it.
        if let Some(cf) = families.first() {
            let read = |property: &str| -> Result<u64, StorageError> {
                Ok(self.db.property_int_value_cf(cf, property)?.unwrap_or(0))
            };
            memory.block_cache = read("rocksdb.block-cache-usage")?;
            memory.block_cache_pinned = read("rocksdb.block-cache-pinned-usage")?;
        }
        Ok(memory)
    }

    /// Whether this store writes its table files with direct I/O (probed when it was opened,
    /// [`direct_io_works`]); a secondary instance writes none.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    /// The last committed height (0 for an empty store).
    pub fn height(&self) -> Result<u64, StorageError> {
        Ok(self.meta_height(KEY_HEIGHT)?.unwrap_or(0))
    }

    /// A height (or another number) stored in `meta` under `key`.
    fn meta_height(&self, key: &[u8]) -> Result<Option<u64>, StorageError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_META), key)? else {
            return Ok(None);
        };
        let array: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Corrupt {
                cf: CF_META,
                key: String::from_utf8_lossy(key).into_owned(),
                message: format!("{} bytes, expected 8", bytes.len()),
            })?;
        Ok(Some(u64::from_be_bytes(array)))
    }

    /// Binds the database to a chain: records `genesis` the first time, and afterwards
    /// returns the genesis hash it was bound to if that is another one (`None`: this chain).
    pub fn bind_genesis(&self, genesis: &Hash) -> Result<Option<Hash>, StorageError> {
        match self.db.get_cf(self.cf(CF_META), KEY_GENESIS)? {
            Some(bytes) => {
                let stored: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StorageError::Corrupt {
                            cf: CF_META,
                            key: "genesis".into(),
                            message: format!("{} bytes, expected 32", bytes.len()),
                        })?;
                let stored = Hash(stored);
                Ok((stored != *genesis).then_some(stored))
            }
            None => {
                let mut options = WriteOptions::default();
                options.set_sync(true);
                self.db
                    .put_cf_opt(self.cf(CF_META), KEY_GENESIS, genesis.as_bytes(), &options)?;
                Ok(None)
            }
        }
    }

    /// Writes a committed block and everything about it in one atomic batch.
    pub fn commit_block(&self, committed: &CommittedBlock) -> Result<(), StorageError> {
        let stored = self.height()?;
        if committed.height != stored + 1 || committed.outcome.height != committed.height {
            return Err(StorageError::OutOfOrder {
                stored,
                got: committed.height,
            });
        }
        let key = height_key(committed.height);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_BLOCKS), key, &committed.block);
        batch.put_cf(self.cf(CF_CERTIFICATES), key, &committed.certificate);
        batch.put_cf(self.cf(CF_OUTCOMES), key, codec::encode(&committed.outcome));
        // The index is never overwritten: a transaction's first receipt stays its receipt,
        // even if a (byzantine-quorum) block repeats it, in the same block or a later one.
        let hashes: Vec<Hash> = committed
            .outcome
            .receipts
            .iter()
            .map(|r| r.tx_hash)
            .collect();
        // Looking up a validated block's transactions again was 1 % of a validator's CPU.
        let indexed = if committed.checked_new {
            vec![None; hashes.len()]
        } else {
            self.tx_locations(&hashes)?
        };
        let mut written = std::collections::HashSet::with_capacity(hashes.len());
        // Acknowledged here and now in a block: no longer pending (same atomic batch).
        self.pending_records()
            .delete(&hashes, self.cf(CF_PENDING), &mut batch);
        // Index entries go into the batch in key order: RocksDB's memtable (a skip list)
        // then finds each insert's place next to the previous one instead of searching from
        // the top (unsorted, these inserts were 15 % of a validator's CPU at 4,000
        // transfers/s, issue 12's profile).
        let mut locations: Vec<(Hash, [u8; 12])> = Vec::with_capacity(hashes.len());
        for (receipt, known) in committed.outcome.receipts.iter().zip(indexed) {
            if known.is_some() || !written.insert(receipt.tx_hash) {
                continue;
            }
            let mut location = [0; 12];
            location[..8].copy_from_slice(&receipt.height.to_be_bytes());
            location[8..].copy_from_slice(&receipt.index.to_be_bytes());
            locations.push((receipt.tx_hash, location));
        }
        locations.sort_unstable_by_key(|(hash, _)| *hash);
        for (hash, location) in &locations {
            batch.put_cf(self.cf(CF_TX_INDEX), hash.as_bytes(), location);
        }
        let mut account_keys = Vec::with_capacity(committed.parties.len() * 2);
        for (index, parties) in committed.parties.iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| StorageError::OutOfOrder {
                stored,
                got: committed.height,
            })?;
            for account in parties {
                account_keys.push(account_key(account, (committed.height, index)));
            }
        }
        account_keys.sort_unstable();
        account_keys.dedup();
        for key in &account_keys {
            batch.put_cf(self.cf(CF_ACCOUNT_INDEX), key, []);
        }
        let mut end_to_end: Vec<Vec<u8>> = committed
            .end_to_end_ids
            .iter()
            .map(|(signer, id, tx)| end_to_end_key(id, Some(signer), Some(tx)))
            .collect();
        end_to_end.sort_unstable();
        for key in &end_to_end {
            batch.put_cf(self.cf(CF_END_TO_END), key, []);
        }
        if let Some(keys) = &committed.remembered {
            self.put_end_to_end_list(&mut batch, committed.height, keys);
        }
        let outcome = &committed.outcome;
        let fates = (outcome.released.iter().map(|e| (e, QueueFate::Released)))
            .chain(outcome.expired.iter().map(|e| (e, QueueFate::Expired)))
            .chain(
                outcome
                    .dropped
                    .iter()
                    .map(|d| (&d.transfer, QueueFate::of_reason(&d.reason))),
            );
        for (event, fate) in fates {
            let mut record = Vec::with_capacity(9);
            record.extend_from_slice(&committed.height.to_be_bytes());
            record.push(fate.byte());
            batch.put_cf(self.cf(CF_QUEUE_INDEX), event.tx_hash.as_bytes(), record);
        }
        batch.put_cf(self.cf(CF_META), KEY_HEIGHT, key);
        self.db.write(batch)?;
        Ok(())
    }

    /// Puts the end-to-end list of `height` and its index entries into `batch`.
    fn put_end_to_end_list(&self, batch: &mut WriteBatch, height: u64, keys: &[Hash]) {
        batch.put_cf(
            self.cf(CF_REMEMBERED_LISTS),
            height_key(height),
            codec::encode(&keys),
        );
        // In key order, as the transaction index (see above).
        let mut sorted: Vec<&Hash> = keys.iter().collect();
        sorted.sort_unstable();
        for key in sorted {
            batch.put_cf(self.cf(CF_REMEMBERED), key.as_bytes(), height_key(height));
        }
    }

    /// The end-to-end list stored for `height`, if any.
    pub fn remembered_list(&self, height: u64) -> Result<Option<Vec<Hash>>, StorageError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(CF_REMEMBERED_LISTS), height_key(height))?
        else {
            return Ok(None);
        };
        codec::decode(&bytes, MAX_ENTRY_BYTES)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                cf: CF_REMEMBERED_LISTS,
                key: height.to_string(),
                message: e.to_string(),
            })
    }

    /// Writes the end-to-end lists of `lists` that are not here yet (each with its index
    /// entries), for a ledger about to archive them: the lists of blocks replayed at a
    /// start, or of a checkpoint the node started from. A height's list never changes, so
    /// one already here is not written again. Returns how many were written.
    pub fn remember_end_to_end_lists(
        &self,
        lists: &mut dyn Iterator<Item = (u64, &Arc<Vec<Hash>>)>,
    ) -> Result<u64, StorageError> {
        let mut written = 0;
        let mut batch = WriteBatch::default();
        for (height, keys) in lists {
            if self
                .db
                .get_pinned_cf(self.cf(CF_REMEMBERED_LISTS), height_key(height))?
                .is_some()
            {
                continue;
            }
            self.put_end_to_end_list(&mut batch, height, keys);
            written += 1;
            if batch.len() >= CHECKPOINT_BATCH_ENTRIES {
                self.db.write(std::mem::take(&mut batch))?;
            }
        }
        self.db.write(batch)?;
        Ok(written)
    }

    /// Lets the end-to-end lists and index entries of heights below `floor` go: the lists
    /// at once (in steps of [`FORGET_LISTS_STEP`] heights, one range deletion each), the
    /// index entries as RocksDB compacts them. No ledger may still ask about those heights
    /// (the caller keeps those a checkpoint being written needs).
    pub fn forget_end_to_end_below(&self, floor: u64) -> Result<(), StorageError> {
        self.end_to_end_floor.fetch_max(floor, Ordering::Relaxed);
        let cleared = self.lists_cleared_below.load(Ordering::Relaxed);
        if floor >= cleared.saturating_add(FORGET_LISTS_STEP) {
            self.db.delete_range_cf(
                self.cf(CF_REMEMBERED_LISTS),
                height_key(0),
                height_key(floor),
            )?;
            self.lists_cleared_below.store(floor, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes the state after `tip` as a checkpoint, replacing the previous one. The entries
    /// go in batches without fsync; the description is written last and synced, so a
    /// checkpoint is used only once all of it is on disk, and a crash in the middle leaves
    /// the previous checkpoint in place (the partial entries are removed by the next write).
    pub fn write_checkpoint(
        &self,
        tip: &ChainTip,
        entries: &mut dyn Iterator<Item = StateEntry>,
    ) -> Result<CheckpointInfo, StorageError> {
        let cf = self.cf(CF_CHECKPOINTS);
        let start = height_key(tip.height);
        let end = height_key(tip.height.saturating_add(1));
        let previous = self.checkpoint()?.filter(|p| p.height < tip.height);
        self.db.delete_range_cf(cf, start, end)?;
        let mut info = CheckpointInfo::of(tip);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = codec::encode(&entry);
            info.entries += 1;
            info.bytes += value.len() as u64;
            batch.put_cf(cf, checkpoint_key(tip.height, &entry.key.tree_key()), value);
            if batch.len() >= CHECKPOINT_BATCH_ENTRIES {
                self.db.write(std::mem::take(&mut batch))?;
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        batch.put_cf(self.cf(CF_META), KEY_CHECKPOINT, codec::encode(&info));
        match &previous {
            Some(previous) => batch.put_cf(
                self.cf(CF_META),
                KEY_PREVIOUS_CHECKPOINT,
                codec::encode(previous),
            ),
            None => batch.delete_cf(self.cf(CF_META), KEY_PREVIOUS_CHECKPOINT),
        }
        self.db.write_opt(batch, &options)?;
        // Older checkpoints (and leftovers of unfinished ones) go; the previous one stays,
        // for a state sync that is fetching it.
        let keep_from = previous.as_ref().map_or(tip.height, |p| p.height);
        self.db
            .delete_range_cf(cf, height_key(0), height_key(keep_from))?;
        if let Some(previous) = &previous {
            self.db
                .delete_range_cf(cf, height_key(previous.height.saturating_add(1)), start)?;
        }
        self.db
            .delete_range_cf(cf, end.as_slice(), [0xff; 9].as_slice())?;
        Ok(info)
    }

    /// The last complete checkpoint.
    pub fn checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError> {
        self.checkpoint_record(KEY_CHECKPOINT)
    }

    /// The complete checkpoint before the last one, kept for state sync.
    pub fn previous_checkpoint(&self) -> Result<Option<CheckpointInfo>, StorageError> {
        self.checkpoint_record(KEY_PREVIOUS_CHECKPOINT)
    }

    fn checkpoint_record(&self, key: &[u8]) -> Result<Option<CheckpointInfo>, StorageError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_META), key)? else {
            return Ok(None);
        };
        codec::decode(&bytes, MAX_CHECKPOINT_INFO_BYTES)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                cf: CF_META,
                key: String::from_utf8_lossy(key).into_owned(),
                message: e.to_string(),
            })
    }

    /// The checkpoint at `height`'s entries in tree-key order, those after `after` (from the
    /// first when `None`), at most `limit`.
    pub fn checkpoint_entries(
        &self,
        height: u64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<StateEntry>, StorageError> {
        let from = match after {
            // The key just past `after`: `after` itself, one more byte.
            Some(key) => [checkpoint_key(height, key).as_slice(), &[0]].concat(),
            None => height_key(height).to_vec(),
        };
        let mut entries = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_CHECKPOINTS),
            IteratorMode::From(&from, Direction::Forward),
        );
        for item in iter {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if key.get(..8) != Some(height_key(height).as_slice()) {
                break;
            }
            let corrupt = |message: String| StorageError::Corrupt {
                cf: CF_CHECKPOINTS,
                key: interpool_contracts::primitives::to_hex(&key),
                message,
            };
            let entry: StateEntry = codec::decode(&value, MAX_ENTRY_BYTES + 1024)
                .map_err(|e| corrupt(e.to_string()))?;
            if key.get(8..) != Some(entry.key.tree_key().as_bytes().as_slice()) {
                return Err(corrupt("the entry is not the one its key names".into()));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Copies every record of every column family into a new database at `path` (which
    /// must not exist yet), as this store stands now: a secondary instance stands still
    /// between catch-ups, and every commit is one atomic batch, so the copy is a consistent
    /// chain. Returns the [`ContentSummary`] of what was read (and so written), reading as
    /// [`Self::summarize`] does: a backup records it, and a restore, which copies the backup
    /// the same way, compares it with the backup's record. Reading fails with
    /// [`StorageError::Unreadable`]; writing the copy, with [`StorageError::Db`].
    pub fn copy_to(&self, path: &Path) -> Result<ContentSummary, StorageError> {
        // Written once and then read by a node started on it: through the page cache.
        let (mut options, families) = database_options(&Arc::new(AtomicU64::new(0)), false);
        options.set_error_if_exists(true);
        let copy = DB::open_cf_descriptors(&options, path, families)?;
        // No write-ahead log: the copy is flushed to table files at the end, and a copy cut
        // short has no backup.json (restore requires one) or is never renamed into place
        // (restore writes it under a temporary name).
        let mut unlogged = WriteOptions::default();
        unlogged.disable_wal(true);
        let mut batch = WriteBatch::default();
        let summary = self.scan(|name, key, value| {
            batch.put_cf(family(&copy, name), key, value);
            if batch.len() >= CHECKPOINT_BATCH_ENTRIES {
                copy.write_opt(std::mem::take(&mut batch), &unlogged)?;
            }
            Ok(())
        })?;
        copy.write_opt(batch, &unlogged)?;
        for name in COLUMN_FAMILIES {
            copy.flush_cf(family(&copy, name))?;
        }
        Ok(summary)
    }

    /// Reads every record of every column family and sums them up ([`ContentSummary`]).
    /// Every read verifies RocksDB's block checksums, so a missing or damaged table file is
    /// an error ([`StorageError::Unreadable`]), never a summary of fewer records.
    pub fn summarize(&self) -> Result<ContentSummary, StorageError> {
        self.scan(|_, _, _| Ok(()))
    }

    /// Passes every record to `visit`, column families by name and keys in order (the
    /// order of [`ContentDigest`]), and sums them up. The families this store lacks (a
    /// database of an earlier release, opened as a secondary) hold nothing. One bulk scan:
    /// checksums verified, the block cache left alone. Stops at the first error, its own or
    /// `visit`'s.
    fn scan(
        &self,
        mut visit: impl FnMut(&'static str, &[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<ContentSummary, StorageError> {
        // By name rather than by the order of `COLUMN_FAMILIES`, so that the digest does not
        // change with that list's order.
        let mut names = COLUMN_FAMILIES;
        names.sort_unstable();
        let mut digest = ContentDigest::new();
        for name in names {
            let Some(handle) = self.db.cf_handle(name) else {
                continue;
            };
            let mut read = ReadOptions::default();
            read.set_verify_checksums(true);
            read.fill_cache(false);
            for item in self.db.iterator_cf_opt(handle, read, IteratorMode::Start) {
                let (key, value) =
                    item.map_err(|source| StorageError::Unreadable { cf: name, source })?;
                digest.add(name, &key, &value);
                visit(name, &key, &value)?;
            }
        }
        Ok(digest.finish())
    }

    /// The lowest height whose block is stored: 1 unless pruned ([`Self::prune_below`]).
    pub fn earliest_height(&self) -> Result<u64, StorageError> {
        Ok(self.meta_height(KEY_EARLIEST)?.unwrap_or(1))
    }

    /// Deletes every block below `floor` with everything stored about it: certificate,
    /// outcome, its transactions' index entries, its queue events, its account-history
    /// entries. A few dozen heights per atomic batch, each batch moving `earliest` up with
    /// it, so a crash leaves a store whose every height from `earliest` up is whole.
    /// Returns how many heights were removed. The caller keeps what state sync and a
    /// start need (the last checkpoint's height and everything above it).
    pub fn prune_below(&self, floor: u64) -> Result<u64, StorageError> {
        let floor = floor.min(self.height()?.saturating_add(1));
        let mut earliest = self.earliest_height()?;
        let mut pruned = 0;
        while earliest < floor {
            let until = floor.min(earliest.saturating_add(PRUNE_BATCH_HEIGHTS));
            let mut batch = WriteBatch::default();
            for height in earliest..until {
                if let Some(outcome) = self.outcome(height)? {
                    for receipt in &outcome.receipts {
                        // Only the transaction's own first receipt is its index entry.
                        if self.tx_location(&receipt.tx_hash)? == Some((height, receipt.index)) {
                            batch.delete_cf(self.cf(CF_TX_INDEX), receipt.tx_hash.as_bytes());
                        }
                    }
                    let dropped = outcome.dropped.iter().map(|d| &d.transfer);
                    for event in outcome
                        .released
                        .iter()
                        .chain(&outcome.expired)
                        .chain(dropped)
                    {
                        batch.delete_cf(self.cf(CF_QUEUE_INDEX), event.tx_hash.as_bytes());
                    }
                }
                if let Some(bytes) = self.block(height)? {
                    let block =
                        interpool_contracts::Block::decode(&bytes, u64::MAX).map_err(|e| {
                            StorageError::Corrupt {
                                cf: CF_BLOCKS,
                                key: height.to_string(),
                                message: e.to_string(),
                            }
                        })?;
                    for (index, tx) in block.transactions.iter().enumerate() {
                        if let interpool_contracts::tx::Body::Transfer { end_to_end_id, .. } =
                            &tx.tx.body
                        {
                            batch.delete_cf(
                                self.cf(CF_END_TO_END),
                                end_to_end_key(
                                    end_to_end_id,
                                    Some(&tx.tx.signer),
                                    Some(&tx.hash()),
                                ),
                            );
                        }
                        let index = u32::try_from(index).unwrap_or(u32::MAX);
                        for account in tx.tx.parties() {
                            batch.delete_cf(
                                self.cf(CF_ACCOUNT_INDEX),
                                account_key(&account, (height, index)),
                            );
                        }
                    }
                }
            }
            for cf in [CF_BLOCKS, CF_CERTIFICATES, CF_OUTCOMES] {
                batch.delete_range_cf(self.cf(cf), height_key(earliest), height_key(until));
            }
            batch.put_cf(self.cf(CF_META), KEY_EARLIEST, height_key(until));
            self.db.write(batch)?;
            pruned += until - earliest;
            earliest = until;
        }
        Ok(pruned)
    }

    /// Makes the checkpoint at `height` (written, and above every stored block, which the
    /// caller pruned) the chain's start: the stored height becomes `height` and the earliest
    /// stored block the next one. State sync's last step, in one synced batch; repeated
    /// after a crash by the next start ([`crate::app::Core::open`]).
    pub fn adopt_checkpoint(&self, height: u64) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), KEY_HEIGHT, height_key(height));
        batch.put_cf(
            self.cf(CF_META),
            KEY_EARLIEST,
            height_key(height.saturating_add(1)),
        );
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// The genesis hash the database is bound to (`None`: a new database).
    pub fn genesis(&self) -> Result<Option<Hash>, StorageError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_META), KEY_GENESIS)? else {
            return Ok(None);
        };
        let stored: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Corrupt {
                cf: CF_META,
                key: "genesis".into(),
                message: format!("{} bytes, expected 32", bytes.len()),
            })?;
        Ok(Some(Hash(stored)))
    }

    /// The encoded block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(CF_BLOCKS), height_key(height))?)
    }

    /// The encoded commit certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_CERTIFICATES), height_key(height))?)
    }

    /// The execution outcome of the block at `height`.
    pub fn outcome(&self, height: u64) -> Result<Option<BlockOutcome>, StorageError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_OUTCOMES), height_key(height))? else {
            return Ok(None);
        };
        let outcome: BlockOutcome =
            codec::decode(&bytes, MAX_OUTCOME_BYTES).map_err(|e| StorageError::Corrupt {
                cf: CF_OUTCOMES,
                key: height.to_string(),
                message: e.to_string(),
            })?;
        if outcome.height != height {
            return Err(StorageError::Corrupt {
                cf: CF_OUTCOMES,
                key: height.to_string(),
                message: format!("outcome is for height {}", outcome.height),
            });
        }
        Ok(Some(outcome))
    }

    /// Where a transaction's receipt is: `(height, index)`.
    pub fn tx_location(&self, tx_hash: &Hash) -> Result<Option<Location>, StorageError> {
        match self.db.get_cf(self.cf(CF_TX_INDEX), tx_hash.as_bytes())? {
            None => Ok(None),
            Some(bytes) => parse_location(tx_hash, &bytes).map(Some),
        }
    }

    /// [`Self::tx_location`] of many transactions at once (one batched lookup).
    pub fn tx_locations(&self, hashes: &[Hash]) -> Result<Vec<Option<Location>>, StorageError> {
        let cf = self.cf(CF_TX_INDEX);
        self.db
            .batched_multi_get_cf(cf, hashes.iter().map(Hash::as_bytes), false)
            .into_iter()
            .zip(hashes)
            .map(|(found, hash)| match found? {
                None => Ok(None),
                Some(bytes) => parse_location(hash, &bytes).map(Some),
            })
            .collect()
    }

    /// Whether `account` is a party to the transaction at `location` (its history holds it).
    pub fn is_party(&self, account: &AccountId, location: Location) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_ACCOUNT_INDEX), account_key(account, location))?
            .is_some())
    }

    /// The receipts `account` is a party to, newest first, strictly older than `before`
    /// (all when `None`), at most `limit`.
    pub fn account_history(
        &self,
        account: &AccountId,
        before: Option<Location>,
        limit: usize,
    ) -> Result<Vec<Location>, StorageError> {
        let start = match before {
            // Keys are big-endian, so the entry just below `before` comes first in reverse.
            Some(location) => account_key(account, location),
            None => account_key(account, (u64::MAX, u32::MAX)),
        };
        let mut found = Vec::new();
        let iterator = self.db.iterator_cf(
            self.cf(CF_ACCOUNT_INDEX),
            IteratorMode::From(&start, Direction::Reverse),
        );
        for item in iterator {
            if found.len() >= limit {
                break;
            }
            let (key, _) = item?;
            // Keys are `account ‖ height ‖ index`: 32 + 8 + 4 bytes.
            let (Some(owner), Some(height), Some(index)) = (
                key.get(..32),
                key.get(32..40).and_then(|b| <[u8; 8]>::try_from(b).ok()),
                key.get(40..).and_then(|b| <[u8; 4]>::try_from(b).ok()),
            ) else {
                break;
            };
            if owner != account.0 {
                break;
            }
            let location = (u64::from_be_bytes(height), u32::from_be_bytes(index));
            if Some(location) == before {
                continue;
            }
            found.push(location);
        }
        Ok(found)
    }

    /// The transfers included with `end_to_end_id` (of `signer` only, if given):
    /// `(signer, transaction hash)`, at most `limit`, by signer.
    pub fn transfers_by_end_to_end_id(
        &self,
        end_to_end_id: &str,
        signer: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, Hash)>, StorageError> {
        let prefix = end_to_end_key(end_to_end_id, signer, None);
        let base = end_to_end_key(end_to_end_id, None, None);
        let mut found = Vec::new();
        let iterator = self.db.iterator_cf(
            self.cf(CF_END_TO_END),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iterator {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(rest) = key.strip_prefix(base.as_slice()) else {
                break;
            };
            let (Some(signer), Some(tx)) = (
                rest.get(..32).and_then(|b| <[u8; 32]>::try_from(b).ok()),
                rest.get(32..).and_then(|b| <[u8; 32]>::try_from(b).ok()),
            ) else {
                return Err(StorageError::Corrupt {
                    cf: CF_END_TO_END,
                    key: end_to_end_id.to_string(),
                    message: format!("bad key of {} bytes", key.len()),
                });
            };
            found.push((AccountId(signer), Hash(tx)));
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }

    /// The distinct signers of transfers included with `end_to_end_id`, at most `max`, by
    /// id: one seek per signer, however many transfers each has.
    pub fn end_to_end_signers(
        &self,
        end_to_end_id: &str,
        max: usize,
    ) -> Result<Vec<AccountId>, StorageError> {
        let base = end_to_end_key(end_to_end_id, None, None);
        let mut signers: Vec<AccountId> = Vec::new();
        let mut from = base.clone();
        while signers.len() < max {
            let mut iterator = self.db.iterator_cf(
                self.cf(CF_END_TO_END),
                IteratorMode::From(&from, Direction::Forward),
            );
            let Some(item) = iterator.next() else {
                break;
            };
            let (key, _) = item?;
            let Some(signer) = key
                .strip_prefix(base.as_slice())
                .and_then(|rest| rest.get(..32))
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                break;
            };
            let signer = AccountId(signer);
            signers.push(signer);
            // Past every key of this signer.
            from = end_to_end_key(end_to_end_id, Some(&signer), Some(&Hash([0xff; 32])));
            from.push(0xff);
        }
        Ok(signers)
    }

    /// Writes the statements of a closed cycle (every bank's) and records the cycle as the
    /// last one written, in one batch. `statements` may be empty: the cycle's statements
    /// cannot be made on this node (its blocks are not here), and it is recorded as done.
    pub fn write_statements(
        &self,
        cycle: u64,
        statements: &[interpool_contracts::statement::BankStatement],
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for statement in statements {
            batch.put_cf(
                self.cf(CF_STATEMENTS),
                statement_key(cycle, &statement.bank),
                codec::encode(statement),
            );
        }
        batch.put_cf(self.cf(CF_META), KEY_STATEMENTS, height_key(cycle));
        // Synced: a checkpoint written after it relies on it (ADR 0012).
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// The last cycle whose statements were written (0: none).
    pub fn statements_through(&self) -> Result<u64, StorageError> {
        Ok(self.meta_height(KEY_STATEMENTS)?.unwrap_or(0))
    }

    /// A bank's statement of a closed cycle, if this node has it.
    pub fn statement(
        &self,
        cycle: u64,
        bank: &interpool_contracts::BankId,
    ) -> Result<Option<interpool_contracts::statement::BankStatement>, StorageError> {
        let key = statement_key(cycle, bank);
        let Some(bytes) = self.db.get_cf(self.cf(CF_STATEMENTS), &key)? else {
            return Ok(None);
        };
        let corrupt = |message: String| StorageError::Corrupt {
            cf: CF_STATEMENTS,
            key: format!("{cycle}/{bank}"),
            message,
        };
        let statement: interpool_contracts::statement::BankStatement =
            codec::decode(&bytes, MAX_STATEMENT_BYTES).map_err(|e| corrupt(e.to_string()))?;
        if statement.cycle != cycle || &statement.bank != bank {
            return Err(corrupt("the record is another statement".into()));
        }
        Ok(Some(statement))
    }

    /// If a queued transfer has left its queue: at which height, and how.
    pub fn queue_fate(&self, tx_hash: &Hash) -> Result<Option<(u64, QueueFate)>, StorageError> {
        let Some(bytes) = self
            .db
            .get_cf(self.cf(CF_QUEUE_INDEX), tx_hash.as_bytes())?
        else {
            return Ok(None);
        };
        let corrupt = || StorageError::Corrupt {
            cf: CF_QUEUE_INDEX,
            key: tx_hash.to_hex(),
            message: format!("bad record of {} bytes", bytes.len()),
        };
        let height: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let fate = match bytes.get(8..) {
            Some([1]) => QueueFate::Released,
            Some([2]) => QueueFate::Expired,
            Some([3]) => QueueFate::Cancelled,
            Some([4]) => QueueFate::RejectTime,
            Some([5]) => QueueFate::Cutoff,
            _ => return Err(corrupt()),
        };
        Ok(Some((u64::from_be_bytes(height), fate)))
    }

    /// **Forensics and tests only: the node never calls this.** Replaces the raw bytes of
    /// one record of an already committed height, bypassing every check and leaving the
    /// indexes and the other records as they are. Tests use it to tamper with a store and
    /// prove that `interpool-node audit` (and the replay on open) catch the change; an
    /// investigator may use it to reproduce a reported corruption on a copy of a data
    /// directory. Refuses a height that was never committed (it cannot extend the chain).
    pub fn overwrite_record(
        &self,
        kind: RecordKind,
        height: u64,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let stored = self.height()?;
        if height == 0 || height > stored {
            return Err(StorageError::OutOfOrder {
                stored,
                got: height,
            });
        }
        let cf = match kind {
            RecordKind::Block => CF_BLOCKS,
            RecordKind::Certificate => CF_CERTIFICATES,
            RecordKind::Outcome => CF_OUTCOMES,
        };
        self.db.put_cf(self.cf(cf), height_key(height), bytes)?;
        Ok(())
    }

    /// Durably saves the consensus engine's state (one synced write): call before sending
    /// any message it guards. `add` are payloads the state refers to by digest and that are
    /// not stored yet; `remove` those it no longer refers to. Payloads are written once, not
    /// with every signature.
    pub fn save_consensus_state(
        &self,
        state: &[u8],
        add: &[(&[u8; 32], &[u8])],
        remove: &[[u8; 32]],
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for (digest, payload) in add {
            batch.put_cf(self.cf(CF_CONSENSUS), payload_key(digest), payload);
        }
        for digest in remove {
            batch.delete_cf(self.cf(CF_CONSENSUS), payload_key(digest));
        }
        batch.put_cf(self.cf(CF_CONSENSUS), KEY_CONSENSUS_STATE, state);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Durably records transactions this node acknowledged to a client (one synced batch):
    /// they survive a crash and are offered again after a restart, until they commit.
    pub fn save_pending(&self, txs: &[VerifiedTransaction]) -> Result<(), StorageError> {
        if txs.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let mut numbered = Vec::with_capacity(txs.len());
        let mut records = self.pending_records();
        for tx in txs {
            let hash = tx.hash();
            // A transaction recorded already keeps its record.
            if let Some(number) = records.add(hash) {
                batch.put_cf(
                    self.cf(CF_PENDING),
                    pending_key(number),
                    tx.signed().encode(),
                );
                numbered.push((hash, number));
            }
        }
        drop(records);
        if batch.is_empty() {
            return Ok(());
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        if let Err(error) = self.db.write_opt(batch, &options) {
            // Not on disk: a later attempt must write them.
            let mut records = self.pending_records();
            for (hash, number) in &numbered {
                records.take_back(hash, *number);
            }
            return Err(error.into());
        }
        Ok(())
    }

    /// Forgets acknowledged transactions that can no longer commit (stale, expired).
    /// Only those recorded here are written (what the mempool drops came mostly from
    /// gossip, with no record).
    pub fn forget_pending(&self, hashes: &[Hash]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.pending_records()
            .delete(hashes, self.cf(CF_PENDING), &mut batch);
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Every acknowledged transaction not yet committed, in the order they were recorded
    /// (records that do not decode are reported, not trusted).
    pub fn pending_transactions(&self) -> Result<Vec<SignedTransaction>, StorageError> {
        let mut txs = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_PENDING), IteratorMode::Start)
        {
            let (key, value) = item?;
            parse_pending_key(&key)?;
            txs.push(decode_pending(&key, &value, false)?);
        }
        Ok(txs)
    }

    /// A payload saved with the consensus state, by digest.
    pub fn consensus_payload(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(CF_CONSENSUS), payload_key(digest))?)
    }

    /// The consensus engine's last saved state.
    pub fn consensus_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(CF_CONSENSUS), KEY_CONSENSUS_STATE)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::outcome::{Outcome, Receipt};

    fn committed(height: u64, tx: u8) -> CommittedBlock {
        CommittedBlock {
            end_to_end_ids: Vec::new(),
            remembered: None,
            checked_new: false,
            height,
            block: vec![height as u8; 10],
            certificate: vec![7; 5],
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
            parties: vec![vec![AccountId([tx; 32]), AccountId([9; 32])]],
        }
    }

    #[test]
    fn the_end_to_end_archive_answers_what_was_committed_and_lets_the_window_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (a, b, c) = (Hash([0xaa; 32]), Hash([0xbb; 32]), Hash([0xcc; 32]));
        let mut first = committed(1, 1);
        first.remembered = Some(Arc::new(vec![b, a]));
        store.commit_block(&first).expect("commit 1");
        store.commit_block(&committed(2, 2)).expect("commit 2");
        assert_eq!(store.latest(&a), Some(1));
        assert_eq!(store.latest(&b), Some(1));
        assert_eq!(store.latest(&c), None);
        assert_eq!(*store.list(1), vec![b, a], "the block's order");
        // Asked at once, in any order, each key answers as it does alone.
        for keys in [vec![a, b, c], vec![c, b, a, c], vec![]] {
            let alone: Vec<Option<u64>> = keys.iter().map(|key| store.latest(key)).collect();
            assert_eq!(store.latest_of_many(&keys), alone);
        }
        // A start writes only what is not there yet; a height's list never changes.
        let later = Arc::new(vec![a, c]);
        let again = Arc::new(vec![Hash([0xdd; 32])]);
        let written = store
            .remember_end_to_end_lists(&mut [(1, &again), (3, &later)].into_iter())
            .expect("remember");
        assert_eq!(written, 1);
        assert_eq!(*store.list(1), vec![b, a]);
        assert_eq!(store.latest(&a), Some(3), "the latest height");
        assert_eq!(store.latest(&Hash([0xdd; 32])), None);
        // Below the floor: the lists go at once, the index entries as RocksDB compacts.
        store
            .forget_end_to_end_below(FORGET_LISTS_STEP + 2)
            .expect("forget");
        let lists = store.cf(CF_REMEMBERED_LISTS);
        assert!(store
            .db
            .get_cf(lists, height_key(1))
            .expect("read")
            .is_none());
        assert!(store
            .db
            .get_cf(lists, height_key(3))
            .expect("read")
            .is_none());
        store.db.flush_cf(store.cf(CF_REMEMBERED)).expect("flush");
        store
            .db
            .compact_range_cf(store.cf(CF_REMEMBERED), None::<&[u8]>, None::<&[u8]>);
        assert_eq!(store.latest(&a), None);
        assert_eq!(store.latest(&b), None);
        assert_eq!(store.latest_of_many(&[a, b, c]), vec![None; 3]);
        // Reopened, it still opens every family.
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.latest(&c), None);
        assert_eq!(store.height().expect("height"), 2);
    }

    /// A block of `count` transactions with hashes and parties spread over the key space,
    /// as real ones are.
    fn committed_many(height: u64, count: u32) -> CommittedBlock {
        let spread = |index: u32, salt: u8| {
            let mut bytes = [salt; 32];
            bytes[..8].copy_from_slice(&height.to_le_bytes());
            bytes[8..12].copy_from_slice(&index.to_le_bytes());
            interpool_contracts::primitives::sha256(&[&bytes])
        };
        let mut block = committed(height, 0);
        block.outcome.receipts = (0..count)
            .map(|index| Receipt {
                tx_hash: spread(index, 1),
                height,
                index,
                outcome: Outcome::Committed,
            })
            .collect();
        block.parties = (0..count)
            .map(|index| vec![AccountId(spread(index, 2).0), AccountId(spread(index, 3).0)])
            .collect();
        block
    }

    #[test]
    fn the_families_written_at_random_compact_level_0_at_eight_files_the_others_at_four() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let property = |name: &'static str, property: &str| {
            store
                .db
                .property_int_value_cf(store.cf(name), property)
                .expect("property")
                .unwrap_or(0)
        };
        let level0 = |name| property(name, "rocksdb.num-files-at-level0");
        for height in 1..=6 {
            store
                .commit_block(&committed_many(height, 200))
                .expect("commit");
            for name in [CF_BLOCKS, CF_TX_INDEX, CF_ACCOUNT_INDEX] {
                store.db.flush_cf(store.cf(name)).expect("flush");
            }
        }
        // Wait for the compactions the flushes started.
        crate::testkit::wait_for_blocking(
            std::time::Duration::from_secs(60),
            "the compactions to finish",
            || {
                let pending: u64 = [CF_BLOCKS, CF_TX_INDEX, CF_ACCOUNT_INDEX]
                    .iter()
                    .map(|name| property(name, "rocksdb.compaction-pending"))
                    .sum();
                let running = store
                    .db
                    .property_int_value("rocksdb.num-running-compactions")
                    .expect("property")
                    .unwrap_or(0);
                pending == 0 && running == 0
            },
        );
        // The blocks (keyed by height) compacted at four files: two are left.
        assert!(level0(CF_BLOCKS) < 6, "{} blocks files", level0(CF_BLOCKS));
        for name in [CF_TX_INDEX, CF_ACCOUNT_INDEX] {
            assert_eq!(level0(name), 6, "{name}");
        }
        // Lookups read through the six files.
        let found = store
            .tx_locations(&[
                committed_many(2, 200).outcome.receipts[7].tx_hash,
                committed_many(6, 200).outcome.receipts[199].tx_hash,
                Hash([0x5a; 32]),
            ])
            .expect("lookup");
        assert_eq!(found, vec![Some((2, 7)), Some((6, 199)), None]);
    }

    #[test]
    fn table_files_are_written_with_direct_io_where_the_file_system_takes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let works = direct_io_works(dir.path());
        // The probe leaves nothing behind; a folder it cannot write to says no.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        assert!(!direct_io_works(&dir.path().join("missing")));
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).expect("open");
            for height in 1..=3 {
                store
                    .commit_block(&committed_many(height, 200))
                    .expect("commit");
                store.db.flush().expect("flush");
            }
            // A compaction reads and writes table files the same way.
            store
                .db
                .compact_range_cf(store.cf(CF_TX_INDEX), None::<&[u8]>, None::<&[u8]>);
        }
        // RocksDB records the option it ran with: what the probe found.
        let options: String = std::fs::read_dir(&path)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("OPTIONS-"))
            .map(|entry| std::fs::read_to_string(entry.path()).expect("read"))
            .collect();
        assert!(
            options.contains(&format!("use_direct_io_for_flush_and_compaction={works}")),
            "direct I/O {works} not in the options file"
        );
        // Everything written comes back from the table files after a restart.
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.direct_io(), works);
        assert_eq!(store.height().expect("height"), 3);
        let found = store
            .tx_locations(&[
                committed_many(1, 200).outcome.receipts[0].tx_hash,
                committed_many(3, 200).outcome.receipts[199].tx_hash,
            ])
            .expect("lookup");
        assert_eq!(found, vec![Some((1, 0)), Some((3, 199))]);
        assert!(!path.join("DIRECT_IO_PROBE").exists());
    }

    #[test]
    fn the_memory_for_table_files_does_not_grow_with_the_chain() {
        // Before, RocksDB held every table file's index and bloom filter outside the block
        // cache: a node's memory grew with its chain. Now only the families looked up per
        // transaction keep theirs there (for speed); the others are read through the
        // bounded cache, and only their table readers stay outside it.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let outside_the_cache = |store: &Store| -> u64 {
            COLUMN_FAMILIES
                .iter()
                .filter(|name| !LOOKED_UP_PER_TRANSACTION.contains(name))
                .map(|name| {
                    store
                        .db
                        .property_int_value_cf(store.cf(name), "rocksdb.estimate-table-readers-mem")
                        .expect("property")
                        .unwrap_or(0)
                })
                .sum()
        };
        let mut height = 0;
        let mut readers = Vec::new();
        for _ in 0..2 {
            for _ in 0..50 {
                height += 1;
                store
                    .commit_block(&committed_many(height, 2_000))
                    .expect("commit");
            }
            for name in COLUMN_FAMILIES {
                store.db.flush_cf(store.cf(name)).expect("flush");
            }
            readers.push(outside_the_cache(&store));
        }
        // 200,000 transactions in 2 flushes: outside the cache, the other families' indexes
        // and the table readers took 100 KB (50 KB more with each flush, as many bytes as
        // keys); now only the readers stay there, about 1.5 KB a table file (21 KB).
        let last = readers.last().copied().unwrap_or(u64::MAX);
        assert!(
            last < 48 << 10,
            "{last} bytes outside the cache ({readers:?})"
        );
        let growth = readers.windows(2).map(|w| w[1].saturating_sub(w[0])).max();
        assert!(
            growth.is_some_and(|bytes| bytes < 24 << 10),
            "grew by {growth:?} bytes in a flush ({readers:?})"
        );
        // Compacted below level 0, where only each file's top level stays pinned and the
        // rest of its index is read through the cache as needed: the same.
        for name in COLUMN_FAMILIES {
            store
                .db
                .compact_range_cf(store.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
        let compacted = outside_the_cache(&store);
        assert!(compacted < 48 << 10, "{compacted} bytes outside the cache");
        // What `/metrics` reports sums every family: the transaction index's filter (10 bits
        // a key) stays outside the cache.
        let memory = store.memory().expect("memory");
        assert!(memory.table_readers > compacted + (100 << 10), "{memory:?}");
        // Lookups still find what is there and refuse what is not.
        let found = store
            .tx_locations(&[
                committed_many(1, 2_000).outcome.receipts[1_999].tx_hash,
                Hash([0x5a; 32]),
            ])
            .expect("lookup");
        assert_eq!(found, vec![Some((1, 1_999)), None]);
        for (height, index) in [(7, 5), (93, 1_998)] {
            let block = committed_many(height, 2_000);
            let account = &block.parties[index as usize][1];
            let history = store.account_history(account, None, 10).expect("history");
            assert_eq!(history, vec![(height, index)]);
        }
    }

    #[test]
    fn blocks_commit_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(store.height().expect("height"), 0);
            store.commit_block(&committed(1, 0xa1)).expect("commit 1");
            store.commit_block(&committed(2, 0xa2)).expect("commit 2");
            assert!(matches!(
                store.commit_block(&committed(4, 0xa4)),
                Err(StorageError::OutOfOrder { stored: 2, got: 4 })
            ));
            store.save_consensus_state(b"lock", &[], &[]).expect("save");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.height().expect("height"), 2);
        assert_eq!(store.block(2).expect("read"), Some(vec![2; 10]));
        assert_eq!(store.certificate(1).expect("read"), Some(vec![7; 5]));
        assert_eq!(
            store.outcome(2).expect("read"),
            Some(committed(2, 0xa2).outcome)
        );
        assert_eq!(store.block(3).expect("read"), None);
        assert_eq!(
            store.tx_location(&Hash([0xa1; 32])).expect("index"),
            Some((1, 0))
        );
        assert_eq!(store.tx_location(&Hash([0xff; 32])).expect("index"), None);
        let shared = AccountId([9; 32]);
        assert_eq!(
            store.account_history(&shared, None, 10).expect("history"),
            vec![(2, 0), (1, 0)]
        );
        assert_eq!(
            store.account_history(&shared, None, 1).expect("history"),
            vec![(2, 0)]
        );
        assert_eq!(
            store
                .account_history(&shared, Some((2, 0)), 10)
                .expect("history"),
            vec![(1, 0)]
        );
        assert_eq!(
            store
                .account_history(&AccountId([0xa1; 32]), None, 10)
                .expect("history"),
            vec![(1, 0)]
        );
        assert!(store
            .account_history(&AccountId([0x55; 32]), None, 10)
            .expect("history")
            .is_empty());
        assert_eq!(
            store.consensus_state().expect("state"),
            Some(b"lock".to_vec())
        );
    }

    #[test]
    fn a_transactions_first_receipt_stays_its_receipt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.commit_block(&committed(1, 0xa1)).expect("commit 1");
        // Block 2 repeats the transaction (only a byzantine quorum could certify that), and
        // holds it twice.
        let mut repeat = committed(2, 0xa1);
        let mut second = repeat.outcome.receipts[0].clone();
        second.index = 1;
        repeat.outcome.receipts.push(second);
        repeat.parties.push(vec![]);
        store.commit_block(&repeat).expect("commit 2");
        assert_eq!(
            store.tx_location(&Hash([0xa1; 32])).expect("index"),
            Some((1, 0))
        );
        let mut third = committed(3, 0xa3);
        let mut again = third.outcome.receipts[0].clone();
        again.index = 1;
        third.outcome.receipts.push(again);
        third.parties.push(vec![]);
        store.commit_block(&third).expect("commit 3");
        assert_eq!(
            store
                .tx_locations(&[Hash([0xa3; 32]), Hash([0xa1; 32]), Hash([0xff; 32])])
                .expect("index"),
            vec![Some((3, 0)), Some((1, 0)), None]
        );
    }

    #[test]
    fn a_block_checked_new_is_indexed_as_any_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.commit_block(&committed(1, 0xb1)).expect("commit 1");
        let mut checked = committed(2, 0xb2);
        checked.checked_new = true;
        store.commit_block(&checked).expect("commit 2");
        assert_eq!(
            store
                .tx_locations(&[Hash([0xb1; 32]), Hash([0xb2; 32])])
                .expect("index"),
            vec![Some((1, 0)), Some((2, 0))]
        );
    }

    #[test]
    fn corrupt_records_are_reported_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.commit_block(&committed(1, 1)).expect("commit");
        store
            .db
            .put_cf(store.cf(CF_OUTCOMES), height_key(1), b"garbage")
            .expect("overwrite");
        assert!(matches!(
            store.outcome(1),
            Err(StorageError::Corrupt { .. })
        ));
        store
            .db
            .put_cf(
                store.cf(CF_OUTCOMES),
                height_key(1),
                codec::encode(&committed(5, 1).outcome),
            )
            .expect("overwrite");
        assert!(matches!(
            store.outcome(1),
            Err(StorageError::Corrupt { .. })
        ));
        store
            .db
            .put_cf(store.cf(CF_META), KEY_HEIGHT, b"x")
            .expect("overwrite");
        assert!(matches!(store.height(), Err(StorageError::Corrupt { .. })));
    }

    /// Records `tx` as format 1 did: under its hash.
    fn put_by_hash(store: &Store, tx: &VerifiedTransaction) {
        store
            .db
            .put_cf(
                store.cf(CF_PENDING),
                tx.hash().as_bytes(),
                tx.signed().encode(),
            )
            .expect("write");
    }

    fn pending_keys(store: &Store) -> Vec<Vec<u8>> {
        store
            .db
            .iterator_cf(store.cf(CF_PENDING), IteratorMode::Start)
            .map(|item| item.expect("read").0.to_vec())
            .collect()
    }

    /// A block whose receipts are `txs`'.
    fn committing(height: u64, txs: &[&VerifiedTransaction]) -> CommittedBlock {
        let mut block = committed(height, 1);
        let template = block.outcome.receipts[0].clone();
        block.outcome.receipts = (0..)
            .zip(txs)
            .map(|(index, tx)| Receipt {
                tx_hash: tx.hash(),
                index,
                ..template.clone()
            })
            .collect();
        block.parties = vec![Vec::new(); txs.len()];
        block
    }

    #[test]
    fn pending_records_come_back_in_the_order_written_and_go_when_they_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let txs: Vec<VerifiedTransaction> = (0..6)
            .map(|nonce| crate::testkit::transfer(1, nonce))
            .collect();
        let hash = |i: usize| txs[i].hash();
        {
            let store = Store::open(dir.path()).expect("open");
            store.save_pending(&txs[..3]).expect("save");
            store.save_pending(&txs[3..5]).expect("save");
            assert_eq!(
                crate::testkit::recorded(&store),
                (0..5).map(hash).collect::<Vec<_>>()
            );
            // Committed out of order: the oldest two in one range, the fourth on its own.
            store
                .commit_block(&committing(1, &[&txs[3], &txs[0], &txs[1]]))
                .expect("commit");
            assert_eq!(crate::testkit::recorded(&store), vec![hash(2), hash(4)]);
            // Recorded again, a transaction keeps its one record.
            store.save_pending(&txs[2..3]).expect("save");
            assert_eq!(crate::testkit::recorded(&store), vec![hash(2), hash(4)]);
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(crate::testkit::recorded(&store), vec![hash(2), hash(4)]);
        store.save_pending(&txs[5..]).expect("save");
        assert_eq!(
            crate::testkit::recorded(&store),
            vec![hash(2), hash(4), hash(5)]
        );
        let numbers: Vec<u64> = pending_keys(&store)
            .iter()
            .map(|key| parse_pending_key(key).expect("a record number"))
            .collect();
        assert!(
            numbers.windows(2).all(|pair| pair[0] < pair[1]) && numbers[2] >= 5,
            "numbered after every record found at the start: {numbers:?}"
        );
        store.forget_pending(&[hash(4)]).expect("forget");
        store
            .commit_block(&committing(2, &[&txs[2], &txs[5]]))
            .expect("commit");
        assert!(pending_keys(&store).is_empty());
        drop(store);
        assert!(pending_keys(&Store::open(dir.path()).expect("reopen")).is_empty());
    }

    #[test]
    fn records_deleted_in_the_order_written_go_in_one_range_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let family = store.cf(CF_PENDING);
        let mut records = PendingRecords::default();
        let hashes: Vec<Hash> = (0..6).map(|i| Hash([i; 32])).collect();
        for hash in &hashes {
            assert!(records.add(*hash).is_some());
        }
        assert_eq!(records.add(hashes[0]), None, "numbered once");
        let mut batch = WriteBatch::default();
        records.delete(
            [&hashes[0], &hashes[1], &hashes[3], &Hash([9; 32])],
            family,
            &mut batch,
        );
        assert_eq!(batch.len(), 2, "records 0-1 as a range, 3 on its own");
        assert_eq!(records.deleted_below, 2);
        let mut batch = WriteBatch::default();
        records.delete([&hashes[2]], family, &mut batch);
        assert_eq!(batch.len(), 1, "records 2-3 as a range (3 again)");
        assert_eq!(records.deleted_below, 4);
        let mut batch = WriteBatch::default();
        records.delete([&hashes[5], &hashes[4]], family, &mut batch);
        assert_eq!(batch.len(), 1);
        assert_eq!(records.deleted_below, 6);
        let mut batch = WriteBatch::default();
        records.delete([&hashes[5]], family, &mut batch);
        assert!(batch.is_empty(), "nothing recorded, nothing deleted");
    }

    #[test]
    fn a_format_1_database_has_its_pending_records_renumbered_when_a_node_opens_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let txs: Vec<VerifiedTransaction> = (0..3)
            .map(|nonce| crate::testkit::transfer(2, nonce))
            .collect();
        {
            // As format 1 wrote them: under the transactions' hashes.
            let store = Store::open(dir.path()).expect("open");
            for tx in &txs {
                put_by_hash(&store, tx);
            }
            store
                .db
                .put_cf(store.cf(CF_META), KEY_FORMAT, 1u64.to_be_bytes())
                .expect("write");
        }
        let reader = Store::open_secondary(dir.path()).expect("a reader takes format 1");
        assert_eq!(reader.format_version().expect("version"), Some(1));
        drop(reader);
        let store = Store::open(dir.path()).expect("format 1 opens");
        assert_eq!(
            store.format_version().expect("version"),
            Some(STORAGE_FORMAT_VERSION)
        );
        let mut expected: Vec<Hash> = txs.iter().map(VerifiedTransaction::hash).collect();
        expected.sort_unstable();
        assert_eq!(
            crate::testkit::recorded(&store),
            expected,
            "every record, in the order found"
        );
        assert!(pending_keys(&store).iter().all(|key| key.len() == 8));
        store
            .commit_block(&committing(1, &txs.iter().collect::<Vec<_>>()))
            .expect("commit");
        assert!(pending_keys(&store).is_empty());
    }

    #[test]
    fn a_second_record_of_a_transaction_is_deleted_when_the_node_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, other) = (
            crate::testkit::transfer(4, 0),
            crate::testkit::transfer(4, 1),
        );
        {
            // A record written again after its transaction committed (a submission racing
            // the block) is found with the transaction's next one.
            let store = Store::open(dir.path()).expect("open");
            for (number, tx) in [(3u64, &tx), (5, &other), (8, &tx)] {
                store
                    .db
                    .put_cf(
                        store.cf(CF_PENDING),
                        pending_key(number),
                        tx.signed().encode(),
                    )
                    .expect("write");
            }
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            crate::testkit::recorded(&store),
            vec![tx.hash(), other.hash()]
        );
        assert_eq!(pending_keys(&store), vec![pending_key(3), pending_key(5)]);
        // Numbered past every record found, the deleted one too.
        store
            .save_pending(&[crate::testkit::transfer(4, 2)])
            .expect("save");
        assert_eq!(pending_keys(&store).last(), Some(&pending_key(9).to_vec()));
        // Both go when they commit: nothing holds the range deletion back.
        store
            .commit_block(&committing(
                1,
                &[&tx, &other, &crate::testkit::transfer(4, 2)],
            ))
            .expect("commit");
        assert!(pending_keys(&store).is_empty());
    }

    #[test]
    fn a_pending_record_under_a_key_of_another_width_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tx = crate::testkit::transfer(3, 0);
        {
            put_by_hash(&Store::open(dir.path()).expect("open"), &tx);
        }
        match Store::open(dir.path()) {
            Err(StorageError::Corrupt { cf: CF_PENDING, .. }) => {}
            other => panic!("expected a corrupt record, got {other:?}"),
        }
    }

    #[test]
    fn a_database_of_another_storage_format_is_refused_and_an_unversioned_one_adopted() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(
                store.format_version().expect("version"),
                Some(STORAGE_FORMAT_VERSION),
                "a new database records its format"
            );
            store.commit_block(&committed(1, 1)).expect("commit");
            // As a database written before the version was recorded.
            store
                .db
                .delete_cf(store.cf(CF_META), KEY_FORMAT)
                .expect("delete");
        }
        {
            let store = Store::open(dir.path()).expect("an unversioned database opens");
            assert_eq!(store.height().expect("height"), 1);
            assert_eq!(
                store.format_version().expect("version"),
                Some(STORAGE_FORMAT_VERSION)
            );
            // As a database a later release wrote in another layout.
            store
                .db
                .put_cf(store.cf(CF_META), KEY_FORMAT, 3u64.to_be_bytes())
                .expect("write");
        }
        let refused = |result: Result<Store, StorageError>| match result {
            Err(
                error @ StorageError::Format {
                    found: 3,
                    supported: 2,
                },
            ) => error.to_string(),
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("a database of format 3 was opened"),
        };
        let message = refused(Store::open(dir.path()));
        assert!(message.contains("storage format 3"), "{message}");
        assert!(message.contains("reads format 2"), "{message}");
        refused(Store::open_secondary(dir.path()));
        // Refused without a change: the record still says 3.
        let reader =
            DB::open_cf_for_read_only(&Options::default(), dir.path(), COLUMN_FAMILIES, false)
                .expect("read-only");
        let meta = reader.cf_handle(CF_META).expect("meta");
        assert_eq!(
            reader.get_cf(meta, KEY_FORMAT).expect("read"),
            Some(3u64.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn a_secondary_reads_a_database_its_writer_still_holds_and_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Store::open(dir.path()).expect("open");
        writer.commit_block(&committed(1, 1)).expect("commit 1");
        writer.commit_block(&committed(2, 2)).expect("commit 2");
        // The writer holds RocksDB's lock: a second read-write open is refused...
        assert!(Store::open(dir.path()).is_err());
        // ...a secondary is not, and sees the committed blocks.
        let reader = Store::open_secondary(dir.path()).expect("open secondary");
        assert_eq!(reader.height().expect("height"), 2);
        assert_eq!(reader.block(2).expect("read"), Some(vec![2; 10]));
        assert_eq!(
            reader.outcome(1).expect("read"),
            Some(committed(1, 1).outcome)
        );
        // It reads the database as it stood when opened, and writes nothing.
        writer.commit_block(&committed(3, 3)).expect("commit 3");
        assert_eq!(reader.height().expect("height"), 2);
        assert!(reader.commit_block(&committed(3, 3)).is_err());
        assert_eq!(writer.height().expect("height"), 3);
        // A folder without a database is an error, not a new database.
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(Store::open_secondary(empty.path()).is_err());
        assert!(!empty.path().join("CURRENT").exists());
    }

    #[test]
    fn a_copy_sums_up_as_its_source_and_a_changed_record_changes_the_sum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for height in 1..=3 {
            store
                .commit_block(&committed(height, 0xc0 + height as u8))
                .expect("commit");
        }
        let summary = store.summarize().expect("summarize");
        assert!(summary.records > 3 * 3, "{summary:?}");
        let copy = tempfile::tempdir().expect("tempdir");
        let target = copy.path().join("db");
        assert_eq!(store.copy_to(&target).expect("copy"), summary);
        let copied = Store::open_secondary(&target).expect("open the copy");
        assert_eq!(copied.summarize().expect("summarize"), summary);
        assert_eq!(copied.height().expect("height"), 3);
        // Another value of the same length: the same records and bytes, another digest.
        let certificates = store.cf(CF_CERTIFICATES);
        store
            .db
            .put_cf(certificates, height_key(2), [8u8; 5])
            .expect("write");
        let changed = store.summarize().expect("summarize");
        assert_eq!(
            (changed.records, changed.bytes),
            (summary.records, summary.bytes)
        );
        assert_ne!(changed.digest, summary.digest);
        // The same bytes split between key and value otherwise: another digest.
        let meta = store.cf(CF_META);
        store.db.put_cf(meta, b"xy", b"z").expect("write");
        let one = store.summarize().expect("summarize");
        store.db.delete_cf(meta, b"xy").expect("delete");
        store.db.put_cf(meta, b"x", b"yz").expect("write");
        let other = store.summarize().expect("summarize");
        assert_eq!((one.records, one.bytes), (other.records, other.bytes));
        assert_ne!(one.digest, other.digest);
    }

    #[test]
    fn a_database_from_before_the_end_to_end_archive_is_read_copied_and_then_completed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let earlier = &COLUMN_FAMILIES[..COLUMN_FAMILIES.len() - 2];
        assert!(!earlier.contains(&CF_REMEMBERED) && !earlier.contains(&CF_REMEMBERED_LISTS));
        {
            // As the release before them wrote it: without the archive's families.
            let mut options = Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            let db = DB::open_cf(&options, dir.path(), earlier).expect("earlier layout");
            db.put_cf(
                db.cf_handle(CF_META).expect("meta"),
                KEY_HEIGHT,
                height_key(0),
            )
            .expect("write");
        }
        // A reader (audit, backup) opens it as it is, and a backup copies it.
        let reader = Store::open_secondary(dir.path()).expect("open secondary");
        assert_eq!(reader.height().expect("height"), 0);
        let copy = tempfile::tempdir().expect("tempdir");
        let target = copy.path().join("db");
        let summary = reader.copy_to(&target).expect("copy");
        // The families the copy has and its source lacks are empty: the same sum.
        assert_eq!(reader.summarize().expect("summarize"), summary);
        let copied = Store::open_secondary(&target).expect("open the copy");
        assert_eq!(copied.summarize().expect("summarize"), summary);
        drop((reader, copied));
        // This release's node adds the families and works on.
        let store = Store::open(dir.path()).expect("open");
        let mut first = committed(1, 1);
        first.remembered = Some(Arc::new(vec![Hash([0xaa; 32])]));
        store.commit_block(&first).expect("commit");
        assert_eq!(store.latest(&Hash([0xaa; 32])), Some(1));
    }
}
