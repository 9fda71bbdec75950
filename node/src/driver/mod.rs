//! The consensus driver: one task owns the engine and the core (a validator's chain state)
//! and executes the engine's [`Ready`]s.
//!
//! "Save first, then speak" is kept by the shape of [`Ready`]: the driver makes its
//! `persist` durable (a synced write, through [`ConsensusStore`]) before it runs any of its
//! actions, and each `Ready` holds the engine's whole state at the end of the call that
//! produced it. Answers the engine asks for (a proposal, a validation verdict) are fed back
//! as new inputs after the current `Ready`'s actions, each with its own `Ready`: the state
//! on disk only ever moves forward, however the answers interleave.
//!
//! Networking is behind [`ConsensusNetwork`] and the engine's persisted state behind
//! [`ConsensusStore`], so the same driver runs over libp2p and RocksDB in the node and over
//! in-process channels and a recording store in tests.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use interpool_consensus::engine::TimerKind;
use interpool_consensus::{
    Action, CommitCertificate, Digest, Engine, Height, Input, Message, PersistedState, Proposal,
    Ready, Round, SignedMessage, MAX_MESSAGE_BYTES,
};
use interpool_contracts::block::ChainTip;
use interpool_contracts::{codec, AccountId, Hash};
use tokio::sync::{mpsc, Notify};

use crate::app::{ChainError, Core, ProposalContext};
use crate::metrics::{LogThrottle, Metrics};
use crate::storage::ChainStore;

/// Largest persisted engine state read back: its lock payload and the messages it signed.
const MAX_PERSISTED_BYTES: u64 = 4 * MAX_MESSAGE_BYTES as u64;

/// How the driver reaches other validators.
pub trait ConsensusNetwork: Send + Sync + 'static {
    /// Sends an encoded consensus message to every other validator.
    fn broadcast(&self, message: Vec<u8>);
    /// Sends an encoded consensus message to one validator.
    fn send_to(&self, validator: AccountId, message: Vec<u8>);
    /// Asks peers for the committed blocks after `tip`; answers arrive as
    /// [`DriverInput::Synced`], certified and linked to `tip`.
    fn request_blocks(&self, tip: &ChainTip);
}

/// Where the engine's persisted state lives. `save` must be durable when it returns.
pub trait ConsensusStore: Send + 'static {
    /// The state saved before a restart, if any.
    fn load(&mut self) -> Result<Option<PersistedState>, ChainError>;
    /// Saves `state` durably (a synced write).
    fn save(&mut self, state: &PersistedState) -> Result<(), ChainError>;
}

/// The engine's persisted state in the node's store. Payloads (a proposal's, a lock's, a
/// round change's prepared one; up to megabytes each) are stored once, by digest, beside a
/// small state record that refers to them, so a new signature costs a synced write of a
/// few hundred bytes, not of the payloads again.
pub struct DurableConsensus {
    store: Arc<dyn ChainStore>,
    /// Digests of the payloads stored with the current state.
    stored: BTreeSet<[u8; 32]>,
}

/// Marks the state record's format: payloads by digest.
const STATE_FORMAT: &[u8] = b"interpool/consensus-state/v2";

impl DurableConsensus {
    /// The persisted state in `store`.
    pub fn new(store: Arc<dyn ChainStore>) -> Self {
        DurableConsensus {
            store,
            stored: BTreeSet::new(),
        }
    }
}

/// Payloads by digest.
type Payloads<'a> = Vec<([u8; 32], &'a [u8])>;

/// Records `payload` under its digest; returns the digest's bytes to stand in for it.
///
/// The lock's payload is the one its certificate names (the engine sets them together), so
/// its digest is the lock's; a signed proposal or round change usually carries that same
/// payload, found by comparing bytes. Only another payload is hashed: a state is saved at
/// every signature, and hashing a megabyte proposal again each time was 0.5 % of a
/// validator's CPU at full load (issue 12's profile).
fn by_digest<'a>(
    payload: &'a [u8],
    lock: Option<([u8; 32], &[u8])>,
    payloads: &mut Payloads<'a>,
) -> Vec<u8> {
    let digest = match lock {
        Some((digest, locked)) if locked == payload => digest,
        _ => Digest::of(payload).0,
    };
    debug_assert_eq!(digest, Digest::of(payload).0);
    payloads.push((digest, payload));
    digest.to_vec()
}

