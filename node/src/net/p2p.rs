//! The node's peer-to-peer service: libp2p over TCP, Noise and Yamux, driven by one tokio
//! task that owns the [`Swarm`]; the rest of the node talks to it through a [`P2pHandle`]
//! (commands in) and a bounded [`P2pEvent`] receiver (events out), with opaque bytes and
//! [`AccountId`]s only, never libp2p types.
//!
//! * **Who may connect.** Only keys listed in the genesis (`allowed`): the allow-list
//!   behaviour comes first in [`Behaviour`], so a connection from anyone else is denied the
//!   moment the Noise handshake reveals its key, before any protocol handler exists; it
//!   cannot get a single message in. We dial only the configured `peers`, and redial them
//!   with exponential backoff ([`REDIAL_BACKOFF_MIN`] … [`REDIAL_BACKOFF_MAX`]) when they drop.
//! * **Transactions** spread by gossipsub on one topic per network: messages are signed by
//!   the node key and checked strictly, and held back until the application validates them
//!   ([`P2pHandle::report_gossip`]): accepted ones are forwarded, rejected ones are dropped
//!   and cost the peer that sent them gossip score (P₄), until it is graylisted.
//! * **Block announcements** ("height h is committed") go by gossipsub on a second topic,
//!   to which only followers (observers) subscribe: they wake an observer's sync at once
//!   instead of at its next poll. An announcement is only a hint: what the observer then
//!   fetches is applied only if its certificate verifies.
//! * **Consensus messages** go directly to a peer, as length-prefixed frames on one
//!   long-lived stream per peer and direction ([`links`]), without acknowledgement (the
//!   engine retransmits); **sync** is request-response, and its responses carry a status
//!   byte, so "busy" and "cannot answer" are told apart from an answer.
//! * **Events by kind.** Consensus messages, gossip, sync requests and peer churn each have
//!   their own bounded queue ([`P2pEvents`]), so a flood of one kind cannot delay another.
//!   Consensus messages are accepted only from `consensus_peers` (the validators), checked
//!   here before they take a slot: an observer's key may connect, but not vote.
//! * **Bounds.** Every frame from a peer is checked against `max_message_bytes` before
//!   anything is allocated for it ([`codec`]); the command and event queues are bounded; when
//!   the application falls behind, gossip and consensus messages are dropped and counted
//!   ([`P2pStats`]) rather than stalling the swarm, and sync requests are answered "busy".
//!
//! Protocol names and the gossip topics carry `network_id`, so two chains never mix.

