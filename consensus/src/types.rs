//! Value types shared by the engine, its messages and its certificates: digests, keys,
//! signatures and the validator set.
//!
//! Byte values serialize as lowercase hex in human-readable formats (the node serves
//! certificates as JSON) and as fixed-size byte tuples in bincode (no length prefix).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// A block height. Height 0 is genesis; consensus starts at height 1.
pub type Height = u64;

/// A round within one height. Round 0 is the first attempt.
pub type Round = u32;

/// Largest validator set the engine accepts (bounds every vote collection).
pub const MAX_VALIDATORS: usize = 256;

/// Why a hex string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// Wrong number of characters.
    #[error("expected {expected} hex characters, got {got}")]
    Length {
        /// Characters expected.
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex character")]
    Character,
}

fn hex_encode(bytes: &[u8]) -> String {
    // A nibble (< 16) is always a hex digit.
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        out.push(digit(byte >> 4));
        out.push(digit(byte & 0x0f));
    }
    out
}

fn hex_decode<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let raw = text.as_bytes();
    let digits = N.saturating_mul(2);
    if raw.len() != digits {
        return Err(HexError::Length {
            expected: digits,
            got: raw.len(),
        });
    }
    fn nibble(c: u8) -> Result<u8, HexError> {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or(HexError::Character)
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *byte = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
    }
    Ok(out)
}

struct ArrayVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        Ok(out)
    }
}

macro_rules! byte_array_type {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Lowercase hex form.
            pub fn to_hex(&self) -> String {
                hex_encode(&self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // The short form keeps traces and test failures readable.
                write!(f, "{}", &self.to_hex()[..8])
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(text: &str) -> Result<Self, HexError> {
                hex_decode::<$len>(text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    let mut tuple = serializer.serialize_tuple($len)?;
                    for byte in &self.0 {
                        tuple.serialize_element(byte)?;
                    }
                    tuple.end()
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                    text.parse().map_err(de::Error::custom)
                } else {
                    deserializer
                        .deserialize_tuple($len, ArrayVisitor::<$len>)
                        .map(Self)
                }
            }
        }
    };
}

byte_array_type!(
    /// A SHA-256 digest. Payloads are identified by [`Digest::of`].
    Digest,
    32
);

byte_array_type!(
    /// A validator's ed25519 public key (compressed form).
    PublicKey,
    32
);

byte_array_type!(
    /// An ed25519 signature.
    Signature,
    64
);

/// Tag of the digest of a payload framed as a head and a body ([`Digest::of`]).
pub const FRAMED_PAYLOAD_TAG: &[u8] = b"interpool/payload/v2/framed";
/// Tag of the digest of any other payload.
pub const RAW_PAYLOAD_TAG: &[u8] = b"interpool/payload/v2/raw";

impl Digest {
    /// A payload's digest: what votes and certificates name.
    ///
    /// A payload that starts with a 4-byte big-endian length `n` followed by at least `n`
    /// bytes is *framed*: its head is those first `4 + n` bytes and its body the rest, and
    /// its digest is `SHA-256(FRAMED_PAYLOAD_TAG ‖ head ‖ SHA-256(body))`. So the head can
    /// be shown certified without the body: a block's header without its transactions
    /// ([`Digest::of_parts`]). Any other payload's digest is
    /// `SHA-256(RAW_PAYLOAD_TAG ‖ payload)`. The tags keep the two kinds apart.
    pub fn of(bytes: &[u8]) -> Digest {
        match Digest::split(bytes) {
            Some((head, body)) => Digest::of_parts(head, &Sha256::digest(body).into()),
            None => {
                let mut hasher = Sha256::new();
                hasher.update(RAW_PAYLOAD_TAG);
                hasher.update(bytes);
                Digest(hasher.finalize().into())
            }
        }
    }

