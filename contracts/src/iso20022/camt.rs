//! camt.053.001.08 statements and camt.054.001.08 notifications, from
//! [`crate::statement`]; and a camt.053 read back, for reconciliation.
//!
//! A bank's statement of a cycle is one camt.053 document with one `Stmt` per account: the
//! bank's pool first (scheme `INTERPOOL-POOL`, the bank id), then each customer account
//! that moved, by id. Balances: `OPBD` (opening booked), `CLBD` (closing booked) and, for
//! customer accounts, `CLAV` (closing available: booked minus what queued transfers hold).
//! Every entry is `BOOK`ed, with the certified block time as booking date, the reference
//! `height-position`, and for a transfer its end-to-end id, the counterparty's account and
//! bank, the remittance text and the transaction hash.

use serde::Serialize;

use super::{
    amount, children, date, date_time, find, format_decimal, optional_text, short_account_id, text,
    IsoError, ACCOUNT_SCHEME, BANK_SCHEME, CAMT053, CAMT054, CURRENCY_AMOUNT, DECIMAL_NUMBER,
};
use crate::primitives::{AccountId, Amount, BankId, Hash};
use crate::statement::{BankStatement, Direction, Entry, EntryKind};

/// Scheme name of a pool's account id (the bank id).
pub const POOL_SCHEME: &str = "INTERPOOL-POOL";
/// Proxy type naming a customer account in full.
pub const ACCOUNT_PROXY: &str = "INTERPOOL-ACCOUNT";

#[derive(Serialize)]
struct Pagination {
    #[serde(rename = "PgNb")]
    page: u32,
    #[serde(rename = "LastPgInd")]
    last: bool,
}

#[derive(Serialize)]
struct GroupHeader {
    #[serde(rename = "MsgId")]
    id: String,
    #[serde(rename = "CreDtTm")]
    created: String,
    #[serde(rename = "MsgPgntn", skip_serializing_if = "Option::is_none")]
    pagination: Option<Pagination>,
}

#[derive(Serialize)]
pub(crate) struct CcyAmount {
    #[serde(rename = "@Ccy")]
    pub(crate) currency: String,
    #[serde(rename = "$text")]
    pub(crate) value: String,
}

#[derive(Serialize)]
struct Code {
    #[serde(rename = "Cd")]
    code: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Proprietary {
    #[serde(rename = "Prtry")]
    pub(crate) value: &'static str,
}

#[derive(Serialize)]
struct OtherId {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "SchmeNm")]
    scheme: Proprietary,
}

#[derive(Serialize)]
struct AccountIdentification {
    #[serde(rename = "Othr")]
    other: OtherId,
}

#[derive(Serialize)]
struct ProxyType {
    #[serde(rename = "Prtry")]
    value: &'static str,
}

#[derive(Serialize)]
struct Proxy {
    #[serde(rename = "Tp")]
    kind: ProxyType,
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Serialize)]
struct FinancialInstitution {
    #[serde(rename = "Othr")]
    other: OtherId,
}

#[derive(Serialize)]
pub(crate) struct Agent {
    #[serde(rename = "FinInstnId")]
    institution: FinancialInstitution,
}

impl Agent {
    pub(crate) fn of(bank: &BankId) -> Agent {
        Agent {
            institution: FinancialInstitution {
                other: OtherId {
                    id: bank.as_str().to_string(),
                    scheme: Proprietary { value: BANK_SCHEME },
                },
            },
        }
    }
}

/// A statement's account (`CashAccount39`) or a party's (`CashAccount38`): same elements.
#[derive(Serialize)]
pub(crate) struct Account {
    #[serde(rename = "Id")]
    id: AccountIdentification,
    #[serde(rename = "Ccy", skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
    #[serde(rename = "Prxy", skip_serializing_if = "Option::is_none")]
    proxy: Option<Proxy>,
    #[serde(rename = "Svcr", skip_serializing_if = "Option::is_none")]
    servicer: Option<Agent>,
}

