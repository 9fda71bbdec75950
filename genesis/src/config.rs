//! The node's configuration file (TOML), written by `interpool-genesis localnet` and read by
//! `interpool-node run`. One definition for both sides.

use std::path::{Path, PathBuf};

use interpool_contracts::AccountId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Votes and proposes blocks.
    Validator,
    /// Follows the chain, verifies every certificate, serves reads; never votes.
    Observer,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// A peer to dial: its genesis name and key, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's name in genesis.
    pub name: String,
    /// The peer's public key (must be in genesis).
    pub key: AccountId,
    /// A libp2p multiaddress, e.g. `/ip4/127.0.0.1/tcp/26001`.
    pub address: String,
}

/// Peer-to-peer settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// Listen multiaddress.
    pub listen: String,
    /// Peers to dial.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Largest message accepted from a peer, in bytes.
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    /// How often an observer asks its peers for new blocks when no block announcement came
    /// (announcements wake it at once; this is the fallback for missed ones).
    #[serde(default = "defaults::sync_interval_ms")]
    pub sync_interval_ms: u64,
}

/// HTTP API settings.
///
/// Writes (`POST /v1/transactions`, `POST /v1/transactions/batch`) and expensive reads
/// (account histories and proofs, blocks, event streams) are limited twice, and refused at
/// once beyond either limit rather than queued: per client (by peer IP address; an IPv6
/// client by its /64 network) a token bucket of `rate_limit_burst` requests refilled at
/// `rate_limit_per_second`, one bucket for writes and one for expensive reads (beyond it:
/// 429 `rate_limited` with `Retry-After`); and node-wide, at most `max_concurrent_writes`
/// writes, `max_concurrent_expensive_reads` expensive reads and `max_event_streams` event
/// streams at once (beyond them: 503 `busy` or `too_many_streams`). Loopback clients are
/// not exempt; clients behind one proxy share its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Listen address, e.g. `127.0.0.1:27000`.
    pub listen: String,
    /// Largest request body, in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Requests per second one client may make, sustained, of each limited kind (writes;
    /// expensive reads).
    #[serde(default = "defaults::rate_limit_per_second")]
    pub rate_limit_per_second: u32,
    /// Requests one client may make at once, of each limited kind, after being idle.
    #[serde(default = "defaults::rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// Most clients whose rate the node remembers, per kind; beyond it the idlest are
    /// forgotten (a forgotten client starts again with a full burst).
    #[serde(default = "defaults::rate_limit_clients")]
    pub rate_limit_clients: usize,
    /// Most writes the node handles at once, over all clients.
    #[serde(default = "defaults::max_concurrent_writes")]
    pub max_concurrent_writes: usize,
    /// Most of them one client may have in flight at once (beyond it: 429
    /// `rate_limited`), so that one client cannot take every write turn from the others.
    #[serde(default = "defaults::max_concurrent_writes_per_client")]
    pub max_concurrent_writes_per_client: usize,
    /// Most expensive reads (history pages, proofs, blocks) the node runs at once.
    #[serde(default = "defaults::max_concurrent_expensive_reads")]
    pub max_concurrent_expensive_reads: usize,
    /// Most `GET /v1/events` streams open at once.
    #[serde(default = "defaults::max_event_streams")]
    pub max_event_streams: usize,
    /// The API's TLS certificate chain (PEM, the node's certificate first), relative to the
    /// config file's folder. With `tls_key`; required unless `plain_http` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP, without TLS. Only when said explicitly (local networks): requests
    /// and their answers, customers' data included, then cross the network in clear.
    #[serde(default)]
    pub plain_http: bool,
    /// How far a signed request's timestamp may be from this node's clock, either way
    /// (milliseconds); its nonce is remembered for twice as long.
    #[serde(default = "defaults::request_window_ms")]
    pub request_window_ms: u64,
    /// Most signed-request nonces remembered at once; beyond it signed requests are
    /// answered 503 `busy` until old ones expire.
    #[serde(default = "defaults::max_request_nonces")]
    pub max_request_nonces: usize,
    /// Most of them one key may hold: beyond it that key's signed requests are answered 429
    /// `rate_limited` (about 160 a second, sustained, with the default window).
    #[serde(default = "defaults::max_request_nonces_per_key")]
    pub max_request_nonces_per_key: usize,
    /// Serve `/metrics` to any caller on the loopback interface (the local Prometheus
    /// agent) besides nodes and regulators.
    #[serde(default = "defaults::metrics_from_loopback")]
    pub metrics_from_loopback: bool,
}

