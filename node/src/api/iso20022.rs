//! ISO 20022 payment orders and status reports: `POST /v1/iso20022/pacs.008` and
//! `GET /v1/iso20022/pacs.002/{end_to_end_id}`.
//!
//! A pacs.008 carries the customer-signed transaction (`contracts::iso20022::pacs`): the
//! node reads it (size-limited, no DTD, namespace and version checked), refuses it if any
//! XML field disagrees with the signed transaction (422 `message_mismatch`, naming each
//! field), and submits the transaction through the one admission pipeline, exactly as
//! `POST /v1/transactions` does. The answer is a pacs.002: `ACSP` when acknowledged (202),
//! the current status when the transaction is already known (200), `RJCT` with the reason
//! mapped from the ledger's error code when refused (400/409/422). Input that is not a
//! usable payment order gets the API's JSON error instead (a 4xx), and changes nothing.
//!
//! A status is found by end-to-end id in the store's index of included transfers and, for
//! orders this node acknowledged that are not yet in a block, in a bounded memory of them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use interpool_contracts::iso20022::pacs::{pacs002, read_pacs008, PaymentStatus, StatusReport};
use interpool_contracts::iso20022::{IsoError, MAX_DOCUMENT_BYTES};
use interpool_contracts::views::TxStatus;
use interpool_contracts::{AccountId, AdmissionError, Block, Hash};
use serde::Deserialize;
use utoipa::IntoParams;

use super::limits::{ExpensiveReads, WithinRate, Writes};
use super::statements::xml_response;
use super::transactions::{rejection, stored_status};
use super::{parse_account, ApiError, ApiResult, ApiState, Code, ErrorBody};
use crate::app::{lock, Origin};

/// Transfers with one end-to-end id looked at for a status (a debtor's own are few: a
/// retry rejected as a duplicate, an id reused after the duplicate window).
const MAX_CANDIDATES: usize = 16;

/// Orders remembered while they wait for a block.
const REMEMBERED_ORDERS: usize = 100_000;

/// Orders this node acknowledged, by end-to-end id: `(debtor, transaction, message id)`.
/// Bounded: the oldest are forgotten first (by then they are in a block, and the store's
/// index finds them).
#[derive(Default)]
pub struct RecentOrders {
    inner: Mutex<Remembered>,
}

/// An order remembered: `(debtor, transaction, message id)`.
type Order = (AccountId, Hash, String);

/// Orders by end-to-end id, and the ids in the order they were remembered.
#[derive(Default)]
struct Remembered {
    by_id: HashMap<String, Vec<Order>>,
    order: VecDeque<String>,
}

impl RecentOrders {
    fn remember(&self, end_to_end_id: &str, debtor: AccountId, tx: Hash, message_id: &str) {
        let mut guard = lock(&self.inner);
        let Remembered { by_id: map, order } = &mut *guard;
        let list = map.entry(end_to_end_id.to_string()).or_default();
        if list.iter().any(|(_, hash, _)| *hash == tx) {
            return;
        }
        list.push((debtor, tx, message_id.to_string()));
        order.push_back(end_to_end_id.to_string());
        while order.len() > REMEMBERED_ORDERS {
            if let Some(old) = order.pop_front() {
                if let Some(list) = map.get_mut(&old) {
                    if !list.is_empty() {
                        list.remove(0);
                    }
                    if list.is_empty() {
                        map.remove(&old);
                    }
                }
            }
        }
    }

