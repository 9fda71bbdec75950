//! The node's HTTP API as seen by the wallet: typed requests over a blocking client, and
//! one error type whose every variant reads as one clear line (what was asked, what went
//! wrong, and the node's error code when it sent one).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer as _, SigningKey};

use interpool_consensus::CommitCertificate;
use interpool_contracts::views::{
    AccountHistoryView, AccountProofView, AccountView, BankView, BlockView, CycleView, SignerView,
    StatusView, SubmitView, TxStatusView,
};
use interpool_contracts::{AccountId, AdmissionCode, ErrorView, Hash};
use reqwest::blocking::{Client, Request, Response};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest answer read, in bytes: an account proof carries a whole block in hex.
pub const MAX_RESPONSE_BYTES: u64 = 160 << 20;
/// How long to wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any one request may wait for the node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `/v1/status` read to learn the chain id a signed request names.
const MAX_STATUS_BYTES: u64 = 64 << 10;
/// How long the event stream may stay silent before the wallet reconnects.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A failed request.
#[derive(Debug, Error)]
pub enum ClientError {
    /// `--node` / `INTERPOOL_NODE` is not a usable URL.
    #[error("invalid node URL {url:?}: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// No connection (refused, unreachable, DNS, a certificate not from the CA).
    #[error("cannot connect to the node at {node}: {reason}{}", certificate_hint(.reason))]
    Connect {
        /// The node's base URL.
        node: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The node did not answer in time.
    #[error("{request}: the node at {node} did not answer within {seconds} s")]
    Timeout {
        /// `GET /v1/...`.
        request: String,
        /// The node's base URL.
        node: String,
        /// The limit.
        seconds: u64,
    },
    /// The node answered with its JSON error.
    #[error("{request}: the node answered {status} {code}: {message}{}", access_hint(.code))]
    Api {
        /// `GET /v1/...`.
        request: String,
        /// HTTP status.
        status: u16,
        /// The node's stable error code.
        code: String,
        /// The node's explanation.
        message: String,
    },
    /// An error status without the JSON error body (a proxy, or not an Interpool node).
    #[error("{request}: the node answered HTTP {status} without an error body: {snippet:?}")]
    Status {
        /// `GET /v1/...`.
        request: String,
        /// HTTP status.
        status: u16,
        /// The start of what it sent.
        snippet: String,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("{request}: the answer is not the expected JSON ({reason}): {snippet:?}")]
    BadBody {
        /// `GET /v1/...`.
        request: String,
        /// The parser's complaint.
        reason: String,
        /// The start of what it sent.
        snippet: String,
    },
    /// Anything else on the way (connection reset, body too large, ...).
    #[error("{request}: {reason}")]
    Transport {
        /// `GET /v1/...`.
        request: String,
        /// What went wrong.
        reason: String,
    },
}

impl ClientError {
    /// The node's error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The admission code, if the node did not admit a transaction for a reason of its own
    /// (already pending, nonce taken, mempool full, ...), typed.
    pub fn admission(&self) -> Option<AdmissionCode> {
        self.code().and_then(AdmissionCode::parse)
    }

    /// The HTTP status, if the node answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What to do about a refusal of who is calling (401) or of what it asked (403).
fn access_hint(code: &str) -> &'static str {
    match code {
        "unauthenticated" | "unknown_caller" => {
            " (sign the request with a key this chain knows: --key FILE or INTERPOOL_KEY)"
        }
        "forbidden" => " (the key's role may not read this; use a key that may)",
        "stale_request" => " (this machine's clock is off; sync it)",
        "replayed_request" => " (a nonce was used twice; send the request again)",
        "bad_request_signature" | "bad_credentials" => {
            " (the request's signature headers were altered on the way, e.g. by a proxy \
             that rewrites the path or query; reach the node directly)"
        }
        _ => "",
    }
}

/// What to do about a certificate the wallet refused.
fn certificate_hint(reason: &str) -> &'static str {
    if reason.to_ascii_lowercase().contains("certificate") {
        " (the node's TLS certificate is not from the consortium CA given with --ca or \
         INTERPOOL_CA, or not for this host)"
    } else {
        ""
    }
}

/// `GET /v1/accounts/{id}/bank`.
#[derive(Deserialize)]
pub struct AccountBankView {
    /// The bank that holds the account.
    pub bank: interpool_contracts::BankId,
}

