//! The engine: the height/round driver and the round state machine (PBFT three-phase
//! commit per height, QBFT round change), as a pure function of its inputs.
//!
//! The host calls [`Engine::handle`] with one [`Input`] and gets a [`Ready`]: the state to
//! make durable (synchronously) and, apart from it, the [`Action`]s to execute **in order**
//! once it is — in particular the [`Action::Broadcast`] of a COMMIT that a new lock guards
//! ("save first, then speak").
//!
//! Rule map (the comments in the code cite these):
//! * **PBFT §4.2 pre-prepare/prepare**: the proposer of `(h, r)` broadcasts a PROPOSAL; a
//!   validator that accepts it (right proposer, justified, payload valid per the
//!   application) broadcasts PREPARE.
//! * **PBFT §4.2 prepared / commit**: a quorum of PREPAREs for the accepted proposal of the
//!   current round makes the validator *prepared*: it locks (persists the prepared
//!   certificate and its payload), then broadcasts COMMIT.
//! * **PBFT §4.2 committed-local**: a quorum of COMMITs for one `(h, r, digest)` decides
//!   the height; the COMMIT signatures form the [`CommitCertificate`].
//! * **QBFT round change**: on timeout the validator moves to `r + 1` and broadcasts a
//!   ROUND-CHANGE carrying its lock. The proposer of `r + 1` waits for a quorum of them and
//!   proposes the payload of the highest prepared certificate among them, or (if none) a
//!   fresh payload, with the round changes attached as justification.
//! * **QBFT f+1 rule**: round changes from `f + 1` validators for rounds above the current
//!   one make a lagging validator jump to the highest round that `f + 1` of them reached.
//! * **Future-round proposal**: a valid, justified proposal for a higher round moves the
//!   validator to that round (the justification proves a quorum is there).
//!
//! Layout, as malachite splits its core: the vote keeper (`crate::votes`) stores and
//! counts; `round` is the round state machine and the signing guard; this module is the
//! height/round driver (inputs, timers, future-height buffer, sync); `io` holds the
//! interface types.

mod io;
mod round;

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;

pub use io::{
    Action, Config, EngineError, Evidence, Input, Metrics, PersistedState, Ready, TimerKind,
};

use crate::message::{
    highest_prepared, CommitCertificate, PreparedCertificate, SignatureVerifier, SignedMessage,
    StrictVerifier,
};
use crate::types::{Digest, Height, PublicKey, Round, ValidatorSet};
use crate::votes::VoteKeeper;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    Pending,
    Valid,
    Invalid,
}

#[derive(Debug, Clone)]
struct AcceptedProposal {
    digest: Digest,
    message: SignedMessage,
}

/// The consensus engine of one validator. See the crate documentation for the protocol.
pub struct Engine {
    config: Config,
    validators: ValidatorSet,
    signing_key: SigningKey,
    me: usize,
    verifier: Box<dyn SignatureVerifier>,

    height: Height,
    round: Round,
    started: bool,
    /// Set when the current height is decided; `handle` then moves to the next one.
    decided: bool,

    // Per-height state, reset by `advance_height`.
    votes: VoteKeeper,
    /// At most one proposal per round: the first valid one (later ones are equivocation).
    proposals: BTreeMap<Round, AcceptedProposal>,
    validity: BTreeMap<Digest, Validity>,
    proposal_requested: bool,
    sync_requested: bool,
    /// Validators we already answered with our round change in this round.
    helped: Vec<usize>,
    /// Re-sends done in this round (the retransmission interval doubles with each).
    retransmits: u32,

    /// Signing guard and lock.
    persisted: PersistedState,
    /// The persisted state changed (a signature, a lock) since the last [`Ready::persist`].
    dirty: bool,

    /// Verified messages for future heights, per height, with their signer's index.
    future: BTreeMap<Height, Vec<(usize, SignedMessage)>>,
    /// Highest height each validator was seen at, when above ours.
    ahead: BTreeMap<usize, Height>,