    fn find(&self, end_to_end_id: &str) -> Vec<Order> {
        lock(&self.inner)
            .by_id
            .get(end_to_end_id)
            .cloned()
            .unwrap_or_default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn is_xml(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .is_some_and(|media| media == "application/xml" || media == "text/xml")
}

/// The API error of an ISO 20022 document not read or not written.
pub(crate) fn iso_error(error: IsoError) -> ApiError {
    match error {
        IsoError::TooLarge(_) => ApiError::new(Code::BodyTooLarge, error.to_string()),
        IsoError::Malformed(_) => ApiError::new(Code::BadXml, error.to_string()),
        IsoError::WrongMessage(_) => ApiError::new(Code::UnsupportedMessage, error.to_string()),
        IsoError::Missing(_) | IsoError::Invalid { .. } => {
            ApiError::new(Code::InvalidMessage, error.to_string())
        }
        IsoError::AmountNotRepresentable { .. } => {
            ApiError::new(Code::AmountNotRepresentable, error.to_string())
        }
        IsoError::Write(_) => ApiError::internal(error),
    }
}

#[utoipa::path(
    post,
    path = "/v1/iso20022/pacs.008",
    summary = "Submit an ISO 20022 pacs.008 payment order carrying a signed transfer",
    description = "A pacs.008.001.08 (`FIToFICstmrCdtTrf`) with exactly one `CdtTrfTxInf`, \
        whose `SplmtryData/Envlp` holds one element `SignedTransaction` of namespace \
        `urn:interpool:xsd:signed-transaction:1`: the hex of the customer-signed transfer's \
        canonical encoding (`interpool-wallet iso pacs008` writes such a message). \
        `PmtId/EndToEndId`, `IntrBkSttlmAmt` and its `Ccy`, `DbtrAcct` and `CdtrAcct` \
        (`Prxy/Id`: the whole account id; `Id/Othr/Id`: its first 32 hex digits), \
        `DbtrAgt` and `CdtrAgt` (`FinInstnId/Othr/Id`: the banks) and `RmtInf/Ustrd` must \
        say what the signed transaction says. At most 65536 bytes; no DTD. The transaction \
        is then submitted as by `POST /v1/transactions`; the answer is a pacs.002.001.10.",
    tag = "iso20022",
    request_body(content = String, content_type = "application/xml",
        description = "The pacs.008.001.08 document"),
    responses(
        (status = 202, description = "pacs.002 `ACSP`: acknowledged (recorded on this \
            node's disk), settlement in process", body = String, content_type = "application/xml"),
        (status = 200, description = "pacs.002 of a transaction this node knows already \
            (`ACSP`, `PDNG`, `ACSC` or `RJCT`)", body = String, content_type = "application/xml"),
        (status = 400, description = "`bad_body`, `bad_xml` (not well-formed, or a DTD), \
            `unsupported_message` (another message, namespace or version), \
            `invalid_message` (an element missing or invalid, the transaction not \
            decodable); or a pacs.002 `RJCT` (XML) of a transaction refused without the \
            ledger state (`bad_signature`, `wrong_chain`, ...)", content(
            (ErrorBody = "application/json"), (String = "application/xml"))),
        (status = 403, description = "`read_only`: this node is an observer", body = ErrorBody),
        (status = 409, description = "pacs.002 `RJCT` (XML): `nonce_taken`", body = String,
            content_type = "application/xml"),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/xml` or \
            `text/xml`", body = ErrorBody),
        (status = 422, description = "`message_mismatch` (JSON: the XML fields that \
            disagree with the signed transaction); or a pacs.002 `RJCT` (XML) with the \
            ledger's reason (`insufficient_funds` → `AM04`, `unknown_account` → `AC01`, \
            `account_frozen` → `AC06`, `duplicate_end_to_end_id` → `AM05`, ...)",
            content((ErrorBody = "application/json"), (String = "application/xml"))),
        (status = 429, description = "`rate_limited` (this client is over its rate of \
            writes) or `too_many_pending`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`busy`, `mempool_full` or `unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn pacs008(
    rate: WithinRate<Writes>,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    if state.read_only {
        return Err(ApiError::read_only());
    }
    let body = body.map_err(ApiError::body)?;
    if !is_xml(&headers) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "a pacs.008 is sent as application/xml (or text/xml)",
        ));
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(iso_error(IsoError::TooLarge(body.len())));
    }
    let xml = std::str::from_utf8(&body)
        .map_err(|e| ApiError::new(Code::BadXml, format!("not UTF-8: {e}")))?;
    let order = read_pacs008(xml, state.decimals).map_err(iso_error)?;
    let view = state.reader.view();
    let disagreements = order.disagreements(&state.currency, |account| {
        view.ledger.account(account).map(|a| a.bank.clone())
    });
    if !disagreements.is_empty() {
        return Err(ApiError::new(
            Code::MessageMismatch,
            format!(
                "the pacs.008 does not say what its signed transaction says: {}",
                disagreements.join("; ")
            ),
        ));
    }
    drop(view);
    let _turn = state.write_permit(rate.client())?;
    let hash = order.signed.hash();
    let signer = order.signed.tx.signer;
    let result = state
        .admission
        .admit(vec![order.signed], Origin::Client)
        .await
        .results
        .pop()
        .ok_or_else(|| ApiError::internal("no result"))?;
    let report = |status, error_code: Option<String>, detail: Option<String>| StatusReport {
        end_to_end_id: order.end_to_end_id.clone(),
        original_message_id: Some(order.message_id.clone()),
        status,
        error_code,
        detail,
        tx_hash: hash,
        created_ms: now_ms(),
        settled_ms: None,
    };
    let answer = |status_code: StatusCode, report: StatusReport| -> ApiResult<Response> {
        let xml = pacs002(&report).map_err(ApiError::internal)?;
        Ok(xml_response(status_code, xml))
    };
    match result {
        Ok(_) => {
            state
                .iso_orders
                .remember(&order.end_to_end_id, signer, hash, &order.message_id);
            answer(
                StatusCode::ACCEPTED,
                report(
                    PaymentStatus::Accepted,
                    None,
                    Some(format!("acknowledged as transaction {hash}")),
                ),
            )
        }
        Err(AdmissionError::AlreadyPending | AdmissionError::AlreadyIncluded(_)) => {
            // The submitter holds the signed transaction itself (its payer's order). Pending,
            // it is one this node acknowledged and recorded (503 while still being recorded for
            // the submission that brought it): one it held only as a peer's copy, with no
            // record here, was admitted as new instead (202 above; ADR 0010). Writes are
            // anonymous, though: its reason as anyone may be told it.
            let anyone = super::auth::Caller::default();
            let (mut current, _) = status_of(&state, hash, Some(&anyone)).await?;
            current.end_to_end_id = order.end_to_end_id.clone();
            current.original_message_id = Some(order.message_id.clone());
            answer(StatusCode::OK, current)
        }
        Err(AdmissionError::Rejected(error)) => {
            let status = super::error::admission_status(&AdmissionError::Rejected(error.clone()));
            // Writes are anonymous: the reason as anyone may be told it.
            let shown = super::error::rejection_view(&error, &super::auth::Caller::default());
            answer(
                status,
                report(
                    PaymentStatus::Rejected,
                    Some(shown.code),
                    Some(shown.message),
                ),
            )
        }
        Err(error @ AdmissionError::NonceTaken(_)) => answer(
            StatusCode::CONFLICT,
            report(
                PaymentStatus::Rejected,
                error.admission_code().map(|c| c.as_str().to_string()),
                Some(error.to_string()),
            ),
        ),
        Err(other) => Err(ApiError::admission(&other)),
    }
}