    /// The digest of a framed payload from its head (length prefix included) and the
    /// SHA-256 of its body.
    pub fn of_parts(head: &[u8], body_digest: &[u8; 32]) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(FRAMED_PAYLOAD_TAG);
        hasher.update(head);
        hasher.update(body_digest);
        Digest(hasher.finalize().into())
    }

    /// A framed payload's head (with its length prefix) and body; `None` if not framed.
    pub fn split(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
        let prefix: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        let end = usize::try_from(u32::from_be_bytes(prefix))
            .ok()?
            .checked_add(4)?;
        (end <= bytes.len()).then(|| bytes.split_at(end))
    }
}

impl From<&VerifyingKey> for PublicKey {
    fn from(key: &VerifyingKey) -> PublicKey {
        PublicKey(key.to_bytes())
    }
}

impl From<ed25519_dalek::Signature> for Signature {
    fn from(signature: ed25519_dalek::Signature) -> Signature {
        Signature(signature.to_bytes())
    }
}

/// Why a list of keys is not a usable validator set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidatorSetError {
    /// A set needs at least one validator.
    #[error("a validator set needs at least 1 validator, got {0}")]
    TooFew(usize),
    /// More than [`MAX_VALIDATORS`].
    #[error("a validator set holds at most {MAX_VALIDATORS} validators, got {0}")]
    TooMany(usize),
    /// The same key appears twice.
    #[error("validator key {0} appears twice")]
    Duplicate(PublicKey),
    /// The bytes are not a valid ed25519 point.
    #[error("validator key {0} is not a valid ed25519 public key")]
    InvalidKey(PublicKey),
}

/// Which chain a consensus signature belongs to: SHA-256 of a tag, the chain id and the
/// genesis hash. Every signing hash starts with it, so a message or certificate of one
/// chain is worthless on any other — a test network's votes cannot be replayed on the
/// production chain, nor those of a chain restarted from another genesis under the same
/// keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ChainDomain(pub [u8; 32]);

impl ChainDomain {
    /// The domain of no chain in particular (all zeros): the consensus crate's own tests and
    /// simulator. A node binds its validator set to its chain ([`ValidatorSet::bound_to`]).
    pub const UNBOUND: ChainDomain = ChainDomain([0; 32]);

    /// The domain of the chain `chain_id` with genesis hash `genesis_hash`.
    pub fn new(chain_id: &str, genesis_hash: &[u8; 32]) -> ChainDomain {
        let mut hasher = Sha256::new();
        hasher.update(b"interpool/consensus/chain/v1");
        hasher.update((chain_id.len() as u64).to_le_bytes());
        hasher.update(chain_id.as_bytes());
        hasher.update(genesis_hash);
        ChainDomain(hasher.finalize().into())
    }
}

/// The ordered validator set of a chain (fixed at genesis).
///
/// Its order defines proposer rotation: `proposer(h, r) = validators[(h + r) mod n]`.
/// It tolerates `f = ⌊(n−1)/3⌋` byzantine validators and every quorum is
/// `⌊2n/3⌋ + 1` validators, computed only by [`ValidatorSet::quorum`]. Four validators are
/// the least that tolerate one fault; one to three tolerate none (`f = 0`: the quorum is
/// every validator), which a consortium of one bank, or a test bed, may choose.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    keys: Vec<PublicKey>,
    verifying: Vec<VerifyingKey>,
    index: BTreeMap<PublicKey, usize>,
    /// Simulation-only sabotage of the quorum size (see
    /// [`ValidatorSet::with_broken_quorum_for_simulation`]). `None` in every real deployment.
    broken_quorum: Option<usize>,
    /// The chain every signature of this set is for.
    domain: ChainDomain,
}