impl RpcConfig {
    /// Settings for an API listening on `listen`, with the default limits.
    pub fn new(listen: impl Into<String>) -> Self {
        RpcConfig {
            listen: listen.into(),
            max_body_bytes: defaults::max_body_bytes(),
            rate_limit_per_second: defaults::rate_limit_per_second(),
            rate_limit_burst: defaults::rate_limit_burst(),
            rate_limit_clients: defaults::rate_limit_clients(),
            max_concurrent_writes: defaults::max_concurrent_writes(),
            max_concurrent_writes_per_client: defaults::max_concurrent_writes_per_client(),
            max_concurrent_expensive_reads: defaults::max_concurrent_expensive_reads(),
            max_event_streams: defaults::max_event_streams(),
            tls_cert: None,
            tls_key: None,
            plain_http: false,
            request_window_ms: defaults::request_window_ms(),
            max_request_nonces: defaults::max_request_nonces(),
            max_request_nonces_per_key: defaults::max_request_nonces_per_key(),
            metrics_from_loopback: defaults::metrics_from_loopback(),
        }
    }

    /// Settings for a plain-HTTP API on `listen` (local networks and tests).
    pub fn plain(listen: impl Into<String>) -> Self {
        RpcConfig {
            plain_http: true,
            ..RpcConfig::new(listen)
        }
    }

    /// Settings for a TLS API on `listen` with certificate `cert` and key `key`.
    pub fn tls(listen: impl Into<String>, cert: PathBuf, key: PathBuf) -> Self {
        RpcConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..RpcConfig::new(listen)
        }
    }
}

/// Consensus timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Round 0 timeout; later rounds wait longer.
    #[serde(default = "defaults::round_timeout_ms")]
    pub round_timeout_ms: u64,
    /// A proposer with an empty mempool proposes an empty block after this long, so that
    /// cycles by height progress.
    #[serde(default = "defaults::empty_block_interval_ms")]
    pub empty_block_interval_ms: u64,
    /// Append every consensus message received from a validator to
    /// `DATA_DIR/consensus-journal` (at most 256 MiB), so that `interpool-node
    /// equivocations` can look across nodes for a validator that signed two different
    /// messages of one kind for one height and round (the chaos test does).
    #[serde(default)]
    pub journal: bool,
}

/// Block limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// Most transactions in a block.
    #[serde(default = "defaults::max_block_transactions")]
    pub max_transactions: usize,
    /// Largest block, in bytes.
    #[serde(default = "defaults::max_block_bytes")]
    pub max_bytes: usize,
}

/// Mempool limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Most pending transactions; beyond it submissions get 503.
    #[serde(default = "defaults::mempool_transactions")]
    pub max_transactions: usize,
    /// Most pending transactions of one signer.
    #[serde(default = "defaults::mempool_per_signer")]
    pub max_per_signer: usize,
    /// Backpressure on clients: a client's submission is refused (503 `mempool_full`,
    /// retry later) while more is pending than the chain committed in this many
    /// milliseconds, measured over the last commits, so that what is acknowledged commits
    /// within about this long even when clients offer more than the network can do. Only
    /// what the next blocks can take counts (not transactions behind a nonce gap).
    /// Transactions from peers are not refused by it (only by `max_transactions`).
    #[serde(default = "defaults::mempool_client_backlog_ms")]
    pub client_backlog_ms: u64,
    /// The backpressure never refuses a client while fewer than this many are pending
    /// (a burst into an idle network is taken whole).
    #[serde(default = "defaults::mempool_client_backlog_floor")]
    pub client_backlog_floor: usize,
}

