//! `GET /v1/events` against real processes: a client that reconnects with `Last-Event-ID`
//! gets every later event exactly once, also after the node was killed and restarted.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use interpool_contracts::views::EventView;
use interpool_contracts::{Hash, SignedTransaction};

use crate::localnet::{account, submit_batch, transfer, wait_for, Localnet};

/// Reads SSE events (`id`, `data`) from `url` until `enough` says so or `deadline` passes.
pub(crate) fn read_events(
    url: &str,
    last_event_id: Option<&str>,
    deadline: Duration,
    mut enough: impl FnMut(&[(String, EventView)]) -> bool,
) -> Vec<(String, EventView)> {
    let http = crate::localnet::client_timeout(deadline);
    let mut request = http.get(url);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().expect("event stream");
    assert!(response.status().is_success(), "{}", response.status());
    let started = Instant::now();
    let mut events = Vec::new();
    let (mut id, mut data) = (None, String::new());
    for line in BufReader::new(response).lines() {
        let Ok(line) = line else { break };
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let event: EventView = serde_json::from_str(&data).expect("event json");
            events.push((id.take().expect("every event has an id"), event));
            data.clear();
            if enough(&events) {
                return events;
            }
        }
        assert!(
            started.elapsed() < deadline,
            "events stopped coming: {events:?}"
        );
    }
    events
}

fn tx_hash(event: &EventView) -> Option<Hash> {
    match event {
        EventView::Transaction { receipt, .. } => Some(receipt.tx_hash),
        _ => None,
    }
}

fn cursor(id: &str) -> (u64, u32) {
    let (h, i) = id.split_once(':').expect("height:index");
    (h.parse().expect("height"), i.parse().expect("index"))
}

#[test]
fn event_stream_resumes_exactly_once_across_a_restart() {
    let mut net = Localnet::start(4, 0, 2);
    let rpc = net.nodes[0].rpc.clone();
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let (key, payer) = net.account_key(0, 0);
    let payee = net.account_key(1, 0).1;
    let mut hashes = Vec::new();
    for round in 0..3u64 {
        let txs: Vec<SignedTransaction> = (round * 10..round * 10 + 10)
            .map(|nonce| transfer(&key, payee, nonce, 1))
            .collect();
        hashes.extend(submit_batch(&net.nodes[1].rpc, &txs, true));
        wait_for(Duration::from_secs(60), "the batch committed", || {
            account(&rpc, &payer).is_some_and(|a| a.nonce == round * 10 + 10)
        });
    }
    let all_seen = |events: &[(String, EventView)]| {
        hashes
            .iter()
            .all(|h| events.iter().any(|(_, e)| tx_hash(e) == Some(*h)))
    };

    // From the first block: every transfer exactly once, cursors strictly increasing.
    let url = format!("{rpc}/v1/events?account={payer}");
    let first = read_events(
        &format!("{url}&after=0:0"),
        None,
        Duration::from_secs(60),
        all_seen,
    );
    let ids: Vec<(u64, u32)> = first.iter().map(|(id, _)| cursor(id)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let ours: Vec<Hash> = first.iter().filter_map(|(_, e)| tx_hash(e)).collect();
    assert_eq!(ours.len(), hashes.len(), "each exactly once: {ours:?}");
    assert!(
        first.iter().all(|(_, e)| e.concerns(&payer)),
        "filtered by account"
    );

    // Kill and restart the node, then resume after the 12th event.
    net.kill(0);
    net.start_node(0);
    wait_for(Duration::from_secs(60), "the node serving again", || {
        account(&rpc, &payer).is_some()
    });
    let (resume_id, _) = &first[11];
    let rest = read_events(&url, Some(resume_id), Duration::from_secs(60), |events| {
        events.len() >= first.len() - 12
    });
    assert_eq!(
        rest.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        first[12..]
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        "no gap, no duplicate after {resume_id}"
    );
    assert_eq!(
        rest.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        first[12..]
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>()
    );

    // A bad cursor is refused with a specific error.
    let answer = crate::localnet::client()
        .get(&url)
        .header("Last-Event-ID", "yesterday")
        .send()
        .expect("request");
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().expect("json");
    assert_eq!(body["error"]["code"], "bad_cursor");
}

#[test]
fn a_node_with_open_event_streams_stops_promptly_on_sigterm() {
    let mut net = Localnet::start(4, 0, 2);
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let rpc = net.nodes[0].rpc.clone();
    // Clients that never hang up: a graceful shutdown must not wait for them.
    let streams: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{rpc}/v1/events?after=0:0");
            std::thread::spawn(move || {
                let http = crate::localnet::client_timeout(Duration::from_secs(60));
                if let Ok(response) = http.get(url).send() {
                    for line in BufReader::new(response).lines() {
                        if line.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    wait_for(Duration::from_secs(30), "the streams are open", || {
        crate::localnet::metric(&rpc, "interpool_event_streams") == Some(4)
    });
    let status = net.terminate(0, Duration::from_secs(15));
    assert!(status.success(), "a graceful stop exits 0, got {status}");
    for stream in streams {
        stream.join().expect("stream thread");
    }
    // The node starts again on its data and rejoins.
    net.start_node(0);
    let height = crate::localnet::status(&net.nodes[1].rpc)
        .expect("status")
        .height;
    net.wait_height(&[0], height, Duration::from_secs(120));
}
