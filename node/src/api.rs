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
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use interpool_consensus::CommitCertificate;
use interpool_contracts::codec;
use interpool_contracts::primitives::{from_hex_vec, to_hex};
use interpool_contracts::tx::{check_stateless_batch, MAX_TX_BYTES};
use interpool_contracts::views::{
    AccountHistoryView, AccountProofView, AccountView, BankView, BlockView, CycleView,
    SignerView, StatusView, SubmitView, TxStatus, TxStatusView,
};
use interpool_contracts::{
    AccountId, BankId, Block, BlockOutcome, ErrorView, Hash, Outcome, Receipt,
    SignedTransaction, TxError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

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

#[derive(Serialize)]
struct ErrorBody<'a> {
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
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/transactions", post(submit))
        .route("/v1/transactions/batch", post(submit_batch))
        .route("/v1/transactions/{hash}", get(transaction))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/accounts/{id}/transactions", get(account_history))
        .route("/v1/accounts/{id}/proof", get(account_proof))
        .route("/v1/signers/{id}", get(signer))
        .route("/v1/banks", get(banks))
        .route("/v1/banks/{id}", get(bank))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/cycles/{cycle}", get(cycle))
        .route("/v1/events", get(crate::events::stream))
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

async fn signer(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SignerView>> {
    let id = parse_account(&id)?;
    let chain = lock(&state.shared.chain);
    SignerView::new(chain.ledger(), id).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_signer",
            format!("{id} is neither an account nor an official key"),
        )
    })
}

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
        transactions: stored.block.transactions.iter().map(|tx| tx.hash()).collect(),
        header: stored.block.header,
        state_root: stored.outcome.state_root,
        certificate: stored.certificate,
    }))
}

/// Most entries of one history page, and the default.
const MAX_HISTORY_PAGE: usize = 200;
const DEFAULT_HISTORY_PAGE: usize = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<usize>,
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

async fn account_history(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<AccountHistoryView>> {
    let id = parse_account(&id)?;
    let Query(query) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
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
        let receipts = outcome.as_ref().map(|o| o.receipts.as_slice()).unwrap_or(&[]);
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
