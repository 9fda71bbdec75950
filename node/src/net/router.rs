//! Routes peer events by kind, each kind on its own task and queue, so that a flood of one
//! kind cannot delay another:
//!
//! * **consensus** (validators' messages only; the network layer refused the rest before
//!   they took a slot) go straight to the consensus driver's queue;
//! * **gossip**: transaction batches are decoded and admitted by the admission pipeline,
//!   at most [`RouterSettings::gossip_batches`] at once, each verified on the blocking pool;
//!   the router task itself only hands them out, so verification never holds up anything
//!   else; block announcements wake an observer's follower;
//! * **sync** requests are served from the store by [`super::sync::serve_requests`];
//! * **peer** churn keeps the peer count.
//!
//! A full queue drops and counts its own kind (in the network layer, or here for the
//! driver's queue).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use interpool_contracts::{codec, SignedTransaction};
use tokio::sync::{mpsc, Notify, Semaphore};

use super::p2p::{P2pEvent, P2pEvents, P2pHandle};
use super::sync::{self, BlockAnnouncement};
use crate::app::view::run_blocking;
use crate::app::{Admission, Origin, Reader};
use crate::driver::DriverInput;
use crate::metrics::{LogThrottle, Metrics};

/// One warning a second at most about refused gossip.
static REFUSED_GOSSIP_LOG: LogThrottle = LogThrottle::new(1_000);

/// Most transactions in one gossip message.
pub const MAX_GOSSIP_TRANSACTIONS: usize = 10_000;

/// Router settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSettings {
    /// Gossip batches being admitted at once; further batches wait in the gossip queue
    /// (which drops and counts when full).
    pub gossip_batches: usize,
    /// Sync requests served at once.
    pub sync_requests: usize,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            gossip_batches: 4,
            sync_requests: 4,
        }
    }
}

