//! Real nodes on 127.0.0.1 (tcp/0): every wait has a deadline; "never arrives" is checked
//! for a bounded time after a positive control that was sent later has arrived.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use interpool_contracts::testkit::key;
use interpool_contracts::AccountId;
use tokio::time::{timeout, timeout_at, Instant};

use super::*;

/// Deadline for anything that must happen.
const WAIT: Duration = Duration::from_secs(30);
/// How long "nothing else arrives" is watched after the positive control.
const QUIET: Duration = Duration::from_millis(750);
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

struct Node {
    id: AccountId,
    address: String,
    handle: P2pHandle,
    events: P2pEvents,
}

fn account(seed: u64) -> AccountId {
    AccountId(key(seed).verifying_key().to_bytes())
}

async fn node(seed: u64, allowed: &[u64], peers: &[&Node], max_message_bytes: usize) -> Node {
    let peers = peers.iter().map(|n| (n.id, n.address.clone())).collect();
    node_at(
        seed,
        allowed,
        peers,
        "/ip4/127.0.0.1/tcp/0",
        max_message_bytes,
    )
    .await
}

/// A node that follows blocks (an observer's network), dialing `peers`.
async fn follower(seed: u64, allowed: &[u64], peers: &[&Node]) -> Node {
    let peers = peers.iter().map(|n| (n.id, n.address.clone())).collect();
    start_node(
        seed,
        allowed,
        peers,
        "/ip4/127.0.0.1/tcp/0",
        MAX_MESSAGE_BYTES,
        true,
    )
    .await
}

async fn node_at(
    seed: u64,
    allowed: &[u64],
    peers: Vec<(AccountId, String)>,
    listen: &str,
    max_message_bytes: usize,
) -> Node {
    start_node(seed, allowed, peers, listen, max_message_bytes, false).await
}

async fn start_node(
    seed: u64,
    allowed: &[u64],
    peers: Vec<(AccountId, String)>,
    listen: &str,
    max_message_bytes: usize,
    follow_blocks: bool,
) -> Node {
    start_node_voting(
        seed,
        allowed,
        allowed,
        peers,
        listen,
        max_message_bytes,
        follow_blocks,
    )
    .await
}

/// A node that accepts consensus messages only from `validators`.
async fn start_node_voting(
    seed: u64,
    allowed: &[u64],
    validators: &[u64],
    peers: Vec<(AccountId, String)>,
    listen: &str,
    max_message_bytes: usize,
    follow_blocks: bool,
) -> Node {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let settings = P2pSettings {
        secret_key: key(seed).to_bytes(),
        listen: listen.into(),
        peers,
        allowed: allowed.iter().copied().map(account).collect(),
        consensus_peers: validators.iter().copied().map(account).collect(),
        network_id: "test-chain-0123456789abcdef".into(),
        follow_blocks,
        unframed_writes: false,
        max_message_bytes,
    };
    let (handle, events) = start(settings).await.expect("start");
    let address = handle.listen_address().await.expect("listen address");
    assert!(!address.ends_with("/tcp/0"), "tcp/0 resolved: {address}");
    assert_eq!(handle.local_id(), account(seed));
    Node {
        id: account(seed),
        address,
        handle,
        events,
    }
}

