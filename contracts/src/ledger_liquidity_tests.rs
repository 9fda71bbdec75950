//! Liquidity management in the ledger: priorities, queue control, timed payments, the
//! business day, the liquidity-saving pass.

use super::tests::{bank, cust, op, transfer, Harness};
use super::*;
use crate::calendar::{BusinessDay, DAY_MS};
use crate::outcome::Outcome;
use crate::testkit::{self, account};
use crate::tx::Body;

const AUTHORITY: u64 = testkit::AUTHORITY_SEED;

fn with_terms(to: u64, amount: u64, e2e: &str, terms: TransferTerms) -> Body {
    match transfer(to, amount, e2e) {
        Body::Transfer {
            to,
            amount,
            end_to_end_id,
            reference,
            ..
        } => Body::Transfer {
            to,
            amount,
            end_to_end_id,
            reference,
            terms,
        },
        _ => unreachable!(),
    }
}

fn high(to: u64, amount: u64, e2e: &str) -> Body {
    with_terms(
        to,
        amount,
        e2e,
        TransferTerms {
            priority: Priority::High,
            ..TransferTerms::default()
        },
    )
}

/// The harness's chain with the pass after every block.
fn with_pass() -> Harness {
    Harness::with(testkit::genesis(3, 3, 100_000, 1_000_000, 50_000))
}

fn queued(h: &Harness, b: usize) -> Vec<Hash> {
    h.ledger.queue(&bank(b)).map(|q| q.tx_hash).collect()
}

#[test]
fn a_high_payment_is_released_before_an_older_normal_one() {
    let mut h = Harness::new();
    // Bank 0 uses 40,000 of its 50,000: two payments of 30,000 then wait.
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(1, 0), 40_000, "fill")),
        Outcome::Committed
    );
    let normal = h.tx(cust(0, 1), transfer(cust(1, 1), 30_000, "normal"));
    let urgent_one = h.tx(cust(0, 2), high(cust(1, 2), 30_000, "high"));
    let outcome = h.block(vec![normal.clone(), urgent_one.clone()]);
    assert!(outcome.released.is_empty());
    // Room for one: 30,000 comes back to bank 0.
    let tx = h.tx(cust(1, 0), transfer(cust(0, 0), 30_000, "back"));
    let outcome = h.block(vec![tx]);
    let released: Vec<Hash> = outcome.released.iter().map(|e| e.tx_hash).collect();
    assert_eq!(released, vec![urgent_one.hash()], "the high one first");
    assert_eq!(queued(&h, 0), vec![normal.hash()]);
}

