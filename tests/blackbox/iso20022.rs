//! Bank integration on a real consortium: pacs.008 payment orders across banks (one queued
//! by the net debit cap and released, one rejected), pacs.002 statuses as they move, bad
//! ISO input refused without a change, the cycle closed, each bank's statement (JSON and
//! camt.053) balancing to the chain on a validator and an observer alike, camt.054
//! notifications on the event stream, every document valid against ISO's schemas and read
//! back by a third-party parser, and reconciliation of the bank's own books.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use interpool_contracts::iso20022::pacs::{pacs008, read_pacs002};
use interpool_contracts::statement::{BankStatementView, Direction, EntryKind};
use interpool_contracts::{AccountId, Amount, BankId, Body, SignedTransaction, Transaction};
use interpool_tests::{run_with_env, Finished};
use serde_json::Value;

use crate::localnet::{account, client, path, wait_for, Localnet, Options, CHAIN_ID};

const DECIMALS: u8 = 2;

/// The repository's root (scripts live there).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

fn wallet(node: &str, args: &[&str]) -> Finished {
    let mut all = vec!["--node", node];
    all.extend_from_slice(args);
    run_with_env("interpool-wallet", &all, &[("INTERPOOL_PASSPHRASE", "")])
}

fn signed_transfer(
    key: &SigningKey,
    nonce: u64,
    to: AccountId,
    amount: u64,
    e2e: &str,
) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN_ID.into(),
        signer: AccountId(key.verifying_key().to_bytes()),
        nonce,
        valid_until_height: 50_000,
        body: Body::Transfer {
            to,
            amount: Amount(amount),
            end_to_end_id: e2e.into(),
            reference: format!("invoice {e2e}"),
            terms: Default::default(),
        },
    }
    .sign(key)
}

fn order(tx: &SignedTransaction, from: &str, to: &str) -> String {
    pacs008(
        tx,
        &BankId::new(from).expect("bank"),
        &BankId::new(to).expect("bank"),
        "EUR",
        DECIMALS,
        1_796_025_257_123,
    )
    .expect("pacs.008")
}

/// `POST /v1/iso20022/pacs.008`: status, content type, body.
fn post_order(rpc: &str, xml: &str, content_type: &str) -> (u16, String, String) {
    let response = client()
        .post(format!("{rpc}/v1/iso20022/pacs.008"))
        .header("content-type", content_type)
        .body(xml.to_string())
        .send()
        .expect("request");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, kind, response.text().expect("body"))
}

/// The pacs.002 status code of an end-to-end id (`None`: not answered 200).
fn status_of(rpc: &str, e2e: &str) -> Option<(String, Option<String>, String)> {
    let response = client()
        .get(format!("{rpc}/v1/iso20022/pacs.002/{e2e}"))
        .send()
        .ok()?;
    if response.status().as_u16() != 200 {
        return None;
    }
    let xml = response.text().ok()?;
    let read = read_pacs002(&xml).expect("a pacs.002");
    Some((read.status, read.reason, xml))
}

fn wait_status(rpc: &str, e2e: &str, wanted: &str, out: &Path) {
    let mut last = None;
    wait_for(Duration::from_secs(60), &format!("{e2e} {wanted}"), || {
        last = status_of(rpc, e2e);
        last.as_ref().is_some_and(|(status, _, _)| status == wanted)
    });
    let (_, _, xml) = last.expect("answered");
    std::fs::write(out.join(format!("pacs002-{e2e}-{wanted}.xml")), xml).expect("save");
}

/// Waits until `debtor`'s transfer `e2e` is settled.
fn wait_status_of(rpc: &str, debtor: &AccountId, e2e: &str) {
    wait_for(
        Duration::from_secs(60),
        &format!("{e2e} of {debtor} settled"),
        || {
            client()
                .get(format!("{rpc}/v1/iso20022/pacs.002/{e2e}?debtor={debtor}"))
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .and_then(|xml| read_pacs002(&xml).ok())
                .is_some_and(|read| read.status == "ACSC")
        },
    );
}

fn statement_json(rpc: &str, bank: &str, cycle: u64) -> Option<BankStatementView> {
    let response = client()
        .get(format!("{rpc}/v1/banks/{bank}/statements/{cycle}"))
        .send()
        .ok()?;
    if response.status().as_u16() != 200 {
        return None;
    }
    response.json().ok()
}

fn statement_xml(rpc: &str, bank: &str, cycle: u64) -> String {
    let response = client()
        .get(format!("{rpc}/v1/banks/{bank}/statements/{cycle}"))
        .header("accept", "application/xml")
        .send()
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("text"),
        "application/xml"
    );
    response.text().expect("body")
}