pub(crate) mod codec;
mod links;
mod pending_inbound;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use interpool_contracts::AccountId;
use libp2p::gossipsub::{self, MessageAcceptance, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::{self, Keypair};
use libp2p::request_response::{
    self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol,
    Swarm,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use self::codec::FrameCodec;
use self::links::Links;
use self::pending_inbound::{
    PendingInbound, TooManyPending, MAX_PENDING_PER_SOURCE, MAX_PENDING_UNLISTED,
};
use crate::metrics::LogThrottle;

/// Capacity of the command queue (handle → network task).
pub const COMMAND_QUEUE_CAPACITY: usize = 4_096;
/// Capacity of the consensus event queue (network task → application).
pub const CONSENSUS_QUEUE_CAPACITY: usize = 4_096;
/// Capacity of the gossip event queue (transaction batches and block announcements).
pub const GOSSIP_QUEUE_CAPACITY: usize = 1_024;
/// Capacity of the sync request queue.
pub const SYNC_QUEUE_CAPACITY: usize = 64;
/// Capacity of the peer churn queue.
pub const PEER_QUEUE_CAPACITY: usize = 1_024;
/// How long a sync request may take, both for our requests and for the application to
/// answer a peer's request.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay before redialing a configured peer that dropped or could not be reached.
pub const REDIAL_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest delay between two dials of a configured peer.
pub const REDIAL_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Most outstanding sync requests of ours at once.
pub const MAX_PENDING_REQUESTS: usize = 1_024;
/// How long [`start`] waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Allowance for gossipsub's envelope (signature, public key, topic, sequence number,
/// protobuf framing) on top of the application payload: gossipsub limits whole frames.
const GOSSIP_ENVELOPE_BYTES: usize = 1_024;
/// Most concurrent request-response streams per protocol and connection.
const MAX_CONCURRENT_STREAMS: usize = 256;
/// Two simultaneous dials (each side dialing the other) may leave two connections per peer.
const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// How long a connection may take from TCP accept (inbound) or from the dial (outbound) to
/// the end of its Noise and Yamux handshakes; past it the attempt fails and its pending slot
/// is freed. libp2p's `SwarmBuilder` applies the same 10 s by default (both directions, one
/// `TransportTimeout`); it is set here so that what bounds a pending slot is written down.
/// Between consortium members a handshake takes a few round trips, far less than this.
const CONNECTION_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// One warning line per second at most about sources refused for too many handshakes.
static PENDING_REFUSED_LOG: LogThrottle = LogThrottle::new(1_000);
/// Peer connect/disconnect events kept while the event queue is full.
const MAX_QUEUED_PEER_EVENTS: usize = 1_024;
/// A connection that lasted this long was healthy: the next redial starts from the minimum
/// backoff again. Shorter ones (a peer that accepts and drops at once) keep backing off.
const STABLE_CONNECTION: Duration = REDIAL_BACKOFF_MAX;

/// First byte of a sync response: the answer follows.
const SYNC_OK: u8 = 0;
/// First byte of a sync response: the peer's application queue was full.
const SYNC_BUSY: u8 = 1;
/// First byte of a sync response: the peer's application did not answer (in time, or within
/// `max_message_bytes`).
const SYNC_UNAVAILABLE: u8 = 2;

/// What [`start`] needs.
#[derive(Clone)]
pub struct P2pSettings {
    /// The node's ed25519 secret key (also its consensus key); its peer id derives from it.
    pub secret_key: [u8; 32],
    /// Multiaddr to listen on, e.g. `/ip4/127.0.0.1/tcp/26000` (`tcp/0` picks a free port:
    /// see [`P2pHandle::listen_address`]).
    pub listen: String,
    /// Peers to dial and keep dialing: their ed25519 public key and multiaddr.
    pub peers: Vec<(AccountId, String)>,
    /// Every key in the genesis (validators and observers); nobody else may connect.
    pub allowed: Vec<AccountId>,
    /// The keys whose consensus messages are accepted (the validators); those of any other
    /// allowed peer are dropped and counted before they take a queue slot.
    pub consensus_peers: Vec<AccountId>,
    /// Names this network (chain id and genesis hash prefix) in protocol names and the topics.
    pub network_id: String,
    /// Largest message accepted from or sent to a peer, checked before decoding.
    pub max_message_bytes: usize,
    /// Subscribe to block announcements (observers, which follow the chain by sync), and
    /// not to transactions; validators publish announcements and gossip transactions.
    pub follow_blocks: bool,
    /// **Hostile-peer tests only**: write requests as given, without their length prefix,
    /// so that a test can put any prefix on the wire (a peer lying about a frame's size).
    /// Always false in a node.
    #[doc(hidden)]
    pub unframed_writes: bool,
}

/// What can go wrong starting the network or with one request.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The secret key is not a valid ed25519 secret.
    #[error("invalid ed25519 secret key: {0}")]
    InvalidSecretKey(String),
    /// A key in `allowed` or `peers` is not a valid ed25519 public key.
    #[error("{0} is not a valid ed25519 public key")]
    InvalidPeerKey(AccountId),
    /// A multiaddr did not parse.
    #[error("invalid multiaddr {address:?}: {reason}")]
    InvalidAddress {
        /// The text given.
        address: String,
        /// Why it did not parse.
        reason: String,
    },
    /// The network id does not make valid protocol names, or libp2p refused the config.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// Could not listen on the configured address.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The listen address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The peer is not in the allowed set.
    #[error("peer {0} is not in the allowed set")]
    UnknownPeer(AccountId),
    /// The peer is not connected right now.
    #[error("peer {0} is not connected")]
    NotConnected(AccountId),
    /// The message exceeds `max_message_bytes`.
    #[error("message of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Too many of our requests are outstanding.
    #[error("too many outstanding requests")]
    TooManyRequests,
    /// The peer did not answer in time.
    #[error("the request timed out")]
    Timeout,
    /// The peer's application queue was full.
    #[error("the peer is busy")]
    PeerBusy,
    /// The peer's application could not answer.
    #[error("the peer could not answer")]
    PeerUnavailable,
    /// The request failed on the way (connection closed, stream error, protocol mismatch).
    #[error("the request failed: {0}")]
    Failed(String),
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Shutdown,
}

/// Identifies a received gossip message, to report its validation result with
/// [`P2pHandle::report_gossip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipId {
    message: MessageId,
    source: PeerId,
}

/// Something that happened on the network.
#[derive(Debug)]
pub enum P2pEvent {
    /// A gossiped transaction batch. The application must call [`P2pHandle::report_gossip`]
    /// with `id`: until then it is not forwarded.
    Transactions {
        /// The peer that sent it to us (not necessarily its author).
        from: AccountId,
        /// To report the validation result.
        id: GossipId,
        /// The batch, opaque.
        bytes: Vec<u8>,
    },
    /// A gossiped block announcement (only with [`P2pSettings::follow_blocks`]). Report it
    /// with [`P2pHandle::report_gossip`] like a transaction batch.
    BlockAnnounced {
        /// The peer that sent it to us.
        from: AccountId,
        /// To report the validation result.
        id: GossipId,
        /// The announcement, opaque.
        bytes: Vec<u8>,
    },
    /// A consensus message sent to us (already acknowledged to the sender).
    Consensus {
        /// The sending peer.
        from: AccountId,
        /// The message, opaque.
        bytes: Vec<u8>,
    },
    /// A sync request. Answer through `respond` within [`SYNC_REQUEST_TIMEOUT`] and at most
    /// `max_message_bytes - 1` bytes; dropping `respond` tells the peer "unavailable".
    SyncRequest {
        /// The requesting peer.
        from: AccountId,
        /// The request, opaque.
        bytes: Vec<u8>,
        /// Where the response goes.
        respond: oneshot::Sender<Vec<u8>>,
    },
    /// The first connection to an allowed peer was established.
    PeerConnected(AccountId),
    /// The last connection to a peer closed.
    PeerDisconnected(AccountId),
}

/// Counters of what the network dropped or refused (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct P2pStats {
    /// Gossip messages dropped because the event queue was full.
    pub gossip_dropped: u64,
    /// Consensus messages dropped because the event queue was full.
    pub consensus_dropped: u64,
    /// Consensus messages refused because their sender is not a validator.
    pub consensus_refused: u64,
    /// Sync requests answered "busy" because the event queue was full.
    pub sync_busy: u64,
    /// Commands dropped because the command queue was full.
    pub commands_dropped: u64,
    /// Inbound connections refused (key not allowed, or connection limits).
    pub connections_refused: u64,
    /// Consensus messages we could not deliver (not connected, too large, stream failure).
    pub send_failures: u64,
    /// Gossip publications that failed (no subscribed peer yet, too large, queues full).
    pub publish_failures: u64,
    /// Dials of configured peers that failed (each is retried after a backoff).
    pub dial_failures: u64,
    /// Inbound requests that failed after being read (timeout, closed stream). A frame
    /// refused by the codec is not counted here: see `frames_refused`.
    pub inbound_failures: u64,
    /// Frames refused by the codec before anything was allocated for them (a length prefix
    /// over `max_message_bytes`).
    pub frames_refused: u64,
}

