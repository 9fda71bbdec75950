//! Unit tests of the ledger: every body, every stateful rejection, queues and settlement.

use std::collections::HashMap;

use super::*;
use crate::outcome::Outcome;
use crate::testkit::{self, account, bank_id, customer_seed, key, operator_seed};
use crate::tx::{Body, Transaction};

const AUTHORITY: u64 = testkit::AUTHORITY_SEED;
const REGULATOR: u64 = testkit::REGULATOR_SEED;

pub(super) fn op(b: usize) -> u64 {
    operator_seed(b)
}

pub(super) fn cust(b: usize, i: usize) -> u64 {
    customer_seed(b, i)
}

pub(super) fn bank(b: usize) -> BankId {
    bank_id(b)
}

pub(super) struct Harness {
    pub(super) ledger: Ledger,
    nonces: HashMap<u64, u64>,
}

impl Harness {
    /// 3 banks × 3 customers with 1,000.00 each; pools 10,000.00; caps 500.00. The
    /// liquidity-saving pass runs only on request, so these tests see the queues alone.
    pub(super) fn new() -> Self {
        let mut genesis = testkit::genesis(3, 3, 100_000, 1_000_000, 50_000);
        genesis.gridlock_pass = GridlockPass::OnRequest;
        Self::with(genesis)
    }

    pub(super) fn with(genesis: Genesis) -> Self {
        let ledger = Ledger::from_genesis(&genesis).expect("valid genesis");
        ledger.check_invariants().expect("genesis invariants");
        ledger
            .check_block_invariants()
            .expect("genesis invariants, per block");
        Self {
            ledger,
            nonces: HashMap::new(),
        }
    }

    pub(super) fn tx(&mut self, seed: u64, body: Body) -> VerifiedTransaction {
        let signer = account(seed);
        let known = self.ledger.next_nonce(&signer).unwrap_or(0);
        let next = self.nonces.entry(seed).or_insert(known);
        *next = (*next).max(known);
        let nonce = *next;
        *next += 1;
        self.tx_with_nonce(seed, nonce, body)
    }

    fn tx_with_nonce(&self, seed: u64, nonce: u64, body: Body) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(seed),
            nonce,
            // Within the genesis's validity horizon, which some tests shorten.
            valid_until_height: self.ledger.height()
                + self.ledger.params().max_validity_blocks.min(10),
            body,
        }
        .sign(&key(seed))
        .check_stateless("test")
        .expect("test transactions are well-formed")
    }

    pub(super) fn block(&mut self, txs: Vec<VerifiedTransaction>) -> BlockOutcome {
        let time = self.ledger.time_ms() + 1_000;
        self.block_at(time, txs)
    }

    /// A block timed `time_ms`.
    pub(super) fn block_at(&mut self, time_ms: u64, txs: Vec<VerifiedTransaction>) -> BlockOutcome {
        let height = self.ledger.height() + 1;
        let outcome = self.ledger.apply_block(height, time_ms, &txs);
        self.ledger
            .check_invariants()
            .expect("invariants after block");
        self.ledger
            .check_block_invariants()
            .expect("per-block invariants after block");
        outcome
    }

    pub(super) fn run(&mut self, seed: u64, body: Body) -> Outcome {
        let tx = self.tx(seed, body);
        self.block(vec![tx]).receipts[0].outcome.clone()
    }

    pub(super) fn balance(&self, seed: u64) -> u64 {
        self.ledger
            .account(&account(seed))
            .expect("account")
            .balance
            .0
    }

    pub(super) fn reserved(&self, seed: u64) -> u64 {
        self.ledger
            .account(&account(seed))
            .expect("account")
            .reserved
            .0
    }

    pub(super) fn bank(&self, b: usize) -> &Bank {
        self.ledger.bank(&bank(b)).expect("bank")
    }

    /// Applies a transaction expected to be rejected with `expected`, and proves the state
    /// is unchanged except for the signer's nonce (consumed iff `consumes_nonce`).
    pub(super) fn expect_rejected(
        &mut self,
        tx: VerifiedTransaction,
        expected: TxError,
        consumes_nonce: bool,
    ) {
        let before = self.ledger.clone();
        let signer = tx.tx().signer;
        let outcome = self.block(vec![tx]);
        assert_eq!(
            outcome.receipts[0].outcome,
            Outcome::Rejected {
                error: expected.clone()
            }
        );
        assert_eq!(
            self.ledger.next_nonce(&signer),
            before
                .next_nonce(&signer)
                .map(|n| n + u64::from(consumes_nonce)),
            "nonce consumption for {expected:?}"
        );
        // Undo the nonce and the block's time in a copy: the state root must then equal the
        // one before.
        let mut undone = self.ledger.clone();
        undone.clock = before.clock.clone();
        undone.dirty.insert(StateKey::Clock);
        if consumes_nonce {
            if let Some(a) = undone.accounts.get_mut(&signer) {
                a.nonce -= 1;
                undone.dirty.insert(StateKey::Account(signer));
            } else if let Some(o) = undone.officials.get_mut(&signer) {
                o.nonce -= 1;
                undone.dirty.insert(StateKey::Official(signer));
            }
        }
        assert_eq!(
            undone.commit_state(),
            before.state_root(),
            "{expected:?} changed state"
        );
    }
}

pub(super) fn transfer(to: u64, amount: u64, e2e: &str) -> Body {
    Body::Transfer {
        to: account(to),
        amount: Amount(amount),
        end_to_end_id: e2e.into(),
        reference: "test".into(),
        terms: Default::default(),
    }
}

#[test]
fn same_bank_transfer_moves_money_without_obligation() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(0, 1), 2_500, "a")),
        Outcome::Committed
    );
    assert_eq!(h.balance(cust(0, 0)), 97_500);
    assert_eq!(h.balance(cust(0, 1)), 102_500);
    assert_eq!(h.bank(0).sent, Amount::ZERO);
    assert_eq!(h.ledger.next_nonce(&account(cust(0, 0))), Some(1));
}

