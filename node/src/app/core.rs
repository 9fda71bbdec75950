//! The core: the one writer of chain state.
//!
//! It owns the ledger and the tip, writes the store, and answers the three things consensus
//! asks of the application — build a proposal, validate a proposal, commit a block. A
//! validator's consensus driver owns it; an observer's follower owns it; nothing else can
//! change chain state. Validators and observers commit through the same
//! [`Core::commit`], which executes the block ([`replay::execute`], with the ledger
//! invariants), writes it in one `WriteBatch`, updates the mempool, the metrics and the
//! published [`ChainView`] (which wakes the event streams and every other reader).
//!
//! On open, the ledger is rebuilt by the one replay ([`Replay`], trusting the node's own
//! store) and each result is checked against the outcome stored when the block was first
//! committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use interpool_consensus::{CommitCertificate, MAX_PAYLOAD_BYTES};
use interpool_contracts::block::{Block, BlockError, BlockHeader, ChainTip};
use interpool_contracts::ledger::{EndToEndArchive, InvariantViolation};
use interpool_contracts::outcome::{BlockOutcome, Outcome};
use interpool_contracts::tx::{check_stateless_batch, Body};
use interpool_contracts::{
    AccountId, Genesis, Hash, Ledger, SignedTransaction, TxError, VerifiedTransaction,
};
use thiserror::Error;
use tokio::sync::watch;

use super::checkpoint::{Checkpointer, StartReport};
use super::lock;
use super::mempool::SharedMempool;
use super::replay::{self, Invariants, Replay, Trust};
use super::statements::{StatementJob, StatementWriter};
use super::view::ChainView;
use crate::metrics::Metrics;
use crate::storage::{ChainStore, CommittedBlock, StorageError};

/// What this node puts into the blocks it proposes (the node config's `[block]`, checked
/// against the consensus payload bound when the config is loaded).
///
/// Only proposing uses them. A proposal is valid up to the consensus bound
/// ([`MAX_PAYLOAD_BYTES`]), whatever this node's own limits: validity must not depend on a
/// node's configuration, or a block a quorum accepted could be one this node refuses to
/// commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most transactions in a block this node proposes.
    pub max_transactions: usize,
    /// Largest encoded block this node proposes.
    pub max_bytes: usize,
}

/// Why a proposed block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidBlock {
    /// Header or encoding.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The header names a proposer that is not the proposer of this round or an earlier one
    /// at this height (a re-proposed locked block keeps its first proposer).
    #[error(
        "block names {named} as its proposer, who does not propose this height up to this round"
    )]
    WrongProposer {
        /// The header's proposer.
        named: AccountId,
    },
    /// The header's time is further ahead of this validator's clock than the allowed drift.
    #[error("block time {timestamp_ms} is more than {MAX_CLOCK_DRIFT_MS} ms ahead of this validator's clock ({now_ms})")]
    FromTheFuture {
        /// The header's time.
        timestamp_ms: u64,
        /// This validator's clock.
        now_ms: u64,
    },
    /// A transaction fails its stateless checks (bad signature, wrong chain, ...), or is one
    /// an honest proposer would never include: from an unknown signer, with a nonce that is
    /// not its signer's next, expired, valid beyond the horizon.
    #[error("transaction {index}: {error}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The same transaction twice in the block.
    #[error("transaction {index} repeats an earlier one")]
    Duplicate {
        /// Position of the repeat.
        index: usize,
    },
    /// A transaction that is already in a committed block.
    #[error("transaction {index} is already in block {height}")]
    AlreadyIncluded {
        /// Position in the block.
        index: usize,
        /// The block that holds it.
        height: u64,
    },
    /// The store could not be read to check the proposal.
    #[error("cannot check the proposal: {0}")]
    Unreadable(String),
}

/// How far ahead of a validator's clock a proposal's time may be. Block time is the
/// proposer's clock, bounded: never before the parent's (monotonic), never more than this
/// ahead of the validating validator's clock. There is no lower bound against the clock: a
/// locked block re-proposed in a later round keeps its original time.
pub const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

/// What a validator knows about a proposal besides its bytes.
#[derive(Debug, Clone)]
pub struct ProposalContext {
    /// The proposers of this height from round 0 to the proposal's round.
    pub proposers: Vec<AccountId>,
    /// This validator's clock.
    pub now_ms: u64,
}

/// Errors that stop the node.
#[derive(Debug, Error)]
pub enum ChainError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored chain does not replay to what was stored.
    #[error("stored chain is inconsistent at height {height}: {message}")]
    Inconsistent {
        /// Where.
        height: u64,
        /// What.
        message: String,
    },
    /// A block that consensus finalized is invalid here: this node and a quorum disagree.
    #[error("finalized block {height} is invalid on this node: {reason}")]
    FinalizedInvalid {
        /// Height.
        height: u64,
        /// Why.
        reason: InvalidBlock,
    },
    /// A ledger invariant broke while executing a block: continuing would be worse.
    #[error("block {height}: {violation}")]
    Invariant {
        /// Height.
        height: u64,
        /// What broke.
        violation: InvariantViolation,
    },
    /// The node reached its configured halt height (`halt_height`): nothing past it is
    /// committed until the setting is raised.
    #[error("halted at height {halt_height} (halt_height in the node config); raise or remove it to go on")]
    Halted {
        /// The configured halt height.
        halt_height: u64,
    },
    /// The data directory belongs to another chain.
    #[error("the database in the data directory belongs to another chain (genesis {stored}); this node's genesis is {expected}")]
    OtherChain {
        /// The genesis hash stored in the database.
        stored: Hash,
        /// This node's genesis hash.
        expected: Hash,
    },
}

/// A block's header and its transactions, verified.
type Checked = (BlockHeader, Vec<VerifiedTransaction>);

/// Closed cycles of a start-up replay handed to the statement writer at most.
const MAX_STATEMENT_BACKLOG: usize = 64;

/// Blocks between two calls that let the store drop end-to-end ids the window has passed.
const FORGET_END_TO_END_EVERY: u64 = 64;

/// The height below which the store may drop end-to-end ids after block `height`: the
/// window before it, or, while checkpoints are written (`last_checkpoint` is `Some`), the
/// window before the last one written (the writer reads the window of the checkpoint it
/// writes, at or after that one, from the store). `None`: nothing may go yet (no
/// checkpoint has been written).
fn end_to_end_floor(height: u64, window: u64, last_checkpoint: Option<Option<u64>>) -> Option<u64> {
    let kept_from = match last_checkpoint {
        None => height,
        Some(written) => written?.min(height),
    };
    Some(kept_from.saturating_sub(window))
}

/// The core. See the module documentation.
pub struct Core {
    genesis_hash: Hash,
    /// Shared with the published views: a commit changes a copy when a reader still holds
    /// the previous one.
    ledger: Arc<Ledger>,
    tip: ChainTip,
    store: Arc<dyn ChainStore>,
    /// The store as the ledger's end-to-end archive ([`crate::storage::archive_of`]), made
    /// once: every commit hands it to the ledger again.
    archive: Arc<dyn EndToEndArchive>,
    limits: BlockLimits,
    mempool: SharedMempool,
    metrics: Arc<Metrics>,
    invariants: Invariants,
    /// Proposals validated but not yet committed (header and transactions), by block hash,
    /// so that a commit neither decodes nor verifies them again.
    validated: HashMap<Hash, Checked>,
    /// This node's latest proposal, by block hash, as it built it: validating it takes these
    /// instead of decoding the block and looking each transaction up again.
    proposed: Option<(Hash, Checked)>,
    published: watch::Sender<Arc<ChainView>>,
    /// How the ledger was rebuilt at open.
    start: StartReport,
    /// Writes a checkpoint every interval (none: no checkpoints, as in the simulator).
    /// Declared before `statements`, so dropped (stopped, writing what is waiting) while the
    /// statement writer still runs: a checkpoint waits for the statements before it, and
    /// would otherwise wait a minute and be skipped, the halt height's among them.
    checkpoints: Option<Checkpointer>,
    /// Commits nothing past this height (the node config's `halt_height`).
    halt_height: Option<u64>,
    /// Makes each closed cycle's statements (none: no statements, as in the simulator).
    statements: Option<StatementWriter>,
    /// The statement jobs of the start-up replay, for [`Self::with_statements`].
    statement_backlog: Vec<StatementJob>,
}

