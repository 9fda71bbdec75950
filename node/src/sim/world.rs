//! The simulated world: validators (the node's own code over in-memory stores), the virtual
//! clock and event queue, the network, the fault plan, byzantine validators and clients.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use interpool_consensus::engine::Config as EngineConfig;
use interpool_consensus::{Digest, Engine, Message, Proposal, SignedMessage, ValidatorSet, Vote};
use interpool_contracts::block::{Block, ChainTip};
use interpool_contracts::testkit::{account, customer_seed, key};
use interpool_contracts::tx::{Body, Transaction};
use interpool_contracts::{AccountId, Amount, Genesis, GenesisNode, Hash, SignedTransaction};

use super::{Failure, Rng, SimOptions, SimReport, Violation};
use crate::app::{
    lock, Admission, AdmissionSettings, BlockLimits, Core, Mempool, MempoolLimits, Origin,
};
use crate::driver::{
    ConsensusNetwork, ConsensusStore, DriverClock, DriverInput, DriverSettings, DriverTimer,
    DurableConsensus,
};
use crate::metrics::Metrics;
use crate::net::sync::{check_links, serve, SyncRequest, SyncResponse};
use crate::storage::mem::MemStore;
use crate::storage::ChainStore;

type Driver = crate::driver::Driver<DurableConsensus>;

/// Where the virtual clock starts (2026-01-01, ms since the epoch).
const EPOCH_MS: u64 = 1_767_225_600_000;
/// How often a live validator offers its pending transactions again.
const REOFFER_EVERY_MS: u64 = 2_000;
/// How often the healing phase checks whether it is done.
const SETTLE_CHECK_MS: u64 = 500;
/// Blocks per sync answer.
const SYNC_BATCH: u32 = 16;
/// Trace lines kept at most.
const MAX_TRACE_LINES: usize = 200_000;
/// Messages a byzantine validator remembers for replay.
const REPLAY_MEMORY: usize = 64;

/// What a validator's code asks of the world, collected while it handles one event.
enum Out {
    Broadcast(Vec<u8>),
    SendTo(AccountId, Vec<u8>),
    RequestBlocks(ChainTip),
    Timer(u64, DriverTimer),
    Gossip(Vec<SignedTransaction>),
}

type Outbox = Arc<Mutex<Vec<Out>>>;

struct SimNetwork(Outbox);

impl ConsensusNetwork for SimNetwork {
    fn broadcast(&self, message: Vec<u8>) {
        lock(&self.0).push(Out::Broadcast(message));
    }
    fn send_to(&self, validator: AccountId, message: Vec<u8>) {
        lock(&self.0).push(Out::SendTo(validator, message));
    }
    fn request_blocks(&self, tip: &ChainTip) {
        lock(&self.0).push(Out::RequestBlocks(tip.clone()));
    }
}

struct SimClock {
    outbox: Outbox,
    now: Arc<AtomicU64>,
    skew_ms: i64,
}

impl DriverClock for SimClock {
    fn now_ms(&self) -> u64 {
        EPOCH_MS
            .saturating_add(self.now.load(Ordering::Relaxed))
            .saturating_add_signed(self.skew_ms)
    }
    fn set_timer(&self, after_ms: u64, timer: DriverTimer) {
        lock(&self.outbox).push(Out::Timer(after_ms, timer));
    }
}

/// A byzantine validator's habits.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    equivocate: bool,
    double_vote: bool,
    replay: bool,
    garbage: bool,
}

/// A validator's running code (gone while it is down).
struct Live {
    driver: Driver,
    admission: Admission,
    outbox: Outbox,
}

struct Node {
    key: SigningKey,
    store: Arc<MemStore>,
    live: Option<Live>,
    /// Incarnation: timers of an earlier one are dropped.
    life: u64,
    byzantine: Option<Behaviour>,
    skew_ms: i64,
    partitioned: bool,
    history: Vec<SignedMessage>,
}

#[derive(Debug, Clone)]
enum Packet {
    Consensus(Vec<u8>),
    Transactions(Vec<SignedTransaction>),
    SyncRequest(SyncRequest),
    SyncResponse(SyncResponse),
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        packet: Packet,
    },
    Timer {
        node: usize,
        life: u64,
        timer: DriverTimer,
    },
    Reoffer {
        node: usize,
        life: u64,
    },
    Submit {
        client: usize,
    },
    Crash {
        node: usize,
        down_ms: u64,
    },
    ArmCrash {
        node: usize,
        writes: u64,
        down_ms: u64,
    },
    Restart {
        node: usize,
    },
    Partition {
        node: usize,
        heal_after_ms: u64,
    },
    HealPartition {
        node: usize,
    },
    Heal,
    SettleCheck,
}

