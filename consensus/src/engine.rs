//! The engine: the height/round driver and the round state machine (PBFT three-phase
//! commit per height, QBFT round change), as a pure function of its inputs.
//!
//! The host calls [`Engine::handle`] with one [`Input`] and executes the returned
//! [`Action`]s **in order**. Ordering is the persistence contract: every
//! [`Action::PersistState`] must be durable (synchronously) before any later action in
//! the same list is executed, in particular before the [`Action::Broadcast`] of a COMMIT
//! that the new lock guards ("save first, then speak").
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

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::message::{
    highest_prepared, CommitCertificate, Message, MessageError, MessageKind, PreparedCertificate,
    Proposal, RoundChange, SignatureVerifier, SignedMessage, SignedRoundChange, StrictVerifier,
    Vote,
};
use crate::types::{Digest, Height, PublicKey, Round, ValidatorSet};
use crate::votes::{Added, VoteKeeper};

/// Engine parameters. Every limit has a name and a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Timeout of round 0. Round `r` waits `round_timeout_base_ms * 2^min(r, cap)`.
    pub round_timeout_base_ms: u64,
    /// The cap on doublings of the round timeout.
    pub round_timeout_max_doublings: u32,
    /// While a round is undecided, the messages signed in it are re-sent this often (the
    /// network may lose messages; an identical re-send is always safe).
    pub retransmit_interval_ms: u64,
    /// PREPAREs and COMMITs are kept for rounds within this distance of the current round;
    /// others are dropped (bounds memory against a flood of far-off rounds).
    pub round_window: Round,
    /// Messages for heights up to this far ahead are buffered until the engine gets there.
    pub future_height_window: Height,
    /// At most this many buffered messages per validator per future height.
    pub max_buffered_per_validator: usize,
    /// At most this many pieces of equivocation evidence are kept (the oldest go first).
    pub max_evidence: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            round_timeout_base_ms: 1_000,
            round_timeout_max_doublings: 6,
            retransmit_interval_ms: 500,
            round_window: 8,
            future_height_window: 4,
            max_buffered_per_validator: 16,
            max_evidence: 64,
        }
    }
}

impl Config {
    /// How long round `round` lasts before a round change.
    pub fn round_timeout_ms(&self, round: Round) -> u64 {
        let doublings = round.min(self.round_timeout_max_doublings).min(32);
        self.round_timeout_base_ms.saturating_mul(1u64 << doublings)
    }
}

/// What a validator must keep on durable storage to restart safely.
///
/// It holds the *signing guard* — the highest `(height, round)` the validator signed at and
/// every message it signed there — and the *lock* (its highest prepared certificate at that
/// height, with the payload). A restarted validator never signs below the guard, and at the
/// guard it only ever re-sends the exact messages listed here, so it never signs two
/// different digests for one height and round. The lock makes its later ROUND-CHANGEs
/// carry what it prepared, which is what QBFT's safety argument needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Height of the guard and of the lock.
    pub height: Height,
    /// Round of the guard.
    pub round: Round,
    /// Highest prepared certificate at `height`.
    pub lock: Option<PreparedCertificate>,
    /// Payload of the lock.
    pub lock_payload: Option<Vec<u8>>,
    /// Messages signed at `(height, round)`, at most one per kind.
    pub signed: Vec<SignedMessage>,
}

impl PersistedState {
    fn fresh(height: Height) -> PersistedState {
        PersistedState {
            height,
            round: 0,
            lock: None,
            lock_payload: None,
            signed: Vec::new(),
        }
    }
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// The round's timeout: on expiry the validator moves to the next round.
    Round,
    /// Re-send what was signed in the round ([`Config::retransmit_interval_ms`]).
    Retransmit,
}

