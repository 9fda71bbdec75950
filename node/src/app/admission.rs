//! The one admission pipeline: how a transaction gets into this node's mempool, whether a
//! client submitted it over the API or a peer gossiped it, with one rule set:
//!
//! 1. stateless checks with signatures verified in one batch, on the blocking pool (at most
//!    [`AdmissionSettings::verification_workers`] batches at once, so verification never
//!    takes every thread);
//! 2. not already in a committed block (`already_included`: an idempotent retry or a replay);
//! 3. the mempool's rules against the ledger of the published view, under the mempool's lock
//!    (the core publishes each commit's view under the same lock, so the two always belong
//!    to the same height): duplicate, nonce, per-signer and total limits, the ledger's
//!    stateful checks.
//!
//! What a client submitted and this node admitted is then gossiped; what a peer gossiped is
//! forwarded by gossipsub once its validation result is reported ([`Admitted::forged`]
//! decides that report). Either way the consensus driver is woken.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interpool_contracts::ledger::ArchiveAnswers;
use interpool_contracts::tx::{check_stateless_batch_by, signer_key};
use interpool_contracts::zip215::PublicKey;
use interpool_contracts::{AccountId, TxError};
use interpool_contracts::{AdmissionError, Hash, SignedTransaction, VerifiedTransaction};
use tokio::sync::{watch, Notify, Semaphore};

use super::lock;
use super::mempool::{can_never_commit, Mempool, SharedMempool};
use super::view::{run_blocking, ChainView};
use crate::metrics::Metrics;
use crate::storage::ChainStore;

/// Where transactions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client, through the API: admitted ones are recorded durably before the answer
    /// (ADR 0010: an acknowledged transfer survives this node's crash), then gossiped.
    Client,
    /// A peer, by gossip: gossipsub forwards them once validated.
    Peer,
    /// This node's own record of what it acknowledged before a restart: gossiped again;
    /// those that can no longer commit are forgotten.
    Restored,
}

/// How long a transaction may stay pending before this node offers it to its peers again,
/// and how many it offers again at once.
pub const REOFFER_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
/// Most transactions offered again per round.
pub const MAX_REOFFERED: usize = 5_000;

/// Admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// Most verification batches running at once (each on a blocking thread).
    pub verification_workers: usize,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            verification_workers: 2,
        }
    }
}

/// What admitting a batch gave: one result per transaction, in order.
#[derive(Debug)]
pub struct Admitted {
    /// The hash of each admitted transaction, or why it was not admitted.
    pub results: Vec<Result<Hash, AdmissionError>>,
}

impl Admitted {
    /// True if any transaction failed a check that needs no state (a forged signature, a
    /// malformed field): the sender's fault, not timing (a stale nonce is timing).
    pub fn forged(&self) -> bool {
        self.results.iter().any(
            |result| matches!(result, Err(AdmissionError::Rejected(error)) if error.is_stateless()),
        )
    }

    /// How many were admitted.
    pub fn admitted(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// The admission pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    chain_id: String,
    mempool: SharedMempool,
    view: watch::Receiver<Arc<ChainView>>,
    store: Arc<dyn ChainStore>,
    metrics: Arc<Metrics>,
    workers: Arc<Semaphore>,
    /// Signer keys decoded by earlier batches.
    keys: Arc<SignerKeys>,
    /// Wakes the consensus driver (validators) when transactions arrive.
    wake: Option<Arc<Notify>>,
    /// Gossips transactions a client submitted (validators and observers alike; observers'
    /// API refuses writes before they get here).
    gossip: Option<Arc<dyn Fn(Vec<SignedTransaction>) + Send + Sync>>,
}

impl Admission {
    /// The pipeline into `mempool`, checking against the views the core publishes.
    pub fn new(
        chain_id: String,
        mempool: SharedMempool,
        view: watch::Receiver<Arc<ChainView>>,
        store: Arc<dyn ChainStore>,
        metrics: Arc<Metrics>,
        settings: AdmissionSettings,
    ) -> Self {
        Admission {
            chain_id,
            mempool,
            view,
            store,
            metrics,
            workers: Arc::new(Semaphore::new(settings.verification_workers.max(1))),
            keys: Arc::new(SignerKeys::new(REMEMBERED_KEYS)),
            wake: None,
            gossip: None,
        }
    }

    /// Wakes `driver` whenever something is admitted.
    pub fn waking(mut self, driver: Arc<Notify>) -> Self {
        self.wake = Some(driver);
        self
    }

    /// Gossips what clients submit and this node admits.
    pub fn gossiping(mut self, gossip: Arc<dyn Fn(Vec<SignedTransaction>) + Send + Sync>) -> Self {
        self.gossip = Some(gossip);
        self
    }

    /// After a restart: admits again what this node had acknowledged and not yet seen
    /// committed (its durable record), gossips it, and forgets what can no longer commit
    /// (committed meanwhile, stale, expired). Returns how many are pending again.
    pub async fn restore(&self) -> Result<usize, crate::storage::StorageError> {
        let store = self.store.clone();
        let recorded = run_blocking(move || store.pending_transactions()).await?;
        if recorded.is_empty() {
            return Ok(0);
        }
        let hashes: Vec<Hash> = recorded.iter().map(SignedTransaction::hash).collect();
        let admitted = self.admit(recorded, Origin::Restored).await;
        let gone = gone(hashes, &admitted);
        let store = self.store.clone();
        run_blocking(move || store.forget_pending(&gone)).await?;
        Ok(restored(&admitted))
    }

    /// [`Self::restore`] on the calling thread (the simulator's).
    pub fn restore_blocking(&self) -> Result<usize, crate::storage::StorageError> {
        let recorded = self.store.pending_transactions()?;
        if recorded.is_empty() {
            return Ok(0);
        }
        let hashes: Vec<Hash> = recorded.iter().map(SignedTransaction::hash).collect();
        let admitted = self.admit_blocking(recorded, Origin::Restored);
        self.store.forget_pending(&gone(hashes, &admitted))?;
        Ok(restored(&admitted))
    }

    /// Offers again, every [`REOFFER_AFTER`], what has been pending here that long: a
    /// transaction held by any node keeps reaching the validators until it commits or
    /// expires, whichever node (or gossip message) was lost on the way.
    pub async fn reoffer_forever(self) {
        let mut tick = tokio::time::interval(REOFFER_AFTER);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reoffer(REOFFER_AFTER);
        }
    }

    /// Offers again (gossips, and wakes the driver) what has been pending here longer than
    /// `lingering`.
    pub fn reoffer(&self, lingering: Duration) {
        let lingering = lock(&self.mempool).lingering(lingering, MAX_REOFFERED);
        if lingering.is_empty() {
            return;
        }
        tracing::debug!(
            count = lingering.len(),
            "offering pending transactions again"
        );
        if let Some(gossip) = &self.gossip {
            gossip(lingering);
        }
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }

