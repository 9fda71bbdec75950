//! A compressed sparse Merkle tree over 256-bit keys: the ledger's state commitment.
//!
//! Conceptually a binary tree of depth 256 in which a key's path is its bits (most
//! significant first). To keep it small, a subtree that holds exactly one leaf is replaced
//! by that leaf (as in Diem's Jellyfish tree), and an empty subtree hashes to zero. So a tree
//! of `n` random keys is about `log2 n` deep, an update costs `O(log n)` hashes, and a block
//! that touches `k` entries rehashes only the nodes on those `k` paths: the cost grows with
//! what the block touched, not with the size of the state.
//!
//! Hashes (SHA-256, each node kind with its own prefix byte, so a leaf can never be passed
//! off as an inner node or the reverse):
//! * empty subtree: 32 zero bytes;
//! * leaf: `H(0x00 ‖ key ‖ value_hash)`;
//! * inner node: `H(0x01 ‖ left ‖ right)`.
//!
//! Why our own and not a crate: `interpool-contracts` may depend only on serde, bincode,
//! ed25519-dalek and sha2 (DESIGN.md), and the well-kept Jellyfish implementations bring
//! storage traits, `anyhow`, `borsh` and logging with them. This file is the whole tree; its
//! proofs are checked against an independent recomputation in the tests.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::primitives::{sha256, Hash};

const LEAF_PREFIX: &[u8] = &[0x00];
const INNER_PREFIX: &[u8] = &[0x01];

fn leaf_hash(key: &Hash, value: &Hash) -> Hash {
    sha256(&[LEAF_PREFIX, key.as_bytes(), value.as_bytes()])
}

fn inner_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[INNER_PREFIX, left.as_bytes(), right.as_bytes()])
}

/// Bit `depth` of `key`, most significant bit first: `false` = left, `true` = right.
fn bit(key: &Hash, depth: usize) -> bool {
    // Depths past the key's 256 bits read as 0; never reached, since two distinct keys
    // differ within them.
    let shift = 7usize.saturating_sub(depth % 8);
    key.0
        .get(depth / 8)
        .is_some_and(|byte| (byte >> shift) & 1 == 1)
}

#[derive(Debug, Clone, Default)]
enum Node {
    #[default]
    Empty,
    /// Behind a pointer, like an inner node, so a node is two words: an inner node holds two
    /// of them, and a leaf inline made every inner node of a large tree about 250 bytes
    /// instead of about 70 (the end-to-end ids put a leaf in the tree for every transfer
    /// of the duplicate window; issue 12's memory target).
    Leaf(Arc<Leaf>),
    /// Shared between clones of the tree: a change copies the nodes on its path only when
    /// another clone still holds them (`Arc::make_mut`), so a clone costs nothing and a
    /// block's changes cost what they touch.
    Inner(Arc<Inner>),
}

/// A leaf: never changed in place (an update is a new leaf).
#[derive(Debug)]
struct Leaf {
    key: Hash,
    value: Hash,
    /// `leaf_hash(key, value)`, kept so a parent's rehash does not redo it.
    hash: Hash,
}

fn leaf(key: Hash, value: Hash) -> Node {
    Node::Leaf(Arc::new(Leaf {
        key,
        value,
        hash: leaf_hash(&key, &value),
    }))
}

#[derive(Debug, Clone)]
struct Inner {
    left: Node,
    right: Node,
    /// `None` while a descendant changed since the hash was last computed.
    hash: Option<Hash>,
}

/// The tree. Holds only hashes: the values themselves live in the ledger.
#[derive(Debug, Clone, Default)]
pub struct SparseMerkleTree {
    root: Node,
    len: usize,
}

impl SparseMerkleTree {
    /// An empty tree (root = zero hash).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets `key`'s value hash, inserting the leaf if needed.
    pub fn insert(&mut self, key: Hash, value: Hash) {
        if insert(&mut self.root, 0, key, value) {
            self.len = self.len.saturating_add(1);
        }
    }

    /// Removes `key`'s leaf, if present.
    pub fn remove(&mut self, key: &Hash) {
        if remove(&mut self.root, 0, key) {
            self.len = self.len.saturating_sub(1);
        }
    }

