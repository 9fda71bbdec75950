//! pacs.008.001.08 payment orders that carry the customer-signed transaction, and
//! pacs.002.001.10 status reports.
//!
//! A pacs.008 holds exactly one credit transfer (`NbOfTxs` 1). Its supplementary data
//! (`SplmtryData/Envlp`) holds the signed transaction, hex of its canonical encoding, in an
//! element `SignedTransaction` of namespace [`TX_ENVELOPE_NS`]. The signature is what
//! authorises the payment; the XML fields are what the bank's systems read, so they must say
//! exactly what the signed transaction says ([`PaymentOrder::disagreements`]): end-to-end
//! id, amount and currency, debtor and creditor accounts, their agents (banks), and the
//! remittance text.

use serde::Serialize;

use super::camt::{Account, Agent, CcyAmount, Proprietary, Remittance};
use super::{
    account, amount, children, date_time, exact_text, find, format_amount, optional_text, parse,
    text, write, IsoError, ACCOUNT_SCHEME, PACS002, PACS008, TX_ENVELOPE, TX_ENVELOPE_NS,
};
use crate::primitives::{from_hex_vec, to_hex, AccountId, Amount, BankId, Hash};
use crate::tx::{Body, SignedTransaction, MAX_TX_BYTES};

#[derive(Serialize)]
struct Settlement {
    #[serde(rename = "SttlmMtd")]
    method: &'static str,
    #[serde(rename = "ClrSys")]
    system: Proprietary,
}

#[derive(Serialize)]
struct Header008 {
    #[serde(rename = "MsgId")]
    id: String,
    #[serde(rename = "CreDtTm")]
    created: String,
    #[serde(rename = "NbOfTxs")]
    count: &'static str,
    #[serde(rename = "SttlmInf")]
    settlement: Settlement,
}

#[derive(Serialize)]
struct PaymentId {
    #[serde(rename = "InstrId")]
    instruction: String,
    #[serde(rename = "EndToEndId")]
    end_to_end: String,
}

#[derive(Serialize)]
struct GenericId {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "SchmeNm")]
    scheme: Proprietary,
}

#[derive(Serialize)]
struct PrivateId {
    #[serde(rename = "Othr")]
    other: GenericId,
}

#[derive(Serialize)]
struct PartyId {
    #[serde(rename = "PrvtId")]
    private: PrivateId,
}

#[derive(Serialize)]
struct Party {
    #[serde(rename = "Id")]
    id: PartyId,
}

impl Party {
    fn of(account: &AccountId) -> Party {
        Party {
            id: PartyId {
                private: PrivateId {
                    other: GenericId {
                        id: super::short_account_id(account),
                        scheme: Proprietary {
                            value: ACCOUNT_SCHEME,
                        },
                    },
                },
            },
        }
    }
}

#[derive(Serialize)]
struct SignedTransactionElement {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "$text")]
    hex: String,
}

#[derive(Serialize)]
struct Envelope {
    #[serde(rename = "SignedTransaction")]
    signed: SignedTransactionElement,
}

#[derive(Serialize)]
struct SupplementaryData {
    #[serde(rename = "PlcAndNm")]
    place: &'static str,
    #[serde(rename = "Envlp")]
    envelope: Envelope,
}

#[derive(Serialize)]
struct CreditTransfer {
    #[serde(rename = "PmtId")]
    payment_id: PaymentId,
    #[serde(rename = "IntrBkSttlmAmt")]
    amount: CcyAmount,
    #[serde(rename = "ChrgBr")]
    charges: &'static str,
    #[serde(rename = "Dbtr")]
    debtor: Party,
    #[serde(rename = "DbtrAcct")]
    debtor_account: Account,
    #[serde(rename = "DbtrAgt")]
    debtor_agent: Agent,
    #[serde(rename = "CdtrAgt")]
    creditor_agent: Agent,
    #[serde(rename = "Cdtr")]
    creditor: Party,
    #[serde(rename = "CdtrAcct")]
    creditor_account: Account,
    #[serde(rename = "RmtInf", skip_serializing_if = "Option::is_none")]
    remittance: Option<Remittance>,
    #[serde(rename = "SplmtryData")]
    supplementary: SupplementaryData,
}

