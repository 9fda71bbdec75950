//! The simulated cluster: nodes (engine + durable state + committed log), the virtual
//! clock and event queue, the network, the fault plan and the byzantine validators.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};

use super::checker::{payload_is_valid, Checker, Violation};
use super::rng::Rng;
use super::{add_metrics, Failure, FaultCounts, Scenario, SimOptions, SimReport};
use crate::engine::{Action, Config, Engine, Input, Metrics, PersistedState, TimerKind};
use crate::message::{
    CommitCertificate, Message, Proposal, SignatureVerifier, SignedMessage, StrictVerifier, Vote,
};
use crate::types::{ChainDomain, Digest, Height, PublicKey, Round, Signature, ValidatorSet};

/// Blocks handed to a lagging validator per sync transfer.
const SYNC_BATCH: usize = 16;
/// Messages a byzantine validator remembers for replay.
const REPLAY_MEMORY: usize = 64;
/// Trace lines kept at most.
const MAX_TRACE_LINES: usize = 500_000;

/// A cache of positive signature checks shared by the simulated validators: each distinct
/// `(key, hash, signature)` is verified once. Failures are never cached.
#[derive(Clone, Default)]
struct CachedVerifier {
    verified: Arc<Mutex<BTreeSet<[u8; 32]>>>,
}

impl SignatureVerifier for CachedVerifier {
    fn verify(
        &mut self,
        validators: &ValidatorSet,
        signer: usize,
        hash: &[u8; 32],
        signature: &Signature,
    ) -> bool {
        let mut hasher = Sha256::new();
        if let Some(key) = validators.key(signer) {
            hasher.update(key.0);
        }
        hasher.update(hash);
        hasher.update(signature.0);
        let entry: [u8; 32] = hasher.finalize().into();
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&entry) {
            return true;
        }
        let ok = StrictVerifier.verify(validators, signer, hash, signature);
        if ok {
            verified.insert(entry);
        }
        ok
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    silent: bool,
    equivocate: bool,
    double_vote: bool,
    bad_signatures: bool,
    replay: bool,
    invalid_payloads: bool,
}

struct Node {
    key: SigningKey,
    engine: Option<Engine>,
    durable: Option<PersistedState>,
    log: Vec<(Vec<u8>, CommitCertificate)>,
    incarnation: u64,
    byzantine: Option<Behaviour>,
    crash_pending: bool,
    history: Vec<SignedMessage>,
    past_metrics: Metrics,
}

enum Event {
    Deliver {
        from: usize,
        to: usize,
        bytes: Rc<[u8]>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
        kind: TimerKind,
    },
    ProposalReady {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
        payload: Vec<u8>,
    },
    Validated {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
        digest: Digest,
        valid: bool,
    },
    SyncReply {
        node: usize,
        incarnation: u64,
        from: usize,
        entries: Vec<(Height, Vec<u8>, CommitCertificate)>,
    },
    Crash {
        node: usize,
        mid_actions: bool,
    },
    Restart {
        node: usize,
    },
    Partition {
        groups: Vec<u8>,
    },
    Heal,
}

#[derive(Debug, Clone, Copy)]
struct Network {
    loss_per_mille: u64,
    duplicate_per_mille: u64,
    latency_min_ms: u64,
    latency_max_ms: u64,
    spike_per_mille: u64,
}

pub(crate) struct Cluster {
    options: SimOptions,
    rng: Rng,
    validators: ValidatorSet,
    config: Config,
    nodes: Vec<Node>,
    queue: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    now: u64,
    partition: Option<Vec<u8>>,
    network: Network,
    checker: Checker,
    verifier: CachedVerifier,
    faults: FaultCounts,
    messages_sent: u64,
    events: u64,
    heal_ms: u64,
    trace: Vec<String>,
}

fn key_of(index: usize) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(format!("interpool/sim/validator/{index}")).into();
    SigningKey::from_bytes(&seed)
}

