//! Server-sent events: `GET /v1/restaurants/{rid}/stream`.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use ordercast_core::{Chain, RestaurantId, Role, Seq};
use ordercast_http::extract::{Path, Query};
use ordercast_http::{HttpError, Slot};
use serde::Deserialize;
use tokio::time::{Instant, Interval, Sleep};

use ordercast_http::Subscriber;

use crate::auth::may_watch;
use crate::error::EdgeError;
use crate::gzip::SseGzip;
use crate::metrics::{ConnectionGuard, Peer, Transport};
use crate::regions::Signal;
use crate::state::EdgeState;
use crate::streams::StreamSlot;
use crate::subscription::{Next, Since, Subscription, parse_cursor, parse_since};
use crate::watchers::Watching;

#[derive(Deserialize)]
pub(crate) struct StreamQuery {
    since: Option<String>,
}

/// Opens the stream: `Last-Event-ID` (a seq) wins over `?since=` (a seq or
/// an RFC 3339 time); neither means "from now", `0` means from the start
/// of retention. The connection
/// counts as a stream from then on, not as pending (`slot`), and closes
/// when the stream ends.
pub(crate) async fn stream(
    State(state): State<EdgeState>,
    subscriber: Subscriber,
    Path(rid): Path<RestaurantId>,
    Query(query): Query<StreamQuery>,
    slot: Option<Extension<Slot>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let permit = state.admit(&subscriber.0)?;
    may_watch(&state, &subscriber.0, rid).await?;
    let since = match headers.get("last-event-id") {
        Some(v) => Some(Since::Seq(parse_cursor(v.to_str().unwrap_or("?"))?)),
        None => query.since.as_deref().map(parse_since).transpose()?,
    };
    let sub = Subscription::open(&state, rid, subscriber.0.viewer(), since).await?;
    let valid_for = subscriber.0.valid_for(SystemTime::now());
    let peer = Peer::new(&subscriber.0, Some(rid));
    let state_gzip = state.settings.sse_gzip;
    let watching = state.watchers.watch(rid, Transport::Sse, subscriber.0.role);
    let mut stream = SseStream::new(state, sub, valid_for, permit, peer);
    stream.watching = Some(watching);
    let gzip = state_gzip && ordercast_http::gzip::accepts_gzip(&headers);
    let body = match gzip {
        true => gzipped(stream),
        false => Body::from_stream(futures_util::stream::unfold(stream, |mut s| async move {
            s.next_chunk()
                .await
                .map(|chunk| (Ok::<_, Infallible>(chunk), s))
        })),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(Extension(slot)) = slot {
        slot.promote();
    }
    Ok(response)
}

/// The stream through one gzip compressor, flushed per chunk and finished
/// when the stream ends.
fn gzipped<E: Events>(stream: SseStream<E>) -> Body {
    let state = (stream, Some(SseGzip::new()));
    Body::from_stream(futures_util::stream::unfold(
        state,
        |(mut s, mut gzip)| async move {
            let encoded = match s.next_chunk().await {
                Some(chunk) => gzip.as_mut()?.chunk(&chunk),
                None => gzip.take()?.finish(),
            };
            Some((encoded, (s, gzip)))
        },
    ))
}

/// What an SSE stream writes: a subscription's batches and signals (tests
/// give their own).
pub(crate) trait Events: Send + 'static {
    /// The next batch after the cursor or signal, waiting for one.
    fn next(&mut self) -> impl Future<Output = Result<Next, EdgeError>> + Send;
    fn restaurant(&self) -> RestaurantId;
    fn role(&self) -> Role;
    fn cursor(&self) -> Seq;
}

impl Events for Subscription {
    fn next(&mut self) -> impl Future<Output = Result<Next, EdgeError>> + Send {
        Subscription::next(self)
    }

    fn restaurant(&self) -> RestaurantId {
        Subscription::restaurant(self)
    }

    fn role(&self) -> Role {
        Subscription::role(self)
    }

    fn cursor(&self) -> Seq {
        Subscription::cursor(self)
    }
}

/// One SSE response: a `retry:` hint and the cursor, then events and
/// `stale` / `live` signals, heartbeats while idle, and a last word when it
/// ends (drain, token expiry, failure).
pub(crate) struct SseStream<E> {
    state: EdgeState,
    sub: E,
    heartbeat: Interval,
    /// When the token expires; the stream ends then.
    expiry: Pin<Box<Sleep>>,
    pending: Option<Bytes>,
    done: bool,
    guard: ConnectionGuard,
    _permit: StreamSlot,
    /// Counted among the restaurant's subscribers while open.
    watching: Option<Watching>,
}

