//! The payment queues: what waits, in which order it is released, and every way out of a
//! queue other than release (cancel, reject time, cut-off, expiry); the liquidity-saving
//! pass that settles queued payments together.
//!
//! Every change to a queue goes through [`Ledger::enqueue`] and [`Ledger::dequeue`], which
//! keep the derived indexes (by hash, the due counts per priority, the times) in step with
//! the queues and mark the state entries written.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::liquidity::{self, Candidate};

#[cfg(test)]
thread_local! {
    /// Queue entries the retries of this thread have looked at (the cost tests measure).
    pub(super) static RETRY_VISITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What a retry's walk knows of a queued transfer before looking at it, ordered so that a
/// transfer's bank can release it only if it can release every smaller one: a walk passes
/// a transfer by if the bank cannot send it ([`Walk::next_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gate {
    /// Looked at whatever the bank's room: a strictly ordered transfer (which may stop the
    /// walk), or one within the bank (which needs no room).
    Open,
    /// A normal transfer to another bank: looked at only if its bank can send this amount
    /// (`within_cap`; a bank that cannot send an amount cannot send a larger one).
    WithinCap(Amount),
    /// Released already, or its payer frozen: never released by this retry.
    Closed,
}

/// One bank's release order for one retry, with the smallest [`Gate`] of every range of it
/// (a segment tree), so that a walk finds the next transfer it must look at without
/// looking at the ones it would pass by.
struct Walk {
    /// Queue sequence numbers, in release order.
    order: Vec<u64>,
    /// Leaves from `leaves` on, the gate of `order[i]` at `leaves + i` (`Closed` past the
    /// end); node `n` holds the smaller of `2n` and `2n + 1`.
    tree: Vec<Gate>,
    leaves: usize,
}

// A complete binary tree of `2 · leaves` nodes with `leaves ≥ order.len()` (at most twice a
// queue's length): every index computed here is below `2 · leaves`, every sum far from
// `usize::MAX`.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
impl Walk {
    fn new(order: Vec<u64>, gates: Vec<Gate>) -> Walk {
        let leaves = gates.len().next_power_of_two().max(1);
        let mut tree = vec![Gate::Closed; 2 * leaves];
        tree[leaves..leaves + gates.len()].copy_from_slice(&gates);
        for node in (1..leaves).rev() {
            tree[node] = tree[2 * node].min(tree[2 * node + 1]);
        }
        Walk {
            order,
            tree,
            leaves,
        }
    }

    /// Marks `order[at]` never to be looked at again in this retry.
    fn close(&mut self, at: usize) {
        let mut node = self.leaves + at;
        self.tree[node] = Gate::Closed;
        while node > 1 {
            node /= 2;
            self.tree[node] = self.tree[2 * node].min(self.tree[2 * node + 1]);
        }
    }

    /// The first place at or after `from` whose transfer must be looked at (open, or within
    /// the cap by `fits`: whether the bank can send an amount), and that transfer's queue
    /// sequence number. A range whose smallest gate does not pass is passed by whole.
    fn next_from(&self, from: usize, fits: impl Fn(Amount) -> bool) -> Option<(usize, u64)> {
        let passes = |gate: Gate| match gate {
            Gate::Open => true,
            Gate::WithinCap(amount) => fits(amount),
            Gate::Closed => false,
        };
        let at = self.find(1, 0, self.leaves, from, &passes)?;
        Some((at, self.order[at]))
    }

    fn find(
        &self,
        node: usize,
        start: usize,
        end: usize,
        from: usize,
        passes: &dyn Fn(Gate) -> bool,
    ) -> Option<usize> {
        if end <= from || !passes(self.tree[node]) {
            return None;
        }
        if end - start == 1 {
            return (start < self.order.len()).then_some(start);
        }
        let middle = start + (end - start) / 2;
        self.find(2 * node, start, middle, from, passes)
            .or_else(|| self.find(2 * node + 1, middle, end, from, passes))
    }
}

/// A priority's place in [`Priority::RELEASE_ORDER`].
fn rank(priority: Priority) -> usize {
    match priority {
        Priority::Urgent => 0,
        Priority::High => 1,
        Priority::Normal => 2,
    }
}

