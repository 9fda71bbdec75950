//! What executing a block produces: receipts, queue releases and expiries, settlement
//! reports. These are the types the node stores and serves, and the wallet reads.

use serde::{Deserialize, Serialize};

use crate::error::TxError;
use crate::primitives::{AccountId, Amount, BankId, Hash};

/// A transaction's outcome in the block that included it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Executed: balances changed in this block.
    Committed,
    /// A cross-bank transfer that did not fit the sending bank's net debit cap: the
    /// sender's funds are reserved and the transfer waits in the bank's queue.
    Queued {
        /// The last height at whose end it may still be released; refunded after.
        expires_at_height: u64,
    },
    /// Not executed; nothing changed but the signer's nonce.
    Rejected {
        /// Why.
        error: TxError,
    },
}

/// The receipt of one transaction in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The transaction's hash.
    pub tx_hash: Hash,
    /// The block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// What happened.
    pub outcome: Outcome,
}

/// A queued transfer leaving the queue: released (executed) or expired (refunded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueEvent {
    /// The transfer's transaction hash.
    pub tx_hash: Hash,
    /// Payer.
    pub from: AccountId,
    /// Payee.
    pub to: AccountId,
    /// Payer's bank.
    pub from_bank: BankId,
    /// Payee's bank.
    pub to_bank: BankId,
    /// Amount.
    pub amount: Amount,
    /// Height at which it was queued.
    pub queued_at_height: u64,
    /// Height at whose end it left the queue.
    pub height: u64,
}

/// One bank's line in a settlement report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPosition {
    /// The bank.
    pub bank: BankId,
    /// Total the bank's customers sent to other banks in the cycle.
    pub sent: Amount,
    /// Total the bank's customers received from other banks in the cycle.
    pub received: Amount,
    /// Multilateral net position: `received − sent` (negative: the bank pays).
    pub net: i128,
    /// Pool before settlement.
    pub pool_before: Amount,
    /// Pool after settlement: `pool_before + net`.
    pub pool_after: Amount,
}

/// The result of closing a settlement cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementReport {
    /// Cycle number (the first cycle is 1).
    pub cycle: u64,
    /// First height of the cycle.
    pub start_height: u64,
    /// Height at whose end the cycle closed.
    pub height: u64,
    /// Why it closed.
    pub trigger: SettlementTrigger,
    /// Every bank, sorted by id.
    pub banks: Vec<BankPosition>,
    /// Sum of all cross-bank transfers in the cycle (= sum of `sent`).
    pub gross_total: Amount,
    /// Money actually moved between pools (= sum of positive `net`).
    pub net_total: Amount,
}

/// Why a cycle closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SettlementTrigger {
    /// The height is a multiple of `cycle_blocks`.
    Schedule,
    /// A `SettleCycle` from the settlement authority was in the block.
    Authority,
    /// The business day's end of day.
    EndOfDay,
}

/// Why a queued transfer left its queue without settling, other than its height expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Externally tagged: the store encodes outcomes with bincode, which cannot read an
// internally tagged enum.
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Cancelled by its payer or its bank's operator (`CancelTransfer`).
    Cancelled {
        /// Who signed the cancellation.
        by: AccountId,
    },
    /// Still queued in the first block at or after its `reject_after_ms`.
    RejectTime,
    /// A normal-priority customer transfer still queued at the customer cut-off.
    Cutoff,
}

impl DropReason {
    /// The transfer's fate, as the API and the wallet name it.
    pub fn fate(&self) -> &'static str {
        match self {
            DropReason::Cancelled { .. } => "cancelled",
            DropReason::RejectTime => "reject_time",
            DropReason::Cutoff => "cutoff",
        }
    }
}

/// A queued transfer refunded to its payer for a [`DropReason`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DroppedTransfer {
    /// The transfer (its `height` is the block that refunded it).
    pub transfer: QueueEvent,
    /// Why.
    pub reason: DropReason,
}

/// A queued transfer whose reject time is near.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectWarning {
    /// The transfer, still queued (its `height` is the warning block's).
    pub transfer: QueueEvent,
    /// When it will be rejected if still unsettled.
    pub reject_after_ms: u64,
}

/// What the liquidity-saving pass did in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridlockRun {
    /// Queued payments offered to it (eligible now).
    pub offered: u32,
    /// Settled together by it: in the block's `released`, the `settled` entries that follow
    /// the ordinary retry's releases (releases after them are the retry's that follows the
    /// pass).
    pub settled: u32,
    /// Their total value, minor units (at most the cycle's gross total, so a `u64`).
    pub value: u64,
    /// True if every offered payment settled at once ("all or nothing").
    pub all_at_once: bool,
    /// Whether the authority asked for it in this block.
    pub requested: bool,
}

/// One bank's line in a business day's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayBankStats {
    /// Transfers its customers paid that settled in the day (committed or released).
    pub settled_count: u64,
    /// Their value, minor units (saturating at `u64::MAX`, far beyond any day's business;
    /// JSON has no exact integers beyond it).
    pub settled_value: u64,
    /// The most transfers its queue held at the end of a block of the day.
    pub queued_peak: u32,
    /// Transfers rejected at the customer cut-off.
    pub cutoff_rejected_count: u64,
    /// Their value, minor units (saturating, as `settled_value`).
    pub cutoff_rejected_value: u64,
    /// The longest a transfer released in the day waited in the queue, in milliseconds of
    /// block time.
    pub longest_wait_ms: u64,
}

/// A closed business day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayReport {
    /// Business day number (the first day is 1).
    pub day: u64,
    /// Local date of the end of day, `YYYY-MM-DD`.
    pub date: String,
    /// First height of the day.
    pub start_height: u64,
    /// Height whose block closed it (the first at or after the end of day).
    pub height: u64,
    /// That block's time.
    pub closed_at_ms: u64,
    /// The settlement cycle that block closed.
    pub cycle: u64,
    /// Every bank, sorted by id.
    pub banks: Vec<DayBankLine>,
}

/// One bank's line in a [`DayReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayBankLine {
    /// The bank.
    pub bank: BankId,
    /// Its day.
    pub stats: DayBankStats,
}

/// Everything one block did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    /// The block height.
    pub height: u64,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Queued transfers released (executed) at the end of this block, in release order.
    pub released: Vec<QueueEvent>,
    /// Queued transfers expired (refunded) at the end of this block.
    pub expired: Vec<QueueEvent>,
    /// Queued transfers refunded in this block for another reason: cancelled, past their
    /// reject time, rejected at the cut-off.
    #[serde(default)]
    pub dropped: Vec<DroppedTransfer>,
    /// Queued transfers whose reject time came within the chain's warning lead
    /// (`reject_warning_ms`) in this block: each is warned about once.
    #[serde(default)]
    pub warned: Vec<RejectWarning>,
    /// The liquidity-saving pass, if it ran and settled something.
    #[serde(default)]
    pub gridlock: Option<GridlockRun>,
    /// The business day closed by this block, if any.
    #[serde(default)]
    pub day_report: Option<DayReport>,
    /// The settlement report, if a cycle closed at this block.
    pub settlement: Option<SettlementReport>,
    /// The state root after this block.
    pub state_root: Hash,
}
