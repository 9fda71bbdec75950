//! A real local consortium: four validators and an observer as separate `interpool-node`
//! processes on 127.0.0.1, driven over HTTP.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use interpool_contracts::keys::PlainKeyFile;
use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::{AccountView, StatusView, TxStatus, TxStatusView};
use interpool_contracts::{AccountId, Amount, Body, SignedTransaction, Transaction};
use interpool_tests::{binary, run};
use serde_json::Value;

struct Node {
    name: String,
    rpc: String,
    child: Child,
}

struct Localnet {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    manifest: Value,
}

impl Drop for Localnet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

/// A base port whose p2p (base + i) and HTTP (base + 1000 + i) ports are all free now.
fn free_base_port(nodes: u16) -> u16 {
    let mut candidate = 20_000 + (std::process::id() % 20_000) as u16;
    loop {
        let free = (0..nodes).all(|i| {
            TcpListener::bind(("127.0.0.1", candidate + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", candidate + 1000 + i)).is_ok()
        });
        if free {
            return candidate;
        }
        candidate = 20_000 + (candidate + 37) % 40_000;
    }
}

fn wait_for(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        // Poll interval while waiting on a condition; the deadline above bounds the wait.
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

fn status(rpc: &str) -> Option<StatusView> {
    client()
        .get(format!("{rpc}/v1/status"))
        .send()
        .ok()?
        .json()
        .ok()
}

impl Localnet {
    fn start() -> Localnet {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("net");
        let base = free_base_port(5).to_string();
        run(
            "interpool-genesis",
            [
                "localnet",
                "--out",
                path(&out),
                "--validators",
                "4",
                "--observers",
                "1",
                "--banks",
                "2",
                "--accounts-per-bank",
                "2",
                "--base-port",
                &base,
                "--chain-id",
                "net-test",
            ],
        )
        .success();
        let manifest: Value =
            serde_json::from_slice(&fs::read(out.join("localnet.json")).expect("manifest"))
                .expect("json");
        let mut nodes = Vec::new();
        for node in manifest["nodes"].as_array().expect("nodes") {
            let name = node["name"].as_str().expect("name").to_string();
            let config = out.join(node["config"].as_str().expect("config"));
            let log = fs::File::create(out.join(format!("{name}.log"))).expect("log file");
            let child = Command::new(binary("interpool-node"))
                .args(["run", "--config", path(&config), "--log-level", "info"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start node");
            nodes.push(Node {
                name,
                rpc: node["rpc_url"].as_str().expect("rpc").to_string(),
                child,
            });
        }
        Localnet {
            dir,
            nodes,
            manifest,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = fs::read_to_string(self.root().join(format!("{}.log", n.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {} ---\n{}",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn key(&self, file: &str) -> (ed25519_dalek::SigningKey, AccountId) {
        let text = fs::read(self.root().join(file)).expect("key file");
        let key: PlainKeyFile = serde_json::from_slice(&text).expect("key json");
        (key.signing_key().expect("valid key"), key.public_key)
    }

    fn account_key(&self, bank: usize, index: usize) -> (ed25519_dalek::SigningKey, AccountId) {
        let file = self.manifest["banks"][bank]["accounts"][index]["key_file"]
            .as_str()
            .expect("key file")
            .to_string();
        self.key(&file)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn transfer(
    key: &ed25519_dalek::SigningKey,
    from: AccountId,
    to: AccountId,
    nonce: u64,
    amount: u64,
) -> SignedTransaction {
    Transaction {
        chain_id: "net-test".into(),
        signer: from,
        nonce,
        valid_until_height: 1_000_000,
        body: Body::Transfer {
            to,
            amount: Amount(amount),
            end_to_end_id: format!("NET-{nonce}"),
            reference: String::new(),
        },
    }
    .sign(key)
}

fn post(rpc: &str, route: &str, body: String) -> (u16, Value) {
    let response = client()
        .post(format!("{rpc}{route}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("request");
    let code = response.status().as_u16();
    (code, response.json().unwrap_or(Value::Null))
}

fn account(rpc: &str, id: &AccountId) -> Option<AccountView> {
    client()
        .get(format!("{rpc}/v1/accounts/{id}"))
        .send()
        .ok()?
        .json()
        .ok()
}

#[test]
fn consortium_commits_transfers_agrees_and_refuses_bad_input() {
    let net = Localnet::start();
    let all: Vec<String> = net.nodes.iter().map(|n| n.rpc.clone()).collect();
    wait_for(Duration::from_secs(120), "every node past height 2", || {
        all.iter()
            .all(|rpc| status(rpc).is_some_and(|s| s.height >= 2))
    });
    let validator = &all[0];
    let observer = &all[4];

    // 200 cross-bank transfers in batches, from two accounts of bank A to bank B.
    let (key_a, a) = net.account_key(0, 0);
    let (key_a2, a2) = net.account_key(0, 1);
    let (_, b) = net.account_key(1, 0);
    let mut hashes = Vec::new();
    for chunk in 0..4u64 {
        let txs: Vec<String> = (chunk * 25..chunk * 25 + 25)
            .flat_map(|nonce| {
                [
                    transfer(&key_a, a, b, nonce, 1),
                    transfer(&key_a2, a2, b, nonce, 2),
                ]
            })
            .map(|tx| {
                hashes.push(tx.hash());
                to_hex(&tx.encode())
            })
            .collect();
        let (code, body) = post(
            validator,
            "/v1/transactions/batch",
            serde_json::json!({ "txs": txs }).to_string(),
        );
        assert_eq!(code, 200, "{body}");
        let refused: Vec<&Value> = body["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r.get("error").is_some())
            .collect();
        assert!(refused.is_empty(), "refused: {refused:?}");
    }
    wait_for(
        Duration::from_secs(120),
        "all 200 transfers committed on every node",
        || {
            all.iter().all(|rpc| {
                account(rpc, &a).is_some_and(|v| v.nonce == 100)
                    && account(rpc, &a2).is_some_and(|v| v.nonce == 100)
            })
        },
    );
    // Every node, the observer included, shows the same balances and receipts.
    let expected_b = Amount(100_000 + 100 + 200).format(2);
    for rpc in &all {
        assert_eq!(
            account(rpc, &b).expect("account").balance,
            expected_b,
            "at {rpc}\n{}",
            net.logs()
        );
    }
    let status_of = |rpc: &str, hash: &interpool_contracts::Hash| -> TxStatusView {
        client()
            .get(format!("{rpc}/v1/transactions/{hash}"))
            .send()
            .expect("get")
            .json()
            .expect("json")
    };
    for hash in hashes.iter().step_by(37) {
        let views: Vec<TxStatusView> = all.iter().map(|rpc| status_of(rpc, hash)).collect();
        assert_eq!(views[0].status, TxStatus::Committed);
        assert!(
            views.windows(2).all(|w| w[0] == w[1]),
            "nodes disagree on {hash}: {views:?}"
        );
    }
    let unknown = status_of(validator, &interpool_contracts::Hash([7; 32]));
    assert_eq!(unknown.status, TxStatus::Unknown);

    // Writes to an observer are refused.
    let fresh = to_hex(&transfer(&key_a, a, b, 100, 1).encode());
    let (code, body) = post(
        observer,
        "/v1/transactions",
        serde_json::json!({ "tx": fresh }).to_string(),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("read_only")),
        "{body}"
    );

    // Bad input: each gets its specific 4xx and changes nothing.
    let replay = to_hex(&transfer(&key_a, a, b, 0, 1).encode());
    let mut forged = transfer(&key_a, a, b, 100, 1);
    forged.tx.body = Body::Transfer {
        to: b,
        amount: Amount(999),
        end_to_end_id: "F".into(),
        reference: String::new(),
    };
    let mut other_chain = transfer(&key_a, a, b, 100, 1).tx;
    other_chain.chain_id = "elsewhere".into();
    let valid = transfer(&key_a, a, b, 100, 1).encode();
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "bad_json"),
        (r#"{"tx": "zz"}"#.into(), 400, "bad_hex"),
        (
            serde_json::json!({ "tx": to_hex(&valid[..valid.len() - 3]) }).to_string(),
            400,
            "malformed_transaction",
        ),
        (
            serde_json::json!({ "tx": to_hex(&forged.encode()) }).to_string(),
            400,
            "bad_signature",
        ),
        (
            serde_json::json!({ "tx": to_hex(&other_chain.sign(&key_a).encode()) }).to_string(),
            400,
            "wrong_chain",
        ),
        (
            serde_json::json!({ "tx": replay }).to_string(),
            409,
            "already_included",
        ),
        (
            format!(r#"{{"tx": "{}"}}"#, "00".repeat(3 << 20)),
            413,
            "body_too_large",
        ),
    ];
    let before = account(validator, &a).expect("account");
    for (body, code, error) in cases {
        let (got, answer) = post(validator, "/v1/transactions", body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (code, Some(error)),
            "{answer}"
        );
    }
    assert_eq!(account(validator, &a).expect("account"), before);
}
