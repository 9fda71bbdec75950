//! The mempool: verified transactions waiting for a block.
//!
//! * Only [`VerifiedTransaction`]s enter (signatures were checked once, in batches, on the
//!   verification workers); a proposal's transactions found here are not verified again.
//! * Admission runs the ledger's stateful check with "this nonce or a later one", so a
//!   signer may have several transactions pending.
//! * Bounded: at most `max_transactions` in all and `max_per_signer` per signer; beyond
//!   that a submission is refused (the API answers 503), never queued in memory.
//! * Blocks are filled in arrival order, except that a signer's transactions always go in
//!   nonce order and only without gaps (a gap would only earn a `bad_nonce` rejection).
//! * A transaction this node acknowledged to a client (recorded on its disk, ADR 0010) that
//!   a full mempool evicts while it waits behind a nonce gap is parked, not forgotten: the
//!   commit that fills the gap admits it again, so it keeps being offered without waiting
//!   for a restart ([`Mempool::after_commit`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use interpool_contracts::ledger::ArchiveAnswers;
use interpool_contracts::{
    AccountId, AdmissionError, Hash, Ledger, SignedTransaction, TxError, VerifiedTransaction,
};

/// The mempool as the core, admission and readers share it. Every holder of its lock does
/// a bounded amount of work under it: no signature verification, and no I/O but the
/// duplicate window's lookups in the store (one batched read per admitted batch, mostly
/// answered from memory: [`Ledger::ask_archive`]).
pub type SharedMempool = Arc<Mutex<Mempool>>;

/// Mempool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most pending transactions.
    pub max_transactions: usize,
    /// Most pending transactions of one signer.
    pub max_per_signer: usize,
    /// Backpressure on clients (none: only the limits above).
    pub client_backlog: Option<ClientBacklog>,
}

/// Backpressure on clients: a client's submission is refused while the mempool holds more
/// that the next blocks can take than the chain commits in `drain` (the rate measured over
/// the commits of the last [`RATE_WINDOW`]), and never while it holds fewer than `floor`
/// (transactions behind a nonce gap wait uncounted: [`Mempool::client_backlog_full`]).
/// Offered more than the network can commit, a node then answers "come back later" instead
/// of acknowledging a backlog that takes ever longer to commit (at twice the capacity,
/// without it, p99 grew to 40 s within a minute and every node's memory with it). Peers'
/// transactions are not refused by it: they were acknowledged elsewhere already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientBacklog {
    /// How long the pending transactions may take to commit, at the measured rate.
    pub drain: Duration,
    /// Never refused below this many pending.
    pub floor: usize,
}

/// The span of recent commits the commit rate is measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

struct Entry {
    tx: VerifiedTransaction,
    encoded_len: usize,
    arrival: u64,
    /// When it was admitted here (for offering it again if it lingers).
    since: std::time::Instant,
    /// Recorded on this node's disk as acknowledged to a client (ADR 0010), or about to be:
    /// evicted behind a nonce gap, it is parked rather than dropped ([`Parked`]).
    acknowledged: bool,
}

/// Acknowledged transactions a full mempool evicted while they waited behind a nonce gap
/// ([`Mempool::evict_unselectable`]). Their records stay on disk, since they may still
/// commit; held here, the commit that moves their signer's nonce up to them admits them
/// again ([`Mempool::after_commit`]), so that they are offered to the validators again
/// without waiting for a restart (ADR 0010: "until it commits or expires"). Before, they
/// stayed out of every mempool until the node restarted, however soon the gap was filled.
///
/// Bounded as the mempool is: at most `max_transactions` in all and `max_per_signer` per
/// signer. What does not fit keeps only its record, offered again at the next start. What
/// can never commit (a nonce used meanwhile, expired) goes, record included.
#[derive(Default)]
struct Parked {
    /// By signer and nonce (one per nonce: a later one with a nonce already parked is not).
    txs: BTreeMap<(AccountId, u64), VerifiedTransaction>,
    /// How many each signer has parked.
    per_signer: HashMap<AccountId, usize, RandomState>,
    /// By last valid height, for pruning.
    by_expiry: BTreeSet<(u64, AccountId, u64)>,
    /// Signers whose parked transaction next in line was refused for now (a full mempool,
    /// the signer's limit, funds): tried again at every commit, not only at their own.
    retry: BTreeSet<AccountId>,
    /// Acknowledged transactions that were evicted and did not fit here, by last valid
    /// height: only their record is left, to be forgotten once they expire (at most
    /// [`MAX_ORPHANS`]; beyond, a record stays until the next start forgets it).
    orphans: BTreeSet<(u64, Hash)>,
}

/// Most acknowledged transactions remembered only to forget their records at expiry
/// (40 bytes each).
const MAX_ORPHANS: usize = 1_000_000;

impl Parked {
    /// Parks `tx` if it fits; false if not (it keeps only its record).
    fn park(&mut self, tx: VerifiedTransaction, limits: &MempoolLimits) -> bool {
        let (signer, nonce) = (tx.tx().signer, tx.tx().nonce);
        let count = self.per_signer.get(&signer).copied().unwrap_or(0);
        if self.txs.len() >= limits.max_transactions
            || count >= limits.max_per_signer
            || self.txs.contains_key(&(signer, nonce))
        {
            return false;
        }
        self.by_expiry
            .insert((tx.tx().valid_until_height, signer, nonce));
        self.txs.insert((signer, nonce), tx);
        self.per_signer.insert(signer, count.saturating_add(1));
        true
    }

    /// Takes out `signer`'s parked transaction with `nonce`.
    fn take(&mut self, signer: &AccountId, nonce: u64) -> Option<VerifiedTransaction> {
        let tx = self.txs.remove(&(*signer, nonce))?;
        self.by_expiry
            .remove(&(tx.tx().valid_until_height, *signer, nonce));
        let count = self.per_signer.get(signer).copied().unwrap_or(0);
        if count > 1 {
            self.per_signer.insert(*signer, count - 1);
        } else {
            self.per_signer.remove(signer);
            self.retry.remove(signer);
        }
        Some(tx)
    }

    /// Takes out `signer`'s parked transactions with nonces below `next` (used now).
    fn take_stale(&mut self, signer: &AccountId, next: u64) -> Vec<Hash> {
        let nonces: Vec<u64> = self
            .txs
            .range((*signer, 0)..(*signer, next))
            .map(|((_, nonce), _)| *nonce)
            .collect();
        nonces
            .into_iter()
            .filter_map(|nonce| self.take(signer, nonce))
            .map(|tx| tx.hash())
            .collect()
    }

