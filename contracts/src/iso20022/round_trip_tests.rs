//! Every message we write reads back with the same content; pacs.008 fields that disagree
//! with the signed transaction are named. With `INTERPOOL_ISO_SAMPLES=DIR` the documents
//! are also written to DIR, for `scripts/iso20022/check.py validate` (the black-box journey
//! validates the node's own documents that way on every run).

use super::camt::{camt053, camt054, read_camt053, Owner, StatementAccount};
use super::pacs::{pacs002, pacs008, read_pacs002, read_pacs008, PaymentStatus, StatusReport};
use super::*;
use crate::primitives::{BankId, Hash};
use crate::statement::{
    AccountStatement, BankStatement, Direction, Entry, EntryKind, PoolStatement,
};
use crate::testkit::{account, bank_id, key};
use crate::tx::{Body, Transaction};

fn entry(height: u64, direction: Direction, amount: u64, e2e: &str, balance_after: u128) -> Entry {
    Entry {
        height,
        position: 0,
        booked_at_ms: 1_796_025_257_123 + height,
        tx_hash: Some(Hash([height as u8; 32])),
        kind: EntryKind::Transfer,
        direction,
        amount: Amount(amount),
        end_to_end_id: Some(e2e.into()),
        reference: Some(format!("invoice {e2e}")),
        counterparty: Some(account(99)),
        counterparty_bank: Some(bank_id(1)),
        balance_after,
    }
}

fn statement() -> BankStatement {
    BankStatement {
        cycle: 42,
        bank: bank_id(0),
        start_height: 101,
        end_height: 110,
        from_ms: 1_796_025_000_000,
        to_ms: 1_796_025_900_000,
        pool: PoolStatement {
            opening: 1_000_000,
            closing: 997_500,
            entries: vec![Entry {
                kind: EntryKind::Settlement,
                tx_hash: None,
                end_to_end_id: None,
                reference: None,
                counterparty: None,
                counterparty_bank: None,
                ..entry(110, Direction::Debit, 2_500, "", 997_500)
            }],
        },
        accounts: vec![AccountStatement {
            account: account(7),
            opening: 100_000,
            closing: 100_000 + 25_000 - 10_000,
            closing_available: 110_000,
            entries: vec![
                entry(103, Direction::Credit, 25_000, "INV-1", 125_000),
                entry(105, Direction::Debit, 10_000, "RENT-11", 115_000),
            ],
        }],
        accounts_without_movement: 3,
    }
}

fn save(name: &str, xml: &str) {
    if let Some(dir) = std::env::var_os("INTERPOOL_ISO_SAMPLES") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("samples folder");
        std::fs::write(dir.join(name), xml).expect("write sample");
    }
}

#[test]
fn a_camt053_reads_back_with_its_balances_and_entries() {
    let xml = camt053(&statement(), "EUR", 2).expect("writes");
    save("camt053.xml", &xml);
    assert!(xml.contains(CAMT053) && !xml.contains("<!DOCTYPE"));
    let read = read_camt053(&xml, 2).expect("reads");
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].account, StatementAccount::Pool(bank_id(0)));
    assert_eq!(
        (read[0].opening, read[0].closing),
        (Some(1_000_000), Some(997_500))
    );
    assert_eq!(read[1].account, StatementAccount::Customer(account(7)));
    assert_eq!(
        (read[1].opening, read[1].closing),
        (Some(100_000), Some(115_000))
    );
    let entries: Vec<_> = read[1]
        .entries
        .iter()
        .map(|e| {
            (
                e.direction,
                e.amount.0,
                e.end_to_end_id.as_deref(),
                e.reference.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (Direction::Credit, 25_000, Some("INV-1"), Some("103-0")),
            (Direction::Debit, 10_000, Some("RENT-11"), Some("105-0"))
        ]
    );
}

#[test]
fn a_camt054_notifies_one_entry() {
    let statement = statement();
    let xml = camt054(
        Owner::Customer(&account(7), &bank_id(0)),
        &statement.accounts[0].entries[0],
        "EUR",
        2,
    )
    .expect("writes");
    save("camt054.xml", &xml);
    assert!(xml.contains(CAMT054) && xml.contains("<EndToEndId>INV-1</EndToEndId>"));
    let pool = camt054(
        Owner::Pool(&bank_id(0)),
        &statement.pool.entries[0],
        "EUR",
        2,
    )
    .expect("pool");
    save("camt054-pool.xml", &pool);
}

