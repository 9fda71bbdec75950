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
    /// The settlement report, if a cycle closed at this block.
    pub settlement: Option<SettlementReport>,
    /// The state root after this block.
    pub state_root: Hash,
}
