//! The deterministic simulator: a seeded cluster of engines on a virtual clock, a hostile
//! network, crashes, partitions and byzantine validators, with invariants checked on
//! every step.
//!
//! One seed fixes everything: the fault plan, every latency, loss and duplication, every
//! byzantine choice. A failing seed is replayed exactly by
//! `cargo run -p interpool-consensus --example soak -- --seed S --validators N --scenario X --trace`
//! (the [`Failure`] prints that command and a readable trace).
//!
//! What is checked (see [`Violation`]):
//! * **agreement**: no two honest validators commit different payloads at one height;
//! * **validity**: a committed payload was proposed by someone and is valid for the
//!   application;
//! * **certificates**: every committed height's certificate verifies against the set;
//! * **no double signing**: no honest validator ever signs two different messages of one
//!   kind for one height and round, across crashes and restarts;
//! * **liveness**: after the last fault heals, every honest validator commits
//!   [`SimOptions::heights_after_heal`] more heights within
//!   [`SimOptions::liveness_bound_ms`] of virtual time.
//!
//! The host side is modelled like the node does it: each `Ready`'s state is durable at once,
//! then its actions execute in order; a crash keeps only the durable state and the
//! committed log, a restart builds a fresh engine from them, and `SyncNeeded` fetches
//! committed blocks with certificates from a reachable peer.

mod checker;
mod cluster;
pub mod rng;

use std::fmt;
use std::str::FromStr;

use crate::engine::Metrics;
use crate::types::Height;

pub use checker::Violation;

/// Fault families; each seed draws its concrete faults within the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// A random mix: up to f byzantine validators with random behaviours, crashes (some
    /// in the middle of executing actions), partitions, loss, duplication, reordering.
    Mixed,
    /// Every validator crashes (some at the same instant) and restarts from its persisted
    /// state only.
    AllCrash,
    /// More than f validators are down for a long time, then come back one by one.
    MajorityDown,
    /// One validator is down while the others commit many heights and climb many rounds
    /// (a partition leaves them without a quorum for a while); it then rejoins far behind.
    RejoinBehind,
    /// f byzantine validators that equivocate as proposer and double-vote, no other fault.
    Byzantine,
    /// No fault at all and a reliable network: the baseline for message counts.
    Calm,
}

impl Scenario {
    /// The fault scenarios (what a soak rotates through).
    pub const ALL: [Scenario; 5] = [
        Scenario::Mixed,
        Scenario::AllCrash,
        Scenario::MajorityDown,
        Scenario::RejoinBehind,
        Scenario::Byzantine,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::AllCrash => "all-crash",
            Scenario::MajorityDown => "majority-down",
            Scenario::RejoinBehind => "rejoin-behind",
            Scenario::Byzantine => "byzantine",
            Scenario::Calm => "calm",
        }
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(text: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .chain([Scenario::Calm])
            .find(|s| s.name() == text)
            .ok_or_else(|| format!("unknown scenario {text:?}"))
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One simulation run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// The seed; fixes the whole run.
    pub seed: u64,
    /// Number of validators (≥ 4).
    pub validators: usize,
    /// Fault family.
    pub scenario: Scenario,
    /// `K`: heights every honest validator must commit after the last fault heals.
    pub heights_after_heal: u64,
    /// Virtual time allowed for those heights.
    pub liveness_bound_ms: u64,
    /// **Sabotage for the teeth test**: every engine counts quorums of `2f` instead of
    /// `⌊2n/3⌋+1`. The checker must then catch an agreement violation for some seed.
    pub broken_quorum: bool,
    /// Record a readable trace of every event.
    pub trace: bool,
}

impl SimOptions {
    /// Defaults for `seed`, `validators` and `scenario`.
    pub fn new(seed: u64, validators: usize, scenario: Scenario) -> SimOptions {
        SimOptions {
            seed,
            validators,
            scenario,
            heights_after_heal: 3,
            liveness_bound_ms: 120_000,
            broken_quorum: false,
            trace: false,
        }
    }