impl Core {
    /// Opens the chain: builds the genesis ledger and replays every stored block (trusting
    /// the node's own store, checking each outcome against the stored one). Refuses a
    /// database made for another genesis.
    pub fn open(
        genesis: &Genesis,
        store: Arc<dyn ChainStore>,
        limits: BlockLimits,
        mempool: SharedMempool,
        metrics: Arc<Metrics>,
    ) -> Result<Core, ChainError> {
        Core::open_from(genesis, store, limits, mempool, metrics, true)
    }

    /// [`Core::open`], from the last checkpoint if `use_checkpoint` (else every stored
    /// block is replayed from the genesis; impossible once blocks are pruned).
    pub fn open_from(
        genesis: &Genesis,
        store: Arc<dyn ChainStore>,
        limits: BlockLimits,
        mempool: SharedMempool,
        metrics: Arc<Metrics>,
        use_checkpoint: bool,
    ) -> Result<Core, ChainError> {
        let mut replay = Replay::from_genesis(genesis).map_err(|e| ChainError::Inconsistent {
            height: 0,
            message: e.to_string(),
        })?;
        let genesis_hash = replay.tip().hash;
        if let Some(stored) = store.bind_genesis(&genesis_hash)? {
            return Err(ChainError::OtherChain {
                stored,
                expected: genesis_hash,
            });
        }
        let started = Instant::now();
        let mut stored = store.height()?;
        let mut restored_from_height = 0;
        if let Some(info) = store.checkpoint()? {
            metrics.checkpoint(&info);
            // A state sync that wrote its checkpoint and pruned the old blocks, but did not
            // get to move the chain's start: finish it.
            if info.height > stored && store.earliest_height()? > stored {
                store.adopt_checkpoint(info.height)?;
                stored = info.height;
            }
            if info.height <= stored && use_checkpoint {
                match super::checkpoint::load(genesis, store.as_ref(), &info) {
                    Ok(restored) => {
                        replay = restored;
                        restored_from_height = info.height;
                    }
                    Err(error) => tracing::warn!(
                        height = info.height,
                        %error,
                        "the checkpoint cannot be used; replaying from the genesis"
                    ),
                }
            }
        }
        // The statement writer needs the ledger the replay starts from (the opening ledger
        // of the cycle it is in) and each one that closes a cycle from the last written on
        // (each is the next cycle's opening ledger; the writer skips those it has written).
        // A store that keeps no statements answers `u64::MAX`.
        let statements_through = store.statements_through()?;
        let mut statement_backlog = Vec::new();
        if statements_through != u64::MAX {
            let ledger = Arc::new(replay.ledger().clone());
            statement_backlog.push(StatementJob::Opening(ledger.clone()));
            // Started from the very block that closed a cycle not yet written (a checkpoint
            // on a cycle's last block): that ledger closes it too.
            if ledger
                .latest_settlement_report()
                .is_some_and(|r| r.height == ledger.height() && r.cycle > statements_through)
            {
                statement_backlog.push(StatementJob::Closed(ledger));
            }
        }
        for height in restored_from_height + 1..=stored {
            let outcome = replay
                .block(store.as_ref(), height, Trust::OwnStore)
                .map_err(|kind| ChainError::Inconsistent {
                    height,
                    message: kind.to_string(),
                })?;
            if outcome
                .settlement
                .as_ref()
                .is_some_and(|report| report.cycle >= statements_through)
            {
                // Bounded (a database from before statements replayed from the genesis):
                // the oldest cycles then get no statement.
                if statement_backlog.len() > MAX_STATEMENT_BACKLOG {
                    // The dropped close opens the next cycle.
                    if let (StatementJob::Closed(dropped), Some(first)) =
                        (statement_backlog.remove(1), statement_backlog.first_mut())
                    {
                        *first = StatementJob::Opening(dropped);
                    }
                }
                statement_backlog.push(StatementJob::Closed(Arc::new(replay.ledger().clone())));
            }
        }
        let start = StartReport {
            restored_from_height,
            replayed_blocks: stored - restored_from_height,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        tracing::info!(
            restored_from_height,
            replayed_blocks = start.replayed_blocks,
            millis = start.millis,
            "rebuilt the ledger"
        );
        let (mut ledger, tip) = replay.into_parts();
        // The duplicate window goes to the store: what the checkpoint and the replayed blocks
        // put in memory is written there if it is not yet (a database from before the
        // archive, a checkpoint from state sync), and the ledger asks the store from now on.
        let written = store.remember_end_to_end_lists(&mut ledger.end_to_end_lists())?;
        let archive = crate::storage::archive_of(&store);
        ledger.archive_end_to_end_ids(Arc::clone(&archive), tip.height);
        if written > 0 {
            tracing::info!(
                heights = written,
                "wrote the duplicate window's end-to-end ids to the store"
            );
        }
        let ledger = Arc::new(ledger);
        let (published, _) = watch::channel(Arc::new(ChainView {
            tip: tip.clone(),
            genesis_hash,
            ledger: ledger.clone(),
        }));
        metrics.committed(tip.height, 0, std::time::Duration::ZERO);
        Ok(Core {
            genesis_hash,
            ledger,
            tip,
            store,
            archive,
            limits,
            mempool,
            metrics,
            invariants: Invariants::for_commits(),
            validated: HashMap::new(),
            proposed: None,
            published,
            start,
            checkpoints: None,
            halt_height: None,
            statements: None,
            statement_backlog,
        })
    }

    /// Commits nothing past `halt_height` (coordinated halts for upgrades).
    /// Started at the halt height without its checkpoint (the write at the halt failed or
    /// was skipped), it writes it now: the upgraded binary must start from that state, not
    /// replay the last blocks under its new rules (docs/adr/0016).
    pub fn with_halt_height(mut self, halt_height: Option<u64>) -> Core {
        self.halt_height = halt_height;
        if let (true, Some(checkpoints)) = (self.halted(), &self.checkpoints) {
            let written = match self.store.checkpoint() {
                Ok(info) => info.map_or(0, |info| info.height),
                Err(error) => {
                    tracing::error!(%error, "cannot read the last checkpoint");
                    0
                }
            };
            if written < self.tip.height {
                tracing::info!(
                    height = self.tip.height,
                    "at the halt height without its checkpoint: writing it"
                );
                checkpoints.after_commit(&self.tip, &self.ledger, true);
            }
        }
        self
    }

    /// Whether the tip has reached the halt height: the node's work is done until the
    /// setting is raised.
    pub fn halted(&self) -> bool {
        self.halt_height.is_some_and(|halt| self.tip.height >= halt)
    }

    /// Writes a checkpoint of the state every `interval` blocks, on a thread of its own, and
    /// with `retain`, prunes the blocks below the last `retain` heights after each (never
    /// the open cycle's). With statements ([`Self::with_statements`], set up first), a
    /// checkpoint waits for the statements of the cycles before it.
    pub fn with_checkpoints(mut self, interval: u64, retain: Option<u64>) -> std::io::Result<Core> {
        self.checkpoints = Some(Checkpointer::spawn(
            self.store.clone(),
            interval,
            retain,
            self.metrics.clone(),
            self.statements.as_ref().map(StatementWriter::progress),
        )?);
        Ok(self)
    }

    /// Makes and writes every closed cycle's statements in `store` (this core's store), on
    /// a thread of its own, starting with the cycles the start-up replay closed.
    pub fn with_statements(mut self, store: Arc<crate::storage::Store>) -> std::io::Result<Core> {
        let backlog = std::mem::take(&mut self.statement_backlog);
        self.statements = Some(StatementWriter::spawn(store, backlog)?);
        Ok(self)
    }

    /// The statement writer's progress, if it runs.
    pub fn statement_progress(&self) -> Option<Arc<super::statements::StatementProgress>> {
        self.statements.as_ref().map(StatementWriter::progress)
    }

    /// Waits for the statements of the cycles closed so far to be written, and stops.
    pub fn finish_statements(&mut self) {
        if let Some(statements) = self.statements.take() {
            statements.finish();
        }
    }

    /// Waits for the checkpoints offered so far to be written, and stops writing more.
    pub fn finish_checkpoints(&mut self) {
        if let Some(checkpoints) = self.checkpoints.take() {
            checkpoints.finish();
        }
    }

    /// How the ledger was rebuilt when the chain was opened.
    pub fn start_report(&self) -> StartReport {
        self.start
    }

    /// Checks every invariant after every block, whatever the build (tests of release
    /// builds, audits of a suspect node).
    pub fn with_full_invariant_checks(mut self) -> Core {
        self.invariants = Invariants::Full;
        self
    }

    /// A receiver of the published view: the tip and ledger after each commit.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ChainView>> {
        self.published.subscribe()
    }

