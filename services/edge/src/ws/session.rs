//! The socket task. It owns the socket: it reads client messages, writes
//! what the subscriptions queue (a write blocked past the write timeout
//! cuts the client), pings, and ends the session on drain, token expiry,
//! abuse, a silent peer or a close. Generic over the socket's two halves,
//! so it runs in tests without one.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message, close_code};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use ordercast_core::auth::Principal;
use ordercast_core::{RestaurantId, Seq};
use ordercast_http::{HttpError, StreamToken};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio::time::{Instant, Interval, Sleep};
use tracing::Instrument;

use super::budget::SyncBudget;
use super::command::{self, Command};
use super::protocol::{ClientMessage, Hello, Limits, ServerMessage, TOKEN_EXPIRED, close};
use super::subscription::{self, Out, Request};
use crate::metrics::{ConnectionGuard, Peer, Transport};
use crate::state::EdgeState;
use crate::subscription::Since;

/// Why the session ended, and what to tell the client.
struct Ending {
    reason: &'static str,
    close: Option<Message>,
    /// The client closed: its close is answered with the same code.
    echo: bool,
}

impl Ending {
    fn quiet(reason: &'static str) -> Ending {
        Ending {
            reason,
            close: None,
            echo: false,
        }
    }

    fn with(reason: &'static str, code: u16, text: impl Into<String>) -> Ending {
        Ending {
            reason,
            close: Some(close(code, text.into())),
            echo: false,
        }
    }
}

/// What the session does next.
enum Step {
    Write(Message),
    Nothing,
    End(Ending),
}

/// One subscription of the socket.
struct Sub {
    id: u64,
    task: AbortHandle,
    /// The last event written to the socket.
    written: Seq,
    /// The client acknowledges events: its acks, not the writes, are its
    /// delivery receipts.
    acks: bool,
}

/// One WebSocket session.
struct Session {
    state: EdgeState,
    principal: Arc<Principal>,
    tx: mpsc::Sender<Out>,
    rx: mpsc::Receiver<Out>,
    subs: HashMap<RestaurantId, Sub>,
    next_id: u64,
    ping: Interval,
    last_heard: Instant,
    inbound_rate: DefaultDirectRateLimiter,
    /// What this socket's `sync`s may still cost.
    sync_budget: SyncBudget,
    /// When the token expires.
    expiry: Pin<Box<Sleep>>,
    /// The token commands run with: the one the socket opened with, or the
    /// last accepted `refresh`.
    token: StreamToken,
    /// Commands awaiting their reply (at most [`command::MAX_IN_FLIGHT`]).
    commands: Arc<Semaphore>,
    /// Events written, for the close line.
    delivered: usize,
}

/// Who opened the socket, and how.
pub(crate) struct Opened {
    pub principal: Arc<Principal>,
    pub token: StreamToken,
    /// The subprotocol the handshake selected.
    pub protocol: Option<&'static str>,
}