/// `state` with every payload replaced by its digest's 32 bytes; the payloads, by digest.
fn strip(state: &PersistedState) -> (PersistedState, Payloads<'_>) {
    let mut payloads = Vec::new();
    let lock = state
        .lock
        .as_ref()
        .zip(state.lock_payload.as_deref())
        .map(|(lock, payload)| (lock.vote.digest.0, payload));
    let lock_payload = state
        .lock_payload
        .as_deref()
        .map(|payload| by_digest(payload, lock, &mut payloads));
    let signed = state
        .signed
        .iter()
        .map(|signed| {
            let message = match &signed.message {
                Message::Proposal(proposal) => Message::Proposal(Proposal {
                    height: proposal.height,
                    round: proposal.round,
                    payload: by_digest(&proposal.payload, lock, &mut payloads),
                    justification: proposal.justification.clone(),
                }),
                Message::RoundChange {
                    round_change,
                    prepared_payload,
                } => Message::RoundChange {
                    round_change: round_change.clone(),
                    prepared_payload: prepared_payload
                        .as_deref()
                        .map(|payload| by_digest(payload, lock, &mut payloads)),
                },
                other => other.clone(),
            };
            SignedMessage {
                message,
                signer: signed.signer,
                signature: signed.signature,
            }
        })
        .collect();
    (
        PersistedState {
            height: state.height,
            round: state.round,
            lock: state.lock.clone(),
            lock_payload,
            signed,
        },
        payloads,
    )
}

impl ConsensusStore for DurableConsensus {
    fn load(&mut self) -> Result<Option<PersistedState>, ChainError> {
        let corrupt = |message: String| ChainError::Inconsistent {
            height: 0,
            message: format!("persisted consensus state: {message}"),
        };
        self.stored.clear();
        let Some(bytes) = self.store.consensus_state()? else {
            return Ok(None);
        };
        let Some(encoded) = bytes.strip_prefix(STATE_FORMAT) else {
            // Written before payloads were stored apart: the payloads are inline.
            return codec::decode(&bytes, MAX_PERSISTED_BYTES)
                .map(Some)
                .map_err(|e| corrupt(e.to_string()));
        };
        let mut state: PersistedState =
            codec::decode(encoded, MAX_PERSISTED_BYTES).map_err(|e| corrupt(e.to_string()))?;
        // The payloads it refers to are the ones stored with it: the next save removes
        // those it no longer refers to (before, `stored` started empty at every start, and
        // the payloads of the state found there stayed in the store for good).
        let store = &self.store;
        let stored = &mut self.stored;
        let mut fetch = |reference: &mut Vec<u8>| -> Result<(), ChainError> {
            let digest: [u8; 32] = reference
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("a payload reference is not a digest".into()))?;
            *reference = store
                .consensus_payload(&digest)?
                .ok_or_else(|| corrupt("a payload it refers to is missing".into()))?;
            stored.insert(digest);
            Ok(())
        };
        if let Some(payload) = state.lock_payload.as_mut() {
            fetch(payload)?;
        }
        for signed in &mut state.signed {
            match &mut signed.message {
                Message::Proposal(proposal) => fetch(&mut proposal.payload)?,
                Message::RoundChange {
                    prepared_payload: Some(payload),
                    ..
                } => fetch(payload)?,
                _ => {}
            }
        }
        Ok(Some(state))
    }

    fn save(&mut self, state: &PersistedState) -> Result<(), ChainError> {
        let (stripped, payloads) = strip(state);
        let referenced: BTreeSet<[u8; 32]> = payloads.iter().map(|(d, _)| *d).collect();
        let mut added = BTreeSet::new();
        let add: Vec<(&[u8; 32], &[u8])> = payloads
            .iter()
            .filter(|(digest, _)| !self.stored.contains(digest) && added.insert(*digest))
            .map(|(digest, payload)| (digest, *payload))
            .collect();
        let remove: Vec<[u8; 32]> = self.stored.difference(&referenced).copied().collect();
        let mut record = STATE_FORMAT.to_vec();
        record.extend_from_slice(&codec::encode(&stripped));
        self.store.save_consensus_state(&record, &add, &remove)?;
        self.stored = referenced;
        Ok(())
    }
}

