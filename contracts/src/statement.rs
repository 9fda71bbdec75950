//! Statements: what a closed settlement cycle did to each bank's pool and to each of its
//! customers' accounts, entry by entry, from the opening balance to the closing one
//! (DESIGN.md, "Bank integration").
//!
//! A statement is derived from the chain, never stored in the state: [`CycleBooks`] collects
//! the booked movements of the cycle's blocks ([`CycleBooks::add_block`]), and
//! [`CycleBooks::finish`] prices them against two ledgers: one at a height from which the
//! opening balances follow (the ledger that closed the previous cycle, or any ledger of the
//! cycle itself together with the entries before it), and the ledger that closed the cycle.
//! Opening balance plus the entries must equal what the closing ledger holds for every
//! account and pool, and an account without entries must not have moved: otherwise the
//! statement is refused with [`StatementError::Unbalanced`] (a derivation bug, never input).
//!
//! What is booked:
//!
//! * an account's **booked balance** is balance + reserved: funds reserved by a queued
//!   transfer are still the payer's until the transfer is released, so queuing and expiry
//!   book nothing; the release books the debit and the credit, at the release's height;
//! * committed transfers (debit payer, credit payee), deposits (credit), withdrawals
//!   (debit);
//! * a pool moves by the settlement authority's issues and redemptions and, at the cycle's
//!   last block, once by the bank's net position.
//!
//! Entries are ordered by height, then by their place in the block's effects: receipts in
//! block order, then queue releases, then the settlement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::block::Block;
use crate::ledger::Ledger;
use crate::outcome::{BlockOutcome, Outcome, SettlementReport};
use crate::primitives::{AccountId, Amount, BankId, Hash};
use crate::tx::{Body, Transaction};

/// Whether an entry adds to a balance or takes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Adds to the balance.
    Credit,
    /// Takes from the balance.
    Debit,
}

impl Direction {
    /// `"credit"` or `"debit"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Credit => "credit",
            Direction::Debit => "debit",
        }
    }
}

/// What booked an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A customer transfer (committed at once, or released from its bank's queue).
    Transfer,
    /// Cash in by the bank's operator.
    Deposit,
    /// Cash out by the bank's operator.
    Withdraw,
    /// Settlement money issued into the pool by the authority.
    Issue,
    /// Settlement money redeemed from the pool by the authority.
    Redeem,
    /// The pool's move by the bank's net position when the cycle closed.
    Settlement,
}

/// One booked movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The block that booked it.
    pub height: u64,
    /// Its place among the block's effects (receipts, then releases, then the settlement).
    pub position: u32,
    /// The certified time of that block, in milliseconds since the Unix epoch.
    pub booked_at_ms: u64,
    /// The transaction (none for a settlement).
    pub tx_hash: Option<Hash>,
    /// What booked it.
    pub kind: EntryKind,
    /// Credit or debit.
    pub direction: Direction,
    /// How much.
    pub amount: Amount,
    /// The payer's end-to-end id (transfers only).
    pub end_to_end_id: Option<String>,
    /// The payer's reference (transfers only).
    pub reference: Option<String>,
    /// The other account of a transfer.
    pub counterparty: Option<AccountId>,
    /// The other account's bank.
    pub counterparty_bank: Option<BankId>,
    /// The booked balance after this entry.
    pub balance_after: u128,
}

impl Entry {
    /// The entry's effect on a balance.
    pub fn signed_amount(&self) -> i128 {
        match self.direction {
            Direction::Credit => i128::from(self.amount.0),
            Direction::Debit => i128::from(self.amount.0).saturating_neg(),
        }
    }
}

/// One customer account's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatement {
    /// The account.
    pub account: AccountId,
    /// Booked balance (balance + reserved) when the cycle opened.
    pub opening: u128,
    /// Booked balance when the cycle closed.
    pub closing: u128,
    /// Available balance (booked minus reserved for queued transfers) when it closed.
    pub closing_available: u64,
    /// Every booked movement in the cycle, in order.
    pub entries: Vec<Entry>,
}

/// A bank's pool statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatement {
    /// Pool balance when the cycle opened.
    pub opening: u64,
    /// Pool balance when the cycle closed (after settlement).
    pub closing: u64,
    /// Every movement in the cycle, in order.
    pub entries: Vec<Entry>,
}