#[test]
fn cross_bank_transfer_creates_obligation_and_positions() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(1, 0), 4_000, "a")),
        Outcome::Committed
    );
    assert_eq!(h.balance(cust(0, 0)), 96_000);
    assert_eq!(h.balance(cust(1, 0)), 104_000);
    assert_eq!(h.bank(0).sent, Amount(4_000));
    assert_eq!(h.bank(1).received, Amount(4_000));
    assert_eq!(h.bank(0).position(), -4_000);
    assert_eq!(
        h.ledger.cycle.obligations.get(&(bank(0), bank(1))),
        Some(&Amount(4_000))
    );
}

#[test]
fn fifty_one_versus_fifty_nets_to_one() {
    let mut h = Harness::new();
    let a = h.tx(cust(0, 0), transfer(cust(1, 0), 5_100, "x-to-y"));
    let b = h.tx(cust(1, 1), transfer(cust(0, 1), 5_000, "y-to-x"));
    let settle = h.tx(AUTHORITY, Body::SettleCycle);
    let outcome = h.block(vec![a, b, settle]);
    let report = outcome.settlement.expect("cycle closed");
    assert_eq!(report.cycle, 1);
    assert_eq!(report.trigger, SettlementTrigger::Authority);
    assert_eq!(report.gross_total, Amount(10_100));
    assert_eq!(report.net_total, Amount(100));
    let x = &report.banks[0];
    assert_eq!(
        (x.sent, x.received, x.net),
        (Amount(5_100), Amount(5_000), -100)
    );
    assert_eq!(x.pool_after.0, x.pool_before.0 - 100);
    let y = &report.banks[1];
    assert_eq!(y.net, 100);
    assert_eq!(y.pool_after.0, y.pool_before.0 + 100);
    assert_eq!(report.banks[2].net, 0);
    // Positions reset for cycle 2; the report is kept.
    assert_eq!(h.bank(0).sent, Amount::ZERO);
    assert_eq!(h.ledger.current_cycle(), 2);
    assert_eq!(h.ledger.settlement_report(1), Some(&report));
    assert_eq!(h.ledger.latest_settlement_report(), Some(&report));
}

#[test]
fn cycle_closes_on_schedule() {
    let mut genesis = testkit::genesis(2, 1, 100_000, 1_000_000, 50_000);
    genesis.cycle_blocks = 3;
    let mut h = Harness::with(genesis);
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(1, 0), 700, "a")),
        Outcome::Committed
    );
    assert!(h.block(vec![]).settlement.is_none());
    let report = h
        .block(vec![])
        .settlement
        .expect("height 3 closes the cycle");
    assert_eq!(report.trigger, SettlementTrigger::Schedule);
    assert_eq!((report.start_height, report.height), (1, 3));
    assert_eq!(report.banks[0].net, -700);
    assert_eq!(h.bank(0).pool, Amount(1_000_000 - 700));
    assert_eq!(h.bank(1).pool, Amount(1_000_000 + 700));
    let next = (4..=6).map(|_| h.block(vec![])).last().expect("blocks");
    let empty = next.settlement.expect("height 6 closes cycle 2");
    assert_eq!(
        (empty.cycle, empty.start_height, empty.gross_total),
        (2, 4, Amount::ZERO)
    );
}

#[test]
fn transfer_over_cap_is_queued_then_released_by_incoming_payment() {
    let mut h = Harness::new(); // caps 500.00
    let out = h.run(cust(0, 0), transfer(cust(1, 0), 60_000, "big"));
    assert!(
        matches!(
            out,
            Outcome::Queued {
                expires_at_height: 21
            }
        ),
        "{out:?}"
    );
    assert_eq!(h.balance(cust(0, 0)), 40_000);
    assert_eq!(h.reserved(cust(0, 0)), 60_000);
    assert_eq!(h.balance(cust(1, 0)), 100_000, "payee not credited yet");
    assert_eq!(h.bank(0).sent, Amount::ZERO);
    assert_eq!(h.ledger.queue(&bank(0)).count(), 1);
    // Bank 1 pays bank 0 200.00: bank 0's net debit would be 400.00 ≤ 500.00.
    let outcome = {
        let tx = h.tx(cust(1, 1), transfer(cust(0, 1), 20_000, "back"));
        h.block(vec![tx])
    };
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    assert_eq!(outcome.released.len(), 1);
    assert_eq!(outcome.released[0].amount, Amount(60_000));
    assert_eq!(outcome.released[0].height, 2);
    assert_eq!(h.reserved(cust(0, 0)), 0);
    assert_eq!(h.balance(cust(1, 0)), 160_000);
    assert_eq!(h.bank(0).net_debit(), Amount(40_000));
    assert_eq!(h.ledger.queue(&bank(0)).count(), 0);
}

#[test]
fn a_chain_of_releases_between_two_banks_costs_what_it_releases() {
    use crate::ledger::queues::RETRY_VISITS;
    // Banks 0 and 1 can send nothing net (caps 0); bank 2 can.
    let mut genesis = testkit::genesis(3, 2, 100_000, 1_000_000, 0);
    genesis.banks[2].net_debit_cap = Amount(1_000);
    genesis.gridlock_pass = GridlockPass::OnRequest;
    let mut h = Harness::with(genesis);
    // Ahead in each queue, 50 payments that never fit; behind them 100 payments of one
    // minor unit each way. One from bank 2 to bank 0 gives bank 0 room for one, whose
    // release gives bank 1 room for one, and so on.
    const LARGE: usize = 50;
    const EACH_WAY: usize = 100;
    let mut txs = Vec::new();
    for (from, to) in [(0, 1), (1, 0)] {
        for n in 0..LARGE {
            txs.push(h.tx(
                cust(from, 1),
                transfer(cust(to, 1), 1_000, &format!("l{from}-{n}")),
            ));
        }
    }
    for (from, to) in [(0, 1), (1, 0)] {
        for n in 0..EACH_WAY {
            txs.push(h.tx(
                cust(from, 0),
                transfer(cust(to, 0), 1, &format!("s{from}-{n}")),
            ));
        }
    }
    txs.push(h.tx(cust(2, 0), transfer(cust(0, 0), 1, "spark")));
    let queued = txs.len() - 1;
    RETRY_VISITS.with(|visits| visits.set(0));
    let outcome = h.block(txs);
    assert!(outcome.receipts[..queued]
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Queued { .. })));
    assert_eq!(outcome.receipts[queued].outcome, Outcome::Committed);
    // Every small payment released in this block, in turn, as before.
    assert_eq!(outcome.released.len(), 2 * EACH_WAY);
    assert!(outcome.released.iter().all(|e| e.amount == Amount(1)));
    let banks: Vec<&BankId> = outcome.released.iter().map(|e| &e.from_bank).collect();
    assert!(
        banks.windows(2).all(|pair| pair[0] != pair[1]),
        "alternating"
    );
    // Before, each release walked the payer's whole queue again (about 20,000 looks here,
    // 10⁸ for full queues); now the walk goes from one transfer that may fit to the next.
    let visits = RETRY_VISITS.with(|visits| visits.get());
    assert!(
        visits <= 2 * outcome.released.len() as u64,
        "{visits} queue entries looked at for {} releases",
        outcome.released.len()
    );
    assert_eq!(h.ledger.queue(&bank(0)).count(), LARGE);
    assert_eq!(h.ledger.queue(&bank(1)).count(), LARGE);
    assert_eq!(h.balance(cust(0, 0)), 100_001);
    assert_eq!(h.balance(cust(1, 0)), 100_000);
    assert_eq!(h.balance(cust(2, 0)), 99_999);
}