    /// Parks `tx` if it fits, else remembers it only to forget its record at expiry.
    fn park_or_orphan(&mut self, tx: VerifiedTransaction, limits: &MempoolLimits) -> bool {
        let (valid_until, hash) = (tx.tx().valid_until_height, tx.hash());
        if self.park(tx, limits) {
            return true;
        }
        if self.orphans.len() < MAX_ORPHANS {
            self.orphans.insert((valid_until, hash));
        }
        false
    }

    /// Takes out the parked transactions that cannot be included after `height`, and the
    /// orphans' records that can go.
    fn take_expired(&mut self, height: u64) -> Vec<Hash> {
        let gone: Vec<(u64, Hash)> = self
            .orphans
            .iter()
            .take_while(|(valid_until, _)| *valid_until <= height)
            .copied()
            .collect();
        let mut hashes: Vec<Hash> = gone
            .into_iter()
            .filter_map(|key| self.orphans.take(&key).map(|(_, hash)| hash))
            .collect();
        hashes.extend(self.take_expired_parked(height));
        hashes
    }

    /// Takes out the parked transactions that cannot be included after `height`.
    fn take_expired_parked(&mut self, height: u64) -> Vec<Hash> {
        let expired: Vec<(AccountId, u64)> = self
            .by_expiry
            .iter()
            .take_while(|(valid_until, _, _)| *valid_until <= height)
            .map(|(_, signer, nonce)| (*signer, *nonce))
            .collect();
        expired
            .into_iter()
            .filter_map(|(signer, nonce)| self.take(&signer, nonce))
            .map(|tx| tx.hash())
            .collect()
    }
}

/// The mempool. See the module documentation.
pub struct Mempool {
    limits: MempoolLimits,
    // Hashed with foldhash, seeded per process: every transaction passes through these maps
    // several times (admission, selection, commit), and with SipHash and an ordered map of
    // signers they were 3 % of a validator's CPU at full load (issue 12). The seed keeps
    // collisions out of a submitter's reach (transaction hashes can be ground). Nothing
    // depends on the order they iterate in.
    entries: HashMap<Hash, Entry, RandomState>,
    /// Per signer, pending transactions by nonce.
    by_signer: HashMap<AccountId, BTreeMap<u64, Hash>, RandomState>,
    /// Pending transactions by last valid height, for pruning.
    by_expiry: BTreeMap<(u64, u64), Hash>,
    next_arrival: u64,
    /// The block height the last eviction pass was for.
    evicted_for: Option<u64>,
    /// How many pending transactions the next blocks can take ([`Self::client_backlog_full`]),
    /// once counted: kept up to date by [`Self::insert`], forgotten when anything leaves.
    selectable: Option<usize>,
    /// When recent blocks committed and how many transactions each held (the last
    /// [`RATE_WINDOW`]), for [`ClientBacklog`].
    commits: VecDeque<(Instant, usize)>,
    /// Acknowledged transactions evicted behind a nonce gap, until it is filled.
    parked: Parked,
    /// Client submissions whose record is being written (ADR 0010), by hash: how many
    /// ([`Self::start_recording`]). Kept apart from the entries: the transaction may be
    /// evicted, parked or committed meanwhile.
    recording: HashMap<Hash, usize, RandomState>,
}