    metrics: Metrics,
    evidence: Vec<Evidence>,
    actions: Vec<Action>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("me", &self.me)
            .field("height", &self.height)
            .field("round", &self.round)
            .field("lock", &self.lock().map(|c| c.vote))
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A validator's engine, starting at `start_height` (the height after the host's last
    /// committed block), restored from `persisted` if the host has one.
    ///
    /// A persisted state for `start_height` resumes its round, lock and signed messages;
    /// one for a lower height is obsolete and ignored; one for a higher height keeps its
    /// guard (nothing is signed below it) while the host syncs up.
    pub fn new(
        config: Config,
        validators: ValidatorSet,
        signing_key: SigningKey,
        persisted: Option<PersistedState>,
        start_height: Height,
    ) -> Result<Engine, EngineError> {
        let public = PublicKey::from(&signing_key.verifying_key());
        let me = validators
            .index_of(&public)
            .ok_or(EngineError::NotAValidator(public))?;
        if start_height == 0 {
            return Err(EngineError::HeightZero);
        }
        let persisted = match persisted {
            Some(state) if state.height >= start_height => {
                check_persisted(&state, &validators, &public)?;
                state
            }
            _ => PersistedState::fresh(start_height),
        };
        let round = if persisted.height == start_height {
            persisted.round
        } else {
            0
        };
        Ok(Engine {
            config,
            validators,
            signing_key,
            me,
            verifier: Box::new(StrictVerifier),
            height: start_height,
            round,
            started: false,
            decided: false,
            votes: VoteKeeper::default(),
            proposals: BTreeMap::new(),
            validity: BTreeMap::new(),
            proposal_requested: false,
            sync_requested: false,
            helped: Vec::new(),
            retransmits: 0,
            persisted,
            dirty: false,
            future: BTreeMap::new(),
            ahead: BTreeMap::new(),
            metrics: Metrics::default(),
            evidence: Vec::new(),
            actions: Vec::new(),
        })
    }

    /// Replaces the signature verifier (e.g. with a cache of positive results).
    pub fn with_verifier(mut self, verifier: Box<dyn SignatureVerifier>) -> Engine {
        self.verifier = verifier;
        self
    }

    /// Current height (the lowest height not yet decided).
    pub fn height(&self) -> Height {
        self.height
    }

    /// Current round.
    pub fn round(&self) -> Round {
        self.round
    }

    /// This validator's index in the set.
    pub fn validator_index(&self) -> usize {
        self.me
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Equivocation evidence seen (bounded by [`Config::max_evidence`]).
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// The state to persist, as last emitted.
    pub fn persisted_state(&self) -> &PersistedState {
        &self.persisted
    }

    /// The lock at the current height, if any.
    pub fn lock(&self) -> Option<&PreparedCertificate> {
        if self.persisted.height == self.height {
            self.persisted.lock.as_ref()
        } else {
            None
        }
    }

    /// Handles one input and returns what the host must persist and then do (see [`Ready`]
    /// for the persistence contract).
    pub fn handle(&mut self, input: Input) -> Ready {
        match input {
            Input::Start { .. } => self.on_start(),
            Input::Message(message) => {
                self.metrics.messages_received = self.metrics.messages_received.saturating_add(1);
                self.on_message(message);
            }
            Input::Timeout {
                height,
                round,
                kind: TimerKind::Round,
                ..
            } => self.on_timeout(height, round),
            Input::Timeout {
                height,
                round,
                kind: TimerKind::Retransmit,
                ..
            } => self.on_retransmit(height, round),
            Input::ProposalReady {
                height,
                round,
                payload,
            } => self.on_proposal_ready(height, round, payload),
            Input::ValidationResult {
                height,
                round,
                digest,
                valid,
            } => {
                if height == self.height {
                    if valid {
                        self.validity.insert(digest, Validity::Valid);
                    } else if round >= self.round {
                        self.validity.insert(digest, Validity::Invalid);
                    } else {
                        // A rejection judged in an earlier round: it may have depended on
                        // the moment (a block time just ahead of this node's clock), so it
                        // is not kept; a re-proposal in this round is judged again.
                        self.revalidate(digest);
                    }
                }
            }
            Input::CommittedViaSync {
                height,
                payload,
                certificate,
            } => self.on_sync(height, payload, certificate),
        }
        if self.started {
            loop {
                self.step();
                if !self.decided {
                    break;
                }
                self.advance_height();
            }
        }
        Ready {
            persist: self.take_persist(),
            actions: std::mem::take(&mut self.actions),
        }
    }

    // ----- inputs -------------------------------------------------------------------

    fn on_start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        // Resume: count and re-send exactly what we signed at this (height, round) before
        // the restart. Re-sending an identical message is always safe.
        if self.persisted.height == self.height && self.persisted.round == self.round {
            for message in self.persisted.signed.clone() {
                self.apply_own(&message);
                self.actions.push(Action::Broadcast(message));
            }
        }
        // No new round change: a lock taken in this round cannot go into a round change
        // for this same round, and the one sent before the restart was just re-sent.
        let round = self.round;
        self.enter_round(round, false);
    }

