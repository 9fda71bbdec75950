//! The OpenAPI document against the router that serves it: every route the node must serve
//! is documented, every documented route is routed, every reference resolves, and the
//! schemas accept what serde really produces for the API's types.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use interpool_consensus::{CommitCertificate, Digest, PublicKey, Signature, Vote};
use interpool_contracts::outcome::SettlementTrigger;
use interpool_contracts::testkit::{self, account, customer_seed, operator_seed};
use interpool_contracts::tx::BodyKind;
use interpool_contracts::views::{
    AccountHistoryView, AccountProofView, BankPositionView, BlockView, CycleView, EventView,
    SubmitView, TxStatus, TxStatusView,
};
use interpool_contracts::{
    Amount, BankId, BlockHeader, ErrorView, Hash, Ledger, Outcome, QueueEvent, Receipt, TxError,
};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::api::accounts::MAX_HISTORY_PAGE;
use crate::api::transactions::{BatchItem, BatchView, MAX_BATCH_TRANSACTIONS};

/// Every route the node must serve, as `(method, path)`. A route added to the router is
/// documented by construction (`routes!`); this list is what must not go missing.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("GET", "/v1/health"),
    ("POST", "/v1/transactions"),
    ("POST", "/v1/transactions/batch"),
    ("GET", "/v1/transactions/{hash}"),
    ("GET", "/v1/accounts/{id}"),
    ("GET", "/v1/accounts/{id}/transactions"),
    ("GET", "/v1/accounts/{id}/proof"),
    ("GET", "/v1/accounts/{id}/bank"),
    ("GET", "/v1/signers/{id}"),
    ("GET", "/v1/banks"),
    ("GET", "/v1/banks/{id}"),
    ("GET", "/v1/blocks/{height}"),
    ("GET", "/v1/cycles/{cycle}"),
    ("GET", "/v1/days/{day}"),
    ("GET", "/v1/banks/{id}/statements/{cycle}"),
    ("POST", "/v1/iso20022/pacs.008"),
    ("GET", "/v1/iso20022/pacs.002/{end_to_end_id}"),
    ("GET", "/v1/events"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The client address of requests sent with [`TestApi::send`].
const CLIENT_A: [u8; 4] = [192, 0, 2, 1];
/// Another client.
const CLIENT_B: [u8; 4] = [192, 0, 2, 2];

/// A node's API over a fresh chain (genesis only) in a temporary directory.
struct TestApi {
    router: Router,
    /// The chain id signed requests name.
    chain_id: String,
    /// The limits the router enforces (tests hold their permits).
    limits: Arc<limits::ApiLimits>,
    /// Keeps the published view's sender (and the store) alive.
    _core: crate::app::Core,
    _dir: tempfile::TempDir,
}

impl TestApi {
    fn new() -> Self {
        Self::with_limits(
            limits::ApiLimits::from_config(&interpool_genesis::config::RpcConfig::new(
                "127.0.0.1:0",
            )),
            crate::app::ReadLimits::default(),
        )
    }

    /// An API with these limits (the expensive-read limit in `reads`).
    fn with_limits(api_limits: limits::ApiLimits, reads: crate::app::ReadLimits) -> Self {
        Self::build(
            testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000),
            api_limits,
            reads,
        )
    }

    /// An API over a fresh chain from `genesis`, with the default limits.
    fn with_genesis(genesis: interpool_contracts::Genesis) -> Self {
        Self::build(
            genesis,
            limits::ApiLimits::from_config(&interpool_genesis::config::RpcConfig::new(
                "127.0.0.1:0",
            )),
            crate::app::ReadLimits::default(),
        )
    }

    /// An API over a fresh chain from `genesis`, with these limits.
    fn build(
        genesis: interpool_contracts::Genesis,
        api_limits: limits::ApiLimits,
        reads: crate::app::ReadLimits,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (core, store) =
            crate::testkit::core_and_store(&genesis, dir.path(), crate::testkit::limits());
        let metrics = Arc::new(Metrics::new());
        let reader = Reader::new(store, core.subscribe(), reads);
        let api_limits = Arc::new(api_limits);
        let admission = Admission::new(
            genesis.chain_id.clone(),
            core.mempool().clone(),
            core.subscribe(),
            core.store().clone(),
            metrics.clone(),
            crate::app::AdmissionSettings::default(),
        );
        let state = ApiState {
            node: "test-node".into(),
            read_only: false,
            chain_id: genesis.chain_id.clone(),
            currency: genesis.currency.clone(),
            decimals: genesis.decimals,
            reader,
            mempool: core.mempool().clone(),
            admission,
            peers: Arc::new(AtomicUsize::new(0)),
            metrics,
            p2p_stats: Arc::new(crate::net::p2p::P2pStats::default),
            limits: api_limits.clone(),
            shutdown: tokio::sync::watch::channel(false).1,
            start: Default::default(),
            halt_height: None,
            health: std::sync::Arc::new(crate::api::health::Health::alone(
                interpool_contracts::AccountId([0; 32]),
            )),
            statements: core.statement_progress(),
            iso_orders: Default::default(),
            auth: Arc::new(crate::api::auth::Auth::for_genesis(
                &genesis,
                &interpool_genesis::config::RpcConfig::new("127.0.0.1:0"),
            )),
            recent_events: Default::default(),
        };
        Self {
            chain_id: genesis.chain_id.clone(),
            router: router(state, 1 << 20),
            limits: api_limits,
            _core: core,
            _dir: dir,
        }
    }

    /// Sends one request; returns the status, the content type and (unless the answer is
    /// an event stream, which never ends) the body.
    async fn send(&self, method: &str, uri: &str, body: &str) -> (StatusCode, String, Vec<u8>) {
        let (status, headers, body) = self.send_from(CLIENT_A, method, uri, body).await;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, body)
    }

    /// Sends one request from a client at `client` (as the server's connection info
    /// records it); returns the status, the headers and (unless the answer is an event
    /// stream, which never ends) the body.
    async fn send_from(
        &self,
        client: [u8; 4],
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.send_signed(client, Some(testkit::REGULATOR_SEED), method, uri, body)
            .await
    }

    /// [`Self::send_from`], signed by the key of `signer` (a testkit seed), or anonymous.
    async fn send_signed(
        &self,
        client: [u8; 4],
        signer: Option<u64>,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.respond(client, signer, method, uri, body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if content_type.starts_with("text/event-stream") {
            return (status, headers, Vec::new());
        }
        let body = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        (status, headers, body.to_vec())
    }

    /// The router's response to one request from `client`, signed by the key of `signer`
    /// (a testkit seed) or anonymous; its body unread.
    async fn respond(
        &self,
        client: [u8; 4],
        signer: Option<u64>,
        method: &str,
        uri: &str,
        body: &str,
    ) -> axum::response::Response {
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        if let Some(seed) = signer {
            self.sign(&mut request, seed, body.as_bytes());
        }
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                client, 40_000,
            ))));
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
    }

    /// The event stream at `uri`, read as `seed` until `until` appears in it (10 s at most).
    async fn events_until(&self, seed: u64, uri: &str, until: &str) -> String {
        use futures::StreamExt as _;
        let response = self.respond(CLIENT_A, Some(seed), "GET", uri, "").await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let mut body = response.into_body().into_data_stream();
        let mut text = String::new();
        let read = async {
            while !text.contains(until) {
                match body.next().await {
                    Some(Ok(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
                    _ => break,
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("{until} not in the stream within 10 s: {text}"));
        text
    }

    /// The event of stream `text` (as [`Self::events_until`] read it) about transaction
    /// `hash`: its SSE `event` name and its data.
    fn event_about(text: &str, hash: &str) -> Option<(String, Value)> {
        let mut name = String::new();
        for line in text.lines() {
            if let Some(event) = line.strip_prefix("event: ") {
                name = event.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(data).expect("JSON event");
                let about = [&data["tx_hash"], &data["receipt"]["tx_hash"]];
                if about.iter().any(|h| h.as_str() == Some(hash)) {
                    return Some((name, data));
                }
            }
        }
        None
    }

    /// Signs `request` (whose body is `body`) with the key of testkit seed `seed`.
    fn sign<B>(&self, request: &mut Request<B>, seed: u64, body: &[u8]) {
        use ed25519_dalek::Signer as _;
        static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nonce = format!(
            "test-nonce-{:08}",
            NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let message = auth::request_message(
            &self.chain_id,
            request.method().as_str(),
            request
                .uri()
                .path_and_query()
                .map_or(request.uri().path(), |pq| pq.as_str()),
            timestamp,
            &nonce,
            body,
        );
        let key = testkit::key(seed);
        let signature = key.sign(&message);
        let headers = request.headers_mut();
        for (name, value) in [
            (auth::KEY_HEADER, account(seed).to_hex()),
            (auth::TIMESTAMP_HEADER, timestamp.to_string()),
            (auth::NONCE_HEADER, nonce),
            (
                auth::SIGNATURE_HEADER,
                interpool_contracts::primitives::to_hex(&signature.to_bytes()),
            ),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
    }

    /// `POST uri` with a body of `content_type`; the status and the JSON answer.
    async fn post_bytes(
        &self,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let (status, body) = self
            .post_raw(Some(testkit::REGULATOR_SEED), uri, content_type, body)
            .await;
        (status, serde_json::from_slice(&body).expect("JSON answer"))
    }

    /// `POST uri` with a body of `content_type`, signed by the key of `signer` (a testkit
    /// seed) or anonymous; the status and the answer's bytes.
    async fn post_raw(
        &self,
        signer: Option<u64>,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .expect("request");
        if let Some(seed) = signer {
            self.sign(&mut request, seed, &body);
        }
        let (parts, ()) = request.into_parts();
        let mut request = Request::from_parts(parts, Body::from(body));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                CLIENT_A, 40_000,
            ))));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        (status, body.to_vec())
    }

    async fn get_json(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send("GET", uri, "").await;
        (status, serde_json::from_slice(&body).expect("JSON body"))
    }

    /// The document, as the node serves it.
    async fn document(&self) -> Value {
        let (status, content_type, body) = self.send("GET", "/v1/openapi.json", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        // It parses as an OpenAPI document in utoipa's own model...
        let parsed: utoipa::openapi::OpenApi =
            serde_json::from_slice(&body).expect("an OpenAPI document");
        assert_eq!(parsed.info.title, "Interpool node API");
        assert_eq!(parsed.info.version, env!("CARGO_PKG_VERSION"));
        // ...and is the one the code builds.
        assert_eq!(
            serde_json::to_value(&parsed).expect("serialize"),
            serde_json::to_value(openapi()).expect("serialize")
        );
        serde_json::from_slice(&body).expect("JSON")
    }
}

/// Every `(method, path)` the document describes.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn openapi_document_is_openapi_3_and_has_every_route() {
    let api = TestApi::new();
    let document = api.document().await;
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    let documented = documented(&document);
    for (method, path) in ROUTES {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not in the OpenAPI document"
        );
        let operation = &document["paths"][path][method.to_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents no success answer"
        );
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "the document and the list of routes differ: update ROUTES"
    );
}

/// A value for a path parameter that reaches the handler (which may still refuse it).
fn sample(parameter: &str) -> &'static str {
    match parameter {
        "hash" => "0000000000000000000000000000000000000000000000000000000000000000",
        // A bank id: valid for `/v1/banks/{id}`, a quick 400 for account routes (a valid
        // account id would make `/proof` wait for a block that never comes).
        "id" => "BANK_A",
        "height" | "cycle" | "day" => "latest",
        "end_to_end_id" => "E2E-1",
        other => panic!("no sample for path parameter {other}"),
    }
}