#[test]
fn queued_transfer_expires_and_is_refunded() {
    let mut h = Harness::new();
    assert!(matches!(
        h.run(cust(0, 0), transfer(cust(1, 0), 60_000, "big")),
        Outcome::Queued {
            expires_at_height: 21
        }
    ));
    for height in 2..21 {
        let outcome = h.block(vec![]);
        assert!(outcome.expired.is_empty(), "still queued at {height}");
    }
    let outcome = h.block(vec![]);
    assert_eq!(outcome.height, 21);
    assert_eq!(outcome.expired.len(), 1);
    assert_eq!(h.balance(cust(0, 0)), 100_000);
    assert_eq!(h.reserved(cust(0, 0)), 0);
    assert_eq!(h.ledger.queue(&bank(0)).count(), 0);
}

#[test]
fn later_small_payment_may_pass_a_stuck_large_one() {
    let mut h = Harness::new();
    let big = h.tx(cust(0, 0), transfer(cust(1, 0), 60_000, "big"));
    let small = h.tx(cust(0, 1), transfer(cust(1, 1), 1_000, "small"));
    let outcome = h.block(vec![big, small]);
    assert!(matches!(
        outcome.receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    assert_eq!(outcome.receipts[1].outcome, Outcome::Committed);
}

#[test]
fn frozen_sender_is_not_released_from_queue() {
    let mut h = Harness::new();
    h.run(cust(0, 0), transfer(cust(1, 0), 60_000, "big"));
    assert_eq!(
        h.run(
            REGULATOR,
            Body::Freeze {
                account: account(cust(0, 0))
            }
        ),
        Outcome::Committed
    );
    let tx = h.tx(cust(1, 1), transfer(cust(0, 1), 50_000, "back"));
    let outcome = h.block(vec![tx]);
    assert!(outcome.released.is_empty());
    assert_eq!(
        h.run(
            REGULATOR,
            Body::Unfreeze {
                account: account(cust(0, 0))
            }
        ),
        Outcome::Committed
    );
    assert_eq!(h.reserved(cust(0, 0)), 0, "released once unfrozen");
}

#[test]
fn release_cascades_across_banks() {
    // Bank 0 waits on bank 1, whose own queue waits on bank 2's payment.
    let mut h = Harness::new();
    let a = h.tx(cust(0, 0), transfer(cust(1, 0), 60_000, "a"));
    let b = h.tx(cust(1, 1), transfer(cust(0, 1), 90_000, "b"));
    let outcome = h.block(vec![a, b]);
    assert!(matches!(
        outcome.receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    assert!(matches!(
        outcome.receipts[1].outcome,
        Outcome::Queued { .. }
    ));
    let c = h.tx(cust(2, 0), transfer(cust(1, 2), 45_000, "c"));
    let outcome = h.block(vec![c]);
    assert_eq!(outcome.released.len(), 2, "{:?}", outcome.released);
    h.ledger.check_invariants().expect("invariants");
}

#[test]
fn operator_bodies() {
    let mut h = Harness::new();
    let newcomer = 777;
    assert_eq!(
        h.run(
            op(0),
            Body::OpenAccount {
                owner: account(newcomer)
            }
        ),
        Outcome::Committed
    );
    let opened = h
        .ledger
        .account(&account(newcomer))
        .expect("opened")
        .clone();
    assert_eq!(
        (opened.bank.clone(), opened.balance, opened.nonce),
        (bank(0), Amount::ZERO, 0)
    );
    assert_eq!(
        h.run(
            op(0),
            Body::Deposit {
                account: account(newcomer),
                amount: Amount(5_000)
            }
        ),
        Outcome::Committed
    );
    assert_eq!(h.balance(newcomer), 5_000);
    assert_eq!(
        h.run(
            op(0),
            Body::Withdraw {
                account: account(newcomer),
                amount: Amount(1_500)
            }
        ),
        Outcome::Committed
    );
    assert_eq!(h.balance(newcomer), 3_500);
    assert_eq!(h.bank(0).flows.withdrawn, 1_500);
    assert_eq!(h.ledger.official(&account(op(0))).map(|o| o.nonce), Some(3));
}

#[test]
fn authority_bodies() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(
            AUTHORITY,
            Body::Issue {
                bank: bank(1),
                amount: Amount(500)
            }
        ),
        Outcome::Committed
    );
    assert_eq!(h.bank(1).pool, Amount(1_000_500));
    assert_eq!(
        h.run(
            AUTHORITY,
            Body::Redeem {
                bank: bank(1),
                amount: Amount(700)
            }
        ),
        Outcome::Committed
    );
    assert_eq!(h.bank(1).pool, Amount(999_800));
    assert_eq!(
        (h.ledger.totals().issued, h.ledger.totals().redeemed),
        (3_000_500, 700)
    );
    assert_eq!(
        h.run(
            AUTHORITY,
            Body::SetNetDebitCap {
                bank: bank(1),
                cap: Amount(1)
            }
        ),
        Outcome::Committed
    );
    assert_eq!(h.bank(1).net_debit_cap, Amount(1));
    assert!(matches!(
        h.run(cust(1, 0), transfer(cust(0, 0), 2, "over-new-cap")),
        Outcome::Queued { .. }
    ));
}

#[test]
fn regulator_bodies_and_frozen_accounts() {
    let mut h = Harness::new();
    let target = account(cust(0, 0));
    assert_eq!(
        h.run(REGULATOR, Body::Freeze { account: target }),
        Outcome::Committed
    );
    assert!(h.ledger.account(&target).expect("account").frozen);
    let tx = h.tx(cust(0, 0), transfer(cust(0, 1), 1, "f"));
    h.expect_rejected(tx, TxError::AccountFrozen(target), true);
    let tx = h.tx(
        op(0),
        Body::Withdraw {
            account: target,
            amount: Amount(1),
        },
    );
    h.expect_rejected(tx, TxError::AccountFrozen(target), true);
    // A frozen account still receives.
    assert_eq!(
        h.run(cust(0, 1), transfer(cust(0, 0), 10, "in")),
        Outcome::Committed
    );
    assert_eq!(
        h.run(REGULATOR, Body::Unfreeze { account: target }),
        Outcome::Committed
    );
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(0, 1), 1, "after")),
        Outcome::Committed
    );
}

