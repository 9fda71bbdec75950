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

/// Hosts that open TCP connections to p2p ports and never start a handshake: each holds
/// `per_target` connections to every target, reopening at once each one the node closes
/// when its setup deadline passes, until dropped. One the node refuses at once is reopened
/// a second later (so a refused source does not churn through its ephemeral ports).
struct HandshakeFlood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How many of its connections were open at its last look.
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HandshakeFlood {
    fn start(
        sources: Vec<std::net::IpAddr>,
        targets: Vec<std::net::SocketAddr>,
        per_target: usize,
    ) -> HandshakeFlood {
        use std::sync::atomic::Ordering;
        use std::time::Instant;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stopping, counted) = (stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("flood runtime");
            runtime.block_on(async move {
                struct Slot {
                    source: std::net::IpAddr,
                    target: std::net::SocketAddr,
                    stream: Option<(tokio::net::TcpStream, Instant)>,
                    not_before: Instant,
                }
                let mut slots: Vec<Slot> = sources
                    .iter()
                    .flat_map(|source| {
                        targets.iter().flat_map(move |target| {
                            (0..per_target).map(move |_| Slot {
                                source: *source,
                                target: *target,
                                stream: None,
                                not_before: Instant::now(),
                            })
                        })
                    })
                    .collect();
                while !stopping.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let mut held = 0;
                    for slot in &mut slots {
                        if let Some((stream, opened)) = &slot.stream {
                            let mut byte = [0u8; 64];
                            let alive = match stream.try_read(&mut byte) {
                                Ok(0) => false,
                                Ok(_) => true,
                                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                            };
                            if alive {
                                held += 1;
                                continue;
                            }
                            if now.duration_since(*opened) < Duration::from_secs(2) {
                                // Refused as soon as it was accepted.
                                slot.not_before = now + Duration::from_secs(1);
                            }
                            slot.stream = None;
                        }
                        if now < slot.not_before {
                            continue;
                        }
                        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                        socket
                            .bind(std::net::SocketAddr::new(slot.source, 0))
                            .expect("bind a loopback source address");
                        if let Ok(Ok(stream)) = tokio::time::timeout(
                            Duration::from_millis(200),
                            socket.connect(slot.target),
                        )
                        .await
                        {
                            slot.stream = Some((stream, Instant::now()));
                        }
                    }
                    counted.store(held, Ordering::Relaxed);
                    // The pace of the flood's look at its connections.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        HandshakeFlood {
            stop,
            open,
            thread: Some(thread),
        }
    }

    fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for HandshakeFlood {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Four hosts (127.0.0.2–5) hold as many connections in their handshake at every validator
/// as one total of pending connections allowed before (64), and keep them there; a
/// validator restarted meanwhile still gets back in and catches up, because the flooders are
/// not configured peers' addresses and share their own slots (48), while 127.0.0.1, where
/// the validators' peers are configured, keeps its own. Before, nobody could complete a
/// handshake with a flooded validator: the restarted one stayed out.
#[test]
fn hosts_flooding_the_p2p_ports_with_handshakes_cannot_keep_a_validator_out() {
    let mut net = Localnet::start(4, 0, 2);
    let all = net.rpcs();
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let targets: Vec<std::net::SocketAddr> = (0..4)
        .map(|i| {
            let address = net.manifest["nodes"][i]["p2p_address"]
                .as_str()
                .expect("p2p address");
            let port = address
                .rsplit('/')
                .next()
                .and_then(|port| port.parse::<u16>().ok())
                .expect("a tcp port");
            std::net::SocketAddr::from(([127, 0, 0, 1], port))
        })
        .collect();
    net.terminate(3, Duration::from_secs(30));
    let sources = (2..=5)
        .map(|n| std::net::IpAddr::from([127, 0, 0, n]))
        .collect();
    let flood = HandshakeFlood::start(sources, targets, 16);
    // Every running validator's pending slots taken as far as the flood can take them: at
    // least the 48 unlisted sources may hold at each of the three.
    wait_for(
        Duration::from_secs(60),
        "the flood holding its connections",
        || flood.open() >= 3 * 48,
    );
    let height = status(&all[0]).expect("status").height;
    net.start_node(3);
    net.wait_height(&[3], height + 3, Duration::from_secs(90));
    // The others kept committing with it.
    net.wait_height(&[0, 1, 2, 3], height + 5, Duration::from_secs(60));
    // Not because the flood let go: it still holds its connections at every validator.
    wait_for(
        Duration::from_secs(30),
        "the flood still holding its connections at all four",
        || flood.open() >= 4 * 48,
    );
    drop(flood);
}