impl Account {
    /// A customer account: short id and the full id as proxy.
    pub(crate) fn customer(id: &AccountId, currency: Option<&str>, bank: Option<&BankId>) -> Self {
        Account {
            id: AccountIdentification {
                other: OtherId {
                    id: short_account_id(id),
                    scheme: Proprietary {
                        value: ACCOUNT_SCHEME,
                    },
                },
            },
            currency: currency.map(str::to_string),
            proxy: Some(Proxy {
                kind: ProxyType {
                    value: ACCOUNT_PROXY,
                },
                id: id.to_hex(),
            }),
            servicer: bank.map(Agent::of),
        }
    }

    fn pool(bank: &BankId, currency: &str) -> Self {
        Account {
            id: AccountIdentification {
                other: OtherId {
                    id: bank.as_str().to_string(),
                    scheme: Proprietary { value: POOL_SCHEME },
                },
            },
            currency: Some(currency.to_string()),
            proxy: None,
            servicer: Some(Agent::of(bank)),
        }
    }
}

#[derive(Serialize)]
struct DateTimeChoice {
    #[serde(rename = "DtTm")]
    value: String,
}

#[derive(Serialize)]
struct DateChoice {
    #[serde(rename = "Dt")]
    value: String,
}

#[derive(Serialize)]
struct BalanceType {
    #[serde(rename = "CdOrPrtry")]
    code: Code,
}

#[derive(Serialize)]
struct Balance {
    #[serde(rename = "Tp")]
    kind: BalanceType,
    #[serde(rename = "Amt")]
    amount: CcyAmount,
    #[serde(rename = "CdtDbtInd")]
    indicator: &'static str,
    #[serde(rename = "Dt")]
    at: DateTimeChoice,
}

#[derive(Serialize)]
struct NumberAndSum {
    #[serde(rename = "NbOfNtries")]
    count: String,
    #[serde(rename = "Sum")]
    sum: String,
}

#[derive(Serialize)]
struct NetEntry {
    #[serde(rename = "Amt")]
    amount: String,
    #[serde(rename = "CdtDbtInd")]
    indicator: &'static str,
}

#[derive(Serialize)]
struct TotalEntries {
    #[serde(rename = "NbOfNtries")]
    count: String,
    #[serde(rename = "Sum")]
    sum: String,
    #[serde(rename = "TtlNetNtry")]
    net: NetEntry,
}

#[derive(Serialize)]
struct Summary {
    #[serde(rename = "TtlNtries")]
    total: TotalEntries,
    #[serde(rename = "TtlCdtNtries")]
    credits: NumberAndSum,
    #[serde(rename = "TtlDbtNtries")]
    debits: NumberAndSum,
}

#[derive(Serialize)]
struct Family {
    #[serde(rename = "Cd")]
    code: &'static str,
    #[serde(rename = "SubFmlyCd")]
    sub_family: &'static str,
}

#[derive(Serialize)]
struct Domain {
    #[serde(rename = "Cd")]
    code: &'static str,
    #[serde(rename = "Fmly")]
    family: Family,
}

#[derive(Serialize)]
struct TransactionCode {
    #[serde(rename = "Domn")]
    domain: Domain,
}

#[derive(Serialize)]
struct References {
    #[serde(rename = "EndToEndId", skip_serializing_if = "Option::is_none")]
    end_to_end_id: Option<String>,
    #[serde(rename = "TxId", skip_serializing_if = "Option::is_none")]
    tx_id: Option<String>,
}

#[derive(Serialize)]
struct RelatedParties {
    #[serde(rename = "DbtrAcct", skip_serializing_if = "Option::is_none")]
    debtor_account: Option<Account>,
    #[serde(rename = "CdtrAcct", skip_serializing_if = "Option::is_none")]
    creditor_account: Option<Account>,
}

#[derive(Serialize)]
struct RelatedAgents {
    #[serde(rename = "DbtrAgt", skip_serializing_if = "Option::is_none")]
    debtor: Option<Agent>,
    #[serde(rename = "CdtrAgt", skip_serializing_if = "Option::is_none")]
    creditor: Option<Agent>,
}

#[derive(Serialize)]
pub(crate) struct Remittance {
    #[serde(rename = "Ustrd")]
    pub(crate) text: String,
}

