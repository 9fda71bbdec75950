//! Why a transaction is rejected: one enum, ordered by precedence, each variant with a stable
//! code string (what the node's API and the wallet show) and a human message.
//!
//! Precedence follows the order the checks run in: the stateless checks
//! ([`crate::tx::SignedTransaction::check_stateless`]) first, then the stateful ones
//! ([`crate::ledger::Ledger::check`]): who signed, the nonce (the next one, and in a mempool
//! no further ahead than the look-ahead), expiry (not past, and not further ahead than the
//! validity horizon), then the body.
//! A transaction gets the first error that applies, so the same transaction against the same
//! state always gets the same code.
//!
//! Among a body's amount checks, a value that cannot be represented at all (`overflow`)
//! comes first, then the limits that keep the cycle's settlement representable
//! (`pool_limit`, then `cycle_limit`), then `high_over_debit_limit` (a high-priority
//! transfer that would wait though it is larger than its bank's debit limit), then
//! `queue_full`. The two settlement limits are why
//! [`crate::ledger::Ledger::apply_block`] can never fail at settlement: whatever would
//! overflow there is refused when the transaction runs.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::primitives::{AccountId, Amount, BankId, Hash};
use crate::tx::{BodyKind, Priority};

/// A rejected transaction's reason.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TxError {
    // --- stateless ---------------------------------------------------------------------
    /// The canonical encoding is larger than the limit.
    #[error("transaction is {bytes} bytes, the limit is {limit}")]
    Oversized {
        /// Encoded size.
        bytes: u64,
        /// [`crate::tx::MAX_TX_BYTES`].
        limit: u64,
    },
    /// Signed for another chain.
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChain {
        /// This chain's id.
        expected: String,
        /// The transaction's chain id.
        got: String,
    },
    /// The signer field is not a usable ed25519 public key.
    #[error("signer {0} is not a valid ed25519 public key")]
    InvalidSigner(AccountId),
    /// The signature does not verify against the signer's key.
    #[error("signature does not verify")]
    BadSignature,
    /// An amount of zero.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// The `end_to_end_id` is empty, too long or has characters outside printable ASCII.
    #[error("end_to_end_id must be 1 to 35 printable ASCII characters")]
    InvalidEndToEndId,
    /// The reference is too long or has control characters.
    #[error("reference must be at most 140 characters with no control characters")]
    InvalidReference,
    /// `OpenAccount` for a key that is not a usable ed25519 public key (it could never sign).
    #[error("owner {0} is not a valid ed25519 public key")]
    InvalidAccountKey(AccountId),
    /// A transfer from an account to itself.
    #[error("a transfer must go to another account")]
    SelfTransfer,
    /// A transfer's `not_before_ms` is not before its `reject_after_ms`.
    #[error("not_before_ms must be before reject_after_ms")]
    InvalidTerms,

    // --- stateful: signer, nonce, expiry -------------------------------------------------
    /// Nobody with this key may sign transactions (no account, no role).
    #[error("signer {0} has no account and no role on this chain")]
    UnknownSigner(AccountId),
    /// The nonce is not the signer's next one.
    #[error("nonce {got} is not the next nonce {expected}")]
    BadNonce {
        /// The signer's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// A pending transaction's nonce is further past the signer's next nonce than the
    /// chain's look-ahead (`max_nonce_lookahead` in the genesis).
    #[error("nonce {got} is more than {max_ahead} past the next nonce {expected}")]
    NonceTooFarAhead {
        /// The signer's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
        /// The look-ahead.
        max_ahead: u64,
    },
    /// The transaction's `valid_until_height` has passed.
    #[error("transaction was valid until height {valid_until_height}, this is height {height}")]
    Expired {
        /// The transaction's last valid height.
        valid_until_height: u64,
        /// The height it was checked at.
        height: u64,
    },

    /// The transaction's `valid_until_height` is further ahead than the chain's validity
    /// horizon (`max_validity_blocks` in the genesis).
    #[error("valid_until_height {valid_until_height} is past the latest allowed, {latest}")]
    ValidityTooLong {
        /// The transaction's last valid height.
        valid_until_height: u64,
        /// The latest last valid height allowed now.
        latest: u64,
    },

    // --- stateful: the body ------------------------------------------------------------
    /// The signer's role may not submit this kind of transaction.
    #[error("signer is not authorized to submit {0}")]
    Unauthorized(BodyKind),
    /// The bank does not exist.
    #[error("unknown bank {0}")]
    UnknownBank(BankId),
    /// The account does not exist.
    #[error("unknown account {0}")]
    UnknownAccount(AccountId),
    /// The bank operator acts on an account held at another bank.
    #[error("account {account} is held at bank {holder}, not at the signer's bank")]
    WrongBank {
        /// The account.
        account: AccountId,
        /// The bank that holds it.
        holder: BankId,
    },
    /// `OpenAccount` for a key that already has an account or a role.
    #[error("key {0} already has an account or a role")]
    AccountExists(AccountId),
    /// The account is frozen by a regulator.
    #[error("account {0} is frozen")]
    AccountFrozen(AccountId),
    /// `Freeze` of a frozen account.
    #[error("account {0} is already frozen")]
    AlreadyFrozen(AccountId),
    /// `Unfreeze` of an account that is not frozen.
    #[error("account {0} is not frozen")]
    NotFrozen(AccountId),
    /// The account's available balance is too small.
    #[error("insufficient funds: {available} available, {needed} needed (in minor units)")]
    InsufficientFunds {
        /// Available (not reserved) balance.
        available: Amount,
        /// Amount needed.
        needed: Amount,
    },
    /// The signer already used this `end_to_end_id`.
    #[error("end_to_end_id {0:?} was already used by this signer")]
    DuplicateEndToEndId(String),
    /// `Redeem` more than the pool holds beyond what the bank owes in this cycle.
    #[error(
        "bank {bank} can redeem at most {available} minor units (pool minus current net debit)"
    )]
    InsufficientPool {
        /// The bank.
        bank: BankId,
        /// Redeemable amount.
        available: Amount,
    },
    /// The sending bank's queue is full.
    #[error("bank {0}'s payment queue is full")]
    QueueFull(BankId),
    /// The payer has as many transfers queued as one payer may (`max_queued_per_payer`).
    #[error("payer {0} has as many transfers queued as one payer may")]
    PayerQueueFull(AccountId),
    /// A balance or total would exceed `u64::MAX` minor units.
    #[error("amount would overflow a balance or total")]
    Overflow,
    /// The bank's pool plus what it has received in the open cycle would exceed `u64::MAX`
    /// minor units, so the cycle's settlement could not credit the pool: an `Issue` into
    /// that pool, or a cross-bank transfer to that bank (also when a queued one is retried).
    #[error(
        "bank {bank}'s pool can take at most {available} more minor units in this cycle (pool plus received may not exceed the largest amount)"
    )]
    PoolLimit {
        /// The receiving bank.
        bank: BankId,
        /// What the pool and the cycle's receipts can still grow by.
        available: Amount,
    },
    /// The open cycle's gross total (the sum of every cross-bank transfer in it) would
    /// exceed `u64::MAX` minor units, so its settlement report could not state it.
    #[error("the cycle's gross total can grow by at most {available} minor units")]
    CycleLimit {
        /// What the cycle's gross total can still grow by.
        available: Amount,
    },
    /// A customer transfer, or a change of priority, asks for a priority it may not have
    /// (`urgent` is the settlement authority's and the operators' own).
    #[error("priority {0} is not allowed here (urgent is reserved for liquidity transfers)")]
    PriorityNotAllowed(Priority),
    /// A transfer's `reject_after_ms` is not after the block's time.
    #[error("reject_after_ms {reject_after_ms} is not after the block time {time_ms}")]
    RejectTime {
        /// The transfer's reject time.
        reject_after_ms: u64,
        /// The block's certified time.
        time_ms: u64,
    },
    /// A normal-priority customer transfer after the business day's customer cut-off and
    /// before its end of day.
    #[error("customer transfers are closed for the business day (cut-off passed); high priority still settles")]
    Cutoff,
    /// `CancelTransfer` or `Reprioritise` of a transfer that is not waiting in a queue:
    /// committed, released, refunded, cancelled, rejected, or never seen.
    #[error("transfer {0} is not queued (committed, released, refunded or unknown)")]
    NotQueued(Hash),
    /// `Reprioritise` to the priority the transfer already has.
    #[error("transfer {0} already has that priority")]
    SamePriority(Hash),
    /// A customer's high-priority transfer that would wait in its bank's queue although it
    /// is larger than the bank's whole debit limit (`min(net debit cap, pool)`): high
    /// transfers are released strictly first in first out, so it would hold up every later
    /// transfer of the bank's customers until the bank had received more than it sent by
    /// the excess (or until it expired; the cut-off keeps high transfers). The message names
    /// no amount: a customer does not read its bank's pool.
    ///
    /// Last of the variants: the canonical encoding numbers them in order, and stored
    /// receipts hold the number.
    #[error("a high-priority transfer larger than bank {0}'s debit limit cannot wait in its queue (it would hold up the bank's other payments): send it with normal priority, or in parts")]
    HighOverDebitLimit(BankId),
}

