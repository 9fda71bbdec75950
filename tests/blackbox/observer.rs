//! Observers: a late observer catches up on a long chain and agrees with the validators;
//! an observer refuses a block whose commit certificate does not verify.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::Signer;
use interpool_consensus::{
    ChainDomain, CommitCertificate, Digest, MessageKind, PublicKey, Signature, Vote,
};
use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::{BlockView, TxStatus};
use interpool_contracts::{codec, AccountId, Block, BlockHeader, Hash, Ledger};
use interpool_node::net::p2p::{self, P2pEvent, P2pSettings};
use interpool_node::net::sync::{SyncRequest, SyncResponse, SyncedBlock};
use serde_json::Value;

use crate::localnet::{
    account, get, post, status, submit_batch, transfer, tx_status, wait_for, Localnet, Options,
    CHAIN_ID,
};

/// `interpool_blocks_refused_total` of a node.
fn blocks_refused(rpc: &str) -> Option<u64> {
    crate::localnet::metric(rpc, "interpool_blocks_refused_total")
}

#[test]
fn an_observer_started_after_500_blocks_catches_up_and_agrees() {
    // Short empty-block interval: 500 blocks in well under a minute rather than four.
    let options = Options {
        empty_block_interval_ms: Some(10),
        ..Options::default()
    };
    let mut net = Localnet::generate(4, 1, 2, &options);
    let observer = net.index("observer-0");
    let validators: Vec<usize> = (0..4).collect();
    for &i in &validators {
        net.start_node(i);
    }
    let started = Instant::now();
    net.wait_height(&validators, 500, Duration::from_secs(900));
    eprintln!(
        "validators past height 500 after {} s",
        started.elapsed().as_secs()
    );
    let rpcs = net.rpcs();
    let rpc = |i: usize| rpcs[i].clone();

    // A few transfers on top, committed before the observer starts.
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let txs: Vec<_> = (0..5)
        .map(|nonce| transfer(&key, payee, nonce, 100 + nonce))
        .collect();
    let hashes = submit_batch(&rpc(1), &txs, true);
    assert_eq!(hashes.len(), 5);
    wait_for(Duration::from_secs(120), "the transfers committed", || {
        hashes
            .iter()
            .all(|h| tx_status(&rpc(0), h).is_some_and(|v| v.status == TxStatus::Committed))
    });

    // The observer starts from nothing, syncs and verifies every block, and keeps up.
    net.start_node(observer);
    let target = status(&rpc(0)).expect("status").height;
    net.wait_height(&[observer], target, Duration::from_secs(600));
    let seen = status(&rpc(observer)).expect("observer status");
    assert_eq!(seen.role, "observer");
    assert_eq!(
        seen.genesis_hash,
        status(&rpc(0)).expect("status").genesis_hash
    );

    // At a common height every node holds the same block and state root.
    let common = validators
        .iter()
        .chain([&observer])
        .map(|&i| status(&rpc(i)).expect("status").height)
        .min()
        .expect("nodes");
    assert!(common >= target);
    for height in [1, 250, 500, common] {
        let blocks: Vec<BlockView<Value>> = validators
            .iter()
            .chain([&observer])
            .map(|&i| {
                get(&rpc(i), &format!("/v1/blocks/{height}"))
                    .unwrap_or_else(|| panic!("block {height} at {}", net.nodes[i].name))
            })
            .collect();
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(
                (
                    &block.hash,
                    &block.header,
                    &block.transactions,
                    &block.state_root
                ),
                (
                    &blocks[0].hash,
                    &blocks[0].header,
                    &blocks[0].transactions,
                    &blocks[0].state_root
                ),
                "node {i} disagrees on block {height}: {}",
                serde_json::to_string(&blocks).unwrap_or_default()
            );
        }
    }
    for rpc_url in validators.iter().chain([&observer]).map(|&i| rpc(i)) {
        for hash in &hashes {
            assert_eq!(
                tx_status(&rpc_url, hash).expect("status").status,
                TxStatus::Committed,
                "{hash} at {rpc_url}"
            );
        }
    }
    assert_eq!(
        account(&rpc(observer), &payer),
        account(&rpc(0), &payer),
        "the observer's view of the payer"
    );

    // It serves reads but refuses writes.
    let fresh = to_hex(&transfer(&key, payee, 5, 1).encode());
    let (code, body) = post(
        &rpc(observer),
        "/v1/transactions",
        serde_json::json!({ "tx": fresh }).to_string(),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("read_only")),
        "{body}"
    );
    let (code, body) = post(
        &rpc(observer),
        "/v1/transactions/batch",
        serde_json::json!({ "txs": [fresh] }).to_string(),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("read_only")),
        "{body}"
    );
    assert_eq!(account(&rpc(0), &payer).expect("account").nonce, 5);
}

