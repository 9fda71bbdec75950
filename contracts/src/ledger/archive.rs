//! The duplicate window's end-to-end ids kept outside the ledger's memory.
//!
//! A transfer's `end_to_end_id` is remembered for `duplicate_window_blocks` blocks (a day's
//! worth by default), so that the same payment instruction is not executed twice. Held in
//! memory that is about 100 bytes per transfer of the last day: at a few thousand transfers a
//! second, tens of gigabytes. A node therefore hands the ids of every block it has committed
//! to an [`EndToEndArchive`] (its database, in the same write as the block) and tells the
//! ledger so ([`Ledger::archive_end_to_end_ids`]); the ledger then keeps, per archived
//! height, only the list's value hash (what the state tree commits to), and asks the archive
//! about those heights' ids.
//!
//! What the ledger decides does not depend on where the ids are: a ledger that archives and
//! one that does not execute every block alike and have the same state root (the property
//! test `archiving_end_to_end_ids_changes_no_outcome_and_no_root`). The archive is an
//! interface only; `contracts` does no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use imbl::OrdMap;

use super::{value_hash, Ledger};
use crate::primitives::Hash;
use crate::tx::VerifiedTransaction;

/// Where a node keeps the end-to-end ids of the blocks it committed.
///
/// An archive must hold, for every height the ledger has archived and not yet forgotten,
/// that height's list exactly as the ledger handed it over; it may hold more (heights the
/// window has passed, heights a later ledger archived).
pub trait EndToEndArchive: Send + Sync + std::fmt::Debug {
    /// The latest height whose list holds `key`, if any list it still has does.
    ///
    /// Ledgers ask only about heights at or below the ones they archived, so an archive
    /// that also holds later heights (a reader's ledger is a block or two behind the
    /// node's) may answer with a later height: the ledger then takes the id as not
    /// remembered. For the ledger at the tip of what was archived, which is the one that
    /// executes blocks, the answer is exact: a key is remembered at most once within a
    /// window.
    fn latest(&self, key: &Hash) -> Option<u64>;

    /// [`Self::latest`] of each of `keys`, in order, asked at once: a store answers a
    /// block's keys in one batched read (one lookup each cost a validator about 4 % of its
    /// CPU at 7,000 transfers/s, issue 12's profile).
    fn latest_of_many(&self, keys: &[Hash]) -> Vec<Option<u64>> {
        keys.iter().map(|key| self.latest(key)).collect()
    }

    /// The list archived for `height` (the ledger asks only about heights it archived).
    fn list(&self, height: u64) -> Arc<Vec<Hash>>;
}

/// The ids of the blocks that are archived (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(super) struct Archived {
    /// Archived heights still within the window, with their list's value hash.
    pub(super) heights: OrdMap<u64, Hash>,
    /// Where their lists are.
    pub(super) archive: Option<Arc<dyn EndToEndArchive>>,
}

/// The archive's answers about the end-to-end ids of a batch of transactions, asked in one
/// read ([`Ledger::ask_archive`]) before the batch is checked or executed. Keys it was not
/// asked about are asked one by one; an empty one (the default) asks every key alone.
#[derive(Debug, Default)]
pub struct ArchiveAnswers {
    latest: HashMap<Hash, Option<u64>>,
}

impl Archived {
    /// Whether `key` is remembered by an archived height still within the window (`answers`
    /// if it holds the key, else the archive).
    pub(super) fn remembers(&self, key: &Hash, answers: &ArchiveAnswers) -> bool {
        let (Some(archive), Some((first, _)), Some((last, _))) = (
            &self.archive,
            self.heights.get_min(),
            self.heights.get_max(),
        ) else {
            return false;
        };
        let latest = match answers.latest.get(key) {
            Some(answer) => *answer,
            None => archive.latest(key),
        };
        latest.is_some_and(|height| (*first..=*last).contains(&height))
    }
}

impl Ledger {
    /// Tells the ledger that `archive` holds the lists of every height up to `through`
    /// that it remembers ids of: it forgets them here and asks `archive` from now on. The
    /// caller must have written them there first ([`Ledger::end_to_end_lists`]); the
    /// ledger's decisions and state root do not change.
    pub fn archive_end_to_end_ids(&mut self, archive: Arc<dyn EndToEndArchive>, through: u64) {
        self.archived.archive = Some(archive);
        while let Some((height, keys)) = self.take_end_to_end_list(through) {
            self.archived.heights.insert(height, value_hash(&*keys));
        }
    }

    /// Asks the archive, in one read, about the end-to-end ids of the transfers in `txs`
    /// that this ledger does not hold in memory, for checking or executing them next
    /// ([`Ledger::check_pending_answered`]; [`Ledger::apply_block`] asks itself). The
    /// answers hold for this ledger as it is now: the archive changes only when a node
    /// archives a block it committed after them.
    pub fn ask_archive<'a>(
        &self,
        txs: impl IntoIterator<Item = &'a VerifiedTransaction>,
    ) -> ArchiveAnswers {
        let Some(archive) = &self.archived.archive else {
            return ArchiveAnswers::default();
        };
        if self.archived.heights.is_empty() {
            // Nothing archived is within the window: no archived answer would count.
            return ArchiveAnswers::default();
        }
        let mut keys: Vec<Hash> = txs
            .into_iter()
            .filter_map(|tx| tx.end_to_end_key().copied())
            .filter(|key| !self.end_to_end_ids.contains_key(key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let answers = archive.latest_of_many(&keys);
        // An archive that answered fewer keys than asked leaves the rest to be asked alone.
        ArchiveAnswers {
            latest: keys.into_iter().zip(answers).collect(),
        }
    }

    /// The end-to-end id lists this ledger holds in memory (not archived), by height: what
    /// a node writes to its archive before [`Ledger::archive_end_to_end_ids`].
    pub fn end_to_end_lists(&self) -> impl Iterator<Item = (u64, &Arc<Vec<Hash>>)> + '_ {
        self.end_to_end_by_height
            .iter()
            .map(|(height, keys)| (*height, keys))
    }

    /// The list of ids remembered by the block at `height`, if it remembered any and it is
    /// not archived.
    pub fn end_to_end_list(&self, height: u64) -> Option<&Arc<Vec<Hash>>> {
        self.end_to_end_by_height.get(&height)
    }

    /// How many heights' lists are in memory and how many are archived.
    pub fn end_to_end_heights(&self) -> (usize, usize) {
        (self.end_to_end_by_height.len(), self.archived.heights.len())
    }

    /// The first height the window still holds ids of, archived or not.
    pub fn earliest_remembered_height(&self) -> Option<u64> {
        let archived = self.archived.heights.get_min().map(|(h, _)| *h);
        let held = self.end_to_end_by_height.get_min().map(|(h, _)| *h);
        match (archived, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
