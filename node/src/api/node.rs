//! The node itself: `GET /v1/status`, `GET /metrics`, `GET /v1/openapi.json`.

use std::sync::atomic::Ordering;
use std::sync::LazyLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use interpool_contracts::views::StatusView;

use super::{ApiError, ApiState, Code};
use crate::app::lock;

/// Built once: it depends only on the code.
static OPENAPI: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(super::openapi);

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
pub(crate) async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&OPENAPI)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route; see /v1/status")
}

/// A known route asked with a method it does not take (405, with the `Allow` header axum
/// adds); without it axum answered a bare 405, without the API's error body.
pub(crate) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("this route does not take {method}; see the Allow header and /v1/openapi.json"),
    )
}

#[utoipa::path(
    get,
    path = "/v1/status",
    summary = "The node, its role and its chain tip",
    tag = "node",
    responses((status = 200, description = "The node and its chain tip", body = StatusView))
)]
pub(crate) async fn status(State(state): State<ApiState>) -> Json<StatusView> {
    let view = state.reader.view();
    let tip = &view.tip;
    Json(StatusView {
        chain_id: state.chain_id.clone(),
        genesis_hash: view.genesis_hash,
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
        mempool_size: lock(&state.mempool).len(),
        peers: state.peers.load(Ordering::Relaxed),
        currency: state.currency.clone(),
        decimals: state.decimals,
        restored_from_height: state.start.restored_from_height,
        replayed_blocks: state.start.replayed_blocks,
        earliest_height: if tip.height == 0 {
            0
        } else {
            state.reader.store().earliest_height().unwrap_or(1)
        },
        halt_height: state.halt_height,
    })
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
pub(crate) async fn metrics(
    caller: super::auth::Caller,
    State(state): State<ApiState>,
) -> Response {
    if let Err(refused) = caller.may_read_metrics(state.auth.metrics_from_loopback) {
        return refused.into_response();
    }
    state.metrics.p2p(&(state.p2p_stats)());
    // Properties RocksDB keeps in memory: no disk read.
    match state.reader.store().memory() {
        Ok(memory) => state.metrics.storage_memory(&memory),
        Err(error) => tracing::warn!(%error, "cannot read the store's memory use"),
    }
    state
        .metrics
        .storage_direct_io(state.reader.store().direct_io());
    state
        .metrics
        .reachability(state.health.reachable(), state.health.quorum);
    state
        .metrics
        .event_streams(state.limits.open_event_streams());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
