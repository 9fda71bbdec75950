//! Who is calling, and what they may read (ADR 0014).
//!
//! A client proves who it is by signing a read (GET) with its ed25519 key: four headers
//! ([`KEY_HEADER`], [`TIMESTAMP_HEADER`], [`NONCE_HEADER`], [`SIGNATURE_HEADER`]), all or
//! none, the signature covering the chain id, method, path and query, timestamp, nonce and
//! the (empty) body's hash ([`request_message`]). [`authenticate`] (a layer over every route)
//! checks them once, refuses a stale or replayed request, and resolves the key's [`Role`]
//! from genesis and the ledger as they are now; handlers take the resulting [`Caller`] and
//! ask it whether the data is the caller's ([`Caller::may_read_account`] and the others). A
//! request without the headers is anonymous: it may read the node's status, health and
//! document. Writes are anonymous whatever they carry: each submits signed transactions,
//! whose own signatures are the authority there. Who may call each route is [`ACCESS`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signature, VerifyingKey};
use interpool_contracts::{AccountId, BankId, Ledger, TxError};

use super::{ApiError, ApiResult, ApiState, Code};
use crate::app::lock;

pub use interpool_contracts::request::{
    message as request_message, KEY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

/// Shortest and longest nonce.
const NONCE_LENGTH: std::ops::RangeInclusive<usize> = 16..=64;

/// What a key is on this chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A validator or observer of genesis.
    Node,
    /// The settlement authority.
    Authority,
    /// A regulator.
    Regulator,
    /// The operator of a bank.
    Operator(BankId),
    /// A customer account at a bank.
    Customer(BankId),
}

impl Role {
    /// What `key` is, by genesis (`nodes`) and the ledger; `None` for a stranger.
    pub fn of(key: &AccountId, nodes: &HashSet<AccountId>, ledger: &Ledger) -> Option<Role> {
        if nodes.contains(key) {
            return Some(Role::Node);
        }
        if let Some(account) = ledger.account(key) {
            return Some(Role::Customer(account.bank.clone()));
        }
        Some(match &ledger.official(key)?.role {
            interpool_contracts::ledger::Role::Operator(bank) => Role::Operator(bank.clone()),
            interpool_contracts::ledger::Role::Authority => Role::Authority,
            interpool_contracts::ledger::Role::Regulator => Role::Regulator,
        })
    }
}

/// Who made a request: anonymous, or a key that signed it and its role.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The key and its role; `None` for an anonymous request.
    pub who: Option<(AccountId, Role)>,
    /// The request came over the loopback interface.
    pub loopback: bool,
}

