//! Why a node did not take a transaction into its mempool: the admission errors, beside the
//! ledger's [`TxError`]s.
//!
//! A [`TxError`] says the ledger would refuse the transaction; an [`AdmissionError`] may also
//! say that this node will not hold it right now (it holds it already, its mempool is full,
//! the signer has too many pending). Each has one stable code string, which the node's API
//! sends and the wallet parses back with [`AdmissionCode::parse`] to decide what to tell its
//! user: one definition for both sides, no string matching.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::TxError;
use crate::primitives::Hash;

/// Why a transaction was not admitted to a node's mempool.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum AdmissionError {
    /// This node holds it already (pending).
    #[error("transaction is already pending")]
    AlreadyPending,
    /// It is in a committed block already (an idempotent retry, or a replay).
    #[error("transaction {0} is already in a block")]
    AlreadyIncluded(Hash),
    /// Another pending transaction of the signer has this nonce.
    #[error("another pending transaction already uses nonce {0}")]
    NonceTaken(u64),
    /// The signer has as many pending transactions as one signer may.
    #[error("signer has {0} pending transactions, the most allowed")]
    TooManyPending(usize),
    /// The mempool is full of transactions that can still be included.
    #[error("mempool is full ({0} transactions); try again later")]
    MempoolFull(usize),
    /// The node could not record it durably (its storage failed): not admitted.
    #[error("the node cannot accept transactions right now: {0}")]
    Unavailable(String),
    /// The ledger would reject it.
    #[error("{0}")]
    Rejected(TxError),
}

/// The codes of [`AdmissionError`]s that are not ledger rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdmissionCode {
    /// `already_pending`.
    AlreadyPending,
    /// `already_included`.
    AlreadyIncluded,
    /// `nonce_taken`.
    NonceTaken,
    /// `too_many_pending`.
    TooManyPending,
    /// `mempool_full`.
    MempoolFull,
    /// `unavailable`.
    Unavailable,
}

impl AdmissionCode {
    /// Every code, for documentation and tests.
    pub const ALL: [AdmissionCode; 6] = [
        AdmissionCode::AlreadyPending,
        AdmissionCode::AlreadyIncluded,
        AdmissionCode::NonceTaken,
        AdmissionCode::TooManyPending,
        AdmissionCode::MempoolFull,
        AdmissionCode::Unavailable,
    ];

    /// The stable code string.
    pub const fn as_str(self) -> &'static str {
        match self {
            AdmissionCode::AlreadyPending => "already_pending",
            AdmissionCode::AlreadyIncluded => "already_included",
            AdmissionCode::NonceTaken => "nonce_taken",
            AdmissionCode::TooManyPending => "too_many_pending",
            AdmissionCode::MempoolFull => "mempool_full",
            AdmissionCode::Unavailable => "unavailable",
        }
    }

    /// The code a node sent, if it is an admission code (not a ledger rejection's).
    pub fn parse(code: &str) -> Option<AdmissionCode> {
        AdmissionCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// True if the same transaction may be admitted later without change (the node was
    /// busy), as opposed to a verdict on the transaction.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            AdmissionCode::TooManyPending | AdmissionCode::MempoolFull | AdmissionCode::Unavailable
        )
    }
}

impl std::fmt::Display for AdmissionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AdmissionError {
    /// The admission code, or `None` for a ledger rejection.
    pub fn admission_code(&self) -> Option<AdmissionCode> {
        match self {
            AdmissionError::AlreadyPending => Some(AdmissionCode::AlreadyPending),
            AdmissionError::AlreadyIncluded(_) => Some(AdmissionCode::AlreadyIncluded),
            AdmissionError::NonceTaken(_) => Some(AdmissionCode::NonceTaken),
            AdmissionError::TooManyPending(_) => Some(AdmissionCode::TooManyPending),
            AdmissionError::MempoolFull(_) => Some(AdmissionCode::MempoolFull),
            AdmissionError::Unavailable(_) => Some(AdmissionCode::Unavailable),
            AdmissionError::Rejected(_) => None,
        }
    }

    /// The stable code string: an [`AdmissionCode`]'s or the [`TxError`]'s.
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionError::Rejected(error) => error.code(),
            other => other
                .admission_code()
                .map_or("rejected", AdmissionCode::as_str),
        }
    }

    /// The JSON shape the API and the wallet use for errors.
    pub fn to_view(&self) -> crate::error::ErrorView {
        crate::error::ErrorView {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

impl From<TxError> for AdmissionError {
    fn from(error: TxError) -> Self {
        AdmissionError::Rejected(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_round_trip_and_do_not_clash_with_ledger_codes() {
        let codes: std::collections::BTreeSet<&str> =
            AdmissionCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), AdmissionCode::ALL.len());
        for code in AdmissionCode::ALL {
            assert_eq!(AdmissionCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(AdmissionCode::parse("insufficient_funds"), None);
        for error in [
            TxError::BadSignature,
            TxError::Overflow,
            TxError::ZeroAmount,
        ] {
            assert!(!codes.contains(error.code()));
            assert_eq!(AdmissionError::Rejected(error.clone()).code(), error.code());
        }
        assert_eq!(AdmissionError::NonceTaken(3).code(), "nonce_taken");
        assert_eq!(
            AdmissionError::AlreadyIncluded(Hash([1; 32]))
                .to_view()
                .code,
            "already_included"
        );
    }
}