/// A high (customer) transfer of `amount` from `bank` larger than the bank's whole debit
/// limit (`min(cap, pool)`): it can settle only once the bank has received more than it
/// sent by the excess. `plan` refuses such a transfer that would wait
/// (`high_over_debit_limit`); one left waiting by a lowered cap or pool, or reprioritised to
/// high by its bank's operator, does not stop its bank's walk in the retry. Urgent (the
/// authority's and operators' own liquidity transfers) is left out: such a transfer's bank
/// chose to wait for it.
pub(super) fn high_over_limit(priority: Priority, amount: Amount, bank: &Bank) -> bool {
    priority == Priority::High && amount > bank.debit_limit()
}

impl Ledger {
    /// True if a new transfer of `priority` from `bank` must wait behind the bank's queue: a
    /// due transfer of a higher priority waits, or one of the same strictly ordered class,
    /// that can hold it up ([`Self::holds_up`]: not one between two customers of the bank,
    /// not a frozen payer's).
    pub(super) fn waits_ahead(&self, bank: &BankId, priority: Priority) -> bool {
        let Some(counts) = self.due_counts.get(bank) else {
            return false;
        };
        let mine = rank(priority);
        counts.iter().enumerate().any(|(class, count)| {
            *count > 0 && (class < mine || (class == mine && priority.strict_order()))
        })
    }

    /// The queued transfer with this hash: its bank, sequence number and entry.
    pub(super) fn queued_transfer(
        &self,
        tx_hash: &Hash,
    ) -> Result<(BankId, u64, &QueuedTransfer), TxError> {
        self.queued_at
            .get(tx_hash)
            .and_then(|(bank, seq)| {
                let entry = self.queues.get(bank)?.get(seq)?;
                Some((bank.clone(), *seq, entry))
            })
            .ok_or(TxError::NotQueued(*tx_hash))
    }

    /// Adds a transfer (its payer's reservation already made) to its bank's queue.
    pub(super) fn enqueue(&mut self, bank: BankId, entry: QueuedTransfer, now: u64) {
        let seq = self.next_queue_seq;
        self.next_queue_seq = successor(seq);
        // The sequence counter is part of the `Cycle` entry: the root must commit to it, or a
        // state rebuilt from entries (a checkpoint, state sync) could carry another counter
        // under the same root.
        self.dirty.insert(StateKey::Cycle);
        self.dirty.insert(StateKey::Queued(bank.clone(), seq));
        self.count_queued(entry.from, true);
        self.index_queued(&bank, seq, &entry, now);
        if entry.reject_after_ms.is_some() {
            self.work.queued_now.push((bank.clone(), seq));
        }
        self.queues.entry(bank).or_default().insert(seq, entry);
    }

    /// Adds an entry to the derived indexes (also when a ledger is rebuilt from its state).
    pub(super) fn index_queued(
        &mut self,
        bank: &BankId,
        seq: u64,
        entry: &QueuedTransfer,
        now: u64,
    ) {
        self.queued_at.insert(entry.tx_hash, (bank.clone(), seq));
        match entry.not_before_ms {
            Some(at) if at > now => {
                self.not_yet_due.insert((at, bank.clone(), seq));
            }
            _ => {
                if self.holds_up(bank, entry) {
                    self.count_due(bank, entry.priority, true);
                }
            }
        }
        if let Some(at) = entry.reject_after_ms {
            self.reject_times.insert((at, bank.clone(), seq));
        }
    }

    /// Whether a due queued transfer can hold up its bank's other transfers, and so counts
    /// in the due counts that make a new transfer wait ([`Self::waits_ahead`]). One between
    /// two customers of one bank needs no liquidity (the retry releases it once it is due),
    /// and a frozen payer's waits without holding up the others: a 1-unit high transfer to a
    /// colleague, timed for the next block, made every normal cross-bank transfer of its bank
    /// in that block wait. The counts follow freezes ([`Self::recount_payer`]).
    fn holds_up(&self, bank: &BankId, entry: &QueuedTransfer) -> bool {
        entry.to_bank != *bank && !self.payer_frozen(entry)
    }