#[derive(Serialize)]
struct TransactionDetails {
    #[serde(rename = "Refs")]
    references: References,
    #[serde(rename = "Amt")]
    amount: CcyAmount,
    #[serde(rename = "CdtDbtInd")]
    indicator: &'static str,
    #[serde(rename = "RltdPties", skip_serializing_if = "Option::is_none")]
    parties: Option<RelatedParties>,
    #[serde(rename = "RltdAgts", skip_serializing_if = "Option::is_none")]
    agents: Option<RelatedAgents>,
    #[serde(rename = "RmtInf", skip_serializing_if = "Option::is_none")]
    remittance: Option<Remittance>,
    #[serde(rename = "AddtlTxInf", skip_serializing_if = "Option::is_none")]
    additional: Option<String>,
}

#[derive(Serialize)]
struct EntryDetails {
    #[serde(rename = "TxDtls")]
    transaction: TransactionDetails,
}

#[derive(Serialize)]
struct ReportEntry {
    #[serde(rename = "NtryRef")]
    reference: String,
    #[serde(rename = "Amt")]
    amount: CcyAmount,
    #[serde(rename = "CdtDbtInd")]
    indicator: &'static str,
    #[serde(rename = "Sts")]
    status: Code,
    #[serde(rename = "BookgDt")]
    booked: DateTimeChoice,
    #[serde(rename = "ValDt")]
    value_date: DateChoice,
    #[serde(rename = "AcctSvcrRef")]
    servicer_reference: String,
    #[serde(rename = "BkTxCd")]
    code: TransactionCode,
    #[serde(rename = "NtryDtls", skip_serializing_if = "Option::is_none")]
    details: Option<EntryDetails>,
    #[serde(rename = "AddtlNtryInf", skip_serializing_if = "Option::is_none")]
    additional: Option<String>,
}

#[derive(Serialize)]
struct Statement {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "StmtPgntn")]
    pagination: Pagination,
    #[serde(rename = "ElctrncSeqNb")]
    sequence: String,
    #[serde(rename = "CreDtTm")]
    created: String,
    #[serde(rename = "FrToDt")]
    period: Period,
    #[serde(rename = "Acct")]
    account: Account,
    #[serde(rename = "Bal")]
    balances: Vec<Balance>,
    #[serde(rename = "TxsSummry", skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
    #[serde(rename = "Ntry")]
    entries: Vec<ReportEntry>,
    #[serde(rename = "AddtlStmtInf")]
    additional: String,
}

#[derive(Serialize)]
struct Period {
    #[serde(rename = "FrDtTm")]
    from: String,
    #[serde(rename = "ToDtTm")]
    to: String,
}

#[derive(Serialize)]
struct StatementMessage {
    #[serde(rename = "GrpHdr")]
    header: GroupHeader,
    #[serde(rename = "Stmt")]
    statements: Vec<Statement>,
}

#[derive(Serialize)]
struct Camt053 {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "BkToCstmrStmt")]
    message: StatementMessage,
}

#[derive(Serialize)]
struct Notification {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "CreDtTm")]
    created: String,
    #[serde(rename = "Acct")]
    account: Account,
    #[serde(rename = "Ntry")]
    entry: ReportEntry,
}

#[derive(Serialize)]
struct NotificationMessage {
    #[serde(rename = "GrpHdr")]
    header: GroupHeader,
    #[serde(rename = "Ntfctn")]
    notification: Notification,
}

#[derive(Serialize)]
struct Camt054 {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "BkToCstmrDbtCdtNtfctn")]
    message: NotificationMessage,
}

fn indicator(direction: Direction) -> &'static str {
    match direction {
        Direction::Credit => "CRDT",
        Direction::Debit => "DBIT",
    }
}

fn ccy(currency: &str, value: String) -> CcyAmount {
    CcyAmount {
        currency: currency.to_string(),
        value,
    }
}

fn balance(
    code: &'static str,
    currency: &str,
    units: u128,
    decimals: u8,
    at_ms: u64,
) -> Result<Balance, IsoError> {
    let value = format_decimal(units, decimals, CURRENCY_AMOUNT, || {
        format!("Bal/Amt ({code})")
    })?;
    Ok(Balance {
        kind: BalanceType {
            code: Code { code },
        },
        amount: ccy(currency, value),
        indicator: "CRDT",
        at: DateTimeChoice {
            value: date_time(at_ms),
        },
    })
}

