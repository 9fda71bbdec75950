//! ISO 20022 messages (feature `iso20022`): what a member bank's core banking system sends
//! and receives (DESIGN.md, "Bank integration"; docs/adr/0012).
//!
//! * [`camt`]: camt.053 bank-to-customer statements of a closed cycle, camt.054 debit and
//!   credit notifications of single entries, and reading a camt.053 back (reconciliation).
//! * [`pacs`]: pacs.008 payment orders carrying the customer-signed transaction (written by
//!   the wallet, read by the node, the XML fields checked against the signed transaction)
//!   and pacs.002 status reports.
//!
//! Documents are written from serde types ([`quick_xml`]) and read with [`roxmltree`], which
//! resolves namespaces and refuses any DTD (so no entity can be declared, let alone
//! expanded). Pure functions: no I/O, no clock (a message's creation time is given).
//!
//! Identifiers: ISO 20022 account identifiers are at most 34 characters (`Max34Text`), an
//! Interpool account id is 64 hex digits. An account is written as `Othr/Id` = its first
//! 32 hex digits (scheme `INTERPOOL`) and, in full, as the account's proxy (`Prxy/Id`, type
//! `INTERPOOL-ACCOUNT`); a reader takes the proxy and checks the short form is its prefix.
//! Banks are `FinInstnId/Othr/Id` (scheme `INTERPOOL-BANK`).
//!
//! Amounts: written as the chain formats them (exactly `decimals` fraction digits), but
//! only if the value fits the XSD type: ISO's currency amounts hold 5 significant fraction
//! digits and 18 significant digits ([`CURRENCY_AMOUNT`]), a camt.053 summary's sums 17 and
//! 18 ([`DECIMAL_NUMBER`]), while the chain allows 18 decimals and `u64` minor units (20
//! digits). An amount beyond them is [`IsoError::AmountNotRepresentable`], never a document
//! a bank's validator refuses; a message read with one is refused ([`IsoError::Invalid`]).

pub mod camt;
pub mod pacs;

use serde::Serialize;

use crate::primitives::{AccountId, Amount};

/// Namespace of camt.053 (bank-to-customer statement), version 08.
pub const CAMT053: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08";
/// Namespace of camt.054 (debit/credit notification), version 08.
pub const CAMT054: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";
/// Namespace of pacs.008 (FI-to-FI customer credit transfer), version 08.
pub const PACS008: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08";
/// Namespace of pacs.002 (FI-to-FI payment status report), version 10.
pub const PACS002: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10";
/// Namespace of the element inside a pacs.008's supplementary data that carries the
/// signed transaction (hex of its canonical encoding).
pub const TX_ENVELOPE_NS: &str = "urn:interpool:xsd:signed-transaction:1";
/// Local name of that element.
pub const TX_ENVELOPE: &str = "SignedTransaction";
/// Scheme name of an account's short id and proxy type.
pub const ACCOUNT_SCHEME: &str = "INTERPOOL";
/// Scheme name of a bank id.
pub const BANK_SCHEME: &str = "INTERPOOL-BANK";
/// Largest document read, in bytes (a pacs.008 of one transaction is about 3 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Why a document was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsoError {
    /// Larger than allowed ([`MAX_DOCUMENT_BYTES`] for a message sent to a node).
    #[error("the document is {0} bytes, more than allowed ({MAX_DOCUMENT_BYTES} for a message to a node)")]
    TooLarge(usize),
    /// Not well-formed XML, or it declares a DTD.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// Not the message (or the version) expected.
    #[error("{0}")]
    WrongMessage(String),
    /// A required element is missing or empty.
    #[error("missing element {0}")]
    Missing(String),
    /// An element's value is not valid.
    #[error("{element}: {message}")]
    Invalid {
        /// The element's path.
        element: String,
        /// What is wrong.
        message: String,
    },
    /// Writing failed (a bug: our types always serialize).
    #[error("cannot write the document: {0}")]
    Write(String),
    /// An amount the document must carry that the XSD type of its element cannot hold
    /// ([`DecimalFacets`]): a chain with more than 5 decimals, or 19 digits and more. Written
    /// anyway, the document would fail a bank's schema validation, so none is written.
    #[error(
        "{element}: {value} (at {decimals} decimals) cannot be written in ISO 20022: {facets}"
    )]
    AmountNotRepresentable {
        /// The element that would carry it (`IntrBkSttlmAmt`; `Stmt C42-1 (...)/Ntry/Amt (entry
        /// 103-0)` in a statement).
        element: String,
        /// The amount as the chain formats it (`decimals` fraction digits).
        value: String,
        /// The chain's decimals.
        decimals: u8,
        /// The limits of the element's type that it exceeds.
        facets: DecimalFacets,
    },
}

