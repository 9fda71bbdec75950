//! The ledger state machine: customer accounts, bank pools, net debit positions, payment
//! queues, multilateral netting and settlement (DESIGN.md, "The payment model").
//!
//! [`Ledger::apply_block`] is the only way state changes, and it is deterministic: the same
//! blocks applied to the same genesis give the same receipts, reports and state root on any
//! machine. Order of work in a block:
//!
//! 1. each transaction in block order: signer and nonce, expiry, then the body's rules; an
//!    included transaction from a known signer with the right nonce consumes that nonce
//!    whatever its outcome;
//! 0. queued transfers whose `not_before_ms` the block's time reached become due;
//! 1. (above);
//! 2. queued transfers still unsettled at their `reject_after_ms` are refunded
//!    (`reject_time`), and at the business day's customer cut-off every queued normal
//!    transfer (`cutoff`);
//! 3. queued transfers are retried, bank by bank in id order, each queue by priority
//!    (urgent, high, normal; urgent and high strictly first in first out, while in the
//!    normal class a later transfer that fits may pass an earlier one that does not; no
//!    normal transfer passes a higher one of its bank), until nothing more fits;
//! 4. the liquidity-saving pass ([`crate::liquidity`]) settles together what offsets among
//!    the remaining queues, then step 3 runs again;
//! 5. queued transfers whose last height is reached are refunded;
//! 6. if the height is a multiple of `cycle_blocks`, the block held a `SettleCycle`, or
//!    the block reached the business day's end of day, the cycle closes: net positions are
//!    computed from the cycle's obligations and each pool moves once by its position (at the
//!    end of day, the day's report is kept too);
//! 7. the state root is updated from the entries the block touched.

use std::collections::{BTreeMap, BTreeSet};

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

use crate::calendar::BusinessDay;
use crate::codec;
use crate::error::TxError;
use crate::genesis::{Genesis, GenesisError, GridlockPass};
use crate::outcome::{
    BankPosition, BlockOutcome, DayBankStats, DayReport, DropReason, DroppedTransfer, GridlockRun,
    Outcome, QueueEvent, Receipt, RejectWarning, SettlementReport, SettlementTrigger,
};
use crate::primitives::{sha256, AccountId, Amount, BankId, Hash};
use crate::smt::{Proof, ProofError, SparseMerkleTree};
use crate::tx::{end_to_end_key, Body, BodyKind, Priority, TransferTerms, VerifiedTransaction};
use keymap::KeyMap;

mod archive;
mod day;
mod keymap;
mod queues;
mod snapshot;
pub use archive::{ArchiveAnswers, EndToEndArchive};
pub use snapshot::{SnapshotError, StateEntry, MAX_ENTRY_BYTES};

/// `a + b` of two `u64`s, widened: cannot overflow.
#[allow(clippy::arithmetic_side_effects)] // 2 · (2^64 − 1) < 2^128
fn wide_sum(a: u64, b: u64) -> u128 {
    u128::from(a) + u128::from(b)
}

/// `a − b` of two `u64`s, widened and signed: cannot overflow.
#[allow(clippy::arithmetic_side_effects)] // |a − b| < 2^64 < 2^127
fn signed_difference(a: u64, b: u64) -> i128 {
    i128::from(a) - i128::from(b)
}

/// Adds to a cumulative total of amounts (flows, issued, redeemed, sums in the invariant
/// checks). Each addition is at most 2^65, one per transaction or account, so reaching
/// 2^128 takes more than 2^62 of them: beyond any chain's life. Overflow would be a broken
/// invariant, not input.
#[allow(clippy::expect_used)] // unreachable: see above
fn accumulate(total: &mut u128, amount: u128) {
    *total = total
        .checked_add(amount)
        .expect("a u128 total of amounts needs more than 2^62 additions to overflow");
}

/// The successor of a counter that grows by one per transaction or block (nonces, queue
/// sequence numbers, cycle numbers, heights): 2^64 of those are never executed.
#[allow(clippy::expect_used)] // unreachable: see above
fn successor(counter: u64) -> u64 {
    counter
        .checked_add(1)
        .expect("a counter that grows by one per transaction or block never reaches 2^64")
}

/// The chain's parameters, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Chain id.
    pub chain_id: String,
    /// Currency code.
    pub currency: String,
    /// Minor-unit digits.
    pub decimals: u8,
    /// Cycle length in blocks.
    pub cycle_blocks: u64,
    /// Blocks a transfer may stay queued.
    pub queue_expiry_blocks: u64,
    /// Queue capacity per bank.
    pub max_queue_per_bank: u32,
    /// Blocks an `end_to_end_id` is remembered.
    pub duplicate_window_blocks: u64,
    /// How far past the next nonce a pending transaction's nonce may be.
    pub max_nonce_lookahead: u64,
    /// How far past the current height a `valid_until_height` may be.
    pub max_validity_blocks: u64,
    /// Most queued transfers of one payer.
    pub max_queued_per_payer: u32,
    /// How long before its reject time a queued transfer is warned about.
    pub reject_warning_ms: u64,
    /// The business-day calendar, if any.
    pub business_day: Option<BusinessDay>,
    /// When the liquidity-saving pass runs.
    pub gridlock_pass: GridlockPass,
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// The bank that holds it.
    pub bank: BankId,
    /// Available balance.
    pub balance: Amount,
    /// Funds reserved by the owner's queued transfers.
    pub reserved: Amount,
    /// The owner's next nonce.
    pub nonce: u64,
    /// Frozen by a regulator: cannot send or be withdrawn from.
    pub frozen: bool,
}

/// Cumulative customer money flows at one bank since genesis; invariant 2 balances against
/// them. `u128`, so they cannot overflow in any realistic lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerFlows {
    /// Deposits, opening balances included.
    pub deposited: u128,
    /// Withdrawals.
    pub withdrawn: u128,
    /// Transfers from other banks' customers.
    pub transferred_in: u128,
    /// Transfers to other banks' customers.
    pub transferred_out: u128,
}

/// A member bank's settlement-layer state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bank {
    /// Operator key.
    pub operator: AccountId,
    /// Pool balance (settlement money).
    pub pool: Amount,
    /// Net debit cap.
    pub net_debit_cap: Amount,
    /// Sent to other banks in the current cycle.
    pub sent: Amount,
    /// Received from other banks in the current cycle.
    pub received: Amount,
    /// Customer money flows since genesis.
    pub flows: CustomerFlows,
}

impl Bank {
    /// Current net debit (`sent − received`, or zero when the bank is a net receiver).
    pub fn net_debit(&self) -> Amount {
        self.sent.checked_sub(self.received).unwrap_or(Amount::ZERO)
    }

    /// Current multilateral position (`received − sent`).
    pub fn position(&self) -> i128 {
        signed_difference(self.received.0, self.sent.0)
    }

    /// The most the bank's net debit may reach: `min(cap, pool)`.
    pub fn debit_limit(&self) -> Amount {
        self.net_debit_cap.min(self.pool)
    }

    /// True if sending `amount` more keeps the net debit within [`Self::debit_limit`].
    pub fn can_send(&self, amount: Amount) -> bool {
        wide_sum(self.sent.0, amount.0) <= wide_sum(self.received.0, self.debit_limit().0)
    }

    /// How much the pool plus this cycle's receipts may still grow: `u64::MAX − pool −
    /// received`. The cycle's settlement credits at most `received` to the pool, so while
    /// this is never negative the settlement cannot overflow the pool (an `Issue` or a
    /// transfer that would take it below zero is refused, `pool_limit`).
    pub fn pool_headroom(&self) -> Amount {
        Amount(
            u64::MAX
                .checked_sub(self.pool.0)
                .and_then(|room| room.checked_sub(self.received.0))
                .unwrap_or(0),
        )
    }
}

/// What an official key may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Operator of a bank.
    Operator(BankId),
    /// The settlement authority.
    Authority,
    /// A regulator.
    Regulator,
}

/// A key with a role (not a customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Official {
    /// Its role.
    pub role: Role,
    /// Its next nonce.
    pub nonce: u64,
}

/// A cross-bank transfer waiting for room under its bank's net debit cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedTransfer {
    /// The transfer's transaction hash.
    pub tx_hash: Hash,
    /// Payer (its funds are reserved).
    pub from: AccountId,
    /// Payee.
    pub to: AccountId,
    /// Payee's bank.
    pub to_bank: BankId,
    /// Amount.
    pub amount: Amount,
    /// Height it was queued at.
    pub queued_at_height: u64,
    /// Last height at whose end it may be released.
    pub expires_at_height: u64,
    /// Release priority.
    pub priority: Priority,
    /// Not released in a block timed before this.
    pub not_before_ms: Option<u64>,
    /// Refunded (`reject_time`) in the first block timed at or after this.
    pub reject_after_ms: Option<u64>,
    /// Time of the block it was queued in.
    pub queued_at_ms: u64,
}

