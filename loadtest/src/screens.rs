//! Screens: one client each, on SSE, WebSocket or long-poll, resuming by
//! cursor after every cut, recording every event it reads.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::ctx::{Ctx, Phase};
use crate::ledger::{Kind, Viewer};
use crate::scenario::Transport;
use crate::verify::{ClientLog, Receipt};

/// One simulated screen.
pub struct Screen {
    pub id: usize,
    pub restaurant: usize,
    pub viewer: Viewer,
    pub transport: Transport,
    pub token: Arc<str>,
    /// The region whose edges it connects to (0 in a single-region run).
    pub region: usize,
    /// That region's edges: it starts on one and moves to the next when
    /// its edge fails.
    pub edges: Arc<[String]>,
    /// Chaos: cut the connection now.
    pub cut: Arc<Notify>,
}

/// The envelope fields the tester reads.
#[derive(Deserialize)]
pub(crate) struct Head<'a> {
    #[serde(borrow)]
    pub(crate) restaurant_id: Cow<'a, str>,
    pub(crate) seq: u64,
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) ts: Cow<'a, str>,
}

impl Head<'_> {
    /// The commit time, µs since 1970 (0 if unreadable).
    pub(crate) fn ts_us(&self) -> u64 {
        chrono::DateTime::parse_from_rfc3339(&self.ts)
            .map(|t| t.timestamp_micros().max(0) as u64)
            .unwrap_or(0)
    }
}

/// A `stale` / `live` signal (regions mode): not an event, no seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Stale,
    Live,
}

impl Signal {
    /// The signal an SSE `event:` name or a WebSocket frame `type` names.
    pub(crate) fn named(name: &str) -> Option<Signal> {
        match name {
            "stale" => Some(Signal::Stale),
            "live" => Some(Signal::Live),
            _ => None,
        }
    }
}

/// Why a connection ended.
pub(crate) enum End {
    /// The screen has everything (or the run is over).
    Finished,
    /// Cut by the chaos option: resume at once.
    Cut,
    /// The server ended it, possibly with a reconnect delay.
    Closed,
    /// It failed or could not be opened.
    Failed(String),
}

struct State {
    log: ClientLog,
    cursor: u64,
    /// Settle: the last seq this screen is entitled to.
    target: Option<u64>,
    /// When the connection was lost, while it is.
    lost_at: Option<u64>,
    /// The server's reconnect delay (SSE `retry:`, WebSocket close reason).
    retry_hint: Option<Duration>,
    /// Wall µs when the current connection was established.
    connected_wall: Option<u64>,
    /// Long-poll: the last answer said the home region is stale.
    poll_stale: bool,
}

impl State {
    fn established(&mut self, ctx: &Ctx) {
        let now = ctx.stats.now_us();
        self.log.connections.push(now);
        self.connected_wall = Some(ctx.stats.wall_us(now));
        ctx.stats.connects.fetch_add(1, Relaxed);
        ctx.stats.open.fetch_add(1, Relaxed);
        if let Some(lost) = self.lost_at.take() {
            ctx.stats.reconnected(now - lost);
        }
    }

    fn disconnected(&mut self, ctx: &Ctx) {
        if self.connected_wall.take().is_some() {
            ctx.stats.open.fetch_sub(1, Relaxed);
        }
        self.lost_at.get_or_insert_with(|| ctx.stats.now_us());
    }

    fn receive(&mut self, ctx: &Ctx, screen: &Screen, head: &Head<'_>) {
        let read_us = ctx.stats.now_us();
        let foreign = head.restaurant_id != ctx.restaurants[screen.restaurant].id;
        let ts_us = head.ts_us();
        let live = self.connected_wall.is_some_and(|c| c <= ts_us);
        let remote = ctx.restaurants[screen.restaurant].home != screen.region;
        ctx.stats.delivered(
            screen.transport,
            read_us,
            ts_us,
            live,
            screen.region,
            remote,
        );
        self.log.receipts.push(Receipt {
            seq: head.seq,
            read_us,
            conn: self.log.connections.len().saturating_sub(1) as u32,
            kind: Kind::parse(&head.kind),
            foreign,
        });
        if !foreign {
            self.cursor = self.cursor.max(head.seq);
        }
    }