/// `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorView,
}

/// `POST /v1/transactions` body.
#[derive(Serialize)]
struct SubmitRequest<'a> {
    tx: &'a str,
}

/// The start of a body, printable on one line.
/// `text` with every control character (line breaks, escape sequences) a space.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The innermost cause of an error (for reqwest, the operating system's reason).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Checks a node URL: `http://host[:port][/prefix]`, no query or fragment.
pub fn parse_node_url(text: &str) -> Result<Url, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: text.chars().take(200).collect(),
        reason: reason.into(),
    };
    if !text.contains("://") {
        return Err(bad(&format!("no scheme; did you mean http://{text}?")));
    }
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad(&format!("scheme {other:?}, expected https or http"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a node URL has no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL are not supported"));
    }
    Ok(url)
}

/// How the wallet reaches nodes: the CA whose certificates it trusts for `https://` nodes
/// (`--ca`, `INTERPOOL_CA`, or a localnet manifest's) and the key it signs its requests
/// with (`--key` on queries, `INTERPOOL_KEY`, or the signer's own key when it submits).
#[derive(Clone, Default)]
pub struct Access {
    /// The consortium CA's certificate(s), PEM.
    pub ca: Option<PathBuf>,
    /// The key that signs requests (ADR 0014); none: anonymous.
    pub key: Option<SigningKey>,
}

/// The process's [`Access`], set once by the command line.
static ACCESS: OnceLock<Access> = OnceLock::new();

/// Sets how every [`Node`] of this process is reached (the first call wins).
pub fn set_access(access: Access) {
    let _ = ACCESS.set(access);
}

/// The key that signs requests, and the chain id they name (asked of the node once).
struct RequestSigner {
    key: SigningKey,
    chain_id: OnceLock<String>,
}

/// A connection to one node's API (a clone shares its connections).
#[derive(Clone)]
pub struct Node {
    base: String,
    http: Client,
    /// For event streams: no overall deadline.
    stream_http: Client,
    signer: Option<Arc<RequestSigner>>,
    /// Each request's deadline (at most the client's own, [`REQUEST_TIMEOUT`]).
    request_timeout: Duration,
}

/// An HTTP client trusting only `ca` (none: no HTTPS at all) with a request deadline.
fn http_client(url: &str, ca: Option<&Path>, timeout: Duration) -> Result<Client, ClientError> {
    let bad = |reason: String| ClientError::BadUrl {
        url: url.chars().take(200).collect(),
        reason,
    };
    let mut builder = Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .user_agent(concat!("interpool-wallet/", env!("CARGO_PKG_VERSION")))
        // Only the consortium's CA: never the system's or a browser's roots.
        .tls_built_in_root_certs(false)
        // A node never redirects; a redirect would carry the signed headers elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)
            .map_err(|e| bad(format!("cannot read the CA file {}: {e}", ca.display())))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            bad(format!(
                "the CA file {} is not PEM certificates: {}",
                ca.display(),
                root_cause(&e)
            ))
        })?;
        if certificates.is_empty() {
            return Err(bad(format!(
                "the CA file {} holds no certificate",
                ca.display()
            )));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| bad(format!("cannot build an HTTP client: {}", root_cause(&e))))
}

impl Node {
    /// A client for the node at `url` (checked, not contacted), reached as the process's
    /// [`Access`] says.
    pub fn new(url: &str) -> Result<Node, ClientError> {
        let access = ACCESS.get().cloned().unwrap_or_default();
        Node::with_access(url, &access)
    }