/// A bank's statement for one closed cycle: its pool and each customer account that moved.
/// An account of the bank that is not listed did not move in the cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankStatement {
    /// The cycle.
    pub cycle: u64,
    /// The bank.
    pub bank: BankId,
    /// First height of the cycle.
    pub start_height: u64,
    /// The height whose block closed it.
    pub end_height: u64,
    /// Certified time of the block before the cycle's first (the opening balances' time).
    pub from_ms: u64,
    /// Certified time of the closing block.
    pub to_ms: u64,
    /// The pool.
    pub pool: PoolStatement,
    /// The customer accounts with at least one entry, by account id.
    pub accounts: Vec<AccountStatement>,
    /// The bank's customer accounts without any entry in the cycle.
    pub accounts_without_movement: u64,
}

impl BankStatement {
    /// The account's statement, if it moved in the cycle.
    pub fn account(&self, id: &AccountId) -> Option<&AccountStatement> {
        self.accounts
            .binary_search_by(|a| a.account.cmp(id))
            .ok()
            .and_then(|i| self.accounts.get(i))
    }
}

/// Why a statement cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// A released transfer's transaction was not found.
    #[error("the released transfer {0} is not in any stored block")]
    MissingTransfer(Hash),
    /// A block outside the cycle, or out of order.
    #[error("block {got} does not follow {expected} in cycle {cycle}")]
    OutOfOrder {
        /// The cycle.
        cycle: u64,
        /// The height expected.
        expected: u64,
        /// The height given.
        got: u64,
    },
    /// The ledger the opening balances come from is not of this cycle.
    #[error("the opening ledger is at height {height}, outside cycle {cycle} ({start}..={end})")]
    WrongOpening {
        /// The cycle.
        cycle: u64,
        /// Its first height.
        start: u64,
        /// Its last height.
        end: u64,
        /// The ledger's height.
        height: u64,
    },
    /// Not every block of the cycle was added.
    #[error("cycle {cycle} ends at {end}, blocks were added up to {added}")]
    Incomplete {
        /// The cycle.
        cycle: u64,
        /// Its last height.
        end: u64,
        /// The last height added.
        added: u64,
    },
    /// Opening balance plus entries is not what the chain holds.
    #[error("{what}: opening {opening} plus entries {entries} is not the closing {closing}")]
    Unbalanced {
        /// The account or pool.
        what: String,
        /// Its opening balance.
        opening: i128,
        /// The sum of its entries.
        entries: i128,
        /// What the closing ledger holds.
        closing: u128,
    },
}

/// Customer entries, each with its account.
pub type AccountEntries = Vec<(AccountId, Entry)>;
/// Pool entries, each with its bank.
pub type PoolEntries = Vec<(BankId, Entry)>;

/// An entry before its balance is known.
#[derive(Debug, Clone)]
struct Booking {
    entry: Entry,
}

/// The booked movements of one cycle, block by block. See the module documentation.
#[derive(Debug, Clone)]
pub struct CycleBooks {
    cycle: u64,
    start_height: u64,
    next_height: u64,
    from_ms: Option<u64>,
    to_ms: u64,
    accounts: BTreeMap<AccountId, Vec<Booking>>,
    pools: BTreeMap<BankId, Vec<Booking>>,
}

/// An account's booked balance.
fn holdings(ledger: &Ledger, id: &AccountId) -> u128 {
    ledger
        .account(id)
        .map(|a| u128::from(a.balance.0).saturating_add(u128::from(a.reserved.0)))
        .unwrap_or(0)
}