/// A route asked with a method it does not take: 405 with the API's error body and the
/// `Allow` header, as every other error (axum's own answer had no body at all).
#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_with_the_error_body() {
    let api = TestApi::new();
    for (method, uri, allowed) in [
        ("GET", "/v1/transactions/batch", "POST"),
        ("PUT", "/v1/status", "GET"),
        ("DELETE", "/v1/accounts/00/transactions", "GET"),
    ] {
        let (status, headers, body) = api.send_from(CLIENT_A, method, uri, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(error_code(&body), "method_not_allowed", "{method} {uri}");
        let allow = headers
            .get(header::ALLOW)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {uri}: Allow {allow:?}");
    }
}

/// Each path segment's malformation is named by its own code: a statement's cycle that is
/// not UTF-8 is `bad_cycle`, not `bad_bank_id`.
#[tokio::test]
async fn a_statement_path_names_the_segment_that_is_malformed() {
    let api = TestApi::new();
    let bank = testkit::bank_id(0);
    for (uri, code) in [
        (format!("/v1/banks/{bank}/statements/%FF"), "bad_cycle"),
        (format!("/v1/banks/{bank}/statements/x1"), "bad_cycle"),
        ("/v1/banks/%FF/statements/1".to_owned(), "bad_bank_id"),
    ] {
        let (status, _, body) = api.send_from(CLIENT_A, "GET", &uri, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(error_code(&body), code, "{uri}");
    }
}

#[tokio::test]
async fn openapi_every_documented_route_is_routed() {
    let api = TestApi::new();
    // The fallback's answer, for contrast: what a route that is not routed gets.
    let (status, body) = api.get_json("/v1/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let document = api.document().await;
    let routes = documented(&document);
    assert!(routes.len() >= ROUTES.len());
    for (method, path) in routes {
        let mut uri = path.clone();
        while let Some(start) = uri.find('{') {
            let end = uri[start..].find('}').expect("closing brace") + start;
            let name = uri[start + 1..end].to_owned();
            uri.replace_range(start..=end, sample(&name));
        }
        let body = if method == "POST" { "{}" } else { "" };
        let (status, _, answer) = api.send(&method, &uri, body).await;
        if status == StatusCode::NOT_FOUND {
            let answer: Value = serde_json::from_slice(&answer).expect("JSON error");
            assert_ne!(
                answer["error"]["code"], "not_found",
                "{method} {path} is documented but not routed ({uri} fell through)"
            );
        }
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but the path has no {method} handler"
        );
        let responses = &document["paths"][&path][method.to_lowercase()]["responses"];
        assert!(
            responses.get(status.as_str()).is_some(),
            "{method} {uri} answered {status}, which its documentation does not list"
        );
    }
}

/// Every `$ref` in `value`, with where it was found.
fn refs<'a>(value: &'a Value, at: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    if let Some(target) = child.as_str() {
                        found.push((at.clone(), target));
                    }
                } else {
                    refs(child, format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn openapi_every_ref_resolves_to_a_component_schema() {
    let document = TestApi::new().document().await;
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    let mut found = Vec::new();
    refs(&document, String::new(), &mut found);
    assert!(!found.is_empty());
    for (at, target) in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{at}: $ref {target} is not a component schema"));
        assert!(
            schemas.contains_key(name),
            "{at}: $ref {target} does not resolve"
        );
    }
    // The types only named in prose (the event stream's items) are there too.
    assert!(schemas.contains_key("EventView"));
}

/// Checks `value` against `schema`: the JSON Schema keywords utoipa emits (no `pattern`:
/// lengths and types stand in for it here).
fn check(schema: &Value, value: &Value, document: &Value, at: &str) -> Result<(), String> {
    let fail = |why: String| Err(format!("{at}: {why} (value {value}, schema {schema})"));
    if let Some(target) = schema["$ref"].as_str() {
        let name = target
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: $ref {target}"))?;
        let resolved = &document["components"]["schemas"][name];
        if resolved.is_null() {
            return Err(format!("{at}: unresolved {target}"));
        }
        return check(resolved, value, document, &format!("{at}<{name}>"));
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            other => return fail(format!("bad type {other}")),
        };
        let matches = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
        if !matches {
            return fail(format!("not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return fail("not in enum".into());
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            return fail("not the const".into());
        }
    }
    if let (Some(text), Some(len)) = (value.as_str(), schema["minLength"].as_u64()) {
        if (text.chars().count() as u64) < len {
            return fail("too short".into());
        }
    }
    if let (Some(text), Some(len)) = (value.as_str(), schema["maxLength"].as_u64()) {
        if text.chars().count() as u64 > len {
            return fail("too long".into());
        }
    }
    if let (Some(n), Some(min)) = (value.as_f64(), schema["minimum"].as_f64()) {
        if n < min {
            return fail("below minimum".into());
        }
    }
    if let (Some(n), Some(max)) = (value.as_f64(), schema["maximum"].as_f64()) {
        if n > max {
            return fail("above maximum".into());
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return fail(format!("missing required {name}"));
            }
        }
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => check(property, field, document, &format!("{at}.{key}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => return fail(format!("unexpected {key}")),
                    Some(extra @ Value::Object(_)) => {
                        check(extra, field, document, &format!("{at}.{key}"))?
                    }
                    // An object schema without `properties` (e.g. in an `allOf`) leaves
                    // them to the other parts.
                    _ if properties.is_some() => return fail(format!("undocumented {key}")),
                    _ => {}
                },
            }
        }
    }
    if let Some(items) = value.as_array() {
        let prefix = schema["prefixItems"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let item_at = format!("{at}[{i}]");
            match (prefix.get(i), schema.get("items")) {
                (Some(first), _) => check(first, item, document, &item_at)?,
                (None, Some(Value::Bool(false))) => return fail("too many items".into()),
                (None, Some(rest @ Value::Object(_))) => check(rest, item, document, &item_at)?,
                (None, _) => {}
            }
        }
        if let Some(min) = schema["minItems"].as_u64() {
            if (items.len() as u64) < min {
                return fail("too few items".into());
            }
        }
        if let Some(max) = schema["maxItems"].as_u64() {
            if items.len() as u64 > max {
                return fail("too many items".into());
            }
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check(part, value, document, at)?;
    }
    if let Some(parts) = schema["anyOf"].as_array() {
        if !parts.iter().any(|p| check(p, value, document, at).is_ok()) {
            return fail("matches no anyOf".into());
        }
    }
    if let Some(parts) = schema["oneOf"].as_array() {
        let results: Vec<_> = parts
            .iter()
            .map(|p| check(p, value, document, at))
            .collect();
        let matching = results.iter().filter(|r| r.is_ok()).count();
        if matching != 1 {
            return fail(format!(
                "matches {matching} of oneOf, not exactly one: {results:?}"
            ));
        }
    }
    Ok(())
}

/// The schema of the `status` answer of `GET path`.
fn response_schema<'a>(document: &'a Value, path: &str, status: &str) -> &'a Value {
    let schema = &document["paths"][path]["get"]["responses"][status]["content"]
        ["application/json"]["schema"];
    assert!(!schema.is_null(), "GET {path} {status} has no JSON schema");
    schema
}

fn assert_fits(document: &Value, schema: &Value, value: &impl serde::Serialize, what: &str) {
    let value = serde_json::to_value(value).expect("serialize");
    if let Err(why) = check(schema, &value, document, what) {
        panic!("{what} does not fit its schema: {why}");
    }
}

/// Something that must not fit, so that [`check`] is known to have teeth.
fn assert_misfits(document: &Value, schema: &Value, value: Value, what: &str) {
    assert!(
        check(schema, &value, document, what).is_err(),
        "{what}: {value} should not fit"
    );
}

fn hash(byte: u8) -> Hash {
    Hash([byte; 32])
}

fn receipt(outcome: Outcome) -> Receipt {
    Receipt {
        tx_hash: hash(1),
        height: 7,
        index: 3,
        outcome,
    }
}

fn certificate() -> CommitCertificate {
    CommitCertificate {
        vote: Vote {
            height: 8,
            round: 1,
            digest: Digest([2; 32]),
        },
        signatures: vec![
            (PublicKey([3; 32]), Signature([4; 64])),
            (PublicKey([5; 32]), Signature([6; 64])),
        ],
    }
}

fn queue_event() -> QueueEvent {
    QueueEvent {
        tx_hash: hash(9),
        from: account(customer_seed(0, 0)),
        to: account(customer_seed(1, 0)),
        from_bank: testkit::bank_id(0),
        to_bank: testkit::bank_id(1),
        amount: Amount(u64::MAX),
        queued_at_height: 3,
        height: 5,
    }
}

fn cycle_view() -> CycleView {
    CycleView {
        cycle: 2,
        start_height: 11,
        height: 20,
        trigger: SettlementTrigger::Authority,
        banks: vec![BankPositionView {
            bank: BankId::new("BANK_A").expect("bank id"),
            sent: "1.00".into(),
            received: "0.50".into(),
            net: "-0.50".into(),
            pool_before: "10.00".into(),
            pool_after: "9.50".into(),
        }],
        gross_total: "1.50".into(),
        net_total: "0.50".into(),
    }
}

