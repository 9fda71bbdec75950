//! Interpool's consensus: PBFT three-phase commit per height with QBFT-style round
//! change, as a pure state machine, plus the deterministic simulator that attacks it.
//!
//! # The protocol
//!
//! A fixed, ordered [`ValidatorSet`] of `n ≥ 1` validators tolerates `f = ⌊(n−1)/3⌋`
//! byzantine ones (none below four); every quorum is `⌊2n/3⌋ + 1` ([`ValidatorSet::quorum`]). The engine
//! orders opaque payloads (blocks, for the node) identified by their SHA-256 [`Digest`],
//! one per height. In round `r` of height `h` the proposer is
//! `validators[(h + r) mod n]`.
//!
//! **Normal case (PBFT §4.2).** The proposer broadcasts a PROPOSAL with the payload. Each
//! validator asks the application to validate it and, if valid, broadcasts PREPARE for its
//! digest. A quorum of matching PREPAREs makes a validator *prepared*: it **locks** the
//! payload — the quorum of PREPARE signatures is its *prepared certificate* — and persists
//! the lock before it broadcasts COMMIT. A quorum of COMMITs for one `(h, r, digest)`
//! decides the height; those COMMIT signatures form the [`CommitCertificate`], which anyone
//! holding the validator set can check with [`CommitCertificate::verify`].
//!
//! **Round change (QBFT).** If round `r` does not decide before its timer fires (timeouts
//! grow with the round, [`Config::round_timeout_ms`]), a validator moves to `r + 1` and
//! broadcasts a ROUND-CHANGE carrying its lock. The proposer of `r + 1` waits for a quorum
//! of round changes for `r + 1`. If any carries a prepared certificate it must re-propose
//! the payload of the one with the highest prepared round; otherwise it proposes afresh.
//! The round changes travel with the proposal as its *justification*, and a proposal for
//! `r > 0` without a valid justification is rejected. A validator that sees round changes
//! from `f + 1` validators for higher rounds jumps to the highest round `f + 1` of them
//! reached, so a lagging validator cannot hold back the others' rounds.
//!
//! **Why it is safe.** If a payload `v` is decided in round `r`, a quorum committed it, so
//! at least `f + 1` honest validators locked `v` in round `r` before sending anything for
//! a later round. Any quorum of round changes for a later round includes one of them, so
//! the highest prepared certificate in every valid justification is for `v` (by induction
//! over rounds), and no other payload can be prepared, let alone decided, at that height.
//! Two quorums intersect in at least one honest validator, who never signs two different
//! digests for one height and round — also across restarts, thanks to the
//! [`PersistedState`] it saves before speaking.
//!
//! **Catching up.** A validator that sees `f + 1` validators at higher heights, times out
//! while any validator is at a higher height, or sees a quorum of COMMITs for a payload it
//! never received, emits [`Action::SyncNeeded`]; the host fetches committed blocks with
//! certificates and feeds them back as [`Input::CommittedViaSync`]. Messages for slightly
//! higher heights are buffered (bounded). While a round is undecided, a validator re-sends
//! what it signed in it every [`Config::retransmit_interval_ms`], so lost messages do not
//! cost whole rounds.
//!
//! # Using the engine
//!
//! [`Engine::handle`] takes one [`Input`] and returns a [`Ready`]: a [`PersistedState`] that
//! must be durable before anything else happens, and [`Action`]s that the host then executes
//! **in order**.
//! The engine has no I/O, clock or randomness: time arrives in timer inputs, timers leave
//! as actions. Every message is verified ([`SignedMessage::verify`]) before it counts;
//! invalid, duplicate, stale and equivocating messages are ignored and counted in
//! [`Metrics`], and equivocations are kept as [`Evidence`].
//!
//! # References
//!
//! * M. Castro, B. Liskov, "Practical Byzantine Fault Tolerance", OSDI 1999.
//! * Hyperledger Besu / EEA, "QBFT Blockchain Consensus Protocol Specification" (round
//!   change and its justification), and H. Moniz, "The Istanbul BFT Consensus Algorithm"
//!   (IBFT 2.0, arXiv:2002.03613).
//!
//! # Modules
//!
//! * [`types`]: digests, keys, signatures, the validator set.
//! * [`message`]: messages, signing, wire encoding, certificates.
//! * `votes`: the vote keeper (private).
//! * [`engine`]: the round state machine and the height/round driver.
//! * `sim` (feature `sim`): the deterministic simulator (network, faults, byzantine
//!   validators, checker); the crate's own tests and examples enable it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// No panics from outside input (STYLE.md §3): a remaining `expect` guards an internal
// invariant and carries an `#[allow]` saying why no message can reach it.
#![deny(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic
    )
)]

pub mod engine;
// The fuzz target's entry function: for `cargo fuzz` (`--cfg fuzzing`) and the corpus replay
// test only. It asserts the properties it checks, on purpose.
#[cfg(any(test, fuzzing))]
#[allow(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
pub mod fuzzing;
pub mod message;
// The simulator is test infrastructure behind a feature the node never enables; it
// panics on purpose when a safety check fails.
#[cfg(feature = "sim")]
#[allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
pub mod sim;
pub mod types;
mod votes;

pub use engine::{
    Action, Config, Engine, EngineError, Evidence, Input, Metrics, PersistedState, Ready, TimerKind,
};
pub use message::{
    message_bound, CertificateError, CommitCertificate, DecodeError, Message, MessageError,
    MessageKind, PreparedCertificate, Proposal, RoundChange, SignatureVerifier, SignedMessage,
    SignedRoundChange, StrictVerifier, Vote, MAX_CERTIFICATE_BYTES, MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
};
pub use types::{
    ChainDomain, Digest, Height, PublicKey, Round, Signature, ValidatorSet, ValidatorSetError,
};
