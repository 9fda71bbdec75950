//! The binary form of a batch of signed transactions, for `POST /v1/transactions/batch`
//! with `Content-Type: application/octet-stream` (the hot path of a bank's gateway or the
//! load generator: no JSON, no hex). Each transaction is its canonical encoding after its
//! length as 4 bytes big-endian, one after the other, and nothing else:
//!
//! ```text
//! len₀ (u32 BE) | tx₀ (len₀ bytes) | len₁ | tx₁ | …
//! ```
//!
//! The framing is checked as a whole (a body that does not split exactly into entries is
//! refused at once); each entry's bytes are then judged on their own, as one transaction of
//! the JSON form would be.

use crate::tx::MAX_TX_BYTES;

/// The media type of the binary form.
pub const BATCH_CONTENT_TYPE: &str = "application/octet-stream";

/// Why a body is not a binary batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body ends inside an entry's 4-byte length.
    #[error("entry {index} at byte {offset}: the body ends inside its 4-byte length")]
    TruncatedLength {
        /// The entry's position.
        index: usize,
        /// Where its length starts.
        offset: usize,
    },
    /// An entry's length is above the largest transaction.
    #[error(
        "entry {index} at byte {offset}: length {length} is above the largest transaction \
         ({MAX_TX_BYTES} bytes)"
    )]
    TooLong {
        /// The entry's position.
        index: usize,
        /// Where its length starts.
        offset: usize,
        /// The length it announced.
        length: u32,
    },
    /// The body ends inside an entry.
    #[error("entry {index} at byte {offset}: {length} bytes announced, {available} left")]
    Truncated {
        /// The entry's position.
        index: usize,
        /// Where its length starts.
        offset: usize,
        /// The length it announced.
        length: u32,
        /// The bytes left after the length.
        available: usize,
    },
    /// More entries than one batch may hold.
    #[error("more than {max} transactions in one batch")]
    TooMany {
        /// The most a batch may hold.
        max: usize,
    },
}

/// The binary form of `encodings` (each a transaction's canonical encoding).
pub fn encode_batch<'a>(encodings: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for bytes in encodings {
        // A transaction's encoding is at most MAX_TX_BYTES: its length fits.
        let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The entries of a binary batch, at most `max_entries` of them; each entry is the bytes
/// that should be one transaction's canonical encoding (not decoded here).
pub fn split_batch(body: &[u8], max_entries: usize) -> Result<Vec<&[u8]>, BatchError> {
    let mut entries = Vec::new();
    let mut rest = body;
    let mut offset = 0usize;
    while !rest.is_empty() {
        let index = entries.len();
        if index >= max_entries {
            return Err(BatchError::TooMany { max: max_entries });
        }
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(BatchError::TruncatedLength { index, offset });
        };
        let length = u32::from_be_bytes(*prefix);
        if u64::from(length) > MAX_TX_BYTES {
            return Err(BatchError::TooLong {
                index,
                offset,
                length,
            });
        }
        let Some((entry, tail)) = tail.split_at_checked(length as usize) else {
            return Err(BatchError::Truncated {
                index,
                offset,
                length,
                available: tail.len(),
            });
        };
        entries.push(entry);
        offset = offset.saturating_add(4).saturating_add(entry.len());
        rest = tail;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_body_is_an_empty_batch() {
        assert_eq!(split_batch(&[], 10), Ok(vec![]));
    }

    #[test]
    fn each_framing_flaw_has_its_error() {
        assert_eq!(
            split_batch(&[0, 0, 0, 1, 7, 0, 0], 10),
            Err(BatchError::TruncatedLength {
                index: 1,
                offset: 5
            })
        );
        let too_long = ((MAX_TX_BYTES + 1) as u32).to_be_bytes();
        assert!(matches!(
            split_batch(&too_long, 10),
            Err(BatchError::TooLong { index: 0, .. })
        ));
        assert_eq!(
            split_batch(&[0, 0, 0, 3, 1, 2], 10),
            Err(BatchError::Truncated {
                index: 0,
                offset: 0,
                length: 3,
                available: 2
            })
        );
        assert_eq!(
            split_batch(&encode_batch([&[1u8][..], &[2], &[3]]), 2),
            Err(BatchError::TooMany { max: 2 })
        );
        // A zero-length entry is framed correctly (and is then no transaction).
        assert_eq!(split_batch(&[0, 0, 0, 0], 10), Ok(vec![&[][..]]));
    }

    proptest! {
        #[test]
        fn split_inverts_encode(entries in prop::collection::vec(
            prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let body = encode_batch(entries.iter().map(Vec::as_slice));
            let split = split_batch(&body, 20).expect("a batch");
            prop_assert_eq!(split, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        #[test]
        fn any_body_splits_or_errs_and_never_panics(body in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(entries) = split_batch(&body, 100) {
                prop_assert_eq!(encode_batch(entries), body);
            }
        }
    }
}
