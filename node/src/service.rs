//! `interpool-node run`: wires the store, the chain, the mempool, the network, the consensus
//! driver (validators) or the follower (observers), and the HTTP API, and runs them until
//! the process is told to stop.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use interpool_consensus::{Config as EngineConfig, Engine, ValidatorSet};
use interpool_contracts::codec;
use interpool_contracts::tx::check_stateless_batch;
use interpool_contracts::{AccountId, Genesis, SignedTransaction};
use interpool_genesis::config::{NodeConfig, Role};
use interpool_genesis::files::{read_genesis, read_key};
use interpool_genesis::spec::{check_genesis, validator_set};
use tokio::sync::{broadcast, mpsc, Notify};

use crate::api::{self, ApiState};
use crate::chain::{BlockLimits, Chain};
use crate::driver::{self, lock, ConsensusNetwork, DriverInput, DriverSettings, Shared};
use crate::mempool::{Mempool, MempoolLimits};
use crate::metrics::Metrics;
use crate::p2p::{self, P2pEvent, P2pHandle, P2pSettings};
use crate::storage::Store;
use crate::sync::{self, BlockAnnouncement, SyncRequest, SyncResponse, MAX_SYNC_BLOCKS};

/// Command-line overrides of the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Replaces `p2p.listen`.
    pub p2p_listen: Option<String>,
    /// Replaces `rpc.listen`.
    pub rpc_listen: Option<String>,
}

/// Everything checked before the node starts anything.
struct Prepared {
    config: NodeConfig,
    genesis: Genesis,
    validators: ValidatorSet,
    key: ed25519_dalek::SigningKey,
    me: AccountId,
}

fn prepare(config: NodeConfig) -> Result<Prepared> {
    let genesis = read_genesis(&config.genesis_file)?;
    check_genesis(&genesis)
        .with_context(|| format!("{} is invalid", config.genesis_file.display()))?;
    let validators = validator_set(&genesis)?;
    let key = read_key(&config.key_file)?;
    let me = AccountId(key.verifying_key().to_bytes());
    let listed = match config.role {
        Role::Validator => genesis.validators.iter().find(|v| v.key == me),
        Role::Observer => genesis.observers.iter().find(|v| v.key == me),
    };
    let Some(listed) = listed else {
        bail!(
            "this node's key {me} is not a{} {:?} in the genesis; check key_file and role",
            if config.role == Role::Observer {
                "n"
            } else {
                ""
            },
            config.role
        );
    };
    if listed.name != config.name {
        tracing::warn!(config = %config.name, genesis = %listed.name, "node name differs from the genesis");
    }
    Ok(Prepared {
        config,
        genesis,
        validators,
        key,
        me,
    })
}

