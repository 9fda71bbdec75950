//! Block time and the business day: the clock entry, the customer cut-off, the end of day
//! and its report ([`crate::calendar`] has the calendar's arithmetic).

use super::*;
use crate::calendar::iso_date;
use crate::outcome::DayBankLine;

impl Ledger {
    /// Starts a block: its time (never before the last block's), the queued transfers it
    /// makes due, on the first block of a chain with a calendar the first cut-off and end of
    /// day, and the customer cut-off if the block reaches it (before its transactions, which
    /// are then after the cut-off). Returns the block's time.
    pub(super) fn start_block(&mut self, height: u64, time_ms: u64) -> u64 {
        let now = time_ms.max(self.clock.time_ms);
        self.work.previous_ms = self.clock.time_ms;
        self.clock.time_ms = now;
        self.dirty.insert(StateKey::Clock);
        self.make_due(now);
        if let Some(calendar) = self.params.business_day {
            if self.clock.next_cutoff_ms.is_none() {
                let cutoff = calendar.next_at_or_after(calendar.customer_cutoff, now);
                let end = calendar.next_at_or_after(calendar.end_of_day, now);
                self.clock.day = 1;
                self.clock.day_start_height = height;
                self.clock.next_cutoff_ms = Some(cutoff);
                self.clock.next_end_of_day_ms = Some(end);
                // A chain started between a cut-off and its end of day is past the cut-off.
                self.clock.after_cutoff = end < cutoff;
            }
        }
        if self.cutoff_due(now) {
            self.reject_at_cutoff(height);
        }
        now
    }

    /// True if this block reaches the customer cut-off; moves to the next one.
    fn cutoff_due(&mut self, now: u64) -> bool {
        let (Some(calendar), Some(at)) = (self.params.business_day, self.clock.next_cutoff_ms)
        else {
            return false;
        };
        if at > now {
            return false;
        }
        self.clock.next_cutoff_ms = Some(calendar.next_after(calendar.customer_cutoff, now));
        self.clock.after_cutoff = true;
        true
    }

    /// True if this block reaches the end of day.
    pub(super) fn end_of_day_due(&self, now: u64) -> bool {
        self.params.business_day.is_some()
            && self.clock.next_end_of_day_ms.is_some_and(|at| at <= now)
    }

    /// Counts a settled transfer of `bank`'s customer in the day's statistics (`waited`: how
    /// long it was queued, for a release).
    pub(super) fn count_settled(&mut self, bank: &BankId, amount: Amount, waited: Option<u64>) {
        if self.params.business_day.is_none() {
            return;
        }
        let stats = self.clock.stats.entry(bank.clone()).or_default();
        stats.settled_count = stats.settled_count.saturating_add(1);
        stats.settled_value = stats.settled_value.saturating_add(amount.0);
        if let Some(waited) = waited {
            stats.longest_wait_ms = stats.longest_wait_ms.max(waited);
        }
    }

    /// Ends a block's business-day bookkeeping: the queues' peaks, and at the end of day the
    /// day's report and a fresh day. `end_of_day`: [`Self::end_of_day_due`] for this block;
    /// `cycle`: the cycle this block closed, if any (the end of day closes one).
    ///
    /// The block that reaches the end of day is the day's last: its transactions are the
    /// day's, under the day's cut-off.
    pub(super) fn finish_block_day(
        &mut self,
        height: u64,
        now: u64,
        end_of_day: bool,
        cycle: Option<u64>,
    ) -> Option<DayReport> {
        let calendar = self.params.business_day?;
        for (bank, queue) in &self.queues {
            let length = u32::try_from(queue.len()).unwrap_or(u32::MAX);
            let stats = self.clock.stats.entry(bank.clone()).or_default();
            stats.queued_peak = stats.queued_peak.max(length);
        }
        if !end_of_day {
            return None;
        }
        let stats = std::mem::take(&mut self.clock.stats);
        // The date of the end of day this block reached (after a stall, not the block's).
        let scheduled = self.clock.next_end_of_day_ms.unwrap_or(now);
        let report = DayReport {
            day: self.clock.day,
            date: iso_date(calendar.local_day(scheduled)),
            cycle: cycle.unwrap_or_default(),
            start_height: self.clock.day_start_height,
            height,
            closed_at_ms: now,
            banks: self
                .banks
                .keys()
                .map(|id| DayBankLine {
                    bank: id.clone(),
                    stats: stats.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        };
        self.day_reports.insert(report.day, report.clone());
        self.dirty.insert(StateKey::DayReport(report.day));
        self.clock.day = successor(self.clock.day);
        self.clock.day_start_height = successor(height);
        let next_end = calendar.next_after(calendar.end_of_day, now);
        self.clock.next_end_of_day_ms = Some(next_end);
        // Past the next day's cut-off already (a stall that ends between a cut-off and its
        // end of day): that cut-off's rejections happened in this block, and normal
        // transfers stay closed until its end of day.
        self.clock.after_cutoff = self
            .clock
            .next_cutoff_ms
            .is_some_and(|cutoff| next_end < cutoff);
        Some(report)
    }

    /// The last block's certified time (0 before the first block).
    pub fn time_ms(&self) -> u64 {
        self.clock.time_ms
    }

    /// The business day in progress (1 first; 0 on a chain without a calendar) and whether
    /// its customer cut-off has passed.
    pub fn business_day(&self) -> (u64, bool) {
        (self.clock.day, self.clock.after_cutoff)
    }

    /// A closed business day's report.
    pub fn day_report(&self, day: u64) -> Option<&DayReport> {
        self.day_reports.get(&day)
    }

    /// Every closed business day's report, oldest first.
    pub fn day_reports(&self) -> impl DoubleEndedIterator<Item = &DayReport> {
        self.day_reports.values()
    }
}
