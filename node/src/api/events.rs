//! `GET /v1/events`: Server-Sent Events of what committed blocks did (transactions,
//! queue releases and expiries, cycle closes), optionally only those concerning one account.
//!
//! Every event has the cursor `height:index` as its SSE id (`index` counts the events of
//! one block, see [`EventView::of_block`]). A client that reconnects with `Last-Event-ID`
//! (or `?after=`) gets every later event exactly once: events are always read from the
//! store in height order, so there is no gap and no duplicate, across node restarts too;
//! the commit announcements only wake the stream up.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use interpool_contracts::views::EventView;
use interpool_contracts::{AccountId, BankId};
use serde::Deserialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::blocks::stored_block;
use super::limits::{ExpensiveReads, WithinRate};
use super::statements::{block_notifications, NotificationFilter};
use super::{parse_account, parse_cursor, ApiError, ApiResult, ApiState, Code, CURSOR_PATTERN};
use crate::storage::Store;

/// Pieces of the body buffered per client before the stream waits for it to read.
const CLIENT_BUFFER: usize = 8;

/// A piece of the body holds about this many bytes of events at most (and a block's events
/// are sent together, whatever their count): one body frame per event cost the node a
/// frame, and a client a wake-up, for every transaction.
const PIECE_BYTES: usize = 64 * 1024;

/// After this long without events a comment line (`:`) is sent, so that the client and
/// anything between see the connection alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The comment line sent to keep the stream alive.
const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// Blocks below the tip whose events [`RecentEvents`] keeps decoded.
const RECENT_BLOCKS: u64 = 4;

/// The events of the last [`RECENT_BLOCKS`] blocks, decoded once for every stream that
/// reads them. Each stream used to read, decode and turn into events every block itself,
/// and render each event in JSON, so that 64 streams following the tip cost a validator
/// more than the transfers did (issue 12, `READ_LOAD=1 scripts/bench.sh --validators 1
/// --rate max`: 121 µs of validator CPU a transfer, 4,694 transfers/s, p99 5.4 s; shared,
/// 58 µs, 6,736/s, p99 0.9 s). Streams that see everything, in JSON, send the same bytes
/// ([`BlockEvents::everything`]); the others select from the shared events. A stream
/// replaying older blocks decodes them itself, without evicting the tip's. Four blocks
/// (each up to a few MB decoded and rendered at full load) cover the streams that keep up;
/// eight took a validator under that read load from 506 to 554 MiB of peak memory.
#[derive(Debug, Default)]
pub struct RecentEvents {
    blocks: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<BlockEvents>>>,
}

/// One committed block's events.
#[derive(Debug)]
pub(crate) struct BlockEvents {
    height: u64,
    block: interpool_contracts::Block,
    outcome: interpool_contracts::outcome::BlockOutcome,
    /// [`EventView::of_block`].
    views: Vec<EventView>,
    everything: std::sync::OnceLock<Rendered>,
}

/// A block's events as a stream sends them, and where each ends in `bytes`.
#[derive(Debug)]
struct Rendered {
    bytes: Bytes,
    /// Each event's index and end offset, in order.
    ends: Vec<(u32, usize)>,
}

