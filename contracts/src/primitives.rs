//! The ledger's primitive values: hashes, account and bank identifiers, amounts.
//!
//! Each has one canonical binary form (used by the canonical encoding, see [`crate::codec`])
//! and one human form (hex or decimal strings, used in JSON and on the command line).
//! Serde picks the form with `is_human_readable()`, so the node's JSON and the wallet read
//! one definition.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Error parsing a fixed-length hex identifier (hash or account id).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// The string does not have exactly the required number of hex characters.
    #[error("expected {expected} hex characters, got {got}")]
    Length {
        /// Required number of characters.
        expected: usize,
        /// Characters received.
        got: usize,
    },
    /// An odd number of hex characters (each byte is two).
    #[error("{0} hex characters: an odd number, and each byte is two")]
    OddLength(usize),
    /// More hex characters than allowed.
    #[error("{got} hex characters, more than the {max} allowed")]
    TooLong {
        /// Most characters allowed.
        max: usize,
        /// Characters received.
        got: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex character {0:?}")]
    Character(char),
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

/// The lowercase hex digit of a nibble (`n < 16`).
fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// Writes `bytes` as serde writes a `[u8; N]`: a tuple of `N` bytes (bincode: the bytes,
/// no length). In a loop: serde's own arrays unroll `N` calls that the compiler does not
/// inline, and keys, hashes and signatures are most of a transaction's bytes.
pub fn serialize_byte_array<const N: usize, S: Serializer>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeTuple;
    let mut tuple = serializer.serialize_tuple(N)?;
    for byte in bytes {
        tuple.serialize_element(byte)?;
    }
    tuple.end()
}

/// Reads what [`serialize_byte_array`] writes (and serde's `[u8; N]`).
pub fn deserialize_byte_array<'de, const N: usize, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    deserializer.deserialize_tuple(N, ByteArray::<N>)
}

struct ByteArray<const N: usize>;

impl<'de, const N: usize> serde::de::Visitor<'de> for ByteArray<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut bytes = [0u8; N];
        for (read, byte) in bytes.iter_mut().enumerate() {
            *byte = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(read, &self))?;
        }
        Ok(bytes)
    }
}

/// Parses hex (either case) into exactly `N` bytes.
pub fn from_hex_array<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let digits = N.saturating_mul(2);
    if text.len() != digits {
        return Err(HexError::Length {
            expected: digits,
            got: text.chars().count(),
        });
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *slot = hex_pair(pair).map_err(|_| bad_character(text))?;
    }
    Ok(out)
}

/// Parses hex of any even length into bytes (at most `max_bytes`, checked before allocating).
pub fn from_hex_vec(text: &str, max_bytes: usize) -> Result<Vec<u8>, HexError> {
    if text.len() / 2 > max_bytes {
        return Err(HexError::TooLong {
            max: max_bytes.saturating_mul(2),
            got: text.len(),
        });
    }
    if !text.len().is_multiple_of(2) {
        return Err(HexError::OddLength(text.len()));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        out.push(hex_pair(pair).map_err(|_| bad_character(text))?);
    }
    Ok(out)
}

/// The error of hex that did not decode: the first character of `text` that is not a hex
/// digit, whole (the decoder reads bytes, and named the first byte of a multi-byte
/// character as a character of its own: `é` was reported as `Ã`).
fn bad_character(text: &str) -> HexError {
    HexError::Character(
        text.chars()
            .find(|c| !c.is_ascii_hexdigit())
            .unwrap_or('\u{FFFD}'),
    )
}

/// The byte two hex digits spell (`pair` has two elements: `chunks_exact(2)`).
fn hex_pair(pair: &[u8]) -> Result<u8, HexError> {
    let (hi, lo) = match pair {
        [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
        _ => return Err(HexError::Character('\0')),
    };
    Ok((hi << 4) | lo)
}

fn hex_value(c: u8) -> Result<u8, HexError> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
        .ok_or(HexError::Character(char::from(c)))
}