    /// A `stale` or `live` signal: counted, never a receipt.
    fn signal(&mut self, ctx: &Ctx, screen: &Screen, signal: Signal) {
        let for_local = !self.log.remote;
        ctx.stats.signal(
            ctx.stats.now_us(),
            screen.region,
            signal == Signal::Stale,
            for_local,
        );
    }

    /// Whether the screen may stop: the run is over, or it is settling
    /// and has read up to its last entitled event.
    fn done(&mut self, ctx: &Ctx, screen: &Screen, phase: Phase) -> bool {
        match phase {
            Phase::Traffic => false,
            Phase::Done => true,
            Phase::Settle => {
                let target = *self.target.get_or_insert_with(|| {
                    ctx.ledger
                        .book(screen.restaurant)
                        .last_entitled(screen.viewer, self.log.start)
                });
                self.cursor >= target
            }
        }
    }
}

/// Runs a screen until the run ends; returns what it read.
pub async fn run(ctx: Arc<Ctx>, screen: Screen, start: u64) -> ClientLog {
    let mut st = State {
        log: ClientLog {
            id: screen.id,
            restaurant: screen.restaurant,
            viewer: screen.viewer,
            transport: screen.transport,
            region: screen.region,
            remote: ctx.restaurants[screen.restaurant].home != screen.region,
            start,
            receipts: Vec::new(),
            connections: Vec::new(),
        },
        cursor: start,
        target: None,
        lost_at: None,
        retry_hint: None,
        connected_wall: None,
        poll_stale: false,
    };
    let mut phase = ctx.phase.clone();
    let edges = screen.edges.clone();
    let mut edge = screen.id % edges.len();
    let mut failures = 0u32;
    loop {
        let now = *phase.borrow_and_update();
        if st.done(&ctx, &screen, now) {
            break;
        }
        let base = edges[edge].trim_end_matches('/');
        let end = match screen.transport {
            Transport::Sse => sse(&ctx, &screen, base, &mut st, &mut phase).await,
            Transport::Ws => ws(&ctx, &screen, base, &mut st, &mut phase).await,
            Transport::Poll => poll(&ctx, &screen, base, &mut st, &mut phase).await,
        };
        st.disconnected(&ctx);
        let pause = match end {
            End::Finished => break,
            End::Cut => {
                ctx.stats.drops.fetch_add(1, Relaxed);
                failures = 0;
                Duration::ZERO
            }
            End::Closed => {
                ctx.stats.server_closes.fetch_add(1, Relaxed);
                failures = 0;
                edge = (edge + 1) % edges.len();
                st.retry_hint.take().unwrap_or(Duration::ZERO)
            }
            End::Failed(why) => {
                ctx.stats.connect_failures.fetch_add(1, Relaxed);
                if failures == 0 {
                    ctx.note_failure(&why);
                }
                failures += 1;
                edge = (edge + 1) % edges.len();
                st.retry_hint.take().unwrap_or_else(|| backoff(failures))
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = phase.wait_for(|p| *p == Phase::Done) => {}
            }
        }
    }
    st.log
}

/// 100 ms doubling to 2 s, with full jitter.
pub(crate) fn backoff(failures: u32) -> Duration {
    let cap = Duration::from_millis(100 * 2u64.pow(failures.min(5))).min(Duration::from_secs(2));
    cap.mul_f64(rand::random::<f64>())
}

/// Waits for a phase change and says whether the screen should stop.
async fn phase_says_stop(
    ctx: &Ctx,
    screen: &Screen,
    st: &mut State,
    phase: &mut watch::Receiver<Phase>,
) -> bool {
    if phase.changed().await.is_err() {
        return std::future::pending().await;
    }
    let now = *phase.borrow_and_update();
    st.done(ctx, screen, now)
}

