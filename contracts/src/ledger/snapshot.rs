//! The ledger as a list of state entries, and back: what checkpoints store and state sync
//! transfers (ADR 0011).
//!
//! The state tree already names every piece of the state ([`StateKey`]) and commits to the
//! canonical encoding of its value, so the entries *are* the state: a ledger rebuilt from
//! them has the same state root, and a list of entries can be checked against a state root
//! someone certified without trusting whoever sent it. What the tree does not hold is either
//! fixed by the genesis (the parameters) or derived from the entries (the queued count per
//! payer, the index of end-to-end ids), and is rebuilt here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    Account, Bank, BlockTouch, Clock, Cycle, Ledger, Official, QueuedTransfer, StateKey, Totals,
};
use crate::codec::{self, DecodeError};
use crate::genesis::{Genesis, GenesisError};
use crate::outcome::{DayReport, SettlementReport};
use crate::primitives::{sha256, Amount, BankId, Hash};
use crate::smt::SparseMerkleTree;

/// Largest encoded state entry accepted (a settlement report of the largest consortium is
/// far below it).
pub const MAX_ENTRY_BYTES: u64 = 4 << 20;

/// One entry of the state: its key and the canonical encoding of its value (the state tree's
/// leaf is `(key.tree_key(), sha256(value))`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// What the entry is.
    pub key: StateKey,
    /// Its value, canonically encoded.
    pub value: Vec<u8>,
}

impl StateEntry {
    /// The entry's leaf in the state tree: `(tree key, value hash)`.
    pub fn leaf(&self) -> (Hash, Hash) {
        (self.key.tree_key(), sha256(&[&self.value]))
    }
}

/// Why a list of entries is not a ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The genesis itself is invalid.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// A value does not decode as its key says it must.
    #[error("state entry {key:?}: {error}")]
    Value {
        /// The entry's key.
        key: StateKey,
        /// Why.
        error: DecodeError,
    },
    /// The same key twice.
    #[error("state entry {0:?} appears twice")]
    Duplicate(StateKey),
    /// A required entry is missing.
    #[error("the state has no {0} entry")]
    Missing(&'static str),
    /// The entries contradict each other or the genesis.
    #[error("inconsistent state: {0}")]
    Inconsistent(String),
}

fn value<T: serde::de::DeserializeOwned + Serialize>(
    entry: &StateEntry,
) -> Result<T, SnapshotError> {
    codec::decode(&entry.value, MAX_ENTRY_BYTES).map_err(|error| SnapshotError::Value {
        key: entry.key.clone(),
        error,
    })
}

