//! Who may read what, against real nodes over TLS (the access table of ADR 0014):
//!
//! * every role on one localnet after a transfer from customer A1 (bank A) to customer B1
//!   (bank B): the customers read their own account and the transactions they are a party
//!   to, another customer of the same bank reads none of it, bank A's operator reads bank
//!   A's accounts, bank and statement but not bank B's nor blocks, the regulator, the
//!   authority and a node read everything, and an anonymous client reads only status,
//!   health and the OpenAPI document (and may still submit signed transactions); the event
//!   stream is filtered or refused likewise;
//! * signed requests: a replayed nonce, a stale or future timestamp, a signature for another
//!   path, an incomplete or malformed set of headers, and a key the chain does not know are
//!   each refused with their own code;
//! * `/metrics` on a node that does not serve it to loopback: refused anonymously (401) and
//!   to a customer, an operator and the authority (403), served to the regulator and a node;
//!   a default node serves it anonymously from loopback;
//! * TLS: plain HTTP to a node's port gets no data; the wallet refuses a node whose
//!   certificate is not from the CA it was given, and reads with the consortium's CA.
//!
//! Every answer is checked by its status and its error `code`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::{EventView, TxStatus};
use interpool_contracts::Hash;
use interpool_tests::{run, run_with_env, Finished};
use serde_json::{json, Value};

use crate::localnet::{
    client, now_ms, path, sign_headers, transfer, tx_status, wait_for, Localnet, Options, CHAIN_ID,
};

/// How long one request may take (a proof waits up to 10 s for its certifying block).
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// How long an event stream may take to deliver what a test waits for.
const STREAM_DEADLINE: Duration = Duration::from_secs(60);

/// Who sends a request: a name for failure messages and the key that signs it (none: an
/// anonymous request, without any `x-interpool-*` header).
#[derive(Clone, Copy)]
struct Caller<'a> {
    name: &'static str,
    key: Option<&'a SigningKey>,
}

/// No credentials at all.
const ANONYMOUS: Caller<'static> = Caller {
    name: "anonymous",
    key: None,
};

impl<'a> Caller<'a> {
    /// A caller that signs its requests with `key`.
    fn signing(name: &'static str, key: &'a SigningKey) -> Self {
        Caller {
            name,
            key: Some(key),
        }
    }

    /// Sends `GET {rpc}{route}` as this caller.
    fn send(
        &self,
        rpc: &str,
        route: &str,
        deadline: Duration,
    ) -> reqwest::Result<reqwest::blocking::Response> {
        let request = client().get(format!("{rpc}{route}")).timeout(deadline);
        match self.key {
            Some(key) => request.signed_by(key),
            None => request.anonymous(),
        }
        .send()
    }

    /// `GET {rpc}{route}`: the status and the body (see [`answer`]).
    fn get(&self, rpc: &str, route: &str) -> (u16, Value) {
        answer(
            &format!("{} GET {route}", self.name),
            self.send(rpc, route, REQUEST_DEADLINE),
        )
    }

    /// `GET {rpc}{route}`, which must be answered 200; the body.
    fn ok(&self, rpc: &str, route: &str) -> Value {
        let (status, body) = self.get(rpc, route);
        assert_eq!(status, 200, "{} GET {route}: {body}", self.name);
        body
    }

    /// `GET {rpc}{route}`, which must be refused with `status` and error `code`.
    fn refused(&self, rpc: &str, route: &str, status: u16, code: &str) {
        assert_error(
            &format!("{} GET {route}", self.name),
            self.get(rpc, route),
            status,
            code,
        );
    }