fn position(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

impl CycleBooks {
    /// Books for `cycle`, whose first height is `start_height`; `from_ms` is the time of the
    /// block before it, if known (the genesis has none).
    pub fn new(cycle: u64, start_height: u64, from_ms: Option<u64>) -> CycleBooks {
        CycleBooks {
            cycle,
            start_height,
            next_height: start_height,
            from_ms,
            to_ms: from_ms.unwrap_or(0),
            accounts: BTreeMap::new(),
            pools: BTreeMap::new(),
        }
    }

    /// The next height [`Self::add_block`] expects.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Books one block of the cycle, in height order: `released(hash)` finds the
    /// transaction of a transfer released from a queue (queued in this block or an earlier
    /// one).
    pub fn add_block(
        &mut self,
        block: &Block,
        outcome: &BlockOutcome,
        mut released: impl FnMut(&Hash) -> Option<Transaction>,
    ) -> Result<(), StatementError> {
        let height = block.header.height;
        if height != self.next_height || outcome.height != height {
            return Err(StatementError::OutOfOrder {
                cycle: self.cycle,
                expected: self.next_height,
                got: height,
            });
        }
        let at = block.header.timestamp_ms;
        if self.from_ms.is_none() {
            self.from_ms = Some(at);
        }
        self.to_ms = at;
        let base = Entry {
            height,
            position: 0,
            booked_at_ms: at,
            tx_hash: None,
            kind: EntryKind::Transfer,
            direction: Direction::Credit,
            amount: Amount::ZERO,
            end_to_end_id: None,
            reference: None,
            counterparty: None,
            counterparty_bank: None,
            balance_after: 0,
        };
        for (receipt, signed) in outcome.receipts.iter().zip(&block.transactions) {
            if receipt.outcome != Outcome::Committed {
                continue;
            }
            let entry = Entry {
                position: receipt.index,
                tx_hash: Some(receipt.tx_hash),
                ..base.clone()
            };
            self.book_transaction(&signed.tx, entry);
        }
        let receipts = outcome.receipts.len();
        for (i, event) in outcome.released.iter().enumerate() {
            let tx =
                released(&event.tx_hash).ok_or(StatementError::MissingTransfer(event.tx_hash))?;
            let entry = Entry {
                position: position(receipts.saturating_add(i)),
                tx_hash: Some(event.tx_hash),
                ..base.clone()
            };
            self.book_transaction(&tx, entry);
        }
        if let Some(report) = &outcome.settlement {
            let first = receipts.saturating_add(outcome.released.len());
            for (i, line) in report.banks.iter().enumerate() {
                let (direction, magnitude) = if line.net < 0 {
                    (Direction::Debit, line.net.unsigned_abs())
                } else {
                    (Direction::Credit, line.net.unsigned_abs())
                };
                // |net| ≤ the bank's sent or received total of the cycle: a u64.
                let Ok(amount) = u64::try_from(magnitude) else {
                    continue;
                };
                if amount == 0 {
                    continue;
                }
                let entry = Entry {
                    position: position(first.saturating_add(i)),
                    kind: EntryKind::Settlement,
                    direction,
                    amount: Amount(amount),
                    ..base.clone()
                };
                self.pools
                    .entry(line.bank.clone())
                    .or_default()
                    .push(Booking { entry });
            }
        }
        self.next_height = height.saturating_add(1);
        Ok(())
    }

    fn book_transaction(&mut self, tx: &Transaction, entry: Entry) {
        match &tx.body {
            Body::Transfer {
                to,
                amount,
                end_to_end_id,
                reference,
                ..
            } => {
                let transfer = Entry {
                    kind: EntryKind::Transfer,
                    amount: *amount,
                    end_to_end_id: Some(end_to_end_id.clone()),
                    reference: Some(reference.clone()),
                    ..entry
                };
                self.book_account(
                    tx.signer,
                    Entry {
                        direction: Direction::Debit,
                        counterparty: Some(*to),
                        ..transfer.clone()
                    },
                );
                self.book_account(
                    *to,
                    Entry {
                        direction: Direction::Credit,
                        counterparty: Some(tx.signer),
                        ..transfer
                    },
                );
            }
            Body::Deposit { account, amount } => self.book_account(
                *account,
                Entry {
                    kind: EntryKind::Deposit,
                    direction: Direction::Credit,
                    amount: *amount,
                    ..entry
                },
            ),
            Body::Withdraw { account, amount } => self.book_account(
                *account,
                Entry {
                    kind: EntryKind::Withdraw,
                    direction: Direction::Debit,
                    amount: *amount,
                    ..entry
                },
            ),
            Body::Issue { bank, amount } => self.book_pool(
                bank,
                Entry {
                    kind: EntryKind::Issue,
                    direction: Direction::Credit,
                    amount: *amount,
                    ..entry
                },
            ),
            Body::Redeem { bank, amount } => self.book_pool(
                bank,
                Entry {
                    kind: EntryKind::Redeem,
                    direction: Direction::Debit,
                    amount: *amount,
                    ..entry
                },
            ),
            Body::OpenAccount { .. }
            | Body::SetNetDebitCap { .. }
            | Body::SettleCycle
            | Body::Freeze { .. }
            | Body::Unfreeze { .. }
            | Body::CancelTransfer { .. }
            | Body::Reprioritise { .. }
            | Body::ResolveGridlock => {}
        }
    }

    /// The entries booked so far, without balances (`balance_after` 0) and without the
    /// counterparties' banks: customer entries by account, then pool entries by bank, each
    /// in booking order. For notifications of single entries (camt.054).
    pub fn into_entries(self) -> (AccountEntries, PoolEntries) {
        let accounts = self
            .accounts
            .into_iter()
            .flat_map(|(id, bookings)| bookings.into_iter().map(move |b| (id, b.entry)))
            .collect();
        let pools = self
            .pools
            .into_iter()
            .flat_map(|(bank, bookings)| bookings.into_iter().map(move |b| (bank.clone(), b.entry)))
            .collect();
        (accounts, pools)
    }

    fn book_account(&mut self, account: AccountId, entry: Entry) {
        self.accounts
            .entry(account)
            .or_default()
            .push(Booking { entry });
    }

    fn book_pool(&mut self, bank: &BankId, entry: Entry) {
        self.pools
            .entry(bank.clone())
            .or_default()
            .push(Booking { entry });
    }

    /// Every bank's statement. `opening` is a ledger at a height from the block before the
    /// cycle to its end (the ledger that closed the previous cycle, or one restored in the
    /// middle of this one): an opening balance is what it holds minus the entries booked
    /// up to its height. `closing` is the ledger the cycle's last block left, with the
    /// cycle's settlement report. Every balance is checked: see the module documentation.
    pub fn finish(
        self,
        opening: &Ledger,
        closing: &Ledger,
    ) -> Result<Vec<BankStatement>, StatementError> {
        let report = closing
            .settlement_report(self.cycle)
            .filter(|r| r.height == closing.height() && r.start_height == self.start_height);
        let end = closing.height();
        let added = self.next_height.saturating_sub(1);
        let Some(report) = report else {
            return Err(StatementError::Incomplete {
                cycle: self.cycle,
                end,
                added,
            });
        };
        if added != end {
            return Err(StatementError::Incomplete {
                cycle: self.cycle,
                end,
                added,
            });
        }
        let reference = opening.height();
        if reference.saturating_add(1) < self.start_height || reference > end {
            return Err(StatementError::WrongOpening {
                cycle: self.cycle,
                start: self.start_height,
                end,
                height: reference,
            });
        }
        let booked_until_reference = |bookings: &[Booking]| -> i128 {
            bookings
                .iter()
                .filter(|b| b.entry.height <= reference)
                .map(|b| b.entry.signed_amount())
                .fold(0i128, i128::saturating_add)
        };

        let mut statements: BTreeMap<BankId, BankStatement> = BTreeMap::new();
        for (bank, state) in closing.banks() {
            let bookings = self.pools.get(bank).map(Vec::as_slice).unwrap_or_default();
            let held = opening.bank(bank).map(|b| b.pool.0).unwrap_or(0);
            let open = i128::from(held).saturating_sub(booked_until_reference(bookings));
            let (pool_opening, entries) = price(
                &format!("pool of {bank}"),
                open,
                bookings,
                u128::from(state.pool.0),
            )?;
            check_report(report, bank, pool_opening, &entries)?;
            statements.insert(
                bank.clone(),
                BankStatement {
                    cycle: self.cycle,
                    bank: bank.clone(),
                    start_height: self.start_height,
                    end_height: end,
                    from_ms: self.from_ms.unwrap_or(0),
                    to_ms: self.to_ms,
                    pool: PoolStatement {
                        // Pools are u64 in the ledger: priced within them.
                        opening: u64::try_from(pool_opening).unwrap_or(u64::MAX),
                        closing: state.pool.0,
                        entries,
                    },
                    accounts: Vec::new(),
                    accounts_without_movement: 0,
                },
            );
        }

        for (id, account) in closing.accounts() {
            let closing_holdings = holdings(closing, id);
            let Some(bookings) = self.accounts.get(id) else {
                // Without entries it must not have moved.
                let before = holdings(opening, id);
                if before != closing_holdings {
                    return Err(StatementError::Unbalanced {
                        what: format!("account {id} (no entries)"),
                        opening: i128::try_from(before).unwrap_or(i128::MAX),
                        entries: 0,
                        closing: closing_holdings,
                    });
                }
                if let Some(statement) = statements.get_mut(&account.bank) {
                    statement.accounts_without_movement =
                        statement.accounts_without_movement.saturating_add(1);
                }
                continue;
            };
            let held = i128::try_from(holdings(opening, id)).unwrap_or(i128::MAX);
            let open = held.saturating_sub(booked_until_reference(bookings));
            let (opening_holdings, entries) =
                price(&format!("account {id}"), open, bookings, closing_holdings)?;
            if let Some(statement) = statements.get_mut(&account.bank) {
                statement.accounts.push(AccountStatement {
                    account: *id,
                    opening: opening_holdings,
                    closing: closing_holdings,
                    closing_available: account.balance.0,
                    entries,
                });
            }
        }
        // An account booked but not in the closing ledger cannot exist (accounts are never
        // closed); a transfer to an unknown account is rejected, never booked.
        if let Some(id) = self
            .accounts
            .keys()
            .find(|id| closing.account(id).is_none())
        {
            return Err(StatementError::Unbalanced {
                what: format!("account {id} (not in the closing ledger)"),
                opening: 0,
                entries: 0,
                closing: 0,
            });
        }
        // Counterparties' banks, from the closing ledger.
        let mut out: Vec<BankStatement> = statements.into_values().collect();
        for statement in &mut out {
            for account in &mut statement.accounts {
                for entry in &mut account.entries {
                    entry.counterparty_bank = entry
                        .counterparty
                        .and_then(|c| closing.account(&c))
                        .map(|a| a.bank.clone());
                }
            }
        }
        Ok(out)
    }
}

/// Gives each booking its balance after it, from `opening`; checks the last balance is
/// `closing`. Returns the opening balance and the entries.
fn price(
    what: &str,
    opening: i128,
    bookings: &[Booking],
    closing: u128,
) -> Result<(u128, Vec<Entry>), StatementError> {
    let total = bookings
        .iter()
        .map(|b| b.entry.signed_amount())
        .fold(0i128, i128::saturating_add);
    let unbalanced = || StatementError::Unbalanced {
        what: what.to_string(),
        opening,
        entries: total,
        closing,
    };
    let start = u128::try_from(opening).map_err(|_| unbalanced())?;
    let mut balance = opening;
    let mut entries = Vec::with_capacity(bookings.len());
    for booking in bookings {
        balance = balance.saturating_add(booking.entry.signed_amount());
        let balance_after = u128::try_from(balance).map_err(|_| unbalanced())?;
        entries.push(Entry {
            balance_after,
            ..booking.entry.clone()
        });
    }
    if u128::try_from(balance).ok() != Some(closing) {
        return Err(unbalanced());
    }
    Ok((start, entries))
}

/// The pool's movements agree with the settlement report: issues and redemptions bring the
/// opening balance to `pool_before`, the settlement to `pool_after`.
fn check_report(
    report: &SettlementReport,
    bank: &BankId,
    opening: u128,
    entries: &[Entry],
) -> Result<(), StatementError> {
    let Some(line) = report.banks.iter().find(|l| &l.bank == bank) else {
        return Ok(());
    };
    let before_settlement = entries
        .iter()
        .filter(|e| e.kind != EntryKind::Settlement)
        .map(Entry::signed_amount)
        .fold(
            i128::try_from(opening).unwrap_or(i128::MAX),
            i128::saturating_add,
        );
    if before_settlement != i128::from(line.pool_before.0) {
        return Err(StatementError::Unbalanced {
            what: format!("pool of {bank} before settlement"),
            opening: i128::try_from(opening).unwrap_or(i128::MAX),
            entries: before_settlement.saturating_sub(i128::try_from(opening).unwrap_or(0)),
            closing: u128::from(line.pool_before.0),
        });
    }
    Ok(())
}

/// Formats a quantity of minor units that may exceed `u64` with `decimals` places.
pub fn format_units(units: u128, decimals: u8) -> String {
    match u64::try_from(units) {
        Ok(small) => Amount(small).format(decimals),
        Err(_) => {
            let digits = units.to_string();
            let decimals = usize::from(decimals);
            if decimals == 0 {
                return digits;
            }
            let split = digits.len().saturating_sub(decimals);
            let (whole, fraction) = digits.split_at(split);
            format!("{whole}.{fraction}")
        }
    }
}

/// An entry as the API shows it: amounts and balances as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryView {
    /// The block that booked it.
    pub height: u64,
    /// Its place among the block's effects.
    pub position: u32,
    /// Certified time of that block (milliseconds since the Unix epoch).
    pub booked_at_ms: u64,
    /// The transaction (absent for a settlement).
    pub tx_hash: Option<Hash>,
    /// What booked it.
    pub kind: EntryKind,
    /// Credit or debit.
    pub direction: Direction,
    /// Amount, decimal.
    pub amount: String,
    /// The payer's end-to-end id (transfers).
    pub end_to_end_id: Option<String>,
    /// The payer's reference (transfers).
    pub reference: Option<String>,
    /// The other account of a transfer.
    pub counterparty: Option<AccountId>,
    /// The other account's bank.
    pub counterparty_bank: Option<BankId>,
    /// Booked balance after the entry, decimal.
    pub balance_after: String,
}

