//! Transactions: `POST /v1/transactions`, `POST /v1/transactions/batch` (both through the
//! one admission pipeline) and `GET /v1/transactions/{hash}`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use interpool_contracts::batch::{split_batch, BatchError, BATCH_CONTENT_TYPE};
use interpool_contracts::primitives::from_hex_vec;
use interpool_contracts::tx::MAX_TX_BYTES;
use interpool_contracts::views::{SubmitView, TxStatus, TxStatusView};
use interpool_contracts::{
    AccountId, AdmissionError, ErrorView, Hash, Outcome, Receipt, SignedTransaction,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::limits::{WithinRate, Writes};
use super::{parse_hash, parse_json, path_text, ApiError, ApiResult, ApiState, Code, ErrorBody};
use crate::app::{lock, Origin};
use crate::storage::{QueueFate, Store};

/// Most transactions in one batch submission.
pub const MAX_BATCH_TRANSACTIONS: usize = 10_000;

/// `POST /v1/transactions` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// A signed transaction: its canonical encoding in hex, 100 to 2048 bytes
    /// (`MIN_TX_BYTES` to `MAX_TX_BYTES`). Hex of the right length that is not a canonical
    /// encoding is refused with 400 `malformed_transaction`; a transaction that is not
    /// correctly signed or not valid on this chain with the 400, 409 or 422 code of its
    /// rejection: the schema states the syntax, the node judges the meaning.
    #[schema(pattern = "^([0-9a-fA-F]{2})*$", min_length = 200, max_length = 4096)]
    pub(crate) tx: String,
}

/// `POST /v1/transactions/batch` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// Signed transactions, each a canonical encoding in hex as in `POST /v1/transactions`;
    /// at most 10000 (more is answered 400 `batch_too_large`). An entry of any other form
    /// is not an error of the whole batch: it is answered in place in the results (with
    /// `bad_hex` or `malformed_transaction`), so the entries are any strings.
    #[schema(max_items = 10000)]
    #[serde(deserialize_with = "at_most_a_batch")]
    pub(crate) txs: Vec<String>,
}

/// What [`at_most_a_batch`] says of a longer list (told apart from other JSON errors).
const TOO_MANY: &str = "more transactions than a batch may hold";

/// A list of at most [`MAX_BATCH_TRANSACTIONS`] strings, refused at the first one past it:
/// before, a 4 MiB body of empty strings became 1.4 million of them (tens of MB) before its
/// length was looked at.
fn at_most_a_batch<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_BATCH_TRANSACTIONS} strings")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut txs = Vec::new();
            while let Some(tx) = seq.next_element::<String>()? {
                if txs.len() == MAX_BATCH_TRANSACTIONS {
                    return Err(serde::de::Error::custom(TOO_MANY));
                }
                txs.push(tx);
            }
            Ok(txs)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

/// `POST /v1/transactions/batch` answer: one result per submitted transaction, in order.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchView {
    /// One result per transaction, in the order submitted.
    pub(crate) results: Vec<BatchItem>,
}

/// One result of a batch submission: the hash of an admitted transaction, or why it was not.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum BatchItem {
    /// Admitted to the mempool.
    Accepted {
        /// The transaction's hash.
        hash: Hash,
    },
    /// Not admitted: the error a single submission would have got.
    Refused {
        /// Why.
        error: ErrorView,
    },
}

/// Decodes a transaction's hex: 400 `bad_hex` unless pairs of hex digits, at most
/// `2 * MAX_TX_BYTES` characters (the document's pattern and `maxLength`); 400
/// `malformed_transaction` unless a canonical encoding, which is never shorter than
/// [`interpool_contracts::tx::MIN_TX_BYTES`] (the document's `minLength`).
fn decode_tx(hex: &str) -> ApiResult<SignedTransaction> {
    let bytes = from_hex_vec(hex, MAX_TX_BYTES as usize)
        .map_err(|e| ApiError::new(Code::BadHex, format!("tx: {e}")))?;
    decode_encoding(&bytes)
}

