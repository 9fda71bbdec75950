//! Property tests over random block sequences of every body, valid and invalid: after every
//! block the ledger's invariants hold (DESIGN.md 1–4, by the full and by the per-block
//! check), and replaying the same blocks on a fresh ledger gives the same receipts, reports
//! and state roots.
//!
//! The "edge amounts" mode runs the same bodies with amounts, balances, pools and caps near
//! `u64::MAX` in an 18-decimal currency: whatever would overflow must be refused when it
//! runs, never make `apply_block` panic (issue 10, finding 2).

use std::collections::HashMap;

use interpool_contracts::calendar::BusinessDay;
use interpool_contracts::genesis::GridlockPass;
use interpool_contracts::ledger::StateEntry;
use interpool_contracts::testkit::{self, account, bank_id, customer_seed, key, operator_seed};
use interpool_contracts::{
    AccountId, Amount, BankId, BlockOutcome, Body, Genesis, Hash, Ledger, Outcome, Priority,
    Transaction, TransferTerms, VerifiedTransaction,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const CUSTOMERS_PER_BANK: usize = 3;
const NEWCOMERS: u64 = 4;
const NEWCOMER_BASE: u64 = 50_000;
const STRANGER: u64 = 60_000;

/// Blocks are 40 minutes apart from 06:00Z on 2026-11-30: 24 blocks cross a 17:00 cut-off
/// and an 18:00 end of day.
const BLOCK_MS: u64 = 40 * 60_000;
const START_MS: u64 = 1_795_996_800_000 + 6 * 3_600_000;

fn time_of(height: u64) -> u64 {
    START_MS + height * BLOCK_MS
}

/// A queued transfer a cancel or a reprioritise may name: its hash, payer and bank.
type Waiting = (Hash, u64, usize);

/// One generated operation; its fields are interpreted against the participants at run time.
#[derive(Debug, Clone)]
struct Op {
    kind: u8,
    a: usize,
    b: usize,
    amount: u64,
    flag: u8,
}

fn op_strategy(edge: bool) -> impl Strategy<Value = Op> {
    let amount = if edge {
        edge_amount().boxed()
    } else {
        (0u64..120_000).boxed()
    };
    (0u8..19, 0usize..64, 0usize..64, amount, 0u8..16).prop_map(|(kind, a, b, amount, flag)| Op {
        kind,
        a,
        b,
        amount,
        flag,
    })
}

/// One unit of an 18-decimal currency: `u64::MAX` is about 18.4 units.
const UNIT_18: u64 = 1_000_000_000_000_000_000;

/// Amounts at and around the `u64` limit, whole units of an 18-decimal currency, and small
/// ones.
fn edge_amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u64::MAX / 2),
        Just(u64::MAX / 2 + 1),
        Just(u64::MAX / 3),
        (1u64..=18).prop_map(|units| units * UNIT_18),
        any::<u64>(),
        0u64..120_000,
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    genesis: Genesis,
    blocks: Vec<Vec<Op>>,
    edge: bool,
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        2usize..=4,
        1u64..=6,
        1u64..=5,
        0u64..60_000,
        proptest::collection::vec(proptest::collection::vec(op_strategy(false), 0..12), 1..24),
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(banks, cycle_blocks, expiry, cap, blocks, (calendar, pass))| {
                let mut genesis = testkit::genesis(banks, CUSTOMERS_PER_BANK, 50_000, 200_000, cap);
                liquidity_settings(&mut genesis, calendar, pass);
                genesis.cycle_blocks = cycle_blocks;
                genesis.queue_expiry_blocks = expiry;
                genesis.max_validity_blocks = 2;
                genesis.duplicate_window_blocks = expiry.saturating_add(2).max(4);
                Scenario {
                    genesis,
                    blocks,
                    edge: false,
                }
            },
        )
}