    /// Whether the queued transfer `seq` of `bank` is due: not waiting for its
    /// `not_before_ms`.
    fn is_due(&self, bank: &BankId, seq: u64, entry: &QueuedTransfer) -> bool {
        entry
            .not_before_ms
            .is_none_or(|at| !self.not_yet_due.contains(&(at, bank.clone(), seq)))
    }

    /// Keeps the due counts in step with a freeze (`frozen`) or an unfreeze of `payer`: its
    /// due queued transfers stop, or start again, holding up its bank's others. Walks the
    /// payer's bank's queue once, only if the payer has transfers queued (at most
    /// `max_queue_per_bank` entries, for a regulator's transaction).
    pub(super) fn recount_payer(&mut self, payer: &AccountId, frozen: bool) {
        if self.queued_by(payer) == 0 {
            return;
        }
        let Some(account) = self.accounts.get(payer) else {
            return;
        };
        let bank = account.bank.clone();
        let priorities: Vec<Priority> = self
            .queues
            .get(&bank)
            .into_iter()
            .flat_map(|queue| queue.iter())
            .filter(|(seq, entry)| {
                let cross_bank = entry.to_bank != bank;
                entry.from == *payer && cross_bank && self.is_due(&bank, **seq, entry)
            })
            .map(|(_, entry)| entry.priority)
            .collect();
        for priority in priorities {
            self.count_due(&bank, priority, !frozen);
        }
    }

    /// The due counts (derived) agree with the queues: per bank and class, the due queued
    /// transfers that can hold up others. For [`Self::check_invariants`].
    pub(super) fn check_due_counts(&self) -> Result<(), InvariantViolation> {
        let now = self.clock.time_ms;
        let mut expected: BTreeMap<&BankId, [u32; 3]> = BTreeMap::new();
        for (bank, queue) in &self.queues {
            for entry in queue.values() {
                let due = entry.not_before_ms.is_none_or(|at| at <= now);
                if !due || !self.holds_up(bank, entry) {
                    continue;
                }
                let counts = expected.entry(bank).or_default();
                if let Some(count) = counts.get_mut(rank(entry.priority)) {
                    *count = count.saturating_add(1);
                }
            }
        }
        let same = expected.len() == self.due_counts.len()
            && expected
                .iter()
                .all(|(bank, counts)| self.due_counts.get(*bank) == Some(counts));
        if same {
            Ok(())
        } else {
            let kept = &self.due_counts;
            violation(format!("due counts {kept:?}, queues say {expected:?}"))
        }
    }

    fn count_due(&mut self, bank: &BankId, priority: Priority, added: bool) {
        let counts = self.due_counts.entry(bank.clone()).or_default();
        if let Some(count) = counts.get_mut(rank(priority)) {
            *count = if added {
                count.saturating_add(1)
            } else {
                count.saturating_sub(1)
            };
        }
        if counts.iter().all(|count| *count == 0) {
            self.due_counts.remove(bank);
        }
    }

    /// Takes a transfer out of its queue (the caller settles or refunds it).
    pub(super) fn dequeue(&mut self, bank: &BankId, seq: u64) -> Option<QueuedTransfer> {
        let queue = self.queues.get_mut(bank)?;
        let entry = queue.remove(&seq)?;
        if queue.is_empty() {
            self.queues.remove(bank);
        }
        self.dirty.insert(StateKey::Queued(bank.clone(), seq));
        self.count_queued(entry.from, false);
        self.queued_at.remove(&entry.tx_hash);
        let waiting = entry
            .not_before_ms
            .and_then(|at| self.not_yet_due.remove(&(at, bank.clone(), seq)));
        if waiting.is_none() && self.holds_up(bank, &entry) {
            self.count_due(bank, entry.priority, false);
        }
        if let Some(at) = entry.reject_after_ms {
            self.reject_times.remove(&(at, bank.clone(), seq));
        }
        Some(entry)
    }