fn signed_transfer(reference: &str) -> crate::tx::SignedTransaction {
    Transaction {
        chain_id: "test".into(),
        signer: account(7),
        nonce: 3,
        valid_until_height: 500,
        body: Body::Transfer {
            to: account(8),
            amount: Amount(12_345),
            end_to_end_id: "E2E-77".into(),
            reference: reference.into(),
            terms: Default::default(),
        },
    }
    .sign(&key(7))
}

#[test]
fn a_pacs008_carries_the_signed_transaction_and_its_fields_must_agree() {
    let signed = signed_transfer("invoice 77");
    let xml = pacs008(
        &signed,
        &bank_id(0),
        &bank_id(1),
        "EUR",
        2,
        1_796_025_257_123,
    )
    .expect("writes");
    save("pacs008.xml", &xml);
    let order = read_pacs008(&xml, 2).expect("reads");
    assert_eq!(order.signed, signed);
    assert_eq!(order.amount, Amount(12_345));
    assert_eq!(order.end_to_end_id, "E2E-77");
    let banks = |a: &crate::primitives::AccountId| {
        Some(if *a == account(7) {
            bank_id(0)
        } else {
            bank_id(1)
        })
    };
    assert!(order.disagreements("EUR", banks).is_empty());

    // Each field changed in the XML, the signature untouched: named, one by one.
    let cases = [
        (
            "<EndToEndId>E2E-77</EndToEndId>",
            "<EndToEndId>E2E-78</EndToEndId>",
            "PmtId/EndToEndId",
        ),
        (">123.45<", ">123.46<", "IntrBkSttlmAmt"),
        ("Ccy=\"EUR\"", "Ccy=\"USD\"", "IntrBkSttlmAmt/@Ccy"),
        (
            "<Ustrd>invoice 77</Ustrd>",
            "<Ustrd>invoice 78</Ustrd>",
            "RmtInf/Ustrd",
        ),
        (
            &format!("<Id>{}</Id>", bank_id(1)),
            "<Id>BANK_X</Id>",
            "CdtrAgt",
        ),
    ];
    for (from, to, field) in cases {
        assert!(xml.contains(from), "{from} in the document");
        let changed = xml.replacen(from, to, 1);
        let order = read_pacs008(&changed, 2).expect("still reads");
        let found = order.disagreements("EUR", banks);
        assert_eq!(found.len(), 1, "{field}: {found:?}");
        assert!(found[0].starts_with(field), "{field}: {found:?}");
    }
    // The debtor's account swapped for another: its proxy and short id.
    let other = account(9).to_hex();
    // (The short id is written twice, as the debtor's id and its account's, before the
    // proxy.)
    let changed = xml.replacen(&account(7).to_hex(), &other, 1).replacen(
        &account(7).to_hex()[..32],
        &other[..32],
        2,
    );
    let order = read_pacs008(&changed, 2).expect("reads");
    assert!(order.disagreements("EUR", banks)[0].starts_with("DbtrAcct"));
    // A short id that is not the proxy's start.
    let changed = xml.replacen(&account(7).to_hex()[..32], &other[..32], 2);
    assert!(matches!(
        read_pacs008(&changed, 2),
        Err(IsoError::Invalid { .. })
    ));
}

#[test]
fn a_pacs008_keeps_spaces_and_odd_characters_of_the_signed_transfer() {
    let banks = |a: &crate::primitives::AccountId| {
        Some(if *a == account(7) {
            bank_id(0)
        } else {
            bank_id(1)
        })
    };
    for reference in [" ", " padded ", "odd \u{FFFE} one"] {
        let signed = signed_transfer(reference);
        let xml = pacs008(&signed, &bank_id(0), &bank_id(1), "EUR", 2, 0).expect("writes");
        let order = read_pacs008(&xml, 2).expect("reads");
        assert!(
            order.disagreements("EUR", banks).is_empty(),
            "{reference:?}: {:?}",
            order.remittance
        );
    }
}

#[test]
fn a_pacs008_without_the_transaction_or_with_two_transfers_is_refused() {
    let signed = signed_transfer("");
    let xml = pacs008(&signed, &bank_id(0), &bank_id(1), "EUR", 2, 0).expect("writes");
    assert!(!xml.contains("<RmtInf>"), "no remittance text, no RmtInf");
    assert!(read_pacs008(&xml, 2).is_ok());
    let hex = signed
        .encode()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let no_tx = xml.replacen(&hex, "", 1);
    assert!(matches!(
        read_pacs008(&no_tx, 2),
        Err(IsoError::Invalid { .. })
    ));
    let truncated = xml.replacen(&hex, &hex[..hex.len() - 2], 1);
    assert!(matches!(
        read_pacs008(&truncated, 2),
        Err(IsoError::Invalid { .. })
    ));
    let two = xml.replacen("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", 1);
    assert!(matches!(
        read_pacs008(&two, 2),
        Err(IsoError::Invalid { .. })
    ));
    let wrong_version = xml.replacen("pacs.008.001.08", "pacs.008.001.09", 1);
    assert!(matches!(
        read_pacs008(&wrong_version, 2),
        Err(IsoError::WrongMessage(_))
    ));
    let not_a_transfer = Transaction {
        chain_id: "test".into(),
        signer: account(7),
        nonce: 0,
        valid_until_height: 5,
        body: Body::SettleCycle,
    }
    .sign(&key(7));
    assert!(pacs008(&not_a_transfer, &bank_id(0), &bank_id(1), "EUR", 2, 0).is_err());
    let _ = BankId::new("X").expect("id");
}

