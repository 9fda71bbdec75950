//! Ledger benchmarks (criterion; run with `scripts/bench.sh` or `cargo bench -p
//! interpool-contracts`).
//!
//! * `apply_block/10000_transfers`: one block of 10,000 signed, already-verified transfers
//!   among 10,000 accounts at 4 banks, state-root update included (the goal is at least
//!   200,000 transfers/s on one core).
//! * `codec/{encode,decode}/5000_transfers`: a block of 5,000 transfers (about 1 MB) to
//!   its canonical bytes and back, the canonical-encoding check of decoding included (what
//!   every validator does to a proposal, and an observer to every synced block);
//!   `codec/hash/5000_transfers`: their transaction hashes (an encoding and a SHA-256 each).
//! * `verify/{single,batch}/64`: ed25519 checks of 64 transactions one by one and as a
//!   batch.
//! * `gridlock/10000_queued_{random,offsetting}/{without,with}_pass`: a block on top of
//!   10,000 queued payments among 20 banks whose caps are zero (every cross-bank payment
//!   waits): without the liquidity-saving pass (the ordinary retry of every queue), and with
//!   it (the authority's `ResolveGridlock`). The difference is the pass's cost per block:
//!   `random` amounts never offset exactly, so the pass drops every payment (its worst
//!   case); `offsetting` ones settle all at once.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use interpool_contracts::genesis::GridlockPass;
use interpool_contracts::testkit::{self, account, customer_seed, key};
use interpool_contracts::tx::check_stateless_batch;
use interpool_contracts::{
    Amount, Block, BlockHeader, Body, Hash, Ledger, SignedTransaction, Transaction,
    VerifiedTransaction,
};

const BANKS: usize = 4;
const ACCOUNTS_PER_BANK: usize = 2_500;
const TRANSFERS: usize = 10_000;

/// A deterministic permutation step (LCG), so runs are comparable.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

fn transfers(count: usize) -> Vec<SignedTransaction> {
    let mut state = 7;
    let total = BANKS * ACCOUNTS_PER_BANK;
    (0..count)
        .map(|i| {
            // Every account sends once (nonce 0) to a pseudo-random other account.
            let from = i % total;
            let mut to = next(&mut state) as usize % total;
            if to == from {
                to = (to + 1) % total;
            }
            let (fb, fi) = (from / ACCOUNTS_PER_BANK, from % ACCOUNTS_PER_BANK);
            let (tb, ti) = (to / ACCOUNTS_PER_BANK, to % ACCOUNTS_PER_BANK);
            let seed = customer_seed(fb, fi);
            Transaction {
                chain_id: "test".into(),
                signer: account(seed),
                nonce: 0,
                valid_until_height: 10,
                body: Body::Transfer {
                    to: account(customer_seed(tb, ti)),
                    amount: Amount(1 + next(&mut state) % 10_000),
                    end_to_end_id: format!("BENCH-{i}"),
                    reference: "benchmark".into(),
                    terms: Default::default(),
                },
            }
            .sign(&key(seed))
        })
        .collect()
}