#[tokio::test]
async fn openapi_schemas_accept_what_the_api_serializes() {
    let api = TestApi::new();
    let document = api.document().await;

    // Real answers of the running handlers.
    let customer = account(customer_seed(0, 0));
    let operator = account(operator_seed(1));
    for (path, uri) in [
        ("/v1/status", "/v1/status".to_owned()),
        ("/v1/banks", "/v1/banks".to_owned()),
        ("/v1/banks/{id}", "/v1/banks/BANK_A".to_owned()),
        ("/v1/accounts/{id}", format!("/v1/accounts/{customer}")),
        (
            "/v1/accounts/{id}/transactions",
            format!("/v1/accounts/{customer}/transactions"),
        ),
        ("/v1/signers/{id}", format!("/v1/signers/{customer}")),
        ("/v1/signers/{id}", format!("/v1/signers/{operator}")),
        (
            "/v1/transactions/{hash}",
            format!("/v1/transactions/{}", hash(0)),
        ),
    ] {
        let (status, body) = api.get_json(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_fits(
            &document,
            response_schema(&document, path, "200"),
            &body,
            &uri,
        );
    }
    let errors = [
        ("/v1/accounts/{id}", "/v1/accounts/nothex", "400"),
        ("/v1/accounts/{id}", "/v1/accounts/{zero}", "404"),
        ("/v1/blocks/{height}", "/v1/blocks/latest", "404"),
        ("/v1/blocks/{height}", "/v1/blocks/x", "400"),
    ];
    for (path, uri, status) in errors {
        let uri = uri.replace("{zero}", &hash(0).to_string());
        let (answer, body) = api.get_json(&uri).await;
        assert_eq!(answer.as_str(), status, "{uri}: {body}");
        assert_fits(
            &document,
            response_schema(&document, path, status),
            &body,
            &uri,
        );
    }
    let batch = api
        .send("POST", "/v1/transactions/batch", r#"{"txs": ["zz", "00"]}"#)
        .await;
    assert_eq!(batch.0, StatusCode::OK);
    let batch: Value = serde_json::from_slice(&batch.2).expect("JSON");
    let batch_schema = &document["paths"]["/v1/transactions/batch"]["post"]["responses"]["200"]
        ["content"]["application/json"]["schema"];
    assert_fits(&document, batch_schema, &batch, "batch answer");
    let accepted = BatchView {
        results: vec![BatchItem::Accepted { hash: hash(1) }],
    };
    assert_fits(&document, batch_schema, &accepted, "accepted batch answer");
    let submit_schema = &document["paths"]["/v1/transactions"]["post"]["responses"]["202"]
        ["content"]["application/json"]["schema"];
    assert_fits(
        &document,
        submit_schema,
        &SubmitView { hash: hash(1) },
        "submit",
    );

    // Values no genesis-only chain shows: built by hand, every variant.
    let tx_schema = response_schema(&document, "/v1/transactions/{hash}", "200");
    let rejections = [
        TxError::BadSignature,
        TxError::InvalidSigner(customer),
        TxError::Oversized {
            bytes: 5000,
            limit: 2048,
        },
        TxError::Unauthorized(BodyKind::SetNetDebitCap),
        TxError::UnknownBank(testkit::bank_id(3)),
        TxError::InsufficientFunds {
            available: Amount(0),
            needed: Amount(u64::MAX),
        },
        TxError::DuplicateEndToEndId("E2E-1".into()),
        TxError::WrongBank {
            account: customer,
            holder: testkit::bank_id(1),
        },
    ];
    let outcomes = [
        Outcome::Committed,
        Outcome::Queued {
            expires_at_height: 99,
        },
    ]
    .into_iter()
    .chain(
        rejections
            .into_iter()
            .map(|error| Outcome::Rejected { error }),
    );
    for outcome in outcomes {
        let view = TxStatusView {
            hash: hash(1),
            status: TxStatus::Committed,
            height: Some(7),
            settled_height: Some(9),
            rejection: match &outcome {
                Outcome::Rejected { error } => Some(error.to_view()),
                _ => None,
            },
            receipt: Some(receipt(outcome.clone())),
        };
        assert_fits(&document, tx_schema, &view, &format!("{outcome:?}"));
    }
    let history = AccountHistoryView {
        account: customer,
        transactions: vec![TxStatusView {
            hash: hash(1),
            status: TxStatus::Queued,
            height: Some(7),
            settled_height: None,
            receipt: Some(receipt(Outcome::Committed)),
            rejection: None,
        }],
        next: Some("7:3".into()),
    };
    let history_schema = response_schema(&document, "/v1/accounts/{id}/transactions", "200");
    assert_fits(&document, history_schema, &history, "history");

    let block = BlockView {
        hash: hash(4),
        header: BlockHeader {
            chain_id: "test".into(),
            height: 8,
            parent_hash: hash(5),
            previous_state_root: hash(6),
            timestamp_ms: 1_700_000_000_000,
            proposer: operator,
        },
        transactions: vec![hash(1), hash(2)],
        state_root: hash(7),
        certificate: certificate(),
    };
    let block_schema = response_schema(&document, "/v1/blocks/{height}", "200");
    assert_fits(&document, block_schema, &block, "block");

    let ledger = Ledger::from_genesis(&testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000))
        .expect("ledger");
    let proof_schema = response_schema(&document, "/v1/accounts/{id}/proof", "200");
    for id in [customer, account(4242)] {
        let proof = AccountProofView {
            proof: ledger.account_proof(&id),
            height: 7,
            certifying_header: "00ff".into(),
            certifying_transactions_digest: Hash([3; 32]),
            certificate: certificate(),
        };
        assert_fits(&document, proof_schema, &proof, "account proof");
    }
    let empty = AccountProofView {
        proof: interpool_contracts::AccountProof {
            id: customer,
            account: None,
            state_root: Hash::ZERO,
            proof: interpool_contracts::smt::Proof {
                siblings: Vec::new(),
                terminal: None,
            },
        },
        height: 0,
        certifying_header: String::new(),
        certifying_transactions_digest: Hash::ZERO,
        certificate: certificate(),
    };
    assert_fits(
        &document,
        proof_schema,
        &empty,
        "proof of absence in an empty tree",
    );

    let event_schema = &document["components"]["schemas"]["EventView"];
    let events = [
        EventView::Transaction {
            receipt: receipt(Outcome::Rejected {
                error: TxError::QueueFull(testkit::bank_id(0)),
            }),
            accounts: vec![customer, operator],
        },
        EventView::Rejected {
            tx_hash: Hash([7; 32]),
            height: 3,
            index: 1,
            accounts: vec![customer, operator],
            rejection: Some(ErrorView {
                code: "pool_limit".into(),
                message: "the receiving bank's pool cannot take this amount in this cycle".into(),
            }),
        },
        EventView::Rejected {
            tx_hash: Hash([7; 32]),
            height: 3,
            index: 1,
            accounts: vec![customer],
            rejection: None,
        },
        EventView::Released {
            transfer: queue_event(),
        },
        EventView::Expired {
            transfer: queue_event(),
        },
        EventView::CycleClosed {
            report: cycle_view(),
        },
    ];
    for event in &events {
        assert_fits(&document, event_schema, event, "event");
    }
    let cycle_schema = response_schema(&document, "/v1/cycles/{cycle}", "200");
    assert_fits(&document, cycle_schema, &cycle_view(), "cycle");
    let error_schema = response_schema(&document, "/v1/accounts/{id}", "400");
    let error = ErrorView {
        code: "bad_account_id".into(),
        message: "account id: …".into(),
    };
    assert_fits(
        &document,
        error_schema,
        &ErrorBody { error: &error },
        "error",
    );

    // The checker has teeth: wrong shapes are refused.
    let mut bad_event = serde_json::to_value(&events[1]).expect("serialize");
    bad_event["kind"] = "transaction".into();
    assert_misfits(
        &document,
        event_schema,
        bad_event,
        "event of the wrong kind",
    );
    let mut bad_block = serde_json::to_value(&block).expect("serialize");
    bad_block["certificate"]["signatures"][0] = serde_json::json!(["03", "04", "05"]);
    assert_misfits(&document, block_schema, bad_block, "three-part signature");
    let mut bad_tx = serde_json::to_value(TxStatusView {
        hash: hash(1),
        status: TxStatus::Pending,
        height: None,
        settled_height: None,
        receipt: Some(receipt(Outcome::Committed)),
        rejection: None,
    })
    .expect("serialize");
    bad_tx["receipt"]["outcome"] = "Committed".into();
    assert_misfits(&document, tx_schema, bad_tx, "outcome in the wrong case");
}

#[test]
fn openapi_limits_in_the_schemas_match_the_code() {
    let document = serde_json::to_value(openapi()).expect("serialize");
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["SubmitRequest"]["properties"]["tx"]["maxLength"],
        2 * interpool_contracts::tx::MAX_TX_BYTES
    );
    assert_eq!(
        schemas["SubmitRequest"]["properties"]["tx"]["minLength"],
        2 * interpool_contracts::tx::MIN_TX_BYTES
    );
    assert_eq!(
        schemas["BatchRequest"]["properties"]["txs"]["maxItems"],
        MAX_BATCH_TRANSACTIONS as u64
    );
    let parameters = document["paths"]["/v1/accounts/{id}/transactions"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let limit = parameters
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit parameter");
    assert_eq!(limit["schema"]["maximum"], MAX_HISTORY_PAGE as u64);
}

/// The schema of parameter `name` of `GET path`.
fn parameter<'a>(document: &'a Value, path: &str, name: &str) -> &'a Value {
    document["paths"][path]["get"]["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("GET {path} has no parameter {name}"))
}

