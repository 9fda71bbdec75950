//! Liquidity management on a real consortium with the real wallet: a gridlock that would
//! wait in the queues until expiry is settled by the liquidity-saving pass; priorities,
//! reprioritising and cancelling queued transfers with `interpool-wallet`.

use std::time::Duration;

use interpool_contracts::views::{EventView, TxStatus, TxStatusView};
use interpool_contracts::Hash;
use interpool_tests::{run_with_env, Finished};
use serde_json::Value;

use crate::events::read_events;
use crate::localnet::{path, tx_status, wait_for, Localnet, Options};

/// Runs the wallet against `node`.
fn wallet(node: &str, args: &[&str]) -> Finished {
    let mut all: Vec<&str> = vec!["--node", node];
    all.extend_from_slice(args);
    run_with_env("interpool-wallet", &all, &[("INTERPOOL_PASSPHRASE", "")])
}

/// The one JSON document a `--json` command printed.
fn json(finished: Finished) -> Value {
    let stdout = finished.success();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"))
}

fn hash_of(answer: &Value) -> Hash {
    answer["hash"]
        .as_str()
        .expect("hash")
        .parse()
        .expect("hash")
}

struct Net {
    net: Localnet,
    node: String,
}

impl Net {
    fn file(&self, relative: &str) -> String {
        path(&self.net.root().join(relative)).to_string()
    }

    /// Key file and account id of sample customer `index` of bank number `bank`.
    fn customer(&self, bank: usize, index: usize) -> (String, String) {
        let account = &self.net.manifest["banks"][bank]["accounts"][index];
        (
            self.file(account["key_file"].as_str().expect("key file")),
            account["id"].as_str().expect("id").to_string(),
        )
    }

    fn operator(&self, bank: usize) -> String {
        self.file(
            self.net.manifest["banks"][bank]["operator_key_file"]
                .as_str()
                .expect("operator key file"),
        )
    }