/// What the node keeps on disk (ADR 0011).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// A checkpoint of the ledger state is written after every block whose height is a
    /// multiple of this; a start replays at most this many blocks.
    #[serde(default = "defaults::checkpoint_interval_blocks")]
    pub checkpoint_interval_blocks: u64,
    /// Keep blocks, receipts and indexes of the last this many heights only (0: keep
    /// everything). Never below the last checkpoint, which a start and state sync need, nor
    /// below the block after the one before it, whose certified header is what lets `audit`
    /// verify that checkpoint's state: pruning happens when a checkpoint is written.
    #[serde(default)]
    pub retain_blocks: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval_blocks: defaults::checkpoint_interval_blocks(),
            retain_blocks: 0,
        }
    }
}

/// How the node catches up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// A new node, or one more than a checkpoint interval behind its peers, joins from a
    /// peer's certified state (its last checkpoint) instead of replaying every block.
    #[serde(default)]
    pub state_sync: bool,
}

/// A node's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Validator or observer.
    pub role: Role,
    /// The node's name in genesis.
    pub name: String,
    /// The node's key file (relative paths are relative to the config file's folder).
    pub key_file: PathBuf,
    /// The genesis file (relative to the config file's folder).
    pub genesis_file: PathBuf,
    /// Where the node keeps its database (relative to the config file's folder).
    pub data_dir: PathBuf,
    /// `text` or `json`.
    #[serde(default = "defaults::log_format")]
    pub log_format: LogFormat,
    /// A tracing env-filter directive, e.g. `info` or `interpool_node=debug`.
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
    /// Peer-to-peer settings.
    pub p2p: P2pConfig,
    /// HTTP API settings.
    pub rpc: RpcConfig,
    /// Consensus timing.
    #[serde(default)]
    pub consensus: ConsensusConfig,
    /// Block limits.
    #[serde(default)]
    pub block: BlockConfig,
    /// Mempool limits.
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// What the node keeps on disk.
    #[serde(default)]
    pub storage: StorageConfig,
    /// How the node catches up.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Coordinated halt for upgrades: the node commits this height and then stops; started
    /// again with the same setting it does not go past it; raised (or removed), it goes on.
    #[serde(default)]
    pub halt_height: Option<u64>,
}

/// Default values, one function each so serde can name them.
pub mod defaults {
    use super::LogFormat;

    /// 16 MiB.
    pub fn max_message_bytes() -> usize {
        16 << 20
    }
    /// One second: observers normally sync on announcements, well before it.
    pub fn sync_interval_ms() -> u64 {
        1_000
    }
    /// 4 MiB.
    pub fn max_body_bytes() -> usize {
        4 << 20
    }
    /// 100 a second: a bank's integration submits batches (up to 10,000 transactions in
    /// one request) and pages histories; far more requests than this from one address is a
    /// flood, not an integration.
    pub fn rate_limit_per_second() -> u32 {
        100
    }
    /// 200: two seconds' worth, so that a client that was idle can catch up at once.
    pub fn rate_limit_burst() -> u32 {
        200
    }
    /// 10,000 clients per kind (a few hundred KiB).
    pub fn rate_limit_clients() -> usize {
        10_000
    }
    /// 16: admission verifies at most two batches at once; more writes than this in
    /// flight would only wait for it.
    pub fn max_concurrent_writes() -> usize {
        16
    }
    /// 4: a quarter of the node's writes (the load generator keeps two in flight per node).
    pub fn max_concurrent_writes_per_client() -> usize {
        4
    }
    /// 64 (each runs on the blocking pool, whose threads it must not exhaust).
    pub fn max_concurrent_expensive_reads() -> usize {
        64
    }
    /// 256.
    pub fn max_event_streams() -> usize {
        256
    }

    /// 30 s.
    pub fn request_window_ms() -> u64 {
        30_000
    }

    /// 200,000 (at most about 50 MB with 64-character nonces).
    pub fn max_request_nonces() -> usize {
        200_000
    }

    /// 10,000.
    pub fn max_request_nonces_per_key() -> usize {
        10_000
    }