#[test]
fn an_observer_follows_each_block_on_its_announcement() {
    let mut net = Localnet::generate(4, 1, 2, &Options::default());
    let observer = net.index("observer-0");
    // An hour between polls: the observer's first sync runs at start, and after that only
    // the validators' block announcements can move it forward.
    net.set_config(observer, "sync_interval_ms", 1_000, 3_600_000);
    net.start_all();
    let rpcs = net.rpcs();
    let (rpc0, rpc_observer) = (rpcs[0].clone(), rpcs[observer].clone());
    net.wait_height(&[0, 1, 2, 3], 3, Duration::from_secs(120));

    // One transfer at a time: each is seen committed on the observer shortly after the
    // validators commit it, many times within the hour-long poll.
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    for nonce in 0..5 {
        let hashes = submit_batch(&rpc0, &[transfer(&key, payee, nonce, 10 + nonce)], true);
        wait_for(Duration::from_secs(60), "the transfer committed", || {
            tx_status(&rpc0, &hashes[0]).is_some_and(|v| v.status == TxStatus::Committed)
        });
        net.assert_running(&[observer]);
        wait_for(
            Duration::from_secs(60),
            "the observer to apply the transfer's block",
            || {
                tx_status(&rpc_observer, &hashes[0])
                    .is_some_and(|v| v.status == TxStatus::Committed)
            },
        );
    }
    assert_eq!(
        account(&rpc_observer, &payer).expect("account").nonce,
        5,
        "the observer's view of the payer"
    );
    let heard = crate::localnet::metric(&rpc_observer, "interpool_block_announcements_total")
        .expect("announcement counter");
    assert!(heard >= 5, "announcements received: {heard}");
}

/// `key`'s COMMIT signature over `digest` at `height`, round 0, on the chain `genesis`.
fn commit_signature(
    genesis: &interpool_contracts::Genesis,
    key: &ed25519_dalek::SigningKey,
    height: u64,
    digest: &Hash,
) -> (PublicKey, Signature) {
    let vote = Vote {
        height,
        round: 0,
        digest: Digest(digest.0),
    };
    let domain = ChainDomain::new(&genesis.chain_id, &genesis.hash().0);
    let signature = key.sign(&vote.signing_hash(&domain, MessageKind::Commit));
    (
        PublicKey::from(&key.verifying_key()),
        Signature::from(signature),
    )
}

/// An encoded commit certificate for `digest` at `height` with exactly `signatures`.
fn certificate(height: u64, digest: &Hash, signatures: Vec<(PublicKey, Signature)>) -> Vec<u8> {
    codec::encode(&CommitCertificate {
        vote: Vote {
            height,
            round: 0,
            digest: Digest(digest.0),
        },
        signatures,
    })
}

/// What the fake validator serves for block 1.
const TOO_FEW_SIGNATURES: u8 = 0;
const FORGED_SIGNATURE: u8 = 1;
const VALID: u8 = 2;

