//! The JSON shapes of the node's HTTP API, beside the domain types they show, so that the
//! node serves and the wallet reads one definition. Amounts are decimal strings formatted
//! with the chain's `decimals`; ids and hashes are hex.

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockHeader};
use crate::ledger::{Account, AccountProof};
use crate::outcome::{
    BlockOutcome, DayReport, DropReason, GridlockRun, QueueEvent, Receipt, SettlementReport,
    SettlementTrigger,
};
use crate::primitives::{AccountId, Amount, BankId, Hash};

/// `GET /v1/accounts/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Queued, then cancelled by its payer or its bank's operator, and refunded.
    Cancelled,
    /// Queued, then refunded at its `reject_after_ms`.
    RejectTime,
    /// Queued (normal priority), then refunded at the business day's customer cut-off.
    Cutoff,
    /// Not known to this node.
    Unknown,
}

/// `GET /v1/transactions/{hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxStatusView {
    /// The transaction hash.
    pub hash: Hash,
    /// Where it stands.
    pub status: TxStatus,
    /// The height whose block included it (for queued transfers, not the release height).
    pub height: Option<u64>,
    /// For queued transfers that left the queue (released, expired, cancelled, rejected):
    /// the height at which that happened.
    pub settled_height: Option<u64>,
    /// Its receipt, once included. Left out of a rejected transaction's view for a caller
    /// who may not read its error as stored: the payee and the payee's bank's operator (the
    /// error names what the payer lacked), and anyone who may not read the amounts it
    /// carries (`pool_limit` holds the receiving bank's pool, `cycle_limit` the cycle's
    /// gross total).
    pub receipt: Option<Receipt>,
    /// Why it was rejected, for a caller who may know: its payer, the payer's bank's
    /// operator and those who see everything. The code, and a message without the figures
    /// the caller may not read (the payer of a `pool_limit` rejection reads the code, not
    /// the other bank's pool). `None` for anything not rejected, and for its payee and the
    /// payee's bank's operator.
    #[serde(default)]
    pub rejection: Option<crate::error::ErrorView>,
}

/// `POST /v1/transactions` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitView {
    /// The accepted transaction's hash.
    pub hash: Hash,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The checkpoint the last start rebuilt the ledger from (0: the genesis).
    #[serde(default)]
    pub restored_from_height: u64,
    /// Blocks the last start re-executed after it.
    #[serde(default)]
    pub replayed_blocks: u64,
    /// The lowest height whose block this node serves (1 unless pruned or joined by
    /// state sync; 0 before the first block).
    #[serde(default)]
    pub earliest_height: u64,
    /// The configured halt height: the node commits it and stops.
    #[serde(default)]
    pub halt_height: Option<u64>,
}

/// `GET /v1/health`: whether the node commits, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthView {
    /// `ok` (200), `stalled` (503: no commit for too long, or no quorum reachable), or
    /// `halted` (503: at the configured halt height).
    pub status: String,
    /// Why it is not `ok`, one sentence each (empty when `ok`).
    pub reasons: Vec<String>,
    /// `validator` or `observer`.
    pub role: String,
    /// Last committed height.
    pub height: u64,
    /// Seconds since this node last committed a block (or started, before its first).
    pub seconds_since_last_commit: f64,
    /// After this many seconds without a commit the node reports `stalled`.
    pub stall_after_seconds: f64,
    /// The consensus round this validator is in (0: the first round of the height, or an
    /// observer).
    pub round: u64,
    /// Validators reachable, the node itself included if it is one.
    pub validators_reachable: usize,
    /// Validators in the consortium.
    pub validators: usize,
    /// Validators needed for a quorum (an observer needs one to follow).
    pub validators_needed: usize,
    /// Pending transactions in the mempool.
    pub mempool_size: usize,
    /// The mempool's capacity.
    pub mempool_capacity: usize,
    /// Payments waiting in queues, over all banks; shown to those who may read the
    /// node's metrics (nodes, regulators, and callers on the node's machine where it
    /// allows them), `null` to others: with few banks, the totals tell one bank another's
    /// liquidity.
    pub queued: Option<usize>,
    /// The longest bank queue; shown as `queued` is.
    pub longest_queue: Option<usize>,
    /// The capacity of each bank's queue.
    pub queue_capacity: u64,
}

