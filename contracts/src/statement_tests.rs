//! Statements: every balance reconciles, entries book what the ledger did, from any opening
//! ledger of the cycle.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::block::BlockHeader;
use crate::testkit::{self, account, bank_id, customer_seed, key, operator_seed, AUTHORITY_SEED};
use crate::tx::VerifiedTransaction;

/// A chain driven block by block, keeping each block, its outcome and each ledger.
struct Chain {
    ledger: Ledger,
    nonces: HashMap<u64, u64>,
    /// (block, outcome, ledger after it) by height − 1.
    blocks: Vec<(Block, BlockOutcome, Ledger)>,
    genesis_ledger: Ledger,
}

impl Chain {
    /// 3 banks × 3 customers with 1,000.00 each; pools 10,000.00; caps `cap`; cycles of 5.
    fn new(cap: u64) -> Chain {
        let mut genesis = testkit::genesis(3, 3, 100_000, 1_000_000, cap);
        genesis.cycle_blocks = 5;
        let ledger = Ledger::from_genesis(&genesis).expect("genesis");
        Chain {
            genesis_ledger: ledger.clone(),
            ledger,
            nonces: HashMap::new(),
            blocks: Vec::new(),
        }
    }

    fn tx(&mut self, seed: u64, body: Body) -> VerifiedTransaction {
        let signer = account(seed);
        let known = self.ledger.next_nonce(&signer).unwrap_or(0);
        let next = self.nonces.entry(seed).or_insert(known);
        *next = (*next).max(known);
        let nonce = *next;
        *next += 1;
        Transaction {
            chain_id: "test".into(),
            signer,
            nonce,
            valid_until_height: self.ledger.height() + 10,
            body,
        }
        .sign(&key(seed))
        .check_stateless("test")
        .expect("well-formed")
    }

    fn block(&mut self, txs: Vec<VerifiedTransaction>) -> BlockOutcome {
        let height = self.ledger.height() + 1;
        let outcome = self
            .ledger
            .apply_block(height, 1_700_000_000_000 + height * 1_000, &txs);
        self.ledger.check_invariants().expect("invariants");
        let block = Block {
            header: BlockHeader {
                chain_id: "test".into(),
                height,
                parent_hash: Hash([0; 32]),
                previous_state_root: Hash([0; 32]),
                timestamp_ms: 1_700_000_000_000 + height * 1_000,
                proposer: account(0),
            },
            transactions: txs.into_iter().map(|t| t.into_signed()).collect(),
        };
        self.blocks
            .push((block, outcome.clone(), self.ledger.clone()));
        outcome
    }

    fn ledger_at(&self, height: u64) -> &Ledger {
        match height {
            0 => &self.genesis_ledger,
            h => &self.blocks[h as usize - 1].2,
        }
    }

    fn find_tx(&self, hash: &Hash) -> Option<Transaction> {
        self.blocks
            .iter()
            .flat_map(|(b, _, _)| &b.transactions)
            .find(|t| t.hash() == *hash)
            .map(|t| t.tx.clone())
    }

    /// The statements of the cycle that closed at `end`, opening from the ledger at
    /// `reference`.
    fn statements(&self, end: u64, reference: u64) -> Result<Vec<BankStatement>, StatementError> {
        let closing = self.ledger_at(end);
        let report = closing.latest_settlement_report().expect("a closed cycle");
        let from_ms = report
            .start_height
            .checked_sub(1)
            .filter(|h| *h > 0)
            .map(|h| self.blocks[h as usize - 1].0.header.timestamp_ms);
        let mut books = CycleBooks::new(report.cycle, report.start_height, from_ms);
        for height in report.start_height..=end {
            let (block, outcome, _) = &self.blocks[height as usize - 1];
            books.add_block(block, outcome, |h| self.find_tx(h))?;
        }
        books.finish(self.ledger_at(reference), closing)
    }
}

fn transfer(to: u64, amount: u64, e2e: &str) -> Body {
    Body::Transfer {
        to: account(to),
        amount: Amount(amount),
        end_to_end_id: e2e.into(),
        reference: format!("ref {e2e}"),
        terms: Default::default(),
    }
}

fn bank(b: usize) -> BankId {
    bank_id(b)
}

fn statement_of(statements: &[BankStatement], b: usize) -> &BankStatement {
    statements
        .iter()
        .find(|s| s.bank == bank(b))
        .expect("every bank has a statement")
}