#[derive(Serialize)]
struct Message008 {
    #[serde(rename = "GrpHdr")]
    header: Header008,
    #[serde(rename = "CdtTrfTxInf")]
    transfer: CreditTransfer,
}

#[derive(Serialize)]
struct Pacs008 {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "FIToFICstmrCdtTrf")]
    message: Message008,
}

/// Where the signed transaction sits in the supplementary data (`PlcAndNm`).
pub const ENVELOPE_PLACE: &str = "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf";

/// The message id of a pacs.008 for a transaction (`Max35Text`).
pub fn payment_message_id(tx: &Hash) -> String {
    format!("IP-PACS8-{}", tx.to_hex().get(..24).unwrap_or_default())
}

/// Writes the pacs.008.001.08 of a signed transfer: `debtor_bank` and `creditor_bank` are
/// the payer's and the payee's banks, `created_ms` the message's creation time. Refuses a
/// transaction that is not a transfer, and an amount `ActiveCurrencyAndAmount` cannot hold
/// ([`IsoError::AmountNotRepresentable`]: more than 5 significant fraction digits, more than
/// 18 significant digits).
pub fn pacs008(
    signed: &SignedTransaction,
    debtor_bank: &BankId,
    creditor_bank: &BankId,
    currency: &str,
    decimals: u8,
    created_ms: u64,
) -> Result<String, IsoError> {
    let Body::Transfer {
        to,
        amount,
        end_to_end_id,
        reference,
        ..
    } = &signed.tx.body
    else {
        return Err(IsoError::WrongMessage(format!(
            "a pacs.008 carries a transfer, not a {}",
            signed.tx.body.kind()
        )));
    };
    // Refused before anything is written: a bank's schema validation would refuse it.
    let value = format_amount(*amount, decimals, "IntrBkSttlmAmt")?;
    let hash = signed.hash();
    write(
        "Document",
        &Pacs008 {
            xmlns: PACS008,
            message: Message008 {
                header: Header008 {
                    id: payment_message_id(&hash),
                    created: date_time(created_ms),
                    count: "1",
                    settlement: Settlement {
                        method: "CLRG",
                        system: Proprietary { value: "INTERPOOL" },
                    },
                },
                transfer: CreditTransfer {
                    payment_id: PaymentId {
                        instruction: hash.to_hex().get(..32).unwrap_or_default().to_string(),
                        end_to_end: end_to_end_id.clone(),
                    },
                    amount: CcyAmount {
                        currency: currency.to_string(),
                        value,
                    },
                    charges: "SLEV",
                    debtor: Party::of(&signed.tx.signer),
                    debtor_account: Account::customer(&signed.tx.signer, None, None),
                    debtor_agent: Agent::of(debtor_bank),
                    creditor_agent: Agent::of(creditor_bank),
                    creditor: Party::of(to),
                    creditor_account: Account::customer(to, None, None),
                    remittance: Some(reference.as_str())
                        .filter(|r| !r.is_empty())
                        .map(|text| Remittance {
                            text: super::xml_safe(text),
                        }),
                    supplementary: SupplementaryData {
                        place: ENVELOPE_PLACE,
                        envelope: Envelope {
                            signed: SignedTransactionElement {
                                xmlns: TX_ENVELOPE_NS,
                                hex: to_hex(&signed.encode()),
                            },
                        },
                    },
                },
            },
        },
    )
}

/// A pacs.008 as read: its fields and the signed transaction it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    /// `GrpHdr/MsgId`.
    pub message_id: String,
    /// `PmtId/EndToEndId`.
    pub end_to_end_id: String,
    /// `IntrBkSttlmAmt/@Ccy`.
    pub currency: String,
    /// `IntrBkSttlmAmt`, in minor units.
    pub amount: Amount,
    /// `DbtrAcct` (its proxy).
    pub debtor_account: AccountId,
    /// `CdtrAcct` (its proxy).
    pub creditor_account: AccountId,
    /// `DbtrAgt/FinInstnId/Othr/Id`.
    pub debtor_agent: String,
    /// `CdtrAgt/FinInstnId/Othr/Id`.
    pub creditor_agent: String,
    /// `RmtInf/Ustrd`, if any.
    pub remittance: Option<String>,
    /// The signed transaction of the supplementary data.
    pub signed: SignedTransaction,
}