/// An event for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin (or resume, after a restart) at the start height. Call once, first.
    Start {
        /// The host's clock (informational).
        now_ms: u64,
    },
    /// A message from the network (decoded, not yet verified: the engine verifies it).
    Message(SignedMessage),
    /// A timer set by [`Action::SetTimer`] fired.
    Timeout {
        /// Height of the timer.
        height: Height,
        /// Round of the timer.
        round: Round,
        /// Kind of the timer.
        kind: TimerKind,
        /// The host's clock (informational).
        now_ms: u64,
    },
    /// The payload the application built after [`Action::RequestProposal`].
    ProposalReady {
        /// Height requested.
        height: Height,
        /// Round requested.
        round: Round,
        /// The payload.
        payload: Vec<u8>,
    },
    /// The application's verdict after [`Action::ValidatePayload`].
    ValidationResult {
        /// Height of the proposal.
        height: Height,
        /// Round of the proposal.
        round: Round,
        /// Digest of the payload validated.
        digest: Digest,
        /// Whether the application accepts it.
        valid: bool,
    },
    /// A committed block the host fetched from a peer (after [`Action::SyncNeeded`]). The
    /// engine verifies the certificate; if valid and for its current height, it answers
    /// with [`Action::Committed`] like any decision and moves on.
    CommittedViaSync {
        /// Height of the block.
        height: Height,
        /// The payload.
        payload: Vec<u8>,
        /// Its commit certificate.
        certificate: CommitCertificate,
    },
}

/// An effect for the host to execute, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send to every other validator.
    Broadcast(SignedMessage),
    /// Send to one validator (by index in the validator set).
    SendTo {
        /// Index of the recipient.
        validator: usize,
        /// The message.
        message: SignedMessage,
    },
    /// Call back with [`Input::Timeout`] for `(height, round)` after `after_ms`. A newer
    /// timer does not cancel older ones; the engine ignores stale timeouts.
    SetTimer {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Kind (passed back in the timeout).
        kind: TimerKind,
        /// Delay from now.
        after_ms: u64,
    },
    /// Make this state durable **before executing any later action**.
    PersistState(PersistedState),
    /// Build a payload and answer with [`Input::ProposalReady`].
    RequestProposal {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// Validate a proposed payload and answer with [`Input::ValidationResult`].
    ValidatePayload {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// The payload.
        payload: Vec<u8>,
    },
    /// `payload` is final at `height`; store it with its certificate and apply it.
    Committed {
        /// Height.
        height: Height,
        /// The payload.
        payload: Vec<u8>,
        /// Proof of finality.
        certificate: CommitCertificate,
    },
    /// This validator is behind: `f + 1` validators were seen at higher heights, or a round
    /// timed out while any validator was at a higher height, or a quorum committed a
    /// payload it never received. Fetch committed blocks from `height` on (from any peer;
    /// their certificates prove them) and feed them as [`Input::CommittedViaSync`].
    SyncNeeded {
        /// The first height this validator lacks.
        height: Height,
    },
}

/// Two conflicting messages signed by one validator: self-contained proof of equivocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The message seen first.
    pub first: SignedMessage,
    /// The conflicting message.
    pub second: SignedMessage,
}

/// Counters for logs and metrics export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Network messages handled.
    pub messages_received: u64,
    /// Heights decided by this engine's own quorum of COMMITs.
    pub heights_committed: u64,
    /// Heights accepted through sync.
    pub heights_synced: u64,
    /// Rounds entered above round 0.
    pub round_changes: u64,
    /// Round timeouts that fired.
    pub timeouts: u64,
    /// Messages re-sent by the retransmission timer.
    pub retransmissions: u64,
    /// Jumps to a higher round (f+1 rule or justified future proposal).
    pub round_jumps: u64,
    /// Conflicting messages from one signer.
    pub equivocations: u64,
    /// Signatures that did not verify.
    pub invalid_signatures: u64,
    /// Messages from keys outside the validator set.
    pub unknown_signers: u64,
    /// Validly signed but invalid messages (wrong proposer, bad justification, ...).
    pub invalid_messages: u64,
    /// Messages already seen.
    pub duplicates: u64,
    /// Messages for heights already decided.
    pub old_height: u64,
    /// Messages for rounds already left (outside the window, or stale round changes).
    pub old_round: u64,
    /// Messages buffered for a future height.
    pub future_buffered: u64,
    /// Messages for a future height or round dropped (buffer full, too far).
    pub future_dropped: u64,
    /// Sync certificates that did not verify.
    pub invalid_certificates: u64,
    /// Times the signing guard refused to sign something different from what was signed.
    pub refused_signatures: u64,
    /// [`Action::SyncNeeded`] emitted.
    pub sync_requests: u64,
}

