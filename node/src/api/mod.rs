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
//! limit), and submit through the one admission pipeline ([`Admission`]). Writes and
//! expensive reads are limited per client and node-wide ([`limits`]): beyond a limit the
//! answer is 429 or 503 at once, never a queue.
//!
//! The document says exactly what each route accepts: every parameter and body field has
//! the pattern, length and range the code enforces (one parser per kind of value, below),
//! and every status the route can answer is listed.
//!
//! Each handler carries its OpenAPI description (`#[utoipa::path]`) and is registered with
//! `routes!`, which routes it and documents it in one step: the document served at
//! `GET /v1/openapi.json` cannot list a route the node does not serve, nor miss one.

pub mod accounts;
pub mod auth;
pub mod banks;
pub mod blocks;
pub mod body;
pub mod error;
pub mod events;
pub mod health;
pub mod iso20022;
pub mod limits;
pub mod node;
pub mod statements;
pub mod tls;
pub mod transactions;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path};
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
    /// Per-client rates, node-wide concurrency of writes, open event streams.
    pub limits: Arc<limits::ApiLimits>,
    /// Becomes true when the node shuts down: open event streams end, so that a graceful
    /// shutdown does not wait on clients that never hang up.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// How the ledger was rebuilt at start (`/v1/status`).
    pub start: crate::app::StartReport,
    /// The configured halt height (`/v1/status`).
    pub halt_height: Option<u64>,
    /// What `/v1/health` checks.
    pub health: Arc<health::Health>,
    /// How far the statement writer got (none: this node makes no statements).
    pub statements: Option<Arc<crate::app::statements::StatementProgress>>,
    /// pacs.008 orders acknowledged here, for status reports until they are in a block.
    pub iso_orders: Arc<iso20022::RecentOrders>,
    /// Who may call: signed requests and their nonces (ADR 0014).
    pub auth: Arc<auth::Auth>,
    /// The last blocks' events, decoded once for every event stream.
    pub recent_events: Arc<events::RecentEvents>,
}

impl ApiState {
    /// Refuses (410 `pruned`) a read that needs block `height`, if this node pruned it;
    /// `what` names what was asked for.
    pub(crate) fn keeps(&self, height: u64, what: impl FnOnce() -> String) -> ApiResult<()> {
        let earliest = self
            .reader
            .store()
            .earliest_height()
            .map_err(ApiError::internal)?;
        if height < earliest {
            return Err(ApiError::new(
                Code::Pruned,
                format!(
                    "{} needs block {height}, pruned from this node; it keeps blocks from \
                     {earliest}",
                    what()
                ),
            ));
        }
        Ok(())
    }
}

/// The router, with the request body limit.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(node::not_found)
        .method_not_allowed_fallback(node::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            body::Limit {
                state: state.clone(),
                max_body_bytes,
            },
            body::limit,
        ))
        .with_state(state)
}

/// Every route with its OpenAPI description: `routes!` registers each handler at the method
/// and path of its `#[utoipa::path]` and adds that description to the document.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(document_root())
        .routes(routes!(node::status))
        .routes(routes!(health::health))
        .routes(routes!(transactions::submit))
        .routes(routes!(transactions::submit_batch))
        .routes(routes!(transactions::transaction))
        .routes(routes!(accounts::account))
        .routes(routes!(accounts::account_history))
        .routes(routes!(accounts::account_proof))
        .routes(routes!(accounts::account_bank))
        .routes(routes!(accounts::signer))
        .routes(routes!(banks::banks))
        .routes(routes!(banks::bank))
        .routes(routes!(blocks::block))
        .routes(routes!(banks::cycle))
        .routes(routes!(banks::day))
        .routes(routes!(statements::statement))
        .routes(routes!(iso20022::pacs008))
        .routes(routes!(iso20022::pacs002_status))
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

/// The OpenAPI document of this API, as `GET /v1/openapi.json` serves it: the routes'
/// own descriptions, and who may call each ([`auth::ACCESS`], as `x-access`, the
/// `signedRequest` security requirement and the 401 and 403 answers).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = routes().into_openapi();
    document_access(&mut document);
    document
}

/// Adds [`auth::ACCESS`] to the document.
fn document_access(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "signedRequest",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            auth::SIGNATURE_HEADER,
            "An ed25519 signature by the caller's key (a customer account, a bank \
             operator, the settlement authority, a regulator or a node) over `interpool-\
             request-v1`, the chain id, the method, the path and query, the timestamp, the \
             nonce and the body's hex SHA-256, one per line; with the headers \
             x-interpool-key, x-interpool-timestamp (Unix ms, within 30 s of the node's \
             clock) and x-interpool-nonce (16 to 64 of [0-9A-Za-z_-], never reused). See \
             ADR 0014.",
        ))),
    );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let unauthorized = "`bad_credentials`, `bad_request_signature`, `stale_request`, \
        `replayed_request` or `unknown_caller`: the signed-request headers do not hold";
    for (method, path, callers, who) in auth::ACCESS {
        let Some(item) = document.paths.paths.get_mut(*path) else {
            continue;
        };
        let operation = match *method {
            "get" => item.get.as_mut(),
            "post" => item.post.as_mut(),
            _ => None,
        };
        let Some(operation) = operation else {
            continue;
        };
        operation
            .extensions
            .get_or_insert_with(Extensions::default)
            .merge(
                [("x-access".to_string(), serde_json::Value::from(*who))]
                    .into_iter()
                    .collect(),
            );
        let said = operation.description.take().unwrap_or_default();
        operation.description = Some(format!(
            "{said}{}Who may call: {who}.",
            if said.is_empty() { "" } else { "\n\n" }
        ));
        let responses = &mut operation.responses.responses;
        let signed = SecurityRequirement::new("signedRequest", Vec::<String>::new());
        if *callers == auth::Callers::Anyone {
            responses
                .entry("401".into())
                .or_insert_with(|| error(unauthorized).into());
        } else {
            // Required, or optional (an empty requirement) for loopback callers.
            operation.security = Some(match callers {
                auth::Callers::SignedOrLoopback => vec![SecurityRequirement::default(), signed],
                _ => vec![signed],
            });
            responses.entry("401".into()).or_insert_with(|| {
                error(&format!(
                    "`unauthenticated` (no signed request), or {unauthorized}"
                ))
                .into()
            });
            responses.entry("403".into()).or_insert_with(|| {
                error("`forbidden`: the caller's role may not read this").into()
            });
        }
    }
}

