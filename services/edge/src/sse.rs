//! Server-sent events: `GET /v1/restaurants/{rid}/stream`.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use ordercast_core::{Chain, RestaurantId};
use ordercast_http::HttpError;
use ordercast_http::extract::{Path, Query};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Interval, Sleep};

use ordercast_http::Subscriber;

use crate::auth::may_watch;
use crate::metrics::{ConnectionGuard, Transport};
use crate::state::EdgeState;
use crate::subscription::Subscription;
use crate::subscription::parse_cursor;

#[derive(Deserialize)]
pub(crate) struct StreamQuery {
    since: Option<String>,
}

/// Opens the stream: `Last-Event-ID` wins over `?since=`; neither means
/// "from now", `0` means from the start of retention.
pub(crate) async fn stream(
    State(state): State<EdgeState>,
    subscriber: Subscriber,
    Path(rid): Path<RestaurantId>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let permit = state.admit()?;
    may_watch(&state, &subscriber.0, rid).await?;
    let since = match headers.get("last-event-id") {
        Some(v) => Some(parse_cursor(v.to_str().unwrap_or("?"))?),
        None => query.since.as_deref().map(parse_cursor).transpose()?,
    };
    let sub = Subscription::open(&state, rid, subscriber.0.viewer(), since).await?;
    let expiry = Box::pin(tokio::time::sleep(
        subscriber.0.valid_for(SystemTime::now()),
    ));
    let heartbeat = state.settings.heartbeat;
    let hello = format!(
        "retry: {}\n: subscribed at {}\n\n",
        state.settings.sse_retry.as_millis(),
        sub.cursor()
    );
    let stream = SseStream {
        guard: ConnectionGuard::new(&state.metrics, Transport::Sse),
        state,
        sub,
        heartbeat: tokio::time::interval_at(Instant::now() + heartbeat, heartbeat),
        expiry,
        pending: Some(Bytes::from(hello)),
        done: false,
        _permit: permit,
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, |mut s| async move {
        s.next_chunk()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), s))
    }));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct SseStream {
    state: EdgeState,
    sub: Subscription,
    heartbeat: Interval,
    /// When the token expires; the stream ends then.
    expiry: Pin<Box<Sleep>>,
    pending: Option<Bytes>,
    done: bool,
    guard: ConnectionGuard,
    _permit: OwnedSemaphorePermit,
}

impl SseStream {
    /// The next bytes to write; `None` ends the response.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.take() {
            return Some(chunk);
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                _ = self.state.drain.cancelled() => {
                    self.done = true;
                    self.guard.set_reason("draining");
                    let retry = self.state.drain_jitter();
                    return Some(Bytes::from(format!("retry: {}\n\n", retry.as_millis())));
                }
                () = &mut self.expiry => {
                    // The client reconnects with a fresh token; this one
                    // would be refused.
                    self.done = true;
                    self.guard.set_reason("token_expired");
                    return Some(Bytes::from_static(b": token expired\n\n"));
                }
                batch = self.sub.next() => match batch {
                    Ok(batch) if batch.frames.is_empty() => continue,
                    Ok(batch) => {
                        let len = batch.frames.iter().map(|f| f.sse.len()).sum();
                        let mut chunk = BytesMut::with_capacity(len);
                        for frame in &batch.frames {
                            chunk.extend_from_slice(&frame.sse);
                        }
                        self.state.metrics.delivered(Transport::Sse, batch.frames.iter().map(|f| &**f));
                        if let Some(last) = batch.frames.last() {
                            self.state.receipts.delivered(self.sub.restaurant(), self.sub.role(), last.seq);
                        }
                        self.heartbeat.reset();
                        return Some(chunk.freeze());
                    }
                    Err(e) => {
                        tracing::warn!(restaurant = %self.sub.restaurant(), error = %Chain(&e), "SSE stream ends");
                        self.done = true;
                        self.guard.set_reason("error");
                        let retry = self.state.settings.sse_retry.max(Duration::from_secs(1));
                        return Some(Bytes::from(format!("retry: {}\n\n", retry.as_millis())));
                    }
                },
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(b":\n\n")),
            }
        }
    }
}