impl fmt::Debug for ValidatorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl ValidatorSet {
    /// Builds a set from keys in rotation order.
    pub fn new(keys: Vec<PublicKey>) -> Result<ValidatorSet, ValidatorSetError> {
        if keys.is_empty() {
            return Err(ValidatorSetError::TooFew(keys.len()));
        }
        if keys.len() > MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany(keys.len()));
        }
        let mut index = BTreeMap::new();
        let mut verifying = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if index.insert(*key, i).is_some() {
                return Err(ValidatorSetError::Duplicate(*key));
            }
            let point = VerifyingKey::from_bytes(&key.0)
                .map_err(|_| ValidatorSetError::InvalidKey(*key))?;
            // Weak (small-order) keys could make signatures ambiguous; refuse them up front.
            if point.is_weak() {
                return Err(ValidatorSetError::InvalidKey(*key));
            }
            verifying.push(point);
        }
        Ok(ValidatorSet {
            keys,
            verifying,
            index,
            broken_quorum: None,
            domain: ChainDomain::UNBOUND,
        })
    }

    /// This set as the validators of the chain `domain`: what they sign and what is
    /// verified against them is for that chain only.
    pub fn bound_to(mut self, domain: ChainDomain) -> ValidatorSet {
        self.domain = domain;
        self
    }

    /// The chain this set's signatures are for.
    pub fn domain(&self) -> &ChainDomain {
        &self.domain
    }

    /// Number of validators `n`.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a set has at least one validator. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Byzantine validators tolerated: `f = ⌊(n−1)/3⌋`.
    pub fn f(&self) -> usize {
        self.len().saturating_sub(1) / 3
    }

    /// The quorum: `⌊2n/3⌋ + 1` distinct validators. The one place this number is computed.
    ///
    /// Any two quorums intersect in at least `f + 1` validators, so in at least one honest
    /// validator (PBFT §4, "quorum intersection").
    pub fn quorum(&self) -> usize {
        match self.broken_quorum {
            Some(quorum) => quorum,
            None => (self.len().saturating_mul(2) / 3).saturating_add(1),
        }
    }

    /// `f + 1`: enough validators that at least one of them is honest.
    pub fn weak_quorum(&self) -> usize {
        self.f().saturating_add(1)
    }

    /// Index of the proposer of `(height, round)`: `(height + round) mod n`.
    pub fn proposer(&self, height: Height, round: Round) -> usize {
        let n = self.len() as u64;
        // A set is never empty, and each remainder is below n, so the sum cannot overflow.
        let (Some(h), Some(r)) = (height.checked_rem(n), u64::from(round).checked_rem(n)) else {
            return 0;
        };
        h.saturating_add(r).checked_rem(n).unwrap_or(0) as usize
    }

    /// The keys in rotation order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Key of validator `index`, if it exists.
    pub fn key(&self, index: usize) -> Option<&PublicKey> {
        self.keys.get(index)
    }

    /// The index of `key`, if it belongs to the set.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The decompressed key of validator `index`.
    #[allow(clippy::indexing_slicing)] // indices come from `index_of` on this same set
    pub(crate) fn verifying_key(&self, index: usize) -> &VerifyingKey {
        &self.verifying[index]
    }

    /// **Deliberately unsafe, for the simulator's teeth test only**: the same set with its
    /// quorum replaced by `quorum` (the test uses `2f`, which lets two disjoint-enough
    /// groups both reach "quorum"). Never use this outside a test: it breaks safety.
    #[doc(hidden)]
    pub fn with_broken_quorum_for_simulation(mut self, quorum: usize) -> ValidatorSet {
        self.broken_quorum = Some(quorum);
        self
    }
}

impl Serialize for ValidatorSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.keys.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ValidatorSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let keys = Vec::<PublicKey>::deserialize(deserializer)?;
        ValidatorSet::new(keys).map_err(de::Error::custom)
    }
}