/// Issued and redeemed settlement money since genesis (invariant 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Issued, opening pools included.
    pub issued: u128,
    /// Redeemed.
    pub redeemed: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cycle {
    number: u64,
    start_height: u64,
    /// Gross obligations `(debtor bank, creditor bank) → amount` in this cycle.
    obligations: BTreeMap<(BankId, BankId), Amount>,
}

/// Names one entry of the state; the state tree's key is the hash of its encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StateKey {
    /// A customer account.
    Account(AccountId),
    /// A bank.
    Bank(BankId),
    /// An official key.
    Official(AccountId),
    /// A queued transfer: `(sending bank, queue sequence number)`.
    Queued(BankId, u64),
    /// The `end_to_end_id`s remembered by the block at this height, as their
    /// `end_to_end_key`s in the block's order: one entry per block of the duplicate
    /// window, not one per id (ADR 0003). A block holds at most
    /// `MAX_PAYLOAD_BYTES / MIN_TX_BYTES` (about 84,000) transactions, so the list is at
    /// most about 2.7 MB, within [`MAX_ENTRY_BYTES`].
    EndToEndIds(u64),
    /// The current cycle's obligation between two banks.
    Obligation(BankId, BankId),
    /// The current cycle's number and start.
    Cycle,
    /// Issued/redeemed totals.
    Totals,
    /// A closed cycle's settlement report.
    Report(u64),
    /// The last block's time and the business day in progress.
    Clock,
    /// A closed business day's report.
    DayReport(u64),
}

impl StateKey {
    /// The key's position in the state tree.
    pub fn tree_key(&self) -> Hash {
        sha256(&[b"interpool/state/v1", &codec::encode(self)])
    }
}

/// The state-tree value hash of an encodable state entry.
pub fn value_hash<T: Serialize>(value: &T) -> Hash {
    sha256(&[&codec::encode(value)])
}

/// A broken ledger invariant (DESIGN.md, invariants 1–4). Never expected: the node stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant violated: {0}")]
pub struct InvariantViolation(pub String);

/// An account's state with a Merkle proof against a state root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountProof {
    /// The account id.
    pub id: AccountId,
    /// Its state (`None`: the proof shows it does not exist).
    pub account: Option<Account>,
    /// The state root the proof is against.
    pub state_root: Hash,
    /// The proof.
    pub proof: Proof,
}

impl AccountProof {
    /// Checks the proof against a state root the caller trusts (e.g. one from a block whose
    /// commit certificate it verified).
    pub fn verify(&self, trusted_root: &Hash) -> Result<(), ProofError> {
        if self.state_root != *trusted_root {
            return Err(ProofError::RootMismatch);
        }
        let value = self.account.as_ref().map(value_hash);
        self.proof.verify(
            trusted_root,
            &StateKey::Account(self.id).tree_key(),
            value.as_ref(),
        )
    }
}

/// Which nonces a check accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceRule {
    /// Exactly the signer's next nonce (execution).
    Exact,
    /// The next nonce or a later one (a mempool holding several pending transactions).
    AtLeastNext,
}

/// What a valid transaction will do, decided by [`Ledger::plan`] before anything changes.
#[derive(Debug, Clone)]
enum Effect {
    Transfer {
        from: AccountId,
        to: AccountId,
        from_bank: BankId,
        to_bank: BankId,
        amount: Amount,
        end_to_end_key: Hash,
        terms: TransferTerms,
        queue: bool,
    },
    Cancel {
        bank: BankId,
        seq: u64,
    },
    Reprioritise {
        bank: BankId,
        seq: u64,
        priority: Priority,
    },
    ResolveGridlock,
    OpenAccount {
        owner: AccountId,
        bank: BankId,
    },
    Deposit {
        account: AccountId,
        bank: BankId,
        amount: Amount,
    },
    Withdraw {
        account: AccountId,
        bank: BankId,
        amount: Amount,
    },
    Issue {
        bank: BankId,
        amount: Amount,
    },
    Redeem {
        bank: BankId,
        amount: Amount,
    },
    SetNetDebitCap {
        bank: BankId,
        cap: Amount,
    },
    SettleCycle,
    SetFrozen {
        account: AccountId,
        frozen: bool,
    },
}

/// The ledger. See the module documentation.
#[derive(Debug, Clone)]
pub struct Ledger {
    params: Params,
    height: u64,
    // The large maps are persistent (`imbl`): a clone shares everything with the original
    // and a change copies only what it touches, so a node can hand each block's ledger to
    // its readers for the cost of what the block changed (ADR 0008). Those keyed by
    // 32-byte ids are tries ([`keymap`]): a lookup costs a fifth of an ordered map's.
    accounts: KeyMap<AccountId, Account>,
    banks: BTreeMap<BankId, Bank>,
    officials: BTreeMap<AccountId, Official>,
    /// Per sending bank, queued transfers by sequence number (FIFO order).
    queues: BTreeMap<BankId, OrdMap<u64, QueuedTransfer>>,
    next_queue_seq: u64,
    /// Queued transfers per payer (derived from `queues`, kept in step with them; not part
    /// of the state root).
    queued_per_payer: KeyMap<AccountId, u32>,
    /// `end_to_end_key(signer, end_to_end_id) → the height of the block that remembered
    /// it`. Keyed by a digest, not the pair: a block copies the map's nodes it touches, and
    /// copying a node of 32-byte keys allocates nothing, while a node of
    /// `(AccountId, String)` keys cloned a string per entry.
    end_to_end_ids: KeyMap<Hash, u64>,
    /// The same keys by the height that remembered them, in the block's order: what the
    /// state tree commits to ([`StateKey::EndToEndIds`]) and what is forgotten when the
    /// window passes. Each height's list is shared, not copied, when a clone copies the
    /// map's nodes.
    end_to_end_by_height: OrdMap<u64, std::sync::Arc<Vec<Hash>>>,
    /// The heights whose lists the node has archived ([`EndToEndArchive`]): no longer in
    /// the two maps above.
    archived: archive::Archived,
    cycle: Cycle,
    totals: Totals,
    reports: OrdMap<u64, SettlementReport>,
    /// The last block's time and the business day in progress (`StateKey::Clock`).
    clock: Clock,
    /// Closed business days' reports, by day number.
    day_reports: OrdMap<u64, DayReport>,
    /// Where each queued transfer waits, by transaction hash (derived from `queues`).
    queued_at: OrdMap<Hash, (BankId, u64)>,
    /// Per bank, how many due queued transfers wait in each priority class, in
    /// [`Priority::RELEASE_ORDER`] (derived).
    due_counts: BTreeMap<BankId, [u32; 3]>,
    /// `(not_before_ms, bank, seq)` of queued transfers not due yet (derived).
    not_yet_due: OrdSet<(u64, BankId, u64)>,
    /// `(reject_after_ms, bank, seq)` of queued transfers with a reject time (derived).
    reject_times: OrdSet<(u64, BankId, u64)>,
    /// What the block being applied produced besides receipts (reset per block).
    work: BlockWork,
    tree: SparseMerkleTree,
    dirty: BTreeSet<StateKey>,
    state_root: Hash,
    /// What the last applied block touched (for [`Ledger::check_block_invariants`]).
    last_block: BlockTouch,
}

/// The last block's time and the business day in progress: one state entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Clock {
    /// The last applied block's certified time (0 before the first block).
    time_ms: u64,
    /// The business day in progress (1 first; 0 without a calendar).
    day: u64,
    /// Its first height.
    day_start_height: u64,
    /// The next customer cut-off and end of day (`None` until the first block).
    next_cutoff_ms: Option<u64>,
    next_end_of_day_ms: Option<u64>,
    /// Between the cut-off and the end of day: normal customer transfers are refused.
    after_cutoff: bool,
    /// The day's statistics, per bank.
    stats: BTreeMap<BankId, DayBankStats>,
}

/// What a block produced besides receipts, collected while it runs.
#[derive(Debug, Clone, Default)]
struct BlockWork {
    /// The last block's time.
    previous_ms: u64,
    dropped: Vec<DroppedTransfer>,
    gridlock_requested: bool,
    /// Transfers with a reject time queued in this block, for their warning.
    queued_now: Vec<(BankId, u64)>,
}

