//! Four validators in one process, connected by channels: the driver, the engine, the chain
//! and the store together, without libp2p.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use interpool_consensus::{Config, Engine, PublicKey, ValidatorSet};
use interpool_contracts::testkit::{self, account, customer_seed, key};
use interpool_contracts::{AccountId, Amount, Body, Genesis, GenesisNode, Transaction};
use tokio::sync::{broadcast, mpsc};

use super::*;
use crate::chain::{BlockLimits, Chain};
use crate::mempool::{Mempool, MempoolLimits};
use crate::storage::Store;

const VALIDATOR_SEEDS: [u64; 4] = [500, 501, 502, 503];

fn genesis() -> Genesis {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000);
    genesis.validators = VALIDATOR_SEEDS
        .iter()
        .enumerate()
        .map(|(i, seed)| GenesisNode {
            name: format!("validator-{i}"),
            key: account(*seed),
        })
        .collect();
    genesis
}

/// Every in-process validator's input queue and shared state, by key.
type Peers = Arc<Mutex<BTreeMap<AccountId, (mpsc::Sender<DriverInput>, Shared)>>>;

/// Routes messages between the in-process validators.
struct ChannelNetwork {
    me: AccountId,
    peers: Peers,
}

impl ConsensusNetwork for ChannelNetwork {
    fn broadcast(&self, message: Vec<u8>) {
        for (key, (sender, _)) in lock(&self.peers).iter() {
            if *key != self.me {
                let _ = sender.try_send(DriverInput::Message(message.clone()));
            }
        }
    }

    fn send_to(&self, validator: AccountId, message: Vec<u8>) {
        if let Some((sender, _)) = lock(&self.peers).get(&validator) {
            let _ = sender.try_send(DriverInput::Message(message));
        }
    }

