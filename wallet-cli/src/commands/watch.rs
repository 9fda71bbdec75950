//! `watch`: follows `GET /v1/events` (Server-Sent Events), one line per event, resuming
//! with `Last-Event-ID` after a disconnect so that no event is lost or repeated.

use std::io::{BufRead, BufReader, Read};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use interpool_contracts::outcome::{Outcome, QueueEvent};
use interpool_contracts::views::EventView;
use interpool_contracts::AccountId;
use serde::Serialize;

use crate::client::{ClientError, Node};
use crate::exit::Exit;
use crate::output::{line, short, Output};
use crate::sse::{SseEvent, SseParser, MAX_EVENT_BYTES};

/// Longest line read from the stream; a longer one drops the connection.
const MAX_LINE_BYTES: u64 = MAX_EVENT_BYTES as u64 + 64;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One event in `--json` mode (one per line).
#[derive(Serialize)]
struct JsonEvent<'a> {
    /// The cursor `height:index` (resume after it with `Last-Event-ID`).
    id: Option<&'a str>,
    event: &'a EventView,
}

fn queue_line(verb: &str, q: &QueueEvent, decimals: u8) -> String {
    format!(
        "{verb} {}  {} {} -> {} {}  {}",
        q.tx_hash,
        q.from_bank,
        short(&q.from.to_hex()),
        q.to_bank,
        short(&q.to.to_hex()),
        q.amount.format(decimals)
    )
}

/// The human line for one event.
pub fn describe_event(id: Option<&str>, event: &EventView, decimals: u8) -> String {
    let what = match event {
        EventView::Transaction { receipt, accounts } => {
            let outcome = match &receipt.outcome {
                Outcome::Committed => "committed".to_string(),
                Outcome::Queued { expires_at_height } => {
                    format!("queued (expires after height {expires_at_height})")
                }
                Outcome::Rejected { error } => format!("rejected {}", error.code()),
            };
            let accounts: Vec<String> = accounts.iter().map(|a| short(&a.to_hex())).collect();
            format!("tx {}  {outcome}  {}", receipt.tx_hash, accounts.join(" "))
        }
        EventView::Rejected {
            tx_hash,
            accounts,
            rejection,
            ..
        } => {
            let accounts: Vec<String> = accounts.iter().map(|a| short(&a.to_hex())).collect();
            let why = match rejection {
                Some(rejection) => format!("rejected {}: {}", rejection.code, rejection.message),
                None => "rejected (the reason is the payer's)".to_string(),
            };
            format!("tx {tx_hash}  {why}  {}", accounts.join(" "))
        }
        EventView::Released { transfer } => queue_line("released", transfer, decimals),
        EventView::Expired { transfer } => {
            format!("{} (refunded)", queue_line("expired", transfer, decimals))
        }
        EventView::CycleClosed { report } => {
            let trigger = serde_json::to_value(report.trigger)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "cycle {} closed at height {} ({trigger}): gross {}, net {}",
                report.cycle, report.height, report.gross_total, report.net_total
            )
        }
        EventView::Dropped { transfer, reason } => format!(
            "{} (refunded)",
            queue_line(reason.fate(), transfer, decimals)
        ),
        EventView::RejectWarning {
            transfer,
            reject_after_ms,
        } => format!(
            "{} (rejected at {reject_after_ms} ms unless it settles first)",
            queue_line("warning", transfer, decimals)
        ),
        EventView::GridlockResolved { run } => format!(
            "liquidity-saving pass settled {} of {} queued payments together ({} minor units{})",
            run.settled,
            run.offered,
            run.value,
            if run.all_at_once { ", all at once" } else { "" }
        ),
        EventView::DayClosed { report } => format!(
            "business day {} ({}) closed at height {}",
            report.day, report.date, report.height
        ),
    };
    format!("{}  {what}", id.unwrap_or("-"))
}

/// Why reading one connection's stream stopped.
enum Ended {
    /// `--limit` reached.
    Done,
    /// The connection ended or failed: reconnect.
    Disconnected(String),
}