/// The XSD facets `fractionDigits` and `totalDigits` of an ISO 20022 decimal type. Both
/// restrict the value space (XML Schema 1.0 Part 2, §4.3.11 and §4.3.12): a value must be
/// `i × 10^-n` with `0 <= n <= fractionDigits` and `|i| < 10^totalDigits`. Leading zeros and
/// trailing fraction zeros do not count: `1.000000` is a valid amount, `1.000001` is not, and
/// neither is `123456789012345678.9`. (`check.py validate` judges by value in the same way.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalFacets {
    /// The XSD type, as named in messages.
    pub type_name: &'static str,
    /// `fractionDigits`.
    pub fraction_digits: u8,
    /// `totalDigits`.
    pub total_digits: u8,
}

/// `ActiveCurrencyAndAmount` (pacs.008 `IntrBkSttlmAmt`) and
/// `ActiveOrHistoricCurrencyAndAmount` (camt.053/054 `Bal/Amt`, `Ntry/Amt`, `TxDtls/Amt`):
/// the same facets.
pub const CURRENCY_AMOUNT: DecimalFacets = DecimalFacets {
    type_name: "a currency amount (ActiveOrHistoricCurrencyAndAmount)",
    fraction_digits: 5,
    total_digits: 18,
};

/// `DecimalNumber` and `NonNegativeDecimalNumber` (camt.053 `TxsSummry` sums).
pub const DECIMAL_NUMBER: DecimalFacets = DecimalFacets {
    type_name: "a DecimalNumber",
    fraction_digits: 17,
    total_digits: 18,
};

impl DecimalFacets {
    /// Whether the value of `units` minor units at `decimals` places is one of the type's:
    /// its significant fraction digits and all its significant digits within the facets.
    pub fn holds(self, units: u128, decimals: u8) -> bool {
        // `units × 10^-decimals` as `significand × 10^-fraction` with `fraction` smallest.
        let (mut significand, mut fraction) = (units, decimals);
        while fraction > 0 && significand % 10 == 0 {
            significand /= 10;
            fraction = fraction.saturating_sub(1);
        }
        let digits = significand
            .checked_ilog10()
            .map_or(1, |log| log.saturating_add(1));
        fraction <= self.fraction_digits
            && digits.max(u32::from(fraction)) <= u32::from(self.total_digits)
    }
}

impl std::fmt::Display for DecimalFacets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} holds at most {} fraction digits and {} digits in all (XSD fractionDigits, \
             totalDigits; trailing fraction zeros not counted)",
            self.type_name, self.fraction_digits, self.total_digits
        )
    }
}

/// Formats `units` minor units at `decimals` places for `element`, whose XSD type has
/// `facets`: as the chain formats amounts everywhere (exactly `decimals` fraction digits,
/// `12.34`), or [`IsoError::AmountNotRepresentable`] if the type cannot hold the value.
pub(crate) fn format_decimal(
    units: u128,
    decimals: u8,
    facets: DecimalFacets,
    element: impl FnOnce() -> String,
) -> Result<String, IsoError> {
    let value = crate::statement::format_units(units, decimals);
    if facets.holds(units, decimals) {
        Ok(value)
    } else {
        Err(IsoError::AmountNotRepresentable {
            element: element(),
            value,
            decimals,
            facets,
        })
    }
}

/// Writes `document` as an XML document with `root` as its root element.
pub(crate) fn write<T: Serialize>(root: &str, document: &T) -> Result<String, IsoError> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut serializer = quick_xml::se::Serializer::with_root(&mut out, Some(root))
        .map_err(|e| IsoError::Write(e.to_string()))?;
    serializer.indent(' ', 2);
    document
        .serialize(serializer)
        .map_err(|e| IsoError::Write(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

/// Parses `xml` (at most [`MAX_DOCUMENT_BYTES`], no DTD) and checks its root is a
/// `Document` of `namespace`.
pub(crate) fn parse<'a>(
    xml: &'a str,
    namespace: &str,
) -> Result<roxmltree::Document<'a>, IsoError> {
    parse_within(xml, namespace, MAX_DOCUMENT_BYTES, 20_000)
}

