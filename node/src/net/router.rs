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
use crate::metrics::Metrics;

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
) {
    while let Some(event) = events.recv().await {
        let (P2pEvent::Consensus { bytes, .. }, Some(driver)) = (event, &driver) else {
            continue;
        };
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
                tokio::spawn(async move {
                    let _permit = permit;
                    let decoded = run_blocking(move || {
                        codec::decode::<Vec<SignedTransaction>>(&bytes, bytes.len() as u64)
                    })
                    .await;
                    let txs = match decoded {
                        Ok(txs) if txs.len() <= MAX_GOSSIP_TRANSACTIONS => txs,
                        Ok(txs) => {
                            tracing::debug!(%from, count = txs.len(), "oversized gossip batch refused");
                            network.report_gossip(id, false);
                            return;
                        }
                        Err(error) => {
                            tracing::debug!(%from, %error, "undecodable gossip");
                            network.report_gossip(id, false);
                            return;
                        }
                    };
                    let admitted = admission.admit(txs, Origin::Peer).await;
                    // A forged signature is the sender's fault; a stale nonce is just timing.
                    network.report_gossip(id, !admitted.forged());
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