/// Reads a pacs.008.001.08 holding one credit transfer, amounts in `decimals` places. An
/// amount with more fraction digits than the currency has (unless zeros), or more than
/// `ActiveCurrencyAndAmount` holds (5 significant fraction digits, 18 significant digits),
/// is [`IsoError::Invalid`].
pub fn read_pacs008(xml: &str, decimals: u8) -> Result<PaymentOrder, IsoError> {
    let document = parse(xml, PACS008)?;
    let root = document.root_element();
    let message = find(root, "FIToFICstmrCdtTrf")?
        .ok_or_else(|| IsoError::WrongMessage("not a FIToFICstmrCdtTrf".into()))?;
    let count = text(message, "GrpHdr/NbOfTxs", "FIToFICstmrCdtTrf")?;
    let transfers: Vec<_> = children(message, "CdtTrfTxInf").collect();
    if count != "1" || transfers.len() != 1 {
        return Err(IsoError::Invalid {
            element: "GrpHdr/NbOfTxs".into(),
            message: format!(
                "a payment order carries exactly one credit transfer (NbOfTxs {count}, {} \
                 CdtTrfTxInf)",
                transfers.len()
            ),
        });
    }
    let Some(&tx) = transfers.first() else {
        return Err(IsoError::Missing("CdtTrfTxInf".into()));
    };
    let (currency, settled) = amount(tx, "IntrBkSttlmAmt", decimals)?;
    let envelope = find(tx, "SplmtryData/Envlp")?
        .ok_or_else(|| IsoError::Missing("CdtTrfTxInf/SplmtryData/Envlp".into()))?;
    let carried: Vec<_> = envelope
        .children()
        .filter(|c| {
            c.is_element()
                && c.tag_name().name() == TX_ENVELOPE
                && c.tag_name().namespace() == Some(TX_ENVELOPE_NS)
        })
        .collect();
    let [carried] = carried.as_slice() else {
        return Err(IsoError::Missing(format!(
            "exactly one {TX_ENVELOPE} of namespace {TX_ENVELOPE_NS} in SplmtryData/Envlp"
        )));
    };
    let hex = super::leaf_text(*carried, TX_ENVELOPE)?;
    let hex = hex.trim();
    let invalid = |message: String| IsoError::Invalid {
        element: format!("SplmtryData/Envlp/{TX_ENVELOPE}"),
        message,
    };
    let max = usize::try_from(MAX_TX_BYTES).unwrap_or(usize::MAX);
    let bytes = from_hex_vec(hex, max).map_err(|e| invalid(e.to_string()))?;
    let signed = SignedTransaction::decode(&bytes).map_err(|e| invalid(e.to_string()))?;
    let message_id = text(message, "GrpHdr/MsgId", "FIToFICstmrCdtTrf")?;
    if message_id.chars().count() > 35 {
        return Err(IsoError::Invalid {
            element: "GrpHdr/MsgId".into(),
            message: format!("{} characters, at most 35", message_id.chars().count()),
        });
    }
    Ok(PaymentOrder {
        message_id,
        end_to_end_id: exact_text(tx, "PmtId/EndToEndId")?
            .ok_or_else(|| IsoError::Missing("CdtTrfTxInf/PmtId/EndToEndId".into()))?,
        currency,
        amount: settled,
        debtor_account: account(tx, "DbtrAcct")?,
        creditor_account: account(tx, "CdtrAcct")?,
        debtor_agent: text(tx, "DbtrAgt/FinInstnId/Othr/Id", "CdtTrfTxInf")?,
        creditor_agent: text(tx, "CdtrAgt/FinInstnId/Othr/Id", "CdtTrfTxInf")?,
        remittance: exact_text(tx, "RmtInf/Ustrd")?,
        signed,
    })
}

