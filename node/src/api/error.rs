//! Every error the API answers: one code type ([`Code`]) with its HTTP status, plus the
//! ledger's rejections ([`TxError`]) and the admission errors ([`AdmissionError`]), which
//! carry their own stable codes from `interpool-contracts` (the wallet parses those back).
//!
//! The body is always `{"error": {"code": "...", "message": "..."}}`.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use interpool_contracts::{AdmissionCode, AdmissionError, ErrorView, TxError};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use crate::app::view::Busy;

/// The API's own error codes (not the ledger's or admission's), each with one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: the body could not be read.
    BadBody,
    /// 413: the body is over the node's limit.
    BodyTooLarge,
    /// 400: the body is not the JSON the route takes.
    BadJson,
    /// 400: a hex string is malformed.
    BadHex,
    /// 400: bytes that are not a transaction's canonical encoding.
    MalformedTransaction,
    /// 400: more transactions than one batch may hold (the document's `maxItems`).
    BatchTooLarge,
    /// 415: a content type the route does not take.
    UnsupportedMediaType,
    /// 400: an unknown or malformed query parameter.
    BadQuery,
    /// 400: a malformed account id.
    BadAccountId,
    /// 400: a malformed bank id.
    BadBankId,
    /// 400: a malformed transaction hash.
    BadHash,
    /// 400: a malformed height.
    BadHeight,
    /// 400: a malformed cycle number.
    BadCycle,
    /// 400: a malformed business day number.
    BadDay,
    /// 400: a page size out of range.
    BadLimit,
    /// 400: a malformed cursor.
    BadCursor,
    /// 403: an observer refuses writes.
    ReadOnly,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists but does not take this method.
    MethodNotAllowed,
    /// 404: no such account.
    UnknownAccount,
    /// 404: no such bank.
    UnknownBank,
    /// 404: no such block yet.
    UnknownBlock,
    /// 404: no such closed cycle.
    UnknownCycle,
    /// 404: no such closed business day.
    UnknownDay,
    /// 404: neither an account nor an official key.
    UnknownSigner,
    /// 410: the block was pruned from this node (`[storage] retain_blocks`).
    Pruned,
    /// 429: this client is over its rate for this kind of request.
    RateLimited,
    /// 503: the block that certifies the state did not commit in time.
    NotCertifiedYet,
    /// 503: the node serves its maximum number of event streams.
    TooManyStreams,
    /// 503: the node serves its maximum number of expensive reads right now.
    Busy,
    /// 503: the node cannot serve the request (its storage failed).
    Unavailable,
    /// 503: the cycle has just closed; its statements are being written.
    StatementPending,
    /// 404: this node does not hold the cycle's blocks, so it has no statement of it.
    StatementUnavailable,
    /// 400: the body is not well-formed XML (or declares a DTD).
    BadXml,
    /// 400: another ISO 20022 message, namespace or version than the route takes.
    UnsupportedMessage,
    /// 400: an element of the message is missing or invalid.
    InvalidMessage,
    /// 422: the message's fields disagree with the signed transaction it carries.
    MessageMismatch,
    /// 422: an amount the ISO 20022 document must carry is more than its XSD type holds
    /// (more than 5 significant fraction digits, or more than 18 significant digits): no
    /// schema-valid document exists; the JSON form has every amount.
    AmountNotRepresentable,
    /// 400: a malformed end-to-end id.
    BadEndToEndId,
    /// 404: no transfer with that end-to-end id on this node.
    UnknownEndToEndId,
    /// 409: several debtors used that end-to-end id.
    AmbiguousEndToEndId,
    /// 401: the route needs a signed request (who is calling?).
    Unauthenticated,
    /// 401: some but not all of the signed-request headers, or a malformed one.
    BadCredentials,
    /// 401: the request's signature does not verify.
    BadRequestSignature,
    /// 401: the request's timestamp is outside the node's window.
    StaleRequest,
    /// 401: the request's nonce was already used by this key.
    ReplayedRequest,
    /// 401: a valid signature by a key with no role on this chain.
    UnknownCaller,
    /// 403: the caller is known but may not read this.
    Forbidden,
}