/// Serde for a `Vec<u8>` field as one byte string (`#[serde(with = "byte_string")]`).
///
/// Serde's own `Vec<u8>` is a sequence of `u8`s: bincode writes and reads it a byte at a
/// time, through a call per byte. A block carried in a proposal or a sync response was
/// serialized, deserialized and serialized again (the canonical check) that way, about 2 %
/// of a validator's CPU at full load (issue 12's profile). As a byte string it is one copy.
/// The bytes are the same: bincode writes a byte string and a sequence of bytes alike (the
/// length, then the bytes), so nothing already signed, stored or sent changes. Other
/// formats read either form.
pub mod byte_string {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `bytes` as one byte string.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    /// Reads a byte string, or a sequence of bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(ByteString)
    }

    struct ByteString;

    impl<'de> Visitor<'de> for ByteString {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The hint is the sender's claim: allocate no more than serde would.
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }

    /// The same for an `Option<Vec<u8>>` (`#[serde(with = "byte_string::option")]`).
    pub mod option {
        use std::fmt;

        use serde::de::{self, Visitor};
        use serde::{Deserializer, Serialize, Serializer};

        struct Bytes<'a>(&'a [u8]);

        impl Serialize for Bytes<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }

        /// Writes `None`, or `Some` of one byte string.
        pub fn serialize<S: Serializer>(
            bytes: &Option<Vec<u8>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(bytes) => serializer.serialize_some(&Bytes(bytes)),
                None => serializer.serialize_none(),
            }
        }

        /// Reads `None`, or `Some` of a byte string (or of a sequence of bytes).
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Vec<u8>>, D::Error> {
            deserializer.deserialize_option(OptionalByteString)
        }

        struct OptionalByteString;

        impl<'de> Visitor<'de> for OptionalByteString {
            type Value = Option<Vec<u8>>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an optional byte string")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                super::deserialize(deserializer).map(Some)
            }
        }
    }
}

/// JSON schemas for the node's OpenAPI document, written by hand because the serde forms
/// are hand-written too: hex strings in JSON.
#[cfg(feature = "openapi")]
pub(crate) mod openapi {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{Array, ArrayBuilder, ArrayItems, Object, ObjectBuilder, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    use super::{Digest, PublicKey, Signature};

    /// A string of exactly `2 * bytes` hex digits (either case accepted, lowercase served).
    fn hex_schema(bytes: usize, description: &str) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .pattern(Some(format!(
                "^[0-9a-fA-F]{{{}}}$",
                bytes.saturating_mul(2)
            )))
            .min_length(Some(bytes.saturating_mul(2)))
            .max_length(Some(bytes.saturating_mul(2)))
            .examples(["ab".repeat(bytes)])
            .build()
    }

    fn digest() -> Object {
        hex_schema(
            32,
            "A SHA-256 digest (of a block, for the node): 32 bytes as 64 hex characters \
             (served in lowercase; either case is accepted).",
        )
    }

    fn public_key() -> Object {
        hex_schema(
            32,
            "A validator's ed25519 public key (compressed): 32 bytes as 64 hex characters \
             (served in lowercase; either case is accepted).",
        )
    }

    fn signature() -> Object {
        hex_schema(
            64,
            "An ed25519 signature: 64 bytes as 128 hex characters (served in lowercase; \
             either case is accepted).",
        )
    }