async fn sse(
    ctx: &Ctx,
    screen: &Screen,
    base: &str,
    st: &mut State,
    phase: &mut watch::Receiver<Phase>,
) -> End {
    let rid = &ctx.restaurants[screen.restaurant].id;
    let request = ctx
        .streams
        .get(format!("{base}/v1/restaurants/{rid}/stream"))
        .bearer_auth(&*screen.token)
        .header("accept", "text/event-stream")
        .header("last-event-id", st.cursor.to_string())
        .send();
    let response = match request.await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            st.retry_hint = retry_after(&r);
            return End::Failed(format!("SSE {base}: HTTP {}", r.status()));
        }
        Err(e) => return End::Failed(format!("SSE {base}: {}", e.without_url())),
    };
    st.established(ctx);
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    loop {
        tokio::select! {
            chunk = body.next() => match chunk {
                None => return End::Closed,
                Some(Err(e)) => return End::Failed(format!("SSE {base}: {}", e.without_url())),
                Some(Ok(bytes)) => parser.buf.extend_from_slice(&bytes),
            },
            () = screen.cut.notified() => return End::Cut,
            stop = phase_says_stop(ctx, screen, st, phase) => if stop { return End::Finished } else { continue },
        }
        while let Some(block) = parser.next_block() {
            match block {
                SseBlock::Event(json) => match serde_json::from_slice::<Head<'_>>(&json) {
                    Ok(head) => st.receive(ctx, screen, &head),
                    Err(e) => return End::Failed(format!("SSE {base}: bad event: {e}")),
                },
                SseBlock::Signal(signal) => st.signal(ctx, screen, signal),
                SseBlock::Retry(ms) => st.retry_hint = Some(Duration::from_millis(ms)),
            }
        }
        if st.done(ctx, screen, *phase.borrow()) {
            return End::Finished;
        }
    }
}

/// What an SSE stream says, block by block.
#[derive(Debug, PartialEq)]
pub(crate) enum SseBlock {
    /// An event (a block with `id:` or an event type): its `data:`.
    Event(BytesMut),
    /// `event: stale` / `event: live`, without `id:`: not an event.
    Signal(Signal),
    /// A `retry:` hint, in ms.
    Retry(u64),
}

/// Splits an SSE body into blocks (fields up to a blank line). Comments
/// and blocks without data are skipped; `retry:` is passed on at once.
#[derive(Default)]
pub(crate) struct SseParser {
    pub(crate) buf: BytesMut,
    data: Option<BytesMut>,
    event: Option<String>,
    has_id: bool,
    retry: Option<u64>,
}