/// [`parse`] with other limits: a file the user chose (a bank's own statement) may be large.
pub(crate) fn parse_within<'a>(
    xml: &'a str,
    namespace: &str,
    max_bytes: usize,
    max_nodes: u32,
) -> Result<roxmltree::Document<'a>, IsoError> {
    if xml.len() > max_bytes {
        return Err(IsoError::TooLarge(xml.len()));
    }
    if let Some(depth) = nesting_beyond(xml, MAX_DEPTH) {
        return Err(IsoError::Malformed(format!(
            "elements nested {depth} deep, more than allowed ({MAX_DEPTH})"
        )));
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: max_nodes,
    };
    let document = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| IsoError::Malformed(e.to_string()))?;
    let root = document.root_element();
    let found = root.tag_name().namespace().unwrap_or("");
    if root.tag_name().name() != "Document" || found != namespace {
        return Err(IsoError::WrongMessage(format!(
            "expected a Document of namespace {namespace}, got {} of namespace {}",
            root.tag_name().name(),
            if found.is_empty() { "(none)" } else { found }
        )));
    }
    Ok(document)
}

/// Deepest element nesting read ([`parse_within`]). ISO 20022 messages nest about a dozen
/// levels deep. roxmltree descends into nested elements by recursion, without a limit of
/// its own: 3,000 unclosed `<a>` (9 KB, no signature needed) overflowed the stack of the
/// node's HTTP worker and aborted the validator.
pub const MAX_DEPTH: usize = 64;

/// The nesting depth at which `xml`'s elements first go deeper than `limit`, if they do;
/// read before the parser sees the document, so that it never recurses that deep.
///
/// Counts what the parser would descend into: every start tag that does not close itself
/// opens a level and every end tag closes one; comments, CDATA sections, processing
/// instructions and declarations are skipped, as are quoted attribute values (where `>`
/// may appear). It never counts fewer levels than the parser would nest: a document it
/// misreads (an unterminated quote or comment) is one the parser refuses where the
/// misreading starts, before descending any further.
fn nesting_beyond(xml: &str, limit: usize) -> Option<usize> {
    let bytes = xml.as_bytes();
    let mut depth: usize = 0;
    let mut at = 0;
    while let Some(offset) = bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'<'))
    {
        let start = at.saturating_add(offset);
        let tag = bytes.get(start..).unwrap_or_default();
        let skip_past = |terminator: &[u8]| {
            tag.windows(terminator.len())
                .position(|window| window == terminator)
                .map_or(bytes.len(), |end| {
                    start.saturating_add(end.saturating_add(terminator.len()))
                })
        };
        at = if tag.starts_with(b"<!--") {
            skip_past(b"-->")
        } else if tag.starts_with(b"<![CDATA[") {
            skip_past(b"]]>")
        } else if tag.starts_with(b"<?") {
            skip_past(b"?>")
        } else if tag.starts_with(b"<!") {
            skip_past(b">")
        } else if tag.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            skip_past(b">")
        } else {
            // A start tag: up to its `>` outside quoted attribute values.
            let mut quote = None;
            let mut end = None;
            for (i, &b) in tag.iter().enumerate().skip(1) {
                match (quote, b) {
                    (Some(q), _) if b == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(b),
                    (None, b'>') => {
                        end = Some(i);
                        break;
                    }
                    (None, _) => {}
                }
            }
            let self_closing =
                end.is_some_and(|i| i.checked_sub(1).and_then(|p| tag.get(p)) == Some(&b'/'));
            if !self_closing {
                depth = depth.saturating_add(1);
                if depth > limit {
                    return Some(depth);
                }
            }
            end.map_or(bytes.len(), |i| start.saturating_add(i.saturating_add(1)))
        };
    }
    None
}

/// The child elements of `node` named `name` (in the node's own namespace).
pub(crate) fn children<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> + 'a {
    let namespace = node.tag_name().namespace();
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
        .filter(move |c| c.tag_name().namespace() == namespace)
}