/// `error` with the element it names placed inside `place` (a `Stmt`), so that an amount
/// too large for its type is found in a statement of many accounts.
fn inside(place: &str, error: IsoError) -> IsoError {
    match error {
        IsoError::AmountNotRepresentable {
            element,
            value,
            decimals,
            facets,
        } => IsoError::AmountNotRepresentable {
            element: format!("{place}/{element}"),
            value,
            decimals,
            facets,
        },
        other => other,
    }
}

fn transaction_code(entry: &Entry) -> TransactionCode {
    let (code, family, sub_family) = match (entry.kind, entry.direction) {
        (EntryKind::Transfer, Direction::Credit) => ("PMNT", "RCDT", "DMCT"),
        (EntryKind::Transfer, Direction::Debit) => ("PMNT", "ICDT", "DMCT"),
        (EntryKind::Deposit, _) => ("PMNT", "CNTR", "CDPT"),
        (EntryKind::Withdraw, _) => ("PMNT", "CNTR", "CWDL"),
        (EntryKind::Issue | EntryKind::Redeem | EntryKind::Settlement, _) => {
            ("CAMT", "ACCB", "OTHR")
        }
    };
    TransactionCode {
        domain: Domain {
            code,
            family: Family {
                code: family,
                sub_family,
            },
        },
    }
}

/// The entry's reference: `height-position`, unique on the chain for each entry of one
/// account.
pub fn entry_reference(entry: &Entry) -> String {
    format!("{}-{}", entry.height, entry.position)
}

fn tx_id(hash: &Hash) -> String {
    hash.to_hex().get(..32).unwrap_or_default().to_string()
}

fn report_entry(entry: &Entry, currency: &str, decimals: u8) -> Result<ReportEntry, IsoError> {
    // `Ntry/Amt` and `TxDtls/Amt`: both ActiveOrHistoricCurrencyAndAmount.
    let amount = format_decimal(
        u128::from(entry.amount.0),
        decimals,
        CURRENCY_AMOUNT,
        || format!("Ntry/Amt (entry {})", entry_reference(entry)),
    )?;
    let details = entry.tx_hash.map(|hash| {
        let (parties, agents) = match (entry.counterparty, entry.direction) {
            (Some(other), Direction::Credit) => (
                Some(RelatedParties {
                    debtor_account: Some(Account::customer(&other, None, None)),
                    creditor_account: None,
                }),
                entry.counterparty_bank.as_ref().map(|bank| RelatedAgents {
                    debtor: Some(Agent::of(bank)),
                    creditor: None,
                }),
            ),
            (Some(other), Direction::Debit) => (
                Some(RelatedParties {
                    debtor_account: None,
                    creditor_account: Some(Account::customer(&other, None, None)),
                }),
                entry.counterparty_bank.as_ref().map(|bank| RelatedAgents {
                    debtor: None,
                    creditor: Some(Agent::of(bank)),
                }),
            ),
            (None, _) => (None, None),
        };
        EntryDetails {
            transaction: TransactionDetails {
                references: References {
                    end_to_end_id: entry.end_to_end_id.as_deref().map(super::xml_safe),
                    tx_id: Some(tx_id(&hash)),
                },
                amount: ccy(currency, amount.clone()),
                indicator: indicator(entry.direction),
                parties,
                agents,
                remittance: entry
                    .reference
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .map(|text| Remittance {
                        text: super::xml_safe(text),
                    }),
                additional: Some(format!("tx {hash}")),
            },
        }
    });
    Ok(ReportEntry {
        reference: entry_reference(entry),
        amount: ccy(currency, amount),
        indicator: indicator(entry.direction),
        status: Code { code: "BOOK" },
        booked: DateTimeChoice {
            value: date_time(entry.booked_at_ms),
        },
        value_date: DateChoice {
            value: date(entry.booked_at_ms),
        },
        servicer_reference: entry_reference(entry),
        code: transaction_code(entry),
        details,
        additional: match entry.kind {
            EntryKind::Settlement => Some(format!("net settlement at height {}", entry.height)),
            EntryKind::Issue => Some("settlement money issued by the authority".into()),
            EntryKind::Redeem => Some("settlement money redeemed by the authority".into()),
            EntryKind::Deposit => Some("cash in by the bank".into()),
            EntryKind::Withdraw => Some("cash out by the bank".into()),
            EntryKind::Transfer => None,
        },
    })
}