fn handle(event: &SseEvent, out: Output, decimals: u8) -> Result<bool> {
    let view: EventView = match serde_json::from_str(&event.data) {
        Ok(view) => view,
        Err(e) => {
            eprintln!(
                "warning: skipping event {} ({}): not an event this wallet knows: {e}",
                event.id.as_deref().unwrap_or("-"),
                event.event
            );
            return Ok(false);
        }
    };
    if out.json {
        out.json(&JsonEvent {
            id: event.id.as_deref(),
            event: &view,
        })?;
    } else {
        line(&describe_event(event.id.as_deref(), &view, decimals))?;
    }
    Ok(true)
}

fn follow(
    stream: impl Read,
    parser: &mut SseParser,
    out: Output,
    decimals: u8,
    seen: &mut u64,
    limit: Option<u64>,
) -> Result<Ended> {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    // A new connection resends the event it was cut in, whole.
    parser.reset_event();
    loop {
        buffer.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buffer);
        match read {
            Ok(0) => return Ok(Ended::Disconnected("the node closed the stream".into())),
            Ok(_) if buffer.len() as u64 >= MAX_LINE_BYTES && !buffer.ends_with(b"\n") => {
                // Too long to keep: the event is skipped, with a warning, and the stream
                // read on (reconnecting would only be sent the same event again).
                match skip_line(&mut reader) {
                    Ok(true) => {
                        eprintln!(
                            "warning: skipping an event after {}: a line longer than \
                             {MAX_LINE_BYTES} bytes",
                            parser.last_id().unwrap_or("the start")
                        );
                        parser.drop_event();
                        continue;
                    }
                    Ok(false) => {
                        return Ok(Ended::Disconnected("the stream ended mid-line".into()))
                    }
                    Err(e) => return Ok(Ended::Disconnected(e.to_string())),
                }
            }
            Ok(_) if !buffer.ends_with(b"\n") => {
                return Ok(Ended::Disconnected("the stream ended mid-line".into()));
            }
            Ok(_) => {}
            Err(e) => return Ok(Ended::Disconnected(e.to_string())),
        }
        let text = String::from_utf8_lossy(&buffer);
        if let Some(event) = parser.push_line(&text) {
            if handle(&event, out, decimals)? {
                *seen += 1;
                if limit.is_some_and(|limit| *seen >= limit) {
                    return Ok(Ended::Done);
                }
            }
        }
    }
}

/// Reads past the rest of a line, a bounded piece at a time; `false` if the stream ended
/// first.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<bool> {
    let mut piece = Vec::new();
    loop {
        piece.clear();
        if reader.take(64 << 10).read_until(b'\n', &mut piece)? == 0 {
            return Ok(false);
        }
        if piece.ends_with(b"\n") {
            return Ok(true);
        }
    }
}

/// Errors worth reconnecting after (the node restarting, a network blip); a 4xx is not.
fn retryable(error: &ClientError) -> bool {
    !matches!(error.status(), Some(status) if status < 500)
        && !matches!(
            error,
            ClientError::BadUrl { .. } | ClientError::BadBody { .. }
        )
}