fn apply_block(c: &mut Criterion) {
    // Caps as large as the pools so that nothing queues: this measures the commit path.
    let genesis = testkit::genesis(
        BANKS,
        ACCOUNTS_PER_BANK,
        1_000_000_000,
        1_000_000_000_000,
        1_000_000_000_000,
    );
    let ledger = Ledger::from_genesis(&genesis).expect("genesis");
    let txs: Vec<VerifiedTransaction> = check_stateless_batch(transfers(TRANSFERS), "test")
        .into_iter()
        .map(|r| r.expect("valid"))
        .collect();
    let mut group = c.benchmark_group("apply_block");
    group.throughput(Throughput::Elements(TRANSFERS as u64));
    group.sample_size(20);
    group.bench_function("10000_transfers", |b| {
        b.iter_batched(
            || ledger.clone(),
            |mut ledger| {
                let outcome = ledger.apply_block(1, 1_000, &txs);
                assert_eq!(outcome.receipts.len(), TRANSFERS);
                outcome
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    const BLOCK_TRANSFERS: usize = 5_000;
    let block = Block {
        header: BlockHeader {
            chain_id: "test".into(),
            height: 1,
            parent_hash: Hash([1; 32]),
            previous_state_root: Hash([2; 32]),
            timestamp_ms: 1_700_000_000_000,
            proposer: account(customer_seed(0, 0)),
        },
        transactions: transfers(BLOCK_TRANSFERS),
    };
    let encoded = block.encode();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    group.bench_function("encode/5000_transfers", |b| b.iter(|| block.encode().len()));
    group.bench_function("hash/5000_transfers", |b| {
        b.iter(|| {
            block
                .transactions
                .iter()
                .map(|tx| tx.hash().0[0] as usize)
                .sum::<usize>()
        })
    });
    group.bench_function("decode/5000_transfers", |b| {
        b.iter(|| {
            Block::decode(&encoded, u64::MAX)
                .map(|decoded| decoded.transactions.len())
                .ok()
        })
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let txs = transfers(64);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.bench_function("single/64", |b| {
        b.iter_batched(
            || txs.clone(),
            |txs| {
                txs.into_iter()
                    .map(|tx| tx.check_stateless("test").is_ok())
                    .filter(|ok| *ok)
                    .count()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("batch/64", |b| {
        b.iter_batched(
            || txs.clone(),
            |txs| {
                check_stateless_batch(txs, "test")
                    .iter()
                    .filter(|r| r.is_ok())
                    .count()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

const GRIDLOCK_BANKS: usize = 20;
const GRIDLOCK_PAYERS_PER_BANK: usize = 500;

/// A ledger with 10,000 queued payments, one per payer, to a customer of another bank, and
/// the authority's `ResolveGridlock` for the next block. `offsetting`: 1,000.00 each, every
/// bank paying every other bank as much as it receives from it (the pass settles all at
/// once); otherwise 1–10,000 minor units to random banks (nothing offsets exactly, and the
/// pass drops every payment: its worst case).
fn gridlocked(offsetting: bool) -> (Ledger, VerifiedTransaction) {
    let mut genesis = testkit::genesis(
        GRIDLOCK_BANKS,
        GRIDLOCK_PAYERS_PER_BANK,
        1_000_000,
        1_000_000_000,
        0,
    );
    genesis.gridlock_pass = GridlockPass::OnRequest;
    let mut ledger = Ledger::from_genesis(&genesis).expect("genesis");
    let mut state = 11;
    let payments: Vec<SignedTransaction> = (0..GRIDLOCK_BANKS * GRIDLOCK_PAYERS_PER_BANK)
        .map(|i| {
            let (bank, payer) = (i / GRIDLOCK_PAYERS_PER_BANK, i % GRIDLOCK_PAYERS_PER_BANK);
            let other = if offsetting {
                1 + payer % (GRIDLOCK_BANKS - 1)
            } else {
                1 + next(&mut state) as usize % (GRIDLOCK_BANKS - 1)
            };
            let amount = if offsetting {
                100_000
            } else {
                1 + next(&mut state) % 10_000
            };
            let to = customer_seed(
                (bank + other) % GRIDLOCK_BANKS,
                next(&mut state) as usize % GRIDLOCK_PAYERS_PER_BANK,
            );
            let seed = customer_seed(bank, payer);
            Transaction {
                chain_id: "test".into(),
                signer: account(seed),
                nonce: 0,
                valid_until_height: 10,
                body: Body::Transfer {
                    to: account(to),
                    amount: Amount(amount),
                    end_to_end_id: format!("GRID-{i}"),
                    reference: String::new(),
                    terms: Default::default(),
                },
            }
            .sign(&key(seed))
        })
        .collect();
    let txs: Vec<VerifiedTransaction> = check_stateless_batch(payments, "test")
        .into_iter()
        .map(|r| r.expect("valid"))
        .collect();
    let outcome = ledger.apply_block(1, 1_000, &txs);
    assert!(
        outcome.released.is_empty(),
        "caps of zero queue every payment"
    );
    let resolve = Transaction {
        chain_id: "test".into(),
        signer: account(testkit::AUTHORITY_SEED),
        nonce: 0,
        valid_until_height: 10,
        body: Body::ResolveGridlock,
    }
    .sign(&key(testkit::AUTHORITY_SEED))
    .check_stateless("test")
    .expect("valid");
    (ledger, resolve)
}

fn gridlock(c: &mut Criterion) {
    let mut group = c.benchmark_group("gridlock");
    group.sample_size(20);
    for (name, offsetting) in [("random", false), ("offsetting", true)] {
        let (ledger, resolve) = gridlocked(offsetting);
        let queued: usize = ledger.banks().map(|(id, _)| ledger.queue(id).count()).sum();
        let queued_value: u64 = ledger
            .banks()
            .flat_map(|(id, _)| ledger.queue(id).map(|q| q.amount.0))
            .sum();
        let outcome = ledger
            .clone()
            .apply_block(2, 2_000, std::slice::from_ref(&resolve));
        let run = outcome.gridlock.expect("the pass ran");
        eprintln!(
            "gridlock/{name}: {queued} queued payments worth {queued_value}; without the pass \
             none settles (caps are zero), with it {} settle worth {} ({:.1} % of the value, \
             all at once: {})",
            outcome.released.len(),
            run.value,
            100.0 * run.value as f64 / queued_value as f64,
            run.all_at_once
        );
        group.bench_function(format!("10000_queued_{name}/without_pass"), |b| {
            b.iter_batched(
                || ledger.clone(),
                |mut ledger| ledger.apply_block(2, 2_000, &[]),
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("10000_queued_{name}/with_pass"), |b| {
            b.iter_batched(
                || ledger.clone(),
                |mut ledger| ledger.apply_block(2, 2_000, std::slice::from_ref(&resolve)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, apply_block, codec, verify, gridlock);
criterion_main!(benches);