impl RecentEvents {
    /// Block `height`'s events (`None`: not committed yet), decoded once if the block is
    /// among the last [`RECENT_BLOCKS`] below `tip`. A blocking read.
    fn of_block(
        &self,
        store: &Store,
        height: u64,
        tip: u64,
        decimals: u8,
    ) -> ApiResult<Option<Arc<BlockEvents>>> {
        if let Some(found) = self.lock().get(&height) {
            return Ok(Some(found.clone()));
        }
        let Some(stored) = stored_block(store, height)? else {
            return Ok(None);
        };
        let events = Arc::new(BlockEvents {
            height,
            views: EventView::of_block(&stored.block, &stored.outcome, decimals),
            block: stored.block,
            outcome: stored.outcome,
            everything: std::sync::OnceLock::new(),
        });
        if height.saturating_add(RECENT_BLOCKS) <= tip {
            return Ok(Some(events));
        }
        let mut blocks = self.lock();
        let events = blocks.entry(height).or_insert(events).clone();
        while blocks.len() > RECENT_BLOCKS as usize {
            blocks.pop_first();
        }
        Ok(Some(events))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<BlockEvents>>> {
        self.blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl BlockEvents {
    /// Every event of the block in JSON, as a stream that sees everything sends them
    /// (rendered by the first such stream).
    fn everything(&self) -> &Rendered {
        self.everything.get_or_init(|| {
            Rendered::of(
                self.height,
                (0..).zip(&self.views).filter_map(|(index, event)| {
                    let data = serde_json::to_string(event).ok()?;
                    Some((index, kind(event), data))
                }),
            )
        })
    }
}

impl Rendered {
    /// `events` of block `height` as a stream sends them.
    fn of(height: u64, events: impl IntoIterator<Item = Outgoing>) -> Rendered {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for (index, name, data) in events {
            write_event(&mut bytes, (height, index), name, &data);
            ends.push((index, bytes.len()));
        }
        Rendered {
            bytes: bytes.into(),
            ends,
        }
    }
}

/// What a stream sends of one block.
enum Events {
    /// [`BlockEvents::everything`].
    Everything(Arc<BlockEvents>),
    /// Its own selection.
    Own(Rendered),
}

/// `GET /v1/events` query (unknown parameters are answered 400).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events concerning this account.
    #[param(value_type = Option<AccountId>, inline)]
    account: Option<String>,
    /// Resume after this cursor (`height:index`), like `Last-Event-ID`.
    #[param(pattern = "^[0-9]{1,19}:[0-9]{1,9}$")]
    after: Option<String>,
    /// `json` (the default): one event per thing a block did. `camt054`: one ISO 20022
    /// camt.054.001.08 notification (XML, event `camt054`) per booked entry (customer
    /// accounts' and pools'), its cursor `height:index` counting the block's entries.
    #[param(pattern = "^(json|camt054)$")]
    format: Option<String>,
    /// Only what concerns this bank: its customers' and operator's transactions, transfers
    /// queued from or to it, cycle closes (every bank is in the report); with
    /// `format=camt054`, its pool's and customers' entries. With `account`, both must hold.
    #[param(value_type = Option<BankId>, inline)]
    bank: Option<String>,
}

/// The body of `GET /v1/events`, for the OpenAPI document: an SSE stream whose events each
/// carry one JSON [`EventView`]. OpenAPI 3.1 has no way to type the items of a stream, so,
/// as tools that read 3.1 documents do (Schemathesis among them), the schema describes one
/// event: its `id`, `event` and `data` fields, `data` being JSON of schema [`EventView`]
/// (OpenAPI 3.2 would call this the `itemSchema`). [`ToSchema::schemas`] puts
/// [`EventView`] in the document's components.
pub struct EventStream;

/// Every event's `event` field (see [`kind`]).
const EVENT_KINDS: [&str; 9] = [
    "transaction",
    "rejected",
    "released",
    "expired",
    "cycle_closed",
    "dropped",
    "reject_warning",
    "gridlock_resolved",
    "day_closed",
];
/// Every event's `event` field, with `format=camt054`'s.
const ALL_EVENT_KINDS: [&str; 10] = [
    "transaction",
    "rejected",
    "released",
    "expired",
    "cycle_closed",
    "dropped",
    "reject_warning",
    "gridlock_resolved",
    "day_closed",
    "camt054",
];

impl PartialSchema for EventStream {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "One Server-Sent Event of the stream (the body is a stream of them, one for \
                 each thing a committed block did, in chain order; comment lines keep the \
                 connection alive). `id`: its cursor `height:index` (send it back as \
                 `Last-Event-ID` or `?after=` to resume exactly after it); `event`: its \
                 kind; `data`: one JSON object of schema `EventView`, whose `kind` is the \
                 same. With `format=camt054`, `event` is `camt054` and `data` one ISO 20022 \
                 camt.054.001.08 document (XML, over several `data:` lines).",
            ))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(CURSOR_PATTERN)),
            )
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(ALL_EVENT_KINDS)),
            )
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .content_schema(Some(Ref::from_schema_name(EventView::name()))),
            )
            .required("id")
            .required("event")
            .required("data")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for EventStream {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("EventStream")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EventView::name().into(), EventView::schema()));
        EventView::schemas(schemas);
    }
}

