//! The HTTP API (JSON, under `/v1`).
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` with a 4xx status (503
//! when the mempool is full): bad input never gets a 5xx, a panic or a hang. Bodies are
//! read as bytes under a size limit and parsed here, so that even a malformed or oversized
//! body gets an answer in that shape.
//!
//! Each handler carries its OpenAPI description (`#[utoipa::path]`) and is registered with
//! `routes!`, which routes it and documents it in one step: the document served at
//! `GET /v1/openapi.json` cannot list a route the node does not serve, nor miss one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use interpool_consensus::CommitCertificate;
use interpool_contracts::codec;
use interpool_contracts::primitives::{from_hex_vec, to_hex};
use interpool_contracts::tx::{check_stateless_batch, MAX_TX_BYTES};
use interpool_contracts::views::{
    AccountHistoryView, AccountProofView, AccountView, BankView, BlockView, CycleView, SignerView,
    StatusView, SubmitView, TxStatus, TxStatusView,
};
use interpool_contracts::{
    AccountId, BankId, Block, BlockOutcome, ErrorView, Hash, Outcome, Receipt, SignedTransaction,
    TxError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chain::Chain;
use crate::driver::{lock, DriverInput, Shared, MAX_CERTIFICATE_BYTES};
use crate::mempool::{AdmitError, Mempool};
use crate::metrics::Metrics;
use crate::storage::{QueueFate, Store};

/// Most transactions in one batch submission.
pub const MAX_BATCH_TRANSACTIONS: usize = 10_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Chain, mempool, commit announcements.
    pub shared: Shared,
    /// This node's name.
    pub node: String,
    /// True for observers: writes are refused.
    pub read_only: bool,
    /// Chain id.
    pub chain_id: String,
    /// Currency code.
    pub currency: String,
    /// Minor-unit digits.
    pub decimals: u8,
    /// Connected peers (kept current by the network task).
    pub peers: Arc<AtomicUsize>,
    /// Publishes admitted transactions to peers (gossip).
    pub gossip: Arc<dyn Fn(Vec<SignedTransaction>) + Send + Sync>,
    /// Tells the consensus driver that transactions arrived.
    pub driver: Option<mpsc::Sender<DriverInput>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network's counters, for `/metrics`.
    pub p2p_stats: Arc<dyn Fn() -> crate::p2p::P2pStats + Send + Sync>,
    /// Limits concurrent `GET /v1/events` streams.
    pub event_streams: Arc<tokio::sync::Semaphore>,
}

/// An API error: status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    view: ErrorView,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`. The responses of the
/// OpenAPI document name the codes each route answers with.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// A stable machine-readable code and a human-readable message.
    error: &'a ErrorView,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            view: ErrorView {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    fn rejected(error: &TxError) -> Self {
        let status = if error.is_stateless() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Self {
            status,
            view: error.to_view(),
        }
    }

    fn admit(error: AdmitError) -> Self {
        match error {
            AdmitError::Duplicate => {
                Self::new(StatusCode::CONFLICT, "already_pending", error.to_string())
            }
            AdmitError::NonceTaken(_) => {
                Self::new(StatusCode::CONFLICT, "nonce_taken", error.to_string())
            }
            AdmitError::Full(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "mempool_full",
                error.to_string(),
            ),
            AdmitError::SignerFull(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pending",
                error.to_string(),
            ),
            AdmitError::Rejected(tx_error) => Self::rejected(&tx_error),
        }
    }

    fn body(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(status, "body_too_large", rejection.body_text())
        } else {
            Self::new(StatusCode::BAD_REQUEST, "bad_body", rejection.body_text())
        }
    }

    fn read_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this node is an observer: it is read-only; submit transactions to a validator",
        )
    }

    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        // Storage failures are the node's problem, not the client's; say so honestly.
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            message.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: &self.view })).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router, with the request body limit.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Every route with its OpenAPI description: `routes!` registers each handler at the method
/// and path of its `#[utoipa::path]` and adds that description to the document.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(document_root())
        .routes(routes!(status))
        .routes(routes!(submit))
        .routes(routes!(submit_batch))
        .routes(routes!(transaction))
        .routes(routes!(account))
        .routes(routes!(account_history))
        .routes(routes!(account_proof))
        .routes(routes!(signer))
        .routes(routes!(banks))
        .routes(routes!(bank))
        .routes(routes!(block))
        .routes(routes!(cycle))
        .routes(routes!(crate::events::stream))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