    /// Applies many updates at once: `Some(value)` sets a key, `None` removes it. Sorting
    /// the keys lets one walk down the tree serve them all, so each node on the changed
    /// paths is visited once (the ledger's end-of-block update). Of several updates to one
    /// key, the last wins.
    pub fn update_batch(&mut self, mut updates: Vec<(Hash, Option<Hash>)>) {
        // A stable sort keeps each key's updates in call order; keep the last of each run.
        updates.sort_by_key(|update| update.0);
        let mut unique: Vec<(Hash, Option<Hash>)> = Vec::with_capacity(updates.len());
        for update in updates {
            match unique.last_mut() {
                Some(last) if last.0 == update.0 => *last = update,
                _ => unique.push(update),
            }
        }
        let root = std::mem::take(&mut self.root);
        self.root = update_sorted(root, 0, &unique, &mut self.len);
    }

    /// The value hash stored under `key`.
    pub fn get(&self, key: &Hash) -> Option<Hash> {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Empty => return None,
                Node::Leaf(leaf) => return (leaf.key == *key).then_some(leaf.value),
                Node::Inner(inner) => {
                    node = if bit(key, depth) {
                        &inner.right
                    } else {
                        &inner.left
                    };
                    depth = depth.saturating_add(1);
                }
            }
        }
    }

    /// The root hash, rehashing only the nodes changed since the last call.
    pub fn root(&mut self) -> Hash {
        hash(&mut self.root)
    }

    /// A proof of `key`'s value, or of its absence, against [`Self::root`].
    ///
    /// # Panics
    /// If the tree changed since the last [`Self::root`] call (the ledger computes the root
    /// at the end of every block, so its tree is always current between blocks).
    pub fn prove(&self, key: &Hash) -> Proof {
        let mut siblings = Vec::new();
        let mut node = &self.root;
        let mut depth = 0;
        let terminal = loop {
            match node {
                Node::Empty => break None,
                Node::Leaf(leaf) => break Some((leaf.key, leaf.value)),
                Node::Inner(inner) => {
                    let (next, sibling) = if bit(key, depth) {
                        (&inner.right, &inner.left)
                    } else {
                        (&inner.left, &inner.right)
                    };
                    siblings.push(cached_hash(sibling));
                    node = next;
                    depth = depth.saturating_add(1);
                }
            }
        };
        Proof { siblings, terminal }
    }
}

/// What a parent needs to know of a subtree to hash it: whether it is empty, a single leaf
/// (which the compressed tree lifts to where its siblings end) or more. State sync sends the
/// summaries of the subtrees at one depth as its manifest ([`root_of`] checks them against a
/// certified state root) and each chunk's entries are checked against their subtree's
/// summary ([`subtree`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subtree {
    /// No leaf.
    Empty,
    /// Exactly one leaf, with this leaf hash.
    Leaf(Hash),
    /// Two or more leaves, with this inner hash.
    Inner(Hash),
}

impl Subtree {
    /// The hash a parent combines.
    pub fn hash(&self) -> Hash {
        match self {
            Subtree::Empty => Hash::ZERO,
            Subtree::Leaf(hash) | Subtree::Inner(hash) => *hash,
        }
    }

    /// The summary of the parent of two sibling subtrees.
    pub fn join(left: Subtree, right: Subtree) -> Subtree {
        match (left, right) {
            (Subtree::Empty, Subtree::Empty) => Subtree::Empty,
            (Subtree::Leaf(leaf), Subtree::Empty) | (Subtree::Empty, Subtree::Leaf(leaf)) => {
                Subtree::Leaf(leaf)
            }
            (left, right) => Subtree::Inner(inner_hash(&left.hash(), &right.hash())),
        }
    }
}

/// The summary of the subtree at `depth` that holds exactly `leaves` (`(key, value hash)`,
/// sorted by key, all sharing their first `depth` bits).
pub fn subtree(leaves: &[(Hash, Hash)], depth: usize) -> Subtree {
    match leaves {
        [] => Subtree::Empty,
        [(key, value)] => Subtree::Leaf(leaf_hash(key, value)),
        _ if depth >= 256 => Subtree::Empty, // two equal keys: not a set; never matches
        _ => {
            let split = leaves.partition_point(|(key, _)| !bit(key, depth));
            let (left, right) = leaves.split_at(split);
            Subtree::join(
                subtree(left, depth.saturating_add(1)),
                subtree(right, depth.saturating_add(1)),
            )
        }
    }
}