    /// True.
    pub fn metrics_from_loopback() -> bool {
        true
    }
    /// Two seconds.
    pub fn round_timeout_ms() -> u64 {
        2_000
    }
    /// Half a second: well inside the round timeout, so that a proposer waiting for
    /// transactions still proposes in round 0.
    pub fn empty_block_interval_ms() -> u64 {
        500
    }
    /// 10,000.
    pub fn max_block_transactions() -> usize {
        10_000
    }
    /// 8 MiB: the consensus payload bound.
    pub fn max_block_bytes() -> usize {
        8 << 20
    }
    /// 200,000.
    pub fn mempool_transactions() -> usize {
        200_000
    }
    /// 1,000.
    pub fn mempool_per_signer() -> usize {
        1_000
    }
    /// 2,000 ms.
    pub fn mempool_client_backlog_ms() -> u64 {
        2_000
    }
    /// 10,000.
    pub fn mempool_client_backlog_floor() -> usize {
        10_000
    }
    /// 1,000 blocks.
    pub fn checkpoint_interval_blocks() -> u64 {
        1_000
    }
    /// Text.
    pub fn log_format() -> LogFormat {
        LogFormat::Text
    }
    /// `info`.
    pub fn log_level() -> String {
        "info".into()
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            round_timeout_ms: defaults::round_timeout_ms(),
            empty_block_interval_ms: defaults::empty_block_interval_ms(),
            journal: false,
        }
    }
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            max_transactions: defaults::max_block_transactions(),
            max_bytes: defaults::max_block_bytes(),
        }
    }
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_transactions: defaults::mempool_transactions(),
            max_per_signer: defaults::mempool_per_signer(),
            client_backlog_ms: defaults::mempool_client_backlog_ms(),
            client_backlog_floor: defaults::mempool_client_backlog_floor(),
        }
    }
}

/// The largest value of any `[rpc]` rate or concurrency limit.
pub const MAX_RPC_LIMIT: u64 = 1_000_000;

/// Largest `[rpc] request_window_ms`: 10 minutes, far beyond any honest clock skew.
pub const MAX_REQUEST_WINDOW_MS: u64 = 600_000;