    /// The command that replays this run with a trace.
    pub fn replay_command(&self) -> String {
        let mut command = format!(
            "cargo run -p interpool-consensus --example soak -- --seed {} --validators {} --scenario {} --trace",
            self.seed, self.validators, self.scenario
        );
        if self.broken_quorum {
            command.push_str(" --broken-quorum");
        }
        command
    }
}

/// Faults a run exercised, and what the engines saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Validator crashes.
    pub crashes: u64,
    /// Crashes in the middle of executing an action list.
    pub crashes_mid_actions: u64,
    /// Restarts from persisted state.
    pub restarts: u64,
    /// Partitions scheduled.
    pub partitions: u64,
    /// Messages lost (random loss, partitions, crashed receivers).
    pub messages_dropped: u64,
    /// Messages duplicated.
    pub messages_duplicated: u64,
    /// Byzantine validators.
    pub byzantine_validators: u64,
    /// Conflicting proposals sent by byzantine proposers.
    pub equivocating_proposals: u64,
    /// Conflicting votes sent by byzantine validators.
    pub double_votes: u64,
    /// Messages with corrupted signatures or foreign signers sent.
    pub bad_signatures: u64,
    /// Old messages replayed.
    pub replays: u64,
    /// Messages a silent byzantine validator withheld.
    pub withheld: u64,
    /// Invalid payloads proposed.
    pub invalid_payloads: u64,
    /// Sync transfers (batches of committed blocks) served.
    pub syncs: u64,
}

impl FaultCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &FaultCounts) {
        self.crashes += other.crashes;
        self.crashes_mid_actions += other.crashes_mid_actions;
        self.restarts += other.restarts;
        self.partitions += other.partitions;
        self.messages_dropped += other.messages_dropped;
        self.messages_duplicated += other.messages_duplicated;
        self.byzantine_validators += other.byzantine_validators;
        self.equivocating_proposals += other.equivocating_proposals;
        self.double_votes += other.double_votes;
        self.bad_signatures += other.bad_signatures;
        self.replays += other.replays;
        self.withheld += other.withheld;
        self.invalid_payloads += other.invalid_payloads;
        self.syncs += other.syncs;
    }
}

/// Adds engine counters.
pub fn add_metrics(total: &mut Metrics, other: &Metrics) {
    total.messages_received += other.messages_received;
    total.heights_committed += other.heights_committed;
    total.heights_synced += other.heights_synced;
    total.round_changes += other.round_changes;
    total.timeouts += other.timeouts;
    total.retransmissions += other.retransmissions;
    total.round_jumps += other.round_jumps;
    total.equivocations += other.equivocations;
    total.invalid_signatures += other.invalid_signatures;
    total.unknown_signers += other.unknown_signers;
    total.invalid_messages += other.invalid_messages;
    total.duplicates += other.duplicates;
    total.old_height += other.old_height;
    total.old_round += other.old_round;
    total.future_buffered += other.future_buffered;
    total.future_dropped += other.future_dropped;
    total.invalid_certificates += other.invalid_certificates;
    total.refused_signatures += other.refused_signatures;
    total.sync_requests += other.sync_requests;
}

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The options run.
    pub options: SimOptions,
    /// Virtual time at the end.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Messages put on the network (before loss and duplication).
    pub messages_sent: u64,
    /// Highest height committed by an honest validator.
    pub heights_committed: Height,
    /// Faults exercised.
    pub faults: FaultCounts,
    /// Engine counters summed over honest validators and their restarts.
    pub engine: Metrics,
}

/// A violated invariant, with what is needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The run.
    pub options: SimOptions,
    /// What broke.
    pub violation: Violation,
    /// Virtual time of the violation.
    pub at_ms: u64,
    /// A readable trace of the run up to the violation.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} (n = {}, scenario {}) violated an invariant at {} ms: {}",
            self.options.seed,
            self.options.validators,
            self.options.scenario,
            self.at_ms,
            self.violation
        )?;
        writeln!(f, "replay: {}", self.options.replay_command())?;
        const TAIL: usize = 60;
        if !self.trace.is_empty() {
            let skip = self.trace.len().saturating_sub(TAIL);
            writeln!(f, "last {} trace lines:", self.trace.len() - skip)?;
            for line in &self.trace[skip..] {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

/// Runs one seed. On failure the run is repeated with tracing on (it is deterministic) so
/// the failure carries a trace.
pub fn run(options: &SimOptions) -> Result<SimReport, Box<Failure>> {
    match cluster::Cluster::new(options.clone()).run() {
        Ok(report) => Ok(report),
        Err(failure) if options.trace => Err(failure),
        Err(_) => {
            let mut traced = options.clone();
            traced.trace = true;
            match cluster::Cluster::new(traced).run() {
                Err(failure) => Err(failure),
                Ok(_) => {
                    unreachable!("the simulator is deterministic: a replay fails the same way")
                }
            }
        }
    }
}

/// Runs one seed and returns its trace, whatever the outcome.
pub fn trace(options: &SimOptions) -> (Result<SimReport, Box<Failure>>, Vec<String>) {
    let mut traced = options.clone();
    traced.trace = true;
    let mut cluster = cluster::Cluster::new(traced);
    let result = cluster.run();
    let lines = match &result {
        Ok(_) => cluster.take_trace(),
        Err(failure) => failure.trace.clone(),
    };
    (result, lines)
}
