//! The HTTP API (JSON, under `/v1`), one module per resource: [`transactions`],
//! [`accounts`], [`banks`] (banks and cycles), [`blocks`], [`events`] (the event stream) and
//! [`node`] (status, metrics, the OpenAPI document); [`error`] holds the one error-code type.
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` with a 4xx status (503
//! when the node cannot serve the request right now): bad input never gets a 5xx, a panic
//! or a hang. Bodies are read as bytes under a size limit and parsed here, so that even a
//! malformed or oversized body gets an answer in that shape.
//!
//! Handlers never touch the core: they read the published view and the store through a
//! [`Reader`] (blocking reads on the blocking pool, expensive ones under a concurrency
//! limit), and submit through the one admission pipeline ([`Admission`]).
//!
//! Each handler carries its OpenAPI description (`#[utoipa::path]`) and is registered with
//! `routes!`, which routes it and documents it in one step: the document served at
//! `GET /v1/openapi.json` cannot list a route the node does not serve, nor miss one.

pub mod accounts;
pub mod banks;
pub mod blocks;
pub mod error;
pub mod events;
pub mod node;
pub mod transactions;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use interpool_contracts::{AccountId, Hash};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use self::error::ErrorBody;
pub use self::error::{ApiError, ApiResult, Code};
use crate::app::{Admission, Reader, SharedMempool};
use crate::metrics::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
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
    /// The published view and the store.
    pub reader: Reader,
    /// The mempool, for "pending" answers (lookups only).
    pub mempool: SharedMempool,
    /// The admission pipeline.
    pub admission: Admission,
    /// Connected peers (kept current by the network).
    pub peers: Arc<AtomicUsize>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network's counters, for `/metrics`.
    pub p2p_stats: Arc<dyn Fn() -> crate::net::p2p::P2pStats + Send + Sync>,
    /// Limits concurrent `GET /v1/events` streams.
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Becomes true when the node shuts down: open event streams end, so that a graceful
    /// shutdown does not wait on clients that never hang up.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The router, with the request body limit.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(node::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Every route with its OpenAPI description: `routes!` registers each handler at the method
/// and path of its `#[utoipa::path]` and adds that description to the document.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(document_root())
        .routes(routes!(node::status))
        .routes(routes!(transactions::submit))
        .routes(routes!(transactions::submit_batch))
        .routes(routes!(transactions::transaction))
        .routes(routes!(accounts::account))
        .routes(routes!(accounts::account_history))
        .routes(routes!(accounts::account_proof))
        .routes(routes!(accounts::signer))
        .routes(routes!(banks::banks))
        .routes(routes!(banks::bank))
        .routes(routes!(blocks::block))
        .routes(routes!(banks::cycle))
        .routes(routes!(events::stream))
        .routes(routes!(node::metrics))
        .routes(routes!(node::openapi_json))
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

/// Parses a JSON body.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(Code::BadJson, e.to_string()))
}

/// Parses an account id from a path or query.
pub(crate) fn parse_account(text: &str) -> ApiResult<AccountId> {
    text.parse()
        .map_err(|e| ApiError::new(Code::BadAccountId, format!("account id: {e}")))
}

/// Parses a transaction hash from a path.
pub(crate) fn parse_hash(text: &str) -> ApiResult<Hash> {
    text.parse()
        .map_err(|e| ApiError::new(Code::BadHash, format!("transaction hash: {e}")))
}

/// `latest` or a number, for `/v1/blocks/{height}` and `/v1/cycles/{cycle}`.
pub(crate) fn parse_number(text: &str, code: Code, what: &str) -> ApiResult<Option<u64>> {
    if text == "latest" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::new(
            code,
            format!("{what} must be a number or `latest`, not {text:?}"),
        )
    })
}

/// A cursor `HEIGHT:INDEX` (account histories, event streams).
pub(crate) fn parse_cursor(text: &str) -> ApiResult<(u64, u32)> {
    let bad = || {
        ApiError::new(
            Code::BadCursor,
            format!("cursor must be HEIGHT:INDEX, not {text:?}"),
        )
    };
    let (height, index) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        height.parse().map_err(|_| bad())?,
        index.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod openapi_tests;