#[derive(Default)]
struct Counters {
    gossip_dropped: AtomicU64,
    consensus_dropped: AtomicU64,
    consensus_refused: AtomicU64,
    sync_busy: AtomicU64,
    commands_dropped: AtomicU64,
    connections_refused: AtomicU64,
    send_failures: AtomicU64,
    publish_failures: AtomicU64,
    dial_failures: AtomicU64,
    inbound_failures: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// State the handle reads without a round trip to the network task.
struct Shared {
    me: AccountId,
    /// Every allowed key and its peer id (computed once: the conversion decompresses a point).
    peer_ids: HashMap<AccountId, PeerId>,
    connected: Mutex<BTreeSet<AccountId>>,
    listen_addresses: Mutex<Vec<Multiaddr>>,
    counters: Counters,
    /// Shared with the codec, which refuses oversized frames before libp2p sees a request.
    frames_refused: Arc<AtomicU64>,
    max_message_bytes: usize,
}

/// The network task holds no lock across an await, and no code path panics while holding
/// one; should that ever change, the data (a set of keys, a list of addresses) stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Command {
    Publish(Topic, Vec<u8>),
    Report(GossipId, bool),
    Send(PeerId, Vec<u8>),
    Broadcast(Vec<u8>),
    Request(
        PeerId,
        AccountId,
        Vec<u8>,
        oneshot::Sender<Result<Vec<u8>, P2pError>>,
    ),
    GossipPeers(oneshot::Sender<Vec<AccountId>>),
    GossipScore(PeerId, oneshot::Sender<Option<f64>>),
}

/// The application's side of the network. Cheap to clone; the network task stops when the
/// last handle is dropped.
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl P2pHandle {
    /// This node's key.
    pub fn local_id(&self) -> AccountId {
        self.shared.me
    }

    /// The first address we listen on (with the actual port when `tcp/0` was asked for).
    pub async fn listen_address(&self) -> Option<String> {
        lock(&self.shared.listen_addresses)
            .first()
            .map(ToString::to_string)
    }

    /// Gossips a transaction batch (opaque bytes) to the network. Fire-and-forget: a batch
    /// that cannot go out (too large, no peer yet, queue full) is counted and dropped.
    pub fn publish_transactions(&self, batch: Vec<u8>) {
        if batch.len() > self.shared.max_message_bytes {
            tracing::warn!(
                bytes = batch.len(),
                max = self.shared.max_message_bytes,
                "gossip batch too large; not sent"
            );
            bump(&self.shared.counters.publish_failures);
            return;
        }
        self.command(Command::Publish(Topic::Transactions, batch));
    }

    /// Announces a committed block (opaque bytes, small) to the peers that follow blocks.
    /// Fire-and-forget; with no follower connected there is nobody to tell, which is not a
    /// failure.
    pub fn announce_block(&self, announcement: Vec<u8>) {
        if announcement.len() > self.shared.max_message_bytes {
            bump(&self.shared.counters.publish_failures);
            return;
        }
        self.command(Command::Publish(Topic::Blocks, announcement));
    }

    /// Reports the application's verdict on a gossip message: valid ones are forwarded,
    /// invalid ones are dropped and the peer that sent it loses gossip score.
    pub fn report_gossip(&self, id: GossipId, valid: bool) {
        self.command(Command::Report(id, valid));
    }

    /// Sends a consensus message to one peer. Fire-and-forget: consensus retransmits, so a
    /// message to a peer that is not connected is counted and dropped.
    pub fn send_consensus(&self, to: AccountId, message: Vec<u8>) {
        let Some(peer) = self.shared.peer_ids.get(&to).copied() else {
            tracing::debug!(%to, "consensus message to a peer outside the allowed set; dropped");
            bump(&self.shared.counters.send_failures);
            return;
        };
        if self.too_large(message.len()) {
            return;
        }
        self.command(Command::Send(peer, message));
    }

    /// Sends a consensus message to every connected validator (`consensus_peers`).
    pub fn broadcast_consensus(&self, message: Vec<u8>) {
        if self.too_large(message.len()) {
            return;
        }
        self.command(Command::Broadcast(message));
    }

    /// Sends a sync request to a connected peer and waits for its answer (at most
    /// [`SYNC_REQUEST_TIMEOUT`]).
    pub async fn request(&self, to: AccountId, request: Vec<u8>) -> Result<Vec<u8>, P2pError> {
        let peer = *self
            .shared
            .peer_ids
            .get(&to)
            .ok_or(P2pError::UnknownPeer(to))?;
        let max = self.shared.max_message_bytes;
        if request.len() > max {
            return Err(P2pError::TooLarge {
                bytes: request.len(),
                max,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request(peer, to, request, reply))
            .await
            .map_err(|_| P2pError::Shutdown)?;
        answer.await.map_err(|_| P2pError::Shutdown)?
    }

    /// The peers connected right now, in key order.
    pub async fn connected_peers(&self) -> Vec<AccountId> {
        self.connected_now()
    }

    /// The peers connected now (a snapshot; no await needed).
    pub fn connected_now(&self) -> Vec<AccountId> {
        lock(&self.shared.connected).iter().copied().collect()
    }

    /// The peers subscribed to the transaction topic (those a publication reaches directly).
    pub async fn gossip_peers(&self) -> Vec<AccountId> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::GossipPeers(reply))
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Our gossip score of a peer (negative after it sent invalid messages), if known.
    pub async fn gossip_score(&self, peer: AccountId) -> Option<f64> {
        let peer_id = *self.shared.peer_ids.get(&peer)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::GossipScore(peer_id, reply))
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// What was dropped or refused so far.
    pub fn stats(&self) -> P2pStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        P2pStats {
            gossip_dropped: get(&c.gossip_dropped),
            consensus_dropped: get(&c.consensus_dropped),
            consensus_refused: get(&c.consensus_refused),
            sync_busy: get(&c.sync_busy),
            commands_dropped: get(&c.commands_dropped),
            connections_refused: get(&c.connections_refused),
            send_failures: get(&c.send_failures),
            publish_failures: get(&c.publish_failures),
            dial_failures: get(&c.dial_failures),
            inbound_failures: get(&c.inbound_failures),
            frames_refused: get(&self.shared.frames_refused),
        }
    }

    fn too_large(&self, bytes: usize) -> bool {
        let max = self.shared.max_message_bytes;
        if bytes > max {
            tracing::warn!(bytes, max, "consensus message too large; not sent");
            bump(&self.shared.counters.send_failures);
        }
        bytes > max
    }

    fn command(&self, command: Command) {
        match self.commands.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("network command queue full; command dropped");
                bump(&self.shared.counters.commands_dropped);
            }
            Err(TrySendError::Closed(_)) => {
                tracing::debug!("network task stopped; command dropped")
            }
        }
    }
}