/// Edge amounts: 18 decimals, opening balances, pools and caps near the limit (or zero),
/// every amount from [`edge_amount`].
fn edge_scenario_strategy() -> impl Strategy<Value = Scenario> {
    let big = || {
        prop_oneof![
            Just(0u64),
            Just(u64::MAX),
            Just(u64::MAX / 2),
            Just(u64::MAX / 3),
            (1u64..=18).prop_map(|units| units * UNIT_18),
        ]
    };
    (
        2usize..=4,
        1u64..=6,
        prop_oneof![1u64..=5, Just(u64::MAX)],
        big(),
        big(),
        big(),
        proptest::collection::vec(proptest::collection::vec(op_strategy(true), 0..12), 1..24),
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(banks, cycle_blocks, expiry, balance, pool, cap, blocks, (calendar, pass))| {
                let mut genesis = testkit::genesis(banks, CUSTOMERS_PER_BANK, balance, pool, cap);
                liquidity_settings(&mut genesis, calendar, pass);
                genesis.decimals = 18;
                genesis.cycle_blocks = cycle_blocks;
                genesis.queue_expiry_blocks = expiry;
                genesis.max_validity_blocks = 2;
                genesis.duplicate_window_blocks = expiry.saturating_add(2).max(4);
                Scenario {
                    genesis,
                    blocks,
                    edge: true,
                }
            },
        )
}

/// A business day (17:00 cut-off, 18:00 end of day, UTC) or none; the liquidity-saving pass
/// after every block or on request only.
fn liquidity_settings(genesis: &mut Genesis, calendar: bool, every_block: bool) {
    genesis.business_day = calendar.then(|| BusinessDay {
        utc_offset_minutes: 0,
        customer_cutoff: "17:00".parse().expect("time"),
        end_of_day: "18:00".parse().expect("time"),
    });
    genesis.gridlock_pass = if every_block {
        GridlockPass::EveryBlock
    } else {
        GridlockPass::OnRequest
    };
    genesis.reject_warning_ms = BLOCK_MS;
}

/// A transfer's priority and times from an op: mostly normal and untimed; some high, a few
/// urgent (refused); some not before or rejected after a block or two from `now`, a few
/// with the two out of order (refused before execution).
fn terms_for(op: &Op, now: u64) -> TransferTerms {
    let priority = match op.flag % 8 {
        3 | 5 => Priority::High,
        7 if op.b.is_multiple_of(4) => Priority::Urgent,
        _ => Priority::Normal,
    };
    let later = |blocks: usize| now + blocks as u64 * BLOCK_MS;
    TransferTerms {
        priority,
        not_before_ms: op.b.is_multiple_of(5).then(|| later(op.a % 3)),
        reject_after_ms: op.b.is_multiple_of(7).then(|| later(1 + op.a % 4)),
    }
}

struct Participants {
    banks: usize,
    /// Edge mode: amounts are used as generated, not scaled down.
    edge: bool,
}

impl Participants {
    /// The amount a body uses: as generated in edge mode, else `1 + amount / divisor`.
    fn amount(&self, op: &Op, divisor: u64) -> Amount {
        if self.edge {
            Amount(op.amount.max(1))
        } else {
            Amount(1 + op.amount / divisor)
        }
    }
}

impl Participants {
    fn customer(&self, i: usize) -> u64 {
        let i = i % (self.banks * CUSTOMERS_PER_BANK);
        customer_seed(i / CUSTOMERS_PER_BANK, i % CUSTOMERS_PER_BANK)
    }

    /// Customers, newcomers (some opened during the run) and a stranger.
    fn any_account(&self, i: usize) -> u64 {
        let customers = self.banks * CUSTOMERS_PER_BANK;
        match i % (customers + NEWCOMERS as usize + 1) {
            n if n < customers => self.customer(n),
            n if n < customers + NEWCOMERS as usize => NEWCOMER_BASE + (n - customers) as u64,
            _ => STRANGER,
        }
    }

    fn operator(&self, i: usize) -> u64 {
        operator_seed(i % self.banks)
    }