impl ApiState {
    /// Runs an expensive read under the node-wide limit: 503 `busy` at once beyond it.
    pub(crate) async fn read_expensive<T: Send + 'static>(
        &self,
        read: impl FnOnce(&crate::storage::Store) -> T + Send + 'static,
    ) -> ApiResult<T> {
        self.reader.read_expensive(read).await.map_err(|busy| {
            self.metrics.api_refused("busy", "expensive reads");
            ApiError::busy(busy)
        })
    }

    /// `client`'s write turn (held until the write is answered): 429 `rate_limited` at
    /// once if the client has its most writes in flight, 503 `busy` if the node has.
    pub(crate) fn write_permit(&self, client: limits::ClientKey) -> ApiResult<limits::WriteTurn> {
        self.limits.write_permit(client).inspect_err(|error| {
            let reason = if error.view.code == Code::RateLimited.as_str() {
                "rate_limited"
            } else {
                "busy"
            };
            self.metrics.api_refused(reason, "writes");
        })
    }
}

/// A path parameter as text; a path axum cannot decode (invalid UTF-8 after
/// percent-decoding) is answered like any other malformed value of the parameter, with
/// `code`, in the API's error shape.
pub(crate) fn path_text(
    path: Result<Path<String>, PathRejection>,
    code: Code,
    what: &str,
) -> ApiResult<String> {
    path.map(|Path(text)| text)
        .map_err(|e| ApiError::new(code, format!("{what}: {}", e.body_text())))
}

/// Most decimal digits of a height, cycle or cursor height: every 19-digit number fits a
/// `u64`, and no chain will reach 10^19 blocks. Stated in the document's patterns
/// (`^([0-9]{1,19}|latest)$` for `/v1/blocks/{height}` and `/v1/cycles/{cycle}`,
/// [`CURSOR_PATTERN`]) and enforced by [`parse_number`] and [`parse_cursor`]; the OpenAPI
/// tests check that each pattern accepts exactly what its parser accepts.
pub(crate) const MAX_NUMBER_DIGITS: usize = 19;
/// Most decimal digits of a cursor's index (an event's or a transaction's place in its
/// block; a block holds far fewer than 10^9).
pub(crate) const MAX_INDEX_DIGITS: usize = 9;
/// What a cursor `HEIGHT:INDEX` looks like.
pub(crate) const CURSOR_PATTERN: &str = "^[0-9]{1,19}:[0-9]{1,9}$";

/// `text` as a number of at most `max_digits` ASCII digits (no sign, no blank: exactly
/// what the document's patterns allow).
fn decimal<T: std::str::FromStr>(text: &str, max_digits: usize) -> Option<T> {
    let digits =
        !text.is_empty() && text.len() <= max_digits && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
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

/// `latest` or a number of at most [`MAX_NUMBER_DIGITS`] digits, for `/v1/blocks/{height}` and
/// `/v1/cycles/{cycle}`.
pub(crate) fn parse_number(text: &str, code: Code, what: &str) -> ApiResult<Option<u64>> {
    if text == "latest" {
        return Ok(None);
    }
    decimal(text, MAX_NUMBER_DIGITS).map(Some).ok_or_else(|| {
        ApiError::new(
            code,
            format!(
                "{what} must be `latest` or a number of 1 to {MAX_NUMBER_DIGITS} digits, \
                 not {text:?}"
            ),
        )
    })
}

/// A cursor `HEIGHT:INDEX` ([`CURSOR_PATTERN`]; account histories, event streams).
pub(crate) fn parse_cursor(text: &str) -> ApiResult<(u64, u32)> {
    let bad = || {
        ApiError::new(
            Code::BadCursor,
            format!(
                "cursor must be HEIGHT:INDEX ({MAX_NUMBER_DIGITS} and {MAX_INDEX_DIGITS} \
                 digits at most), not {text:?}"
            ),
        )
    };
    let (height, index) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        decimal(height, MAX_NUMBER_DIGITS).ok_or_else(bad)?,
        decimal(index, MAX_INDEX_DIGITS).ok_or_else(bad)?,
    ))
}

#[cfg(test)]
mod openapi_tests;
