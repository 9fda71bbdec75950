//! The whole customer journey with the real wallet binary against a real consortium:
//! keys, accounts, deposits, a cross-bank transfer, a transfer queued by the net debit cap
//! and released by an incoming payment, settlement, a freeze, a verified balance, the
//! history, the event stream, and what the wallet says to bad input.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use interpool_contracts::{AccountId, Amount, Hash};
use interpool_tests::{run_with_env, spawn_with_env, Finished};
use serde_json::Value;

use crate::localnet::{path, wait_for, Localnet, Options};

/// The passphrase of the encrypted customer key.
const PASSPHRASE: &str = "correct horse battery staple";

/// Minor-unit digits of the localnet's currency.
const DECIMALS: u8 = 2;

/// Runs the wallet against `node` with `env`.
fn wallet_env(node: &str, env: &[(&str, &str)], args: &[&str]) -> Finished {
    let mut all: Vec<&str> = vec!["--node", node];
    all.extend_from_slice(args);
    // Never let an inherited passphrase make a test pass or fail by accident.
    let mut env = env.to_vec();
    if !env.iter().any(|(k, _)| *k == "INTERPOOL_PASSPHRASE") {
        env.push(("INTERPOOL_PASSPHRASE", ""));
    }
    run_with_env("interpool-wallet", &all, &env)
}

/// The one JSON document a `--json` command printed.
fn json(finished: Finished) -> Value {
    let stdout = finished.success();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"))
}

/// A decimal string of the API (`"-5.00"`) in signed minor units.
fn minor(text: &str) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = i128::from(
        Amount::parse(digits, DECIMALS)
            .unwrap_or_else(|e| panic!("{text:?} is not an amount: {e}"))
            .0,
    );
    if negative {
        -value
    } else {
        value
    }
}

/// Asserts an error run: exit `code`, `needle` in stderr, and (for exit 1) exactly one
/// stderr line starting with `error:`, never a panic or a backtrace.
fn assert_clear_error(finished: Finished, code: i32, needle: &str) {
    let finished = finished.failure(code, needle);
    let stderr = finished.stderr.trim_end();
    eprintln!("exit {code}: {stderr}");
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("backtrace")
            && !stderr.contains("internal error"),
        "a panic or backtrace: {stderr}"
    );
    assert!(
        stderr.starts_with("error:"),
        "not an error line: {stderr:?}"
    );
    if code == 1 {
        assert_eq!(stderr.lines().count(), 1, "more than one line: {stderr:?}");
    }
}

/// A customer of the journey.
struct Customer {
    id: AccountId,
    key: PathBuf,
    /// The passphrase environment the wallet needs for this key.
    env: Vec<(&'static str, &'static str)>,
}

/// What the test expects of the ledger: balances and bank positions in minor units.
#[derive(Default)]
struct Model {
    balances: BTreeMap<AccountId, i128>,
    /// Per bank: (sent, received) across banks in the open cycle.
    cycle: BTreeMap<String, (i128, i128)>,
}

impl Model {
    fn transfer(&mut self, from: (&AccountId, &str), to: (&AccountId, &str), amount: i128) {
        *self.balances.entry(*from.0).or_default() -= amount;
        *self.balances.entry(*to.0).or_default() += amount;
        if from.1 != to.1 {
            self.cycle.entry(from.1.to_string()).or_default().0 += amount;
            self.cycle.entry(to.1.to_string()).or_default().1 += amount;
        }
    }
}

struct Journey {
    net: Localnet,
    node: String,
    model: Model,
}

impl Journey {
    fn wallet(&self, customer: &Customer, args: &[&str]) -> Finished {
        wallet_env(&self.node, &customer.env, args)
    }

    fn official(&self, args: &[&str]) -> Finished {
        wallet_env(&self.node, &[], args)
    }

    fn key(&self, file: &str) -> String {
        path(&self.net.root().join(file)).to_string()
    }

    /// `balance ID --json` as the customer itself (its own key signs the read): (available,
    /// reserved) in minor units.
    fn balance(&self, customer: &Customer) -> (i128, i128) {
        let view = json(self.wallet(
            customer,
            &[
                "balance",
                &customer.id.to_hex(),
                "--key",
                path(&customer.key),
                "--json",
            ],
        ));
        (
            minor(view["balance"].as_str().expect("balance")),
            minor(view["reserved"].as_str().expect("reserved")),
        )
    }

    fn assert_balances(&self, customers: &[&Customer]) {
        for customer in customers {
            let expected = self.model.balances[&customer.id];
            assert_eq!(
                self.balance(customer),
                (expected, 0),
                "balance of {}",
                customer.id
            );
        }
    }