    /// A client for the node at `url` reached with `access`.
    pub fn with_access(url: &str, access: &Access) -> Result<Node, ClientError> {
        let parsed = parse_node_url(url)?;
        if parsed.scheme() == "https" && access.ca.is_none() {
            return Err(ClientError::BadUrl {
                url: url.chars().take(200).collect(),
                reason: "an https node needs the consortium CA's certificate to check it \
                         against: give --ca FILE or set INTERPOOL_CA"
                    .into(),
            });
        }
        let ca = access.ca.as_deref();
        Ok(Node {
            base: parsed.as_str().trim_end_matches('/').to_string(),
            http: http_client(url, ca, REQUEST_TIMEOUT)?,
            stream_http: http_client(url, ca, STREAM_IDLE_TIMEOUT)?,
            signer: access.key.clone().map(|key| {
                Arc::new(RequestSigner {
                    key,
                    chain_id: OnceLock::new(),
                })
            }),
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// This client, giving each request at most `timeout` (a caller's own deadline, as
    /// `--wait --timeout` is: a node that does not answer must not hold it past that).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Node {
        self.request_timeout = timeout.min(REQUEST_TIMEOUT);
        self
    }

    /// This client, signing its requests with `key` instead.
    pub fn signed_by(mut self, key: &SigningKey) -> Node {
        self.signer = Some(Arc::new(RequestSigner {
            key: key.clone(),
            chain_id: OnceLock::new(),
        }));
        self
    }

    /// Sends `request`, signed if it is a read and this client has a key (ADR 0014; writes
    /// carry signed transactions and are open to anyone).
    fn execute(&self, http: &Client, mut request: Request) -> Result<Response, reqwest::Error> {
        let signer = self
            .signer
            .as_ref()
            .filter(|_| request.method() == Method::GET);
        let signing = match signer {
            Some(signer) => match signer.chain_id.get() {
                Some(chain_id) => Some((signer, chain_id.clone())),
                None => {
                    // Asked once, anonymously: the status is open to anyone. Read within a
                    // bound (a status is a few hundred bytes; a hostile node's 400 MB one
                    // was read whole, and its chain id signed into every request): an
                    // answer that is not a status leaves the request unsigned, for the
                    // node to refuse.
                    let response = http
                        .get(format!("{}/v1/status", self.base))
                        .send()?
                        .error_for_status()?;
                    let mut bytes = Vec::new();
                    let read = response.take(MAX_STATUS_BYTES + 1).read_to_end(&mut bytes);
                    match serde_json::from_slice::<StatusView>(&bytes) {
                        Ok(status) if read.is_ok() && bytes.len() as u64 <= MAX_STATUS_BYTES => {
                            Some((
                                signer,
                                signer.chain_id.get_or_init(|| status.chain_id).clone(),
                            ))
                        }
                        _ => {
                            eprintln!(
                                "warning: {}/v1/status is not a node's status (not JSON, or \
                                 over {MAX_STATUS_BYTES} bytes); the request goes unsigned",
                                self.base
                            );
                            None
                        }
                    }
                }
            },
            None => None,
        };
        if let Some((signer, chain_id)) = signing {
            let url = request.url();
            let path_and_query = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            let body = request
                .body()
                .and_then(|body| body.as_bytes())
                .unwrap_or_default();
            let timestamp_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let mut nonce = [0u8; 16];
            // Without the operating system's randomness, a time-based nonce: still unique
            // per request of this process.
            if getrandom::getrandom(&mut nonce).is_err() {
                nonce[..8].copy_from_slice(&timestamp_ms.to_be_bytes());
            }
            let nonce = interpool_contracts::primitives::to_hex(&nonce);
            let message = interpool_contracts::request::message(
                &chain_id,
                request.method().as_str(),
                &path_and_query,
                timestamp_ms,
                &nonce,
                body,
            );
            let signature = signer.key.sign(&message);
            let headers = request.headers_mut();
            let key = AccountId(signer.key.verifying_key().to_bytes());
            for (name, value) in [
                (interpool_contracts::request::KEY_HEADER, key.to_hex()),
                (
                    interpool_contracts::request::TIMESTAMP_HEADER,
                    timestamp_ms.to_string(),
                ),
                (interpool_contracts::request::NONCE_HEADER, nonce),
                (
                    interpool_contracts::request::SIGNATURE_HEADER,
                    interpool_contracts::primitives::to_hex(&signature.to_bytes()),
                ),
            ] {
                if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
        }
        http.execute(request)
    }

    /// The node's base URL.
    #[cfg(test)]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The node's base URL, for messages.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn describe(method: &Method, path: &str) -> String {
        format!("{method} {path}")
    }

    fn transport_error(
        &self,
        request: String,
        error: reqwest::Error,
        timeout: Duration,
    ) -> ClientError {
        if error.is_connect() {
            ClientError::Connect {
                node: self.base.clone(),
                reason: root_cause(&error),
            }
        } else if error.is_timeout() {
            ClientError::Timeout {
                request,
                node: self.base.clone(),
                seconds: timeout.as_secs(),
            }
        } else {
            ClientError::Transport {
                request,
                reason: root_cause(&error),
            }
        }
    }

    /// Sends a request and returns the status and the (bounded) body.
    fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        self.send_accepting(method, path, query, body, "application/json")
    }

    /// [`Self::send`], asking for `accept`.
    fn send_accepting(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &'static str)>,
        accept: &'static str,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let request = Self::describe(&method, path);
        let mut builder = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .timeout(self.request_timeout)
            .header(ACCEPT, accept);
        if !query.is_empty() {
            builder = builder.query(query);
        }
        if let Some((body, content_type)) = body {
            builder = builder.header(CONTENT_TYPE, content_type).body(body);
        }
        let response = builder
            .build()
            .and_then(|built| self.execute(&self.http, built))
            .map_err(|e| self.transport_error(request.clone(), e, self.request_timeout))?;
        let status = response.status();
        let mut bytes = Vec::new();
        response
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::Transport {
                request: request.clone(),
                reason: format!("reading the answer: {}", root_cause(&e)),
            })?;
        if bytes.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(ClientError::Transport {
                request,
                reason: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        Ok((status, bytes))
    }

    /// The error for an answer with an error status.
    fn error_of(request: String, status: StatusCode, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => ClientError::Api {
                request,
                status: status.as_u16(),
                // The node's text reaches a terminal: no control character of it (an
                // escape sequence could rewrite the line shown) gets through.
                code: printable(&body.error.code),
                message: printable(&body.error.message),
            },
            Err(_) => ClientError::Status {
                request,
                status: status.as_u16(),
                snippet: snippet(bytes),
            },
        }
    }

    /// Turns a status and body into `T` or the node's error.
    fn decode<T: DeserializeOwned>(
        request: String,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<T, ClientError> {
        if !status.is_success() {
            return Err(Self::error_of(request, status, bytes));
        }
        serde_json::from_slice(bytes).map_err(|e| ClientError::BadBody {
            request,
            reason: e.to_string(),
            snippet: snippet(bytes),
        })
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.send(Method::GET, path, query, None)?;
        Self::decode(Self::describe(&Method::GET, path), status, &bytes)
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Transport {
            request: Self::describe(&Method::POST, path),
            reason: e.to_string(),
        })?;
        let (status, bytes) =
            self.send(Method::POST, path, &[], Some((json, "application/json")))?;
        Self::decode(Self::describe(&Method::POST, path), status, &bytes)
    }

    /// `POST path` with a body of `content_type` (the binary form of a batch); the answer
    /// as JSON.
    pub fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.send(Method::POST, path, &[], Some((body, content_type)))?;
        Self::decode(Self::describe(&Method::POST, path), status, &bytes)
    }