/// What one block touched, and the money it found there: enough to check the invariants
/// for that block in time proportional to what it touched.
#[derive(Debug, Clone, Default)]
struct BlockTouch {
    /// Every account the block wrote, once, as it was before: its bank and balance +
    /// reserved (`None`: opened in the block). A vector, filled on the hot path in the
    /// order of first writes; the block's dirty set says which write is the first.
    accounts_before: Vec<(AccountId, Option<(BankId, u128)>)>,
    /// Every bank's customer flows before the block.
    flows_before: BTreeMap<BankId, CustomerFlows>,
    /// Every state entry the block wrote.
    keys: BTreeSet<StateKey>,
}

/// An account's customer money: balance plus reserved.
fn holdings(account: &Account) -> u128 {
    wide_sum(account.balance.0, account.reserved.0)
}

/// A bank's customer money according to its flows: in − out (`None` if out exceeds in).
fn flows_net(flows: &CustomerFlows) -> Option<u128> {
    let inflow = flows.deposited.checked_add(flows.transferred_in)?;
    let outflow = flows.withdrawn.checked_add(flows.transferred_out)?;
    inflow.checked_sub(outflow)
}

fn add(a: Amount, b: Amount) -> Result<Amount, TxError> {
    a.checked_add(b).ok_or(TxError::Overflow)
}

impl Ledger {
    /// Builds the state at height 0 from a validated genesis.
    pub fn from_genesis(genesis: &Genesis) -> Result<Ledger, GenesisError> {
        genesis.validate()?;
        let params = Params {
            chain_id: genesis.chain_id.clone(),
            currency: genesis.currency.clone(),
            decimals: genesis.decimals,
            cycle_blocks: genesis.cycle_blocks,
            queue_expiry_blocks: genesis.queue_expiry_blocks,
            max_queue_per_bank: genesis.max_queue_per_bank,
            max_nonce_lookahead: genesis.max_nonce_lookahead,
            max_validity_blocks: genesis.max_validity_blocks,
            max_queued_per_payer: genesis.max_queued_per_payer,
            duplicate_window_blocks: genesis.duplicate_window_blocks,
            reject_warning_ms: genesis.reject_warning_ms,
            business_day: genesis.business_day,
            gridlock_pass: genesis.gridlock_pass,
        };
        let mut ledger = Ledger {
            params,
            height: 0,
            accounts: KeyMap::default(),
            banks: BTreeMap::new(),
            officials: BTreeMap::new(),
            queues: BTreeMap::new(),
            next_queue_seq: 0,
            queued_per_payer: KeyMap::default(),
            end_to_end_ids: KeyMap::default(),
            end_to_end_by_height: OrdMap::new(),
            archived: archive::Archived::default(),
            cycle: Cycle {
                number: 1,
                start_height: 1,
                obligations: BTreeMap::new(),
            },
            totals: Totals::default(),
            reports: OrdMap::new(),
            clock: Clock::default(),
            day_reports: OrdMap::new(),
            queued_at: OrdMap::new(),
            due_counts: BTreeMap::new(),
            not_yet_due: OrdSet::new(),
            reject_times: OrdSet::new(),
            work: BlockWork::default(),
            tree: SparseMerkleTree::new(),
            dirty: BTreeSet::new(),
            state_root: Hash::ZERO,
            last_block: BlockTouch::default(),
        };
        let official = |role| Official { role, nonce: 0 };
        ledger
            .officials
            .insert(genesis.authority, official(Role::Authority));
        for regulator in &genesis.regulators {
            ledger
                .officials
                .insert(*regulator, official(Role::Regulator));
        }
        for bank in &genesis.banks {
            accumulate(&mut ledger.totals.issued, u128::from(bank.initial_pool.0));
            ledger
                .officials
                .insert(bank.operator, official(Role::Operator(bank.id.clone())));
            ledger.banks.insert(
                bank.id.clone(),
                Bank {
                    operator: bank.operator,
                    pool: bank.initial_pool,
                    net_debit_cap: bank.net_debit_cap,
                    sent: Amount::ZERO,
                    received: Amount::ZERO,
                    flows: CustomerFlows::default(),
                },
            );
        }
        for account in &genesis.accounts {
            if let Some(bank) = ledger.banks.get_mut(&account.bank) {
                accumulate(&mut bank.flows.deposited, u128::from(account.balance.0));
            }
            ledger.accounts.insert(
                account.owner,
                Account {
                    bank: account.bank.clone(),
                    balance: account.balance,
                    reserved: Amount::ZERO,
                    nonce: 0,
                    frozen: false,
                },
            );
        }
        let mut dirty: BTreeSet<StateKey> = BTreeSet::new();
        dirty.extend(ledger.accounts.keys().map(|id| StateKey::Account(*id)));
        dirty.extend(ledger.banks.keys().map(|id| StateKey::Bank(id.clone())));
        dirty.extend(ledger.officials.keys().map(|id| StateKey::Official(*id)));
        dirty.insert(StateKey::Cycle);
        dirty.insert(StateKey::Totals);
        dirty.insert(StateKey::Clock);
        ledger.dirty = dirty;
        // Genesis is the first "block": from nothing to the opening balances.
        ledger.last_block = BlockTouch {
            accounts_before: ledger.accounts.keys().map(|id| (*id, None)).collect(),
            flows_before: ledger
                .banks
                .keys()
                .map(|id| (id.clone(), CustomerFlows::default()))
                .collect(),
            keys: BTreeSet::new(),
        };
        ledger.commit_state();
        Ok(ledger)
    }

    // ----------------------------------------------------------------------------------
    // Queries
    // ----------------------------------------------------------------------------------

    /// The chain's parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Height of the last applied block (0 at genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The state root after the last applied block.
    pub fn state_root(&self) -> Hash {
        self.state_root
    }

