//! The JSON shapes of the node's HTTP API, beside the domain types they show, so that the
//! node serves and the wallet reads one definition. Amounts are decimal strings formatted
//! with the chain's `decimals`; ids and hashes are hex.

use serde::{Deserialize, Serialize};

use crate::ledger::Account;
use crate::outcome::Receipt;
use crate::primitives::{AccountId, Amount, BankId, Hash};

/// `GET /v1/accounts/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account id.
    pub id: AccountId,
    /// The bank that holds it.
    pub bank: BankId,
    /// Available balance.
    pub balance: String,
    /// Reserved by queued transfers.
    pub reserved: String,
    /// The next nonce to sign with.
    pub nonce: u64,
    /// Frozen by a regulator.
    pub frozen: bool,
}

impl AccountView {
    /// The view of `account`.
    pub fn new(id: AccountId, account: &Account, decimals: u8) -> Self {
        Self {
            id,
            bank: account.bank.clone(),
            balance: account.balance.format(decimals),
            reserved: account.reserved.format(decimals),
            nonce: account.nonce,
            frozen: account.frozen,
        }
    }
}

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In the mempool.
    Pending,
    /// Executed (directly, or released from a queue).
    Committed,
    /// Waiting in its bank's queue; funds reserved.
    Queued,
    /// Included but rejected.
    Rejected,
    /// Queued, then refunded when its time ran out.
    Expired,
    /// Not known to this node.
    Unknown,
}

/// `GET /v1/transactions/{hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatusView {
    /// The transaction hash.
    pub hash: Hash,
    /// Where it stands.
    pub status: TxStatus,
    /// The height whose block included it (for queued transfers, not the release height).
    pub height: Option<u64>,
    /// For released or expired queued transfers: the height at which that happened.
    pub settled_height: Option<u64>,
    /// Its receipt, once included.
    pub receipt: Option<Receipt>,
}

/// `POST /v1/transactions` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitView {
    /// The accepted transaction's hash.
    pub hash: Hash,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// This node's name.
    pub node: String,
    /// `validator` or `observer`.
    pub role: String,
    /// Last committed height.
    pub height: u64,
    /// Its block hash.
    pub block_hash: Hash,
    /// State root after it.
    pub state_root: Hash,
    /// Pending transactions.
    pub mempool_size: usize,
    /// Connected peers.
    pub peers: usize,
    /// Currency code.
    pub currency: String,
    /// Minor-unit digits.
    pub decimals: u8,
}

/// `GET /v1/banks/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankView {
    /// The bank id.
    pub id: BankId,
    /// Pool balance.
    pub pool: String,
    /// Net debit cap.
    pub net_debit_cap: String,
    /// Current net position in this cycle (`received − sent`, signed decimal).
    pub position: String,
    /// Transfers waiting in its queue.
    pub queued: usize,
}

impl BankView {
    /// The view of a bank.
    pub fn new(id: BankId, bank: &crate::ledger::Bank, queued: usize, decimals: u8) -> Self {
        Self {
            id,
            pool: bank.pool.format(decimals),
            net_debit_cap: bank.net_debit_cap.format(decimals),
            position: Amount::format_signed(bank.position(), decimals),
            queued,
        }
    }
}