/// `GET /v1/banks/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// One bank's line of [`CycleView`] (amounts as decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BankPositionView {
    /// The bank.
    pub bank: BankId,
    /// Total its customers sent to other banks in the cycle.
    pub sent: String,
    /// Total its customers received from other banks in the cycle.
    pub received: String,
    /// Multilateral net position `received − sent` (signed decimal; negative: it pays).
    pub net: String,
    /// Pool before settlement.
    pub pool_before: String,
    /// Pool after settlement (`pool_before + net`).
    pub pool_after: String,
}

/// `GET /v1/cycles/{n}` and `/v1/cycles/latest`: a closed cycle's settlement report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CycleView {
    /// Cycle number (the first is 1).
    pub cycle: u64,
    /// First height of the cycle.
    pub start_height: u64,
    /// Height at whose end it closed.
    pub height: u64,
    /// Why it closed.
    pub trigger: SettlementTrigger,
    /// Every bank, by id.
    pub banks: Vec<BankPositionView>,
    /// Sum of all cross-bank transfers in the cycle.
    pub gross_total: String,
    /// Money moved between pools (sum of the positive net positions).
    pub net_total: String,
}

impl CycleView {
    /// The view of a settlement report.
    pub fn new(report: &SettlementReport, decimals: u8) -> Self {
        Self {
            cycle: report.cycle,
            start_height: report.start_height,
            height: report.height,
            trigger: report.trigger,
            banks: report
                .banks
                .iter()
                .map(|line| BankPositionView {
                    bank: line.bank.clone(),
                    sent: line.sent.format(decimals),
                    received: line.received.format(decimals),
                    net: Amount::format_signed(line.net, decimals),
                    pool_before: line.pool_before.format(decimals),
                    pool_after: line.pool_after.format(decimals),
                })
                .collect(),
            gross_total: report.gross_total.format(decimals),
            net_total: report.net_total.format(decimals),
        }
    }
}

/// `GET /v1/blocks/{height}` and `/v1/blocks/latest`. Generic over the certificate type so
/// that this crate stays free of the consensus crate: the node and the wallet use
/// `BlockView<interpool_consensus::CommitCertificate>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockView<C> {
    /// The block hash (the digest its certificate names).
    pub hash: Hash,
    /// The header.
    pub header: BlockHeader,
    /// The transactions' hashes, in execution order.
    pub transactions: Vec<Hash>,
    /// The state root after this block (certified by the next block's header).
    pub state_root: Hash,
    /// The commit certificate: a quorum of validators' COMMIT signatures over `hash`.
    pub certificate: C,
}

/// `GET /v1/accounts/{id}/proof`: an account's state with a Merkle proof against the state
/// root after block `height`, and what certifies that root: block `height + 1`'s header (it
/// carries the root as `previous_state_root`) and the digest of its transactions, with its
/// commit certificate. A client that holds the genesis validator set trusts no node: it
/// checks the certificate over the block's hash (from the header and the digest), the root
/// in the header, and the proof against the root. No transaction of the block is shown, so
/// a customer may have its own account's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountProofView<C> {
    /// The account's state (absent: the proof shows it does not exist) and its proof.
    pub proof: AccountProof,
    /// The height after which the state holds.
    pub height: u64,
    /// Block `height + 1`'s head in hex: its header's length (4 bytes, big-endian) and
    /// canonical encoding. The header's `previous_state_root` is the root the proof is
    /// against.
    pub certifying_header: String,
    /// SHA-256 of block `height + 1`'s transactions (their canonical encoding, the rest of
    /// the block). With the head it gives the block's hash
    /// ([`crate::block::Block::hash_of_parts`]), which the certificate signs; the
    /// transactions themselves, everyone's transfers, are not shown.
    pub certifying_transactions_digest: Hash,
    /// Its commit certificate.
    pub certificate: C,
}

