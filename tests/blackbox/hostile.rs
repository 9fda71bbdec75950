//! Hostile input against real processes.
//!
//! Signatures whose `R` carries a small-order (torsion) component: valid under the chain's
//! one rule (ZIP-215, cofactored), refused by `verify_strict`. Once, such a transfer was
//! admitted alone, accepted or refused inside a batch depending on its neighbours, committed
//! by the validators, and an observer that joined later stopped at that block on every
//! start (`FinalizedInvalid`), as would `audit`. Now the verdict is one, whatever the batch,
//! and a certified block is executed, never judged again.

use std::time::Duration;

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use interpool_contracts::tx::Signature;
use interpool_contracts::{Hash, SignedTransaction};
use sha2::{Digest, Sha512};

use interpool_node::net::p2p::{self, P2pEvent, P2pSettings};

use crate::audit::{audit_json, data_dir};
use crate::localnet::{account, status, submit_batch, transfer, wait_for, Localnet};

/// `tx` (a transfer `key` signed) signed again with `R + T` for the `torsion`-th
/// eight-torsion point `T`: the same key and message, a signature only a cofactored rule
/// accepts.
fn with_torsion_on_r(
    key: &SigningKey,
    mut tx: SignedTransaction,
    torsion: usize,
) -> SignedTransaction {
    // The signing scalar as ed25519 derives it from the secret: SHA-512, clamped.
    let expanded = Sha512::digest(key.to_bytes());
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&expanded[..32]);
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    let a_point = EdwardsPoint::mul_base(&a);
    assert_eq!(
        a_point.compress().to_bytes(),
        key.verifying_key().to_bytes()
    );
    let message: Hash = tx.tx.hash();
    let r =
        Scalar::from_bytes_mod_order_wide(&Sha512::digest([&message.0[..], b"r"].concat()).into());
    let r_bytes = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[torsion % 8])
        .compress()
        .to_bytes();
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::digest(
            [
                &r_bytes[..],
                &a_point.compress().to_bytes(),
                message.as_bytes(),
            ]
            .concat(),
        )
        .into(),
    );
    let s = r + k * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&r_bytes);
    signature[32..].copy_from_slice(&s.to_bytes());
    tx.signature = Signature(signature);
    // verify_strict refuses it: the R component of small order.
    let strict = ed25519_dalek::Signature::from_bytes(&signature);
    if !torsion.is_multiple_of(8) {
        assert!(key
            .verifying_key()
            .verify_strict(message.as_bytes(), &strict)
            .is_err());
    }
    tx
}

