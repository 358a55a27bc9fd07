//! WebSocket: `GET /v1/ws`, many restaurants per socket (DESIGN §6).
//!
//! The socket task owns the socket: it reads client messages, writes
//! frames from a bounded queue (a write blocked past the write timeout cuts
//! the client) and pings. Each subscription is its own task feeding that
//! queue from its cursor, so a full queue only pauses this socket's
//! subscriptions and never the hub.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use ordercast_core::auth::Principal;
use ordercast_core::backoff::Backoff;
use ordercast_core::{Chain, RestaurantId, Seq};
use ordercast_http::HttpError;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use ordercast_http::Subscriber;

use crate::auth::may_watch;
use crate::frame::Frame;
use crate::metrics::{ConnectionGuard, Transport};
use crate::subscription::Subscription;
use crate::{EdgeError, EdgeState};

/// The subprotocol the server selects when the client offers it.
pub(crate) const PROTOCOL: &str = "ordercast.v1";

/// Close code when the token expires: reconnect with a fresh token.
const TOKEN_EXPIRED: u16 = 4001;

pub(crate) async fn upgrade(
    State(state): State<EdgeState>,
    subscriber: Subscriber,
    ws: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    let permit = state.admit()?;
    let max = state.settings.ws_max_message;
    Ok(ws
        .protocols([PROTOCOL])
        .max_message_size(max)
        .max_frame_size(max)
        // Small buffers: thousands of mostly idle sockets per process.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_future(session(socket, state, Arc::new(subscriber.0), permit))
        })
        .into_response())
}

/// A client → server message.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Subscribe {
        restaurant_id: RestaurantId,
        #[serde(default)]
        since: Option<Value>,
    },
    Unsubscribe {
        restaurant_id: RestaurantId,
    },
    Sync {
        restaurant_id: RestaurantId,
    },
    Ack {
        restaurant_id: RestaurantId,
        seq: Seq,
    },
    /// A fresh token for the same identity, sent before the current one
    /// expires: the connection and its subscriptions carry on.
    Refresh {
        token: String,
    },
    Ping,
}

/// What the socket task writes.
enum Out {
    /// An event of subscription `id`.
    Event {
        restaurant: RestaurantId,
        id: u64,
        frame: Arc<Frame>,
    },
    /// A control frame (`subscribed`, `snapshot`, `error`, …).
    Control(Value),
    /// Subscription `id` ended by itself (refused, or failed).
    Ended { restaurant: RestaurantId, id: u64 },
}

fn error_frame(
    code: &str,
    message: impl std::fmt::Display,
    restaurant: Option<RestaurantId>,
) -> Value {
    let mut frame = json!({"type": "error", "code": code, "message": message.to_string()});
    if let Some(rid) = restaurant {
        frame["restaurant_id"] = json!(rid);
    }
    frame
}