impl Caller {
    /// The caller's key and role, or 401 `unauthenticated`.
    pub fn known(&self) -> ApiResult<(&AccountId, &Role)> {
        self.who
            .as_ref()
            .map(|(key, role)| (key, role))
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthenticated,
                    "this route needs a signed request (headers x-interpool-key, \
                 x-interpool-timestamp, x-interpool-nonce, x-interpool-signature; ADR 0014)",
                )
            })
    }

    /// The operator's bank, for an operator.
    pub fn operator_bank(&self) -> Option<&BankId> {
        match &self.who {
            Some((_, Role::Operator(bank))) => Some(bank),
            _ => None,
        }
    }

    /// Regulators, the authority and nodes see everything.
    pub fn sees_all(&self) -> bool {
        matches!(
            self.who,
            Some((_, Role::Regulator | Role::Authority | Role::Node))
        )
    }

    fn forbidden(&self, what: impl std::fmt::Display) -> ApiError {
        let who = match &self.who {
            Some((key, Role::Customer(_))) => format!("customer {key} may read only its own"),
            Some((_, Role::Operator(bank))) => {
                format!("the operator of {bank} may read only its own bank's")
            }
            _ => "this caller may not read it".to_string(),
        };
        ApiError::new(Code::Forbidden, format!("{what} is not yours: {who}"))
    }

    /// Only regulators, the authority and nodes (blocks).
    pub fn require_all_seeing(&self, what: &str) -> ApiResult<()> {
        self.known()?;
        if self.sees_all() {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                format!(
                    "{what} may be read only by regulators, the settlement authority and nodes"
                ),
            ))
        }
    }

    /// Account `id`'s data: its owner, its bank's operator, and those who see everything.
    pub fn may_read_account(&self, ledger: &Ledger, id: &AccountId) -> ApiResult<()> {
        let (key, role) = self.known()?;
        let allowed = match role {
            Role::Customer(_) => key == id,
            Role::Operator(bank) => ledger.account(id).is_some_and(|a| &a.bank == bank),
            _ => true,
        };
        allowed
            .then_some(())
            .ok_or_else(|| self.forbidden(format_args!("account {id}")))
    }

    /// Signer `id`: itself, the operator of its bank, and those who see everything.
    pub fn may_read_signer(&self, ledger: &Ledger, id: &AccountId) -> ApiResult<()> {
        let (key, role) = self.known()?;
        let allowed = key == id
            || match role {
                Role::Customer(_) => false,
                Role::Operator(bank) => key_at_bank(ledger, id, bank),
                _ => true,
            };
        allowed
            .then_some(())
            .ok_or_else(|| self.forbidden(format_args!("signer {id}")))
    }

    /// Whether the caller sees why a transaction signed by `signer` was rejected. A rejection
    /// names what its signer lacked (`insufficient_funds` carries the payer's available
    /// balance; others a frozen payer account or its bank's full queue): that is the
    /// signer's to see, as its account is (`may_read_signer`), not its payee's or the payee's
    /// bank's, who may see the transaction itself.
    pub fn sees_rejection_of(&self, ledger: &Ledger, signer: &AccountId) -> bool {
        self.sees_all() || self.may_read_signer(ledger, signer).is_ok()
    }

    /// What the caller is told instead of rejection `error`'s own message when that message
    /// carries amounts that are not the caller's to read, whoever signed the transaction.
    /// The rejection is stored as the ledger made it (it is deterministic), so the amounts
    /// are left out on the way to the caller, decided here for every route:
    /// `error::rejection_view` (a code and a message) and [`Self::sees_receipt_of`] (a
    /// stored receipt).
    ///
    /// * `pool_limit` says how much more the receiving bank's pool can take in this cycle
    ///   (`u64::MAX` less its pool and what it received): that bank's pool, which its
    ///   operator and those who see everything read ([`Self::may_read_bank`]), not a payer
    ///   at another bank who sends an amount near `u64::MAX` to learn it.
    /// * `cycle_limit` says how much more the cycle's gross total can grow: a network-wide
    ///   figure only those who see everything read (an operator reads its own bank's gross,
    ///   [`Self::banks_visible`]).
    ///
    /// `None`: the error is shown as it is. Anonymous callers (every write) get the message.
    pub fn redacted_message(&self, error: &TxError) -> Option<&'static str> {
        match error {
            TxError::PoolLimit { bank, .. } if self.may_read_bank(bank).is_err() => {
                Some("the receiving bank's pool cannot take this amount in this cycle")
            }
            TxError::CycleLimit { .. } if !self.sees_all() => {
                Some("the cycle's gross total cannot take this amount in this cycle")
            }
            _ => None,
        }
    }

    /// Whether the caller is shown the receipt of a transaction signed by `signer` and
    /// rejected with `error`, as stored: it may see why it was rejected
    /// ([`Self::sees_rejection_of`]) and every amount the error carries
    /// ([`Self::redacted_message`]). A receipt holds the error itself, with its amounts, so
    /// one that is not the caller's to see in full is left out, and the transaction reads
    /// `rejected` at its height. Its code and an amount-free message are still shown where
    /// the caller may see why ([`Self::sees_rejection_of`]): the `rejection` in
    /// `GET /v1/transactions/{hash}`, the account history and the event stream's `rejected`
    /// event, pacs.002, and the answer to its submission.
    pub fn sees_receipt_of(&self, ledger: &Ledger, signer: &AccountId, error: &TxError) -> bool {
        self.redacted_message(error).is_none() && self.sees_rejection_of(ledger, signer)
    }

    /// A transaction whose parties (its signer and counterparty) are `parties`: a party, the
    /// operator of a party's bank, and those who see everything.
    pub fn may_read_transaction(&self, ledger: &Ledger, parties: &[AccountId]) -> ApiResult<()> {
        let (key, role) = self.known()?;
        let allowed = parties.contains(key)
            || match role {
                Role::Customer(_) => false,
                Role::Operator(bank) => parties.iter().any(|p| key_at_bank(ledger, p, bank)),
                _ => true,
            };
        allowed
            .then_some(())
            .ok_or_else(|| self.forbidden("this transaction"))
    }

    /// Bank `bank`'s data (its pool, statements): its operator and those who see everything.
    pub fn may_read_bank(&self, bank: &BankId) -> ApiResult<()> {
        let (_, role) = self.known()?;
        let allowed = match role {
            Role::Customer(_) => false,
            Role::Operator(own) => own == bank,
            _ => true,
        };
        allowed
            .then_some(())
            .ok_or_else(|| self.forbidden(format_args!("bank {bank}")))
    }

    /// For reports that cover every bank (the bank list, cycles, business days): `None` for
    /// those who see everything, the operator's own bank (the report is cut to it), and 403
    /// for customers.
    pub fn banks_visible(&self, what: &str) -> ApiResult<Option<BankId>> {
        let (_, role) = self.known()?;
        match role {
            Role::Operator(bank) => Ok(Some(bank.clone())),
            Role::Customer(_) => Err(ApiError::new(
                Code::Forbidden,
                format!(
                    "{what} may be read by bank operators (their own bank), regulators, the \
                     settlement authority and nodes, not by customers"
                ),
            )),
            _ => Ok(None),
        }
    }

    /// The event stream's filter for this caller, from the one asked for: everything for
    /// those who see everything; a customer's own account; an operator's own bank. A filter
    /// outside that is 403; no filter means all the caller may see.
    pub fn event_scope(
        &self,
        ledger: &Ledger,
        account: Option<AccountId>,
        bank: Option<BankId>,
    ) -> ApiResult<(Option<AccountId>, Option<BankId>)> {
        let (key, role) = self.known()?;
        match role {
            Role::Customer(own_bank) => {
                if account.is_some_and(|a| a != *key) {
                    return Err(self.forbidden("that account's event stream"));
                }
                if bank.as_ref().is_some_and(|b| b != own_bank) {
                    return Err(self.forbidden("that bank's event stream"));
                }
                Ok((Some(*key), bank))
            }
            Role::Operator(own_bank) => {
                if bank.as_ref().is_some_and(|b| b != own_bank) {
                    return Err(self.forbidden("that bank's event stream"));
                }
                if let Some(account) = &account {
                    self.may_read_account(ledger, account)?;
                }
                Ok((account, Some(own_bank.clone())))
            }
            _ => Ok((account, bank)),
        }
    }

    /// `/metrics`: nodes and regulators anywhere; anyone over loopback when the node allows it.
    pub fn may_read_metrics(&self, from_loopback: bool) -> ApiResult<()> {
        if self.loopback && from_loopback {
            return Ok(());
        }
        let (_, role) = self.known()?;
        match role {
            Role::Node | Role::Regulator => Ok(()),
            _ => Err(ApiError::new(
                Code::Forbidden,
                "metrics may be read by nodes and regulators (and from this machine)",
            )),
        }
    }
}