#[test]
fn an_observer_refuses_a_block_whose_certificate_does_not_verify() {
    let mut net = Localnet::generate(4, 1, 2, &Options::default());
    let observer = net.index("observer-0");
    let genesis = net.genesis.clone();
    let genesis_hash = genesis.hash();
    let validator_keys: Vec<ed25519_dalek::SigningKey> = (0..4)
        .map(|i| net.key(&format!("validator-{i}/node-key.json")))
        .collect();
    for (key, listed) in validator_keys.iter().zip(&genesis.validators) {
        assert_eq!(AccountId(key.verifying_key().to_bytes()), listed.key);
    }

    // Block 1, built as a validator would: a real transfer on top of the genesis state.
    let (payer_key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let tx = transfer(&payer_key, payee, 0, 1_234);
    let mut ledger = Ledger::from_genesis(&genesis).expect("genesis");
    let header = BlockHeader {
        chain_id: CHAIN_ID.into(),
        height: 1,
        parent_hash: genesis_hash,
        previous_state_root: ledger.state_root(),
        timestamp_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64,
        proposer: genesis.validators[1].key,
    };
    let header_time_ms = header.timestamp_ms;
    let payload = Block {
        header,
        transactions: vec![tx.clone()],
    }
    .encode();
    let digest = Block::hash_of(&payload);
    let root_after = ledger
        .apply_block(
            1,
            header_time_ms,
            &[tx.clone().check_stateless(CHAIN_ID).expect("valid")],
        )
        .state_root;

    // Three certificates for it: one signature where a quorum is three; three signatures
    // of which one signs another block; and a real quorum (the control that proves the
    // test speaks the wire format).
    let other = Hash([9; 32]);
    let certificates = [
        certificate(
            1,
            &digest,
            vec![commit_signature(&genesis, &validator_keys[0], 1, &digest)],
        ),
        certificate(
            1,
            &digest,
            vec![
                commit_signature(&genesis, &validator_keys[0], 1, &digest),
                commit_signature(&genesis, &validator_keys[1], 1, &other),
                commit_signature(&genesis, &validator_keys[2], 1, &digest),
            ],
        ),
        certificate(
            1,
            &digest,
            (0..3)
                .map(|i| commit_signature(&genesis, &validator_keys[i], 1, &digest))
                .collect(),
        ),
    ];

    // The test plays validator-0: its key, its address. The real validators never start.
    let address = net.manifest_node("validator-0")["p2p_address"]
        .as_str()
        .expect("address")
        .to_string();
    let allowed: Vec<AccountId> = genesis
        .validators
        .iter()
        .chain(&genesis.observers)
        .map(|n| n.key)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mode = Arc::new(AtomicU8::new(TOO_FEW_SIGNATURES));
    let served = Arc::new(AtomicU64::new(0));
    let _impostor = runtime.block_on(async {
        let (handle, mut events) = p2p::start(P2pSettings {
            secret_key: validator_keys[0].to_bytes(),
            listen: address.clone(),
            peers: Vec::new(),
            allowed,
            network_id: format!("{}-{}", genesis.chain_id, &genesis_hash.to_hex()[..16]),
            max_message_bytes: 16 << 20,
            consensus_peers: Vec::new(),
            follow_blocks: false,
            unframed_writes: false,
        })
        .await
        .expect("the fake validator's network");
        let (mode, served) = (mode.clone(), served.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let P2pEvent::SyncRequest { bytes, respond, .. } = event else {
                    continue;
                };
                let Ok(request) = SyncRequest::decode(&bytes) else {
                    continue;
                };
                let blocks = if request.from == 1 {
                    let certificate = certificates[mode.load(Ordering::SeqCst) as usize].clone();
                    vec![SyncedBlock {
                        height: 1,
                        payload: payload.clone(),
                        certificate,
                    }]
                } else {
                    Vec::new()
                };
                served.fetch_add(1, Ordering::SeqCst);
                let _ = respond.send(codec::encode(&SyncResponse { blocks, tip: 1 }));
            }
        });
        handle
    });

    // Only the observer runs; it dials validator-0, which is us.
    net.start_node(observer);
    let rpc = net.nodes[observer].rpc.clone();
    let at_genesis = || {
        let seen = status(&rpc).expect("the observer answers");
        assert_eq!(
            seen.height, 0,
            "the observer applied a block it must refuse"
        );
        assert_eq!(seen.state_root, ledger_root_at_genesis(&genesis));
    };

    wait_for(
        Duration::from_secs(120),
        "the observer refusing a certificate with one signature",
        || blocks_refused(&rpc).is_some_and(|n| n > 0),
    );
    at_genesis();
    assert!(served.load(Ordering::SeqCst) > 0);

    // Switch to the forged signature. The observer asks one request at a time, so at most
    // one refusal after the switch can still be of the previous certificate.
    let before = blocks_refused(&rpc).expect("metrics");
    mode.store(FORGED_SIGNATURE, Ordering::SeqCst);
    wait_for(
        Duration::from_secs(120),
        "the observer refusing a certificate with a forged signature",
        || blocks_refused(&rpc).is_some_and(|n| n >= before + 2),
    );
    at_genesis();
    assert_eq!(
        tx_status(&rpc, &tx.hash()).expect("status").status,
        TxStatus::Unknown
    );

    // The control: the same block with a real quorum of signatures is applied.
    mode.store(VALID, Ordering::SeqCst);
    wait_for(Duration::from_secs(120), "the observer at height 1", || {
        status(&rpc).is_some_and(|s| s.height >= 1)
    });
    let seen = status(&rpc).expect("status");
    assert_eq!((seen.height, seen.block_hash), (1, digest));
    assert_eq!(seen.state_root, root_after);
    assert_eq!(
        tx_status(&rpc, &tx.hash()).expect("status").status,
        TxStatus::Committed
    );
    assert_eq!(account(&rpc, &payer).expect("account").nonce, 1);
}

/// The genesis state root, as the ledger computes it.
fn ledger_root_at_genesis(genesis: &interpool_contracts::Genesis) -> Hash {
    Ledger::from_genesis(genesis).expect("genesis").state_root()
}