    /// A customer account.
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// All customer accounts, by id (sorted here: the map keeps them in hash order).
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        let mut sorted: Vec<(&AccountId, &Account)> = self.accounts.iter().collect();
        sorted.sort_unstable_by_key(|(id, _)| **id);
        sorted.into_iter()
    }

    /// A bank.
    pub fn bank(&self, id: &BankId) -> Option<&Bank> {
        self.banks.get(id)
    }

    /// All banks, by id.
    pub fn banks(&self) -> impl Iterator<Item = (&BankId, &Bank)> {
        self.banks.iter()
    }

    /// An official key's role and nonce.
    pub fn official(&self, id: &AccountId) -> Option<&Official> {
        self.officials.get(id)
    }

    /// The next nonce of any signer (customer or official), or `None` for unknown keys.
    pub fn next_nonce(&self, signer: &AccountId) -> Option<u64> {
        self.accounts
            .get(signer)
            .map(|a| a.nonce)
            .or_else(|| self.officials.get(signer).map(|o| o.nonce))
    }

    /// A bank's queued transfers in FIFO order.
    pub fn queue(&self, bank: &BankId) -> impl Iterator<Item = &QueuedTransfer> {
        self.queues.get(bank).into_iter().flat_map(|q| q.values())
    }

    /// Issued and redeemed totals.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The current (open) cycle's number.
    pub fn current_cycle(&self) -> u64 {
        self.cycle.number
    }

    /// The first height of the current (open) cycle.
    pub fn current_cycle_start(&self) -> u64 {
        self.cycle.start_height
    }

    /// The settlement report of a closed cycle.
    pub fn settlement_report(&self, cycle: u64) -> Option<&SettlementReport> {
        self.reports.get(&cycle)
    }

    /// The most recent settlement report.
    pub fn latest_settlement_report(&self) -> Option<&SettlementReport> {
        self.reports.values().next_back()
    }

    /// An account's state with a Merkle proof against [`Self::state_root`].
    pub fn account_proof(&self, id: &AccountId) -> AccountProof {
        AccountProof {
            id: *id,
            account: self.accounts.get(id).cloned(),
            state_root: self.state_root,
            proof: self.tree.prove(&StateKey::Account(*id).tree_key()),
        }
    }

    // ----------------------------------------------------------------------------------
    // Checks
    // ----------------------------------------------------------------------------------

    /// Would `tx` be accepted (committed or queued) if it were the next transaction of a
    /// block at `height`, timed as the last block? Changes nothing.
    pub fn check(&self, tx: &VerifiedTransaction, height: u64) -> Result<(), TxError> {
        self.plan(
            tx,
            height,
            self.clock.time_ms,
            NonceRule::Exact,
            &ArchiveAnswers::default(),
        )
        .map(|_| ())
    }

    /// Like [`Self::check`] but accepts any nonce from the signer's next one on, for a
    /// mempool that holds several pending transactions of one signer.
    pub fn check_pending(&self, tx: &VerifiedTransaction, height: u64) -> Result<(), TxError> {
        self.check_pending_answered(tx, height, &ArchiveAnswers::default())
    }

    /// [`Self::check_pending`] with the archive's answers for a batch `tx` is part of,
    /// asked at once ([`Self::ask_archive`]); the result is the same.
    pub fn check_pending_answered(
        &self,
        tx: &VerifiedTransaction,
        height: u64,
        answers: &ArchiveAnswers,
    ) -> Result<(), TxError> {
        self.plan(
            tx,
            height,
            self.clock.time_ms,
            NonceRule::AtLeastNext,
            answers,
        )
        .map(|_| ())
    }

    fn operator_bank(&self, signer: &AccountId, kind: BodyKind) -> Result<&BankId, TxError> {
        match self.officials.get(signer) {
            Some(Official {
                role: Role::Operator(bank),
                ..
            }) => Ok(bank),
            _ => Err(TxError::Unauthorized(kind)),
        }
    }

    fn require_role(&self, signer: &AccountId, role: &Role, kind: BodyKind) -> Result<(), TxError> {
        match self.officials.get(signer) {
            Some(official) if official.role == *role => Ok(()),
            _ => Err(TxError::Unauthorized(kind)),
        }
    }

    fn known_bank(&self, bank: &BankId) -> Result<&Bank, TxError> {
        self.banks
            .get(bank)
            .ok_or_else(|| TxError::UnknownBank(bank.clone()))
    }

    fn customer_at(&self, account: &AccountId, bank: &BankId) -> Result<&Account, TxError> {
        let found = self
            .accounts
            .get(account)
            .ok_or(TxError::UnknownAccount(*account))?;
        if found.bank != *bank {
            return Err(TxError::WrongBank {
                account: *account,
                holder: found.bank.clone(),
            });
        }
        Ok(found)
    }

    /// Whether a cross-bank transfer of `amount` may be counted in the open cycle, committed
    /// now or released from a queue later: the sender's `sent` and the receiver's `received`
    /// stay representable (`overflow`), the receiver's pool can take the credit at
    /// settlement (`pool_limit`), and so can the cycle's gross total (`cycle_limit`). The
    /// one rule for both paths, so that nothing can overflow when the cycle closes. Returns
    /// the sending bank.
    fn cross_bank_room(
        &self,
        from_bank: &BankId,
        to_bank: &BankId,
        amount: Amount,
    ) -> Result<&Bank, TxError> {
        let sender = self.known_bank(from_bank)?;
        let receiver = self.known_bank(to_bank)?;
        add(sender.sent, amount)?;
        add(receiver.received, amount)?;
        let available = receiver.pool_headroom();
        if amount > available {
            return Err(TxError::PoolLimit {
                bank: to_bank.clone(),
                available,
            });
        }
        let available = self.cycle_gross_headroom();
        if amount > available {
            return Err(TxError::CycleLimit { available });
        }
        Ok(sender)
    }

    /// How much the open cycle's gross total (the sum of every bank's `sent`, reported in a
    /// `u64`) may still grow.
    fn cycle_gross_headroom(&self) -> Amount {
        let gross: u128 = self.banks.values().map(|b| u128::from(b.sent.0)).sum();
        Amount(
            u128::from(u64::MAX)
                .checked_sub(gross)
                .and_then(|room| u64::try_from(room).ok())
                .unwrap_or(0),
        )
    }

    fn queue_len(&self, bank: &BankId) -> usize {
        self.queues.get(bank).map_or(0, OrdMap::len)
    }

    /// How many transfers of `payer` are queued.
    fn queued_by(&self, payer: &AccountId) -> u32 {
        self.queued_per_payer.get(payer).copied().unwrap_or(0)
    }

    /// Keeps [`Self::queued_per_payer`] in step with the queues: `+1` or `−1` for `payer`.
    fn count_queued(&mut self, payer: AccountId, added: bool) {
        let count = self.queued_by(&payer);
        let count = if added {
            count.saturating_add(1)
        } else {
            count.saturating_sub(1)
        };
        if count == 0 {
            self.queued_per_payer.remove(&payer);
        } else {
            self.queued_per_payer.insert(payer, count);
        }
    }

    /// Decides what `tx` does, in the precedence order of [`TxError`], without changing
    /// anything.
    fn plan(
        &self,
        tx: &VerifiedTransaction,
        height: u64,
        now_ms: u64,
        rule: NonceRule,
        answers: &ArchiveAnswers,
    ) -> Result<Effect, TxError> {
        let t = tx.tx();
        let signer = &t.signer;
        let expected = self
            .next_nonce(signer)
            .ok_or(TxError::UnknownSigner(*signer))?;
        let nonce_ok = match rule {
            NonceRule::Exact => t.nonce == expected,
            NonceRule::AtLeastNext => t.nonce >= expected,
        };
        if !nonce_ok {
            return Err(TxError::BadNonce {
                expected,
                got: t.nonce,
            });
        }
        let lookahead = self.params.max_nonce_lookahead;
        if t.nonce > expected.saturating_add(lookahead) {
            return Err(TxError::NonceTooFarAhead {
                expected,
                got: t.nonce,
                max_ahead: lookahead,
            });
        }
        if t.valid_until_height < height {
            return Err(TxError::Expired {
                valid_until_height: t.valid_until_height,
                height,
            });
        }
        let latest = height.saturating_add(self.params.max_validity_blocks);
        if t.valid_until_height > latest {
            return Err(TxError::ValidityTooLong {
                valid_until_height: t.valid_until_height,
                latest,
            });
        }
        let kind = t.body.kind();
        match &t.body {
            Body::Transfer {
                to,
                amount,
                end_to_end_id,
                terms,
                ..
            } => {
                let from = self
                    .accounts
                    .get(signer)
                    .ok_or(TxError::Unauthorized(kind))?;
                if from.frozen {
                    return Err(TxError::AccountFrozen(*signer));
                }
                let payee = self.accounts.get(to).ok_or(TxError::UnknownAccount(*to))?;
                if terms.priority == Priority::Urgent {
                    return Err(TxError::PriorityNotAllowed(Priority::Urgent));
                }
                if let Some(reject_after_ms) = terms.reject_after_ms {
                    if reject_after_ms <= now_ms {
                        return Err(TxError::RejectTime {
                            reject_after_ms,
                            time_ms: now_ms,
                        });
                    }
                }
                if terms.priority == Priority::Normal && self.clock.after_cutoff {
                    return Err(TxError::Cutoff);
                }
                // Computed at verification; every verified transfer has it.
                let key = tx
                    .end_to_end_key()
                    .copied()
                    .unwrap_or_else(|| end_to_end_key(signer, end_to_end_id));
                if self.end_to_end_ids.contains_key(&key) || self.archived.remembers(&key, answers)
                {
                    return Err(TxError::DuplicateEndToEndId(end_to_end_id.clone()));
                }
                if from.balance < *amount {
                    return Err(TxError::InsufficientFunds {
                        available: from.balance,
                        needed: *amount,
                    });
                }
                add(add(payee.balance, payee.reserved)?, *amount)?;
                // Not due yet: it waits, even between two customers of one bank.
                let mut queue = terms.not_before_ms.is_some_and(|at| at > now_ms);
                if from.bank != payee.bank {
                    let sender_bank = self.cross_bank_room(&from.bank, &payee.bank, *amount)?;
                    queue = queue
                        || !sender_bank.can_send(*amount)
                        || self.waits_ahead(&from.bank, terms.priority);
                    // A waiting high transfer holds up every later one of its bank (strict
                    // first in first out). One larger than the bank's whole debit limit could
                    // settle only once the bank had received more than it sent by the
                    // excess: one customer could stop its bank's payments until it expired,
                    // and send it again. It may commit if it fits now; it may not wait.
                    if queue && queues::high_over_limit(terms.priority, *amount, sender_bank) {
                        return Err(TxError::HighOverDebitLimit(from.bank.clone()));
                    }
                }
                if queue {
                    if self.queue_len(&from.bank) >= self.params.max_queue_per_bank as usize {
                        return Err(TxError::QueueFull(from.bank.clone()));
                    }
                    if self.queued_by(signer) >= self.params.max_queued_per_payer {
                        return Err(TxError::PayerQueueFull(*signer));
                    }
                }
                Ok(Effect::Transfer {
                    from: *signer,
                    to: *to,
                    from_bank: from.bank.clone(),
                    to_bank: payee.bank.clone(),
                    amount: *amount,
                    end_to_end_key: key,
                    terms: *terms,
                    queue,
                })
            }
            Body::OpenAccount { owner } => {
                let bank = self.operator_bank(signer, kind)?;
                if self.accounts.contains_key(owner) || self.officials.contains_key(owner) {
                    return Err(TxError::AccountExists(*owner));
                }
                Ok(Effect::OpenAccount {
                    owner: *owner,
                    bank: bank.clone(),
                })
            }
            Body::Deposit { account, amount } => {
                let bank = self.operator_bank(signer, kind)?;
                let found = self.customer_at(account, bank)?;
                add(add(found.balance, found.reserved)?, *amount)?;
                Ok(Effect::Deposit {
                    account: *account,
                    bank: bank.clone(),
                    amount: *amount,
                })
            }
            Body::Withdraw { account, amount } => {
                let bank = self.operator_bank(signer, kind)?;
                let found = self.customer_at(account, bank)?;
                if found.frozen {
                    return Err(TxError::AccountFrozen(*account));
                }
                if found.balance < *amount {
                    return Err(TxError::InsufficientFunds {
                        available: found.balance,
                        needed: *amount,
                    });
                }
                Ok(Effect::Withdraw {
                    account: *account,
                    bank: bank.clone(),
                    amount: *amount,
                })
            }
            Body::Issue { bank, amount } => {
                self.require_role(signer, &Role::Authority, kind)?;
                let found = self.known_bank(bank)?;
                add(found.pool, *amount)?;
                // What the bank has received this cycle is credited to the pool at
                // settlement: that must still fit too.
                let available = found.pool_headroom();
                if *amount > available {
                    return Err(TxError::PoolLimit {
                        bank: bank.clone(),
                        available,
                    });
                }
                Ok(Effect::Issue {
                    bank: bank.clone(),
                    amount: *amount,
                })
            }
            Body::Redeem { bank, amount } => {
                self.require_role(signer, &Role::Authority, kind)?;
                let found = self.known_bank(bank)?;
                // The pool must still cover what the bank owes in this cycle, so that
                // settlement can never fail.
                let available = found
                    .pool
                    .checked_sub(found.net_debit())
                    .unwrap_or(Amount::ZERO);
                if *amount > available {
                    return Err(TxError::InsufficientPool {
                        bank: bank.clone(),
                        available,
                    });
                }
                Ok(Effect::Redeem {
                    bank: bank.clone(),
                    amount: *amount,
                })
            }
            Body::SetNetDebitCap { bank, cap } => {
                self.require_role(signer, &Role::Authority, kind)?;
                self.known_bank(bank)?;
                Ok(Effect::SetNetDebitCap {
                    bank: bank.clone(),
                    cap: *cap,
                })
            }
            Body::SettleCycle => {
                self.require_role(signer, &Role::Authority, kind)?;
                Ok(Effect::SettleCycle)
            }
            Body::Freeze { account } | Body::Unfreeze { account } => {
                self.require_role(signer, &Role::Regulator, kind)?;
                let found = self
                    .accounts
                    .get(account)
                    .ok_or(TxError::UnknownAccount(*account))?;
                let freeze = kind == BodyKind::Freeze;
                match (freeze, found.frozen) {
                    (true, true) => Err(TxError::AlreadyFrozen(*account)),
                    (false, false) => Err(TxError::NotFrozen(*account)),
                    _ => Ok(Effect::SetFrozen {
                        account: *account,
                        frozen: freeze,
                    }),
                }
            }
            Body::CancelTransfer { tx_hash } => {
                let (bank, seq, entry) = self.queued_transfer(tx_hash)?;
                let operator = matches!(
                    self.officials.get(signer),
                    Some(Official { role: Role::Operator(of), .. }) if *of == bank
                );
                if entry.from != *signer && !operator {
                    return Err(TxError::Unauthorized(kind));
                }
                Ok(Effect::Cancel { bank, seq })
            }
            Body::Reprioritise { tx_hash, priority } => {
                let operator_of = self.operator_bank(signer, kind)?.clone();
                let (bank, seq, entry) = self.queued_transfer(tx_hash)?;
                if bank != operator_of {
                    return Err(TxError::Unauthorized(kind));
                }
                if *priority == Priority::Urgent {
                    return Err(TxError::PriorityNotAllowed(*priority));
                }
                if entry.priority == *priority {
                    return Err(TxError::SamePriority(*tx_hash));
                }
                // After the cut-off no customer transfer may become normal: it would
                // settle as one when normal ones are closed.
                if *priority == Priority::Normal && self.clock.after_cutoff {
                    return Err(TxError::Cutoff);
                }
                Ok(Effect::Reprioritise {
                    bank,
                    seq,
                    priority: *priority,
                })
            }
            Body::ResolveGridlock => {
                self.require_role(signer, &Role::Authority, kind)?;
                Ok(Effect::ResolveGridlock)
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Execution
    // ----------------------------------------------------------------------------------

    /// Executes the block at `height` (which must be the next height), certified at
    /// `time_ms` (milliseconds since the Unix epoch, from its header), and returns every
    /// receipt, release, refund and settlement it produced, with the new state root. A time
    /// before the last block's counts as the last block's: time never runs backwards here.
    ///
    /// No sequence of transactions can make it panic: every amount that a later step
    /// (a queue release, a refund, the cycle's settlement) would add is checked when the
    /// transaction runs, and refused with a [`TxError`] (`overflow`, `pool_limit`,
    /// `cycle_limit`) if it could not be represented then.
    ///
    /// # Panics
    /// If `height` is not `self.height() + 1` (a bug in the caller), or if an invariant
    /// breaks (a bug here): continuing would be worse.
    pub fn apply_block(
        &mut self,
        height: u64,
        time_ms: u64,
        txs: &[VerifiedTransaction],
    ) -> BlockOutcome {
        // A caller's bug, not input: the node applies the block after its tip.
        assert_eq!(
            Some(height),
            self.height.checked_add(1),
            "blocks must be applied in height order"
        );
        self.last_block = BlockTouch {
            flows_before: self
                .banks
                .iter()
                .map(|(id, bank)| (id.clone(), bank.flows.clone()))
                .collect(),
            ..BlockTouch::default()
        };
        self.work = BlockWork::default();
        let now = self.start_block(height, time_ms);
        let mut receipts = Vec::with_capacity(txs.len());
        let mut settle_requested = false;
        // The block's archived ids are looked up in one read; an id a transaction of this
        // block remembers is in memory before the next one is planned.
        let answers = self.ask_archive(txs);
        for (index, tx) in txs.iter().enumerate() {
            let outcome = match self.plan(tx, height, now, NonceRule::Exact, &answers) {
                Ok(effect) => {
                    self.consume_nonce(&tx.tx().signer);
                    if matches!(effect, Effect::SettleCycle) {
                        settle_requested = true;
                    }
                    self.execute(effect, tx, height, now)
                }
                Err(error) => {
                    if !matches!(error, TxError::UnknownSigner(_) | TxError::BadNonce { .. }) {
                        self.consume_nonce(&tx.tx().signer);
                    }
                    Outcome::Rejected { error }
                }
            };
            #[allow(clippy::expect_used)] // blocks are bounded far below 2^32 transactions
            let index = u32::try_from(index).expect("a block holds fewer than 2^32 transactions");
            receipts.push(Receipt {
                tx_hash: tx.hash(),
                height,
                index,
                outcome,
            });
        }
        self.reject_due(height, now);
        let mut released = self.release_queued(height, now);
        let requested = self.work.gridlock_requested;
        let gridlock = if requested || self.params.gridlock_pass == GridlockPass::EveryBlock {
            self.gridlock_pass(height, now, requested, &mut released)
        } else {
            None
        };
        let expired = self.expire_queued(height);
        // After every way out of a queue: only what still waits is warned about.
        let warned = self.reject_warnings(height, now);
        self.forget_end_to_end_ids(height);
        let end_of_day = self.end_of_day_due(now);
        let trigger = if settle_requested {
            Some(SettlementTrigger::Authority)
        } else if end_of_day {
            Some(SettlementTrigger::EndOfDay)
        } else if height.is_multiple_of(self.params.cycle_blocks) {
            Some(SettlementTrigger::Schedule)
        } else {
            None
        };
        let settlement = trigger.map(|trigger| self.close_cycle(height, trigger));
        let closed_cycle = settlement.as_ref().map(|report| report.cycle);
        let day_report = self.finish_block_day(height, now, end_of_day, closed_cycle);
        self.height = height;
        let state_root = self.commit_state();
        BlockOutcome {
            height,
            receipts,
            released,
            expired,
            dropped: std::mem::take(&mut self.work.dropped),
            warned,
            gridlock,
            day_report,
            settlement,
            state_root,
        }
    }

    fn consume_nonce(&mut self, signer: &AccountId) {
        if let Some(account) = self.accounts.get_mut(signer) {
            first_write(&mut self.dirty, &mut self.last_block, signer, Some(account));
            account.nonce = successor(account.nonce);
        } else if let Some(official) = self.officials.get_mut(signer) {
            official.nonce = successor(official.nonce);
            self.dirty.insert(StateKey::Official(*signer));
        }
    }

    /// An account that this block is about to write, marked as written (see
    /// [`first_write`]).
    #[allow(clippy::expect_used)] // callers name accounts that `plan` or a queue entry found
    fn account_mut(&mut self, id: &AccountId) -> &mut Account {
        let account = self
            .accounts
            .get_mut(id)
            .expect("planned effects name existing accounts");
        first_write(&mut self.dirty, &mut self.last_block, id, Some(account));
        account
    }

    #[allow(clippy::expect_used)] // callers name banks that `plan` or a queue entry found
    fn bank_mut(&mut self, id: &BankId) -> &mut Bank {
        self.dirty.insert(StateKey::Bank(id.clone()));
        self.banks
            .get_mut(id)
            .expect("planned effects name existing banks")
    }

    /// Applies a planned effect. Every amount was checked by `plan`, so the `expect`s here
    /// guard invariants, not input.
    #[allow(clippy::expect_used)] // `plan` checked every amount just before
    fn execute(
        &mut self,
        effect: Effect,
        tx: &VerifiedTransaction,
        height: u64,
        now: u64,
    ) -> Outcome {
        const CHECKED: &str = "amounts were checked when the effect was planned";
        let tx_hash = tx.hash();
        match effect {
            Effect::Transfer {
                from,
                to,
                from_bank,
                to_bank,
                amount,
                end_to_end_key,
                terms,
                queue,
            } => {
                self.remember_end_to_end_id(end_to_end_key, height);
                if queue {
                    let payer = self.account_mut(&from);
                    payer.balance = payer.balance.checked_sub(amount).expect(CHECKED);
                    payer.reserved = payer.reserved.checked_add(amount).expect(CHECKED);
                    // Saturating: a genesis may set an expiry window up to `u64::MAX`
                    // ("never"), and no input may make execution overflow.
                    let expires_at_height = height.saturating_add(self.params.queue_expiry_blocks);
                    self.enqueue(
                        from_bank,
                        QueuedTransfer {
                            tx_hash,
                            from,
                            to,
                            to_bank,
                            amount,
                            queued_at_height: height,
                            expires_at_height,
                            priority: terms.priority,
                            not_before_ms: terms.not_before_ms,
                            reject_after_ms: terms.reject_after_ms,
                            queued_at_ms: now,
                        },
                        now,
                    );
                    Outcome::Queued { expires_at_height }
                } else {
                    let payer = self.account_mut(&from);
                    payer.balance = payer.balance.checked_sub(amount).expect(CHECKED);
                    self.settle_transfer(&from_bank, to, &to_bank, amount);
                    self.count_settled(&from_bank, amount, None);
                    Outcome::Committed
                }
            }
            Effect::Cancel { bank, seq } => {
                let by = tx.tx().signer;
                self.drop_queued(&bank, seq, height, DropReason::Cancelled { by });
                Outcome::Committed
            }
            Effect::Reprioritise {
                bank,
                seq,
                priority,
            } => {
                self.set_priority(&bank, seq, priority);
                Outcome::Committed
            }
            Effect::ResolveGridlock => {
                self.work.gridlock_requested = true;
                Outcome::Committed
            }
            Effect::OpenAccount { owner, bank } => {
                first_write(&mut self.dirty, &mut self.last_block, &owner, None);
                self.accounts.insert(
                    owner,
                    Account {
                        bank,
                        balance: Amount::ZERO,
                        reserved: Amount::ZERO,
                        nonce: 0,
                        frozen: false,
                    },
                );
                Outcome::Committed
            }
            Effect::Deposit {
                account,
                bank,
                amount,
            } => {
                let found = self.account_mut(&account);
                found.balance = found.balance.checked_add(amount).expect(CHECKED);
                accumulate(
                    &mut self.bank_mut(&bank).flows.deposited,
                    u128::from(amount.0),
                );
                Outcome::Committed
            }
            Effect::Withdraw {
                account,
                bank,
                amount,
            } => {
                let found = self.account_mut(&account);
                found.balance = found.balance.checked_sub(amount).expect(CHECKED);
                accumulate(
                    &mut self.bank_mut(&bank).flows.withdrawn,
                    u128::from(amount.0),
                );
                Outcome::Committed
            }
            Effect::Issue { bank, amount } => {
                let found = self.bank_mut(&bank);
                found.pool = found.pool.checked_add(amount).expect(CHECKED);
                accumulate(&mut self.totals.issued, u128::from(amount.0));
                self.dirty.insert(StateKey::Totals);
                Outcome::Committed
            }
            Effect::Redeem { bank, amount } => {
                let found = self.bank_mut(&bank);
                found.pool = found.pool.checked_sub(amount).expect(CHECKED);
                accumulate(&mut self.totals.redeemed, u128::from(amount.0));
                self.dirty.insert(StateKey::Totals);
                Outcome::Committed
            }
            Effect::SetNetDebitCap { bank, cap } => {
                self.bank_mut(&bank).net_debit_cap = cap;
                Outcome::Committed
            }
            Effect::SettleCycle => Outcome::Committed,
            Effect::SetFrozen { account, frozen } => {
                self.account_mut(&account).frozen = frozen;
                // A frozen payer's queued transfers hold up nobody: out of the due counts.
                self.recount_payer(&account, frozen);
                Outcome::Committed
            }
        }
    }

    /// Credits the payee of a transfer whose payer was already debited, and records the
    /// obligation between the banks if they differ.
    #[allow(clippy::expect_used)] // `plan` or `releasable` checked every total just before
    fn settle_transfer(
        &mut self,
        from_bank: &BankId,
        to: AccountId,
        to_bank: &BankId,
        amount: Amount,
    ) {
        self.book_transfer(from_bank, to, to_bank, amount);
        if let Some(sender) = self.banks.get(from_bank) {
            assert!(
                sender.net_debit() <= sender.debit_limit() || from_bank == to_bank,
                "a committed transfer never takes a bank past min(cap, pool)"
            );
        }
    }

    /// [`Self::settle_transfer`] without the cap check: for payments settled together, whose
    /// caps are checked once all of them are booked.
    #[allow(clippy::expect_used)] // `plan` or `releasable` checked every total just before
    fn book_transfer(
        &mut self,
        from_bank: &BankId,
        to: AccountId,
        to_bank: &BankId,
        amount: Amount,
    ) {
        const CHECKED: &str = "credit and position overflow were checked before";
        let payee = self.account_mut(&to);
        payee.balance = payee.balance.checked_add(amount).expect(CHECKED);
        if from_bank == to_bank {
            return;
        }
        let sender = self.bank_mut(from_bank);
        sender.sent = sender.sent.checked_add(amount).expect(CHECKED);
        accumulate(&mut sender.flows.transferred_out, u128::from(amount.0));
        let receiver = self.bank_mut(to_bank);
        receiver.received = receiver.received.checked_add(amount).expect(CHECKED);
        accumulate(&mut receiver.flows.transferred_in, u128::from(amount.0));
        let pair = (from_bank.clone(), to_bank.clone());
        let obligation = self.cycle.obligations.entry(pair.clone()).or_default();
        *obligation = obligation.checked_add(amount).expect(CHECKED);
        self.dirty.insert(StateKey::Obligation(pair.0, pair.1));
    }

    fn remember_end_to_end_id(&mut self, key: Hash, height: u64) {
        self.dirty.insert(StateKey::EndToEndIds(height));
        self.end_to_end_ids.insert(key, height);
        // The block's own list, unshared after its first push: pushing copies nothing.
        let ids = self.end_to_end_by_height.entry(height).or_default();
        std::sync::Arc::make_mut(ids).push(key);
    }

    /// Takes the lowest height's list of remembered ids out of memory if that height is at
    /// or below `through`, and forgets each of its ids unless a later block remembered it
    /// again: what both forgetting (the window passed) and archiving (the node's store
    /// holds it now) do to the in-memory window.
    fn take_end_to_end_list(&mut self, through: u64) -> Option<(u64, std::sync::Arc<Vec<Hash>>)> {
        let (height, _) = self
            .end_to_end_by_height
            .get_min()
            .filter(|(height, _)| *height <= through)?;
        let height = *height;
        let keys = self.end_to_end_by_height.remove(&height)?;
        for key in keys.iter() {
            if self.end_to_end_ids.get(key) == Some(&height) {
                self.end_to_end_ids.remove(key);
            }
        }
        Some((height, keys))
    }

    /// Forgets, in block `height` (after its transactions), the ids of the blocks whose
    /// window has passed: those remembered at `height - duplicate_window_blocks` or before.
    fn forget_end_to_end_ids(&mut self, height: u64) {
        let Some(last) = height.checked_sub(self.params.duplicate_window_blocks) else {
            return;
        };
        while let Some((remembered, _)) = self.take_end_to_end_list(last) {
            self.dirty.insert(StateKey::EndToEndIds(remembered));
        }
        while let Some(remembered) = self
            .archived
            .heights
            .get_min()
            .map(|(remembered, _)| *remembered)
            .filter(|remembered| *remembered <= last)
        {
            self.archived.heights.remove(&remembered);
            self.dirty.insert(StateKey::EndToEndIds(remembered));
        }
    }

    /// Closes the current cycle: computes the multilateral net positions from the cycle's
    /// obligations, moves each pool once by its position, and opens the next cycle.
    fn close_cycle(&mut self, height: u64, trigger: SettlementTrigger) -> SettlementReport {
        // Positions from the obligations themselves, checked against the running positions
        // the cap checks used (two computations of one fact must agree).
        let mut sent: BTreeMap<&BankId, u128> = BTreeMap::new();
        let mut received: BTreeMap<&BankId, u128> = BTreeMap::new();
        for ((debtor, creditor), amount) in &self.cycle.obligations {
            accumulate(sent.entry(debtor).or_default(), u128::from(amount.0));
            accumulate(received.entry(creditor).or_default(), u128::from(amount.0));
        }
        let mut positions = Vec::with_capacity(self.banks.len());
        for (id, bank) in &self.banks {
            let bank_sent = sent.get(id).copied().unwrap_or(0);
            let bank_received = received.get(id).copied().unwrap_or(0);
            // Broken invariants, not input: two computations of one fact disagree.
            assert_eq!(
                bank_sent,
                u128::from(bank.sent.0),
                "bank {id}: sent drifted"
            );
            assert_eq!(
                bank_received,
                u128::from(bank.received.0),
                "bank {id}: received drifted"
            );
            let net = bank.position();
            // pool + net lies in [pool − net debit, pool + received]: at least zero by the
            // cap rule (a bank's net debit never exceeds its pool) and at most u64::MAX by
            // the pool limit (`Bank::pool_headroom`), both checked when each transfer and
            // issuance ran.
            #[allow(clippy::expect_used, clippy::arithmetic_side_effects)]
            let pool_after =
                Amount(u64::try_from(i128::from(bank.pool.0) + net).expect(
                    "settlement cannot fail: net debit <= pool, pool + received <= u64::MAX",
                ));
            positions.push(BankPosition {
                bank: id.clone(),
                sent: bank.sent,
                received: bank.received,
                net,
                pool_before: bank.pool,
                pool_after,
            });
        }
        let net_sum: i128 = positions.iter().map(|p| p.net).sum();
        assert_eq!(net_sum, 0, "net positions of a cycle sum to zero");
        let gross: u128 = positions.iter().map(|p| u128::from(p.sent.0)).sum();
        let net_total: i128 = positions.iter().map(|p| p.net.max(0)).sum();
        // The gross total was kept within u64 by the cycle limit (`cycle_limit`) checked at
        // every cross-bank transfer, and the net total is at most the gross.
        #[allow(clippy::expect_used)]
        let (gross_total, net_total) = (
            Amount(u64::try_from(gross).expect("the cycle limit keeps the gross total in u64")),
            Amount(u64::try_from(net_total).expect("the net total is at most the gross total")),
        );
        for position in &positions {
            let bank = self.bank_mut(&position.bank);
            bank.pool = position.pool_after;
            bank.sent = Amount::ZERO;
            bank.received = Amount::ZERO;
        }
        for (debtor, creditor) in std::mem::take(&mut self.cycle.obligations).into_keys() {
            self.dirty.insert(StateKey::Obligation(debtor, creditor));
        }
        let report = SettlementReport {
            cycle: self.cycle.number,
            start_height: self.cycle.start_height,
            height,
            trigger,
            banks: positions,
            gross_total,
            net_total,
        };
        self.reports.insert(report.cycle, report.clone());
        self.dirty.insert(StateKey::Report(report.cycle));
        self.cycle.number = successor(self.cycle.number);
        self.cycle.start_height = successor(height);
        self.dirty.insert(StateKey::Cycle);
        report
    }

    /// Writes every entry touched since the last call into the state tree; returns the root.
    fn commit_state(&mut self) -> Hash {
        let dirty = std::mem::take(&mut self.dirty);
        let updates = dirty
            .iter()
            .map(|key| (key.tree_key(), self.value_hash_of(key)))
            .collect();
        self.tree.update_batch(updates);
        self.last_block.keys = dirty;
        self.state_root = self.tree.root();
        self.state_root
    }

    fn value_hash_of(&self, key: &StateKey) -> Option<Hash> {
        match key {
            StateKey::Account(id) => self.accounts.get(id).map(value_hash),
            StateKey::Bank(id) => self.banks.get(id).map(value_hash),
            StateKey::Official(id) => self.officials.get(id).map(value_hash),
            StateKey::Queued(bank, seq) => self
                .queues
                .get(bank)
                .and_then(|q| q.get(seq))
                .map(value_hash),
            StateKey::EndToEndIds(height) => self
                .end_to_end_by_height
                .get(height)
                .map(|keys| value_hash(&**keys))
                .or_else(|| self.archived.heights.get(height).copied()),
            StateKey::Obligation(a, b) => self
                .cycle
                .obligations
                .get(&(a.clone(), b.clone()))
                .map(value_hash),
            StateKey::Cycle => Some(value_hash(&(
                self.cycle.number,
                self.cycle.start_height,
                self.next_queue_seq,
            ))),
            StateKey::Totals => Some(value_hash(&self.totals)),
            StateKey::Report(n) => self.reports.get(n).map(value_hash),
            StateKey::Clock => Some(value_hash(&self.clock)),
            StateKey::DayReport(n) => self.day_reports.get(n).map(value_hash),
        }
    }

    // ----------------------------------------------------------------------------------
    // Invariants
    // ----------------------------------------------------------------------------------

    /// Checks DESIGN.md's invariants 1–4 from scratch, in time linear in the state size
    /// (every account, queued transfer, obligation and report). Tests call it after every
    /// block; the node may call it as often as it can afford (at start, in audits).
    /// [`Self::check_block_invariants`] is the cheap check for every commit.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        // 1 and 3, and the settlement bounds: per bank and per obligation.
        self.check_pools_and_positions()?;
        // 2. Customer money is conserved, per bank and in total.
        let mut held: BTreeMap<&BankId, u128> = BTreeMap::new();
        let mut reserved: BTreeMap<&AccountId, u128> = BTreeMap::new();
        for (id, account) in &self.accounts {
            if !self.banks.contains_key(&account.bank) {
                return violation(format!("account {id} at unknown bank {}", account.bank));
            }
            if account.balance.checked_add(account.reserved).is_none() {
                return violation(format!("account {id}: balance + reserved overflows"));
            }
            accumulate(held.entry(&account.bank).or_default(), holdings(account));
        }
        let mut queued: BTreeMap<&AccountId, u32> = BTreeMap::new();
        for queue in self.queues.values() {
            for entry in queue.values() {
                accumulate(
                    reserved.entry(&entry.from).or_default(),
                    u128::from(entry.amount.0),
                );
                let count = queued.entry(&entry.from).or_default();
                *count = count.saturating_add(1);
            }
        }
        if queued.len() != self.queued_per_payer.len()
            || queued
                .iter()
                .any(|(payer, count)| self.queued_by(payer) != *count)
        {
            return violation("the per-payer queue counts differ from the queues".into());
        }
        self.check_due_counts()?;
        for (id, account) in &self.accounts {
            let queued = reserved.get(id).copied().unwrap_or(0);
            if u128::from(account.reserved.0) != queued {
                return violation(format!(
                    "account {id} reserves {} but has {queued} queued",
                    account.reserved.0
                ));
            }
        }
        let (mut total_in, mut total_out) = (0u128, 0u128);
        for (id, bank) in &self.banks {
            let f = &bank.flows;
            let expected = flows_net(f);
            let actual = held.get(id).copied().unwrap_or(0);
            if expected != Some(actual) {
                return violation(format!(
                    "bank {id}: customers hold {actual}, flows say {expected:?}"
                ));
            }
            accumulate(&mut total_in, f.deposited);
            accumulate(&mut total_out, f.withdrawn);
        }
        let total_held: u128 = held.values().sum();
        if Some(total_held) != total_in.checked_sub(total_out) {
            return violation(format!(
                "customers hold {total_held}, deposits − withdrawals = {total_in} − {total_out}"
            ));
        }
        // 3, for every closed cycle.
        for report in self.reports.values() {
            check_report(report)?;
        }
        // 4. Non-negativity is in the types (u64 minor units, checked arithmetic); queued
        //    transfers name existing accounts and banks.
        for (bank, queue) in &self.queues {
            for entry in queue.values() {
                self.check_queued(bank, entry)?;
            }
        }
        Ok(())
    }

    /// The invariants after the last applied block, in time proportional to the number of
    /// banks and to what the block touched, not to the state: cheap enough for the node to
    /// run on every commit. [`Self::check_invariants`] stays the full check.
    ///
    /// * 1 (pool money) and 3 (positions agree with obligations and sum to zero, every net
    ///   debit covered by its pool, every pool able to take its credit and the gross total
    ///   representable at settlement) are per bank: checked fully, as in the full check.
    /// * 2 (customer money) is checked incrementally, per bank: the change of balance +
    ///   reserved over the accounts the block wrote equals the change of the bank's flows
    ///   in the block. Accounts the block did not write did not change (a corruption of one
    ///   of those is the full check's to find).
    /// * 4 for what the block wrote: each written account's balance + reserved is
    ///   representable (a queued transfer's refund cannot overflow) and it is at a known
    ///   bank; each written queued transfer names existing accounts and banks and is covered
    ///   by its payer's reservation; the report of a cycle closed in the block nets to zero
    ///   and moved each pool by exactly its net position. (That every reservation equals
    ///   the sum of the payer's queued transfers is left to the full check.)
    pub fn check_block_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_pools_and_positions()?;
        let touched = &self.last_block;
        // 2, incrementally: (before, after) holdings of the written accounts, per bank.
        let mut held: BTreeMap<&BankId, (u128, u128)> = BTreeMap::new();
        for (id, before) in &touched.accounts_before {
            let Some(account) = self.accounts.get(id) else {
                return violation(format!("account {id} written by the block is gone"));
            };
            if !self.banks.contains_key(&account.bank) {
                return violation(format!("account {id} at unknown bank {}", account.bank));
            }
            if account.balance.checked_add(account.reserved).is_none() {
                return violation(format!("account {id}: balance + reserved overflows"));
            }
            let held_before = match before {
                Some((bank, _)) if *bank != account.bank => {
                    return violation(format!("account {id} moved from bank {bank}"));
                }
                Some((_, amount)) => *amount,
                None => 0,
            };
            let entry = held.entry(&account.bank).or_default();
            accumulate(&mut entry.0, held_before);
            accumulate(&mut entry.1, holdings(account));
        }
        for (id, bank) in &self.banks {
            let Some(flows_before) = touched.flows_before.get(id) else {
                return violation(format!("bank {id} appeared during the block"));
            };
            let (held_before, held_after) = held.get(id).copied().unwrap_or((0, 0));
            // before + Δflows = after, with every term non-negative: no signed arithmetic.
            let (Some(net_before), Some(net_after)) =
                (flows_net(flows_before), flows_net(&bank.flows))
            else {
                return violation(format!("bank {id}: flows out exceed flows in"));
            };
            if held_before.checked_add(net_after) != held_after.checked_add(net_before) {
                return violation(format!(
                    "bank {id}: written accounts went from {held_before} to {held_after}, \
                     flows from {net_before} to {net_after}"
                ));
            }
        }
        // 4 (and 3 for a cycle closed in the block), for the entries the block wrote.
        for key in &touched.keys {
            match key {
                StateKey::Queued(bank, seq) => {
                    if let Some(entry) = self.queues.get(bank).and_then(|q| q.get(seq)) {
                        self.check_queued(bank, entry)?;
                    }
                }
                StateKey::Report(cycle) => match self.reports.get(cycle) {
                    Some(report) => check_report(report)?,
                    None => return violation(format!("report of cycle {cycle} is gone")),
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// Invariants 1 and 3 and the settlement bounds, in time linear in the banks and
    /// obligations (at most banks²): shared by the full and the per-block check.
    fn check_pools_and_positions(&self) -> Result<(), InvariantViolation> {
        // 1. Pool money is conserved.
        let pools: u128 = self.banks.values().map(|b| u128::from(b.pool.0)).sum();
        if Some(pools) != self.totals.issued.checked_sub(self.totals.redeemed) {
            return violation(format!(
                "pools sum to {pools}, issued {} − redeemed {}",
                self.totals.issued, self.totals.redeemed
            ));
        }
        // 3. The open cycle's positions agree with its obligations and sum to zero; every
        //    bank's net debit is covered and every pool can take its credit, and the gross
        //    total fits its report (so the next settlement cannot fail).
        let mut sent: BTreeMap<&BankId, u128> = BTreeMap::new();
        let mut received: BTreeMap<&BankId, u128> = BTreeMap::new();
        for ((debtor, creditor), amount) in &self.cycle.obligations {
            if debtor == creditor || amount.0 == 0 {
                return violation(format!("bad obligation {debtor}→{creditor}: {}", amount.0));
            }
            accumulate(sent.entry(debtor).or_default(), u128::from(amount.0));
            accumulate(received.entry(creditor).or_default(), u128::from(amount.0));
        }
        let mut position_sum = 0i128;
        let mut gross = 0u128;
        for (id, bank) in &self.banks {
            if u128::from(bank.sent.0) != sent.get(id).copied().unwrap_or(0)
                || u128::from(bank.received.0) != received.get(id).copied().unwrap_or(0)
            {
                return violation(format!("bank {id}: position does not match obligations"));
            }
            if bank.net_debit() > bank.pool {
                return violation(format!("bank {id}: net debit exceeds its pool"));
            }
            if bank.pool.checked_add(bank.received).is_none() {
                return violation(format!(
                    "bank {id}: pool + received exceeds the largest amount"
                ));
            }
            let Some(sum) = position_sum.checked_add(bank.position()) else {
                return violation(format!("bank {id}: positions overflow"));
            };
            position_sum = sum;
            accumulate(&mut gross, u128::from(bank.sent.0));
        }
        if position_sum != 0 {
            return violation(format!("positions sum to {position_sum}"));
        }
        if gross > u128::from(u64::MAX) {
            return violation(format!(
                "the cycle's gross total {gross} exceeds the largest amount"
            ));
        }
        Ok(())
    }

    /// A queued transfer names existing accounts and banks, crosses banks (unless it is timed),
    /// and is covered by its payer's reservation.
    fn check_queued(
        &self,
        bank: &BankId,
        entry: &QueuedTransfer,
    ) -> Result<(), InvariantViolation> {
        let payer = self.accounts.get(&entry.from);
        // Only a transfer waiting for its time may be between two customers of one bank.
        let ok = entry.amount.0 > 0
            && (*bank != entry.to_bank || entry.not_before_ms.is_some())
            && self.banks.contains_key(bank)
            && self.banks.contains_key(&entry.to_bank)
            && self.accounts.contains_key(&entry.to)
            && payer.is_some_and(|p| p.bank == *bank && p.reserved >= entry.amount);
        if ok {
            Ok(())
        } else {
            violation(format!(
                "queued transfer {} of bank {bank} is inconsistent",
                entry.tx_hash
            ))
        }
    }
}

/// Marks account `id` written by the current block; on its first write in the block,
/// remembers what it held before (`account` as it is now, `None` if it is being opened) for
/// [`Ledger::check_block_invariants`]. The dirty set is empty when a block starts, so a new
/// entry in it is a first write: one set insertion, no extra lookup on the hot path.
fn first_write(
    dirty: &mut BTreeSet<StateKey>,
    block: &mut BlockTouch,
    id: &AccountId,
    account: Option<&Account>,
) {
    if dirty.insert(StateKey::Account(*id)) {
        let before = account.map(|account| (account.bank.clone(), holdings(account)));
        block.accounts_before.push((*id, before));
    }
}

fn violation(message: String) -> Result<(), InvariantViolation> {
    Err(InvariantViolation(message))
}

/// Invariant 3 for a closed cycle: positions net to zero, each pool moved by its position.
fn check_report(report: &SettlementReport) -> Result<(), InvariantViolation> {
    if report.banks.iter().map(|p| p.net).sum::<i128>() != 0 {
        return violation(format!("cycle {} nets to non-zero", report.cycle));
    }
    for p in &report.banks {
        if signed_difference(p.pool_after.0, p.pool_before.0) != p.net {
            return violation(format!(
                "cycle {}: bank {} moved by other than its net",
                report.cycle, p.bank
            ));
        }
    }
    Ok(())
}

fn queue_event(from_bank: &BankId, entry: QueuedTransfer, height: u64) -> QueueEvent {
    QueueEvent {
        tx_hash: entry.tx_hash,
        from: entry.from,
        to: entry.to,
        from_bank: from_bank.clone(),
        to_bank: entry.to_bank,
        amount: entry.amount,
        queued_at_height: entry.queued_at_height,
        height,
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ledger_liquidity_tests.rs"]
mod liquidity_tests;
