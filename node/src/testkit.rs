//! Test fixtures shared by the node's unit tests and fuzz targets (compiled for tests and
//! `cargo fuzz` only): a genesis with four validators, transfers, certificates signed by a
//! quorum, a core on a temporary store, the API's state over a core.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::Signer;
use interpool_consensus::{
    ChainDomain, CommitCertificate, Digest, MessageKind, PublicKey, Signature, ValidatorSet, Vote,
};
use interpool_contracts::testkit::{self as ledger_kit, account, customer_seed, key};
use interpool_contracts::{
    AccountId, Amount, Body, Genesis, GenesisNode, Transaction, VerifiedTransaction,
};

use crate::api::ApiState;
use crate::app::{lock, BlockLimits, Core, Mempool, MempoolLimits, ProposalContext, SharedMempool};
use crate::metrics::Metrics;
use crate::storage::Store;

/// The validators' key seeds, in genesis order.
pub const VALIDATOR_SEEDS: [u64; 4] = [500, 501, 502, 503];

/// A quorum of [`VALIDATOR_SEEDS`] (3 of 4), as the engine gathers it.
pub const QUORUM: [usize; 3] = [0, 1, 2];

/// The ledger testkit's genesis (2 banks, 2 customers each) with four validators.
pub fn genesis() -> Genesis {
    with_validators(ledger_kit::genesis(2, 2, 100_000, 1_000_000, 1_000_000))
}