    /// Makes due every queued transfer whose `not_before_ms` the time `now` reached.
    pub(super) fn make_due(&mut self, now: u64) {
        while let Some((at, bank, seq)) = self.not_yet_due.get_min().cloned() {
            if at > now {
                break;
            }
            self.not_yet_due.remove(&(at, bank.clone(), seq));
            let priority = self
                .queues
                .get(&bank)
                .and_then(|queue| queue.get(&seq))
                .filter(|entry| self.holds_up(&bank, entry))
                .map(|entry| entry.priority);
            if let Some(priority) = priority {
                self.count_due(&bank, priority, true);
            }
        }
    }

    /// Refunds a queued transfer to its payer and records why.
    #[allow(clippy::expect_used)] // queued amounts are reserved; balance + reserved fits u64
    pub(super) fn drop_queued(&mut self, bank: &BankId, seq: u64, height: u64, reason: DropReason) {
        let Some(entry) = self.dequeue(bank, seq) else {
            return;
        };
        self.refund(&entry);
        if reason == DropReason::Cutoff {
            let stats = self.clock.stats.entry(bank.clone()).or_default();
            stats.cutoff_rejected_count = stats.cutoff_rejected_count.saturating_add(1);
            stats.cutoff_rejected_value =
                stats.cutoff_rejected_value.saturating_add(entry.amount.0);
            self.dirty.insert(StateKey::Clock);
        }
        self.work.dropped.push(DroppedTransfer {
            transfer: queue_event(bank, entry, height),
            reason,
        });
    }

    #[allow(clippy::expect_used)] // queued amounts are reserved; balance + reserved fits u64
    fn refund(&mut self, entry: &QueuedTransfer) {
        let payer = self.account_mut(&entry.from);
        payer.reserved = payer
            .reserved
            .checked_sub(entry.amount)
            .expect("a queued transfer's amount is reserved");
        payer.balance = payer
            .balance
            .checked_add(entry.amount)
            .expect("balance + reserved fit before the transfer was queued");
    }

    /// Changes a queued transfer's priority; it keeps its place by arrival in the new class.
    pub(super) fn set_priority(&mut self, bank: &BankId, seq: u64, priority: Priority) {
        let Some(entry) = self.queues.get(bank).and_then(|queue| queue.get(&seq)) else {
            return;
        };
        let old = entry.priority;
        let counted = self.is_due(bank, seq, entry) && self.holds_up(bank, entry);
        if let Some(entry) = self
            .queues
            .get_mut(bank)
            .and_then(|queue| queue.get_mut(&seq))
        {
            entry.priority = priority;
        }
        self.dirty.insert(StateKey::Queued(bank.clone(), seq));
        if counted {
            self.count_due(bank, old, false);
            self.count_due(bank, priority, true);
        }
    }

    /// Queued transfers whose reject time came within the warning lead in this block: those
    /// whose reject time entered `(previous block time + lead, now + lead]`, and those queued
    /// in this block already within it. Not those rejected in this block.
    pub(super) fn reject_warnings(&self, height: u64, now: u64) -> Vec<RejectWarning> {
        let lead = self.params.reject_warning_ms;
        let from = self.work.previous_ms.saturating_add(lead);
        let until = now.saturating_add(lead);
        let mut seen: BTreeSet<(u64, BankId, u64)> = BTreeSet::new();
        if from < until {
            let start = (from.saturating_add(1), BankId::LOWEST, 0);
            for key in self.reject_times.range(start..) {
                if key.0 > until {
                    break;
                }
                seen.insert(key.clone());
            }
        }
        for (bank, seq) in &self.work.queued_now {
            let at = self
                .queues
                .get(bank)
                .and_then(|queue| queue.get(seq))
                .and_then(|entry| entry.reject_after_ms);
            if let Some(at) = at.filter(|at| *at <= until) {
                seen.insert((at, bank.clone(), *seq));
            }
        }
        seen.into_iter()
            .filter(|(at, _, _)| *at > now)
            .filter_map(|(at, bank, seq)| {
                let entry = self.queues.get(&bank)?.get(&seq)?.clone();
                Some(RejectWarning {
                    transfer: queue_event(&bank, entry, height),
                    reject_after_ms: at,
                })
            })
            .collect()
    }

