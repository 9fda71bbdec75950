//! Test-only fault injection (cargo feature `failpoints`; without it every function here is
//! a no-op the compiler removes).
//!
//! * `INTERPOOL_CRASH_AT=<point>[:<k>]` aborts the process (as `kill -9` would: no
//!   destructors, no flush) the `k`-th time (default the first) it reaches `<point>`. The
//!   points are the writes of the commit path and of the consensus state, each just before
//!   and just after: [`POINTS`].
//! * `INTERPOOL_GOSSIP_DELAY_MS=<ms>` holds back the gossip of what clients submit, so that
//!   a test can kill the node inside the window between its answer and the gossip.
//! * `INTERPOOL_CORRUPT_STATE_CHUNKS=<n>` makes the node serve its first `n` state-sync
//!   chunks with one entry's value altered (a lying peer, for the state-sync tests).

use std::time::Duration;

/// Every crash point, in the order a validator reaches them for one block.
pub const POINTS: [&str; 6] = [
    "consensus.before_persist",
    "consensus.after_persist",
    "commit.before_write",
    "commit.after_write",
    "admission.before_persist",
    "admission.after_persist",
];

#[cfg(feature = "failpoints")]
mod active {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The point and the hit to abort at, read once from the environment.
    fn target() -> Option<&'static (String, u64)> {
        static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
        TARGET
            .get_or_init(|| {
                let spec = std::env::var("INTERPOOL_CRASH_AT").ok()?;
                let (point, k) = match spec.split_once(':') {
                    Some((point, k)) => (point.to_string(), k.parse().ok()?),
                    None => (spec, 1),
                };
                Some((point, k))
            })
            .as_ref()
    }

    static HITS: AtomicU64 = AtomicU64::new(0);

    pub fn hit(point: &'static str) {
        if let Some((target, k)) = target() {
            if target == point && HITS.fetch_add(1, Ordering::SeqCst).saturating_add(1) == *k {
                eprintln!("failpoint {point}: aborting (hit {k})");
                std::process::abort();
            }
        }
    }

    pub fn corrupt_state_chunk() -> bool {
        static SERVED: AtomicU64 = AtomicU64::new(0);
        let Some(n) = std::env::var("INTERPOOL_CORRUPT_STATE_CHUNKS")
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return false;
        };
        SERVED.fetch_add(1, Ordering::SeqCst) < n
    }

    pub fn gossip_delay_ms() -> Option<u64> {
        std::env::var("INTERPOOL_GOSSIP_DELAY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
    }
}

/// Reaching crash point `point` (see [`POINTS`]).
#[inline]
pub fn hit(point: &'static str) {
    #[cfg(feature = "failpoints")]
    active::hit(point);
    #[cfg(not(feature = "failpoints"))]
    let _ = point;
}

/// How long to hold back the gossip of client submissions, if a test asked for it.
#[inline]
pub fn gossip_delay() -> Option<Duration> {
    #[cfg(feature = "failpoints")]
    return active::gossip_delay_ms().map(Duration::from_millis);
    #[cfg(not(feature = "failpoints"))]
    None
}

/// Whether to corrupt the state-sync chunk about to be served (a test asked for it).
#[inline]
pub fn corrupt_state_chunk() -> bool {
    #[cfg(feature = "failpoints")]
    return active::corrupt_state_chunk();
    #[cfg(not(feature = "failpoints"))]
    false
}