#[test]
fn torsion_signatures_among_normal_traffic_commit_and_a_late_observer_and_audit_agree() {
    let mut net = Localnet::generate(4, 1, 2, &Default::default());
    let validators: Vec<usize> = (0..4).collect();
    for &i in &validators {
        net.start_node(i);
    }
    net.wait_height(&validators, 1, Duration::from_secs(120));
    let rpcs = net.rpcs();

    // A payer whose transfers carry torsion on R, and two payers with ordinary signatures,
    // in the same batches.
    let (crafty, crafty_id) = net.account_key(0, 0);
    let (plain_a, plain_a_id) = net.account_key(0, 1);
    let (plain_b, _) = net.account_key(1, 1);
    let payee = net.account_key(1, 0).1;
    let mut hashes = Vec::new();
    for round in 0..3u64 {
        let mut batch = Vec::new();
        for i in 0..2u64 {
            let nonce = round * 2 + i;
            let tx = transfer(&crafty, payee, nonce, 1);
            batch.push(with_torsion_on_r(&crafty, tx, (nonce + 1) as usize));
            batch.push(transfer(&plain_a, payee, nonce, 2));
            batch.push(transfer(&plain_b, crafty_id, nonce, 3));
        }
        hashes.extend(submit_batch(&rpcs[(round % 4) as usize], &batch, true));
    }
    wait_for(Duration::from_secs(120), "every transfer committed", || {
        [crafty_id, plain_a_id]
            .iter()
            .all(|id| account(&rpcs[0], id).is_some_and(|a| a.nonce == 6))
    });
    for hash in &hashes {
        let status = crate::localnet::tx_status(&rpcs[1], hash).expect("status");
        assert_eq!(
            status.status,
            interpool_contracts::views::TxStatus::Committed,
            "{hash}"
        );
    }

    // An observer that joins now syncs past those blocks and agrees.
    let observer = net.index("observer-0");
    net.start_node(observer);
    let height = status(&rpcs[0]).expect("status").height;
    net.wait_height(&[observer], height, Duration::from_secs(120));
    let at = |rpc: &str| {
        crate::localnet::get::<interpool_contracts::views::BlockView<serde_json::Value>>(
            rpc,
            &format!("/v1/blocks/{height}"),
        )
        .expect("block")
        .state_root
    };
    assert_eq!(at(&rpcs[observer]), at(&rpcs[0]));
    net.assert_running(&[0, 1, 2, 3, observer]);

    // And the audit, which verifies every signature again with the same rule, passes on a
    // validator's and on the observer's data (both running).
    let genesis = net.root().join("genesis.json");
    for i in [0, observer] {
        let summary = audit_json(&data_dir(&net.nodes[i].config), &genesis);
        assert_eq!(summary["chain_id"], crate::localnet::CHAIN_ID, "{summary}");
        assert!(
            summary["transactions"].as_u64().unwrap_or(0) >= 18,
            "{summary}"
        );
    }
}

/// `(key, p2p address)` of the named genesis nodes, from the manifest.
fn p2p_addresses(net: &Localnet, names: &[&str]) -> Vec<(interpool_contracts::AccountId, String)> {
    names
        .iter()
        .map(|name| {
            let node = net.manifest_node(name);
            let key = net
                .genesis
                .validators
                .iter()
                .chain(&net.genesis.observers)
                .find(|n| n.name == *name)
                .expect("in genesis")
                .key;
            (
                key,
                node["p2p_address"].as_str().expect("address").to_string(),
            )
        })
        .collect()
}

/// A sample in `rpc`'s `/metrics` (0 when absent).
fn sample(rpc: &str, series: &str) -> u64 {
    crate::localnet::metric(rpc, series).unwrap_or(0)
}