/// `genesis` with the four [`VALIDATOR_SEEDS`] validators.
pub fn with_validators(mut genesis: Genesis) -> Genesis {
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

/// The validator set of `genesis` (bound to its chain), as the node builds it.
pub fn validator_set(genesis: &Genesis) -> ValidatorSet {
    interpool_genesis::spec::validator_set(genesis).expect("valid set")
}

/// The chain domain of `genesis`: what its consensus signatures are for.
pub fn domain(genesis: &Genesis) -> ChainDomain {
    *validator_set(genesis).domain()
}

/// A verified transfer of 10 from customer `seed` to the first customer of bank 1.
pub fn transfer(seed: u64, nonce: u64) -> VerifiedTransaction {
    transfer_to(seed, customer_seed(1, 0), nonce, 10)
}

/// A verified transfer of `amount` from customer `from` to customer `to`.
pub fn transfer_to(from: u64, to: u64, nonce: u64, amount: u64) -> VerifiedTransaction {
    Transaction {
        chain_id: "test".into(),
        signer: account(from),
        nonce,
        valid_until_height: 1_000,
        body: Body::Transfer {
            to: account(to),
            amount: Amount(amount),
            end_to_end_id: format!("T{from}-{nonce}"),
            reference: String::new(),
            terms: Default::default(),
        },
    }
    .sign(&key(from))
    .check_stateless("test")
    .expect("valid")
}

/// COMMIT signatures of validators `signers` (indices into [`VALIDATOR_SEEDS`]) on `payload`
/// at `height`, round 0, for the chain `domain`: what the engine collects.
pub fn certificate_by(
    domain: &ChainDomain,
    height: u64,
    payload: &[u8],
    signers: &[usize],
) -> CommitCertificate {
    let vote = Vote {
        height,
        round: 0,
        digest: Digest::of(payload),
    };
    let hash = vote.signing_hash(domain, MessageKind::Commit);
    CommitCertificate {
        vote,
        signatures: signers
            .iter()
            .map(|&i| {
                let key = key(VALIDATOR_SEEDS[i]);
                (
                    PublicKey::from(&key.verifying_key()),
                    Signature::from(key.sign(&hash)),
                )
            })
            .collect(),
    }
}

/// A valid certificate on the chain of [`genesis`]: [`QUORUM`] on `payload` at `height`.
pub fn certificate(height: u64, payload: &[u8]) -> CommitCertificate {
    certificate_by(&domain(&genesis()), height, payload, &QUORUM)
}

/// An empty mempool with room to spare.
pub fn mempool() -> SharedMempool {
    Arc::new(Mutex::new(Mempool::new(MempoolLimits {
        max_transactions: 10_000,
        max_per_signer: 1_000,
        client_backlog: None,
    })))
}

/// A core on the store in `dir` (opened or created), with full invariant checks.
pub fn core(genesis: &Genesis, dir: &Path, limits: BlockLimits) -> Core {
    core_and_store(genesis, dir, limits).0
}

/// [`core`], and its store as RocksDB (what the read side needs).
pub fn core_and_store(genesis: &Genesis, dir: &Path, limits: BlockLimits) -> (Core, Arc<Store>) {
    let store = Arc::new(Store::open(dir).expect("store"));
    let core = Core::open(
        genesis,
        store.clone(),
        limits,
        mempool(),
        Arc::new(Metrics::new()),
    )
    .expect("open")
    .with_full_invariant_checks();
    (core, store)
}

/// The API's state over `core` and its `store` (a validator's: writes are admitted into the core's
/// mempool), with no network behind it.
pub fn api_state(core: &Core, store: Arc<Store>, genesis: &Genesis) -> ApiState {
    let metrics = Arc::new(Metrics::new());
    let reader =
        crate::app::Reader::new(store, core.subscribe(), crate::app::ReadLimits::default());
    let admission = crate::app::Admission::new(
        genesis.chain_id.clone(),
        core.mempool().clone(),
        core.subscribe(),
        core.store().clone(),
        metrics.clone(),
        crate::app::AdmissionSettings::default(),
    );
    ApiState {
        node: "test-node".into(),
        read_only: false,
        chain_id: genesis.chain_id.clone(),
        currency: genesis.currency.clone(),
        decimals: genesis.decimals,
        reader,
        mempool: core.mempool().clone(),
        admission,
        peers: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        metrics,
        p2p_stats: Arc::new(crate::net::p2p::P2pStats::default),
        limits: Arc::new(crate::api::limits::ApiLimits::from_config(
            &interpool_genesis::config::RpcConfig::new("127.0.0.1:0"),
        )),
        shutdown: tokio::sync::watch::channel(false).1,
        start: Default::default(),
        halt_height: None,
        health: std::sync::Arc::new(crate::api::health::Health::alone(
            interpool_contracts::AccountId([0; 32]),
        )),
        statements: core.statement_progress(),
        iso_orders: Default::default(),
        auth: Arc::new(crate::api::auth::Auth::for_genesis(
            genesis,
            &interpool_genesis::config::RpcConfig::new("127.0.0.1:0"),
        )),
        recent_events: Default::default(),
    }
}

/// Puts `tx` into the core's mempool against its current ledger.
pub fn admit(core: &Core, tx: VerifiedTransaction) {
    lock(core.mempool())
        .insert(tx, core.ledger(), core.next_height())
        .expect("admitted");
}

/// The proposer the test blocks name (validator 0).
pub fn proposer() -> AccountId {
    account(VALIDATOR_SEEDS[0])
}

/// A proposal context in which any validator may propose and the clock is far ahead.
pub fn context() -> ProposalContext {
    ProposalContext {
        proposers: VALIDATOR_SEEDS.iter().map(|seed| account(*seed)).collect(),
        now_ms: 1 << 50,
    }
}

/// Builds, certifies and commits one block of `txs` on `core`; returns the block's bytes.
pub fn commit_block(core: &mut Core, txs: Vec<VerifiedTransaction>, now_ms: u64) -> Vec<u8> {
    for tx in txs {
        admit(core, tx);
    }
    let height = core.next_height();
    let block = core.build_proposal(proposer(), now_ms);
    core.validate_proposal(height, &block, &context())
        .expect("valid block");
    let domain = ChainDomain::new(&core.tip().chain_id, &core.genesis_hash().0);
    core.commit(
        height,
        &block,
        &certificate_by(&domain, height, &block, &QUORUM),
    )
    .expect("commit");
    block
}

/// The hashes of the acknowledged transactions recorded in `store`, in its order.
pub fn recorded(store: &dyn crate::storage::ChainStore) -> Vec<interpool_contracts::Hash> {
    store
        .pending_transactions()
        .expect("pending")
        .iter()
        .map(interpool_contracts::SignedTransaction::hash)
        .collect()
}

/// Block limits generous enough for any test.
pub fn limits() -> BlockLimits {
    BlockLimits {
        max_transactions: 1_000,
        max_bytes: 1 << 20,
    }
}

/// [`wait_for`] on this thread, for tests outside a runtime.
pub fn wait_for_blocking(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `condition` every few milliseconds until it holds or `deadline` passes.
pub async fn wait_for(deadline: Duration, what: &str, condition: impl Fn() -> bool) {
    let result = tokio::time::timeout(deadline, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(result.is_ok(), "timed out waiting for {what}");
}