/// Decodes a transaction's encoding: 400 `malformed_transaction` unless canonical.
fn decode_encoding(bytes: &[u8]) -> ApiResult<SignedTransaction> {
    SignedTransaction::decode(bytes)
        .map_err(|e| ApiError::new(Code::MalformedTransaction, e.to_string()))
}

/// Whether the body is the binary form of a batch (`Content-Type: application/octet-stream`).
fn is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE))
}

/// A batch's entries as sent, before each is decoded: the hex of a JSON batch, or the
/// encodings of a binary one.
enum Entries<'a> {
    Json(Vec<String>),
    Binary(Vec<&'a [u8]>),
}

impl Entries<'_> {
    fn len(&self) -> usize {
        match self {
            Entries::Json(txs) => txs.len(),
            Entries::Binary(txs) => txs.len(),
        }
    }

    /// Each entry decoded, or its error.
    fn decode(self) -> Vec<ApiResult<SignedTransaction>> {
        match self {
            Entries::Json(txs) => txs.iter().map(|hex| decode_tx(hex)).collect(),
            Entries::Binary(txs) => txs.into_iter().map(decode_encoding).collect(),
        }
    }
}

/// The entries of a JSON batch.
fn json_batch(body: &[u8]) -> ApiResult<Entries<'static>> {
    let request: BatchRequest = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().contains(TOO_MANY) {
            ApiError::new(
                Code::BatchTooLarge,
                format!("more than {MAX_BATCH_TRANSACTIONS} transactions, at most {MAX_BATCH_TRANSACTIONS} per batch"),
            )
        } else if body.first().is_some_and(|b| !b.is_ascii_whitespace() && *b != b'{') {
            ApiError::new(
                Code::BadJson,
                format!(
                    "{e} (not a JSON object: a binary batch needs Content-Type: \
                     {BATCH_CONTENT_TYPE})"
                ),
            )
        } else {
            ApiError::new(Code::BadJson, e.to_string())
        }
    })?;
    Ok(Entries::Json(request.txs))
}

/// The entries of a binary batch ([`interpool_contracts::batch`]).
fn binary_batch(body: &[u8]) -> ApiResult<Entries<'_>> {
    let entries = split_batch(body, MAX_BATCH_TRANSACTIONS).map_err(|error| match error {
        too_many @ BatchError::TooMany { .. } => {
            ApiError::new(Code::BatchTooLarge, too_many.to_string())
        }
        framing => ApiError::new(Code::BadBody, format!("binary batch: {framing}")),
    })?;
    Ok(Entries::Binary(entries))
}

/// Entries of a batch that are malformed or fail a check made without the ledger (a bad
/// signature above all) that cost their client one request of its rate of writes: an
/// honest client sends none, and without the charge one client could make the node verify
/// a million forged signatures a second within a rate of 100 requests.
pub const FORGED_ENTRIES_PER_REQUEST: usize = 10;

/// The charge, in requests, for `forged` entries ([`FORGED_ENTRIES_PER_REQUEST`]).
fn forged_cost(forged: usize) -> u32 {
    u32::try_from(forged.div_ceil(FORGED_ENTRIES_PER_REQUEST)).unwrap_or(u32::MAX)
}

/// Admits `txs` through the one admission pipeline; one result per transaction.
async fn admit(state: &ApiState, txs: Vec<SignedTransaction>) -> Vec<ApiResult<Hash>> {
    state
        .admission
        .admit(txs, Origin::Client)
        .await
        .results
        .into_iter()
        .map(|result| result.map_err(|error| ApiError::admission(&error)))
        .collect()
}

