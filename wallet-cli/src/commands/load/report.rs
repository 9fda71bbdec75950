//! The load's measurements: latency percentiles, the steady-state rate, the nodes' CPU
//! time and memory read from `/proc`, and the machine's speed before and after the load.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use interpool_contracts::zip215;
use serde::Serialize;

use super::Rate;

/// Ticks per second of `/proc/PID/stat`'s times (`USER_HZ`: 100 on every Linux the node
/// runs on).
const USER_HZ: f64 = 100.0;

/// The value at fraction `p` of `sorted` (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// When a `--rate max` load with a duration ran out of planned transfers: the moment the
/// last batch was answered (`ended_us`, from the start), if every one of the `planned`
/// transfers was `sent` before `duration_s` was over. `None` for a fixed rate (its plan is
/// the rate times the duration, paced to end with it), for a load without a duration, and
/// for one that gave up some batches (sent fewer than planned: the failures say why).
pub fn ran_out(
    rate: Rate,
    duration_s: Option<u64>,
    (planned, sent): (usize, usize),
    ended_us: u64,
) -> Option<f64> {
    let duration_us = duration_s?.saturating_mul(1_000_000);
    (rate == Rate::Max && planned > 0 && sent >= planned && ended_us < duration_us)
        .then_some(ended_us as f64 / 1e6)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize, Default)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