/// Where routed events go.
pub struct Routes {
    /// The network, to report gossip validation results.
    pub network: P2pHandle,
    /// The admission pipeline, for gossiped transactions.
    pub admission: Admission,
    /// Readers' handle (the store for sync, the tip for announcements).
    pub reader: Reader,
    /// The consensus driver's queue (validators); observers have none.
    pub driver: Option<mpsc::Sender<DriverInput>>,
    /// Woken by block announcements above the tip (observers).
    pub announced: Arc<Notify>,
    /// Connected peers.
    pub peers: Arc<AtomicUsize>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where received consensus messages are journaled, if the node keeps a journal (only
    /// those that verify against the validator set: the journal checks, on its own thread).
    pub journal: Option<super::journal::Journal>,
}

/// Spawns one task per kind of peer event.
pub fn spawn(events: P2pEvents, routes: Routes, settings: RouterSettings) {
    let P2pEvents {
        consensus,
        gossip,
        sync: sync_requests,
        peers,
    } = events;
    tokio::spawn(route_consensus(
        consensus,
        routes.driver.clone(),
        routes.metrics.clone(),
        routes.journal.clone(),
    ));
    tokio::spawn(sync::serve_requests(
        sync_requests,
        routes.reader.store().clone(),
        settings.sync_requests,
    ));
    tokio::spawn(route_peers(
        peers,
        routes.peers.clone(),
        routes.metrics.clone(),
    ));
    tokio::spawn(route_gossip(gossip, routes, settings.gossip_batches));
}

async fn route_consensus(
    mut events: mpsc::Receiver<P2pEvent>,
    driver: Option<mpsc::Sender<DriverInput>>,
    metrics: Arc<Metrics>,
    journal: Option<super::journal::Journal>,
) {
    while let Some(event) = events.recv().await {
        let (P2pEvent::Consensus { bytes, .. }, Some(driver)) = (event, &driver) else {
            continue;
        };
        // Not verified yet: the journal verifies on its own thread and keeps only evidence
        // (`journal::evidence`); the driver's engine verifies again (its verdict does not
        // come back here).
        if let Some(journal) = &journal {
            journal.record(&bytes);
        }
        if driver.try_send(DriverInput::Message(bytes)).is_err() {
            metrics.dropped("consensus_input");
        }
    }
}

async fn route_peers(
    mut events: mpsc::Receiver<P2pEvent>,
    peers: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = events.recv().await {
        match event {
            P2pEvent::PeerConnected(key) => {
                tracing::debug!(peer = %key, "peer connected");
                peers.fetch_add(1, Ordering::Relaxed);
            }
            P2pEvent::PeerDisconnected(key) => {
                tracing::debug!(peer = %key, "peer disconnected");
                let _ =
                    peers.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
            _ => continue,
        }
        metrics.peers(peers.load(Ordering::Relaxed));
    }
}

async fn route_gossip(mut events: mpsc::Receiver<P2pEvent>, routes: Routes, batches: usize) {
    let permits = Arc::new(Semaphore::new(batches.max(1)));
    while let Some(event) = events.recv().await {
        match event {
            P2pEvent::Transactions { from, id, bytes } => {
                // Waits while as many batches as allowed are being admitted: the gossip
                // queue fills behind it and the network drops and counts the excess.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let admission = routes.admission.clone();
                let network = routes.network.clone();
                let metrics = routes.metrics.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let decoded = run_blocking(move || {
                        codec::decode::<Vec<SignedTransaction>>(&bytes, bytes.len() as u64)
                    })
                    .await;
                    let refuse = |reason: &str| {
                        metrics.gossip_batch("rejected");
                        if let Some(held) = REFUSED_GOSSIP_LOG.ready() {
                            tracing::warn!(%from, reason, more = held, "refused a gossip batch; the sender loses gossip score");
                        }
                    };
                    let txs = match decoded {
                        Ok(txs) if txs.len() <= MAX_GOSSIP_TRANSACTIONS => txs,
                        Ok(_) => {
                            refuse("too many transactions");
                            network.report_gossip(id, false);
                            return;
                        }
                        Err(_) => {
                            refuse("undecodable");
                            network.report_gossip(id, false);
                            return;
                        }
                    };
                    let admitted = admission.admit(txs, Origin::Peer).await;
                    // A forged signature is the sender's fault; a stale nonce is just timing.
                    let forged = admitted.forged();
                    if forged {
                        refuse("a forged signature or a malformed transaction");
                    } else {
                        metrics.gossip_batch("accepted");
                    }
                    network.report_gossip(id, !forged);
                });
            }
            P2pEvent::BlockAnnounced { from, id, bytes } => match BlockAnnouncement::decode(&bytes)
            {
                Ok(announcement) => {
                    routes.network.report_gossip(id, true);
                    routes.metrics.block_announced();
                    if announcement.height > routes.reader.view().tip.height {
                        routes.announced.notify_one();
                    }
                }
                Err(error) => {
                    tracing::debug!(%from, %error, "undecodable block announcement");
                    routes.network.report_gossip(id, false);
                }
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! A validator's routing under a flood: an observer's key pouring consensus frames in
    //! and a peer gossiping batches of 10,000 transactions must not stop a validator's
    //! consensus message from reaching the driver.

    use std::time::{Duration, Instant};

    use interpool_contracts::testkit::{account, customer_seed, key};
    use interpool_contracts::{AccountId, Amount, Body, Transaction};

    use super::*;
    use crate::app::{AdmissionSettings, ReadLimits};
    use crate::net::p2p::{self, P2pSettings};
    use crate::testkit;

    const VALIDATOR: u64 = 700;
    const OTHER_VALIDATOR: u64 = 701;
    const OBSERVER: u64 = 702;
    const DEADLINE: Duration = Duration::from_secs(20);

    async fn start_network(
        seed: u64,
        peers: Vec<(AccountId, String)>,
        consensus_peers: &[u64],
    ) -> (P2pHandle, P2pEvents) {
        p2p::start(P2pSettings {
            secret_key: key(seed).to_bytes(),
            listen: "/ip4/127.0.0.1/tcp/0".into(),
            peers,
            allowed: [VALIDATOR, OTHER_VALIDATOR, OBSERVER]
                .into_iter()
                .map(account)
                .collect(),
            consensus_peers: consensus_peers.iter().copied().map(account).collect(),
            network_id: "router-test".into(),
            max_message_bytes: 16 << 20,
            follow_blocks: false,
            unframed_writes: false,
        })
        .await
        .expect("network")
    }

    /// `count` distinct, validly signed transfers (`batch` makes each batch's bytes differ).
    fn batch(batch: u64, count: u64) -> Vec<SignedTransaction> {
        (0..count)
            .map(|n| {
                let from = customer_seed(0, (n % 2) as usize);
                Transaction {
                    chain_id: "test".into(),
                    signer: account(from),
                    nonce: batch * count + n,
                    valid_until_height: 1_000,
                    body: Body::Transfer {
                        to: account(customer_seed(1, 0)),
                        amount: Amount(1),
                        end_to_end_id: format!("F{batch}-{n}"),
                        reference: String::new(),
                        terms: Default::default(),
                    },
                }
                .sign(&key(from))
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consensus_message_reaches_the_driver_through_a_consensus_and_gossip_flood() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let (core, store) = testkit::core_and_store(&genesis, dir.path(), testkit::limits());
        let metrics = Arc::new(Metrics::new());
        let admission = Admission::new(
            genesis.chain_id.clone(),
            core.mempool().clone(),
            core.subscribe(),
            core.store().clone(),
            metrics.clone(),
            AdmissionSettings::default(),
        );
        let (validator, events) =
            start_network(VALIDATOR, vec![], &[VALIDATOR, OTHER_VALIDATOR]).await;
        let (driver_tx, mut driver_rx) = mpsc::channel(64);
        spawn(
            events,
            Routes {
                network: validator.clone(),
                admission,
                reader: Reader::new(store, core.subscribe(), ReadLimits::default()),
                driver: Some(driver_tx),
                announced: Arc::new(Notify::new()),
                peers: Arc::new(AtomicUsize::new(0)),
                metrics,
                journal: None,
            },
            RouterSettings::default(),
        );
        let address = validator.listen_address().await.expect("address");
        let dial = vec![(account(VALIDATOR), address)];
        let all = [VALIDATOR, OTHER_VALIDATOR, OBSERVER];
        let (other, mut other_events) = start_network(OTHER_VALIDATOR, dial.clone(), &all).await;
        let (observer, mut observer_events) = start_network(OBSERVER, dial, &all).await;
        tokio::spawn(async move { while other_events.recv().await.is_some() {} });
        tokio::spawn(async move { while observer_events.recv().await.is_some() {} });
        let deadline = Instant::now() + DEADLINE;
        while validator.connected_peers().await.len() < 2 || other.gossip_peers().await.is_empty() {
            assert!(Instant::now() < deadline, "peers did not connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The flood: three gossip batches of 10,000 signed transfers (each verified on
        // arrival), and the observer's key sending consensus frames as fast as it can.
        let batches: Vec<Vec<u8>> = (0..3).map(|b| codec::encode(&batch(b, 10_000))).collect();
        for bytes in batches {
            other.publish_transactions(bytes);
        }
        let flooding = {
            let observer = observer.clone();
            tokio::spawn(async move {
                loop {
                    for _ in 0..64 {
                        observer.send_consensus(account(VALIDATOR), b"forged vote".to_vec());
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        // Let the flood get going before the validator's message.
        let deadline = Instant::now() + DEADLINE;
        while validator.stats().consensus_refused < 500 {
            assert!(
                Instant::now() < deadline,
                "the observer's flood did not arrive"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = Instant::now();
        other.send_consensus(account(VALIDATOR), b"a validator's vote".to_vec());
        let received = tokio::time::timeout(DEADLINE, async {
            loop {
                match driver_rx.recv().await {
                    Some(DriverInput::Message(bytes)) if bytes == b"a validator's vote" => break,
                    Some(_) => continue,
                    None => panic!("the driver queue closed"),
                }
            }
        })
        .await;
        flooding.abort();
        assert!(
            received.is_ok(),
            "the validator's message did not reach the driver within {DEADLINE:?}"
        );
        tracing::info!(
            latency_ms = sent.elapsed().as_millis() as u64,
            "vote delivered"
        );
        // Not one of the observer's frames took a slot in the driver's queue.
        while let Ok(input) = driver_rx.try_recv() {
            assert!(
                !matches!(input, DriverInput::Message(ref bytes) if bytes == b"forged vote"),
                "an observer's consensus frame reached the driver"
            );
        }
        // The gossip was real work: transactions were verified and admitted meanwhile.
        let deadline = Instant::now() + DEADLINE;
        while crate::app::lock(core.mempool()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no gossiped transaction was admitted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