    /// The last committed block.
    pub fn tip(&self) -> &ChainTip {
        &self.tip
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The ledger after the last committed block.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ChainStore> {
        &self.store
    }

    /// The mempool.
    pub fn mempool(&self) -> &SharedMempool {
        &self.mempool
    }

    /// The height the next commit must have.
    pub fn next_height(&self) -> u64 {
        self.tip.height + 1
    }

    /// True if the mempool holds nothing to propose.
    pub fn nothing_to_propose(&self) -> bool {
        !lock(&self.mempool).has_selectable(&self.ledger)
    }

    /// Builds the next block from the mempool's transactions; returns its encoding.
    pub fn build_proposal(&mut self, proposer: AccountId, now_ms: u64) -> Vec<u8> {
        let header = BlockHeader {
            chain_id: self.tip.chain_id.clone(),
            height: self.tip.height + 1,
            parent_hash: self.tip.hash,
            previous_state_root: self.tip.state_root,
            timestamp_ms: now_ms.max(self.tip.timestamp_ms),
            proposer,
        };
        // Leave room for the header and length prefixes.
        let budget = self.limits.max_bytes.saturating_sub(1024);
        let txs = lock(&self.mempool).select(&self.ledger, self.limits.max_transactions, budget);
        let signed: Vec<&SignedTransaction> = txs.iter().map(VerifiedTransaction::signed).collect();
        let bytes = Block::encode_borrowed(&header, &signed);
        self.proposed = Some((Block::hash_of(&bytes), (header, txs)));
        bytes
    }

    /// Validates a proposed block for `height`: size, header (chain, height, parent, state
    /// root, a proposer of this height up to this round, a time neither before the parent's
    /// nor too far ahead), every transaction's stateless checks (those already in the mempool
    /// were verified on admission; the rest now, in one batch), and that every transaction
    /// is one an honest proposer would include: not repeated, not already committed, from a
    /// known signer with its next nonce, neither expired nor valid beyond the horizon.
    /// Remembers the result for [`Self::commit`].
    pub fn validate_proposal(
        &mut self,
        height: u64,
        bytes: &[u8],
        context: &ProposalContext,
    ) -> Result<(), InvalidBlock> {
        self.validate_hashed_proposal(height, bytes, Block::hash_of(bytes), context)
    }

    /// [`Self::validate_proposal`] of a block whose hash the caller has (the consensus
    /// digest of the payload, which the driver computes anyway): a megabyte block is not
    /// hashed again. `hash` must be `Block::hash_of(bytes)`.
    pub fn validate_hashed_proposal(
        &mut self,
        height: u64,
        bytes: &[u8],
        hash: Hash,
        context: &ProposalContext,
    ) -> Result<(), InvalidBlock> {
        debug_assert_eq!(hash, Block::hash_of(bytes));
        if height != self.next_height() {
            return Err(BlockError::WrongHeight {
                expected: self.next_height(),
                got: height,
            }
            .into());
        }
        if self.validated.contains_key(&hash) {
            return Ok(());
        }
        let (header, txs) = match self.take_proposed(&hash) {
            Some(own) => {
                own.0.check_extends(&self.tip)?;
                own
            }
            None => self.check_block(bytes)?,
        };
        if !context.proposers.contains(&header.proposer) {
            return Err(InvalidBlock::WrongProposer {
                named: header.proposer,
            });
        }
        if header.timestamp_ms > context.now_ms.saturating_add(MAX_CLOCK_DRIFT_MS) {
            return Err(InvalidBlock::FromTheFuture {
                timestamp_ms: header.timestamp_ms,
                now_ms: context.now_ms,
            });
        }
        self.check_admissible(height, &txs)?;
        self.validated.insert(hash, (header, txs));
        Ok(())
    }

    /// The transaction rules of a valid proposal beyond the stateless checks (see
    /// [`Self::validate_proposal`]).
    fn check_admissible(
        &self,
        height: u64,
        txs: &[VerifiedTransaction],
    ) -> Result<(), InvalidBlock> {
        // foldhash, seeded per process (see the mempool): a proposal's transactions pass
        // through these two maps once each.
        let hasher = foldhash::fast::RandomState::default();
        let mut seen =
            std::collections::HashSet::with_capacity_and_hasher(txs.len(), hasher.clone());
        for (index, tx) in txs.iter().enumerate() {
            if !seen.insert(tx.hash()) {
                return Err(InvalidBlock::Duplicate { index });
            }
        }
        let hashes: Vec<Hash> = txs.iter().map(VerifiedTransaction::hash).collect();
        let included = self
            .store
            .tx_locations(&hashes)
            .map_err(|e| InvalidBlock::Unreadable(e.to_string()))?;
        if let Some((index, (height, _))) = included
            .iter()
            .enumerate()
            .find_map(|(index, location)| location.map(|l| (index, l)))
        {
            return Err(InvalidBlock::AlreadyIncluded { index, height });
        }
        let params = self.ledger.params();
        let latest = height.saturating_add(params.max_validity_blocks);
        let mut next_nonces: HashMap<AccountId, u64, _> =
            HashMap::with_capacity_and_hasher(txs.len(), hasher);
        for (index, tx) in txs.iter().enumerate() {
            let t = tx.tx();
            let reject = |error| InvalidBlock::Transaction { index, error };
            let expected = match next_nonces.get(&t.signer) {
                Some(next) => *next,
                None => self
                    .ledger
                    .next_nonce(&t.signer)
                    .ok_or_else(|| reject(TxError::UnknownSigner(t.signer)))?,
            };
            if t.nonce != expected {
                return Err(reject(TxError::BadNonce {
                    expected,
                    got: t.nonce,
                }));
            }
            next_nonces.insert(t.signer, expected.saturating_add(1));
            if t.valid_until_height < height {
                return Err(reject(TxError::Expired {
                    valid_until_height: t.valid_until_height,
                    height,
                }));
            }
            if t.valid_until_height > latest {
                return Err(reject(TxError::ValidityTooLong {
                    valid_until_height: t.valid_until_height,
                    latest,
                }));
            }
        }
        Ok(())
    }

    /// Lets the store drop the end-to-end ids no ledger of this node asks about any more:
    /// those the duplicate window has passed, counted from the last checkpoint written while
    /// checkpoints are written (the writer reads the window of the one it writes from the
    /// store, and may be a checkpoint interval or two behind). Every
    /// [`FORGET_END_TO_END_EVERY`] blocks.
    fn forget_end_to_end_ids(&self, height: u64) -> Result<(), ChainError> {
        if !height.is_multiple_of(FORGET_END_TO_END_EVERY) {
            return Ok(());
        }
        let last_checkpoint = match &self.checkpoints {
            None => None,
            Some(_) => Some(self.store.checkpoint()?.map(|info| info.height)),
        };
        let window = self.ledger.params().duplicate_window_blocks;
        if let Some(floor) = end_to_end_floor(height, window, last_checkpoint) {
            self.store.forget_end_to_end_below(floor)?;
        }
        Ok(())
    }

    /// This node's proposal as it built it, if the block of `hash` is that proposal.
    fn take_proposed(&mut self, hash: &Hash) -> Option<Checked> {
        match &self.proposed {
            Some((built, _)) if built == hash => self.proposed.take().map(|(_, own)| own),
            _ => None,
        }
    }

    fn check_block(&self, bytes: &[u8]) -> Result<Checked, InvalidBlock> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(BlockError::TooLarge(format!(
                "{} bytes, the limit is {MAX_PAYLOAD_BYTES}",
                bytes.len(),
            ))
            .into());
        }
        let block = Block::decode(bytes, MAX_PAYLOAD_BYTES as u64).map_err(BlockError::from)?;
        block.check_extends(&self.tip)?;
        let mut verified: Vec<Option<VerifiedTransaction>> =
            Vec::with_capacity(block.transactions.len());
        let mut unknown = Vec::new();
        let mut unknown_positions = Vec::new();
        {
            let mempool = lock(&self.mempool);
            for (index, tx) in block.transactions.into_iter().enumerate() {
                match mempool
                    .get(&tx.hash())
                    .filter(|known| known.signed() == &tx)
                {
                    Some(known) => verified.push(Some(known.clone())),
                    None => {
                        verified.push(None);
                        unknown.push(tx);
                        unknown_positions.push(index);
                    }
                }
            }
        }
        for (result, index) in check_stateless_batch(unknown, &self.tip.chain_id)
            .into_iter()
            .zip(unknown_positions)
        {
            if let Some(slot) = verified.get_mut(index) {
                *slot = Some(result.map_err(|error| InvalidBlock::Transaction { index, error })?);
            }
        }
        // Sized up front: `flatten` gives no size hint, and growing a large block's
        // transactions a doubling at a time copied them over and over (1.3 % of a follower's
        // CPU at full load, issue 12's profile).
        let mut txs = Vec::with_capacity(verified.len());
        txs.extend(verified.into_iter().flatten());
        Ok((block.header, txs))
    }

    /// A block this node did not validate but a quorum certified (decided while this node was
    /// away, or fetched by sync after its certificate and links were verified): it is
    /// executed, not judged again. Its header must extend this node's tip (a different
    /// previous state root means this node's state diverged, and stopping is right); its
    /// transactions are taken as the quorum verified them, checking only the fields that
    /// need no signature, which no honest quorum can have certified wrong.
    fn certified_block(&self, bytes: &[u8]) -> Result<Checked, InvalidBlock> {
        let block = Block::decode(bytes, MAX_PAYLOAD_BYTES as u64).map_err(BlockError::from)?;
        block.check_extends(&self.tip)?;
        // Sized up front: collecting into a `Result` gives the vector no size hint, and
        // growing it a doubling at a time copied a large block's transactions over and over.
        let mut txs = Vec::with_capacity(block.transactions.len());
        for (index, tx) in block.transactions.into_iter().enumerate() {
            txs.push(
                VerifiedTransaction::from_trusted_store(tx, &self.tip.chain_id)
                    .map_err(|error| InvalidBlock::Transaction { index, error })?,
            );
        }
        Ok((block.header, txs))
    }

    /// Commits the finalized block at `height` (the next one): executes it and checks the
    /// ledger invariants, writes block, certificate, outcome and indexes in one atomic
    /// batch, then updates the mempool, the metrics and the published view. The one commit
    /// path: validators (decided by consensus or fetched by sync) and observers (fetched by
    /// sync, certificate verified) both come here.
    pub fn commit(
        &mut self,
        height: u64,
        bytes: &[u8],
        certificate: &CommitCertificate,
    ) -> Result<Arc<BlockOutcome>, ChainError> {
        self.commit_hashed(height, bytes, Block::hash_of(bytes), certificate)
    }

    /// [`Self::commit`] of a block whose hash the caller has (the digest its certificate
    /// names, when the consensus engine made or checked that certificate for these bytes):
    /// a megabyte block is not hashed again. `hash` must be `Block::hash_of(bytes)`.
    pub fn commit_hashed(
        &mut self,
        height: u64,
        bytes: &[u8],
        hash: Hash,
        certificate: &CommitCertificate,
    ) -> Result<Arc<BlockOutcome>, ChainError> {
        debug_assert_eq!(hash, Block::hash_of(bytes));
        let started = Instant::now();
        if let Some(halt_height) = self.halt_height.filter(|halt| height > *halt) {
            return Err(ChainError::Halted { halt_height });
        }
        if height != self.next_height() {
            return Err(ChainError::Inconsistent {
                height,
                message: format!(
                    "asked to commit height {height} on top of {}",
                    self.tip.height
                ),
            });
        }
        // Validated here: taken as validated. This node's own proposal, certified without
        // being validated here (a quorum of one does not ask): taken as built, its header
        // checked against the tip as a certified block's is. Decided without this node
        // validating it (while it was away, or fetched by sync): checked now.
        let own = self.take_proposed(&hash);
        // `checked_new`: validated here, on this tip, so `check_admissible` found none of
        // its transactions in the index and none twice; the store need not look again.
        let ((header, txs), checked_new) = match (self.validated.remove(&hash), own) {
            (Some(validated), _) => (validated, true),
            (None, Some(own)) => {
                own.0
                    .check_extends(&self.tip)
                    .map_err(|e| ChainError::FinalizedInvalid {
                        height,
                        reason: e.into(),
                    })?;
                (own, false)
            }
            (None, None) => (
                self.certified_block(bytes)
                    .map_err(|reason| ChainError::FinalizedInvalid { height, reason })?,
                false,
            ),
        };
        self.validated.clear();
        self.proposed = None;
        let outcome = replay::execute(
            Arc::make_mut(&mut self.ledger),
            height,
            header.timestamp_ms,
            &txs,
            self.invariants,
        )
        .map_err(|violation| ChainError::Invariant { height, violation })?;
        crate::failpoints::hit("commit.before_write");
        self.store.commit_block(&CommittedBlock {
            height,
            block: bytes.to_vec(),
            certificate: certificate.encode(),
            outcome: outcome.clone(),
            parties: txs.iter().map(|tx| tx.tx().parties()).collect(),
            end_to_end_ids: txs
                .iter()
                .filter_map(|tx| match &tx.tx().body {
                    Body::Transfer { end_to_end_id, .. } => {
                        Some((tx.tx().signer, end_to_end_id.clone(), tx.hash()))
                    }
                    _ => None,
                })
                .collect(),
            remembered: self.ledger.end_to_end_list(height).cloned(),
            checked_new,
        })?;
        crate::failpoints::hit("commit.after_write");
        // The block's ids are in the store now: the ledger asks there (not yet shared, so
        // this moves them out of this ledger's memory and copies nothing).
        Arc::make_mut(&mut self.ledger).archive_end_to_end_ids(Arc::clone(&self.archive), height);
        self.forget_end_to_end_ids(height)?;
        self.tip = ChainTip {
            chain_id: self.tip.chain_id.clone(),
            height,
            hash,
            state_root: self.ledger.state_root(),
            timestamp_ms: header.timestamp_ms,
        };
        let dropped = {
            // Under the mempool's lock, so that admission sees the mempool and the ledger
            // of one height together.
            let mut mempool = lock(&self.mempool);
            let dropped = mempool.after_commit(&txs, &self.ledger, height);
            self.metrics.mempool_size(mempool.len());
            let replaced = self.published.send_replace(Arc::new(ChainView {
                tip: self.tip.clone(),
                genesis_hash: self.genesis_hash,
                ledger: self.ledger.clone(),
            }));
            super::view::retire(replaced);
            dropped
        };
        // What can never commit now (stale, expired; pending or parked behind a nonce gap)
        // loses its durable record too: before, the records of acknowledged transactions
        // that never committed stayed until the next restart, and a client sending expiring
        // transactions behind a nonce gap grew them without bound (and the restart's work
        // with them). Parked ones whose gap this block filled are pending again already.
        if !dropped.is_empty() {
            if let Err(error) = self.store.forget_pending(&dropped) {
                tracing::warn!(%error, "cannot forget the records of expired transactions");
            }
        }
        if let (Some(statements), true) = (&self.statements, outcome.settlement.is_some()) {
            statements.send(StatementJob::Closed(self.ledger.clone()));
        }
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.after_commit(&self.tip, &self.ledger, self.halted());
        }
        self.metrics
            .committed(height, outcome.receipts.len(), started.elapsed());
        let queued = outcome
            .receipts
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Queued { .. }))
            .count();
        tracing::info!(
            height,
            round = certificate.vote.round,
            transactions = outcome.receipts.len(),
            queued,
            released = outcome.released.len(),
            settled = outcome.settlement.is_some(),
            state_root = %outcome.state_root,
            "committed block"
        );
        Ok(Arc::new(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use interpool_contracts::testkit::{account, customer_seed};
    use interpool_contracts::Transaction;

    fn limits() -> BlockLimits {
        BlockLimits {
            max_transactions: 100,
            max_bytes: 1 << 20,
        }
    }

    /// A block's hash is the digest its commit certificate names, for any payload: two
    /// crates compute it, and they must agree byte for byte.
    #[test]
    fn a_blocks_hash_is_the_consensus_digest_of_its_payload() {
        use interpool_consensus::Digest;
        let block = Block {
            header: BlockHeader {
                chain_id: "test".into(),
                height: 7,
                parent_hash: Hash([1; 32]),
                previous_state_root: Hash([2; 32]),
                timestamp_ms: 3,
                proposer: account(customer_seed(0, 0)),
            },
            transactions: vec![
                testkit::transfer(customer_seed(0, 0), 0).signed().clone(),
                testkit::transfer(customer_seed(0, 1), 0).signed().clone(),
            ],
        };
        let empty = Block {
            transactions: Vec::new(),
            ..block.clone()
        };
        for payload in [
            block.encode(),
            empty.encode(),
            b"block".to_vec(),
            Vec::new(),
            vec![0, 0, 0, 0],
            vec![0, 0, 0, 9, 1],
        ] {
            assert_eq!(
                Block::hash_of(&payload).0,
                Digest::of(&payload).0,
                "{payload:?}"
            );
        }
        let encoded = block.encode();
        let (head, body) = Block::split(&encoded).expect("framed");
        assert_eq!(Digest::split(&encoded), Some((head, body)));
        let body_digest = interpool_contracts::primitives::sha256(&[body]);
        assert_eq!(
            Block::hash_of_parts(head, &body_digest).0,
            Digest::of_parts(head, &body_digest.0).0
        );
    }

    #[test]
    fn a_committed_block_removes_this_nodes_pending_records_also_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let (a, b) = (customer_seed(0, 0), customer_seed(1, 0));
        let (first, second) = (testkit::transfer(a, 0), testkit::transfer_to(b, a, 0, 10));
        let commit_one = |core: &mut Core, height: u64, tx: &VerifiedTransaction| {
            testkit::admit(core, tx.clone());
            let block = core.build_proposal(testkit::proposer(), 1_000 * height);
            core.validate_proposal(height, &block, &testkit::context())
                .expect("valid");
            core.commit(height, &block, &testkit::certificate(height, &block))
                .expect("commit");
        };
        {
            let (mut core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
            store
                .save_pending(&[first.clone(), second.clone()])
                .expect("acknowledged");
            commit_one(&mut core, 1, &first);
            let left: Vec<Hash> = store
                .pending_transactions()
                .expect("pending")
                .iter()
                .map(interpool_contracts::SignedTransaction::hash)
                .collect();
            assert_eq!(left, vec![second.hash()]);
        }
        // Reopened: the record left is known again, and goes when its transaction commits.
        let (mut core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
        commit_one(&mut core, 2, &second);
        assert!(store.pending_transactions().expect("pending").is_empty());
    }

    #[test]
    fn transactions_behind_a_nonce_gap_are_nothing_to_propose() {
        // A customer that signs nonce 1 before nonce 0 must not make the proposer produce
        // empty blocks as fast as it can (it did: the mempool was not empty).
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let core = testkit::core(&genesis, dir.path(), limits());
        let a = customer_seed(0, 0);
        assert!(core.nothing_to_propose());
        testkit::admit(&core, testkit::transfer(a, 1));
        assert!(!lock(core.mempool()).is_empty());
        assert!(
            core.nothing_to_propose(),
            "nonce 1 cannot go before nonce 0"
        );
        testkit::admit(&core, testkit::transfer(a, 0));
        assert!(!core.nothing_to_propose());
    }

    #[test]
    fn build_validate_commit_and_replay_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let a = customer_seed(0, 0);
        let (root, tip_hash) = {
            let mut core = testkit::core(&genesis, dir.path(), limits());
            for n in 0..3 {
                testkit::admit(&core, testkit::transfer(a, n));
            }
            let block = core.build_proposal(testkit::proposer(), 1_000);
            core.validate_proposal(1, &block, &testkit::context())
                .expect("own block is valid");
            let outcome = core
                .commit(1, &block, &testkit::certificate(1, &block))
                .expect("commit");
            assert_eq!(outcome.receipts.len(), 3);
            assert!(
                lock(core.mempool()).is_empty(),
                "committed transactions leave"
            );
            // Block 2, validated by a node whose mempool never saw its transaction.
            let other_dir = tempfile::tempdir().expect("tempdir");
            let mut other = testkit::core(&genesis, other_dir.path(), limits());
            let block1 = testkit::certificate(1, &block);
            other.commit(1, &block, &block1).expect("other commits 1");
            testkit::admit(&other, testkit::transfer(a, 3));
            let block2 = other.build_proposal(testkit::proposer(), 900);
            core.validate_proposal(2, &block2, &testkit::context())
                .expect("unknown transactions are verified");
            core.commit(2, &block2, &testkit::certificate(2, &block2))
                .expect("commit 2");
            assert_eq!(core.tip().height, 2);
            assert_eq!(core.tip().timestamp_ms, 1_000, "timestamps never go back");
            (core.ledger().state_root(), core.tip().hash)
        };
        let core = testkit::core(&genesis, dir.path(), limits());
        assert_eq!(core.tip().height, 2);
        assert_eq!(core.ledger().state_root(), root);
        assert_eq!(core.tip().hash, tip_hash);
        assert!(core.store().certificate(2).expect("read").is_some());
    }

    /// A consortium of one certifies its proposer's block without asking it to validate
    /// it: the commit takes the block as built, and executes it as any node would.
    #[test]
    fn an_own_proposal_certified_without_validation_commits_as_built() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let a = customer_seed(0, 0);
        let mut core = testkit::core(&genesis, dir.path(), limits());
        for n in 0..2 {
            testkit::admit(&core, testkit::transfer(a, n));
        }
        let block = core.build_proposal(testkit::proposer(), 1_000);
        let outcome = core
            .commit(1, &block, &testkit::certificate(1, &block))
            .expect("commit");
        assert_eq!(outcome.receipts.len(), 2);
        assert_eq!(core.tip().hash, Block::hash_of(&block));
        assert_eq!(core.ledger().next_nonce(&account(a)), Some(2));
        // A node that only executes the certified block reaches the same state.
        let other_dir = tempfile::tempdir().expect("tempdir");
        let mut other = testkit::core(&genesis, other_dir.path(), limits());
        other
            .commit(1, &block, &testkit::certificate(1, &block))
            .expect("other commits 1");
        assert_eq!(other.ledger().state_root(), core.ledger().state_root());

        // A proposal that another block at its height replaced is not taken for anything
        // after it: the other block is decoded and checked as a certified one.
        testkit::admit(&core, testkit::transfer(a, 2));
        let replaced = core.build_proposal(testkit::proposer(), 2_000);
        let mut winner = Block::decode(&replaced, u64::MAX).expect("decode");
        winner.transactions.clear();
        let winner = winner.encode();
        core.commit(2, &winner, &testkit::certificate(2, &winner))
            .expect("the certified block commits");
        assert_eq!(core.tip().hash, Block::hash_of(&winner));
        assert_eq!(core.ledger().next_nonce(&account(a)), Some(2));
        assert!(
            core.proposed.is_none(),
            "the replaced proposal is forgotten"
        );
    }

    /// Commits `blocks` blocks of one transfer each on `core`.
    fn commit_transfers(core: &mut Core, blocks: u64) {
        let a = customer_seed(0, 0);
        for _ in 0..blocks {
            let height = core.next_height();
            let nonce = core.ledger().next_nonce(&account(a)).unwrap_or(0);
            testkit::admit(core, testkit::transfer(a, nonce));
            let block = core.build_proposal(testkit::proposer(), 1_000 * height);
            core.validate_proposal(height, &block, &testkit::context())
                .expect("valid");
            core.commit(height, &block, &testkit::certificate(height, &block))
                .expect("commit");
        }
    }

    /// A retry (a new nonce) of the transfer `T{from}-{nonce}` that `commit_transfers`
    /// committed.
    fn retry_of(core: &Core, from: u64, nonce: u64) -> VerifiedTransaction {
        transfer_named(core, from, format!("T{from}-{nonce}"), 1_000)
    }

    /// A transfer of 10 from `from` (at its next nonce) carrying `end_to_end_id`.
    fn transfer_named(
        core: &Core,
        from: u64,
        end_to_end_id: String,
        valid_until_height: u64,
    ) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(from),
            nonce: core.ledger().next_nonce(&account(from)).unwrap_or(0),
            valid_until_height,
            body: Body::Transfer {
                to: account(customer_seed(1, 0)),
                amount: interpool_contracts::Amount(10),
                end_to_end_id,
                reference: String::new(),
                terms: Default::default(),
            },
        }
        .sign(&interpool_contracts::testkit::key(from))
        .check_stateless("test")
        .expect("valid")
    }

    /// A node stopped at its halt height without the halt's checkpoint (here: none was due,
    /// the setting came later) writes it when started again with the setting, so that the
    /// upgraded binary starts from the state at the halt height. With the tip past its
    /// checkpoint and no halt, nothing is written.
    #[test]
    fn a_node_started_at_its_halt_height_without_that_checkpoint_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        {
            let mut core = testkit::core(&genesis, dir.path(), limits())
                .with_checkpoints(100, None)
                .expect("checkpoint writer");
            commit_transfers(&mut core, 3);
            core.finish_checkpoints();
            assert_eq!(core.store().checkpoint().expect("read"), None);
        }
        let mut core = testkit::core(&genesis, dir.path(), limits())
            .with_checkpoints(100, None)
            .expect("checkpoint writer")
            .with_halt_height(None);
        core.finish_checkpoints();
        assert_eq!(core.store().checkpoint().expect("read"), None, "no halt");
        drop(core);
        let mut core = testkit::core(&genesis, dir.path(), limits())
            .with_checkpoints(100, None)
            .expect("checkpoint writer")
            .with_halt_height(Some(3));
        assert!(core.halted());
        core.finish_checkpoints();
        let written = core.store().checkpoint().expect("read").expect("written");
        assert_eq!(
            (written.height, written.state_root),
            (3, core.tip().state_root)
        );
    }

    #[test]
    fn the_duplicate_window_is_kept_in_the_store_and_catches_a_retry_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let a = customer_seed(0, 0);
        {
            let mut core = testkit::core(&genesis, dir.path(), limits())
                .with_checkpoints(4, None)
                .expect("checkpoint writer");
            commit_transfers(&mut core, 6);
            // None of the window is in the ledger's memory: all six blocks' ids are in the
            // store, and the retry of the payment of block 2 is a duplicate.
            assert_eq!(core.ledger().end_to_end_heights(), (0, 6));
            let retry = retry_of(&core, a, 1);
            assert_eq!(
                core.ledger().check(&retry, core.next_height()),
                Err(TxError::DuplicateEndToEndId(format!("T{a}-1")))
            );
            core.finish_checkpoints();
            // The store loses its lists (a database from before the archive has none).
            core.store()
                .forget_end_to_end_below(u64::MAX)
                .expect("forget");
        }
        let core = testkit::core(&genesis, dir.path(), limits());
        assert_eq!(core.start_report().restored_from_height, 4);
        assert_eq!(core.ledger().end_to_end_heights(), (0, 6));
        // The start wrote them again, from the checkpoint and the replayed blocks.
        for height in 1..=6 {
            assert_eq!(core.store().list(height).len(), 1, "height {height}");
        }
        let retry = retry_of(&core, a, 1);
        let mut ledger = core.ledger().clone();
        let outcome = ledger.apply_block(7, 7_000, std::slice::from_ref(&retry));
        assert_eq!(
            outcome.receipts[0].outcome,
            Outcome::Rejected {
                error: TxError::DuplicateEndToEndId(format!("T{a}-1")),
            },
        );
        // A node that replays every block from the genesis, all in memory, agrees.
        let mut full = crate::app::replay::Replay::from_genesis(&genesis).expect("genesis");
        for height in 1..=6 {
            full.block(
                core.store().as_ref(),
                height,
                crate::app::replay::Trust::OwnStore,
            )
            .expect("replay");
        }
        let mut in_memory = full.ledger().clone();
        assert_eq!(in_memory.end_to_end_heights(), (6, 0));
        assert_eq!(
            in_memory.apply_block(7, 7_000, std::slice::from_ref(&retry)),
            outcome
        );
        assert_eq!(ledger.state_root(), in_memory.state_root());
    }

    #[test]
    fn the_end_to_end_floor_keeps_the_window_of_the_last_checkpoint_written() {
        // No checkpoints: the window before the tip.
        assert_eq!(end_to_end_floor(5_000, 1_000, None), Some(4_000));
        assert_eq!(end_to_end_floor(500, 1_000, None), Some(0));
        // Checkpoints, the last written at 3,000: a later one being written reads from
        // 3,000 - 1,000 on.
        assert_eq!(
            end_to_end_floor(5_000, 1_000, Some(Some(3_000))),
            Some(2_000)
        );
        // None written yet: the first one may be being written, from any height.
        assert_eq!(end_to_end_floor(5_000, 1_000, Some(None)), None);
    }

    #[test]
    fn the_store_lets_the_window_go_but_keeps_what_the_checkpoint_writer_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut genesis = testkit::genesis();
        genesis.duplicate_window_blocks = 10;
        genesis.max_validity_blocks = 5;
        genesis.queue_expiry_blocks = 5;
        let a = customer_seed(0, 0);
        let commit_named = |core: &mut Core| {
            let height = core.next_height();
            let tx = transfer_named(core, a, format!("P-{height}"), height + 5);
            testkit::admit(core, tx);
            let block = core.build_proposal(testkit::proposer(), 1_000 * height);
            core.validate_proposal(height, &block, &testkit::context())
                .expect("valid");
            core.commit(height, &block, &testkit::certificate(height, &block))
                .expect("commit");
        };
        let blocks = 2 * FORGET_END_TO_END_EVERY + 1_100;
        let root = {
            let (core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
            let mut core = core.with_checkpoints(8, None).expect("checkpoint writer");
            for _ in 0..blocks {
                commit_named(&mut core);
            }
            core.finish_checkpoints();
            // Checkpoints went on being written to the end, each reading its window from
            // the store: the writer never found a list gone (it stops at the first it
            // misses; one it was offered while busy is skipped).
            let info = store.checkpoint().expect("read").expect("a checkpoint");
            assert!(
                info.height >= blocks - 32,
                "the last checkpoint is at {}",
                info.height
            );
            // What the window passed long ago is gone; what it holds is there.
            assert_eq!(store.remembered_list(5).expect("read"), None);
            assert!(store.remembered_list(blocks).expect("read").is_some());
            assert_eq!(core.ledger().end_to_end_heights(), (0, 10));
            core.ledger().state_root()
        };
        let mut core = testkit::core(&genesis, dir.path(), limits());
        assert_eq!(core.ledger().state_root(), root);
        assert_eq!(core.ledger().end_to_end_heights(), (0, 10));
        // Within the window a retry is a duplicate; past it, a payment again.
        let height = core.next_height();
        let recent = transfer_named(&core, a, format!("P-{}", height - 3), height + 5);
        assert_eq!(
            core.ledger().check(&recent, height),
            Err(TxError::DuplicateEndToEndId(format!("P-{}", height - 3)))
        );
        let old = transfer_named(&core, a, format!("P-{}", height - 11), height + 5);
        assert_eq!(core.ledger().check(&old, height), Ok(()));
        commit_named(&mut core);
    }

    #[test]
    fn a_start_replays_only_the_blocks_after_the_last_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let (root, hash) = {
            let mut core = testkit::core(&genesis, dir.path(), limits())
                .with_checkpoints(4, None)
                .expect("checkpoint writer");
            commit_transfers(&mut core, 4);
            // The writer takes the checkpoint at 4 before the one at 8 is offered: one still
            // waiting when the next comes is replaced by it (on a busy machine the writer
            // thread may not run between four quick commits, and this test then failed).
            testkit::wait_for_blocking(
                std::time::Duration::from_secs(30),
                "the checkpoint at 4",
                || core.store().checkpoint().expect("read").map(|c| c.height) == Some(4),
            );
            commit_transfers(&mut core, 6);
            core.finish_checkpoints();
            (core.ledger().state_root(), core.tip().hash)
        };
        let core = testkit::core(&genesis, dir.path(), limits());
        let start = core.start_report();
        assert_eq!(
            start.restored_from_height, 8,
            "the checkpoint at 8 replaced the one at 4"
        );
        assert_eq!(start.replayed_blocks, 2);
        assert_eq!(core.tip().height, 10);
        assert_eq!(core.tip().hash, hash);
        assert_eq!(core.ledger().state_root(), root);
        let info = core
            .store()
            .checkpoint()
            .expect("read")
            .expect("a checkpoint");
        assert_eq!(info.height, 8);
        assert_eq!(
            core.store()
                .previous_checkpoint()
                .expect("read")
                .map(|c| c.height),
            Some(4),
            "the one before is kept for state sync"
        );
        assert!(
            !crate::app::checkpoint::read_entries(core.store().as_ref(), 4)
                .expect("read")
                .is_empty()
        );
        // It goes on from there as a node that replayed everything does.
        let mut core = core;
        commit_transfers(&mut core, 1);
        let full_dir = tempfile::tempdir().expect("tempdir");
        let mut full = testkit::core(&genesis, full_dir.path(), limits());
        for height in 1..=11 {
            let block = core.store().block(height).expect("read").expect("block");
            full.commit(height, &block, &testkit::certificate(height, &block))
                .expect("commit");
        }
        assert_eq!(full.ledger().state_root(), core.ledger().state_root());
    }

    #[test]
    fn statements_of_every_cycle_balance_also_across_a_restart_from_a_checkpoint_mid_cycle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut genesis = testkit::genesis();
        genesis.cycle_blocks = 6;
        let payer = account(customer_seed(0, 0));
        let bank = interpool_contracts::testkit::bank_id(0);
        {
            let (core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
            let mut core = core
                .with_statements(store.clone())
                .expect("statement writer")
                .with_checkpoints(4, None)
                .expect("checkpoint writer");
            commit_transfers(&mut core, 10);
            core.finish_statements();
            core.finish_checkpoints();
            assert_eq!(store.statements_through().expect("read"), 1);
        }
        // Restarted from the checkpoint at 8, in the middle of cycle 2 (7..=12).
        let (core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
        assert_eq!(core.start_report().restored_from_height, 8);
        let mut core = core
            .with_statements(store.clone())
            .expect("statement writer");
        commit_transfers(&mut core, 2);
        let holdings = {
            let a = core.ledger().account(&payer).expect("payer");
            u128::from(a.balance.0) + u128::from(a.reserved.0)
        };
        core.finish_statements();
        let first = store.statement(1, &bank).expect("read").expect("cycle 1");
        let second = store.statement(2, &bank).expect("read").expect("cycle 2");
        let (one, two) = (
            first.account(&payer).expect("moved in 1"),
            second.account(&payer).expect("moved in 2"),
        );
        assert_eq!((one.entries.len(), two.entries.len()), (6, 6));
        assert_eq!(one.opening, 100_000);
        assert_eq!(
            two.opening, one.closing,
            "a cycle opens where the last one closed"
        );
        assert_eq!(two.closing, holdings, "and closes at what the chain holds");
        assert_eq!(two.closing, 100_000 - 12 * 10);
        assert_eq!((second.start_height, second.end_height), (7, 12));
    }

    #[test]
    fn a_restart_from_a_checkpoint_older_than_the_last_statement_loses_no_later_statement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut genesis = testkit::genesis();
        genesis.cycle_blocks = 6;
        let payer = account(customer_seed(0, 0));
        let bank = interpool_contracts::testkit::bank_id(0);
        {
            let (core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
            let mut core = core
                .with_statements(store.clone())
                .expect("statement writer")
                .with_checkpoints(16, None)
                .expect("checkpoint writer");
            // Cycles close at 6, 12, 18; the one checkpoint is at 16. (One only: the writer
            // skips a checkpoint offered while the previous one is still being written, so
            // with several, which one is last would depend on the machine's load.)
            commit_transfers(&mut core, 19);
            core.finish_statements();
            core.finish_checkpoints();
            assert_eq!(store.statements_through().expect("read"), 3);
        }
        let (core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
        assert_eq!(core.start_report().restored_from_height, 16);
        let mut core = core
            .with_statements(store.clone())
            .expect("statement writer");
        commit_transfers(&mut core, 5);
        core.finish_statements();
        let third = store.statement(3, &bank).expect("read").expect("cycle 3");
        let fourth = store
            .statement(4, &bank)
            .expect("read")
            .expect("cycle 4 made");
        let (three, four) = (
            third.account(&payer).expect("moved in 3"),
            fourth.account(&payer).expect("moved in 4"),
        );
        assert_eq!(four.opening, three.closing);
        assert_eq!(four.entries.len(), 6);
        assert_eq!(four.closing, 100_000 - 24 * 10);
    }

    #[test]
    fn pruning_removes_blocks_and_every_index_entry_below_the_floor_and_nothing_above() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let (mut core, store) = testkit::core_and_store(&genesis, dir.path(), limits());
        commit_transfers(&mut core, 10);
        let hash_at = |height: u64| {
            store
                .outcome(height)
                .expect("read")
                .expect("outcome")
                .receipts[0]
                .tx_hash
        };
        let (old, kept) = (hash_at(3), hash_at(8));
        assert_eq!(store.prune_below(6).expect("prune"), 5);
        assert_eq!(store.earliest_height().expect("read"), 6);
        for height in 1..6 {
            assert!(store.block(height).expect("read").is_none());
            assert!(store.certificate(height).expect("read").is_none());
            assert!(store.outcome(height).expect("read").is_none());
        }
        assert!(store.block(6).expect("read").is_some());
        assert_eq!(store.tx_location(&old).expect("read"), None);
        assert_eq!(store.tx_location(&kept).expect("read"), Some((8, 0)));
        let history = store
            .account_history(&account(customer_seed(0, 0)), None, 100)
            .expect("history");
        assert_eq!(
            history.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
            vec![10, 9, 8, 7, 6],
            "history keeps the heights it keeps"
        );
        // Pruning again below the same floor does nothing; the chain goes on.
        assert_eq!(store.prune_below(6).expect("prune"), 0);
        commit_transfers(&mut core, 1);
        assert_eq!(core.tip().height, 11);
    }

    #[test]
    fn a_checkpoint_that_does_not_hash_to_its_root_is_not_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let root = {
            let mut core = testkit::core(&genesis, dir.path(), limits())
                .with_checkpoints(3, None)
                .expect("checkpoint writer");
            commit_transfers(&mut core, 4);
            core.finish_checkpoints();
            // A checkpoint whose description names another state root.
            let mut tip = core.tip().clone();
            tip.height = 3;
            tip.hash = Block::hash_of(&core.store().block(3).expect("read").expect("block"));
            tip.state_root = Hash([7; 32]);
            let entries =
                crate::app::checkpoint::read_entries(core.store().as_ref(), 3).expect("read");
            core.store()
                .write_checkpoint(&tip, &mut entries.into_iter())
                .expect("write");
            core.ledger().state_root()
        };
        let core = testkit::core(&genesis, dir.path(), limits());
        assert_eq!(
            core.start_report().restored_from_height,
            0,
            "replayed from the genesis"
        );
        assert_eq!(core.start_report().replayed_blocks, 4);
        assert_eq!(core.ledger().state_root(), root);
    }

    #[test]
    fn every_commit_is_published_to_readers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let mut core = testkit::core(&genesis, dir.path(), limits());
        let mut view = core.subscribe();
        assert_eq!(view.borrow().tip.height, 0);
        testkit::admit(&core, testkit::transfer(customer_seed(0, 0), 0));
        let block = core.build_proposal(testkit::proposer(), 5);
        core.commit(1, &block, &testkit::certificate(1, &block))
            .expect("commit");
        assert!(view.has_changed().expect("open"));
        let published = view.borrow_and_update().clone();
        assert_eq!(published.tip, *core.tip());
        assert_eq!(published.ledger.state_root(), core.ledger().state_root());
        assert_eq!(
            published.ledger.next_nonce(&account(customer_seed(0, 0))),
            Some(1)
        );
    }

    #[test]
    fn a_database_of_another_chain_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        drop(testkit::core(&genesis, dir.path(), limits()));
        let mut other = genesis.clone();
        other.chain_id = "another".into();
        let store = Arc::new(crate::storage::Store::open(dir.path()).expect("store"));
        let result = Core::open(
            &other,
            store,
            limits(),
            testkit::mempool(),
            Arc::new(Metrics::new()),
        );
        assert!(
            matches!(result, Err(ChainError::OtherChain { .. })),
            "{:?}",
            result.err()
        );
    }

    #[test]
    fn invalid_proposals_are_refused_with_reasons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut core = testkit::core(&testkit::genesis(), dir.path(), limits());
        assert!(matches!(
            core.validate_proposal(1, b"garbage", &testkit::context()),
            Err(InvalidBlock::Block(BlockError::Decode(_)))
        ));
        let good =
            Block::decode(&core.build_proposal(testkit::proposer(), 5), u64::MAX).expect("decode");
        assert!(matches!(
            core.validate_proposal(2, &good.encode(), &testkit::context()),
            Err(InvalidBlock::Block(BlockError::WrongHeight { .. }))
        ));
        let mut wrong_parent = good.clone();
        wrong_parent.header.parent_hash = Hash([1; 32]);
        assert!(matches!(
            core.validate_proposal(1, &wrong_parent.encode(), &testkit::context()),
            Err(InvalidBlock::Block(BlockError::WrongParent { .. }))
        ));
        let mut forged = good.clone();
        let mut tx = testkit::transfer(customer_seed(0, 0), 0).into_signed();
        tx.tx.nonce = 7; // no longer matches the signature
        forged.transactions.push(tx);
        assert!(matches!(
            core.validate_proposal(1, &forged.encode(), &testkit::context()),
            Err(InvalidBlock::Transaction {
                index: 0,
                error: TxError::BadSignature
            })
        ));
        // Past the consensus bound, refused before decoding; within it, this node's own
        // proposal limits do not matter.
        assert!(matches!(
            core.validate_proposal(1, &vec![0; MAX_PAYLOAD_BYTES + 1], &testkit::context()),
            Err(InvalidBlock::Block(BlockError::TooLarge(_)))
        ));
        let mut many = good;
        many.transactions = (0..101)
            .map(|n| testkit::transfer(customer_seed(0, 1), n).into_signed())
            .collect();
        core.validate_proposal(1, &many.encode(), &testkit::context())
            .expect("more transactions than this node would propose is still valid");
        // A certified block is executed, not judged again: the quorum verified it. (Its
        // forged transaction, whose nonce is not the next, is rejected by the ledger.)
        let outcome = core
            .commit(
                1,
                &forged.encode(),
                &testkit::certificate(1, &forged.encode()),
            )
            .expect("a certified block commits");
        assert!(matches!(
            outcome.receipts[0].outcome,
            interpool_contracts::Outcome::Rejected {
                error: TxError::BadNonce { .. }
            }
        ));
        // One that does not extend this node's chain stops the node rather than diverge.
        let mut elsewhere =
            Block::decode(&core.build_proposal(testkit::proposer(), 6), u64::MAX).expect("decode");
        elsewhere.header.previous_state_root = Hash([3; 32]);
        assert!(matches!(
            core.commit(
                2,
                &elsewhere.encode(),
                &testkit::certificate(2, &elsewhere.encode())
            ),
            Err(ChainError::FinalizedInvalid { height: 2, .. })
        ));
    }

    /// A byzantine proposer's blocks: each is refused with its reason.
    #[test]
    fn proposals_an_honest_proposer_would_never_make_are_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let mut core = testkit::core(&genesis, dir.path(), limits());
        let (a, b) = (customer_seed(0, 0), customer_seed(0, 1));
        let first = testkit::transfer(a, 0);
        testkit::commit_block(&mut core, vec![first.clone()], 1_000);
        let base = Block::decode(&core.build_proposal(testkit::proposer(), 2_000), u64::MAX)
            .expect("decode");
        let check = |core: &mut Core, block: &Block| {
            core.validate_proposal(2, &block.encode(), &testkit::context())
        };
        let with = |txs: Vec<interpool_contracts::SignedTransaction>| {
            let mut block = base.clone();
            block.transactions = txs;
            block
        };
        check(
            &mut core,
            &with(vec![testkit::transfer(a, 1).into_signed()]),
        )
        .expect("the honest block is valid");

        let mut named = with(vec![]);
        named.header.proposer = AccountId([99; 32]);
        assert!(matches!(
            check(&mut core, &named),
            Err(InvalidBlock::WrongProposer { .. })
        ));
        let mut future = with(vec![]);
        future.header.timestamp_ms = testkit::context().now_ms + MAX_CLOCK_DRIFT_MS + 1;
        assert!(matches!(
            check(&mut core, &future),
            Err(InvalidBlock::FromTheFuture { .. })
        ));
        let twice = testkit::transfer(b, 0).into_signed();
        assert!(matches!(
            check(&mut core, &with(vec![twice.clone(), twice])),
            Err(InvalidBlock::Duplicate { index: 1 })
        ));
        assert!(matches!(
            check(&mut core, &with(vec![first.into_signed()])),
            Err(InvalidBlock::AlreadyIncluded {
                index: 0,
                height: 1
            })
        ));
        let stranger = Transaction {
            chain_id: "test".into(),
            signer: account(4242),
            nonce: 0,
            valid_until_height: 100,
            body: interpool_contracts::Body::SettleCycle,
        }
        .sign(&interpool_contracts::testkit::key(4242));
        assert!(matches!(
            check(&mut core, &with(vec![stranger])),
            Err(InvalidBlock::Transaction {
                error: TxError::UnknownSigner(_),
                ..
            })
        ));
        // A stale nonce (another transaction than the committed one with that nonce).
        let stale = testkit::transfer_to(a, customer_seed(1, 1), 0, 11).into_signed();
        assert!(matches!(
            check(&mut core, &with(vec![stale])),
            Err(InvalidBlock::Transaction {
                error: TxError::BadNonce { .. },
                ..
            })
        ));
        assert!(matches!(
            check(
                &mut core,
                &with(vec![
                    testkit::transfer(b, 0).into_signed(),
                    testkit::transfer(b, 2).into_signed()
                ])
            ),
            Err(InvalidBlock::Transaction {
                index: 1,
                error: TxError::BadNonce {
                    expected: 1,
                    got: 2
                }
            })
        ));
        let expired = Transaction {
            chain_id: "test".into(),
            signer: account(b),
            nonce: 0,
            valid_until_height: 1,
            body: interpool_contracts::Body::Transfer {
                to: account(customer_seed(1, 0)),
                amount: interpool_contracts::Amount(1),
                end_to_end_id: "late".into(),
                reference: String::new(),
                terms: Default::default(),
            },
        }
        .sign(&interpool_contracts::testkit::key(b));
        assert!(matches!(
            check(&mut core, &with(vec![expired])),
            Err(InvalidBlock::Transaction {
                error: TxError::Expired { .. },
                ..
            })
        ));
    }
}