/// The two gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    /// Transaction batches: every node.
    Transactions,
    /// Block announcements: followers subscribe, validators publish.
    Blocks,
}

/// The topics' libp2p names, derived from the network id.
#[derive(Clone)]
struct Topics {
    transactions: gossipsub::IdentTopic,
    blocks: gossipsub::IdentTopic,
}

impl Topics {
    fn new(network_id: &str) -> Self {
        Self {
            transactions: gossipsub::IdentTopic::new(format!(
                "/interpool/{network_id}/transactions/1"
            )),
            blocks: gossipsub::IdentTopic::new(format!("/interpool/{network_id}/blocks/1")),
        }
    }

    fn hash(&self, topic: Topic) -> gossipsub::TopicHash {
        match topic {
            Topic::Transactions => self.transactions.hash(),
            Topic::Blocks => self.blocks.hash(),
        }
    }
}

/// The libp2p behaviours, in the order libp2p consults them for each new connection: the
/// allow-list must come first so that a denied connection never reaches the others.
/// `pending_inbound` bounds connections still in their handshake (per source, and the
/// unlisted sources together); `limits` bounds established connections per peer.
#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pending_inbound: PendingInbound,
    limits: connection_limits::Behaviour,
    gossip: gossipsub::Behaviour,
    consensus: libp2p_stream::Behaviour,
    sync: request_response::Behaviour<FrameCodec>,
}

/// The peer id of an ed25519 public key.
fn peer_id_of(key: &AccountId) -> Result<PeerId, P2pError> {
    let public = identity::ed25519::PublicKey::try_from_bytes(&key.0)
        .map_err(|_| P2pError::InvalidPeerKey(*key))?;
    Ok(identity::PublicKey::from(public).to_peer_id())
}

fn parse_address(address: &str) -> Result<Multiaddr, P2pError> {
    address
        .parse::<Multiaddr>()
        .map_err(|error| P2pError::InvalidAddress {
            address: address.to_string(),
            reason: error.to_string(),
        })
}

fn protocol(network_id: &str, name: &str) -> Result<StreamProtocol, P2pError> {
    StreamProtocol::try_from_owned(format!("/interpool/{network_id}/{name}/1"))
        .map_err(|error| P2pError::Config(format!("network id {network_id:?}: {error}")))
}

/// Gossip scoring for a closed consortium: only invalid messages (P₄) cost score. Mesh
/// delivery quotas (P₃) would punish honest peers on a quiet chain, and IP colocation would
/// punish a localnet where every node shares 127.0.0.1, so both are off.
fn score_params(topics: &Topics) -> gossipsub::PeerScoreParams {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // Score = -10 × (invalid messages)², decaying to nothing over about a minute: three
        // invalid batches in quick succession take a peer below the graylist threshold (-80),
        // after which its gossip is ignored until the penalty decays.
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(60)),
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..gossipsub::PeerScoreParams::default()
    };
    for topic in [Topic::Transactions, Topic::Blocks] {
        params
            .topics
            .insert(topics.hash(topic), topic_params.clone());
    }
    params
}