/// `watch [--account ID] [--limit N]`. Runs until Ctrl-C (or `--limit`).
pub fn watch(
    node_url: &str,
    out: Output,
    account: Option<&AccountId>,
    limit: Option<u64>,
) -> Result<Exit> {
    let node = Node::new(node_url)?;
    if limit == Some(0) {
        return Ok(Exit::Success);
    }
    // Released and expired transfers carry minor units; the chain says how to show them.
    let decimals = node
        .status()
        .context("cannot read the chain's decimals")?
        .decimals;
    let mut parser = SseParser::new();
    let mut seen = 0u64;
    let mut backoff = Duration::from_secs(1);
    let mut connected_before = false;
    loop {
        let stream = match node.events(account, parser.last_id()) {
            Ok(stream) => stream,
            // The first connection must work: a wrong URL or a missing route is an error,
            // not something to retry forever.
            Err(error) if !connected_before || !retryable(&error) => {
                return Err(error).context("cannot follow the event stream")
            }
            Err(error) => {
                eprintln!("watch: {error}; retrying in {} s", backoff.as_secs());
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        connected_before = true;
        backoff = Duration::from_secs(1);
        match follow(stream, &mut parser, out, decimals, &mut seen, limit)? {
            Ended::Done => return Ok(Exit::Success),
            Ended::Disconnected(reason) => {
                eprintln!(
                    "watch: disconnected ({reason}); resuming after event {}",
                    parser.last_id().unwrap_or("-")
                );
                thread::sleep(backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teststub::{self, Reply, Request, Stub};
    use interpool_contracts::outcome::Receipt;
    use interpool_contracts::{Amount, BankId, Hash};

    fn transaction_event() -> EventView {
        EventView::Transaction {
            receipt: Receipt {
                tx_hash: Hash([3; 32]),
                height: 4,
                index: 1,
                outcome: Outcome::Queued {
                    expires_at_height: 24,
                },
            },
            accounts: vec![AccountId([1; 32]), AccountId([2; 32])],
        }
    }

    /// A stub node whose event stream answers by the cursor the wallet resumes from: each
    /// of `streams` pairs a `Last-Event-ID` (`None` on a first connection) with the stream's
    /// text; any other cursor is refused.
    fn event_node(streams: Vec<(Option<&'static str>, String)>) -> Stub {
        teststub::serve(move |request| {
            if request.target == "/v1/status" {
                return Reply::json(200, teststub::status_json(3));
            }
            let cursor = request.header("last-event-id");
            match streams.iter().find(|(from, _)| *from == cursor) {
                Some((_, body)) => Reply {
                    status: 200,
                    content_type: "text/event-stream",
                    body: body.clone(),
                },
                None => Reply::error(400, "bad_cursor", "unexpected cursor"),
            }
        })
    }

    /// The requests `stub` saw for the event stream, in order.
    fn event_requests(stub: &Stub) -> Vec<Request> {
        stub.requests()
            .into_iter()
            .filter(|r| r.target.starts_with("/v1/events"))
            .collect()
    }

    #[test]
    fn events_read_as_one_line() {
        let text = describe_event(Some("4:1"), &transaction_event(), 2);
        assert!(text.starts_with("4:1  tx 0303"), "{text}");
        assert!(text.contains("queued (expires after height 24)"), "{text}");
        let released = EventView::Released {
            transfer: QueueEvent {
                tx_hash: Hash([3; 32]),
                from: AccountId([1; 32]),
                to: AccountId([2; 32]),
                from_bank: BankId::new("BANK_A").expect("id"),
                to_bank: BankId::new("BANK_B").expect("id"),
                amount: Amount(1234),
                queued_at_height: 4,
                height: 6,
            },
        };
        let text = describe_event(Some("6:0"), &released, 2);
        assert!(
            text.contains("released") && text.ends_with("12.34"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn a_rejection_without_its_receipt_reads_with_its_code_or_without_a_reason() {
        let rejected = |rejection| EventView::Rejected {
            tx_hash: Hash([3; 32]),
            height: 4,
            index: 1,
            accounts: vec![AccountId([1; 32]), AccountId([2; 32])],
            rejection,
        };
        let payer = rejected(Some(interpool_contracts::error::ErrorView {
            code: "pool_limit".into(),
            message: "the receiving bank's pool cannot take this amount in this cycle".into(),
        }));
        let text = describe_event(Some("4:1"), &payer, 2);
        assert!(text.starts_with("4:1  tx 0303"), "{text}");
        assert!(
            text.contains("rejected pool_limit: the receiving"),
            "{text}"
        );
        let text = describe_event(Some("4:1"), &rejected(None), 2);
        assert!(
            text.contains("rejected (the reason is the payer's)"),
            "{text}"
        );
        // As the node sends it: the stream's JSON decodes to the same event.
        let json = serde_json::to_string(&payer).expect("json");
        assert!(json.contains(r#""kind":"rejected""#), "{json}");
        assert_eq!(
            serde_json::from_str::<EventView>(&json).expect("decode"),
            payer
        );
    }

    #[test]
    fn a_stream_is_followed_up_to_the_limit_and_remembers_the_cursor() {
        let data = serde_json::to_string(&transaction_event()).expect("json");
        let text = format!(
            ": hello\n\nid: 4:1\ndata: {data}\n\nid: 4:2\ndata: not json\n\nid: 5:0\ndata: {data}\n\nid: 6:0\ndata: {data}\n\n"
        );
        let mut parser = SseParser::new();
        let mut seen = 0;
        let out = Output { json: true };
        let ended = follow(text.as_bytes(), &mut parser, out, 2, &mut seen, Some(2)).expect("ok");
        assert!(matches!(ended, Ended::Done));
        assert_eq!(seen, 2, "the undecodable event is skipped, not counted");
        assert_eq!(parser.last_id(), Some("5:0"));

        // Without a limit the end of the stream is a disconnect, to be resumed.
        let mut parser = SseParser::new();
        let mut seen = 0;
        let ended = follow(text.as_bytes(), &mut parser, out, 2, &mut seen, None).expect("ok");
        assert!(matches!(ended, Ended::Disconnected(_)));
        assert_eq!((seen, parser.last_id()), (3, Some("6:0")));
    }

    #[test]
    fn a_dropped_stream_is_resumed_after_the_last_event() {
        let data = serde_json::to_string(&transaction_event()).expect("json");
        // The first connection ends after two events; the second must resume after them.
        let stub = event_node(vec![
            (
                None,
                format!("id: 1:0\ndata: {data}\n\n: keep-alive\n\nid: 1:1\ndata: {data}\n\n"),
            ),
            (Some("1:1"), format!("id: 2:0\ndata: {data}\n\n")),
        ]);
        let account = AccountId([1; 32]);
        let exit = watch(&stub.url, Output { json: true }, Some(&account), Some(3)).expect("ok");
        assert_eq!(exit, Exit::Success);
        let streams = event_requests(&stub);
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].target, format!("/v1/events?account={account}"));
        assert_eq!(streams[1].header("last-event-id"), Some("1:1"));
        assert_eq!(streams[0].header("accept"), Some("text/event-stream"));
    }

    /// A connection cut inside an event (after its `id:`, and after a `data:` line of it)
    /// is resumed from the last event dispatched: the cut event comes again, whole, and is
    /// shown. Before, its id counted as seen at once: the wallet resumed after it (the event
    /// was lost), and its half-read data was glued onto the next connection's first event.
    #[test]
    fn a_stream_cut_inside_an_event_resumes_before_that_event() {
        let data = serde_json::to_string(&transaction_event()).expect("json");
        let stub = event_node(vec![
            (
                None,
                format!("id: 1:0\ndata: {data}\n\nid: 1:1\ndata: {data}\n"),
            ),
            (
                Some("1:0"),
                format!("id: 1:1\ndata: {data}\n\nid: 2:0\ndata: {data}\n\n"),
            ),
        ]);
        let exit = watch(&stub.url, Output { json: true }, None, Some(3)).expect("ok");
        assert_eq!(exit, Exit::Success, "three events shown");
        let streams = event_requests(&stub);
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[1].header("last-event-id"), Some("1:0"));
    }

    /// A line too long to keep skips its event, not the stream: the events after it come.
    #[test]
    fn an_over_long_line_skips_its_event_and_reading_goes_on() {
        let data = serde_json::to_string(&transaction_event()).expect("json");
        let long = "x".repeat(MAX_LINE_BYTES as usize + 10);
        let text =
            format!("id: 1:0\ndata: {long}\n\nid: 1:1\ndata: {data}\n\nid: 2:0\ndata: {data}\n\n");
        let mut parser = SseParser::new();
        let mut seen = 0;
        let out = Output { json: true };
        let ended = follow(text.as_bytes(), &mut parser, out, 2, &mut seen, Some(2)).expect("ok");
        assert!(matches!(ended, Ended::Done));
        assert_eq!((seen, parser.last_id()), (2, Some("2:0")));
    }

    #[test]
    fn a_missing_route_is_an_error_not_an_endless_retry() {
        let stub = teststub::serve(|request| match request.target.as_str() {
            "/v1/status" => Reply::json(200, teststub::status_json(3)),
            _ => Reply::error(404, "not_found", "no such route"),
        });
        let error = watch(&stub.url, Output { json: false }, None, None).expect_err("404");
        let line = format!("{error:#}");
        assert!(line.contains("404 not_found"), "{line}");
    }

    #[test]
    fn client_errors_are_not_retried_forever() {
        let api = |status| ClientError::Api {
            request: "GET /v1/events".into(),
            status,
            code: "x".into(),
            message: "y".into(),
        };
        assert!(!retryable(&api(404)));
        assert!(retryable(&api(503)));
        assert!(retryable(&ClientError::Connect {
            node: "n".into(),
            reason: "refused".into()
        }));
    }
}