fn summary(entries: &[Entry], decimals: u8) -> Result<Summary, IsoError> {
    let (mut credits, mut debits, mut credit_sum, mut debit_sum) = (0u64, 0u64, 0u128, 0u128);
    for entry in entries {
        match entry.direction {
            Direction::Credit => {
                credits = credits.saturating_add(1);
                credit_sum = credit_sum.saturating_add(u128::from(entry.amount.0));
            }
            Direction::Debit => {
                debits = debits.saturating_add(1);
                debit_sum = debit_sum.saturating_add(u128::from(entry.amount.0));
            }
        }
    }
    let (net, net_indicator) = if credit_sum >= debit_sum {
        (credit_sum.saturating_sub(debit_sum), "CRDT")
    } else {
        (debit_sum.saturating_sub(credit_sum), "DBIT")
    };
    // Sums are DecimalNumber, the net NonNegativeDecimalNumber: 17 fraction digits, 18 in
    // all (a cycle's turnover can pass 18 digits where no single amount does).
    let sum = |units: u128, element: &'static str| {
        format_decimal(units, decimals, DECIMAL_NUMBER, || element.to_string())
    };
    Ok(Summary {
        total: TotalEntries {
            count: credits.saturating_add(debits).to_string(),
            sum: sum(
                credit_sum.saturating_add(debit_sum),
                "TxsSummry/TtlNtries/Sum",
            )?,
            net: NetEntry {
                amount: sum(net, "TxsSummry/TtlNtries/TtlNetNtry/Amt")?,
                indicator: net_indicator,
            },
        },
        credits: NumberAndSum {
            count: credits.to_string(),
            sum: sum(credit_sum, "TxsSummry/TtlCdtNtries/Sum")?,
        },
        debits: NumberAndSum {
            count: debits.to_string(),
            sum: sum(debit_sum, "TxsSummry/TtlDbtNtries/Sum")?,
        },
    })
}

/// The message id of a bank's statement of a cycle (`Max35Text`: a bank id is at most 12
/// characters, a cycle number at most 20 digits).
pub fn statement_message_id(bank: &BankId, cycle: u64) -> String {
    format!("{bank}-C{cycle}")
}