/// The element at `path` (slash-separated) below `node`, if there is exactly one at each
/// step.
pub(crate) fn find<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    path: &'a str,
) -> Result<Option<roxmltree::Node<'a, 'input>>, IsoError> {
    let mut at = node;
    for step in path.split('/') {
        let mut found = children(at, step);
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(IsoError::Invalid {
                element: path.to_string(),
                message: format!("more than one {step}"),
            });
        }
        at = first;
    }
    Ok(Some(at))
}

/// All the text of a leaf element, exactly as written. An element holding anything but
/// text (a comment, a processing instruction, an element) is refused: a reader that takes
/// only the first piece of text would see another value than one that takes all of it.
pub(crate) fn leaf_text(node: roxmltree::Node<'_, '_>, path: &str) -> Result<String, IsoError> {
    let mut text = String::new();
    for child in node.children() {
        match child.text() {
            Some(piece) if child.is_text() => text.push_str(piece),
            _ => {
                return Err(IsoError::Invalid {
                    element: path.to_string(),
                    message: "holds something other than text (a comment or an element)".into(),
                })
            }
        }
    }
    Ok(text)
}

/// The text of the element at `path`, exactly as written (spaces too), if present and not
/// empty.
pub(crate) fn exact_text<'a>(
    node: roxmltree::Node<'a, '_>,
    path: &'a str,
) -> Result<Option<String>, IsoError> {
    match find(node, path)? {
        Some(element) => Ok(Some(leaf_text(element, path)?).filter(|t| !t.is_empty())),
        None => Ok(None),
    }
}

/// The trimmed text of the element at `path`, required.
pub(crate) fn text<'a>(
    node: roxmltree::Node<'a, '_>,
    path: &'a str,
    what: &str,
) -> Result<String, IsoError> {
    optional_text(node, path)?.ok_or_else(|| IsoError::Missing(format!("{what}/{path}")))
}