    fn on_message(&mut self, message: SignedMessage) {
        let height = message.message.height();
        if height < self.height {
            self.metrics.old_height = self.metrics.old_height.saturating_add(1);
            return;
        }
        let signer = match message.verify(&self.validators, &mut *self.verifier) {
            Ok(signer) => signer,
            Err(error) => {
                self.count_invalid(&error);
                return;
            }
        };
        if signer == self.me {
            // Our own message echoed or replayed: we already counted it.
            self.metrics.duplicates = self.metrics.duplicates.saturating_add(1);
            return;
        }
        if height > self.height {
            self.note_ahead(signer, height);
            self.buffer(signer, height, message);
            return;
        }
        self.apply(signer, message);
    }

    fn on_timeout(&mut self, height: Height, round: Round) {
        if !self.started || height != self.height || round != self.round || self.decided {
            return; // stale timer
        }
        self.metrics.timeouts = self.metrics.timeouts.saturating_add(1);
        // A round that times out while some validator is at a higher height may be stuck
        // for want of the validators that already moved on: ask for the missing blocks.
        // One signer suffices here (the certificates fetched prove themselves), and the
        // request is rate-limited by the round timeout.
        if self.validators_ahead() > 0 {
            self.request_sync();
        }
        // QBFT: on round timeout, move to the next round and broadcast ROUND-CHANGE.
        self.enter_round(round.saturating_add(1), true);
    }

    fn on_retransmit(&mut self, height: Height, round: Round) {
        if !self.started || height != self.height || round != self.round || self.decided {
            return; // stale timer
        }
        if self.persisted.height == height && self.persisted.round == round {
            for message in self.persisted.signed.clone() {
                self.metrics.retransmissions = self.metrics.retransmissions.saturating_add(1);
                self.actions.push(Action::Broadcast(message));
            }
        }
        self.retransmits = self.retransmits.saturating_add(1);
        self.set_retransmit_timer();
    }

    /// Re-sends back off within a round (×2 each time, at most ×16): a round that stays
    /// stuck — a partition, a dead peer — costs a few re-sends of its messages (a proposal's
    /// payload may be megabytes), not one every interval until the round times out.
    fn set_retransmit_timer(&mut self) {
        if self.config.retransmit_interval_ms > 0 {
            let after_ms = self
                .config
                .retransmit_interval_ms
                .saturating_mul(1u64 << self.retransmits.min(4));
            self.actions.push(Action::SetTimer {
                height: self.height,
                round: self.round,
                kind: TimerKind::Retransmit,
                after_ms,
            });
        }
    }

    fn on_proposal_ready(&mut self, height: Height, round: Round, payload: Vec<u8>) {
        if height != self.height
            || round != self.round
            || self.decided
            || self.validators.proposer(height, round) != self.me
            || self.proposals.contains_key(&round)
        {
            return;
        }
        let justification = if round == 0 {
            Vec::new()
        } else {
            let justification = self.round_change_justification(round);
            if justification.len() < self.validators.quorum() {
                return;
            }
            // QBFT: a prepared payload among the round changes takes precedence over
            // anything the application built.
            if highest_prepared(justification.iter().map(|s| &s.round_change)).is_some() {
                return;
            }
            justification
        };
        self.validity.insert(Digest::of(&payload), Validity::Valid);
        self.propose(payload, justification);
    }