/// Engine parameters used in the simulation (virtual milliseconds).
pub(crate) fn sim_config() -> Config {
    Config {
        round_timeout_base_ms: 600,
        round_timeout_max_doublings: 4,
        retransmit_interval_ms: 400,
        ..Config::default()
    }
}

fn describe(message: &SignedMessage) -> String {
    match &message.message {
        Message::Proposal(p) => format!(
            "PROPOSAL h{} r{} {:?}{}",
            p.height,
            p.round,
            Digest::of(&p.payload),
            if p.justification.is_empty() {
                String::new()
            } else {
                format!(" (justified by {} round changes)", p.justification.len())
            }
        ),
        Message::Prepare(v) => format!("PREPARE h{} r{} {:?}", v.height, v.round, v.digest),
        Message::Commit(v) => format!("COMMIT h{} r{} {:?}", v.height, v.round, v.digest),
        Message::RoundChange { round_change, .. } => format!(
            "ROUND-CHANGE h{} r{} prepared={}",
            round_change.height,
            round_change.round,
            round_change
                .prepared
                .as_ref()
                .map(|c| format!("r{} {:?}", c.vote.round, c.vote.digest))
                .unwrap_or_else(|| "none".into())
        ),
    }
}

impl Cluster {
    pub fn new(options: SimOptions) -> Cluster {
        let n = options.validators;
        let mut master = Rng::new(options.seed);
        let mut plan = master.fork(1);
        let rng = master.fork(2);
        let keys: Vec<SigningKey> = (0..n).map(key_of).collect();
        let mut validators = ValidatorSet::new(
            keys.iter()
                .map(|k| PublicKey::from(&k.verifying_key()))
                .collect(),
        )
        .expect("simulated validator sets are well-formed");
        if options.broken_quorum {
            let broken = 2 * validators.f();
            validators = validators.with_broken_quorum_for_simulation(broken);
        }
        let nodes = keys
            .into_iter()
            .map(|key| Node {
                key,
                engine: None,
                durable: None,
                log: Vec::new(),
                incarnation: 0,
                byzantine: None,
                crash_pending: false,
                history: Vec::new(),
                past_metrics: Metrics::default(),
            })
            .collect();
        let network = Network {
            loss_per_mille: plan.range(0, 50),
            duplicate_per_mille: plan.range(0, 50),
            latency_min_ms: plan.range(1, 20),
            latency_max_ms: 0,
            spike_per_mille: plan.range(0, 20),
        };
        let mut cluster = Cluster {
            options,
            rng,
            validators,
            config: sim_config(),
            nodes,
            queue: BTreeMap::new(),
            sequence: 0,
            now: 0,
            partition: None,
            network,
            checker: Checker::default(),
            verifier: CachedVerifier::default(),
            faults: FaultCounts::default(),
            messages_sent: 0,
            events: 0,
            heal_ms: 0,
            trace: Vec::new(),
        };
        cluster.network.latency_max_ms = cluster.network.latency_min_ms + plan.range(5, 100);
        cluster.plan_faults(&mut plan);
        cluster
    }