    /// Admits what it can of `txs`; one result per transaction, in order.
    pub async fn admit(&self, txs: Vec<SignedTransaction>, origin: Origin) -> Admitted {
        if txs.is_empty() {
            return Admitted {
                results: Vec::new(),
            };
        }
        if let Some(refused) = self.backlogged(&txs, origin) {
            return refused;
        }
        let (txs, pending) = self.already_pending(txs, origin);
        if txs.is_empty() {
            return pending.answer(Vec::new());
        }
        let chain_id = self.chain_id.clone();
        let store = self.store.clone();
        let keys = self.keys.clone();
        let started = Instant::now();
        let checked = {
            // Closed only when the node shuts down; then nothing is admitted.
            let Ok(_permit) = self.workers.acquire().await else {
                return pending.answer(vec![
                    Err(AdmissionError::Unavailable(
                        "shutting down".into()
                    ));
                    txs.len()
                ]);
            };
            run_blocking(move || check(&chain_id, &keys, store.as_ref(), txs)).await
        };
        self.metrics
            .observe_verification(started.elapsed(), checked.len());
        let Inserted {
            mut results,
            already_pending,
            mut admitted,
            recording,
        } = self.insert(checked, origin);
        if origin == Origin::Client && !admitted.is_empty() {
            // Acknowledged means durable: on disk before the client hears "accepted". The
            // record runs to its end on the blocking pool (taking back what it failed to
            // record, then lifting the marks of `recording`) even if this future is dropped
            // because the client stopped waiting.
            let this = self.clone();
            crate::failpoints::hit("admission.before_persist");
            let (saved, recorded) = run_blocking(move || {
                let saved = this.record(&admitted, recording);
                (saved, admitted)
            })
            .await;
            admitted = recorded;
            crate::failpoints::hit("admission.after_persist");
            if let Err(error) = saved {
                refuse_unrecorded(&mut results, &admitted, &already_pending, &error);
                return pending.answer(results);
            }
        }
        let outcome = pending.answer(results);
        if outcome.admitted() > 0 {
            if let (Some(gossip), false) = (&self.gossip, admitted.is_empty()) {
                match crate::failpoints::gossip_delay() {
                    // A test holding the window between the answer and the gossip open.
                    Some(delay) => {
                        let gossip = gossip.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            gossip(signed(admitted));
                        });
                    }
                    None => gossip(signed(admitted)),
                }
            }
            if let Some(wake) = &self.wake {
                wake.notify_one();
            }
        }
        outcome
    }

    /// [`Self::admit`] on the calling thread (the simulator's): the same checks, the same
    /// durable record before the answer, the same gossip.
    pub fn admit_blocking(&self, txs: Vec<SignedTransaction>, origin: Origin) -> Admitted {
        if let Some(refused) = self.backlogged(&txs, origin) {
            return refused;
        }
        let (txs, pending) = self.already_pending(txs, origin);
        let checked = check(&self.chain_id, &self.keys, self.store.as_ref(), txs);
        let Inserted {
            mut results,
            already_pending,
            admitted,
            recording,
        } = self.insert(checked, origin);
        if origin == Origin::Client && !admitted.is_empty() {
            if let Err(error) = self.record(&admitted, recording) {
                refuse_unrecorded(&mut results, &admitted, &already_pending, &error);
                return pending.answer(results);
            }
        }
        let outcome = pending.answer(results);
        if outcome.admitted() > 0 {
            if let (Some(gossip), false) = (&self.gossip, admitted.is_empty()) {
                gossip(signed(admitted));
            }
            if let Some(wake) = &self.wake {
                wake.notify_one();
            }
        }
        outcome
    }

    /// A client's submission while the mempool is past the client backlog
    /// ([`crate::app::ClientBacklog`]) is refused whole, before its signatures are checked:
    /// a node offered more than it can commit spends nothing on what it will refuse.
    fn backlogged(&self, txs: &[SignedTransaction], origin: Origin) -> Option<Admitted> {
        if origin != Origin::Client {
            return None;
        }
        let pending = self.client_backlog_full()?;
        Some(Admitted {
            results: vec![Err(AdmissionError::MempoolFull(pending)); txs.len()],
        })
    }

    /// How many transactions are pending, if that is past the client backlog: a client's
    /// submission now is refused whole (`mempool_full`). The API asks before decoding a
    /// batch, so that a client sending again and again while the node is full costs it
    /// nothing but the framing.
    pub fn client_backlog_full(&self) -> Option<usize> {
        let mut mempool = lock(&self.mempool);
        let view = self.view.borrow().clone();
        mempool.client_backlog_full(&view.ledger)
    }

    /// A peer's exact copies of transactions already pending here (the same transaction and
    /// the same signature bytes) are answered `already_pending` before any check: gossip and
    /// every node's re-offers bring a pending transaction again and again, and verifying the
    /// same signature again would change nothing. A copy with other signature bytes is
    /// checked as anything new is: were it let through as pending, the batch would count as
    /// valid and be forwarded, and a node not holding the transaction would blame the
    /// forwarder for the forgery. A client's submission is always checked.
    fn already_pending(
        &self,
        txs: Vec<SignedTransaction>,
        origin: Origin,
    ) -> (Vec<SignedTransaction>, AlreadyPending) {
        let mut pending = AlreadyPending {
            at: Vec::new(),
            count: txs.len(),
        };
        if origin != Origin::Peer {
            return (txs, pending);
        }
        let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
        let mempool = lock(&self.mempool);
        let fresh = txs
            .into_iter()
            .zip(hashes)
            .enumerate()
            .filter_map(|(index, (tx, hash))| {
                let copy = mempool
                    .get(&hash)
                    .is_some_and(|pending| pending.signed().signature == tx.signature);
                if copy {
                    pending.at.push(index);
                    None
                } else {
                    Some(tx)
                }
            })
            .collect();
        (fresh, pending)
    }

    /// Puts what passed the checks into the mempool: the results, the transactions to
    /// record and gossip (a client's or restored ones; a peer's are already gossiped), and
    /// what each of those was here before, with a client's marked as being recorded (for
    /// [`Self::record`]).
    ///
    /// A client's transaction pending here only as a peer's copy is admitted as a new one
    /// is: acknowledged here, recorded before the answer. Before, it was answered
    /// `already_pending` with no record on this node, and a pacs.008 got 200 for it: a
    /// success from a node that could lose it in a crash (ADR 0010: a 2xx means recorded on
    /// the disk of the node that answered). A restored one, recorded already, is
    /// acknowledged the same way, so that evicted behind a nonce gap it is parked.
    fn insert(
        &self,
        checked: Vec<Result<VerifiedTransaction, AdmissionError>>,
        origin: Origin,
    ) -> Inserted {
        let mut results = Vec::with_capacity(checked.len());
        let mut already_pending = Vec::new();
        let mut admitted = Vec::new();
        let mut held = Vec::new();
        let mut mempool = lock(&self.mempool);
        let view = self.view.borrow().clone();
        let next_height = view.tip.height + 1;
        // The batch's archived end-to-end ids in one read, not one each; none when the
        // backlog refuses the whole batch (it only fills as the batch goes in; were one let
        // in after all, its id would be asked about alone).
        let refused_whole =
            origin == Origin::Client && mempool.client_backlog_full(&view.ledger).is_some();
        let answers = if refused_whole {
            ArchiveAnswers::default()
        } else {
            view.ledger
                .ask_archive(checked.iter().filter_map(|result| result.as_ref().ok()))
        };
        for result in checked {
            let verified = match result {
                Ok(verified) => verified,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            let hash = verified.hash();
            // A client's transaction whose record for another submission is still being
            // written, pending or parked meanwhile, is answered "try again" (503): that write
            // may yet fail and take it back. Before, it was answered `already_pending` (a
            // pacs.008 got 200 for it, then on no disk if the write failed) or, parked,
            // admitted as one recorded already (the failed write then took the parked copy
            // back, and this submission's record had nothing offering it until a restart).
            // Once the write has ended, a retry is answered as for any transaction recorded
            // here, or admitted as a new one.
            if origin == Origin::Client && mempool.is_recording(&hash) {
                results.push(Err(AdmissionError::Unavailable(format!(
                    "transaction {hash} is being recorded for another submission; try again"
                ))));
                continue;
            }
            // Backpressure applies to what clients submit now, not to what peers relay or a
            // restart restores (acknowledged already). What is already here adds nothing
            // pending: a retry gets its own answer (`already_pending`), and a peer's copy is
            // acknowledged here (below).
            if origin == Origin::Client && !mempool.contains(&hash) {
                if let Some(pending) = mempool.client_backlog_full(&view.ledger) {
                    results.push(Err(AdmissionError::MempoolFull(pending)));
                    continue;
                }
            }
            let kept = (origin != Origin::Peer).then(|| verified.clone());
            // A client's (recorded next) and a restored one (recorded) are this node's
            // acknowledged transactions: evicted behind a nonce gap, they are parked.
            let acknowledged = kept.is_some();
            // Parked (evicted behind a nonce gap), it was recorded by an earlier submission
            // (one still being recorded was answered above): if this one's record fails,
            // that record stands and the transaction stays.
            let before = if acknowledged && mempool.is_parked(&verified) {
                Held::Recorded
            } else {
                Held::New
            };
            // A restored one refused for now is parked, tried again at every commit; before,
            // it waited for the next restart.
            let restored = (origin == Origin::Restored).then(|| verified.clone());
            let mut inserted = mempool
                .insert_answered(verified, &view.ledger, next_height, &answers, acknowledged)
                .map(|()| before);
            if matches!(inserted, Err(AdmissionError::AlreadyPending))
                && acknowledged
                && mempool.acknowledge(&hash)
            {
                // Pending only as a peer's copy until now.
                inserted = Ok(match before {
                    Held::Recorded => Held::Recorded,
                    Held::New | Held::Relayed => Held::Relayed,
                });
            }
            match inserted {
                Ok(before) => {
                    if let Some(tx) = kept {
                        admitted.push(tx);
                        held.push(before);
                    }
                    results.push(Ok(hash));
                }
                Err(error) => {
                    if let Some(tx) = restored {
                        if !can_never_commit(&error) && error != AdmissionError::AlreadyPending {
                            mempool.park_refused(tx);
                        }
                    }
                    if origin == Origin::Client && error == AdmissionError::AlreadyPending {
                        already_pending.push((results.len(), hash));
                    }
                    results.push(Err(error));
                }
            }
        }
        // A client's are marked once the whole batch is in: a copy later in the same batch
        // is this submission's own, answered `already_pending` as before.
        let marked = if origin == Origin::Client {
            admitted.iter().map(VerifiedTransaction::hash).collect()
        } else {
            Vec::new()
        };
        self.metrics.mempool_size(mempool.len());
        // Last under the lock: were anything after it to unwind, dropping `recording` would
        // lock the mempool this thread still holds.
        let recording = Recording::start(&self.mempool, &mut mempool, marked, held);
        Inserted {
            results,
            already_pending,
            admitted,
            recording,
        }
    }

    /// Records what a client's submission admitted (`admitted`) in one synced write; if the
    /// write fails, takes each back to what it was here before and returns the error. The
    /// marks of `recording` are lifted only then, after the taking back: until that, another
    /// submission of these transactions is answered "try again", never as one recorded here
    /// that this failure would take back. A write that panics (a bug in the store) is
    /// taken back the same way before the panic goes on: otherwise the marks would lift
    /// with the transactions still admitted, and a retry answered `already_pending` for
    /// what is on no disk.
    fn record(
        &self,
        admitted: &[VerifiedTransaction],
        recording: Recording,
    ) -> Result<(), crate::storage::StorageError> {
        let saved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.store.save_pending(admitted)
        }));
        match &saved {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.take_back(admitted, &recording.held, error),
            Err(_) => self.take_back(admitted, &recording.held, &"the write panicked"),
        }
        drop(recording);
        saved.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The record of acknowledged transactions failed: they are taken back to what they
    /// were here before (`held`, one for each of `admitted`); their answers are refused
    /// ([`refuse_unrecorded`]).
    fn take_back(
        &self,
        admitted: &[VerifiedTransaction],
        held: &[Held],
        error: &dyn std::fmt::Display,
    ) {
        tracing::error!(%error, "cannot record acknowledged transactions; refusing them");
        let mut mempool = lock(&self.mempool);
        for (tx, before) in admitted.iter().zip(held) {
            match before {
                // Evicted and parked meanwhile, perhaps: it must not come back.
                Held::New => mempool.withdraw(tx, false),
                Held::Relayed => mempool.withdraw(tx, true),
                // Recorded before, and still on disk: pending or parked, it is offered
                // until it commits, as its first answer promised. Withdrawn, its parked copy
                // went too, and it waited for a restart.
                Held::Recorded => {}
            }
        }
    }
}