#[utoipa::path(
    post,
    path = "/v1/transactions",
    summary = "Submit one signed transaction",
    tag = "transactions",
    request_body(content = SubmitRequest, content_type = "application/json",
        description = "One signed transaction"),
    responses(
        (status = 202, description = "Acknowledged: admitted to this node's mempool and \
            recorded on its disk before this answer, so it survives a crash of this node; \
            the node offers it to the validators (again after a restart, and every few \
            seconds while it is pending) until it commits or expires. Not yet committed: \
            poll `GET /v1/transactions/{hash}` for its outcome", body = SubmitView),
        (status = 400, description = "`bad_body`, `bad_json`, `bad_hex`, \
            `malformed_transaction`, or a rejection found without the ledger state: \
            `oversized`, `wrong_chain`, `invalid_signer`, `bad_signature`, `zero_amount`, \
            `invalid_end_to_end_id`, `invalid_reference`, `invalid_account_key`, \
            `self_transfer`, `invalid_terms`", body = ErrorBody),
        (status = 403, description = "`read_only`: this node is an observer", body = ErrorBody),
        (status = 409, description = "`already_pending` (this node acknowledged it already; \
            one it held only from a peer is recorded here and answered 202), `nonce_taken` \
            (another pending transaction of the signer has this nonce) or \
            `already_included`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 422, description = "Rejected against the ledger state: the code of the \
            rejection (`unknown_signer`, `bad_nonce`, `expired`, `insufficient_funds`, …)",
            body = ErrorBody),
        (status = 429, description = "`rate_limited` (this client is over its rate of \
            writes, or has its most writes in flight) or `too_many_pending` (the signer has \
            too many pending transactions)",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`busy` (the node handles its maximum of writes), \
            `mempool_full` or `unavailable` (also: the same transaction is being recorded \
            for another submission right now; retry)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn submit(
    rate: WithinRate<Writes>,
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<SubmitView>)> {
    if state.read_only {
        return Err(ApiError::read_only());
    }
    let body = body.map_err(ApiError::body)?;
    let _turn = state.write_permit(rate.client())?;
    let request: SubmitRequest = parse_json(&body)?;
    let tx = decode_tx(&request.tx)?;
    let hash = admit(&state, vec![tx])
        .await
        .pop()
        .ok_or_else(|| ApiError::internal("no result"))??;
    Ok((StatusCode::ACCEPTED, Json(SubmitView { hash })))
}

#[utoipa::path(
    post,
    path = "/v1/transactions/batch",
    summary = "Submit signed transactions as one batch",
    tag = "transactions",
    request_body(description = "Signed transactions, verified as one batch: JSON with \
        hex entries, or (`application/octet-stream`) the binary form, each transaction's \
        canonical encoding after its length as 4 bytes big-endian, one after the other \
        (at most 10000 entries; a body that does not split exactly into entries is answered \
        400 `bad_body`, an entry that is not a transaction is answered in place). Every 10 \
        entries refused as malformed or invalid without the ledger (a bad signature, a wrong \
        chain, ...) count as one more request against the client's rate of writes",
        content((BatchRequest = "application/json"), ("application/octet-stream"))),
    responses(
        (status = 200, description = "One result per transaction, in order: its hash if \
            acknowledged (with the promise of a 202 from `POST /v1/transactions`: recorded \
            on disk before this answer), else the error a single submission would have \
            got", body = BatchView),
        (status = 400, description = "`bad_body` (also a binary body whose framing is \
            wrong), `bad_json` or `batch_too_large` (more than 10000 entries)", body = ErrorBody),
        (status = 403, description = "`read_only`: this node is an observer", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of writes, \
            or has its most writes in flight (`[rpc] max_concurrent_writes_per_client`)",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`busy` (the node handles its maximum of writes) or \
            `unavailable`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn submit_batch(
    rate: WithinRate<Writes>,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BatchView>> {
    if state.read_only {
        return Err(ApiError::read_only());
    }
    let body = body.map_err(ApiError::body)?;
    let _turn = state.write_permit(rate.client())?;
    let entries = if is_binary(&headers) {
        binary_batch(&body)?
    } else {
        json_batch(&body)?
    };
    // Past the client backlog every entry would be refused, so none is decoded.
    if let Some(pending) = state.admission.client_backlog_full() {
        let full = AdmissionError::MempoolFull(pending).to_view();
        let results = (0..entries.len())
            .map(|_| BatchItem::Refused {
                error: full.clone(),
            })
            .collect();
        return Ok(Json(BatchView { results }));
    }
    // Undecodable entries are answered in place; the rest are verified as one batch.
    let entries = entries.decode();
    let undecodable = entries.iter().filter(|entry| entry.is_err()).count();
    let mut decoded = Vec::new();
    let mut slots: Vec<Option<ApiResult<Hash>>> = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Ok(tx) => {
                decoded.push(tx);
                slots.push(None);
            }
            Err(error) => slots.push(Some(Err(error))),
        }
    }
    let admitted = state.admission.admit(decoded, Origin::Client).await.results;
    let forged = admitted
        .iter()
        .filter(|result| matches!(result, Err(AdmissionError::Rejected(e)) if e.is_stateless()))
        .count();
    state.limits.write_rate.charge(
        rate.client(),
        forged_cost(undecodable.saturating_add(forged)),
        std::time::Instant::now(),
    );
    let mut admitted = admitted
        .into_iter()
        .map(|result| result.map_err(|error| ApiError::admission(&error)));
    let results: Vec<BatchItem> = slots
        .into_iter()
        .map(|slot| match slot.or_else(|| admitted.next()) {
            Some(Ok(hash)) => BatchItem::Accepted { hash },
            Some(Err(error)) => BatchItem::Refused { error: error.view },
            None => BatchItem::Refused {
                error: ErrorView {
                    code: Code::Unavailable.as_str().into(),
                    message: "no result".into(),
                },
            },
        })
        .collect();
    Ok(Json(BatchView { results }))
}

#[utoipa::path(
    get,
    path = "/v1/transactions/{hash}",
    summary = "A transaction's status and receipt",
    tag = "transactions",
    params(("hash" = inline(Hash), Path, description = "The transaction hash")),
    responses(
        (status = 200, description = "Where the transaction stands (`unknown` if this node \
            has never seen it, or if it is not the caller's to see), with its receipt once \
            included", body = TxStatusView),
        (status = 400, description = "`bad_hash`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
pub(crate) async fn transaction(
    caller: super::auth::Caller,
    State(state): State<ApiState>,
    hash: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<TxStatusView>> {
    let hash = parse_hash(&path_text(hash, Code::BadHash, "transaction hash")?)?;
    caller.known()?;
    // The status first, then whether it is the caller's, judged on what was read: a
    // transaction that commits in between is answered `unknown`, never shown unchecked.
    let stored = state
        .reader
        .read(move |store| stored_status(store, hash, None))
        .await?;
    let pending = match stored {
        Some(mut view) => {
            let location = view.receipt.as_ref().map(|r| (r.height, r.index));
            if visible(check_transaction(&caller, &state, hash, location).await)? {
                cut_for_caller(&caller, &state, &mut view).await?;
                return Ok(Json(view));
            }
            false
        }
        None => {
            visible(check_transaction(&caller, &state, hash, None).await)?
                && lock(&state.mempool).contains(&hash)
        }
    };
    Ok(Json(TxStatusView {
        hash,
        status: if pending {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        },
        height: None,
        settled_height: None,
        receipt: None,
        rejection: None,
    }))
}

/// `view` cut to what `caller` may read ([`cut_rejection`]), its signer read from the
/// store only when the cut needs it ([`signer_to_look_up`]).
async fn cut_for_caller(
    caller: &super::auth::Caller,
    state: &ApiState,
    view: &mut TxStatusView,
) -> ApiResult<()> {
    let signer = match signer_to_look_up(caller, view) {
        Some(location) => {
            state
                .read_expensive(move |store| signer_at(store, location, &mut None))
                .await??
        }
        None => None,
    };
    cut_rejection(caller, &state.reader.view().ledger, signer.as_ref(), view);
    Ok(())
}

/// Where the signer [`cut_rejection`] needs for `view` is: the place of a rejected
/// transaction, unless the caller sees everything (the cut then does not ask who signed
/// it). `None`: nothing to look up.
pub(crate) fn signer_to_look_up(
    caller: &super::auth::Caller,
    view: &TxStatusView,
) -> Option<crate::storage::Location> {
    if caller.sees_all() {
        return None;
    }
    view.receipt
        .as_ref()
        .and_then(rejection)
        .map(|(location, _)| location)
}

/// What `caller` is shown of rejection `error` of a transaction signed by `signer`
/// (`signer` is asked only of a caller who does not see everything; `None` there: not
/// found, and the caller is shown neither):
/// * `rejection`, its code and a message ([`rejection_view`]: without the amounts the
///   caller may not read), for a caller who may see why it was rejected
///   ([`Caller::sees_rejection_of`]): its payer, the payer's bank's operator, and those who
///   see everything, not its payee or the payee's bank;
/// * `receipt`: whether the receipt, which holds the error as stored (amounts and all), is
///   shown, only to a caller who may read all of it ([`Caller::sees_receipt_of`]); anyone
///   else reads `rejected` at its height without it.
///
/// Every route that shows a stored transaction's rejection decides here:
/// `GET /v1/transactions/{hash}` and the account history ([`cut_rejection`]), and the event
/// stream (`events::cut_rejected`).
///
/// [`rejection_view`]: super::error::rejection_view
/// [`Caller::sees_rejection_of`]: super::auth::Caller::sees_rejection_of
/// [`Caller::sees_receipt_of`]: super::auth::Caller::sees_receipt_of
pub(crate) fn shown_of_rejection(
    caller: &super::auth::Caller,
    ledger: &interpool_contracts::Ledger,
    signer: Option<&interpool_contracts::AccountId>,
    error: &interpool_contracts::TxError,
) -> ShownOfRejection {
    let (sees_why, receipt) = match signer {
        _ if caller.sees_all() => (true, true),
        Some(signer) => (
            caller.sees_rejection_of(ledger, signer),
            caller.sees_receipt_of(ledger, signer, error),
        ),
        None => (false, false),
    };
    ShownOfRejection {
        rejection: sees_why.then(|| super::error::rejection_view(error, caller)),
        receipt,
    }
}

/// What a caller is shown of a rejection ([`shown_of_rejection`]).
pub(crate) struct ShownOfRejection {
    /// Why it was rejected, cut to the caller; `None`: not the caller's to know.
    pub(crate) rejection: Option<interpool_contracts::error::ErrorView>,
    /// Whether the receipt (the error as stored) is shown.
    pub(crate) receipt: bool,
}

/// Cuts the view of a rejected transaction signed by `signer` to what `caller` may read
/// ([`shown_of_rejection`]). A view that is not a rejection is left as it is.
pub(crate) fn cut_rejection(
    caller: &super::auth::Caller,
    ledger: &interpool_contracts::Ledger,
    signer: Option<&interpool_contracts::AccountId>,
    view: &mut TxStatusView,
) {
    let Some((_, error)) = view.receipt.as_ref().and_then(rejection) else {
        return;
    };
    let shown = shown_of_rejection(caller, ledger, signer, error);
    view.rejection = shown.rejection;
    if !shown.receipt {
        view.receipt = None;
    }
}

/// A rejected transaction's place (block height, index) and error, from its receipt; `None`
/// for one that was not rejected.
pub(crate) fn rejection(
    receipt: &Receipt,
) -> Option<(crate::storage::Location, &interpool_contracts::TxError)> {
    match &receipt.outcome {
        Outcome::Rejected { error } => Some(((receipt.height, receipt.index), error)),
        _ => None,
    }
}

/// The signer of the transaction at `location` (block height, index), decoding the block
/// unless `decoded` holds it already (and keeping it there).
pub(crate) fn signer_at(
    store: &Store,
    (height, index): crate::storage::Location,
    decoded: &mut Option<(u64, Vec<SignedTransaction>)>,
) -> ApiResult<Option<AccountId>> {
    if decoded.as_ref().map(|(at, _)| *at) != Some(height) {
        *decoded = Some((height, stored_block_transactions(store, height)?));
    }
    Ok(decoded
        .as_ref()
        .and_then(|(_, txs)| txs.get(index as usize))
        .map(|tx| tx.tx.signer))
}

/// Whether a transaction [`check_transaction`] judged may be shown. Another's (403) reads
/// as one this node never saw (`unknown`), as pacs.002 answers another's transfer like an
/// unused id: its hash can be computed from guessed fields (payer, nonce, payee, amount,
/// end-to-end id), and a 403 where an unused hash reads `unknown` confirmed the guess.
fn visible(checked: ApiResult<bool>) -> ApiResult<bool> {
    match checked {
        Err(error) if error.status == StatusCode::FORBIDDEN => Ok(false),
        checked => checked,
    }
}

/// Whether `caller` may read transaction `hash`: committed at `location`, or else pending in
/// this node's mempool. `Ok(false)`: this node holds it nowhere (nothing to hide);
/// `Err`: it is not the caller's (403; 401 for an anonymous caller). A party may read it,
/// and the operator of a party's bank; regulators, the authority and nodes read everything.
pub(crate) async fn check_transaction(
    caller: &super::auth::Caller,
    state: &ApiState,
    hash: Hash,
    location: Option<crate::storage::Location>,
) -> ApiResult<bool> {
    if caller.sees_all() {
        return Ok(true);
    }
    let (key, _) = caller.known()?;
    let key = *key;
    let parties = match location {
        Some(location) => {
            // The caller's own history answers for a party, cheaply.
            let party = state
                .reader
                .read(move |store| store.is_party(&key, location))
                .await
                .map_err(ApiError::internal)?;
            if party {
                vec![key]
            } else if caller.operator_bank().is_some() {
                // An operator: whose transaction is it? (Decodes the block: an expensive read.)
                state
                    .read_expensive(move |store| -> ApiResult<Vec<AccountId>> {
                        Ok(stored_block_transactions(store, location.0)?
                            .get(location.1 as usize)
                            .map(|tx| tx.tx.parties())
                            .unwrap_or_default())
                    })
                    .await??
            } else {
                Vec::new()
            }
        }
        None => match lock(&state.mempool).get(&hash).map(|tx| tx.tx().parties()) {
            Some(parties) => parties,
            None => return Ok(false),
        },
    };
    caller
        .may_read_transaction(&state.reader.view().ledger, &parties)
        .map(|()| true)
}

/// The transactions of committed block `height` (empty if it is not stored).
fn stored_block_transactions(store: &Store, height: u64) -> ApiResult<Vec<SignedTransaction>> {
    let Some(encoded) = store.block(height).map_err(ApiError::internal)? else {
        return Ok(Vec::new());
    };
    interpool_contracts::Block::decode(&encoded, u64::MAX)
        .map(|block| block.transactions)
        .map_err(|_| ApiError::internal(format!("stored block {height} is unreadable")))
}

/// Where transaction `hash` stands if it is in a committed block (`None` if it is not).
/// `receipts` are the receipts of the block at a known height, to spare decoding them again
/// (account histories pass them). A blocking read.
pub(crate) fn stored_status(
    store: &Store,
    hash: Hash,
    receipts: Option<(u64, &[Receipt])>,
) -> ApiResult<Option<TxStatusView>> {
    let Some((height, index)) = store.tx_location(&hash).map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let receipt = match receipts {
        Some((at, receipts)) if at == height => receipts.get(index as usize).cloned(),
        _ => store
            .outcome(height)
            .map_err(ApiError::internal)?
            .and_then(|o| o.receipts.into_iter().nth(index as usize)),
    }
    .ok_or_else(|| ApiError::internal(format!("receipt of {hash} missing at height {height}")))?;
    let mut settled_height = None;
    let status = match &receipt.outcome {
        Outcome::Committed => TxStatus::Committed,
        Outcome::Rejected { .. } => TxStatus::Rejected,
        Outcome::Queued { .. } => match store.queue_fate(&hash).map_err(ApiError::internal)? {
            Some((settled, fate)) => {
                settled_height = Some(settled);
                match fate {
                    QueueFate::Released => TxStatus::Committed,
                    QueueFate::Expired => TxStatus::Expired,
                    QueueFate::Cancelled => TxStatus::Cancelled,
                    QueueFate::RejectTime => TxStatus::RejectTime,
                    QueueFate::Cutoff => TxStatus::Cutoff,
                }
            }
            None => TxStatus::Queued,
        },
    };
    Ok(Some(TxStatusView {
        hash,
        status,
        height: Some(height),
        settled_height,
        receipt: Some(receipt),
        rejection: None,
    }))
}