/// The bank's statement of a cycle as a camt.053.001.08 document. Its creation time is the
/// closing block's, so every node writes the same document. An amount, balance or sum its
/// XSD type cannot hold (a chain with more than 5 decimals, or 19 digits and more) is
/// [`IsoError::AmountNotRepresentable`], naming the `Stmt` and the element: no document.
pub fn camt053(
    statement: &BankStatement,
    currency: &str,
    decimals: u8,
) -> Result<String, IsoError> {
    let created = date_time(statement.to_ms);
    let message_id = statement_message_id(&statement.bank, statement.cycle);
    let period = || Period {
        from: date_time(statement.from_ms),
        to: date_time(statement.to_ms),
    };
    // One `Stmt`: what differs between the pool's and an account's is passed in (its
    // balances as `(code, minor units, at)`).
    let stmt = |id: String,
                account: Account,
                balances: &[(&'static str, u128, u64)],
                entries: &[Entry],
                what: String|
     -> Result<Statement, IsoError> {
        let place = format!("Stmt {id} ({what})");
        let written = || -> Result<_, IsoError> {
            let balances = balances
                .iter()
                .map(|&(code, units, at_ms)| balance(code, currency, units, decimals, at_ms))
                .collect::<Result<Vec<_>, _>>()?;
            // Entries before their sums: an entry too large is named, not only its sum.
            let written_entries = entries
                .iter()
                .map(|e| report_entry(e, currency, decimals))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((balances, summary(entries, decimals)?, written_entries))
        };
        let (balances, summary, entries) = written().map_err(|e| inside(&place, e))?;
        Ok(Statement {
            id,
            pagination: Pagination {
                page: 1,
                last: true,
            },
            sequence: statement.cycle.to_string(),
            created: created.clone(),
            period: period(),
            account,
            balances,
            summary: Some(summary),
            entries,
            additional: format!(
                "{what} in cycle {} (heights {} to {})",
                statement.cycle, statement.start_height, statement.end_height
            ),
        })
    };
    let (from, to) = (statement.from_ms, statement.to_ms);
    let pool = &statement.pool;
    let mut statements = Vec::with_capacity(statement.accounts.len().saturating_add(1));
    statements.push(stmt(
        format!("C{}-POOL", statement.cycle),
        Account::pool(&statement.bank, currency),
        &[
            ("OPBD", u128::from(pool.opening), from),
            ("CLBD", u128::from(pool.closing), to),
        ],
        &pool.entries,
        format!("settlement pool of {}", statement.bank),
    )?);
    for (n, account) in statement.accounts.iter().enumerate() {
        statements.push(stmt(
            format!("C{}-{}", statement.cycle, n.saturating_add(1)),
            Account::customer(&account.account, Some(currency), Some(&statement.bank)),
            &[
                ("OPBD", account.opening, from),
                ("CLBD", account.closing, to),
                ("CLAV", u128::from(account.closing_available), to),
            ],
            &account.entries,
            format!("account {}", account.account),
        )?);
    }
    super::write(
        "Document",
        &Camt053 {
            xmlns: CAMT053,
            message: StatementMessage {
                header: GroupHeader {
                    id: message_id,
                    created,
                    pagination: Some(Pagination {
                        page: 1,
                        last: true,
                    }),
                },
                statements,
            },
        },
    )
}

/// Whose entry a notification is about.
pub enum Owner<'a> {
    /// A customer account (and its bank).
    Customer(&'a AccountId, &'a BankId),
    /// A bank's pool.
    Pool(&'a BankId),
}

/// One entry as a camt.054.001.08 notification ([`IsoError::AmountNotRepresentable`] if its
/// amount's XSD type cannot hold it).
pub fn camt054(
    owner: Owner<'_>,
    entry: &Entry,
    currency: &str,
    decimals: u8,
) -> Result<String, IsoError> {
    let reference = entry_reference(entry);
    let (account, owner_id) = match owner {
        Owner::Customer(id, bank) => (
            Account::customer(id, Some(currency), Some(bank)),
            short_account_id(id),
        ),
        Owner::Pool(bank) => (Account::pool(bank, currency), bank.as_str().to_string()),
    };
    // Max35Text, and unique per entry (a bank's system may drop a notification whose id it
    // has seen): the account's first 12 hex digits (or the pool's bank) and the reference
    // when they fit, which they do below height 10^8 or so; past that, a digest of the
    // whole owner and reference. Cutting the readable form short made two entries of one
    // block share an id.
    let short_owner: String = owner_id.chars().take(12).collect();
    let readable = format!("IP-NTF-{short_owner}-{reference}");
    let id = if readable.chars().count() <= 35 {
        readable
    } else {
        let digest = crate::primitives::sha256(&[owner_id.as_bytes(), b"/", reference.as_bytes()]);
        format!("IP-NTF-{}", &digest.to_hex()[..28])
    };
    let created = date_time(entry.booked_at_ms);
    let entry = report_entry(entry, currency, decimals)?;
    super::write(
        "Document",
        &Camt054 {
            xmlns: CAMT054,
            message: NotificationMessage {
                header: GroupHeader {
                    id: id.clone(),
                    created: created.clone(),
                    pagination: None,
                },
                notification: Notification {
                    id,
                    created,
                    account,
                    entry,
                },
            },
        },
    )
}

/// Whose statement a camt.053 `Stmt` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementAccount {
    /// An Interpool customer account (its full id from the proxy).
    Customer(AccountId),
    /// A bank's settlement pool.
    Pool(BankId),
    /// Another account identifier, as written.
    Other(String),
}

/// An entry read from a camt.053.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    /// The entry reference (`NtryRef`), if any.
    pub reference: Option<String>,
    /// Amount.
    pub amount: Amount,
    /// Credit or debit.
    pub direction: Direction,
    /// End-to-end id of its transaction, if any.
    pub end_to_end_id: Option<String>,
}