#[test]
fn a_pacs002_reports_each_status_with_its_reason() {
    let base = StatusReport {
        end_to_end_id: "E2E-77".into(),
        original_message_id: Some("IP-PACS8-0123".into()),
        status: PaymentStatus::Settled,
        error_code: None,
        detail: Some("committed at height 12".into()),
        tx_hash: Hash([5; 32]),
        created_ms: 1_796_025_257_123,
        settled_ms: Some(1_796_025_257_000),
    };
    for (status, error, reason) in [
        (PaymentStatus::Settled, None, Some("NARR")),
        (PaymentStatus::Accepted, None, Some("NARR")),
        (PaymentStatus::Pending, None, Some("NARR")),
        (
            PaymentStatus::Rejected,
            Some("insufficient_funds"),
            Some("AM04"),
        ),
        (PaymentStatus::Rejected, Some("queue_expired"), Some("AB03")),
        (PaymentStatus::Rejected, Some("something_new"), Some("NARR")),
    ] {
        let report = StatusReport {
            status,
            error_code: error.map(str::to_string),
            ..base.clone()
        };
        let xml = pacs002(&report).expect("writes");
        save(
            &format!("pacs002-{}-{}.xml", status.code(), error.unwrap_or("none")),
            &xml,
        );
        let read = read_pacs002(&xml).expect("reads");
        assert_eq!(read.status, status.code());
        assert_eq!(read.end_to_end_id, "E2E-77");
        assert_eq!(read.reason.as_deref(), reason);
    }
}

/// The text of the first `<tag>` in `xml`.
fn first_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("the element") + open.len();
    let end = start + xml[start..].find('<').expect("its end");
    &xml[start..end]
}

/// Message ids are unique for what a bank's system tells apart, and Max35Text: two
/// notifications of one block at a large height (their readable ids were cut short to the
/// same 35 characters), and two status reports of one transfer a second apart (their
/// millisecond times were cut to 9 digits, one id per 10 s).
#[test]
fn message_ids_stay_unique_within_35_characters() {
    let ids: Vec<String> = [100_000, 100_001]
        .into_iter()
        .map(|position| {
            let mut booked = entry(123_456_789, Direction::Credit, 5, "X", 5);
            booked.position = position;
            let xml = camt054(Owner::Pool(&bank_id(0)), &booked, "EUR", 2).expect("writes");
            first_text(&xml, "MsgId").to_string()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| id.len() <= 35), "{ids:?}");
    // Small heights keep the readable form.
    let xml = camt054(
        Owner::Pool(&bank_id(0)),
        &entry(1_042, Direction::Credit, 5, "X", 5),
        "EUR",
        2,
    )
    .expect("writes");
    assert_eq!(first_text(&xml, "MsgId"), "IP-NTF-BANK_A-1042-0");

    let report = |created_ms: u64| StatusReport {
        end_to_end_id: "E2E-77".into(),
        original_message_id: None,
        status: PaymentStatus::Pending,
        error_code: None,
        detail: None,
        tx_hash: Hash([5; 32]),
        created_ms,
        settled_ms: None,
    };
    let pending = pacs002(&report(1_796_025_257_123)).expect("writes");
    let settled = pacs002(&report(1_796_025_258_123)).expect("writes");
    let (a, b) = (first_text(&pending, "MsgId"), first_text(&settled, "MsgId"));
    assert_ne!(a, b);
    assert!(a.len() <= 35 && a.ends_with("1796025257123"), "{a}");
}

/// The `element` of an amount ISO 20022 cannot hold, or a panic.
fn not_representable(result: Result<String, IsoError>) -> String {
    match result {
        Err(IsoError::AmountNotRepresentable { element, .. }) => element,
        other => panic!("expected AmountNotRepresentable, got {other:?}"),
    }
}