/// The document before the routes add their paths and schemas.
fn document_root() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{InfoBuilder, OpenApiBuilder};
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Interpool node API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of an Interpool node (validator or observer). JSON in and \
                     out; ids and hashes are hex, amounts in views are decimal strings \
                     formatted with the chain's `decimals`. Every error is \
                     `{\"error\": {\"code\", \"message\"}}` with a 4xx status, or 503 \
                     when the node cannot serve the request right now.",
                ))
                .build(),
        )
        .build()
}

/// The OpenAPI document of this API, as `GET /v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// Built once: it depends only on the code.
static OPENAPI: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(openapi);

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    summary = "This OpenAPI document",
    tag = "node",
    responses(
        (status = 200, description = "This document: OpenAPI 3.1, generated from the handlers' \
            own types", body = Object),
    )
)]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /v1/status",
    )
}

#[utoipa::path(
    get,
    path = "/v1/status",
    summary = "The node, its role and its chain tip",
    tag = "node",
    responses((status = 200, description = "The node and its chain tip", body = StatusView))
)]
async fn status(State(state): State<ApiState>) -> ApiResult<Json<StatusView>> {
    let chain = lock(&state.shared.chain);
    let tip = chain.tip();
    Ok(Json(StatusView {
        chain_id: state.chain_id.clone(),
        genesis_hash: chain.genesis_hash(),
        node: state.node.clone(),
        role: if state.read_only {
            "observer"
        } else {
            "validator"
        }
        .into(),
        height: tip.height,
        block_hash: tip.hash,
        state_root: tip.state_root,
        mempool_size: lock(&state.shared.mempool).len(),
        peers: state.peers.load(Ordering::Relaxed),
        currency: state.currency.clone(),
        decimals: state.decimals,
    }))
}

/// `POST /v1/transactions` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    /// A signed transaction: its canonical encoding in hex (at most `MAX_TX_BYTES`, 2048
    /// bytes).
    #[schema(pattern = "^([0-9a-fA-F]{2})*$", max_length = 4096)]
    tx: String,
}

/// `POST /v1/transactions/batch` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    /// Signed transactions, each a canonical encoding in hex as in `POST /v1/transactions`;
    /// at most 10000 (more is answered 413 `batch_too_large`). A bad entry is answered in
    /// place in the results, not with an error for the whole batch.
    #[schema(max_items = 10000)]
    txs: Vec<String>,
}

/// `POST /v1/transactions/batch` answer: one result per submitted transaction, in order.
#[derive(Serialize, ToSchema)]
struct BatchView {
    /// One result per transaction, in the order submitted.
    results: Vec<BatchItem>,
}

/// One result of a batch submission: the hash of an admitted transaction, or why it was not.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum BatchItem {
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

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.to_string()))
}

fn decode_tx(hex: &str) -> ApiResult<SignedTransaction> {
    let bytes = from_hex_vec(hex, MAX_TX_BYTES as usize)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_hex", format!("tx: {e}")))?;
    SignedTransaction::decode(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_transaction",
            e.to_string(),
        )
    })
}

