//! Banks and settlement cycles: `GET /v1/banks`, `GET /v1/banks/{id}`,
//! `GET /v1/cycles/{cycle}`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use interpool_contracts::outcome::DayReport;
use interpool_contracts::views::{BankView, CycleView};
use interpool_contracts::BankId;

use super::auth::Caller;
use super::{parse_number, path_text, ApiError, ApiResult, ApiState, Code, ErrorBody};

#[utoipa::path(
    get,
    path = "/v1/banks",
    summary = "Every member bank",
    tag = "banks",
    responses((status = 200, description = "Every member bank, by id", body = Vec<BankView>))
)]
pub(crate) async fn banks(
    caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<BankView>>> {
    let only = caller.banks_visible("the list of banks")?;
    let view = state.reader.view();
    let ledger = &view.ledger;
    Ok(Json(
        ledger
            .banks()
            .filter(|(id, _)| only.as_ref().is_none_or(|own| own == *id))
            .map(|(id, bank)| {
                BankView::new(id.clone(), bank, ledger.queue(id).count(), state.decimals)
            })
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/banks/{id}",
    summary = "A member bank's pool, cap, position and queue",
    tag = "banks",
    params(("id" = inline(BankId), Path, description = "The bank id")),
    responses(
        (status = 200, description = "The bank's pool, cap, position and queue", body = BankView),
        (status = 400, description = "`bad_bank_id`", body = ErrorBody),
        (status = 404, description = "`unknown_bank`", body = ErrorBody),
    )
)]
pub(crate) async fn bank(
    caller: Caller,
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<BankView>> {
    let id: BankId = path_text(id, Code::BadBankId, "bank id")?
        .parse()
        .map_err(|e| ApiError::new(Code::BadBankId, format!("bank id: {e}")))?;
    caller.may_read_bank(&id)?;
    let view = state.reader.view();
    let ledger = &view.ledger;
    let bank = ledger
        .bank(&id)
        .ok_or_else(|| ApiError::new(Code::UnknownBank, format!("no bank {id}")))?;
    Ok(Json(BankView::new(
        id.clone(),
        bank,
        ledger.queue(&id).count(),
        state.decimals,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/cycles/{cycle}",
    summary = "A closed settlement cycle's report",
    tag = "blocks",
    params(("cycle" = String, Path, pattern = "^([0-9]{1,19}|latest)$",
        description = "A cycle number (the first is 1) or `latest` for the last closed cycle")),
    responses(
        (status = 200, description = "The closed cycle's settlement report", body = CycleView),
        (status = 400, description = "`bad_cycle`", body = ErrorBody),
        (status = 404, description = "`unknown_cycle`: not closed yet, or no report",
            body = ErrorBody),
    )
)]
pub(crate) async fn cycle(
    caller: Caller,
    State(state): State<ApiState>,
    cycle: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<CycleView>> {
    let cycle = path_text(cycle, Code::BadCycle, "cycle")?;
    let wanted = parse_number(&cycle, Code::BadCycle, "cycle")?;
    let only = caller.banks_visible("a cycle's report")?;
    let view = state.reader.view();
    let ledger = &view.ledger;
    let report = match wanted {
        Some(n) => ledger.settlement_report(n),
        None => ledger.latest_settlement_report(),
    };
    let report = report.ok_or_else(|| {
        let open = ledger.current_cycle();
        ApiError::new(
            Code::UnknownCycle,
            match wanted {
                Some(n) if n >= open => format!("cycle {n} has not closed (cycle {open} is open)"),
                Some(n) => format!("no report for cycle {n}"),
                None => format!("no cycle has closed yet (cycle {open} is open)"),
            },
        )
    })?;
    let mut report = CycleView::new(report, state.decimals);
    if let Some(own) = only {
        cut_cycle(&mut report, &own, state.decimals);
    }
    Ok(Json(report))
}

/// A cycle report as bank `own`'s operator sees it: its own line, and as totals its own
/// gross (what it sent) and net movement, never the network's (with few banks, those would
/// tell the others' flows).
pub(crate) fn cut_cycle(report: &mut CycleView, own: &BankId, decimals: u8) {
    report.banks.retain(|line| line.bank == *own);
    let zero = interpool_contracts::Amount(0).format(decimals);
    let line = report.banks.first();
    report.gross_total = line.map_or(zero.clone(), |line| line.sent.clone());
    report.net_total = line.map_or(zero, |line| line.net.trim_start_matches('-').to_string());
}

#[utoipa::path(
    get,
    path = "/v1/days/{day}",
    summary = "A closed business day's report",
    tag = "blocks",
    params(("day" = String, Path, pattern = "^([0-9]{1,19}|latest)$",
        description = "A business day number (the first is 1) or `latest` for the last closed day")),
    responses(
        (status = 200, description = "The day's report: per bank, the settled count and \
            value, the queue's peak, what the customer cut-off rejected, the longest queue \
            wait (values in minor units)", body = DayReport),
        (status = 400, description = "`bad_day`", body = ErrorBody),
        (status = 404, description = "`unknown_day`: not closed yet, or the chain has no \
            business-day calendar", body = ErrorBody),
    )
)]
pub(crate) async fn day(
    caller: Caller,
    State(state): State<ApiState>,
    day: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DayReport>> {
    let day = path_text(day, Code::BadDay, "day")?;
    let wanted = parse_number(&day, Code::BadDay, "day")?;
    let only = caller.banks_visible("a business day's report")?;
    let view = state.reader.view();
    let ledger = &view.ledger;
    let report = match wanted {
        Some(n) => ledger.day_report(n),
        None => ledger.day_reports().next_back(),
    };
    let report = report.ok_or_else(|| {
        let message = match (ledger.params().business_day, wanted) {
            (None, _) => "this chain has no business-day calendar".to_string(),
            (Some(_), Some(n)) => format!(
                "business day {n} has not closed (day {} is open)",
                ledger.business_day().0
            ),
            (Some(_), None) => "no business day has closed yet".to_string(),
        };
        ApiError::new(Code::UnknownDay, message)
    })?;
    let mut report = report.clone();
    // An operator sees its own bank's line.
    if let Some(own) = only {
        report.banks.retain(|line| line.bank == own);
    }
    Ok(Json(report))
}