fn build_swarm(
    keypair: Keypair,
    settings: &P2pSettings,
    topics: &Topics,
    allowed: impl Iterator<Item = PeerId>,
    listed: &[Multiaddr],
    frames_refused: Arc<AtomicU64>,
) -> Result<Swarm<Behaviour>, P2pError> {
    let config_error = |error: &dyn std::fmt::Display| P2pError::Config(error.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(
            settings
                .max_message_bytes
                .saturating_add(GOSSIP_ENVELOPE_BYTES),
        )
        .build()
        .map_err(|e| config_error(&e))?;
    let mut gossip =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), gossip_config)
            .map_err(|e| config_error(&e))?;
    gossip
        .with_peer_score(
            score_params(topics),
            gossipsub::PeerScoreThresholds::default(),
        )
        .map_err(|e| config_error(&e))?;
    // A follower (observer) proposes nothing and accepts no writes: it takes no
    // transactions from gossip (checking each one's signature there was a fifth of its CPU
    // under load), only the blocks that carry them.
    if !settings.follow_blocks {
        gossip
            .subscribe(&topics.transactions)
            .map_err(|e| config_error(&e))?;
    }
    if settings.follow_blocks {
        gossip
            .subscribe(&topics.blocks)
            .map_err(|e| config_error(&e))?;
    }

    let codec = FrameCodec::new(settings.max_message_bytes, frames_refused)
        .with_unframed_writes(settings.unframed_writes);
    let consensus = libp2p_stream::Behaviour::new();
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(
            protocol(&settings.network_id, "sync")?,
            ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(SYNC_REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
    );
    let mut allowed_list = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for peer in allowed {
        allowed_list.allow_peer(peer);
    }
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
    );
    // Inbound connections still in their handshake, from dialers not yet known, are bounded
    // by `pending_inbound`: per source, and for sources other than the configured peers'
    // addresses and those members connected from, together (what a flooding host can tie
    // up).
    let behaviour = Behaviour {
        allowed: allowed_list,
        pending_inbound: PendingInbound::new(MAX_PENDING_PER_SOURCE, MAX_PENDING_UNLISTED, listed),
        limits,
        gossip,
        consensus,
        sync,
    };

    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| P2pError::Config(format!("transport: {e}")))?
        .with_behaviour(|_| behaviour)
        .map_err(|never| -> P2pError { match never {} })?
        // Connections between consortium members are meant to stay up: only a failure or
        // a peer going away closes them (and the peer is then redialed), never idleness.
        // Every protocol we open a stream for is one we know the peer speaks (the same
        // binary's protocols): the dialer sends its first bytes with the protocol header
        // instead of waiting a round trip for the echo (multistream-select's `V1Lazy`; the
        // wire format is `V1`'s). Each sync request is one stream.
        .with_swarm_config(|config| {
            config
                .with_idle_connection_timeout(Duration::from_secs(u64::MAX))
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .with_connection_timeout(CONNECTION_SETUP_TIMEOUT)
        .build();
    Ok(swarm)
}

/// Starts the network: listens, dials the configured peers, and returns the handle and the
/// event queues once the listen address is known.
pub async fn start(settings: P2pSettings) -> Result<(P2pHandle, P2pEvents), P2pError> {
    // `ed25519_from_bytes` zeroes the buffer it is given; it gets a copy.
    let mut secret = settings.secret_key;
    let keypair = Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| P2pError::InvalidSecretKey(e.to_string()))?;
    let me = keypair
        .public()
        .try_into_ed25519()
        .map(|public| AccountId(public.to_bytes()))
        .map_err(|e| P2pError::InvalidSecretKey(e.to_string()))?;
    let local_peer = keypair.public().to_peer_id();

    let mut peer_ids = HashMap::new();
    for key in &settings.allowed {
        peer_ids.insert(*key, peer_id_of(key)?);
    }
    let accounts: HashMap<PeerId, AccountId> =
        peer_ids.iter().map(|(key, peer)| (*peer, *key)).collect();
    let listen = parse_address(&settings.listen)?;
    // The configured peers' addresses: dialed (and redialed), and listed for the handshake
    // slots of their sources.
    let peers: Vec<(&AccountId, Multiaddr)> = settings
        .peers
        .iter()
        .map(|(key, address)| Ok((key, parse_address(address)?)))
        .collect::<Result<_, P2pError>>()?;
    let listed: Vec<Multiaddr> = peers.iter().map(|(_, address)| address.clone()).collect();
    let mut redial = HashMap::new();
    for (key, address) in peers {
        let peer = peer_id_of(key)?;
        if peer == local_peer {
            continue;
        }
        if !accounts.contains_key(&peer) {
            tracing::warn!(peer = %key, "configured peer is not in the allowed set; not dialing it");
            continue;
        }
        redial.insert(peer, Redial::new(address));
    }

    let topics = Topics::new(&settings.network_id);
    let frames_refused = Arc::new(AtomicU64::new(0));
    let mut swarm = build_swarm(
        keypair,
        &settings,
        &topics,
        accounts.keys().copied(),
        &listed,
        frames_refused.clone(),
    )?;
    swarm.listen_on(listen).map_err(|e| P2pError::Listen {
        address: settings.listen.clone(),
        reason: with_sources(&e),
    })?;

    let shared = Arc::new(Shared {
        me,
        peer_ids,
        connected: Mutex::new(BTreeSet::new()),
        listen_addresses: Mutex::new(Vec::new()),
        counters: Counters::default(),
        frames_refused,
        max_message_bytes: settings.max_message_bytes,
    });
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
    let (queues, events) = queues();
    let consensus_protocol = protocol(&settings.network_id, "consensus-stream")?;
    let mut control = swarm.behaviour().consensus.new_control();
    let incoming = control
        .accept(consensus_protocol.clone())
        .map_err(|e| P2pError::Config(format!("consensus protocol: {e}")))?;
    let consensus_peers: BTreeSet<AccountId> = settings.consensus_peers.iter().copied().collect();
    tokio::spawn(links::accept(
        incoming,
        accounts.clone(),
        consensus_peers.clone(),
        queues.consensus.clone(),
        shared.clone(),
    ));
    let links = Links::new(
        control,
        consensus_protocol,
        shared.clone(),
        settings.unframed_writes,
    );
    let mut network = Network {
        swarm,
        shared: shared.clone(),
        accounts,
        topics,
        queues,
        consensus_peers,
        queued_peer_events: VecDeque::new(),
        redial,
        pending_requests: HashMap::new(),
        links,
        sync_answers: FuturesUnordered::new(),
        listener_failure: None,
    };
    network.wait_listening(&settings.listen).await?;
    network.dial_due(Instant::now());
    tokio::spawn(network.run(command_rx));
    Ok((P2pHandle { commands, shared }, events))
}