/// The pacs.002 report of transaction `hash` as it stands (end-to-end id left empty), and
/// the height of the block that included it (none while pending). A ledger rejection's
/// reason is told as `reader` may be told it (`error::rejection_view`: without amounts that
/// are not its to read), and not at all for `None` (a caller who may not read the signer,
/// `Caller::sees_rejection_of`: the reason names what the payer lacked).
async fn status_of(
    state: &ApiState,
    hash: Hash,
    reader: Option<&super::auth::Caller>,
) -> ApiResult<(StatusReport, Option<u64>)> {
    let stored = state
        .read_expensive(move |store| -> ApiResult<_> {
            let Some(view) = stored_status(store, hash, None)? else {
                return Ok(None);
            };
            // The time of the block that settled it.
            let settled_at = view
                .settled_height
                .or(view.height)
                .filter(|_| view.status == TxStatus::Committed);
            let settled_ms = match settled_at {
                Some(height) => store
                    .block(height)
                    .map_err(ApiError::internal)?
                    .and_then(|bytes| {
                        Block::decode(&bytes, interpool_consensus::MAX_PAYLOAD_BYTES as u64).ok()
                    })
                    .map(|block| block.header.timestamp_ms),
                None => None,
            };
            Ok(Some((view, settled_ms)))
        })
        .await??;
    let included_at = stored.as_ref().and_then(|(view, _)| view.height);
    let (status, error_code, detail, settled_ms) = match stored {
        Some((view, settled_ms)) => {
            let height = view.height.unwrap_or(0);
            match view.status {
                TxStatus::Committed => (
                    PaymentStatus::Settled,
                    None,
                    Some(match view.settled_height {
                        Some(released) => {
                            format!("settled at height {released} (queued at {height}), tx {hash}")
                        }
                        None => format!("settled at height {height}, tx {hash}"),
                    }),
                    settled_ms,
                ),
                TxStatus::Queued => (
                    PaymentStatus::Pending,
                    None,
                    Some(format!(
                        "queued at height {height} under the sending bank's net debit cap"
                    )),
                    None,
                ),
                TxStatus::Expired => (
                    PaymentStatus::Rejected,
                    Some("queue_expired".to_string()),
                    Some(format!(
                        "queued at height {height}, expired at height {} and refunded",
                        view.settled_height.unwrap_or(height)
                    )),
                    None,
                ),
                TxStatus::Cancelled | TxStatus::RejectTime | TxStatus::Cutoff => {
                    let (code, what) = match view.status {
                        TxStatus::Cancelled => ("cancelled", "cancelled"),
                        TxStatus::RejectTime => ("reject_time", "rejected at its reject time"),
                        _ => ("cutoff", "rejected at the customer cut-off"),
                    };
                    (
                        PaymentStatus::Rejected,
                        Some(code.to_string()),
                        Some(format!(
                            "queued at height {height}, {what} at height {} and refunded",
                            view.settled_height.unwrap_or(height)
                        )),
                        None,
                    )
                }
                TxStatus::Rejected => {
                    let error = reader.and_then(|reader| {
                        let (_, error) = view.receipt.as_ref().and_then(rejection)?;
                        Some(super::error::rejection_view(error, reader))
                    });
                    let detail = match &error {
                        Some(error) => format!("rejected at height {height}: {}", error.message),
                        None => format!("rejected at height {height}"),
                    };
                    (
                        PaymentStatus::Rejected,
                        error.map(|error| error.code),
                        Some(detail),
                        None,
                    )
                }
                TxStatus::Pending | TxStatus::Unknown => {
                    (PaymentStatus::Accepted, None, None, None)
                }
            }
        }
        None if lock(&state.mempool).contains(&hash) => (
            PaymentStatus::Accepted,
            None,
            Some(format!("pending: waiting for a block, tx {hash}")),
            None,
        ),
        // Neither in the store nor pending: it may have committed between the two looks (a
        // commit writes the store, then leaves the mempool). Look again before saying it is
        // gone.
        None if state
            .reader
            .read(move |store| store.tx_location(&hash))
            .await
            .map_err(ApiError::internal)?
            .is_some() =>
        {
            return Box::pin(status_of(state, hash, reader)).await;
        }
        None => (
            PaymentStatus::Rejected,
            Some("dropped".to_string()),
            Some(
                "acknowledged but no longer pending and in no block: its validity ran out \
                 before a block included it"
                    .to_string(),
            ),
            None,
        ),
    };
    Ok((
        StatusReport {
            end_to_end_id: String::new(),
            original_message_id: None,
            status,
            error_code,
            detail,
            tx_hash: hash,
            created_ms: now_ms(),
            settled_ms,
        },
        included_at,
    ))
}