#[test]
fn a_cycle_books_transfers_deposits_withdrawals_and_the_pools_settlement() {
    let mut chain = Chain::new(50_000);
    let (a, b, c) = (
        customer_seed(0, 0),
        customer_seed(0, 1),
        customer_seed(1, 0),
    );
    let t1 = chain.tx(a, transfer(b, 1_000, "E2E-1"));
    let t2 = chain.tx(a, transfer(c, 2_500, "E2E-2"));
    let d = chain.tx(
        operator_seed(0),
        Body::Deposit {
            account: account(b),
            amount: Amount(700),
        },
    );
    chain.block(vec![t1, t2, d]);
    let w = chain.tx(
        operator_seed(1),
        Body::Withdraw {
            account: account(c),
            amount: Amount(300),
        },
    );
    let i = chain.tx(
        AUTHORITY_SEED,
        Body::Issue {
            bank: bank(1),
            amount: Amount(9_000),
        },
    );
    chain.block(vec![w, i]);
    for _ in 0..3 {
        chain.block(vec![]);
    }
    let statements = chain.statements(5, 0).expect("balanced");
    assert_eq!(statements.len(), 3);

    let first = statement_of(&statements, 0);
    assert_eq!(
        (first.cycle, first.start_height, first.end_height),
        (1, 1, 5)
    );
    assert_eq!(
        first.from_ms, 1_700_000_001_000,
        "no block before the first: its own time"
    );
    assert_eq!(first.to_ms, 1_700_000_005_000);
    let payer = first.account(&account(a)).expect("the payer moved");
    assert_eq!(payer.opening, 100_000);
    assert_eq!(payer.closing, 100_000 - 3_500);
    let debits: Vec<_> = payer
        .entries
        .iter()
        .map(|e| {
            (
                e.direction,
                e.amount.0,
                e.end_to_end_id.as_deref(),
                e.balance_after,
            )
        })
        .collect();
    assert_eq!(
        debits,
        vec![
            (Direction::Debit, 1_000, Some("E2E-1"), 99_000),
            (Direction::Debit, 2_500, Some("E2E-2"), 96_500)
        ]
    );
    assert_eq!(payer.entries[1].counterparty, Some(account(c)));
    assert_eq!(payer.entries[1].counterparty_bank, Some(bank(1)));
    assert_eq!(payer.entries[1].reference.as_deref(), Some("ref E2E-2"));
    let payee = first.account(&account(b)).expect("the payee moved");
    assert_eq!(payee.closing, 100_000 + 1_000 + 700);
    assert_eq!(payee.entries[1].kind, EntryKind::Deposit);
    assert_eq!(first.accounts.len(), 2);
    assert_eq!(first.accounts_without_movement, 1);
    // Bank 0 pays 2,500 net at the close.
    assert_eq!(first.pool.opening, 1_000_000);
    assert_eq!(first.pool.closing, 1_000_000 - 2_500);
    assert_eq!(first.pool.entries.len(), 1);
    assert_eq!(first.pool.entries[0].kind, EntryKind::Settlement);
    assert_eq!(first.pool.entries[0].height, 5);

    let second = statement_of(&statements, 1);
    let cust = second.account(&account(c)).expect("moved");
    assert_eq!(cust.closing, 100_000 + 2_500 - 300);
    assert_eq!(cust.entries[1].kind, EntryKind::Withdraw);
    let pool: Vec<_> = second
        .pool
        .entries
        .iter()
        .map(|e| (e.kind, e.amount.0))
        .collect();
    assert_eq!(
        pool,
        vec![(EntryKind::Issue, 9_000), (EntryKind::Settlement, 2_500)]
    );
    assert_eq!(second.pool.closing, 1_000_000 + 9_000 + 2_500);

    let third = statement_of(&statements, 2);
    assert!(third.accounts.is_empty() && third.pool.entries.is_empty());
    assert_eq!(third.accounts_without_movement, 3);
}