/// Runs the node until SIGINT/SIGTERM or a fatal error.
pub async fn run(mut config: NodeConfig, overrides: Overrides) -> Result<()> {
    if let Some(dir) = overrides.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = overrides.p2p_listen {
        config.p2p.listen = listen;
    }
    if let Some(listen) = overrides.rpc_listen {
        config.rpc.listen = listen;
    }
    let Prepared {
        config,
        genesis,
        validators,
        key,
        me,
    } = prepare(config)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir.join("db")).context("cannot open the database")?;
    let limits = BlockLimits {
        max_transactions: config.block.max_transactions,
        max_bytes: config.block.max_bytes,
    };
    let chain = Chain::open(&genesis, store, limits)?;
    tracing::info!(
        node = %config.name,
        role = ?config.role,
        height = chain.tip().height,
        state_root = %chain.tip().state_root,
        "opened chain"
    );
    let genesis_hash = chain.genesis_hash();
    let metrics = Arc::new(Metrics::new());
    let (committed, _) = broadcast::channel(1_024);
    let shared = Shared {
        chain: Arc::new(Mutex::new(chain)),
        mempool: Arc::new(Mutex::new(Mempool::new(MempoolLimits {
            max_transactions: config.mempool.max_transactions,
            max_per_signer: config.mempool.max_per_signer,
        }))),
        committed,
        metrics: metrics.clone(),
    };

    let allowed: Vec<AccountId> = genesis
        .validators
        .iter()
        .chain(&genesis.observers)
        .map(|n| n.key)
        .collect();
    let (network, events) = p2p::start(P2pSettings {
        secret_key: key.to_bytes(),
        listen: config.p2p.listen.clone(),
        peers: config
            .p2p
            .peers
            .iter()
            .map(|p| (p.key, p.address.clone()))
            .collect(),
        allowed,
        network_id: format!("{}-{}", genesis.chain_id, &genesis_hash.to_hex()[..16]),
        max_message_bytes: config.p2p.max_message_bytes,
        follow_blocks: config.role == Role::Observer,
    })
    .await
    .context("cannot start networking")?;
    let peers = Arc::new(AtomicUsize::new(0));

    let validator_keys: BTreeSet<AccountId> = genesis.validators.iter().map(|v| v.key).collect();
    let (driver_tx, driver_rx) = mpsc::channel::<DriverInput>(16_384);
    let is_validator = config.role == Role::Validator;
    // Observers: woken by block announcements.
    let announced = Arc::new(Notify::new());

    // Peer events: gossip into the mempool, consensus into the driver, sync requests served.
    tokio::spawn(network_events(
        events,
        network.clone(),
        shared.clone(),
        genesis.chain_id.clone(),
        validator_keys,
        is_validator.then(|| driver_tx.clone()),
        announced.clone(),
        peers.clone(),
        metrics.clone(),
    ));

    let consensus_network: Arc<dyn ConsensusNetwork> = Arc::new(P2pConsensus {
        handle: network.clone(),
        driver: driver_tx.clone(),
        validators: validators.clone(),
        metrics: metrics.clone(),
    });
    let worker = if is_validator {
        let persisted = driver::load_persisted(&lock(&shared.chain))?;
        let start_height = lock(&shared.chain).tip().height + 1;
        let engine_config = EngineConfig {
            round_timeout_base_ms: config.consensus.round_timeout_ms,
            ..EngineConfig::default()
        };
        let engine = Engine::new(
            engine_config,
            validators.clone(),
            key.clone(),
            persisted,
            start_height,
        )
        .context("cannot start consensus")?;
        tokio::spawn(announce_commits(
            shared.committed.subscribe(),
            network.clone(),
        ));
        let settings = DriverSettings {
            empty_block_interval_ms: config.consensus.empty_block_interval_ms,
        };
        tokio::spawn(driver::run(
            engine,
            key.clone(),
            shared.clone(),
            consensus_network,
            driver_rx,
            settings,
        ))
    } else {
        tokio::spawn(follow(
            network.clone(),
            shared.clone(),
            validators.clone(),
            announced,
            Duration::from_millis(config.p2p.sync_interval_ms),
        ))
    };

    let state = ApiState {
        shared: shared.clone(),
        node: config.name.clone(),
        read_only: !is_validator,
        chain_id: genesis.chain_id.clone(),
        currency: genesis.currency.clone(),
        decimals: genesis.decimals,
        peers,
        gossip: {
            let network = network.clone();
            Arc::new(move |txs: Vec<SignedTransaction>| {
                network.publish_transactions(codec::encode(&txs))
            })
        },
        driver: is_validator.then(|| driver_tx.clone()),
        metrics,
        event_streams: crate::events::stream_limit(),
        p2p_stats: {
            let network = network.clone();
            Arc::new(move || network.stats())
        },
    };
    let listener = tokio::net::TcpListener::bind(&config.rpc.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.rpc.listen))?;
    tracing::info!(rpc = %config.rpc.listen, p2p = %config.p2p.listen, me = %me, "node started");
    let app = api::router(state, config.rpc.max_body_bytes);
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        result = server => result.context("HTTP server failed")?,
        result = worker => {
            match result {
                Ok(Ok(())) => bail!("the consensus task stopped"),
                Ok(Err(error)) => return Err(error).context("stopping: the chain cannot continue"),
                Err(error) => bail!("the consensus task panicked: {error}"),
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Most transactions in one gossip message.
const MAX_GOSSIP_TRANSACTIONS: usize = 10_000;

#[allow(clippy::too_many_arguments)]
async fn network_events(
    mut events: mpsc::Receiver<P2pEvent>,
    network: P2pHandle,
    shared: Shared,
    chain_id: String,
    validator_keys: BTreeSet<AccountId>,
    driver: Option<mpsc::Sender<DriverInput>>,
    announced: Arc<Notify>,
    peers: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = events.recv().await {
        match event {
            P2pEvent::Transactions { from, id, bytes } => {
                let txs: Vec<SignedTransaction> = match codec::decode(&bytes, bytes.len() as u64) {
                    Ok(txs) => txs,
                    Err(error) => {
                        tracing::debug!(%from, %error, "undecodable gossip");
                        network.report_gossip(id, false);
                        continue;
                    }
                };
                let txs: Vec<SignedTransaction> =
                    txs.into_iter().take(MAX_GOSSIP_TRANSACTIONS).collect();
                let chain_id = chain_id.clone();
                let started = std::time::Instant::now();
                let Ok(checked) =
                    tokio::task::spawn_blocking(move || check_stateless_batch(txs, &chain_id))
                        .await
                else {
                    continue;
                };
                metrics.observe_verification(started.elapsed(), checked.len());
                // A forged signature is the sender's fault; a stale nonce is just timing.
                let forged = checked
                    .iter()
                    .any(|r| matches!(r, Err(e) if e.is_stateless()));
                network.report_gossip(id, !forged);
                let mut admitted = 0;
                {
                    let chain = lock(&shared.chain);
                    let mut mempool = lock(&shared.mempool);
                    let next = chain.tip().height + 1;
                    for verified in checked.into_iter().flatten() {
                        if mempool.insert(verified, chain.ledger(), next).is_ok() {
                            admitted += 1;
                        }
                    }
                    metrics.mempool_size(mempool.len());
                }
                if admitted > 0 {
                    if let Some(driver) = &driver {
                        let _ = driver.try_send(DriverInput::TransactionsArrived);
                    }
                }
            }
            P2pEvent::BlockAnnounced { from, id, bytes } => {
                match BlockAnnouncement::decode(&bytes) {
                    Ok(announcement) => {
                        network.report_gossip(id, true);
                        metrics.block_announced();
                        if announcement.height > lock(&shared.chain).tip().height {
                            announced.notify_one();
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%from, %error, "undecodable block announcement");
                        network.report_gossip(id, false);
                    }
                }
            }
            P2pEvent::Consensus { from, bytes } => {
                if !validator_keys.contains(&from) {
                    continue;
                }
                if let Some(driver) = &driver {
                    if driver.try_send(DriverInput::Message(bytes)).is_err() {
                        tracing::warn!("consensus input queue full; message dropped");
                    }
                }
            }
            P2pEvent::SyncRequest {
                from,
                bytes,
                respond,
            } => {
                let response = match SyncRequest::decode(&bytes) {
                    Ok(request) => {
                        let chain = lock(&shared.chain);
                        sync::serve(chain.store(), request).ok()
                    }
                    Err(error) => {
                        tracing::debug!(%from, %error, "bad sync request");
                        None
                    }
                };
                let _ = respond.send(response.map(|r| codec::encode(&r)).unwrap_or_default());
            }
            P2pEvent::PeerConnected(key) => {
                tracing::debug!(peer = %key, "peer connected");
                peers.fetch_add(1, Ordering::Relaxed);
                metrics.peers(peers.load(Ordering::Relaxed));
            }
            P2pEvent::PeerDisconnected(key) => {
                tracing::debug!(peer = %key, "peer disconnected");
                let _ =
                    peers.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                metrics.peers(peers.load(Ordering::Relaxed));
            }
        }
    }
}

/// The driver's view of the network.
struct P2pConsensus {
    handle: P2pHandle,
    driver: mpsc::Sender<DriverInput>,
    validators: ValidatorSet,
    metrics: Arc<Metrics>,
}

impl ConsensusNetwork for P2pConsensus {
    fn broadcast(&self, message: Vec<u8>) {
        self.handle.broadcast_consensus(message);
    }

    fn send_to(&self, validator: AccountId, message: Vec<u8>) {
        self.handle.send_consensus(validator, message);
    }

    fn request_blocks(&self, height: u64) {
        let handle = self.handle.clone();
        let driver = self.driver.clone();
        let validators = self.validators.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            match fetch(&handle, height, &validators, &metrics).await {
                Some(blocks) => {
                    for block in blocks {
                        let input = DriverInput::Synced {
                            height: block.height,
                            payload: block.payload,
                            certificate: block.certificate,
                        };
                        if driver.send(input).await.is_err() {
                            return;
                        }
                    }
                }
                None => tracing::debug!(height, "no peer could serve blocks"),
            }
        });
    }
}