    /// An ISO 20022 exchange: `method path` with an optional XML body, asking for XML.
    /// Returns the status and the XML of a success or of a pacs.002 rejection; any other
    /// answer is the node's (JSON) error.
    pub fn xml(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, String), ClientError> {
        let request = Self::describe(&method, path);
        let (status, bytes) = self.send_accepting(
            method,
            path,
            query,
            body.map(|b| (b, "application/xml")),
            "application/xml",
        )?;
        let is_xml = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'<');
        if !status.is_success() && !is_xml {
            return Err(Self::error_of(request, status, &bytes));
        }
        let text = String::from_utf8(bytes).map_err(|e| ClientError::BadBody {
            request,
            reason: format!("not UTF-8: {e}"),
            snippet: String::new(),
        })?;
        Ok((status.as_u16(), text))
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<StatusView, ClientError> {
        self.get("/v1/status", &[])
    }

    /// `GET /v1/accounts/{id}/bank`: the bank that holds an account (what a payer may know).
    pub fn account_bank(&self, id: &AccountId) -> Result<AccountBankView, ClientError> {
        self.get(&format!("/v1/accounts/{id}/bank"), &[])
    }

    /// `GET /v1/accounts/{id}`.
    pub fn account(&self, id: &AccountId) -> Result<AccountView, ClientError> {
        self.get(&format!("/v1/accounts/{id}"), &[])
    }