#[test]
fn every_stateful_rejection_changes_nothing_but_the_nonce() {
    let mut h = Harness::new();
    let stranger = 4242;
    let c00 = account(cust(0, 0));

    // Unknown signer and wrong nonces consume nothing.
    let tx = h.tx(stranger, transfer(cust(0, 0), 1, "s"));
    h.expect_rejected(tx, TxError::UnknownSigner(account(stranger)), false);
    let tx = h.tx_with_nonce(cust(0, 0), 5, transfer(cust(0, 1), 1, "n"));
    h.expect_rejected(
        tx,
        TxError::BadNonce {
            expected: 0,
            got: 5,
        },
        false,
    );

    let mut expired = Transaction {
        chain_id: "test".into(),
        signer: c00,
        nonce: 0,
        valid_until_height: 0,
        body: transfer(cust(0, 1), 1, "e"),
    };
    expired.valid_until_height = h.ledger.height();
    let tx = expired
        .sign(&key(cust(0, 0)))
        .check_stateless("test")
        .expect("well-formed");
    h.expect_rejected(
        tx,
        TxError::Expired {
            valid_until_height: 2,
            height: 3,
        },
        true,
    );
    h.nonces.clear();

    let cases: Vec<(u64, Body, TxError)> = vec![
        (
            cust(0, 0),
            Body::Issue {
                bank: bank(0),
                amount: Amount(1),
            },
            TxError::Unauthorized(BodyKind::Issue),
        ),
        (
            op(0),
            transfer(cust(0, 0), 1, "x"),
            TxError::Unauthorized(BodyKind::Transfer),
        ),
        (
            op(0),
            Body::Freeze { account: c00 },
            TxError::Unauthorized(BodyKind::Freeze),
        ),
        (
            REGULATOR,
            Body::Deposit {
                account: c00,
                amount: Amount(1),
            },
            TxError::Unauthorized(BodyKind::Deposit),
        ),
        (
            AUTHORITY,
            Body::OpenAccount { owner: account(9) },
            TxError::Unauthorized(BodyKind::OpenAccount),
        ),
        (
            cust(0, 0),
            Body::SettleCycle,
            TxError::Unauthorized(BodyKind::SettleCycle),
        ),
        (
            AUTHORITY,
            Body::Issue {
                bank: BankId::new("NOPE").expect("id"),
                amount: Amount(1),
            },
            TxError::UnknownBank(BankId::new("NOPE").expect("id")),
        ),
        (
            AUTHORITY,
            Body::SetNetDebitCap {
                bank: BankId::new("NOPE").expect("id"),
                cap: Amount(1),
            },
            TxError::UnknownBank(BankId::new("NOPE").expect("id")),
        ),
        (
            cust(0, 0),
            transfer(9, 1, "u"),
            TxError::UnknownAccount(account(9)),
        ),
        (
            op(0),
            Body::Deposit {
                account: account(9),
                amount: Amount(1),
            },
            TxError::UnknownAccount(account(9)),
        ),
        (
            REGULATOR,
            Body::Freeze {
                account: account(9),
            },
            TxError::UnknownAccount(account(9)),
        ),
        (
            op(0),
            Body::Deposit {
                account: account(cust(1, 0)),
                amount: Amount(1),
            },
            TxError::WrongBank {
                account: account(cust(1, 0)),
                holder: bank(1),
            },
        ),
        (
            op(0),
            Body::OpenAccount { owner: c00 },
            TxError::AccountExists(c00),
        ),
        (
            op(0),
            Body::OpenAccount {
                owner: account(AUTHORITY),
            },
            TxError::AccountExists(account(AUTHORITY)),
        ),
        (
            REGULATOR,
            Body::Unfreeze { account: c00 },
            TxError::NotFrozen(c00),
        ),
        (
            cust(0, 0),
            transfer(cust(0, 1), 100_001, "big"),
            TxError::InsufficientFunds {
                available: Amount(100_000),
                needed: Amount(100_001),
            },
        ),
        (
            op(0),
            Body::Withdraw {
                account: c00,
                amount: Amount(100_001),
            },
            TxError::InsufficientFunds {
                available: Amount(100_000),
                needed: Amount(100_001),
            },
        ),
        (
            AUTHORITY,
            Body::Redeem {
                bank: bank(0),
                amount: Amount(1_000_001),
            },
            TxError::InsufficientPool {
                bank: bank(0),
                available: Amount(1_000_000),
            },
        ),
        (
            op(0),
            Body::Deposit {
                account: c00,
                amount: Amount(u64::MAX),
            },
            TxError::Overflow,
        ),
        (
            AUTHORITY,
            Body::Issue {
                bank: bank(0),
                amount: Amount(u64::MAX),
            },
            TxError::Overflow,
        ),
    ];
    for (seed, body, error) in cases {
        let tx = h.tx(seed, body);
        h.expect_rejected(tx, error, true);
    }

    assert_eq!(
        h.run(REGULATOR, Body::Freeze { account: c00 }),
        Outcome::Committed
    );
    let tx = h.tx(REGULATOR, Body::Freeze { account: c00 });
    h.expect_rejected(tx, TxError::AlreadyFrozen(c00), true);
}