/// What [`Admission::insert`] made of a batch.
struct Inserted {
    /// One answer per transaction, in order.
    results: Vec<Result<Hash, AdmissionError>>,
    /// A client's transactions answered `already_pending` (their places in `results`, and
    /// hashes): a copy of one this batch admitted is among them.
    already_pending: Vec<(usize, Hash)>,
    /// What a client's submission admitted, to record (a peer's: nothing).
    admitted: Vec<VerifiedTransaction>,
    /// Their marks while they are recorded.
    recording: Recording,
}

/// The answers of a submission whose record failed: what was admitted (`admitted`) is
/// refused (`unavailable`: the node cannot promise it), and so is a later copy of one of
/// those in the same batch, answered `already_pending` (among `already_pending`) on the
/// strength of the first: the failed record took it back. Before, such a copy kept
/// `already_pending`, a success for a transaction on no disk. Every copy gets the one
/// answer, also for a transaction an earlier submission had recorded (`Held::Recorded`,
/// which the take-back leaves where it is): there `unavailable` is cautious, and a retry is
/// answered `already_pending`.
fn refuse_unrecorded(
    results: &mut [Result<Hash, AdmissionError>],
    admitted: &[VerifiedTransaction],
    already_pending: &[(usize, Hash)],
    error: &crate::storage::StorageError,
) {
    let refused = || Err(AdmissionError::Unavailable(error.to_string()));
    for result in results.iter_mut() {
        if result.is_ok() {
            *result = refused();
        }
    }
    if already_pending.is_empty() {
        return;
    }
    let taken_back: HashSet<Hash> = admitted.iter().map(VerifiedTransaction::hash).collect();
    for (at, hash) in already_pending {
        if let (true, Some(result)) = (taken_back.contains(hash), results.get_mut(*at)) {
            *result = refused();
        }
    }
}