/// The network's weather during the fault phase.
#[derive(Debug, Clone, Copy)]
struct Weather {
    drop_per_mille: u64,
    duplicate_per_mille: u64,
    min_delay_ms: u64,
    max_delay_ms: u64,
}

const CALM: Weather = Weather {
    drop_per_mille: 0,
    duplicate_per_mille: 0,
    min_delay_ms: 1,
    max_delay_ms: 20,
};

struct Client {
    seed: u64,
    next_nonce: u64,
}

pub(super) struct World {
    options: SimOptions,
    genesis: Genesis,
    validators: ValidatorSet,
    limits: BlockLimits,
    rng: Rng,
    now: Arc<AtomicU64>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    seq: u64,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    customers: Vec<u64>,
    weather: Weather,
    healed: bool,
    /// Acknowledged transfers: hash → (client, nonce).
    acknowledged: BTreeMap<Hash, (usize, u64)>,
    /// What honest validators signed: (validator, height, round, kind) → signing hash.
    signed: BTreeMap<(usize, u64, u32, u8), [u8; 32]>,
    /// An armed crash waits for its write: (node, downtime).
    armed: BTreeMap<usize, u64>,
    report: SimReport,
    trace: Vec<String>,
    /// A violation found while handling the current event.
    pending_violation: Option<Violation>,
    done: bool,
}

fn kind_code(message: &Message) -> u8 {
    match message {
        Message::Proposal(_) => 0,
        Message::Prepare(_) => 1,
        Message::Commit(_) => 2,
        Message::RoundChange { .. } => 3,
    }
}

fn kind_name(code: u8) -> &'static str {
    ["proposal", "prepare", "commit", "round-change"][usize::from(code.min(3))]
}

/// A genesis with `validators` validators (seeds 500, 501, …), 2 banks of `customers`
/// customers each.
fn genesis(validators: usize, customers: usize) -> Genesis {
    let mut genesis =
        interpool_contracts::testkit::genesis(2, customers, 1_000_000, 10_000_000, 10_000_000);
    genesis.validators = (0..validators)
        .map(|i| GenesisNode {
            name: format!("validator-{i}"),
            key: account(500 + i as u64),
        })
        .collect();
    genesis
}

impl World {
    pub(super) fn new(options: SimOptions) -> World {
        let n = options.validators.max(4);
        let per_bank = options.clients.div_ceil(2).max(2);
        let genesis = genesis(n, per_bank);
        let validators =
            interpool_genesis::spec::validator_set(&genesis).expect("a valid validator set");
        let mut rng = Rng::new(options.seed);
        let mut plan = rng.fork(1);
        let customers: Vec<u64> = (0..2)
            .flat_map(|b| (0..per_bank).map(move |i| customer_seed(b, i)))
            .collect();
        let nodes = (0..n)
            .map(|i| Node {
                key: key(500 + i as u64),
                store: Arc::new(MemStore::new()),
                live: None,
                life: 0,
                byzantine: None,
                skew_ms: plan.range(0, 4_000) as i64 - 2_000,
                partitioned: false,
                history: Vec::new(),
            })
            .collect();
        let clients = (0..options.clients)
            .map(|c| Client {
                seed: customers[c % customers.len()],
                next_nonce: 0,
            })
            .collect();
        let weather = Weather {
            drop_per_mille: plan.range(0, 150),
            duplicate_per_mille: plan.range(0, 60),
            min_delay_ms: plan.range(1, 5),
            max_delay_ms: plan.range(10, 300),
        };
        let mut world = World {
            options,
            genesis,
            validators,
            limits: BlockLimits {
                max_transactions: 50,
                max_bytes: 256 * 1024,
            },
            rng,
            now: Arc::new(AtomicU64::new(0)),
            queue: BinaryHeap::new(),
            events: Vec::new(),
            seq: 0,
            nodes,
            clients,
            customers,
            weather,
            healed: false,
            acknowledged: BTreeMap::new(),
            signed: BTreeMap::new(),
            armed: BTreeMap::new(),
            report: SimReport::default(),
            trace: Vec::new(),
            pending_violation: None,
            done: false,
        };
        world.plan(&mut plan);
        world
    }