impl PaymentOrder {
    /// Where the XML fields say something else than the signed transaction: one line per
    /// field. `bank_of` gives an account's bank (for the agents), `None` if unknown.
    pub fn disagreements(
        &self,
        currency: &str,
        bank_of: impl Fn(&AccountId) -> Option<BankId>,
    ) -> Vec<String> {
        let tx = &self.signed.tx;
        let Body::Transfer {
            to,
            amount,
            end_to_end_id,
            reference,
            ..
        } = &tx.body
        else {
            return vec![format!(
                "the signed transaction is a {}, not a transfer",
                tx.body.kind()
            )];
        };
        let mut out = Vec::new();
        let mut differ = |field: &str, xml: &str, signed: &str| {
            if xml != signed {
                out.push(format!(
                    "{field} is {xml:?}, the signed transaction says {signed:?}"
                ));
            }
        };
        differ("PmtId/EndToEndId", &self.end_to_end_id, end_to_end_id);
        differ("IntrBkSttlmAmt/@Ccy", &self.currency, currency);
        differ(
            "IntrBkSttlmAmt",
            &self.amount.0.to_string(),
            &amount.0.to_string(),
        );
        differ(
            "DbtrAcct",
            &self.debtor_account.to_hex(),
            &tx.signer.to_hex(),
        );
        differ("CdtrAcct", &self.creditor_account.to_hex(), &to.to_hex());
        // What the XML can hold of the reference (see `xml_safe`).
        differ(
            "RmtInf/Ustrd",
            self.remittance.as_deref().unwrap_or(""),
            &super::xml_safe(reference),
        );
        if let Some(bank) = bank_of(&tx.signer) {
            differ("DbtrAgt", &self.debtor_agent, bank.as_str());
        }
        if let Some(bank) = bank_of(to) {
            differ("CdtrAgt", &self.creditor_agent, bank.as_str());
        }
        out
    }
}

/// A transaction's status, as a pacs.002 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Accepted, settlement in process (in the mempool or a block is being agreed).
    Accepted,
    /// Pending: queued under the sending bank's net debit cap.
    Pending,
    /// Settled: committed (or released from the queue).
    Settled,
    /// Rejected.
    Rejected,
}

impl PaymentStatus {
    /// The ExternalPaymentTransactionStatus1Code.
    pub fn code(self) -> &'static str {
        match self {
            PaymentStatus::Accepted => "ACSP",
            PaymentStatus::Pending => "PDNG",
            PaymentStatus::Settled => "ACSC",
            PaymentStatus::Rejected => "RJCT",
        }
    }
}

/// What a pacs.002 reports about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The transfer's end-to-end id.
    pub end_to_end_id: String,
    /// The original pacs.008's message id, if known.
    pub original_message_id: Option<String>,
    /// The status.
    pub status: PaymentStatus,
    /// For a rejection: the ledger's or admission's error code (mapped to an ISO reason).
    pub error_code: Option<String>,
    /// Free text (the height it committed at, the error message).
    pub detail: Option<String>,
    /// The transaction.
    pub tx_hash: Hash,
    /// When the report is made (ms since the Unix epoch).
    pub created_ms: u64,
    /// When the transfer settled, if it did (the block time).
    pub settled_ms: Option<u64>,
}

#[derive(Serialize)]
struct Header002 {
    #[serde(rename = "MsgId")]
    id: String,
    #[serde(rename = "CreDtTm")]
    created: String,
}

#[derive(Serialize)]
struct OriginalGroup {
    #[serde(rename = "OrgnlMsgId")]
    id: String,
    #[serde(rename = "OrgnlMsgNmId")]
    name: &'static str,
}

#[derive(Serialize)]
struct Reason {
    #[serde(rename = "Cd")]
    code: &'static str,
}

#[derive(Serialize)]
struct StatusReason {
    #[serde(rename = "Rsn")]
    reason: Reason,
    #[serde(rename = "AddtlInf")]
    text: Vec<String>,
}

#[derive(Serialize)]
struct TransactionStatus {
    #[serde(rename = "OrgnlGrpInf", skip_serializing_if = "Option::is_none")]
    group: Option<OriginalGroup>,
    #[serde(rename = "OrgnlEndToEndId")]
    end_to_end_id: String,
    #[serde(rename = "OrgnlTxId")]
    tx_id: String,
    #[serde(rename = "TxSts")]
    status: &'static str,
    #[serde(rename = "StsRsnInf", skip_serializing_if = "Option::is_none")]
    reason: Option<StatusReason>,
    #[serde(rename = "AccptncDtTm", skip_serializing_if = "Option::is_none")]
    accepted: Option<String>,
    #[serde(rename = "AcctSvcrRef")]
    reference: String,
}

