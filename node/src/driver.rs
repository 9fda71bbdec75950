//! The consensus driver: one task owns the engine and executes its actions in order.
//!
//! The engine's contract (interpool-consensus, `Action`) is that actions run in the order
//! given and that `PersistState` is durable before any later action runs. The driver keeps
//! it simply: it handles one action at a time on its own task, and the persist is a synced
//! RocksDB write that returns before the next action is looked at. Answers the engine asks
//! for (a proposal, a validation verdict) are fed back immediately, so their own actions
//! join the same queue in order.
//!
//! Networking is behind [`ConsensusNetwork`], so the same driver runs over libp2p in the
//! node and over in-process channels in tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use interpool_consensus::engine::TimerKind;
use interpool_consensus::{
    Action, CommitCertificate, Engine, Height, Input, PersistedState, Round, SignedMessage,
};
use interpool_contracts::outcome::BlockOutcome;
use interpool_contracts::{codec, AccountId};
use tokio::sync::{broadcast, mpsc};

use crate::chain::{Chain, ChainError};
use crate::mempool::Mempool;
use crate::metrics::Metrics;

/// Largest persisted engine state read back (holds at most a locked block).
const MAX_PERSISTED_BYTES: u64 = 128 << 20;
/// Largest commit certificate read back or received.
pub const MAX_CERTIFICATE_BYTES: u64 = 1 << 20;

/// How the driver reaches other validators.
pub trait ConsensusNetwork: Send + Sync + 'static {
    /// Sends an encoded consensus message to every other validator.
    fn broadcast(&self, message: Vec<u8>);
    /// Sends an encoded consensus message to one validator.
    fn send_to(&self, validator: AccountId, message: Vec<u8>);
    /// Asks peers for committed blocks from `height` on; answers arrive as
    /// [`DriverInput::Synced`].
    fn request_blocks(&self, height: Height);
}

/// What the driver reacts to, besides its own timers.
#[derive(Debug)]
pub enum DriverInput {
    /// An encoded consensus message from a peer.
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
    /// Transactions arrived in the mempool (a waiting proposer may propose now).
    TransactionsArrived,
}

/// A committed block, as announced to the rest of the node (API waiters, event stream).
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// What executing it produced.
    pub outcome: Arc<BlockOutcome>,
}

/// Driver settings.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// With an empty mempool, a proposer waits this long before proposing an empty block.
    pub empty_block_interval_ms: u64,
}

enum Internal {
    Timer {
        height: Height,
        round: Round,
        kind: TimerKind,
    },
    ProposeNow {
        height: Height,
        round: Round,
    },
}