    /// Rejects (`reject_time`) every queued transfer whose reject time `now` reached.
    pub(super) fn reject_due(&mut self, height: u64, now: u64) {
        while let Some((at, bank, seq)) = self.reject_times.get_min().cloned() {
            if at > now {
                break;
            }
            self.drop_queued(&bank, seq, height, DropReason::RejectTime);
        }
    }

    /// At the customer cut-off: rejects (`cutoff`) every queued normal-priority transfer.
    pub(super) fn reject_at_cutoff(&mut self, height: u64) {
        let normal: Vec<(BankId, u64)> = self
            .queues
            .iter()
            .flat_map(|(bank, queue)| {
                queue
                    .iter()
                    .filter(|(_, entry)| entry.priority == Priority::Normal)
                    .map(move |(seq, _)| (bank.clone(), *seq))
            })
            .collect();
        for (bank, seq) in normal {
            self.drop_queued(&bank, seq, height, DropReason::Cutoff);
        }
    }

    /// A bank's due queued transfers in release order: urgent, high, normal, each by arrival.
    fn release_order(&self, bank: &BankId, now: u64) -> Vec<u64> {
        let Some(queue) = self.queues.get(bank) else {
            return Vec::new();
        };
        let mut order = Vec::with_capacity(queue.len());
        for priority in Priority::RELEASE_ORDER {
            order.extend(
                queue
                    .iter()
                    .filter(|(_, entry)| {
                        entry.priority == priority && entry.not_before_ms.is_none_or(|at| at <= now)
                    })
                    .map(|(seq, _)| *seq),
            );
        }
        order
    }

    /// Retries queued transfers until nothing more fits; returns them in release order.
    ///
    /// Each bank's queue is walked in release order. A transfer of a strictly ordered class
    /// (urgent, high) that does not fit stops its bank's walk: nothing behind it passes it. In
    /// the normal class a later transfer that fits passes an earlier one that does not. A
    /// transfer whose payer is frozen waits without holding up the others, and so does a high
    /// transfer larger than its bank's whole debit limit ([`high_over_limit`]: left so by a
    /// lowered cap or pool), which could otherwise stop its bank's walk for good.
    ///
    /// A release credits the payee's bank, whose queue is then walked again. Each bank's
    /// release order is read once per retry ([`Walk`]), and a walk goes from one transfer
    /// that may fit to the next, past every normal one over its bank's cap without looking
    /// at it: the result is the walk's, transfer by transfer, at a cost that grows with what
    /// is released, not with what waits. Before, every walk looked at the whole queue: two
    /// banks at their caps with long queues of small payments to each other released them
    /// one at a time, each release walking a whole queue again (10⁸ looks for full queues,
    /// seconds of every validator's time per block).
    #[allow(clippy::expect_used)] // the entry was just read; queued amounts are reserved
    pub(super) fn release_queued(&mut self, height: u64, now: u64) -> Vec<QueueEvent> {
        let mut released = Vec::new();
        // Banks whose queue may now make progress. A release credits the payee's bank, which
        // may make room for that bank's own queue, so it goes back on the list.
        let mut pending: BTreeSet<BankId> = self.queues.keys().cloned().collect();
        // Nothing joins a queue during the retry, and a payer's freeze does not change.
        let mut walks: BTreeMap<BankId, Walk> = BTreeMap::new();
        while let Some(bank_id) = pending.pop_first() {
            let walk = walks
                .entry(bank_id.clone())
                .or_insert_with(|| self.walk_of(&bank_id, now));
            let mut from = 0;
            while let Some((at, seq)) = walk.next_from(from, |amount| {
                self.banks
                    .get(&bank_id)
                    .is_some_and(|bank| bank.can_send(amount))
            }) {
                from = at.saturating_add(1);
                #[cfg(test)]
                RETRY_VISITS.with(|visits| visits.set(visits.get() + 1));
                let Some(entry) = self.queues.get(&bank_id).and_then(|queue| queue.get(&seq))
                else {
                    walk.close(at);
                    continue;
                };
                // A normal transfer over its bank's cap waits either way (the walk passes
                // those by without looking; this is the same rule, asked of the bank alone).
                if !entry.priority.strict_order() && !self.within_cap(&bank_id, entry) {
                    continue;
                }
                if self.payer_frozen(entry) {
                    continue;
                }
                if !self.releasable(&bank_id, entry) {
                    if entry.priority.strict_order() && !self.over_limit(&bank_id, entry) {
                        break;
                    }
                    continue;
                }
                walk.close(at);
                let entry = self.dequeue(&bank_id, seq).expect("entry was just read");
                let payer = self.account_mut(&entry.from);
                payer.reserved = payer
                    .reserved
                    .checked_sub(entry.amount)
                    .expect("a queued transfer's amount is reserved");
                self.settle_transfer(&bank_id, entry.to, &entry.to_bank, entry.amount);
                let waited = now.saturating_sub(entry.queued_at_ms);
                self.count_settled(&bank_id, entry.amount, Some(waited));
                if entry.to_bank != bank_id && self.queue_len(&entry.to_bank) > 0 {
                    pending.insert(entry.to_bank.clone());
                }
                released.push(queue_event(&bank_id, entry, height));
            }
        }
        released
    }

