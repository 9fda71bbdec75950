//! The HTTP API (JSON, under `/v1`).
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` with a 4xx status (503
//! when the mempool is full): bad input never gets a 5xx, a panic or a hang. Bodies are
//! read as bytes under a size limit and parsed here, so that even a malformed or oversized
//! body gets an answer in that shape.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use interpool_contracts::primitives::from_hex_vec;
use interpool_contracts::tx::{check_stateless_batch, MAX_TX_BYTES};
use interpool_contracts::views::{
    AccountView, BankView, StatusView, SubmitView, TxStatus, TxStatusView,
};
use interpool_contracts::{
    AccountId, BankId, ErrorView, Hash, Outcome, SignedTransaction, TxError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::driver::{lock, DriverInput, Shared};
use crate::mempool::AdmitError;
use crate::metrics::Metrics;
use crate::storage::QueueFate;

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
}

/// An API error: status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    view: ErrorView,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ErrorView,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
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

    fn internal(message: impl std::fmt::Display) -> Self {
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
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/transactions", post(submit))
        .route("/v1/transactions/batch", post(submit_batch))
        .route("/v1/transactions/{hash}", get(transaction))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/banks/{id}", get(bank))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /v1/status",
    )
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    tx: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    txs: Vec<String>,
}

/// One result of a batch submission.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchItem {
    Accepted { hash: Hash },
    Refused { error: ErrorView },
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

async fn submit_batch(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<serde_json::Value>> {
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
    Ok(Json(serde_json::json!({ "results": results })))
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

async fn transaction(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> ApiResult<Json<TxStatusView>> {
    let hash = parse_hash(&hash)?;
    let chain = lock(&state.shared.chain);
    let store = chain.store();
    let mut view = TxStatusView {
        hash,
        status: TxStatus::Unknown,
        height: None,
        settled_height: None,
        receipt: None,
    };
    if let Some((height, index)) = store.tx_location(&hash).map_err(ApiError::internal)? {
        let receipt = store
            .outcome(height)
            .map_err(ApiError::internal)?
            .and_then(|o| o.receipts.into_iter().nth(index as usize))
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
    } else if lock(&state.shared.mempool).contains(&hash) {
        view.status = TxStatus::Pending;
    }
    Ok(Json(view))
}

async fn account(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    let id: AccountId = id.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_account_id",
            format!("account id: {e}"),
        )
    })?;
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

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