/// Where a stream starts: the first height to read, and the last event already seen there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start {
    height: u64,
    seen_through: Option<u32>,
}

/// The SSE handler.
#[utoipa::path(
    get,
    path = "/v1/events",
    summary = "Server-Sent Events of what committed blocks did",
    tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false,
            pattern = "^[0-9]{1,19}:[0-9]{1,9}$", example = "100:0",
            description = "Resume after this cursor (`height:index`); `?after=` wins over it"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events, from the cursor on or, without one, \
            from the next block on; the stream stays open", body = EventStream,
            content_type = "text/event-stream"),
        (status = 400, description = "`bad_query`, `bad_account_id`, `bad_bank_id` or \
            `bad_cursor`", body = crate::api::ErrorBody),
        (status = 404, description = "`unknown_bank`", body = crate::api::ErrorBody),
        (status = 410, description = "`pruned`: the cursor is below the blocks this node \
            keeps (`earliest_height` in /v1/status)", body = crate::api::ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of \
            expensive reads (opening a stream is one)", body = crate::api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`too_many_streams`: the node serves its maximum \
            of event streams", body = crate::api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn stream(
    _rate: WithinRate<ExpensiveReads>,
    caller: super::auth::Caller,
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    // Who is asking comes first: nothing about the chain, not even whether a bank exists, is
    // answered to an anonymous caller.
    caller.known()?;
    let Query(query) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let account = query.account.as_deref().map(parse_account).transpose()?;
    let bank: Option<BankId> = query
        .bank
        .as_deref()
        .map(|text| {
            text.parse()
                .map_err(|e| ApiError::new(Code::BadBankId, format!("bank: {e}")))
        })
        .transpose()?;
    let camt054 = match query.format.as_deref() {
        None | Some("json") => false,
        Some("camt054") => true,
        Some(other) => {
            return Err(ApiError::new(
                Code::BadQuery,
                format!("format must be json or camt054, not {other:?}"),
            ))
        }
    };
    // What this caller may see: all, its own account, or its own bank. The scope comes
    // before the bank's existence, so that a customer or an operator asking for another
    // bank's stream is refused alike whether that bank exists or not.
    let (account, bank) = caller.event_scope(&state.reader.view().ledger, account, bank)?;
    if let Some(bank) = &bank {
        if state.reader.view().ledger.bank(bank).is_none() {
            return Err(ApiError::new(Code::UnknownBank, format!("no bank {bank}")));
        }
    }
    // An operator's stream shows its own bank's line of cycle and day reports.
    let redact = caller.operator_bank().cloned();
    // A rejected transaction whose receipt as stored the subscriber may not see
    // (`Caller::sees_receipt_of`: it names what the payer lacked, or another bank's pool)
    // goes as a `rejected` event, without the receipt ([`cut_rejected`]).
    let withhold = (!caller.sees_all()).then(|| caller.clone());
    let filter = NotificationFilter { account, bank };
    let format = if camt054 {
        Format::Camt054(filter)
    } else {
        Format::Json(filter)
    };
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::new(Code::BadCursor, "Last-Event-ID is not text"))
        })
        .transpose()?;
    // Both are checked, so that a malformed one is refused whichever is used; `?after=`
    // wins (a client that reconnects by hand means it).
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let last_event_id = last_event_id.map(parse_cursor).transpose()?;
    let cursor = after.or(last_event_id);
    let start = match cursor {
        Some((height, index)) => Start {
            height: height.max(1),
            seen_through: (height >= 1).then_some(index),
        },
        // No cursor: from the next block on.
        None => Start {
            height: state.reader.view().tip.height + 1,
            seen_through: None,
        },
    };
    state.keeps(start.height, || {
        format!("a stream of the events from block {}", start.height)
    })?;
    // One key's share first, then the node's.
    let slot = if caller.sees_all() {
        None
    } else {
        let (key, _) = caller.known()?;
        Some(state.limits.stream_slot(*key).inspect_err(|_| {
            state
                .metrics
                .api_refused("busy", "event streams of one key");
        })?)
    };
    let permit = state
        .limits
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            state.metrics.api_refused("busy", "expensive reads");
            ApiError::new(
                Code::TooManyStreams,
                format!(
                    "this node serves its maximum of {} event streams; try again later",
                    state.limits.max_event_streams
                ),
            )
        })?;
    let (sender, receiver) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(produce(
        state,
        start,
        format,
        redact,
        withhold,
        sender,
        (permit, slot),
    ));
    let pieces = futures::stream::unfold(receiver, |mut receiver| async move {
        let piece = match tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await {
            Ok(Some(piece)) => piece,
            Ok(None) => return None,
            Err(_) => Bytes::from_static(KEEP_ALIVE_COMMENT),
        };
        Some((Ok::<_, Infallible>(piece), receiver))
    });
    Ok((
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(pieces),
    )
        .into_response())
}