    /// A bank's due queued transfers in release order, each with what a walk needs to know
    /// of it before looking ([`Gate`]).
    fn walk_of(&self, bank: &BankId, now: u64) -> Walk {
        let order = self.release_order(bank, now);
        let gates = order
            .iter()
            .map(|seq| {
                let Some(entry) = self.queues.get(bank).and_then(|queue| queue.get(seq)) else {
                    return Gate::Closed;
                };
                if self.payer_frozen(entry) {
                    Gate::Closed
                } else if entry.priority.strict_order() || entry.to_bank == *bank {
                    Gate::Open
                } else {
                    Gate::WithinCap(entry.amount)
                }
            })
            .collect();
        Walk::new(order, gates)
    }

    /// [`high_over_limit`] for a queued cross-bank transfer of `bank_id`.
    fn over_limit(&self, bank_id: &BankId, entry: &QueuedTransfer) -> bool {
        entry.to_bank != *bank_id
            && self
                .banks
                .get(bank_id)
                .is_some_and(|bank| high_over_limit(entry.priority, entry.amount, bank))
    }

    /// A queued transfer whose payer is frozen (or gone) waits without holding up the
    /// others, in the retry and in the pass.
    fn payer_frozen(&self, entry: &QueuedTransfer) -> bool {
        self.accounts
            .get(&entry.from)
            .is_none_or(|payer| payer.frozen)
    }

    /// Whether a due queued transfer can settle alone now: its payer is not frozen, the
    /// payee can take the credit, and (across banks) the sender's cap and the cycle's limits
    /// allow it.
    fn releasable(&self, bank_id: &BankId, entry: &QueuedTransfer) -> bool {
        self.within_cap(bank_id, entry) && self.could_settle(bank_id, entry)
    }

    /// The sender's cap allows `entry` (an intra-bank transfer always is).
    fn within_cap(&self, bank_id: &BankId, entry: &QueuedTransfer) -> bool {
        entry.to_bank == *bank_id
            || self
                .banks
                .get(bank_id)
                .is_some_and(|bank| bank.can_send(entry.amount))
    }

    /// [`Self::releasable`] without the sender's cap: what the liquidity-saving pass may
    /// offer.
    fn could_settle(&self, bank_id: &BankId, entry: &QueuedTransfer) -> bool {
        let (Some(payer), Some(payee)) =
            (self.accounts.get(&entry.from), self.accounts.get(&entry.to))
        else {
            return false;
        };
        !payer.frozen
            && payee
                .balance
                .checked_add(payee.reserved)
                .and_then(|b| b.checked_add(entry.amount))
                .is_some()
            && (entry.to_bank == *bank_id
                || self
                    .cross_bank_room(bank_id, &entry.to_bank, entry.amount)
                    .is_ok())
    }