/// Whether `id` is an account at `bank` or its operator.
fn key_at_bank(ledger: &Ledger, id: &AccountId, bank: &BankId) -> bool {
    ledger.account(id).is_some_and(|a| &a.bank == bank)
        || ledger.official(id).is_some_and(
            |o| matches!(&o.role, interpool_contracts::ledger::Role::Operator(b) if b == bank),
        )
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &ApiState,
    ) -> Result<Self, std::convert::Infallible> {
        // Set by [`authenticate`]; a router without it (none is built) would see nobody.
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// What [`authenticate`] needs besides the ledger.
pub struct Auth {
    /// The chain id every signed request names.
    pub chain_id: String,
    /// The keys of genesis's validators and observers.
    pub nodes: HashSet<AccountId>,
    /// How far a timestamp may be from the node's clock, either way.
    pub window_ms: u64,
    /// `/metrics` served to loopback callers.
    pub metrics_from_loopback: bool,
    nonces: Mutex<Nonces>,
}

impl Auth {
    /// Settings for `genesis`'s chain and nodes.
    pub fn for_genesis(
        genesis: &interpool_contracts::Genesis,
        config: &interpool_genesis::config::RpcConfig,
    ) -> Auth {
        Auth::new(
            genesis.chain_id.clone(),
            genesis
                .validators
                .iter()
                .chain(&genesis.observers)
                .map(|node| node.key)
                .collect(),
            config,
        )
    }

    /// Settings for `chain_id` with genesis node keys `nodes`.
    pub fn new(
        chain_id: String,
        nodes: HashSet<AccountId>,
        config: &interpool_genesis::config::RpcConfig,
    ) -> Auth {
        Auth {
            chain_id,
            nodes,
            window_ms: config.request_window_ms,
            metrics_from_loopback: config.metrics_from_loopback,
            nonces: Mutex::new(Nonces::new(
                config.max_request_nonces,
                config.max_request_nonces_per_key,
            )),
        }
    }
}

/// The nonces of the last two windows, per key: a request seen once is refused again for as
/// long as its timestamp is acceptable. Bounded overall and per key (one busy key cannot
/// crowd the others out); entries leave in arrival order, timed by the monotonic clock (a
/// step of the wall clock neither keeps them forever nor forgets them early).
struct Nonces {
    seen: HashSet<(AccountId, String)>,
    /// Each entry with the moment it may be forgotten: arrival + 2 windows, later than its
    /// timestamp + one window.
    order: VecDeque<(Instant, AccountId, String)>,
    /// Entries per key.
    per_key: HashMap<AccountId, usize>,
    max: usize,
    max_per_key: usize,
}

/// Why a nonce was not accepted.
#[derive(Debug, PartialEq, Eq)]
enum NonceRefused {
    Replayed,
    KeyFull,
    Full,
}

impl Nonces {
    fn new(max: usize, max_per_key: usize) -> Nonces {
        Nonces {
            seen: HashSet::new(),
            order: VecDeque::new(),
            per_key: HashMap::new(),
            max,
            max_per_key,
        }
    }

    fn admit(
        &mut self,
        key: AccountId,
        nonce: &str,
        now: Instant,
        window: Duration,
    ) -> Result<(), NonceRefused> {
        while self.order.front().is_some_and(|(until, _, _)| *until < now) {
            if let Some((_, key, nonce)) = self.order.pop_front() {
                self.seen.remove(&(key, nonce));
                if let Some(count) = self.per_key.get_mut(&key) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.per_key.remove(&key);
                    }
                }
            }
        }
        let entry = (key, nonce.to_string());
        if self.seen.contains(&entry) {
            return Err(NonceRefused::Replayed);
        }
        if self
            .per_key
            .get(&key)
            .is_some_and(|n| *n >= self.max_per_key)
        {
            return Err(NonceRefused::KeyFull);
        }
        if self.seen.len() >= self.max {
            return Err(NonceRefused::Full);
        }
        let until = now + window.saturating_mul(2);
        self.order.push_back((until, key, entry.1.clone()));
        *self.per_key.entry(key).or_default() += 1;
        self.seen.insert(entry);
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The four headers, parsed; `None` when the request carries none of them.
struct Credentials {
    key: AccountId,
    timestamp_ms: u64,
    nonce: String,
    signature: [u8; 64],
}

fn credentials(headers: &HeaderMap) -> ApiResult<Option<Credentials>> {
    let names = [KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER];
    let values: Vec<Option<&str>> = names
        .iter()
        .map(|name| headers.get(*name).map(|v| v.to_str().unwrap_or("\u{fffd}")))
        .collect();
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let bad = |message: String| ApiError::new(Code::BadCredentials, message);
    let [Some(key), Some(timestamp), Some(nonce), Some(signature)] = values[..] else {
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        return Err(bad(format!(
            "a signed request carries all four headers; missing {}",
            missing.join(", ")
        )));
    };
    let key: AccountId = key.parse().map_err(|e| bad(format!("{KEY_HEADER}: {e}")))?;
    let timestamp_ms = super::decimal::<u64>(timestamp, 20).ok_or_else(|| {
        bad(format!(
            "{TIMESTAMP_HEADER} must be Unix milliseconds, not {timestamp:?}"
        ))
    })?;
    if !NONCE_LENGTH.contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad(format!(
            "{NONCE_HEADER} must be 16 to 64 of [0-9A-Za-z_-], not {nonce:?}"
        )));
    }
    let signature: [u8; 64] =
        interpool_contracts::primitives::from_hex_array(signature).map_err(|e| {
            bad(format!(
                "{SIGNATURE_HEADER} must be 128 hex characters: {e}"
            ))
        })?;
    Ok(Some(Credentials {
        key,
        timestamp_ms,
        nonce: nonce.to_string(),
        signature,
    }))
}

