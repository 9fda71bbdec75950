//! The ledger's persistent maps keyed by 32-byte ids ([`AccountId`], [`Hash`]): hash array
//! mapped tries (`imbl::GenericHashMap`) under a fixed hasher.
//!
//! * **Why not the ordered map:** a lookup in `imbl::OrdMap` binary-searches nodes of 64
//!   `(key, value)` pairs on three levels, a cache miss per probe; every transfer looks its
//!   signer and payee up several times on each node (admission, proposal, validation,
//!   execution). Those lookups were 6 % of a validator's CPU at full load (issue 12's
//!   profile). A trie lookup hashes the key and follows three or four bitmap-indexed
//!   pointers: 45–65 ns against 280–350 ns for 20,000 accounts (`get`), and 0.55–0.75 of the
//!   time for `get_mut` after a clone (measured in a standalone program, release build).
//!   A clone still shares everything, and a change copies only the path it touches.
//! * **Order:** iteration follows the hashes, not the keys. Nothing the state root or a
//!   block's outcome depends on iterates these maps (the state tree has its own key order);
//!   what is listed for people ([`super::Ledger::accounts`]) is sorted first.
//! * **Why a fixed hasher:** it is the same on every node, so every node's trie has the same
//!   shape, and it costs a few multiplications. The keys are public keys and SHA-256
//!   digests: nobody picks their bits without grinding, and a trie only degrades where full
//!   32-bit hashes collide (a collision node is searched linearly), which takes about 2^32
//!   key generations or digests per colliding key, and slows only lookups of those keys.

use std::hash::{BuildHasher, Hasher};

/// A persistent map under [`KeyHash`].
pub(crate) type KeyMap<K, V> =
    imbl::GenericHashMap<K, V, KeyHash, imbl::shared_ptr::DefaultSharedPtr>;

/// The fixed hasher of [`KeyMap`] (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// Folds what it is given, a little-endian word at a time, by rotate, xor and multiply (the
/// Fx hash of rustc): the same value on every platform, and enough mixing for keys whose
/// bytes are already uniform.
#[derive(Debug)]
pub(crate) struct KeyHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            for (to, from) in buf.iter_mut().zip(rest) {
                *to = *from;
            }
            self.add(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        // A length prefix: the same on 32- and 64-bit platforms.
        self.add(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{AccountId, Hash};

    fn hash_of<T: std::hash::Hash>(value: &T) -> u64 {
        KeyHash.hash_one(value)
    }

    /// The hash is a fixed function of the key: every node builds the same trie.
    #[test]
    fn the_hash_of_a_key_is_fixed() {
        let id = AccountId([7; 32]);
        assert_eq!(hash_of(&id), hash_of(&AccountId([7; 32])));
        assert_eq!(hash_of(&Hash([7; 32])), hash_of(&id));
        assert_ne!(hash_of(&AccountId([1; 32])), hash_of(&AccountId([2; 32])));
    }

    /// Every byte of a key reaches the hash, not only its first word.
    #[test]
    fn every_byte_of_a_key_changes_its_hash() {
        let base = AccountId([0x5a; 32]);
        for index in 0..32 {
            let mut other = base;
            other.0[index] ^= 1;
            assert_ne!(hash_of(&base), hash_of(&other), "byte {index}");
        }
    }

    /// Many keys that differ in one byte each: each found, a missing one not, and a clone
    /// unchanged by a removal from the original.
    #[test]
    fn a_key_map_finds_what_it_holds_and_only_that() {
        let mut map: KeyMap<AccountId, u64> = KeyMap::default();
        for i in 0..=255u8 {
            for j in [0usize, 13, 31] {
                let mut id = [0u8; 32];
                id[j] = i;
                map.insert(AccountId(id), u64::from(i) * 100 + j as u64);
            }
        }
        // (0 at each position is the one all-zero key.)
        assert_eq!(map.len(), 255 * 3 + 1);
        let mut id = [0u8; 32];
        id[13] = 77;
        assert_eq!(map.get(&AccountId(id)), Some(&7713));
        id[31] = 1;
        assert_eq!(map.get(&AccountId(id)), None);
        let copy = map.clone();
        map.remove(&AccountId([0; 32]));
        assert_eq!(copy.len(), map.len() + 1);
    }

    /// Keys whose hashes all collide (the ground keys of the module documentation) are
    /// still found, each under its own value: a collision costs a linear search, never a
    /// wrong answer.
    #[test]
    fn colliding_keys_are_kept_apart() {
        #[derive(Clone, Copy, PartialEq, Eq)]
        struct Colliding(u32);
        impl std::hash::Hash for Colliding {
            fn hash<H: Hasher>(&self, _: &mut H) {}
        }
        let mut map: KeyMap<Colliding, u32> = KeyMap::default();
        for i in 0..100 {
            map.insert(Colliding(i), i * 3);
        }
        map.remove(&Colliding(50));
        assert_eq!(map.len(), 99);
        for i in 0..100 {
            let expected = (i != 50).then_some(i * 3);
            assert_eq!(map.get(&Colliding(i)).copied(), expected);
        }
    }
}