/// The trimmed text of the element at `path`, if present and not blank.
pub(crate) fn optional_text<'a>(
    node: roxmltree::Node<'a, '_>,
    path: &'a str,
) -> Result<Option<String>, IsoError> {
    Ok(exact_text(node, path)?
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// An amount element (`<Amt Ccy="EUR">12.34</Amt>`): its currency and minor units.
pub(crate) fn amount(
    node: roxmltree::Node<'_, '_>,
    path: &str,
    decimals: u8,
) -> Result<(String, Amount), IsoError> {
    let element = find(node, path)?.ok_or_else(|| IsoError::Missing(path.to_string()))?;
    let currency = element
        .attribute("Ccy")
        .ok_or_else(|| IsoError::Missing(format!("{path}/@Ccy")))?
        .to_string();
    let value = leaf_text(element, path)?;
    let amount = parse_amount(value.trim(), decimals).map_err(|message| IsoError::Invalid {
        element: path.to_string(),
        message,
    })?;
    Ok((currency, amount))
}

/// `text` with the characters XML 1.0 cannot hold (U+FFFE, U+FFFF; control characters never
/// reach here: the ledger refuses them) replaced by U+FFFD, so one odd reference cannot
/// make a whole statement unreadable.
pub fn xml_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Parses an ISO 20022 currency amount (`12.3`, `12.30`, `12`) into minor units; more
/// fractional digits than the currency has are refused unless they are zeros, and so is a
/// value its XSD type cannot hold ([`CURRENCY_AMOUNT`]: more than 5 significant fraction
/// digits, more than 18 significant digits in all), which a schema-valid message never has.
pub fn parse_amount(value: &str, decimals: u8) -> Result<Amount, String> {
    let trimmed = match value.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => value.to_string(),
    };
    // At most 40 characters of the value, as `Amount::parse` echoes it: a 60,000-digit
    // amount was sent back whole.
    let refused = |why: &dyn std::fmt::Display| {
        let shown: String = value.chars().take(40).collect();
        let more = if shown.len() < value.len() { "…" } else { "" };
        format!("{shown:?}{more}: {why}")
    };
    let amount = Amount::parse(&trimmed, decimals).map_err(|e| refused(&e))?;
    // The parsed value is the written one exactly: judged as `format_amount` judges it.
    if !CURRENCY_AMOUNT.holds(u128::from(amount.0), decimals) {
        return Err(refused(&CURRENCY_AMOUNT));
    }
    Ok(amount)
}

/// Formats minor units as an ISO 20022 currency amount for `element` (`12.34`, or `12` for
/// a currency without decimals), or [`IsoError::AmountNotRepresentable`] if
/// [`CURRENCY_AMOUNT`] cannot hold it.
pub fn format_amount(amount: Amount, decimals: u8, element: &str) -> Result<String, IsoError> {
    format_decimal(u128::from(amount.0), decimals, CURRENCY_AMOUNT, || {
        element.to_string()
    })
}

/// An account's short identifier (`Max34Text`): its first 32 hex digits.
pub fn short_account_id(account: &AccountId) -> String {
    let hex = account.to_hex();
    hex.get(..32).unwrap_or(&hex).to_string()
}

/// Reads an account written as described in the module documentation: the proxy in full,
/// the short id its prefix.
pub(crate) fn account(node: roxmltree::Node<'_, '_>, path: &str) -> Result<AccountId, IsoError> {
    let element = find(node, path)?.ok_or_else(|| IsoError::Missing(path.to_string()))?;
    let short = text(element, "Id/Othr/Id", path)?;
    let full = text(element, "Prxy/Id", path)?;
    let id: AccountId =
        full.parse()
            .map_err(|e: crate::primitives::HexError| IsoError::Invalid {
                element: format!("{path}/Prxy/Id"),
                message: e.to_string(),
            })?;
    if !full
        .to_ascii_lowercase()
        .starts_with(&short.to_ascii_lowercase())
    {
        return Err(IsoError::Invalid {
            element: format!("{path}/Id/Othr/Id"),
            message: format!("{short:?} is not the start of the account {full}"),
        });
    }
    Ok(id)
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` of a time in milliseconds since the Unix epoch (UTC).
pub fn date_time(ms: u64) -> String {
    let (date, seconds_of_day) = civil(ms);
    let millis = ms % 1_000;
    format!(
        "{date}T{:02}:{:02}:{:02}.{millis:03}Z",
        seconds_of_day / 3_600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// `YYYY-MM-DD` of a time in milliseconds since the Unix epoch (UTC).
pub fn date(ms: u64) -> String {
    civil(ms).0
}

/// The civil date (proleptic Gregorian, UTC) and the second of the day.
fn civil(ms: u64) -> (String, u64) {
    let seconds = ms / 1_000;
    (
        crate::calendar::iso_date(seconds / 86_400),
        seconds % 86_400,
    )
}

/// The ISO 20022 status reason code (ExternalStatusReason1Code) for a ledger or admission
/// error code; `NARR` (narrative) where no code fits, the reason then in the text.
pub fn reason_code(error_code: &str) -> &'static str {
    match error_code {
        "insufficient_funds" | "insufficient_pool" => "AM04",
        "zero_amount" => "AM01",
        "overflow" | "pool_limit" | "cycle_limit" | "high_over_debit_limit" => "AM02",
        "duplicate_end_to_end_id" | "duplicate" | "already_committed" => "AM05",
        "unknown_account" | "invalid_account_key" => "AC01",
        "account_frozen" => "AC06",
        "unknown_bank" | "wrong_bank" => "RC01",
        "unknown_signer" | "invalid_signer" => "AC02",
        "bad_signature" => "DS0B",
        "unauthorized" => "AG01",
        "expired" | "validity_too_long" => "AB05",
        "queue_expired" | "reject_time" => "AB03",
        "cancelled" => "DS02",
        "cutoff" => "TM01",
        "queue_full" | "payer_queue_full" | "mempool_full" | "too_many_pending" => "AM14",
        "bad_nonce" | "nonce_too_far_ahead" => "DU05",
        "self_transfer" => "AM03",
        "wrong_chain"
        | "invalid_end_to_end_id"
        | "invalid_reference"
        | "oversized"
        | "invalid_terms" => "FF01",
        _ => "NARR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(date_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(date_time(1_796_025_257_123), "2026-11-30T07:54:17.123Z");
        assert_eq!(date(4_107_542_399_999), "2100-02-28");
    }

    #[test]
    fn amounts_read_with_trailing_zeros_and_refuse_extra_digits() {
        assert_eq!(parse_amount("12.30", 2), Ok(Amount(1_230)));
        assert_eq!(parse_amount("12.3000", 2), Ok(Amount(1_230)));
        assert_eq!(parse_amount("12", 2), Ok(Amount(1_200)));
        assert!(parse_amount("12.345", 2).is_err());
        assert!(parse_amount("-1", 2).is_err());
        assert!(parse_amount("1e3", 2).is_err());
        assert!(parse_amount("184467440737095516.16", 2).is_err());
        // What is echoed of a huge value is cut, not sent back whole.
        let huge = format!("1{}", "0".repeat(60_000));
        let error = parse_amount(&huge, 2).expect_err("too large");
        assert!(error.len() < 200, "{} characters", error.len());
        assert!(error.starts_with("\"1000"), "{error}");
    }

    /// The XSD facets judge the value, as a schema validator does: trailing fraction zeros
    /// and leading zeros do not count; significant digits do (ISO's amounts: 5 fraction
    /// digits, 18 in all).
    #[test]
    fn amounts_are_judged_by_their_significant_digits() {
        let holds = |units: u128, decimals: u8| CURRENCY_AMOUNT.holds(units, decimals);
        assert!(holds(0, 6) && holds(0, 18) && holds(1_234, 2));
        // 1.000000 and 0.000010 at 6 decimals: 0 and 5 significant fraction digits.
        assert!(holds(1_000_000, 6) && holds(10, 6));
        // 0.000001 and 1.000001: 6.
        assert!(!holds(1, 6) && !holds(1_000_001, 6));
        // 18 significant digits, written with 2 more fraction zeros: fine; 19: not.
        assert!(holds(123_456_789_012_345_678 * 100, 2));
        assert!(!holds(1_234_567_890_123_456_789, 2));
        // u64::MAX minor units at 2 decimals: 20 digits.
        assert!(!holds(u128::from(u64::MAX), 2));
        // 10^17 (18 digits) holds, 10^18 (19 digits) does not: zeros of the whole part count.
        assert!(holds(10_u128.pow(19), 2) && !holds(10_u128.pow(20), 2));
        // A sum may use 17 fraction digits, not 18.
        assert!(DECIMAL_NUMBER.holds(1, 17) && !DECIMAL_NUMBER.holds(1, 18));
    }

    #[test]
    fn an_amount_iso_20022_cannot_hold_is_an_error_not_a_document() {
        // Within the facets: the established format, exactly `decimals` fraction digits.
        assert_eq!(
            format_amount(Amount(1_234), 2, "Amt"),
            Ok("12.34".to_string())
        );
        assert_eq!(format_amount(Amount(7), 0, "Amt"), Ok("7".to_string()));
        assert_eq!(
            format_amount(Amount(1_000_000), 6, "Amt"),
            Ok("1.000000".to_string())
        );
        assert_eq!(
            format_amount(Amount(1_234_560), 6, "Amt"),
            Ok("1.234560".to_string())
        );
        // 6 significant fraction digits on a 6-decimal chain.
        assert_eq!(
            format_amount(Amount(1_234_567), 6, "IntrBkSttlmAmt"),
            Err(IsoError::AmountNotRepresentable {
                element: "IntrBkSttlmAmt".into(),
                value: "1.234567".into(),
                decimals: 6,
                facets: CURRENCY_AMOUNT,
            })
        );
        // u64::MAX minor units at 2 decimals: 20 digits.
        match format_amount(Amount(u64::MAX), 2, "Ntry/Amt") {
            Err(error @ IsoError::AmountNotRepresentable { .. }) => {
                let message = error.to_string();
                assert!(
                    message.starts_with("Ntry/Amt: 184467440737095516.15"),
                    "{message}"
                );
                assert!(message.contains("18 digits"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_amount_beyond_the_facets_is_not_read() {
        // Trailing zeros beyond 5 fraction digits are no digits of the value.
        assert_eq!(parse_amount("1.000000", 6), Ok(Amount(1_000_000)));
        assert_eq!(parse_amount("0.00001", 6), Ok(Amount(10)));
        assert_eq!(parse_amount("1.2345600", 6), Ok(Amount(1_234_560)));
        assert_eq!(
            parse_amount("1234567890123456.78", 2),
            Ok(Amount(123_456_789_012_345_678))
        );
        // 6 significant fraction digits, even where the chain has 6 decimals.
        let error = parse_amount("0.000001", 6).expect_err("6 fraction digits");
        assert!(error.contains("at most 5 fraction digits"), "{error}");
        assert!(parse_amount("1.0000010", 6).is_err());
        // 19 significant digits that fit a u64 of minor units.
        let error = parse_amount("123456789012345678.9", 1).expect_err("19 digits");
        assert!(error.contains("18 digits in all"), "{error}");
        assert!(parse_amount("12345678901234567.89", 2).is_err());
    }

    #[test]
    fn text_is_read_whole_and_odd_characters_are_written_safely() {
        let xml =
            format!("<Document xmlns=\"{PACS008}\"><A>1<!---->000.00</A><B> x </B></Document>");
        let document = parse(&xml, PACS008).expect("parses");
        let root = document.root_element();
        assert!(matches!(
            text(root, "A", "Document"),
            Err(IsoError::Invalid { .. })
        ));
        assert_eq!(exact_text(root, "B").expect("B").as_deref(), Some(" x "));
        assert_eq!(text(root, "B", "Document").expect("B"), "x");
        assert_eq!(xml_safe("a\u{FFFE}b\u{FFFF}"), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn a_dtd_an_entity_or_another_namespace_is_refused() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><Document xmlns="urn:x">&lol2;</Document>"#;
        assert!(matches!(parse(bomb, "urn:x"), Err(IsoError::Malformed(_))));
        let other = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.02"/>"#;
        assert!(matches!(
            parse(other, PACS008),
            Err(IsoError::WrongMessage(_))
        ));
        assert!(matches!(
            parse("<Document", PACS008),
            Err(IsoError::Malformed(_))
        ));
        let big = format!(
            "<Document xmlns=\"{PACS008}\">{}</Document>",
            " ".repeat(MAX_DOCUMENT_BYTES)
        );
        assert!(matches!(parse(&big, PACS008), Err(IsoError::TooLarge(_))));
    }

    #[test]
    fn a_document_nested_too_deep_is_refused_before_it_is_parsed() {
        // As deep as a message to a node can be (64 KiB of `<a>`): the parser's recursion
        // overflowed the stack on 3,000 levels. Unclosed and closed alike.
        let levels = MAX_DOCUMENT_BYTES / 3 - 20;
        let open = format!("<Document xmlns=\"{PACS008}\">{}", "<a>".repeat(levels));
        let closed = format!("{open}{}</Document>", "</a>".repeat(levels));
        for xml in [&open, &closed] {
            match parse_within(xml, PACS008, usize::MAX, u32::MAX) {
                Err(IsoError::Malformed(message)) => {
                    assert!(message.contains("nested"), "{message}")
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        // Hidden from a naive count, still counted: levels behind attribute values with
        // `>` and `/>` in them, after end tags of elements never opened (which take no
        // levels away that were not there).
        let hidden = format!(
            "<Document xmlns=\"{PACS008}\">{}{}",
            "</x>".repeat(100),
            "<a b='/>' c=\"x>\">".repeat(levels / 4)
        );
        assert_eq!(nesting_beyond(&hidden, MAX_DEPTH), Some(MAX_DEPTH + 1));
        // Within the limit (with comments, CDATA, self-closing and quoted `<`-free values
        // on the way), a document parses.
        let mut ok = format!("<?xml version=\"1.0\"?><Document xmlns=\"{PACS008}\">");
        for _ in 0..MAX_DEPTH - 1 {
            ok.push_str("<a x='>'><!-- <b><b><b> --><![CDATA[<c><c>]]><e/>");
        }
        for _ in 0..MAX_DEPTH - 1 {
            ok.push_str("</a>");
        }
        ok.push_str("</Document>");
        assert_eq!(nesting_beyond(&ok, MAX_DEPTH), None);
        assert!(parse(&ok, PACS008).is_ok());
        assert_eq!(nesting_beyond(&ok, MAX_DEPTH - 1), Some(MAX_DEPTH));
    }
}

#[cfg(test)]
#[path = "round_trip_tests.rs"]
mod round_trip_tests;