/// What the driver reacts to, besides its own timers and the wake-up for new transactions.
#[derive(Debug)]
pub enum DriverInput {
    /// An encoded consensus message from a validator.
    Message(Vec<u8>),
    /// A committed block fetched from a peer, with its encoded certificate.
    Synced {
        /// Height.
        height: Height,
        /// The encoded block.
        payload: Vec<u8>,
        /// The encoded certificate.
        certificate: Vec<u8>,
    },
}

/// Driver settings.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// With an empty mempool, a proposer waits this long before proposing an empty block.
    pub empty_block_interval_ms: u64,
}

/// A timer the driver set; when it fires it comes back through [`Driver::on_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverTimer {
    /// One of the engine's timers.
    Engine {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Which timer.
        kind: TimerKind,
    },
    /// The wait for transactions before proposing an empty block is over.
    ProposeNow {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
}

/// What the driver needs of time: the wall clock (the engine's clock, proposal timestamps)
/// and timers. The node uses the system clock and tokio's timers; the deterministic
/// simulator its virtual clock and event queue.
pub trait DriverClock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Delivers `timer` to [`Driver::on_timer`] after `after_ms`.
    fn set_timer(&self, after_ms: u64, timer: DriverTimer);
}

/// The system clock and tokio timers feeding [`Driver::run`].
struct TokioClock {
    timers: mpsc::UnboundedSender<DriverTimer>,
}

impl DriverClock for TokioClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn set_timer(&self, after_ms: u64, timer: DriverTimer) {
        let timers = self.timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let _ = timers.send(timer);
        });
    }
}

/// The driver. Build it with [`Driver::new`], run it with [`Driver::run`].
pub struct Driver<S: ConsensusStore> {
    engine: Engine,
    me: AccountId,
    core: Core,
    durable: S,
    network: Arc<dyn ConsensusNetwork>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn DriverClock>,
    timers: mpsc::UnboundedReceiver<DriverTimer>,
    settings: DriverSettings,
    /// A proposal the engine asked for while the mempool was empty.
    waiting_proposal: Option<(Height, Round)>,
    /// Ignored consensus messages already reported in the log.
    ignored_logged: u64,
    /// Sabotage for the simulator's teeth test: run a `Ready`'s actions before making its
    /// state durable (breaks "save first, then speak"). Never set outside the simulator.
    persist_after_send: bool,
}

/// One line every 10 s at most about ignored consensus messages.
static IGNORED_LOG: LogThrottle = LogThrottle::new(10_000);

impl<S: ConsensusStore> Driver<S> {
    /// A driver for `engine` (built from `durable.load()` at the core's next height).
    pub fn new(
        engine: Engine,
        signing_key: &SigningKey,
        core: Core,
        durable: S,
        network: Arc<dyn ConsensusNetwork>,
        metrics: Arc<Metrics>,
        settings: DriverSettings,
    ) -> Self {
        let (timers_tx, timers) = mpsc::unbounded_channel();
        Driver {
            engine,
            me: AccountId(signing_key.verifying_key().to_bytes()),
            core,
            durable,
            network,
            metrics,
            clock: Arc::new(TokioClock { timers: timers_tx }),
            timers,
            settings,
            waiting_proposal: None,
            ignored_logged: 0,
            persist_after_send: false,
        }
    }

    /// The driver on another clock (the simulator's): it is then driven by calling
    /// [`Self::start`], [`Self::on_input`], [`Self::on_timer`] and
    /// [`Self::on_transactions`], not [`Self::run`].
    pub fn with_clock(mut self, clock: Arc<dyn DriverClock>) -> Self {
        self.clock = clock;
        self
    }

