//! `reconcile`: a bank's own books of a cycle against the chain's statement, entry by entry.
//!
//! Entries are matched by account, id and direction; the id is the end-to-end id, or for an
//! entry without one (a deposit or a withdrawal) its entry reference `height-position`. The
//! same key may hold several entries (two payers may use one end-to-end id to pay the same
//! account): they are matched as multisets, equal amounts first. What is left is a break:
//!
//! * `missing_in_books`: on the chain, not in the books;
//! * `missing_on_chain`: in the books, not on the chain;
//! * `amount_differs`: both have the entry, with different amounts;
//! * `duplicate_in_books`: the books hold the entry more often than the chain does.
//!
//! Each account's closing balance is compared too: the chain's closing balance against the
//! books' (a camt.053 of the bank's own states it; for CSV books it is the chain's opening
//! balance plus the books' entries).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use interpool_contracts::iso20022::camt::{read_camt053, StatementAccount};
use interpool_contracts::statement::{BankStatementView, Direction};
use interpool_contracts::{AccountId, Amount, BankId};
use serde::Serialize;

use crate::client::Node;
use crate::commands::iso::fetch_statement;
use crate::exit::Exit;
use crate::output::Output;

/// One entry, from either side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    account: AccountId,
    id: String,
    direction: Direction,
    amount: Amount,
    /// Where it is: the chain's height, or the books' line number.
    at: String,
}

/// A break.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Break {
    kind: &'static str,
    account: AccountId,
    id: String,
    direction: Direction,
    chain_amount: Option<String>,
    books_amount: Option<String>,
    /// Chain height and books line, where known.
    chain_at: Option<String>,
    books_at: Option<String>,
}

/// An account whose closing balances differ.
#[derive(Debug, Serialize)]
struct BalanceDifference {
    account: AccountId,
    chain_closing: String,
    books_closing: String,
    /// Books minus chain.
    difference: String,
}

#[derive(Serialize)]
struct Report {
    bank: BankId,
    cycle: u64,
    agreed: bool,
    chain_entries: usize,
    books_entries: usize,
    breaks: Vec<Break>,
    balance_differences: Vec<BalanceDifference>,
}

/// The books as read: entries, and the closing balances they state (camt.053 only).
struct Books {
    lines: Vec<Line>,
    closing: BTreeMap<AccountId, i128>,
}

fn parse_direction(text: &str) -> Option<Direction> {
    match text.trim().to_ascii_lowercase().as_str() {
        "credit" | "crdt" | "c" | "cr" => Some(Direction::Credit),
        "debit" | "dbit" | "d" | "dr" => Some(Direction::Debit),
        _ => None,
    }
}

/// Reads CSV books: `end_to_end_id,account,amount,direction` a line; a header line (its
/// first field `end_to_end_id`) and blank lines are skipped. Fields may be quoted.
fn read_csv(text: &str, decimals: u8) -> Result<Books> {
    // Spreadsheets write a byte-order mark first.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    let mut header_possible = true;
    for (number, raw) in text.lines().enumerate() {
        let number = number + 1;
        let raw = raw.trim_end_matches('\r');
        // Comments only before the data: an end-to-end id may start with `#`.
        if raw.trim().is_empty() || (header_possible && raw.trim_start().starts_with('#')) {
            continue;
        }
        let fields = split_csv(raw).with_context(|| format!("books line {number}"))?;
        // The first line that is not blank or a comment may be the header.
        if std::mem::take(&mut header_possible)
            && fields
                .first()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("end_to_end_id"))
        {
            continue;
        }
        let [id, account, amount, direction] = fields.as_slice() else {
            bail!(
                "books line {number}: {} fields, expected 4 (end_to_end_id,account,amount,direction)",
                fields.len()
            );
        };
        let account: AccountId = account
            .trim()
            .parse()
            .map_err(|e| anyhow!("books line {number}: account {account:?}: {e}"))?;
        let amount = Amount::parse(amount.trim(), decimals)
            .map_err(|e| anyhow!("books line {number}: amount {amount:?}: {e}"))?;
        let direction = parse_direction(direction).ok_or_else(|| {
            anyhow!("books line {number}: direction {direction:?} is neither credit nor debit")
        })?;
        if id.trim().is_empty() {
            bail!("books line {number}: no end-to-end id (or entry reference)");
        }
        lines.push(Line {
            account,
            // As written: an end-to-end id may begin or end with a space (quote it).
            id: id.clone(),
            direction,
            amount,
            at: format!("line {number}"),
        });
    }
    Ok(Books {
        lines,
        closing: BTreeMap::new(),
    })
}

