//! Statements: `GET /v1/banks/{id}/statements/{cycle}`, a bank's statement of a closed cycle
//! as JSON or, with `Accept: application/xml`, as an ISO 20022 camt.053.001.08; and the
//! booked entries of one block, for the camt.054 event stream.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use interpool_contracts::iso20022::camt::{camt053, camt054, Owner};
use interpool_contracts::iso20022::IsoError;
use interpool_contracts::statement::{BankStatementView, CycleBooks, Entry};
use interpool_contracts::{BankId, Block, BlockOutcome, Ledger};

use super::limits::{ExpensiveReads, WithinRate};
use super::{parse_number, ApiError, ApiResult, ApiState, Code, ErrorBody};
use crate::app::statements::queued_transaction;
use crate::storage::Store;

/// The media type of ISO 20022 documents.
pub(crate) const XML: &str = "application/xml";

/// True if the client asks for XML (`application/xml` or `text/xml`) and not for JSON.
pub(crate) fn wants_xml(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    (accept.contains("application/xml") || accept.contains("text/xml"))
        && !accept.contains("application/json")
}

/// An XML answer.
pub(crate) fn xml_response(status: axum::http::StatusCode, xml: String) -> Response {
    (status, [(CONTENT_TYPE, XML)], xml).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/banks/{id}/statements/{cycle}",
    summary = "A bank's statement of a closed cycle (JSON, or ISO 20022 camt.053)",
    description = "The bank's pool and each of its customer accounts that moved in the \
        cycle: opening booked balance (balance + reserved), every booked entry in chain \
        order (with end-to-end id, reference, counterparty and height), closing booked \
        balance, which is what the chain holds at the cycle's last height; accounts that did \
        not move are counted, not listed. With `Accept: application/xml` the same as one \
        camt.053.001.08 document (a `Stmt` for the pool, then one per account; an account \
        is `Othr/Id` = the first 32 hex digits of its id and `Prxy/Id` = the whole id). \
        Every node that holds the cycle's blocks serves the same statement.",
    tag = "banks",
    params(
        ("id" = inline(BankId), Path, description = "The bank id"),
        ("cycle" = String, Path, pattern = "^([0-9]{1,19}|latest)$",
            description = "A closed cycle's number or `latest`"),
    ),
    responses(
        (status = 200, description = "The statement", content(
            (BankStatementView = "application/json"),
            (String = "application/xml"))),
        (status = 400, description = "`bad_bank_id` or `bad_cycle`", body = ErrorBody),
        (status = 404, description = "`unknown_bank`, `unknown_cycle` (not closed yet) or \
            `statement_unavailable` (this node does not hold the cycle's blocks: it joined \
            by state sync after the cycle began, or pruned them)", body = ErrorBody),
        (status = 422, description = "`amount_not_representable` (XML only): an amount, \
            balance or sum of the statement is more than an ISO 20022 amount holds (more \
            than 5 significant fraction digits, on a chain with more decimals, or more than \
            18 significant digits), so no schema-valid camt.053 exists; the JSON statement \
            has it", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of \
            expensive reads", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`statement_pending` (the cycle has just closed and \
            its statements are being written; retry), `busy` or `unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn statement(
    _rate: WithinRate<ExpensiveReads>,
    caller: super::auth::Caller,
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let Path((id, cycle)) = path.map_err(|e| {
        // Which segment failed (only one that is not UTF-8 can): the cycle's is `bad_cycle`.
        let code = match &e {
            PathRejection::FailedToDeserializePathParams(failed)
                if matches!(
                    failed.kind(),
                    axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } if key == "cycle"
                ) =>
            {
                Code::BadCycle
            }
            _ => Code::BadBankId,
        };
        ApiError::new(code, e.body_text())
    })?;
    let bank: BankId = id
        .parse()
        .map_err(|e| ApiError::new(Code::BadBankId, format!("bank id: {e}")))?;
    let wanted = parse_number(&cycle, Code::BadCycle, "cycle")?;
    caller.may_read_bank(&bank)?;
    let view = state.reader.view();
    let ledger = &view.ledger;
    if ledger.bank(&bank).is_none() {
        return Err(ApiError::new(Code::UnknownBank, format!("no bank {bank}")));
    }
    let open = ledger.current_cycle();
    let cycle = match wanted {
        Some(n) if n >= 1 && n < open => n,
        Some(n) => {
            return Err(ApiError::new(
                Code::UnknownCycle,
                format!("cycle {n} has not closed (cycle {open} is open)"),
            ))
        }
        None if open > 1 => open - 1,
        None => {
            return Err(ApiError::new(
                Code::UnknownCycle,
                format!("no cycle has closed yet (cycle {open} is open)"),
            ))
        }
    };
    let lookup = bank.clone();
    let stored = state
        .read_expensive(move |store| store.statement(cycle, &lookup))
        .await?
        .map_err(ApiError::internal)?;
    let Some(statement) = stored else {
        let handled = state.statements.as_ref().map(|p| p.handled()).unwrap_or(0);
        return Err(if handled < cycle {
            ApiError::new(
                Code::StatementPending,
                format!("cycle {cycle} has just closed; its statements are being written"),
            )
        } else {
            ApiError::new(
                Code::StatementUnavailable,
                format!(
                    "this node holds no statement of cycle {cycle}: it does not hold the \
                     cycle's blocks (it joined by state sync after the cycle began, or pruned \
                     them); ask a node that does"
                ),
            )
        });
    };
    if wants_xml(&headers) {
        let xml = camt053(&statement, &state.currency, state.decimals).map_err(|e| match e {
            IsoError::AmountNotRepresentable { .. } => ApiError::new(
                Code::AmountNotRepresentable,
                format!("{e}; the JSON statement (Accept: application/json) has every amount"),
            ),
            other => super::iso20022::iso_error(other),
        })?;
        return Ok(xml_response(axum::http::StatusCode::OK, xml));
    }
    Ok(Json(BankStatementView::new(
        &statement,
        &state.currency,
        state.decimals,
    ))
    .into_response())
}

/// Which events (or camt.054 notifications) a stream sends: with neither, all; with both,
/// those that pass both.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotificationFilter {
    /// Only one customer account's.
    pub(crate) account: Option<interpool_contracts::AccountId>,
    /// Only one bank's (its pool's and its customers').
    pub(crate) bank: Option<BankId>,
}

