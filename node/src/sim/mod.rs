//! The node under deterministic simulation: validators made of the node's own driver,
//! core, mempool, admission pipeline and consensus-state store, over
//! [`MemStore`](crate::storage::mem::MemStore) (which loses unsynced writes at a simulated
//! crash), on a virtual clock, with a simulated network, clock skew, byzantine validators and
//! clients sending transfers.
//!
//! The consensus crate's simulator attacks the engine through a host of its own; this one
//! runs the host the node really has ([`Driver`](crate::driver::Driver),
//! [`Core`](crate::app::Core), [`Admission`](crate::app::Admission),
//! [`DurableConsensus`](crate::driver::DurableConsensus)), so a bug in how the node saves,
//! sends, commits, admits, restores or syncs is in reach of the checker.
//!
//! One seed fixes the whole run: the fault plan, every delay, loss and duplicate, every
//! byzantine choice, every client's transfers. A failure prints the command that replays it
//! with a trace:
//! `cargo run -p interpool-node --features sim --example simulate -- --seed S --trace`.
//!
//! A run has a fault phase (crashes of either kind below, partitions of one validator, a
//! lossy, duplicating, reordering network, up to f byzantine validators, clients sending
//! transfers to any validator) and a healing phase (every validator up, the network
//! reliable, no new transfers) that lasts until every honest validator holds every
//! acknowledged transfer, or a bound of virtual time passes. Then, and along the way:
//!
//! * **agreement and identical state**: every honest validator has the same block and the
//!   same state root at every height;
//! * **no acknowledged payment lost**: every transfer a validator acknowledged to a client
//!   (a 2xx from the API) is in every honest validator's chain;
//! * **the ledger invariants**: every commit checks them (full checks), and at the end
//!   [`audit`](crate::audit::audit) re-verifies every certificate and re-executes every
//!   block of every honest validator's store;
//! * **no double signing**: no honest validator signs two different messages of one kind
//!   for one height and round, across its crashes and restarts;
//! * **no halt**: an honest validator stops only because its store crashed.
//!
//! Two kinds of crash: between events, losing a random suffix of the unsynced writes (a
//! power cut; a killed process loses none, the suffix may be empty); and *at* a chosen later
//! write of the commit path, the consensus state or the admission record, which fails, so the
//! validator dies in the middle of handling an event, after sending whatever it had sent.

#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // simulator only

mod world;

use std::fmt;

pub use interpool_consensus::sim::rng::Rng;

/// One simulation run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// The seed; fixes the whole run.
    pub seed: u64,
    /// Validators (≥ 4).
    pub validators: usize,
    /// Clients, each a customer signing its own transfers.
    pub clients: usize,
    /// Virtual time of the fault phase.
    pub fault_ms: u64,
    /// Virtual time the healing phase may take before it is a liveness failure.
    pub settle_bound_ms: u64,
    /// **Sabotage for the teeth test**: honest validators send a `Ready`'s messages before
    /// saving its state. The checker must catch it.
    pub persist_after_send: bool,
    /// Record a readable trace.
    pub trace: bool,
}

impl SimOptions {
    /// Defaults for `seed`.
    pub fn new(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            validators: 4,
            clients: 6,
            fault_ms: 20_000,
            settle_bound_ms: 120_000,
            persist_after_send: false,
            trace: false,
        }
    }

    /// The command that replays this run with a trace.
    pub fn replay_command(&self) -> String {
        let mut command = format!(
            "cargo run -p interpool-node --features sim --example simulate -- --seed {} --validators {} --trace",
            self.seed, self.validators
        );
        if self.persist_after_send {
            command.push_str(" --persist-after-send");
        }
        command
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators hold different blocks (or state roots) at one height.
    Agreement {
        /// Height.
        height: u64,
        /// What differs.
        detail: String,
    },
    /// An honest validator signed two different messages of one kind for one height and
    /// round.
    DoubleSign {
        /// The validator.
        validator: usize,
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Message kind.
        kind: String,
    },
    /// Acknowledged transfers that some honest validator's chain lacks after healing.
    Lost {
        /// How many.
        count: usize,
        /// One of them.
        example: String,
        /// The validator lacking it.
        validator: usize,
    },
    /// An honest validator stopped (or could not restart) although its store was fine.
    Halted {
        /// The validator.
        validator: usize,
        /// Its error.
        error: String,
    },
    /// The audit of an honest validator's store failed.
    Audit {
        /// The validator.
        validator: usize,
        /// The audit's error.
        error: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement { height, detail } => {
                write!(f, "agreement violated at height {height}: {detail}")
            }
            Violation::DoubleSign {
                validator,
                height,
                round,
                kind,
            } => write!(
                f,
                "honest validator v{validator} signed two different {kind} messages for height {height} round {round}"
            ),
            Violation::Lost {
                count,
                example,
                validator,
            } => write!(
                f,
                "{count} acknowledged transfer(s) missing from v{validator}'s chain after healing (e.g. {example})"
            ),
            Violation::Halted { validator, error } => {
                write!(f, "honest validator v{validator} halted: {error}")
            }
            Violation::Audit { validator, error } => {
                write!(f, "audit of v{validator}'s store failed: {error}")
            }
        }
    }
}

/// Faults a run injected, and what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The final common height.
    pub height: u64,
    /// Transfers acknowledged to clients (all of them are in every honest chain).
    pub acknowledged: u64,
    /// Crashes between events (a suffix of unsynced writes lost).
    pub crashes: u64,
    /// Crashes at a write in the middle of an event.
    pub crashes_at_write: u64,
    /// Unsynced writes lost by crashes.
    pub writes_lost: u64,
    /// Partitions of one validator.
    pub partitions: u64,
    /// Byzantine validators.
    pub byzantine: u64,
    /// Packets dropped, duplicated.
    pub dropped: u64,
    /// Packets duplicated.
    pub duplicated: u64,
    /// Consensus messages sent (all validators).
    pub messages: u64,
    /// Virtual time from the heal to the last acknowledged transfer everywhere.
    pub settle_ms: u64,
    /// The trace (with [`SimOptions::trace`]).
    pub trace: Vec<String>,
}

impl SimReport {
    /// Adds `other`'s counts (for soak totals).
    pub fn add(&mut self, other: &SimReport) {
        self.height += other.height;
        self.acknowledged += other.acknowledged;
        self.crashes += other.crashes;
        self.crashes_at_write += other.crashes_at_write;
        self.writes_lost += other.writes_lost;
        self.partitions += other.partitions;
        self.byzantine += other.byzantine;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
        self.messages += other.messages;
        self.settle_ms = self.settle_ms.max(other.settle_ms);
    }
}

/// A failed run.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The run's options.
    pub options: SimOptions,
    /// What was violated.
    pub violation: Violation,
    /// Virtual time of the violation.
    pub at_ms: u64,
    /// The trace (with `options.trace`).
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} at {} ms: {}\n  replay: {}",
            self.options.seed,
            self.at_ms,
            self.violation,
            self.options.replay_command()
        )
    }
}

/// Runs one simulation.
pub fn run(options: &SimOptions) -> Result<SimReport, Box<Failure>> {
    world::World::new(options.clone()).run()
}

#[cfg(test)]
mod tests;
