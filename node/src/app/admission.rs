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

use std::sync::Arc;
use std::time::Instant;

use interpool_contracts::tx::check_stateless_batch;
use interpool_contracts::{AdmissionError, Hash, SignedTransaction};
use tokio::sync::{watch, Notify, Semaphore};

use super::lock;
use super::mempool::SharedMempool;
use super::view::{run_blocking, ChainView};
use crate::metrics::Metrics;
use crate::storage::Store;

/// Where transactions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client, through the API: admitted ones are gossiped by this node.
    Client,
    /// A peer, by gossip: gossipsub forwards them once validated.
    Peer,
}

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
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    workers: Arc<Semaphore>,
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
        store: Arc<Store>,
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

    /// Admits what it can of `txs`; one result per transaction, in order.
    pub async fn admit(&self, txs: Vec<SignedTransaction>, origin: Origin) -> Admitted {
        if txs.is_empty() {
            return Admitted {
                results: Vec::new(),
            };
        }
        let chain_id = self.chain_id.clone();
        let store = self.store.clone();
        let started = Instant::now();
        let checked = {
            // Closed only when the node shuts down; then nothing is admitted.
            let Ok(_permit) = self.workers.acquire().await else {
                return Admitted {
                    results: vec![Err(AdmissionError::MempoolFull(0)); txs.len()],
                };
            };
            run_blocking(move || {
                // Stateless checks (signatures in one batch), then "already in a block?".
                check_stateless_batch(txs, &chain_id)
                    .into_iter()
                    .map(|result| {
                        let verified = result.map_err(AdmissionError::Rejected)?;
                        match store.tx_location(&verified.hash()) {
                            Ok(None) => Ok(verified),
                            Ok(Some(_)) => Err(AdmissionError::AlreadyIncluded(verified.hash())),
                            // A storage failure is the node's problem: refuse as busy.
                            Err(error) => {
                                tracing::warn!(%error, "cannot read the transaction index");
                                Err(AdmissionError::MempoolFull(0))
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
        };
        self.metrics
            .observe_verification(started.elapsed(), checked.len());
        let mut results = Vec::with_capacity(checked.len());
        let mut admitted = Vec::new();
        {
            let mut mempool = lock(&self.mempool);
            let view = self.view.borrow().clone();
            let next_height = view.tip.height + 1;
            for result in checked {
                let verified = match result {
                    Ok(verified) => verified,
                    Err(error) => {
                        results.push(Err(error));
                        continue;
                    }
                };
                let hash = verified.hash();
                let signed = (origin == Origin::Client).then(|| verified.signed().clone());
                match mempool.insert(verified, &view.ledger, next_height) {
                    Ok(()) => {
                        admitted.extend(signed);
                        results.push(Ok(hash));
                    }
                    Err(error) => results.push(Err(error)),
                }
            }
            self.metrics.mempool_size(mempool.len());
        }
        let outcome = Admitted { results };
        if outcome.admitted() > 0 {
            if let (Some(gossip), false) = (&self.gossip, admitted.is_empty()) {
                gossip(admitted);
            }
            if let Some(wake) = &self.wake {
                wake.notify_one();
            }
        }
        outcome
    }
}