/// Splits one CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        bail!("an unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

/// Reads a camt.053 of the bank's own: its customer accounts' entries and closing balances,
/// every amount in `currency` (the chain's: 100 USD in the books is no match for 100 EUR on
/// the chain).
fn read_camt(text: &str, decimals: u8, currency: &str) -> Result<Books> {
    let statements =
        read_camt053(text, decimals).map_err(|e| anyhow!("the books' camt.053: {e}"))?;
    let mut lines = Vec::new();
    let mut closing = BTreeMap::new();
    for statement in statements {
        if let Some(other) = statement.currencies.iter().find(|c| *c != currency) {
            bail!("the books' camt.053 has amounts in {other}; the chain's currency is {currency}");
        }
        let StatementAccount::Customer(account) = statement.account else {
            continue;
        };
        if let Some(balance) = statement.closing {
            closing.insert(account, balance);
        }
        for (n, entry) in statement.entries.into_iter().enumerate() {
            let id = entry.end_to_end_id.or(entry.reference).ok_or_else(|| {
                anyhow!("an entry of {account} has neither EndToEndId nor NtryRef")
            })?;
            lines.push(Line {
                account,
                id,
                direction: entry.direction,
                amount: entry.amount,
                at: format!("entry {} of {}", n + 1, &account.to_hex()[..12]),
            });
        }
    }
    Ok(Books { lines, closing })
}

fn chain_lines(statement: &BankStatementView, decimals: u8) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    for account in &statement.accounts {
        for entry in &account.entries {
            let id = entry
                .end_to_end_id
                .clone()
                .unwrap_or_else(|| format!("{}-{}", entry.height, entry.position));
            lines.push(Line {
                account: account.account,
                id,
                direction: entry.direction,
                amount: Amount::parse(&entry.amount, decimals)
                    .map_err(|e| anyhow!("the node's statement: amount {:?}: {e}", entry.amount))?,
                at: format!("height {}", entry.height),
            });
        }
    }
    Ok(lines)
}

fn signed(line: &Line) -> i128 {
    match line.direction {
        Direction::Credit => i128::from(line.amount.0),
        Direction::Debit => -i128::from(line.amount.0),
    }
}

/// The breaks between `chain` and `books`.
fn compare(chain: &[Line], books: &[Line], decimals: u8) -> Vec<Break> {
    type Key = (AccountId, String, Direction);
    let mut keys: BTreeMap<Key, (Vec<&Line>, Vec<&Line>)> = BTreeMap::new();
    for line in chain {
        keys.entry((line.account, line.id.clone(), line.direction))
            .or_default()
            .0
            .push(line);
    }
    for line in books {
        keys.entry((line.account, line.id.clone(), line.direction))
            .or_default()
            .1
            .push(line);
    }
    let format = |amount: Amount| amount.format(decimals);
    let mut breaks = Vec::new();
    for ((account, id, direction), (mut on_chain, mut in_books)) in keys {
        // Equal amounts match first.
        on_chain.retain(
            |c| match in_books.iter().position(|b| b.amount == c.amount) {
                Some(i) => {
                    in_books.remove(i);
                    false
                }
                None => true,
            },
        );
        let break_of = |kind, c: Option<&Line>, b: Option<&Line>| Break {
            kind,
            account,
            id: id.clone(),
            direction,
            chain_amount: c.map(|c| format(c.amount)),
            books_amount: b.map(|b| format(b.amount)),
            chain_at: c.map(|c| c.at.clone()),
            books_at: b.map(|b| b.at.clone()),
        };
        let pairs = on_chain.len().min(in_books.len());
        for (c, b) in on_chain.iter().zip(&in_books) {
            breaks.push(break_of("amount_differs", Some(c), Some(b)));
        }
        let total_chain = chain
            .iter()
            .filter(|l| l.account == account && l.id == id && l.direction == direction)
            .count();
        for c in on_chain.iter().skip(pairs) {
            breaks.push(break_of("missing_in_books", Some(c), None));
        }
        for b in in_books.iter().skip(pairs) {
            // The chain has the entry, the books hold it once more: a duplicate.
            let kind = if total_chain > 0 {
                "duplicate_in_books"
            } else {
                "missing_on_chain"
            };
            breaks.push(break_of(kind, None, Some(b)));
        }
    }
    breaks
}