/// The network task's ends of the event queues, one per kind.
struct Queues {
    consensus: mpsc::Sender<P2pEvent>,
    gossip: mpsc::Sender<P2pEvent>,
    sync: mpsc::Sender<P2pEvent>,
    peers: mpsc::Sender<P2pEvent>,
}

fn queues() -> (Queues, P2pEvents) {
    let (consensus, consensus_rx) = mpsc::channel(CONSENSUS_QUEUE_CAPACITY);
    let (gossip, gossip_rx) = mpsc::channel(GOSSIP_QUEUE_CAPACITY);
    let (sync, sync_rx) = mpsc::channel(SYNC_QUEUE_CAPACITY);
    let (peers, peers_rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
    (
        Queues {
            consensus,
            gossip,
            sync,
            peers,
        },
        P2pEvents {
            consensus: consensus_rx,
            gossip: gossip_rx,
            sync: sync_rx,
            peers: peers_rx,
        },
    )
}

/// The application's ends of the event queues, one per kind, each bounded: a full one drops
/// (and counts) its own kind only.
#[derive(Debug)]
pub struct P2pEvents {
    /// [`P2pEvent::Consensus`] from validators only.
    pub consensus: mpsc::Receiver<P2pEvent>,
    /// [`P2pEvent::Transactions`] and [`P2pEvent::BlockAnnounced`].
    pub gossip: mpsc::Receiver<P2pEvent>,
    /// [`P2pEvent::SyncRequest`].
    pub sync: mpsc::Receiver<P2pEvent>,
    /// [`P2pEvent::PeerConnected`] and [`P2pEvent::PeerDisconnected`].
    pub peers: mpsc::Receiver<P2pEvent>,
}

impl P2pEvents {
    /// The next event of any kind (peer churn first, then consensus, sync, gossip), for
    /// callers that handle every kind in one place, such as tests; `None` once the network
    /// task has stopped and every queue is drained.
    pub async fn recv(&mut self) -> Option<P2pEvent> {
        tokio::select! {
            biased;
            Some(event) = self.peers.recv() => Some(event),
            Some(event) = self.consensus.recv() => Some(event),
            Some(event) = self.sync.recv() => Some(event),
            Some(event) = self.gossip.recv() => Some(event),
            else => None,
        }
    }
}

/// Redial state of one configured peer.
struct Redial {
    address: Multiaddr,
    backoff: Duration,
    /// When to dial next; `Some` while disconnected.
    due: Option<Instant>,
    /// When the current connection was established.
    connected_since: Option<Instant>,
}

impl Redial {
    fn new(address: Multiaddr) -> Self {
        Self {
            address,
            backoff: REDIAL_BACKOFF_MIN,
            due: Some(Instant::now()),
            connected_since: None,
        }
    }
}

type SyncAnswer = (ResponseChannel<Vec<u8>>, Option<Vec<u8>>);

/// The network task's state: owns the swarm.
struct Network {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    accounts: HashMap<PeerId, AccountId>,
    topics: Topics,
    queues: Queues,
    /// The validators: the only peers whose consensus messages are accepted.
    consensus_peers: BTreeSet<AccountId>,
    /// Peer churn events waiting for room in the peer queue (never dropped silently).
    queued_peer_events: VecDeque<P2pEvent>,
    redial: HashMap<PeerId, Redial>,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, P2pError>>>,
    /// The consensus streams to each peer ([`links`]).
    links: Links,
    /// The application's answers to peers' sync requests, each bounded by a timeout.
    sync_answers: FuturesUnordered<BoxFuture<'static, SyncAnswer>>,
    listener_failure: Option<String>,
}

/// `error` and every error beneath it, `: `-separated. libp2p's transport errors display
/// nothing of their own (`TransportError::Other` shows only through `source()`), so an
/// operator would otherwise read "cannot listen on ...: " and no reason.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = error.source();
    }
    if parts.is_empty() {
        "unknown transport error".to_string()
    } else {
        parts.join(": ")
    }
}