    /// Reads the event stream `GET {rpc}{route}` (which must be answered 200) until
    /// `enough` says so; fails the test if that takes longer than [`STREAM_DEADLINE`].
    fn events(
        &self,
        rpc: &str,
        route: &str,
        mut enough: impl FnMut(&[EventView]) -> bool,
    ) -> Vec<EventView> {
        let what = format!("{} GET {route}", self.name);
        let response = self
            .send(rpc, route, STREAM_DEADLINE)
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().unwrap_or_default();
            panic!("{what}: answered {status}, not a stream: {body}");
        }
        let started = Instant::now();
        let mut events = Vec::new();
        let mut data = String::new();
        for line in BufReader::new(response).lines() {
            let line = line.unwrap_or_else(|e| {
                panic!(
                    "{what}: the stream broke (deadline {STREAM_DEADLINE:?}) after {events:?}: {e}"
                )
            });
            if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            } else if line.is_empty() && !data.is_empty() {
                let event: EventView = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("{what}: not an event ({e}): {data}"));
                events.push(event);
                data.clear();
                if enough(&events) {
                    return events;
                }
            }
            assert!(
                started.elapsed() < STREAM_DEADLINE,
                "{what}: not what the test waits for within {STREAM_DEADLINE:?}: {events:?}"
            );
        }
        panic!("{what}: the stream ended after {events:?}");
    }
}