impl<E: Events> SseStream<E> {
    /// A stream of `events` for `peer`'s token, valid for `valid_for` more.
    pub(crate) fn new(
        state: EdgeState,
        events: E,
        valid_for: Duration,
        permit: StreamSlot,
        peer: Peer,
    ) -> Self {
        let heartbeat = state.settings.heartbeat;
        let hello = format!(
            "retry: {}\n: subscribed at {}\n\n",
            state.settings.sse_retry.as_millis(),
            events.cursor()
        );
        SseStream {
            guard: ConnectionGuard::new(&state.metrics, Transport::Sse, peer),
            heartbeat: tokio::time::interval_at(Instant::now() + heartbeat, heartbeat),
            expiry: Box::pin(tokio::time::sleep(valid_for)),
            pending: Some(Bytes::from(hello)),
            done: false,
            _permit: permit,
            watching: None,
            sub: events,
            state,
        }
    }

    /// The next bytes to write; `None` ends the response.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
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
                next = self.sub.next() => match next {
                    Ok(Next::Batch(batch)) if batch.frames.is_empty() => continue,
                    Ok(Next::Batch(batch)) => {
                        let chunk = concat(batch.frames.iter().map(|f| &f.sse));
                        self.state.metrics.delivered(Transport::Sse, batch.frames.iter().map(|f| (batch.kind, &**f)));
                        self.guard.delivered(batch.frames.len());
                        if let Some(last) = batch.frames.last() {
                            self.state.receipts.delivered(self.sub.restaurant(), self.sub.role(), last.seq);
                        }
                        self.heartbeat.reset();
                        return Some(chunk);
                    }
                    Ok(Next::Region(signal)) => {
                        self.heartbeat.reset();
                        return Some(signal_event(&signal));
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

/// One chunk of `parts`: the shared bytes themselves when there is one (the
/// usual batch: every subscriber writes the same allocation), a copy
/// otherwise.
fn concat<'a>(mut parts: impl ExactSizeIterator<Item = &'a Bytes> + Clone) -> Bytes {
    if parts.len() == 1 {
        return parts.next().expect("one part").clone();
    }
    let mut chunk = BytesMut::with_capacity(parts.clone().map(Bytes::len).sum());
    for part in parts {
        chunk.extend_from_slice(part);
    }
    chunk.freeze()
}

/// `event: stale` or `event: live` with the signal's JSON and no `id:`:
/// not an event, so it must not move the client's `Last-Event-ID`.
fn signal_event(signal: &Signal) -> Bytes {
    Bytes::from(format!(
        "event: {}\ndata: {}\n\n",
        signal.name(),
        signal.json()
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ordercast_core::event::EventDraft;
    use ordercast_core::{Audience, Envelope, EventType, Region};
    use tokio::sync::mpsc;

    use super::*;
    use crate::frame::Frame;
    use crate::metrics::Kind;
    use crate::regions::Stale;
    use crate::settings::EdgeSettings;
    use crate::subscription::Batch;
    use crate::testing::shared;

    const SEC: Duration = Duration::from_secs(1);

    /// Events and signals the test hands over when it likes.
    struct Scripted(mpsc::UnboundedReceiver<Next>);

    impl Events for Scripted {
        async fn next(&mut self) -> Result<Next, EdgeError> {
            match self.0.recv().await {
                Some(next) => Ok(next),
                None => std::future::pending().await,
            }
        }

        fn restaurant(&self) -> RestaurantId {
            RestaurantId::new()
        }

        fn role(&self) -> Role {
            Role::Kitchen
        }

        fn cursor(&self) -> Seq {
            Seq(4)
        }
    }

    /// Event `seq` of some restaurant.
    fn event(seq: u64) -> Next {
        let draft = EventDraft::new(
            EventType::Notification,
            Audience::default(),
            serde_json::json!({}),
        );
        let envelope = Envelope::seal(RestaurantId::new(), Seq(seq), Envelope::now(), None, draft);
        let frames = vec![Arc::new(Frame::from_envelope(&envelope))];
        Next::Batch(Batch {
            frames,
            kind: Kind::Live,
        })
    }

    /// A stream for a token valid `valid_for`, and where to hand it events.
    fn open(
        state: &EdgeState,
        valid_for: Duration,
    ) -> (SseStream<Scripted>, mpsc::UnboundedSender<Next>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let kitchen = crate::testing::kitchen(valid_for);
        let permit = state.admit(&kitchen).unwrap();
        let peer = Peer::new(&kitchen, None);
        (
            SseStream::new(state.clone(), Scripted(rx), valid_for, permit, peer),
            tx,
        )
    }

    /// The next chunk as text, and when it came.
    async fn next(stream: &mut SseStream<Scripted>, start: Instant) -> (String, u64) {
        let chunk = stream.next_chunk().await.expect("a chunk");
        (
            String::from_utf8(chunk.to_vec()).unwrap(),
            start.elapsed().as_secs(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_a_heartbeat_every_interval_and_an_event_postpones_it() {
        let state = shared(EdgeSettings::default());
        let start = Instant::now();
        let (mut stream, events) = open(&state, 3_600 * SEC);

        assert_eq!(
            next(&mut stream, start).await,
            ("retry: 2000\n: subscribed at 4\n\n".into(), 0)
        );
        assert_eq!(next(&mut stream, start).await, (":\n\n".into(), 15));
        assert_eq!(next(&mut stream, start).await, (":\n\n".into(), 30));
        tokio::time::sleep(10 * SEC).await;
        events.send(event(5)).unwrap();
        let (event, at) = next(&mut stream, start).await;
        assert!(event.starts_with("id: 5\nevent: notification\n"), "{event}");
        assert_eq!(at, 40);
        assert_eq!(next(&mut stream, start).await, (":\n\n".into(), 55));
    }

    #[tokio::test(start_paused = true)]
    async fn signals_are_named_events_without_an_id() {
        let state = shared(EdgeSettings::default());
        let start = Instant::now();
        let (mut stream, events) = open(&state, 3_600 * SEC);
        next(&mut stream, start).await;
        let rid: RestaurantId = "6f1c0d2e-0000-4000-8000-000000000001".parse().unwrap();
        let eu: Region = "eu".parse().unwrap();

        let stale = Stale {
            region: eu.clone(),
            last_seq: Seq(5),
            last_event_at: Some("2026-12-05T10:00:00.123456Z".parse().unwrap()),
            since: "2026-12-05T10:00:04.500Z".parse().unwrap(),
        };
        events.send(event(5)).unwrap();
        events
            .send(Next::Region(Signal::Stale {
                restaurant_id: rid,
                stale,
            }))
            .unwrap();
        events
            .send(Next::Region(Signal::Live {
                restaurant_id: rid,
                region: eu,
            }))
            .unwrap();

        assert!(next(&mut stream, start).await.0.starts_with("id: 5\n"));
        assert_eq!(
            next(&mut stream, start).await.0,
            format!(
                "event: stale\ndata: {{\"type\":\"stale\",\"restaurant_id\":\"{rid}\",\"region\":\"eu\",\
                 \"last_seq\":5,\"last_event_at\":\"2026-12-05T10:00:00.123456Z\",\
                 \"since\":\"2026-12-05T10:00:04.500Z\"}}\n\n"
            )
        );
        assert_eq!(
            next(&mut stream, start).await.0,
            format!(
                "event: live\ndata: {{\"type\":\"live\",\"restaurant_id\":\"{rid}\",\"region\":\"eu\"}}\n\n"
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_ends_when_the_token_expires() {
        let state = shared(EdgeSettings::default());
        let start = Instant::now();
        let (mut stream, _events) = open(&state, 40 * SEC);
        for at in [0, 15, 30] {
            assert_eq!(next(&mut stream, start).await.1, at);
        }

        assert_eq!(
            next(&mut stream, start).await,
            (": token expired\n\n".into(), 40)
        );
        assert!(stream.next_chunk().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_the_stream_with_a_retry_within_the_window() {
        let state = shared(EdgeSettings {
            drain_window: 5 * SEC,
            ..EdgeSettings::default()
        });
        let start = Instant::now();
        let (mut stream, _events) = open(&state, 3_600 * SEC);
        next(&mut stream, start).await;

        state.drain.cancel();
        let (last, _) = next(&mut stream, start).await;

        let retry: u64 = last
            .strip_prefix("retry: ")
            .and_then(|r| r.trim().parse().ok())
            .unwrap();
        assert!(retry < 5_000, "{last:?}");
        assert!(stream.next_chunk().await.is_none());
    }
}
