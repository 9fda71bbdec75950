//! The liquidity-saving pass: settle queued payments together when they offset.
//!
//! A bank's queue holds what does not fit under its net debit limit. When every bank waits
//! for money that waits in another bank's queue, nothing moves until expiry: a gridlock. The
//! pass looks at every bank's queue at once (T2's "all or nothing" offset) and, if the whole
//! set does not fit, drops payments one at a time from the bank furthest over its limit, the
//! latest payment of its lowest priority first (T2's partial optimisation), until what is
//! left settles within every limit at once.
//!
//! This module is the algorithm alone, on numbers: the ledger builds the input from its
//! queues (each bank's payments in release order, only those eligible now) and settles the
//! result as one step. Deterministic, no allocation beyond the input's size, and bounded:
//! O(N log B + B) for N payments among B banks (every payment is dropped at most once, each
//! drop costs one update of an ordered set of the banks over their limit).

use std::cmp::Reverse;
use std::collections::BTreeSet;

/// One queued payment offered to the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the paying bank in the `headroom` slice.
    pub from: usize,
    /// Index of the receiving bank (different from `from`).
    pub to: usize,
    /// Amount in minor units.
    pub amount: u64,
}

/// What the pass settled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Indices into the candidate slice of the payments to settle together, ascending.
    pub settled: Vec<usize>,
    /// True if the whole set settled at once (the all-or-nothing step succeeded).
    pub all_at_once: bool,
    /// How many candidates were dropped to make the rest fit.
    pub dropped: usize,
}

/// Finds payments that settle together.
///
/// * `headroom[b]` is how much bank `b`'s net debit may still grow now: `min(cap, pool) −
///   (sent − received)`, never negative when the ledger is sound (a negative value is
///   treated as a bank that may pay out nothing net).
/// * `candidates` hold every eligible queued payment; a bank's payments appear in its
///   release order (urgent, high, normal; first in first out within each). Dropping always
///   takes the last remaining payment of the chosen bank in that order, so what settles is
///   a prefix of each bank's order: a normal payment never settles while a higher one of
///   its bank waits, and a strict first-in-first-out class stays in order.
///
/// The result keeps, for every bank, `Σ out − Σ in ≤ headroom` over the settled payments.
/// Candidates naming a bank outside `headroom` are never settled.
pub fn resolve(headroom: &[i128], candidates: &[Candidate]) -> Resolution {
    let banks = headroom.len();
    // Per bank: its candidates in release order (indices), and its net outflow if all the
    // remaining ones settle.
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); banks];
    let mut outflow: Vec<i128> = vec![0; banks];
    let mut valid = vec![false; candidates.len()];
    for (index, candidate) in candidates.iter().enumerate() {
        if candidate.from == candidate.to || candidate.from >= banks || candidate.to >= banks {
            continue;
        }
        let amount = i128::from(candidate.amount);
        if let (Some(list), Some(out)) = (
            order.get_mut(candidate.from),
            outflow.get_mut(candidate.from),
        ) {
            list.push(index);
            *out = out.saturating_add(amount);
        }
        if let Some(inflow) = outflow.get_mut(candidate.to) {
            *inflow = inflow.saturating_sub(amount);
        }
        if let Some(flag) = valid.get_mut(index) {
            *flag = true;
        }
    }
    let excess = |bank: usize, outflow: &[i128]| -> i128 {
        let out = outflow.get(bank).copied().unwrap_or(0);
        let room = headroom.get(bank).copied().unwrap_or(0).max(0);
        out.saturating_sub(room)
    };
    // Banks over their limit, the furthest over first (ties: the lowest index).
    let mut over: BTreeSet<(Reverse<i128>, usize)> = (0..banks)
        .map(|bank| (Reverse(excess(bank, &outflow)), bank))
        .filter(|(Reverse(by), _)| *by > 0)
        .collect();
    let all_at_once = over.is_empty();
    let mut dropped = 0usize;
    while let Some((_, bank)) = over.pop_first() {
        // Over its limit, so it has a payment left: a bank with none pays nothing out.
        let Some(index) = order.get_mut(bank).and_then(Vec::pop) else {
            continue;
        };
        let Some(candidate) = candidates.get(index) else {
            continue;
        };
        if let Some(flag) = valid.get_mut(index) {
            *flag = false;
        }
        dropped = dropped.saturating_add(1);
        let amount = i128::from(candidate.amount);
        let receiver = candidate.to;
        let before = excess(receiver, &outflow);
        if let Some(out) = outflow.get_mut(bank) {
            *out = out.saturating_sub(amount);
        }
        if let Some(inflow) = outflow.get_mut(receiver) {
            *inflow = inflow.saturating_add(amount);
        }
        // The receiver loses an inflow: it may now be over its limit, or further over.
        if before > 0 {
            over.remove(&(Reverse(before), receiver));
        }
        let after = excess(receiver, &outflow);
        if after > 0 {
            over.insert((Reverse(after), receiver));
        }
        let now = excess(bank, &outflow);
        if now > 0 {
            over.insert((Reverse(now), bank));
        }
    }
    let settled = valid
        .iter()
        .enumerate()
        .filter(|(_, keep)| **keep)
        .map(|(index, _)| index)
        .collect();
    Resolution {
        settled,
        all_at_once,
        dropped,
    }
}

#[cfg(test)]
#[path = "liquidity_tests.rs"]
mod tests;