#[test]
fn duplicate_end_to_end_id_is_rejected_until_the_window_passes() {
    let mut genesis = testkit::genesis(1, 2, 100_000, 1_000_000, 50_000);
    genesis.duplicate_window_blocks = 11;
    genesis.max_validity_blocks = 5;
    genesis.queue_expiry_blocks = 6;
    let mut h = Harness::with(genesis);
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(0, 1), 10, "INV-1")),
        Outcome::Committed
    );
    let retry = h.tx(cust(0, 0), transfer(cust(0, 1), 10, "INV-1"));
    h.expect_rejected(retry, TxError::DuplicateEndToEndId("INV-1".into()), true);
    // Another signer may use the same id.
    assert_eq!(
        h.run(cust(0, 1), transfer(cust(0, 0), 10, "INV-1")),
        Outcome::Committed
    );
    // The first use (height 1) is remembered until 1 + 11: still at height 11...
    for _ in 0..7 {
        h.block(vec![]); // heights 4 to 10
    }
    let retry = h.tx(cust(0, 0), transfer(cust(0, 1), 10, "INV-1"));
    h.expect_rejected(retry, TxError::DuplicateEndToEndId("INV-1".into()), true);
    // ...and no longer at height 13.
    h.block(vec![]);
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(0, 1), 10, "INV-1")),
        Outcome::Committed
    );
}

/// The shortest window a genesis allows (twice the validity horizon) still refuses the
/// latest retry of a payment: signed at the last height the first was valid, included at the
/// last height the retry is. With the window equal to the horizon (allowed before), this
/// retry paid twice.
#[test]
fn the_shortest_window_refuses_a_retry_signed_when_the_first_was_last_valid() {
    let mut genesis = testkit::genesis(1, 2, 100_000, 1_000_000, 50_000);
    genesis.max_validity_blocks = 5;
    genesis.duplicate_window_blocks = 10;
    genesis.queue_expiry_blocks = 5;
    let mut h = Harness::with(genesis);
    let signed = |nonce: u64, valid_until_height: u64| {
        Transaction {
            chain_id: "test".into(),
            signer: account(cust(0, 0)),
            nonce,
            valid_until_height,
            body: transfer(cust(0, 1), 10, "INV-9"),
        }
        .sign(&key(cust(0, 0)))
        .check_stateless("test")
        .expect("valid")
    };
    // Included at height 1, valid until 1 + 5.
    let first = signed(0, 6);
    assert_eq!(h.block(vec![first]).receipts[0].outcome, Outcome::Committed);
    // At height 6 the payer, not knowing, signs the retry: valid until 6 + 5.
    let retry = signed(1, 11);
    while h.ledger.height() < 10 {
        h.block(vec![]);
    }
    let paid = h
        .ledger
        .account(&account(cust(0, 1)))
        .expect("payee")
        .balance;
    // (This block also forgets the first id, after its transactions: `expect_rejected`'s
    // "nothing else changed" does not apply.)
    let outcome = h.block(vec![retry]);
    assert_eq!(
        outcome.receipts[0].outcome,
        Outcome::Rejected {
            error: TxError::DuplicateEndToEndId("INV-9".into())
        }
    );
    assert_eq!(h.ledger.height(), 11);
    assert_eq!(
        h.ledger
            .account(&account(cust(0, 1)))
            .expect("payee")
            .balance,
        paid,
        "paid once"
    );
}

#[test]
fn end_to_end_ids_are_one_state_entry_per_block_and_leave_it_with_the_window() {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 50_000);
    genesis.duplicate_window_blocks = 11;
    genesis.max_validity_blocks = 5;
    genesis.queue_expiry_blocks = 6;
    let mut h = Harness::with(genesis.clone());
    let ids = |ledger: &Ledger| -> Vec<(u64, Vec<Hash>)> {
        ledger
            .state_entries()
            .filter_map(|e| match e.key {
                StateKey::EndToEndIds(height) => {
                    Some((height, codec::decode(&e.value, 1 << 20).expect("a list")))
                }
                _ => None,
            })
            .collect()
    };
    let txs = vec![
        h.tx(cust(0, 0), transfer(cust(1, 0), 10, "A")),
        h.tx(cust(0, 1), transfer(cust(1, 1), 10, "B")),
        h.tx(cust(1, 0), transfer(cust(0, 0), 10, "C")),
    ];
    h.block(txs);
    let remembered = ids(&h.ledger);
    assert_eq!(
        remembered.len(),
        1,
        "one entry for the block: {remembered:?}"
    );
    assert_eq!(remembered[0].0, 1);
    assert_eq!(remembered[0].1.len(), 3, "its three ids");
    assert_eq!(h.ledger.state_len(), h.ledger.state_entries().count());
    let rebuilt =
        Ledger::from_state_entries(&genesis, 1, h.ledger.state_entries()).expect("own entries");
    assert_eq!(rebuilt.state_root(), h.ledger.state_root());
    // The rebuilt ledger remembers the ids as the original does.
    let mut rebuilt_harness = Harness::with(genesis);
    rebuilt_harness.ledger = rebuilt;
    let retry = rebuilt_harness.tx(cust(0, 1), transfer(cust(1, 1), 10, "B"));
    rebuilt_harness.expect_rejected(retry, TxError::DuplicateEndToEndId("B".into()), true);
    // A block without transfers adds no entry.
    h.block(vec![]);
    assert_eq!(ids(&h.ledger).len(), 1);
    // Remembered at 1, the ids are forgotten in block 1 + 11 (after its transactions),
    // entry and all.
    for _ in 0..9 {
        h.block(vec![]); // heights 3 to 11
    }
    assert_eq!(ids(&h.ledger).len(), 1);
    h.block(vec![]);
    assert_eq!(ids(&h.ledger), vec![]);
    assert_eq!(h.ledger.state_len(), h.ledger.state_entries().count());
    assert_eq!(
        h.run(cust(0, 1), transfer(cust(1, 1), 10, "B")),
        Outcome::Committed
    );
}

