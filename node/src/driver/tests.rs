//! Four validators in one process, connected by channels: the driver, the engine, the core
//! and the store together, without libp2p.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interpool_consensus::{
    Config, Digest, Engine, Message, MessageKind, PersistedState, Proposal, SignedMessage,
};
use interpool_contracts::block::ChainTip;
use interpool_contracts::testkit::{account, customer_seed, key};
use interpool_contracts::{AccountId, Amount, Genesis};
use tokio::sync::{mpsc, watch, Notify};

use super::*;
use crate::app::{lock, ChainView, SharedMempool};
use crate::storage::Store;
use crate::testkit::{self, VALIDATOR_SEEDS};

/// Every in-process validator's input queue and store, by key.
type Peers = Arc<Mutex<BTreeMap<AccountId, (mpsc::Sender<DriverInput>, Arc<dyn ChainStore>)>>>;

/// Decides whether a message goes through (a scripted network).
type Filter = Arc<dyn Fn(&SignedMessage) -> bool + Send + Sync>;

/// Routes messages between the in-process validators, through `filter`.
struct ChannelNetwork {
    me: AccountId,
    peers: Peers,
    filter: Filter,
}

impl ChannelNetwork {
    fn passes(&self, message: &[u8]) -> bool {
        SignedMessage::decode(message).is_ok_and(|m| (self.filter)(&m))
    }
}

impl ConsensusNetwork for ChannelNetwork {
    fn broadcast(&self, message: Vec<u8>) {
        if !self.passes(&message) {
            return;
        }
        for (key, (sender, _)) in lock(&self.peers).iter() {
            if *key != self.me {
                let _ = sender.try_send(DriverInput::Message(message.clone()));
            }
        }
    }

    fn send_to(&self, validator: AccountId, message: Vec<u8>) {
        if !self.passes(&message) {
            return;
        }
        if let Some((sender, _)) = lock(&self.peers).get(&validator) {
            let _ = sender.try_send(DriverInput::Message(message));
        }
    }

    fn request_blocks(&self, tip: &ChainTip) {
        let height = tip.height + 1;
        // Serve from any peer that has the blocks, as the sync protocol does.
        let peers = lock(&self.peers);
        let Some((me, _)) = peers.get(&self.me) else {
            return;
        };
        for (key, (_, store)) in peers.iter() {
            if *key == self.me {
                continue;
            }
            let mut h = height;
            while let (Ok(Some(payload)), Ok(Some(certificate))) =
                (store.block(h), store.certificate(h))
            {
                let _ = me.try_send(DriverInput::Synced {
                    height: h,
                    payload,
                    certificate,
                });
                h += 1;
            }
            if h > height {
                return;
            }
        }
    }
}