/// The layer over every route: works out the [`Caller`] of a request and hands it to the
/// handler, or answers 401 for credentials that do not hold.
pub async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|info| info.0.ip().to_canonical().is_loopback());
    match caller(&state, request, loopback).await {
        Ok((caller, mut request)) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            let reason = [
                Code::BadCredentials,
                Code::BadRequestSignature,
                Code::StaleRequest,
                Code::ReplayedRequest,
                Code::UnknownCaller,
                Code::Busy,
                Code::BodyTooLarge,
            ]
            .into_iter()
            .map(Code::as_str)
            .find(|code| *code == error.code())
            .unwrap_or("credentials");
            state.metrics.api_refused(reason, "signed requests");
            error.into_response()
        }
    }
}

async fn caller(
    state: &ApiState,
    request: Request,
    loopback: bool,
) -> ApiResult<(Caller, Request)> {
    // Reads are signed; writes are open to anyone (each carries its signed transactions),
    // so their credentials are not looked at, and their bodies are not read here.
    let read = matches!(request.method(), &Method::GET | &Method::HEAD);
    let credentials = if read {
        credentials(request.headers())?
    } else {
        None
    };
    let Some(credentials) = credentials else {
        return Ok((
            Caller {
                who: None,
                loopback,
            },
            request,
        ));
    };
    let auth = &state.auth;
    let now = now_ms();
    if credentials.timestamp_ms.abs_diff(now) > auth.window_ms {
        return Err(ApiError::new(
            Code::StaleRequest,
            format!(
                "the request was signed at {} ms, {} ms from this node's clock ({now} ms); at \
                 most {} ms either way is accepted",
                credentials.timestamp_ms,
                credentials.timestamp_ms.abs_diff(now),
                auth.window_ms
            ),
        ));
    }
    // A read has no body: whatever one carries is not looked at here (never buffered; the
    // body layer reads and discards it after the answer, `api::body`), and the signature is
    // over the empty body.
    let (parts, _) = request.into_parts();
    let body: &[u8] = &[];
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |pq| pq.as_str());
    let message = request_message(
        &auth.chain_id,
        parts.method.as_str(),
        path_and_query,
        credentials.timestamp_ms,
        &credentials.nonce,
        body,
    );
    let verified = VerifyingKey::from_bytes(&credentials.key.0).is_ok_and(|key| {
        key.verify_strict(&message, &Signature::from_bytes(&credentials.signature))
            .is_ok()
    });
    if !verified {
        return Err(ApiError::new(
            Code::BadRequestSignature,
            format!(
                "the signature does not verify for key {} over this request ({} {} on chain \
                 {})",
                credentials.key, parts.method, path_and_query, auth.chain_id
            ),
        ));
    }
    let role =
        Role::of(&credentials.key, &auth.nodes, &state.reader.view().ledger).ok_or_else(|| {
            ApiError::new(
                Code::UnknownCaller,
                format!(
                    "key {} is neither a node, an official nor an account on this chain",
                    credentials.key
                ),
            )
        })?;
    lock(&auth.nonces)
        .admit(
            credentials.key,
            &credentials.nonce,
            Instant::now(),
            Duration::from_millis(auth.window_ms),
        )
        .map_err(|refused| match refused {
            NonceRefused::Replayed => ApiError::new(
                Code::ReplayedRequest,
                format!(
                    "nonce {:?} was already used by this key; sign every request with a new one",
                    credentials.nonce
                ),
            ),
            NonceRefused::KeyFull => ApiError::rate_limited(
                "signed requests of this key",
                Duration::from_millis(auth.window_ms),
            ),
            NonceRefused::Full => ApiError::new(
                Code::Busy,
                "this node remembers its maximum of signed-request nonces; try again shortly",
            ),
        })?;
    Ok((
        Caller {
            who: Some((credentials.key, role)),
            loopback,
        },
        Request::from_parts(parts, Body::empty()),
    ))
}

