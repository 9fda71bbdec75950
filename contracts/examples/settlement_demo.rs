//! The payment model in one run: three banks, the 51-versus-50 example of DESIGN.md, a
//! transfer queued by a net debit cap and released by an incoming payment, and the cycle's
//! settlement report.
//!
//! `cargo run -p interpool-contracts --example settlement_demo`

use interpool_contracts::outcome::{BlockOutcome, Outcome, SettlementReport};
use interpool_contracts::testkit::{self, account, bank_id, customer_seed, key};
use interpool_contracts::{Amount, Body, Ledger, Transaction, VerifiedTransaction};

const DECIMALS: u8 = 2;

struct Demo {
    ledger: Ledger,
}

impl Demo {
    fn tx(&self, seed: u64, body: Body) -> VerifiedTransaction {
        let signer = account(seed);
        Transaction {
            chain_id: self.ledger.params().chain_id.clone(),
            signer,
            nonce: self.ledger.next_nonce(&signer).unwrap_or(0),
            valid_until_height: self.ledger.height() + 10,
            body,
        }
        .sign(&key(seed))
        .check_stateless(&self.ledger.params().chain_id)
        .expect("the demo signs well-formed transactions")
    }

    fn transfer(&self, from: u64, to: u64, amount: &str, e2e: &str) -> VerifiedTransaction {
        self.tx(
            from,
            Body::Transfer {
                to: account(to),
                amount: Amount::parse(amount, DECIMALS).expect("demo amounts are valid"),
                end_to_end_id: e2e.into(),
                reference: String::new(),
                terms: Default::default(),
            },
        )
    }

    fn block(&mut self, what: &str, txs: Vec<VerifiedTransaction>) -> BlockOutcome {
        let height = self.ledger.height() + 1;
        let outcome = self.ledger.apply_block(height, height * 1_000, &txs);
        self.ledger
            .check_invariants()
            .expect("invariants hold after every block");
        println!("block {height}: {what}");
        for receipt in &outcome.receipts {
            let status = match &receipt.outcome {
                Outcome::Committed => "committed".to_string(),
                Outcome::Queued { expires_at_height } => {
                    format!("queued (refunded if still queued after height {expires_at_height})")
                }
                Outcome::Rejected { error } => format!("rejected: {} ({})", error.code(), error),
            };
            println!("  tx {}…  {status}", &receipt.tx_hash.to_hex()[..12]);
        }
        for event in &outcome.released {
            println!(
                "  released {} {} → {} (queued at height {})",
                event.amount.format(DECIMALS),
                event.from_bank,
                event.to_bank,
                event.queued_at_height
            );
        }
        println!("  state root {}", outcome.state_root);
        outcome
    }

    fn positions(&self) {
        for (id, bank) in self.ledger.banks() {
            println!(
                "    {id:<8} net debit {:>8} of limit {:>8}   queued {}",
                bank.net_debit().format(DECIMALS),
                bank.debit_limit().format(DECIMALS),
                self.ledger.queue(id).count()
            );
        }
    }
}

fn main() {
    // Three banks, two customers each with 1,000.00; pools of 10,000.00. BANK_C's net debit
    // cap is only 20.00, so its customers' larger cross-bank payments wait for incoming money.
    let mut genesis = testkit::genesis(3, 2, 100_000, 1_000_000, 500_000);
    genesis.chain_id = "interpool-demo".into();
    genesis.banks[2].net_debit_cap = Amount(2_000);
    genesis.cycle_blocks = 1_000;
    let ledger = Ledger::from_genesis(&genesis).expect("demo genesis is valid");
    let mut demo = Demo { ledger };
    let (x, y, z) = (0, 1, 2);
    let customer = |bank: usize, i: usize| customer_seed(bank, i);

    println!(
        "Interpool settlement demo: banks {}, {}, {}; currency {}",
        bank_id(x),
        bank_id(y),
        bank_id(z),
        genesis.currency
    );
    println!("genesis state root {}\n", demo.ledger.state_root());

    let a = demo.transfer(customer(x, 0), customer(y, 0), "51.00", "DEMO-X-Y");
    let b = demo.transfer(customer(y, 1), customer(x, 1), "50.00", "DEMO-Y-X");
    let settle = demo.tx(testkit::AUTHORITY_SEED, Body::SettleCycle);
    let outcome = demo.block(
        "BANK_A's customer pays 51.00 to BANK_B, BANK_B's pays 50.00 back; the authority settles",
        vec![a, b, settle],
    );
    print_report(&outcome.settlement.expect("SettleCycle closes the cycle"));

    let c = demo.transfer(customer(z, 0), customer(x, 0), "30.00", "DEMO-Z-X");
    demo.block(
        "BANK_C's customer pays 30.00 to BANK_A: over BANK_C's 20.00 cap",
        vec![c],
    );
    demo.positions();

    let d = demo.transfer(customer(x, 1), customer(z, 1), "25.00", "DEMO-X-Z");
    let outcome = demo.block(
        "BANK_A's customer pays 25.00 to BANK_C: room for the queued 30.00",
        vec![d],
    );
    assert_eq!(outcome.released.len(), 1, "the queued transfer is released");
    demo.positions();

    let settle = demo.tx(testkit::AUTHORITY_SEED, Body::SettleCycle);
    let outcome = demo.block("the settlement authority closes the cycle", vec![settle]);
    print_report(&outcome.settlement.expect("SettleCycle closes the cycle"));
}

fn print_report(report: &SettlementReport) {
    println!(
        "\n  Settlement report, cycle {} (heights {}-{}, closed by {:?})",
        report.cycle, report.start_height, report.height, report.trigger
    );
    println!(
        "  {:<8} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "bank", "sent", "received", "net", "pool before", "pool after"
    );
    for p in &report.banks {
        println!(
            "  {:<8} {:>10} {:>10} {:>10} {:>12} {:>12}",
            p.bank.as_str(),
            p.sent.format(DECIMALS),
            p.received.format(DECIMALS),
            Amount::format_signed(p.net, DECIMALS),
            p.pool_before.format(DECIMALS),
            p.pool_after.format(DECIMALS)
        );
    }
    println!(
        "  gross {} settled by moving {} between pools\n",
        report.gross_total.format(DECIMALS),
        report.net_total.format(DECIMALS),
    );
}