#[test]
fn a_queued_transfer_is_booked_when_released_and_not_while_it_waits() {
    // Cap 10.00: a 50.00 transfer queues until the authority raises the cap.
    let mut chain = Chain::new(1_000);
    let (a, c) = (customer_seed(0, 0), customer_seed(1, 0));
    let queued = chain.tx(a, transfer(c, 5_000, "Q-1"));
    let outcome = chain.block(vec![queued]);
    assert!(matches!(
        outcome.receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    let back = chain.tx(c, transfer(a, 800, "BACK"));
    let raise = chain.tx(
        AUTHORITY_SEED,
        Body::SetNetDebitCap {
            bank: bank(0),
            cap: Amount(1_000_000),
        },
    );
    let outcome = chain.block(vec![back, raise]);
    assert_eq!(outcome.released.len(), 1);
    for _ in 0..3 {
        chain.block(vec![]);
    }
    let statements = chain.statements(5, 0).expect("balanced");
    let payer = statement_of(&statements, 0)
        .account(&account(a))
        .expect("moved");
    let entries: Vec<_> = payer
        .entries
        .iter()
        .map(|e| {
            (
                e.height,
                e.direction,
                e.amount.0,
                e.end_to_end_id.as_deref(),
            )
        })
        .collect();
    // The incoming 8.00 is receipt 0 of block 2; the release follows the receipts.
    assert_eq!(
        entries,
        vec![
            (2, Direction::Credit, 800, Some("BACK")),
            (2, Direction::Debit, 5_000, Some("Q-1"))
        ]
    );
    assert_eq!(payer.entries[1].position, 2);
    assert_eq!(payer.closing, 100_000 + 800 - 5_000);

    // A transfer still queued when the cycle closes is reserved, not booked.
    let lower = chain.tx(
        AUTHORITY_SEED,
        Body::SetNetDebitCap {
            bank: bank(0),
            cap: Amount(1_000),
        },
    );
    let stuck = chain.tx(a, transfer(c, 90_000, "STUCK"));
    let outcome = chain.block(vec![lower, stuck]);
    assert!(matches!(
        outcome.receipts[1].outcome,
        Outcome::Queued { .. }
    ));
    for _ in 0..4 {
        chain.block(vec![]);
    }
    let statements = chain.statements(10, 5).expect("balanced");
    assert!(statement_of(&statements, 0).account(&account(a)).is_none());
    assert_eq!(
        chain
            .ledger_at(10)
            .account(&account(a))
            .expect("a")
            .reserved
            .0,
        90_000
    );
}

#[test]
fn a_missing_block_or_a_wrong_opening_ledger_is_refused() {
    let mut chain = Chain::new(50_000);
    let t = chain.tx(customer_seed(0, 0), transfer(customer_seed(1, 0), 100, "X"));
    chain.block(vec![t]);
    for _ in 0..9 {
        chain.block(vec![]);
    }
    // Cycle 2 is 6..=10: a ledger from cycle 1's middle cannot open it.
    assert!(matches!(
        chain.statements(10, 3),
        Err(StatementError::WrongOpening { .. })
    ));
    let report = chain
        .ledger_at(10)
        .latest_settlement_report()
        .expect("closed")
        .clone();
    let mut books = CycleBooks::new(report.cycle, report.start_height, None);
    let (block, outcome, _) = &chain.blocks[6];
    assert!(matches!(
        books.add_block(block, outcome, |_| None),
        Err(StatementError::OutOfOrder {
            expected: 6,
            got: 7,
            ..
        })
    ));
    let (block, outcome, _) = &chain.blocks[5];
    books.add_block(block, outcome, |_| None).expect("in order");
    assert!(matches!(
        books.finish(chain.ledger_at(5), chain.ledger_at(10)),
        Err(StatementError::Incomplete {
            end: 10,
            added: 6,
            ..
        })
    ));
    // An entry left out (the transfer's block) leaves cycle 1 unbalanced.
    let mut books = CycleBooks::new(1, 1, None);
    let mut empty = chain.blocks[0].clone();
    empty.1.receipts.clear();
    books
        .add_block(&empty.0, &empty.1, |_| None)
        .expect("block 1");
    for (block, outcome, _) in &chain.blocks[1..5] {
        books.add_block(block, outcome, |_| None).expect("in order");
    }
    assert!(matches!(
        books.finish(chain.ledger_at(0), chain.ledger_at(5)),
        Err(StatementError::Unbalanced { .. })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Transfer { from: usize, to: usize, amount: u64 },
    Deposit { account: usize, amount: u64 },
    Withdraw { account: usize, amount: u64 },
    Issue { bank: usize, amount: u64 },
    Redeem { bank: usize, amount: u64 },
    Settle,
    NextBlock,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..9usize, 0..9usize, 1..60_000u64)
            .prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        1 => (0..9usize, 1..50_000u64).prop_map(|(account, amount)| Op::Deposit { account, amount }),
        1 => (0..9usize, 1..50_000u64).prop_map(|(account, amount)| Op::Withdraw { account, amount }),
        1 => (0..3usize, 1..500_000u64).prop_map(|(bank, amount)| Op::Issue { bank, amount }),
        1 => (0..3usize, 1..500_000u64).prop_map(|(bank, amount)| Op::Redeem { bank, amount }),
        1 => Just(Op::Settle),
        3 => Just(Op::NextBlock),
    ]
}

fn customer(i: usize) -> u64 {
    customer_seed(i / 3, i % 3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the chain did, every closed cycle's statements balance (opening plus entries
    /// is the closing the ledger holds, for every account and pool), from the previous
    /// cycle's closing ledger and from any ledger inside the cycle, and both give the same
    /// statements.
    #[test]
    fn every_cycles_statements_balance_from_any_opening_ledger(
        ops in prop::collection::vec(op(), 1..120),
        cap in prop_oneof![Just(5_000u64), Just(50_000), Just(1_000_000)],
    ) {
        let mut chain = Chain::new(cap);
        let mut pending = Vec::new();
        let mut e2e = 0u64;
        for op in ops {
            let op_is_block = matches!(op, Op::NextBlock);
            let tx = match op {
                Op::Transfer { from, to, .. } if from == to => None,
                Op::Transfer { from, to, amount } => {
                    e2e += 1;
                    Some(chain.tx(customer(from), transfer(customer(to), amount, &format!("P{e2e}"))))
                }
                Op::Deposit { account: i, amount } => Some(chain.tx(
                    operator_seed(i / 3),
                    Body::Deposit { account: account(customer(i)), amount: Amount(amount) },
                )),
                Op::Withdraw { account: i, amount } => Some(chain.tx(
                    operator_seed(i / 3),
                    Body::Withdraw { account: account(customer(i)), amount: Amount(amount) },
                )),
                Op::Issue { bank: b, amount } => {
                    Some(chain.tx(AUTHORITY_SEED, Body::Issue { bank: bank(b), amount: Amount(amount) }))
                }
                Op::Redeem { bank: b, amount } => {
                    Some(chain.tx(AUTHORITY_SEED, Body::Redeem { bank: bank(b), amount: Amount(amount) }))
                }
                Op::Settle => Some(chain.tx(AUTHORITY_SEED, Body::SettleCycle)),
                Op::NextBlock => None,
            };
            match (tx, op_is_block) {
                (Some(tx), _) => pending.push(tx),
                (None, true) => { chain.block(std::mem::take(&mut pending)); }
                (None, false) => {}
            }
        }
        chain.block(pending);
        // Close the last cycle.
        let settle = chain.tx(AUTHORITY_SEED, Body::SettleCycle);
        chain.block(vec![settle]);

        let mut previous_end = 0u64;
        let closes: Vec<u64> = chain
            .blocks
            .iter()
            .filter(|(_, o, _)| o.settlement.is_some())
            .map(|(b, _, _)| b.header.height)
            .collect();
        prop_assert!(!closes.is_empty());
        for end in closes {
            let from_previous = chain.statements(end, previous_end).expect("balanced");
            let middle = previous_end + (end - previous_end) / 2;
            let from_middle = chain.statements(end, middle).expect("balanced from the middle");
            prop_assert_eq!(&from_previous, &from_middle);
            let from_closing = chain.statements(end, end).expect("balanced from the close");
            prop_assert_eq!(&from_previous, &from_closing);
            // Every account of the closing ledger is listed or did not move.
            let closing = chain.ledger_at(end);
            let listed: usize = from_previous.iter().map(|s| s.accounts.len()).sum();
            let unmoved: u64 = from_previous.iter().map(|s| s.accounts_without_movement).sum();
            prop_assert_eq!(listed as u64 + unmoved, closing.accounts().count() as u64);
            // Each transfer entry has its mirror on the other side.
            let transfers: Vec<_> = from_previous
                .iter()
                .flat_map(|s| &s.accounts)
                .flat_map(|a| a.entries.iter().map(move |e| (a.account, e)))
                .filter(|(_, e)| e.kind == EntryKind::Transfer)
                .collect();
            for (owner, entry) in &transfers {
                let mirror = transfers.iter().filter(|(other, e)| {
                    Some(*other) == entry.counterparty
                        && e.tx_hash == entry.tx_hash
                        && e.direction != entry.direction
                        && e.amount == entry.amount
                        && e.counterparty == Some(*owner)
                });
                prop_assert_eq!(mirror.count(), 1);
            }
            // Settlement entries net to zero across the banks.
            let net: i128 = from_previous
                .iter()
                .flat_map(|s| &s.pool.entries)
                .filter(|e| e.kind == EntryKind::Settlement)
                .map(Entry::signed_amount)
                .sum();
            prop_assert_eq!(net, 0);
            previous_end = end;
        }
    }
}