/// `GET /v1/iso20022/pacs.002/{end_to_end_id}` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// The debtor's account, when several debtors used the same end-to-end id.
    #[param(value_type = Option<AccountId>, inline)]
    debtor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/iso20022/pacs.002/{end_to_end_id}",
    summary = "The ISO 20022 pacs.002 status report of a transfer, by end-to-end id",
    description = "`ACSP` (acknowledged, not yet in a block), `PDNG` (queued under the \
        sending bank's net debit cap), `ACSC` (settled: committed, or released from the \
        queue; `AccptncDtTm` is the block's time) or `RJCT` with a reason code (from the \
        ledger's error code; `AB03` for a queued transfer that expired). An end-to-end id is \
        the payer's: when two payers used the same one, name the debtor.",
    tag = "iso20022",
    params(
        ("end_to_end_id" = String, Path, min_length = 1, max_length = 35,
            pattern = "^[ -~]{1,35}$", description = "The transfer's end-to-end id"),
        StatusQuery,
    ),
    responses(
        (status = 200, description = "The pacs.002.001.10", body = String,
            content_type = "application/xml"),
        (status = 400, description = "`bad_end_to_end_id`, `bad_query` or `bad_account_id`",
            body = ErrorBody),
        (status = 404, description = "`unknown_end_to_end_id`: no transfer with it on this \
            node (acknowledged elsewhere and not yet in a block, or never sent)",
            body = ErrorBody),
        (status = 409, description = "`ambiguous_end_to_end_id`: several debtors used it; \
            add `?debtor=`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of \
            expensive reads", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`busy` or `unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn pacs002_status(
    _rate: WithinRate<ExpensiveReads>,
    caller: super::auth::Caller,
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Path(end_to_end_id) =
        path.map_err(|e| ApiError::new(Code::BadEndToEndId, e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let debtor = query.debtor.as_deref().map(parse_account).transpose()?;
    let valid = !end_to_end_id.is_empty()
        && end_to_end_id.len() <= interpool_contracts::tx::MAX_END_TO_END_ID_CHARS
        && end_to_end_id.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if !valid {
        return Err(ApiError::new(
            Code::BadEndToEndId,
            "an end-to-end id is 1 to 35 printable ASCII characters",
        ));
    }
    // Whose transfers: the debtor given, or the one debtor there is (more: ambiguous), of
    // those with a transfer the caller may read (its debtor, the debtor's bank's operator and
    // the all-seeing roles read them all; a payee and its bank's operator the payee's).
    caller.known()?;
    let ledger = state.reader.view().ledger.clone();
    let remembered = state.iso_orders.find(&end_to_end_id);
    let debtors = match debtor {
        Some(debtor) => vec![debtor],
        None => {
            let lookup = end_to_end_id.clone();
            let mut debtors = state
                .reader
                .read(move |store| store.end_to_end_signers(&lookup, 8))
                .await
                .map_err(ApiError::internal)?;
            debtors.extend(remembered.iter().map(|(signer, _, _)| *signer));
            debtors.sort();
            debtors.dedup();
            debtors
        }
    };
    let mut found = Vec::new();
    for debtor in debtors {
        let candidates = readable_candidates(
            &caller,
            &state,
            &ledger,
            &end_to_end_id,
            debtor,
            &remembered,
        )
        .await?;
        if !candidates.is_empty() {
            found.push((debtor, candidates));
        }
    }
    let (debtor, candidates) = match found.len() {
        0 => {
            let whose = debtor
                .map(|debtor| format!(" of {debtor}"))
                .unwrap_or_default();
            return Err(ApiError::new(
                Code::UnknownEndToEndId,
                format!("no transfer{whose} with end-to-end id {end_to_end_id:?} on this node"),
            ));
        }
        1 => found.remove(0),
        several => {
            return Err(ApiError::new(
                Code::AmbiguousEndToEndId,
                format!(
                    "{}{several} debtors used end-to-end id {end_to_end_id:?} ({}); add ?debtor=",
                    if several >= 8 { "at least " } else { "" },
                    found
                        .iter()
                        .map(|(d, _)| d.to_hex())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    // Several transactions of one debtor (a retry rejected as a duplicate, the id used
    // again after the duplicate window): the latest that is not a duplicate's rejection.
    let mut best: Option<((bool, std::cmp::Reverse<u64>), StatusReport)> = None;
    for (hash, message_id) in candidates {
        let (mut report, height) = status_of(&state, hash, Some(&caller)).await?;
        report.end_to_end_id = end_to_end_id.clone();
        report.original_message_id = message_id;
        let duplicate = report.error_code.as_deref() == Some("duplicate_end_to_end_id");
        let key = (duplicate, std::cmp::Reverse(height.unwrap_or(u64::MAX)));
        if best.as_ref().is_none_or(|(best_key, _)| key < *best_key) {
            best = Some((key, report));
        }
    }
    let Some((_, report)) = best else {
        return Err(ApiError::new(
            Code::UnknownEndToEndId,
            format!("no transfer of {debtor} with end-to-end id {end_to_end_id:?} on this node"),
        ));
    };
    // Judged with its reason (a duplicate's rejection ranks last; its code is told to every
    // reader), shown without it to a caller who may not read the debtor: a rejection names
    // what the payer lacked.
    let report = if caller.sees_rejection_of(&ledger, &debtor) {
        report
    } else {
        let (mut withheld, _) = status_of(&state, report.tx_hash, None).await?;
        withheld.end_to_end_id = report.end_to_end_id;
        withheld.original_message_id = report.original_message_id;
        withheld
    };
    let xml = pacs002(&report).map_err(ApiError::internal)?;
    Ok(xml_response(StatusCode::OK, xml))
}

/// `debtor`'s transfers with `end_to_end_id`, committed or acknowledged here (with the
/// order's message id where this node acknowledged it), that `caller` may read: all of them
/// to a caller who may read the debtor; to another (a payee, the payee's bank's operator)
/// those it may read as a transaction, judged before any is picked, so that the debtor's
/// other transfers with the id (to someone else, a duplicate's rejection) neither hide the
/// caller's nor show through. An order acknowledged here whose transaction this node no
/// longer holds is its debtor's.
async fn readable_candidates(
    caller: &super::auth::Caller,
    state: &ApiState,
    ledger: &interpool_contracts::Ledger,
    end_to_end_id: &str,
    debtor: AccountId,
    remembered: &[Order],
) -> ApiResult<Vec<(Hash, Option<String>)>> {
    let lookup = end_to_end_id.to_string();
    let included = state
        .reader
        .read(move |store| store.transfers_by_end_to_end_id(&lookup, Some(&debtor), MAX_CANDIDATES))
        .await
        .map_err(ApiError::internal)?;
    let mut candidates: Vec<(Hash, Option<String>)> =
        included.into_iter().map(|(_, hash)| (hash, None)).collect();
    for (signer, hash, message_id) in remembered {
        if *signer != debtor {
            continue;
        }
        match candidates.iter_mut().find(|(h, _)| h == hash) {
            Some(found) => found.1 = Some(message_id.clone()),
            None => candidates.push((*hash, Some(message_id.clone()))),
        }
    }
    if caller.may_read_signer(ledger, &debtor).is_ok() {
        return Ok(candidates);
    }
    let mut readable = Vec::with_capacity(candidates.len());
    for (hash, message_id) in candidates {
        let location = state
            .reader
            .read(move |store| store.tx_location(&hash))
            .await
            .map_err(ApiError::internal)?;
        if let Ok(true) =
            super::transactions::check_transaction(caller, state, hash, location).await
        {
            readable.push((hash, message_id));
        }
    }
    Ok(readable)
}