/// Verifies (on a blocking worker, in one batch), then admits each transaction.
async fn admit(state: &ApiState, txs: Vec<SignedTransaction>) -> ApiResult<Vec<ApiResult<Hash>>> {
    let chain_id = state.chain_id.clone();
    let started = std::time::Instant::now();
    let checked = tokio::task::spawn_blocking(move || check_stateless_batch(txs, &chain_id))
        .await
        .map_err(ApiError::internal)?;
    state
        .metrics
        .observe_verification(started.elapsed(), checked.len());
    let mut results = Vec::with_capacity(checked.len());
    let mut admitted = Vec::new();
    {
        let chain = lock(&state.shared.chain);
        let mut mempool = lock(&state.shared.mempool);
        let next_height = chain.tip().height + 1;
        for result in checked {
            let verified = match result {
                Ok(verified) => verified,
                Err(error) => {
                    results.push(Err(ApiError::rejected(&error)));
                    continue;
                }
            };
            let hash = verified.hash();
            if chain
                .store()
                .tx_location(&hash)
                .map_err(ApiError::internal)?
                .is_some()
            {
                results.push(Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "already_included",
                    format!("transaction {hash} is already in a block"),
                )));
                continue;
            }
            let signed = verified.signed().clone();
            match mempool.insert(verified, chain.ledger(), next_height) {
                Ok(()) => {
                    admitted.push(signed);
                    results.push(Ok(hash));
                }
                Err(error) => results.push(Err(ApiError::admit(error))),
            }
        }
        state.metrics.mempool_size(mempool.len());
    }
    if !admitted.is_empty() {
        (state.gossip)(admitted);
        if let Some(driver) = &state.driver {
            let _ = driver.try_send(DriverInput::TransactionsArrived);
        }
    }
    Ok(results)
}

#[utoipa::path(
    post,
    path = "/v1/transactions",
    summary = "Submit one signed transaction",
    tag = "transactions",
    request_body(content = SubmitRequest, content_type = "application/json",
        description = "One signed transaction"),
    responses(
        (status = 202, description = "Admitted to the mempool; poll \
            `GET /v1/transactions/{hash}` for its outcome", body = SubmitView),
        (status = 400, description = "`bad_body`, `bad_json`, `bad_hex`, \
            `malformed_transaction`, or a rejection found without the ledger state: \
            `oversized`, `wrong_chain`, `invalid_signer`, `bad_signature`, `zero_amount`, \
            `invalid_end_to_end_id`, `invalid_reference`, `invalid_account_key`, \
            `self_transfer`", body = ErrorBody),
        (status = 403, description = "`read_only`: this node is an observer", body = ErrorBody),
        (status = 409, description = "`already_pending`, `nonce_taken` (another pending \
            transaction of the signer has this nonce) or `already_included`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 422, description = "Rejected against the ledger state: the code of the \
            rejection (`unknown_signer`, `bad_nonce`, `expired`, `insufficient_funds`, …)",
            body = ErrorBody),
        (status = 429, description = "`too_many_pending`: the signer has too many pending \
            transactions", body = ErrorBody),
        (status = 503, description = "`mempool_full` or `unavailable`", body = ErrorBody),
    )
)]
async fn submit(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<SubmitView>)> {
    if state.read_only {
        return Err(ApiError::read_only());
    }
    let body = body.map_err(ApiError::body)?;
    let request: SubmitRequest = parse_json(&body)?;
    let tx = decode_tx(&request.tx)?;
    let result = admit(&state, vec![tx])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no result"))?;
    let hash = result?;
    Ok((StatusCode::ACCEPTED, Json(SubmitView { hash })))
}