/// The root of a tree from the summaries of its `2^d` subtrees at depth `d`, in key order
/// (`None` unless their number is a power of two).
pub fn root_of(summaries: &[Subtree]) -> Option<Hash> {
    if !summaries.len().is_power_of_two() {
        return None;
    }
    let mut level = summaries.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => Subtree::join(*left, *right),
                _ => Subtree::Empty, // a power of two splits into pairs
            })
            .collect();
    }
    level.first().map(Subtree::hash)
}

/// Which of the `2^depth` subtrees at `depth` (at most 32) holds `key`: its first `depth`
/// bits.
pub fn prefix(key: &Hash, depth: u8) -> u32 {
    let top = u32::from_be_bytes([key.0[0], key.0[1], key.0[2], key.0[3]]);
    match depth {
        0 => 0,
        d if d >= 32 => top,
        d => top >> 32u32.saturating_sub(u32::from(d)),
    }
}

/// The smallest key in subtree `index` at `depth` (at most 32).
pub fn prefix_start(index: u32, depth: u8) -> Hash {
    let top = match depth {
        0 => 0,
        d if d >= 32 => index,
        d => index << 32u32.saturating_sub(u32::from(d)),
    };
    let mut key = [0; 32];
    key[..4].copy_from_slice(&top.to_be_bytes());
    Hash(key)
}

/// Inserts; returns true if a new leaf was added (false if an existing one was updated).
fn insert(node: &mut Node, depth: usize, key: Hash, value: Hash) -> bool {
    match node {
        Node::Empty => {
            *node = leaf(key, value);
            true
        }
        Node::Leaf(existing) if existing.key == key => {
            *node = leaf(key, value);
            false
        }
        Node::Leaf(_) => {
            let existing = std::mem::take(node);
            *node = split(existing, leaf(key, value), &key, depth);
            true
        }
        Node::Inner(inner) => {
            let inner = Arc::make_mut(inner);
            inner.hash = None;
            let child = if bit(&key, depth) {
                &mut inner.right
            } else {
                &mut inner.left
            };
            insert(child, depth.saturating_add(1), key, value)
        }
    }
}

/// Applies sorted, distinct-key updates to the subtree `node` at `depth`.
fn update_sorted(
    node: Node,
    depth: usize,
    updates: &[(Hash, Option<Hash>)],
    len: &mut usize,
) -> Node {
    if updates.is_empty() {
        return node;
    }
    match node {
        Node::Inner(mut shared) => {
            let inner = Arc::make_mut(&mut shared);
            let split = updates.partition_point(|(key, _)| !bit(key, depth));
            let (left, right) = updates.split_at(split);
            let below = depth.saturating_add(1);
            inner.left = update_sorted(std::mem::take(&mut inner.left), below, left, len);
            inner.right = update_sorted(std::mem::take(&mut inner.right), below, right, len);
            inner.hash = None;
            // Keep the compression invariant: a subtree with one leaf is that leaf.
            match (&inner.left, &inner.right) {
                (Node::Empty, Node::Empty) => Node::Empty,
                (Node::Leaf(_), Node::Empty) => std::mem::take(&mut inner.left),
                (Node::Empty, Node::Leaf(_)) => std::mem::take(&mut inner.right),
                _ => Node::Inner(shared),
            }
        }
        mut node => {
            // An empty subtree or a single leaf: apply the updates one by one.
            for (key, value) in updates {
                let changed_len = match value {
                    Some(value) => insert(&mut node, depth, *key, *value),
                    None => remove(&mut node, depth, key),
                };
                if changed_len {
                    match value {
                        Some(_) => *len = len.saturating_add(1),
                        None => *len = len.saturating_sub(1),
                    }
                }
            }
            node
        }
    }
}