    /// The liquidity-saving pass ([`crate::liquidity`]): offers every due cross-bank queued
    /// transfer that could settle but for its bank's cap, settles what the pass finds as one
    /// step, then retries the queues. Returns what it did if it settled anything (or was
    /// requested).
    ///
    /// The offer keeps each bank's release order, and stops a bank's offer at the first
    /// transfer of a strictly ordered class that cannot be offered, so what settles respects
    /// the priority rules. Sums that could overflow when settled together (a receiving pool's
    /// headroom, a payee's balance, the cycle's gross total) are checked on the whole offer
    /// first; transfers into a bank or account that could not take them all are not offered.
    /// Cost: O(N log N) for N queued transfers (building the offer, one pass, one update per
    /// settled transfer), plus the retry.
    #[allow(clippy::expect_used)] // entries were just read; their amounts are reserved
    pub(super) fn gridlock_pass(
        &mut self,
        height: u64,
        now: u64,
        requested: bool,
        released: &mut Vec<QueueEvent>,
    ) -> Option<GridlockRun> {
        if self.queues.is_empty() {
            return requested.then_some(GridlockRun {
                offered: 0,
                settled: 0,
                value: 0,
                all_at_once: true,
                requested,
            });
        }
        let bank_ids: Vec<BankId> = self.banks.keys().cloned().collect();
        let index: BTreeMap<&BankId, usize> =
            bank_ids.iter().enumerate().map(|(i, id)| (id, i)).collect();
        // The offer, per bank in release order: (bank, seq, candidate).
        let mut offer: Vec<(BankId, u64, Candidate, AccountId)> = Vec::new();
        for bank_id in self.queues.keys() {
            for seq in self.release_order(bank_id, now) {
                let Some(entry) = self.queues.get(bank_id).and_then(|queue| queue.get(&seq)) else {
                    continue;
                };
                // As in the ordinary retry: a frozen payer's transfer holds up nothing.
                if self.payer_frozen(entry) {
                    continue;
                }
                let offerable = entry.to_bank != *bank_id && self.could_settle(bank_id, entry);
                if !offerable {
                    if entry.priority.strict_order() {
                        break;
                    }
                    continue;
                }
                let (Some(from), Some(to)) = (index.get(bank_id), index.get(&entry.to_bank)) else {
                    continue;
                };
                offer.push((
                    bank_id.clone(),
                    seq,
                    Candidate {
                        from: *from,
                        to: *to,
                        amount: entry.amount.0,
                    },
                    entry.to,
                ));
            }
        }
        self.trim_offer(&bank_ids, &mut offer);
        let headroom: Vec<i128> = bank_ids
            .iter()
            .map(|id| {
                self.banks.get(id).map_or(0, |bank| {
                    i128::from(bank.debit_limit().0).saturating_add(bank.position())
                })
            })
            .collect();
        let candidates: Vec<Candidate> = offer.iter().map(|(_, _, c, _)| *c).collect();
        let resolution = liquidity::resolve(&headroom, &candidates);
        let offered = u32::try_from(candidates.len()).unwrap_or(u32::MAX);
        if resolution.settled.is_empty() {
            return requested.then_some(GridlockRun {
                offered,
                settled: 0,
                value: 0,
                all_at_once: resolution.all_at_once,
                requested,
            });
        }
        let debit_before: BTreeMap<BankId, Amount> = self
            .banks
            .iter()
            .map(|(id, bank)| (id.clone(), bank.net_debit()))
            .collect();
        let mut value = 0u64;
        let settled_count = resolution.settled.len();
        for position in resolution.settled {
            let Some((bank_id, seq, _, _)) = offer.get(position) else {
                continue;
            };
            let entry = self
                .dequeue(bank_id, *seq)
                .expect("offered entries are queued");
            let payer = self.account_mut(&entry.from);
            payer.reserved = payer
                .reserved
                .checked_sub(entry.amount)
                .expect("a queued transfer's amount is reserved");
            self.book_transfer(bank_id, entry.to, &entry.to_bank, entry.amount);
            // The offer's total fits the cycle's gross total (`trim_offer`), so no saturation.
            value = value.saturating_add(entry.amount.0);
            let waited = now.saturating_sub(entry.queued_at_ms);
            self.count_settled(bank_id, entry.amount, Some(waited));
            released.push(queue_event(bank_id, entry, height));
        }
        // Every cap respected by the step as a whole: no bank ends past min(cap, pool),
        // unless it already was (a lowered cap) and the step did not add to its debit.
        for (id, bank) in &self.banks {
            let before = debit_before.get(id).copied().unwrap_or(Amount::ZERO);
            assert!(
                bank.net_debit() <= bank.debit_limit() || bank.net_debit() <= before,
                "the liquidity-saving pass never takes a bank past min(cap, pool)"
            );
        }
        let mut more = self.release_queued(height, now);
        released.append(&mut more);
        Some(GridlockRun {
            offered,
            settled: u32::try_from(settled_count).unwrap_or(u32::MAX),
            value,
            all_at_once: resolution.all_at_once,
            requested,
        })
    }

