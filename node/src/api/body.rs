//! Request bodies: the size limit, and the rest of a body the node answered early.
//!
//! A server that answers before it has read the whole body (413 for a body over
//! `[rpc] max_body_bytes`, 429 for a client over its rate, a read whose body is not looked
//! at) and then closes the connection cuts the client off while it is still writing: the
//! client sees a broken pipe or a reset instead of the answer, and cannot tell why it was
//! refused. So on HTTP/1 the node reads what is left of such a body and throws it away
//! before it answers, the way nginx's lingering close does: at most [`DRAIN_BYTES`] more
//! bytes, for at most [`DRAIN_TIME`], and never past the node's shutdown. Past a bound it
//! answers with `Connection: close` and stops reading. (HTTP/2 ends the one stream, not the
//! connection; there is nothing to drain.) A client that sent `Expect: 100-continue` and was
//! answered before the body was asked for has not sent it: it gets the answer and the
//! connection closes, without being invited to upload what would be thrown away.
//!
//! A body whose declared length is over the limit is answered `413 body_too_large` at once,
//! without reaching a handler; a body that turns out longer than the limit as it is read
//! (chunked) is refused by the handler's extractor (`DefaultBodyLimit`), and the rest of it
//! is drained the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use super::{ApiError, ApiState, Code};

/// The most the node reads and throws away of a body it has already answered.
pub const DRAIN_BYTES: u64 = 64 << 20;

/// The longest the node spends reading a body it has already answered.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The longest a request's body may take to arrive, from the handler's first read: a
/// client that dribbles a byte a minute must not hold a connection (and the body read so
/// far) for days. The handler then sees an error, as for a broken body.
pub const BODY_TIME: Duration = Duration::from_secs(60);

/// What the layer needs: the node's state (for its metrics) and the body limit.
#[derive(Clone)]
pub(crate) struct Limit {
    pub(crate) state: ApiState,
    pub(crate) max_body_bytes: usize,
}

/// The layer: refuses a body declared too large, and drains what a handler left unread.
pub(crate) async fn limit(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    let lingers = matches!(
        request.version(),
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    );
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let slot = Arc::new(Mutex::new(Held {
        body: Some(body),
        polled: false,
        deadline: None,
    }));
    let response = match declared {
        Some(length) if length > limit.max_body_bytes as u64 => ApiError::new(
            Code::BodyTooLarge,
            format!(
                "the body is {length} bytes; this node takes at most {} ([rpc] max_body_bytes)",
                limit.max_body_bytes
            ),
        )
        .into_response(),
        _ => {
            let shared = Body::new(Shared(Arc::clone(&slot)));
            next.run(Request::from_parts(parts, shared)).await
        }
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        limit.state.metrics.api_refused("body_too_large", "bodies");
    }
    let (rest, polled) = {
        let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
        (held.body.take(), held.polled)
    };
    match rest {
        None => response,
        Some(rest) if !lingers || rest.is_end_stream() => response,
        // Not sent yet (no `100 Continue` went out), or more declared than the drain would
        // read: no use starting.
        Some(_)
            if (expects_continue && !polled)
                || declared.is_some_and(|length| length > DRAIN_BYTES) =>
        {
            close(response)
        }
        Some(rest) => {
            let mut shutdown = limit.state.shutdown.clone();
            // As the event streams do: a sender gone without a stop is no stop.
            let stopping = async move {
                if shutdown.wait_for(|stopping| *stopping).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let drained = tokio::select! {
                drained = drain(rest, DRAIN_BYTES, DRAIN_TIME) => drained,
                () = stopping => Drained::GaveUp,
            };
            match drained {
                Drained::ToTheEnd => response,
                Drained::GaveUp => close(response),
            }
        }
    }
}

/// How draining a body ended.
#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// The body ended (or the client went away): the connection can serve on.
    ToTheEnd,
    /// The body went on past [`DRAIN_BYTES`] or [`DRAIN_TIME`].
    GaveUp,
}

/// Reads `body` to its end and throws it away: at most `max_bytes`, for at most `max_time`.
async fn drain(body: Body, max_bytes: u64, max_time: Duration) -> Drained {
    use futures::StreamExt as _;
    let mut data = body.into_data_stream();
    let mut read = 0u64;
    let to_the_end = async {
        while let Some(chunk) = data.next().await {
            let Ok(chunk) = chunk else {
                // The client went away or broke the framing: the connection is done with.
                return Drained::ToTheEnd;
            };
            read = read.saturating_add(chunk.len() as u64);
            if read > max_bytes {
                return Drained::GaveUp;
            }
        }
        Drained::ToTheEnd
    };
    tokio::time::timeout(max_time, to_the_end)
        .await
        .unwrap_or(Drained::GaveUp)
}