/// Whether a route needs a signed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callers {
    /// Anyone: a signature, if sent, must hold, but none is needed.
    Anyone,
    /// Only signed requests (anonymous callers get 401).
    Signed,
    /// Signed requests, or anyone on the node's loopback interface (`/metrics`).
    SignedOrLoopback,
}

/// Every route's callers, for the OpenAPI document (`x-access`, its security requirement)
/// and the tests: method, path, whether it needs a signed request, and who may call it.
pub const ACCESS: &[(&str, &str, Callers, &str)] = &[
    ("get", "/v1/status", Callers::Anyone, "anyone"),
    ("get", "/v1/health", Callers::Anyone, "anyone"),
    ("get", "/v1/openapi.json", Callers::Anyone, "anyone"),
    ("post", "/v1/transactions", Callers::Anyone, "anyone (the transaction's signature is the authority)"),
    ("post", "/v1/transactions/batch", Callers::Anyone, "anyone (each transaction's signature is the authority)"),
    ("post", "/v1/iso20022/pacs.008", Callers::Anyone, "anyone (the carried transaction's signature is the authority)"),
    ("get", "/v1/transactions/{hash}", Callers::Signed, "its signer and counterparty, the operators of their banks; regulators, the authority, nodes"),
    ("get", "/v1/iso20022/pacs.002/{end_to_end_id}", Callers::Signed, "as the transaction: its parties, their banks' operators (without `debtor`, only debtors the caller may read are looked up; a transfer that is not the caller's is answered as unknown); regulators, the authority, nodes"),
    ("get", "/v1/accounts/{id}", Callers::Signed, "the account's owner and its bank's operator; regulators, the authority, nodes"),
    ("get", "/v1/accounts/{id}/transactions", Callers::Signed, "the account's owner and its bank's operator; regulators, the authority, nodes"),
    ("get", "/v1/accounts/{id}/proof", Callers::Signed, "the account's owner and its bank's operator; regulators, the authority, nodes (the certifying block goes as its header and its transactions' digest)"),
    ("get", "/v1/accounts/{id}/bank", Callers::Signed, "any caller with a role on this chain (a payer needs its payee's bank)"),
    ("get", "/v1/signers/{id}", Callers::Signed, "the signer itself and its bank's operator; regulators, the authority, nodes"),
    ("get", "/v1/banks", Callers::Signed, "bank operators (their own bank only); regulators, the authority, nodes"),
    ("get", "/v1/banks/{id}", Callers::Signed, "the bank's operator; regulators, the authority, nodes"),
    ("get", "/v1/cycles/{cycle}", Callers::Signed, "bank operators (their own bank's line, and its own gross and net as the totals); regulators, the authority, nodes"),
    ("get", "/v1/days/{day}", Callers::Signed, "bank operators (their own bank's line only); regulators, the authority, nodes"),
    ("get", "/v1/banks/{id}/statements/{cycle}", Callers::Signed, "the bank's operator; regulators, the authority, nodes"),
    ("get", "/v1/blocks/{height}", Callers::Signed, "regulators, the authority, nodes"),
    ("get", "/v1/events", Callers::Signed, "customers (their own account), bank operators (their own bank); regulators, the authority, nodes (everything)"),
    ("get", "/metrics", Callers::SignedOrLoopback, "nodes and regulators; any caller on the node's loopback interface unless `metrics_from_loopback = false`"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `pool_limit` carries how much more the receiving bank's pool can take (its pool and
    /// what it received this cycle), `cycle_limit` how much more the cycle's gross total can
    /// grow: a payer at another bank, its bank's operator and anonymous submitters get the
    /// code and a message without the amount; the receiving bank's operator (for its pool)
    /// and the all-seeing roles get the ledger's own message.
    #[test]
    fn another_banks_pool_and_the_cycles_total_are_left_out_of_a_rejection() {
        let (a, b) = (
            BankId::new("BANK_A").expect("bank"),
            BankId::new("BANK_B").expect("bank"),
        );
        let as_role = |role: Option<Role>| Caller {
            who: role.map(|role| (AccountId([3; 32]), role)),
            loopback: false,
        };
        let pool_limit = TxError::PoolLimit {
            bank: a.clone(),
            available: interpool_contracts::Amount(54_321),
        };
        let cycle_limit = TxError::CycleLimit {
            available: interpool_contracts::Amount(98_765),
        };
        // The ledger's own messages carry the amounts.
        assert!(pool_limit.to_string().contains("54321"));
        assert!(cycle_limit.to_string().contains("98765"));
        let others = [
            None,
            Some(Role::Customer(b.clone())),
            Some(Role::Customer(a.clone())),
            Some(Role::Operator(b.clone())),
        ];
        for role in others {
            let caller = as_role(role.clone());
            for (error, code, amount) in [
                (&pool_limit, "pool_limit", "54321"),
                (&cycle_limit, "cycle_limit", "98765"),
            ] {
                assert!(caller.redacted_message(error).is_some(), "{role:?} {code}");
                let shown = crate::api::error::rejection_view(error, &caller);
                let message = &shown.message;
                assert_eq!(shown.code, code, "{role:?}");
                assert!(!message.contains(amount), "{role:?}: {message}");
                assert!(!message.is_empty(), "{role:?} {code}");
            }
        }
        // The receiving bank's operator reads its own pool, not the whole cycle's total.
        let own = as_role(Some(Role::Operator(a.clone())));
        assert_eq!(
            crate::api::error::rejection_view(&pool_limit, &own),
            pool_limit.to_view()
        );
        assert!(own.redacted_message(&cycle_limit).is_some());
        for role in [Role::Regulator, Role::Authority, Role::Node] {
            let caller = as_role(Some(role.clone()));
            for error in [&pool_limit, &cycle_limit] {
                let shown = crate::api::error::rejection_view(error, &caller);
                assert_eq!(shown, error.to_view(), "{role:?}");
            }
        }
        // Other rejections are shown as they are, to anyone.
        let funds = TxError::InsufficientFunds {
            available: interpool_contracts::Amount(40_000),
            needed: interpool_contracts::Amount(60_000),
        };
        assert_eq!(
            crate::api::error::rejection_view(&funds, &Caller::default()),
            funds.to_view()
        );
    }

    #[test]
    fn a_nonce_is_refused_again_within_two_windows_and_forgotten_after() {
        let (key, other) = (AccountId([7; 32]), AccountId([8; 32]));
        let nonce = |c: char| c.to_string().repeat(16);
        let window = Duration::from_millis(100);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut nonces = Nonces::new(4, 2);
        assert_eq!(nonces.admit(key, &nonce('a'), at(0), window), Ok(()));
        assert_eq!(
            nonces.admit(key, &nonce('a'), at(150), window),
            Err(NonceRefused::Replayed)
        );
        // Still refused at exactly two windows: its timestamp may still be acceptable.
        assert_eq!(
            nonces.admit(key, &nonce('a'), at(200), window),
            Err(NonceRefused::Replayed)
        );
        // Another key may use the same nonce.
        assert_eq!(nonces.admit(other, &nonce('a'), at(150), window), Ok(()));
        // One key may hold only its share.
        assert_eq!(nonces.admit(key, &nonce('b'), at(160), window), Ok(()));
        assert_eq!(
            nonces.admit(key, &nonce('c'), at(170), window),
            Err(NonceRefused::KeyFull)
        );
        assert_eq!(nonces.admit(other, &nonce('b'), at(170), window), Ok(()));
        assert_eq!(
            nonces.admit(AccountId([9; 32]), &nonce('a'), at(170), window),
            Err(NonceRefused::Full)
        );
        // After two windows the first entry is gone: room again, and the nonce is new.
        assert_eq!(nonces.admit(key, &nonce('a'), at(201), window), Ok(()));
        assert_eq!(nonces.seen.len(), 4);
        assert_eq!(nonces.per_key[&key], 2);
    }
}