    /// Removes from the offer what could overflow if all of it settled together: transfers
    /// into a bank whose pool could not take them all (`pool_limit`), or into an account that
    /// could not hold them all; and everything if the cycle's gross total could not. Then
    /// restores the priority rule: a bank's offer stops at its first strictly ordered transfer
    /// removed. Every check is on sums over the whole offer, so any part of what is left is
    /// safe too.
    fn trim_offer(
        &self,
        bank_ids: &[BankId],
        offer: &mut Vec<(BankId, u64, Candidate, AccountId)>,
    ) {
        let mut into_bank: BTreeMap<usize, u128> = BTreeMap::new();
        let mut into_account: BTreeMap<AccountId, u128> = BTreeMap::new();
        let mut total = 0u128;
        for (_, _, candidate, payee) in offer.iter() {
            let amount = u128::from(candidate.amount);
            accumulate(into_bank.entry(candidate.to).or_default(), amount);
            accumulate(into_account.entry(*payee).or_default(), amount);
            accumulate(&mut total, amount);
        }
        let gross: u128 = self.banks.values().map(|b| u128::from(b.sent.0)).sum();
        if gross.saturating_add(total) > u128::from(u64::MAX) {
            offer.clear();
            return;
        }
        let bank_full = |to: usize, sum: u128| {
            bank_ids
                .get(to)
                .and_then(|id| self.banks.get(id))
                .is_none_or(|bank| sum > u128::from(bank.pool_headroom().0))
        };
        let account_full = |id: &AccountId, sum: u128| {
            self.accounts
                .get(id)
                .is_none_or(|account| holdings(account).saturating_add(sum) > u128::from(u64::MAX))
        };
        let refused: BTreeSet<usize> = into_bank
            .iter()
            .filter(|(to, sum)| bank_full(**to, **sum))
            .map(|(to, _)| *to)
            .collect();
        let refused_accounts: BTreeSet<AccountId> = into_account
            .iter()
            .filter(|(id, sum)| account_full(id, **sum))
            .map(|(id, _)| *id)
            .collect();
        if refused.is_empty() && refused_accounts.is_empty() {
            return;
        }
        let mut stopped: BTreeSet<BankId> = BTreeSet::new();
        offer.retain(|(bank, seq, candidate, payee)| {
            if stopped.contains(bank) {
                return false;
            }
            let keep = !refused.contains(&candidate.to) && !refused_accounts.contains(payee);
            if !keep {
                let strict = self
                    .queues
                    .get(bank)
                    .and_then(|queue| queue.get(seq))
                    .is_some_and(|entry| entry.priority.strict_order());
                if strict {
                    stopped.insert(bank.clone());
                }
            }
            keep
        });
    }

    /// Refunds queued transfers whose last release height has passed.
    pub(super) fn expire_queued(&mut self, height: u64) -> Vec<QueueEvent> {
        let mut expired = Vec::new();
        let bank_ids: Vec<BankId> = self.queues.keys().cloned().collect();
        for bank_id in bank_ids {
            // Sequence numbers grow with the height a transfer was queued at, and every
            // transfer gets the same expiry window, so the due ones are at the front.
            while let Some(seq) = self
                .queues
                .get(&bank_id)
                .and_then(|queue| queue.get_min())
                .filter(|(_, first)| first.expires_at_height <= height)
                .map(|(seq, _)| *seq)
            {
                let Some(entry) = self.dequeue(&bank_id, seq) else {
                    break;
                };
                self.refund(&entry);
                expired.push(queue_event(&bank_id, entry, height));
            }
        }
        expired
    }
}