/// Runs the session over the socket's halves until it ends.
#[tracing::instrument(name = "ws_session", skip_all, fields(role = opened.principal.role.as_str()))]
pub(crate) async fn run<S, I>(mut sink: S, mut inbound: I, state: EdgeState, opened: Opened)
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    I: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let peer = Peer::new(&opened.principal, None);
    let mut guard = ConnectionGuard::new(&state.metrics, Transport::WebSocket, peer);
    let hello = hello(&state, &opened);
    let mut session = Session::new(state, opened);
    let greeted = sink.send(hello.frame()).await;
    let ending = loop {
        if greeted.is_err() {
            break Ending::quiet("client_closed");
        }
        let message = match session.step(&mut inbound).await {
            Step::Write(message) => message,
            Step::Nothing => continue,
            Step::End(ending) => break ending,
        };
        // The socket itself times out a write that cannot progress
        // (ORDERCAST_WRITE_TIMEOUT, set on every connection by the server).
        if let Err(e) = sink.send(message).await {
            if !timed_out(e) {
                break Ending::quiet("client_closed");
            }
            let cut = &session.state.metrics.slow_consumer_actions;
            cut.with_label_values(&["disconnected"]).inc();
            break Ending::quiet("slow_consumer");
        }
    };
    guard.delivered(session.delivered);
    let watched: Vec<String> = session.subs.keys().map(ToString::to_string).collect();
    guard.set_restaurants(watched.join(","));
    for sub in session.subs.into_values() {
        sub.task.abort();
    }
    guard.set_reason(ending.reason);
    let bye = async {
        match ending.close {
            Some(close) => sink.send(close).await,
            // The socket queued the echo when it read the client's close;
            // closing the sink writes it (RFC 6455 §5.5.1).
            None if ending.echo => sink.close().await,
            None => Ok(()),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
}

/// The first frame: what the client needs to know to keep to the limits.
fn hello(state: &EdgeState, opened: &Opened) -> ServerMessage {
    let settings = &state.settings;
    ServerMessage::Hello(Hello {
        server: "ordercast",
        version: env!("CARGO_PKG_VERSION"),
        protocol: opened.protocol,
        ping_interval_ms: settings.ws_ping_interval.as_millis() as u64,
        expires_at: opened.principal.expires_at,
        limits: Limits {
            max_message_bytes: settings.ws_max_message,
            max_subscriptions: settings.max_subscriptions,
            messages_per_second: settings.ws_rate,
            commands_in_flight: command::MAX_IN_FLIGHT,
        },
    })
}

/// Inbound message rate: `rate` per second sustained, bursts of `2 × rate`.
fn inbound_limiter(rate: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = rate.saturating_mul(NonZeroU32::new(2).expect("non-zero"));
    DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

impl Session {
    fn new(state: EdgeState, opened: Opened) -> Session {
        let Opened {
            principal, token, ..
        } = opened;
        let settings = &state.settings;
        let (tx, rx) = mpsc::channel(settings.ws_queue.max(1));
        let every = settings.ws_ping_interval;
        Session {
            ping: tokio::time::interval_at(Instant::now() + every, every),
            last_heard: Instant::now(),
            inbound_rate: inbound_limiter(settings.ws_rate),
            sync_budget: SyncBudget::new(settings.ws_sync_budget),
            expiry: Box::pin(tokio::time::sleep(principal.valid_for(SystemTime::now()))),
            delivered: 0,
            tx,
            rx,
            subs: HashMap::new(),
            next_id: 0,
            principal,
            token,
            commands: Arc::new(Semaphore::new(command::MAX_IN_FLIGHT)),
            state,
        }
    }

    /// Waits for the next thing to do.
    async fn step<I>(&mut self, inbound: &mut I) -> Step
    where
        I: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        tokio::select! {
            biased;
            _ = self.state.drain.cancelled() => {
                let retry = self.state.drain_jitter().as_millis();
                Step::End(Ending::with("draining", close_code::RESTART, format!("retry={retry}")))
            }
            () = &mut self.expiry => {
                Step::End(Ending::with("token_expired", TOKEN_EXPIRED, "token expired"))
            }
            out = self.rx.recv() => self.queued(out.expect("the session holds a sender")),
            message = inbound.next() => {
                self.last_heard = Instant::now();
                self.received(message)
            }
            _ = self.ping.tick() => {
                if self.last_heard.elapsed() > 2 * self.state.settings.ws_ping_interval {
                    Step::End(Ending::with("ping_timeout", close_code::AWAY, "no answer to pings"))
                } else {
                    Step::Write(Message::Ping(bytes::Bytes::new()))
                }
            }
        }
    }

    /// What a subscription queued.
    fn queued(&mut self, out: Out) -> Step {
        match out {
            Out::Event {
                restaurant,
                id,
                frame,
                kind,
            } => {
                let Some(sub) = self.subs.get_mut(&restaurant).filter(|s| s.id == id) else {
                    return Step::Nothing; // unsubscribed meanwhile
                };
                sub.written = frame.seq;
                self.delivered += 1;
                self.state
                    .metrics
                    .delivered(Transport::WebSocket, [(kind, &*frame)]);
                if !sub.acks {
                    let role = self.principal.role;
                    self.state.receipts.delivered(restaurant, role, frame.seq);
                }
                Step::Write(Message::Text(frame.ws.clone()))
            }
            Out::Signal {
                restaurant,
                id,
                signal,
            } => match self.subs.get(&restaurant).is_some_and(|s| s.id == id) {
                true => Step::Write(Message::Text(signal.json().into())),
                false => Step::Nothing, // unsubscribed meanwhile
            },
            Out::Snapshot {
                restaurant,
                id,
                message,
            } => {
                if self.subs.get(&restaurant).is_none_or(|s| s.id != id) {
                    return Step::Nothing; // replaced or unsubscribed meanwhile
                }
                let json = serde_json::to_string(&message).expect("server messages serialize");
                self.sync_budget.snapshot_sent(json.len());
                Step::Write(Message::Text(json.into()))
            }
            Out::Control(message) => Step::Write(message.frame()),
            Out::Ended { restaurant, id } => {
                if self.subs.get(&restaurant).is_some_and(|s| s.id == id) {
                    self.subs.remove(&restaurant);
                }
                Step::Nothing
            }
        }
    }

    /// What the client sent.
    fn received(&mut self, message: Option<Result<Message, axum::Error>>) -> Step {
        let text = match message {
            None => return Step::End(Ending::quiet("client_closed")),
            // Echo the client's close (RFC 6455 §5.5.1), so it sees a clean
            // close with its own code.
            Some(Ok(Message::Close(_))) => {
                return Step::End(Ending {
                    echo: true,
                    ..Ending::quiet("client_closed")
                });
            }
            Some(Err(e)) => return Step::End(read_error(e)),
            Some(Ok(Message::Text(text))) => Some(text),
            Some(Ok(Message::Binary(_))) => None,
            Some(Ok(_)) => return Step::Nothing, // ping / pong: already answered
        };
        if self.inbound_rate.check().is_err() {
            let ending = Ending::with(
                "rate_limited",
                close_code::POLICY,
                "message rate limit exceeded",
            );
            return Step::End(ending);
        }
        let reply = match text {
            Some(text) => self.handle(text.as_str()),
            None => Some(ServerMessage::error(
                "invalid_message",
                "binary frames are not supported; send JSON text",
                None,
            )),
        };
        reply.map_or(Step::Nothing, |m| Step::Write(m.frame()))
    }

    /// Handles one client message; returns the immediate reply, if any.
    fn handle(&mut self, text: &str) -> Option<ServerMessage> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return Some(ServerMessage::error("invalid_message", e, None)),
        };
        match message {
            ClientMessage::Ping => Some(ServerMessage::Pong),
            ClientMessage::Subscribe {
                restaurant_id,
                since,
            } => match parse_since(since) {
                Ok(since) => self.start(restaurant_id, since, false),
                Err(message) => Some(ServerMessage::error(
                    "invalid_cursor",
                    message,
                    Some(restaurant_id),
                )),
            },
            ClientMessage::Sync { restaurant_id } => match self.sync_budget.start_sync() {
                Ok(()) => self.start(restaurant_id, None, true),
                Err(wait) => Some(sync_limited(restaurant_id, wait)),
            },
            ClientMessage::Unsubscribe { restaurant_id } => {
                match self.subs.remove(&restaurant_id) {
                    Some(sub) => {
                        sub.task.abort();
                        Some(ServerMessage::Unsubscribed { restaurant_id })
                    }
                    None => Some(not_subscribed(restaurant_id)),
                }
            }
            ClientMessage::Ack {
                restaurant_id,
                seq,
                id,
            } => self.ack(restaurant_id, seq, id),
            ClientMessage::Refresh { token } => Some(self.refresh(token)),
            ClientMessage::Command { id, fields } => self.command(id, fields),
        }
    }

    /// From the first ack, the client's acks are its delivery receipts for
    /// the restaurant (an ack beyond what was written counts as what was).
    /// With an `id`, the ack is answered by a `reply` (instead of an
    /// `error` when not subscribed).
    fn ack(
        &mut self,
        restaurant: RestaurantId,
        seq: Seq,
        id: Option<String>,
    ) -> Option<ServerMessage> {
        let Some(sub) = self.subs.get_mut(&restaurant) else {
            return Some(match id {
                Some(id) => command::failed(id, HttpError::NotFound("subscription")),
                None => not_subscribed(restaurant),
            });
        };
        sub.acks = true;
        let upto = seq.min(sub.written);
        if upto > Seq::ZERO {
            let role = self.principal.role;
            self.state.receipts.delivered(restaurant, role, upto);
        }
        id.map(|id| ServerMessage::Reply {
            id,
            ok: true,
            status: 200,
            result: Some(serde_json::json!({"restaurant_id": restaurant, "seq": upto})),
            version: None,
            replayed: false,
            problem: None,
            retry_after: None,
        })
    }

    /// Starts a command; its reply is queued when the api answers. Beyond
    /// the commands in flight, it is refused at once.
    fn command(
        &mut self,
        id: String,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Option<ServerMessage> {
        let command = match Command::parse(id, fields) {
            Ok(command) => command,
            Err(reply) => return Some(*reply),
        };
        let Ok(permit) = self.commands.clone().try_acquire_owned() else {
            let busy = HttpError::TooManyCommands(command::MAX_IN_FLIGHT);
            return Some(command::failed(command.id().to_owned(), busy));
        };
        let (api, token, tx) = (self.state.api.clone(), self.token.clone(), self.tx.clone());
        let span = tracing::info_span!("ws_command");
        tokio::spawn(
            async move {
                let reply = command.run(&api, &token.0).await;
                drop(permit);
                // The session may have ended meanwhile: the command is done
                // anyway, and a resend with its id is answered the same.
                let _ = tx.send(Out::control(reply)).await;
            }
            .instrument(span),
        );
        None
    }

    /// Takes `token` in place of the connection's, if it is valid and names
    /// the same identity; otherwise the current token stays, until it
    /// expires. The new token's expiry ends the session.
    fn refresh(&mut self, token: String) -> ServerMessage {
        let fresh = match self.state.verifier.verify(&token) {
            Ok(principal) => principal,
            Err(e) => return ServerMessage::error("invalid_token", e, None),
        };
        if !self.principal.same_identity(&fresh) {
            return ServerMessage::error(
                "token_mismatch",
                "a refreshed token must name the same subject, role, restaurants, waiter and table session; reconnect to change them",
                None,
            );
        }
        let expires_at = fresh.expires_at;
        let left = fresh.valid_for(SystemTime::now());
        self.principal = Arc::new(fresh);
        self.token = StreamToken(token);
        self.expiry.as_mut().reset(Instant::now() + left);
        ServerMessage::Refreshed { expires_at }
    }

    /// Starts (or restarts) a subscription task.
    fn start(
        &mut self,
        restaurant: RestaurantId,
        since: Option<Since>,
        sync: bool,
    ) -> Option<ServerMessage> {
        let limit = self.state.settings.max_subscriptions;
        if !self.subs.contains_key(&restaurant) && self.subs.len() >= limit {
            return Some(ServerMessage::error(
                "too_many_subscriptions",
                format!("at most {limit} subscriptions per connection"),
                Some(restaurant),
            ));
        }
        self.next_id += 1;
        let request = Request {
            restaurant,
            since,
            sync,
            id: self.next_id,
        };
        let task = tokio::spawn(subscription::run(
            self.state.clone(),
            self.principal.clone(),
            request,
            self.tx.clone(),
        ));
        let previous = self.subs.insert(
            restaurant,
            Sub {
                id: self.next_id,
                task: task.abort_handle(),
                written: Seq::ZERO,
                acks: false,
            },
        );
        if let Some(previous) = previous {
            previous.task.abort();
            let sub = self.subs.get_mut(&restaurant).expect("just inserted");
            (sub.written, sub.acks) = (previous.written, previous.acks);
        }
        None
    }
}