/// A batch's admitted transactions while a client's submission of them is being recorded:
/// what each was here before ([`Admission::take_back`]), and their marks in the mempool
/// ([`Mempool::is_recording`]), lifted when this is dropped. [`Admission::record`] drops it
/// once the write and any taking back are over; dropped anywhere else (a panic), it still
/// lifts them: no mark outlives its submission.
struct Recording {
    mempool: SharedMempool,
    /// The marked hashes (a client's admitted transactions; none for a peer's or a
    /// restored batch, which are not recorded).
    marked: Vec<Hash>,
    /// What each admitted transaction was here before.
    held: Vec<Held>,
}

impl Recording {
    /// Marks `marked` in `locked` (the caller's lock of `mempool`).
    fn start(
        mempool: &SharedMempool,
        locked: &mut Mempool,
        marked: Vec<Hash>,
        held: Vec<Held>,
    ) -> Self {
        for hash in &marked {
            locked.start_recording(*hash);
        }
        Recording {
            mempool: mempool.clone(),
            marked,
            held,
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.marked.is_empty() {
            return;
        }
        // Not `lock`: dropped while unwinding from a panic that poisoned the mempool, it
        // must not panic again (that aborts the process).
        let mut mempool = self
            .mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for hash in &self.marked {
            mempool.end_recording(hash);
        }
    }
}

/// What a transaction a client submitted and this node admitted was here before: how to
/// take the admission back if its record fails ([`Admission::take_back`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Nothing: it is withdrawn, pending or parked.
    New,
    /// Pending as a peer's copy: it stays that, no longer acknowledged here.
    Relayed,
    /// Parked, recorded by an earlier submission (whose write has ended): it stays where
    /// it is.
    Recorded,
}

/// The signed transactions of `verified`, to gossip.
fn signed(verified: Vec<VerifiedTransaction>) -> Vec<SignedTransaction> {
    verified
        .into_iter()
        .map(VerifiedTransaction::into_signed)
        .collect()
}

/// Where in a batch the transactions answered `already_pending` before the checks were.
#[derive(Debug)]
struct AlreadyPending {
    /// Their indexes in the batch, ascending.
    at: Vec<usize>,
    /// The batch's length.
    count: usize,
}

impl AlreadyPending {
    /// The batch's answer: `results` (of the rest, in order) with `already_pending` put back
    /// in the places of those answered before the checks.
    fn answer(self, results: Vec<Result<Hash, AdmissionError>>) -> Admitted {
        if self.at.is_empty() {
            return Admitted { results };
        }
        let mut rest = results.into_iter();
        let mut known = self.at.into_iter().peekable();
        let results = (0..self.count)
            .filter_map(|index| {
                if known.next_if_eq(&index).is_some() {
                    Some(Err(AdmissionError::AlreadyPending))
                } else {
                    rest.next()
                }
            })
            .collect();
        Admitted { results }
    }
}

/// How many decoded signer keys admission remembers (~250 bytes each; a consortium's
/// active customers fit, and beyond it the memory starts again).
const REMEMBERED_KEYS: usize = 50_000;

/// Signer keys decoded by earlier batches, shared by the verification workers: a network's
/// signers sign again and again, and decoding a key (a field square root) is about a third
/// of a verification. Decoding is a pure function of the key's bytes, so the verdicts are
/// the same with or without it; keys that do not decode are not remembered. At most
/// `capacity` are kept; beyond it the memory starts again.
#[derive(Debug)]
pub struct SignerKeys {
    keys: std::sync::Mutex<std::collections::BTreeMap<AccountId, PublicKey>>,
    capacity: usize,
}

impl SignerKeys {
    /// Remembers at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        SignerKeys {
            keys: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    /// True if none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `signer`'s decoded key, as [`signer_key`] answers. Locked per key, never across a
    /// verification: the workers verify side by side.
    pub fn key(&self, signer: &AccountId) -> Result<PublicKey, TxError> {
        if let Some(key) = lock(&self.keys).get(signer) {
            return Ok(*key);
        }
        let key = signer_key(signer)?;
        let mut known = lock(&self.keys);
        if known.len() >= self.capacity {
            known.clear();
        }
        known.insert(*signer, key);
        Ok(key)
    }
}

/// The stateless checks (signatures in one batch), then "already in a block?" of those
/// that pass, in one batched lookup.
fn check(
    chain_id: &str,
    keys: &SignerKeys,
    store: &dyn ChainStore,
    txs: Vec<SignedTransaction>,
) -> Vec<Result<VerifiedTransaction, AdmissionError>> {
    let checked = check_stateless_batch_by(txs, chain_id, |signer| keys.key(signer));
    let hashes: Vec<Hash> = checked
        .iter()
        .filter_map(|result| result.as_ref().ok().map(VerifiedTransaction::hash))
        .collect();
    let mut included = match store.tx_locations(&hashes) {
        Ok(locations) => Ok(locations.into_iter()),
        Err(error) => {
            tracing::warn!(%error, "cannot read the transaction index");
            Err(error.to_string())
        }
    };
    checked
        .into_iter()
        .map(|result| {
            let verified = result.map_err(AdmissionError::Rejected)?;
            match included.as_mut().map(Iterator::next) {
                Ok(Some(None)) => Ok(verified),
                Ok(Some(Some(_))) => Err(AdmissionError::AlreadyIncluded(verified.hash())),
                // A storage failure is the node's problem, not the sender's.
                Err(error) => Err(AdmissionError::Unavailable(error.clone())),
                Ok(None) => Err(AdmissionError::Unavailable(
                    "the transaction index answered fewer lookups than asked".into(),
                )),
            }
        })
        .collect()
}