/// The camt.054 notifications of one block's booked entries that pass `filter`, each with
/// its index among all of the block's entries (customer entries, then pool entries, in the
/// order of their positions in the block: the same for every filter, so a cursor
/// `height:index` means the same entry to every client). `ledger` (any recent one) gives
/// the accounts' banks.
pub(crate) fn block_notifications(
    store: &Store,
    block: &Block,
    outcome: &BlockOutcome,
    ledger: &Ledger,
    filter: &NotificationFilter,
    currency: &str,
    decimals: u8,
) -> Vec<(u32, String)> {
    let mut books = CycleBooks::new(0, block.header.height, None);
    let released = |hash: &_| queued_transaction(store, block, hash).ok().flatten();
    if let Err(error) = books.add_block(block, outcome, released) {
        // A released transfer's block pruned from this node: its entries cannot be told.
        tracing::warn!(
            height = block.header.height,
            %error,
            "no camt.054 notifications for this block"
        );
        return Vec::new();
    }
    let (accounts, pools) = books.into_entries();
    let mut all: Vec<(Option<interpool_contracts::AccountId>, BankId, Entry)> = Vec::new();
    for (id, mut entry) in accounts {
        let Some(bank) = ledger.account(&id).map(|a| a.bank.clone()) else {
            continue;
        };
        entry.counterparty_bank = entry
            .counterparty
            .and_then(|c| ledger.account(&c))
            .map(|a| a.bank.clone());
        all.push((Some(id), bank, entry));
    }
    all.extend(pools.into_iter().map(|(bank, entry)| (None, bank, entry)));
    all.sort_by_key(|(_, _, entry)| entry.position);
    all.into_iter()
        .enumerate()
        .filter(|(_, (account, bank, _))| {
            filter
                .account
                .is_none_or(|wanted| account.as_ref() == Some(&wanted))
                && filter.bank.as_ref().is_none_or(|wanted| wanted == bank)
        })
        .filter_map(|(index, (account, bank, entry))| {
            let owner = match &account {
                Some(id) => Owner::Customer(id, &bank),
                None => Owner::Pool(&bank),
            };
            let xml = match camt054(owner, &entry, currency, decimals) {
                Ok(xml) => xml,
                Err(error) => {
                    // No notification rather than one a bank's schema validation refuses
                    // (an amount ISO 20022 cannot hold); the entry keeps its index, so a
                    // cursor still means the same entry, and the JSON events carry it.
                    // Debug, not warn: every stream meets every such entry of every block.
                    tracing::debug!(
                        height = entry.height,
                        position = entry.position,
                        %error,
                        "no camt.054 notification for this entry"
                    );
                    return None;
                }
            };
            Some((u32::try_from(index).unwrap_or(u32::MAX), xml))
        })
        .collect()
}