#[test]
fn same_transaction_twice_applies_once() {
    let mut h = Harness::new();
    let tx = h.tx(cust(0, 0), transfer(cust(0, 1), 10, "once"));
    let outcome = h.block(vec![tx.clone(), tx.clone()]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    assert!(matches!(
        outcome.receipts[1].outcome,
        Outcome::Rejected {
            error: TxError::BadNonce {
                expected: 1,
                got: 0
            }
        }
    ));
    let outcome = h.block(vec![tx]);
    assert!(matches!(
        outcome.receipts[0].outcome,
        Outcome::Rejected { .. }
    ));
    assert_eq!(h.balance(cust(0, 1)), 100_010);
}

#[test]
fn redeem_cannot_take_the_pool_below_the_net_debit() {
    let mut h = Harness::new();
    h.run(cust(0, 0), transfer(cust(1, 0), 40_000, "a"));
    let tx = h.tx(
        AUTHORITY,
        Body::Redeem {
            bank: bank(0),
            amount: Amount(960_001),
        },
    );
    h.expect_rejected(
        tx,
        TxError::InsufficientPool {
            bank: bank(0),
            available: Amount(960_000),
        },
        true,
    );
    assert_eq!(
        h.run(
            AUTHORITY,
            Body::Redeem {
                bank: bank(0),
                amount: Amount(960_000)
            }
        ),
        Outcome::Committed
    );
    // The pool now exactly covers the debit; the cap is min(cap, pool) = 400.00.
    assert!(matches!(
        h.run(cust(0, 1), transfer(cust(1, 1), 1, "b")),
        Outcome::Queued { .. }
    ));
    let settle = h.tx(AUTHORITY, Body::SettleCycle);
    let report = h.block(vec![settle]).settlement.expect("closed");
    assert_eq!(report.banks[0].pool_after, Amount::ZERO);
}

#[test]
fn queue_full_is_rejected() {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 0);
    genesis.max_queue_per_bank = 1;
    let mut h = Harness::with(genesis);
    assert!(matches!(
        h.run(cust(0, 0), transfer(cust(1, 0), 5, "a")),
        Outcome::Queued { .. }
    ));
    let tx = h.tx(cust(0, 1), transfer(cust(1, 0), 5, "b"));
    h.expect_rejected(tx, TxError::QueueFull(bank(0)), true);
}

#[test]
fn one_payer_cannot_fill_its_banks_queue() {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 0);
    genesis.max_queued_per_payer = 2;
    genesis.queue_expiry_blocks = 3;
    let mut h = Harness::with(genesis);
    for id in ["a", "b"] {
        assert!(matches!(
            h.run(cust(0, 0), transfer(cust(1, 0), 5, id)),
            Outcome::Queued { .. }
        ));
    }
    let third = h.tx(cust(0, 0), transfer(cust(1, 0), 5, "c"));
    h.expect_rejected(third, TxError::PayerQueueFull(account(cust(0, 0))), true);
    // Another customer of the same bank still queues.
    assert!(matches!(
        h.run(cust(0, 1), transfer(cust(1, 0), 5, "d")),
        Outcome::Queued { .. }
    ));
    // Once the payer's transfers leave the queue (here: expire), it may queue again.
    for _ in 0..4 {
        h.block(vec![]);
    }
    assert!(matches!(
        h.run(cust(0, 0), transfer(cust(1, 0), 5, "e")),
        Outcome::Queued { .. }
    ));
}

#[test]
fn a_validity_beyond_the_horizon_is_rejected() {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000);
    genesis.max_validity_blocks = 5;
    genesis.duplicate_window_blocks = 10;
    genesis.queue_expiry_blocks = 5;
    let mut h = Harness::with(genesis);
    let at_the_limit = Transaction {
        chain_id: "test".into(),
        signer: account(cust(0, 0)),
        nonce: 0,
        valid_until_height: 1 + 5,
        body: transfer(cust(1, 0), 5, "ok"),
    }
    .sign(&key(cust(0, 0)))
    .check_stateless("test")
    .expect("valid");
    assert_eq!(
        h.block(vec![at_the_limit]).receipts[0].outcome,
        Outcome::Committed
    );
    let beyond = Transaction {
        chain_id: "test".into(),
        signer: account(cust(0, 0)),
        nonce: 1,
        valid_until_height: 2 + 6,
        body: transfer(cust(1, 0), 5, "too-long"),
    }
    .sign(&key(cust(0, 0)))
    .check_stateless("test")
    .expect("valid");
    h.expect_rejected(
        beyond,
        TxError::ValidityTooLong {
            valid_until_height: 8,
            latest: 7,
        },
        true,
    );
}

#[test]
fn a_pending_nonce_may_be_at_most_the_lookahead_past_the_next() {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000);
    genesis.max_nonce_lookahead = 3;
    let h = Harness::with(genesis);
    let at = |nonce| h.tx_with_nonce(cust(0, 0), nonce, transfer(cust(1, 0), 5, "x"));
    h.ledger
        .check_pending(&at(3), 1)
        .expect("next + 3 may wait");
    assert_eq!(
        h.ledger.check_pending(&at(4), 1),
        Err(TxError::NonceTooFarAhead {
            expected: 0,
            got: 4,
            max_ahead: 3
        })
    );
    // Execution wants exactly the next nonce; the look-ahead is a mempool rule.
    assert!(matches!(
        h.ledger.check(&at(3), 1),
        Err(TxError::BadNonce { .. })
    ));
}