/// Of restored transactions, those that can no longer commit (their record is dropped):
/// already in a block, malformed, expired, past their reject time, a nonce already used, an
/// end-to-end id already paid. What was refused for now (a full mempool, the signer's
/// limit, funds or a queue that may change, the cut-off, storage) keeps its record and is
/// parked, tried again at every commit (and at the next start): before, it was forgotten
/// too, and a crash or a smaller mempool lost transactions the node had acknowledged.
fn gone(hashes: Vec<Hash>, admitted: &Admitted) -> Vec<Hash> {
    hashes
        .into_iter()
        .zip(&admitted.results)
        .filter(|(_, result)| match result {
            Ok(_) => false,
            Err(error) => can_never_commit(error),
        })
        .map(|(hash, _)| hash)
        .collect()
}

/// Logs and counts what a restore made pending again.
fn restored(admitted: &Admitted) -> usize {
    let pending = admitted.admitted();
    tracing::info!(
        pending,
        "acknowledged transactions offered again after a restart"
    );
    pending
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use interpool_contracts::testkit::customer_seed;

    use super::*;
    use crate::app::{ClientBacklog, Core, Mempool, MempoolLimits};
    use crate::metrics::Metrics;
    use crate::storage::Store;
    use crate::testkit;

    #[test]
    fn remembered_keys_answer_as_decoding_does_and_stay_within_capacity() {
        let not_a_point = (0u8..=255)
            .map(|b| AccountId([b; 32]))
            .find(|k| signer_key(k).is_err())
            .expect("some byte pattern is not a curve point");
        let keys = SignerKeys::new(3);
        let signers: Vec<AccountId> = (0..4)
            .map(|i| testkit::transfer(customer_seed(0, i), 0).tx().signer)
            .collect();
        for signer in &signers[..3] {
            assert_eq!(keys.key(signer), signer_key(signer));
            assert_eq!(keys.key(signer), signer_key(signer), "remembered");
        }
        assert_eq!(keys.key(&not_a_point), signer_key(&not_a_point));
        assert_eq!(
            keys.len(),
            3,
            "a key that does not decode is not remembered"
        );
        // A fourth key: the memory starts again rather than grow past its capacity.
        assert_eq!(keys.key(&signers[3]), signer_key(&signers[3]));
        assert_eq!(keys.len(), 1);
        assert!(!keys.is_empty());
    }

    /// An admission pipeline over a new store and a mempool with `limits`; the core and the
    /// folder are kept alive with it.
    pub(super) fn pipeline(
        limits: MempoolLimits,
    ) -> (
        Admission,
        Arc<Store>,
        SharedMempool,
        Core,
        tempfile::TempDir,
    ) {
        let genesis = testkit::genesis();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let mempool = Arc::new(Mutex::new(Mempool::new(limits)));
        let core = Core::open(
            &genesis,
            store.clone(),
            testkit::limits(),
            mempool.clone(),
            Arc::new(Metrics::new()),
        )
        .expect("open");
        let admission = Admission::new(
            genesis.chain_id.clone(),
            mempool.clone(),
            core.subscribe(),
            store.clone(),
            Arc::new(Metrics::new()),
            AdmissionSettings::default(),
        );
        (admission, store, mempool, core, dir)
    }

    fn signed(nonce: u64) -> SignedTransaction {
        testkit::transfer(customer_seed(0, 0), nonce)
            .signed()
            .clone()
    }

    #[test]
    fn a_backlogged_node_refuses_clients_whole_and_still_takes_what_peers_relay() {
        let (admission, store, mempool, _core, _dir) = pipeline(MempoolLimits {
            max_transactions: 100,
            max_per_signer: 100,
            client_backlog: Some(ClientBacklog {
                drain: Duration::from_secs(2),
                floor: 3,
            }),
        });
        // Below the floor (nothing committed yet: the floor is the cap), clients are taken.
        let first = admission.admit_blocking((0..2).map(signed).collect(), Origin::Client);
        assert_eq!(first.admitted(), 2);
        // The cap reached inside a batch: what is past it is refused, but a retry of what
        // is already pending gets its own answer.
        let second =
            admission.admit_blocking(vec![signed(2), signed(0), signed(3)], Origin::Client);
        assert_eq!(second.results[0], Ok(signed(2).hash()));
        assert_eq!(
            second.results[1..],
            [
                Err(AdmissionError::AlreadyPending),
                Err(AdmissionError::MempoolFull(3))
            ]
        );
        // At the cap, a client's batch is refused whole, with the pending count, and a
        // transaction with a broken signature gets the same answer: nothing was checked.
        let mut forged = signed(4);
        forged.signature.0[0] ^= 1;
        let refused = admission.admit_blocking(vec![signed(3), forged], Origin::Client);
        assert_eq!(
            refused.results,
            vec![
                Err(AdmissionError::MempoolFull(3)),
                Err(AdmissionError::MempoolFull(3))
            ]
        );
        // Nothing was recorded as acknowledged for the refused batch.
        assert_eq!(store.pending_transactions().expect("pending").len(), 3);
        // What a peer relays was acknowledged elsewhere: it is taken (up to the hard limit).
        let relayed = admission.admit_blocking(vec![signed(3)], Origin::Peer);
        assert_eq!(relayed.admitted(), 1);
        assert_eq!(lock(&mempool).len(), 4);
    }

    /// Found by the 4-validator benchmark with a small backlog: the load generator's later
    /// nonces got in while an earlier one was refused, the mempool filled with transactions
    /// waiting behind those gaps, nothing could be selected, nothing committed (so the cap
    /// stayed at its floor), and every client was refused for ever, the one transaction
    /// that fills each gap included. Any customer could halt every client's payments so.
    #[test]
    fn transactions_waiting_behind_a_nonce_gap_do_not_fill_the_client_backlog() {
        let (admission, _store, mempool, core, _dir) = pipeline(MempoolLimits {
            max_transactions: 100,
            max_per_signer: 100,
            client_backlog: Some(ClientBacklog {
                drain: Duration::from_secs(2),
                floor: 3,
            }),
        });
        // Nonces 1 to 3 without 0: taken (below the cap), but no block can take them.
        let gapped = admission.admit_blocking((1..4).map(signed).collect(), Origin::Client);
        assert_eq!(gapped.admitted(), 3);
        let ledger = core.ledger();
        assert!(lock(&mempool).select(ledger, 100, usize::MAX).is_empty());
        assert_eq!(
            admission.client_backlog_full(),
            None,
            "nothing selectable is pending"
        );
        // The transaction that fills the gap is taken, and all four can now commit.
        let filler = admission.admit_blocking(vec![signed(0)], Origin::Client);
        assert_eq!(filler.results, vec![Ok(signed(0).hash())]);
        assert_eq!(lock(&mempool).select(ledger, 100, usize::MAX).len(), 4);
        // Now the backlog is full: four selectable, past the cap of three.
        assert_eq!(admission.client_backlog_full(), Some(4));
        let refused = admission.admit_blocking(vec![signed(4)], Origin::Client);
        assert_eq!(refused.results, vec![Err(AdmissionError::MempoolFull(4))]);
        // What a peer relays behind a new gap (nonce 5 is missing) is taken; it does not
        // count toward the cap, which reports every pending transaction.
        let behind = admission.admit_blocking(vec![signed(6)], Origin::Peer);
        assert_eq!(behind.admitted(), 1);
        assert_eq!(admission.client_backlog_full(), Some(5));
    }

    #[test]
    fn a_peers_exact_copies_of_pending_transactions_are_answered_without_being_checked_again() {
        let (admission, _store, mempool, _core, _dir) = pipeline(MempoolLimits {
            max_transactions: 100,
            max_per_signer: 100,
            client_backlog: None,
        });
        let first = admission.admit_blocking(vec![signed(0), signed(1)], Origin::Client);
        assert_eq!(first.admitted(), 2);
        // A copy of a pending transaction with other signature bytes is checked, from a peer
        // as from a client: it is a forgery, and the peer's batch is not passed on.
        let mut copy = signed(1);
        copy.signature.0[0] ^= 1;
        let mut forged = signed(3);
        forged.signature.0[0] ^= 1;
        let relayed = admission.admit_blocking(
            vec![signed(0), signed(2), copy.clone(), forged, signed(1)],
            Origin::Peer,
        );
        assert_eq!(relayed.results.len(), 5, "one answer per transaction");
        assert_eq!(relayed.results[0], Err(AdmissionError::AlreadyPending));
        assert_eq!(relayed.results[1], Ok(signed(2).hash()));
        assert!(
            matches!(&relayed.results[2], Err(AdmissionError::Rejected(e)) if e.is_stateless()),
            "a forged copy of a pending one is checked: {:?}",
            relayed.results[2]
        );
        assert!(
            matches!(&relayed.results[3], Err(AdmissionError::Rejected(e)) if e.is_stateless()),
            "a new transaction is still checked: {:?}",
            relayed.results[3]
        );
        assert_eq!(relayed.results[4], Err(AdmissionError::AlreadyPending));
        assert!(relayed.forged(), "the forged new one is the peer's fault");
        assert_eq!(lock(&mempool).len(), 3);
        // A peer batch of copies only: all answered, nothing else happens.
        let copies = admission.admit_blocking(vec![signed(2), signed(0)], Origin::Peer);
        assert_eq!(
            copies.results,
            vec![
                Err(AdmissionError::AlreadyPending),
                Err(AdmissionError::AlreadyPending)
            ]
        );
        assert!(!copies.forged());
        let client = admission.admit_blocking(vec![copy], Origin::Client);
        assert!(
            matches!(&client.results[0], Err(AdmissionError::Rejected(e)) if e.is_stateless()),
            "a client's copy is checked: {:?}",
            client.results[0]
        );
    }
}