impl SseParser {
    /// The next complete block (or `retry:` hint) in the buffer.
    pub(crate) fn next_block(&mut self) -> Option<SseBlock> {
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line = self.buf.split_to(nl + 1);
            line.truncate(nl);
            if line.last() == Some(&b'\r') {
                line.truncate(nl - 1);
            }
            if line.is_empty() {
                let (data, event, has_id) = (
                    self.data.take(),
                    self.event.take(),
                    std::mem::take(&mut self.has_id),
                );
                if let Some(signal) = event.as_deref().and_then(Signal::named)
                    && !has_id
                {
                    return Some(SseBlock::Signal(signal));
                }
                if let Some(data) = data {
                    return Some(SseBlock::Event(data));
                }
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(0) => continue,
                Some(i) => {
                    let value = &line[i + 1..];
                    (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"data" => {
                    let d = self.data.get_or_insert_with(BytesMut::new);
                    if !d.is_empty() {
                        d.extend_from_slice(b"\n");
                    }
                    d.extend_from_slice(value);
                }
                b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
                b"id" => self.has_id = true,
                b"retry" => {
                    self.retry = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    if let Some(ms) = self.retry.take() {
                        return Some(SseBlock::Retry(ms));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// The edge's WebSocket frames the tester reads.
#[derive(Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) event: Option<Head<'a>>,
    #[serde(borrow)]
    pub(crate) restaurant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) message: Option<Cow<'a, str>>,
}

/// A WebSocket to an edge.
pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket of the edge at `base`, with `token` in the
/// subprotocol; `who` names it in the failure.
pub(crate) async fn open_ws(base: &str, token: &str, who: &str) -> Result<Socket, End> {
    let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| End::Failed(format!("WS {url}: {e}")))?;
    let protocols = format!("ordercast.v1, ordercast.bearer.{token}");
    let protocols = protocols
        .parse()
        .map_err(|e| End::Failed(format!("WS token header: {e}")))?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols);
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(e) => Err(End::Failed(format!("{who}: {e}"))),
    }
}

/// The text of a WebSocket message: `Ok(None)` for one to skip (binary,
/// ping), `Err` when the socket has ended — a close whose reason is
/// `retry=<ms>` sets `retry_hint`.
pub(crate) fn ws_text(
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    retry_hint: &mut Option<Duration>,
    who: &str,
) -> Result<Option<tokio_tungstenite::tungstenite::Utf8Bytes>, End> {
    match message {
        None => Err(End::Closed),
        Some(Err(e)) => Err(End::Failed(format!("{who}: {e}"))),
        Some(Ok(Message::Text(text))) => Ok(Some(text)),
        Some(Ok(Message::Close(frame))) => {
            *retry_hint = frame
                .as_ref()
                .and_then(|f| f.reason.strip_prefix("retry="))
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis);
            Err(End::Closed)
        }
        Some(Ok(_)) => Ok(None),
    }
}

async fn ws(
    ctx: &Ctx,
    screen: &Screen,
    base: &str,
    st: &mut State,
    phase: &mut watch::Receiver<Phase>,
) -> End {
    let rid = &ctx.restaurants[screen.restaurant].id;
    let who = format!("WS {base}");
    let mut socket = match open_ws(base, &screen.token, &who).await {
        Ok(socket) => socket,
        Err(end) => return end,
    };
    let subscribe =
        serde_json::json!({"type": "subscribe", "restaurant_id": rid, "since": st.cursor});
    if let Err(e) = socket.send(Message::text(subscribe.to_string())).await {
        return End::Failed(format!("{who}: {e}"));
    }
    loop {
        let message = tokio::select! {
            m = socket.next() => m,
            () = screen.cut.notified() => return End::Cut,
            stop = phase_says_stop(ctx, screen, st, phase) => if stop { return End::Finished } else { continue },
        };
        let text = match ws_text(message, &mut st.retry_hint, &who) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(end) => return end,
        };
        let frame = match serde_json::from_str::<Frame<'_>>(&text) {
            Ok(f) => f,
            Err(e) => return End::Failed(format!("{who}: bad frame: {e}")),
        };
        match (&*frame.kind, frame.event) {
            ("event", Some(head)) => st.receive(ctx, screen, &head),
            ("subscribed", _) => st.established(ctx),
            ("stale" | "live", _) => {
                if let Some(signal) = Signal::named(&frame.kind) {
                    st.signal(ctx, screen, signal);
                }
            }
            ("error", _) => {
                return End::Failed(format!(
                    "{who}: {} {}",
                    frame.code.unwrap_or_default(),
                    frame.message.unwrap_or_default()
                ));
            }
            _ => {}
        }
        if st.done(ctx, screen, *phase.borrow()) {
            return End::Finished;
        }
    }
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    events: Vec<Head<'a>>,
    next: u64,
    /// Regions mode: present while the restaurant's home region is stale.
    stale: Option<serde::de::IgnoredAny>,
}

