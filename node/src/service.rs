//! `interpool-node run`: wiring only. It checks the config against the genesis, opens the
//! store and the core, starts the network and routes its events, hands the core to the
//! consensus driver (validators) or the follower (observers), and serves the HTTP API until
//! the process is told to stop. What each part does is in its own module.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use interpool_consensus::{
    message_bound, Config as EngineConfig, Engine, ValidatorSet, MAX_PAYLOAD_BYTES,
};
use interpool_contracts::block::{Block, ChainTip};
use interpool_contracts::{codec, AccountId, Genesis, SignedTransaction};
use interpool_genesis::config::{NodeConfig, Role};
use interpool_genesis::files::{read_genesis, read_key};
use interpool_genesis::spec::{check_genesis, validator_set};
use tokio::sync::{mpsc, watch, Notify};

use crate::api::{self, ApiState};
use crate::app::{
    Admission, AdmissionSettings, BlockLimits, ChainView, Core, Mempool, MempoolLimits, ReadLimits,
    Reader,
};
use crate::driver::{
    ConsensusNetwork, ConsensusStore, Driver, DriverInput, DriverSettings, DurableConsensus,
};
use crate::metrics::Metrics;
use crate::net::follower;
use crate::net::p2p::{self, P2pHandle, P2pSettings};
use crate::net::router::{self, RouterSettings, Routes};
use crate::net::sync::{BlockAnnouncement, Fetcher, MAX_SYNC_RESPONSE_BYTES};
use crate::storage::Store;

/// Capacity of the consensus driver's input queue.
const DRIVER_QUEUE_CAPACITY: usize = 16_384;

/// Command-line overrides of the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Replaces `p2p.listen`.
    pub p2p_listen: Option<String>,
    /// Replaces `rpc.listen`.
    pub rpc_listen: Option<String>,
    /// Ignore the checkpoint: rebuild the ledger from the genesis.
    pub replay_from_genesis: bool,
}

/// Everything checked before the node starts anything.
struct Prepared {
    config: NodeConfig,
    genesis: Genesis,
    validators: ValidatorSet,
    key: ed25519_dalek::SigningKey,
    me: AccountId,
}