/// Asks connected peers in turn for blocks from `height`; returns the first non-empty
/// answer whose certificates all verify.
async fn fetch(
    handle: &P2pHandle,
    height: u64,
    validators: &ValidatorSet,
    metrics: &Metrics,
) -> Option<Vec<sync::SyncedBlock>> {
    let request = codec::encode(&SyncRequest {
        from: height,
        max_blocks: MAX_SYNC_BLOCKS,
    });
    for peer in handle.connected_peers().await {
        let Ok(bytes) = handle.request(peer, request.clone()).await else {
            continue;
        };
        let Ok(response) = SyncResponse::decode(&bytes) else {
            tracing::warn!(%peer, "undecodable sync response");
            continue;
        };
        let consecutive = response
            .blocks
            .iter()
            .enumerate()
            .all(|(i, b)| b.height == height + i as u64);
        let refused = response
            .blocks
            .iter()
            .find_map(|b| sync::verify(b, validators).err());
        if !consecutive || refused.is_some() {
            let reason =
                refused.map_or_else(|| "heights not consecutive".into(), |e| e.to_string());
            tracing::warn!(%peer, height, %reason, "peer sent blocks that do not verify; nothing applied");
            metrics.block_refused();
            continue;
        }
        if !response.blocks.is_empty() {
            return Some(response.blocks);
        }
    }
    None
}