/// Builds the smallest subtree at `depth` holding two leaves with distinct keys.
fn split(existing: Node, new: Node, new_key: &Hash, depth: usize) -> Node {
    let existing_key = match &existing {
        Node::Leaf(leaf) => leaf.key,
        _ => unreachable!("split is only called on two leaves"),
    };
    assert!(depth < 256, "two distinct keys must differ in some bit");
    let existing_bit = bit(&existing_key, depth);
    let new_bit = bit(new_key, depth);
    let (left, right) = if existing_bit == new_bit {
        let below = split(existing, new, new_key, depth.saturating_add(1));
        if new_bit {
            (Node::Empty, below)
        } else {
            (below, Node::Empty)
        }
    } else if new_bit {
        (existing, new)
    } else {
        (new, existing)
    };
    Node::Inner(Arc::new(Inner {
        left,
        right,
        hash: None,
    }))
}

/// Removes; returns true if a leaf was removed. Keeps the compression invariant: an inner
/// node left with a single leaf below it is replaced by that leaf.
fn remove(node: &mut Node, depth: usize, key: &Hash) -> bool {
    match node {
        Node::Empty => false,
        Node::Leaf(existing) => {
            if existing.key == *key {
                *node = Node::Empty;
                true
            } else {
                false
            }
        }
        Node::Inner(inner) => {
            let inner = Arc::make_mut(inner);
            let child = if bit(key, depth) {
                &mut inner.right
            } else {
                &mut inner.left
            };
            if !remove(child, depth.saturating_add(1), key) {
                return false;
            }
            inner.hash = None;
            let collapse = match (&inner.left, &inner.right) {
                (Node::Empty, Node::Empty) => Some(Node::Empty),
                (Node::Leaf(_), Node::Empty) => Some(std::mem::take(&mut inner.left)),
                (Node::Empty, Node::Leaf(_)) => Some(std::mem::take(&mut inner.right)),
                _ => None,
            };
            if let Some(replacement) = collapse {
                *node = replacement;
            }
            true
        }
    }
}

fn hash(node: &mut Node) -> Hash {
    match node {
        Node::Empty => Hash::ZERO,
        Node::Leaf(leaf) => leaf.hash,
        Node::Inner(inner) => {
            if let Some(hash) = inner.hash {
                return hash;
            }
            // Unhashed means changed since the last hash, so already unshared: no copy.
            let inner = Arc::make_mut(inner);
            let left = hash(&mut inner.left);
            let right = hash(&mut inner.right);
            let computed = inner_hash(&left, &right);
            inner.hash = Some(computed);
            computed
        }
    }
}

/// The hash of a node whose cache is known to be current.
#[allow(clippy::expect_used)] // the ledger calls root() at the end of every block, before any proof
fn cached_hash(node: &Node) -> Hash {
    match node {
        Node::Empty => Hash::ZERO,
        Node::Leaf(leaf) => leaf.hash,
        Node::Inner(inner) => inner
            .hash
            .expect("prove() requires root() after the last change"),
    }
}

/// Why a proof does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The recomputed root differs from the trusted one.
    #[error("proof does not lead to the trusted state root")]
    RootMismatch,
    /// The proof shows a different value (or absence) than claimed.
    #[error("proof is for a different value than claimed")]
    ValueMismatch,
    /// More than 256 siblings.
    #[error("proof is deeper than the key length")]
    TooDeep,
    /// The terminal leaf of a non-inclusion proof is not on the key's path.
    #[error("proof's terminal leaf is not on the key's path")]
    WrongPath,
}

/// A Merkle proof: the sibling hashes from the root down, and what the path ends in (the
/// key's own leaf, another key's leaf, or an empty subtree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Proof {
    /// Sibling hashes, root first.
    pub siblings: Vec<Hash>,
    /// The leaf the path ends in, as `(key, value_hash)`; `None` for an empty subtree.
    #[cfg_attr(feature = "openapi", schema(min_items = 2))]
    pub terminal: Option<(Hash, Hash)>,
}