    /// **Sabotage, for the simulator's teeth test only**: sends before saving.
    #[cfg(any(test, feature = "sim"))]
    pub fn persisting_after_send(mut self) -> Self {
        self.persist_after_send = true;
        self
    }

    /// The core (for tests and for handing over at shutdown).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Runs until `inputs` closes, the core reaches its halt height (both `Ok`), or a fatal
    /// error (storage failure, or a finalized block this node cannot execute), which it
    /// returns.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<DriverInput>,
        transactions: Arc<Notify>,
    ) -> Result<(), ChainError> {
        if self.core.halted() {
            return Ok(());
        }
        self.start()?;
        loop {
            let handled = tokio::select! {
                input = inputs.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.on_input(input)
                }
                Some(timer) = self.timers.recv() => self.on_timer(timer),
                () = transactions.notified() => self.on_transactions(),
            };
            match handled {
                // At the halt height: stop before taking part in the next height.
                Err(ChainError::Halted { .. }) => return Ok(()),
                Err(error) => return Err(error),
                Ok(()) if self.core.halted() => return Ok(()),
                Ok(()) => {}
            }
        }
    }

    /// Starts the engine (once, before any other input).
    pub fn start(&mut self) -> Result<(), ChainError> {
        let now_ms = self.clock.now_ms();
        self.step(Input::Start { now_ms })
    }

    /// Handles a message or a synced block.
    pub fn on_input(&mut self, input: DriverInput) -> Result<(), ChainError> {
        match input {
            DriverInput::Message(bytes) => match SignedMessage::decode(&bytes) {
                Ok(message) => self.step(Input::Message(message)),
                Err(error) => {
                    tracing::debug!(%error, "undecodable consensus message dropped");
                    Ok(())
                }
            },
            DriverInput::Synced {
                height,
                payload,
                certificate,
            } => match CommitCertificate::decode(&certificate) {
                Ok(certificate) => self.step(Input::CommittedViaSync {
                    height,
                    payload,
                    certificate,
                }),
                Err(error) => {
                    tracing::warn!(height, %error, "undecodable certificate from sync dropped");
                    Ok(())
                }
            },
        }
    }

    /// New transactions are in the mempool: a proposal waiting for them goes ahead.
    pub fn on_transactions(&mut self) -> Result<(), ChainError> {
        match self.waiting_proposal.take() {
            Some((height, round)) => self.propose(height, round),
            None => Ok(()),
        }
    }

    /// A timer set earlier fired.
    pub fn on_timer(&mut self, timer: DriverTimer) -> Result<(), ChainError> {
        match timer {
            DriverTimer::Engine {
                height,
                round,
                kind,
            } => {
                // No progress for a round timeout: perhaps the others decided without this
                // node hearing it (and went quiet: a halt height, a partition that healed
                // after the last message). Ask peers for blocks after the tip too; nothing
                // comes back if there is nothing newer.
                if height == self.core.next_height() {
                    self.network.request_blocks(self.core.tip());
                }
                self.step(Input::Timeout {
                    height,
                    round,
                    kind,
                    now_ms: self.clock.now_ms(),
                })
            }
            DriverTimer::ProposeNow { height, round } => {
                if self.waiting_proposal == Some((height, round)) {
                    self.waiting_proposal = None;
                    self.propose(height, round)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn propose(&mut self, height: Height, round: Round) -> Result<(), ChainError> {
        if self.core.next_height() != height {
            return Ok(()); // the height moved on (sync); the engine asks again
        }
        let payload = self.core.build_proposal(self.me, self.clock.now_ms());
        self.step(Input::ProposalReady {
            height,
            round,
            payload,
        })
    }

    /// Feeds one input to the engine and carries out its [`Ready`]: the state made durable
    /// first, then every action in order. Answers (a proposal, a verdict) are fed back after
    /// the current actions, each carried out the same way.
    pub fn step(&mut self, input: Input) -> Result<(), ChainError> {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let Ready { persist, actions } = self.engine.handle(input);
            if self.persist_after_send {
                for action in actions {
                    if let Some(answer) = self.execute(action)? {
                        inputs.push_back(answer);
                    }
                }
                if let Some(state) = persist {
                    self.durable.save(&state)?;
                }
                continue;
            }
            if let Some(state) = persist {
                crate::failpoints::hit("consensus.before_persist");
                self.durable.save(&state)?;
                crate::failpoints::hit("consensus.after_persist");
            }
            for action in actions {
                if let Some(answer) = self.execute(action)? {
                    inputs.push_back(answer);
                }
            }
        }
        let counts = self.engine.metrics();
        self.metrics.engine(self.engine.round(), counts);
        let ignored = [
            counts.old_height,
            counts.old_round,
            counts.duplicates,
            counts.invalid_signatures,
            counts.unknown_signers,
            counts.invalid_messages,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n));
        if ignored > self.ignored_logged {
            if let Some(held) = IGNORED_LOG.ready() {
                tracing::info!(
                    old_height = counts.old_height,
                    old_round = counts.old_round,
                    duplicates = counts.duplicates,
                    invalid_signatures = counts.invalid_signatures,
                    unknown_signers = counts.unknown_signers,
                    invalid = counts.invalid_messages,
                    more = held,
                    "ignored consensus messages (replayed, duplicate, forged or invalid)"
                );
                self.ignored_logged = ignored;
            }
        }
        Ok(())
    }

    fn execute(&mut self, action: Action) -> Result<Option<Input>, ChainError> {
        match action {
            Action::Broadcast(message) => self.network.broadcast(message.encode()),
            Action::SendTo { validator, message } => {
                if let Some(key) = self.engine.validators().key(validator) {
                    self.network.send_to(AccountId(key.0), message.encode());
                }
            }
            Action::SetTimer {
                height,
                round,
                kind,
                after_ms,
            } => self.clock.set_timer(
                after_ms,
                DriverTimer::Engine {
                    height,
                    round,
                    kind,
                },
            ),
            Action::RequestProposal { height, round } => {
                if self.core.nothing_to_propose() {
                    // Wait for transactions, or propose an empty block after the interval.
                    self.waiting_proposal = Some((height, round));
                    self.clock.set_timer(
                        self.settings.empty_block_interval_ms,
                        DriverTimer::ProposeNow { height, round },
                    );
                } else {
                    let payload = self.core.build_proposal(self.me, self.clock.now_ms());
                    return Ok(Some(Input::ProposalReady {
                        height,
                        round,
                        payload,
                    }));
                }
            }
            Action::ValidatePayload {
                height,
                round,
                payload,
            } => {
                let digest = Digest::of(&payload);
                let validators = self.engine.validators();
                let last = round.min(u32::try_from(validators.len()).unwrap_or(u32::MAX));
                let context = ProposalContext {
                    proposers: (0..=last)
                        .filter_map(|r| validators.key(validators.proposer(height, r)))
                        .map(|key| AccountId(key.0))
                        .collect(),
                    now_ms: self.clock.now_ms(),
                };
                let verdict =
                    self.core
                        .validate_hashed_proposal(height, &payload, Hash(digest.0), &context);
                if let Err(reason) = &verdict {
                    tracing::warn!(height, round, %reason, "proposal rejected");
                }
                return Ok(Some(Input::ValidationResult {
                    height,
                    round,
                    digest,
                    valid: verdict.is_ok(),
                }));
            }
            Action::Committed {
                height,
                payload,
                certificate,
            } => {
                // The engine made or checked the certificate for this payload: the digest
                // it names is the payload's.
                let hash = Hash(certificate.vote.digest.0);
                self.core
                    .commit_hashed(height, &payload, hash, &certificate)?;
            }
            Action::SyncNeeded { height } => {
                tracing::info!(height, "behind the other validators; fetching blocks");
                self.network.request_blocks(self.core.tip());
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