impl Network {
    async fn wait_listening(&mut self, address: &str) -> Result<(), P2pError> {
        let failed = |reason: String| P2pError::Listen {
            address: address.to_string(),
            reason,
        };
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while lock(&self.shared.listen_addresses).is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| failed("no listen address reported in time".into()))?;
            self.on_swarm_event(event);
            if let Some(reason) = self.listener_failure.take() {
                return Err(failed(reason));
            }
        }
        Ok(())
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let next_dial = self.redial.values().filter_map(|r| r.due).min();
            // Without a due dial the branch is disabled; the deadline is then never awaited.
            let dial_timer = tokio::time::sleep_until(
                next_dial.unwrap_or_else(|| Instant::now() + REDIAL_BACKOFF_MAX),
            );
            // An owned permit (on a clone of the sender) borrows nothing from `self`.
            let room = self.queues.peers.clone().reserve_owned();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some((channel, answer)) = self.sync_answers.next(), if !self.sync_answers.is_empty() => {
                    self.answer_sync(channel, answer);
                }
                permit = room, if !self.queued_peer_events.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.queued_peer_events.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => self.queued_peer_events.clear(),
                },
                () = dial_timer, if next_dial.is_some() => self.dial_due(Instant::now()),
            }
        }
        tracing::debug!("all network handles dropped; network task stops");
    }

    fn account(&self, peer: &PeerId) -> Option<AccountId> {
        self.accounts.get(peer).copied()
    }

    fn on_command(&mut self, command: Command) {
        let counters = &self.shared.counters;
        match command {
            Command::Publish(topic, bytes) => {
                let hash = self.topics.hash(topic);
                match self.swarm.behaviour_mut().gossip.publish(hash, bytes) {
                    Ok(_) => {}
                    // Announcements reach followers only: none connected is the usual case.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
                        if topic == Topic::Blocks => {}
                    Err(error) => {
                        tracing::debug!(%error, ?topic, "gossip publication failed");
                        bump(&counters.publish_failures);
                    }
                }
            }
            Command::Report(id, valid) => {
                let acceptance = if valid {
                    MessageAcceptance::Accept
                } else {
                    MessageAcceptance::Reject
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id.message, &id.source, acceptance);
            }
            Command::Send(peer, message) => {
                if self.swarm.is_connected(&peer) {
                    self.links.send(peer, message);
                } else {
                    // Not queued (consensus retransmits), and `send_request` would start a dial.
                    tracing::debug!(%peer, "consensus message to a disconnected peer; dropped");
                    bump(&counters.send_failures);
                }
            }
            Command::Broadcast(message) => {
                // To the validators only: observers follow by sync and would drop it.
                let peers: Vec<PeerId> = self
                    .swarm
                    .connected_peers()
                    .filter(|peer| {
                        self.account(peer)
                            .is_some_and(|key| self.consensus_peers.contains(&key))
                    })
                    .copied()
                    .collect();
                for peer in peers {
                    self.links.send(peer, message.clone());
                }
            }
            Command::Request(peer, key, request, reply) => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(P2pError::NotConnected(key)));
                } else if self.pending_requests.len() >= MAX_PENDING_REQUESTS {
                    let _ = reply.send(Err(P2pError::TooManyRequests));
                } else {
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.pending_requests.insert(id, reply);
                }
            }
            Command::GossipPeers(reply) => {
                let topic = self.topics.hash(Topic::Transactions);
                let peers = self
                    .swarm
                    .behaviour()
                    .gossip
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&topic))
                    .filter_map(|(peer, _)| self.account(peer))
                    .collect::<BTreeSet<_>>();
                let _ = reply.send(peers.into_iter().collect());
            }
            Command::GossipScore(peer, reply) => {
                let _ = reply.send(self.swarm.behaviour().gossip.peer_score(&peer));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Consensus(())) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(
                BehaviourEvent::Allowed(never)
                | BehaviourEvent::PendingInbound(never)
                | BehaviourEvent::Limits(never),
            ) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
                lock(&self.shared.listen_addresses).push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                lock(&self.shared.listen_addresses).retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                let reason = match reason {
                    Ok(()) => "closed".to_string(),
                    Err(error) => with_sources(&error),
                };
                tracing::warn!(%reason, "p2p listener closed");
                self.listener_failure = Some(reason);
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(%error, "p2p listener error"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                if let Some(redial) = self.redial.get_mut(&peer_id) {
                    redial.due = None;
                    redial.connected_since.get_or_insert_with(Instant::now);
                }
                if num_established.get() == 1 {
                    if let Some(key) = self.account(&peer_id) {
                        tracing::debug!(peer = %key, address = %endpoint.get_remote_address(), "peer connected");
                        lock(&self.shared.connected).insert(key);
                        self.queue_peer_event(P2pEvent::PeerConnected(key));
                    }
                }
            }
            // Only the last connection to a peer closing disconnects it.
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                if let Some(key) = self.account(&peer_id) {
                    let cause = cause
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "closed".into());
                    tracing::debug!(peer = %key, %cause, "peer disconnected");
                    lock(&self.shared.connected).remove(&key);
                    self.queue_peer_event(P2pEvent::PeerDisconnected(key));
                }
                self.links.disconnected(&peer_id);
                self.schedule_redial(peer_id);
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => match error {
                ListenError::Denied { cause } => {
                    bump(&self.shared.counters.connections_refused);
                    if cause
                        .downcast_ref::<allow_block_list::NotAllowed>()
                        .is_some()
                    {
                        tracing::warn!(peer = ?peer_id, address = %send_back_addr, "refused connection from a key outside the genesis");
                    } else if let Some(refused) = cause.downcast_ref::<TooManyPending>() {
                        // A host flooding us with handshakes: one line a second at most.
                        if let Some(held) = PENDING_REFUSED_LOG.ready() {
                            tracing::warn!(address = %send_back_addr, more = held, "refused inbound connection: {refused}");
                        }
                    } else {
                        tracing::debug!(peer = ?peer_id, address = %send_back_addr, %cause, "refused connection");
                    }
                }
                error => {
                    tracing::debug!(address = %send_back_addr, %error, "inbound connection failed")
                }
            },
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => {
                tracing::debug!(peer = %peer_id, %error, "dial failed");
                bump(&self.shared.counters.dial_failures);
                self.schedule_redial(peer_id);
            }
            _ => {}
        }
    }

    fn queue_peer_event(&mut self, event: P2pEvent) {
        // Keep churn events in order: once one waits, the following ones wait behind it.
        if self.queued_peer_events.is_empty() {
            if let Err(TrySendError::Full(event)) = self.queues.peers.try_send(event) {
                self.queued_peer_events.push_back(event);
            }
        } else if self.queued_peer_events.len() < MAX_QUEUED_PEER_EVENTS {
            self.queued_peer_events.push_back(event);
        } else {
            tracing::warn!("peer event queue full; peer event dropped");
        }
    }

    /// Schedules the next dial of a configured peer that is now disconnected.
    fn schedule_redial(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        let Some(redial) = self.redial.get_mut(&peer) else {
            return;
        };
        let now = Instant::now();
        if let Some(since) = redial.connected_since.take() {
            if now.duration_since(since) >= STABLE_CONNECTION {
                redial.backoff = REDIAL_BACKOFF_MIN;
            }
        }
        if redial.due.is_none() {
            redial.due = Some(now + redial.backoff);
            tracing::debug!(%peer, backoff_ms = redial.backoff.as_millis() as u64, "redial scheduled");
            redial.backoff = (redial.backoff * 2).min(REDIAL_BACKOFF_MAX);
        }
    }

    /// Dials every configured peer whose redial time has come.
    fn dial_due(&mut self, now: Instant) {
        let due: Vec<(PeerId, Multiaddr)> = self
            .redial
            .iter_mut()
            .filter(|(_, r)| r.due.is_some_and(|at| at <= now))
            .map(|(peer, r)| {
                r.due = None;
                (*peer, r.address.clone())
            })
            .collect();
        for (peer, address) in due {
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![address])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            // A refused condition means a connection or dial exists already: its outcome
            // drives the next step. Any other error is a failed attempt.
            match self.swarm.dial(opts) {
                Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => {
                    tracing::debug!(%peer, %error, "dial failed");
                    bump(&self.shared.counters.dial_failures);
                    self.schedule_redial(peer);
                }
            }
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let id = GossipId {
                    message: message_id,
                    source: propagation_source,
                };
                let max = self.shared.max_message_bytes;
                let Some(from) = self.account(&propagation_source) else {
                    // Unreachable: only allowed peers get a connection.
                    self.report(&id, MessageAcceptance::Ignore);
                    return;
                };
                if message.data.len() > max {
                    // Within the frame allowance for the envelope, but the payload is over.
                    tracing::debug!(peer = %from, bytes = message.data.len(), max, "oversized gossip rejected");
                    self.report(&id, MessageAcceptance::Reject);
                    return;
                }
                let event = if message.topic == self.topics.hash(Topic::Transactions) {
                    P2pEvent::Transactions {
                        from,
                        id,
                        bytes: message.data,
                    }
                } else if message.topic == self.topics.hash(Topic::Blocks) {
                    P2pEvent::BlockAnnounced {
                        from,
                        id,
                        bytes: message.data,
                    }
                } else {
                    // Gossipsub delivers only subscribed topics; nothing to forward either way.
                    self.report(&id, MessageAcceptance::Ignore);
                    return;
                };
                match self.queues.gossip.try_send(event) {
                    Ok(()) => {}
                    Err(
                        TrySendError::Full(
                            P2pEvent::Transactions { id, .. } | P2pEvent::BlockAnnounced { id, .. },
                        )
                        | TrySendError::Closed(
                            P2pEvent::Transactions { id, .. } | P2pEvent::BlockAnnounced { id, .. },
                        ),
                    ) => {
                        // Not the sender's fault: no penalty, and not forwarded.
                        bump(&self.shared.counters.gossip_dropped);
                        self.report(&id, MessageAcceptance::Ignore);
                    }
                    Err(_) => {}
                }
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::warn!(peer = %peer_id, "allowed peer does not speak gossipsub");
            }
            other => tracing::trace!(?other, "gossipsub event"),
        }
    }

    fn report(&mut self, id: &GossipId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&id.message, &id.source, acceptance);
    }

    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(from) = self.account(&peer) else {
                    return;
                };
                let (respond, answer) = oneshot::channel();
                match self.queues.sync.try_send(P2pEvent::SyncRequest {
                    from,
                    bytes: request,
                    respond,
                }) {
                    Ok(()) => self.sync_answers.push(
                        async move {
                            let answer = tokio::time::timeout(SYNC_REQUEST_TIMEOUT, answer).await;
                            (channel, answer.ok().and_then(Result::ok))
                        }
                        .boxed(),
                    ),
                    Err(_) => {
                        tracing::debug!(peer = %from, "sync queue full; sync request answered busy");
                        bump(&self.shared.counters.sync_busy);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, vec![SYNC_BUSY]);
                    }
                }
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(decode_sync_response(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let error = match error {
                        OutboundFailure::Timeout => P2pError::Timeout,
                        other => P2pError::Failed(other.to_string()),
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
                bump(&self.shared.counters.inbound_failures);
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn answer_sync(&mut self, channel: ResponseChannel<Vec<u8>>, answer: Option<Vec<u8>>) {
        let max = self.shared.max_message_bytes;
        let frame = match answer {
            Some(bytes) if bytes.len() < max => {
                let mut frame = Vec::with_capacity(bytes.len() + 1);
                frame.push(SYNC_OK);
                frame.extend_from_slice(&bytes);
                frame
            }
            Some(bytes) => {
                tracing::warn!(
                    bytes = bytes.len(),
                    max,
                    "sync response too large; answered unavailable"
                );
                vec![SYNC_UNAVAILABLE]
            }
            None => vec![SYNC_UNAVAILABLE],
        };
        // An error means the requester is gone (timed out or disconnected).
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, frame);
    }
}

fn decode_sync_response(mut frame: Vec<u8>) -> Result<Vec<u8>, P2pError> {
    match frame.first() {
        Some(&SYNC_OK) => {
            frame.remove(0);
            Ok(frame)
        }
        Some(&SYNC_BUSY) => Err(P2pError::PeerBusy),
        Some(&SYNC_UNAVAILABLE) => Err(P2pError::PeerUnavailable),
        _ => Err(P2pError::Failed("malformed sync response".into())),
    }
}