#[test]
fn account_proofs_verify_against_the_root_only() {
    let mut h = Harness::new();
    h.run(cust(0, 0), transfer(cust(1, 0), 10, "p"));
    let root = h.ledger.state_root();
    let proof = h.ledger.account_proof(&account(cust(0, 0)));
    assert_eq!(
        proof.account.as_ref().map(|a| a.balance),
        Some(Amount(99_990))
    );
    assert_eq!(proof.verify(&root), Ok(()));
    let mut lie = proof.clone();
    if let Some(a) = lie.account.as_mut() {
        a.balance = Amount(1_000_000);
    }
    assert!(lie.verify(&root).is_err());
    assert!(proof.verify(&Hash([9; 32])).is_err());
    let absent = h.ledger.account_proof(&account(31337));
    assert_eq!(absent.account, None);
    assert_eq!(absent.verify(&root), Ok(()));
}

#[test]
fn state_root_changes_with_state_and_is_reproducible() {
    let mut a = Harness::new();
    let mut b = Harness::new();
    assert_eq!(a.ledger.state_root(), b.ledger.state_root());
    let genesis_root = a.ledger.state_root();
    let tx = a.tx(cust(0, 0), transfer(cust(2, 0), 10, "r"));
    let ra = a.block(vec![tx.clone()]);
    let rb = b.block(vec![tx]);
    assert_eq!(ra, rb);
    assert_ne!(ra.state_root, genesis_root);
}

/// Issue 10, finding 2: the authority issues up to the `u64` limit into one pool (a typo,
/// or 18.4 units of an 18-decimal currency), a customer pays 1.00 into that bank, and the
/// cycle closes. Settlement used to overflow the pool and `apply_block` panicked on every
/// node, on every restart.
#[test]
fn an_issuance_to_the_u64_limit_cannot_halt_settlement() {
    let mut genesis = testkit::genesis(2, 1, 10u64.pow(18) * 5, 10u64.pow(18) * 2, u64::MAX);
    genesis.decimals = 18;
    let mut h = Harness::with(genesis);
    let headroom = u64::MAX - h.bank(1).pool.0;
    assert_eq!(
        h.run(
            AUTHORITY,
            Body::Issue {
                bank: bank(1),
                amount: Amount(headroom),
            }
        ),
        Outcome::Committed,
        "issuing up to the limit is allowed: nothing is owed to the bank yet"
    );
    assert_eq!(h.bank(1).pool, Amount(u64::MAX));
    let pay = h.tx(cust(0, 0), transfer(cust(1, 0), 10u64.pow(18), "one-unit"));
    let settle = h.tx(AUTHORITY, Body::SettleCycle);
    let outcome = h.block(vec![pay, settle]);
    assert_eq!(
        outcome.receipts[0].outcome,
        Outcome::Rejected {
            error: TxError::PoolLimit {
                bank: bank(1),
                available: Amount::ZERO,
            }
        },
        "the payment whose settlement would overflow the receiving pool is refused"
    );
    let report = outcome.settlement.expect("the cycle closed");
    assert_eq!(report.gross_total, Amount::ZERO);
    assert_eq!(h.bank(1).pool, Amount(u64::MAX));
    // Once the authority redeems the excess, payments into the bank flow again.
    assert_eq!(
        h.run(
            AUTHORITY,
            Body::Redeem {
                bank: bank(1),
                amount: Amount(headroom),
            }
        ),
        Outcome::Committed
    );
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(1, 0), 10u64.pow(18), "again")),
        Outcome::Committed
    );
}

/// The cycle's gross total (reported in a `u64`) used to be able to pass `u64::MAX` through
/// circular flows, each bank's own totals staying in range: the settlement then panicked.
#[test]
fn a_cycle_whose_gross_total_would_overflow_refuses_the_transfer_that_would_do_it() {
    let x = u64::MAX / 2;
    let mut h = Harness::with(testkit::genesis(3, 1, x, x, u64::MAX));
    let ring = [
        h.tx(cust(0, 0), transfer(cust(1, 0), x, "a-b")),
        h.tx(cust(1, 0), transfer(cust(2, 0), x, "b-c")),
        h.tx(cust(2, 0), transfer(cust(0, 0), x, "c-a")),
    ];
    let settle = h.tx(AUTHORITY, Body::SettleCycle);
    let outcome = h.block(ring.into_iter().chain([settle]).collect());
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    assert_eq!(outcome.receipts[1].outcome, Outcome::Committed);
    assert_eq!(
        outcome.receipts[2].outcome,
        Outcome::Rejected {
            error: TxError::CycleLimit {
                available: Amount(u64::MAX - 2 * x),
            }
        }
    );
    let report = outcome.settlement.expect("closed");
    assert_eq!(report.gross_total, Amount(2 * x));
}

#[test]
fn the_per_block_check_catches_a_corrupted_account_the_block_touched() {
    let mut h = Harness::new();
    let payer = account(cust(0, 0));
    let payee = account(cust(1, 0));
    h.run(cust(0, 0), transfer(cust(1, 0), 700, "t"));
    let clean = h.ledger.clone();

    // One minor unit appears in the payee's balance: customer money is not conserved.
    let mut corrupted = clean.clone();
    corrupted.accounts.get_mut(&payee).expect("payee").balance.0 += 1;
    assert!(corrupted.check_block_invariants().is_err());
    assert!(corrupted.check_invariants().is_err());

    // One minor unit vanishes from the payer, the block's other written account.
    let mut corrupted = clean.clone();
    corrupted.accounts.get_mut(&payer).expect("payer").balance.0 -= 1;
    assert!(corrupted.check_block_invariants().is_err());

    // A balance whose reservation could not be refunded without overflow.
    let mut corrupted = clean.clone();
    let entry = corrupted.accounts.get_mut(&payer).expect("payer");
    entry.reserved = Amount(u64::MAX);
    assert!(corrupted.check_block_invariants().is_err());

    // Per-bank invariants are checked fully whatever the block touched.
    let mut corrupted = clean.clone();
    corrupted.banks.get_mut(&bank(2)).expect("bank").pool.0 += 1;
    assert!(corrupted.check_block_invariants().is_err());
    let mut corrupted = clean.clone();
    corrupted.banks.get_mut(&bank(1)).expect("bank").received.0 += 1;
    assert!(corrupted.check_block_invariants().is_err());

    // An account the block did not touch is the full check's to find.
    let mut corrupted = clean.clone();
    corrupted
        .accounts
        .get_mut(&account(cust(2, 2)))
        .expect("untouched")
        .balance
        .0 += 1;
    assert_eq!(corrupted.check_block_invariants(), Ok(()));
    assert!(corrupted.check_invariants().is_err());

    assert_eq!(clean.check_block_invariants(), Ok(()));
}