#[utoipa::path(
    post,
    path = "/v1/transactions/batch",
    summary = "Submit signed transactions as one batch",
    tag = "transactions",
    request_body(content = BatchRequest, content_type = "application/json",
        description = "Signed transactions, verified as one batch"),
    responses(
        (status = 200, description = "One result per transaction, in order: its hash if \
            admitted, else the error a single submission would have got", body = BatchView),
        (status = 400, description = "`bad_body` or `bad_json`", body = ErrorBody),
        (status = 403, description = "`read_only`: this node is an observer", body = ErrorBody),
        (status = 413, description = "`body_too_large` or `batch_too_large`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
async fn submit_batch(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BatchView>> {
    if state.read_only {
        return Err(ApiError::read_only());
    }
    let body = body.map_err(ApiError::body)?;
    let request: BatchRequest = parse_json(&body)?;
    if request.txs.len() > MAX_BATCH_TRANSACTIONS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} transactions, at most {MAX_BATCH_TRANSACTIONS} per batch",
                request.txs.len()
            ),
        ));
    }
    // Undecodable entries are answered in place; the rest are verified as one batch.
    let mut decoded = Vec::new();
    let mut slots: Vec<Option<ApiResult<Hash>>> = Vec::with_capacity(request.txs.len());
    for hex in &request.txs {
        match decode_tx(hex) {
            Ok(tx) => {
                decoded.push(tx);
                slots.push(None);
            }
            Err(error) => slots.push(Some(Err(error))),
        }
    }
    let mut admitted = admit(&state, decoded).await?.into_iter();
    let results: Vec<BatchItem> = slots
        .into_iter()
        .map(|slot| match slot.or_else(|| admitted.next()) {
            Some(Ok(hash)) => BatchItem::Accepted { hash },
            Some(Err(error)) => BatchItem::Refused { error: error.view },
            None => BatchItem::Refused {
                error: ErrorView {
                    code: "unavailable".into(),
                    message: "no result".into(),
                },
            },
        })
        .collect();
    Ok(Json(BatchView { results }))
}

fn parse_hash(text: &str) -> ApiResult<Hash> {
    text.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_hash",
            format!("transaction hash: {e}"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/v1/transactions/{hash}",
    summary = "A transaction's status and receipt",
    tag = "transactions",
    params(("hash" = inline(Hash), Path, description = "The transaction hash")),
    responses(
        (status = 200, description = "Where the transaction stands (`unknown` if this node \
            has never seen it), with its receipt once included", body = TxStatusView),
        (status = 400, description = "`bad_hash`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
async fn transaction(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> ApiResult<Json<TxStatusView>> {
    let hash = parse_hash(&hash)?;
    let chain = lock(&state.shared.chain);
    let mempool = lock(&state.shared.mempool);
    Ok(Json(tx_status(&chain, &mempool, hash, None)?))
}

/// Where transaction `hash` stands. `receipts` are the receipts of the block at a known
/// height, to spare decoding them again (account histories pass them).
fn tx_status(
    chain: &Chain,
    mempool: &Mempool,
    hash: Hash,
    receipts: Option<(u64, &[Receipt])>,
) -> ApiResult<TxStatusView> {
    let store = chain.store();
    let mut view = TxStatusView {
        hash,
        status: TxStatus::Unknown,
        height: None,
        settled_height: None,
        receipt: None,
    };
    if let Some((height, index)) = store.tx_location(&hash).map_err(ApiError::internal)? {
        let receipt = match receipts {
            Some((at, receipts)) if at == height => receipts.get(index as usize).cloned(),
            _ => store
                .outcome(height)
                .map_err(ApiError::internal)?
                .and_then(|o| o.receipts.into_iter().nth(index as usize)),
        }
        .ok_or_else(|| {
            ApiError::internal(format!("receipt of {hash} missing at height {height}"))
        })?;
        view.status = match &receipt.outcome {
            Outcome::Committed => TxStatus::Committed,
            Outcome::Rejected { .. } => TxStatus::Rejected,
            Outcome::Queued { .. } => match store.queue_fate(&hash).map_err(ApiError::internal)? {
                Some((settled, fate)) => {
                    view.settled_height = Some(settled);
                    match fate {
                        QueueFate::Released => TxStatus::Committed,
                        QueueFate::Expired => TxStatus::Expired,
                    }
                }
                None => TxStatus::Queued,
            },
        };
        view.height = Some(height);
        view.receipt = Some(receipt);
    } else if mempool.contains(&hash) {
        view.status = TxStatus::Pending;
    }
    Ok(view)
}

/// Parses an account id from a path or query.
pub(crate) fn parse_account(text: &str) -> ApiResult<AccountId> {
    text.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_account_id",
            format!("account id: {e}"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    summary = "An account's balance, reservation, nonce and bank",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id")),
    responses(
        (status = 200, description = "The account's balance, reservation, nonce and bank",
            body = AccountView),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
    )
)]
async fn account(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    let id = parse_account(&id)?;
    let chain = lock(&state.shared.chain);
    let account = chain.ledger().account(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account {id}"),
        )
    })?;
    Ok(Json(AccountView::new(id, account, state.decimals)))
}

#[utoipa::path(
    get,
    path = "/v1/banks/{id}",
    summary = "A member bank's pool, cap, position and queue",
    tag = "banks",
    params(("id" = inline(BankId), Path, description = "The bank id")),
    responses(
        (status = 200, description = "The bank's pool, cap, position and queue", body = BankView),
        (status = 400, description = "`bad_bank_id`", body = ErrorBody),
        (status = 404, description = "`unknown_bank`", body = ErrorBody),
    )
)]
async fn bank(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<BankView>> {
    let id: BankId = id.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_bank_id",
            format!("bank id: {e}"),
        )
    })?;
    let chain = lock(&state.shared.chain);
    let ledger = chain.ledger();
    let bank = ledger.bank(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_bank",
            format!("no bank {id}"),
        )
    })?;
    Ok(Json(BankView::new(
        id.clone(),
        bank,
        ledger.queue(&id).count(),
        state.decimals,
    )))
}