impl Mempool {
    /// An empty mempool.
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            entries: HashMap::default(),
            by_signer: HashMap::default(),
            by_expiry: BTreeMap::new(),
            next_arrival: 0,
            evicted_for: None,
            selectable: None,
            commits: VecDeque::new(),
            parked: Parked::default(),
            recording: HashMap::default(),
        }
    }

    /// Most pending transactions.
    pub fn capacity(&self) -> usize {
        self.limits.max_transactions
    }

    /// How many may be pending before clients are refused ([`ClientBacklog`]).
    pub fn client_cap(&self) -> Option<usize> {
        let backlog = self.limits.client_backlog?;
        let rate = self.commit_rate().unwrap_or(0.0);
        let cap = (rate * backlog.drain.as_secs_f64()).min(usize::MAX as f64) as usize;
        Some(cap.max(backlog.floor))
    }

    /// The pending count, if a client's transaction must wait now ([`ClientBacklog`]): the
    /// transactions the next blocks can take (each signer's with consecutive nonces from its
    /// next one by `ledger`, the ledger of the published view) have reached the client cap.
    ///
    /// Those waiting behind a nonce gap are not counted. No block can take them until the
    /// gap is filled; counting them refused the very transaction that fills it, and a
    /// mempool of nothing but gapped transactions commits nothing, so the cap stayed at its
    /// floor: every client was refused for ever (any customer could halt payments so). They
    /// are bounded by [`MempoolLimits::max_transactions`], whose eviction drops them.
    pub fn client_backlog_full(&mut self, ledger: &Ledger) -> Option<usize> {
        let cap = self.client_cap()?;
        if self.entries.len() < cap {
            return None;
        }
        let selectable = match self.selectable {
            Some(counted) => counted,
            None => {
                let counted = self
                    .by_signer
                    .keys()
                    .map(|signer| self.selectable_of(signer, ledger))
                    .fold(0usize, usize::saturating_add);
                self.selectable = Some(counted);
                counted
            }
        };
        (selectable >= cap).then_some(self.entries.len())
    }

    /// How many of `signer`'s pending transactions a block can take now: those with
    /// consecutive nonces from its next one by `ledger`.
    fn selectable_of(&self, signer: &AccountId, ledger: &Ledger) -> usize {
        ledger.next_nonce(signer).map_or(0, |next| {
            usize::try_from(self.next_nonce(signer, next).saturating_sub(next))
                .unwrap_or(usize::MAX)
        })
    }

    /// Transactions committed per second over the recent commits, if at least two blocks
    /// committed a measurable time apart.
    pub fn commit_rate(&self) -> Option<f64> {
        let (first, _) = self.commits.front()?;
        let (last, _) = self.commits.back()?;
        let span = last.duration_since(*first).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        // The first block's transactions came before the span began.
        let committed: usize = self.commits.iter().skip(1).map(|(_, n)| *n).sum();
        Some(committed as f64 / span)
    }

    fn record_commit(&mut self, transactions: usize) {
        self.record_commit_at(Instant::now(), transactions);
    }

    fn record_commit_at(&mut self, now: Instant, transactions: usize) {
        self.commits.push_back((now, transactions));
        while self
            .commits
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.commits.pop_front();
        }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True if some signer's next transaction by `ledger` is pending: a block built now
    /// would not be empty. (Transactions waiting behind a nonce gap are not selectable: a
    /// mempool holding only those has nothing to propose.)
    pub fn has_selectable(&self, ledger: &Ledger) -> bool {
        self.by_signer.iter().any(|(signer, pending)| {
            ledger
                .next_nonce(signer)
                .is_some_and(|next| pending.contains_key(&next))
        })
    }

    /// True if `hash` is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.entries.contains_key(hash)
    }

    /// A pending transaction (already verified).
    pub fn get(&self, hash: &Hash) -> Option<&VerifiedTransaction> {
        self.entries.get(hash).map(|e| &e.tx)
    }

    /// True if `tx` itself (not another transaction with its nonce) is parked: this node
    /// acknowledged it, and its record is on disk, or still being written for the
    /// submission that brought it ([`Self::is_recording`] says which; see `Parked`).
    pub fn is_parked(&self, tx: &VerifiedTransaction) -> bool {
        self.parked
            .txs
            .get(&(tx.tx().signer, tx.tx().nonce))
            .is_some_and(|parked| parked.hash() == tx.hash())
    }

    /// True if a client's submission of `hash` is being recorded: its synced write (or the
    /// taking back of the submission, if that write failed) has not ended. Until then the
    /// node cannot tell another submission that `hash` is recorded, pending or parked: the
    /// write may yet fail and take it back (ADR 0010: a 2xx comes from the disk of the node
    /// that answered).
    pub fn is_recording(&self, hash: &Hash) -> bool {
        self.recording.contains_key(hash)
    }

    /// A client's submission of `hash` is being recorded ([`Self::is_recording`]). Each call
    /// is matched by one [`Self::end_recording`] once the write, and the taking back of the
    /// submission if it failed, are over.
    pub fn start_recording(&mut self, hash: Hash) {
        let count = self.recording.entry(hash).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// The record of one submission of `hash` ([`Self::start_recording`]) is over.
    pub fn end_recording(&mut self, hash: &Hash) {
        let count = self.recording.get(hash).copied().unwrap_or(0);
        debug_assert!(count > 0, "the end of a record that never started");
        if count > 1 {
            self.recording.insert(*hash, count - 1);
        } else {
            self.recording.remove(hash);
        }
    }

    /// Makes the pending `hash` this node's acknowledged transaction (recorded on its disk,
    /// or about to be), so that evicted behind a nonce gap it is parked, not dropped. False
    /// if it is not pending or was acknowledged already: only a peer's copy changes.
    pub fn acknowledge(&mut self, hash: &Hash) -> bool {
        match self.entries.get_mut(hash) {
            Some(entry) if !entry.acknowledged => {
                entry.acknowledged = true;
                true
            }
            _ => false,
        }
    }

    /// The nonce `signer` should sign with next: `committed` (its next nonce by the ledger)
    /// moved past every pending transaction of it with consecutive nonces from there.
    pub fn next_nonce(&self, signer: &AccountId, committed: u64) -> u64 {
        let mut next = committed;
        if let Some(pending) = self.by_signer.get(signer) {
            for nonce in pending.range(committed..).map(|(nonce, _)| *nonce) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Admits `tx` if the ledger, as of the next block at `next_height`, would accept it.
    pub fn insert(
        &mut self,
        tx: VerifiedTransaction,
        ledger: &Ledger,
        next_height: u64,
    ) -> Result<(), AdmissionError> {
        self.insert_answered(tx, ledger, next_height, &ArchiveAnswers::default(), false)
    }

    /// [`Self::insert`] with the archive's answers for the batch `tx` is part of
    /// ([`Ledger::ask_archive`]). `acknowledged`: this node records it (or has recorded it)
    /// as acknowledged to a client, so that evicted behind a nonce gap it is parked, not
    /// dropped (see `Parked`); a peer's is not.
    pub fn insert_answered(
        &mut self,
        tx: VerifiedTransaction,
        ledger: &Ledger,
        next_height: u64,
        answers: &ArchiveAnswers,
        acknowledged: bool,
    ) -> Result<(), AdmissionError> {
        let hash = tx.hash();
        if self.entries.contains_key(&hash) {
            return Err(AdmissionError::AlreadyPending);
        }
        ledger
            .check_pending_answered(&tx, next_height, answers)
            .map_err(AdmissionError::Rejected)?;
        let signer = tx.tx().signer;
        let nonce = tx.tx().nonce;
        let pending = self.by_signer.get(&signer);
        if pending.is_some_and(|p| p.contains_key(&nonce)) {
            return Err(AdmissionError::NonceTaken(nonce));
        }
        let count = pending.map_or(0, BTreeMap::len);
        if count >= self.limits.max_per_signer {
            return Err(AdmissionError::TooManyPending(count));
        }
        if self.entries.len() >= self.limits.max_transactions {
            // Full: first make room by dropping what can never be selected.
            self.evict_unselectable(ledger, next_height);
        }
        if self.entries.len() >= self.limits.max_transactions {
            return Err(AdmissionError::MempoolFull(self.entries.len()));
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        // Counted already: the new transaction adds itself, and what waited behind it, if it
        // extends its signer's run of consecutive nonces; nothing if it waits behind a gap.
        let selectable_before = self
            .selectable
            .map(|counted| (counted, self.selectable_of(&signer, ledger)));
        self.by_signer
            .entry(signer)
            .or_default()
            .insert(nonce, hash);
        if let Some((counted, before)) = selectable_before {
            let after = self.selectable_of(&signer, ledger);
            self.selectable = Some(counted.saturating_add(after.saturating_sub(before)));
        }
        self.by_expiry
            .insert((tx.tx().valid_until_height, arrival), hash);
        let encoded_len = usize::try_from(interpool_contracts::codec::encoded_len(tx.signed()))
            .unwrap_or(usize::MAX);
        self.entries.insert(
            hash,
            Entry {
                tx,
                encoded_len,
                arrival,
                since: Instant::now(),
                acknowledged,
            },
        );
        Ok(())
    }

    /// Drops every transaction that cannot be selected for the block at `next_height`:
    /// expired ones, those of signers the ledger does not know, stale nonces, and nonces
    /// behind a gap (the ledger's look-ahead bounds how many there can be per signer; their
    /// sender can submit them again once the gap is filled, and those this node
    /// acknowledged are parked, to be admitted again then). Runs at most once
    /// per height (it walks the whole mempool), when the mempool is full. Returns how many
    /// it dropped.
    pub fn evict_unselectable(&mut self, ledger: &Ledger, next_height: u64) -> usize {
        if self.evicted_for == Some(next_height) {
            return 0;
        }
        self.evicted_for = Some(next_height);
        let mut doomed: Vec<Hash> = self
            .by_expiry
            .range(..(next_height, 0))
            .map(|(_, hash)| *hash)
            .collect();
        // Behind a gap: may still commit once the gap is filled.
        let mut gapped = Vec::new();
        for (signer, pending) in &self.by_signer {
            let Some(mut next) = ledger.next_nonce(signer) else {
                doomed.extend(pending.values().copied());
                continue;
            };
            for (nonce, hash) in pending {
                if *nonce == next {
                    next = next.saturating_add(1);
                } else if *nonce > next {
                    gapped.push(*hash);
                } else {
                    doomed.push(*hash);
                }
            }
        }
        let before = self.entries.len();
        for hash in doomed {
            self.remove(&hash);
        }
        for hash in gapped {
            // Gone already if it was expired too.
            if let Some(entry) = self.take(&hash) {
                if entry.acknowledged {
                    self.parked.park_or_orphan(entry.tx, &self.limits);
                }
            }
        }
        before.saturating_sub(self.entries.len())
    }

    /// Transactions for the next block: arrival order across signers, nonce order without
    /// gaps within a signer (starting at the ledger's next nonce), within both limits.
    pub fn select(
        &self,
        ledger: &Ledger,
        max_transactions: usize,
        max_bytes: usize,
    ) -> Vec<VerifiedTransaction> {
        // Each signer's next selectable transaction, smallest arrival first.
        let mut heads: BinaryHeap<Reverse<(u64, AccountId, u64)>> = BinaryHeap::new();
        for (signer, pending) in &self.by_signer {
            let Some(next) = ledger.next_nonce(signer) else {
                continue;
            };
            if let Some(entry) = pending.get(&next).and_then(|hash| self.entries.get(hash)) {
                heads.push(Reverse((entry.arrival, *signer, next)));
            }
        }
        let mut selected = Vec::new();
        let mut bytes = 0usize;
        while let Some(Reverse((_, signer, nonce))) = heads.pop() {
            if selected.len() == max_transactions {
                break;
            }
            let Some(entry) = self
                .by_signer
                .get(&signer)
                .and_then(|p| p.get(&nonce))
                .and_then(|hash| self.entries.get(hash))
            else {
                continue;
            };
            if bytes + entry.encoded_len > max_bytes {
                // Later transactions of this signer cannot go without this one; others may fit.
                continue;
            }
            bytes += entry.encoded_len;
            selected.push(entry.tx.clone());
            if let Some(next) = self
                .by_signer
                .get(&signer)
                .and_then(|p| p.get(&(nonce + 1)))
                .and_then(|hash| self.entries.get(hash))
            {
                heads.push(Reverse((next.arrival, signer, nonce + 1)));
            }
        }
        selected
    }

    /// Parks an acknowledged transaction that was refused for now (a restart's mempool
    /// full, its signer at its limit): it is tried again at every commit until it goes in,
    /// can never commit, or expires (as one evicted behind a nonce gap).
    pub fn park_refused(&mut self, tx: VerifiedTransaction) {
        let signer = tx.tx().signer;
        if self.parked.park_or_orphan(tx, &self.limits) {
            self.parked.retry.insert(signer);
        }
    }

    /// After a block at `height` committed: drops the transactions it included, those whose
    /// nonce is now used, and those that can no longer be included (past their last valid
    /// height), pending or parked; then admits again the parked transactions whose gap the
    /// block filled (`readmit`).
    ///
    /// `block` is the committed block's transactions: any of them may have come from another
    /// node, so every signer in it is checked for now-stale pending nonces.
    /// Returns the hashes it dropped as stale or expired (they can never commit: their
    /// durable records, if this node acknowledged them, go too).
    pub fn after_commit(
        &mut self,
        block: &[VerifiedTransaction],
        ledger: &Ledger,
        height: u64,
    ) -> Vec<Hash> {
        self.record_commit(block.len());
        // The ledger moved on: count again when asked.
        self.selectable = None;
        let mut touched = std::collections::BTreeSet::new();
        for tx in block {
            touched.insert(tx.tx().signer);
            self.remove(&tx.hash());
        }
        let mut dropped = Vec::new();
        for signer in &touched {
            let next = ledger.next_nonce(signer).unwrap_or(0);
            let stale: Vec<Hash> = self
                .by_signer
                .get(signer)
                .map(|p| p.range(..next).map(|(_, h)| *h).collect())
                .unwrap_or_default();
            for hash in stale {
                self.remove(&hash);
                dropped.push(hash);
            }
            dropped.extend(self.parked.take_stale(signer, next));
        }
        let expired: Vec<Hash> = self
            .by_expiry
            .range(..(height + 1, 0))
            .map(|(_, hash)| *hash)
            .collect();
        for hash in expired {
            self.remove(&hash);
            dropped.push(hash);
        }
        dropped.extend(self.parked.take_expired(height));
        self.readmit(touched, ledger, height.saturating_add(1), &mut dropped);
        dropped
    }

    /// Admits again the parked transactions of `signers` (the signers of a block just
    /// committed, and those refused for now before) that now continue their signer's run of
    /// consecutive nonces: the gap they waited behind is filled. Their signatures were
    /// verified when they were first admitted (a [`VerifiedTransaction`] keeps that); every
    /// rule that depends on the state is checked again, as for any admission at
    /// `next_height` (a nonce used means a transaction of this hash cannot be in a block
    /// either). What can never commit now is pushed onto `dropped`; what is refused for now
    /// stays parked and is tried again at the next commit.
    fn readmit(
        &mut self,
        mut signers: BTreeSet<AccountId>,
        ledger: &Ledger,
        next_height: u64,
        dropped: &mut Vec<Hash>,
    ) {
        // The common case, every block: nothing parked, no signer to look up.
        if self.parked.txs.is_empty() {
            return;
        }
        signers.append(&mut self.parked.retry);
        // Only signers with something parked (a block names up to thousands of signers).
        signers.retain(|signer| self.parked.per_signer.contains_key(signer));
        // Still full after this height's eviction: nothing would go in (and each refusal
        // would cost an archive read); they wait for the next commit.
        if self.entries.len() >= self.limits.max_transactions {
            self.parked.retry = signers;
            return;
        }
        for signer in signers {
            let Some(committed) = ledger.next_nonce(&signer) else {
                continue;
            };
            let mut next = self.next_nonce(&signer, committed);
            // Each transaction that continues the signer's run, in nonce order, until one
            // does not go in: the rest wait behind it, parked.
            while let Some(tx) = self.parked.take(&signer, next) {
                let hash = tx.hash();
                // Its end-to-end id's archive answer, read for this one only: the run goes
                // in one by one, and stops at the first refusal.
                let answers = ledger.ask_archive(std::iter::once(&tx));
                match self.insert_answered(tx.clone(), ledger, next_height, &answers, true) {
                    Ok(()) => {}
                    Err(AdmissionError::AlreadyPending) => {
                        // Relayed back by a peer meanwhile: pending, and recorded here.
                        self.acknowledge(&hash);
                    }
                    Err(error) if can_never_commit(&error) => {
                        dropped.push(hash);
                        break;
                    }
                    Err(_) => {
                        if self.parked.park_or_orphan(tx, &self.limits) {
                            self.parked.retry.insert(signer);
                        }
                        break;
                    }
                }
                next = next.saturating_add(1);
            }
        }
    }

    /// Up to `max` transactions pending here for longer than `at_least`, oldest first: what
    /// has not committed yet and must be offered to the validators again.
    pub fn lingering(&self, at_least: std::time::Duration, max: usize) -> Vec<SignedTransaction> {
        let mut old: Vec<&Entry> = self
            .entries
            .values()
            .filter(|entry| entry.since.elapsed() >= at_least)
            .collect();
        old.sort_by_key(|entry| entry.arrival);
        old.into_iter()
            .take(max)
            .map(|entry| entry.tx.signed().clone())
            .collect()
    }

    /// Drops one pending transaction.
    pub fn remove(&mut self, hash: &Hash) {
        self.take(hash);
    }

    /// Takes back a client's submission of `tx` that could not be recorded durably after
    /// all (ADR 0010: nothing is acknowledged that is not durable). `relayed`: it was
    /// pending here before as a peer's copy, which it stays (no longer acknowledged here:
    /// evicted, it is dropped as a peer's is); else it goes. Either way a copy parked
    /// meanwhile (evicted behind a nonce gap while the record was being written) goes: it
    /// has no record to be offered from.
    ///
    /// Not for a transaction that was parked before the submission: that one was recorded
    /// by an earlier one, and its record stands (the caller leaves it where it is).
    pub fn withdraw(&mut self, tx: &VerifiedTransaction, relayed: bool) {
        let hash = tx.hash();
        if relayed {
            if let Some(entry) = self.entries.get_mut(&hash) {
                entry.acknowledged = false;
            }
        } else {
            self.remove(&hash);
        }
        let (signer, nonce) = (tx.tx().signer, tx.tx().nonce);
        // Only this transaction: another with its nonce may be parked, recorded.
        if self
            .parked
            .txs
            .get(&(signer, nonce))
            .is_some_and(|parked| parked.hash() == hash)
        {
            self.parked.take(&signer, nonce);
        }
    }

    /// Takes one pending transaction out.
    fn take(&mut self, hash: &Hash) -> Option<Entry> {
        let entry = self.entries.remove(hash)?;
        self.selectable = None;
        let tx = entry.tx.tx();
        if let Some(pending) = self.by_signer.get_mut(&tx.signer) {
            pending.remove(&tx.nonce);
            if pending.is_empty() {
                self.by_signer.remove(&tx.signer);
            }
        }
        self.by_expiry
            .remove(&(tx.valid_until_height, entry.arrival));
        Some(entry)
    }
}

/// Whether a transaction refused with `error` can never be included: already in a block,
/// malformed, expired, past its reject time, a nonce already used, an end-to-end id already
/// paid. What is refused for now (a full mempool, the signer's limit, funds or a queue that
/// may change, the cut-off, storage) may still commit.
pub(super) fn can_never_commit(error: &AdmissionError) -> bool {
    match error {
        AdmissionError::AlreadyIncluded(_) => true,
        AdmissionError::Rejected(error) => match error {
            TxError::BadNonce { expected, got } => got < expected,
            TxError::Expired { .. }
            | TxError::RejectTime { .. }
            | TxError::DuplicateEndToEndId(_) => true,
            other => other.is_stateless(),
        },
        AdmissionError::AlreadyPending
        | AdmissionError::NonceTaken(_)
        | AdmissionError::TooManyPending(_)
        | AdmissionError::MempoolFull(_)
        | AdmissionError::Unavailable(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::testkit::{self, account, customer_seed, key};
    use interpool_contracts::{Amount, Body, Transaction, TxError};

    const LIMITS: MempoolLimits = MempoolLimits {
        max_transactions: 10,
        max_per_signer: 3,
        client_backlog: None,
    };

    fn ledger() -> Ledger {
        Ledger::from_genesis(&testkit::genesis(2, 3, 100_000, 1_000_000, 1_000_000))
            .expect("genesis")
    }

    #[test]
    fn clients_may_fill_what_the_chain_commits_in_the_drain_time_and_never_less_than_the_floor() {
        let mut pool = Mempool::new(MempoolLimits {
            client_backlog: Some(ClientBacklog {
                drain: Duration::from_secs(2),
                floor: 500,
            }),
            ..LIMITS
        });
        // Nothing committed yet (an idle or new network): the floor.
        assert_eq!(pool.commit_rate(), None);
        assert_eq!(pool.client_cap(), Some(500));
        let start = Instant::now();
        pool.commits.extend([
            (start, 9_999),
            (start + Duration::from_secs(1), 300),
            (start + Duration::from_secs(2), 500),
        ]);
        // 800 committed over 2 s (the first block's count is from before the span).
        assert_eq!(pool.commit_rate(), Some(400.0));
        assert_eq!(pool.client_cap(), Some(800));
        // A slow chain: the floor again.
        pool.commits = [(start, 0), (start + Duration::from_secs(4), 100)].into();
        assert_eq!(pool.client_cap(), Some(500));
        // Without backpressure configured, no cap.
        assert_eq!(Mempool::new(LIMITS).client_cap(), None);
    }

    #[test]
    fn the_commit_rate_forgets_commits_older_than_its_window() {
        let mut pool = Mempool::new(LIMITS);
        let start = Instant::now();
        pool.record_commit_at(start, 1_000_000);
        pool.record_commit_at(start + RATE_WINDOW + Duration::from_secs(1), 10);
        assert_eq!(pool.commits.len(), 1);
        assert_eq!(pool.commit_rate(), None);
    }

    fn tx(seed: u64, nonce: u64, amount: u64, valid_until: u64) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(seed),
            nonce,
            valid_until_height: valid_until,
            body: Body::Transfer {
                to: account(customer_seed(1, 0)),
                amount: Amount(amount),
                end_to_end_id: format!("M{nonce}"),
                reference: String::new(),
                terms: Default::default(),
            },
        }
        .sign(&key(seed))
        .check_stateless("test")
        .expect("valid")
    }

    #[test]
    fn the_selectable_count_kept_by_insert_is_a_fresh_count() {
        let ledger = ledger();
        // A floor of none and no commits: the cap is 0, so the count is kept from the start.
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 100,
            max_per_signer: 10,
            client_backlog: Some(ClientBacklog {
                drain: Duration::from_secs(2),
                floor: 0,
            }),
        });
        let signers = [
            customer_seed(0, 0),
            customer_seed(0, 1),
            customer_seed(1, 1),
        ];
        // Gaps opened and filled, in and out of order, for three signers.
        let order = [
            (0, 2),
            (0, 1),
            (1, 0),
            (2, 3),
            (0, 0),
            (2, 1),
            (1, 1),
            (2, 0),
            (0, 4),
            (2, 2),
            (0, 3),
        ];
        for (signer, nonce) in order {
            pool.client_backlog_full(&ledger);
            pool.insert(tx(signers[signer], nonce, 1, 50), &ledger, 1)
                .expect("admitted");
            let kept = pool.selectable;
            pool.selectable = None;
            pool.client_backlog_full(&ledger);
            assert_eq!(
                kept, pool.selectable,
                "after nonce {nonce} of signer {signer}"
            );
        }
        assert_eq!(pool.selectable, Some(order.len()), "every gap is filled");
        assert_eq!(pool.client_backlog_full(&ledger), Some(order.len()));
    }

    #[test]
    fn a_hash_is_being_recorded_until_each_of_its_records_has_ended() {
        let mut pool = Mempool::new(LIMITS);
        let hash = tx(customer_seed(0, 0), 0, 1, 50).hash();
        assert!(!pool.is_recording(&hash));
        pool.start_recording(hash);
        pool.start_recording(hash);
        pool.end_recording(&hash);
        assert!(pool.is_recording(&hash), "one record still being written");
        pool.end_recording(&hash);
        assert!(!pool.is_recording(&hash));
        assert!(pool.recording.is_empty(), "nothing left behind");
    }

    #[test]
    fn the_next_nonce_skips_consecutive_pending_ones_only() {
        let ledger = ledger();
        let mut pool = Mempool::new(LIMITS);
        let a = customer_seed(0, 0);
        assert_eq!(pool.next_nonce(&account(a), 0), 0);
        for nonce in [0, 1, 3] {
            pool.insert(tx(a, nonce, 1, 50), &ledger, 1)
                .expect("admitted");
        }
        // 0 and 1 pending, 2 missing: the wallet should sign 2 next, not 4.
        assert_eq!(pool.next_nonce(&account(a), 0), 2);
        // Once the ledger is past them (committed elsewhere), the committed nonce wins.
        assert_eq!(pool.next_nonce(&account(a), 3), 4);
        assert_eq!(pool.next_nonce(&account(a), 7), 7);
        assert_eq!(pool.next_nonce(&account(customer_seed(1, 0)), 5), 5);
    }

    #[test]
    fn admission_rules() {
        let ledger = ledger();
        let mut pool = Mempool::new(LIMITS);
        let a = customer_seed(0, 0);
        pool.insert(tx(a, 0, 1, 50), &ledger, 1).expect("admitted");
        assert_eq!(
            pool.insert(tx(a, 0, 1, 50), &ledger, 1),
            Err(AdmissionError::AlreadyPending)
        );
        assert_eq!(
            pool.insert(tx(a, 0, 2, 50), &ledger, 1),
            Err(AdmissionError::NonceTaken(0))
        );
        assert!(matches!(
            pool.insert(tx(a, 5, 200_000, 50), &ledger, 1),
            Err(AdmissionError::Rejected(TxError::InsufficientFunds { .. }))
        ));
        assert!(matches!(
            pool.insert(tx(a, 5, 1, 0), &ledger, 1),
            Err(AdmissionError::Rejected(TxError::Expired { .. }))
        ));
        pool.insert(tx(a, 1, 1, 50), &ledger, 1).expect("second");
        pool.insert(tx(a, 2, 1, 50), &ledger, 1).expect("third");
        assert_eq!(
            pool.insert(tx(a, 3, 1, 50), &ledger, 1),
            Err(AdmissionError::TooManyPending(3))
        );
        let b = customer_seed(0, 1);
        let c = customer_seed(0, 2);
        for n in 0..3 {
            pool.insert(tx(b, n, 1, 50), &ledger, 1).expect("b");
        }
        for n in 0..3 {
            pool.insert(tx(c, n, 1, 50), &ledger, 1).expect("c");
        }
        let d = customer_seed(1, 1);
        pool.insert(tx(d, 0, 1, 50), &ledger, 1).expect("tenth");
        assert_eq!(
            pool.insert(tx(d, 1, 1, 50), &ledger, 1),
            Err(AdmissionError::MempoolFull(10))
        );
    }

    #[test]
    fn selection_keeps_nonce_order_and_skips_gaps() {
        let ledger = ledger();
        let mut pool = Mempool::new(LIMITS);
        let (a, b) = (customer_seed(0, 0), customer_seed(0, 1));
        pool.insert(tx(a, 1, 1, 50), &ledger, 1).expect("a1 first");
        pool.insert(tx(b, 0, 1, 50), &ledger, 1).expect("b0");
        pool.insert(tx(a, 0, 1, 50), &ledger, 1).expect("a0");
        pool.insert(tx(b, 2, 1, 50), &ledger, 1).expect("b2, gap");
        let picked: Vec<(AccountId, u64)> = pool
            .select(&ledger, 100, 1 << 20)
            .iter()
            .map(|t| (t.tx().signer, t.tx().nonce))
            .collect();
        assert_eq!(
            picked,
            vec![(account(b), 0), (account(a), 0), (account(a), 1)]
        );
        assert_eq!(pool.select(&ledger, 2, 1 << 20).len(), 2);
        let one = pool.select(&ledger, 100, 1 << 20)[0]
            .signed()
            .encode()
            .len();
        assert_eq!(pool.select(&ledger, 100, one).len(), 1);
    }

    #[test]
    fn commit_removes_included_stale_and_expired() {
        let mut ledger = ledger();
        let mut pool = Mempool::new(LIMITS);
        let (a, b) = (customer_seed(0, 0), customer_seed(0, 1));
        let a0 = tx(a, 0, 1, 50);
        pool.insert(a0.clone(), &ledger, 1).expect("a0");
        pool.insert(tx(a, 1, 1, 50), &ledger, 1).expect("a1");
        pool.insert(tx(b, 0, 1, 1), &ledger, 1)
            .expect("b0 valid until 1");
        // Another a0 (different amount, same nonce) arrived via another node and committed.
        let other_a0 = tx(a, 0, 2, 50);
        let block = [other_a0];
        ledger.apply_block(1, 1_000, &block);
        pool.after_commit(&block, &ledger, 1);
        // a0 is stale (its nonce is used), b0 cannot be included after height 1; a1 remains.
        assert_eq!(pool.len(), 1);
        assert!(!pool.contains(&a0.hash()));
        assert_eq!(pool.select(&ledger, 10, 1 << 20)[0].tx().nonce, 1);
    }
}

#[cfg(test)]
mod eviction_tests {
    use super::*;
    use interpool_contracts::testkit::{self, account, customer_seed, key};
    use interpool_contracts::{Amount, Body, Transaction};

    fn tx(seed: u64, nonce: u64, valid_until: u64) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(seed),
            nonce,
            valid_until_height: valid_until,
            body: Body::Transfer {
                to: account(customer_seed(1, 0)),
                amount: Amount(1),
                end_to_end_id: format!("E{seed}-{nonce}"),
                reference: String::new(),
                terms: Default::default(),
            },
        }
        .sign(&key(seed))
        .check_stateless("test")
        .expect("valid")
    }

    #[test]
    fn an_acknowledged_transaction_that_cannot_be_parked_has_its_record_forgotten_at_expiry() {
        let limits = MempoolLimits {
            max_transactions: 10,
            max_per_signer: 2,
            client_backlog: None,
        };
        let mut parked = Parked::default();
        let payer = customer_seed(0, 0);
        assert!(parked.park_or_orphan(tx(payer, 3, 50), &limits));
        // The same nonce again (another transaction), and one past the signer's limit.
        let again = tx(payer, 3, 60);
        assert!(!parked.park_or_orphan(again.clone(), &limits));
        assert!(parked.park_or_orphan(tx(payer, 4, 50), &limits));
        let over = tx(payer, 5, 70);
        assert!(!parked.park_or_orphan(over.clone(), &limits));
        // Nothing goes before its last valid height; then each record, parked or not.
        assert!(parked.take_expired(49).is_empty());
        assert_eq!(parked.take_expired(50).len(), 2);
        assert_eq!(parked.take_expired(60), vec![again.hash()]);
        assert_eq!(parked.take_expired(70), vec![over.hash()]);
        assert!(parked.txs.is_empty() && parked.orphans.is_empty());
    }

    #[test]
    fn a_mempool_full_of_unselectable_transactions_makes_room_for_an_honest_one() {
        let ledger = Ledger::from_genesis(&testkit::genesis(2, 4, 100_000, 1_000_000, 1_000_000))
            .expect("genesis");
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 6,
            max_per_signer: 3,
            client_backlog: None,
        });
        // Two attackers fill it with nonces behind a gap (1, 2, 3: nonce 0 never comes).
        for seed in [customer_seed(0, 0), customer_seed(0, 1)] {
            for nonce in 1..=3 {
                pool.insert(tx(seed, nonce, 500), &ledger, 1)
                    .expect("admitted");
            }
        }
        assert_eq!(pool.len(), 6);
        assert!(
            pool.select(&ledger, 100, 1 << 20).is_empty(),
            "none selectable"
        );
        // An honest transfer gets in: the unselectable ones make way.
        let honest = tx(customer_seed(0, 2), 0, 500);
        pool.insert(honest.clone(), &ledger, 1)
            .expect("room was made");
        assert!(pool.contains(&honest.hash()));
        assert_eq!(pool.len(), 1);
        // A full mempool of selectable transactions still refuses, without evicting them.
        let mut full = Mempool::new(MempoolLimits {
            max_transactions: 2,
            max_per_signer: 3,
            client_backlog: None,
        });
        full.insert(tx(customer_seed(0, 0), 0, 500), &ledger, 1)
            .expect("admitted");
        full.insert(tx(customer_seed(0, 0), 1, 500), &ledger, 1)
            .expect("admitted");
        assert_eq!(
            full.insert(tx(customer_seed(0, 1), 0, 500), &ledger, 1),
            Err(AdmissionError::MempoolFull(2))
        );
        assert_eq!(full.len(), 2);
    }

    fn ledger() -> Ledger {
        Ledger::from_genesis(&testkit::genesis(2, 4, 100_000, 1_000_000, 1_000_000))
            .expect("genesis")
    }

    /// Admits `tx` as this node's acknowledged transaction (recorded on its disk).
    fn acknowledge(pool: &mut Mempool, tx: &VerifiedTransaction, ledger: &Ledger) {
        pool.insert_answered(tx.clone(), ledger, 1, &ArchiveAnswers::default(), true)
            .expect("admitted");
    }

    /// An acknowledged transaction a full mempool evicted while it waited behind a nonce
    /// gap is pending again (selectable, and offered again once it lingers) as soon as a
    /// block fills the gap; before, it stayed out of the mempool until the node restarted,
    /// while its record promised it would keep being offered. A peer's is not kept: the
    /// node that acknowledged it offers it.
    #[test]
    fn an_acknowledged_transaction_evicted_behind_a_gap_is_pending_again_once_the_gap_commits() {
        let mut ledger = ledger();
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 4,
            max_per_signer: 3,
            client_backlog: None,
        });
        let (a, b, c) = (
            customer_seed(0, 0),
            customer_seed(0, 1),
            customer_seed(0, 2),
        );
        let acknowledged = [tx(a, 1, 500), tx(a, 2, 500)];
        for t in &acknowledged {
            acknowledge(&mut pool, t, &ledger);
        }
        let relayed = tx(b, 1, 500);
        pool.insert(relayed.clone(), &ledger, 1).expect("admitted");
        pool.insert(tx(c, 0, 500), &ledger, 1).expect("admitted");
        // Full: the next one evicts the three behind gaps.
        pool.insert(tx(c, 1, 500), &ledger, 1)
            .expect("room was made");
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.parked.txs.len(), 2, "the acknowledged ones are parked");
        // Another node's a0 and b0 commit.
        let block = [tx(a, 0, 500), tx(b, 0, 500)];
        ledger.apply_block(1, 1_000, &block);
        assert!(pool.after_commit(&block, &ledger, 1).is_empty());
        for t in &acknowledged {
            assert!(pool.contains(&t.hash()), "nonce {} is back", t.tx().nonce);
        }
        assert!(!pool.contains(&relayed.hash()));
        assert!(pool.parked.txs.is_empty());
        let nonces_of_a: Vec<u64> = pool
            .select(&ledger, 100, 1 << 20)
            .iter()
            .filter(|t| t.tx().signer == account(a))
            .map(|t| t.tx().nonce)
            .collect();
        assert_eq!(nonces_of_a, vec![1, 2]);
        let offered = pool.lingering(Duration::ZERO, 100);
        assert!(acknowledged.iter().all(|t| offered.contains(t.signed())));
    }

    /// A parked transaction whose nonce another transaction took, or that expired, can
    /// never commit: it goes, and `after_commit` names it so that its record goes too.
    #[test]
    fn a_parked_transaction_that_can_never_commit_is_dropped_with_its_record() {
        let mut ledger = ledger();
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 2,
            max_per_signer: 3,
            client_backlog: None,
        });
        let (a, b) = (customer_seed(0, 0), customer_seed(0, 1));
        let taken = tx(a, 1, 500);
        let expiring = tx(b, 1, 2);
        acknowledge(&mut pool, &taken, &ledger);
        acknowledge(&mut pool, &expiring, &ledger);
        pool.insert(tx(customer_seed(0, 2), 0, 500), &ledger, 1)
            .expect("room was made");
        assert_eq!(pool.parked.txs.len(), 2);
        // Another a1 (signed for longer) commits after a0: the parked a1 is stale.
        let block = [tx(a, 0, 500), tx(a, 1, 600)];
        ledger.apply_block(1, 1_000, &block);
        assert_eq!(pool.after_commit(&block, &ledger, 1), vec![taken.hash()]);
        assert_eq!(pool.parked.txs.len(), 1);
        // b1 cannot be included after height 2.
        ledger.apply_block(2, 2_000, &[]);
        let dropped = pool.after_commit(&[], &ledger, 2);
        assert!(dropped.contains(&expiring.hash()), "{dropped:?}");
        assert!(pool.parked.txs.is_empty());
        assert!(pool.parked.by_expiry.is_empty() && pool.parked.per_signer.is_empty());
    }

    /// A parked transaction whose gap is filled while the mempool is full of selectable
    /// ones stays parked and is tried again at the next commit, whoever's transactions that
    /// commit holds.
    #[test]
    fn a_parked_transaction_refused_for_now_is_tried_again_at_the_next_commit() {
        let mut ledger = ledger();
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 2,
            max_per_signer: 3,
            client_backlog: None,
        });
        let (a, b, c) = (
            customer_seed(0, 0),
            customer_seed(0, 1),
            customer_seed(0, 2),
        );
        let gapped = tx(a, 1, 500);
        acknowledge(&mut pool, &gapped, &ledger);
        pool.insert(tx(b, 0, 500), &ledger, 1).expect("b0");
        pool.insert(tx(c, 0, 500), &ledger, 1)
            .expect("room was made");
        assert_eq!(pool.parked.txs.len(), 1);
        // a0 commits elsewhere while b0 and c0 fill the mempool: a1 cannot come back yet.
        let block = [tx(a, 0, 500)];
        ledger.apply_block(1, 1_000, &block);
        assert!(pool.after_commit(&block, &ledger, 1).is_empty());
        assert!(!pool.contains(&gapped.hash()));
        assert_eq!(pool.parked.txs.len(), 1, "still parked");
        // A block of b0 and c0 makes room: a1 is back, though a is not in that block.
        let block = pool.select(&ledger, 100, 1 << 20);
        assert_eq!(block.len(), 2);
        ledger.apply_block(2, 2_000, &block);
        assert!(pool.after_commit(&block, &ledger, 2).is_empty());
        assert!(pool.contains(&gapped.hash()));
        assert!(pool.parked.txs.is_empty() && pool.parked.retry.is_empty());
    }

    /// What could not be recorded is withdrawn from where it is, pending or parked, and
    /// only it: another parked transaction with its nonce stays.
    #[test]
    fn a_withdrawn_transaction_leaves_the_parked_ones_of_others() {
        let ledger = ledger();
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 1,
            max_per_signer: 3,
            client_backlog: None,
        });
        let a = customer_seed(0, 0);
        let (parked, unrecorded) = (tx(a, 1, 500), tx(a, 1, 600));
        acknowledge(&mut pool, &parked, &ledger);
        pool.insert(tx(customer_seed(0, 1), 0, 500), &ledger, 1)
            .expect("room was made");
        assert_eq!(pool.parked.txs.len(), 1);
        pool.withdraw(&unrecorded, false);
        assert_eq!(pool.parked.txs.len(), 1);
        pool.withdraw(&parked, false);
        assert!(pool.parked.txs.is_empty() && pool.parked.per_signer.is_empty());
    }

    /// A peer's copy that a client submits here is this node's acknowledged transaction:
    /// evicted behind a nonce gap, it is parked. One whose record then failed is taken back
    /// to a peer's copy: still pending, and dropped when evicted (it has no record here).
    #[test]
    fn a_peers_copy_acknowledged_here_is_parked_and_one_withdrawn_is_a_peers_again() {
        let ledger = ledger();
        let mut pool = Mempool::new(MempoolLimits {
            max_transactions: 2,
            max_per_signer: 3,
            client_backlog: None,
        });
        let a = customer_seed(0, 0);
        let (adopted, withdrawn) = (tx(a, 1, 500), tx(a, 2, 500));
        for relayed in [&adopted, &withdrawn] {
            pool.insert(relayed.clone(), &ledger, 1).expect("admitted");
            assert!(pool.acknowledge(&relayed.hash()));
        }
        assert!(!pool.acknowledge(&adopted.hash()), "acknowledged already");
        pool.withdraw(&withdrawn, true);
        assert!(pool.contains(&withdrawn.hash()), "still pending");
        // Full: the next one evicts both, behind the gap at nonce 0.
        pool.insert(tx(customer_seed(0, 1), 0, 500), &ledger, 1)
            .expect("room was made");
        assert_eq!(pool.len(), 1);
        assert!(pool.is_parked(&adopted));
        assert!(!pool.is_parked(&withdrawn));
    }
}
