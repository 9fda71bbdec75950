//! A ledger that archives its end-to-end ids decides exactly as one that keeps them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::EndToEndArchive;
use crate::genesis::GridlockPass;
use crate::ledger::tests::{cust, transfer, Harness};
use crate::ledger::{Ledger, StateEntry, StateKey};
use crate::primitives::Hash;
use crate::testkit;

/// An archive in memory, as a node's database holds one: every list ever written, and each
/// key's latest height.
#[derive(Debug, Default)]
struct MapArchive {
    lists: Mutex<BTreeMap<u64, Arc<Vec<Hash>>>>,
    latest: Mutex<HashMap<Hash, u64>>,
    /// Keys asked about one at a time ([`EndToEndArchive::latest`]).
    asked_alone: AtomicUsize,
}

impl MapArchive {
    /// Writes what `ledger` holds in memory, then lets it archive that.
    fn take_from(self: &Arc<Self>, ledger: &mut Ledger) {
        let through = ledger.height();
        for (height, keys) in ledger.end_to_end_lists() {
            for key in keys.iter() {
                self.latest.lock().expect("lock").insert(*key, height);
            }
            self.lists
                .lock()
                .expect("lock")
                .insert(height, keys.clone());
        }
        ledger.archive_end_to_end_ids(self.clone(), through);
        assert_eq!(ledger.end_to_end_heights().0, 0, "nothing left in memory");
    }
}

impl EndToEndArchive for MapArchive {
    fn latest(&self, key: &Hash) -> Option<u64> {
        self.asked_alone.fetch_add(1, Ordering::Relaxed);
        self.latest.lock().expect("lock").get(key).copied()
    }

    fn latest_of_many(&self, keys: &[Hash]) -> Vec<Option<u64>> {
        let latest = self.latest.lock().expect("lock");
        keys.iter().map(|key| latest.get(key).copied()).collect()
    }

    fn list(&self, height: u64) -> Arc<Vec<Hash>> {
        self.lists.lock().expect("lock")[&height].clone()
    }
}

/// One transfer of a block: payer and payee (of the 9 customers), amount, and which of a
/// few end-to-end ids it carries (so that ids repeat, within the window and after it).
type Step = (usize, usize, u64, u8);

fn blocks() -> impl Strategy<Value = Vec<(Vec<Step>, bool)>> {
    // Payer, payee as an offset from the payer (never the payer itself), amount, id.
    let step = (0usize..9, 1usize..9, 1u64..=300, 0u8..6);
    // Each block's transfers, and whether the archiving ledger archives after it.
    proptest::collection::vec(
        (proptest::collection::vec(step, 0..6), any::<bool>()),
        1..40,
    )
}