async fn poll(
    ctx: &Ctx,
    screen: &Screen,
    base: &str,
    st: &mut State,
    phase: &mut watch::Receiver<Phase>,
) -> End {
    let rid = &ctx.restaurants[screen.restaurant].id;
    let mut first = true;
    loop {
        let request = ctx
            .streams
            // The first poll of a connection answers at once: it is the
            // connection check (and catch-up); later ones wait for events.
            .get(format!(
                "{base}/v1/restaurants/{rid}/events?since={}&limit=1000&wait={}",
                st.cursor,
                if first { 0 } else { 25 }
            ))
            .bearer_auth(&*screen.token)
            .send();
        let response = tokio::select! {
            r = request => r,
            () = screen.cut.notified() => return End::Cut,
            stop = phase_says_stop(ctx, screen, st, phase) => if stop { return End::Finished } else { continue },
        };
        let body = match response {
            Ok(r) if r.status().is_success() => r.bytes().await,
            Ok(r) => {
                st.retry_hint = retry_after(&r);
                return End::Failed(format!("poll {base}: HTTP {}", r.status()));
            }
            Err(e) => return End::Failed(format!("poll {base}: {}", e.without_url())),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return End::Failed(format!("poll {base}: {}", e.without_url())),
        };
        if first {
            st.established(ctx);
            first = false;
        }
        let page = match serde_json::from_slice::<Page<'_>>(&body) {
            Ok(p) => p,
            Err(e) => return End::Failed(format!("poll {base}: bad page: {e}")),
        };
        for head in &page.events {
            st.receive(ctx, screen, head);
        }
        // Long-poll carries the state in every answer: a change counts as
        // one signal.
        let stale = page.stale.is_some();
        if stale != st.poll_stale {
            st.poll_stale = stale;
            let signal = if stale { Signal::Stale } else { Signal::Live };
            st.signal(ctx, screen, signal);
        }
        st.cursor = st.cursor.max(page.next);
        if st.done(ctx, screen, *phase.borrow()) {
            return End::Finished;
        }
    }
}

pub(crate) fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(text: &str) -> Vec<SseBlock> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        // Fed in small pieces: blocks may span chunks.
        for piece in text.as_bytes().chunks(7) {
            p.buf.extend_from_slice(piece);
            while let Some(b) = p.next_block() {
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn sse_signals_without_id_are_not_events() {
        let text = "retry: 2000\n: subscribed at 4\n\n\
            id: 5\nevent: order.created\ndata: {\"seq\":5}\n\n\
            :\n\n\
            event: stale\ndata: {\"type\":\"stale\",\"last_seq\":5}\n\n\
            event: live\r\ndata: {\"type\":\"live\"}\r\n\r\n\
            id: 6\nevent: notification\ndata: {\"seq\":6}\n\n";
        assert_eq!(
            blocks(text),
            [
                SseBlock::Retry(2000),
                SseBlock::Event(BytesMut::from(&b"{\"seq\":5}"[..])),
                SseBlock::Signal(Signal::Stale),
                SseBlock::Signal(Signal::Live),
                SseBlock::Event(BytesMut::from(&b"{\"seq\":6}"[..])),
            ]
        );
    }

    #[test]
    fn long_poll_pages_carry_the_stale_state() {
        let page: Page<'_> = serde_json::from_str(
            r#"{"events": [], "next": 7, "stale": {"region": "eu", "last_seq": 7, "last_event_at": null, "since": "2026-11-23T10:02:13.250Z"}}"#,
        )
        .unwrap();
        assert!(page.stale.is_some());
        let page: Page<'_> = serde_json::from_str(r#"{"events": [], "next": 7}"#).unwrap();
        assert!(page.stale.is_none());
        let frame: Frame<'_> =
            serde_json::from_str(r#"{"type":"stale","restaurant_id":"r","region":"eu","last_seq":3,"last_event_at":null,"since":"x"}"#)
                .unwrap();
        assert_eq!(Signal::named(&frame.kind), Some(Signal::Stale));
    }
}