    fn n(&self) -> usize {
        self.nodes.len()
    }

    fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.options.trace && self.trace.len() < MAX_TRACE_LINES {
            let line = format!("{:>8} {}", self.now(), line());
            self.trace.push(line);
        }
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        let at = self.now().saturating_add(after_ms);
        self.seq += 1;
        self.events.push(Some(event));
        self.queue
            .push(Reverse((at, self.seq, self.events.len() - 1)));
    }

    /// The fault plan: byzantine validators, crashes, partitions, clients.
    fn plan(&mut self, plan: &mut Rng) {
        let n = self.n();
        let f = self.f();
        let byzantine = plan.range(0, f as u64) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        plan.shuffle(&mut order);
        for &node in order.iter().take(byzantine) {
            self.nodes[node].byzantine = Some(Behaviour {
                equivocate: plan.chance(700),
                double_vote: plan.chance(500),
                replay: plan.chance(500),
                garbage: plan.chance(500),
            });
        }
        self.report.byzantine = byzantine as u64;
        let honest: Vec<usize> = (0..n)
            .filter(|i| self.nodes[*i].byzantine.is_none())
            .collect();
        // One perturbation at a time, back to back, over the fault phase.
        let mut at = plan.range(500, 3_000);
        while at < self.options.fault_ms {
            let node = honest[plan.index(honest.len())];
            let length = plan.range(200, 4_000);
            let event = match plan.below(10) {
                0..=3 => Event::Crash {
                    node,
                    down_ms: length,
                },
                4..=7 => Event::ArmCrash {
                    node,
                    writes: plan.range(1, 12),
                    down_ms: length,
                },
                _ => Event::Partition {
                    node,
                    heal_after_ms: length,
                },
            };
            self.schedule(at, event);
            at = at
                .saturating_add(length)
                .saturating_add(plan.range(200, 3_000));
        }
        for client in 0..self.clients.len() {
            let first = plan.range(100, 1_000);
            self.schedule(first, Event::Submit { client });
        }
        self.schedule(self.options.fault_ms, Event::Heal);
    }

    pub(super) fn run(mut self) -> Result<SimReport, Box<Failure>> {
        let result = self.run_inner();
        match result {
            Ok(()) => {
                self.report.trace = std::mem::take(&mut self.trace);
                Ok(self.report)
            }
            Err(violation) => Err(Box::new(Failure {
                at_ms: self.now(),
                options: self.options.clone(),
                violation,
                trace: std::mem::take(&mut self.trace),
            })),
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let plan = format!(
            "plan: n={} byzantine={:?} skews={:?} weather={:?}",
            self.n(),
            (0..self.n())
                .filter_map(|i| self.nodes[i].byzantine.map(|b| (i, b)))
                .collect::<Vec<_>>(),
            self.nodes.iter().map(|n| n.skew_ms).collect::<Vec<_>>(),
            self.weather
        );
        self.log(|| plan);
        for node in 0..self.n() {
            self.boot(node)?;
        }
        let deadline = self
            .options
            .fault_ms
            .saturating_add(self.options.settle_bound_ms);
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            if self.done {
                break;
            }
            if at > deadline {
                self.now.store(deadline, Ordering::Relaxed);
                return self.check_settled(true).map(|_| ());
            }
            self.now.store(at, Ordering::Relaxed);
            let Some(event) = self.events[index].take() else {
                continue;
            };
            self.handle(event)?;
        }
        self.check_final()
    }

    // ----- validators' lives ---------------------------------------------------------

    /// Starts validator `node` on its store (first start or restart).
    fn boot(&mut self, node: usize) -> Result<(), Violation> {
        let outbox: Outbox = Arc::new(Mutex::new(Vec::new()));
        let started = self.start_node(node, outbox.clone());
        match started {
            Ok((driver, admission)) => {
                let me = &mut self.nodes[node];
                me.life += 1;
                let life = me.life;
                me.live = Some(Live {
                    driver,
                    admission,
                    outbox,
                });
                self.log(|| format!("v{node} up (life {life})"));
                self.after(node);
                self.schedule(REOFFER_EVERY_MS, Event::Reoffer { node, life });
                Ok(())
            }
            Err(error) if self.nodes[node].store.is_dead() => {
                self.log(|| format!("v{node} crashed while starting: {error}"));
                self.nodes[node].store.crash(usize::MAX);
                self.schedule(100, Event::Restart { node });
                Ok(())
            }
            Err(error) => Err(Violation::Halted {
                validator: node,
                error: format!("cannot start: {error}"),
            }),
        }
    }

    fn start_node(&mut self, node: usize, outbox: Outbox) -> Result<(Driver, Admission), String> {
        let me = &self.nodes[node];
        let store: Arc<dyn ChainStore> = me.store.clone();
        let metrics = Arc::new(Metrics::new());
        let mempool = Arc::new(Mutex::new(Mempool::new(MempoolLimits {
            max_transactions: 10_000,
            max_per_signer: 1_000,
            client_backlog: None,
        })));
        let core = Core::open(
            &self.genesis,
            store.clone(),
            self.limits,
            mempool.clone(),
            metrics.clone(),
        )
        .map_err(|e| e.to_string())?
        .with_full_invariant_checks();
        let gossip = outbox.clone();
        let admission = Admission::new(
            self.genesis.chain_id.clone(),
            mempool,
            core.subscribe(),
            store.clone(),
            metrics.clone(),
            AdmissionSettings::default(),
        )
        .gossiping(Arc::new(move |txs: Vec<SignedTransaction>| {
            lock(&gossip).push(Out::Gossip(txs));
        }));
        let mut durable = DurableConsensus::new(store);
        let persisted = durable.load().map_err(|e| e.to_string())?;
        let engine = Engine::new(
            EngineConfig {
                round_timeout_base_ms: 1_000,
                retransmit_interval_ms: 500,
                ..EngineConfig::default()
            },
            self.validators.clone(),
            me.key.clone(),
            persisted,
            core.next_height(),
        )
        .map_err(|e| e.to_string())?;
        let mut driver = Driver::new(
            engine,
            &me.key,
            core,
            durable,
            Arc::new(SimNetwork(outbox.clone())),
            metrics,
            DriverSettings {
                empty_block_interval_ms: 300,
            },
        )
        .with_clock(Arc::new(SimClock {
            outbox,
            now: self.now.clone(),
            skew_ms: me.skew_ms,
        }));
        if self.options.persist_after_send && me.byzantine.is_none() {
            driver = driver.persisting_after_send();
        }
        admission
            .restore_blocking()
            .map_err(|e| format!("cannot restore acknowledged transactions: {e}"))?;
        driver.start().map_err(|e| e.to_string())?;
        Ok((driver, admission))
    }

    /// After validator `node` handled something: sends what it sent (even if it died
    /// meanwhile: those left before the crash), then takes it down if its store crashed.
    fn after(&mut self, node: usize) {
        let outs = match &self.nodes[node].live {
            Some(live) => std::mem::take(&mut *lock(&live.outbox)),
            None => Vec::new(),
        };
        for out in outs {
            self.send_out(node, out);
        }
        if self.nodes[node].store.is_dead() {
            let down_ms = self.armed.remove(&node).unwrap_or(1_000);
            self.report.crashes_at_write += 1;
            self.log(|| format!("v{node} CRASHED at an armed write; down {down_ms} ms"));
            self.take_down(node, down_ms);
        }
    }

    /// The process is gone: loses a random suffix of the unsynced writes.
    fn take_down(&mut self, node: usize, down_ms: u64) {
        self.nodes[node].live = None;
        let unsynced = self.nodes[node].store.unsynced();
        let keep = if self.rng.chance(500) {
            unsynced // a killed process: the OS has every write
        } else {
            self.rng.below(unsynced as u64 + 1) as usize // a power cut
        };
        self.report.writes_lost += (unsynced - keep) as u64;
        self.nodes[node].store.crash(keep);
        self.log(|| format!("v{node} down: kept {keep} of {unsynced} unsynced writes"));
        let delay = if self.healed { 50 } else { down_ms };
        self.schedule(delay, Event::Restart { node });
    }

    /// Runs `step` on validator `node`'s live code; a failure other than a crashed store is
    /// a violation.
    fn with_live(
        &mut self,
        node: usize,
        step: impl FnOnce(&mut Live) -> Result<(), String>,
    ) -> Result<(), Violation> {
        let Some(live) = self.nodes[node].live.as_mut() else {
            return Ok(());
        };
        let result = step(live);
        if let Err(error) = result {
            if !self.nodes[node].store.is_dead() {
                return Err(Violation::Halted {
                    validator: node,
                    error,
                });
            }
        }
        self.after(node);
        Ok(())
    }

    // ----- the network ---------------------------------------------------------------

    fn reachable(&self, from: usize, to: usize) -> bool {
        !self.nodes[from].partitioned && !self.nodes[to].partitioned
    }

    fn transmit(&mut self, from: usize, to: usize, packet: Packet) {
        if from == to || !self.reachable(from, to) {
            return;
        }
        let weather = if self.healed { CALM } else { self.weather };
        if self.rng.chance(weather.drop_per_mille) {
            self.report.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(weather.duplicate_per_mille) {
            self.report.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.range(
                weather.min_delay_ms,
                weather.max_delay_ms.max(weather.min_delay_ms),
            );
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    packet: packet.clone(),
                },
            );
        }
    }

    fn peers(&self, node: usize) -> Vec<usize> {
        (0..self.n()).filter(|p| *p != node).collect()
    }

    fn index_of(&self, account: &AccountId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.key.verifying_key().to_bytes() == account.0)
    }

    fn send_out(&mut self, node: usize, out: Out) {
        match out {
            Out::Broadcast(bytes) => {
                self.on_signed(node, &bytes);
                match self.nodes[node].byzantine {
                    Some(behaviour) => self.byzantine_broadcast(node, behaviour, bytes),
                    None => {
                        for to in self.peers(node) {
                            self.transmit(node, to, Packet::Consensus(bytes.clone()));
                        }
                    }
                }
            }
            Out::SendTo(validator, bytes) => {
                self.on_signed(node, &bytes);
                if let Some(to) = self.index_of(&validator) {
                    self.transmit(node, to, Packet::Consensus(bytes));
                }
            }
            Out::RequestBlocks(tip) => {
                let candidates: Vec<usize> = self
                    .peers(node)
                    .into_iter()
                    .filter(|p| self.reachable(node, *p) && self.nodes[*p].live.is_some())
                    .collect();
                if candidates.is_empty() {
                    return;
                }
                let to = candidates[self.rng.index(candidates.len())];
                let request = SyncRequest {
                    from: tip.height + 1,
                    max_blocks: SYNC_BATCH,
                };
                self.transmit(node, to, Packet::SyncRequest(request));
            }
            Out::Timer(after_ms, timer) => {
                let life = self.nodes[node].life;
                self.schedule(after_ms, Event::Timer { node, life, timer });
            }
            Out::Gossip(txs) => {
                for to in self.peers(node) {
                    self.transmit(node, to, Packet::Transactions(txs.clone()));
                }
            }
        }
    }

    /// Checks a consensus message an honest validator signed and sends: never two
    /// different ones of a kind for one height and round.
    fn on_signed(&mut self, node: usize, bytes: &[u8]) {
        self.report.messages += 1;
        if self.nodes[node].byzantine.is_some() {
            if let Ok(message) = SignedMessage::decode(bytes) {
                self.remember(node, message);
            }
            return;
        }
        let Ok(message) = SignedMessage::decode(bytes) else {
            self.record_double_sign(node, 0, 0, 0);
            return;
        };
        let m = &message.message;
        let key = (node, m.height(), m.round(), kind_code(m));
        let hash = m.signing_hash(self.validators.domain());
        match self.signed.get(&key) {
            Some(previous) if *previous != hash => {
                self.record_double_sign(node, key.1, key.2, key.3);
            }
            Some(_) => {}
            None => {
                self.signed.insert(key, hash);
            }
        }
    }

    fn record_double_sign(&mut self, node: usize, height: u64, round: u32, kind: u8) {
        self.log(|| format!("DOUBLE SIGN by honest v{node} at {height}/{round}"));
        self.pending_violation.get_or_insert(Violation::DoubleSign {
            validator: node,
            height,
            round,
            kind: kind_name(kind).into(),
        });
    }

    fn remember(&mut self, node: usize, message: SignedMessage) {
        let history = &mut self.nodes[node].history;
        if history.len() < REPLAY_MEMORY {
            history.push(message);
        } else {
            let slot = self.rng.index(REPLAY_MEMORY);
            self.nodes[node].history[slot] = message;
        }
    }

    /// What a byzantine validator does instead of an honest broadcast.
    fn byzantine_broadcast(&mut self, node: usize, behaviour: Behaviour, bytes: Vec<u8>) {
        let mut peers = self.peers(node);
        self.rng.shuffle(&mut peers);
        let half = peers.len().div_ceil(2);
        let (group_a, group_b) = peers.split_at(half);
        let (group_a, group_b) = (group_a.to_vec(), group_b.to_vec());
        let key = self.nodes[node].key.clone();
        let domain = *self.validators.domain();
        let message = SignedMessage::decode(&bytes).ok();
        let mut twins: Vec<Vec<u8>> = Vec::new();
        match message.as_ref().map(|m| &m.message) {
            Some(Message::Proposal(proposal)) if behaviour.equivocate => {
                // Another valid block (a later timestamp) for half the validators, with
                // its PREPARE and COMMIT.
                if let Ok(mut block) = Block::decode(&proposal.payload, u64::MAX) {
                    block.header.timestamp_ms += 1;
                    let payload = block.encode();
                    let vote = Vote {
                        height: proposal.height,
                        round: proposal.round,
                        digest: Digest::of(&payload),
                    };
                    twins.push(
                        Message::Proposal(Proposal {
                            payload,
                            ..proposal.clone()
                        })
                        .sign(&key, &domain)
                        .encode(),
                    );
                    twins.push(Message::Prepare(vote).sign(&key, &domain).encode());
                    twins.push(Message::Commit(vote).sign(&key, &domain).encode());
                }
            }
            Some(Message::Prepare(vote) | Message::Commit(vote))
                if behaviour.double_vote && self.rng.chance(500) =>
            {
                let other = Vote {
                    digest: Digest::of(&self.rng.next_u64().to_le_bytes()),
                    ..*vote
                };
                let twin = match message.as_ref().map(|m| &m.message) {
                    Some(Message::Prepare(_)) => Message::Prepare(other),
                    _ => Message::Commit(other),
                };
                twins.push(twin.sign(&key, &domain).encode());
            }
            _ => {}
        }
        if twins.is_empty() {
            for to in peers {
                self.transmit(node, to, Packet::Consensus(bytes.clone()));
            }
        } else {
            self.log(|| format!("BYZANTINE v{node} equivocates to {group_b:?}"));
            for &to in &group_a {
                self.transmit(node, to, Packet::Consensus(bytes.clone()));
            }
            for &to in &group_b {
                for twin in &twins {
                    self.transmit(node, to, Packet::Consensus(twin.clone()));
                }
            }
        }
        let others = self.peers(node);
        if behaviour.replay && !self.nodes[node].history.is_empty() && self.rng.chance(300) {
            let old =
                self.nodes[node].history[self.rng.index(self.nodes[node].history.len())].encode();
            let to = others[self.rng.index(others.len())];
            self.transmit(node, to, Packet::Consensus(old));
        }
        if behaviour.garbage && self.rng.chance(200) {
            let to = others[self.rng.index(others.len())];
            let mut forged = bytes.clone();
            if !forged.is_empty() {
                if self.rng.chance(500) {
                    let at = self.rng.index(forged.len());
                    forged[at] ^= 0x10;
                } else {
                    forged.truncate(self.rng.index(forged.len()));
                }
            }
            self.transmit(node, to, Packet::Consensus(forged));
        }
    }

    // ----- events --------------------------------------------------------------------

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Deliver { from, to, packet } => self.deliver(from, to, packet)?,
            Event::Timer { node, life, timer } => {
                if self.nodes[node].life == life {
                    self.with_live(node, |live| {
                        live.driver.on_timer(timer).map_err(|e| e.to_string())
                    })?;
                }
            }
            Event::Reoffer { node, life } => {
                if self.nodes[node].life == life && self.nodes[node].live.is_some() {
                    self.with_live(node, |live| {
                        live.admission.reoffer(Duration::ZERO);
                        live.driver.on_transactions().map_err(|e| e.to_string())
                    })?;
                    self.schedule(REOFFER_EVERY_MS, Event::Reoffer { node, life });
                }
            }
            Event::Submit { client } => self.submit(client)?,
            Event::Crash { node, down_ms } => {
                if self.nodes[node].live.is_some() {
                    self.report.crashes += 1;
                    self.log(|| format!("v{node} CRASH (between events)"));
                    self.take_down(node, down_ms);
                }
            }
            Event::ArmCrash {
                node,
                writes,
                down_ms,
            } => {
                if self.nodes[node].live.is_some() {
                    self.log(|| format!("v{node} will crash at its write #{writes} from now"));
                    self.nodes[node].store.fail_after(writes);
                    self.armed.insert(node, down_ms);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].live.is_none() {
                    self.boot(node)?;
                }
            }
            Event::Partition {
                node,
                heal_after_ms,
            } => {
                self.report.partitions += 1;
                self.nodes[node].partitioned = true;
                self.log(|| format!("v{node} PARTITIONED for {heal_after_ms} ms"));
                self.schedule(heal_after_ms, Event::HealPartition { node });
            }
            Event::HealPartition { node } => {
                self.nodes[node].partitioned = false;
                self.log(|| format!("v{node} partition healed"));
            }
            Event::Heal => {
                self.healed = true;
                self.log(|| "HEAL: every validator up, reliable network, no new transfers".into());
                for node in 0..self.n() {
                    self.nodes[node].partitioned = false;
                    if self.armed.remove(&node).is_some() {
                        // Disarm: the crash that did not happen yet will not.
                        self.nodes[node].store.fail_after(u64::MAX);
                    }
                    if self.nodes[node].live.is_none() {
                        self.schedule(1, Event::Restart { node });
                    }
                }
                self.schedule(SETTLE_CHECK_MS, Event::SettleCheck);
            }
            Event::SettleCheck => {
                if self.check_settled(false)? {
                    self.report.settle_ms = self.now() - self.options.fault_ms;
                    self.done = true;
                } else {
                    self.schedule(SETTLE_CHECK_MS, Event::SettleCheck);
                }
            }
        }
        match self.pending_violation.take() {
            Some(violation) => Err(violation),
            None => Ok(()),
        }
    }

    fn deliver(&mut self, from: usize, to: usize, packet: Packet) -> Result<(), Violation> {
        if !self.reachable(from, to) || self.nodes[to].live.is_none() {
            return Ok(());
        }
        match packet {
            Packet::Consensus(bytes) => self.with_live(to, |live| {
                live.driver
                    .on_input(DriverInput::Message(bytes))
                    .map_err(|e| e.to_string())
            }),
            Packet::Transactions(txs) => self.with_live(to, |live| {
                let admitted = live.admission.admit_blocking(txs, Origin::Peer);
                if admitted.admitted() > 0 {
                    live.driver.on_transactions().map_err(|e| e.to_string())?;
                }
                Ok(())
            }),
            Packet::SyncRequest(request) => {
                let served = serve(self.nodes[to].store.as_ref(), request);
                match served {
                    Ok(response) => self.transmit(to, from, Packet::SyncResponse(response)),
                    Err(_) if self.nodes[to].store.is_dead() => self.after(to),
                    Err(error) => {
                        return Err(Violation::Halted {
                            validator: to,
                            error: format!("cannot serve blocks: {error}"),
                        })
                    }
                }
                Ok(())
            }
            Packet::SyncResponse(response) => self.with_live(to, |live| {
                let tip = live.driver.core().tip().clone();
                let blocks: Vec<_> = response
                    .blocks
                    .into_iter()
                    .filter(|b| b.height > tip.height)
                    .collect();
                if blocks.is_empty() || check_links(&tip, &blocks).is_err() {
                    return Ok(());
                }
                for block in blocks {
                    live.driver
                        .on_input(DriverInput::Synced {
                            height: block.height,
                            payload: block.payload,
                            certificate: block.certificate,
                        })
                        .map_err(|e| e.to_string())?;
                }
                // The engine asks again (SyncNeeded) while it sees the others ahead.
                Ok(())
            }),
        }
    }

    fn submit(&mut self, client: usize) -> Result<(), Violation> {
        if self.healed {
            return Ok(());
        }
        let next = self.rng.range(50, 400);
        self.schedule(next, Event::Submit { client });
        let node = self.rng.index(self.n());
        if self.nodes[node].live.is_none() {
            return Ok(()); // connection refused: the client tries again later
        }
        let seed = self.clients[client].seed;
        let first = self.clients[client].next_nonce;
        // What a wallet does: valid for a while from the node's height.
        let valid_until_height = match &self.nodes[node].live {
            Some(live) => live.driver.core().tip().height + 500,
            None => return Ok(()),
        };
        let count = self.rng.range(1, 3);
        let txs: Vec<SignedTransaction> = (first..first + count)
            .map(|nonce| {
                let to = loop {
                    let to = self.customers[self.rng.index(self.customers.len())];
                    if to != seed {
                        break to;
                    }
                };
                Transaction {
                    chain_id: self.genesis.chain_id.clone(),
                    signer: account(seed),
                    nonce,
                    valid_until_height,
                    body: Body::Transfer {
                        to: account(to),
                        amount: Amount(self.rng.range(1, 500)),
                        end_to_end_id: format!("C{client}-{nonce}"),
                        reference: String::new(),
                        terms: Default::default(),
                    },
                }
                .sign(&key(seed))
            })
            .collect();
        let mut acked = Vec::new();
        let mut refused = None;
        self.with_live(node, |live| {
            let admitted = live.admission.admit_blocking(txs.clone(), Origin::Client);
            for (tx, result) in txs.iter().zip(&admitted.results) {
                match result {
                    Ok(hash) => acked.push((*hash, tx.tx.nonce)),
                    Err(error) => {
                        refused = Some(format!("nonce {}: {error}", tx.tx.nonce));
                        break;
                    }
                }
            }
            if admitted.admitted() > 0 {
                live.driver.on_transactions().map_err(|e| e.to_string())?;
            }
            Ok(())
        })?;
        if let Some(refused) = refused {
            self.log(|| format!("client {client} refused by v{node}: {refused}"));
        }
        for (hash, nonce) in acked {
            self.acknowledged.insert(hash, (client, nonce));
            self.clients[client].next_nonce = nonce + 1;
            self.report.acknowledged += 1;
            self.log(|| format!("client {client} nonce {nonce} acknowledged by v{node}"));
        }
        Ok(())
    }

    // ----- checks --------------------------------------------------------------------

    fn honest(&self) -> Vec<usize> {
        (0..self.n())
            .filter(|i| self.nodes[*i].byzantine.is_none())
            .collect()
    }

    /// Whether every honest validator holds every acknowledged transfer; with `final_`,
    /// the reason it does not is the violation.
    fn check_settled(&mut self, final_: bool) -> Result<bool, Violation> {
        for node in self.honest() {
            let store = &self.nodes[node].store;
            if store.is_dead() {
                return Ok(false);
            }
            let hashes: Vec<Hash> = self.acknowledged.keys().copied().collect();
            let locations = store.tx_locations(&hashes).map_err(|e| Violation::Halted {
                validator: node,
                error: e.to_string(),
            })?;
            let missing: Vec<&Hash> = hashes
                .iter()
                .zip(&locations)
                .filter(|(_, l)| l.is_none())
                .map(|(h, _)| h)
                .collect();
            if let Some(first) = missing.first() {
                if final_ {
                    let (client, nonce) = self.acknowledged[first];
                    return Err(Violation::Lost {
                        count: missing.len(),
                        example: format!("client {client} nonce {nonce} ({})", first.to_hex()),
                        validator: node,
                    });
                }
                return Ok(false);
            }
        }
        if final_ {
            self.check_final()?;
        }
        Ok(true)
    }

    /// Agreement and identical state roots at every common height, and an audit of every
    /// honest store.
    fn check_final(&mut self) -> Result<(), Violation> {
        let honest = self.honest();
        let heights: Vec<u64> = honest
            .iter()
            .map(|i| self.nodes[*i].store.height().unwrap_or(0))
            .collect();
        let common = heights.iter().copied().min().unwrap_or(0);
        self.report.height = common;
        let read = |node: usize, height: u64| {
            let store = &self.nodes[node].store;
            (
                store.block(height).ok().flatten(),
                store.outcome(height).ok().flatten().map(|o| o.state_root),
            )
        };
        for height in 1..=common {
            let first = read(honest[0], height);
            for &node in &honest[1..] {
                let other = read(node, height);
                if other.0 != first.0 {
                    return Err(Violation::Agreement {
                        height,
                        detail: format!("v{} and v{node} hold different blocks", honest[0]),
                    });
                }
                if other.1 != first.1 {
                    return Err(Violation::Agreement {
                        height,
                        detail: format!("v{} and v{node} have different state roots", honest[0]),
                    });
                }
            }
        }
        for node in honest {
            let store = self.nodes[node].store.clone();
            crate::audit::audit(store.as_ref(), &self.genesis, &mut |_, _| {}).map_err(|e| {
                Violation::Audit {
                    validator: node,
                    error: e.to_string(),
                }
            })?;
        }
        Ok(())
    }
}