impl TxError {
    /// The stable code for this rejection (shown by the API and the wallet).
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Oversized { .. } => "oversized",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::InvalidSigner(_) => "invalid_signer",
            TxError::BadSignature => "bad_signature",
            TxError::ZeroAmount => "zero_amount",
            TxError::InvalidEndToEndId => "invalid_end_to_end_id",
            TxError::InvalidReference => "invalid_reference",
            TxError::InvalidAccountKey(_) => "invalid_account_key",
            TxError::SelfTransfer => "self_transfer",
            TxError::UnknownSigner(_) => "unknown_signer",
            TxError::BadNonce { .. } => "bad_nonce",
            TxError::NonceTooFarAhead { .. } => "nonce_too_far_ahead",
            TxError::Expired { .. } => "expired",
            TxError::ValidityTooLong { .. } => "validity_too_long",
            TxError::Unauthorized(_) => "unauthorized",
            TxError::UnknownBank(_) => "unknown_bank",
            TxError::UnknownAccount(_) => "unknown_account",
            TxError::WrongBank { .. } => "wrong_bank",
            TxError::AccountExists(_) => "account_exists",
            TxError::AccountFrozen(_) => "account_frozen",
            TxError::AlreadyFrozen(_) => "already_frozen",
            TxError::NotFrozen(_) => "not_frozen",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::DuplicateEndToEndId(_) => "duplicate_end_to_end_id",
            TxError::InsufficientPool { .. } => "insufficient_pool",
            TxError::QueueFull(_) => "queue_full",
            TxError::PayerQueueFull(_) => "payer_queue_full",
            TxError::Overflow => "overflow",
            TxError::PoolLimit { .. } => "pool_limit",
            TxError::CycleLimit { .. } => "cycle_limit",
            TxError::InvalidTerms => "invalid_terms",
            TxError::PriorityNotAllowed(_) => "priority_not_allowed",
            TxError::RejectTime { .. } => "reject_time",
            TxError::Cutoff => "cutoff",
            TxError::NotQueued(_) => "not_queued",
            TxError::SamePriority(_) => "same_priority",
            TxError::HighOverDebitLimit(_) => "high_over_debit_limit",
        }
    }

    /// True for errors found without looking at the ledger state. A block containing a
    /// transaction with such an error is invalid as a whole.
    pub fn is_stateless(&self) -> bool {
        matches!(
            self,
            TxError::Oversized { .. }
                | TxError::WrongChain { .. }
                | TxError::InvalidSigner(_)
                | TxError::BadSignature
                | TxError::ZeroAmount
                | TxError::InvalidEndToEndId
                | TxError::InvalidReference
                | TxError::InvalidAccountKey(_)
                | TxError::SelfTransfer
                | TxError::InvalidTerms
        )
    }

    /// The JSON shape the API and the wallet use for a rejection.
    pub fn to_view(&self) -> ErrorView {
        ErrorView {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

/// A rejection as shown to clients: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorView {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}