/// A customer account's statement as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountStatementView {
    /// The account.
    pub account: AccountId,
    /// Opening booked balance (balance + reserved), decimal.
    pub opening_balance: String,
    /// Closing booked balance, decimal: what the chain holds at the cycle's last height.
    pub closing_balance: String,
    /// Closing available balance (booked minus reserved for queued transfers), decimal.
    pub closing_available: String,
    /// Every entry of the cycle, in order.
    pub entries: Vec<EntryView>,
}

/// A pool statement as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolStatementView {
    /// Opening pool balance, decimal.
    pub opening_balance: String,
    /// Closing pool balance (after settlement), decimal.
    pub closing_balance: String,
    /// Every movement of the cycle, in order.
    pub entries: Vec<EntryView>,
}

/// `GET /v1/banks/{id}/statements/{cycle}`: a bank's statement of a closed cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BankStatementView {
    /// The cycle.
    pub cycle: u64,
    /// The bank.
    pub bank: BankId,
    /// Currency code.
    pub currency: String,
    /// First height of the cycle.
    pub start_height: u64,
    /// Height of the block that closed it.
    pub end_height: u64,
    /// Certified time of the opening balances (ms since the Unix epoch).
    pub from_ms: u64,
    /// Certified time of the closing block (ms since the Unix epoch).
    pub to_ms: u64,
    /// The bank's pool.
    pub pool: PoolStatementView,
    /// Each customer account of the bank with entries in the cycle, by id.
    pub accounts: Vec<AccountStatementView>,
    /// How many of the bank's customer accounts had no entry (their balance did not move).
    pub accounts_without_movement: u64,
}