#[utoipa::path(
    get,
    path = "/metrics",
    summary = "Metrics for Prometheus",
    tag = "node",
    responses(
        (status = 200, description = "Metrics in the OpenMetrics text format (which \
            Prometheus reads)", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    )
)]
async fn metrics(State(state): State<ApiState>) -> Response {
    state.metrics.p2p(&(state.p2p_stats)());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// `latest` or a number, for `/v1/blocks/{height}` and `/v1/cycles/{cycle}`.
fn parse_number(text: &str, what: &str) -> ApiResult<Option<u64>> {
    if text == "latest" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            &format!("bad_{what}"),
            format!("{what} must be a number or `latest`, not {text:?}"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/v1/signers/{id}",
    summary = "A signer's role, bank and next nonce",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The signer's key")),
    responses(
        (status = 200, description = "The signer's role, bank and next nonce", body = SignerView),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 404, description = "`unknown_signer`: neither an account nor an official \
            key", body = ErrorBody),
    )
)]
async fn signer(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SignerView>> {
    let id = parse_account(&id)?;
    let chain = lock(&state.shared.chain);
    let mempool = lock(&state.shared.mempool);
    SignerView::new(chain.ledger(), id)
        .map(|view| {
            let pending = mempool.next_nonce(&id, view.nonce);
            Json(view.with_pending_nonce(pending))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_signer",
                format!("{id} is neither an account nor an official key"),
            )
        })
}

#[utoipa::path(
    get,
    path = "/v1/banks",
    summary = "Every member bank",
    tag = "banks",
    responses((status = 200, description = "Every member bank, by id", body = Vec<BankView>))
)]
async fn banks(State(state): State<ApiState>) -> Json<Vec<BankView>> {
    let chain = lock(&state.shared.chain);
    let ledger = chain.ledger();
    Json(
        ledger
            .banks()
            .map(|(id, bank)| {
                BankView::new(id.clone(), bank, ledger.queue(id).count(), state.decimals)
            })
            .collect(),
    )
}

