//! The engine's interface: its configuration, inputs, actions, persisted state,
//! evidence and counters.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::message::{CommitCertificate, PreparedCertificate, SignedMessage};
use crate::types::{Digest, Height, PublicKey, Round};

/// Engine parameters. Every limit has a name and a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Timeout of round 0. Round `r` waits `round_timeout_base_ms * 2^min(r, cap)`.
    pub round_timeout_base_ms: u64,
    /// The cap on doublings of the round timeout.
    pub round_timeout_max_doublings: u32,
    /// While a round is undecided, the messages signed in it are re-sent after this long,
    /// then after twice as long, and so on up to 16 times as long (the network may lose
    /// messages; an identical re-send is always safe; a stuck round must not flood).
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
    #[serde(with = "crate::types::byte_string::option")]
    pub lock_payload: Option<Vec<u8>>,
    /// Messages signed at `(height, round)`, at most one per kind.
    pub signed: Vec<SignedMessage>,
}

impl PersistedState {
    pub(crate) fn fresh(height: Height) -> PersistedState {
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

/// What one call of [`Engine::handle`](super::Engine::handle) asks of the host, in the
/// spirit of raft-rs's `Ready`: the state to make durable, apart from the effects that may
/// only happen once it is.
///
/// "Save first, then speak" is the type's shape rather than an ordering convention inside a
/// list: the host writes `persist` (synchronously) and only then executes `actions`, in
/// order. `persist` is the engine's whole state at the end of the call, so it covers every
/// message in `actions`, and a later `Ready`'s state is never older than an earlier one's:
/// a host that persists each `Ready` before its actions can never move the state on disk
/// backwards, however it interleaves the answers it feeds back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use = "the state must be persisted and the actions executed"]
pub struct Ready {
    /// Make this durable before executing any of `actions` (`None`: nothing new to save).
    pub persist: Option<PersistedState>,
    /// Effects to execute in order, after `persist` is durable.
    pub actions: Vec<Action>,
}

impl Ready {
    /// True if there is nothing to persist and nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_none() && self.actions.is_empty()
    }
}

impl std::ops::Deref for Ready {
    type Target = [Action];

    fn deref(&self) -> &[Action] {
        &self.actions
    }
}

impl IntoIterator for Ready {
    type Item = Action;
    type IntoIter = std::vec::IntoIter<Action>;

    /// The actions only: for callers that have already taken `persist`.
    fn into_iter(self) -> Self::IntoIter {
        self.actions.into_iter()
    }
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
        /// Proof of finality; its vote names `payload`'s digest (the engine gathered it for
        /// this payload, or checked it against the payload's digest).
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