/// Allowed peers that lie: a validator key replaying old consensus messages, and an observer
/// key announcing a 100 MB frame and flooding gossip with forged signatures. Each is refused
/// or throttled with a log line and a metric, and the validators keep committing.
#[test]
fn hostile_peers_are_refused_and_counted_while_the_validators_commit() {
    let mut net = Localnet::generate(4, 1, 2, &Default::default());
    // validator-3's key is the replaying attacker's: three honest validators are a quorum.
    let honest = [0, 1, 2];
    for i in honest {
        net.start_node(i);
    }
    net.wait_height(&honest, 2, Duration::from_secs(120));
    let rpcs = net.rpcs();
    let genesis_hash = status(&rpcs[0]).expect("status").genesis_hash;
    let network_id = format!("{}-{}", net.genesis.chain_id, &genesis_hash.to_hex()[..16]);
    let targets = p2p_addresses(&net, &["validator-0", "validator-1", "validator-2"]);
    let allowed: Vec<_> = net
        .genesis
        .validators
        .iter()
        .chain(&net.genesis.observers)
        .map(|n| n.key)
        .collect();
    let validator_keys: Vec<_> = net.genesis.validators.iter().map(|v| v.key).collect();
    let settings = |secret: [u8; 32], unframed: bool| P2pSettings {
        secret_key: secret,
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        peers: targets.clone(),
        allowed: allowed.clone(),
        consensus_peers: validator_keys.clone(),
        network_id: network_id.clone(),
        max_message_bytes: 16 << 20,
        follow_blocks: false,
        unframed_writes: unframed,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // The replayer records what the honest validators send it for a few heights.
    let replayer_key = net.key("validator-3/node-key.json").to_bytes();
    let (replayer, recorded) = runtime.block_on(async {
        let (handle, mut events) = p2p::start(settings(replayer_key, false))
            .await
            .expect("replayer network");
        let mut recorded = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while recorded.len() < 60 {
            match tokio::time::timeout_at(deadline, events.consensus.recv()).await {
                Ok(Some(P2pEvent::Consensus { bytes, .. })) => recorded.push(bytes),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        (handle, recorded)
    });
    assert!(recorded.len() >= 10, "recorded {} messages", recorded.len());
    let observer_key = net.key("observer-0/node-key.json").to_bytes();
    let liar = runtime.block_on(async {
        let (handle, mut events) = p2p::start(settings(observer_key, true))
            .await
            .expect("liar network");
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        handle
    });
    let (payer_key, _) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let forged: Vec<SignedTransaction> = (0..200)
        .map(|nonce| {
            let mut tx = transfer(&payer_key, payee, nonce, 1);
            tx.signature.0[40] ^= 0x55;
            tx
        })
        .collect();
    let forged = interpool_contracts::codec::encode(&forged);
    // A frame whose prefix announces 100 MB, followed by a few bytes.
    let mut lie = (100u32 << 20).to_be_bytes().to_vec();
    lie.extend_from_slice(&[0xab; 64]);

    let start = status(&rpcs[0]).expect("status").height;
    wait_for(
        Duration::from_secs(120),
        "every attack refused and counted, and the validators ten blocks further",
        || {
            for (validator, _) in &targets {
                for message in &recorded {
                    replayer.send_consensus(*validator, message.clone());
                }
                liar.send_consensus(*validator, lie.clone());
            }
            liar.publish_transactions(forged.clone());
            honest.iter().all(|&i| {
                let rpc = &rpcs[i];
                sample(
                    rpc,
                    "interpool_consensus_messages_ignored{reason=\"old_height\"}",
                ) > 0
                    && sample(rpc, "interpool_p2p_events{event=\"frames_refused\"}") > 0
                    && status(rpc).is_some_and(|s| s.height >= start + 10)
            }) && honest.iter().any(|&i| {
                sample(
                    &rpcs[i],
                    "interpool_gossip_batches_total{verdict=\"rejected\"}",
                ) > 0
            })
        },
    );
    net.assert_running(&honest);
    // None of the forged transfers was admitted anywhere.
    for &i in &honest {
        assert_eq!(status(&rpcs[i]).expect("status").mempool_size, 0);
    }
    // And each refusal left a line in the logs.
    let logs = net.logs_full();
    for line in [
        "ignored consensus messages",
        "refused a frame from a peer",
        "refused a gossip batch",
    ] {
        assert!(logs.contains(line), "no log line {line:?}");
    }
}

/// No client can hold the API open: a request whose headers never end is closed within the
/// header timeout (30 s), and one address gets at most 128 connections at once (the next is
/// closed on accept) while the API goes on answering. Before, the plain-HTTP server set no
/// timer: connections that sent nothing, or half a request, were held for as long as the
/// client liked, until the node ran out of file descriptors.
#[test]
fn a_client_cannot_hold_the_api_open() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let mut net = Localnet::generate(
        1,
        0,
        1,
        &crate::localnet::Options {
            genesis_args: vec!["--plain-http".into()],
            ..Default::default()
        },
    );
    net.start_all();
    net.wait_height(&[0], 1, Duration::from_secs(120));
    let rpc = net.rpcs()[0].clone();
    let address = rpc
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let connect = || TcpStream::connect(&address).expect("connect");
    // Closed by the server: the read ends (no byte) before `within`.
    let closed_within = |stream: &mut TcpStream, within: Duration| {
        stream.set_read_timeout(Some(within)).expect("timeout");
        let mut byte = [0u8; 1024];
        loop {
            match stream.read(&mut byte) {
                Ok(0) => return true,
                Ok(_) => continue, // an answer (e.g. 408) before the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false, // timed out: still open
            }
        }
    };

    // Half a request's headers, then nothing.
    let mut half = connect();
    half.write_all(b"GET /v1/status HTTP/1.1\r\nHost: node\r\n")
        .expect("write");
    assert!(
        closed_within(&mut half, Duration::from_secs(90)),
        "a half-sent request was held past the header timeout"
    );

    // 128 idle connections from one address, then one more: closed at once.
    let idle: Vec<TcpStream> = (0..128).map(|_| connect()).collect();
    let mut over = connect();
    assert!(
        closed_within(&mut over, Duration::from_secs(20)),
        "a 129th connection from one address was kept"
    );
    drop(idle);
    wait_for(Duration::from_secs(30), "the API answers again", || {
        status(&rpc).is_some()
    });
}

/// One client flooding the write API with batches of forged signatures, from many
/// connections at once, cannot take the node's writes from another client: before, sixteen
/// such batches in flight held every write turn (503 `busy` for everyone) and a batch cost
/// its sender one request of its rate whatever it held. Now one client holds at most a
/// quarter of the writes and pays for its forged entries.
#[test]
fn a_client_flooding_forged_batches_cannot_take_the_writes_of_another() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut net = Localnet::generate(
        1,
        0,
        2,
        &crate::localnet::Options {
            genesis_args: vec!["--plain-http".into()],
            ..Default::default()
        },
    );
    net.start_all();
    net.wait_height(&[0], 1, Duration::from_secs(120));
    let rpc = net.rpcs()[0].trim_end_matches('/').to_string();
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let (mallory, _) = net.account_key(0, 1);

    // 5,000 transfers whose signatures were altered after signing, in the binary form.
    let forged: Vec<Vec<u8>> = (0..5_000)
        .map(|nonce| {
            let mut tx = transfer(&mallory, payee, nonce, 1);
            tx.signature.0[0] ^= 0x01;
            tx.encode()
        })
        .collect();
    let body = interpool_contracts::batch::encode_batch(forged.iter().map(|tx| tx.as_slice()));
    let attacker = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let (attacker, body, url) = (attacker.clone(), body.clone(), rpc.clone());
            let (stop, sent, limited) = (stop.clone(), sent.clone(), limited.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let answer = attacker
                        .post(format!("{url}/v1/transactions/batch"))
                        .header("content-type", "application/octet-stream")
                        .body(body.clone())
                        .send();
                    sent.fetch_add(1, Ordering::Relaxed);
                    if answer.is_ok_and(|a| a.status().as_u16() == 429) {
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    wait_for(Duration::from_secs(60), "the flood under way", || {
        sent.load(Ordering::Relaxed) >= 32
    });

    // Meanwhile another client's transfers are each acknowledged, none refused as busy.
    let honest = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut hashes = Vec::new();
    for nonce in 0..20 {
        let tx = transfer(&key, payee, nonce, 1);
        let body = serde_json::json!({
            "tx": interpool_contracts::primitives::to_hex(&tx.encode())
        });
        let answer = honest
            .post(format!("{rpc}/v1/transactions"))
            .json(&body)
            .send()
            .expect("answered");
        let status = answer.status().as_u16();
        assert_eq!(
            status,
            202,
            "transfer {nonce} during the flood: {}",
            answer.text().unwrap_or_default()
        );
        hashes.push(tx.hash());
    }
    stop.store(true, Ordering::Relaxed);
    for thread in flood {
        thread.join().expect("flooder");
    }
    assert!(
        limited.load(Ordering::Relaxed) > 0,
        "the flooder was never told to slow down ({} batches)",
        sent.load(Ordering::Relaxed)
    );
    wait_for(Duration::from_secs(60), "the transfers committed", || {
        account(&rpc, &payer).is_some_and(|a| a.nonce == 20)
    });
}
