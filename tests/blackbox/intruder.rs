//! A libp2p peer whose key is not in the genesis, against real validator processes.

use std::time::Duration;

use interpool_contracts::codec;
use interpool_contracts::views::TxStatus;
use interpool_contracts::AccountId;
use interpool_node::net::p2p::{self, P2pSettings};

use crate::localnet::{account, status, transfer, tx_status, wait_for, Localnet};

/// `interpool_p2p_events{event="connections_refused"}` of a node.
fn connections_refused(rpc: &str) -> Option<u64> {
    crate::localnet::metric(rpc, r#"interpool_p2p_events{event="connections_refused"}"#)
}

#[test]
fn a_peer_not_in_the_genesis_gets_no_transaction_or_message_accepted() {
    let net = Localnet::start(4, 0, 2);
    let all = net.rpcs();
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let genesis_hash = status(&all[0]).expect("status").genesis_hash;

    // A valid transfer, signed by a real customer: only its messenger is an outsider.
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let tx = transfer(&key, payee, 0, 1);
    let hash = tx.hash();

    let validators: Vec<(AccountId, String)> = net
        .genesis
        .validators
        .iter()
        .map(|v| {
            let node = net.manifest["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .find(|n| n["name"] == v.name.as_str())
                .expect("in manifest");
            (
                v.key,
                node["p2p_address"].as_str().expect("address").to_string(),
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let refused_before: Vec<u64> = all
        .iter()
        .map(|rpc| connections_refused(rpc).expect("metrics"))
        .collect();
    let intruder = runtime.block_on(async {
        let (handle, mut events) = p2p::start(P2pSettings {
            secret_key: [0x66; 32],
            listen: "/ip4/127.0.0.1/tcp/0".into(),
            peers: validators.clone(),
            allowed: validators.iter().map(|(key, _)| *key).collect(),
            network_id: format!("{}-{}", net.genesis.chain_id, &genesis_hash.to_hex()[..16]),
            max_message_bytes: 4 << 20,
            consensus_peers: validators.iter().map(|(key, _)| *key).collect(),
            follow_blocks: false,
            unframed_writes: false,
        })
        .await
        .expect("intruder network");
        // Drain its events so that its queues never fill.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        handle
    });

    // It dials every validator, again and again with backoff; each refuses it. Meanwhile it
    // gossips the transfer and sends consensus messages to every validator.
    let start_height = status(&all[0]).expect("status").height;
    wait_for(
        Duration::from_secs(60),
        "every validator refusing the intruder's connection",
        || {
            intruder.publish_transactions(codec::encode(&vec![tx.clone()]));
            for (validator, _) in &validators {
                intruder.send_consensus(*validator, vec![0xde, 0xad, 0xbe, 0xef]);
            }
            all.iter()
                .zip(&refused_before)
                .all(|(rpc, before)| connections_refused(rpc).is_some_and(|n| n > *before))
        },
    );
    // Blocks keep committing; the outsider's transfer is in none of them, nor pending.
    net.wait_height(&[0, 1, 2, 3], start_height + 3, Duration::from_secs(60));
    for rpc in &all {
        assert_eq!(
            tx_status(rpc, &hash).expect("status").status,
            TxStatus::Unknown,
            "at {rpc}"
        );
        assert_eq!(account(rpc, &payer).expect("account").nonce, 0, "at {rpc}");
    }
    // The intruder's side may see a connection for the moment between its handshake and
    // the validator's refusal (it redials with backoff): a kept connection never goes away.
    wait_for(
        Duration::from_secs(30),
        "no validator keeping the intruder's connection",
        || runtime.block_on(intruder.connected_peers()).is_empty(),
    );
    // The same transfer from a member's API commits: the test is not vacuous.
    crate::localnet::submit_batch(&all[1], &[tx], true);
    wait_for(Duration::from_secs(60), "the transfer committed", || {
        tx_status(&all[0], &hash).is_some_and(|v| v.status == TxStatus::Committed)
    });
}