/// 32 bytes compared lexicographically, a big-endian word at a time, stopping at the
/// first word that differs (for random ids, the first). Inlined (across crates too: the
/// node's maps compare these) and unrolled. Building all four words of both sides and
/// comparing the arrays, as before, went through the generic slice comparison: 3.9 % of a
/// validator's CPU, mostly in the ledger's account map.
#[inline(always)]
fn compare_words(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        x.copy_from_slice(a);
        y.copy_from_slice(b);
        let (x, y) = (u64::from_be_bytes(x), u64::from_be_bytes(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

macro_rules! hex_bytes_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        /// The bytes' lexicographic order, compared as four big-endian words: the same
        /// order as the derived one, without a `memcmp` call per comparison (the ledger's
        /// maps are keyed by these, and a lookup compares a dozen keys).
        impl Ord for $name {
            #[inline]
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                compare_words(&self.0, &other.0)
            }
        }

        impl PartialOrd for $name {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Short form keeps test failures and logs readable.
                write!(f, "{}({}…)", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(text: &str) -> Result<Self, HexError> {
                from_hex_array::<32>(text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    serialize_byte_array(&self.0, serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    deserialize_byte_array(deserializer).map(Self)
                }
            }
        }
    };
}

hex_bytes_type!(
    /// A SHA-256 digest.
    Hash
);

hex_bytes_type!(
    /// An account: the owner's ed25519 public key. Shown as 64 hex characters.
    ///
    /// Every signer (customer, bank operator, authority, regulator) is identified the same
    /// way; a customer account's id is the key that signs its transfers.
    AccountId
);

impl Hash {
    /// The all-zero hash, used for "nothing" (the empty state tree, the parent of block 1).
    pub const ZERO: Hash = Hash([0u8; 32]);
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    Hash(hasher.finalize().into())
}

/// Error for an invalid [`BankId`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BankIdError {
    /// Empty, or longer than [`BankId::MAX_LEN`].
    #[error("bank id must be 1 to 12 characters, got {0}")]
    Length(usize),
    /// A character outside `A-Z0-9_`.
    #[error("bank id may contain only A-Z, 0-9 and _, found {0:?}")]
    Character(char),
}

/// A member bank's identifier: 1–12 characters of `A-Z0-9_` (e.g. `BANK_A`).
///
/// Held inline (no heap string): every account names its bank, and the ledger copies
/// accounts whenever a block changes a node of its persistent account map, so a bank id
/// that allocated on every clone cost an allocation per account copied. Encodes, orders and
/// compares exactly as the string does.
#[derive(Clone, PartialEq, Eq)]
pub struct BankId {
    len: u8,
    /// The id's ASCII bytes, then zeros.
    bytes: [u8; BankId::MAX_LEN],
}

impl BankId {
    /// Longest allowed id, in characters.
    pub const MAX_LEN: usize = 12;

    /// The empty id: orders before every bank id. A lower bound for ranges, never a bank.
    pub(crate) const LOWEST: BankId = BankId {
        len: 0,
        bytes: [0; BankId::MAX_LEN],
    };

    /// Validates and wraps `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, BankIdError> {
        let id = id.into();
        let len = id.chars().count();
        if len == 0 || len > Self::MAX_LEN {
            return Err(BankIdError::Length(len));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(BankIdError::Character(bad));
        }
        // 1 to MAX_LEN ASCII characters (checked above): one byte each.
        let mut bytes = [0; Self::MAX_LEN];
        for (slot, byte) in bytes.iter_mut().zip(id.bytes()) {
            *slot = byte;
        }
        let len = u8::try_from(id.len()).map_err(|_| BankIdError::Length(len))?;
        Ok(Self { len, bytes })
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // Only `new` builds a bank id, from 1–12 ASCII characters (and `LOWEST`, from none).
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl PartialOrd for BankId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BankId {
    /// The strings' order (maps keyed by bank iterate as they did with `String` ids): the
    /// bytes are zero-padded and no id character is zero, so comparing the padded arrays
    /// orders a prefix first, as strings do.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl std::hash::Hash for BankId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Serialize for BankId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for BankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for BankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BankId({})", self.as_str())
    }
}

impl FromStr for BankId {
    type Err = BankIdError;
    fn from_str(text: &str) -> Result<Self, BankIdError> {
        Self::new(text)
    }
}

impl<'de> Deserialize<'de> for BankId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Bounded by the codec's size limit before we get here; validated before use.
        let text = String::deserialize(deserializer)?;
        BankId::new(text).map_err(serde::de::Error::custom)
    }
}