impl Latency {
    /// Of `sorted` (milliseconds, ascending).
    pub fn of(sorted: &[u64]) -> Latency {
        Latency {
            p50: percentile(sorted, 0.50),
            p90: percentile(sorted, 0.90),
            p99: percentile(sorted, 0.99),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// The committed rate between the moments 10 % and 90 % of the commits had arrived (the
/// ramp-up and the tail left out).
#[derive(Debug, Serialize, Default, PartialEq)]
pub struct SteadyState {
    /// Window start, seconds from the first submission.
    pub from_s: f64,
    /// Window end.
    pub to_s: f64,
    /// Committed transfers per second in the window.
    pub committed_per_second: f64,
}

impl SteadyState {
    /// Of commit times `sorted_us` (microseconds from the start, ascending).
    pub fn of(sorted_us: &[u64]) -> SteadyState {
        if sorted_us.len() < 10 {
            return SteadyState::default();
        }
        let low = (sorted_us.len() - 1) / 10;
        let high = (sorted_us.len() - 1) * 9 / 10;
        let from = sorted_us[low] as f64 / 1e6;
        let to = sorted_us[high] as f64 / 1e6;
        let span = (to - from).max(1e-6);
        SteadyState {
            from_s: from,
            to_s: to,
            committed_per_second: (high - low) as f64 / span,
        }
    }
}

/// One second of the run: transfers acknowledged and committed in it.
#[derive(Debug, Serialize, Default, Clone, PartialEq)]
pub struct Second {
    /// Seconds from the first submission.
    pub second: u64,
    /// Acknowledged in this second.
    pub accepted: u64,
    /// Committed (or queued, or rejected: included) in this second.
    pub committed: u64,
}

/// Per-second counts of `accepted_us` and `committed_us` (microseconds from the start).
pub fn per_second(accepted_us: &[u64], committed_us: &[u64]) -> Vec<Second> {
    let last = accepted_us
        .iter()
        .chain(committed_us)
        .max()
        .map_or(0, |us| us / 1_000_000);
    let mut seconds: Vec<Second> = (0..=last)
        .map(|second| Second {
            second,
            ..Second::default()
        })
        .collect();
    for us in accepted_us {
        seconds[(us / 1_000_000) as usize].accepted += 1;
    }
    for us in committed_us {
        seconds[(us / 1_000_000) as usize].committed += 1;
    }
    seconds
}

/// Latency histogram buckets (upper bounds, milliseconds).
const BUCKETS_MS: [u64; 14] = [
    5, 10, 20, 50, 100, 200, 300, 500, 750, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// How many latencies fall at or under each bound (and above the last).
pub fn histogram(sorted_ms: &[u64]) -> Vec<Bucket> {
    let mut out = Vec::new();
    let mut below = 0;
    for &bound in &BUCKETS_MS {
        let at_most = sorted_ms.partition_point(|&ms| ms <= bound);
        out.push(Bucket {
            le_ms: Some(bound),
            count: (at_most - below) as u64,
        });
        below = at_most;
    }
    out.push(Bucket {
        le_ms: None,
        count: (sorted_ms.len() - below) as u64,
    });
    out
}

/// A latency histogram bucket.
#[derive(Debug, Serialize, PartialEq)]
pub struct Bucket {
    /// Upper bound in milliseconds (none: above the last bound).
    pub le_ms: Option<u64>,
    /// Latencies in the bucket.
    pub count: u64,
}

/// A node process's CPU time and memory.
#[derive(Debug, Serialize, Clone)]
pub struct NodeUsage {
    /// The node's name in the manifest.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// CPU seconds (user and system) it spent during the load.
    pub cpu_seconds: f64,
    /// Those as a share of one core over the load's wall time, in percent.
    pub cpu_percent: f64,
    /// Its peak resident memory since it started (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// Its resident memory at the end (`VmRSS`), MiB.
    pub rss_mib: f64,
}

/// `utime + stime` of process `pid`, in seconds (None if it is gone or not readable).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `kB` field of `/proc/PID/status`, in MiB.
pub fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The pid in `DIR/NAME/node.pid` (what `scripts/localnet.sh` writes), if that process is
/// an `interpool-node`.
pub fn node_pid(dir: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join(name).join("node.pid")).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    exe.file_name()?
        .to_str()?
        .starts_with("interpool-node")
        .then_some(pid)
}

/// Counts by code, for the report.
pub type Codes = BTreeMap<String, usize>;

/// Signatures the speed probe verifies in one batch: the load's default batch, which is
/// also what a validator verifies at once when a client's batch or its gossip arrives.
pub const PROBE_BATCH: usize = 500;
/// Times the probe runs its batch; the median is kept, so that one preemption by a
/// neighbour does not decide it.
const PROBE_ROUNDS: usize = 7;

/// How fast this machine was when the load began and when it ended, by the same fixed piece
/// of the work validators do most (a fifth to a quarter of their CPU): ZIP-215 batch
/// verification, one thread. A shared or throttled machine's speed changes from one hour to
/// the next (the same build measured 7,500 and 11,700 transfers/s at 4 validators on the
/// same day), so two runs compare only beside their probes.
///
/// Each probe waits first for the nodes to go quiet ([`wait_quiet`]): right after the last
/// outcome they are still flushing, compacting and (an observer) catching up, and a probe
/// beside them measured 34 µs where the machine gave 13.
#[derive(Debug, Serialize, Clone, Copy, Default)]
pub struct MachineSpeed {
    /// Microseconds per signature before the first submission.
    pub before_us_per_signature: Option<f64>,
    /// The same after the last outcome.
    pub after_us_per_signature: Option<f64>,
    /// How long the nodes took to go quiet before each probe, in seconds (`None`: they were
    /// still busy after [`QUIET_DEADLINE`], and the probe ran beside them).
    pub before_quiet_after_s: Option<f64>,
    /// The same before the probe after the load.
    pub after_quiet_after_s: Option<f64>,
    /// The curve arithmetic the probe ran on ([`interpool_contracts::zip215::arithmetic`]):
    /// probes compare only between builds and CPUs that run the same (with AVX-512 IFMA, the
    /// same machine gives about a third fewer µs per signature than with AVX2).
    pub arithmetic: &'static str,
}

/// Processes together under this share of one core are quiet: idle consensus (empty
/// blocks), not the load's work.
pub const QUIET_SHARE_OF_A_CORE: f64 = 0.25;
/// The window over which [`QUIET_SHARE_OF_A_CORE`] is measured.
pub const QUIET_WINDOW: Duration = Duration::from_secs(1);
/// The longest wait for quiet nodes before a probe.
pub const QUIET_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `pids` together used less than `share` of a core over one `window`, or until
/// `deadline` has passed: the seconds it took, or `None` if they never went quiet. Gone
/// processes count as quiet.
pub fn wait_quiet(pids: &[u32], share: f64, window: Duration, deadline: Duration) -> Option<f64> {
    let started = Instant::now();
    let cpu = || -> f64 { pids.iter().filter_map(|pid| cpu_seconds(*pid)).sum() };
    loop {
        let (before, from) = (cpu(), Instant::now());
        std::thread::sleep(window);
        let used = (cpu() - before).max(0.0);
        if used < share * from.elapsed().as_secs_f64() {
            return Some(started.elapsed().as_secs_f64());
        }
        if started.elapsed() >= deadline {
            return None;
        }
    }
}

/// [`PROBE_BATCH`] transactions' worth of signatures by distinct keys, made once.
pub struct Probe {
    keys: Vec<zip215::PublicKey>,
    messages: Vec<[u8; 32]>,
    signatures: Vec<[u8; 64]>,
}

impl Probe {
    /// Signs the probe's messages (32 bytes each, as a transaction hash) with keys derived
    /// from fixed seeds, so that every run times the same work.
    pub fn new() -> Option<Probe> {
        let mut probe = Probe {
            keys: Vec::with_capacity(PROBE_BATCH),
            messages: Vec::with_capacity(PROBE_BATCH),
            signatures: Vec::with_capacity(PROBE_BATCH),
        };
        for i in 0..PROBE_BATCH {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[31] = 0x5a;
            let key = SigningKey::from_bytes(&seed);
            let mut message = [0u8; 32];
            message[..8]
                .copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            probe
                .keys
                .push(zip215::PublicKey::decode(&key.verifying_key().to_bytes()).ok()?);
            probe.signatures.push(key.sign(&message).to_bytes());
            probe.messages.push(message);
        }
        Some(probe)
    }

    /// The median over [`PROBE_ROUNDS`] of one batch verification, per signature, in
    /// microseconds; `None` if any signature failed (then it timed something else).
    pub fn us_per_signature(&self) -> Option<f64> {
        let items: Vec<(&zip215::PublicKey, &[u8], &[u8; 64])> = self
            .keys
            .iter()
            .zip(&self.messages)
            .zip(&self.signatures)
            .map(|((key, message), signature)| (key, message.as_slice(), signature))
            .collect();
        let mut rounds = Vec::with_capacity(PROBE_ROUNDS);
        for _ in 0..PROBE_ROUNDS {
            let started = Instant::now();
            let verdicts = zip215::verify_batch(&items);
            rounds.push(started.elapsed().as_secs_f64());
            if !verdicts.iter().all(|valid| *valid) {
                return None;
            }
        }
        rounds.sort_by(f64::total_cmp);
        let median = rounds.get(PROBE_ROUNDS / 2)?;
        Some(median * 1e6 / items.len().max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_speed_probe_times_valid_signatures_and_refuses_to_time_anything_else() {
        let mut probe = Probe::new().expect("keys decode");
        let us = probe.us_per_signature().expect("all verify");
        assert!(us.is_finite() && us > 0.0, "{us}");
        // A forged signature: the batch falls back to single checks, and that is not the
        // work the probe stands for.
        probe.signatures[7][40] ^= 1;
        assert_eq!(probe.us_per_signature(), None);
    }

    #[test]
    fn a_max_rate_load_that_sent_its_whole_plan_before_the_duration_ran_out() {
        // 675,000 planned for 45 s, all sent 26.7 s in (one validator, 15,000/s planned).
        let at = ran_out(Rate::Max, Some(45), (675_000, 675_000), 26_700_000);
        assert_eq!(at, Some(26.7));
        // Sending until the duration was over: the load was as long as asked.
        assert_eq!(
            ran_out(Rate::Max, Some(45), (675_000, 600_000), 45_100_000),
            None
        );
        assert_eq!(
            ran_out(Rate::Max, Some(45), (675_000, 675_000), 45_000_000),
            None
        );
        // Batches given up (sent fewer than planned): not a short plan.
        assert_eq!(
            ran_out(Rate::Max, Some(45), (675_000, 674_500), 26_700_000),
            None
        );
        // A fixed rate is paced to end with its duration; a count has no duration.
        assert_eq!(
            ran_out(
                Rate::PerSecond(1_000),
                Some(45),
                (45_000, 45_000),
                44_990_000
            ),
            None
        );
        assert_eq!(ran_out(Rate::Max, None, (10_000, 10_000), 1_000_000), None);
        assert_eq!(ran_out(Rate::Max, Some(45), (0, 0), 0), None);
    }

    #[test]
    fn quiet_is_a_window_under_the_share_and_a_busy_process_never_is() {
        let window = Duration::from_millis(300);
        let mut idle = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let mut busy = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh");
        let quiet = wait_quiet(&[idle.id()], 0.25, window, Duration::from_secs(10));
        // Spinning takes most of a core (or all the share it gets on a loaded machine).
        let spinning = wait_quiet(&[busy.id()], 0.05, window, Duration::from_secs(2));
        let both = wait_quiet(&[idle.id(), busy.id()], 0.05, window, Duration::ZERO);
        for child in [&mut idle, &mut busy] {
            child.kill().expect("kill");
            child.wait().expect("reap");
        }
        assert!(quiet.is_some_and(|s| s < 10.0), "{quiet:?}");
        assert_eq!(spinning, None);
        assert_eq!(both, None);
        // Gone: nothing left to wait for.
        assert!(wait_quiet(&[busy.id()], 0.05, window, Duration::ZERO).is_some());
    }

    #[test]
    fn percentiles_and_latency() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
        let latency = Latency::of(&sorted);
        assert_eq!((latency.p90, latency.max), (90, 100));
    }

    #[test]
    fn the_steady_state_leaves_out_the_ramp_and_the_tail() {
        // 1,000 commits evenly over 10 s, then a straggler at 60 s.
        let mut times: Vec<u64> = (0..1_000).map(|i| i * 10_000).collect();
        times.push(60_000_000);
        let steady = SteadyState::of(&times);
        assert!(
            (steady.committed_per_second - 100.0).abs() < 1.0,
            "{steady:?}"
        );
        assert!(steady.from_s >= 0.9 && steady.to_s <= 9.1, "{steady:?}");
        assert_eq!(SteadyState::of(&[1, 2]), SteadyState::default());
    }

    #[test]
    fn per_second_counts_and_histogram_buckets() {
        let seconds = per_second(&[100, 1_500_000], &[900_000, 1_000_000, 2_100_000]);
        assert_eq!(
            seconds
                .iter()
                .map(|s| (s.accepted, s.committed))
                .collect::<Vec<_>>(),
            [(1, 1), (1, 1), (0, 1)]
        );
        let buckets = histogram(&[1, 5, 6, 40_000]);
        assert_eq!(buckets[0].count, 2);
        assert_eq!(buckets[1].count, 1);
        assert_eq!(buckets.last().map(|b| b.count), Some(1));
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 4);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert!(status_mib(me, "VmHWM:").is_some_and(|mib| mib > 0.0));
        assert_eq!(cpu_seconds(u32::MAX), None);
    }
}