/// Validators: announce every committed height to the followers (observers).
async fn announce_commits(
    mut committed: broadcast::Receiver<driver::CommittedEvent>,
    network: P2pHandle,
) {
    loop {
        match committed.recv().await {
            Ok(event) => network.announce_block(codec::encode(&BlockAnnouncement {
                height: event.outcome.height,
            })),
            // Behind: the next announcement carries a later height, which says as much.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Observers: follow the chain by sync, verifying every certificate before executing. A
/// block announcement wakes the sync at once; without one it runs every `interval`.
async fn follow(
    handle: P2pHandle,
    shared: Shared,
    validators: ValidatorSet,
    announced: Arc<Notify>,
    interval: Duration,
) -> Result<(), crate::chain::ChainError> {
    let mut poll = tokio::time::interval(interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            () = announced.notified() => {}
        }
        // Fetch until a peer has nothing newer: a long way behind, that is many requests.
        loop {
            let next = lock(&shared.chain).tip().height + 1;
            let Some(blocks) = fetch(&handle, next, &validators, &shared.metrics).await else {
                break;
            };
            let full = blocks.len() >= MAX_SYNC_BLOCKS as usize;
            apply_synced(&shared, blocks)?;
            if !full {
                break;
            }
        }
    }
}

/// Executes verified synced blocks in order (an observer's commit).
fn apply_synced(
    shared: &Shared,
    blocks: Vec<sync::SyncedBlock>,
) -> Result<(), crate::chain::ChainError> {
    for block in blocks {
        let started = std::time::Instant::now();
        let mut chain = lock(&shared.chain);
        let mut mempool = lock(&shared.mempool);
        if block.height != chain.tip().height + 1 {
            break;
        }
        let (outcome, txs) = chain.commit(&block.payload, block.certificate, &mempool)?;
        mempool.after_commit(&txs, chain.ledger(), block.height);
        shared
            .metrics
            .committed(block.height, outcome.receipts.len(), started.elapsed());
        tracing::info!(
            height = block.height,
            transactions = outcome.receipts.len(),
            state_root = %outcome.state_root,
            "verified and applied block"
        );
        let _ = shared.committed.send(driver::CommittedEvent {
            outcome: Arc::new(outcome),
        });
    }
    Ok(())
}