/// Why a configuration cannot be used; always names the file and, where it can, the field.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field has the wrong type, is unknown or is missing.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (names the field and line).
        message: String,
    },
    /// A field's value is out of range.
    #[error("config {path}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, dotted (`rpc.max_body_bytes`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl NodeConfig {
    /// Reads, parses and checks a config file, and resolves its relative paths against the
    /// file's folder.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.validate(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut config.key_file,
            &mut config.genesis_file,
            &mut config.data_dir,
        ]
        .into_iter()
        .chain(config.rpc.tls_cert.as_mut())
        .chain(config.rpc.tls_key.as_mut())
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                message: message.to_string(),
            })
        };
        if self.name.is_empty() {
            return invalid("name", "must not be empty");
        }
        if !self.p2p.listen.starts_with('/') {
            return invalid(
                "p2p.listen",
                "must be a multiaddress such as /ip4/127.0.0.1/tcp/26000",
            );
        }
        if self.p2p.peers.iter().any(|p| !p.address.starts_with('/')) {
            return invalid(
                "p2p.peers.address",
                "must be a multiaddress such as /ip4/127.0.0.1/tcp/26001",
            );
        }
        if self.rpc.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("rpc.listen", "must be an address such as 127.0.0.1:27000");
        }
        match (&self.rpc.tls_cert, &self.rpc.tls_key, self.rpc.plain_http) {
            (Some(_), Some(_), false) | (None, None, true) => {}
            (Some(_), Some(_), true) => {
                return invalid(
                    "rpc.plain_http",
                    "plain_http = true and a TLS certificate: choose one",
                )
            }
            (Some(_), None, _) => return invalid("rpc.tls_key", "tls_cert needs its tls_key"),
            (None, Some(_), _) => return invalid("rpc.tls_cert", "tls_key needs its tls_cert"),
            (None, None, false) => {
                return invalid(
                    "rpc.tls_cert",
                    "the API serves TLS: set tls_cert and tls_key (PEM files), or \
                     plain_http = true to serve plain HTTP (local networks only)",
                )
            }
        }
        let positive: [(&'static str, u64); 21] = [
            (
                "rpc.max_request_nonces_per_key",
                self.rpc.max_request_nonces_per_key as u64,
            ),
            ("rpc.request_window_ms", self.rpc.request_window_ms),
            ("rpc.max_request_nonces", self.rpc.max_request_nonces as u64),
            (
                "storage.checkpoint_interval_blocks",
                self.storage.checkpoint_interval_blocks,
            ),
            ("p2p.max_message_bytes", self.p2p.max_message_bytes as u64),
            ("p2p.sync_interval_ms", self.p2p.sync_interval_ms),
            ("rpc.max_body_bytes", self.rpc.max_body_bytes as u64),
            (
                "rpc.rate_limit_per_second",
                u64::from(self.rpc.rate_limit_per_second),
            ),
            ("rpc.rate_limit_burst", u64::from(self.rpc.rate_limit_burst)),
            ("rpc.rate_limit_clients", self.rpc.rate_limit_clients as u64),
            (
                "rpc.max_concurrent_writes",
                self.rpc.max_concurrent_writes as u64,
            ),
            (
                "rpc.max_concurrent_writes_per_client",
                self.rpc.max_concurrent_writes_per_client as u64,
            ),
            (
                "rpc.max_concurrent_expensive_reads",
                self.rpc.max_concurrent_expensive_reads as u64,
            ),
            ("rpc.max_event_streams", self.rpc.max_event_streams as u64),
            (
                "consensus.round_timeout_ms",
                self.consensus.round_timeout_ms,
            ),
            ("block.max_transactions", self.block.max_transactions as u64),
            ("block.max_bytes", self.block.max_bytes as u64),
            (
                "mempool.max_transactions",
                self.mempool.max_transactions as u64,
            ),
            ("mempool.max_per_signer", self.mempool.max_per_signer as u64),
            ("mempool.client_backlog_ms", self.mempool.client_backlog_ms),
            (
                "mempool.client_backlog_floor",
                self.mempool.client_backlog_floor as u64,
            ),
        ];
        for (field, value) in positive {
            if value == 0 {
                return invalid(field, "must be at least 1");
            }
        }
        // Upper bounds keep the limiter's arithmetic and the semaphores' permit counts far
        // from overflow; a larger value would mean "no limit", which is not offered.
        let bounded: [(&'static str, u64); 7] = [
            (
                "rpc.rate_limit_per_second",
                u64::from(self.rpc.rate_limit_per_second),
            ),
            ("rpc.rate_limit_burst", u64::from(self.rpc.rate_limit_burst)),
            ("rpc.rate_limit_clients", self.rpc.rate_limit_clients as u64),
            (
                "rpc.max_concurrent_writes",
                self.rpc.max_concurrent_writes as u64,
            ),
            (
                "rpc.max_concurrent_writes_per_client",
                self.rpc.max_concurrent_writes_per_client as u64,
            ),
            (
                "rpc.max_concurrent_expensive_reads",
                self.rpc.max_concurrent_expensive_reads as u64,
            ),
            ("rpc.max_event_streams", self.rpc.max_event_streams as u64),
        ];
        for (field, value) in bounded {
            if value > MAX_RPC_LIMIT {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field,
                    message: format!("{value} is above the largest allowed, {MAX_RPC_LIMIT}"),
                });
            }
        }
        if self.rpc.request_window_ms > MAX_REQUEST_WINDOW_MS {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "rpc.request_window_ms",
                message: format!(
                    "{} ms is above the largest allowed, {MAX_REQUEST_WINDOW_MS} ms (10 \
                     minutes): a key's remembered nonces are held for twice the window, so \
                     a longer one locks a busy key out for hours",
                    self.rpc.request_window_ms
                ),
            });
        }
        // Consensus owns the payload bound: a larger block would make every proposal of
        // this node too large to send.
        if self.block.max_bytes > interpool_consensus::MAX_PAYLOAD_BYTES {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "block.max_bytes",
                message: format!(
                    "{} is above the consensus payload bound of {} bytes",
                    self.block.max_bytes,
                    interpool_consensus::MAX_PAYLOAD_BYTES
                ),
            });
        }
        if self.consensus.empty_block_interval_ms == 0
            || self.consensus.empty_block_interval_ms >= self.consensus.round_timeout_ms
        {
            return invalid(
                "consensus.empty_block_interval_ms",
                "must be at least 1 and less than consensus.round_timeout_ms",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
role = "validator"
name = "validator-0"
key_file = "node-key.json"
genesis_file = "../genesis.json"
data_dir = "data"

[p2p]
listen = "/ip4/127.0.0.1/tcp/26000"
peers = [{ name = "validator-1", key = "0101010101010101010101010101010101010101010101010101010101010101", address = "/ip4/127.0.0.1/tcp/26001" }]

[rpc]
listen = "127.0.0.1:27000"
plain_http = true
"#;

    fn load(text: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        NodeConfig::load(&path)
    }

    #[test]
    fn sample_loads_with_defaults_and_resolved_paths() {
        let config = load(SAMPLE).expect("valid");
        assert_eq!(config.role, Role::Validator);
        assert_eq!(config.block.max_transactions, 10_000);
        assert_eq!(config.rpc, RpcConfig::plain("127.0.0.1:27000"));
        assert_eq!(config.rpc.rate_limit_per_second, 100);
        assert_eq!(config.rpc.max_concurrent_expensive_reads, 64);
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.data_dir.is_absolute());
        assert!(config.genesis_file.ends_with("../genesis.json"));
    }

    #[test]
    fn errors_name_the_field() {
        let message = |text: &str| load(text).expect_err("invalid").to_string();
        assert!(message(&SAMPLE.replace("validator\"\nname", "boss\"\nname")).contains("role"));
        assert!(message(&format!("{SAMPLE}\nsurprise = 1")).contains("surprise"));
        assert!(message(&SAMPLE.replace("name = \"validator-0\"\n", "")).contains("name"));
        assert!(message(&SAMPLE.replace("127.0.0.1:27000", "localhost")).contains("rpc.listen"));
        assert!(message(&SAMPLE.replace("plain_http = true\n", "")).contains("rpc.tls_cert"));
        assert!(
            message(&SAMPLE.replace("plain_http = true", "tls_cert = \"c.pem\""))
                .contains("rpc.tls_key")
        );
        assert!(message(&SAMPLE.replace(
            "plain_http = true",
            "plain_http = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\""
        ))
        .contains("rpc.plain_http"));
        assert!(
            message(&format!("{SAMPLE}\n[block]\nmax_transactions = 0\n"))
                .contains("block.max_transactions")
        );
        let over = interpool_consensus::MAX_PAYLOAD_BYTES + 1;
        let above_bound = message(&format!("{SAMPLE}\n[block]\nmax_bytes = {over}\n"));
        assert!(above_bound.contains("block.max_bytes"), "{above_bound}");
        assert!(
            above_bound.contains("consensus payload bound"),
            "{above_bound}"
        );
        for field in [
            "rate_limit_per_second",
            "rate_limit_burst",
            "rate_limit_clients",
            "max_concurrent_writes",
            "max_concurrent_writes_per_client",
            "max_concurrent_expensive_reads",
            "max_event_streams",
        ] {
            for value in [0, MAX_RPC_LIMIT + 1] {
                let refused = message(&SAMPLE.replace(
                    "listen = \"127.0.0.1:27000\"",
                    &format!("listen = \"127.0.0.1:27000\"\n{field} = {value}"),
                ));
                assert!(refused.contains(&format!("rpc.{field}")), "{refused}");
            }
        }
        let window = |ms: u64| {
            load(&SAMPLE.replace(
                "listen = \"127.0.0.1:27000\"",
                &format!("listen = \"127.0.0.1:27000\"\nrequest_window_ms = {ms}"),
            ))
        };
        window(MAX_REQUEST_WINDOW_MS).expect("ten minutes is allowed");
        let day = window(86_400_000).expect_err("a day is not").to_string();
        assert!(day.contains("rpc.request_window_ms"), "{day}");
        let missing = NodeConfig::load(Path::new("/nonexistent/config.toml")).expect_err("missing");
        assert!(missing.to_string().contains("cannot read config"));
    }
}