impl Code {
    /// The stable code string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BadBody => "bad_body",
            Code::BodyTooLarge => "body_too_large",
            Code::BadJson => "bad_json",
            Code::BadHex => "bad_hex",
            Code::MalformedTransaction => "malformed_transaction",
            Code::BatchTooLarge => "batch_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::BadQuery => "bad_query",
            Code::BadAccountId => "bad_account_id",
            Code::BadBankId => "bad_bank_id",
            Code::BadHash => "bad_hash",
            Code::BadHeight => "bad_height",
            Code::BadCycle => "bad_cycle",
            Code::BadDay => "bad_day",
            Code::BadLimit => "bad_limit",
            Code::BadCursor => "bad_cursor",
            Code::ReadOnly => "read_only",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::UnknownAccount => "unknown_account",
            Code::UnknownBank => "unknown_bank",
            Code::UnknownBlock => "unknown_block",
            Code::UnknownCycle => "unknown_cycle",
            Code::UnknownDay => "unknown_day",
            Code::UnknownSigner => "unknown_signer",
            Code::Pruned => "pruned",
            Code::RateLimited => "rate_limited",
            Code::NotCertifiedYet => "not_certified_yet",
            Code::TooManyStreams => "too_many_streams",
            Code::Busy => "busy",
            Code::Unavailable => "unavailable",
            Code::StatementPending => "statement_pending",
            Code::StatementUnavailable => "statement_unavailable",
            Code::BadXml => "bad_xml",
            Code::UnsupportedMessage => "unsupported_message",
            Code::InvalidMessage => "invalid_message",
            Code::MessageMismatch => "message_mismatch",
            Code::AmountNotRepresentable => "amount_not_representable",
            Code::BadEndToEndId => "bad_end_to_end_id",
            Code::UnknownEndToEndId => "unknown_end_to_end_id",
            Code::AmbiguousEndToEndId => "ambiguous_end_to_end_id",
            Code::Unauthenticated => "unauthenticated",
            Code::BadCredentials => "bad_credentials",
            Code::BadRequestSignature => "bad_request_signature",
            Code::StaleRequest => "stale_request",
            Code::ReplayedRequest => "replayed_request",
            Code::UnknownCaller => "unknown_caller",
            Code::Forbidden => "forbidden",
        }
    }

    /// The status the code is answered with.
    pub const fn status(self) -> StatusCode {
        match self {
            Code::BadBody
            | Code::BadJson
            | Code::BadHex
            | Code::MalformedTransaction
            | Code::BadQuery
            | Code::BadAccountId
            | Code::BadBankId
            | Code::BadHash
            | Code::BadHeight
            | Code::BadCycle
            | Code::BadDay
            | Code::BadLimit
            | Code::BadCursor
            | Code::BatchTooLarge
            | Code::BadXml
            | Code::UnsupportedMessage
            | Code::InvalidMessage
            | Code::BadEndToEndId => StatusCode::BAD_REQUEST,
            Code::MessageMismatch | Code::AmountNotRepresentable => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Code::AmbiguousEndToEndId => StatusCode::CONFLICT,
            Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::ReadOnly | Code::Forbidden => StatusCode::FORBIDDEN,
            Code::Unauthenticated
            | Code::BadCredentials
            | Code::BadRequestSignature
            | Code::StaleRequest
            | Code::ReplayedRequest
            | Code::UnknownCaller => StatusCode::UNAUTHORIZED,
            Code::NotFound
            | Code::UnknownAccount
            | Code::UnknownBank
            | Code::UnknownBlock
            | Code::UnknownCycle
            | Code::UnknownDay
            | Code::UnknownSigner
            | Code::StatementUnavailable
            | Code::UnknownEndToEndId => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Pruned => StatusCode::GONE,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::NotCertifiedYet
            | Code::TooManyStreams
            | Code::Busy
            | Code::Unavailable
            | Code::StatementPending => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The status of an admission error: a ledger rejection is 400 when found without state
/// (the transaction can never be valid) and 422 against the state; the rest by code.
pub fn admission_status(error: &AdmissionError) -> StatusCode {
    match error {
        AdmissionError::Rejected(error) => tx_status(error),
        other => match other.admission_code() {
            Some(AdmissionCode::TooManyPending) => StatusCode::TOO_MANY_REQUESTS,
            Some(AdmissionCode::MempoolFull | AdmissionCode::Unavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::CONFLICT,
        },
    }
}

fn tx_status(error: &TxError) -> StatusCode {
    if error.is_stateless() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// Ledger rejection `error` as `caller` is told it: its code, and its message unless that
/// carries amounts the caller may not read ([`Caller::redacted_message`]: `pool_limit`,
/// `cycle_limit`), which is then replaced by one without them. Every route that renders a
/// rejection's code and message goes through here: the answers to `POST /v1/transactions`,
/// its batch and pacs.008 (anonymous: `Caller::default()`), pacs.002 status reports, and a
/// rejected transaction's `rejection` in `GET /v1/transactions/{hash}`, the account history
/// and the event stream's `rejected` event (`transactions::shown_of_rejection`).
pub(crate) fn rejection_view(error: &TxError, caller: &Caller) -> ErrorView {
    match caller.redacted_message(error) {
        Some(message) => ErrorView {
            code: error.code().to_string(),
            message: message.to_string(),
        },
        None => error.to_view(),
    }
}

/// An API error: status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) view: ErrorView,
    /// For 429 and 503: when to come back (`Retry-After`, whole seconds; 1 if not set).
    retry_after_seconds: Option<u64>,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`. The responses of the
/// OpenAPI document name the codes each route answers with.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// A stable machine-readable code and a human-readable message.
    pub(crate) error: &'a ErrorView,
}

impl ApiError {
    /// An error with one of the API's own codes.
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            view: ErrorView {
                code: code.as_str().into(),
                message: message.into(),
            },
            retry_after_seconds: None,
        }
    }

    /// A client over its rate for `kind` of request; it may come back after `wait`.
    pub(crate) fn rate_limited(kind: &str, wait: std::time::Duration) -> Self {
        // Whole seconds, rounded up, so that a client that waits as told is served.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut error = Self::new(
            Code::RateLimited,
            format!(
                "this client is over its rate of {kind}; try again in {} ms",
                wait.as_millis().max(1)
            ),
        );
        error.retry_after_seconds = Some(seconds.max(1));
        error
    }

    /// This error with a `Retry-After` of `seconds` (at least 1).
    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds.max(1));
        self
    }

    /// A transaction the node did not admit. Writes are anonymous, so a ledger rejection is
    /// told as anyone may be told it ([`rejection_view`]).
    pub(crate) fn admission(error: &AdmissionError) -> Self {
        let view = match error {
            AdmissionError::Rejected(error) => rejection_view(error, &Caller::default()),
            other => other.to_view(),
        };
        Self {
            status: admission_status(error),
            view,
            retry_after_seconds: None,
        }
    }

    /// A body axum could not read.
    pub(crate) fn body(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(Code::BodyTooLarge, rejection.body_text())
        } else {
            Self::new(Code::BadBody, rejection.body_text())
        }
    }

    /// Writes refused by an observer.
    pub(crate) fn read_only() -> Self {
        Self::new(
            Code::ReadOnly,
            "this node is an observer: it is read-only; submit transactions to a validator",
        )
    }

    /// The node's own failure (storage), not the client's: said honestly, as 503.
    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(Code::Unavailable, message.to_string())
    }

    /// An expensive read refused at its concurrency limit.
    pub(crate) fn busy(busy: Busy) -> Self {
        Self::new(
            Code::Busy,
            format!(
                "this node is serving its maximum of {} expensive reads; try again shortly",
                busy.limit
            ),
        )
    }

    /// The code string (for tests and logs).
    pub fn code(&self) -> &str {
        &self.view.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: &self.view })).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            // Overload is brief; a client should come back, not hammer.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(self.retry_after_seconds.unwrap_or(1)),
            );
        }
        response
    }
}

/// What every handler returns.
pub type ApiResult<T> = Result<T, ApiError>;