/// A `sync` refused because the socket's snapshots spent its budget; its
/// subscriptions go on.
fn sync_limited(restaurant: RestaurantId, wait: Duration) -> ServerMessage {
    ServerMessage::error(
        "sync_limited",
        format!(
            "this connection's snapshots used up its sync budget (ORDERCAST_WS_SYNC_BUDGET); retry in {} s",
            wait.as_secs() + 1
        ),
        Some(restaurant),
    )
}

fn not_subscribed(restaurant: RestaurantId) -> ServerMessage {
    ServerMessage::error(
        "not_subscribed",
        "not subscribed to that restaurant",
        Some(restaurant),
    )
}

/// A `subscribe`'s `since`: absent or `null` (from now), a seq, or an
/// RFC 3339 time as a string.
fn parse_since(since: Option<serde_json::Value>) -> Result<Option<Since>, String> {
    let invalid = |v| format!("since must be a non-negative integer or an RFC 3339 time, not {v}");
    match since {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => match crate::subscription::parse_since(&text) {
            Ok(Since::Time(at)) => Ok(Some(Since::Time(at))),
            _ => Err(invalid(serde_json::Value::String(text))),
        },
        Some(v) => v
            .as_u64()
            .map(|n| Some(Since::Seq(Seq(n))))
            .ok_or_else(|| invalid(v)),
    }
}

