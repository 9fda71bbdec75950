//! Prometheus metrics (`GET /metrics`, OpenMetrics text).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use interpool_consensus::Metrics as EngineMetrics;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::net::p2p::P2pStats;

/// Lets a log line through at most once per period, so that a flood of hostile input does
/// not flood the logs too; counts the lines it held back, so that the next line can say how
/// many there were.
pub struct LogThrottle {
    period_ms: u64,
    /// Milliseconds since [`clock_start`] before which no line goes out.
    next_ms: AtomicU64,
    held: AtomicU64,
}

fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl LogThrottle {
    /// At most one line per `period_ms`.
    pub const fn new(period_ms: u64) -> Self {
        LogThrottle {
            period_ms,
            next_ms: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` if a line may go out now.
    pub fn ready(&self) -> Option<u64> {
        let now = clock_ms();
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.held.swap(0, Ordering::Relaxed))
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    round: Gauge,
    round_changes: Gauge,
    equivocations: Gauge,
    invalid_signatures: Gauge,
    committed_transactions: Counter,
    blocks_refused: Counter,
    block_announcements: Counter,
    mempool_size: Gauge,
    peers: Gauge,
    event_streams: Gauge,
    verification_seconds: Histogram,
    commit_seconds: Histogram,
    p2p: Family<[(&'static str, &'static str); 1], Gauge>,
    storage_memory: Family<[(&'static str, &'static str); 1], Gauge>,
    storage_direct_io: Gauge,
    dropped: Family<[(&'static str, &'static str); 1], Counter>,
    ignored: Family<[(&'static str, &'static str); 1], Gauge>,
    gossip: Family<[(&'static str, &'static str); 1], Counter>,
    api_refused: Family<[(&'static str, &'static str); 2], Counter>,
    checkpoint_height: Gauge,
    checkpoint_bytes: Gauge,
    last_commit_timestamp: Gauge,
    validators_reachable: Gauge,
    quorum: Gauge,
    /// [`clock_ms`] at the last commit (or when the metrics were made).
    last_commit_ms: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("interpool");
        let height = Gauge::default();
        registry.register("height", "Last committed block height", height.clone());
        let round = Gauge::default();
        registry.register("round", "Current consensus round", round.clone());
        let round_changes = Gauge::default();
        registry.register(
            "round_changes",
            "Rounds entered above round 0",
            round_changes.clone(),
        );
        let equivocations = Gauge::default();
        registry.register(
            "equivocations",
            "Conflicting consensus messages seen from one signer",
            equivocations.clone(),
        );
        let invalid_signatures = Gauge::default();
        registry.register(
            "consensus_invalid_signatures",
            "Consensus messages with bad signatures",
            invalid_signatures.clone(),
        );
        let committed_transactions = Counter::default();
        registry.register(
            "committed_transactions",
            "Transactions included in committed blocks",
            committed_transactions.clone(),
        );
        let blocks_refused = Counter::default();
        registry.register(
            "blocks_refused",
            "Blocks from peers refused because their commit certificate or hash chain did not verify",
            blocks_refused.clone(),
        );
        let block_announcements = Counter::default();
        registry.register(
            "block_announcements",
            "Block announcements received from peers (followers: each wakes the block sync)",
            block_announcements.clone(),
        );
        let mempool_size = Gauge::default();
        registry.register("mempool_size", "Pending transactions", mempool_size.clone());
        let peers = Gauge::default();
        registry.register("peers", "Connected peers", peers.clone());
        let event_streams = Gauge::default();
        registry.register(
            "event_streams",
            "Open GET /v1/events streams",
            event_streams.clone(),
        );
        let verification_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "verification_seconds",
            "Signature verification time per batch",
            verification_seconds.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "commit_seconds",
            "Block execution and storage time",
            commit_seconds.clone(),
        );
        let p2p = Family::default();
        registry.register(
            "p2p_events",
            "What the network refused or dropped, by event (connections_refused: peers whose key is not in the genesis)",
            p2p.clone(),
        );
        let storage_memory = Family::default();
        registry.register(
            "storage_memory_bytes",
            "What RocksDB holds in memory, by part (memtables, block_cache, of which block_cache_pinned, table_readers: open table files outside the cache)",
            storage_memory.clone(),
        );
        let storage_direct_io = Gauge::default();
        registry.register(
            "storage_direct_io",
            "1 if RocksDB writes its table files (flushes, compactions) with direct I/O, 0 if through the page cache (probed at start: some file systems refuse it)",
            storage_direct_io.clone(),
        );
        let ignored = Family::default();
        registry.register(
            "consensus_messages_ignored",
            "Consensus messages the engine ignored, by reason (old heights and rounds, duplicates, bad signatures, unknown signers, invalid)",
            ignored.clone(),
        );
        let gossip = Family::default();
        registry.register(
            "gossip_batches",
            "Gossiped transaction batches, by verdict (rejected: a forged signature or a malformed transaction; the sender loses gossip score)",
            gossip.clone(),
        );
        let dropped = Family::default();
        registry.register(
            "dropped",
            "Inputs dropped because the node's own queue for them was full, by queue",
            dropped.clone(),
        );
        let api_refused = Family::default();
        registry.register(
            "api_refused",
            "API requests refused at a limit, by reason (rate_limited: the client is over its rate; busy: the node's concurrency limit; body_too_large: a body over its limit ([rpc] max_body_bytes, or a route's own); the codes of a refused signed read) and kind (writes, expensive reads, signed requests, bodies)",
            api_refused.clone(),
        );
        let checkpoint_height = Gauge::default();
        registry.register(
            "checkpoint_height",
            "Height of the last state checkpoint written (a start replays from there)",
            checkpoint_height.clone(),
        );
        let checkpoint_bytes = Gauge::default();
        registry.register(
            "checkpoint_bytes",
            "Encoded size of the last state checkpoint written",
            checkpoint_bytes.clone(),
        );
        let last_commit_timestamp = Gauge::default();
        registry.register(
            "last_commit_timestamp_seconds",
            "Unix time of this node's last commit (the open of its chain before the first)",
            last_commit_timestamp.clone(),
        );
        let validators_reachable = Gauge::default();
        registry.register(
            "validators_reachable",
            "Validators this node reaches (itself included, if a validator)",
            validators_reachable.clone(),
        );
        let quorum = Gauge::default();
        registry.register("quorum", "Validators needed for a quorum", quorum.clone());
        let metrics = Self {
            last_commit_timestamp,
            validators_reachable,
            quorum,
            last_commit_ms: AtomicU64::new(clock_ms()),
            checkpoint_height,
            checkpoint_bytes,
            p2p,
            storage_memory,
            storage_direct_io,
            dropped,
            ignored,
            gossip,
            api_refused,
            registry,
            height,
            round,
            round_changes,
            equivocations,
            invalid_signatures,
            committed_transactions,
            blocks_refused,
            block_announcements,
            mempool_size,
            peers,
            event_streams,
            verification_seconds,
            commit_seconds,
        };
        metrics.commit_clock();
        metrics
    }

    fn commit_clock(&self) {
        self.last_commit_ms.store(clock_ms(), Ordering::Relaxed);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_commit_timestamp.set(to_i64(unix));
    }

    /// How long ago this node last committed a block (or opened its chain).
    pub fn since_last_commit(&self) -> Duration {
        Duration::from_millis(
            clock_ms().saturating_sub(self.last_commit_ms.load(Ordering::Relaxed)),
        )
    }

    /// The consensus round the engine is in (0 for observers).
    pub fn current_round(&self) -> u64 {
        u64::try_from(self.round.get()).unwrap_or(0)
    }

    /// Validators reachable and the quorum, as `/v1/health` found them.
    pub fn reachability(&self, reachable: usize, quorum: usize) {
        self.validators_reachable.set(to_i64(reachable as u64));
        self.quorum.set(to_i64(quorum as u64));
    }

    /// After a block commits.
    pub fn committed(&self, height: u64, transactions: usize, took: Duration) {
        self.commit_clock();
        self.height.set(to_i64(height));
        self.committed_transactions.inc_by(transactions as u64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A checkpoint was written (or found at start).
    pub fn checkpoint(&self, info: &crate::storage::CheckpointInfo) {
        self.checkpoint_height.set(to_i64(info.height));
        self.checkpoint_bytes.set(to_i64(info.bytes));
    }

    /// An input was dropped because `queue` was full.
    pub fn dropped(&self, queue: &'static str) {
        self.dropped.get_or_create(&[("queue", queue)]).inc();
    }

    /// The API refused a request of `kind` at a limit, for `reason`.
    pub fn api_refused(&self, reason: &'static str, kind: &'static str) {
        self.api_refused
            .get_or_create(&[("reason", reason), ("kind", kind)])
            .inc();
    }

    /// A peer sent blocks that do not verify.
    pub fn block_refused(&self) {
        self.blocks_refused.inc();
    }

    /// A peer announced a committed block.
    pub fn block_announced(&self) {
        self.block_announcements.inc();
    }

    /// The engine's counters and position.
    pub fn engine(&self, round: u32, metrics: &EngineMetrics) {
        self.round.set(i64::from(round));
        self.round_changes.set(to_i64(metrics.round_changes));
        self.equivocations.set(to_i64(metrics.equivocations));
        self.invalid_signatures
            .set(to_i64(metrics.invalid_signatures));
        for (reason, value) in [
            ("old_height", metrics.old_height),
            ("old_round", metrics.old_round),
            ("duplicate", metrics.duplicates),
            ("invalid_signature", metrics.invalid_signatures),
            ("unknown_signer", metrics.unknown_signers),
            ("invalid", metrics.invalid_messages),
            ("future_dropped", metrics.future_dropped),
        ] {
            self.ignored
                .get_or_create(&[("reason", reason)])
                .set(to_i64(value));
        }
    }

    /// A gossiped batch was judged (`accepted` or `rejected`).
    pub fn gossip_batch(&self, verdict: &'static str) {
        self.gossip.get_or_create(&[("verdict", verdict)]).inc();
    }

    /// One verification batch of `count` signatures took `took`.
    pub fn observe_verification(&self, took: Duration, count: usize) {
        if count > 0 {
            self.verification_seconds.observe(took.as_secs_f64());
        }
    }

    /// Current mempool size.
    pub fn mempool_size(&self, size: usize) {
        self.mempool_size.set(to_i64(size as u64));
    }

    /// Open event streams.
    pub fn event_streams(&self, open: usize) {
        self.event_streams.set(to_i64(open as u64));
    }

    /// Current peer count.
    pub fn peers(&self, count: usize) {
        self.peers.set(to_i64(count as u64));
    }

    /// The network's counters (set when metrics are read).
    pub fn p2p(&self, stats: &P2pStats) {
        for (event, value) in [
            ("connections_refused", stats.connections_refused),
            ("dial_failures", stats.dial_failures),
            ("gossip_dropped", stats.gossip_dropped),
            ("consensus_dropped", stats.consensus_dropped),
            ("consensus_refused", stats.consensus_refused),
            ("sync_busy", stats.sync_busy),
            ("commands_dropped", stats.commands_dropped),
            ("send_failures", stats.send_failures),
            ("publish_failures", stats.publish_failures),
            ("inbound_failures", stats.inbound_failures),
            ("frames_refused", stats.frames_refused),
        ] {
            self.p2p
                .get_or_create(&[("event", event)])
                .set(to_i64(value));
        }
    }

    /// What the store holds in memory (set when metrics are read).
    pub fn storage_memory(&self, memory: &crate::storage::StoreMemory) {
        for (part, value) in [
            ("memtables", memory.memtables),
            ("block_cache", memory.block_cache),
            ("block_cache_pinned", memory.block_cache_pinned),
            ("table_readers", memory.table_readers),
        ] {
            self.storage_memory
                .get_or_create(&[("part", part)])
                .set(to_i64(value));
        }
    }

    /// Whether the store writes its table files with direct I/O (set when metrics are read).
    pub fn storage_direct_io(&self, on: bool) {
        self.storage_direct_io.set(i64::from(on));
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `interpool_*` series the alert rules and the dashboard in `deploy/` use is one
    /// this node exports (a renamed metric would silently disable an alert), and the
    /// dashboard is JSON.
    #[test]
    fn deploy_files_name_only_metrics_the_node_exports() {
        let exported = Metrics::new().encode();
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let dashboard = std::fs::read_to_string(deploy.join("grafana/interpool-dashboard.json"))
            .expect("dashboard");
        let _: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
        let rules = std::fs::read_to_string(deploy.join("prometheus/alerts.yml")).expect("rules");
        let mut named = 0;
        for text in [&dashboard, &rules] {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("interpool_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                // Histograms are exported as `_bucket`, `_sum` and `_count` series.
                let family = name
                    .strip_suffix("_bucket")
                    .or_else(|| name.strip_suffix("_total"))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(&format!("# TYPE {family} ")),
                    "deploy/ names {name}, which the node does not export"
                );
                named += 1;
            }
        }
        assert!(named > 10, "only {named} metric names found in deploy/");
    }

    #[test]
    fn exports_what_was_recorded() {
        let metrics = Metrics::new();
        metrics.committed(7, 3, Duration::from_millis(2));
        metrics.mempool_size(5);
        let text = metrics.encode();
        assert!(text.contains("interpool_height 7"), "{text}");
        assert!(
            text.contains("interpool_committed_transactions_total 3"),
            "{text}"
        );
        assert!(text.contains("interpool_mempool_size 5"), "{text}");
        metrics.p2p(&P2pStats {
            connections_refused: 4,
            ..P2pStats::default()
        });
        let text = metrics.encode();
        assert!(
            text.contains(r#"interpool_p2p_events{event="connections_refused"} 4"#),
            "{text}"
        );
        metrics.storage_memory(&crate::storage::StoreMemory {
            table_readers: 12,
            ..crate::storage::StoreMemory::default()
        });
        let text = metrics.encode();
        assert!(
            text.contains(r#"interpool_storage_memory_bytes{part="table_readers"} 12"#),
            "{text}"
        );
        assert!(text.contains("interpool_storage_direct_io 0"), "{text}");
        metrics.storage_direct_io(true);
        let text = metrics.encode();
        assert!(text.contains("interpool_storage_direct_io 1"), "{text}");
    }
}