/// Appends one event in the `text/event-stream` format: its `id` (the cursor
/// `height:index`), its `event` name, its `data` with a new `data: ` field after every line
/// break (CR or LF, each kept), and the blank line that ends it.
fn write_event(out: &mut Vec<u8>, (height, index): (u64, u32), name: &str, data: &str) {
    // Writing to a vector cannot fail.
    let _ = write!(out, "id: {height}:{index}\nevent: {name}\n");
    if !data.is_empty() {
        out.extend_from_slice(b"data: ");
        for piece in data.split_inclusive(['\n', '\r']) {
            out.extend_from_slice(piece.as_bytes());
            if piece.ends_with(['\n', '\r']) {
                out.extend_from_slice(b"data: ");
            }
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Whether `event` concerns `bank`: a transaction of one of its customers or its operator,
/// a transfer queued from or to it, any cycle close.
fn concerns_bank(event: &EventView, bank: &BankId, ledger: &interpool_contracts::Ledger) -> bool {
    match event {
        EventView::Transaction { accounts, .. } | EventView::Rejected { accounts, .. } => {
            accounts.iter().any(|id| {
                ledger.account(id).is_some_and(|a| a.bank == *bank)
                    || ledger.official(id).is_some_and(|o| {
                        o.role == interpool_contracts::ledger::Role::Operator(bank.clone())
                    })
            })
        }
        EventView::Released { transfer }
        | EventView::Expired { transfer }
        | EventView::Dropped { transfer, .. }
        | EventView::RejectWarning { transfer, .. } => {
            transfer.from_bank == *bank || transfer.to_bank == *bank
        }
        EventView::CycleClosed { .. }
        | EventView::GridlockResolved { .. }
        | EventView::DayClosed { .. } => true,
    }
}

/// `event` as `caller`'s stream sends it: a rejected transaction whose receipt the caller
/// may not read as stored (it names what the payer lacked, or another bank's pool) goes as
/// a `rejected` event, with why for those who may know, as
/// `GET /v1/transactions/{hash}` shows it (`transactions::shown_of_rejection`); anything
/// else as it is.
fn cut_rejected(
    caller: &super::auth::Caller,
    ledger: &interpool_contracts::Ledger,
    block: &interpool_contracts::Block,
    event: EventView,
) -> EventView {
    let EventView::Transaction { receipt, accounts } = &event else {
        return event;
    };
    let Some((_, error)) = super::transactions::rejection(receipt) else {
        return event;
    };
    let signer = block
        .transactions
        .get(receipt.index as usize)
        .map(|tx| &tx.tx.signer);
    let shown = super::transactions::shown_of_rejection(caller, ledger, signer, error);
    if shown.receipt {
        return event;
    }
    EventView::Rejected {
        tx_hash: receipt.tx_hash,
        height: receipt.height,
        index: receipt.index,
        accounts: accounts.clone(),
        rejection: shown.rejection,
    }
}

/// An event as bank `own`'s operator sees it: cycle and day reports cut to its own line
/// (and its own totals); the network-wide summary of the liquidity-saving pass not at all
/// (its own released transfers are events of their own). `None`: nothing to send.
fn redact_for_operator(event: EventView, own: &BankId, decimals: u8) -> Option<EventView> {
    match event {
        EventView::CycleClosed { mut report } => {
            super::banks::cut_cycle(&mut report, own, decimals);
            Some(EventView::CycleClosed { report })
        }
        EventView::DayClosed { mut report } => {
            report.banks.retain(|line| line.bank == *own);
            Some(EventView::DayClosed { report })
        }
        EventView::GridlockResolved { .. } => None,
        other => Some(other),
    }
}

/// An event's `event` field: one of [`EVENT_KINDS`].
pub(crate) fn kind(event: &EventView) -> &'static str {
    let [transaction, rejected, released, expired, cycle_closed, dropped, reject_warning, gridlock, day_closed] =
        EVENT_KINDS;
    match event {
        EventView::Transaction { .. } => transaction,
        EventView::Rejected { .. } => rejected,
        EventView::Released { .. } => released,
        EventView::Expired { .. } => expired,
        EventView::CycleClosed { .. } => cycle_closed,
        EventView::Dropped { .. } => dropped,
        EventView::RejectWarning { .. } => reject_warning,
        EventView::GridlockResolved { .. } => gridlock,
        EventView::DayClosed { .. } => day_closed,
    }
}

/// What a stream sends.
#[derive(Clone)]
enum Format {
    /// JSON events, perhaps only those concerning one account or bank.
    Json(NotificationFilter),
    /// camt.054 notifications of booked entries.
    Camt054(NotificationFilter),
}

/// One event to send: its index in the block, its `event` name and its data.
type Outgoing = (u32, &'static str, String);

/// Reads committed blocks from `start` on and sends their events until the client leaves.
async fn produce(
    state: ApiState,
    start: Start,
    format: Format,
    redact: Option<BankId>,
    withhold: Option<super::auth::Caller>,
    sender: mpsc::Sender<Bytes>,
    _held: (OwnedSemaphorePermit, Option<super::limits::StreamSlot>),
) {
    // Subscribe before the first read, so that no commit can slip between the two.
    let mut commits = state.reader.subscribe();
    let mut height = start.height;
    let mut seen_through = start.seen_through;
    let decimals = state.decimals;
    loop {
        loop {
            commits.borrow_and_update();
            // Read and decode on the blocking pool, a limited number of streams at a time:
            // a stream replaying from the first block waits its turn rather than crowd out
            // the node's other work.
            let view = state.reader.view();
            let (ledger, tip) = (view.ledger.clone(), view.tip.height);
            drop(view);
            let currency = state.currency.clone();
            let redact = redact.clone();
            let withhold = withhold.clone();
            let recent = state.recent_events.clone();
            let format = format.clone();
            let read = state
                .reader
                .read_for_stream(move |store| {
                    let Some(events) = recent.of_block(store, height, tip, decimals)? else {
                        return ApiResult::Ok(None);
                    };
                    Ok(Some(match &format {
                        Format::Json(filter)
                            if filter.account.is_none()
                                && filter.bank.is_none()
                                && withhold.is_none()
                                && redact.is_none() =>
                        {
                            events.everything();
                            Events::Everything(events)
                        }
                        Format::Json(filter) => Events::Own(Rendered::of(
                            height,
                            events
                                .views
                                .iter()
                                .enumerate()
                                .filter(|(_, event)| {
                                    filter.account.is_none_or(|a| event.concerns(&a))
                                        && filter
                                            .bank
                                            .as_ref()
                                            .is_none_or(|b| concerns_bank(event, b, &ledger))
                                })
                                .map(|(index, event)| match &withhold {
                                    Some(caller) => (
                                        index,
                                        cut_rejected(caller, &ledger, &events.block, event.clone()),
                                    ),
                                    None => (index, event.clone()),
                                })
                                .filter_map(|(index, event)| {
                                    let event = match &redact {
                                        Some(own) => redact_for_operator(event, own, decimals)?,
                                        None => event,
                                    };
                                    let data = serde_json::to_string(&event).ok()?;
                                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                                    Some((index, kind(&event), data))
                                }),
                        )),
                        Format::Camt054(filter) => Events::Own(Rendered::of(
                            height,
                            block_notifications(
                                store,
                                &events.block,
                                &events.outcome,
                                &ledger,
                                filter,
                                &currency,
                                decimals,
                            )
                            .into_iter()
                            .map(|(index, xml)| (index, "camt054", xml)),
                        )),
                    }))
                })
                .await;
            let events = match read {
                Some(Ok(Some(events))) => events,
                Some(Ok(None)) => break,
                Some(Err(error)) => {
                    tracing::warn!(height, ?error, "event stream stopped: cannot read block");
                    return;
                }
                None => return,
            };
            let rendered = match &events {
                Events::Everything(events) => events.everything(),
                Events::Own(rendered) => rendered,
            };
            if !send_rendered(&sender, rendered, seen_through).await {
                return; // the client left
            }
            height += 1;
            seen_through = None;
        }
        let mut shutdown = state.shutdown.clone();
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sender.closed() => return,
            Ok(_) = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// Sends `rendered`'s events after `seen_through`, in pieces of about [`PIECE_BYTES`] (at
/// event boundaries; one piece may be a single larger event). False if the client left.
async fn send_rendered(
    sender: &mpsc::Sender<Bytes>,
    rendered: &Rendered,
    seen_through: Option<u32>,
) -> bool {
    let mut start = 0;
    let mut end = 0;
    for &(index, event_end) in &rendered.ends {
        if seen_through.is_some_and(|seen| index <= seen) {
            (start, end) = (event_end, event_end);
            continue;
        }
        end = event_end;
        if end - start >= PIECE_BYTES {
            if sender.send(rendered.bytes.slice(start..end)).await.is_err() {
                return false;
            }
            start = end;
        }
    }
    end == start || sender.send(rendered.bytes.slice(start..end)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::sse::{Event, Sse};

    /// What axum's `Sse` sends for the event, as this stream did before it sent a block's
    /// events together.
    async fn axum_bytes(id: &str, name: &str, data: &str) -> Vec<u8> {
        let event = Event::default().id(id).event(name).data(data);
        let response =
            Sse::new(futures::stream::iter([Ok::<_, Infallible>(event)])).into_response();
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    /// Everything `send` puts into a channel, piece by piece.
    async fn pieces<F: std::future::Future<Output = bool>>(
        send: impl FnOnce(mpsc::Sender<Bytes>) -> F,
    ) -> Vec<Bytes> {
        let (sender, mut receiver) = mpsc::channel(1_000);
        assert!(send(sender).await, "the receiver is there");
        let mut pieces = Vec::new();
        while let Some(piece) = receiver.recv().await {
            pieces.push(piece);
        }
        pieces
    }

    /// A store with `blocks` committed blocks of three transfers each.
    fn chain(dir: &std::path::Path, blocks: u64) -> Arc<Store> {
        let genesis = crate::testkit::genesis();
        let (mut core, store) =
            crate::testkit::core_and_store(&genesis, dir, crate::testkit::limits());
        for height in 0..blocks {
            let txs = [(0, 0), (0, 1), (1, 1)]
                .into_iter()
                .map(|(bank, customer)| {
                    let seed = interpool_contracts::testkit::customer_seed(bank, customer);
                    crate::testkit::transfer(seed, height)
                })
                .collect();
            crate::testkit::commit_block(&mut core, txs, 1_000 * (height + 1));
        }
        store
    }

    #[test]
    fn a_block_near_the_tip_is_decoded_once_for_every_stream_and_one_far_below_it_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = chain(dir.path(), 12);
        let recent = RecentEvents::default();
        let events = |height| {
            recent
                .of_block(&store, height, 12, 2)
                .expect("readable")
                .expect("committed")
        };
        let tip = events(12);
        assert_eq!(tip.views.len(), 3, "one event per transfer");
        assert!(Arc::ptr_eq(&tip, &events(12)), "decoded once");
        let old = events(4);
        assert!(
            !Arc::ptr_eq(&old, &events(4)),
            "a replay decodes for itself"
        );
        assert!(!recent.lock().contains_key(&4));
        for height in 1..=12 {
            events(height);
        }
        assert_eq!(
            recent.lock().keys().copied().collect::<Vec<_>>(),
            (13 - RECENT_BLOCKS..=12).collect::<Vec<_>>(),
            "the last {RECENT_BLOCKS} blocks"
        );
        assert!(recent
            .of_block(&store, 13, 12, 2)
            .expect("readable")
            .is_none());
    }

    #[tokio::test]
    async fn the_shared_events_are_sent_as_a_stream_of_its_own_sends_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = chain(dir.path(), 2);
        let events = RecentEvents::default()
            .of_block(&store, 2, 2, 2)
            .expect("readable")
            .expect("committed");
        for seen_through in [None, Some(0), Some(1), Some(2), Some(9)] {
            // Each event after the cursor, written one by one as a stream of its own did.
            let mut own = Vec::new();
            for (index, event) in (0..).zip(&events.views) {
                if seen_through.is_none_or(|seen| index > seen) {
                    let data = serde_json::to_string(event).expect("json");
                    write_event(&mut own, (2, index), kind(event), &data);
                }
            }
            let events = events.clone();
            let shared = pieces(|sender| async move {
                send_rendered(&sender, events.everything(), seen_through).await
            })
            .await;
            let expected: Vec<Bytes> = if own.is_empty() {
                Vec::new()
            } else {
                vec![own.into()]
            };
            assert_eq!(shared, expected, "after {seen_through:?}");
        }
        let all = String::from_utf8(events.everything().bytes.to_vec()).expect("text");
        assert!(
            all.starts_with("id: 2:0\nevent: transaction\ndata: {"),
            "{all}"
        );
    }

    #[tokio::test]
    async fn shared_events_go_in_pieces_cut_between_events() {
        // Events of 1,000 bytes: a piece closes at the first event end past PIECE_BYTES.
        let ends: Vec<(u32, usize)> = (0..200).map(|i| (i, (i as usize + 1) * 1_000)).collect();
        let rendered = Rendered {
            bytes: Bytes::from(vec![b'x'; 200_000]),
            ends,
        };
        let sent =
            pieces(|sender| async move { send_rendered(&sender, &rendered, Some(4)).await }).await;
        let lengths: Vec<usize> = sent.iter().map(Bytes::len).collect();
        assert_eq!(lengths, vec![66_000, 66_000, 63_000], "events 5-199");
        let nothing = Rendered {
            bytes: Bytes::from_static(b"abc"),
            ends: vec![(0, 3)],
        };
        assert!(
            pieces(|sender| async move { send_rendered(&sender, &nothing, Some(0)).await })
                .await
                .is_empty(),
            "nothing after the cursor, nothing sent"
        );
    }

    #[tokio::test]
    async fn events_are_written_as_axums_server_sent_events_are() {
        let data = [
            r#"{"kind":"transaction","receipt":{"height":7}}"#,
            "<Document>\n  <Ntry>1</Ntry>\n</Document>",
            "one\r\ntwo\rthree\n",
            "x",
        ];
        let mut all = Vec::new();
        let mut expected = Vec::new();
        for (index, data) in (0u32..).zip(data) {
            write_event(&mut all, (7, index), "camt054", data);
            expected.extend(axum_bytes(&format!("7:{index}"), "camt054", data).await);
        }
        assert_eq!(
            String::from_utf8_lossy(&all),
            String::from_utf8_lossy(&expected)
        );
    }
}