/// Records every state a driver persists, and checks on each save that the state on disk
/// never goes back: `(height, round)` never decreases, and at one `(height, round)` the
/// signed messages only grow.
#[derive(Clone, Default)]
struct RecordingStore {
    saved: Arc<Mutex<Vec<PersistedState>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl ConsensusStore for RecordingStore {
    fn load(&mut self) -> Result<Option<PersistedState>, ChainError> {
        Ok(lock(&self.saved).last().cloned())
    }

    fn save(&mut self, state: &PersistedState) -> Result<(), ChainError> {
        let mut saved = lock(&self.saved);
        if let Some(last) = saved.last() {
            let (before, now) = ((last.height, last.round), (state.height, state.round));
            if now < before {
                lock(&self.violations).push(format!("went back from {before:?} to {now:?}"));
            } else if now == before && !last.signed.iter().all(|m| state.signed.contains(m)) {
                lock(&self.violations).push(format!(
                    "at {now:?} a signed message disappeared ({} then {})",
                    last.signed.len(),
                    state.signed.len()
                ));
            }
        }
        saved.push(state.clone());
        Ok(())
    }
}

struct Node {
    view: watch::Receiver<Arc<ChainView>>,
    store: Arc<dyn ChainStore>,
    mempool: SharedMempool,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<Result<(), ChainError>>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn height(&self) -> u64 {
        self.view.borrow().tip.height
    }
}

/// Starts validator `seed` on `dir`; its consensus state goes where `durable` says (given
/// the node's own store).
fn start<S: ConsensusStore>(
    seed: u64,
    genesis: &Genesis,
    dir: tempfile::TempDir,
    peers: &Peers,
    durable: impl FnOnce(&Arc<dyn ChainStore>) -> S,
    filter: Filter,
) -> Node {
    let core = testkit::core(genesis, dir.path(), testkit::limits());
    let mut durable = durable(core.store());
    let persisted = durable.load().expect("persisted state");
    let config = Config {
        round_timeout_base_ms: 300,
        retransmit_interval_ms: 150,
        ..Config::default()
    };
    let engine = Engine::new(
        config,
        testkit::validator_set(genesis),
        key(seed),
        persisted,
        core.next_height(),
    )
    .expect("engine");
    let (sender, inputs) = mpsc::channel(4_096);
    let store = core.store().clone();
    let view = core.subscribe();
    let mempool = core.mempool().clone();
    lock(peers).insert(account(seed), (sender, store.clone()));
    let network = Arc::new(ChannelNetwork {
        me: account(seed),
        peers: peers.clone(),
        filter,
    });
    let settings = DriverSettings {
        empty_block_interval_ms: 50,
    };
    let wake = Arc::new(Notify::new());
    let driver = Driver::new(
        engine,
        &key(seed),
        core,
        durable,
        network,
        Arc::new(crate::metrics::Metrics::new()),
        settings,
    );
    let task = tokio::spawn(driver.run(inputs, wake.clone()));
    Node {
        view,
        store,
        mempool,
        wake,
        task,
        _dir: dir,
    }
}

/// "Gossips" `tx` to every node's mempool and wakes the drivers.
fn gossip(nodes: &[Node], tx: &interpool_contracts::VerifiedTransaction) {
    for node in nodes {
        let view = node.view.borrow().clone();
        let _ = lock(&node.mempool).insert(tx.clone(), &view.ledger, view.tip.height + 1);
        node.wake.notify_one();
    }
}

fn assert_agreement(nodes: &[Node]) {
    let common = nodes.iter().map(Node::height).min().expect("nodes");
    for h in 1..=common {
        let blocks: Vec<_> = nodes
            .iter()
            .map(|n| n.store.block(h).expect("read"))
            .collect();
        assert!(
            blocks.windows(2).all(|w| w[0] == w[1]),
            "blocks differ at height {h}"
        );
        let roots: Vec<_> = nodes
            .iter()
            .map(|n| n.store.outcome(h).expect("read").map(|o| o.state_root))
            .collect();
        assert!(
            roots.windows(2).all(|w| w[0] == w[1]),
            "state roots differ at height {h}"
        );
    }
}

/// The node's own consensus state store on its database.
fn durable(store: &Arc<dyn ChainStore>) -> DurableConsensus {
    DurableConsensus::new(store.clone())
}

fn everything() -> Filter {
    Arc::new(|_| true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_and_a_restarted_one_catches_up() {
    let genesis = testkit::genesis();
    let peers: Peers = Arc::new(Mutex::new(BTreeMap::new()));
    let mut nodes: Vec<Node> = VALIDATOR_SEEDS
        .iter()
        .map(|seed| {
            let dir = tempfile::tempdir().expect("tempdir");
            start(*seed, &genesis, dir, &peers, durable, everything())
        })
        .collect();

    // "Gossip" 20 transfers to every mempool.
    let sender = customer_seed(0, 0);
    for nonce in 0..20 {
        gossip(&nodes, &testkit::transfer(sender, nonce));
    }
    testkit::wait_for(
        Duration::from_secs(60),
        "all 20 transfers committed everywhere",
        || {
            nodes
                .iter()
                .all(|n| n.view.borrow().ledger.next_nonce(&account(sender)) == Some(20))
        },
    )
    .await;

    // Stop validator 3 (its stores stay), let the others move on, restart it.
    let stopped = nodes.pop().expect("four nodes");
    let stopped_at = stopped.height();
    stopped.task.abort();
    let _ = stopped.task.await;
    lock(&peers).remove(&account(VALIDATOR_SEEDS[3]));
    let dir = stopped._dir;
    drop(stopped.store);
    testkit::wait_for(
        Duration::from_secs(60),
        "three validators still commit",
        || nodes.iter().all(|n| n.height() >= stopped_at + 3),
    )
    .await;
    let restarted = start(
        VALIDATOR_SEEDS[3],
        &genesis,
        dir,
        &peers,
        durable,
        everything(),
    );
    nodes.push(restarted);
    let target = nodes[0].height() + 2;
    testkit::wait_for(
        Duration::from_secs(60),
        "the restarted validator catches up",
        || nodes.iter().all(|n| n.height() >= target),
    )
    .await;

    assert_agreement(&nodes);
    for node in &nodes {
        assert_eq!(
            node.view
                .borrow()
                .ledger
                .account(&account(customer_seed(1, 0)))
                .map(|a| a.balance),
            Some(Amount(100_200))
        );
    }
    for node in nodes {
        node.task.abort();
    }
}

/// The driver persists the engine's state before anything it guards leaves, and the state on
/// disk never goes back — through round changes that carry prepared certificates, proposals
/// the driver builds and proposals it validates, with answers interleaved with older work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_consensus_states_never_go_back() {
    let genesis = testkit::genesis();
    let peers: Peers = Arc::new(Mutex::new(BTreeMap::new()));
    // For the first seconds every COMMIT is lost: validators prepare and lock, time out, and
    // change rounds carrying their prepared certificates; new proposers must re-propose the
    // locked block. Then the network heals and heights are decided.
    let heal_at = Instant::now() + Duration::from_millis(2_500);
    let filter: Filter = Arc::new(move |message: &SignedMessage| {
        message.message.kind() != MessageKind::Commit || Instant::now() >= heal_at
    });
    let stores: Vec<RecordingStore> = VALIDATOR_SEEDS
        .iter()
        .map(|_| RecordingStore::default())
        .collect();
    let nodes: Vec<Node> = VALIDATOR_SEEDS
        .iter()
        .zip(&stores)
        .map(|(seed, durable)| {
            start(
                *seed,
                &genesis,
                tempfile::tempdir().expect("tempdir"),
                &peers,
                |_: &Arc<dyn ChainStore>| durable.clone(),
                filter.clone(),
            )
        })
        .collect();
    let sender = customer_seed(0, 1);
    for nonce in 0..5 {
        gossip(&nodes, &testkit::transfer(sender, nonce));
    }
    testkit::wait_for(Duration::from_secs(60), "four heights decided", || {
        nodes.iter().all(|n| n.height() >= 4)
    })
    .await;
    for node in &nodes {
        node.task.abort();
    }
    assert_agreement(&nodes);
    let mut locked_round_changes = 0;
    for (i, store) in stores.iter().enumerate() {
        let violations = lock(&store.violations);
        assert!(violations.is_empty(), "validator {i}: {violations:?}");
        let saved = lock(&store.saved);
        assert!(!saved.is_empty(), "validator {i} persisted nothing");
        locked_round_changes += saved
            .iter()
            .filter(|state| {
                state.round > 0
                    && state.lock.is_some()
                    && state
                        .signed
                        .iter()
                        .any(|m| m.message.kind() == MessageKind::RoundChange)
            })
            .count();
    }
    assert!(
        locked_round_changes > 0,
        "the run must include round changes carrying prepared certificates"
    );
}

#[test]
fn consensus_state_payloads_are_stored_once_by_digest_and_read_back_whole() {
    use interpool_consensus::{ChainDomain, PreparedCertificate, RoundChange, Vote};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let mut durable = DurableConsensus::new(store.clone());
    assert_eq!(durable.load().expect("load"), None);
    let payload = vec![7u8; 100_000];
    let digest = Digest::of(&payload);
    let vote = Vote {
        height: 4,
        round: 1,
        digest,
    };
    let me = key(VALIDATOR_SEEDS[0]);
    let domain = ChainDomain::UNBOUND;
    let lock = PreparedCertificate {
        vote,
        signatures: (0..3)
            .map(|i| {
                let signed = Message::Prepare(vote).sign(&key(VALIDATOR_SEEDS[i]), &domain);
                (signed.signer, signed.signature)
            })
            .collect(),
    };
    let proposal = Message::Proposal(Proposal {
        height: 4,
        round: 1,
        payload: payload.clone(),
        justification: vec![],
    })
    .sign(&me, &domain);
    let mut state = PersistedState {
        height: 4,
        round: 1,
        lock: Some(lock.clone()),
        lock_payload: Some(payload.clone()),
        signed: vec![proposal],
    };
    durable.save(&state).expect("save");
    let record = store.consensus_state().expect("read").expect("saved");
    assert!(
        record.len() < 10_000,
        "the state record holds the payload by digest only ({} bytes)",
        record.len()
    );
    assert_eq!(
        store.consensus_payload(&digest.0).expect("read"),
        Some(payload.clone())
    );
    // A new signature at the same (height, round): the record changes, the payload stays.
    state.signed.push(Message::Commit(vote).sign(&me, &domain));
    durable.save(&state).expect("save");
    // A restart reads the same state back, payloads in place.
    let mut reopened = DurableConsensus::new(store.clone());
    assert_eq!(reopened.load().expect("load"), Some(state.clone()));
    // A round change that carries the prepared payload, at the next round.
    let round_change = RoundChange {
        height: 4,
        round: 2,
        prepared: Some(lock),
    }
    .sign(&me, &domain);
    let state2 = PersistedState {
        round: 2,
        signed: vec![SignedMessage {
            message: Message::RoundChange {
                round_change: round_change.round_change,
                prepared_payload: Some(payload.clone()),
            },
            signer: round_change.signer,
            signature: round_change.signature,
        }],
        ..state
    };
    durable.save(&state2).expect("save");
    assert_eq!(
        DurableConsensus::new(store.clone()).load().expect("load"),
        Some(state2)
    );
    // The next height refers to no payload: the old one goes.
    let state3 = PersistedState {
        height: 5,
        round: 0,
        lock: None,
        lock_payload: None,
        signed: vec![],
    };
    durable.save(&state3).expect("save");
    assert_eq!(store.consensus_payload(&digest.0).expect("read"), None);
    assert_eq!(
        DurableConsensus::new(store.clone()).load().expect("load"),
        Some(state3)
    );
    // A state written in the old format (payloads inline) still loads.
    let old = PersistedState {
        height: 6,
        round: 0,
        lock: None,
        lock_payload: None,
        signed: vec![],
    };
    store
        .save_consensus_state(&interpool_contracts::codec::encode(&old), &[], &[])
        .expect("write");
    assert_eq!(
        DurableConsensus::new(store).load().expect("load"),
        Some(old)
    );
}

/// A state's payloads are removed when a later state no longer refers to them, also across
/// a restart: before, the state read back at a start did not count as stored, and its
/// payloads (up to 8 MiB each) stayed in the store for good.
#[test]
fn payloads_of_the_state_found_at_a_start_go_when_no_longer_referred_to() {
    use interpool_consensus::ChainDomain;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let payload = vec![9u8; 50_000];
    let digest = Digest::of(&payload);
    let proposal = Message::Proposal(Proposal {
        height: 4,
        round: 0,
        payload: payload.clone(),
        justification: vec![],
    })
    .sign(&key(VALIDATOR_SEEDS[0]), &ChainDomain::UNBOUND);
    let state = PersistedState {
        height: 4,
        round: 0,
        lock: None,
        lock_payload: None,
        signed: vec![proposal],
    };
    DurableConsensus::new(store.clone())
        .save(&state)
        .expect("save");
    assert!(store.consensus_payload(&digest.0).expect("read").is_some());
    // A start: the state is read back, then the next height's (without payloads) saved.
    let mut restarted = DurableConsensus::new(store.clone());
    assert_eq!(restarted.load().expect("load"), Some(state));
    let next = PersistedState {
        height: 5,
        round: 0,
        lock: None,
        lock_payload: None,
        signed: vec![],
    };
    restarted.save(&next).expect("save");
    assert_eq!(store.consensus_payload(&digest.0).expect("read"), None);
}