fn sorted(entries: impl Iterator<Item = StateEntry>) -> Vec<(Hash, Vec<u8>)> {
    let mut entries: Vec<(Hash, Vec<u8>)> = entries.map(|e| (e.key.tree_key(), e.value)).collect();
    entries.sort();
    entries
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn archiving_end_to_end_ids_changes_no_outcome_and_no_root(blocks in blocks()) {
        let mut genesis = testkit::genesis(3, 3, 100_000, 1_000_000, 50_000);
        genesis.gridlock_pass = GridlockPass::OnRequest;
        genesis.duplicate_window_blocks = 10;
        genesis.max_validity_blocks = 5;
        genesis.queue_expiry_blocks = 5;
        let mut kept = Harness::with(genesis.clone());
        let mut archiving = kept.ledger.clone();
        let archive = Arc::new(MapArchive::default());
        for (steps, archive_after) in blocks {
            let txs: Vec<_> = steps
                .iter()
                .map(|&(from, offset, amount, id)| {
                    let to = (from + offset) % 9;
                    kept.tx(
                        cust(from / 3, from % 3),
                        transfer(cust(to / 3, to % 3), amount, &format!("E2E-{id}")),
                    )
                })
                .collect();
            let height = kept.ledger.height() + 1;
            let time = kept.ledger.time_ms() + 1_000;
            // Admission with the batch's answers asked at once decides as one asking
            // key by key.
            let answers = archiving.ask_archive(&txs);
            for tx in &txs {
                prop_assert_eq!(
                    archiving.check_pending_answered(tx, height, &answers),
                    archiving.check_pending(tx, height)
                );
            }
            let expected = kept.block_at(time, txs.clone());
            let alone = archive.asked_alone.load(Ordering::Relaxed);
            let got = archiving.apply_block(height, time, &txs);
            prop_assert_eq!(&got, &expected);
            // A block's archived ids are looked up in one batch, none alone.
            prop_assert_eq!(archive.asked_alone.load(Ordering::Relaxed), alone);
            prop_assert_eq!(archiving.state_root(), kept.ledger.state_root());
            archiving.check_invariants().expect("invariants of the archiving ledger");
            if archive_after {
                archive.take_from(&mut archiving);
            }
        }
        // Its state entries are the same entries, and rebuild the same ledger.
        let height = kept.ledger.height();
        prop_assert_eq!(
            sorted(archiving.state_entries()),
            sorted(kept.ledger.state_entries())
        );
        let rebuilt = Ledger::from_state_entries(&genesis, height, archiving.state_entries())
            .expect("the archiving ledger's entries");
        prop_assert_eq!(rebuilt.state_root(), kept.ledger.state_root());
        prop_assert_eq!(archiving.state_len(), archiving.state_entries().count());
    }
}

#[test]
fn an_archived_id_is_a_duplicate_until_the_window_passes_and_then_forgotten() {
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 50_000);
    genesis.duplicate_window_blocks = 10;
    genesis.max_validity_blocks = 5;
    genesis.queue_expiry_blocks = 5;
    let mut h = Harness::with(genesis);
    let archive = Arc::new(MapArchive::default());
    let first = h.tx(cust(0, 0), transfer(cust(1, 0), 10, "INV-7"));
    h.block(vec![first]);
    archive.take_from(&mut h.ledger);
    assert_eq!(h.ledger.end_to_end_heights(), (0, 1));
    let retry = h.tx(cust(0, 0), transfer(cust(1, 0), 10, "INV-7"));
    h.expect_rejected(
        retry,
        crate::error::TxError::DuplicateEndToEndId("INV-7".into()),
        true,
    );
    // Another signer's same id is another id.
    let other = h.tx(cust(0, 1), transfer(cust(1, 0), 10, "INV-7"));
    assert_eq!(
        h.block(vec![other]).receipts[0].outcome,
        crate::outcome::Outcome::Committed
    );
    archive.take_from(&mut h.ledger);
    // Remembered at 1: forgotten in block 1 + 10, its state entry with it.
    for _ in 4..=10 {
        h.block(vec![]);
    }
    assert_eq!(h.ledger.earliest_remembered_height(), Some(1));
    // Still a duplicate in block 11 (the window is forgotten after its transactions).
    let retry = h.tx(cust(0, 0), transfer(cust(1, 0), 10, "INV-7"));
    assert_eq!(
        h.block(vec![retry]).receipts[0].outcome,
        crate::outcome::Outcome::Rejected {
            error: crate::error::TxError::DuplicateEndToEndId("INV-7".into())
        }
    );
    assert_eq!(h.ledger.earliest_remembered_height(), Some(3));
    assert!(!h
        .ledger
        .state_entries()
        .any(|e| e.key == StateKey::EndToEndIds(1)));
    // The archive still holds the list; the ledger no longer asks about it.
    assert!(archive
        .latest
        .lock()
        .expect("lock")
        .values()
        .any(|h| *h == 1));
    let again = h.tx(cust(0, 0), transfer(cust(1, 0), 10, "INV-7"));
    assert_eq!(
        h.block(vec![again]).receipts[0].outcome,
        crate::outcome::Outcome::Committed
    );
}