impl Proof {
    /// Checks that under `root`, `key` holds `value` (`Some`) or is absent (`None`).
    pub fn verify(&self, root: &Hash, key: &Hash, value: Option<&Hash>) -> Result<(), ProofError> {
        if self.siblings.len() > 256 {
            return Err(ProofError::TooDeep);
        }
        let depth = self.siblings.len();
        match (&self.terminal, value) {
            (Some((k, v)), Some(value)) if k == key => {
                if v != value {
                    return Err(ProofError::ValueMismatch);
                }
            }
            (Some((k, _)), None) if k != key => {
                // Another key's leaf sits where `key` would be: it must share the path.
                if (0..depth).any(|d| bit(k, d) != bit(key, d)) {
                    return Err(ProofError::WrongPath);
                }
            }
            (None, None) => {}
            _ => return Err(ProofError::ValueMismatch),
        }
        let mut current = match &self.terminal {
            Some((k, v)) => leaf_hash(k, v),
            None => Hash::ZERO,
        };
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            current = if bit(key, d) {
                inner_hash(sibling, &current)
            } else {
                inner_hash(&current, sibling)
            };
        }
        if current == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn h(n: u64) -> Hash {
        sha256(&[&n.to_le_bytes()])
    }

    /// Independent, obviously-correct recomputation of the root from all leaves.
    fn reference_root(leaves: &BTreeMap<Hash, Hash>) -> Hash {
        fn build(items: &[(Hash, Hash)], depth: usize) -> Hash {
            match items {
                [] => Hash::ZERO,
                [(k, v)] => leaf_hash(k, v),
                _ => {
                    let split = items.partition_point(|(k, _)| !bit(k, depth));
                    inner_hash(
                        &build(&items[..split], depth + 1),
                        &build(&items[split..], depth + 1),
                    )
                }
            }
        }
        let items: Vec<_> = leaves.iter().map(|(k, v)| (*k, *v)).collect();
        build(&items, 0)
    }

    proptest! {
        /// The summaries of the subtrees at any depth give the tree's root, and a changed
        /// or missing leaf changes its subtree's summary.
        #[test]
        fn subtree_summaries_give_the_root(
            keys in proptest::collection::btree_set(any::<u64>(), 0..200),
            depth in 0u8..9,
        ) {
            let leaves: BTreeMap<Hash, Hash> = keys.iter().map(|k| (h(*k), h(k ^ 1))).collect();
            let mut tree = SparseMerkleTree::new();
            for (k, v) in &leaves {
                tree.insert(*k, *v);
            }
            let items: Vec<(Hash, Hash)> = leaves.iter().map(|(k, v)| (*k, *v)).collect();
            let summaries: Vec<Subtree> = (0..1u32 << depth)
                .map(|index| {
                    let part: Vec<(Hash, Hash)> = items
                        .iter()
                        .filter(|(k, _)| prefix(k, depth) == index)
                        .copied()
                        .collect();
                    if let Some((first, _)) = part.first() {
                        prop_assert!(*first >= prefix_start(index, depth));
                    }
                    Ok(subtree(&part, usize::from(depth)))
                })
                .collect::<Result<_, _>>()?;
            prop_assert_eq!(root_of(&summaries), Some(tree.root()));
            prop_assert_eq!(subtree(&items, 0).hash(), tree.root());
            if let Some((index, _)) = summaries.iter().enumerate().find(|(_, s)| **s != Subtree::Empty) {
                let mut part: Vec<(Hash, Hash)> = items
                    .iter()
                    .filter(|(k, _)| prefix(k, depth) == index as u32)
                    .copied()
                    .collect();
                part[0].1 = h(u64::MAX);
                prop_assert_ne!(subtree(&part, usize::from(depth)), summaries[index]);
                part.remove(0);
                prop_assert_ne!(subtree(&part, usize::from(depth)), summaries[index]);
            }
        }
    }

    #[test]
    fn empty_and_single_leaf() {
        let mut tree = SparseMerkleTree::new();
        assert_eq!(tree.root(), Hash::ZERO);
        tree.insert(h(1), h(2));
        assert_eq!(tree.root(), leaf_hash(&h(1), &h(2)));
        tree.remove(&h(1));
        assert_eq!(tree.root(), Hash::ZERO);
        assert!(tree.is_empty());
    }