/// The status and body of an answer: its JSON, or its text as a JSON string (Prometheus
/// text, XML). The body of an event stream is not read (it does not end).
fn answer(what: &str, sent: reqwest::Result<reqwest::blocking::Response>) -> (u16, Value) {
    let response = sent.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = response.status().as_u16();
    let stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if stream {
        return (status, Value::String("<an event stream>".into()));
    }
    let text = response
        .text()
        .unwrap_or_else(|e| panic!("{what}: unreadable body: {e}"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts that an answer is the refusal `status` with error `code` and a message.
fn assert_error(what: &str, (got, body): (u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{what}: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{what}: a refusal says why: {body}"
    );
}

/// `GET {rpc}{route}` with exactly `headers` as credentials (crafted with
/// [`sign_headers`]; the client adds none of its own).
fn get_with(rpc: &str, route: &str, headers: &[(&'static str, String)]) -> (u16, Value) {
    let mut request = client()
        .get(format!("{rpc}{route}"))
        .timeout(REQUEST_DEADLINE)
        .anonymous();
    for (name, value) in headers {
        request = request.header(name, value.clone());
    }
    answer(&format!("crafted GET {route}"), request.send())
}

/// Whether `event` is the inclusion of transaction `hash`.
fn is_transaction(event: &EventView, hash: &Hash) -> bool {
    matches!(event, EventView::Transaction { receipt, .. } if receipt.tx_hash == *hash)
}

/// The banks of a cycle report's lines, in order.
fn report_banks(report: &Value) -> Vec<String> {
    report["banks"]
        .as_array()
        .unwrap_or_else(|| panic!("a cycle report lists banks: {report}"))
        .iter()
        .map(|line| line["bank"].as_str().expect("a line's bank").to_string())
        .collect()
}

/// The ids in a `GET /v1/banks` answer, in order.
fn bank_ids(banks: &Value) -> Vec<String> {
    banks
        .as_array()
        .unwrap_or_else(|| panic!("a list of banks: {banks}"))
        .iter()
        .map(|bank| bank["id"].as_str().expect("a bank's id").to_string())
        .collect()
}

/// A text field of the manifest, e.g. a bank id or a key file (relative to the localnet's
/// folder).
fn manifest_text(field: &Value, what: &str) -> String {
    field
        .as_str()
        .unwrap_or_else(|| panic!("the manifest has no {what}: {field}"))
        .to_string()
}

/// The key of the file the manifest names at `field` (`regulator_key_file`, a bank's
/// `operator_key_file`, ...).
fn manifest_key(net: &Localnet, field: &Value, what: &str) -> ed25519_dalek::SigningKey {
    net.key(&manifest_text(field, what))
}

/// The regulator's, the authority's and the first node's keys.
fn all_seeing_keys(
    net: &Localnet,
) -> (
    ed25519_dalek::SigningKey,
    ed25519_dalek::SigningKey,
    ed25519_dalek::SigningKey,
) {
    (
        manifest_key(
            net,
            &net.manifest["regulator_key_file"],
            "regulator key file",
        ),
        manifest_key(
            net,
            &net.manifest["authority_key_file"],
            "authority key file",
        ),
        net.key(&format!("{}/node-key.json", net.nodes[0].name)),
    )
}

#[test]
fn each_role_reads_only_its_own_data_and_signed_requests_cannot_be_replayed_or_forged() {
    // One validator (access needs no quorum) and cycles of 10 blocks, so that a cycle report
    // and the banks' statements exist within seconds.
    let options = Options {
        genesis_args: ["--cycle-blocks", "10"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..Options::default()
    };
    let mut net = Localnet::generate(1, 0, 2, &options);
    net.start_all();
    net.wait_height(&[0], 1, Duration::from_secs(60));
    let rpc = net.nodes[0].rpc.clone();
    assert!(rpc.starts_with("https://"), "a localnet serves TLS: {rpc}");

    // The keys of every role.
    let (a1_key, a1) = net.account_key(0, 0);
    let (a2_key, a2) = net.account_key(0, 1);
    let (b1_key, b1) = net.account_key(1, 0);
    let bank_a = manifest_text(&net.manifest["banks"][0]["id"], "bank id");
    let bank_b = manifest_text(&net.manifest["banks"][1]["id"], "bank id");
    let operator_key = |bank: usize| {
        manifest_key(
            &net,
            &net.manifest["banks"][bank]["operator_key_file"],
            "operator key file",
        )
    };
    let (operator_a_key, operator_b_key) = (operator_key(0), operator_key(1));
    let (regulator_key, authority_key, node_key) = all_seeing_keys(&net);
    let customer_a1 = Caller::signing("customer A1", &a1_key);
    let customer_a2 = Caller::signing("customer A2", &a2_key);
    let customer_b1 = Caller::signing("customer B1", &b1_key);
    let operator_a = Caller::signing("operator of bank A", &operator_a_key);
    let operator_b = Caller::signing("operator of bank B", &operator_b_key);
    let regulator = Caller::signing("regulator", &regulator_key);
    let authority = Caller::signing("authority", &authority_key);
    let node = Caller::signing("validator-0", &node_key);

    // A1 pays B1; the signed transaction is submitted anonymously (its signature is the
    // authority for a write).
    let tx = transfer(&a1_key, b1, 0, 100);
    let hash = tx.hash();
    let submitted = client()
        .post(format!("{rpc}/v1/transactions"))
        .timeout(REQUEST_DEADLINE)
        .anonymous()
        .json(&json!({ "tx": to_hex(&tx.encode()) }))
        .send();
    let (status, body) = answer("anonymous POST /v1/transactions", submitted);
    assert_eq!(status, 202, "an anonymous submission is accepted: {body}");
    wait_for(Duration::from_secs(60), "the transfer committed", || {
        tx_status(&rpc, &hash).is_some_and(|view| view.status == TxStatus::Committed)
    });
    // The first cycle closes, and its statements are written.
    wait_for(Duration::from_secs(60), "the first cycle closed", || {
        regulator.get(&rpc, "/v1/cycles/latest").0 == 200
    });
    let statement_a = format!("/v1/banks/{bank_a}/statements/latest");
    let statement_b = format!("/v1/banks/{bank_b}/statements/latest");
    for statement in [&statement_a, &statement_b] {
        // 503 `statement_pending` while the node writes them.
        wait_for(Duration::from_secs(60), "the statements written", || {
            regulator.get(&rpc, statement).0 != 503
        });
    }

    let account_a1 = format!("/v1/accounts/{a1}");
    let history_a1 = format!("/v1/accounts/{a1}/transactions");
    let proof_a1 = format!("/v1/accounts/{a1}/proof");
    let signer_a1 = format!("/v1/signers/{a1}");
    let account_a2 = format!("/v1/accounts/{a2}");
    let account_b1 = format!("/v1/accounts/{b1}");
    let signer_b1 = format!("/v1/signers/{b1}");
    let the_tx = format!("/v1/transactions/{hash}");
    // Its pacs.002 status: `transfer` gives nonce 0 the end-to-end id NET-0. Read "as the
    // transaction", with the debtor named or not: a payee finds its own transfers either way.
    let pacs002 = "/v1/iso20022/pacs.002/NET-0".to_string();
    let pacs002_of_a1 = format!("/v1/iso20022/pacs.002/NET-0?debtor={a1}");
    let bank_a_route = format!("/v1/banks/{bank_a}");
    let bank_b_route = format!("/v1/banks/{bank_b}");
    let block = "/v1/blocks/latest".to_string();
    let cycle = "/v1/cycles/latest".to_string();
    let banks = "/v1/banks".to_string();

    // Customer A1: its own account, history, proof, signer entry, and the transaction it
    // signed.
    let own = customer_a1.ok(&rpc, &account_a1);
    assert_eq!(own["id"].as_str(), Some(a1.to_string().as_str()), "{own}");
    for route in [&history_a1, &pacs002, &pacs002_of_a1] {
        customer_a1.ok(&rpc, route);
    }
    // Its proof shows the certifying block's header and its transactions' digest, never a
    // transfer of the block; the wallet checks it against the genesis validators.
    let proof = customer_a1.ok(&rpc, &proof_a1);
    let fields: Vec<&str> = proof
        .as_object()
        .expect("a proof object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "certificate",
            "certifying_header",
            "certifying_transactions_digest",
            "height",
            "proof"
        ],
        "{proof}"
    );
    assert!(
        proof["certifying_header"].as_str().expect("hex").len() < 1024,
        "a header, not a block: {proof}"
    );
    let a1_key_file = net.root().join(manifest_text(
        &net.manifest["banks"][0]["accounts"][0]["key_file"],
        "customer key file",
    ));
    let genesis_file = net.root().join("genesis.json");
    let verified = wallet(
        &[
            "--node",
            &rpc,
            "balance",
            &a1.to_string(),
            "--verify",
            "--genesis",
            path(&genesis_file),
            "--key",
            path(&a1_key_file),
        ],
        &[],
    );
    let text = verified.success();
    assert!(text.contains("verified"), "{text}");
    let signer = customer_a1.ok(&rpc, &signer_a1);
    assert_eq!(signer["role"], "customer", "{signer}");
    let seen = customer_a1.ok(&rpc, &the_tx);
    assert_eq!(seen["status"], "committed", "{seen}");
    // Customer B1 received it: it may read it too, but not A1's account or proof.
    customer_b1.ok(&rpc, &the_tx);
    customer_b1.ok(&rpc, &pacs002_of_a1);
    customer_b1.ok(&rpc, &pacs002);
    customer_b1.refused(&rpc, &account_a1, 403, "forbidden");
    customer_b1.refused(&rpc, &proof_a1, 403, "forbidden");

    // Customer A2, at the same bank but no party: nothing of A1's, nothing bank-wide.
    customer_a2.ok(&rpc, &account_a2);
    for route in [
        &account_a1,
        &history_a1,
        &proof_a1,
        &signer_a1,
        &block,
        &banks,
        &bank_a_route,
        &cycle,
        &statement_a,
    ] {
        customer_a2.refused(&rpc, route, 403, "forbidden");
    }
    // Whether A1 made a transaction is not A2's to learn either (its hash can be computed
    // from guessed fields): it reads as a hash nobody used.
    let unseen = customer_a2.ok(&rpc, &the_tx);
    assert_eq!(unseen["status"], "unknown", "{unseen}");
    assert!(unseen["receipt"].is_null(), "{unseen}");
    // Whether A1 paid with an end-to-end id is not A2's to learn: the same answer as for an
    // id nobody used.
    customer_a2.refused(&rpc, &pacs002_of_a1, 404, "unknown_end_to_end_id");
    customer_a2.refused(&rpc, &pacs002, 404, "unknown_end_to_end_id");
    customer_a2.refused(
        &rpc,
        &format!("/v1/iso20022/pacs.002/NEVER-USED?debtor={a1}"),
        404,
        "unknown_end_to_end_id",
    );

    // Bank A's operator: bank A's accounts, bank, report line and statement, and the
    // transaction its customer signed; nothing of bank B's, no block.
    for route in [
        &account_a1,
        &history_a1,
        &proof_a1,
        &signer_a1,
        &the_tx,
        &pacs002,
        &bank_a_route,
        &statement_a,
    ] {
        operator_a.ok(&rpc, route);
    }
    let listed = operator_a.ok(&rpc, &banks);
    assert_eq!(bank_ids(&listed), std::slice::from_ref(&bank_a), "{listed}");
    let report = operator_a.ok(&rpc, &cycle);
    assert_eq!(
        report_banks(&report),
        std::slice::from_ref(&bank_a),
        "{report}"
    );
    let proof_b1 = format!("/v1/accounts/{b1}/proof");
    for route in [
        &account_b1,
        &proof_b1,
        &signer_b1,
        &bank_b_route,
        &statement_b,
        &block,
    ] {
        operator_a.refused(&rpc, route, 403, "forbidden");
    }
    // Bank B's operator sees the transfer too (its customer is the payee), not A1's account.
    operator_b.ok(&rpc, &the_tx);
    operator_b.refused(&rpc, &account_a1, 403, "forbidden");

    // The regulator reads everything; so do the authority and a node.
    for route in [
        &account_a1,
        &history_a1,
        &proof_a1,
        &signer_a1,
        &account_b1,
        &signer_b1,
        &the_tx,
        &pacs002,
        &bank_a_route,
        &bank_b_route,
        &statement_a,
        &statement_b,
        &block,
    ] {
        regulator.ok(&rpc, route);
    }
    let listed = regulator.ok(&rpc, &banks);
    assert_eq!(
        bank_ids(&listed),
        [bank_a.clone(), bank_b.clone()],
        "{listed}"
    );
    let report = regulator.ok(&rpc, &cycle);
    assert_eq!(
        report_banks(&report),
        [bank_a.clone(), bank_b.clone()],
        "{report}"
    );
    for all_seeing in [authority, node] {
        for route in [&account_b1, &the_tx, &block, &statement_b] {
            all_seeing.ok(&rpc, route);
        }
        let listed = all_seeing.ok(&rpc, &banks);
        assert_eq!(bank_ids(&listed).len(), 2, "{listed}");
    }

    // Anonymous: status, health and the API document; nothing else.
    let status = ANONYMOUS.ok(&rpc, "/v1/status");
    assert_eq!(status["chain_id"], CHAIN_ID, "{status}");
    let document = ANONYMOUS.ok(&rpc, "/v1/openapi.json");
    assert!(document["paths"].is_object(), "{document}");
    wait_for(
        Duration::from_secs(60),
        "anonymous /v1/health answered 200",
        || {
            // 503 only while the node does not commit (a loaded machine); never a refusal.
            let (status, body) = ANONYMOUS.get(&rpc, "/v1/health");
            assert!(
                status == 200 || status == 503,
                "anonymous GET /v1/health: {status} {body}"
            );
            status == 200
        },
    );
    let all_events = "/v1/events".to_string();
    let events_of_a1 = format!("/v1/events?account={a1}");
    for route in [
        &account_a1,
        &history_a1,
        &proof_a1,
        &signer_a1,
        &the_tx,
        &pacs002,
        &pacs002_of_a1,
        &banks,
        &bank_a_route,
        &statement_a,
        &block,
        &cycle,
        &all_events,
        &events_of_a1,
    ] {
        ANONYMOUS.refused(&rpc, route, 401, "unauthenticated");
    }

    // Event streams: filters that reach beyond the caller's own data are refused ...
    customer_a1.refused(&rpc, &format!("/v1/events?account={a2}"), 403, "forbidden");
    customer_a1.refused(&rpc, &format!("/v1/events?bank={bank_b}"), 403, "forbidden");
    operator_a.refused(&rpc, &format!("/v1/events?bank={bank_b}"), 403, "forbidden");
    operator_a.refused(&rpc, &format!("/v1/events?account={b1}"), 403, "forbidden");
    // ... and without a filter a customer gets its own account's events only, the
    // operator its bank's, the regulator everything.
    let mine = customer_a1.events(&rpc, "/v1/events?after=0:0", |events| {
        events.iter().any(|event| is_transaction(event, &hash))
    });
    assert!(
        mine.iter().all(|event| event.concerns(&a1)),
        "customer A1's stream is filtered to its account: {mine:?}"
    );
    // Bank B's own business (B1 pays B2), then bank A's (A2 pays A1), committed in that
    // order: operator A's stream reaches the latter past the former, and shows none of it.
    let (_, b2) = net.account_key(1, 1);
    let within_b = transfer(&b1_key, b2, 0, 7);
    let within_a = transfer(&a2_key, a1, 0, 9);
    for tx in [&within_b, &within_a] {
        crate::localnet::submit_batch(&rpc, std::slice::from_ref(tx), true);
        wait_for(Duration::from_secs(60), "the transfer committed", || {
            tx_status(&rpc, &tx.hash()).is_some_and(|view| view.status == TxStatus::Committed)
        });
    }
    let theirs = operator_a.events(&rpc, "/v1/events?after=0:0", |events| {
        events.iter().any(|event| is_transaction(event, &hash))
            && events
                .iter()
                .any(|event| is_transaction(event, &within_a.hash()))
    });
    assert!(
        !theirs
            .iter()
            .any(|event| is_transaction(event, &within_b.hash()) || event.concerns(&b2)),
        "operator A's stream shows nothing of bank B's own business: {theirs:?}"
    );
    regulator.events(&rpc, "/v1/events?after=0:0", |events| {
        events
            .iter()
            .any(|event| is_transaction(event, &within_b.hash()))
    });
    operator_a.events(
        &rpc,
        &format!("/v1/events?after=0:0&bank={bank_a}"),
        |events| events.iter().any(|event| is_transaction(event, &hash)),
    );
    regulator.events(&rpc, "/v1/events?after=0:0", |events| {
        events.iter().any(|event| is_transaction(event, &hash))
            && events
                .iter()
                .any(|event| matches!(event, EventView::CycleClosed { .. }))
    });

    // Signed requests, crafted header by header. A fresh request is served once; its
    // replay is refused.
    let nonce = "access-replay-000001";
    let signed = sign_headers(&a1_key, "GET", &account_a1, b"", now_ms(), nonce);
    let (status, body) = get_with(&rpc, &account_a1, &signed);
    assert_eq!(status, 200, "the first use of a nonce: {body}");
    assert_error(
        "the same signed request again",
        get_with(&rpc, &account_a1, &signed),
        401,
        "replayed_request",
    );
    // The nonce is remembered per key: another key may use it.
    let other_key = sign_headers(&a2_key, "GET", &account_a2, b"", now_ms(), nonce);
    let (status, body) = get_with(&rpc, &account_a2, &other_key);
    assert_eq!(status, 200, "the same nonce from another key: {body}");
    // A timestamp two minutes off, either way (the window is 30 s).
    let past = sign_headers(
        &a1_key,
        "GET",
        &account_a1,
        b"",
        now_ms() - 120_000,
        "access-stale-past-01",
    );
    assert_error(
        "a request signed two minutes ago",
        get_with(&rpc, &account_a1, &past),
        401,
        "stale_request",
    );
    let future = sign_headers(
        &a1_key,
        "GET",
        &account_a1,
        b"",
        now_ms() + 120_000,
        "access-stale-future1",
    );
    assert_error(
        "a request signed two minutes ahead",
        get_with(&rpc, &account_a1, &future),
        401,
        "stale_request",
    );
    // A signature for A1's account sent to A2's.
    let for_a1 = sign_headers(
        &a1_key,
        "GET",
        &account_a1,
        b"",
        now_ms(),
        "access-tampered-0001",
    );
    assert_error(
        "a signature for another path",
        get_with(&rpc, &account_a2, &for_a1),
        401,
        "bad_request_signature",
    );
    // Three headers of four; a timestamp that is not a number.
    let partial: Vec<(&'static str, String)> = sign_headers(
        &a1_key,
        "GET",
        &account_a1,
        b"",
        now_ms(),
        "access-partial-00001",
    )
    .into_iter()
    .filter(|(name, _)| *name != "x-interpool-signature")
    .collect();
    assert_eq!(partial.len(), 3, "{partial:?}");
    assert_error(
        "a request without its signature header",
        get_with(&rpc, &account_a1, &partial),
        401,
        "bad_credentials",
    );
    let malformed: Vec<(&'static str, String)> = sign_headers(
        &a1_key,
        "GET",
        &account_a1,
        b"",
        now_ms(),
        "access-malformed-001",
    )
    .into_iter()
    .map(|(name, value)| {
        if name == "x-interpool-timestamp" {
            (name, "yesterday".to_string())
        } else {
            (name, value)
        }
    })
    .collect();
    assert_error(
        "a request with a malformed timestamp",
        get_with(&rpc, &account_a1, &malformed),
        401,
        "bad_credentials",
    );
    // A valid signature by a key with no role on this chain.
    let stranger_key = SigningKey::from_bytes(&[0x42; 32]);
    let stranger = Caller::signing("a key the chain does not know", &stranger_key);
    stranger.refused(&rpc, &account_a1, 401, "unknown_caller");
}

/// Runs the wallet with `args` and the environment `env` (no passphrase: localnet keys are
/// plain).
fn wallet(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut all = vec![("INTERPOOL_PASSPHRASE", "")];
    all.extend_from_slice(env);
    run_with_env("interpool-wallet", args, &all)
}

#[test]
fn metrics_off_loopback_need_an_all_seeing_caller_and_the_api_speaks_only_tls() {
    // A validator with the default (metrics served to loopback) and an observer that serves
    // them only to the regulator and nodes.
    let mut net = Localnet::generate(1, 1, 1, &Options::default());
    let observer = net.index("observer-0");
    net.set_config_text(observer, "metrics_from_loopback", "true", "false");
    net.start_all();
    net.wait_height(&[0, observer], 1, Duration::from_secs(120));
    let validator_rpc = net.nodes[0].rpc.clone();
    let observer_rpc = net.nodes[observer].rpc.clone();

    let (customer_key, customer) = net.account_key(0, 0);
    let other_customer = net.account_key(0, 1).1;
    let operator_key = manifest_key(
        &net,
        &net.manifest["banks"][0]["operator_key_file"],
        "operator key file",
    );
    let (regulator_key, authority_key, node_key) = all_seeing_keys(&net);

    // /metrics where loopback is not enough.
    ANONYMOUS.refused(&observer_rpc, "/metrics", 401, "unauthenticated");
    for (name, key) in [
        ("customer", &customer_key),
        ("operator", &operator_key),
        ("authority (loopback only)", &authority_key),
    ] {
        Caller::signing(name, key).refused(&observer_rpc, "/metrics", 403, "forbidden");
    }
    for (name, key) in [("regulator", &regulator_key), ("validator-0", &node_key)] {
        let text = Caller::signing(name, key).ok(&observer_rpc, "/metrics");
        let text = text
            .as_str()
            .unwrap_or_else(|| panic!("{name}: /metrics is Prometheus text: {text}"));
        assert!(text.contains("interpool_height "), "{name}: {text}");
    }
    // A default node serves them to anyone on loopback.
    let text = ANONYMOUS.ok(&validator_rpc, "/metrics");
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("/metrics is Prometheus text: {text}"));
    assert!(text.contains("interpool_height "), "{text}");
    // The store's memory, every part, read from RocksDB when the metrics are.
    for part in [
        "memtables",
        "block_cache",
        "block_cache_pinned",
        "table_readers",
    ] {
        let series = format!(r#"interpool_storage_memory_bytes{{part="{part}"}} "#);
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|value| value.parse::<u64>().ok());
        assert!(value.is_some(), "{part}: {text}");
    }
    // Whether its table files are written with direct I/O, as the node found at start.
    let direct_io = text
        .lines()
        .find_map(|line| line.strip_prefix("interpool_storage_direct_io "));
    assert!(matches!(direct_io, Some("0" | "1")), "{text}");
    Caller::signing("customer", &customer_key).ok(&validator_rpc, "/metrics");

    // Plain HTTP to the TLS port gets no data: the connection fails, or a 400 that says
    // to use TLS.
    let plain = validator_rpc.replacen("https://", "http://", 1);
    assert_ne!(plain, validator_rpc, "the node's URL is https://");
    let plain_client = crate::localnet::client_timeout(Duration::from_secs(10));
    if let Ok(response) = plain_client.get(format!("{plain}/v1/status")).send() {
        let status = response.status().as_u16();
        let body = response.text().unwrap_or_default();
        let lower = body.to_lowercase();
        assert!(
            status == 400 && (lower.contains("tls") || lower.contains("https")),
            "plain HTTP to the TLS port was answered {status}: {body}"
        );
    }

    // The wallet checks the node's certificate against the CA it is given: another
    // consortium's CA (a localnet generated and never started) is refused.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let other = elsewhere.path().join("net");
    run(
        "interpool-genesis",
        [
            "localnet",
            "--out",
            path(&other),
            "--validators",
            "1",
            "--observers",
            "0",
            "--banks",
            "1",
            "--chain-id",
            CHAIN_ID,
        ],
    )
    .success();
    let other_manifest: Value = serde_json::from_slice(
        &fs::read(other.join("localnet.json")).expect("the other localnet's manifest"),
    )
    .expect("manifest json");
    let other_ca = other.join(
        other_manifest["ca_file"]
            .as_str()
            .expect("the manifest names its CA file"),
    );
    let right_ca = net.ca_file();
    assert_ne!(
        fs::read(&other_ca).expect("the other CA"),
        fs::read(&right_ca).expect("the consortium's CA"),
        "two localnets have two CAs"
    );
    let key_file = net.root().join(manifest_text(
        &net.manifest["banks"][0]["accounts"][0]["key_file"],
        "customer key file",
    ));
    let id = customer.to_string();
    let refused = wallet(
        &[
            "--node",
            &validator_rpc,
            "--ca",
            path(&other_ca),
            "account",
            &id,
            "--key",
            path(&key_file),
        ],
        &[],
    );
    assert_eq!(refused.code, Some(1), "another CA: {refused:#?}");
    assert!(
        refused.stderr.to_lowercase().contains("certificate"),
        "the error names the certificate: {refused:#?}"
    );
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "one line: {refused:#?}"
    );
    // Without a CA an https node is not trusted either.
    let no_ca = wallet(
        &[
            "--node",
            &validator_rpc,
            "account",
            &id,
            "--key",
            path(&key_file),
        ],
        // The harness would give the wallet every test CA: take it away.
        &[("INTERPOOL_CA", "")],
    );
    assert_ne!(no_ca.code, Some(0), "no CA: {no_ca:#?}");
    // With the consortium's CA (and the key) from the environment, it reads.
    let read = wallet(
        &["--node", &validator_rpc, "--json", "account", &id],
        &[
            ("INTERPOOL_CA", path(&right_ca)),
            ("INTERPOOL_KEY", path(&key_file)),
        ],
    )
    .success();
    let view: Value =
        serde_json::from_str(read.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {read:?}"));
    assert_eq!(view["id"].as_str(), Some(id.as_str()), "{view}");
    // The node still decides what the key may read, and asks for one.
    let other_id = other_customer.to_string();
    wallet(
        &[
            "--node",
            &validator_rpc,
            "--ca",
            path(&right_ca),
            "account",
            &other_id,
            "--key",
            path(&key_file),
        ],
        &[],
    )
    .failure(1, "forbidden");
    wallet(
        &[
            "--node",
            &validator_rpc,
            "--ca",
            path(&right_ca),
            "account",
            &id,
        ],
        // The harness would sign as the regulator: no key at all.
        &[("INTERPOOL_KEY", "")],
    )
    .failure(1, "unauthenticated");
}