/// A write failed because the socket's write timeout ran out.
fn timed_out(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    e.into_inner()
        .downcast::<WsError>()
        .is_ok_and(|e| matches!(&*e, WsError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut))
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

#[cfg(test)]
mod tests {
    use axum::extract::ws::CloseFrame;
    use serde_json::json;

    use super::*;
    use crate::settings::EdgeSettings;
    use crate::testing::{kitchen, kitchen_token, shared, ws_session};

    const HOUR: Duration = Duration::from_secs(3_600);

    fn closed_with(message: Message) -> (u16, String) {
        match message {
            Message::Close(Some(CloseFrame { code, reason })) => (code, reason.to_string()),
            other => panic!("not a close frame: {other:?}"),
        }
    }

    fn settings(edit: impl FnOnce(&mut EdgeSettings)) -> EdgeState {
        let mut settings = EdgeSettings::default();
        edit(&mut settings);
        shared(settings)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_cut_after_two_intervals() {
        let state = settings(|s| s.ws_ping_interval = Duration::from_secs(30));
        let start = Instant::now();
        let mut peer = ws_session(&state, kitchen(HOUR));

        assert!(matches!(peer.next().await, Message::Ping(_)));
        assert!(matches!(peer.next().await, Message::Ping(_)));
        let (code, _) = closed_with(peer.next().await);

        assert_eq!(code, close_code::AWAY);
        assert_eq!(start.elapsed(), Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_pings_stays_connected() {
        let state = settings(|s| s.ws_ping_interval = Duration::from_secs(30));
        let mut peer = ws_session(&state, kitchen(HOUR));
        for _ in 0..10 {
            assert!(matches!(peer.next().await, Message::Ping(_)));
            peer.send(Message::Pong(bytes::Bytes::new()));
        }
        peer.send_json(json!({"type": "ping"}));
        assert_eq!(peer.next_json().await["type"], "pong");
    }

    #[tokio::test(start_paused = true)]
    async fn the_session_ends_with_4001_when_its_token_expires() {
        let state = settings(|s| s.ws_ping_interval = 24 * HOUR);
        let start = Instant::now();
        let mut peer = ws_session(&state, kitchen(Duration::from_secs(120)));

        let (code, _) = closed_with(peer.next().await);

        assert_eq!(code, TOKEN_EXPIRED);
        // The token's expiry plus the verifier's leeway (rounded to seconds).
        let ended = start.elapsed().as_secs();
        assert!((149..=152).contains(&ended), "ended after {ended} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refreshed_token_moves_the_end_of_the_session() {
        let state = settings(|s| s.ws_ping_interval = 24 * HOUR);
        let start = Instant::now();
        let mut peer = ws_session(&state, kitchen(Duration::from_secs(120)));
        let later = kitchen_token(Duration::from_secs(600));

        peer.send_json(json!({"type": "refresh", "token": later}));
        assert_eq!(peer.next_json().await["type"], "refreshed");
        let (code, _) = closed_with(peer.next().await);

        assert_eq!(code, TOKEN_EXPIRED);
        let ended = start.elapsed().as_secs();
        assert!((629..=632).contains(&ended), "ended after {ended} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_closes_with_1012_and_a_retry_within_the_window() {
        let state = settings(|s| s.drain_window = Duration::from_secs(5));
        let mut peer = ws_session(&state, kitchen(HOUR));

        state.drain.cancel();
        let (code, reason) = closed_with(peer.next().await);

        assert_eq!(code, close_code::RESTART);
        let retry: u64 = reason.strip_prefix("retry=").unwrap().parse().unwrap();
        assert!(retry < 5_000, "{reason}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_flood_is_closed_with_1008_after_the_burst() {
        let state = settings(|s| s.ws_rate = 5);
        let mut peer = ws_session(&state, kitchen(HOUR));
        for _ in 0..11 {
            peer.send_json(json!({"type": "ping"}));
        }
        for _ in 0..10 {
            assert_eq!(peer.next_json().await["type"], "pong");
        }
        let (code, _) = closed_with(peer.next().await);
        assert_eq!(code, close_code::POLICY);
    }

    /// An api whose every answer is the `Authorization` it was called with;
    /// `hang` makes it never answer.
    fn echo_api(hang: bool) -> crate::ApiLink {
        let echo = move |headers: axum::http::HeaderMap| async move {
            if hang {
                std::future::pending::<()>().await;
            }
            let bearer = headers["authorization"].to_str().unwrap().to_owned();
            axum::Json(json!({"authorization": bearer}))
        };
        let router = axum::Router::new().route("/{*path}", axum::routing::post(echo));
        crate::ApiLink::in_process(router)
    }

    fn order_status(id: &str) -> serde_json::Value {
        json!({"type": "command", "id": id, "command": "order.status",
               "restaurant_id": "6f1c0d2e-0000-4000-8000-000000000001",
               "order_id": "6f1c0d2e-0000-4000-8000-000000000002", "status": "accepted"})
    }

    #[tokio::test(start_paused = true)]
    async fn commands_beyond_those_in_flight_are_refused_at_once() {
        let state = crate::testing::shared_with_api(EdgeSettings::default(), echo_api(true));
        let mut peer = ws_session(&state, kitchen(HOUR));

        for n in 0..=command::MAX_IN_FLIGHT {
            peer.send_json(order_status(&format!("c-{n}")));
        }

        let reply = peer.next_json().await;
        assert_eq!(reply["id"], format!("c-{}", command::MAX_IN_FLIGHT));
        assert_eq!(reply["status"], 429);
        assert_eq!(
            reply["problem"]["type"],
            "https://ordercast.dev/problems/too-many-commands"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_refresh_commands_run_with_the_new_token() {
        let state = crate::testing::shared_with_api(EdgeSettings::default(), echo_api(false));
        let mut peer = ws_session(&state, kitchen(HOUR));
        let later = kitchen_token(2 * HOUR);

        peer.send_json(json!({"type": "refresh", "token": later}));
        assert_eq!(peer.next_json().await["type"], "refreshed");
        peer.send_json(order_status("c-1"));
        let reply = peer.next_json().await;

        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["result"]["authorization"], format!("Bearer {later}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_message_gets_an_error_frame_and_the_session_goes_on() {
        let state = settings(|_| {});
        let mut peer = ws_session(&state, kitchen(HOUR));
        let rid = "6f1c0d2e-0000-4000-8000-000000000001";

        peer.send_json(json!({"type": "launch"}));
        peer.send(Message::Binary(bytes::Bytes::from_static(b"\x00")));
        peer.send_json(json!({"type": "subscribe", "restaurant_id": rid, "since": -1}));
        peer.send_json(json!({"type": "ack", "restaurant_id": rid, "seq": 1}));
        peer.send_json(json!({"type": "ping"}));

        for code in [
            "invalid_message",
            "invalid_message",
            "invalid_cursor",
            "not_subscribed",
        ] {
            let error = peer.next_json().await;
            assert_eq!(
                (error["type"].as_str(), error["code"].as_str()),
                (Some("error"), Some(code))
            );
        }
        assert_eq!(peer.next_json().await["type"], "pong");
    }
}