    /// Any key at all, for bodies signed by the wrong party.
    fn any_signer(&self, i: usize) -> u64 {
        match i % 5 {
            0 => testkit::AUTHORITY_SEED,
            1 => testkit::REGULATOR_SEED,
            2 => self.operator(i / 5),
            3 => self.any_account(i / 5),
            _ => STRANGER,
        }
    }

    fn bank(&self, i: usize) -> BankId {
        if i % 11 == 10 {
            BankId::new("UNKNOWN").expect("valid id")
        } else {
            bank_id(i % self.banks)
        }
    }
}

fn body_for(op: &Op, p: &Participants, waiting: &[Waiting], now: u64) -> (u64, Body) {
    let amount = Amount(op.amount);
    let acct = |seed: u64| -> AccountId { account(seed) };
    match op.kind {
        0..=5 => (
            p.customer(op.a),
            Body::Transfer {
                to: acct(p.any_account(op.b)),
                amount: p.amount(op, 2),
                end_to_end_id: format!("E{}", op.flag % 5),
                reference: String::new(),
                terms: terms_for(op, now),
            },
        ),
        6 => (
            p.operator(op.a),
            Body::OpenAccount {
                owner: acct(p.any_account(op.b)),
            },
        ),
        7 => (
            p.operator(op.a),
            Body::Deposit {
                account: acct(p.any_account(op.b)),
                amount: p.amount(op, 1),
            },
        ),
        8 => (
            p.operator(op.a),
            Body::Withdraw {
                account: acct(p.any_account(op.b)),
                amount: p.amount(op, 4),
            },
        ),
        9 => (
            testkit::AUTHORITY_SEED,
            Body::Issue {
                bank: p.bank(op.a),
                amount: p.amount(op, 1),
            },
        ),
        10 => (
            testkit::AUTHORITY_SEED,
            Body::Redeem {
                bank: p.bank(op.a),
                amount: p.amount(op, 1),
            },
        ),
        11 => (
            testkit::AUTHORITY_SEED,
            Body::SetNetDebitCap {
                bank: p.bank(op.a),
                cap: amount,
            },
        ),
        12 => (testkit::AUTHORITY_SEED, Body::SettleCycle),
        13 => (
            testkit::REGULATOR_SEED,
            Body::Freeze {
                account: acct(p.any_account(op.b)),
            },
        ),
        14 => (
            testkit::REGULATOR_SEED,
            Body::Unfreeze {
                account: acct(p.any_account(op.b)),
            },
        ),
        16 | 17 => {
            // A queued transfer (or, when none waits, a hash nobody queued).
            let (hash, payer, bank) = waiting
                .get(op.a % waiting.len().max(1))
                .copied()
                .unwrap_or((Hash([op.flag; 32]), p.customer(op.b), op.b));
            if op.kind == 16 {
                let signer = match op.flag % 3 {
                    0 => payer,
                    1 => operator_seed(bank),
                    _ => p.any_signer(op.b),
                };
                (signer, Body::CancelTransfer { tx_hash: hash })
            } else {
                let priority =
                    [Priority::Normal, Priority::High, Priority::Urgent][usize::from(op.flag) % 3];
                let signer = if op.flag % 4 == 3 {
                    p.any_signer(op.b)
                } else {
                    operator_seed(bank)
                };
                (
                    signer,
                    Body::Reprioritise {
                        tx_hash: hash,
                        priority,
                    },
                )
            }
        }
        18 => (
            if op.flag % 4 == 3 {
                p.any_signer(op.a)
            } else {
                testkit::AUTHORITY_SEED
            },
            Body::ResolveGridlock,
        ),
        // A random body from a random signer: exercises every authorization path.
        _ => {
            let (_, body) = body_for(
                &Op {
                    kind: op.flag % 15,
                    ..op.clone()
                },
                p,
                waiting,
                now,
            );
            (p.any_signer(op.a), body)
        }
    }
}