/// Receives events until `pick` returns something, within [`WAIT`].
async fn next<T>(node: &mut Node, what: &str, mut pick: impl FnMut(P2pEvent) -> Option<T>) -> T {
    let found = timeout(WAIT, async {
        loop {
            let event = node.events.recv().await.expect("event channel open");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `condition` until it holds, within [`WAIT`].
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Watches `node`'s events for [`QUIET`], failing on any that `forbidden` flags.
async fn assert_quiet(node: &mut Node, forbidden: impl Fn(&P2pEvent) -> bool) {
    let deadline = Instant::now() + QUIET;
    while let Ok(Some(event)) = timeout_at(deadline, node.events.recv()).await {
        assert!(!forbidden(&event), "unexpected event {event:?}");
    }
}

async fn wait_gossip_peers(node: &Node, expected: &[AccountId]) {
    let expected: BTreeSet<AccountId> = expected.iter().copied().collect();
    wait_until("gossip subscriptions are known", || async {
        let peers: BTreeSet<AccountId> = node.handle.gossip_peers().await.into_iter().collect();
        expected.is_subset(&peers)
    })
    .await;
}

/// A, B, C all allowed; B dials A, C dials A and B; returns once each saw the others connect
/// and subscribe to the transaction topic.
async fn three_nodes(seeds: [u64; 3]) -> (Node, Node, Node) {
    let a = node(seeds[0], &seeds, &[], MAX_MESSAGE_BYTES).await;
    let b = node(seeds[1], &seeds, &[&a], MAX_MESSAGE_BYTES).await;
    let c = node(seeds[2], &seeds, &[&a, &b], MAX_MESSAGE_BYTES).await;
    let mut nodes = [a, b, c];
    let ids: Vec<AccountId> = nodes.iter().map(|n| n.id).collect();
    for n in nodes.iter_mut() {
        let mut connected = BTreeSet::new();
        let others: BTreeSet<AccountId> = ids.iter().copied().filter(|id| *id != n.id).collect();
        while connected != others {
            let peer = next(n, "peer connected", |e| match e {
                P2pEvent::PeerConnected(peer) => Some(peer),
                _ => None,
            })
            .await;
            connected.insert(peer);
        }
        assert_eq!(
            n.handle.connected_peers().await,
            others.iter().copied().collect::<Vec<_>>()
        );
    }
    for n in &nodes {
        let others: Vec<AccountId> = ids.iter().copied().filter(|id| *id != n.id).collect();
        wait_gossip_peers(n, &others).await;
    }
    let [a, b, c] = nodes;
    (a, b, c)
}

fn transactions(e: P2pEvent) -> Option<(AccountId, GossipId, Vec<u8>)> {
    match e {
        P2pEvent::Transactions { from, id, bytes } => Some((from, id, bytes)),
        _ => None,
    }
}

fn announcements(e: P2pEvent) -> Option<(AccountId, GossipId, Vec<u8>)> {
    match e {
        P2pEvent::BlockAnnounced { from, id, bytes } => Some((from, id, bytes)),
        _ => None,
    }
}

fn consensus(e: P2pEvent) -> Option<(AccountId, Vec<u8>)> {
    match e {
        P2pEvent::Consensus { from, bytes } => Some((from, bytes)),
        _ => None,
    }
}

#[tokio::test]
async fn gossip_reaches_every_allowed_peer_and_invalid_gossip_costs_score() {
    let (a, mut b, mut c) = three_nodes([11, 12, 13]).await;
    a.handle
        .publish_transactions(b"batch of transfers".to_vec());
    let b_id = b.id;
    for n in [&mut b, &mut c] {
        let (from, id, bytes) = next(n, "the gossiped batch", transactions).await;
        assert_eq!(from, a.id);
        assert_eq!(bytes, b"batch of transfers");
        // B finds it valid, C does not: only C penalizes A.
        let valid = n.id == b_id;
        n.handle.report_gossip(id, valid);
    }
    // Commands are handled in order, so the reports are in before the score is read.
    let at_c = c.handle.gossip_score(a.id).await.expect("C scores A");
    assert!(at_c < 0.0, "C's score of A after an invalid batch: {at_c}");
    let at_b = b.handle.gossip_score(a.id).await.expect("B scores A");
    assert!(at_b >= 0.0, "B's score of A after a valid batch: {at_b}");
    assert_eq!(a.handle.stats().publish_failures, 0);
}

#[tokio::test]
async fn consensus_messages_go_to_one_peer_or_all() {
    let (mut a, mut b, c) = three_nodes([21, 22, 23]).await;
    a.handle.send_consensus(b.id, b"prepare h=1".to_vec());
    let (from, bytes) = next(&mut b, "the direct consensus message", consensus).await;
    assert_eq!((from, bytes.as_slice()), (a.id, &b"prepare h=1"[..]));

    c.handle.broadcast_consensus(b"commit h=1".to_vec());
    for n in [&mut a, &mut b] {
        let (from, bytes) = next(n, "the broadcast consensus message", consensus).await;
        assert_eq!((from, bytes.as_slice()), (c.id, &b"commit h=1"[..]));
    }
    // A burst goes out in few writes on the same stream, and arrives whole and in order.
    let burst: Vec<Vec<u8>> = (0..100u32)
        .map(|i| i.to_be_bytes().repeat(1 + i as usize % 7))
        .collect();
    for message in &burst {
        a.handle.send_consensus(b.id, message.clone());
    }
    for message in &burst {
        let (from, bytes) = next(&mut b, "the burst, in order", consensus).await;
        assert_eq!((from, &bytes), (a.id, message));
    }
    assert_eq!(c.handle.stats().send_failures, 0);
    assert_eq!(a.handle.stats().send_failures, 0);
}

#[tokio::test]
async fn consensus_messages_from_non_validators_are_refused_before_they_take_a_slot() {
    // 26 and 27 vote; 28 is allowed to connect (an observer) but not to vote.
    let seeds = [26, 27, 28];
    let listen = "/ip4/127.0.0.1/tcp/0";
    let mut validator = start_node_voting(
        26,
        &seeds,
        &[26, 27],
        vec![],
        listen,
        MAX_MESSAGE_BYTES,
        false,
    )
    .await;
    let peers = vec![(validator.id, validator.address.clone())];
    let other = start_node(27, &seeds, peers.clone(), listen, MAX_MESSAGE_BYTES, false).await;
    let observer = start_node(28, &seeds, peers, listen, MAX_MESSAGE_BYTES, true).await;
    wait_until("both connected", || async {
        validator.handle.connected_peers().await.len() == 2
    })
    .await;
    for _ in 0..100 {
        observer
            .handle
            .send_consensus(validator.id, b"forged vote".to_vec());
    }
    wait_until("the observer's frames are refused", || async {
        validator.handle.stats().consensus_refused >= 100
    })
    .await;
    other
        .handle
        .send_consensus(validator.id, b"a validator's vote".to_vec());
    let (from, bytes) = next(&mut validator, "the validator's message", consensus).await;
    assert_eq!(
        (from, bytes.as_slice()),
        (other.id, &b"a validator's vote"[..])
    );
    assert_quiet(
        &mut validator,
        |e| matches!(e, P2pEvent::Consensus { from, .. } if *from == observer.id),
    )
    .await;
    assert_eq!(validator.handle.stats().consensus_dropped, 0);
}

#[tokio::test]
async fn sync_request_round_trip() {
    let (a, mut b, _c) = three_nodes([31, 32, 33]).await;
    let b_id = b.id;
    let answered = async {
        let (from, bytes, respond) = next(&mut b, "the sync request", |e| match e {
            P2pEvent::SyncRequest {
                from,
                bytes,
                respond,
            } => Some((from, bytes, respond)),
            _ => None,
        })
        .await;
        assert_eq!(from, a.id);
        let mut answer = b"blocks for ".to_vec();
        answer.extend_from_slice(&bytes);
        respond.send(answer).expect("responder open");
    };
    let (response, ()) = tokio::join!(a.handle.request(b_id, b"from height 5".to_vec()), answered);
    assert_eq!(
        response.expect("sync response"),
        b"blocks for from height 5"
    );

    // A responder dropped without an answer tells the requester "unavailable", at once.
    let dropped = async {
        next(&mut b, "the second sync request", |e| match e {
            P2pEvent::SyncRequest { respond, .. } => {
                drop(respond);
                Some(())
            }
            _ => None,
        })
        .await
    };
    let (response, ()) = tokio::join!(a.handle.request(b_id, b"again".to_vec()), dropped);
    assert!(
        matches!(response, Err(P2pError::PeerUnavailable)),
        "{response:?}"
    );

    let stranger = account(39);
    let refused = a.handle.request(stranger, b"x".to_vec()).await;
    assert!(
        matches!(refused, Err(P2pError::UnknownPeer(k)) if k == stranger),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_key_outside_the_allowed_set_gets_no_connection_and_no_message_in() {
    let allowed = [41, 42];
    let mut a = node(41, &allowed, &[], MAX_MESSAGE_BYTES).await;
    let mut b = node(42, &allowed, &[&a], MAX_MESSAGE_BYTES).await;
    next(&mut b, "B connected to A", |e| {
        matches!(e, P2pEvent::PeerConnected(k) if k == account(41)).then_some(())
    })
    .await;
    wait_gossip_peers(&b, &[a.id]).await;

    // The stranger allows everyone and dials both; they must refuse it.
    let mut x = node(49, &[41, 42, 49], &[&a, &b], MAX_MESSAGE_BYTES).await;
    wait_until("A and B refused the stranger", || async {
        a.handle.stats().connections_refused >= 1 && b.handle.stats().connections_refused >= 1
    })
    .await;
    x.handle.publish_transactions(b"forged batch".to_vec());
    x.handle.send_consensus(a.id, b"fake prepare".to_vec());
    x.handle.send_consensus(b.id, b"fake prepare".to_vec());
    x.handle.broadcast_consensus(b"fake commit".to_vec());
    let request = x.handle.request(a.id, b"sync?".to_vec()).await;
    assert!(
        request.is_err(),
        "the stranger got a sync answer: {request:?}"
    );

    // Positive control, sent after the stranger's attempts: A → B arrives.
    a.handle.send_consensus(b.id, b"control".to_vec());
    a.handle.publish_transactions(b"control batch".to_vec());
    let stranger = x.id;
    let from_stranger = move |e: &P2pEvent| match e {
        P2pEvent::PeerConnected(k) | P2pEvent::PeerDisconnected(k) => *k == stranger,
        P2pEvent::Transactions { from, .. }
        | P2pEvent::BlockAnnounced { from, .. }
        | P2pEvent::Consensus { from, .. }
        | P2pEvent::SyncRequest { from, .. } => *from == stranger,
    };
    let mut got_consensus = false;
    let mut got_gossip = false;
    while !(got_consensus && got_gossip) {
        let event = next(&mut b, "the control messages", Some).await;
        assert!(!from_stranger(&event), "B let the stranger in: {event:?}");
        match event {
            P2pEvent::Consensus { from, bytes } if from == a.id && bytes == b"control" => {
                got_consensus = true
            }
            P2pEvent::Transactions { from, bytes, .. }
                if from == a.id && bytes == b"control batch" =>
            {
                got_gossip = true
            }
            _ => {}
        }
    }
    assert_quiet(&mut b, from_stranger).await;
    assert_quiet(&mut a, from_stranger).await;
    assert!(!a.handle.connected_peers().await.contains(&stranger));
    assert!(!b.handle.connected_peers().await.contains(&stranger));
    // The stranger's side: nothing from A or B may reach it either way (they never speak).
    assert_quiet(&mut x, |e| {
        matches!(
            e,
            P2pEvent::Transactions { .. } | P2pEvent::Consensus { .. }
        )
    })
    .await;
}

#[tokio::test]
async fn messages_over_the_limit_are_refused_without_delivery() {
    const SMALL: usize = 1024;
    let seeds = [51, 52, 53];
    // A and C accept large messages; B (the receiver under test) only small ones.
    let mut a = node(51, &seeds, &[], MAX_MESSAGE_BYTES).await;
    let mut c = node(53, &seeds, &[], MAX_MESSAGE_BYTES).await;
    let mut b = node(52, &seeds, &[&a, &c], SMALL).await;
    for n in [&mut a, &mut c] {
        next(n, "B connected", |e| {
            matches!(e, P2pEvent::PeerConnected(k) if k == account(52)).then_some(())
        })
        .await;
    }
    wait_gossip_peers(&a, &[b.id]).await;
    wait_gossip_peers(&c, &[b.id]).await;
    wait_gossip_peers(&b, &[a.id, c.id]).await;

    // Refused locally: B never sends what it could not accept itself.
    b.handle.send_consensus(a.id, vec![0; SMALL + 1]);
    b.handle.publish_transactions(vec![0; SMALL + 1]);
    let local = b.handle.request(a.id, vec![0; SMALL + 1]).await;
    assert!(
        matches!(local, Err(P2pError::TooLarge { bytes, max: SMALL }) if bytes == SMALL + 1),
        "{local:?}"
    );
    let stats = b.handle.stats();
    assert_eq!((stats.send_failures, stats.publish_failures), (1, 1));

    // Refused by the receiver: A's limit lets these out, B's codec stops them.
    let big = vec![7u8; 8 * SMALL];
    a.handle.send_consensus(b.id, big.clone());
    a.handle.publish_transactions(big.clone());
    // B reads the consensus frame's length prefix, refuses it and drops A's stream.
    wait_until("B refused A's oversized consensus frame", || async {
        b.handle.stats().frames_refused >= 1
    })
    .await;

    // Positive controls sent afterwards arrive; the big ones never do.
    a.handle.send_consensus(b.id, b"small".to_vec());
    c.handle.publish_transactions(b"small batch".to_vec());
    let mut got_consensus = false;
    let mut got_gossip = false;
    while !(got_consensus && got_gossip) {
        let event = next(&mut b, "the small messages", Some).await;
        match event {
            P2pEvent::Consensus { from, bytes } => {
                assert_eq!((from, bytes.as_slice()), (a.id, &b"small"[..]));
                got_consensus = true;
            }
            P2pEvent::Transactions { from, bytes, .. } => {
                assert_eq!((from, bytes.as_slice()), (c.id, &b"small batch"[..]));
                got_gossip = true;
            }
            _ => {}
        }
    }
    assert_quiet(&mut b, |e| match e {
        P2pEvent::Consensus { bytes, .. } | P2pEvent::Transactions { bytes, .. } => {
            bytes.len() > SMALL
        }
        _ => false,
    })
    .await;
}

#[tokio::test]
async fn configured_peers_are_redialed_until_they_come_up_and_after_they_drop() {
    let seeds = [71, 72];
    // A free port for B, which starts only after A has failed to reach it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let b_address = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut a = node_at(
        71,
        &seeds,
        vec![(account(72), b_address.clone())],
        "/ip4/127.0.0.1/tcp/0",
        1024,
    )
    .await;
    wait_until("A failed to dial B twice", || async {
        a.handle.stats().dial_failures >= 2
    })
    .await;
    let mut b = node_at(72, &seeds, Vec::new(), &b_address, 1024).await;
    let b_id = b.id;
    next(&mut a, "A reached B", |e| {
        matches!(e, P2pEvent::PeerConnected(k) if k == b_id).then_some(())
    })
    .await;
    // A consensus stream to B opens with the first message.
    a.handle.send_consensus(b_id, b"before".to_vec());
    let (from, bytes) = next(&mut b, "the first consensus message", consensus).await;
    assert_eq!((from, bytes.as_slice()), (a.id, &b"before"[..]));

    // B goes away (its last handle dropped stops its task and closes its connections) and
    // comes back on the same address: A notices and redials.
    drop(b);
    next(&mut a, "A saw B go", |e| {
        matches!(e, P2pEvent::PeerDisconnected(k) if k == b_id).then_some(())
    })
    .await;
    assert!(a.handle.connected_peers().await.is_empty());
    let mut b = node_at(72, &seeds, Vec::new(), &b_address, 1024).await;
    next(&mut a, "A reached B again", |e| {
        matches!(e, P2pEvent::PeerConnected(k) if k == b_id).then_some(())
    })
    .await;
    // The old stream went with the old connection: the next message takes a new one.
    a.handle.send_consensus(b_id, b"after".to_vec());
    let (from, bytes) = next(&mut b, "the consensus message after the redial", consensus).await;
    assert_eq!((from, bytes.as_slice()), (a.id, &b"after"[..]));
    assert_eq!(a.handle.stats().send_failures, 0);
}

#[tokio::test]
async fn a_full_queue_drops_its_own_kind_only_and_a_full_sync_queue_answers_busy() {
    let seeds = [81, 82];
    let a = node(81, &seeds, &[], 1024).await;
    // B reads nothing but what the test takes from its sync queue.
    let mut b = node(82, &seeds, &[&a], 1024).await;
    wait_until("A and B connected", || async {
        a.handle.connected_peers().await == vec![b.id]
    })
    .await;
    wait_until("B's consensus queue overflowed", || async {
        for _ in 0..256 {
            a.handle.send_consensus(b.id, b"prepare".to_vec());
        }
        b.handle.stats().consensus_dropped >= 1
    })
    .await;
    // The swarm kept running, and sync requests have their own queue: one still reaches B's
    // application. The flood may have exhausted the connection's yamux streams and closed
    // it; it is redialed, so a request that failed on the way is asked again.
    let mut held = Vec::new();
    let deadline = Instant::now() + WAIT;
    let asking = {
        let handle = a.handle.clone();
        let to = b.id;
        tokio::spawn(async move {
            loop {
                match handle.request(to, b"blocks?".to_vec()).await {
                    Err(P2pError::Failed(_) | P2pError::NotConnected(_))
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => return other,
                }
            }
        })
    };
    match timeout(WAIT, b.events.sync.recv()).await {
        Ok(Some(event @ P2pEvent::SyncRequest { .. })) => held.push(event),
        other => panic!("the sync request did not reach B past a full consensus queue: {other:?}"),
    }
    // Now fill B's sync queue: beyond its capacity, requests get a prompt, explicit "busy".
    let flood: Vec<_> = (0..SYNC_QUEUE_CAPACITY + 16)
        .map(|_| {
            let handle = a.handle.clone();
            let to = b.id;
            tokio::spawn(async move { handle.request(to, b"blocks?".to_vec()).await })
        })
        .collect();
    wait_until("a sync request was answered busy", || async {
        b.handle.stats().sync_busy >= 1
    })
    .await;
    let mut busy = 0;
    for request in flood {
        if let Ok(Ok(Err(P2pError::PeerBusy))) = timeout(WAIT, request).await {
            busy += 1;
        }
    }
    assert!(busy >= 1, "no request was answered busy");
    drop(held);
    asking.abort();
}

#[test]
fn sync_responses_carry_a_status() {
    assert_eq!(
        decode_sync_response(vec![SYNC_OK, 1, 2]).expect("ok"),
        vec![1, 2]
    );
    assert_eq!(
        decode_sync_response(vec![SYNC_OK]).expect("ok"),
        Vec::<u8>::new()
    );
    assert!(matches!(
        decode_sync_response(vec![SYNC_BUSY]),
        Err(P2pError::PeerBusy)
    ));
    assert!(matches!(
        decode_sync_response(vec![SYNC_UNAVAILABLE]),
        Err(P2pError::PeerUnavailable)
    ));
    assert!(matches!(
        decode_sync_response(vec![]),
        Err(P2pError::Failed(_))
    ));
    assert!(matches!(
        decode_sync_response(vec![9]),
        Err(P2pError::Failed(_))
    ));
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let base = P2pSettings {
        secret_key: key(61).to_bytes(),
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        peers: Vec::new(),
        allowed: vec![account(61)],
        consensus_peers: vec![account(61)],
        network_id: "n".into(),
        max_message_bytes: 1024,
        follow_blocks: false,
        unframed_writes: false,
    };
    let bad_listen = P2pSettings {
        listen: "not a multiaddr".into(),
        ..base.clone()
    };
    assert!(matches!(
        start(bad_listen).await,
        Err(P2pError::InvalidAddress { .. })
    ));
    let bad_peer = P2pSettings {
        peers: vec![(account(62), "/ip4/127.0.0.1/tcp/1/garbage".into())],
        ..base.clone()
    };
    assert!(matches!(
        start(bad_peer).await,
        Err(P2pError::InvalidAddress { .. })
    ));
    // Not every 32-byte string is a point on the curve.
    let not_a_key = (0u8..=255)
        .map(|b| AccountId([b; 32]))
        .find(|k| peer_id_of(k).is_err())
        .expect("some byte pattern is not a valid ed25519 key");
    let bad_allowed = P2pSettings {
        allowed: vec![not_a_key],
        ..base
    };
    assert!(matches!(start(bad_allowed).await, Err(P2pError::InvalidPeerKey(k)) if k == not_a_key));
}

#[tokio::test]
async fn a_port_in_use_is_refused_with_the_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("local address").port();
    let settings = P2pSettings {
        secret_key: key(63).to_bytes(),
        listen: format!("/ip4/127.0.0.1/tcp/{port}"),
        peers: Vec::new(),
        allowed: vec![account(63)],
        consensus_peers: vec![account(63)],
        network_id: "n".into(),
        max_message_bytes: 1024,
        follow_blocks: false,
        unframed_writes: false,
    };
    match start(settings).await {
        Err(error @ P2pError::Listen { .. }) => {
            let text = error.to_string();
            assert!(
                text.to_lowercase().contains("address already in use")
                    || text.to_lowercase().contains("addrinuse"),
                "the operator is told why: {text}"
            );
        }
        Err(other) => panic!("expected a listen error, got {other}"),
        Ok(_) => panic!("listening on a taken port succeeded"),
    }
}

#[tokio::test]
async fn block_announcements_reach_followers_and_no_one_else_and_transactions_no_follower() {
    let seeds = [81, 82, 83];
    let mut validator = node(81, &seeds, &[], MAX_MESSAGE_BYTES).await;
    let mut other_validator = node(82, &seeds, &[&validator], MAX_MESSAGE_BYTES).await;
    let mut observer = follower(83, &seeds, &[&validator]).await;

    // Without a follower yet, announcing is not a failure: there is nobody to tell.
    validator.handle.announce_block(b"height 1".to_vec());
    // The follower's subscription reaches the validator some time after the connection:
    // announce until the follower hears one.
    let deadline = Instant::now() + WAIT;
    let (from, id, bytes) = loop {
        validator.handle.announce_block(b"height 2".to_vec());
        if let Ok(Some(event)) = timeout(Duration::from_millis(100), async {
            loop {
                match observer.events.recv().await {
                    Some(event) => {
                        if let Some(found) = announcements(event) {
                            return Some(found);
                        }
                    }
                    None => return None,
                }
            }
        })
        .await
        {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never heard an announcement"
        );
    };
    assert_eq!((from, bytes.as_slice()), (validator.id, &b"height 2"[..]));
    observer.handle.report_gossip(id, true);
    assert_eq!(validator.handle.stats().publish_failures, 0);

    // Positive control first, then nothing but transactions reach a non-follower: the
    // other validator gets the transaction batch published after the announcements, and no
    // announcement, and the validator never hears the follower's announcements back.
    wait_gossip_peers(&validator, &[other_validator.id]).await;
    validator
        .handle
        .publish_transactions(b"after the announcements".to_vec());
    let (_, id, _) = next(&mut other_validator, "the batch", |e| match e {
        P2pEvent::BlockAnnounced { .. } => panic!("a validator got a block announcement"),
        P2pEvent::Transactions { id, bytes, .. } if bytes == b"after the announcements" => {
            Some(((), id, bytes))
        }
        _ => None,
    })
    .await;
    other_validator.handle.report_gossip(id, true);
    assert_quiet(&mut other_validator, |e| {
        matches!(e, P2pEvent::BlockAnnounced { .. })
    })
    .await;
    // A follower takes no transactions from gossip: it proposes nothing and accepts no
    // writes, so checking them would be wasted (they reach it inside blocks).
    assert_quiet(&mut observer, |e| {
        matches!(e, P2pEvent::Transactions { .. })
    })
    .await;
    assert_quiet(&mut validator, |e| {
        matches!(e, P2pEvent::BlockAnnounced { .. })
    })
    .await;
}