    /// `GET /v1/signers/{id}`.
    pub fn signer(&self, id: &AccountId) -> Result<SignerView, ClientError> {
        self.get(&format!("/v1/signers/{id}"), &[])
    }

    /// `GET /v1/accounts/{id}/proof`.
    pub fn account_proof(
        &self,
        id: &AccountId,
    ) -> Result<AccountProofView<CommitCertificate>, ClientError> {
        self.get(&format!("/v1/accounts/{id}/proof"), &[])
    }

    /// `GET /v1/accounts/{id}/transactions`.
    pub fn history(
        &self,
        id: &AccountId,
        limit: u32,
        before: Option<&str>,
    ) -> Result<AccountHistoryView, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        self.get(&format!("/v1/accounts/{id}/transactions"), &query)
    }

    /// `GET /v1/transactions/{hash}`.
    pub fn transaction(&self, hash: &Hash) -> Result<TxStatusView, ClientError> {
        self.get(&format!("/v1/transactions/{hash}"), &[])
    }

    /// `POST /v1/transactions`.
    pub fn submit(&self, tx_hex: &str) -> Result<SubmitView, ClientError> {
        self.post("/v1/transactions", &SubmitRequest { tx: tx_hex })
    }

    /// `GET /v1/blocks/{height}` or `/v1/blocks/latest`.
    pub fn block(&self, height: Option<u64>) -> Result<BlockView<CommitCertificate>, ClientError> {
        match height {
            Some(h) => self.get(&format!("/v1/blocks/{h}"), &[]),
            None => self.get("/v1/blocks/latest", &[]),
        }
    }

    /// `GET /v1/cycles/{n}` or `/v1/cycles/latest`.
    pub fn cycle(&self, n: Option<u64>) -> Result<CycleView, ClientError> {
        match n {
            Some(n) => self.get(&format!("/v1/cycles/{n}"), &[]),
            None => self.get("/v1/cycles/latest", &[]),
        }
    }

    /// `GET /v1/banks`.
    pub fn banks(&self) -> Result<Vec<BankView>, ClientError> {
        self.get("/v1/banks", &[])
    }

    /// Opens `GET /v1/events` as a Server-Sent Events stream, resuming after
    /// `last_event_id` if given. Returns the open response to read lines from.
    pub fn events(
        &self,
        account: Option<&AccountId>,
        last_event_id: Option<&str>,
    ) -> Result<Response, ClientError> {
        let path = "/v1/events";
        let request = Self::describe(&Method::GET, path);
        // A stream has no overall deadline; a silent one is dropped and resumed.
        let mut builder = self
            .stream_http
            .get(format!("{}{}", self.base, path))
            .header(ACCEPT, "text/event-stream");
        if let Some(account) = account {
            builder = builder.query(&[("account", account.to_hex())]);
        }
        if let Some(id) = last_event_id {
            builder = builder.header("Last-Event-ID", id);
        }
        let response = builder
            .build()
            .and_then(|built| self.execute(&self.stream_http, built))
            .map_err(|e| self.transport_error(request.clone(), e, STREAM_IDLE_TIMEOUT))?;
        let status = response.status();
        if !status.is_success() {
            let mut bytes = Vec::new();
            let _ = response.take(64 * 1024).read_to_end(&mut bytes);
            return Err(Self::error_of(request, status, &bytes));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !content_type.starts_with("text/event-stream") {
            return Err(ClientError::BadBody {
                request,
                reason: format!("content type {content_type:?}, expected text/event-stream"),
                snippet: String::new(),
            });
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teststub::{self, Reply};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn answers_errors_and_garbage_are_told_apart() {
        let calls = AtomicUsize::new(0);
        let stub = teststub::serve(move |_| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::json(200, teststub::status_json(7)),
            1 => Reply::error(404, "unknown_account", "no account x"),
            2 => Reply {
                status: 502,
                content_type: "text/html",
                body: "<html>Bad Gateway</html>".into(),
            },
            _ => Reply {
                status: 200,
                content_type: "text/plain",
                body: "hello".into(),
            },
        });
        let node = Node::new(&stub.url).expect("url");
        assert_eq!(node.status().expect("status").height, 7);

        let error = node.account(&AccountId([1; 32])).expect_err("404");
        assert_eq!(error.code(), Some("unknown_account"));
        let line = error.to_string();
        assert!(line.contains("404 unknown_account: no account x"), "{line}");
        assert!(line.starts_with("GET /v1/accounts/"), "{line}");

        let line = node.status().expect_err("502").to_string();
        assert!(
            line.contains("HTTP 502") && line.contains("Bad Gateway"),
            "{line}"
        );

        let line = node.status().expect_err("not JSON").to_string();
        assert!(
            line.contains("not the expected JSON") && line.contains("hello"),
            "{line}"
        );

        // Query parameters are encoded, ids are in the path.
        let _ = node.history(&AccountId([1; 32]), 5, Some("9:0"));
        let last = stub.requests().pop().expect("request");
        assert_eq!(
            last.target,
            format!(
                "/v1/accounts/{}/transactions?limit=5&before=9%3A0",
                AccountId([1; 32])
            )
        );
    }

    /// A node's error text reaches the terminal without its control characters: an escape
    /// sequence in it could erase the line and show something else ("Balance: 1000000.00
    /// (verified)") above an exit code of 1. Before, only line breaks were replaced.
    #[test]
    fn a_nodes_error_text_cannot_drive_the_terminal() {
        let stub = teststub::serve(|_| {
            Reply::error(
                404,
                "x\u{1b}[1G",
                "a\u{1b}[2K\u{1b}[1GBalance: 1000000.00 EUR\u{7}",
            )
        });
        let node = Node::new(&stub.url).expect("url");
        let line = node
            .account(&AccountId([1; 32]))
            .expect_err("404")
            .to_string();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("Balance: 1000000.00 EUR"), "{line}");
    }

    /// The status a signing client reads for the chain id is bounded: a hostile node's
    /// oversized one (a 2 MiB chain id here; 400 MB took 1.2 GB of memory before) is not
    /// read whole nor signed into the request, which goes unsigned for the node to refuse.
    #[test]
    fn an_oversized_status_is_not_read_for_signing() {
        let huge = "c".repeat(2 << 20);
        let stub = teststub::serve(move |request| match request.target.as_str() {
            "/v1/status" => {
                let mut status: serde_json::Value =
                    serde_json::from_str(&teststub::status_json(7)).expect("json");
                status["chain_id"] = serde_json::json!(huge);
                Reply::json(200, status.to_string())
            }
            _ => Reply::error(401, "unauthenticated", "sign it"),
        });
        let node = Node::new(&stub.url)
            .expect("url")
            .signed_by(&interpool_contracts::testkit::key(1));
        let _ = node.account(&AccountId([1; 32]));
        let asked = stub
            .requests()
            .into_iter()
            .find(|r| r.target.starts_with("/v1/accounts/"))
            .expect("the account was asked for");
        assert_eq!(asked.header(interpool_contracts::request::KEY_HEADER), None);
    }

    #[test]
    fn connection_refused_is_one_clear_line() {
        // Bind then drop: nothing listens on the port any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let node = Node::new(&format!("http://127.0.0.1:{port}")).expect("url");
        let error = node.status().expect_err("refused");
        assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
        let line = error.to_string();
        assert!(
            line.contains("cannot connect to the node at http://127.0.0.1"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn node_urls_are_checked() {
        assert!(parse_node_url("http://127.0.0.1:27000").is_ok());
        assert!(parse_node_url("http://node.example/api/").is_ok());
        for bad in [
            "127.0.0.1:27000",
            "ftp://x",
            "http://",
            "http://x/?a=1",
            "not a url",
        ] {
            let error = parse_node_url(bad).expect_err(bad);
            assert!(error.to_string().starts_with("invalid node URL"), "{error}");
        }
        let node = Node::new("http://h:1/prefix/").expect("url");
        assert_eq!(node.base(), "http://h:1/prefix");
        // https needs the CA to check the node against.
        assert!(parse_node_url("https://x").is_ok());
        let error = Node::with_access("https://x", &Access::default())
            .err()
            .expect("no CA");
        assert!(error.to_string().contains("--ca"), "{error}");
        let missing = Access {
            ca: Some("/nonexistent/ca.pem".into()),
            key: None,
        };
        let error = Node::with_access("https://x", &missing)
            .err()
            .expect("no file");
        assert!(
            error.to_string().contains("cannot read the CA file"),
            "{error}"
        );
    }
}