fn text(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

fn close(code: u16, reason: impl Into<Utf8Bytes>) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Inbound message rate: `rate` per second sustained, bursts of `2 × rate`.
fn inbound_limiter(rate: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = rate.saturating_mul(NonZeroU32::new(2).expect("non-zero"));
    DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

struct Session {
    state: EdgeState,
    principal: Arc<Principal>,
    tx: mpsc::Sender<Out>,
    subs: HashMap<RestaurantId, (u64, AbortHandle)>,
    acked: HashMap<RestaurantId, Seq>,
    next_id: u64,
}

/// Why the socket loop stopped, and what to tell the client.
struct Ending {
    reason: &'static str,
    close: Option<Message>,
}

impl Ending {
    fn quiet(reason: &'static str) -> Ending {
        Ending {
            reason,
            close: None,
        }
    }

    fn with(reason: &'static str, code: u16, text: impl Into<Utf8Bytes>) -> Ending {
        Ending {
            reason,
            close: Some(close(code, text)),
        }
    }
}

async fn session(
    socket: WebSocket,
    state: EdgeState,
    principal: Arc<Principal>,
    _permit: OwnedSemaphorePermit,
) {
    let mut guard = ConnectionGuard::new(&state.metrics, Transport::WebSocket);
    let (mut sink, mut inbound) = socket.split();
    let (tx, mut rx) = mpsc::channel(state.settings.ws_queue.max(1));
    let mut session = Session {
        state: state.clone(),
        principal,
        tx,
        subs: HashMap::new(),
        acked: HashMap::new(),
        next_id: 0,
    };
    let settings = &state.settings;
    let write_timeout = settings.write_timeout;
    let ping_every = settings.ws_ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let inbound_rate = inbound_limiter(settings.ws_rate);
    let expiry = tokio::time::sleep(session.principal.valid_for(SystemTime::now()));
    tokio::pin!(expiry);
    let mut expires_at = session.principal.expires_at;
    let ending = loop {
        let message = tokio::select! {
            biased;
            _ = state.drain.cancelled() => {
                let retry = state.drain_jitter().as_millis();
                break Ending::with("draining", close_code::RESTART, format!("retry={retry}"));
            }
            () = &mut expiry => break Ending::with("token_expired", TOKEN_EXPIRED, "token expired"),
            out = rx.recv() => match out.expect("the session holds a sender") {
                Out::Event { restaurant, id, frame } => {
                    if session.subs.get(&restaurant).map(|s| s.0) != Some(id) {
                        continue; // unsubscribed meanwhile
                    }
                    state.metrics.delivered(Transport::WebSocket, [&*frame]);
                    state.receipts.delivered(restaurant, session.principal.role, frame.seq);
                    Message::Text(frame.ws.clone())
                }
                Out::Control(value) => text(&value),
                Out::Ended { restaurant, id } => {
                    if session.subs.get(&restaurant).map(|s| s.0) == Some(id) {
                        session.subs.remove(&restaurant);
                    }
                    continue;
                }
            },
            inbound = inbound.next() => {
                last_heard = Instant::now();
                match inbound {
                    None | Some(Ok(Message::Close(_))) => break Ending::quiet("client_closed"),
                    Some(Err(e)) => break read_error(e),
                    Some(Ok(Message::Text(t))) => {
                        if inbound_rate.check().is_err() {
                            break Ending::with("rate_limited", close_code::POLICY, "message rate limit exceeded");
                        }
                        let reply = session.handle(t.as_str());
                        if session.principal.expires_at != expires_at {
                            // Refreshed: the new token's expiry ends the session.
                            expires_at = session.principal.expires_at;
                            let left = session.principal.valid_for(SystemTime::now());
                            expiry.as_mut().reset(Instant::now() + left);
                        }
                        match reply {
                            Some(reply) => text(&reply),
                            None => continue,
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if inbound_rate.check().is_err() {
                            break Ending::with("rate_limited", close_code::POLICY, "message rate limit exceeded");
                        }
                        text(&error_frame("invalid_message", "binary frames are not supported; send JSON text", None))
                    }
                    Some(Ok(_)) => continue, // ping / pong: already answered
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > 2 * ping_every {
                    break Ending::with("ping_timeout", close_code::AWAY, "no answer to pings");
                }
                Message::Ping(bytes::Bytes::new())
            }
        };
        match tokio::time::timeout(write_timeout, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break Ending::quiet("client_closed"),
            Err(_) => {
                state
                    .metrics
                    .slow_consumer_actions
                    .with_label_values(&["disconnected"])
                    .inc();
                break Ending::quiet("slow_consumer");
            }
        }
    };
    for (_, (_, task)) in session.subs.drain() {
        task.abort();
    }
    guard.set_reason(ending.reason);
    if let Some(close) = ending.close {
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
    }
}

/// A failed read: an oversized message closes with 1009, anything else
/// just ends the session.
fn read_error(e: axum::Error) -> Ending {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let too_big = e
        .into_inner()
        .downcast::<WsError>()
        .is_ok_and(|e| matches!(*e, WsError::Capacity(CapacityError::MessageTooLong { .. })));
    if too_big {
        Ending::with("message_too_large", close_code::SIZE, "message too large")
    } else {
        Ending::quiet("protocol_error")
    }
}

impl Session {
    /// Handles one client message; returns an immediate reply, if any.
    fn handle(&mut self, text: &str) -> Option<Value> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return Some(error_frame("invalid_message", e, None)),
        };
        match message {
            ClientMessage::Ping => Some(json!({"type": "pong"})),
            ClientMessage::Subscribe {
                restaurant_id,
                since,
            } => {
                let since = match since {
                    None | Some(Value::Null) => None,
                    Some(v) => match v.as_u64() {
                        Some(n) => Some(Seq(n)),
                        None => {
                            return Some(error_frame(
                                "invalid_cursor",
                                format!("since must be a non-negative integer, not {v}"),
                                Some(restaurant_id),
                            ));
                        }
                    },
                };
                self.start(restaurant_id, since, false)
            }
            ClientMessage::Sync { restaurant_id } => self.start(restaurant_id, None, true),
            ClientMessage::Unsubscribe { restaurant_id } => {
                match self.subs.remove(&restaurant_id) {
                    Some((_, task)) => {
                        task.abort();
                        Some(json!({"type": "unsubscribed", "restaurant_id": restaurant_id}))
                    }
                    None => Some(error_frame(
                        "not_subscribed",
                        "not subscribed to that restaurant",
                        Some(restaurant_id),
                    )),
                }
            }
            ClientMessage::Ack { restaurant_id, seq } => {
                if !self.subs.contains_key(&restaurant_id) {
                    return Some(error_frame(
                        "not_subscribed",
                        "not subscribed to that restaurant",
                        Some(restaurant_id),
                    ));
                }
                let acked = self.acked.entry(restaurant_id).or_default();
                *acked = (*acked).max(seq);
                None
            }
            ClientMessage::Refresh { token } => Some(self.refresh(&token)),
        }
    }

    /// Takes `token` in place of the connection's, if it is valid and names
    /// the same identity; otherwise the current token stays, until it
    /// expires.
    fn refresh(&mut self, token: &str) -> Value {
        let fresh = match self.state.verifier.verify(token) {
            Ok(principal) => principal,
            Err(e) => return error_frame("invalid_token", e, None),
        };
        if !self.principal.same_identity(&fresh) {
            return error_frame(
                "token_mismatch",
                "a refreshed token must name the same subject, role, restaurants, waiter and table session; reconnect to change them",
                None,
            );
        }
        let expires_at = fresh.expires_at;
        self.principal = Arc::new(fresh);
        json!({"type": "refreshed", "expires_at": expires_at})
    }

    /// Starts (or restarts) a subscription task.
    fn start(&mut self, restaurant: RestaurantId, since: Option<Seq>, sync: bool) -> Option<Value> {
        let limit = self.state.settings.max_subscriptions;
        if !self.subs.contains_key(&restaurant) && self.subs.len() >= limit {
            return Some(error_frame(
                "too_many_subscriptions",
                format!("at most {limit} subscriptions per connection"),
                Some(restaurant),
            ));
        }
        self.next_id += 1;
        let id = self.next_id;
        let task = tokio::spawn(subscription(
            self.state.clone(),
            self.principal.clone(),
            restaurant,
            since,
            sync,
            id,
            self.tx.clone(),
        ));
        if let Some((_, old)) = self.subs.insert(restaurant, (id, task.abort_handle())) {
            old.abort();
        }
        None
    }
}

/// The `error` frame's code and message for a refused subscription: the
/// problem's slug and detail, as HTTP would answer (database details are
/// logged, never sent).
fn refusal(e: impl Into<HttpError>) -> (String, String) {
    let e = e.into();
    let code = e.ws_code();
    (code, e.problem().detail)
}

/// One subscription: authorize, optionally snapshot, then deliver from the
/// cursor for as long as the socket lives.
async fn subscription(
    state: EdgeState,
    principal: Arc<Principal>,
    restaurant: RestaurantId,
    since: Option<Seq>,
    sync: bool,
    id: u64,
    tx: mpsc::Sender<Out>,
) {
    let refuse = |(code, message): (String, String)| {
        let tx = tx.clone();
        let frame = error_frame(&code, message, Some(restaurant));
        async move {
            let _ = tx.send(Out::Control(frame)).await;
            let _ = tx.send(Out::Ended { restaurant, id }).await;
        }
    };
    if let Err(e) = may_watch(&state, &principal, restaurant).await {
        return refuse(refusal(e)).await;
    }
    let since = if sync {
        match snapshot(&state, &principal, restaurant).await {
            Ok((seq, frame)) => {
                if tx.send(Out::Control(frame)).await.is_err() {
                    return;
                }
                Some(seq)
            }
            Err(e) => return refuse(refusal(e)).await,
        }
    } else {
        since
    };
    let mut sub = match Subscription::open(&state, restaurant, principal.viewer(), since).await {
        Ok(sub) => sub,
        Err(e) => return refuse(refusal(e)).await,
    };
    let subscribed = json!({"type": "subscribed", "restaurant_id": restaurant, "seq": sub.cursor(), "head": sub.head()});
    if tx.send(Out::Control(subscribed)).await.is_err() {
        return;
    }
    let mut syncing = sync;
    let mut backoff = Backoff::default();
    loop {
        let batch = if syncing {
            match sub.ready().await {
                Ok(Some(batch)) => Ok(batch),
                Ok(None) => {
                    syncing = false;
                    let done = json!({"type": "sync_complete", "restaurant_id": restaurant, "seq": sub.cursor()});
                    if tx.send(Out::Control(done)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(e) => Err(e),
            }
        } else {
            sub.next().await
        };
        match batch {
            Ok(batch) => {
                backoff.reset();
                for frame in batch.frames {
                    if tx
                        .send(Out::Event {
                            restaurant,
                            id,
                            frame,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) => {
                // The cursor is intact: retry quietly until the source answers.
                tracing::warn!(%restaurant, error = %Chain(&e), "subscription catch-up failed; retrying");
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// Open orders the principal may see and the seq they reflect.
async fn snapshot(
    state: &EdgeState,
    principal: &Principal,
    restaurant: RestaurantId,
) -> Result<(Seq, Value), EdgeError> {
    let snapshot = state
        .store
        .visible_orders(restaurant, &principal.viewer(), true)
        .await?;
    let frame = json!({
        "type": "snapshot",
        "restaurant_id": restaurant,
        "seq": snapshot.seq,
        "orders": snapshot.orders,
        "truncated": snapshot.truncated,
    });
    Ok((snapshot.seq, frame))
}