    /// `transfer --wait`, expecting it committed; returns its hash.
    fn transfer(&mut self, from: (&Customer, &str), to: (&Customer, &str), amount: &str) -> Hash {
        let answer = json(self.wallet(
            from.0,
            &[
                "transfer",
                "--key",
                path(&from.0.key),
                "--to",
                &to.0.id.to_hex(),
                "--amount",
                amount,
                "--wait",
                "--json",
            ],
        ));
        assert_eq!(answer["status"], "committed", "{answer}");
        self.model
            .transfer((&from.0.id, from.1), (&to.0.id, to.1), minor(amount));
        answer["hash"]
            .as_str()
            .expect("hash")
            .parse()
            .expect("hash")
    }

    fn tx_status(&self, hash: &Hash) -> Value {
        json(self.official(&["tx", &hash.to_hex(), "--json"]))
    }
}

/// `keygen`, then the operator of `bank` opens the account and deposits `deposit`.
fn onboard(
    journey: &mut Journey,
    name: &str,
    encrypted: bool,
    bank: &str,
    deposit: &str,
) -> Customer {
    let key = journey.net.root().join(format!("{name}.json"));
    let env: Vec<(&str, &str)> = if encrypted {
        vec![("INTERPOOL_PASSPHRASE", PASSPHRASE)]
    } else {
        vec![]
    };
    let mut args = vec!["keygen", "--out", path(&key), "--label", name, "--json"];
    if !encrypted {
        args.push("--insecure-plaintext");
    }
    let made = json(wallet_env(&journey.node, &env, &args));
    assert_eq!(made["encrypted"], encrypted, "{made}");
    let id: AccountId = made["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("id");
    let file = std::fs::read_to_string(&key).expect("key file");
    assert_eq!(
        file.contains("interpool-encrypted-key-v1"),
        encrypted,
        "{name}'s key file format"
    );
    // `address` reads the public key of either format without a passphrase.
    let address = json(wallet_env(
        &journey.node,
        &[],
        &["address", "--key", path(&key), "--json"],
    ));
    assert_eq!(address["address"], id.to_hex());

    let operator = journey.key(&format!("keys/operator-{bank}.json"));
    let opened = json(journey.official(&[
        "bank",
        "open-account",
        "--key",
        &operator,
        "--owner",
        &id.to_hex(),
        "--wait",
        "--json",
    ]));
    assert_eq!(opened["status"], "committed", "{opened}");
    let deposited = json(journey.official(&[
        "bank",
        "deposit",
        "--key",
        &operator,
        "--account",
        &id.to_hex(),
        "--amount",
        deposit,
        "--wait",
        "--json",
    ]));
    assert_eq!(deposited["status"], "committed", "{deposited}");
    journey.model.balances.insert(id, minor(deposit));
    let account = json(journey.official(&["account", &id.to_hex(), "--json"]));
    assert_eq!(account["bank"], bank, "{account}");
    Customer {
        id,
        key,
        env: if encrypted {
            vec![("INTERPOOL_PASSPHRASE", PASSPHRASE)]
        } else {
            vec![]
        },
    }
}

#[test]
fn a_customer_journey_with_the_wallet() {
    // Cycles close only when the authority says so, and a queued transfer waits long
    // enough for a loaded machine.
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
    let mut net = Localnet::generate(4, 1, 2, &options);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 1, Duration::from_secs(120));
    let node = net.nodes[0].rpc.clone();
    let genesis_file = net.root().join("genesis.json");
    let mut journey = Journey {
        net,
        node,
        model: Model::default(),
    };

    // Two new customers: Alice (encrypted key) at BANK_A, Bob (plain key) at BANK_B.
    let alice = onboard(&mut journey, "alice", true, "BANK_A", "100.00");
    let bob = onboard(&mut journey, "bob", false, "BANK_B", "100.00");
    journey.assert_balances(&[&alice, &bob]);
    let (a, b) = ((&alice, "BANK_A"), (&bob, "BANK_B"));

    // A cross-bank transfer commits at once.
    let first = journey.transfer(a, b, "30.00");
    journey.assert_balances(&[&alice, &bob]);

    // BANK_A's cap drops below its debit: Alice's next payment queues (exit 3 when the
    // short --wait runs out), with her funds reserved.
    let authority = journey.key("keys/authority.json");
    let cap = json(journey.official(&[
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
    ]));
    assert_eq!(cap["status"], "committed", "{cap}");
    let queued = journey.wallet(
        &alice,
        &[
            "transfer",
            "--key",
            path(&alice.key),
            "--to",
            &bob.id.to_hex(),
            "--amount",
            "25.00",
            "--wait",
            "--timeout",
            "3",
            "--json",
        ],
    );
    assert_eq!(
        queued.code,
        Some(3),
        "a queued transfer exits 3: {queued:#?}"
    );
    assert!(
        queued.stderr.contains("still"),
        "the wallet says it is still waiting: {queued:#?}"
    );
    let queued_hash: Hash = serde_json::from_str::<Value>(queued.stdout.trim()).expect("json")
        ["hash"]
        .as_str()
        .expect("hash")
        .parse()
        .expect("hash");
    wait_for(Duration::from_secs(60), "the transfer queued", || {
        journey.tx_status(&queued_hash)["status"] == "queued"
    });
    let alice_before = journey.model.balances[&alice.id];
    assert_eq!(
        journey.balance(&alice),
        (alice_before - 2_500, 2_500),
        "the queued 25.00 is reserved"
    );

    // Bob pays Alice 50.00: BANK_A's position goes to +20.00, which makes room for the
    // queued 25.00 under the 10.00 cap; it is released.
    let incoming = journey.transfer(b, a, "50.00");
    wait_for(
        Duration::from_secs(60),
        "the queued transfer released",
        || journey.tx_status(&queued_hash)["status"] == "committed",
    );
    journey
        .model
        .transfer((&alice.id, "BANK_A"), (&bob.id, "BANK_B"), 2_500);
    let released = journey.tx_status(&queued_hash);
    assert!(released["settled_height"].as_u64().is_some(), "{released}");
    journey.assert_balances(&[&alice, &bob]);

    // The authority closes the cycle; the report nets exactly this cycle's transfers.
    let settled = json(journey.official(&[
        "authority",
        "settle",
        "--key",
        &authority,
        "--wait",
        "--json",
    ]));
    assert_eq!(settled["status"], "committed", "{settled}");
    let mut report = Value::Null;
    wait_for(Duration::from_secs(60), "a settlement report", || {
        let answer = journey.official(&["cycle", "--json"]);
        if answer.code != Some(0) {
            return false;
        }
        report = serde_json::from_str(answer.stdout.trim()).expect("json");
        true
    });
    assert_eq!(report["trigger"], "authority", "{report}");
    let lines = report["banks"].as_array().expect("banks");
    let mut net_sum = 0i128;
    let mut gross = 0i128;
    let mut net_total = 0i128;
    for line in lines {
        let bank = line["bank"].as_str().expect("bank");
        let (sent, received) = journey.model.cycle.get(bank).copied().unwrap_or_default();
        let net = minor(line["net"].as_str().expect("net"));
        assert_eq!(
            (
                minor(line["sent"].as_str().expect("sent")),
                minor(line["received"].as_str().expect("received")),
                net
            ),
            (sent, received, received - sent),
            "{bank} in {report}"
        );
        assert_eq!(
            minor(line["pool_after"].as_str().expect("pool_after")),
            minor(line["pool_before"].as_str().expect("pool_before")) + net,
            "{bank}'s pool moves by its net position"
        );
        net_sum += net;
        gross += sent;
        net_total += net.max(0);
    }
    assert_eq!(net_sum, 0, "positions sum to zero: {report}");
    // 30 + 25 from BANK_A, 50 from BANK_B; BANK_A pays 5.00 net.
    assert_eq!(gross, 10_500);
    assert_eq!(minor(report["gross_total"].as_str().expect("gross")), gross);
    assert_eq!(minor(report["net_total"].as_str().expect("net")), net_total);
    assert_eq!(net_total, 500);
    journey.model.cycle.clear();

    // A frozen account cannot send; unfrozen, it can again.
    let regulator = journey.key("keys/regulator.json");
    let freeze = |verb: &str| {
        let answer = json(journey.official(&[
            "regulator",
            verb,
            "--key",
            &regulator,
            "--account",
            &alice.id.to_hex(),
            "--wait",
            "--json",
        ]));
        assert_eq!(answer["status"], "committed", "{verb}: {answer}");
    };
    freeze("freeze");
    let account = json(journey.official(&["account", &alice.id.to_hex(), "--json"]));
    assert_eq!(account["frozen"], true, "{account}");
    let refused = journey.wallet(
        &alice,
        &[
            "transfer",
            "--key",
            path(&alice.key),
            "--to",
            &bob.id.to_hex(),
            "--amount",
            "1.00",
            "--wait",
        ],
    );
    assert_clear_error(refused, 1, "account_frozen");
    journey.assert_balances(&[&alice, &bob]);
    freeze("unfreeze");
    let after_unfreeze = journey.transfer(a, b, "1.00");
    journey.assert_balances(&[&alice, &bob]);

    // The balance verified against the genesis validators, not the node.
    let verified = journey.official(&[
        "balance",
        &alice.id.to_hex(),
        "--verify",
        "--genesis",
        path(&genesis_file),
    ]);
    let text = verified.success();
    assert!(text.contains("verified"), "{text}");
    let expected = Amount(u64::try_from(journey.model.balances[&alice.id]).expect("positive"));
    assert!(text.contains(&expected.format(DECIMALS)), "{text}");
    let verified = json(journey.official(&[
        "balance",
        &alice.id.to_hex(),
        "--verify",
        "--genesis",
        path(&genesis_file),
        "--json",
    ]));
    assert_eq!(verified["account"]["balance"], expected.format(DECIMALS));
    assert!(
        verified["verified"]["signers"].as_u64().expect("signers") >= 3,
        "{verified}"
    );

    // The history: newest first, with every transaction of the journey.
    let history =
        json(journey.official(&["history", &alice.id.to_hex(), "--limit", "50", "--json"]));
    let listed: Vec<(u64, u64, Hash)> = history["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|tx| {
            (
                tx["receipt"]["height"].as_u64().expect("height"),
                tx["receipt"]["index"].as_u64().expect("index"),
                tx["hash"].as_str().expect("hash").parse().expect("hash"),
            )
        })
        .collect();
    assert!(
        listed
            .windows(2)
            .all(|w| (w[0].0, w[0].1) > (w[1].0, w[1].1)),
        "not newest first: {history}"
    );
    let position = |hash: &Hash| {
        listed
            .iter()
            .position(|(_, _, h)| h == hash)
            .unwrap_or_else(|| panic!("{hash} missing from {history}"))
    };
    let order: Vec<usize> = [after_unfreeze, incoming, queued_hash, first]
        .iter()
        .map(position)
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?} in {history}"
    );
    // open-account, deposit, 3 transfers sent, 1 received, freeze, unfreeze.
    assert!(listed.len() >= 8, "{history}");

    // `watch` prints the events of transfers made while it runs. It follows from the
    // block after it connects, so keep paying Alice until it has printed two events.
    let watch_args = [
        "--node",
        journey.node.as_str(),
        "watch",
        "--account",
        &alice.id.to_hex(),
        "--limit",
        "2",
        "--json",
    ];
    let mut watch = spawn_with_env("interpool-wallet", watch_args, &[]);
    let mut sent: Vec<Hash> = Vec::new();
    wait_for(
        Duration::from_secs(180),
        "watch to print two events",
        || {
            if watch.exited() {
                return true;
            }
            sent.push(journey.transfer(b, a, "1.00"));
            false
        },
    );
    let watched = watch.finish(Duration::from_secs(30));
    let events: Vec<Value> = watched
        .success()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let hashes: Vec<Hash> = events
        .iter()
        .map(|e| {
            assert_eq!(e["event"]["kind"], "transaction", "{e}");
            assert!(
                e["event"]["accounts"]
                    .as_array()
                    .expect("accounts")
                    .iter()
                    .any(|a| a == &alice.id.to_hex()),
                "{e}"
            );
            e["event"]["receipt"]["tx_hash"]
                .as_str()
                .expect("hash")
                .parse()
                .expect("hash")
        })
        .collect();
    let at = sent
        .iter()
        .position(|h| *h == hashes[0])
        .unwrap_or_else(|| panic!("{hashes:?} are not the transfers made {sent:?}"));
    assert_eq!(sent.get(at + 1), Some(&hashes[1]), "{hashes:?} vs {sent:?}");
    journey.assert_balances(&[&alice, &bob]);

    // Bad input: a clear line on stderr and the documented exit code.
    let unknown = AccountId([0x42; 32]);
    // Three decimal places where the currency has two, or no number at all: usage errors.
    for bad_amount in ["1.234", "1,50"] {
        let finished = journey.wallet(
            &bob,
            &[
                "transfer",
                "--key",
                path(&bob.key),
                "--to",
                &alice.id.to_hex(),
                "--amount",
                bad_amount,
            ],
        );
        assert_clear_error(finished, 2, bad_amount);
    }
    let bad_id = journey.wallet(
        &bob,
        &[
            "transfer",
            "--key",
            path(&bob.key),
            "--to",
            "not-an-account",
            "--amount",
            "1.00",
        ],
    );
    assert_clear_error(bad_id, 2, "not-an-account");
    assert_clear_error(
        journey.official(&["balance", &unknown.to_hex()]),
        1,
        "unknown_account",
    );
    assert_clear_error(
        journey.wallet(
            &bob,
            &[
                "transfer",
                "--key",
                path(&bob.key),
                "--to",
                &unknown.to_hex(),
                "--amount",
                "1.00",
                "--wait",
            ],
        ),
        1,
        "unknown_account",
    );
    assert_clear_error(
        wallet_env(
            &journey.node,
            &[("INTERPOOL_PASSPHRASE", "not the passphrase")],
            &[
                "transfer",
                "--key",
                path(&alice.key),
                "--to",
                &bob.id.to_hex(),
                "--amount",
                "1.00",
            ],
        ),
        1,
        "wrong passphrase",
    );
    // None of them moved money.
    journey.assert_balances(&[&alice, &bob]);
}