impl EntryView {
    /// The view of `entry`.
    pub fn new(entry: &Entry, decimals: u8) -> EntryView {
        EntryView {
            height: entry.height,
            position: entry.position,
            booked_at_ms: entry.booked_at_ms,
            tx_hash: entry.tx_hash,
            kind: entry.kind,
            direction: entry.direction,
            amount: entry.amount.format(decimals),
            end_to_end_id: entry.end_to_end_id.clone(),
            reference: entry.reference.clone(),
            counterparty: entry.counterparty,
            counterparty_bank: entry.counterparty_bank.clone(),
            balance_after: format_units(entry.balance_after, decimals),
        }
    }
}

impl BankStatementView {
    /// The view of `statement` in a currency with `decimals` places.
    pub fn new(statement: &BankStatement, currency: &str, decimals: u8) -> BankStatementView {
        let entries = |entries: &[Entry]| -> Vec<EntryView> {
            entries
                .iter()
                .map(|e| EntryView::new(e, decimals))
                .collect()
        };
        BankStatementView {
            cycle: statement.cycle,
            bank: statement.bank.clone(),
            currency: currency.to_string(),
            start_height: statement.start_height,
            end_height: statement.end_height,
            from_ms: statement.from_ms,
            to_ms: statement.to_ms,
            pool: PoolStatementView {
                opening_balance: Amount(statement.pool.opening).format(decimals),
                closing_balance: Amount(statement.pool.closing).format(decimals),
                entries: entries(&statement.pool.entries),
            },
            accounts: statement
                .accounts
                .iter()
                .map(|a| AccountStatementView {
                    account: a.account,
                    opening_balance: format_units(a.opening, decimals),
                    closing_balance: format_units(a.closing, decimals),
                    closing_available: Amount(a.closing_available).format(decimals),
                    entries: entries(&a.entries),
                })
                .collect(),
            accounts_without_movement: statement.accounts_without_movement,
        }
    }
}

#[cfg(test)]
#[path = "statement_tests.rs"]
mod tests;