    fn request_blocks(&self, height: u64) {
        // Serve from any peer that has the blocks, as the sync protocol will.
        let peers = lock(&self.peers);
        let Some((me, _)) = peers.get(&self.me) else {
            return;
        };
        for (key, (_, shared)) in peers.iter() {
            if *key == self.me {
                continue;
            }
            let chain = lock(&shared.chain);
            let store = chain.store();
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

struct Node {
    shared: Shared,
    task: tokio::task::JoinHandle<Result<(), ChainError>>,
    _dir: tempfile::TempDir,
}

fn start(seed: u64, genesis: &Genesis, dir: tempfile::TempDir, peers: &Peers) -> Node {
    let store = Store::open(dir.path()).expect("store");
    let limits = BlockLimits {
        max_transactions: 1_000,
        max_bytes: 1 << 20,
    };
    let chain = Chain::open(genesis, store, limits).expect("chain");
    let persisted = load_persisted(&chain).expect("persisted state");
    let validators = ValidatorSet::new(
        genesis
            .validators
            .iter()
            .map(|v| PublicKey(v.key.0))
            .collect(),
    )
    .expect("validator set");
    let config = Config {
        round_timeout_base_ms: 400,
        retransmit_interval_ms: 200,
        ..Config::default()
    };
    let engine = Engine::new(
        config,
        validators,
        key(seed),
        persisted,
        chain.tip().height + 1,
    )
    .expect("engine");
    let (committed, _) = broadcast::channel(64);
    let shared = Shared {
        chain: Arc::new(Mutex::new(chain)),
        mempool: Arc::new(Mutex::new(Mempool::new(MempoolLimits {
            max_transactions: 1_000,
            max_per_signer: 100,
        }))),
        committed,
        metrics: Arc::new(crate::metrics::Metrics::new()),
    };
    let (sender, inputs) = mpsc::channel(4_096);
    lock(peers).insert(account(seed), (sender, shared.clone()));
    let network = Arc::new(ChannelNetwork {
        me: account(seed),
        peers: peers.clone(),
    });
    let settings = DriverSettings {
        empty_block_interval_ms: 50,
    };
    let task = tokio::spawn(run(
        engine,
        key(seed),
        shared.clone(),
        network,
        inputs,
        settings,
    ));
    Node {
        shared,
        task,
        _dir: dir,
    }
}

fn transfer(seed: u64, nonce: u64) -> interpool_contracts::VerifiedTransaction {
    Transaction {
        chain_id: "test".into(),
        signer: account(seed),
        nonce,
        valid_until_height: 1_000,
        body: Body::Transfer {
            to: account(customer_seed(1, 1)),
            amount: Amount(100),
            end_to_end_id: format!("D{nonce}"),
            reference: String::new(),
        },
    }
    .sign(&key(seed))
    .check_stateless("test")
    .expect("valid")
}

/// Polls `condition` every few milliseconds until it holds or `deadline` passes.
async fn wait_for(deadline: Duration, what: &str, condition: impl Fn() -> bool) {
    let result = tokio::time::timeout(deadline, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(result.is_ok(), "timed out waiting for {what}");
}

fn height(node: &Node) -> u64 {
    lock(&node.shared.chain).tip().height
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_and_a_restarted_one_catches_up() {
    let genesis = genesis();
    let peers = Arc::new(Mutex::new(BTreeMap::new()));
    let mut nodes: Vec<Node> = VALIDATOR_SEEDS
        .iter()
        .map(|seed| {
            start(
                *seed,
                &genesis,
                tempfile::tempdir().expect("tempdir"),
                &peers,
            )
        })
        .collect();

    // "Gossip" 20 transfers to every mempool.
    let sender = customer_seed(0, 0);
    for nonce in 0..20 {
        let tx = transfer(sender, nonce);
        for node in &nodes {
            let chain = lock(&node.shared.chain);
            let next = chain.tip().height + 1;
            let _ = lock(&node.shared.mempool).insert(tx.clone(), chain.ledger(), next);
        }
    }
    for (sender, _) in lock(&peers).values() {
        let _ = sender.try_send(DriverInput::TransactionsArrived);
    }
    wait_for(
        Duration::from_secs(60),
        "all 20 transfers committed everywhere",
        || {
            nodes
                .iter()
                .all(|n| lock(&n.shared.chain).ledger().next_nonce(&account(sender)) == Some(20))
        },
    )
    .await;

    // Stop validator 3 (its store stays), let the others move on, restart it.
    let stopped = nodes.pop().expect("four nodes");
    stopped.task.abort();
    let _ = stopped.task.await;
    lock(&peers).remove(&account(VALIDATOR_SEEDS[3]));
    let stopped_at = lock(&stopped.shared.chain).tip().height;
    drop(stopped.shared);
    wait_for(
        Duration::from_secs(60),
        "three validators still commit",
        || nodes.iter().all(|n| height(n) >= stopped_at + 3),
    )
    .await;
    let restarted = start(VALIDATOR_SEEDS[3], &genesis, stopped._dir, &peers);
    nodes.push(restarted);
    let target = height(&nodes[0]) + 2;
    wait_for(
        Duration::from_secs(60),
        "the restarted validator catches up",
        || nodes.iter().all(|n| height(n) >= target),
    )
    .await;

    // Agreement: every node holds the same blocks and state roots.
    let common = nodes.iter().map(height).min().expect("nodes");
    for h in 1..=common {
        let blocks: Vec<_> = nodes
            .iter()
            .map(|n| lock(&n.shared.chain).store().block(h).expect("read"))
            .collect();
        assert!(
            blocks.windows(2).all(|w| w[0] == w[1]),
            "blocks differ at height {h}"
        );
        let roots: Vec<_> = nodes
            .iter()
            .map(|n| {
                lock(&n.shared.chain)
                    .store()
                    .outcome(h)
                    .expect("read")
                    .map(|o| o.state_root)
            })
            .collect();
        assert!(
            roots.windows(2).all(|w| w[0] == w[1]),
            "state roots differ at height {h}"
        );
    }
    for node in &nodes {
        let chain = lock(&node.shared.chain);
        assert_eq!(
            chain
                .ledger()
                .account(&account(customer_seed(1, 1)))
                .map(|a| a.balance),
            Some(Amount(102_000))
        );
    }
    for node in nodes {
        node.task.abort();
    }
}