/// A chain with more decimals than ISO's 5: amounts whose value needs no more are written
/// as always (all `decimals` digits: trailing zeros are not digits of the value); one that
/// needs 6 is an error, not a document a bank's validator refuses.
#[test]
fn a_statement_of_a_six_decimal_chain_is_written_only_if_iso_can_hold_it() {
    let xml = camt053(&statement(), "EUR", 6).expect("every amount has 4 significant decimals");
    save("camt053-6-decimals.xml", &xml);
    assert!(xml.contains("<Amt Ccy=\"EUR\">0.025000</Amt>"), "{xml}");
    let read = read_camt053(&xml, 6).expect("reads");
    assert_eq!(read[1].entries[0].amount, Amount(25_000));

    let mut odd = statement();
    odd.accounts[0].entries[0].amount = Amount(25_001);
    let element = not_representable(camt053(&odd, "EUR", 6));
    assert!(
        element.starts_with("Stmt C42-1 (account ") && element.ends_with("/Ntry/Amt (entry 103-0)"),
        "{element}"
    );
    let element = not_representable(camt054(
        Owner::Customer(&account(7), &bank_id(0)),
        &odd.accounts[0].entries[0],
        "EUR",
        6,
    ));
    assert_eq!(element, "Ntry/Amt (entry 103-0)");
    // The same amounts at 2 decimals are within ISO's limits.
    assert!(camt053(&odd, "EUR", 2).is_ok());
}

/// 18 significant digits at most: u64::MAX minor units are 20.
#[test]
fn an_amount_balance_or_sum_of_more_than_18_digits_is_not_written() {
    let mut huge = statement();
    huge.accounts[0].entries[0].amount = Amount(u64::MAX);
    assert!(not_representable(camt053(&huge, "EUR", 2)).ends_with("/Ntry/Amt (entry 103-0)"));
    assert_eq!(
        not_representable(camt054(
            Owner::Pool(&bank_id(0)),
            &huge.accounts[0].entries[0],
            "EUR",
            2
        )),
        "Ntry/Amt (entry 103-0)"
    );

    let mut rich = statement();
    rich.accounts[0].opening = u128::from(u64::MAX) + 1;
    let element = not_representable(camt053(&rich, "EUR", 2));
    assert!(element.ends_with("/Bal/Amt (OPBD)"), "{element}");

    // Each entry 18 digits (9000000000000000.01), their sum 19: only the summary breaks.
    let mut busy = statement();
    for entry in &mut busy.accounts[0].entries {
        entry.direction = Direction::Credit;
        entry.amount = Amount(900_000_000_000_000_001);
    }
    let element = not_representable(camt053(&busy, "EUR", 2));
    assert!(element.ends_with("/TxsSummry/TtlNtries/Sum"), "{element}");
}

#[test]
fn a_pacs008_is_written_and_read_only_within_iso_amount_limits() {
    let transfer = |amount: u64| {
        Transaction {
            chain_id: "test".into(),
            signer: account(7),
            nonce: 3,
            valid_until_height: 500,
            body: Body::Transfer {
                to: account(8),
                amount: Amount(amount),
                end_to_end_id: "E2E-77".into(),
                reference: String::new(),
                terms: Default::default(),
            },
        }
        .sign(&key(7))
    };
    let write = |amount: u64, decimals: u8| {
        pacs008(
            &transfer(amount),
            &bank_id(0),
            &bank_id(1),
            "EUR",
            decimals,
            0,
        )
    };
    // 0.012345 on a 6-decimal chain; u64::MAX minor units on a 2-decimal one.
    assert_eq!(not_representable(write(12_345, 6)), "IntrBkSttlmAmt");
    assert_eq!(not_representable(write(u64::MAX, 2)), "IntrBkSttlmAmt");
    // 0.012340 is 0.01234: written as ever, with all 6 decimals.
    let xml = write(12_340, 6).expect("5 significant decimals");
    assert!(xml.contains(">0.012340<"), "{xml}");
    assert_eq!(read_pacs008(&xml, 6).expect("reads").amount, Amount(12_340));

    // Read: 6 significant fraction digits are refused, even where the chain has 6.
    let six = xml.replacen(">0.012340<", ">0.012345<", 1);
    match read_pacs008(&six, 6) {
        Err(IsoError::Invalid { element, message }) => {
            assert_eq!(element, "IntrBkSttlmAmt");
            assert!(message.contains("at most 5 fraction digits"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // 19 significant digits, though they fit a u64 of minor units.
    let nineteen = xml.replacen(">0.012340<", ">123456789012345678.9<", 1);
    assert!(matches!(
        read_pacs008(&nineteen, 1),
        Err(IsoError::Invalid { .. })
    ));
}