/// Error parsing a decimal amount.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmountError {
    /// Nothing to parse.
    #[error("amount is empty")]
    Empty,
    /// A leading minus sign.
    #[error("amount must not be negative")]
    Negative,
    /// More fractional digits than the currency has.
    #[error("amount has {got} decimal places, the currency allows {allowed}")]
    TooManyDecimals {
        /// Fractional digits given.
        got: usize,
        /// The chain's `decimals`.
        allowed: u8,
    },
    /// Larger than `u64::MAX` minor units.
    #[error("amount is too large")]
    Overflow,
    /// Anything that is not `digits[.digits]`.
    #[error("amount {0:?} is not a decimal number")]
    Invalid(String),
}

/// Money in minor units (e.g. cents). Never negative, never a float; arithmetic is checked.
///
/// In JSON an amount is the minor-unit integer; the API and the wallet show decimal strings
/// formatted with the chain's `decimals` ([`Amount::format`], [`Amount::parse`]).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(pub u64);

/// Minor units, e.g. `1234` for 12.34 in a two-decimal currency: the amount alone does not
/// know the chain's decimals (use [`Amount::format`] where they are known).
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Amount {
    /// Zero minor units.
    pub const ZERO: Amount = Amount(0);

    /// The number of minor units.
    pub fn minor_units(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if it would go negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Parses a decimal string such as `"12.34"` into minor units with `decimals` places.
    pub fn parse(text: &str, decimals: u8) -> Result<Amount, AmountError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if text.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let invalid = || AmountError::Invalid(text.chars().take(40).collect());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f) || f.is_empty()) {
            return Err(invalid());
        }
        if whole.is_empty() && fraction.is_none() {
            return Err(invalid());
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > usize::from(decimals) {
            return Err(AmountError::TooManyDecimals {
                got: fraction.len(),
                allowed: decimals,
            });
        }
        let mut units: u64 = 0;
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .chain(std::iter::repeat_n(
                b'0',
                // No more fractional digits than decimals: checked above.
                usize::from(decimals).saturating_sub(fraction.len()),
            ));
        for digit in digits {
            let value = char::from(digit).to_digit(10).ok_or_else(invalid)?;
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(u64::from(value)))
                .ok_or(AmountError::Overflow)?;
        }
        Ok(Amount(units))
    }

    /// Formats a signed quantity of minor units (a net position) like [`Self::format`], with
    /// a leading `-` when negative (`"-0.05"`); magnitudes beyond `u64` are shown in minor
    /// units.
    pub fn format_signed(value: i128, decimals: u8) -> String {
        let sign = if value < 0 { "-" } else { "" };
        match u64::try_from(value.unsigned_abs()) {
            Ok(magnitude) => format!("{sign}{}", Amount(magnitude).format(decimals)),
            Err(_) => format!("{value} minor units"),
        }
    }

    /// Formats as a decimal string with exactly `decimals` fractional digits (`"12.34"`).
    pub fn format(self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let decimals = usize::from(decimals);
        if decimals == 0 {
            return digits;
        }
        let padded = format!("{:0>width$}", digits, width = decimals + 1);
        // `padded` has at least `decimals + 1` digits.
        let (whole, fraction) = padded.split_at(padded.len().saturating_sub(decimals));
        format!("{whole}.{fraction}")
    }
}

/// JSON schemas of the primitives for the node's OpenAPI document, written by hand because
/// their serde forms are hand-written too (hex strings, a validated string, a bare integer).
#[cfg(feature = "openapi")]
mod openapi {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    use super::{AccountId, Amount, BankId, Hash};

    /// A string of exactly `2 * bytes` hex digits (either case accepted, lowercase served).
    fn hex_schema(bytes: usize, description: &str) -> RefOr<Schema> {
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
            .into()
    }

    impl PartialSchema for Hash {
        fn schema() -> RefOr<Schema> {
            hex_schema(
                32,
                "A SHA-256 digest: 32 bytes as 64 hex characters (served in lowercase; \
                 either case is accepted).",
            )
        }
    }