fn minor(text: &str) -> i128 {
    i128::from(Amount::parse(text, DECIMALS).expect("amount").0)
}

/// Runs `scripts/iso20022/check.py ARGS` in the virtualenv `setup.sh` makes.
fn check_py(args: &[&str]) -> std::process::Output {
    let setup = Command::new("bash")
        .arg(repo().join("scripts/iso20022/setup.sh"))
        .output()
        .expect("run setup.sh");
    assert!(
        setup.status.success(),
        "scripts/iso20022/setup.sh failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    Command::new("python3")
        .arg(repo().join("scripts/iso20022/check.py"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run check.py")
}

#[test]
fn a_bank_pays_by_pacs008_follows_pacs002_and_reconciles_its_books() {
    let options = Options {
        genesis_args: [
            "--cycle-blocks",
            "1000000",
            "--queue-expiry-blocks",
            "100000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Options::default()
    };
    let mut net = Localnet::generate(1, 1, 2, &options);
    net.start_all();
    net.wait_height(&[0, 1], 1, Duration::from_secs(120));
    let rpc = net.nodes[0].rpc.clone();
    let observer = net.nodes[1].rpc.clone();
    let documents = tempfile::tempdir().expect("tempdir");
    let out = documents.path();

    let (alice_key, alice) = net.account_key(0, 0);
    let (bob_key, bob) = net.account_key(1, 0);
    let (carol_key, carol) = net.account_key(0, 1);
    let balance = |id: &AccountId| {
        let view = account(&rpc, id).expect("account");
        (minor(&view.balance), minor(&view.reserved))
    };
    let alice_start = balance(&alice).0;

    // 1. Written by the wallet and sent: settled at once.
    let alice_file = net.manifest["banks"][0]["accounts"][0]["key_file"]
        .as_str()
        .expect("key file")
        .to_string();
    let pacs = out.join("pacs008-wallet.xml");
    let sent = wallet(
        &rpc,
        &[
            "iso",
            "pacs008",
            "--key",
            path(&net.root().join(&alice_file)),
            "--to",
            &bob.to_hex(),
            "--amount",
            "30.00",
            "--end-to-end-id",
            "ORDER-1",
            "--reference",
            "invoice 1",
            "--out",
            path(&pacs),
            "--send",
            "--json",
        ],
    );
    let answer: Value = serde_json::from_str(sent.success().trim()).expect("json");
    assert_eq!(answer["status"], "ACSP", "{answer}");
    assert_eq!(answer["http_status"], 202, "{answer}");
    wait_status(&rpc, "ORDER-1", "ACSC", out);
    // Sent again: not a second payment, its status.
    let (code, kind, xml) = post_order(
        &rpc,
        &std::fs::read_to_string(&pacs).expect("file"),
        "application/xml",
    );
    assert_eq!((code, kind.as_str()), (200, "application/xml"), "{xml}");
    assert_eq!(read_pacs002(&xml).expect("pacs.002").status, "ACSC");

    // 2. BANK_A's cap drops to 10.00: Alice's 25.00 waits in the queue (PDNG)...
    let authority = path(&net.root().join("keys/authority.json")).to_string();
    let cap = wallet(
        &rpc,
        &[
            "authority",
            "set-cap",
            "--key",
            &authority,
            "--bank",
            "BANK_A",
            "--amount",
            "10.00",
            "--wait",
            "--json",
        ],
    );
    cap.success();
    let queued = signed_transfer(&alice_key, 1, bob, 2_500, "ORDER-2");
    let (code, _, xml) = post_order(&rpc, &order(&queued, "BANK_A", "BANK_B"), "application/xml");
    assert_eq!(code, 202, "{xml}");
    assert_eq!(read_pacs002(&xml).expect("pacs.002").status, "ACSP");
    std::fs::write(out.join("pacs002-ORDER-2-ACSP.xml"), &xml).expect("save");
    wait_status(&rpc, "ORDER-2", "PDNG", out);
    // ...until Bob pays Alice 50.00 (text/xml works too) and makes room: both settle.
    let incoming = signed_transfer(&bob_key, 0, alice, 5_000, "ORDER-3");
    let (code, _, xml) = post_order(&rpc, &order(&incoming, "BANK_B", "BANK_A"), "text/xml");
    assert_eq!(code, 202, "{xml}");
    wait_status(&rpc, "ORDER-3", "ACSC", out);
    wait_status(&rpc, "ORDER-2", "ACSC", out);

    // 3. Carol orders more than she has: RJCT AM04 at once, 422.
    let too_much = signed_transfer(&carol_key, 0, bob, 100_000_000, "ORDER-4");
    let (code, kind, xml) = post_order(
        &rpc,
        &order(&too_much, "BANK_A", "BANK_B"),
        "application/xml",
    );
    assert_eq!((code, kind.as_str()), (422, "application/xml"), "{xml}");
    let read = read_pacs002(&xml).expect("pacs.002");
    assert_eq!(
        (read.status.as_str(), read.reason.as_deref()),
        ("RJCT", Some("AM04")),
        "{xml}"
    );
    assert!(read.text.unwrap_or_default().contains("insufficient_funds"));
    std::fs::write(out.join("pacs002-ORDER-4-RJCT.xml"), &xml).expect("save");

    // Carol uses Alice's end-to-end id: an id is the payer's, so the status needs the debtor.
    let same_id = signed_transfer(&carol_key, 0, bob, 100, "ORDER-1");
    let (code, _, xml) = post_order(
        &rpc,
        &order(&same_id, "BANK_A", "BANK_B"),
        "application/xml",
    );
    assert_eq!(code, 202, "{xml}");
    let ambiguous = |query: &str| {
        let response = client()
            .get(format!("{rpc}/v1/iso20022/pacs.002/ORDER-1{query}"))
            .send()
            .expect("request");
        (response.status().as_u16(), response.text().expect("body"))
    };
    wait_for(Duration::from_secs(60), "two debtors of ORDER-1", || {
        ambiguous("").0 == 409
    });
    let (code, body) = ambiguous("");
    assert!(
        body.contains("ambiguous_end_to_end_id") && body.contains(&carol.to_hex()),
        "{code} {body}"
    );
    let (code, body) = ambiguous(&format!("?debtor={alice}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(read_pacs002(&body).expect("pacs.002").status, "ACSC");
    let (code, body) = ambiguous("?debtor=nothex");
    assert_eq!(code, 400, "{body}");
    for (e2e, status, code) in [
        ("NEVER-SENT", 404, "unknown_end_to_end_id"),
        (&*"X".repeat(36), 400, "bad_end_to_end_id"),
    ] {
        let response = client()
            .get(format!("{rpc}/v1/iso20022/pacs.002/{e2e}"))
            .send()
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{e2e}");
        let body: Value = response.json().expect("json");
        assert_eq!(body["error"]["code"], code, "{e2e}");
    }

    // 4. Bad input: each a specific 4xx, nothing changed.
    wait_status_of(&rpc, &carol, "ORDER-1");
    let carol_before = balance(&carol);
    let good = signed_transfer(&carol_key, 1, bob, 100, "ORDER-5");
    let good_xml = order(&good, "BANK_A", "BANK_B");
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">&lol2;</Document>"#;
    let oversized = good_xml.replace(
        "<ChrgBr>",
        &format!("<!-- {} --><ChrgBr>", "x".repeat(70_000)),
    );
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "malformed",
            good_xml[..good_xml.len() / 2].to_string(),
            "application/xml",
            400,
            "bad_xml",
        ),
        (
            "entity bomb",
            bomb.to_string(),
            "application/xml",
            400,
            "bad_xml",
        ),
        // 20,000 unclosed levels (60 KB, no signature needed): the XML parser's recursion
        // overflowed the HTTP worker's stack and aborted the node.
        (
            "nested too deep",
            format!(
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\">{}",
                "<a>".repeat(20_000)
            ),
            "application/xml",
            400,
            "bad_xml",
        ),
        (
            "wrong version",
            good_xml.replace("pacs.008.001.08", "pacs.008.001.02"),
            "application/xml",
            400,
            "unsupported_message",
        ),
        (
            "another message",
            good_xml.replace("FIToFICstmrCdtTrf", "FIToFIPmtStsRpt"),
            "application/xml",
            400,
            "unsupported_message",
        ),
        (
            "amount differs",
            good_xml.replace(">1.00<", ">1000.00<"),
            "application/xml",
            422,
            "message_mismatch",
        ),
        (
            "payee's bank differs",
            good_xml.replacen("<Id>BANK_B</Id>", "<Id>BANK_A</Id>", 1),
            "application/xml",
            422,
            "message_mismatch",
        ),
        (
            "no transaction",
            good_xml.replace("SignedTransaction", "Signed"),
            "application/xml",
            400,
            "invalid_message",
        ),
        (
            "oversized",
            oversized,
            "application/xml",
            413,
            "body_too_large",
        ),
        (
            "json",
            good_xml.clone(),
            "application/json",
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, body, content_type, status, code) in cases {
        let (got, _, answer) = post_order(&rpc, &body, content_type);
        let answer: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{what}: not a JSON error ({e}): {answer}"));
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
    }
    assert!(
        status_of(&rpc, "ORDER-5").is_none(),
        "nothing was submitted"
    );
    assert_eq!(balance(&carol), carol_before);
    // An observer takes no orders.
    let (code, _, answer) = post_order(&observer, &good_xml, "application/xml");
    assert_eq!(code, 403, "{answer}");

    // 5. The authority closes the cycle; both banks' statements balance to the chain.
    let settled = wallet(
        &rpc,
        &[
            "authority",
            "settle",
            "--key",
            &authority,
            "--wait",
            "--json",
        ],
    );
    settled.success();
    let cycle = 1;
    let mut statements = Vec::new();
    for bank in ["BANK_A", "BANK_B"] {
        let mut found = None;
        wait_for(
            Duration::from_secs(60),
            &format!("{bank}'s statement"),
            || {
                found = statement_json(&rpc, bank, cycle);
                found.is_some()
            },
        );
        let statement = found.expect("statement");
        for view in &statement.accounts {
            let total: i128 = view
                .entries
                .iter()
                .map(|e| match e.direction {
                    Direction::Credit => minor(&e.amount),
                    Direction::Debit => -minor(&e.amount),
                })
                .sum();
            assert_eq!(
                minor(&view.opening_balance) + total,
                minor(&view.closing_balance),
                "{bank} {}",
                view.account
            );
            let (available, reserved) = balance(&view.account);
            assert_eq!(
                minor(&view.closing_balance),
                available + reserved,
                "{}",
                view.account
            );
        }
        let pool = crate::localnet::get::<Value>(&rpc, &format!("/v1/banks/{bank}")).expect("bank");
        assert_eq!(
            statement.pool.closing_balance,
            pool["pool"].as_str().expect("pool")
        );
        // An observer serves the same statement.
        let mut mirrored = None;
        wait_for(Duration::from_secs(60), "the observer's statement", || {
            mirrored = statement_json(&observer, bank, cycle);
            mirrored.is_some()
        });
        assert_eq!(
            mirrored.as_ref(),
            Some(&statement),
            "{bank}: observer and validator"
        );
        let xml = statement_xml(&rpc, bank, cycle);
        assert_eq!(
            xml,
            statement_xml(&observer, bank, cycle),
            "the same camt.053 everywhere"
        );
        std::fs::write(out.join(format!("camt053-{bank}.xml")), xml).expect("save");
        statements.push(statement);
    }
    let alice_statement = statements[0]
        .accounts
        .iter()
        .find(|a| a.account == alice)
        .expect("Alice moved");
    let ids: Vec<(&str, Direction, &str)> = alice_statement
        .entries
        .iter()
        .map(|e| {
            (
                e.end_to_end_id.as_deref().unwrap_or("-"),
                e.direction,
                e.amount.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("ORDER-1", Direction::Debit, "30.00"),
            ("ORDER-3", Direction::Credit, "50.00"),
            ("ORDER-2", Direction::Debit, "25.00"),
        ]
    );
    assert_eq!(minor(&alice_statement.opening_balance), alice_start);
    assert!(statements[0]
        .pool
        .entries
        .iter()
        .any(|e| e.kind == EntryKind::Settlement));

    // 6. camt.054: BANK_A's entries from the first block on, one notification each.
    let expected: usize = statements[0]
        .accounts
        .iter()
        .map(|a| a.entries.len())
        .sum::<usize>()
        + statements[0].pool.entries.len();
    let response = crate::localnet::client()
        .get(format!(
            "{rpc}/v1/events?format=camt054&bank=BANK_A&after=0:0"
        ))
        .send()
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    let mut lines = BufReader::new(response).lines();
    let (mut notifications, mut data) = (Vec::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while notifications.len() < expected && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(text) = line.strip_prefix("data:") {
            data.push_str(text.strip_prefix(' ').unwrap_or(text));
            data.push('\n');
        } else if line.is_empty() && !data.is_empty() {
            notifications.push(std::mem::take(&mut data));
        }
    }
    assert_eq!(
        notifications.len(),
        expected,
        "one camt.054 per BANK_A entry"
    );
    for (i, xml) in notifications.iter().enumerate() {
        std::fs::write(out.join(format!("camt054-{i}.xml")), xml).expect("save");
    }
    assert!(notifications
        .iter()
        .any(|n| n.contains("<EndToEndId>ORDER-2</EndToEndId>")));

    // 7. Every document valid against ISO's schema; a third-party parser reads the
    // camt.053 with our balances and entries.
    let files: Vec<String> = std::fs::read_dir(out)
        .expect("dir")
        .map(|e| e.expect("entry").path().display().to_string())
        .filter(|p| p.ends_with(".xml"))
        .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let validated = check_py(&args);
    assert!(
        validated.status.success(),
        "schema validation failed:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    let camt_a = out.join("camt053-BANK_A.xml");
    let parsed = check_py(&["camt053", path(&camt_a)]);
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let parsed: Value = serde_json::from_slice(&parsed.stdout).expect("json");
    let parsed = parsed["statements"].as_array().expect("statements");
    assert_eq!(parsed.len(), 1 + statements[0].accounts.len());
    for view in &statements[0].accounts {
        let short = &view.account.to_hex()[..32];
        let read = parsed
            .iter()
            .find(|s| s["account"]["id"] == short)
            .unwrap_or_else(|| panic!("the parser lists {short}"));
        assert_eq!(
            read["opening_booked"]["amount"],
            view.opening_balance.as_str()
        );
        assert_eq!(
            read["closing_booked"]["amount"],
            view.closing_balance.as_str()
        );
        let entries: Vec<(String, String)> = read["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["amount"]
                        .as_str()
                        .expect("amount")
                        .trim_start_matches('-')
                        .to_string(),
                    e["end_to_end_id"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect();
        let ours: Vec<(String, String)> = view
            .entries
            .iter()
            .map(|e| {
                (
                    e.amount.clone(),
                    e.end_to_end_id.clone().unwrap_or("-".into()),
                )
            })
            .collect();
        assert_eq!(entries, ours, "{short}");
    }

    // 8. Reconciliation: the bank's correct books agree (CSV and camt.053); books with a
    // missing entry, a wrong amount and a duplicate show exactly those three breaks.
    let mut correct = String::from("end_to_end_id,account,amount,direction\n");
    for view in &statements[0].accounts {
        for e in &view.entries {
            let id = e
                .end_to_end_id
                .clone()
                .unwrap_or_else(|| format!("{}-{}", e.height, e.position));
            correct.push_str(&format!(
                "{id},{},{},{}\n",
                view.account,
                e.amount,
                e.direction.as_str()
            ));
        }
    }
    let books = out.join("books.csv");
    std::fs::write(&books, &correct).expect("books");
    let agreed = wallet(
        &rpc,
        &[
            "reconcile",
            "--bank",
            "BANK_A",
            "--cycle",
            "1",
            "--books",
            path(&books),
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(agreed.success().trim()).expect("json");
    assert_eq!(report["agreed"], true, "{report}");
    let agreed = wallet(
        &rpc,
        &[
            "reconcile",
            "--bank",
            "BANK_A",
            "--cycle",
            "1",
            "--books",
            path(&camt_a),
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(agreed.success().trim()).expect("json");
    assert_eq!(report["agreed"], true, "camt.053 books: {report}");

    let alice_hex = alice.to_hex();
    let wrong: String = correct
        .lines()
        .filter(|l| !l.starts_with("ORDER-3,"))
        .map(|l| {
            if l.starts_with("ORDER-1,") && l.contains(&alice_hex) {
                l.replace(",30.00,", ",31.00,")
            } else {
                l.to_string()
            }
        })
        .chain(
            correct
                .lines()
                .filter(|l| l.starts_with("ORDER-2,") && l.contains(&alice_hex))
                .map(str::to_string),
        )
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&books, wrong).expect("books");
    let broken = wallet(
        &rpc,
        &[
            "reconcile",
            "--bank",
            "BANK_A",
            "--cycle",
            "1",
            "--books",
            path(&books),
            "--json",
        ],
    );
    assert_eq!(broken.code, Some(1), "{broken:#?}");
    let report: Value = serde_json::from_str(broken.stdout.trim()).expect("json");
    assert_eq!(report["agreed"], false);
    let mut kinds: Vec<(String, String)> = report["breaks"]
        .as_array()
        .expect("breaks")
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().expect("kind").to_string(),
                b["id"].as_str().expect("id").to_string(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("amount_differs".to_string(), "ORDER-1".to_string()),
            ("duplicate_in_books".to_string(), "ORDER-2".to_string()),
            ("missing_in_books".to_string(), "ORDER-3".to_string()),
        ],
        "{report}"
    );
    let differences = report["balance_differences"]
        .as_array()
        .expect("differences");
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["account"], alice_hex);
    // Chain: −30 +50 −25 = −5; books: −31 −25 −25 = −81: 76.00 less.
    assert_eq!(differences[0]["difference"], "-76.00", "{report}");
    let _ = bob_key;
}