/// Shared node state the driver works on.
#[derive(Clone)]
pub struct Shared {
    /// The chain (ledger + store).
    pub chain: Arc<Mutex<Chain>>,
    /// The mempool.
    pub mempool: Arc<Mutex<Mempool>>,
    /// Announcements of committed blocks.
    pub committed: broadcast::Sender<CommittedEvent>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Reads the engine state this validator saved before a restart.
pub fn load_persisted(chain: &Chain) -> Result<Option<PersistedState>, ChainError> {
    match chain.store().consensus_state()? {
        None => Ok(None),
        Some(bytes) => codec::decode(&bytes, MAX_PERSISTED_BYTES)
            .map(Some)
            .map_err(|e| ChainError::Inconsistent {
                height: chain.tip().height,
                message: format!("persisted consensus state: {e}"),
            }),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The driver task. Runs until `inputs` closes or a fatal error (storage failure, or a
/// finalized block this node cannot execute), which it returns.
pub async fn run(
    engine: Engine,
    signing_key: SigningKey,
    shared: Shared,
    network: Arc<dyn ConsensusNetwork>,
    mut inputs: mpsc::Receiver<DriverInput>,
    settings: DriverSettings,
) -> Result<(), ChainError> {
    let me = AccountId(signing_key.verifying_key().to_bytes());
    let (internal_tx, mut internal_rx) = mpsc::unbounded_channel::<Internal>();
    let mut driver = Driver {
        engine,
        me,
        shared,
        network,
        internal: internal_tx,
        settings,
        waiting_proposal: None,
    };
    driver.step(Input::Start { now_ms: now_ms() })?;
    loop {
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { return Ok(()) };
                driver.on_input(input)?;
            }
            Some(internal) = internal_rx.recv() => driver.on_internal(internal)?,
        }
    }
}

struct Driver {
    engine: Engine,
    me: AccountId,
    shared: Shared,
    network: Arc<dyn ConsensusNetwork>,
    internal: mpsc::UnboundedSender<Internal>,
    settings: DriverSettings,
    /// A proposal the engine asked for while the mempool was empty.
    waiting_proposal: Option<(Height, Round)>,
}

impl Driver {
    fn on_input(&mut self, input: DriverInput) -> Result<(), ChainError> {
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
            } => match codec::decode::<CommitCertificate>(&certificate, MAX_CERTIFICATE_BYTES) {
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
            DriverInput::TransactionsArrived => match self.waiting_proposal.take() {
                Some((height, round)) => self.propose(height, round),
                None => Ok(()),
            },
        }
    }

    fn on_internal(&mut self, internal: Internal) -> Result<(), ChainError> {
        match internal {
            Internal::Timer {
                height,
                round,
                kind,
            } => self.step(Input::Timeout {
                height,
                round,
                kind,
                now_ms: now_ms(),
            }),
            Internal::ProposeNow { height, round } => {
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
        let payload = {
            let chain = lock(&self.shared.chain);
            let mempool = lock(&self.shared.mempool);
            if chain.tip().height + 1 != height {
                return Ok(()); // the height moved on (sync); the engine asks again
            }
            chain.build_block(&mempool, self.me, now_ms())
        };
        self.step(Input::ProposalReady {
            height,
            round,
            payload,
        })
    }

    /// Feeds one input to the engine and executes every resulting action, in order,
    /// including those of the answers fed back along the way.
    fn step(&mut self, input: Input) -> Result<(), ChainError> {
        let mut actions: VecDeque<Action> = self.engine.handle(input).into();
        while let Some(action) = actions.pop_front() {
            let answer = self.execute(action)?;
            if let Some(answer) = answer {
                // The answer's actions come before the rest of the queue would have, which
                // preserves the engine's order: they are consequences of what just ran.
                let mut follow: VecDeque<Action> = self.engine.handle(answer).into();
                follow.extend(actions);
                actions = follow;
            }
        }
        self.shared
            .metrics
            .engine(self.engine.round(), self.engine.metrics());
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
            } => {
                let internal = self.internal.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    let _ = internal.send(Internal::Timer {
                        height,
                        round,
                        kind,
                    });
                });
            }
            Action::PersistState(state) => {
                // Durable before anything later runs (a synced write).
                lock(&self.shared.chain)
                    .store()
                    .save_consensus_state(&codec::encode(&state))?;
            }
            Action::RequestProposal { height, round } => {
                if lock(&self.shared.mempool).is_empty() {
                    // Wait for transactions, or propose an empty block after the interval.
                    self.waiting_proposal = Some((height, round));
                    let internal = self.internal.clone();
                    let wait = self.settings.empty_block_interval_ms;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        let _ = internal.send(Internal::ProposeNow { height, round });
                    });
                } else {
                    let payload = {
                        let chain = lock(&self.shared.chain);
                        let mempool = lock(&self.shared.mempool);
                        chain.build_block(&mempool, self.me, now_ms())
                    };
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
                let digest = interpool_consensus::Digest::of(&payload);
                let verdict = {
                    let mut chain = lock(&self.shared.chain);
                    let mempool = lock(&self.shared.mempool);
                    if chain.tip().height + 1 == height {
                        chain.validate_block(&payload, &mempool)
                    } else {
                        Err(interpool_contracts::block::BlockError::WrongHeight {
                            expected: chain.tip().height + 1,
                            got: height,
                        }
                        .into())
                    }
                };
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
            } => self.commit(height, &payload, &certificate)?,
            Action::SyncNeeded { height } => {
                tracing::info!(height, "behind the other validators; fetching blocks");
                self.network.request_blocks(height);
            }
        }
        Ok(None)
    }

    fn commit(
        &mut self,
        height: Height,
        payload: &[u8],
        certificate: &CommitCertificate,
    ) -> Result<(), ChainError> {
        let started = std::time::Instant::now();
        let mut chain = lock(&self.shared.chain);
        let mut mempool = lock(&self.shared.mempool);
        if chain.tip().height + 1 != height {
            return Err(ChainError::Inconsistent {
                height,
                message: format!(
                    "engine committed height {height} on top of {}",
                    chain.tip().height
                ),
            });
        }
        let (outcome, txs) = chain.commit(payload, codec::encode(certificate), &mempool)?;
        mempool.after_commit(&txs, chain.ledger(), height);
        self.shared
            .metrics
            .committed(height, outcome.receipts.len(), started.elapsed());
        self.shared.metrics.mempool_size(mempool.len());
        let queued = outcome
            .receipts
            .iter()
            .filter(|r| matches!(r.outcome, interpool_contracts::Outcome::Queued { .. }))
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
        // Nobody listening is fine.
        let _ = self.shared.committed.send(CommittedEvent {
            outcome: Arc::new(outcome),
        });
        Ok(())
    }
}

/// Locks a mutex; a poisoned lock means another thread panicked on a broken invariant,
/// and continuing would be worse.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a thread panicked while holding node state; stopping")
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