    /// Submits a transfer without waiting; returns its hash.
    fn send(&self, from: (usize, usize), to: (usize, usize), amount: &str, extra: &[&str]) -> Hash {
        let (key, _) = self.customer(from.0, from.1);
        let (_, payee) = self.customer(to.0, to.1);
        let mut args = vec![
            "transfer", "--key", &key, "--to", &payee, "--amount", amount,
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        hash_of(&json(wallet(&self.node, &args)))
    }

    fn status(&self, hash: &Hash) -> Option<TxStatusView> {
        tx_status(&self.node, hash)
    }

    fn wait_status(&self, hash: &Hash, status: TxStatus, what: &str) -> TxStatusView {
        let mut last = None;
        wait_for(Duration::from_secs(60), what, || {
            last = self.status(hash);
            last.as_ref().is_some_and(|view| view.status == status)
        });
        last.expect("seen")
    }

    /// `balance ID --json`: (available, reserved) as the API prints them.
    fn balance(&self, id: &str) -> (String, String) {
        let view = json(wallet(&self.node, &["balance", id, "--json"]));
        (
            view["balance"].as_str().expect("balance").to_string(),
            view["reserved"].as_str().expect("reserved").to_string(),
        )
    }
}

#[test]
fn a_gridlock_is_settled_by_the_pass_and_queues_are_managed_with_the_wallet() {
    // Caps of 500.00, cycles that close only on request, queues that wait long: without
    // the pass, the ring below would wait until its expiry.
    let options = Options {
        genesis_args: [
            "--cycle-blocks",
            "1000000",
            "--queue-expiry-blocks",
            "100000",
            "--cap",
            "500.00",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Options::default()
    };
    let mut net = Localnet::generate(4, 0, 3, &options);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 1, Duration::from_secs(120));
    let node = net.nodes[0].rpc.clone();
    let net = Net { net, node };

    // A ring: each bank's customer pays the next bank 600.00, over every cap. The first two
    // wait in their queues, each for money that waits in another queue.
    let first = net.send((0, 0), (1, 0), "600.00", &[]);
    let second = net.send((1, 0), (2, 0), "600.00", &[]);
    net.wait_status(&first, TxStatus::Queued, "the first of the ring queued");
    net.wait_status(&second, TxStatus::Queued, "the second of the ring queued");
    // The third closes the ring: the pass settles all three together.
    let third = net.send((2, 0), (0, 0), "600.00", &[]);
    for hash in [first, second, third] {
        let view = net.wait_status(&hash, TxStatus::Committed, "the ring settled");
        assert!(
            view.settled_height.is_some(),
            "{hash} was released from the queue, not committed alone: {view:?}"
        );
    }
    for bank in 0..3 {
        let (_, id) = net.customer(bank, 0);
        assert_eq!(net.balance(&id), ("1000.00".into(), "0.00".into()));
    }
    // The event stream says so.
    let url = format!("{}/v1/events?after=0:0&bank=BANK_A", net.node);
    let events = read_events(&url, None, Duration::from_secs(60), |events| {
        events
            .iter()
            .any(|(_, e)| matches!(e, EventView::GridlockResolved { .. }))
    });
    let run = events
        .iter()
        .find_map(|(_, e)| match e {
            EventView::GridlockResolved { run } => Some(run.clone()),
            _ => None,
        })
        .expect("gridlock_resolved event");
    assert_eq!(
        (run.settled, run.value, run.all_at_once),
        (3, 180_000, true)
    );

    // Priorities: a normal 600.00 from BANK_A queues. A normal 100.00 passes it (it fits),
    // and a high 450.00 then queues too (100.00 + 450.00 is over the cap).
    let normal = net.send((0, 1), (1, 1), "600.00", &[]);
    net.wait_status(&normal, TxStatus::Queued, "the normal transfer queued");
    let fits = net.send((0, 0), (1, 0), "100.00", &[]);
    net.wait_status(&fits, TxStatus::Committed, "the normal 100.00 committed");
    // A customer's high transfer larger than its bank's whole debit limit (min(cap, pool))
    // would stop every later transfer of the bank behind it: it is refused, not queued.
    let (over_key, _) = net.customer(0, 0);
    let (_, payee) = net.customer(2, 0);
    wallet(
        &net.node,
        &[
            "transfer",
            "--key",
            &over_key,
            "--to",
            &payee,
            "--amount",
            "501.00",
            "--priority",
            "high",
        ],
    )
    .failure(1, "high_over_debit_limit");
    let high = net.send((0, 0), (2, 1), "450.00", &["--priority", "high"]);
    net.wait_status(&high, TxStatus::Queued, "the high transfer queued");
    // BANK_A's operator moves the normal one up; its payer then cancels it.
    let operator = net.operator(0);
    let normal_hex = normal.to_hex();
    let moved = json(wallet(
        &net.node,
        &[
            "bank",
            "reprioritise",
            &normal_hex,
            "--priority",
            "high",
            "--key",
            &operator,
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(moved["status"], "committed", "{moved}");
    let (payer_key, payer) = net.customer(0, 1);
    assert_eq!(net.balance(&payer), ("400.00".into(), "600.00".into()));
    let cancelled = json(wallet(
        &net.node,
        &[
            "cancel",
            &normal_hex,
            "--key",
            &payer_key,
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(cancelled["status"], "committed", "{cancelled}");
    let view = net.wait_status(&normal, TxStatus::Cancelled, "the fate cancelled");
    assert!(view.settled_height.is_some());
    assert_eq!(net.balance(&payer), ("1000.00".into(), "0.00".into()));
    let tx = json(wallet(&net.node, &["tx", &normal_hex, "--json"]));
    assert_eq!(tx["status"], "cancelled", "{tx}");
    // Cancelling it again, or cancelling someone else's, is refused with a code.
    wallet(&net.node, &["cancel", &normal_hex, "--key", &payer_key]).failure(1, "not_queued");
    let high_hex = high.to_hex();
    let (stranger, _) = net.customer(1, 1);
    wallet(&net.node, &["cancel", &high_hex, "--key", &stranger]).failure(1, "unauthorized");

    // Room for the high one: the authority raises BANK_A's cap, and asks for a pass too.
    let authority = net.file("keys/authority.json");
    json(wallet(
        &net.node,
        &[
            "authority",
            "set-cap",
            "--bank",
            "BANK_A",
            "--amount",
            "1000.00",
            "--key",
            &authority,
            "--wait",
            "--json",
        ],
    ));
    net.wait_status(&high, TxStatus::Committed, "the high transfer released");
    let pass = json(wallet(
        &net.node,
        &[
            "authority",
            "resolve-gridlock",
            "--key",
            &authority,
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(pass["status"], "committed", "{pass}");
}