/// `GET /v1/accounts/{id}/transactions`: one page of an account's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountHistoryView {
    /// The account.
    pub account: AccountId,
    /// Transactions it signed or received, newest first, each with its current status.
    pub transactions: Vec<TxStatusView>,
    /// Pass as `?before=` for the next (older) page; absent on the last page.
    pub next: Option<String>,
}

/// What a committed block did, as `GET /v1/events` streams it (one SSE event each; the SSE
/// id is the cursor `height:index`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventView {
    /// A transaction was included (committed, queued or rejected).
    Transaction {
        /// Its receipt.
        receipt: Receipt,
        /// The accounts whose balances it changed or would have changed (signer, payee).
        accounts: Vec<AccountId>,
    },
    /// A transaction was included and rejected, as a stream tells it to a caller who may
    /// not read its receipt (which holds the error as stored: what the payer lacked, or
    /// another bank's pool): its place and parties, and why it was rejected for a caller
    /// who may know (its payer and the payer's bank's operator: the code and a message
    /// without the figures they may not read), as `GET /v1/transactions/{hash}` shows it.
    /// The node's stream sends it in place of that `transaction` event;
    /// [`EventView::of_block`] never makes one.
    Rejected {
        /// The transaction's hash.
        tx_hash: Hash,
        /// The block height.
        height: u64,
        /// Its position in the block.
        index: u32,
        /// The accounts it would have changed (signer, payee).
        accounts: Vec<AccountId>,
        /// Why, for a caller who may know; `None` for its payee and the payee's operator.
        #[serde(default)]
        rejection: Option<crate::error::ErrorView>,
    },
    /// A queued transfer was released (executed) at the end of a block.
    Released {
        /// What left the queue.
        transfer: QueueEvent,
    },
    /// A queued transfer expired and was refunded.
    Expired {
        /// What left the queue.
        transfer: QueueEvent,
    },
    /// A settlement cycle closed.
    CycleClosed {
        /// The report.
        report: CycleView,
    },
    /// A queued transfer was refunded: cancelled, past its reject time, or at the cut-off.
    Dropped {
        /// What left the queue.
        transfer: QueueEvent,
        /// Why.
        reason: DropReason,
    },
    /// A queued transfer's reject time is within the chain's warning lead.
    RejectWarning {
        /// The transfer, still queued (`height` is this block's).
        transfer: QueueEvent,
        /// When it will be rejected if still unsettled.
        reject_after_ms: u64,
    },
    /// The liquidity-saving pass settled queued transfers together (they are the block's
    /// last `released` events before it).
    GridlockResolved {
        /// What it did.
        run: GridlockRun,
    },
    /// A business day ended.
    DayClosed {
        /// Its report.
        report: DayReport,
    },
}