/// Runs `reconcile`.
pub fn reconcile(
    node_url: &str,
    out: Output,
    bank: &BankId,
    cycle: u64,
    books_path: &Path,
) -> Result<Exit> {
    let node = Node::new(node_url)?;
    let chain_status = node.status().context("cannot read the chain's decimals")?;
    let (decimals, currency) = (chain_status.decimals, chain_status.currency);
    let text = std::fs::read_to_string(books_path)
        .with_context(|| format!("cannot read the books {}", books_path.display()))?;
    let books = if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
    {
        read_camt(&text, decimals, &currency)?
    } else {
        read_csv(&text, decimals)?
    };
    let statement = fetch_statement(&node, bank, Some(cycle))?;
    // The node's answer must be the statement asked for, in the chain's currency.
    if statement.bank != *bank || statement.cycle != cycle || statement.currency != currency {
        bail!(
            "the node answered the statement of {} for cycle {} in {}, not of {bank} for cycle \
             {cycle} in {currency}",
            statement.bank,
            statement.cycle,
            statement.currency
        );
    }
    let chain = chain_lines(&statement, decimals)?;
    let breaks = compare(&chain, &books.lines, decimals);

    // Closing balances, per account either side names.
    let mut balance_differences = Vec::new();
    let parse = |text: &str| -> Result<i128> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = format!("{whole}{fraction:0<width$}", width = usize::from(decimals));
        digits
            .parse::<i128>()
            .map_err(|e| anyhow!("the node's statement: balance {text:?}: {e}"))
    };
    let format_signed = |value: i128| Amount::format_signed(value, decimals);
    for account in &statement.accounts {
        let opening = parse(&account.opening_balance)?;
        let closing = parse(&account.closing_balance)?;
        let books_closing = match books.closing.get(&account.account) {
            Some(stated) => *stated,
            None => books
                .lines
                .iter()
                .filter(|l| l.account == account.account)
                .map(signed)
                .fold(opening, |sum, amount| sum + amount),
        };
        if books_closing != closing {
            balance_differences.push(BalanceDifference {
                account: account.account,
                chain_closing: format_signed(closing),
                books_closing: format_signed(books_closing),
                difference: format_signed(books_closing - closing),
            });
        }
    }
    let report = Report {
        bank: bank.clone(),
        cycle,
        agreed: breaks.is_empty() && balance_differences.is_empty(),
        chain_entries: chain.len(),
        books_entries: books.lines.len(),
        breaks,
        balance_differences,
    };
    out.show(&report, || {
        let mut text = format!(
            "{} cycle {}: {} entries on the chain, {} in the books: {}\n",
            report.bank,
            report.cycle,
            report.chain_entries,
            report.books_entries,
            if report.agreed {
                "they agree"
            } else {
                "they do not agree"
            }
        );
        for b in &report.breaks {
            text.push_str(&format!(
                "break {:<18} {} {:<35} {:<6} chain {:>14} books {:>14}  {}\n",
                b.kind,
                &b.account.to_hex()[..16],
                b.id,
                b.direction.as_str(),
                b.chain_amount.as_deref().unwrap_or("-"),
                b.books_amount.as_deref().unwrap_or("-"),
                [b.chain_at.as_deref(), b.books_at.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for d in &report.balance_differences {
            text.push_str(&format!(
                "closing balance of {}: chain {}, books {} (difference {})\n",
                &d.account.to_hex()[..16],
                d.chain_closing,
                d.books_closing,
                d.difference
            ));
        }
        text.trim_end().to_string()
    })?;
    Ok(if report.agreed {
        Exit::Success
    } else {
        Exit::Failure
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u8) -> AccountId {
        AccountId([n; 32])
    }

    fn line(n: u8, id: &str, direction: Direction, amount: u64) -> Line {
        Line {
            account: account(n),
            id: id.into(),
            direction,
            amount: Amount(amount),
            at: String::new(),
        }
    }

    /// Books in another currency are no match for the chain's, whatever their figures:
    /// before, the currency was never read, and USD books agreed with a EUR chain.
    #[test]
    fn camt_books_in_another_currency_are_refused() {
        let sample = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scripts/iso20022/sample-camt053.xml"),
        )
        .expect("the sample camt.053");
        let books = read_camt(&sample, 2, "EUR").expect("EUR books on a EUR chain");
        assert!(!books.lines.is_empty());
        let Err(error) = read_camt(&sample.replace("Ccy=\"EUR\"", "Ccy=\"USD\""), 2, "EUR") else {
            panic!("USD books read as EUR");
        };
        assert!(error.to_string().contains("USD"), "{error}");
    }

    #[test]
    fn agreeing_books_have_no_break() {
        let chain = vec![
            line(1, "A", Direction::Debit, 100),
            line(2, "A", Direction::Credit, 100),
            line(2, "B", Direction::Credit, 5),
            line(2, "B", Direction::Credit, 7),
        ];
        let mut books = chain.clone();
        books.reverse();
        assert!(compare(&chain, &books, 2).is_empty());
    }

    #[test]
    fn a_missing_entry_a_wrong_amount_and_a_duplicate_are_three_breaks() {
        let chain = vec![
            line(1, "A", Direction::Debit, 100),
            line(1, "B", Direction::Debit, 200),
            line(1, "C", Direction::Credit, 300),
        ];
        let books = vec![
            line(1, "B", Direction::Debit, 250),
            line(1, "C", Direction::Credit, 300),
            line(1, "C", Direction::Credit, 300),
            line(1, "X", Direction::Credit, 1),
        ];
        let kinds: Vec<_> = compare(&chain, &books, 2)
            .into_iter()
            .map(|b| (b.kind, b.id))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("missing_in_books", "A".to_string()),
                ("amount_differs", "B".to_string()),
                ("duplicate_in_books", "C".to_string()),
                ("missing_on_chain", "X".to_string()),
            ]
        );
    }

    #[test]
    fn csv_books_read_with_a_header_quotes_and_any_direction_spelling() {
        let a = account(1).to_hex();
        let text = format!(
            "\u{feff}# books\nend_to_end_id,account,amount,direction\n\"INV, 1\",{a},12.50,credit\nX,{a},1,DBIT\n\n"
        );
        let books = read_csv(&text, 2).expect("reads");
        assert_eq!(books.lines.len(), 2);
        assert_eq!(books.lines[0].id, "INV, 1");
        assert_eq!(books.lines[0].amount, Amount(1_250));
        assert_eq!(books.lines[1].direction, Direction::Debit);
        for bad in [
            format!("X,{a},1"),
            format!("X,{a},1.234,credit"),
            format!("X,{a},1,sideways"),
            "X,nothex,1,credit".to_string(),
            format!("\"X,{a},1,credit"),
            format!(",{a},1,credit"),
        ] {
            assert!(read_csv(&bad, 2).is_err(), "{bad}");
        }
    }
}