    macro_rules! hex_schema_impl {
        ($name:ident, $schema:ident) => {
            impl PartialSchema for $name {
                fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
                    $schema().into()
                }
            }

            impl ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        };
    }

    hex_schema_impl!(Digest, digest);
    hex_schema_impl!(PublicKey, public_key);
    hex_schema_impl!(Signature, signature);

    /// `Vec<(PublicKey, Signature)>` as serde writes it in JSON: an array of
    /// `[public_key, signature]` pairs (each pair a two-element array).
    pub(crate) fn signatures() -> Array {
        let pair = ArrayBuilder::new()
            .prefix_items([public_key(), signature()])
            .items(ArrayItems::False)
            .min_items(Some(2))
            .description(Some(
                "`[public_key, signature]`: a validator's key and its signature.",
            ));
        ArrayBuilder::new()
            .items(pair)
            .description(Some(
                "Signatures, sorted by validator index: each a `[public_key, signature]` pair.",
            ))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn keys(n: usize) -> Vec<PublicKey> {
        (0..n)
            .map(|i| PublicKey::from(&SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key()))
            .collect()
    }

    fn set(n: usize) -> ValidatorSet {
        ValidatorSet::new(keys(n)).expect("valid set")
    }

    #[test]
    fn quorum_and_f_follow_the_formulas() {
        for (n, f, q) in [
            (4, 1, 3),
            (5, 1, 4),
            (6, 1, 5),
            (7, 2, 5),
            (10, 3, 7),
            (13, 4, 9),
        ] {
            let s = set(n);
            assert_eq!((s.f(), s.quorum()), (f, q), "n = {n}");
            // Two quorums intersect in at least f + 1 validators.
            assert!(2 * s.quorum() - n > s.f());
        }
    }

    #[test]
    fn proposer_rotates_with_height_and_round() {
        let s = set(4);
        assert_eq!(s.proposer(1, 0), 1);
        assert_eq!(s.proposer(1, 3), 0);
        assert_eq!(
            s.proposer(u64::MAX, u32::MAX),
            ((u64::MAX % 4 + 3) % 4) as usize
        );
    }

    #[test]
    fn bad_sets_are_refused() {
        assert_eq!(
            ValidatorSet::new(Vec::new()),
            Err(ValidatorSetError::TooFew(0))
        );
        let mut keys = set(4).keys().to_vec();
        keys.push(keys[0]);
        assert!(matches!(
            ValidatorSet::new(keys),
            Err(ValidatorSetError::Duplicate(_))
        ));
    }

    #[test]
    fn a_framed_payloads_digest_follows_from_its_head_and_its_bodys_digest() {
        let framed = [&3u32.to_be_bytes()[..], b"hdr", b"the body"].concat();
        let (head, body) = Digest::split(&framed).expect("framed");
        assert_eq!((head, body), (&framed[..7], &b"the body"[..]));
        let body_digest: [u8; 32] = Sha256::digest(b"the body").into();
        assert_eq!(Digest::of(&framed), Digest::of_parts(head, &body_digest));
        // The digest commits to the head, the body and the split.
        let other_body = [&3u32.to_be_bytes()[..], b"hdr", b"the bodY"].concat();
        let other_split = [&4u32.to_be_bytes()[..], b"hdr", b"the body"].concat();
        assert_ne!(Digest::of(&framed), Digest::of(&other_body));
        assert_ne!(Digest::of(&framed), Digest::of(&other_split));
        // An empty body is framed too; a length past the end, or fewer than 4 bytes, is not.
        assert!(Digest::split(&[0, 0, 0, 0]).is_some());
        for raw in [&b""[..], b"abc", &[0, 0, 0, 9, 1][..], &[0xff; 8][..]] {
            assert_eq!(Digest::split(raw), None, "{raw:?}");
            let mut tagged = RAW_PAYLOAD_TAG.to_vec();
            tagged.extend_from_slice(raw);
            assert_eq!(Digest::of(raw).0, <[u8; 32]>::from(Sha256::digest(&tagged)));
        }
        // A raw payload never has a framed payload's digest (the tags differ).
        assert_ne!(
            Digest::of(&framed[..6]),
            Digest::of_parts(&framed[..6], &body_digest)
        );
    }

    #[test]
    fn hex_round_trips_in_json_and_bytes_in_bincode() {
        let d = Digest::of(b"payload");
        let json = serde_json::to_string(&d).expect("json");
        assert_eq!(json, format!("\"{}\"", d.to_hex()));
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("parse"), d);
        let bin = bincode::serialize(&d).expect("bincode");
        assert_eq!(bin.len(), 32);
        assert_eq!(bincode::deserialize::<Digest>(&bin).expect("decode"), d);
        let s = set(4);
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(
            serde_json::from_str::<ValidatorSet>(&json).expect("parse"),
            s
        );
        assert!("zz".parse::<Digest>().is_err());
    }
}