/// A string schema's `pattern`, compiled.
fn pattern_of(schema: &Value, document: &Value) -> regex::Regex {
    let schema = match schema["$ref"].as_str() {
        Some(target) => {
            let name = target.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => schema,
    };
    let pattern = schema["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("no pattern in {schema}"));
    regex::Regex::new(pattern).expect("a valid pattern")
}

/// Whether `text` fits a string schema: its pattern and its lengths (in characters).
fn fits_string(schema: &Value, document: &Value, text: &str) -> bool {
    let length = text.chars().count() as u64;
    pattern_of(schema, document).is_match(text)
        && schema["minLength"].as_u64().is_none_or(|min| length >= min)
        && schema["maxLength"].as_u64().is_none_or(|max| length <= max)
}

/// Strings around every boundary the parsers have: all strings of up to three characters
/// over an alphabet of digits, separators, signs, blanks and letters, and digit runs of
/// every length up to 25 around a colon or alone.
fn corpus() -> Vec<String> {
    let alphabet = [
        "0", "7", "9", ":", "+", "-", " ", "a", "F", "g", "x", "_", "A", "\u{0661}", ".",
    ];
    let mut out = vec![String::new()];
    let mut previous = vec![String::new()];
    for _ in 0..3 {
        let next: Vec<String> = previous
            .iter()
            .flat_map(|prefix| alphabet.iter().map(move |c| format!("{prefix}{c}")))
            .collect();
        out.extend(next.iter().cloned());
        previous = next;
    }
    for n in 0..=25 {
        let nines = "9".repeat(n);
        let zeros = "0".repeat(n);
        for m in [0, 1, 8, 9, 10, 11] {
            out.push(format!("{nines}:{}", "9".repeat(m)));
            out.push(format!("{zeros}:{}", "0".repeat(m)));
            out.push(format!("1{zeros}:{}", "1".repeat(m)));
        }
        out.extend([
            nines.clone(),
            zeros.clone(),
            format!("+{nines}"),
            format!("{nines} "),
        ]);
    }
    out.extend(
        [
            "latest",
            "Latest",
            "LATEST",
            "latest ",
            "18446744073709551615",
            "4294967295",
        ]
        .map(String::from),
    );
    out.extend([u64::MAX.to_string(), format!("{}:{}", u64::MAX, u32::MAX)]);
    out
}

#[tokio::test]
async fn openapi_patterns_accept_exactly_what_the_parsers_accept() {
    let document = TestApi::new().document().await;
    let corpus = corpus();

    // Heights and cycles: `latest` or a number.
    for (path, name, code) in [
        ("/v1/blocks/{height}", "height", Code::BadHeight),
        ("/v1/cycles/{cycle}", "cycle", Code::BadCycle),
        ("/v1/days/{day}", "day", Code::BadDay),
    ] {
        let pattern = pattern_of(parameter(&document, path, name), &document);
        for text in &corpus {
            assert_eq!(
                pattern.is_match(text),
                parse_number(text, code, name).is_ok(),
                "{path}: {text:?}"
            );
        }
    }

    // Cursors, wherever the document shows one.
    let history = "/v1/accounts/{id}/transactions";
    let cursors = [
        parameter(&document, history, "before"),
        parameter(&document, "/v1/events", "after"),
        parameter(&document, "/v1/events", "Last-Event-ID"),
        &document["components"]["schemas"]["EventStream"]["properties"]["id"],
    ];
    for schema in cursors {
        assert_eq!(schema["pattern"], CURSOR_PATTERN, "{schema}");
        let pattern = pattern_of(schema, &document);
        for text in &corpus {
            assert_eq!(
                pattern.is_match(text),
                parse_cursor(text).is_ok(),
                "cursor {text:?}"
            );
        }
    }
    // The cursors the node hands out fit, up to the largest index a block can have.
    let next = format!("{}:{}", u64::MAX / 10, 999_999_999);
    assert!(pattern_of(cursors[0], &document).is_match(&next));

    // Account ids and hashes: 64 hex digits, either case.
    let hex_ids = [
        parameter(&document, "/v1/accounts/{id}", "id"),
        parameter(&document, "/v1/signers/{id}", "id"),
        parameter(&document, "/v1/transactions/{hash}", "hash"),
        parameter(&document, "/v1/events", "account"),
    ];
    let mut ids = corpus.clone();
    for length in [62, 63, 64, 65, 66] {
        for fill in ["a", "F", "0", "g", "\u{e9}"] {
            ids.push(fill.repeat(length));
            ids.push(format!("{}{fill}", "0".repeat(length.saturating_sub(1))));
        }
    }
    for schema in hex_ids {
        for text in &ids {
            let schema_ok = fits_string(schema, &document, text);
            assert_eq!(schema_ok, parse_account(text).is_ok(), "id {text:?}");
            assert_eq!(schema_ok, parse_hash(text).is_ok(), "hash {text:?}");
        }
    }

    // Bank ids.
    let bank = parameter(&document, "/v1/banks/{id}", "id");
    let mut banks = corpus.clone();
    banks.extend(
        [
            "BANK_A",
            "B",
            "ABCDEFGHIJKL",
            "ABCDEFGHIJKLM",
            "bank_a",
            "É",
        ]
        .map(String::from),
    );
    for text in &banks {
        assert_eq!(
            fits_string(bank, &document, text),
            text.parse::<BankId>().is_ok(),
            "bank {text:?}"
        );
    }

    // A page size: an integer from 1 to 200, exactly what the handler takes.
    let limit = parameter(&document, history, "limit");
    assert_eq!(limit["type"], "integer");
    assert_eq!(limit["minimum"], 1);
    assert_eq!(limit["maximum"], MAX_HISTORY_PAGE as u64);

    // A transaction's hex: the pattern and lengths admit exactly the hex that reaches the
    // decoder with at least the bytes of the smallest transaction.
    let tx = &document["components"]["schemas"]["SubmitRequest"]["properties"]["tx"];
    let mut hexes = corpus.clone();
    for bytes in [0, 1, 99, 100, 101, 2047, 2048, 2049] {
        hexes.push("ab".repeat(bytes));
        hexes.push(format!("{}g0", "ab".repeat(bytes)));
        hexes.push(format!("{}0", "ab".repeat(bytes)));
    }
    let (min, max) = (
        interpool_contracts::tx::MIN_TX_BYTES as usize,
        interpool_contracts::tx::MAX_TX_BYTES as usize,
    );
    for text in &hexes {
        let decodes = interpool_contracts::primitives::from_hex_vec(text, max)
            .is_ok_and(|bytes| bytes.len() >= min);
        assert_eq!(fits_string(tx, &document, text), decodes, "tx {text:?}");
    }
}

/// The body of an answer as JSON.
fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON body")
}

#[tokio::test]
async fn openapi_what_the_fuzzer_found_is_fixed() {
    let api = TestApi::new();
    let document = api.document().await;
    let customer = account(customer_seed(0, 0));

    // A signed number matched no pattern but was served: now refused like the pattern says.
    for (uri, code) in [
        ("/v1/blocks/+1", "bad_height"),
        ("/v1/cycles/+1", "bad_cycle"),
        ("/v1/blocks/99999999999999999999", "bad_height"),
    ] {
        let (status, body) = api.get_json(uri).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code))
        );
    }
    for uri in [
        format!("/v1/accounts/{customer}/transactions?before=%2B1:%2B2"),
        format!("/v1/accounts/{customer}/transactions?before=59966316425:04011883610589193749992"),
        "/v1/events?after=%2B1:2".to_owned(),
    ] {
        let (status, body) = api.get_json(&uri).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_cursor")),
            "{uri}"
        );
    }
    // The cursor `0:0` is schema-valid: the page before the first block is empty, never
    // 410 `pruned` (found by Schemathesis, session 8).
    let (status, body) = api
        .get_json(&format!("/v1/accounts/{customer}/transactions?before=0:0"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["transactions"].as_array().map(Vec::len),
        Some(0),
        "{body}"
    );
    // `bank=` and `account=` of the event stream combine, whatever the format (also found
    // by Schemathesis: a schema-valid combination was refused).
    let (status, _, _) = api
        .send(
            "GET",
            &format!("/v1/events?account={customer}&bank={}", testkit::bank_id(0)),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get_json("/v1/events?bank=NO_SUCH_BANK").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_bank"))
    );
    let (status, body) = api
        .get_json(&format!("/v1/accounts/{customer}/transactions?limit=%2B5"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_limit"))
    );
    let (status, _, _) = api
        .send(
            "GET",
            &format!("/v1/accounts/{customer}/transactions?limit=200"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A path that is not UTF-8 after decoding was answered in plain text: now in the API's
    // error shape, with the parameter's code.
    for (uri, code) in [
        ("/v1/accounts/%FF", "bad_account_id"),
        ("/v1/accounts/%FF/proof", "bad_account_id"),
        ("/v1/signers/%FF", "bad_account_id"),
        ("/v1/banks/%C0", "bad_bank_id"),
        ("/v1/blocks/%FF", "bad_height"),
        ("/v1/cycles/%FF", "bad_cycle"),
        ("/v1/transactions/%FF", "bad_hash"),
    ] {
        let (status, content_type, body) = api.send("GET", uri, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            content_type.starts_with("application/json"),
            "{uri}: {content_type}"
        );
        assert_eq!(json(&body)["error"]["code"], code, "{uri}");
    }

    // More entries than `maxItems` was 413: now 400, which the document lists for it.
    let too_many = serde_json::json!({ "txs": vec![""; MAX_BATCH_TRANSACTIONS + 1] });
    let (status, _, body) = api
        .send("POST", "/v1/transactions/batch", &too_many.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["error"]["code"], "batch_too_large");
    // Refused at the first entry past the bound, before the rest is read: what follows it
    // (here not even a string) is never parsed. (Before, the whole list was built first,
    // and this answered `bad_json`.)
    let cut = format!(
        "{{\"txs\":[{}5]}}",
        "\"\",".repeat(MAX_BATCH_TRANSACTIONS + 1)
    );
    let (status, _, body) = api.send("POST", "/v1/transactions/batch", &cut).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json(&body)["error"]["code"],
        "batch_too_large",
        "{}",
        String::from_utf8_lossy(&body)
    );
    let batch = &document["paths"]["/v1/transactions/batch"]["post"]["responses"];
    assert!(batch["400"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("batch_too_large")));
    assert!(batch["413"]["description"]
        .as_str()
        .is_some_and(|d| !d.contains("batch_too_large")));
    let exactly = serde_json::json!({ "txs": vec![""; MAX_BATCH_TRANSACTIONS] });
    let (status, _, _) = api
        .send("POST", "/v1/transactions/batch", &exactly.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "maxItems entries are accepted");

    // A transaction's hex shorter than the smallest transaction matched the schema: now
    // the schema's minLength refuses it, as the node does.
    let short = "00".repeat(interpool_contracts::tx::MIN_TX_BYTES as usize - 1);
    let tx = &document["components"]["schemas"]["SubmitRequest"]["properties"]["tx"];
    assert!(!fits_string(tx, &document, &short));
    // (Another client: the 10,000 malformed entries above cost theirs 1,000 requests.)
    let (status, _, body) = api
        .send_from(
            CLIENT_B,
            "POST",
            "/v1/transactions",
            &format!(r#"{{"tx": "{short}"}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["error"]["code"], "malformed_transaction");

    // `Last-Event-ID: 0` is refused by the header's pattern and by the node alike.
    let header = parameter(&document, "/v1/events", "Last-Event-ID");
    assert!(!fits_string(header, &document, "0"));
    let mut request = Request::builder()
        .uri("/v1/events")
        .header("last-event-id", "0")
        .body(Body::empty())
        .expect("request");
    api.sign(&mut request, testkit::REGULATOR_SEED, b"");
    let response = api.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A malformed Last-Event-ID was ignored when `?after=` was given: now refused too.
    let mut request = Request::builder()
        .uri("/v1/events?after=551:134441678")
        .header("last-event-id", ":DvWV$j%t")
        .body(Body::empty())
        .expect("request");
    api.sign(&mut request, testkit::REGULATOR_SEED, b"");
    let response = api.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn openapi_an_event_as_a_client_parses_it_fits_the_stream_schema() {
    let document = TestApi::new().document().await;
    let stream = &document["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
        ["text/event-stream"]["schema"];
    let event_schema = &document["components"]["schemas"]["EventView"];
    let customer = account(customer_seed(0, 0));
    let events = [
        EventView::Transaction {
            receipt: receipt(Outcome::Committed),
            accounts: vec![customer],
        },
        EventView::Rejected {
            tx_hash: Hash([7; 32]),
            height: 3,
            index: 1,
            accounts: vec![customer],
            rejection: Some(ErrorView {
                code: "insufficient_funds".into(),
                message: "insufficient funds".into(),
            }),
        },
        EventView::Released {
            transfer: queue_event(),
        },
        EventView::Expired {
            transfer: queue_event(),
        },
        EventView::CycleClosed {
            report: cycle_view(),
        },
    ];
    for (index, event) in events.iter().enumerate() {
        let data = serde_json::to_string(event).expect("serialize");
        // The fields an SSE client reads from the event the node sends.
        let sse = serde_json::json!({
            "id": format!("{}:{index}", 100 + index),
            "event": events::kind(event),
            "data": data,
        });
        assert_fits(&document, stream, &sse, "event");
        assert_fits(&document, event_schema, event, "event data");
        let mut wrong_kind = sse.clone();
        wrong_kind["event"] = "message".into();
        assert_misfits(&document, stream, wrong_kind, "unknown event kind");
    }
    let no_id = serde_json::json!({ "event": "transaction", "data": "{}" });
    assert_misfits(&document, stream, no_id, "event without an id");
    assert_eq!(
        stream["$ref"], "#/components/schemas/EventStream",
        "the stream's schema is the one its handler names"
    );
    let id = &document["components"]["schemas"]["EventStream"]["properties"]["id"];
    assert!(!fits_string(id, &document, "x"));
}

/// `(status, error code, Retry-After)` of an answer.
fn refusal(answer: &(StatusCode, axum::http::HeaderMap, Vec<u8>)) -> (StatusCode, String, String) {
    let (status, headers, body) = answer;
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|body| body["error"]["code"].as_str().map(String::from))
        .unwrap_or_default();
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (*status, code, retry_after)
}

/// Limits whose rate never refills within a test: `burst` requests, then 429 for an hour.
fn slow_rate(burst: u32, writes: usize, streams: usize) -> limits::ApiLimits {
    limits::ApiLimits::new(
        limits::Rate {
            interval: std::time::Duration::from_secs(3_600),
            burst,
        },
        100,
        writes,
        streams,
    )
}

#[tokio::test]
async fn limits_a_client_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let api = TestApi::with_limits(slow_rate(2, 16, 16), crate::app::ReadLimits::default());
    let document = api.document().await;
    let customer = account(customer_seed(0, 0));
    let history = format!("/v1/accounts/{customer}/transactions");
    for _ in 0..2 {
        let answer = api.send_from(CLIENT_A, "GET", &history, "").await;
        assert_eq!(answer.0, StatusCode::OK);
    }
    let refused = api.send_from(CLIENT_A, "GET", &history, "").await;
    let (status, code, retry_after) = refusal(&refused);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code, "rate_limited");
    // The whole interval, in seconds, rounded up.
    assert_eq!(retry_after, "3600");
    assert_fits(
        &document,
        response_schema(&document, "/v1/accounts/{id}/transactions", "429"),
        &json(&refused.2),
        "429 answer",
    );
    // Every kind of expensive read shares the client's bucket.
    for uri in [
        format!("/v1/accounts/{customer}/proof"),
        "/v1/blocks/latest".to_owned(),
        "/v1/events".to_owned(),
    ] {
        let (status, code, _) = refusal(&api.send_from(CLIENT_A, "GET", &uri, "").await);
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            "{uri}"
        );
    }
    // Another client is served; cheap reads are not limited; writes have their own bucket.
    let other = api.send_from(CLIENT_B, "GET", &history, "").await;
    assert_eq!(other.0, StatusCode::OK);
    for uri in [
        "/v1/status",
        "/v1/banks",
        &format!("/v1/accounts/{customer}"),
    ] {
        assert_eq!(
            api.send_from(CLIENT_A, "GET", uri, "").await.0,
            StatusCode::OK
        );
    }
    let batch = r#"{"txs": []}"#;
    for _ in 0..2 {
        let answer = api
            .send_from(CLIENT_A, "POST", "/v1/transactions/batch", batch)
            .await;
        assert_eq!(answer.0, StatusCode::OK);
    }
    // Over the write rate, the body is not even read: an oversized one gets 429, not 413.
    let oversized = format!(r#"{{"txs": ["{}"]}}"#, "0".repeat(2 << 20));
    let (status, code, retry_after) = refusal(
        &api.send_from(CLIENT_A, "POST", "/v1/transactions/batch", &oversized)
            .await,
    );
    assert_eq!(
        (status, code.as_str(), retry_after.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "3600")
    );
    let (status, code, _) = refusal(
        &api.send_from(CLIENT_A, "POST", "/v1/transactions", r#"{"tx": ""}"#)
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert_eq!(
        api.send_from(CLIENT_B, "POST", "/v1/transactions/batch", batch)
            .await
            .0,
        StatusCode::OK
    );
    // The refusals are counted.
    let (_, _, metrics) = api.send("GET", "/metrics", "").await;
    let metrics = String::from_utf8(metrics).expect("text");
    assert!(
        metrics.contains(r#"interpool_api_refused_total{reason="rate_limited",kind="writes"} 2"#),
        "{metrics}"
    );
}

/// A batch's forged entries cost its client: without it, one client within 100 requests a
/// second could make the node check a million bad signatures a second.
#[tokio::test]
async fn limits_the_forged_entries_of_a_batch_count_against_the_clients_rate_of_writes() {
    // A burst of 30 writes, refilled at one an hour.
    let api = TestApi::with_limits(slow_rate(30, 16, 16), crate::app::ReadLimits::default());
    let payer = customer_seed(0, 0);
    // 100 transfers whose signatures were altered after signing: 10 requests' worth.
    let forged: Vec<String> = (0..100)
        .map(|nonce| {
            let mut bytes = crate::testkit::transfer(payer, nonce)
                .into_signed()
                .encode();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            interpool_contracts::primitives::to_hex(&bytes)
        })
        .collect();
    let body = serde_json::json!({ "txs": forged }).to_string();
    let (status, _, answer) = api
        .send_from(CLIENT_A, "POST", "/v1/transactions/batch", &body)
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = json(&answer);
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 100);
    assert!(
        results.iter().all(|r| r["error"]["code"] == "bad_signature"
            || r["error"]["code"] == "malformed_transaction"),
        "{answer}"
    );
    // 1 request + 10 for the forged entries: 19 of the 30 are left.
    let empty = r#"{"txs": []}"#;
    for n in 0..19 {
        let answer = api
            .send_from(CLIENT_A, "POST", "/v1/transactions/batch", empty)
            .await;
        assert_eq!(answer.0, StatusCode::OK, "write {n}");
    }
    let (status, code, _) = refusal(
        &api.send_from(CLIENT_A, "POST", "/v1/transactions/batch", empty)
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // A client whose entries were signed pays for its requests only.
    let signed: Vec<String> = (0..100)
        .map(|nonce| {
            interpool_contracts::primitives::to_hex(
                &crate::testkit::transfer(customer_seed(0, 1), nonce)
                    .into_signed()
                    .encode(),
            )
        })
        .collect();
    let body = serde_json::json!({ "txs": signed }).to_string();
    let answer = api
        .send_from(CLIENT_B, "POST", "/v1/transactions/batch", &body)
        .await;
    assert_eq!(answer.0, StatusCode::OK);
    assert!(json(&answer.2)["results"][0]["hash"].is_string());
    for n in 0..29 {
        let answer = api
            .send_from(CLIENT_B, "POST", "/v1/transactions/batch", empty)
            .await;
        assert_eq!(answer.0, StatusCode::OK, "write {n}");
    }
}

#[tokio::test]
async fn limits_writes_beyond_the_node_wide_limit_get_503_busy_at_once() {
    let api = TestApi::with_limits(slow_rate(1_000, 2, 16), crate::app::ReadLimits::default());
    let document = api.document().await;
    // Two other clients hold the node's two writes (one client may hold only one).
    let holder = |n: u8| limits::ClientKey::of(std::net::IpAddr::from([198, 51, 100, n]));
    let held = [
        api.limits.write_permit(holder(1)).expect("first"),
        api.limits.write_permit(holder(2)).expect("second"),
    ];
    assert!(
        api.limits.write_permit(holder(1)).is_err(),
        "one client holds at most a quarter of the writes, at least one"
    );
    for (uri, body) in [
        ("/v1/transactions/batch", r#"{"txs": []}"#),
        ("/v1/transactions", r#"{"tx": ""}"#),
    ] {
        // At once: well inside a deadline no queue could meet while the writes are held.
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            api.send_from(CLIENT_A, "POST", uri, body),
        )
        .await
        .expect("answered at once, not queued");
        let (status, code, retry_after) = refusal(&answer);
        assert_eq!(
            (status, code.as_str(), retry_after.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "busy", "1"),
            "{uri}"
        );
        let responses = &document["paths"][uri]["post"]["responses"];
        assert!(responses["503"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("busy")));
        assert!(responses["503"]["headers"]["Retry-After"].is_object());
    }
    drop(held);
    let answer = api
        .send_from(CLIENT_A, "POST", "/v1/transactions/batch", r#"{"txs": []}"#)
        .await;
    assert_eq!(answer.0, StatusCode::OK, "served once a write finished");
}

#[tokio::test]
async fn limits_expensive_reads_and_streams_beyond_the_node_wide_limit_get_503_at_once() {
    let api = TestApi::with_limits(
        slow_rate(1_000, 16, 0),
        crate::app::ReadLimits {
            expensive_reads: 0,
            ..crate::app::ReadLimits::default()
        },
    );
    let customer = account(customer_seed(0, 0));
    for (uri, code) in [
        (format!("/v1/accounts/{customer}/transactions"), "busy"),
        (format!("/v1/accounts/{customer}/proof"), "busy"),
        ("/v1/events".to_owned(), "too_many_streams"),
    ] {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            api.send_from(CLIENT_A, "GET", &uri, ""),
        )
        .await
        .expect("answered at once");
        let (status, got, retry_after) = refusal(&answer);
        assert_eq!(
            (status, got.as_str(), retry_after.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, code, "1"),
            "{uri}"
        );
    }
    // Cheap reads go on.
    assert_eq!(
        api.send_from(CLIENT_A, "GET", &format!("/v1/accounts/{customer}"), "")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn openapi_limited_routes_document_429_and_503_and_the_others_do_not_promise_them() {
    let document = TestApi::new().document().await;
    let limited = [
        ("post", "/v1/transactions"),
        ("post", "/v1/transactions/batch"),
        ("get", "/v1/accounts/{id}/transactions"),
        ("get", "/v1/accounts/{id}/proof"),
        ("get", "/v1/blocks/{height}"),
        ("get", "/v1/events"),
        ("get", "/v1/banks/{id}/statements/{cycle}"),
        ("post", "/v1/iso20022/pacs.008"),
        ("get", "/v1/iso20022/pacs.002/{end_to_end_id}"),
    ];
    for (method, path) in limited {
        let responses = &document["paths"][path][method]["responses"];
        for status in ["429", "503"] {
            let answer = &responses[status];
            assert!(
                answer.is_object(),
                "{method} {path} does not document {status}"
            );
            assert_eq!(
                answer["headers"]["Retry-After"]["schema"]["type"], "integer",
                "{method} {path} {status} does not document Retry-After"
            );
        }
        assert!(responses["429"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("rate_limited")));
    }
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operation") {
            if limited.contains(&(method.as_str(), path.as_str())) {
                continue;
            }
            let description = operation["responses"]["429"]["description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                !description.contains("rate_limited"),
                "{method} {path} is not rate-limited"
            );
        }
    }
}

#[tokio::test]
async fn the_batch_route_takes_the_binary_form_and_judges_each_entry_as_json_would() {
    use interpool_contracts::batch::encode_batch;

    let api = TestApi::new();
    let payer = customer_seed(0, 0);
    let txs: Vec<Vec<u8>> = (0..3)
        .map(|nonce| {
            crate::testkit::transfer(payer, nonce)
                .into_signed()
                .encode()
        })
        .collect();
    let hashes: Vec<String> = (0..3)
        .map(|nonce| crate::testkit::transfer(payer, nonce).hash().to_string())
        .collect();
    let garbage = [7u8; 150];
    let body = encode_batch(
        [
            &txs[0][..],
            &garbage[..],
            &txs[1][..],
            &txs[2][..],
            &txs[2][..],
        ]
        .into_iter(),
    );
    let (status, answer) = api
        .post_bytes("/v1/transactions/batch", "application/octet-stream", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["hash"], hashes[0].as_str());
    assert_eq!(results[1]["error"]["code"], "malformed_transaction");
    assert_eq!(results[2]["hash"], hashes[1].as_str());
    assert_eq!(results[3]["hash"], hashes[2].as_str());
    assert_eq!(results[4]["error"]["code"], "already_pending");

    // A body that does not split into entries changes nothing and says where it broke.
    let mut truncated = encode_batch([&txs[0][..]].into_iter());
    truncated.pop();
    let too_long = [0u8, 0, 0x10, 0];
    for (body, code, needle) in [
        (truncated, "bad_body", "entry 0 at byte 0"),
        (vec![0, 0], "bad_body", "4-byte length"),
        (
            too_long.to_vec(),
            "bad_body",
            "above the largest transaction",
        ),
    ] {
        let (status, answer) = api
            .post_bytes("/v1/transactions/batch", "application/octet-stream", body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], code);
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{message}");
    }
    // (Empty entries: more than the limit in a body under the size limit.)
    let too_many = encode_batch(std::iter::repeat_n(&[][..], MAX_BATCH_TRANSACTIONS + 1));
    let (status, answer) = api
        .post_bytes(
            "/v1/transactions/batch",
            "application/octet-stream",
            too_many,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "batch_too_large");

    // The same bytes as JSON are not JSON; the document names both forms.
    let (status, answer) = api
        .post_bytes(
            "/v1/transactions/batch",
            "application/json",
            encode_batch([&txs[0][..]].into_iter()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "bad_json");
    // ...and the answer says what the client most likely forgot.
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("Content-Type: application/octet-stream"),
        "{message}"
    );
    let document = api.document().await;
    let content = &document["paths"]["/v1/transactions/batch"]["post"]["requestBody"]["content"];
    assert!(content.get("application/json").is_some(), "{content}");
    assert!(
        content.get("application/octet-stream").is_some(),
        "{content}"
    );
}

#[tokio::test]
async fn a_batch_past_the_client_backlog_is_refused_whole_without_decoding_its_entries() {
    use interpool_contracts::batch::encode_batch;

    let api = TestApi::new();
    // Never refused below two pending; no commits yet, so the cap is the floor.
    *crate::app::lock(api._core.mempool()) = crate::app::Mempool::new(crate::app::MempoolLimits {
        max_transactions: 10_000,
        max_per_signer: 1_000,
        client_backlog: Some(crate::app::ClientBacklog {
            drain: std::time::Duration::from_secs(2),
            floor: 2,
        }),
    });
    let payer = customer_seed(0, 0);
    let tx = |nonce| {
        crate::testkit::transfer(payer, nonce)
            .into_signed()
            .encode()
    };
    let (status, answer) = api
        .post_bytes(
            "/v1/transactions/batch",
            "application/octet-stream",
            encode_batch([&tx(0)[..], &tx(1)[..]].into_iter()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["results"][1]["hash"].is_string(), "{answer}");

    // Now full: every entry is refused for now, the undecodable ones too (they were not
    // looked at), in both forms.
    let garbage = [7u8; 150];
    let (status, answer) = api
        .post_bytes(
            "/v1/transactions/batch",
            "application/octet-stream",
            encode_batch([&tx(2)[..], &garbage[..]].into_iter()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let json_body =
        serde_json::json!({ "txs": ["zz", interpool_contracts::primitives::to_hex(&tx(2))] });
    let (json_status, json_answer) = api
        .post_bytes(
            "/v1/transactions/batch",
            "application/json",
            json_body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(json_status, StatusCode::OK, "{json_answer}");
    for answer in [&answer, &json_answer] {
        let results = answer["results"].as_array().expect("results");
        assert_eq!(results.len(), 2, "{answer}");
        for result in results {
            assert_eq!(result["error"]["code"], "mempool_full", "{answer}");
        }
    }
    assert_eq!(crate::app::lock(api._core.mempool()).len(), 2);

    // A body that does not split is still a bad body, full or not.
    let (status, answer) = api
        .post_bytes(
            "/v1/transactions/batch",
            "application/octet-stream",
            vec![0, 0],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "bad_body");
}

/// The error code of an answer's JSON body.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).expect("JSON error")["error"]["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

#[tokio::test]
async fn access_every_route_says_who_may_call_it() {
    let document = TestApi::new().document().await;
    let listed: BTreeSet<(String, String)> = auth::ACCESS
        .iter()
        .map(|(method, path, _, _)| (method.to_uppercase(), (*path).to_owned()))
        .collect();
    assert_eq!(
        documented(&document),
        listed,
        "auth::ACCESS and the routes differ"
    );
    for (method, path, callers, who) in auth::ACCESS {
        let operation = &document["paths"][path][method];
        assert_eq!(operation["x-access"], *who, "{method} {path}");
        assert!(operation["description"]
            .as_str()
            .is_some_and(|d| d.ends_with(&format!("Who may call: {who}."))));
        assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        let signed = serde_json::json!({ "signedRequest": [] });
        match callers {
            auth::Callers::Anyone => {
                assert!(operation.get("security").is_none(), "{method} {path}");
            }
            auth::Callers::Signed => {
                assert!(operation["responses"]["403"].is_object(), "{method} {path}");
                assert_eq!(operation["security"], serde_json::json!([signed]));
            }
            auth::Callers::SignedOrLoopback => {
                assert_eq!(operation["security"], serde_json::json!([{}, signed]));
            }
        }
    }
    let scheme = &document["components"]["securitySchemes"]["signedRequest"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], auth::SIGNATURE_HEADER);
}

#[tokio::test]
async fn access_anonymous_callers_read_only_the_open_routes() {
    let api = TestApi::new();
    let customer = account(customer_seed(0, 0));
    let bank = testkit::bank_id(0);
    for uri in [
        format!("/v1/accounts/{customer}"),
        format!("/v1/accounts/{customer}/transactions"),
        format!("/v1/accounts/{customer}/proof"),
        format!("/v1/accounts/{customer}/bank"),
        format!("/v1/signers/{customer}"),
        "/v1/banks".to_owned(),
        format!("/v1/banks/{bank}"),
        format!("/v1/banks/{bank}/statements/latest"),
        "/v1/cycles/latest".to_owned(),
        "/v1/days/latest".to_owned(),
        "/v1/blocks/latest".to_owned(),
        format!("/v1/transactions/{}", hash(7)),
        "/v1/iso20022/pacs.002/E2E-1".to_owned(),
        "/v1/events".to_owned(),
        format!("/v1/events?account={customer}"),
        "/metrics".to_owned(),
    ] {
        let (status, _, body) = api.send_signed(CLIENT_A, None, "GET", &uri, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(error_code(&body), "unauthenticated", "{uri}");
    }
    for uri in ["/v1/status", "/v1/openapi.json"] {
        let (status, _, _) = api.send_signed(CLIENT_A, None, "GET", uri, "").await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn access_customers_and_operators_read_only_their_own() {
    let api = TestApi::new();
    let get = |seed: u64, uri: String| {
        let api = &api;
        async move {
            let (status, _, body) = api.send_signed(CLIENT_A, Some(seed), "GET", &uri, "").await;
            (status, body)
        }
    };
    let own = customer_seed(0, 0);
    let neighbour = account(customer_seed(0, 1));
    let stranger = account(customer_seed(1, 0));
    assert_eq!(
        get(own, format!("/v1/accounts/{}", account(own))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(own, format!("/v1/signers/{}", account(own))).await.0,
        StatusCode::OK
    );
    // Any caller may learn which bank holds an account (to address a payment to it).
    let (status, body) = get(own, format!("/v1/accounts/{stranger}/bank")).await;
    assert_eq!(status, StatusCode::OK);
    let directory: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(directory["bank"], testkit::bank_id(1).to_string());
    assert_eq!(
        directory.as_object().map(|o| o.len()),
        Some(2),
        "nothing more: {directory}"
    );
    for uri in [
        format!("/v1/accounts/{neighbour}"),
        format!("/v1/accounts/{neighbour}/transactions"),
        format!("/v1/accounts/{neighbour}/proof"),
        format!("/v1/signers/{neighbour}"),
        "/v1/banks".to_owned(),
        format!("/v1/banks/{}", testkit::bank_id(0)),
        "/v1/cycles/latest".to_owned(),
        "/v1/blocks/latest".to_owned(),
        format!("/v1/events?account={neighbour}"),
        // Another bank's stream is refused alike whether that bank exists or not.
        format!("/v1/events?bank={}", testkit::bank_id(1)),
        "/v1/events?bank=NO_SUCH_BANK".to_owned(),
        "/metrics".to_owned(),
    ] {
        let (status, body) = get(own, uri.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(error_code(&body), "forbidden", "{uri}");
    }
    // The operator of bank 0: its customers and its bank, nothing of bank 1's.
    let operator = operator_seed(0);
    assert_eq!(
        get(operator, format!("/v1/accounts/{neighbour}")).await.0,
        StatusCode::OK
    );
    let (status, body) = get(operator, "/v1/banks".to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    let banks: Vec<Value> = serde_json::from_slice(&body).expect("banks");
    assert_eq!(banks.len(), 1);
    assert_eq!(banks[0]["id"], testkit::bank_id(0).to_string());
    for uri in [
        format!("/v1/accounts/{stranger}"),
        format!("/v1/accounts/{stranger}/proof"),
        format!("/v1/signers/{stranger}"),
        format!("/v1/banks/{}", testkit::bank_id(1)),
        format!("/v1/banks/{}/statements/latest", testkit::bank_id(1)),
        "/v1/blocks/latest".to_owned(),
        format!("/v1/events?bank={}", testkit::bank_id(1)),
        "/v1/events?bank=NO_SUCH_BANK".to_owned(),
        format!("/v1/events?account={stranger}"),
    ] {
        let (status, body) = get(operator, uri.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(error_code(&body), "forbidden", "{uri}");
    }
    // The regulator and the authority read everything.
    for seed in [testkit::REGULATOR_SEED, testkit::AUTHORITY_SEED] {
        assert_eq!(
            get(seed, format!("/v1/accounts/{stranger}")).await.0,
            StatusCode::OK
        );
        let (status, body) = get(seed, "/v1/banks".to_owned()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_slice::<Vec<Value>>(&body)
                .expect("banks")
                .len(),
            2
        );
    }
}

/// Whether someone else made a transaction is not the caller's to learn: a transaction's
/// hash can be computed from guessed fields (payer, nonce, payee, amount, end-to-end id),
/// and a 403 for it where a hash nobody used reads `unknown` would confirm the guess. So
/// another's transaction, committed or pending, reads exactly as one this node never saw
/// (pacs.002 answers another's transfer like an unused id for the same reason).
#[tokio::test]
async fn access_another_customers_transaction_reads_as_one_never_seen() {
    let mut api = TestApi::new();
    // Customer (1, 0) pays customer (1, 1), both at bank 1: one transfer committed, the
    // next pending.
    let payer = customer_seed(1, 0);
    let committed = crate::testkit::transfer_to(payer, customer_seed(1, 1), 0, 10);
    let pending = crate::testkit::transfer_to(payer, customer_seed(1, 1), 1, 10);
    crate::testkit::commit_block(&mut api._core, vec![committed.clone()], 1 << 40);
    crate::testkit::admit(&api._core, pending.clone());
    let read = |seed: u64, hash: Hash| {
        let api = &api;
        async move {
            let uri = format!("/v1/transactions/{hash}");
            let (status, _, body) = api.send_signed(CLIENT_A, Some(seed), "GET", &uri, "").await;
            let body: Value = serde_json::from_slice(&body).expect("JSON");
            (status, body)
        }
    };
    // The payer, the payee's bank's operator (bank 1 is both parties' bank) and the
    // regulator see where each stands.
    for seed in [payer, operator_seed(1), testkit::REGULATOR_SEED] {
        let (status, body) = read(seed, committed.hash()).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("committed"))
        );
        let (status, body) = read(seed, pending.hash()).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("pending"))
        );
    }
    // A customer of bank 0 and bank 0's operator: the same answer as for a hash nobody
    // used, but for the hash itself.
    let never_used = hash(77);
    for seed in [customer_seed(0, 0), operator_seed(0)] {
        let (status, unknown) = read(seed, never_used).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(unknown["status"], "unknown", "{unknown}");
        for tx in [&committed, &pending] {
            let (status, mut body) = read(seed, tx.hash()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["hash"], tx.hash().to_string());
            body["hash"] = unknown["hash"].clone();
            assert_eq!(body, unknown, "another's transaction reads as never seen");
        }
    }
}

/// Why a transfer was rejected is its payer's: `insufficient_funds` carries the payer's
/// available balance, which its payee (and the payee's bank) may not read on the account
/// itself. They see the transfer rejected, without the receipt; the payer, its bank and the
/// all-seeing roles see why.
#[tokio::test]
async fn a_rejections_reason_is_shown_only_to_those_who_may_read_its_payer() {
    let mut api = TestApi::new();
    let payer_seed = customer_seed(1, 0);
    let payee_seed = customer_seed(0, 0);
    let (payer, payee) = (account(payer_seed), account(payee_seed));
    // Two of 60,000 from 100,000 minor units: each admitted, the second rejected in the
    // block (40,000 available).
    let paid = crate::testkit::transfer_to(payer_seed, payee_seed, 0, 60_000);
    let rejected = crate::testkit::transfer_to(payer_seed, payee_seed, 1, 60_000);
    crate::testkit::commit_block(&mut api._core, vec![paid, rejected.clone()], 1 << 40);
    let get = |seed: u64, uri: String| {
        let api = &api;
        async move {
            let (status, _, body) = api.send_signed(CLIENT_A, Some(seed), "GET", &uri, "").await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{uri}: {}",
                String::from_utf8_lossy(&body)
            );
            body
        }
    };
    let the_tx = format!("/v1/transactions/{}", rejected.hash());
    let history = format!("/v1/accounts/{payee}/transactions");
    let pacs002 = format!("/v1/iso20022/pacs.002/T{payer_seed}-1?debtor={payer}");
    let entry = |page: &Value| {
        page["transactions"]
            .as_array()
            .and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e["hash"] == rejected.hash().to_string())
                    .cloned()
            })
            .unwrap_or_else(|| panic!("no rejected entry: {page}"))
    };
    let json = |body: Vec<u8>| serde_json::from_slice::<Value>(&body).expect("JSON");
    for seed in [payer_seed, operator_seed(1), testkit::REGULATOR_SEED] {
        let view = json(get(seed, the_tx.clone()).await);
        assert_eq!(view["status"], "rejected", "{view}");
        assert!(
            view["receipt"]["outcome"]
                .to_string()
                .contains("InsufficientFunds"),
            "{view}"
        );
        let xml = String::from_utf8(get(seed, pacs002.clone()).await).expect("UTF-8");
        assert!(xml.contains("insufficient funds"), "{xml}");
    }
    for seed in [payee_seed, operator_seed(0)] {
        let view = json(get(seed, the_tx.clone()).await);
        assert_eq!(view["status"], "rejected", "{view}");
        assert!(view["height"].is_u64(), "{view}");
        assert!(view["receipt"].is_null(), "the reason is withheld: {view}");
        let page = json(get(seed, history.clone()).await);
        assert_eq!(entry(&page)["status"], "rejected", "{page}");
        assert!(entry(&page)["receipt"].is_null(), "{page}");
        let xml = String::from_utf8(get(seed, pacs002.clone()).await).expect("UTF-8");
        assert!(xml.contains("RJCT"), "{xml}");
        assert!(!xml.contains("insufficient"), "{xml}");
        assert!(!xml.contains("40000") && !xml.contains("400.00"), "{xml}");
    }
    // The regulator reads the payee's history with the reason.
    let page = json(get(testkit::REGULATOR_SEED, history).await);
    assert!(
        entry(&page)["receipt"]["outcome"]
            .to_string()
            .contains("InsufficientFunds"),
        "{page}"
    );
    // The event streams from block 1, read up to a later transfer of the payee's own (so
    // everything of block 1 has come), agree with the transaction's view: the payer and
    // the regulator get the `transaction` event with its receipt; the payee and its bank's
    // operator a `rejected` event, without the receipt or the reason.
    let marker = crate::testkit::transfer_to(payee_seed, payer_seed, 0, 1);
    crate::testkit::commit_block(&mut api._core, vec![marker.clone()], (1 << 40) + 1);
    for (seed, sees_why) in [
        (payer_seed, true),
        (operator_seed(1), true),
        (testkit::REGULATOR_SEED, true),
        (payee_seed, false),
        (operator_seed(0), false),
    ] {
        let text = api
            .events_until(seed, "/v1/events?after=0:0", &marker.hash().to_string())
            .await;
        let (name, event) = TestApi::event_about(&text, &rejected.hash().to_string())
            .unwrap_or_else(|| panic!("seed {seed}: no event about the rejection: {text}"));
        if sees_why {
            assert_eq!(name, "transaction", "seed {seed}: {event}");
            assert!(
                event["receipt"]["outcome"]
                    .to_string()
                    .contains("InsufficientFunds"),
                "seed {seed}: {event}"
            );
        } else {
            assert_eq!(name, "rejected", "seed {seed}: {event}");
            assert_eq!(event["kind"], "rejected", "seed {seed}: {event}");
            assert!(event["rejection"].is_null(), "seed {seed}: {event}");
            assert_eq!(event["height"], 1, "seed {seed}: {event}");
            assert!(!text.contains("nsufficient"), "seed {seed}: {text}");
        }
    }
}

/// `pool_limit` says how much more the receiving bank's pool can take in this cycle (its
/// pool plus what it received: `u64::MAX` less both), and that pool is its bank's to read.
/// A customer of another bank who pays it an amount near the largest gets the code and a
/// message without the amount wherever the rejection reaches it (the answers to its
/// submission, single, batch or pacs.008; the transaction, its history, pacs.002, its event
/// stream), and so does the payer's bank's operator; the regulator reads the amount. Before,
/// each of these views carried the error as stored (`available`), and the payer learnt bank
/// A's pool.
#[tokio::test]
async fn a_rejection_shows_the_receiving_banks_pool_only_to_those_who_may_read_it() {
    // Bank A's pool (with what it receives) can grow by 84,321 minor units in this cycle.
    let mut genesis = testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000);
    genesis.banks[0].initial_pool = Amount(u64::MAX - 84_321);
    let mut api = TestApi::with_genesis(genesis);
    let payer_seed = customer_seed(1, 0);
    let payee_seed = customer_seed(0, 0);
    let payer = account(payer_seed);
    // Each is admitted alone; in the block the first leaves room for 54,321 and the second
    // is refused, `pool_limit` with that room as `available`.
    const ROOM: &str = "54321";
    // The room as a number of its own (a hash or a key may hold those digits).
    let shows_room = |text: &str| {
        text.match_indices(ROOM).any(|(at, _)| {
            let around = [
                text[..at].chars().next_back(),
                text[at + ROOM.len()..].chars().next(),
            ];
            around
                .into_iter()
                .all(|c| !c.is_some_and(|c| c.is_ascii_alphanumeric()))
        })
    };
    let paid = crate::testkit::transfer_to(payer_seed, payee_seed, 0, 30_000);
    let rejected = crate::testkit::transfer_to(payer_seed, payee_seed, 1, 60_000);
    crate::testkit::commit_block(&mut api._core, vec![paid, rejected.clone()], 1 << 40);
    let get = |seed: u64, uri: String| {
        let api = &api;
        async move {
            let (status, _, body) = api.send_signed(CLIENT_A, Some(seed), "GET", &uri, "").await;
            let body = String::from_utf8(body).expect("UTF-8");
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            body
        }
    };
    let the_tx = format!("/v1/transactions/{}", rejected.hash());
    let history = format!("/v1/accounts/{payer}/transactions");
    let pacs002 = format!("/v1/iso20022/pacs.002/T{payer_seed}-1?debtor={payer}");
    // The regulator reads the error as stored: this is the rejection the test is about.
    let body = get(testkit::REGULATOR_SEED, the_tx.clone()).await;
    let view: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(view["status"], "rejected", "{view}");
    let outcome = view["receipt"]["outcome"].to_string();
    assert!(outcome.contains("PoolLimit"), "{view}");
    assert!(shows_room(&outcome), "{view}");
    assert_eq!(view["rejection"]["code"], "pool_limit", "{view}");
    assert!(shows_room(&view["rejection"].to_string()), "{view}");
    for uri in [&history, &pacs002] {
        let body = get(testkit::REGULATOR_SEED, uri.clone()).await;
        assert!(shows_room(&body), "{uri}: {body}");
    }
    // The payee and its bank's operator may see the transaction (a party, and the
    // operator of a party's bank), not why it was rejected: what the payer lacked is the
    // payer's, though the room is bank A's own pool.
    for seed in [payee_seed, operator_seed(0)] {
        let body = get(seed, the_tx.clone()).await;
        let view: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(view["status"], "rejected", "seed {seed}: {view}");
        assert!(
            view["receipt"].is_null() && view["rejection"].is_null(),
            "seed {seed}: {view}"
        );
    }
    // The payer and its bank's operator: rejected, never the room.
    for seed in [payer_seed, operator_seed(1)] {
        let body = get(seed, the_tx.clone()).await;
        assert!(!shows_room(&body), "seed {seed}: {body}");
        let view: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(view["status"], "rejected", "{view}");
        assert!(view["height"].is_u64(), "{view}");
        // A receipt holds the error itself (its amount with it): left out. Why it was
        // rejected is theirs to know: the code, and a message without the room.
        assert!(view["receipt"].is_null(), "{view}");
        assert_eq!(view["rejection"]["code"], "pool_limit", "{view}");
        assert!(
            view["rejection"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("pool cannot take")),
            "{view}"
        );
        let page = get(seed, history.clone()).await;
        assert!(!shows_room(&page), "seed {seed}: {page}");
        let entry = serde_json::from_str::<Value>(&page).expect("JSON")["transactions"]
            .as_array()
            .and_then(|txs| {
                txs.iter()
                    .find(|tx| tx["hash"] == rejected.hash().to_string())
                    .cloned()
            })
            .unwrap_or_else(|| panic!("{page}"));
        assert!(entry["receipt"].is_null(), "{entry}");
        assert_eq!(entry["rejection"]["code"], "pool_limit", "{entry}");
        let xml = get(seed, pacs002.clone()).await;
        assert!(!shows_room(&xml), "seed {seed}: {xml}");
        assert!(xml.contains("RJCT") && xml.contains("AM02"), "{xml}");
        assert!(xml.contains("pool_limit: rejected at height 1: "), "{xml}");
    }
    // Submitted again, now against the ledger: anonymous, so without the room, as JSON
    // (single and batch) and as a pacs.008.
    let again = crate::testkit::transfer_to(payer_seed, payee_seed, 2, 60_000);
    let hex = interpool_contracts::primitives::to_hex(&again.signed().encode());
    let body = serde_json::json!({ "tx": hex }).to_string();
    let (status, _, answer) = api
        .send_signed(CLIENT_A, None, "POST", "/v1/transactions", &body)
        .await;
    let answer = String::from_utf8(answer).expect("UTF-8");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(!shows_room(&answer), "{answer}");
    let refused = json(answer.as_bytes());
    assert_eq!(refused["error"]["code"], "pool_limit", "{answer}");
    let body = serde_json::json!({ "txs": [hex] }).to_string();
    let (status, _, answer) = api
        .send_signed(CLIENT_A, None, "POST", "/v1/transactions/batch", &body)
        .await;
    let answer = String::from_utf8(answer).expect("UTF-8");
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!shows_room(&answer), "{answer}");
    let results = json(answer.as_bytes())["results"].clone();
    assert_eq!(results[0]["error"]["code"], "pool_limit", "{answer}");
    // As a pacs.008: the new order refused, and the one already in block 1 reported.
    for (order, status) in [
        (&again, StatusCode::UNPROCESSABLE_ENTITY),
        (&rejected, StatusCode::OK),
    ] {
        let xml = interpool_contracts::iso20022::pacs::pacs008(
            order.signed(),
            &testkit::bank_id(1),
            &testkit::bank_id(0),
            "EUR",
            2,
            1_796_025_257_123,
        )
        .expect("pacs.008");
        let (answered, body) = api
            .post_raw(
                None,
                "/v1/iso20022/pacs.008",
                "application/xml",
                xml.into_bytes(),
            )
            .await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(answered, status, "{body}");
        assert!(body.contains("RJCT") && body.contains("AM02"), "{body}");
        assert!(!shows_room(&body), "{body}");
    }
    // The event streams from block 1, read up to a later transfer to the payer (so all of
    // block 1 has come), agree with the transaction's view: the room goes to the
    // regulator's stream only; the payer and its bank's operator get a `rejected` event
    // with the code (before, nothing at all); the payee and its bank's operator one
    // without it.
    let marker = crate::testkit::transfer_to(payee_seed, payer_seed, 0, 1);
    crate::testkit::commit_block(&mut api._core, vec![marker.clone()], (1 << 40) + 1);
    for (seed, code) in [
        (testkit::REGULATOR_SEED, None),
        (payer_seed, Some("pool_limit")),
        (operator_seed(1), Some("pool_limit")),
        (payee_seed, None),
        (operator_seed(0), None),
    ] {
        let text = api
            .events_until(seed, "/v1/events?after=0:0", &marker.hash().to_string())
            .await;
        assert_eq!(
            shows_room(&text),
            seed == testkit::REGULATOR_SEED,
            "seed {seed}: {text}"
        );
        let (name, event) = TestApi::event_about(&text, &rejected.hash().to_string())
            .unwrap_or_else(|| panic!("seed {seed}: no event about the rejection: {text}"));
        if seed == testkit::REGULATOR_SEED {
            assert_eq!(name, "transaction", "{event}");
            continue;
        }
        assert_eq!(name, "rejected", "seed {seed}: {event}");
        assert!(event["receipt"].is_null(), "seed {seed}: {event}");
        assert_eq!(
            event["rejection"]["code"].as_str(),
            code,
            "seed {seed}: {event}"
        );
    }
}

/// A transfer with end-to-end id `end_to_end_id` from customer `from` to customer `to`.
fn transfer_with_id(
    from: u64,
    to: u64,
    nonce: u64,
    end_to_end_id: &str,
) -> interpool_contracts::VerifiedTransaction {
    interpool_contracts::Transaction {
        chain_id: "test".into(),
        signer: account(from),
        nonce,
        valid_until_height: 1_000,
        body: interpool_contracts::Body::Transfer {
            to: account(to),
            amount: Amount(100),
            end_to_end_id: end_to_end_id.into(),
            reference: String::new(),
            terms: Default::default(),
        },
    }
    .sign(&testkit::key(from))
    .check_stateless("test")
    .expect("valid")
}

/// pacs.002 picks among the transfers a caller may read, not among all of the debtor's: a
/// payee whose payment's end-to-end id the debtor used again for someone else (here a
/// duplicate's rejection) gets its own transfer's status, with or without `?debtor=`; the
/// other payee gets its own (the rejection, without its reason); a customer party to
/// neither gets the answer for an id nobody used. Before, the debtor's best transfer was
/// picked first and then refused to every caller but its payee.
#[tokio::test]
async fn pacs002_answers_each_payee_with_its_own_transfer_of_a_shared_end_to_end_id() {
    let mut api = TestApi::new();
    let payer_seed = customer_seed(1, 0);
    let (first_payee, second_payee, stranger) = (
        customer_seed(0, 0),
        customer_seed(0, 1),
        customer_seed(1, 1),
    );
    let payer = account(payer_seed);
    let paid = transfer_with_id(payer_seed, first_payee, 0, "INV-7");
    let duplicate = transfer_with_id(payer_seed, second_payee, 1, "INV-7");
    // In one block: the second is rejected there as a duplicate (admission checks the state).
    crate::testkit::commit_block(&mut api._core, vec![paid, duplicate], 1 << 40);
    let status = |seed: u64, uri: &str| {
        let (api, uri) = (&api, uri.to_string());
        async move {
            let (status, _, body) = api.send_signed(CLIENT_A, Some(seed), "GET", &uri, "").await;
            (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
        }
    };
    let by_debtor = format!("/v1/iso20022/pacs.002/INV-7?debtor={payer}");
    for uri in ["/v1/iso20022/pacs.002/INV-7", by_debtor.as_str()] {
        // The payer (and its bank) see the payment, not the later duplicate.
        for seed in [payer_seed, operator_seed(1), testkit::REGULATOR_SEED] {
            let (code, xml) = status(seed, uri).await;
            assert_eq!(code, StatusCode::OK, "{uri}: {xml}");
            assert!(xml.contains("ACSC"), "{uri}: {xml}");
        }
        let (code, xml) = status(first_payee, uri).await;
        assert_eq!(code, StatusCode::OK, "{uri}: {xml}");
        assert!(xml.contains("ACSC"), "the first payee's payment: {xml}");
        let (code, xml) = status(second_payee, uri).await;
        assert_eq!(code, StatusCode::OK, "{uri}: {xml}");
        assert!(xml.contains("RJCT"), "the second payee's transfer: {xml}");
        assert!(
            !xml.contains("duplicate"),
            "its reason is the payer's: {xml}"
        );
        let (code, body) = status(stranger, uri).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert!(body.contains("unknown_end_to_end_id"), "{body}");
    }
}

#[tokio::test]
async fn access_metrics_off_the_machine_only_for_nodes_and_regulators() {
    let api = TestApi::new();
    let loopback = [127, 0, 0, 1];
    let metrics = |client, signer| api.send_signed(client, signer, "GET", "/metrics", "");
    assert_eq!(metrics(CLIENT_A, None).await.0, StatusCode::UNAUTHORIZED);
    let (status, _, body) = metrics(CLIENT_A, Some(customer_seed(0, 0))).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        metrics(CLIENT_A, Some(testkit::AUTHORITY_SEED)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        metrics(CLIENT_A, Some(testkit::REGULATOR_SEED)).await.0,
        StatusCode::OK
    );
    // The local Prometheus agent needs no key.
    assert_eq!(metrics(loopback, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn access_forged_stale_replayed_and_partial_credentials_are_refused() {
    use ed25519_dalek::Signer as _;
    let api = TestApi::new();
    let seed = customer_seed(0, 0);
    let uri = format!("/v1/accounts/{}", account(seed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let headers = |signer: u64, signed_uri: &str, timestamp: u64, nonce: &str| {
        let message =
            auth::request_message(&api.chain_id, "GET", signed_uri, timestamp, nonce, b"");
        vec![
            (auth::KEY_HEADER, account(signer).to_hex()),
            (auth::TIMESTAMP_HEADER, timestamp.to_string()),
            (auth::NONCE_HEADER, nonce.to_owned()),
            (
                auth::SIGNATURE_HEADER,
                interpool_contracts::primitives::to_hex(
                    &testkit::key(signer).sign(&message).to_bytes(),
                ),
            ),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>, uri: String| {
        let api = &api;
        async move {
            let mut request = Request::builder().method(Method::GET).uri(&uri);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let mut request = request.body(Body::empty()).expect("request");
            request.extensions_mut().insert(axum::extract::ConnectInfo(
                std::net::SocketAddr::from((CLIENT_A, 40_000)),
            ));
            let response = api
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("infallible");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            let code = if status.is_success() {
                String::new()
            } else {
                error_code(&body)
            };
            (status, code)
        }
    };
    let once = headers(seed, &uri, now, "replay-me-0000001");
    assert_eq!(
        send(once.clone(), uri.clone()).await,
        (StatusCode::OK, String::new())
    );
    assert_eq!(
        send(once, uri.clone()).await,
        (StatusCode::UNAUTHORIZED, "replayed_request".into())
    );
    for stale in [now - 31_000, now + 31_000] {
        assert_eq!(
            send(headers(seed, &uri, stale, "stale-nonce-00001"), uri.clone()).await,
            (StatusCode::UNAUTHORIZED, "stale_request".into())
        );
    }
    // Signed for another path.
    let other = format!("/v1/accounts/{}/transactions", account(seed));
    assert_eq!(
        send(headers(seed, &other, now, "moved-nonce-00001"), uri.clone()).await,
        (StatusCode::UNAUTHORIZED, "bad_request_signature".into())
    );
    // A key the chain does not know.
    assert_eq!(
        send(headers(9_999, &uri, now, "stranger-nonce-01"), uri.clone()).await,
        (StatusCode::UNAUTHORIZED, "unknown_caller".into())
    );
    // Three of the four headers; a short nonce; a malformed key.
    let mut partial = headers(seed, &uri, now, "partial-nonce-001");
    partial.pop();
    assert_eq!(
        send(partial, uri.clone()).await,
        (StatusCode::UNAUTHORIZED, "bad_credentials".into())
    );
    assert_eq!(
        send(headers(seed, &uri, now, "short"), uri.clone()).await,
        (StatusCode::UNAUTHORIZED, "bad_credentials".into())
    );
    let mut bad_key = headers(seed, &uri, now, "badkey-nonce-0001");
    bad_key[0].1 = "zz".into();
    assert_eq!(
        send(bad_key, uri.clone()).await,
        (StatusCode::UNAUTHORIZED, "bad_credentials".into())
    );
}

#[tokio::test]
async fn access_a_signed_read_with_a_body_is_routed_as_without_it() {
    let api = TestApi::new();
    // The body is not looked at: the signature is over the empty body, and a GET on a write
    // route is still 405.
    let send = |uri: &'static str| {
        let api = &api;
        async move {
            let mut request = Request::builder()
                .method(Method::GET)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"tx": "00"}"#))
                .expect("request");
            api.sign(&mut request, testkit::REGULATOR_SEED, b"");
            request.extensions_mut().insert(axum::extract::ConnectInfo(
                std::net::SocketAddr::from((CLIENT_A, 40_000)),
            ));
            api.router
                .clone()
                .oneshot(request)
                .await
                .expect("infallible")
                .status()
        }
    };
    assert_eq!(
        send("/v1/transactions").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(send("/v1/banks").await, StatusCode::OK);
}

/// A body of `chunks` frames of 1 MiB that counts how many of them were read.
fn counted_body(chunks: usize) -> (Body, Arc<std::sync::atomic::AtomicUsize>) {
    use futures::StreamExt as _;
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&read);
    let frames = futures::stream::iter(0..chunks).map(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![0u8; 1 << 20]))
    });
    (Body::from_stream(frames), read)
}

#[tokio::test]
async fn body_a_refused_body_is_read_to_its_end_before_the_answer_unless_it_was_never_sent() {
    let api = TestApi::new();
    let post = |chunks: usize, expect: bool| {
        let (body, read) = counted_body(chunks);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/transactions")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, (chunks << 20).to_string());
        if expect {
            request = request.header(header::EXPECT, "100-continue");
        }
        (request.body(body).expect("request"), read)
    };
    // Declared over the limit: 413 before any handler, then the body is drained and the
    // connection serves on.
    let (request, read) = post(8, false);
    let response = api.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 8);
    assert!(response.headers().get(header::CONNECTION).is_none());
    // The client waits for `100 Continue` before it sends: it is told no by the 413 and the
    // connection closes, nothing read.
    let (request, read) = post(8, true);
    let response = api.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(response.headers()[header::CONNECTION], "close");
    // Declared past what the node drains: answered, closed, nothing read.
    let (request, read) = post(65, false);
    let response = api.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(response.headers()[header::CONNECTION], "close");
}

/// `/v1/health`'s queue figures are network-wide (with few banks, they tell one bank
/// another's liquidity): a regulator reads them; an anonymous caller away from the node's
/// machine, a customer and an operator get `null`, and the rest of the health answer alike.
#[tokio::test]
async fn health_shows_the_queues_only_to_those_who_may_read_the_metrics() {
    let api = TestApi::new();
    for (signer, shown) in [
        (Some(testkit::REGULATOR_SEED), true),
        (None, false),
        (Some(customer_seed(0, 0)), false),
        (Some(operator_seed(0)), false),
    ] {
        let (status, _, body) = api
            .send_signed(CLIENT_A, signer, "GET", "/v1/health", "")
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let view: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(view["queued"].is_u64(), shown, "{signer:?}: {view}");
        assert_eq!(view["longest_queue"].is_u64(), shown, "{signer:?}: {view}");
        if !shown {
            assert!(view["queued"].is_null(), "{view}");
        }
        assert_eq!(view["status"], "ok", "{view}");
        assert!(view["mempool_capacity"].is_u64(), "{view}");
    }
}

/// One key holds at most 16 event streams: the 17th is refused (503 `too_many_streams`)
/// while another customer still gets its stream, and a closed stream frees its slot. Before,
/// one customer could open every slot of the node (256 in about a second) and every bank
/// was refused.
#[tokio::test]
async fn one_key_cannot_take_every_event_stream() {
    let api = TestApi::new();
    let greedy = customer_seed(0, 0);
    let mut open = Vec::new();
    for _ in 0..limits::MAX_EVENT_STREAMS_PER_KEY {
        let response = api
            .respond(CLIENT_A, Some(greedy), "GET", "/v1/events", "")
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let (status, _, body) = api
        .send_signed(CLIENT_A, Some(greedy), "GET", "/v1/events", "")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        String::from_utf8_lossy(&body).contains("too_many_streams"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let other = api
        .respond(CLIENT_A, Some(customer_seed(1, 0)), "GET", "/v1/events", "")
        .await;
    assert_eq!(other.status(), StatusCode::OK);
    // A stream closed: its slot is free again (once its producer notices).
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..100 {
        let response = api
            .respond(CLIENT_A, Some(greedy), "GET", "/v1/events", "")
            .await;
        if response.status() == StatusCode::OK {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "the closed stream's slot was not freed");
}