    impl ToSchema for Hash {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Hash")
        }
    }

    impl PartialSchema for AccountId {
        fn schema() -> RefOr<Schema> {
            hex_schema(
                32,
                "An account or signer: its owner's ed25519 public key, 32 bytes as 64 hex \
                 characters (served in lowercase; either case is accepted).",
            )
        }
    }

    impl ToSchema for AccountId {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("AccountId")
        }
    }

    impl PartialSchema for BankId {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "A member bank's identifier: 1 to 12 characters of `A-Z`, `0-9` and `_`.",
                ))
                .pattern(Some(format!("^[A-Z0-9_]{{1,{}}}$", BankId::MAX_LEN)))
                .min_length(Some(1))
                .max_length(Some(BankId::MAX_LEN))
                .examples(["BANK_A"])
                .into()
        }
    }

    impl ToSchema for BankId {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("BankId")
        }
    }

    impl PartialSchema for Amount {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::Custom("uint64".into())))
                .minimum(Some(0))
                .description(Some(
                    "Money in minor units (e.g. cents): an unsigned 64-bit integer, never \
                     negative, never a fraction.",
                ))
                .examples([1234])
                .into()
        }
    }

    impl ToSchema for Amount {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Amount")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and hashes are their 32 bytes in the canonical encoding, as serde's `[u8; 32]`
    /// wrote them (what every stored block, hash and signature was made over); the same
    /// bytes decode back, and a short or long input is refused, not misread.
    #[test]
    fn byte_arrays_encode_as_their_bytes_and_nothing_else() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let hash = Hash(bytes);
        let account = AccountId(bytes);
        assert_eq!(crate::codec::encode(&hash), bytes.to_vec());
        assert_eq!(crate::codec::encode(&account), crate::codec::encode(&bytes));
        assert_eq!(crate::codec::decode::<Hash>(&bytes, 32), Ok(hash));
        assert_eq!(crate::codec::decode::<AccountId>(&bytes, 32), Ok(account));
        assert!(crate::codec::decode::<Hash>(&bytes[..31], 32).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(crate::codec::decode::<Hash>(&longer, 64).is_err());
        let pair = crate::codec::encode(&(hash, 7u8, account));
        assert_eq!(pair.len(), 65);
        assert_eq!(
            crate::codec::decode::<(Hash, u8, AccountId)>(&pair, 65),
            Ok((hash, 7, account))
        );
        // JSON keeps its hex.
        let json = serde_json::to_string(&hash).expect("json");
        assert_eq!(json, format!("\"{}\"", hash.to_hex()));
        assert_eq!(serde_json::from_str::<Hash>(&json).expect("hex"), hash);
    }

    #[test]
    fn amount_parse_and_format_round_trip() {
        assert_eq!(Amount::parse("12.34", 2), Ok(Amount(1234)));
        assert_eq!(Amount::parse("12.3", 2), Ok(Amount(1230)));
        assert_eq!(Amount::parse("12", 2), Ok(Amount(1200)));
        assert_eq!(Amount::parse("0.01", 2), Ok(Amount(1)));
        assert_eq!(Amount::parse(".5", 2), Ok(Amount(50)));
        assert_eq!(Amount::parse("7", 0), Ok(Amount(7)));
        assert_eq!(Amount(1234).format(2), "12.34");
        assert_eq!(Amount(5).format(2), "0.05");
        assert_eq!(Amount(0).format(2), "0.00");
        assert_eq!(Amount(42).format(0), "42");
        assert_eq!(Amount::format_signed(-5, 2), "-0.05");
        assert_eq!(Amount::format_signed(1234, 2), "12.34");
        assert_eq!(Amount(u64::MAX).format(2), "184467440737095516.15");
        assert_eq!(
            Amount::parse("184467440737095516.15", 2),
            Ok(Amount(u64::MAX))
        );
    }

    #[test]
    fn amount_parse_rejects_each_bad_form_specifically() {
        assert_eq!(Amount::parse("", 2), Err(AmountError::Empty));
        assert_eq!(Amount::parse("-1", 2), Err(AmountError::Negative));
        assert_eq!(
            Amount::parse("1.234", 2),
            Err(AmountError::TooManyDecimals { got: 3, allowed: 2 })
        );
        assert_eq!(
            Amount::parse("1.5", 0),
            Err(AmountError::TooManyDecimals { got: 1, allowed: 0 })
        );
        assert_eq!(
            Amount::parse("184467440737095516.16", 2),
            Err(AmountError::Overflow)
        );
        assert_eq!(
            Amount::parse("99999999999999999999999", 0),
            Err(AmountError::Overflow)
        );
        for garbage in ["abc", "1.2.3", "1e5", "1,00", "+1", ".", "1.", " 1 2"] {
            assert!(
                matches!(Amount::parse(garbage, 2), Err(AmountError::Invalid(_))),
                "{garbage:?} should be invalid"
            );
        }
    }

    #[test]
    fn bank_id_validation() {
        assert!(BankId::new("BANK_A").is_ok());
        assert!(BankId::new("X1").is_ok());
        assert_eq!(BankId::new(""), Err(BankIdError::Length(0)));
        assert_eq!(BankId::new("ABCDEFGHIJKLM"), Err(BankIdError::Length(13)));
        assert_eq!(BankId::new("bank"), Err(BankIdError::Character('b')));
        assert_eq!(BankId::new("BANK-A"), Err(BankIdError::Character('-')));
        assert!(serde_json::from_str::<BankId>("\"lower\"").is_err());
    }

    #[test]
    fn a_bank_id_encodes_and_orders_exactly_as_its_string() {
        let ids = [
            "A",
            "B",
            "AB",
            "BANK_A",
            "BANK_B",
            "Z9",
            "ABCDEFGHIJKL",
            "_",
        ];
        for a in ids {
            let id = BankId::new(a).expect("valid");
            assert_eq!(id.as_str(), a);
            assert_eq!(
                crate::codec::encode(&id),
                crate::codec::encode(&a.to_string())
            );
            assert_eq!(
                serde_json::to_string(&id).expect("json"),
                format!("\"{a}\"")
            );
            for b in ids {
                let other = BankId::new(b).expect("valid");
                assert_eq!(id.cmp(&other), a.cmp(b), "{a} vs {b}");
                assert_eq!(id == other, a == b);
            }
        }
    }

    #[test]
    fn hex_ids_round_trip_and_reject_bad_input() {
        let id = AccountId([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<AccountId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<AccountId>(), Ok(id));
        assert!(matches!(
            "abc".parse::<AccountId>(),
            Err(HexError::Length { .. })
        ));
        let bad = format!("{}zz", &text[..62]);
        assert_eq!(bad.parse::<AccountId>(), Err(HexError::Character('z')));
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<AccountId>(&json).expect("parse"), id);
    }

    #[test]
    fn hex_vec_is_bounded() {
        assert_eq!(from_hex_vec("00ff", 2), Ok(vec![0, 255]));
        assert_eq!(
            from_hex_vec("00ff00", 2),
            Err(HexError::TooLong { max: 4, got: 6 })
        );
        assert_eq!(from_hex_vec("0", 2), Err(HexError::OddLength(1)));
        assert_eq!(
            from_hex_vec("0", 2).map_err(|e| e.to_string()),
            Err("1 hex characters: an odd number, and each byte is two".to_owned())
        );
        // A multi-byte character is named whole, in both decoders.
        assert_eq!(from_hex_vec("0é0", 8), Err(HexError::Character('é')));
        let id = format!("{}é", "0".repeat(62));
        assert_eq!(id.parse::<AccountId>(), Err(HexError::Character('é')));
    }

    proptest::proptest! {
        /// Hashes and account ids order exactly as their bytes do: the ledger's maps, the
        /// state tree's key order and every sorted listing depend on it.
        #[test]
        fn ids_order_as_their_bytes(
            a in proptest::array::uniform32(proptest::num::u8::ANY),
            b in proptest::array::uniform32(proptest::num::u8::ANY),
            shared in 0usize..=32,
        ) {
            // Often equal for a prefix, so that later words decide too.
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            proptest::prop_assert_eq!(Hash(a).cmp(&Hash(b)), a.cmp(&b));
            proptest::prop_assert_eq!(AccountId(a).cmp(&AccountId(b)), a.cmp(&b));
            proptest::prop_assert_eq!(AccountId(a).partial_cmp(&AccountId(b)), Some(a.cmp(&b)));
        }
    }
}