#[test]
fn a_normal_payment_never_passes_a_waiting_high_one_of_its_bank() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(1, 0), 40_000, "fill")),
        Outcome::Committed
    );
    // A high payment that does not fit waits; a small normal one that would fit alone must
    // wait behind it, whether it arrives now or was queued before.
    let big = h.tx(cust(0, 1), high(cust(1, 1), 20_000, "big-high"));
    assert!(matches!(
        h.block(vec![big]).receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    let small = h.tx(cust(0, 2), transfer(cust(2, 0), 1_000, "small"));
    assert!(matches!(
        h.block(vec![small]).receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    // A high one behind the high one waits too (first in first out), though it fits.
    let second = h.tx(cust(0, 2), high(cust(2, 1), 1_000, "small-high"));
    assert!(matches!(
        h.block(vec![second]).receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    // Room: the big high one goes first, then the rest.
    let tx = h.tx(cust(1, 0), transfer(cust(0, 0), 40_000, "room"));
    let outcome = h.block(vec![tx]);
    assert_eq!(outcome.released.len(), 3);
    assert_eq!(outcome.released[0].amount, Amount(20_000));
    assert_eq!(outcome.released[1].amount, Amount(1_000));
}

#[test]
fn urgent_is_not_a_customer_priority() {
    let mut h = Harness::new();
    let body = with_terms(
        cust(1, 0),
        10,
        "u",
        TransferTerms {
            priority: Priority::Urgent,
            ..TransferTerms::default()
        },
    );
    let tx = h.tx(cust(0, 0), body);
    h.expect_rejected(tx, TxError::PriorityNotAllowed(Priority::Urgent), true);
}

#[test]
fn cancel_by_the_payer_refunds_exactly_the_reservation() {
    let mut h = Harness::new();
    let before = h.balance(cust(0, 0));
    let waiting = h.tx(cust(0, 0), transfer(cust(1, 0), 60_000, "too-big"));
    h.block(vec![waiting.clone()]);
    assert_eq!(h.reserved(cust(0, 0)), 60_000);
    assert_eq!(h.balance(cust(0, 0)), before - 60_000);
    let cancel = h.tx(
        cust(0, 0),
        Body::CancelTransfer {
            tx_hash: waiting.hash(),
        },
    );
    let outcome = h.block(vec![cancel]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    assert_eq!(outcome.dropped.len(), 1);
    assert_eq!(outcome.dropped[0].transfer.tx_hash, waiting.hash());
    assert_eq!(
        outcome.dropped[0].reason,
        DropReason::Cancelled {
            by: account(cust(0, 0))
        }
    );
    assert_eq!(h.reserved(cust(0, 0)), 0);
    assert_eq!(h.balance(cust(0, 0)), before);
    assert!(queued(&h, 0).is_empty());
    // Once out of the queue it cannot be cancelled again.
    let again = h.tx(
        cust(0, 0),
        Body::CancelTransfer {
            tx_hash: waiting.hash(),
        },
    );
    h.expect_rejected(again, TxError::NotQueued(waiting.hash()), true);
}

#[test]
fn only_the_payer_or_its_banks_operator_may_cancel_and_a_committed_transfer_cannot_be() {
    let mut h = Harness::new();
    let paid = h.tx(cust(0, 0), transfer(cust(1, 0), 1_000, "paid"));
    assert_eq!(
        h.block(vec![paid.clone()]).receipts[0].outcome,
        Outcome::Committed
    );
    let late = h.tx(
        cust(0, 0),
        Body::CancelTransfer {
            tx_hash: paid.hash(),
        },
    );
    h.expect_rejected(late, TxError::NotQueued(paid.hash()), true);
    let waiting = h.tx(cust(0, 1), transfer(cust(1, 1), 60_000, "waits"));
    h.block(vec![waiting.clone()]);
    let cancel = Body::CancelTransfer {
        tx_hash: waiting.hash(),
    };
    for stranger in [cust(0, 2), cust(1, 1), op(1)] {
        let tx = h.tx(stranger, cancel.clone());
        h.expect_rejected(tx, TxError::Unauthorized(BodyKind::CancelTransfer), true);
    }
    assert_eq!(h.run(op(0), cancel), Outcome::Committed);
    assert_eq!(h.reserved(cust(0, 1)), 0);
}

#[test]
fn the_operator_reprioritises_its_banks_queued_transfers_only() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(cust(0, 0), transfer(cust(1, 0), 40_000, "fill")),
        Outcome::Committed
    );
    let first = h.tx(cust(0, 1), transfer(cust(1, 1), 30_000, "first"));
    let second = h.tx(cust(0, 2), transfer(cust(1, 2), 30_000, "second"));
    h.block(vec![first.clone(), second.clone()]);
    let up = |hash| Body::Reprioritise {
        tx_hash: hash,
        priority: Priority::High,
    };
    let tx = h.tx(op(1), up(second.hash()));
    h.expect_rejected(tx, TxError::Unauthorized(BodyKind::Reprioritise), true);
    let tx = h.tx(cust(0, 2), up(second.hash()));
    h.expect_rejected(tx, TxError::Unauthorized(BodyKind::Reprioritise), true);
    let tx = h.tx(
        op(0),
        Body::Reprioritise {
            tx_hash: second.hash(),
            priority: Priority::Urgent,
        },
    );
    h.expect_rejected(tx, TxError::PriorityNotAllowed(Priority::Urgent), true);
    let tx = h.tx(
        op(0),
        Body::Reprioritise {
            tx_hash: second.hash(),
            priority: Priority::Normal,
        },
    );
    h.expect_rejected(tx, TxError::SamePriority(second.hash()), true);
    assert_eq!(h.run(op(0), up(second.hash())), Outcome::Committed);
    let tx = h.tx(cust(1, 0), transfer(cust(0, 0), 30_000, "back"));
    let outcome = h.block(vec![tx]);
    let released: Vec<Hash> = outcome.released.iter().map(|e| e.tx_hash).collect();
    assert_eq!(
        released,
        vec![second.hash()],
        "the reprioritised one goes first"
    );
}

#[test]
fn a_transfer_waits_for_its_not_before_time_and_settles_in_the_first_block_at_it() {
    let mut h = Harness::new();
    let at = 50_000;
    let terms = TransferTerms {
        not_before_ms: Some(at),
        ..TransferTerms::default()
    };
    // Across banks and between two customers of one bank, both well within the cap.
    let cross = h.tx(cust(0, 0), with_terms(cust(1, 0), 100, "later", terms));
    let on_us = h.tx(cust(0, 1), with_terms(cust(0, 2), 100, "on-us", terms));
    let outcome = h.block_at(10_000, vec![cross.clone(), on_us.clone()]);
    assert!(outcome
        .receipts
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Queued { .. })));
    assert!(h.block_at(49_999, vec![]).released.is_empty());
    let outcome = h.block_at(at, vec![]);
    let released: Vec<Hash> = outcome.released.iter().map(|e| e.tx_hash).collect();
    assert_eq!(released, vec![cross.hash(), on_us.hash()]);
    assert_eq!(h.reserved(cust(0, 1)), 0);
    assert_eq!(h.balance(cust(0, 2)), 100_100);
}

#[test]
fn reject_after_fires_in_the_first_block_at_or_after_it_with_a_warning_before() {
    let mut genesis = testkit::genesis(3, 3, 100_000, 1_000_000, 50_000);
    genesis.reject_warning_ms = 10_000;
    let mut h = Harness::with(genesis);
    let reject_at = 100_000;
    let terms = TransferTerms {
        reject_after_ms: Some(reject_at),
        ..TransferTerms::default()
    };
    let waiting = h.tx(cust(0, 0), with_terms(cust(1, 0), 60_000, "timed", terms));
    let outcome = h.block_at(50_000, vec![waiting.clone()]);
    assert!(matches!(
        outcome.receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    assert!(outcome.warned.is_empty());
    assert!(h.block_at(89_999, vec![]).warned.is_empty());
    let outcome = h.block_at(90_000, vec![]);
    assert_eq!(outcome.warned.len(), 1, "warned once the lead is reached");
    assert!(
        h.block_at(95_000, vec![]).warned.is_empty(),
        "and only once"
    );
    let outcome = h.block_at(99_999, vec![]);
    assert!(outcome.dropped.is_empty());
    let outcome = h.block_at(120_000, vec![]);
    assert_eq!(outcome.dropped.len(), 1);
    assert_eq!(outcome.dropped[0].reason, DropReason::RejectTime);
    assert_eq!(h.reserved(cust(0, 0)), 0);
    assert_eq!(h.balance(cust(0, 0)), 100_000);
    // Submitted at or after its reject time: refused outright.
    let stale = h.tx(cust(0, 0), with_terms(cust(1, 0), 10, "stale", terms));
    h.expect_rejected(
        stale,
        TxError::RejectTime {
            reject_after_ms: reject_at,
            time_ms: 121_000,
        },
        true,
    );
}

/// 2026-11-30T00:00:00Z.
const NOV_30: u64 = 1_795_996_800_000;
const HOUR: u64 = 3_600_000;

fn business_day_chain() -> Harness {
    let mut genesis = testkit::genesis(3, 3, 100_000, 1_000_000, 50_000);
    genesis.gridlock_pass = GridlockPass::OnRequest;
    genesis.business_day = Some(BusinessDay {
        utc_offset_minutes: 60,
        customer_cutoff: "17:00".parse().expect("valid"),
        end_of_day: "18:00".parse().expect("valid"),
    });
    Harness::with(genesis)
}

#[test]
fn the_cutoff_rejects_queued_normal_transfers_and_end_of_day_closes_the_cycle_with_a_report() {
    let mut h = business_day_chain();
    // 09:00 local (08:00Z): a day's business.
    let morning = NOV_30 + 8 * HOUR;
    let paid = h.tx(cust(0, 0), transfer(cust(1, 0), 40_000, "paid"));
    let normal = h.tx(cust(0, 1), transfer(cust(1, 1), 30_000, "normal"));
    let kept = h.tx(cust(0, 2), high(cust(2, 0), 30_000, "kept"));
    h.block_at(morning, vec![paid, kept.clone()]);
    h.block_at(morning + HOUR, vec![normal.clone()]);
    assert_eq!(queued(&h, 0).len(), 2);
    // 16:59:59 local: nothing yet.
    let outcome = h.block_at(NOV_30 + 16 * HOUR - 1, vec![]);
    assert!(outcome.dropped.is_empty());
    assert_eq!(h.ledger.business_day(), (1, false));
    // 17:00:30 local: the first block at or after the cut-off rejects the normal one.
    let outcome = h.block_at(NOV_30 + 16 * HOUR + 30_000, vec![]);
    let stored = crate::codec::encode(&outcome);
    assert_eq!(
        crate::codec::decode::<BlockOutcome>(&stored, u64::MAX).as_ref(),
        Ok(&outcome),
        "outcomes with drops round-trip through the store's encoding"
    );
    assert_eq!(outcome.dropped.len(), 1);
    assert_eq!(outcome.dropped[0].transfer.tx_hash, normal.hash());
    assert_eq!(outcome.dropped[0].reason, DropReason::Cutoff);
    assert_eq!(queued(&h, 0), vec![kept.hash()]);
    assert_eq!(h.reserved(cust(0, 1)), 0);
    // After the cut-off a normal transfer is refused; a high one still goes.
    let late = h.tx(cust(1, 0), transfer(cust(0, 0), 1_000, "late"));
    h.expect_rejected(late, TxError::Cutoff, true);
    let urgent_late = h.tx(cust(1, 0), high(cust(0, 0), 1_000, "late-high"));
    let outcome = h.block_at(NOV_30 + 16 * HOUR + 60_000, vec![urgent_late]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    // 18:00 local: end of day closes the cycle and keeps the report.
    let outcome = h.block_at(NOV_30 + 17 * HOUR, vec![]);
    let settlement = outcome
        .settlement
        .clone()
        .expect("end of day closes the cycle");
    assert_eq!(settlement.trigger, SettlementTrigger::EndOfDay);
    let stored = crate::codec::encode(&outcome);
    assert_eq!(
        crate::codec::decode::<BlockOutcome>(&stored, u64::MAX).as_ref(),
        Ok(&outcome)
    );
    let report = outcome.day_report.expect("day report");
    assert_eq!(report.day, 1);
    assert_eq!(report.date, "2026-11-30");
    let stats = &report.banks[0].stats;
    assert_eq!(stats.settled_count, 1);
    assert_eq!(stats.settled_value, 40_000);
    assert_eq!(stats.queued_peak, 2);
    assert_eq!(stats.cutoff_rejected_count, 1);
    assert_eq!(stats.cutoff_rejected_value, 30_000);
    assert_eq!(h.ledger.day_report(1), Some(&report));
    // The next day: normal transfers are open again, and the high one, kept over the
    // cut-off, settles in the new cycle.
    assert_eq!(h.ledger.business_day(), (2, false));
    let next = h.tx(cust(1, 0), transfer(cust(0, 0), 1_000, "tomorrow"));
    let outcome = h.block_at(NOV_30 + DAY_MS + 8 * HOUR, vec![next]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    let released: Vec<Hash> = outcome.released.iter().map(|e| e.tx_hash).collect();
    assert_eq!(released, vec![kept.hash()]);
    assert!(queued(&h, 0).is_empty());
}

#[test]
fn a_chain_that_stalls_over_days_acts_once_in_its_first_block_after() {
    let mut h = business_day_chain();
    h.block_at(NOV_30 + 8 * HOUR, vec![]);
    let waiting = h.tx(cust(0, 0), transfer(cust(1, 0), 60_000, "waits"));
    h.block_at(NOV_30 + 9 * HOUR, vec![waiting]);
    // Three days later, at 10:00 local.
    let outcome = h.block_at(NOV_30 + 3 * DAY_MS + 9 * HOUR, vec![]);
    assert_eq!(outcome.dropped.len(), 1, "the missed cut-off");
    assert_eq!(outcome.day_report.map(|r| r.day), Some(1), "one end of day");
    assert_eq!(h.ledger.business_day(), (2, false));
    // The next events are that day's.
    assert!(h
        .block_at(NOV_30 + 3 * DAY_MS + 16 * HOUR - 1, vec![])
        .day_report
        .is_none());
    let outcome = h.block_at(NOV_30 + 3 * DAY_MS + 17 * HOUR, vec![]);
    assert_eq!(
        outcome.day_report.map(|r| (r.day, r.date)),
        Some((2, "2026-12-03".into()))
    );
}

#[test]
fn a_stall_that_ends_after_a_cutoff_keeps_normal_transfers_closed_until_that_end_of_day() {
    let mut h = business_day_chain();
    h.block_at(NOV_30 + 9 * HOUR, vec![]);
    // The next block is on December 1st at 17:30 local: past that day's cut-off.
    let late = h.tx(cust(0, 0), transfer(cust(1, 0), 1_000, "late"));
    let outcome = h.block_at(NOV_30 + DAY_MS + 16 * HOUR + HOUR / 2, vec![late]);
    assert_eq!(
        outcome.receipts[0].outcome,
        Outcome::Rejected {
            error: TxError::Cutoff
        }
    );
    let report = outcome.day_report.expect("the missed end of day");
    assert_eq!((report.day, report.date.as_str()), (1, "2026-11-30"));
    assert_eq!(h.ledger.business_day(), (2, true));
    // 18:00 local closes day 2, and the 3rd opens normally.
    let outcome = h.block_at(NOV_30 + DAY_MS + 17 * HOUR, vec![]);
    assert_eq!(
        outcome.day_report.map(|r| r.date),
        Some("2026-12-01".into())
    );
    assert_eq!(h.ledger.business_day(), (3, false));
}

#[test]
fn after_the_cutoff_no_transfer_may_become_normal() {
    let mut h = business_day_chain();
    h.block_at(NOV_30 + 9 * HOUR, vec![]);
    // Bank 0 uses 40,000 of its 50,000: the high 30,000 waits.
    let fill = h.tx(cust(0, 1), transfer(cust(1, 1), 40_000, "fill"));
    let waiting = h.tx(cust(0, 0), high(cust(1, 0), 30_000, "high"));
    h.block_at(NOV_30 + 10 * HOUR, vec![fill, waiting.clone()]);
    assert_eq!(queued(&h, 0), vec![waiting.hash()]);
    h.block_at(NOV_30 + 16 * HOUR, vec![]);
    let down = h.tx(
        op(0),
        Body::Reprioritise {
            tx_hash: waiting.hash(),
            priority: Priority::Normal,
        },
    );
    h.expect_rejected(down, TxError::Cutoff, true);
}

#[test]
fn a_frozen_payers_queued_high_transfer_holds_up_neither_the_retry_nor_the_pass() {
    let mut h = with_pass();
    // Bank 0 uses 40,000 of its 50,000: the high 20,000 waits.
    let fill = h.tx(cust(0, 1), transfer(cust(1, 1), 40_000, "fill"));
    let stuck = h.tx(cust(0, 2), high(cust(1, 2), 20_000, "stuck"));
    h.block(vec![fill, stuck.clone()]);
    assert_eq!(queued(&h, 0), vec![stuck.hash()]);
    let freeze = h.tx(
        testkit::REGULATOR_SEED,
        Body::Freeze {
            account: account(cust(0, 2)),
        },
    );
    h.block(vec![freeze]);
    // A ring of 95,000 each: over every bank's room (bank 1's too, after the fill).
    let txs: Vec<VerifiedTransaction> = (0..3)
        .map(|b| {
            h.tx(
                cust(b, 0),
                transfer(cust((b + 1) % 3, 1), 95_000, &format!("ring-{b}")),
            )
        })
        .collect();
    let outcome = h.block(txs);
    assert_eq!(
        outcome.released.len(),
        3,
        "the ring settles past the frozen payer's"
    );
    assert_eq!(queued(&h, 0), vec![stuck.hash()]);
}

/// Three banks each paying the next more than its cap: none fits alone, all fit together.
fn ring(h: &mut Harness) -> Vec<VerifiedTransaction> {
    (0..3)
        .map(|b| {
            h.tx(
                cust(b, 0),
                transfer(cust((b + 1) % 3, 1), 60_000, &format!("ring-{b}")),
            )
        })
        .collect()
}

#[test]
fn a_ring_of_banks_over_their_caps_settles_in_one_pass() {
    let mut h = with_pass();
    let txs = ring(&mut h);
    let outcome = h.block(txs);
    assert!(outcome
        .receipts
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Queued { .. })));
    assert_eq!(outcome.released.len(), 3);
    let stored = crate::codec::encode(&outcome);
    assert_eq!(
        crate::codec::decode::<BlockOutcome>(&stored, u64::MAX).as_ref(),
        Ok(&outcome)
    );
    let run = outcome.gridlock.expect("the pass ran");
    assert_eq!(
        (run.offered, run.settled, run.value, run.all_at_once),
        (3, 3, 180_000, true)
    );
    for b in 0..3 {
        assert_eq!(h.bank(b).net_debit(), Amount::ZERO);
        assert_eq!(h.reserved(cust(b, 0)), 0);
    }
}

#[test]
fn without_the_pass_the_ring_waits_until_expiry_and_the_authority_can_ask_for_it() {
    let mut h = Harness::new();
    let txs = ring(&mut h);
    let outcome = h.block(txs);
    assert!(outcome.released.is_empty() && outcome.gridlock.is_none());
    let stranger = h.tx(cust(0, 2), Body::ResolveGridlock);
    h.expect_rejected(
        stranger,
        TxError::Unauthorized(BodyKind::ResolveGridlock),
        true,
    );
    let tx = h.tx(AUTHORITY, Body::ResolveGridlock);
    let outcome = h.block(vec![tx]);
    assert_eq!(outcome.released.len(), 3);
    assert!(outcome
        .gridlock
        .is_some_and(|run| run.requested && run.settled == 3));
}

#[test]
fn the_partial_pass_drops_the_largest_debtors_latest_payment() {
    let mut h = with_pass();
    let mut txs = ring(&mut h);
    // Bank 0 also owes bank 1 another 60,000, queued last: the ring cannot carry it.
    txs.push(h.tx(cust(0, 1), transfer(cust(1, 2), 60_000, "extra")));
    let outcome = h.block(txs.clone());
    let run = outcome.gridlock.expect("the pass ran");
    assert_eq!((run.offered, run.settled, run.all_at_once), (4, 3, false));
    assert_eq!(queued(&h, 0), vec![txs[3].hash()]);
}

#[test]
fn queues_with_times_and_priorities_survive_a_rebuild_from_state_entries() {
    let mut h = Harness::new();
    let timed = TransferTerms {
        priority: Priority::High,
        not_before_ms: Some(500_000),
        reject_after_ms: Some(900_000),
    };
    let a = h.tx(cust(0, 0), with_terms(cust(1, 0), 40_000, "a", timed));
    let b = h.tx(cust(0, 1), transfer(cust(1, 1), 60_000, "b"));
    h.block_at(100_000, vec![a, b]);
    let genesis = testkit::genesis(3, 3, 100_000, 1_000_000, 50_000);
    let genesis = Genesis {
        gridlock_pass: GridlockPass::OnRequest,
        ..genesis
    };
    let mut rebuilt =
        Ledger::from_state_entries(&genesis, h.ledger.height(), h.ledger.state_entries())
            .expect("rebuilds");
    assert_eq!(rebuilt.state_root(), h.ledger.state_root());
    let next = h.ledger.height() + 1;
    let room = h.tx(cust(1, 0), transfer(cust(0, 0), 60_000, "room"));
    for time in [600_000, 950_000] {
        let txs = if time == 600_000 {
            vec![room.clone()]
        } else {
            vec![]
        };
        let height = rebuilt.height() + 1;
        let ours = rebuilt.apply_block(height, time, &txs);
        let theirs = h.block_at(time, txs);
        assert_eq!(ours, theirs);
    }
    assert!(next > 0);
}

/// Review finding 2: a customer's high transfer larger than its bank's whole debit limit
/// (min(cap, pool): 500.00 here) could settle only once the bank had received more than it
/// sent by the excess. Queued, it was due at once: every later transfer of any customer of
/// the bank was queued on arrival behind it, and none was released (the walk stopped at
/// it) until it expired, past the cut-off too; then the customer could send it again. Such
/// a transfer that would wait is refused; one that fits on arrival still commits.
#[test]
fn a_customers_high_transfer_over_its_banks_debit_limit_is_refused_and_holds_up_nobody() {
    let mut h = Harness::new();
    let blocker = h.tx(cust(0, 0), high(cust(1, 0), 60_000, "blocker"));
    h.expect_rejected(blocker, TxError::HighOverDebitLimit(bank(0)), true);
    assert!(queued(&h, 0).is_empty());
    assert_eq!(h.reserved(cust(0, 0)), 0);
    // The bank's other customers' payments, normal and high, settle on arrival.
    let normal = h.tx(cust(0, 1), transfer(cust(2, 0), 1_000, "normal"));
    let high_one = h.tx(cust(0, 2), high(cust(2, 1), 1_000, "high"));
    let outcome = h.block(vec![normal, high_one]);
    for receipt in &outcome.receipts {
        assert_eq!(receipt.outcome, Outcome::Committed);
    }
    assert!(queued(&h, 0).is_empty());
    // Bank 0 receives 30,000: the same 60,000 high transfer now fits, and commits.
    let room = h.tx(cust(1, 1), transfer(cust(0, 1), 30_000, "room"));
    let outcome = h.block(vec![room]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    let fits = h.tx(cust(0, 0), high(cust(1, 0), 60_000, "fits"));
    let outcome = h.block(vec![fits]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    assert_eq!(h.balance(cust(1, 0)), 160_000);
}

/// A high transfer queued within its bank's debit limit, left over it by a lowered cap, no
/// longer stops its bank's walk: a later payment that fits is released past it (the due
/// counts do not know caps, so that payment is queued on arrival, and released in the same
/// block). The high one settles once the bank has received enough.
#[test]
fn a_high_transfer_left_over_a_lowered_cap_does_not_stop_its_banks_queue() {
    let mut h = Harness::new();
    // Bank 0 uses 20,000 of its 50,000: a high 40,000 waits.
    assert_eq!(
        h.run(cust(0, 1), transfer(cust(1, 1), 20_000, "fill")),
        Outcome::Committed
    );
    let big = h.tx(cust(0, 0), high(cust(1, 0), 40_000, "big"));
    assert!(matches!(
        h.block(vec![big.clone()]).receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    let lower = Body::SetNetDebitCap {
        bank: bank(0),
        cap: Amount(30_000),
    };
    assert_eq!(h.run(AUTHORITY, lower), Outcome::Committed);
    // 40,000 > 30,000: before, the walk stopped at it and the small payment stayed queued.
    let small = h.tx(cust(0, 2), transfer(cust(2, 0), 1_000, "small"));
    h.block(vec![small]);
    assert_eq!(queued(&h, 0), vec![big.hash()]);
    assert_eq!(h.balance(cust(2, 0)), 101_000);
    // 40,000 back to bank 0: 21,000 + 40,000 sent <= 40,000 received + 30,000.
    let room = h.tx(cust(1, 2), transfer(cust(0, 2), 40_000, "room"));
    let outcome = h.block(vec![room]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    let released: Vec<Hash> = outcome.released.iter().map(|e| e.tx_hash).collect();
    assert_eq!(released, vec![big.hash()]);
}

/// Review finding 3: a transfer between two customers of one bank needs no liquidity, so
/// it holds up nobody. Before, a 1-unit high one timed for the next block was counted as a
/// due high transfer of its bank in that block, and every cross-bank transfer of the bank
/// arriving in it was queued (released at the block's end).
#[test]
fn a_same_bank_transfer_becoming_due_makes_no_cross_bank_transfer_wait() {
    let mut h = Harness::new();
    let at = 20_000;
    let timed = TransferTerms {
        priority: Priority::High,
        not_before_ms: Some(at),
        ..TransferTerms::default()
    };
    let on_us = h.tx(cust(0, 0), with_terms(cust(0, 1), 1, "on-us", timed));
    assert!(matches!(
        h.block_at(10_000, vec![on_us.clone()]).receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    let normal = h.tx(cust(0, 2), transfer(cust(1, 0), 1_000, "normal"));
    let high_one = h.tx(cust(0, 1), high(cust(1, 1), 1_000, "high"));
    let outcome = h.block_at(at, vec![normal, high_one]);
    for receipt in &outcome.receipts {
        assert_eq!(receipt.outcome, Outcome::Committed);
    }
    let released: Vec<Hash> = outcome.released.iter().map(|e| e.tx_hash).collect();
    assert_eq!(released, vec![on_us.hash()]);
    assert_eq!(h.balance(cust(0, 1)), 100_000 + 1 - 1_000);
}

/// Review finding 3: a frozen payer's due transfer waits without holding up the others, on
/// arrival too (before, the due counts did not know freezes and a payment that fit was
/// queued, released at the block's end). Unfrozen, it is first in line again; a ledger
/// rebuilt from its state entries counts the same.
#[test]
fn a_frozen_payers_due_transfer_makes_no_new_transfer_wait_until_unfrozen() {
    let mut h = Harness::new();
    // Bank 0 uses 40,000 of its 50,000: the high 20,000 waits.
    let fill = h.tx(cust(0, 0), transfer(cust(1, 0), 40_000, "fill"));
    let waiting = h.tx(cust(0, 1), high(cust(1, 1), 20_000, "waiting"));
    h.block(vec![fill, waiting.clone()]);
    assert_eq!(queued(&h, 0), vec![waiting.hash()]);
    let (regulator, payer) = (testkit::REGULATOR_SEED, account(cust(0, 1)));
    let freeze = h.tx(regulator, Body::Freeze { account: payer });
    let outcome = h.block(vec![freeze]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    let genesis = Genesis {
        gridlock_pass: GridlockPass::OnRequest,
        ..testkit::genesis(3, 3, 100_000, 1_000_000, 50_000)
    };
    let height = h.ledger.height();
    let rebuilt = Ledger::from_state_entries(&genesis, height, h.ledger.state_entries());
    let rebuilt = rebuilt.expect("rebuilds");
    assert_eq!(rebuilt.due_counts, h.ledger.due_counts);
    rebuilt.check_invariants().expect("invariants");
    // While its payer is frozen, the high transfer holds up nobody.
    let first = h.tx(cust(0, 2), transfer(cust(2, 0), 1_000, "first"));
    let outcome = h.block(vec![first]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    // Unfrozen, it is first in line again: a new payment waits behind it.
    let unfreeze = h.tx(regulator, Body::Unfreeze { account: payer });
    let outcome = h.block(vec![unfreeze]);
    assert_eq!(outcome.receipts[0].outcome, Outcome::Committed);
    let second = h.tx(cust(0, 2), transfer(cust(2, 1), 1_000, "second"));
    assert!(matches!(
        h.block(vec![second.clone()]).receipts[0].outcome,
        Outcome::Queued { .. }
    ));
    assert_eq!(queued(&h, 0), vec![waiting.hash(), second.hash()]);
}

/// The full check has teeth for the due counts: counts that differ from the queues are a
/// broken invariant.
#[test]
fn the_full_check_catches_due_counts_that_differ_from_the_queues() {
    let mut h = Harness::new();
    let waiting = h.tx(cust(0, 0), transfer(cust(1, 0), 60_000, "waiting"));
    h.block(vec![waiting]);
    let mut broken = h.ledger.clone();
    broken.due_counts.clear();
    assert!(broken.check_invariants().is_err());
    let mut broken = h.ledger.clone();
    broken.due_counts.insert(bank(1), [0, 1, 0]);
    assert!(broken.check_invariants().is_err());
}