#[test]
fn the_per_block_check_covers_queued_transfers_and_closed_cycles() {
    let mut h = Harness::with(testkit::genesis(2, 2, 100_000, 1_000_000, 0));
    assert!(matches!(
        h.run(cust(0, 0), transfer(cust(1, 0), 500, "q")),
        Outcome::Queued { .. }
    ));
    let mut corrupted = h.ledger.clone();
    let queue = corrupted.queues.get_mut(&bank(0)).expect("queue");
    let seq = *queue.keys().next().expect("queued");
    let entry = queue.get_mut(&seq).expect("queued");
    entry.amount = Amount(100_001);
    assert!(corrupted.check_block_invariants().is_err());

    let settle = h.tx(AUTHORITY, Body::SettleCycle);
    h.block(vec![settle]);
    let mut corrupted = h.ledger.clone();
    let cycle = *corrupted.reports.keys().next_back().expect("report");
    let report = corrupted.reports.get_mut(&cycle).expect("report");
    report.banks[0].net += 1;
    assert!(corrupted.check_block_invariants().is_err());
}

#[test]
fn a_clone_is_unaffected_by_later_blocks_on_either_side() {
    // The node hands each block's ledger to its readers as a clone that shares structure
    // with the ledger it goes on changing: neither may see the other's changes.
    let mut h = Harness::new();
    h.run(cust(0, 0), transfer(cust(1, 0), 100, "before"));
    let snapshot = h.ledger.clone();
    let (root, balance) = (
        snapshot.state_root(),
        snapshot.account(&account(cust(0, 0))).map(|a| a.balance),
    );
    for n in 0..50 {
        h.run(cust(0, 0), transfer(cust(1, 0), 1, &format!("after-{n}")));
    }
    let settle = h.tx(AUTHORITY, Body::SettleCycle);
    h.block(vec![settle]);
    assert_ne!(h.ledger.state_root(), root);
    assert_eq!(snapshot.state_root(), root);
    assert_eq!(
        snapshot.account(&account(cust(0, 0))).map(|a| a.balance),
        balance
    );
    assert!(snapshot.latest_settlement_report().is_none());
    snapshot.check_invariants().expect("the snapshot is whole");
    // And the snapshot can go its own way without touching the original.
    let mut other = snapshot.clone();
    let original_root = h.ledger.state_root();
    let mut fork = Harness::with(testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000));
    fork.ledger = other.clone();
    fork.run(cust(1, 1), transfer(cust(0, 1), 7, "fork"));
    other = fork.ledger;
    assert_ne!(other.state_root(), root);
    assert_eq!(h.ledger.state_root(), original_root);
    assert_eq!(snapshot.state_root(), root);
}

#[test]
fn a_state_that_is_not_a_ledger_is_refused_when_rebuilt() {
    let genesis = testkit::genesis(3, 3, 100_000, 1_000_000, 50_000);
    let mut h = Harness::with(genesis.clone());
    h.run(cust(0, 0), transfer(cust(1, 0), 900, "e2e-1"));
    let entries: Vec<StateEntry> = h.ledger.state_entries().collect();
    let rebuild = |entries: Vec<StateEntry>| Ledger::from_state_entries(&genesis, 1, entries);
    assert_eq!(
        rebuild(entries.clone()).expect("own entries").state_root(),
        h.ledger.state_root()
    );

    let mut twice = entries.clone();
    twice.push(entries[0].clone());
    assert!(matches!(rebuild(twice), Err(SnapshotError::Duplicate(_))));

    let without_cycle: Vec<StateEntry> = entries
        .iter()
        .filter(|e| e.key != StateKey::Cycle)
        .cloned()
        .collect();
    assert_eq!(
        rebuild(without_cycle).err(),
        Some(SnapshotError::Missing("cycle"))
    );

    let garbled: Vec<StateEntry> = entries
        .iter()
        .cloned()
        .map(|mut e| {
            if e.key == StateKey::Totals {
                e.value.push(0);
            }
            e
        })
        .collect();
    assert!(matches!(rebuild(garbled), Err(SnapshotError::Value { .. })));

    // End-to-end ids: one remembered under two heights, an empty list, a list from after
    // the state's height.
    let ids = entries
        .iter()
        .find(|e| e.key == StateKey::EndToEndIds(1))
        .expect("the block's ids")
        .clone();
    for (key, value) in [
        (StateKey::EndToEndIds(0), ids.value.clone()),
        (StateKey::EndToEndIds(0), codec::encode(&Vec::<Hash>::new())),
        (StateKey::EndToEndIds(2), codec::encode(&Vec::<Hash>::new())),
    ] {
        let mut wrong = entries.clone();
        wrong.push(StateEntry {
            key: key.clone(),
            value,
        });
        assert!(
            matches!(rebuild(wrong), Err(SnapshotError::Inconsistent(_))),
            "{key:?}"
        );
    }
    let mut future = entries.clone();
    for entry in &mut future {
        if entry.key == StateKey::EndToEndIds(1) {
            entry.key = StateKey::EndToEndIds(2);
        }
    }
    assert!(matches!(
        rebuild(future),
        Err(SnapshotError::Inconsistent(_))
    ));

    // Money out of thin air: a customer's balance raised. It decodes, so only the
    // invariants can tell (and the state root, which the caller compares).
    let inflated: Vec<StateEntry> = entries
        .iter()
        .cloned()
        .map(|mut e| {
            if e.key == StateKey::Account(account(cust(2, 2))) {
                let mut a: Account = codec::decode(&e.value, 1 << 10).expect("account");
                a.balance = Amount(a.balance.0 + 1);
                e.value = codec::encode(&a);
            }
            e
        })
        .collect();
    assert!(matches!(
        rebuild(inflated),
        Err(SnapshotError::Inconsistent(_))
    ));
}