/// One `Stmt` read from a camt.053.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadStatement {
    /// The account.
    pub account: StatementAccount,
    /// The `OPBD` balance, signed, if present.
    pub opening: Option<i128>,
    /// The `CLBD` balance, signed, if present.
    pub closing: Option<i128>,
    /// The entries, in document order.
    pub entries: Vec<ReadEntry>,
    /// The currencies its amounts are in (`Ccy`), each once, in the order first met: one
    /// for a well-formed statement.
    pub currencies: Vec<String>,
}

fn read_direction(node: roxmltree::Node<'_, '_>, what: &str) -> Result<Direction, IsoError> {
    match text(node, "CdtDbtInd", what)?.as_str() {
        "CRDT" => Ok(Direction::Credit),
        "DBIT" => Ok(Direction::Debit),
        other => Err(IsoError::Invalid {
            element: format!("{what}/CdtDbtInd"),
            message: format!("{other:?} is neither CRDT nor DBIT"),
        }),
    }
}

/// Reads every statement of a camt.053.001.08 document (a bank's own books, say) in the
/// currency's `decimals`.
pub fn read_camt053(xml: &str, decimals: u8) -> Result<Vec<ReadStatement>, IsoError> {
    // A file the user chose, not a message sent to a node: as large as it is.
    let document = super::parse_within(xml, CAMT053, usize::MAX, u32::MAX)?;
    let root = document.root_element();
    let message =
        find(root, "BkToCstmrStmt")?.ok_or_else(|| IsoError::Missing("BkToCstmrStmt".into()))?;
    let mut out = Vec::new();
    for stmt in children(message, "Stmt") {
        let account = find(stmt, "Acct")?.ok_or_else(|| IsoError::Missing("Stmt/Acct".into()))?;
        let scheme = optional_text(account, "Id/Othr/SchmeNm/Prtry")?;
        let account = if find(account, "Prxy")?.is_some() {
            StatementAccount::Customer(super::account(stmt, "Acct")?)
        } else if scheme.as_deref() == Some(POOL_SCHEME) {
            let id = text(account, "Id/Othr/Id", "Stmt/Acct")?;
            StatementAccount::Pool(BankId::new(id.clone()).map_err(|e| IsoError::Invalid {
                element: "Stmt/Acct/Id/Othr/Id".into(),
                message: format!("{id:?}: {e}"),
            })?)
        } else {
            StatementAccount::Other(
                optional_text(account, "Id/IBAN")?
                    .or(optional_text(account, "Id/Othr/Id")?)
                    .unwrap_or_default(),
            )
        };
        let (mut opening, mut closing) = (None, None);
        let mut currencies: Vec<String> = Vec::new();
        let mut met = |currency: String| {
            if !currencies.contains(&currency) {
                currencies.push(currency);
            }
        };
        for bal in children(stmt, "Bal") {
            let code = text(bal, "Tp/CdOrPrtry/Cd", "Stmt/Bal")?;
            let (currency, value) = amount(bal, "Amt", decimals)?;
            met(currency);
            let signed = match read_direction(bal, "Stmt/Bal")? {
                Direction::Credit => i128::from(value.0),
                Direction::Debit => i128::from(value.0).saturating_neg(),
            };
            match code.as_str() {
                "OPBD" => opening = Some(signed),
                "CLBD" => closing = Some(signed),
                _ => {}
            }
        }
        let mut entries = Vec::new();
        for ntry in children(stmt, "Ntry") {
            let (currency, value) = amount(ntry, "Amt", decimals)?;
            met(currency);
            entries.push(ReadEntry {
                reference: optional_text(ntry, "NtryRef")?,
                amount: value,
                direction: read_direction(ntry, "Stmt/Ntry")?,
                end_to_end_id: super::exact_text(ntry, "NtryDtls/TxDtls/Refs/EndToEndId")?,
            });
        }
        out.push(ReadStatement {
            account,
            opening,
            closing,
            entries,
            currencies,
        });
    }
    Ok(out)
}