#[utoipa::path(
    get,
    path = "/v1/cycles/{cycle}",
    summary = "A closed settlement cycle's report",
    tag = "blocks",
    params(("cycle" = String, Path, pattern = "^([0-9]+|latest)$",
        description = "A cycle number (the first is 1) or `latest` for the last closed cycle")),
    responses(
        (status = 200, description = "The closed cycle's settlement report", body = CycleView),
        (status = 400, description = "`bad_cycle`", body = ErrorBody),
        (status = 404, description = "`unknown_cycle`: not closed yet, or no report",
            body = ErrorBody),
    )
)]
async fn cycle(
    State(state): State<ApiState>,
    Path(cycle): Path<String>,
) -> ApiResult<Json<CycleView>> {
    let wanted = parse_number(&cycle, "cycle")?;
    let chain = lock(&state.shared.chain);
    let ledger = chain.ledger();
    let report = match wanted {
        Some(n) => ledger.settlement_report(n),
        None => ledger.latest_settlement_report(),
    };
    let report = report.ok_or_else(|| {
        let open = ledger.current_cycle();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_cycle",
            match wanted {
                Some(n) if n >= open => format!("cycle {n} has not closed (cycle {open} is open)"),
                Some(n) => format!("no report for cycle {n}"),
                None => format!("no cycle has closed yet (cycle {open} is open)"),
            },
        )
    })?;
    Ok(Json(CycleView::new(report, state.decimals)))
}

/// A stored block, decoded, with its certificate and outcome.
pub(crate) struct StoredBlock {
    pub encoded: Vec<u8>,
    pub block: Block,
    pub certificate: CommitCertificate,
    pub outcome: BlockOutcome,
}

/// Reads block `height` and all that belongs to it (`None` if not committed yet).
pub(crate) fn stored_block(store: &Store, height: u64) -> ApiResult<Option<StoredBlock>> {
    let Some(encoded) = store.block(height).map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let corrupt = |what: &str| ApiError::internal(format!("stored {what} {height} is unreadable"));
    let block = Block::decode(&encoded, u64::MAX).map_err(|_| corrupt("block"))?;
    let certificate = store
        .certificate(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| corrupt("certificate"))?;
    let certificate: CommitCertificate =
        codec::decode(&certificate, MAX_CERTIFICATE_BYTES).map_err(|_| corrupt("certificate"))?;
    let outcome = store
        .outcome(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| corrupt("outcome"))?;
    Ok(Some(StoredBlock {
        encoded,
        block,
        certificate,
        outcome,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    summary = "A committed block with its commit certificate",
    tag = "blocks",
    params(("height" = String, Path, pattern = "^([0-9]+|latest)$",
        description = "A height (the first block is 1) or `latest`")),
    responses(
        (status = 200, description = "The block's header, transaction hashes, resulting state \
            root and commit certificate", body = BlockView<CommitCertificate>),
        (status = 400, description = "`bad_height`", body = ErrorBody),
        (status = 404, description = "`unknown_block`: not committed yet", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
async fn block(
    State(state): State<ApiState>,
    Path(height): Path<String>,
) -> ApiResult<Json<BlockView<CommitCertificate>>> {
    let wanted = parse_number(&height, "height")?;
    let chain = lock(&state.shared.chain);
    let tip = chain.tip().height;
    let height = wanted.unwrap_or(tip);
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_block",
            format!("no block at height {height}; the last is {tip}"),
        )
    };
    if height == 0 {
        return Err(not_found());
    }
    let stored = stored_block(chain.store(), height)?.ok_or_else(not_found)?;
    Ok(Json(BlockView {
        hash: Block::hash_of(&stored.encoded),
        transactions: stored
            .block
            .transactions
            .iter()
            .map(|tx| tx.hash())
            .collect(),
        header: stored.block.header,
        state_root: stored.outcome.state_root,
        certificate: stored.certificate,
    }))
}

/// Most entries of one history page, and the default.
const MAX_HISTORY_PAGE: usize = 200;
const DEFAULT_HISTORY_PAGE: usize = 20;

/// `GET /v1/accounts/{id}/transactions` query (unknown parameters are answered 400).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Most entries in the page (1 to 200; default 20).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// Only entries older than this cursor `HEIGHT:INDEX` (the `next` of the previous page).
    #[param(pattern = "^[0-9]+:[0-9]+$")]
    before: Option<String>,
}

pub(crate) fn parse_cursor(text: &str) -> ApiResult<(u64, u32)> {
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_cursor",
            format!("cursor must be HEIGHT:INDEX, not {text:?}"),
        )
    };
    let (height, index) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        height.parse().map_err(|_| bad())?,
        index.parse().map_err(|_| bad())?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/transactions",
    summary = "An account's transactions, newest first, one page at a time",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id"), HistoryQuery),
    responses(
        (status = 200, description = "One page of the account's transactions, newest first",
            body = AccountHistoryView),
        (status = 400, description = "`bad_account_id`, `bad_query`, `bad_limit` or \
            `bad_cursor`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
async fn account_history(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<AccountHistoryView>> {
    let id = parse_account(&id)?;
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
    if limit == 0 || limit > MAX_HISTORY_PAGE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_limit",
            format!("limit must be 1 to {MAX_HISTORY_PAGE}"),
        ));
    }
    let before = query.before.as_deref().map(parse_cursor).transpose()?;
    let chain = lock(&state.shared.chain);
    let mempool = lock(&state.shared.mempool);
    if chain.ledger().account(&id).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account {id}"),
        ));
    }
    // One more than asked tells whether there is a next page.
    let mut locations = chain
        .store()
        .account_history(&id, before, limit + 1)
        .map_err(ApiError::internal)?;
    let next = (locations.len() > limit).then(|| {
        locations.truncate(limit);
        locations
            .last()
            .map(|(height, index)| format!("{height}:{index}"))
    });
    let mut transactions = Vec::with_capacity(locations.len());
    let mut outcome: Option<BlockOutcome> = None;
    for (height, index) in locations {
        if outcome.as_ref().map(|o| o.height) != Some(height) {
            outcome = chain.store().outcome(height).map_err(ApiError::internal)?;
        }
        let receipts = outcome
            .as_ref()
            .map(|o| o.receipts.as_slice())
            .unwrap_or(&[]);
        let hash = receipts
            .get(index as usize)
            .map(|r| r.tx_hash)
            .ok_or_else(|| ApiError::internal(format!("no receipt {height}:{index}")))?;
        transactions.push(tx_status(&chain, &mempool, hash, Some((height, receipts)))?);
    }
    Ok(Json(AccountHistoryView {
        account: id,
        transactions,
        next: next.flatten(),
    }))
}