/// Why an engine cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// The signing key is not in the validator set.
    #[error("key {0} is not a validator")]
    NotAValidator(PublicKey),
    /// Height 0 is genesis.
    #[error("consensus starts at height 1")]
    HeightZero,
    /// The persisted state read back from disk is inconsistent.
    #[error("persisted state is invalid: {0}")]
    InvalidPersistedState(String),
}

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

    /// Signing guard and lock.
    persisted: PersistedState,
    /// New signatures not yet in a `PersistState` action.
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

    /// Handles one input and returns the actions to execute, in order (see the module
    /// documentation for the persistence contract).
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Start { .. } => self.on_start(),
            Input::Message(message) => {
                self.metrics.messages_received += 1;
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
                digest,
                valid,
                ..
            } => {
                if height == self.height {
                    let verdict = if valid {
                        Validity::Valid
                    } else {
                        Validity::Invalid
                    };
                    self.validity.insert(digest, verdict);
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
        if self.dirty {
            self.persist();
        }
        std::mem::take(&mut self.actions)
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
            self.metrics.old_height += 1;
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
            self.metrics.duplicates += 1;
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
        self.metrics.timeouts += 1;
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
                self.metrics.retransmissions += 1;
                self.actions.push(Action::Broadcast(message));
            }
        }
        self.set_retransmit_timer();
    }

    fn set_retransmit_timer(&mut self) {
        if self.config.retransmit_interval_ms > 0 {
            self.actions.push(Action::SetTimer {
                height: self.height,
                round: self.round,
                kind: TimerKind::Retransmit,
                after_ms: self.config.retransmit_interval_ms,
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
            self.metrics.invalid_certificates += 1;
            return;
        }
        self.metrics.heights_synced += 1;
        self.actions.push(Action::Committed {
            height,
            payload,
            certificate,
        });
        self.decided = true;
    }

    // ----- verified messages at the current height ----------------------------------

    fn apply(&mut self, signer: usize, message: SignedMessage) {
        match &message.message {
            Message::Proposal(_) => self.on_proposal(message),
            Message::Prepare(vote) => {
                let vote = *vote;
                self.on_vote(MessageKind::Prepare, vote, signer, message)
            }
            Message::Commit(vote) => {
                let vote = *vote;
                self.on_vote(MessageKind::Commit, vote, signer, message)
            }
            Message::RoundChange { .. } => self.on_round_change(signer, message),
        }
    }

    fn on_proposal(&mut self, message: SignedMessage) {
        let Message::Proposal(proposal) = &message.message else {
            return;
        };
        let round = proposal.round;
        let digest = Digest::of(&proposal.payload);
        if let Some(existing) = self.proposals.get(&round) {
            if existing.digest == digest {
                self.metrics.duplicates += 1;
            } else {
                let first = existing.message.clone();
                self.record_equivocation(first, message);
            }
            return;
        }
        if round.saturating_add(self.config.round_window) < self.round {
            self.metrics.old_round += 1;
            return;
        }
        if round > self.round {
            // The proposal's justification (checked in `verify`) proves a quorum moved to
            // this round: follow it (QBFT, future-round proposal).
            self.metrics.round_jumps += 1;
            self.enter_round(round, false);
        }
        self.accept_proposal(round, digest, message);
    }

    fn accept_proposal(&mut self, round: Round, digest: Digest, message: SignedMessage) {
        if round == self.round && !self.validity.contains_key(&digest) {
            if let Message::Proposal(proposal) = &message.message {
                self.validity.insert(digest, Validity::Pending);
                self.actions.push(Action::ValidatePayload {
                    height: self.height,
                    round,
                    payload: proposal.payload.clone(),
                });
            }
        }
        self.proposals
            .insert(round, AcceptedProposal { digest, message });
    }

    fn on_vote(&mut self, kind: MessageKind, vote: Vote, signer: usize, message: SignedMessage) {
        if vote.round.saturating_add(self.config.round_window) < self.round {
            self.metrics.old_round += 1;
            return;
        }
        if vote.round > self.round.saturating_add(self.config.round_window) {
            self.metrics.future_dropped += 1;
            return;
        }
        match self
            .votes
            .add_vote(kind, vote, signer, message.signature, &self.validators)
        {
            Added::New => {}
            Added::Duplicate | Added::Stale => self.metrics.duplicates += 1,
            Added::Conflict(first) => self.record_equivocation(*first, message),
        }
    }

    fn on_round_change(&mut self, signer: usize, message: SignedMessage) {
        let Message::RoundChange {
            round_change,
            prepared_payload,
        } = &message.message
        else {
            return;
        };
        if round_change.round < self.round {
            self.metrics.old_round += 1;
            // The sender is behind: answer with our own round change, once per round, so
            // that with f others it can apply the f+1 rule even if broadcasts were lost.
            self.help(signer);
            return;
        }
        let signed = SignedRoundChange {
            round_change: round_change.clone(),
            signer: message.signer,
            signature: message.signature,
        };
        match self
            .votes
            .add_round_change(signer, signed, prepared_payload.clone())
        {
            Added::New => {}
            Added::Duplicate | Added::Stale => self.metrics.duplicates += 1,
            Added::Conflict(first) => self.record_equivocation(*first, message),
        }
    }

    fn help(&mut self, validator: usize) {
        if self.helped.contains(&validator) {
            return;
        }
        let own = self.signed_at_current(MessageKind::RoundChange).cloned();
        if let Some(message) = own {
            self.helped.push(validator);
            self.actions.push(Action::SendTo { validator, message });
        }
    }

    // ----- the round state machine --------------------------------------------------

    /// Applies every rule whose condition holds, until none does.
    fn step(&mut self) {
        loop {
            if self.decided {
                return;
            }
            // PBFT committed-local: a quorum of COMMITs for one (round, digest), any round.
            if let Some((round, digest)) = self.votes.committed(self.validators.quorum()) {
                self.decide(round, digest);
                return;
            }
            // QBFT f+1 rule.
            if let Some(target) = self.round_to_jump_to() {
                self.metrics.round_jumps += 1;
                self.enter_round(target, true);
                continue;
            }
            self.maybe_propose();
            if self.maybe_prepare() || self.maybe_commit() {
                continue;
            }
            return;
        }
    }

    fn enter_round(&mut self, round: Round, send_round_change: bool) {
        assert!(round >= self.round, "rounds never go backwards");
        if round > 0 && (round > self.round || send_round_change) {
            self.metrics.round_changes += 1;
        }
        self.round = round;
        self.proposal_requested = false;
        self.helped.clear();
        let floor = round.saturating_sub(self.config.round_window);
        self.votes.prune_below(floor);
        self.proposals = self.proposals.split_off(&floor);
        self.actions.push(Action::SetTimer {
            height: self.height,
            round,
            kind: TimerKind::Round,
            after_ms: self.config.round_timeout_ms(round),
        });
        self.set_retransmit_timer();
        if send_round_change {
            // QBFT: the round change carries our lock (highest prepared certificate).
            let lock = self.lock().cloned();
            let lock_payload = lock.as_ref().and(self.persisted.lock_payload.clone());
            let message = Message::RoundChange {
                round_change: RoundChange {
                    height: self.height,
                    round,
                    prepared: lock,
                },
                prepared_payload: lock_payload,
            };
            self.sign_and_broadcast(message);
        }
    }

    /// QBFT f+1 rule: the highest round that at least `f + 1` validators' latest round
    /// changes reached, if above ours.
    fn round_to_jump_to(&self) -> Option<Round> {
        let mut rounds = self.votes.rounds_above(self.round);
        let needed = self.validators.weak_quorum();
        if rounds.len() < needed {
            return None;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        Some(rounds[needed - 1])
    }

    fn maybe_propose(&mut self) {
        let round = self.round;
        if self.validators.proposer(self.height, round) != self.me
            || self.proposals.contains_key(&round)
            || self.signed_at_current(MessageKind::Proposal).is_some()
        {
            return;
        }
        if round == 0 {
            self.request_proposal();
            return;
        }
        // QBFT: propose in round r > 0 only with a quorum of round changes for r.
        let justification = self.round_change_justification(round);
        if justification.len() < self.validators.quorum() {
            return;
        }
        let prepared = highest_prepared(justification.iter().map(|s| &s.round_change))
            .map(|cert| cert.vote.digest);
        match prepared {
            // Re-propose the highest prepared payload.
            Some(digest) => match self.payload_of(&digest) {
                Some(payload) => self.propose(payload, justification),
                None => unreachable!("verified round changes carry their prepared payload"),
            },
            None => self.request_proposal(),
        }
    }

    fn request_proposal(&mut self) {
        if !self.proposal_requested {
            self.proposal_requested = true;
            self.actions.push(Action::RequestProposal {
                height: self.height,
                round: self.round,
            });
        }
    }

    fn round_change_justification(&self, round: Round) -> Vec<SignedRoundChange> {
        self.votes
            .round_changes_for(round)
            .map(|stored| stored.signed.clone())
            .collect()
    }

    fn propose(&mut self, payload: Vec<u8>, justification: Vec<SignedRoundChange>) {
        let message = Message::Proposal(Proposal {
            height: self.height,
            round: self.round,
            payload,
            justification,
        });
        self.sign_and_broadcast(message);
    }

    /// PBFT prepare: the accepted proposal of this round is valid and we have not
    /// prepared yet.
    fn maybe_prepare(&mut self) -> bool {
        let Some(digest) = self.current_valid_proposal() else {
            return false;
        };
        if self.signed_at_current(MessageKind::Prepare).is_some() {
            return false;
        }
        self.sign_and_broadcast(Message::Prepare(Vote {
            height: self.height,
            round: self.round,
            digest,
        }))
    }

    /// PBFT prepared → commit: lock first (persisted before the COMMIT goes out).
    fn maybe_commit(&mut self) -> bool {
        let Some(digest) = self.current_valid_proposal() else {
            return false;
        };
        let quorum = self.validators.quorum();
        if self.signed_at_current(MessageKind::Commit).is_some()
            || self.votes.count(MessageKind::Prepare, self.round, &digest) < quorum
        {
            return false;
        }
        let vote = Vote {
            height: self.height,
            round: self.round,
            digest,
        };
        let mut signatures = self.votes.certificate_signatures(
            MessageKind::Prepare,
            self.round,
            &digest,
            &self.validators,
        );
        signatures.truncate(quorum);
        let payload = self.payload_of(&digest);
        self.guard_at_current_height();
        if let Some(lock) = &self.persisted.lock {
            assert!(
                lock.vote.round <= vote.round,
                "a lock never moves to a lower round"
            );
        }
        self.persisted.lock = Some(PreparedCertificate { vote, signatures });
        self.persisted.lock_payload = payload;
        self.dirty = true;
        self.sign_and_broadcast(Message::Commit(vote))
    }

    fn current_valid_proposal(&self) -> Option<Digest> {
        let proposal = self.proposals.get(&self.round)?;
        (self.validity.get(&proposal.digest) == Some(&Validity::Valid)).then_some(proposal.digest)
    }

    fn decide(&mut self, round: Round, digest: Digest) {
        let Some(payload) = self.payload_of(&digest) else {
            // A quorum committed a proposal we never received: fetch the block.
            if !self.sync_requested {
                self.request_sync();
            }
            return;
        };
        let mut signatures = self.votes.certificate_signatures(
            MessageKind::Commit,
            round,
            &digest,
            &self.validators,
        );
        signatures.truncate(self.validators.quorum());
        assert!(
            signatures.len() >= self.validators.quorum(),
            "a decision needs a quorum of distinct COMMITs"
        );
        let certificate = CommitCertificate {
            vote: Vote {
                height: self.height,
                round,
                digest,
            },
            signatures,
        };
        self.metrics.heights_committed += 1;
        self.actions.push(Action::Committed {
            height: self.height,
            payload,
            certificate,
        });
        self.decided = true;
    }

    fn advance_height(&mut self) {
        self.height += 1;
        self.round = 0;
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

    // ----- helpers -------------------------------------------------------------------

    fn payload_of(&self, digest: &Digest) -> Option<Vec<u8>> {
        for accepted in self.proposals.values() {
            if accepted.digest == *digest {
                if let Message::Proposal(proposal) = &accepted.message.message {
                    return Some(proposal.payload.clone());
                }
            }
        }
        if let Some(payload) = self.votes.payload_for(digest) {
            return Some(payload.clone());
        }
        match (self.lock(), &self.persisted.lock_payload) {
            (Some(lock), Some(payload)) if lock.vote.digest == *digest => Some(payload.clone()),
            _ => None,
        }
    }

    /// The message of `kind` we signed at the current `(height, round)`, if any.
    fn signed_at_current(&self, kind: MessageKind) -> Option<&SignedMessage> {
        if self.persisted.height != self.height || self.persisted.round != self.round {
            return None;
        }
        self.persisted
            .signed
            .iter()
            .find(|message| message.message.kind() == kind)
    }

    fn guard_at_current_height(&mut self) {
        if self.persisted.height < self.height {
            self.persisted = PersistedState::fresh(self.height);
        }
    }

    /// The signing guard (Aptos safety rules, CometBFT privval): never sign below the
    /// highest `(height, round)` signed at, and at that point only re-send what was
    /// signed. Returns the message to send, or `None` if signing is refused.
    fn sign(&mut self, message: Message) -> Option<SignedMessage> {
        let key = (message.height(), message.round());
        let guard = (self.persisted.height, self.persisted.round);
        if key < guard {
            self.metrics.refused_signatures += 1;
            return None;
        }
        if key == guard {
            let existing = self
                .persisted
                .signed
                .iter()
                .find(|signed| signed.message.kind() == message.kind());
            if let Some(existing) = existing {
                if existing.message.signing_hash() != message.signing_hash() {
                    self.metrics.refused_signatures += 1;
                }
                return Some(existing.clone());
            }
        } else {
            if key.0 > self.persisted.height {
                self.persisted = PersistedState::fresh(key.0);
            }
            self.persisted.round = key.1;
            self.persisted.signed.clear();
        }
        let signed = message.sign(&self.signing_key);
        self.persisted.signed.push(signed.clone());
        self.dirty = true;
        Some(signed)
    }

    fn sign_and_broadcast(&mut self, message: Message) -> bool {
        let Some(signed) = self.sign(message) else {
            return false;
        };
        if self.dirty {
            self.persist();
        }
        self.apply_own(&signed);
        self.actions.push(Action::Broadcast(signed));
        true
    }

    fn persist(&mut self) {
        self.dirty = false;
        self.actions
            .push(Action::PersistState(self.persisted.clone()));
    }

    /// Counts a message we signed, as any other validator's.
    fn apply_own(&mut self, signed: &SignedMessage) {
        match &signed.message {
            Message::Proposal(proposal) => {
                if !self.proposals.contains_key(&proposal.round) {
                    let digest = Digest::of(&proposal.payload);
                    self.accept_proposal(proposal.round, digest, signed.clone());
                }
            }
            Message::Prepare(vote) => {
                self.votes.add_vote(
                    MessageKind::Prepare,
                    *vote,
                    self.me,
                    signed.signature,
                    &self.validators,
                );
            }
            Message::Commit(vote) => {
                self.votes.add_vote(
                    MessageKind::Commit,
                    *vote,
                    self.me,
                    signed.signature,
                    &self.validators,
                );
            }
            Message::RoundChange {
                round_change,
                prepared_payload,
            } => {
                let own = SignedRoundChange {
                    round_change: round_change.clone(),
                    signer: signed.signer,
                    signature: signed.signature,
                };
                self.votes
                    .add_round_change(self.me, own, prepared_payload.clone());
            }
        }
    }

    fn record_equivocation(&mut self, first: SignedMessage, second: SignedMessage) {
        self.metrics.equivocations += 1;
        if self.config.max_evidence == 0 {
            return;
        }
        if self.evidence.len() >= self.config.max_evidence {
            self.evidence.remove(0);
        }
        self.evidence.push(Evidence { first, second });
    }

    fn count_invalid(&mut self, error: &MessageError) {
        match error {
            MessageError::UnknownSigner(_) => self.metrics.unknown_signers += 1,
            MessageError::BadSignature(_) => self.metrics.invalid_signatures += 1,
            _ => self.metrics.invalid_messages += 1,
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
        self.metrics.sync_requests += 1;
        self.actions.push(Action::SyncNeeded {
            height: self.height,
        });
    }

    fn buffer(&mut self, signer: usize, height: Height, message: SignedMessage) {
        if height > self.height.saturating_add(self.config.future_height_window) {
            self.metrics.future_dropped += 1;
            return;
        }
        let queue = self.future.entry(height).or_default();
        let from_signer = queue.iter().filter(|(s, _)| *s == signer).count();
        if from_signer >= self.config.max_buffered_per_validator {
            self.metrics.future_dropped += 1;
            return;
        }
        self.metrics.future_buffered += 1;
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
#[path = "engine_tests.rs"]
mod tests;