/// Builds the signed blocks of a scenario by running them once against a ledger (nonces
/// and heights depend on the state), checking invariants after every block.
fn run(scenario: &Scenario) -> (Vec<Vec<VerifiedTransaction>>, Vec<BlockOutcome>) {
    let mut ledger = Ledger::from_genesis(&scenario.genesis).expect("genesis");
    let p = Participants {
        banks: scenario.genesis.banks.len(),
        edge: scenario.edge,
    };
    let mut blocks = Vec::new();
    let mut outcomes = Vec::new();
    for ops in &scenario.blocks {
        let height = ledger.height() + 1;
        let mut nonces: HashMap<u64, u64> = HashMap::new();
        let waiting: Vec<Waiting> = ledger
            .banks()
            .enumerate()
            .flat_map(|(index, (bank, _))| {
                let ledger = &ledger;
                ledger.queue(bank).map(move |queued| {
                    let payer = (0..CUSTOMERS_PER_BANK)
                        .map(|i| customer_seed(index, i))
                        .find(|seed| account(*seed) == queued.from)
                        .unwrap_or(STRANGER);
                    (queued.tx_hash, payer, index)
                })
            })
            .collect();
        let txs: Vec<VerifiedTransaction> = ops
            .iter()
            .map(|op| {
                let (seed, body) = body_for(op, &p, &waiting, time_of(height));
                let next = nonces
                    .entry(seed)
                    .or_insert_with(|| ledger.next_nonce(&account(seed)).unwrap_or(0));
                // Mostly the right nonce; sometimes a stale or future one.
                let nonce = match op.flag {
                    14 => next.wrapping_add(1),
                    15 => next.wrapping_sub(1),
                    _ => *next,
                };
                *next += 1;
                let valid_until_height = if op.flag == 13 {
                    height - 1
                } else {
                    height + 2
                };
                let tx = Transaction {
                    chain_id: "test".into(),
                    signer: account(seed),
                    nonce,
                    valid_until_height,
                    body,
                }
                .sign(&key(seed));
                // Bodies with stateless errors (zero amounts, self transfers) are what a node
                // would never include; drop them here as the node would.
                tx.check_stateless("test")
            })
            .filter_map(Result::ok)
            .collect();
        let outcome = ledger.apply_block(height, time_of(height), &txs);
        if let Err(violation) = ledger.check_invariants() {
            panic!("after block {height}: {violation}\nblock: {txs:#?}");
        }
        if let Err(violation) = ledger.check_block_invariants() {
            panic!("after block {height}, per-block check: {violation}\nblock: {txs:#?}");
        }
        blocks.push(txs);
        outcomes.push(outcome);
    }
    (blocks, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn invariants_hold_and_replay_is_deterministic(scenario in scenario_strategy()) {
        let (blocks, outcomes) = run(&scenario);
        let mut replay = Ledger::from_genesis(&scenario.genesis).expect("genesis");
        for (i, txs) in blocks.iter().enumerate() {
            let again = replay.apply_block(i as u64 + 1, time_of(i as u64 + 1), txs);
            prop_assert_eq!(&again, &outcomes[i]);
        }
    }

    #[test]
    fn edge_amounts_never_make_apply_block_panic(scenario in edge_scenario_strategy()) {
        // `run` applies every block (a panic fails the test) and checks the invariants,
        // full and per block, after each.
        let (blocks, outcomes) = run(&scenario);
        let mut replay = Ledger::from_genesis(&scenario.genesis).expect("genesis");
        for (i, txs) in blocks.iter().enumerate() {
            let again = replay.apply_block(i as u64 + 1, time_of(i as u64 + 1), txs);
            prop_assert_eq!(&again, &outcomes[i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A checkpoint is the state's entries: a ledger rebuilt from them at any height has the
    /// same state root and goes on exactly as the original (same outcomes, same roots), and
    /// its entries are again the same.
    #[test]
    fn a_ledger_rebuilt_from_its_entries_goes_on_identically(
        scenario in scenario_strategy(),
        cut in 0usize..16,
    ) {
        let (blocks, outcomes) = run(&scenario);
        let cut = cut.min(blocks.len());
        let mut original = Ledger::from_genesis(&scenario.genesis).expect("genesis");
        for (i, txs) in blocks[..cut].iter().enumerate() {
            original.apply_block(i as u64 + 1, time_of(i as u64 + 1), txs);
        }
        let entries: Vec<StateEntry> = original.state_entries().collect();
        prop_assert_eq!(entries.len(), original.state_len());
        let mut shuffled = entries.clone();
        shuffled.reverse();
        let mut rebuilt =
            Ledger::from_state_entries(&scenario.genesis, original.height(), shuffled)
                .expect("a ledger's own entries rebuild it");
        prop_assert_eq!(rebuilt.state_root(), original.state_root());
        let mut again: Vec<StateEntry> = rebuilt.state_entries().collect();
        let mut first = entries;
        again.sort_by_key(|e| e.key.tree_key());
        first.sort_by_key(|e| e.key.tree_key());
        prop_assert_eq!(again, first);
        for (i, txs) in blocks.iter().enumerate().skip(cut) {
            let outcome = rebuilt.apply_block(i as u64 + 1, time_of(i as u64 + 1), txs);
            prop_assert_eq!(&outcome, &outcomes[i]);
            rebuilt.check_invariants().expect("invariants after the rebuilt ledger's block");
            rebuilt
                .check_block_invariants()
                .expect("per-block invariants after the rebuilt ledger's block");
        }
    }
}

#[test]
fn edge_scenarios_reach_the_overflow_refusals() {
    // The edge mode must actually hit the limits, or the property above proves little.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut codes = std::collections::BTreeMap::new();
    let (mut committed, mut settled) = (0, 0);
    for _ in 0..60 {
        let scenario = edge_scenario_strategy()
            .new_tree(&mut runner)
            .expect("strategy")
            .current();
        let (_, outcomes) = run(&scenario);
        for outcome in outcomes {
            for receipt in &outcome.receipts {
                match &receipt.outcome {
                    Outcome::Rejected { error } => *codes.entry(error.code()).or_insert(0) += 1,
                    _ => committed += 1,
                }
            }
            settled += usize::from(outcome.settlement.is_some());
        }
    }
    assert!(
        committed > 0 && settled > 0,
        "{committed} committed, {settled} settled"
    );
    for code in [
        "overflow",
        "pool_limit",
        "insufficient_funds",
        "insufficient_pool",
    ] {
        assert!(codes.contains_key(code), "no {code} in {codes:?}");
    }
}

#[test]
fn generated_scenarios_reach_every_outcome() {
    // The generator must actually produce commits, queues, releases, expiries, settlements
    // and rejections, or the property above proves little.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut committed, mut queued, mut rejected, mut released, mut expired, mut settled) =
        (0, 0, 0, 0, 0, 0);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let scenario = scenario_strategy()
            .new_tree(&mut runner)
            .expect("strategy")
            .current();
        let (_, outcomes) = run(&scenario);
        for outcome in outcomes {
            for receipt in &outcome.receipts {
                match &receipt.outcome {
                    Outcome::Committed => committed += 1,
                    Outcome::Queued { .. } => queued += 1,
                    Outcome::Rejected { error } => {
                        rejected += 1;
                        codes.insert(error.code());
                    }
                }
            }
            released += outcome.released.len();
            expired += outcome.expired.len();
            settled += usize::from(outcome.settlement.is_some());
        }
    }
    for (name, count) in [
        ("committed", committed),
        ("queued", queued),
        ("rejected", rejected),
        ("released", released),
        ("expired", expired),
        ("settled", settled),
    ] {
        assert!(count > 0, "no {name} outcome in 40 scenarios");
    }
    assert!(
        codes.len() >= 12,
        "only these rejection codes were reached: {codes:?}"
    );
}