impl EventView {
    /// Every event of one committed block, in order: one per receipt (block order), then
    /// the queue releases, the expiries, and the cycle close if any. An event's index in
    /// this list is the second half of its cursor `(height, index)`.
    pub fn of_block(block: &Block, outcome: &BlockOutcome, decimals: u8) -> Vec<EventView> {
        let mut events = Vec::with_capacity(
            outcome
                .receipts
                .len()
                .saturating_add(outcome.released.len())
                .saturating_add(outcome.expired.len())
                .saturating_add(1),
        );
        for (receipt, tx) in outcome.receipts.iter().zip(&block.transactions) {
            events.push(EventView::Transaction {
                receipt: receipt.clone(),
                accounts: tx.tx.parties(),
            });
        }
        events.extend(
            outcome
                .warned
                .iter()
                .map(|warning| EventView::RejectWarning {
                    transfer: warning.transfer.clone(),
                    reject_after_ms: warning.reject_after_ms,
                }),
        );
        events.extend(outcome.dropped.iter().map(|dropped| EventView::Dropped {
            transfer: dropped.transfer.clone(),
            reason: dropped.reason.clone(),
        }));
        events.extend(outcome.released.iter().map(|transfer| EventView::Released {
            transfer: transfer.clone(),
        }));
        if let Some(run) = &outcome.gridlock {
            events.push(EventView::GridlockResolved { run: run.clone() });
        }
        events.extend(outcome.expired.iter().map(|transfer| EventView::Expired {
            transfer: transfer.clone(),
        }));
        if let Some(report) = &outcome.settlement {
            events.push(EventView::CycleClosed {
                report: CycleView::new(report, decimals),
            });
        }
        if let Some(report) = &outcome.day_report {
            events.push(EventView::DayClosed {
                report: report.clone(),
            });
        }
        events
    }

    /// Whether a client watching `account` wants this event (cycle closes concern banks,
    /// not accounts).
    pub fn concerns(&self, account: &AccountId) -> bool {
        match self {
            EventView::Transaction { accounts, .. } | EventView::Rejected { accounts, .. } => {
                accounts.contains(account)
            }
            EventView::Released { transfer }
            | EventView::Expired { transfer }
            | EventView::Dropped { transfer, .. }
            | EventView::RejectWarning { transfer, .. } => {
                transfer.from == *account || transfer.to == *account
            }
            EventView::CycleClosed { .. }
            | EventView::GridlockResolved { .. }
            | EventView::DayClosed { .. } => false,
        }
    }

    /// The queued transfer this event is about, if any.
    pub fn transfer(&self) -> Option<&QueueEvent> {
        match self {
            EventView::Released { transfer }
            | EventView::Expired { transfer }
            | EventView::Dropped { transfer, .. }
            | EventView::RejectWarning { transfer, .. } => Some(transfer),
            EventView::Transaction { .. }
            | EventView::Rejected { .. }
            | EventView::CycleClosed { .. }
            | EventView::GridlockResolved { .. }
            | EventView::DayClosed { .. } => None,
        }
    }
}

/// `GET /v1/signers/{id}`: any key that may sign (customer account or official) and the
/// next nonce it signs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignerView {
    /// The key.
    pub id: AccountId,
    /// The next nonce by the committed state.
    pub nonce: u64,
    /// The nonce to sign the next transaction with: after the signer's transactions that are
    /// pending in this node's mempool with consecutive nonces (equal to `nonce` when none is).
    pub pending_nonce: u64,
    /// `customer`, `authority`, `regulator` or `operator`.
    pub role: String,
    /// For customers and operators: their bank.
    pub bank: Option<BankId>,
}

impl SignerView {
    /// What `ledger` knows of signer `id` (`None` for a key that may not sign).
    pub fn new(ledger: &crate::Ledger, id: AccountId) -> Option<Self> {
        if let Some(account) = ledger.account(&id) {
            return Some(Self {
                id,
                nonce: account.nonce,
                pending_nonce: account.nonce,
                role: "customer".into(),
                bank: Some(account.bank.clone()),
            });
        }
        let official = ledger.official(&id)?;
        let (role, bank) = match &official.role {
            crate::ledger::Role::Operator(bank) => ("operator", Some(bank.clone())),
            crate::ledger::Role::Authority => ("authority", None),
            crate::ledger::Role::Regulator => ("regulator", None),
        };
        Some(Self {
            id,
            nonce: official.nonce,
            pending_nonce: official.nonce,
            role: role.into(),
            bank,
        })
    }

    /// With `pending_nonce` as a mempool reports it (never below the committed `nonce`).
    pub fn with_pending_nonce(self, pending_nonce: u64) -> Self {
        Self {
            pending_nonce: pending_nonce.max(self.nonce),
            ..self
        }
    }
}