    pub fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }

    fn f(&self) -> usize {
        self.validators.f()
    }

    fn n(&self) -> usize {
        self.nodes.len()
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), event);
    }

    fn log(&mut self, text: impl FnOnce() -> String) {
        if self.options.trace && self.trace.len() < MAX_TRACE_LINES {
            let line = format!("{:>8}ms  {}", self.now, text());
            self.trace.push(line);
        }
    }

    fn honest(&self, node: usize) -> bool {
        self.nodes[node].byzantine.is_none()
    }

    fn alive(&self, node: usize) -> bool {
        self.nodes[node].engine.is_some()
    }

    // ----- the fault plan ------------------------------------------------------------

    fn random_nodes(&self, plan: &mut Rng, count: usize, among: &[usize]) -> Vec<usize> {
        let mut pool = among.to_vec();
        plan.shuffle(&mut pool);
        pool.truncate(count);
        pool.sort_unstable();
        pool
    }

    fn make_byzantine(&mut self, plan: &mut Rng, count: usize, forced: bool) -> Vec<usize> {
        let all: Vec<usize> = (0..self.n()).collect();
        let chosen = self.random_nodes(plan, count, &all);
        for &node in &chosen {
            let behaviour = if forced {
                Behaviour {
                    silent: false,
                    equivocate: true,
                    double_vote: true,
                    bad_signatures: plan.chance(300),
                    replay: plan.chance(300),
                    invalid_payloads: false,
                }
            } else if plan.chance(200) {
                Behaviour {
                    silent: true,
                    ..Behaviour::default()
                }
            } else {
                Behaviour {
                    silent: false,
                    equivocate: plan.chance(500),
                    double_vote: plan.chance(500),
                    bad_signatures: plan.chance(500),
                    replay: plan.chance(500),
                    invalid_payloads: plan.chance(300),
                }
            };
            self.nodes[node].byzantine = Some(behaviour);
        }
        self.faults.byzantine_validators = chosen.len() as u64;
        chosen
    }

    fn plan_crash(&mut self, node: usize, at: u64, down_ms: u64, mid_actions: bool) {
        self.schedule(at, Event::Crash { node, mid_actions });
        self.schedule(at + down_ms, Event::Restart { node });
        self.heal_ms = self.heal_ms.max(at + down_ms);
    }

    fn plan_partition(&mut self, at: u64, duration_ms: u64, groups: Vec<u8>) {
        self.schedule(at, Event::Partition { groups });
        self.schedule(at + duration_ms, Event::Heal);
        self.heal_ms = self.heal_ms.max(at + duration_ms);
    }

    fn plan_faults(&mut self, plan: &mut Rng) {
        let n = self.n();
        let f = self.f();
        match self.options.scenario {
            Scenario::Mixed => {
                let byzantine_count = plan.range(0, f as u64) as usize;
                let byzantine = self.make_byzantine(plan, byzantine_count, false);
                let honest: Vec<usize> = (0..n).filter(|i| !byzantine.contains(i)).collect();
                // Crashes of honest validators, at most one outage per validator at a time.
                let mut busy_until = vec![0u64; n];
                for _ in 0..plan.range(0, 3) {
                    let node = honest[plan.index(honest.len())];
                    let at = plan.range(0, 4_000).max(busy_until[node] + 1);
                    let down = plan.range(100, 4_000);
                    busy_until[node] = at + down;
                    let mid = plan.chance(500);
                    self.plan_crash(node, at, down, mid);
                }
                // Partitions, one after another.
                let mut next = 0;
                for _ in 0..plan.range(0, 2) {
                    let at = next + plan.range(0, 4_000);
                    let duration = plan.range(100, 3_000);
                    let groups = (0..n).map(|_| plan.below(2) as u8).collect();
                    self.plan_partition(at, duration, groups);
                    next = at + duration + 1;
                }
            }
            Scenario::AllCrash => {
                let together = plan.chance(500);
                let common = plan.range(500, 2_000);
                for node in 0..n {
                    let at = if together {
                        common
                    } else {
                        plan.range(500, 3_000)
                    };
                    let down = plan.range(50, 3_000);
                    let mid = plan.chance(500);
                    self.plan_crash(node, at, down, mid);
                }
            }
            Scenario::MajorityDown => {
                let count = plan.range(f as u64 + 1, n as u64 - 1) as usize;
                let all: Vec<usize> = (0..n).collect();
                let down = self.random_nodes(plan, count, &all);
                let mut back = plan.range(15_000, 30_000);
                for node in down {
                    let at = plan.range(300, 1_500);
                    self.plan_crash(node, at, back - at, plan.chance(300));
                    back += plan.range(1_000, 4_000);
                }
            }
            Scenario::RejoinBehind => {
                let victim = plan.index(n);
                let crash_at = plan.range(200, 800);
                // The others lose their quorum for a while (rounds climb), then heal and
                // commit more heights; the victim comes back far behind in heights and rounds.
                let mut others: Vec<usize> = (0..n).filter(|i| *i != victim).collect();
                plan.shuffle(&mut others);
                let mut groups = vec![2u8; n];
                for (position, node) in others.iter().enumerate() {
                    groups[*node] = u8::from(position % 2 == 1);
                }
                let split_at = plan.range(2_000, 3_000);
                let split_for = plan.range(8_000, 15_000);
                let back = split_at + split_for + plan.range(3_000, 6_000);
                self.plan_partition(split_at, split_for, groups);
                self.plan_crash(victim, crash_at, back - crash_at, false);
            }
            Scenario::Byzantine => {
                self.make_byzantine(plan, f, true);
                self.network.loss_per_mille = self.network.loss_per_mille.min(10);
            }
            Scenario::Calm => {
                self.network.loss_per_mille = 0;
                self.network.duplicate_per_mille = 0;
                self.network.spike_per_mille = 0;
            }
        }
        let plan_line = format!(
            "plan: n={} f={} quorum={} scenario={} byzantine={:?} heal_at={}ms network={:?}",
            n,
            f,
            self.validators.quorum(),
            self.options.scenario,
            (0..n)
                .filter_map(|i| self.nodes[i].byzantine.map(|b| (i, b)))
                .collect::<Vec<_>>(),
            self.heal_ms,
            self.network
        );
        self.log(|| plan_line);
    }

    // ----- the run ---------------------------------------------------------------------

    pub fn run(&mut self) -> Result<SimReport, Box<Failure>> {
        match self.run_inner() {
            Ok(()) => Ok(self.report()),
            Err(violation) => {
                let at_ms = self.now;
                let failure_line = format!("VIOLATION {violation}");
                self.log(|| failure_line);
                Err(Box::new(Failure {
                    options: self.options.clone(),
                    violation,
                    at_ms,
                    trace: std::mem::take(&mut self.trace),
                }))
            }
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        for node in 0..self.n() {
            self.start(node)?;
        }
        let deadline = self.heal_ms + self.options.liveness_bound_ms;
        let mut baseline: Option<Vec<usize>> = None;
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > deadline {
                break;
            }
            self.now = at;
            if baseline.is_none() && at >= self.heal_ms {
                baseline = Some(self.nodes.iter().map(|n| n.log.len()).collect());
                self.log(|| "all faults healed; liveness clock starts".into());
            }
            self.events += 1;
            self.process(event)?;
            if let Some(base) = &baseline {
                let target = self.options.heights_after_heal as usize;
                let done = (0..self.n())
                    .filter(|i| self.honest(*i))
                    .all(|i| self.nodes[i].log.len() >= base[i] + target);
                if done {
                    return Ok(());
                }
            }
        }
        let detail = (0..self.n())
            .filter(|i| self.honest(*i))
            .map(|i| {
                let node = &self.nodes[i];
                let base = baseline.as_ref().map_or(0, |b| b[i]);
                match &node.engine {
                    Some(engine) => format!(
                        "v{i}: committed {} (+{} since heal), at height {} round {}",
                        node.log.len(),
                        node.log.len() - base,
                        engine.height(),
                        engine.round()
                    ),
                    None => format!("v{i}: down"),
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        self.now = deadline;
        Err(Violation::Liveness {
            detail: format!(
                "{} heights per validator not reached within {} ms after the last fault healed at {} ms: {detail}",
                self.options.heights_after_heal, self.options.liveness_bound_ms, self.heal_ms
            ),
        })
    }

    fn report(&self) -> SimReport {
        let mut engine = Metrics::default();
        for node in self.nodes.iter().filter(|n| n.byzantine.is_none()) {
            add_metrics(&mut engine, &node.past_metrics);
            if let Some(live) = &node.engine {
                add_metrics(&mut engine, live.metrics());
            }
        }
        SimReport {
            options: self.options.clone(),
            virtual_ms: self.now,
            events: self.events,
            messages_sent: self.messages_sent,
            heights_committed: self
                .nodes
                .iter()
                .filter(|n| n.byzantine.is_none())
                .map(|n| n.log.len() as Height)
                .max()
                .unwrap_or(0),
            faults: self.faults,
            engine,
        }
    }

    fn start(&mut self, node: usize) -> Result<(), Violation> {
        let start_height = self.nodes[node].log.len() as Height + 1;
        let engine = Engine::new(
            self.config.clone(),
            self.validators.clone(),
            self.nodes[node].key.clone(),
            self.nodes[node].durable.clone(),
            start_height,
        )
        .expect("a simulated validator restarts from the state it persisted")
        .with_verifier(Box::new(self.verifier.clone()));
        self.nodes[node].engine = Some(engine);
        let now_ms = self.now;
        self.feed(node, Input::Start { now_ms })
    }

    fn crash(&mut self, node: usize) {
        let Some(engine) = self.nodes[node].engine.take() else {
            return;
        };
        let metrics = *engine.metrics();
        add_metrics(&mut self.nodes[node].past_metrics, &metrics);
        self.nodes[node].incarnation += 1;
        self.nodes[node].crash_pending = false;
        self.faults.crashes += 1;
        let height = engine.height();
        let round = engine.round();
        self.log(|| format!("CRASH v{node} at height {height} round {round}"));
    }

    fn process(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Deliver { from, to, bytes } => {
                if !self.reachable(from, to) {
                    self.faults.messages_dropped += 1;
                    return Ok(());
                }
                let Ok(message) = SignedMessage::decode(&bytes) else {
                    self.log(|| format!("v{from} -> v{to} undecodable bytes dropped"));
                    return Ok(());
                };
                self.log(|| format!("v{from} -> v{to} {}", describe(&message)));
                if self.nodes[to].byzantine.is_some() {
                    self.remember(to, &message);
                }
                self.feed(to, Input::Message(message))
            }
            Event::Timer {
                node,
                incarnation,
                height,
                round,
                kind,
            } => {
                if !self.current(node, incarnation) {
                    return Ok(());
                }
                let now_ms = self.now;
                if kind == TimerKind::Round
                    && self.nodes[node]
                        .engine
                        .as_ref()
                        .is_some_and(|e| e.height() == height && e.round() == round)
                {
                    self.log(|| format!("v{node} timeout h{height} r{round}"));
                }
                self.feed(
                    node,
                    Input::Timeout {
                        height,
                        round,
                        kind,
                        now_ms,
                    },
                )
            }
            Event::ProposalReady {
                node,
                incarnation,
                height,
                round,
                payload,
            } => {
                if !self.current(node, incarnation) {
                    return Ok(());
                }
                self.feed(
                    node,
                    Input::ProposalReady {
                        height,
                        round,
                        payload,
                    },
                )
            }
            Event::Validated {
                node,
                incarnation,
                height,
                round,
                digest,
                valid,
            } => {
                if !self.current(node, incarnation) {
                    return Ok(());
                }
                self.feed(
                    node,
                    Input::ValidationResult {
                        height,
                        round,
                        digest,
                        valid,
                    },
                )
            }
            Event::SyncReply {
                node,
                incarnation,
                from,
                entries,
            } => {
                if !self.current(node, incarnation) {
                    return Ok(());
                }
                let count = entries.len();
                self.log(|| format!("v{node} receives {count} committed blocks from v{from}"));
                for (height, payload, certificate) in entries {
                    if !self.alive(node) {
                        break;
                    }
                    self.feed(
                        node,
                        Input::CommittedViaSync {
                            height,
                            payload,
                            certificate,
                        },
                    )?;
                }
                Ok(())
            }
            Event::Crash { node, mid_actions } => {
                if self.alive(node) {
                    if mid_actions {
                        self.nodes[node].crash_pending = true;
                    } else {
                        self.crash(node);
                    }
                }
                Ok(())
            }
            Event::Restart { node } => {
                if self.nodes[node].crash_pending {
                    self.crash(node);
                }
                if self.alive(node) {
                    return Ok(());
                }
                self.faults.restarts += 1;
                let height = self.nodes[node].log.len() + 1;
                let round = self.nodes[node]
                    .durable
                    .as_ref()
                    .map(|d| (d.height, d.round));
                self.log(|| {
                    format!("RESTART v{node} at height {height}, persisted guard {round:?}")
                });
                self.start(node)
            }
            Event::Partition { groups } => {
                self.faults.partitions += 1;
                let text = format!("PARTITION groups {groups:?}");
                self.log(|| text);
                self.partition = Some(groups);
                Ok(())
            }
            Event::Heal => {
                self.log(|| "HEAL partition".into());
                self.partition = None;
                Ok(())
            }
        }
    }

    fn current(&self, node: usize, incarnation: u64) -> bool {
        self.alive(node) && self.nodes[node].incarnation == incarnation
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        self.alive(from)
            && self.alive(to)
            && self
                .partition
                .as_ref()
                .is_none_or(|groups| groups[from] == groups[to])
    }

    /// Hands `input` to a node's engine and executes the actions in order. A pending
    /// mid-action crash executes only a random prefix of them.
    fn feed(&mut self, node: usize, input: Input) -> Result<(), Violation> {
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return Ok(());
        };
        let ready = engine.handle(input);
        // Step 0 is the persist; step k > 0 is action k - 1. A crash "after executing
        // `cut` steps" loses everything from step `cut` on.
        let steps = ready.actions.len() + 1;
        let cut = if self.nodes[node].crash_pending {
            Some(self.rng.index(steps + 1))
        } else {
            None
        };
        if cut != Some(0) {
            if let Some(state) = ready.persist {
                self.nodes[node].durable = Some(state);
            }
            for (position, action) in ready.actions.into_iter().enumerate() {
                if Some(position + 1) == cut {
                    break;
                }
                self.execute(node, action)?;
            }
        }
        if let Some(cut) = cut {
            self.log(|| format!("v{node} crashes after executing {cut} steps (persist first)"));
            self.faults.crashes_mid_actions += 1;
            self.crash(node);
        }
        Ok(())
    }

    fn execute(&mut self, node: usize, action: Action) -> Result<(), Violation> {
        match action {
            Action::Broadcast(message) => {
                if let Some(behaviour) = self.nodes[node].byzantine {
                    self.byzantine_broadcast(node, behaviour, message);
                    return Ok(());
                }
                self.checker.on_honest_send(node, &message)?;
                self.checker.on_send(&message);
                let bytes: Rc<[u8]> = message.encode().into();
                for to in 0..self.n() {
                    if to != node {
                        self.send(node, to, bytes.clone());
                    }
                }
            }
            Action::SendTo { validator, message } => {
                if let Some(behaviour) = self.nodes[node].byzantine {
                    if behaviour.silent {
                        self.faults.withheld += 1;
                        return Ok(());
                    }
                } else {
                    self.checker.on_honest_send(node, &message)?;
                }
                self.checker.on_send(&message);
                let bytes: Rc<[u8]> = message.encode().into();
                self.send(node, validator, bytes);
            }
            Action::SetTimer {
                height,
                round,
                kind,
                after_ms,
            } => {
                let incarnation = self.nodes[node].incarnation;
                self.schedule(
                    self.now + after_ms,
                    Event::Timer {
                        node,
                        incarnation,
                        height,
                        round,
                        kind,
                    },
                );
            }
            Action::RequestProposal { height, round } => {
                let payload = self.make_payload(node, height, round, "");
                let incarnation = self.nodes[node].incarnation;
                // The block interval: the application waits a little to fill a block.
                let at = self.now + self.rng.range(20, 200);
                self.schedule(
                    at,
                    Event::ProposalReady {
                        node,
                        incarnation,
                        height,
                        round,
                        payload,
                    },
                );
            }
            Action::ValidatePayload {
                height,
                round,
                payload,
            } => {
                let incarnation = self.nodes[node].incarnation;
                let at = self.now + self.rng.range(1, 10);
                self.schedule(
                    at,
                    Event::Validated {
                        node,
                        incarnation,
                        height,
                        round,
                        digest: Digest::of(&payload),
                        valid: payload_is_valid(&payload),
                    },
                );
            }
            Action::Committed {
                height,
                payload,
                certificate,
            } => {
                let expected = self.nodes[node].log.len() as Height + 1;
                let round = certificate.vote.round;
                let digest = certificate.vote.digest;
                self.log(|| format!("v{node} COMMITTED h{height} r{round} {digest:?}"));
                if self.honest(node) {
                    self.checker.on_commit(
                        node,
                        expected,
                        height,
                        &payload,
                        &certificate,
                        &self.validators,
                        &mut self.verifier,
                    )?;
                }
                if height == expected {
                    self.nodes[node].log.push((payload, certificate));
                }
            }
            Action::SyncNeeded { height } => self.serve_sync(node, height),
        }
        Ok(())
    }

    fn latency(&mut self) -> u64 {
        let mut latency = self
            .rng
            .range(self.network.latency_min_ms, self.network.latency_max_ms);
        if self.rng.chance(self.network.spike_per_mille) {
            latency += self.rng.range(100, 1_000);
        }
        latency
    }

    fn send(&mut self, from: usize, to: usize, bytes: Rc<[u8]>) {
        self.messages_sent += 1;
        if !self.reachable(from, to) || self.rng.chance(self.network.loss_per_mille) {
            self.faults.messages_dropped += 1;
            return;
        }
        if self.rng.chance(self.network.duplicate_per_mille) {
            self.faults.messages_duplicated += 1;
            let at = self.now + self.latency();
            self.schedule(
                at,
                Event::Deliver {
                    from,
                    to,
                    bytes: bytes.clone(),
                },
            );
        }
        let at = self.now + self.latency();
        self.schedule(at, Event::Deliver { from, to, bytes });
    }

    fn serve_sync(&mut self, node: usize, height: Height) {
        let candidates: Vec<usize> = (0..self.n())
            .filter(|&peer| {
                peer != node
                    && self.reachable(node, peer)
                    && !self.nodes[peer].byzantine.is_some_and(|b| b.silent)
                    && self.nodes[peer].log.len() as Height >= height
            })
            .collect();
        if candidates.is_empty() {
            self.log(|| format!("v{node} needs sync from height {height}: no peer can serve"));
            return;
        }
        let peer = candidates[self.rng.index(candidates.len())];
        let start = (height - 1) as usize;
        let end = self.nodes[peer].log.len().min(start + SYNC_BATCH);
        let mut entries: Vec<(Height, Vec<u8>, CommitCertificate)> = self.nodes[peer].log
            [start..end]
            .iter()
            .enumerate()
            .map(|(offset, (payload, cert))| {
                (height + offset as Height, payload.clone(), cert.clone())
            })
            .collect();
        if self.nodes[peer].byzantine.is_some_and(|b| b.bad_signatures) {
            // A byzantine peer serves a forged certificate first.
            if let Some((_, _, cert)) = entries.first_mut() {
                if let Some((_, signature)) = cert.signatures.first_mut() {
                    signature.0[0] ^= 1;
                    self.faults.bad_signatures += 1;
                }
            }
        }
        self.faults.syncs += 1;
        let incarnation = self.nodes[node].incarnation;
        let at = self.now + 2 * self.latency();
        let count = entries.len();
        self.log(|| {
            format!("v{node} needs sync from height {height}: v{peer} sends {count} blocks")
        });
        self.schedule(
            at,
            Event::SyncReply {
                node,
                incarnation,
                from: peer,
                entries,
            },
        );
    }

    fn make_payload(
        &mut self,
        node: usize,
        height: Height,
        round: Round,
        variant: &str,
    ) -> Vec<u8> {
        let nonce = self.rng.below(1_000_000);
        let invalid = self.nodes[node]
            .byzantine
            .is_some_and(|b| b.invalid_payloads)
            && self.rng.chance(300);
        if invalid {
            self.faults.invalid_payloads += 1;
        }
        format!(
            "{}block h{height} r{round} by v{node}{variant} #{nonce}",
            if invalid { "INVALID " } else { "" }
        )
        .into_bytes()
    }

    // ----- byzantine validators ------------------------------------------------------

    fn remember(&mut self, node: usize, message: &SignedMessage) {
        let history = &mut self.nodes[node].history;
        if history.len() < REPLAY_MEMORY {
            history.push(message.clone());
        } else {
            let slot = self.rng.index(REPLAY_MEMORY);
            self.nodes[node].history[slot] = message.clone();
        }
    }

    fn send_message(&mut self, from: usize, to: usize, message: &SignedMessage) {
        self.checker.on_send(message);
        self.send(from, to, message.encode().into());
    }

    fn peers(&self, node: usize) -> Vec<usize> {
        (0..self.n()).filter(|p| *p != node).collect()
    }

    /// What a byzantine validator does instead of an honest broadcast.
    fn byzantine_broadcast(&mut self, node: usize, behaviour: Behaviour, message: SignedMessage) {
        let peers = self.peers(node);
        if behaviour.silent {
            self.faults.withheld += 1;
            return;
        }
        let key = self.nodes[node].key.clone();
        let mut split = peers.clone();
        self.rng.shuffle(&mut split);
        let half = split.len().div_ceil(2);
        let (group_a, group_b) = split.split_at(half);
        match &message.message {
            Message::Proposal(proposal) if behaviour.equivocate => {
                // Equivocating proposer: another payload for half the validators, with
                // its own PREPARE and COMMIT sent to them at once.
                self.faults.equivocating_proposals += 1;
                let payload = self.make_payload(node, proposal.height, proposal.round, " (twin)");
                let twin = Message::Proposal(Proposal {
                    payload: payload.clone(),
                    ..proposal.clone()
                })
                .sign(&key, &ChainDomain::UNBOUND);
                let vote = Vote {
                    height: proposal.height,
                    round: proposal.round,
                    digest: Digest::of(&payload),
                };
                let prepare = Message::Prepare(vote).sign(&key, &ChainDomain::UNBOUND);
                let commit = Message::Commit(vote).sign(&key, &ChainDomain::UNBOUND);
                let text = describe(&twin);
                self.log(|| format!("BYZANTINE v{node} equivocates: {text} to {group_b:?}"));
                for &to in group_a {
                    self.send_message(node, to, &message);
                }
                for &to in group_b {
                    self.send_message(node, to, &twin);
                    self.send_message(node, to, &prepare);
                    self.send_message(node, to, &commit);
                }
            }
            Message::Prepare(vote) | Message::Commit(vote)
                if behaviour.double_vote && self.rng.chance(500) =>
            {
                self.faults.double_votes += 1;
                let other = Vote {
                    digest: Digest::of(&self.rng.next_u64().to_le_bytes()),
                    ..*vote
                };
                let twin = match &message.message {
                    Message::Prepare(_) => Message::Prepare(other),
                    _ => Message::Commit(other),
                }
                .sign(&key, &ChainDomain::UNBOUND);
                for &to in group_a {
                    self.send_message(node, to, &message);
                }
                for &to in group_b {
                    self.send_message(node, to, &twin);
                }
            }
            _ => {
                for &to in &peers {
                    self.send_message(node, to, &message);
                }
            }
        }
        if behaviour.bad_signatures && self.rng.chance(200) {
            self.faults.bad_signatures += 1;
            let to = peers[self.rng.index(peers.len())];
            let mut forged = message.clone();
            if self.rng.chance(500) {
                forged.signature.0[self.rng.index(64)] ^= 0x10;
            } else {
                // Signed by a key outside the validator set.
                let stranger = SigningKey::from_bytes(&[0xee; 32]);
                forged = message
                    .message
                    .clone()
                    .sign(&stranger, &ChainDomain::UNBOUND);
            }
            self.send_message(node, to, &forged);
        }
        if behaviour.replay && !self.nodes[node].history.is_empty() && self.rng.chance(300) {
            self.faults.replays += 1;
            let old =
                self.nodes[node].history[self.rng.index(self.nodes[node].history.len())].clone();
            let to = peers[self.rng.index(peers.len())];
            self.send_message(node, to, &old);
        }
    }
}