impl Ledger {
    /// Every entry of the state, in no particular order (one per state-tree leaf).
    pub fn state_entries(&self) -> impl Iterator<Item = StateEntry> + '_ {
        let entry = |key: StateKey, value: Vec<u8>| StateEntry { key, value };
        let accounts = self
            .accounts
            .iter()
            .map(move |(id, a)| entry(StateKey::Account(*id), codec::encode(a)));
        let banks = self
            .banks
            .iter()
            .map(move |(id, b)| entry(StateKey::Bank(id.clone()), codec::encode(b)));
        let officials = self
            .officials
            .iter()
            .map(move |(id, o)| entry(StateKey::Official(*id), codec::encode(o)));
        let queued = self.queues.iter().flat_map(move |(bank, queue)| {
            queue
                .iter()
                .map(move |(seq, q)| entry(StateKey::Queued(bank.clone(), *seq), codec::encode(q)))
        });
        let end_to_end = self.end_to_end_by_height.iter().map(move |(height, keys)| {
            entry(StateKey::EndToEndIds(*height), codec::encode(&**keys))
        });
        let archived = self.archived.heights.keys().filter_map(move |height| {
            let archive = self.archived.archive.as_ref()?;
            Some(entry(
                StateKey::EndToEndIds(*height),
                codec::encode(&*archive.list(*height)),
            ))
        });
        let obligations = self.cycle.obligations.iter().map(move |((a, b), amount)| {
            entry(
                StateKey::Obligation(a.clone(), b.clone()),
                codec::encode(amount),
            )
        });
        let singles = [
            entry(
                StateKey::Cycle,
                codec::encode(&(
                    self.cycle.number,
                    self.cycle.start_height,
                    self.next_queue_seq,
                )),
            ),
            entry(StateKey::Totals, codec::encode(&self.totals)),
            entry(StateKey::Clock, codec::encode(&self.clock)),
        ];
        let reports = self
            .reports
            .iter()
            .map(move |(n, r)| entry(StateKey::Report(*n), codec::encode(r)));
        let day_reports = self
            .day_reports
            .iter()
            .map(move |(n, r)| entry(StateKey::DayReport(*n), codec::encode(r)));
        accounts
            .chain(banks)
            .chain(officials)
            .chain(queued)
            .chain(end_to_end)
            .chain(archived)
            .chain(obligations)
            .chain(singles)
            .chain(reports)
            .chain(day_reports)
    }

    /// Number of state entries (leaves of the state tree).
    pub fn state_len(&self) -> usize {
        self.tree.len()
    }

    /// Rebuilds the ledger after block `height` from its state entries (any order) and the
    /// genesis it grew from (for the parameters). The result's state root is computed from
    /// the entries: the caller compares it with the root it trusts. Every invariant is
    /// checked, so a list that hashes right but could not have been reached is refused too.
    pub fn from_state_entries(
        genesis: &Genesis,
        height: u64,
        entries: impl IntoIterator<Item = StateEntry>,
    ) -> Result<Ledger, SnapshotError> {
        let mut ledger = Ledger::from_genesis(genesis)?;
        ledger.height = height;
        ledger.accounts = super::KeyMap::default();
        ledger.banks = BTreeMap::new();
        ledger.officials = BTreeMap::new();
        ledger.cycle.obligations = BTreeMap::new();
        let mut cycle = None;
        let mut totals = None;
        let mut clock = None;
        let mut seen: BTreeSet<Hash> = BTreeSet::new();
        let mut leaves = Vec::new();
        for entry in entries {
            let leaf = entry.leaf();
            if !seen.insert(leaf.0) {
                return Err(SnapshotError::Duplicate(entry.key));
            }
            leaves.push((leaf.0, Some(leaf.1)));
            match &entry.key {
                StateKey::Account(id) => {
                    ledger.accounts.insert(*id, value::<Account>(&entry)?);
                }
                StateKey::Bank(id) => {
                    ledger.banks.insert(id.clone(), value::<Bank>(&entry)?);
                }
                StateKey::Official(id) => {
                    ledger.officials.insert(*id, value::<Official>(&entry)?);
                }
                StateKey::Queued(bank, seq) => {
                    let queued = value::<QueuedTransfer>(&entry)?;
                    let payer = queued.from;
                    ledger
                        .queues
                        .entry(bank.clone())
                        .or_default()
                        .insert(*seq, queued);
                    ledger.count_queued(payer, true);
                }
                StateKey::EndToEndIds(remembered) => {
                    let keys = value::<Vec<Hash>>(&entry)?;
                    let window = ledger.params.duplicate_window_blocks;
                    if *remembered > height
                        || remembered
                            .checked_add(window)
                            .is_some_and(|until| until <= height)
                    {
                        return Err(SnapshotError::Inconsistent(format!(
                            "end-to-end ids remembered at height {remembered}: not within the \
                             {window}-block window before {height}"
                        )));
                    }
                    if keys.is_empty() {
                        return Err(SnapshotError::Inconsistent(format!(
                            "no end-to-end ids remembered at height {remembered}"
                        )));
                    }
                    for key in &keys {
                        if ledger.end_to_end_ids.insert(*key, *remembered).is_some() {
                            return Err(SnapshotError::Inconsistent(format!(
                                "end-to-end key {key} remembered twice"
                            )));
                        }
                    }
                    ledger
                        .end_to_end_by_height
                        .insert(*remembered, Arc::new(keys));
                }
                StateKey::Obligation(a, b) => {
                    let amount = value::<Amount>(&entry)?;
                    ledger
                        .cycle
                        .obligations
                        .insert((a.clone(), b.clone()), amount);
                }
                StateKey::Cycle => cycle = Some(value::<(u64, u64, u64)>(&entry)?),
                StateKey::Totals => totals = Some(value::<Totals>(&entry)?),
                StateKey::Report(n) => {
                    ledger
                        .reports
                        .insert(*n, value::<SettlementReport>(&entry)?);
                }
                StateKey::Clock => clock = Some(value::<Clock>(&entry)?),
                StateKey::DayReport(n) => {
                    ledger.day_reports.insert(*n, value::<DayReport>(&entry)?);
                }
            }
        }
        let (number, start_height, next_queue_seq) =
            cycle.ok_or(SnapshotError::Missing("cycle"))?;
        ledger.cycle = Cycle {
            number,
            start_height,
            obligations: std::mem::take(&mut ledger.cycle.obligations),
        };
        ledger.next_queue_seq = next_queue_seq;
        ledger.totals = totals.ok_or(SnapshotError::Missing("totals"))?;
        ledger.clock = clock.ok_or(SnapshotError::Missing("clock"))?;
        let now = ledger.clock.time_ms;
        let queued: Vec<(BankId, u64, QueuedTransfer)> = ledger
            .queues
            .iter()
            .flat_map(|(bank, queue)| {
                queue
                    .iter()
                    .map(move |(seq, entry)| (bank.clone(), *seq, entry.clone()))
            })
            .collect();
        for (bank, seq, entry) in &queued {
            if ledger.queued_at.contains_key(&entry.tx_hash) {
                return Err(SnapshotError::Inconsistent(format!(
                    "transfer {} is queued twice",
                    entry.tx_hash
                )));
            }
            ledger.index_queued(bank, *seq, entry, now);
        }
        if let Some(seq) = ledger
            .queues
            .values()
            .flat_map(|queue| queue.keys())
            .find(|seq| **seq >= next_queue_seq)
        {
            return Err(SnapshotError::Inconsistent(format!(
                "queued transfer {seq} is not below the next sequence number {next_queue_seq}"
            )));
        }
        for (bank, queue) in &ledger.queues {
            for entry in queue.values() {
                let payer_bank = ledger.accounts.get(&entry.from).map(|a| &a.bank);
                if payer_bank != Some(bank) {
                    return Err(SnapshotError::Inconsistent(format!(
                        "transfer {} queued at {bank} is not from one of its customers",
                        entry.tx_hash
                    )));
                }
            }
        }
        let mut tree = SparseMerkleTree::new();
        tree.update_batch(leaves);
        ledger.state_root = tree.root();
        ledger.tree = tree;
        ledger.dirty = BTreeSet::new();
        ledger.last_block = BlockTouch::default();
        ledger
            .check_invariants()
            .map_err(|violation| SnapshotError::Inconsistent(violation.0))?;
        Ok(ledger)
    }
}