    #[test]
    fn keys_sharing_a_long_prefix() {
        let mut a = Hash::ZERO;
        let mut b = Hash::ZERO;
        a.0[31] = 0b10;
        b.0[31] = 0b11; // differ only in the last bit
        let mut tree = SparseMerkleTree::new();
        tree.insert(a, h(1));
        tree.insert(b, h(2));
        let leaves: BTreeMap<_, _> = [(a, h(1)), (b, h(2))].into_iter().collect();
        let root = tree.root();
        assert_eq!(root, reference_root(&leaves));
        let proof = tree.prove(&b);
        assert_eq!(proof.siblings.len(), 256);
        assert_eq!(proof.verify(&root, &b, Some(&h(2))), Ok(()));
        tree.remove(&a);
        assert_eq!(tree.root(), leaf_hash(&b, &h(2)));
    }

    proptest! {
        #[test]
        fn matches_reference_and_proofs_verify(
            ops in proptest::collection::vec((0u64..64, proptest::option::of(0u64..1000)), 1..200)
        ) {
            let mut tree = SparseMerkleTree::new();
            let mut model = BTreeMap::new();
            for (i, (k, v)) in ops.iter().enumerate() {
                match v {
                    Some(v) => { tree.insert(h(*k), h(*v)); model.insert(h(*k), h(*v)); }
                    None => { tree.remove(&h(*k)); model.remove(&h(*k)); }
                }
                if i % 17 == 0 {
                    prop_assert_eq!(tree.root(), reference_root(&model));
                }
            }
            let root = tree.root();
            prop_assert_eq!(root, reference_root(&model));
            prop_assert_eq!(tree.len(), model.len());

            // The same operations applied in batches (of up to 7) give the same tree.
            let mut batched = SparseMerkleTree::new();
            for chunk in ops.chunks(7) {
                batched.update_batch(chunk.iter().map(|(k, v)| (h(*k), v.map(h))).collect());
                let _ = batched.root();
            }
            prop_assert_eq!(batched.root(), root);
            prop_assert_eq!(batched.len(), model.len());
            for k in 0..64u64 {
                let key = h(k);
                let proof = tree.prove(&key);
                let value = model.get(&key);
                prop_assert_eq!(tree.get(&key), value.copied());
                prop_assert_eq!(proof.verify(&root, &key, value), Ok(()));
                // A proof never vouches for a different value or for absence of a present key.
                let wrong = h(5000);
                prop_assert!(proof.verify(&root, &key, Some(&wrong)).is_err());
                if value.is_some() {
                    prop_assert!(proof.verify(&root, &key, None).is_err());
                }
            }
        }
    }

    #[test]
    fn a_clone_is_independent_of_later_changes_to_either() {
        let mut tree = SparseMerkleTree::new();
        let mut leaves = BTreeMap::new();
        for n in 0..200 {
            tree.insert(h(n), h(n + 1_000));
            leaves.insert(h(n), h(n + 1_000));
        }
        let root = tree.root();
        let mut copy = tree.clone();
        // Change the copy: update, remove and insert, one by one and in a batch.
        copy.insert(h(3), h(7));
        copy.remove(&h(4));
        copy.update_batch(vec![(h(5), None), (h(500), Some(h(9))), (h(6), Some(h(8)))]);
        let copy_root = copy.root();
        assert_ne!(copy_root, root);
        // The original did not move, and its proofs still verify.
        assert_eq!(tree.root(), root);
        assert_eq!(reference_root(&leaves), root);
        for n in [3, 4, 5, 6, 500] {
            let value = leaves.get(&h(n));
            tree.prove(&h(n))
                .verify(&root, &h(n), value)
                .expect("original proof");
        }
        // And changing the original leaves the copy alone.
        tree.insert(h(1), h(2));
        assert_ne!(tree.root(), root);
        assert_eq!(copy.root(), copy_root);
        copy.prove(&h(3))
            .verify(&copy_root, &h(3), Some(&h(7)))
            .expect("copy proof");
    }

    #[test]
    fn tampered_proof_is_rejected() {
        let mut tree = SparseMerkleTree::new();
        for i in 0..100 {
            tree.insert(h(i), h(i + 1000));
        }
        let root = tree.root();
        let mut proof = tree.prove(&h(7));
        assert_eq!(proof.verify(&root, &h(7), Some(&h(1007))), Ok(()));
        proof.siblings[0].0[0] ^= 1;
        assert_eq!(
            proof.verify(&root, &h(7), Some(&h(1007))),
            Err(ProofError::RootMismatch)
        );
    }
}