#[derive(Serialize)]
struct Message002 {
    #[serde(rename = "GrpHdr")]
    header: Header002,
    #[serde(rename = "TxInfAndSts")]
    transaction: TransactionStatus,
}

#[derive(Serialize)]
struct Pacs002 {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "FIToFIPmtStsRpt")]
    message: Message002,
}

/// Splits free text into `Max105Text` pieces (at most 2: the XSD allows any number).
fn max105(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(105)
        .take(2)
        .map(|c| c.iter().collect())
        .collect()
}

/// Writes the pacs.002.001.10 of `report`.
pub fn pacs002(report: &StatusReport) -> Result<String, IsoError> {
    let hash = report.tx_hash.to_hex();
    let short = hash.get(..32).unwrap_or_default().to_string();
    let reason = match (report.status, &report.error_code) {
        (PaymentStatus::Rejected, Some(code)) => Some(StatusReason {
            reason: Reason {
                code: super::reason_code(code),
            },
            text: max105(&match &report.detail {
                Some(detail) => format!("{code}: {detail}"),
                None => code.clone(),
            }),
        }),
        _ => None,
    };
    let detail = if reason.is_none() {
        report.detail.as_deref().map(max105)
    } else {
        None
    };
    let reason = reason.or_else(|| {
        detail.filter(|d| !d.is_empty()).map(|text| StatusReason {
            reason: Reason { code: "NARR" },
            text,
        })
    });
    write(
        "Document",
        &Pacs002 {
            xmlns: PACS002,
            message: Message002 {
                header: Header002 {
                    // Max35Text: 9 + 12 + 1 + the 13 digits of a millisecond time, all of
                    // them (16 hash digits left room for only 9, and reports within 10 s of
                    // each other shared an id).
                    id: format!(
                        "IP-PACS2-{}-{}",
                        hash.get(..12).unwrap_or_default(),
                        report.created_ms
                    )
                    .chars()
                    .take(35)
                    .collect(),
                    created: date_time(report.created_ms),
                },
                transaction: TransactionStatus {
                    group: report.original_message_id.clone().map(|id| OriginalGroup {
                        id,
                        name: "pacs.008.001.08",
                    }),
                    end_to_end_id: report.end_to_end_id.clone(),
                    tx_id: short.clone(),
                    status: report.status.code(),
                    reason,
                    accepted: report.settled_ms.map(date_time),
                    reference: short,
                },
            },
        },
    )
}

/// A pacs.002 as read back (the wallet, tests): status, reason code and end-to-end id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadStatus {
    /// `OrgnlEndToEndId`.
    pub end_to_end_id: String,
    /// `TxSts`.
    pub status: String,
    /// `StsRsnInf/Rsn/Cd`, if any.
    pub reason: Option<String>,
    /// `StsRsnInf/AddtlInf`, joined.
    pub text: Option<String>,
}

/// Reads a pacs.002.001.10 of one transaction.
pub fn read_pacs002(xml: &str) -> Result<ReadStatus, IsoError> {
    let document = parse(xml, PACS002)?;
    let root = document.root_element();
    let tx = find(root, "FIToFIPmtStsRpt/TxInfAndSts")?
        .ok_or_else(|| IsoError::Missing("FIToFIPmtStsRpt/TxInfAndSts".into()))?;
    let text_lines: Vec<String> = find(tx, "StsRsnInf")?
        .map(|r| {
            children(r, "AddtlInf")
                .filter_map(|n| n.text().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(ReadStatus {
        end_to_end_id: exact_text(tx, "OrgnlEndToEndId")?
            .ok_or_else(|| IsoError::Missing("TxInfAndSts/OrgnlEndToEndId".into()))?,
        status: text(tx, "TxSts", "TxInfAndSts")?,
        reason: optional_text(tx, "StsRsnInf/Rsn/Cd")?,
        text: Some(text_lines.concat()).filter(|t| !t.is_empty()),
    })
}