/// How long a proof request waits for the block that certifies the current state.
const PROOF_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/proof",
    summary = "An account's state with a Merkle proof and the certificate of its root",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id")),
    responses(
        (status = 200, description = "The account's state (or its absence) with a Merkle \
            proof against the state root after block `height`, and block `height + 1` with \
            its commit certificate, which certify that root. Waits up to 10 s for that block",
            body = AccountProofView<CommitCertificate>),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 503, description = "`not_certified_yet` (the certifying block did not \
            commit in time) or `unavailable`", body = ErrorBody),
    )
)]
async fn account_proof(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountProofView<CommitCertificate>>> {
    let id = parse_account(&id)?;
    // Subscribe before reading the state, so the commit of the next block cannot slip by.
    let mut commits = state.shared.committed.subscribe();
    let (proof, height) = {
        let chain = lock(&state.shared.chain);
        (chain.ledger().account_proof(&id), chain.tip().height)
    };
    // The state after `height` is certified by block `height + 1`'s header: wait for it.
    let deadline = tokio::time::Instant::now() + PROOF_WAIT;
    let certifying = loop {
        if let Some(stored) = stored_block(lock(&state.shared.chain).store(), height + 1)? {
            break stored;
        }
        match tokio::time::timeout_at(deadline, commits.recv()).await {
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_certified_yet",
                    format!(
                        "block {} that certifies the state after block {height} has not \
                         committed within {PROOF_WAIT:?}; try again",
                        height + 1
                    ),
                ))
            }
        }
    };
    Ok(Json(AccountProofView {
        proof,
        height,
        certifying_block: to_hex(&certifying.encoded),
        certificate: certifying.certificate,
    }))
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod openapi_tests;
