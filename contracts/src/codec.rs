//! The canonical binary encoding.
//!
//! Everything that is hashed, signed, stored or sent between nodes is encoded with bincode
//! 1.3 in exactly one configuration:
//!
//! * `bincode::DefaultOptions` — little-endian, variable-length integers (LEB128-style
//!   `varint` as bincode defines it), length-prefixed sequences and strings;
//! * `reject_trailing_bytes` — an encoding has exactly one valid length;
//! * a byte limit, checked *before* anything is decoded, so a hostile length prefix can
//!   never make the decoder allocate more than the limit (bincode also counts every byte it
//!   reads against the limit, and serde pre-allocates at most 4096 elements per sequence).
//!
//! The configuration is part of the protocol: changing it changes every hash and signature.
//! See `docs/adr/0001-canonical-encoding.md`.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input is longer than the limit for this type.
    #[error("encoding is {got} bytes, the limit is {limit}")]
    TooLarge {
        /// Input length.
        got: usize,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not a valid encoding (truncated, trailing bytes, bad tag, bad field).
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Encodes `value` canonically.
///
/// Only values built by this crate are encoded, and they are bounded by construction, so
/// the only failure is a broken internal invariant.
#[allow(clippy::expect_used)] // serializing to memory fails only for unbounded or broken values
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::DefaultOptions::new()
        .reject_trailing_bytes()
        .serialize(value)
        .expect("in-memory serialization of a ledger value cannot fail")
}

/// The canonical encoding's length, without allocating it.
#[allow(clippy::expect_used)] // sizing fails only where encoding would: never for our values
pub fn encoded_len<T: Serialize>(value: &T) -> u64 {
    bincode::DefaultOptions::new()
        .serialized_size(value)
        .expect("in-memory sizing of a ledger value cannot fail")
}

/// Decodes exactly one `T` from `bytes`, refusing inputs longer than `limit` bytes, and
/// refusing any encoding other than the canonical one (bincode accepts, e.g., a small
/// integer written in a wider varint form; re-encoding catches that), so that every value
/// has exactly one valid byte string.
pub fn decode<T: DeserializeOwned + Serialize>(bytes: &[u8], limit: u64) -> Result<T, DecodeError> {
    if bytes.len() as u64 > limit {
        return Err(DecodeError::TooLarge {
            got: bytes.len(),
            limit,
        });
    }
    let value: T = options(limit)
        .deserialize(bytes)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !encodes_to(&value, bytes) {
        return Err(DecodeError::Malformed("not the canonical encoding".into()));
    }
    Ok(value)
}

/// Whether the canonical encoding of `value` is exactly `bytes`: encoded straight against
/// them, stopping at the first difference, with no buffer to allocate, fill and compare
/// (`codec/decode/5000_transfers`: about 10 % faster).
fn encodes_to<T: Serialize>(value: &T, bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let matched = bincode::DefaultOptions::new()
        .reject_trailing_bytes()
        .serialize_into(Expect { rest: &mut rest }, value)
        .is_ok();
    matched && rest.is_empty()
}

/// A writer that accepts only the bytes it expects next.
struct Expect<'a, 'b> {
    rest: &'a mut &'b [u8],
}

impl std::io::Write for Expect<'_, '_> {
    fn write(&mut self, written: &[u8]) -> std::io::Result<usize> {
        self.write_all(written).map(|()| written.len())
    }

    /// Whole or not at all (bincode writes through this, mostly a byte at a time: the
    /// default `write_all` loop around `write` cost more than the comparison).
    #[inline]
    fn write_all(&mut self, written: &[u8]) -> std::io::Result<()> {
        match self.rest.strip_prefix(written) {
            Some(rest) => {
                *self.rest = rest;
                Ok(())
            }
            None => Err(std::io::ErrorKind::InvalidData.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> whose varint length prefix claims u64::MAX elements.
        let mut bytes = vec![0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let result = decode::<Vec<u8>>(&bytes, 1024);
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{result:?}"
        );
    }

    #[test]
    fn non_canonical_varint_is_rejected() {
        // 5 written as a u16 varint (tag 251) instead of one byte.
        assert_eq!(decode::<u64>(&[5], 16), Ok(5));
        assert!(matches!(
            decode::<u64>(&[251, 5, 0], 16),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn the_canonical_check_compares_every_byte_and_the_length() {
        let value = (7u64, String::from("transfer"), vec![1u32, 300, 70_000]);
        let bytes = encode(&value);
        assert!(encodes_to(&value, &bytes));
        assert!(!encodes_to(&value, &bytes[..bytes.len() - 1]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!encodes_to(&value, &longer));
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            assert!(!encodes_to(&value, &changed), "byte {at} changed");
        }
    }

    #[test]
    fn trailing_bytes_and_oversize_are_rejected() {
        let mut bytes = encode(&7u32);
        assert_eq!(decode::<u32>(&bytes, 16), Ok(7));
        bytes.push(0);
        assert!(matches!(
            decode::<u32>(&bytes, 16),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode::<u32>(&[0; 20], 16),
            Err(DecodeError::TooLarge { got: 20, limit: 16 })
        );
    }
}