    fn on_sync(&mut self, height: Height, payload: Vec<u8>, certificate: CommitCertificate) {
        if height != self.height || self.decided {
            return;
        }
        let digest = Digest::of(&payload);
        if certificate
            .verify_with(&self.validators, height, &digest, &mut *self.verifier)
            .is_err()
        {
            self.metrics.invalid_certificates = self.metrics.invalid_certificates.saturating_add(1);
            return;
        }
        self.metrics.heights_synced = self.metrics.heights_synced.saturating_add(1);
        self.actions.push(Action::Committed {
            height,
            payload,
            certificate,
        });
        self.decided = true;
    }

    #[allow(clippy::expect_used)] // one height per decided block: 2^64 are never decided
    fn advance_height(&mut self) {
        self.height = self
            .height
            .checked_add(1)
            .expect("heights grow by one per decided block");
        self.round = 0;
        self.retransmits = 0;
        self.decided = false;
        self.votes = VoteKeeper::default();
        self.proposals.clear();
        self.validity.clear();
        self.proposal_requested = false;
        self.sync_requested = false;
        self.helped.clear();
        self.future = self.future.split_off(&self.height);
        let height = self.height;
        self.ahead.retain(|_, seen| *seen > height);
        self.enter_round(0, false);
        if let Some(buffered) = self.future.remove(&height) {
            for (signer, message) in buffered {
                self.apply(signer, message);
            }
        }
    }

    fn note_ahead(&mut self, signer: usize, height: Height) {
        let seen = self.ahead.entry(signer).or_insert(height);
        *seen = (*seen).max(height);
        if !self.sync_requested && self.validators_ahead() >= self.validators.weak_quorum() {
            self.request_sync();
        }
    }

    fn validators_ahead(&self) -> usize {
        self.ahead
            .values()
            .filter(|seen| **seen > self.height)
            .count()
    }

    fn request_sync(&mut self) {
        self.sync_requested = true;
        self.metrics.sync_requests = self.metrics.sync_requests.saturating_add(1);
        self.actions.push(Action::SyncNeeded {
            height: self.height,
        });
    }

    fn buffer(&mut self, signer: usize, height: Height, message: SignedMessage) {
        if height > self.height.saturating_add(self.config.future_height_window) {
            self.metrics.future_dropped = self.metrics.future_dropped.saturating_add(1);
            return;
        }
        let queue = self.future.entry(height).or_default();
        let from_signer = queue.iter().filter(|(s, _)| *s == signer).count();
        if from_signer >= self.config.max_buffered_per_validator {
            self.metrics.future_dropped = self.metrics.future_dropped.saturating_add(1);
            return;
        }
        self.metrics.future_buffered = self.metrics.future_buffered.saturating_add(1);
        queue.push((signer, message));
    }
}

/// Validates a persisted state read back from disk (TigerBeetle: check after reading).
fn check_persisted(
    state: &PersistedState,
    validators: &ValidatorSet,
    me: &PublicKey,
) -> Result<(), EngineError> {
    let invalid = |why: String| Err(EngineError::InvalidPersistedState(why));
    if let Some(lock) = &state.lock {
        if lock.vote.height != state.height || lock.vote.round > state.round {
            return invalid("lock is not below the guard".into());
        }
        if let Err(error) = lock.verify(validators) {
            return invalid(format!("lock: {error}"));
        }
        match &state.lock_payload {
            Some(payload) if Digest::of(payload) == lock.vote.digest => {}
            _ => return invalid("lock payload does not match the lock".into()),
        }
    }
    let mut kinds = Vec::new();
    for signed in &state.signed {
        if signed.signer != *me
            || signed.message.height() != state.height
            || signed.message.round() != state.round
        {
            return invalid("signed message is not ours at the guard".into());
        }
        if kinds.contains(&signed.message.kind()) {
            return invalid("two signed messages of one kind".into());
        }
        kinds.push(signed.message.kind());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