/// Reads the genesis and the key, and checks the config against them: the node's key is in
/// the genesis with the config's role, and the network can carry this consensus's largest
/// message and a sync response.
fn prepare(config: NodeConfig) -> Result<Prepared> {
    let genesis = read_genesis(&config.genesis_file)?;
    check_genesis(&genesis)
        .with_context(|| format!("{} is invalid", config.genesis_file.display()))?;
    let validators = validator_set(&genesis).context("invalid validator set")?;
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
    let needed = message_bound(validators.len()).max(MAX_SYNC_RESPONSE_BYTES + 4096);
    if config.p2p.max_message_bytes < needed {
        bail!(
            "config: field `p2p.max_message_bytes`: {} is too small for a consortium of {} \
             validators: a proposal or a sync response can be {needed} bytes",
            config.p2p.max_message_bytes,
            validators.len()
        );
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
    let replay_from_genesis = overrides.replay_from_genesis;
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
    // TLS unless the config says plain HTTP (`NodeConfig::load` checked it is one or the
    // other): a certificate that cannot be read stops the node here, before it opens or
    // creates its database and joins the network (before, it was found only after the
    // consensus driver had started).
    let tls = match (
        &config.rpc.tls_cert,
        &config.rpc.tls_key,
        config.rpc.plain_http,
    ) {
        (Some(cert), Some(key), false) => Some(api::tls::server_config(cert, key)?),
        (None, None, true) => None,
        _ => anyhow::bail!(
            "[rpc] needs tls_cert and tls_key, or plain_http = true (and not both): refusing to \
             serve"
        ),
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let store =
        Arc::new(Store::open(&config.data_dir.join("db")).context("cannot open the database")?);
    let metrics = Arc::new(Metrics::new());
    let mempool = Arc::new(Mutex::new(Mempool::new(MempoolLimits {
        max_transactions: config.mempool.max_transactions,
        max_per_signer: config.mempool.max_per_signer,
        client_backlog: Some(crate::app::ClientBacklog {
            drain: std::time::Duration::from_millis(config.mempool.client_backlog_ms),
            floor: config.mempool.client_backlog_floor,
        }),
    })));
    let limits = BlockLimits {
        max_transactions: config.block.max_transactions,
        max_bytes: config.block.max_bytes,
    };
    let genesis_hash = genesis.hash();
    let is_validator = config.role == Role::Validator;

    let (network, events) = p2p::start(P2pSettings {
        secret_key: key.to_bytes(),
        listen: config.p2p.listen.clone(),
        peers: config
            .p2p
            .peers
            .iter()
            .map(|p| (p.key, p.address.clone()))
            .collect(),
        allowed: genesis
            .validators
            .iter()
            .chain(&genesis.observers)
            .map(|n| n.key)
            .collect(),
        consensus_peers: if is_validator {
            genesis.validators.iter().map(|v| v.key).collect()
        } else {
            Vec::new()
        },
        network_id: format!("{}-{}", genesis.chain_id, &genesis_hash.to_hex()[..16]),
        max_message_bytes: config.p2p.max_message_bytes,
        follow_blocks: !is_validator,
        unframed_writes: false,
    })
    .await
    .context("cannot start networking")?;

    // A new node, or one far behind: join from a peer's certified state (ADR 0011). (A node
    // with no peers to dial has no one to join from, but peers may dial it: it does not wait.)
    if config.sync.state_sync && !config.p2p.peers.is_empty() {
        let joined = crate::net::state_sync::join(
            &network,
            &validators,
            &genesis,
            store.clone(),
            config.storage.checkpoint_interval_blocks,
            Duration::from_secs(30),
            &metrics,
        )
        .await
        .context("state sync failed")?;
        if let Some(joined) = joined {
            tracing::info!(
                height = joined.height,
                entries = joined.entries,
                refused_chunks = joined.refused_chunks,
                seconds = joined.took.as_secs_f64(),
                "joined by state sync"
            );
        }
    }

    let core = Core::open_from(
        &genesis,
        store.clone(),
        limits,
        mempool.clone(),
        metrics.clone(),
        !replay_from_genesis,
    )?
    .with_statements(store.clone())
    .context("cannot start the statement writer")?
    .with_checkpoints(
        config.storage.checkpoint_interval_blocks,
        Some(config.storage.retain_blocks).filter(|r| *r > 0),
    )
    .context("cannot start the checkpoint writer")?
    .with_halt_height(config.halt_height);
    if core.halted() {
        tracing::warn!(
            height = core.tip().height,
            halt_height = ?config.halt_height,
            "the chain is at the halt height (halt_height in the node config): not going past \
             it. Raise or remove it to go on"
        );
    }
    let start = core.start_report();
    let statement_progress = core.statement_progress();
    let core_views = core.subscribe();
    tracing::info!(
        node = %config.name,
        role = ?config.role,
        height = core.tip().height,
        state_root = %core.tip().state_root,
        "opened chain"
    );

    let reader = Reader::new(
        store.clone(),
        core.subscribe(),
        ReadLimits {
            expensive_reads: config.rpc.max_concurrent_expensive_reads,
            ..ReadLimits::default()
        },
    );
    let driver_wake = Arc::new(Notify::new());
    let admission = {
        let admission = Admission::new(
            genesis.chain_id.clone(),
            mempool.clone(),
            core.subscribe(),
            store.clone(),
            metrics.clone(),
            AdmissionSettings::default(),
        )
        .gossiping({
            let network = network.clone();
            Arc::new(move |txs: Vec<SignedTransaction>| {
                network.publish_transactions(codec::encode(&txs))
            })
        });
        if is_validator {
            admission.waking(driver_wake.clone())
        } else {
            admission
        }
    };
    // What this node acknowledged before a restart is offered again; whatever lingers
    // uncommitted is offered again periodically.
    if is_validator {
        admission
            .restore()
            .await
            .context("cannot read the acknowledged transactions")?;
    }
    tokio::spawn(admission.clone().reoffer_forever());
    let (driver_tx, driver_rx) = mpsc::channel::<DriverInput>(DRIVER_QUEUE_CAPACITY);
    let announced = Arc::new(Notify::new());
    let peers = Arc::new(AtomicUsize::new(0));
    router::spawn(
        events,
        Routes {
            network: network.clone(),
            admission: admission.clone(),
            reader: reader.clone(),
            driver: is_validator.then(|| driver_tx.clone()),
            announced: announced.clone(),
            peers: peers.clone(),
            metrics: metrics.clone(),
            journal: if config.consensus.journal {
                let path = config.data_dir.join("consensus-journal");
                Some(
                    crate::net::journal::Journal::open(&path, validators.clone())
                        .with_context(|| format!("cannot open {}", path.display()))?,
                )
            } else {
                None
            },
        },
        RouterSettings::default(),
    );
    let fetcher = Arc::new(Fetcher::new(
        network.clone(),
        validators.clone(),
        metrics.clone(),
    ));

    let worker = if is_validator {
        let mut durable = DurableConsensus::new(store.clone());
        let persisted = durable.load()?;
        let engine = Engine::new(
            EngineConfig {
                round_timeout_base_ms: config.consensus.round_timeout_ms,
                ..EngineConfig::default()
            },
            validators.clone(),
            key.clone(),
            persisted,
            core.next_height(),
        )
        .context("cannot start consensus")?;
        tokio::spawn(announce_commits(core.subscribe(), network.clone()));
        let consensus_network: Arc<dyn ConsensusNetwork> = Arc::new(P2pConsensus {
            handle: network.clone(),
            driver: driver_tx.clone(),
            fetcher: fetcher.clone(),
        });
        let driver = Driver::new(
            engine,
            &key,
            core,
            durable,
            consensus_network,
            metrics.clone(),
            DriverSettings {
                empty_block_interval_ms: config.consensus.empty_block_interval_ms,
            },
        );
        tokio::spawn(driver.run(driver_rx, driver_wake))
    } else {
        tokio::spawn(follower::follow(
            core,
            fetcher,
            announced,
            Duration::from_millis(config.p2p.sync_interval_ms),
        ))
    };

    let (stopping, _) = watch::channel(false);
    let state = ApiState {
        node: config.name.clone(),
        read_only: !is_validator,
        chain_id: genesis.chain_id.clone(),
        currency: genesis.currency.clone(),
        decimals: genesis.decimals,
        reader,
        mempool,
        admission,
        peers,
        metrics,
        p2p_stats: {
            let network = network.clone();
            Arc::new(move || network.stats())
        },
        limits: Arc::new(api::limits::ApiLimits::from_config(&config.rpc)),
        shutdown: stopping.subscribe(),
        start,
        halt_height: config.halt_height,
        statements: statement_progress,
        iso_orders: Default::default(),
        auth: Arc::new(api::auth::Auth::for_genesis(&genesis, &config.rpc)),
        recent_events: Default::default(),
        health: Arc::new(api::health::Health {
            validators: genesis.validators.iter().map(|v| v.key).collect(),
            quorum: validators.quorum(),
            me,
            validator: is_validator,
            stall_after: Duration::from_millis(
                config
                    .consensus
                    .round_timeout_ms
                    .saturating_mul(2)
                    .saturating_add(config.consensus.empty_block_interval_ms),
            ),
            connected: {
                let network = network.clone();
                Arc::new(move || network.connected_now())
            },
        }),
    };
    let listener = tokio::net::TcpListener::bind(&config.rpc.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.rpc.listen))?;
    tracing::info!(
        rpc = %config.rpc.listen,
        tls = tls.is_some(),
        p2p = %config.p2p.listen,
        me = %me,
        signature_arithmetic = interpool_contracts::zip215::arithmetic(),
        "node started"
    );
    let app = api::router(state, config.rpc.max_body_bytes);
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("stopping");
        let _ = stopping.send(true);
    };
    // Over TLS, or plain HTTP where the deployment chose it: one accept loop, with the same
    // timeouts and connection bounds.
    let server = api::tls::serve(listener, app, tls, shutdown);
    let views = core_views;
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.context("HTTP server failed")?,
        result = worker => {
            match result {
                Ok(Ok(())) => {
                    let height = views.borrow().tip.height;
                    match config.halt_height {
                        // The chain stops here; the node goes on answering reads and serving
                        // blocks (a node or observer still behind catches up to the halt
                        // height from it) until the operator stops it for the upgrade.
                        Some(halt) if height >= halt => {
                            // The chain stops here. For a short while the node goes on
                            // answering reads and serving blocks, so that a node or an
                            // observer still behind reaches the halt height from it; then it
                            // exits.
                            let drain = halt_drain(&config);
                            tracing::warn!(
                                height,
                                drain_seconds = drain.as_secs_f64(),
                                "reached the halt height (halt_height in the node config): \
                                 committing nothing more; serving blocks to peers still \
                                 behind, then stopping"
                            );
                            tokio::select! {
                                result = &mut server => result.context("HTTP server failed")?,
                                () = tokio::time::sleep(drain) => {}
                            }
                            tracing::warn!(
                                height,
                                "stopped at the halt height; raise or remove halt_height in \
                                 the node config and start the node again to go on"
                            );
                            return Ok(());
                        }
                        _ => bail!("the consensus task stopped"),
                    }
                }
                Ok(Err(error)) => return Err(error).context("stopping: the chain cannot continue"),
                Err(error) => bail!("the consensus task panicked: {error}"),
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long a node that reached its halt height goes on serving blocks before it exits:
/// two round timeouts and an empty-block interval, long enough for a peer a block behind.
fn halt_drain(config: &NodeConfig) -> Duration {
    Duration::from_millis(
        config
            .consensus
            .round_timeout_ms
            .saturating_mul(2)
            .saturating_add(config.consensus.empty_block_interval_ms),
    )
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

/// The driver's view of the network.
struct P2pConsensus {
    handle: P2pHandle,
    driver: mpsc::Sender<DriverInput>,
    fetcher: Arc<Fetcher>,
}

impl ConsensusNetwork for P2pConsensus {
    fn broadcast(&self, message: Vec<u8>) {
        self.handle.broadcast_consensus(message);
    }

    fn send_to(&self, validator: AccountId, message: Vec<u8>) {
        self.handle.send_consensus(validator, message);
    }

    fn request_blocks(&self, tip: &ChainTip) {
        let driver = self.driver.clone();
        let fetcher = self.fetcher.clone();
        let mut after = tip.clone();
        tokio::spawn(async move {
            // While a peer is ahead, keep fetching after the last block received (its
            // certificate and links verified; the core checks the state roots).
            loop {
                let Some(fetched) = fetcher.fetch(&after).await else {
                    tracing::debug!(height = after.height, "no peer could serve blocks");
                    return;
                };
                for block in fetched.blocks {
                    if let Ok(header) =
                        Block::decode_header(&block.payload, MAX_PAYLOAD_BYTES as u64)
                    {
                        after = ChainTip {
                            chain_id: after.chain_id.clone(),
                            height: block.height,
                            hash: Block::hash_of(&block.payload),
                            state_root: after.state_root,
                            timestamp_ms: header.timestamp_ms,
                        };
                    }
                    let input = DriverInput::Synced {
                        height: block.height,
                        payload: block.payload,
                        certificate: block.certificate,
                    };
                    if driver.send(input).await.is_err() {
                        return;
                    }
                }
                if fetched.peer_tip <= after.height {
                    return;
                }
            }
        });
    }
}

/// Validators: announce every committed height to the followers (observers).
async fn announce_commits(mut commits: watch::Receiver<Arc<ChainView>>, network: P2pHandle) {
    while commits.changed().await.is_ok() {
        let height = commits.borrow_and_update().tip.height;
        network.announce_block(codec::encode(&BlockAnnouncement { height }));
    }
}