#[cfg(test)]
mod record_tests {
    use interpool_contracts::testkit::{account, customer_seed, key};
    use interpool_contracts::{Amount, Body, Transaction};

    use super::*;
    use crate::app::{Core, Mempool, MempoolLimits};
    use crate::storage::mem::MemStore;
    use crate::storage::Store;

    /// A transfer of customer (0, `i`) with `nonce`, valid until `valid_until_height`.
    fn transfer(i: usize, nonce: u64, valid_until_height: u64) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(customer_seed(0, i)),
            nonce,
            valid_until_height,
            body: Body::Transfer {
                to: account(customer_seed(1, 0)),
                amount: Amount(5),
                end_to_end_id: format!("R-{i}-{nonce}"),
                reference: String::new(),
                terms: Default::default(),
            },
        }
        .sign(&key(customer_seed(0, i)))
        .check_stateless("test")
        .expect("valid")
    }

    fn node(max_transactions: usize) -> (Admission, Arc<Store>, Core, tempfile::TempDir) {
        let (admission, store, _mempool, core, dir) = super::tests::pipeline(MempoolLimits {
            max_transactions,
            max_per_signer: 100,
            client_backlog: None,
        });
        (admission, store, core, dir)
    }

    /// A restart whose mempool cannot take every acknowledged transaction keeps the
    /// records of those it refused for now, and takes them in as soon as there is room;
    /// before, they were forgotten as if they could never commit, and then waited for the
    /// next restart.
    #[test]
    fn a_restore_keeps_what_was_refused_for_now_and_takes_it_in_once_there_is_room() {
        let (admission, store, mut core, _dir) = node(1);
        let (a, b) = (transfer(0, 0, 1_000), transfer(1, 0, 1_000));
        store
            .save_pending(&[a.clone(), b.clone()])
            .expect("recorded");
        assert_eq!(admission.restore_blocking().expect("restored"), 1);
        assert_eq!(store.pending_transactions().expect("pending").len(), 2);
        let mempool = core.mempool().clone();
        let waiting = if lock(&mempool).contains(&a.hash()) {
            b
        } else {
            a
        };
        assert!(!lock(&mempool).contains(&waiting.hash()));
        // The block takes the one in the mempool.
        crate::testkit::commit_block(&mut core, vec![], 1_000);
        assert!(
            lock(&mempool).contains(&waiting.hash()),
            "taken in once the commit made room"
        );
        assert_eq!(crate::testkit::recorded(&*store), vec![waiting.hash()]);
    }

    /// An acknowledged transaction that expires uncommitted (here behind a nonce gap)
    /// loses its record when it expires; before, records stayed until the next restart and
    /// a client could grow them without bound.
    #[test]
    fn the_record_of_an_acknowledged_transaction_goes_when_it_expires() {
        let (admission, store, mut core, _dir) = node(100);
        let admitted =
            admission.admit_blocking(vec![transfer(0, 1, 1).signed().clone()], Origin::Client);
        assert_eq!(admitted.admitted(), 1);
        assert_eq!(store.pending_transactions().expect("pending").len(), 1);
        crate::testkit::commit_block(&mut core, vec![], 1_000);
        assert!(store.pending_transactions().expect("pending").is_empty());
    }

    /// An acknowledged transaction that a full mempool evicted while it waited behind a
    /// nonce gap keeps its record, and is pending (offered, then committed) again as soon as
    /// other nodes' transactions fill the gap; before, nothing offered it again until the
    /// node restarted. One whose nonce another transaction took loses its record.
    #[test]
    fn an_acknowledged_transaction_evicted_behind_a_gap_is_offered_again_once_the_gap_commits() {
        use crate::testkit::{commit_block, transfer as transfer_of};
        let (admission, store, mut core, _dir) = node(3);
        let (gapped, taken) = (transfer(0, 1, 1_000), transfer(1, 1, 1_000));
        let others = [
            transfer_of(customer_seed(1, 1), 0),
            crate::testkit::transfer_to(customer_seed(1, 0), customer_seed(0, 0), 0, 10),
        ];
        for tx in [&gapped, &taken, &others[0], &others[1]] {
            let admitted = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
            assert_eq!(admitted.results, vec![Ok(tx.hash())]);
        }
        // The fourth made room by evicting the two behind gaps; their records stay.
        let mempool = core.mempool().clone();
        assert!(!lock(&mempool).contains(&gapped.hash()));
        assert!(!lock(&mempool).contains(&taken.hash()));
        assert_eq!(crate::testkit::recorded(&*store).len(), 4);
        commit_block(&mut core, vec![], 1_000);
        assert_eq!(crate::testkit::recorded(&*store).len(), 2);
        // Other nodes' transactions fill customer 0's gap and take customer 1's nonce 1.
        commit_block(
            &mut core,
            vec![
                transfer(0, 0, 1_000),
                transfer(1, 0, 1_000),
                transfer(1, 1, 999),
            ],
            2_000,
        );
        assert!(lock(&mempool).contains(&gapped.hash()), "pending again");
        assert!(lock(&mempool)
            .lingering(Duration::ZERO, 10)
            .contains(gapped.signed()));
        assert_eq!(
            crate::testkit::recorded(&*store),
            vec![gapped.hash()],
            "the taken one's went"
        );
        commit_block(&mut core, vec![], 3_000);
        assert!(crate::testkit::recorded(&*store).is_empty(), "committed");
        assert!(lock(&mempool).is_empty());
    }

    /// A node on the simulator's store, whose next write a test can make fail
    /// ([`MemStore::fail_after`]), with a mempool of at most `max_transactions`.
    fn node_on_memory(max_transactions: usize) -> (Admission, Arc<MemStore>, SharedMempool, Core) {
        let genesis = crate::testkit::genesis();
        let store = Arc::new(MemStore::new());
        let mempool = Arc::new(std::sync::Mutex::new(Mempool::new(MempoolLimits {
            max_transactions,
            max_per_signer: 100,
            client_backlog: None,
        })));
        let core = Core::open(
            &genesis,
            store.clone(),
            crate::testkit::limits(),
            mempool.clone(),
            Arc::new(Metrics::new()),
        )
        .expect("open");
        let admission = Admission::new(
            genesis.chain_id.clone(),
            mempool.clone(),
            core.subscribe(),
            store.clone(),
            Arc::new(Metrics::new()),
            AdmissionSettings::default(),
        );
        (admission, store, mempool, core)
    }

    /// Asserts that the one transaction submitted in `admitted` was refused with
    /// `unavailable` (try again).
    #[track_caller]
    fn assert_told_to_retry(admitted: &Admitted) {
        assert!(
            matches!(
                admitted.results.as_slice(),
                [Err(AdmissionError::Unavailable(_))]
            ),
            "{:?}",
            admitted.results
        );
    }

    /// How long a test waits for a held record to start before it fails.
    const HELD_RECORD_WAIT: Duration = Duration::from_secs(30);

    /// A client submits again an acknowledged transaction that a full mempool parked behind
    /// a nonce gap, and the record of this submission fails: the transaction recorded the
    /// first time is still offered, and commits once the gap is filled. Before, taking
    /// back the unrecorded submission took the parked copy too: its record stayed on disk,
    /// but nothing offered it until the node restarted.
    #[test]
    fn a_failed_record_of_a_parked_transaction_submitted_again_leaves_it_offered() {
        use crate::testkit::{commit_block, transfer as transfer_of};
        let (admission, store, mempool, mut core) = node_on_memory(2);
        let gapped = transfer(0, 1, 1_000);
        let others = [transfer(1, 0, 1_000), transfer_of(customer_seed(1, 1), 0)];
        for tx in [&gapped, &others[0], &others[1]] {
            let admitted = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
            assert_eq!(admitted.results, vec![Ok(tx.hash())]);
        }
        // The third made room by parking the one behind a gap; a block takes the other two.
        assert!(!lock(&mempool).contains(&gapped.hash()));
        commit_block(&mut core, vec![], 1_000);
        assert!(lock(&mempool).is_empty());
        // Submitted again: admitted (the mempool has room), but its record fails.
        store.fail_after(1);
        let again = admission.admit_blocking(vec![gapped.signed().clone()], Origin::Client);
        assert_told_to_retry(&again);
        store.crash(usize::MAX);
        assert_eq!(
            crate::testkit::recorded(&*store),
            vec![gapped.hash()],
            "the first record stands"
        );
        // Another node's nonce 0 commits: the acknowledged nonce 1 goes in with it, or is
        // pending again after it.
        commit_block(&mut core, vec![transfer(0, 0, 1_000)], 2_000);
        let committed = store.tx_location(&gapped.hash()).expect("index").is_some();
        assert!(
            committed || lock(&mempool).contains(&gapped.hash()),
            "an acknowledged transaction dropped until a restart"
        );
    }

    /// A client submits a transaction this node holds only as a peer's copy (gossiped, not
    /// recorded here): it is acknowledged here as a new one is, recorded on this node's disk
    /// before the answer. Before, it was answered `already_pending` with nothing recorded
    /// here, and a pacs.008 got 200 for it: a success from a node that could lose it in a
    /// crash.
    #[test]
    fn a_clients_submission_of_a_transaction_held_from_a_peer_is_recorded_here() {
        let (admission, store, mempool, _core) = node_on_memory(100);
        let tx = transfer(0, 0, 1_000);
        let relayed = admission.admit_blocking(vec![tx.signed().clone()], Origin::Peer);
        assert_eq!(relayed.results, vec![Ok(tx.hash())]);
        assert!(
            crate::testkit::recorded(&*store).is_empty(),
            "the peer's to record"
        );
        let submitted = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_eq!(submitted.results, vec![Ok(tx.hash())]);
        assert_eq!(crate::testkit::recorded(&*store), vec![tx.hash()]);
        assert_eq!(lock(&mempool).len(), 1);
        // Acknowledged here now: a retry is answered as for one of this node's own.
        let retried = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_eq!(retried.results, vec![Err(AdmissionError::AlreadyPending)]);
    }

    /// The record of a peer's copy that a client submits fails: the client is refused
    /// (`unavailable`, not `already_pending`, which a pacs.008 answers with a success), and
    /// the transaction stays pending as the peer's copy it was, so that the client's retry
    /// once the disk works is recorded.
    #[test]
    fn a_peers_copy_whose_record_fails_is_refused_and_stays_the_peers() {
        let (admission, store, mempool, _core) = node_on_memory(100);
        let tx = transfer(0, 0, 1_000);
        let relayed = admission.admit_blocking(vec![tx.signed().clone()], Origin::Peer);
        assert_eq!(relayed.results, vec![Ok(tx.hash())]);
        store.fail_after(1);
        let refused = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_told_to_retry(&refused);
        assert!(lock(&mempool).contains(&tx.hash()), "still pending");
        store.crash(usize::MAX);
        assert!(crate::testkit::recorded(&*store).is_empty());
        let retried = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_eq!(retried.results, vec![Ok(tx.hash())]);
        assert_eq!(crate::testkit::recorded(&*store), vec![tx.hash()]);
    }

    /// A client submits a transaction while another client's submission of it is being
    /// recorded, and that record fails: the second is told to try again (`unavailable`,
    /// 503), and its retry is recorded. Before, it was answered `already_pending` (a
    /// pacs.008 got 200) for a transaction the failed record then took out of the mempool:
    /// a success from a node that had it on no disk.
    #[test]
    fn a_submission_while_another_is_being_recorded_is_told_to_try_again() {
        let (admission, store, mempool, _core) = node_on_memory(100);
        let tx = transfer(0, 0, 1_000);
        let (started, release) = store.hold_next_record();
        let first = std::thread::spawn({
            let (admission, tx) = (admission.clone(), tx.signed().clone());
            move || admission.admit_blocking(vec![tx], Origin::Client)
        });
        started
            .recv_timeout(HELD_RECORD_WAIT)
            .expect("the first submission's record started");
        assert!(
            lock(&mempool).contains(&tx.hash()),
            "admitted, being recorded"
        );
        let second = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_told_to_retry(&second);
        // The first record fails.
        store.fail_after(1);
        release.send(()).expect("the first record let go");
        let first = first.join().expect("the first submission");
        assert_told_to_retry(&first);
        assert!(!lock(&mempool).contains(&tx.hash()), "taken back");
        store.crash(usize::MAX);
        assert!(crate::testkit::recorded(&*store).is_empty());
        // The second client's retry: recorded, then acknowledged.
        let retried = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_eq!(retried.results, vec![Ok(tx.hash())]);
        assert_eq!(crate::testkit::recorded(&*store), vec![tx.hash()]);
        // Its record over, a submission again is answered as for any recorded transaction.
        let again = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_eq!(again.results, vec![Err(AdmissionError::AlreadyPending)]);
    }

    /// The same through the asynchronous path, the transaction parked meanwhile: a full
    /// mempool evicts a client's new transaction behind a nonce gap while its record is
    /// being written, and another client submits it. Before, that submission was taken as
    /// one recorded already (it was parked) and acknowledged (202) once its own record was
    /// written; the first record then failed and took the transaction back, parked copy
    /// included, leaving the second record with nothing offering it until a restart. Now the
    /// second is told to try again, and its retry is recorded and pending.
    #[test]
    fn a_transaction_parked_while_being_recorded_is_not_taken_as_recorded() {
        use crate::testkit::{commit_block, transfer as transfer_of};
        let (admission, store, mempool, mut core) = node_on_memory(2);
        let gapped = transfer(0, 1, 1_000);
        let others = [transfer(1, 0, 1_000), transfer_of(customer_seed(1, 1), 0)];
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (started, release) = store.hold_next_record();
        let first = runtime.spawn({
            let (admission, tx) = (admission.clone(), gapped.signed().clone());
            async move { admission.admit(vec![tx], Origin::Client).await }
        });
        started
            .recv_timeout(HELD_RECORD_WAIT)
            .expect("the first submission's record started");
        // The second of these makes room by parking the one behind a gap; a block takes both.
        for tx in &others {
            let admitted = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
            assert_eq!(admitted.results, vec![Ok(tx.hash())]);
        }
        assert!(lock(&mempool).is_parked(&gapped));
        commit_block(&mut core, vec![], 1_000);
        assert!(lock(&mempool).is_empty());
        let second = admission.admit_blocking(vec![gapped.signed().clone()], Origin::Client);
        assert_told_to_retry(&second);
        // The first record fails: the transaction is taken back, parked copy included.
        store.fail_after(1);
        release.send(()).expect("the first record let go");
        let first = runtime.block_on(first).expect("the first submission");
        assert_told_to_retry(&first);
        assert!(!lock(&mempool).is_parked(&gapped), "taken back");
        store.crash(usize::MAX);
        assert!(crate::testkit::recorded(&*store).is_empty());
        // The second client's retry: recorded and pending, offered as any other.
        let retried = admission.admit_blocking(vec![gapped.signed().clone()], Origin::Client);
        assert_eq!(retried.results, vec![Ok(gapped.hash())]);
        assert_eq!(crate::testkit::recorded(&*store), vec![gapped.hash()]);
        assert!(lock(&mempool).contains(&gapped.hash()));
        let again = admission.admit_blocking(vec![gapped.signed().clone()], Origin::Client);
        assert_eq!(again.results, vec![Err(AdmissionError::AlreadyPending)]);
    }

    /// A client's batch holds one transaction twice, and its record fails: both copies are
    /// told to try again. Before, the second kept `already_pending` (answered on the
    /// strength of the first copy) for a transaction the failed record took back: a pacs.008
    /// would have got 200 for it, on no disk. Recorded on a retry, the repeat is answered
    /// `already_pending` as before.
    #[test]
    fn a_copy_in_a_batch_whose_record_fails_is_told_to_try_again_too() {
        let (admission, store, mempool, _core) = node_on_memory(100);
        let tx = transfer(0, 0, 1_000);
        let twice = || vec![tx.signed().clone(), tx.signed().clone()];
        store.fail_after(1);
        let failed = admission.admit_blocking(twice(), Origin::Client);
        assert!(
            matches!(
                failed.results.as_slice(),
                [
                    Err(AdmissionError::Unavailable(_)),
                    Err(AdmissionError::Unavailable(_))
                ]
            ),
            "{:?}",
            failed.results
        );
        assert!(!lock(&mempool).contains(&tx.hash()), "taken back");
        store.crash(usize::MAX);
        assert!(crate::testkit::recorded(&*store).is_empty());
        let retried = admission.admit_blocking(twice(), Origin::Client);
        assert_eq!(
            retried.results,
            vec![Ok(tx.hash()), Err(AdmissionError::AlreadyPending)]
        );
        assert_eq!(crate::testkit::recorded(&*store), vec![tx.hash()]);
    }

    /// The record of a submission panics (a bug in the store): the transaction is taken
    /// back before the marks lift, so a retry records it and is answered `accepted`. Before,
    /// the marks lifted with it still admitted, and the retry was answered
    /// `already_pending` for a transaction on no disk.
    #[test]
    fn a_record_that_panics_leaves_nothing_acknowledged_that_is_not_on_disk() {
        let (admission, store, mempool, _core) = node_on_memory(100);
        let tx = transfer(0, 0, 1_000);
        store.panic_in_next_record();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            admission.admit_blocking(vec![tx.signed().clone()], Origin::Client)
        }));
        assert!(panicked.is_err(), "the store's panic goes on");
        assert!(!lock(&mempool).contains(&tx.hash()), "taken back");
        assert!(crate::testkit::recorded(&*store).is_empty());
        let retried = admission.admit_blocking(vec![tx.signed().clone()], Origin::Client);
        assert_eq!(retried.results, vec![Ok(tx.hash())]);
        assert_eq!(crate::testkit::recorded(&*store), vec![tx.hash()]);
    }
}