/// `response`, telling the client that the connection closes after it.
fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The request body as the handler sees it, while the layer keeps a hold on it: what the
/// handler leaves unread is still there for [`drain`] once the handler has answered.
struct Shared(Arc<Mutex<Held>>);

/// What [`Shared`] holds.
struct Held {
    /// The body; `None` once it ended.
    body: Option<Body>,
    /// Whether the handler asked for the body (on HTTP/1, that sends `100 Continue`).
    polled: bool,
    /// When the handler's reading must be done ([`BODY_TIME`] after its first read).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.polled = true;
        if held.body.is_none() {
            return Poll::Ready(None);
        }
        let deadline = held
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(BODY_TIME)));
        if deadline.as_mut().poll(cx).is_ready() {
            // Given up: nothing more is read (nor drained) of it.
            held.body = None;
            return Poll::Ready(Some(Err(axum::Error::new(format!(
                "the body did not arrive within {} s",
                BODY_TIME.as_secs()
            )))));
        }
        let Some(body) = held.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            // Ended: nothing left to drain (hyper's `is_end_stream` does not say so for a
            // chunked body).
            held.body = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.body
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or(SizeHint::with_exact(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = sizes
            .iter()
            .map(|size| Ok(Bytes::from(vec![0u8; *size])))
            .collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_within_the_bound_is_drained_to_its_end() {
        let drained = drain(chunks(&[1 << 20; 8]), 8 << 20, DRAIN_TIME).await;
        assert_eq!(drained, Drained::ToTheEnd);
        let drained = drain(Body::empty(), 0, DRAIN_TIME).await;
        assert_eq!(drained, Drained::ToTheEnd);
    }

    #[tokio::test]
    async fn a_body_past_the_bound_is_given_up() {
        let drained = drain(chunks(&[1 << 20; 9]), 8 << 20, DRAIN_TIME).await;
        assert_eq!(drained, Drained::GaveUp);
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_given_up_after_the_drain_time() {
        let stalled =
            Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let drained = drain(stalled, DRAIN_BYTES, Duration::from_millis(20)).await;
        assert_eq!(drained, Drained::GaveUp);
    }

    /// A body that stops arriving is an error for the handler once its time is up (here
    /// 20 ms instead of [`BODY_TIME`]); before, a client dribbling its body held the
    /// connection for as long as it liked.
    #[tokio::test]
    async fn a_body_that_stops_arriving_is_an_error_after_its_time() {
        let stalled = Body::from_stream(futures::StreamExt::chain(
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"tx\":"))]),
            futures::stream::pending(),
        ));
        let slot = Arc::new(Mutex::new(Held {
            body: Some(stalled),
            polled: false,
            deadline: Some(Box::pin(tokio::time::sleep(Duration::from_millis(20)))),
        }));
        let read = axum::body::to_bytes(Body::new(Shared(Arc::clone(&slot))), 1 << 20).await;
        let error = read.expect_err("given up");
        assert!(format!("{error:?}").contains("did not arrive"), "{error:?}");
        assert!(
            slot.lock().expect("lock").body.is_none(),
            "nothing left to drain"
        );
    }

    #[tokio::test]
    async fn a_broken_body_ends_the_drain() {
        let broken = Body::from_stream(futures::stream::iter([
            Ok(Bytes::from_static(b"some")),
            Err(std::io::Error::other("reset")),
        ]));
        assert_eq!(
            drain(broken, DRAIN_BYTES, DRAIN_TIME).await,
            Drained::ToTheEnd
        );
    }

    /// The length of `body`'s next data frame.
    async fn next_len(
        body: &mut (impl HttpBody<Data = Bytes, Error = axum::Error> + Unpin),
    ) -> usize {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        let data = frame.expect("a frame").expect("data").into_data();
        data.expect("data").len()
    }

    #[tokio::test]
    async fn the_shared_body_leaves_what_the_reader_did_not_take() {
        let slot = Arc::new(Mutex::new(Held {
            body: Some(chunks(&[3, 4])),
            polled: false,
            deadline: None,
        }));
        let mut shared = Shared(Arc::clone(&slot));
        assert_eq!(next_len(&mut shared).await, 3);
        drop(shared);
        let (polled, rest) = {
            let mut held = slot.lock().expect("slot");
            (held.polled, held.body.take())
        };
        assert!(polled);
        let mut rest = rest.expect("the rest");
        assert_eq!(next_len(&mut rest).await, 4);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_leaves_nothing_to_drain() {
        let slot = Arc::new(Mutex::new(Held {
            body: Some(chunks(&[3])),
            polled: false,
            deadline: None,
        }));
        let mut shared = Shared(Arc::clone(&slot));
        assert_eq!(next_len(&mut shared).await, 3);
        let end = std::future::poll_fn(|cx| Pin::new(&mut shared).poll_frame(cx)).await;
        assert!(end.is_none());
        assert!(slot.lock().expect("slot").body.is_none());
    }
}
