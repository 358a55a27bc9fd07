//! The chain admin (regions mode): one WebSocket per region, subscribed to
//! every restaurant of the run's chain wherever it is homed, as a chain HQ
//! dashboard is. It resumes each restaurant by its own cursor after every
//! cut and is verified like any screen: at the end its receipts become one
//! log per restaurant, entitled to every event of it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::ctx::{Ctx, Phase};
use crate::ledger::{Kind, Viewer};
use crate::scenario::Transport;
use crate::screens::{End, Frame, Head, Signal, backoff, open_ws, ws_text};
use crate::verify::{ClientLog, Receipt};

/// Subscriptions sent at once on a new socket; the rest follow one per
/// [`SUBSCRIBE_EVERY`], under the edge's inbound message rate (20/s,
/// bursts of 40).
const SUBSCRIBE_BURST: usize = 20;
const SUBSCRIBE_EVERY: Duration = Duration::from_millis(60);

/// A region's chain admin screen.
pub struct ChainScreen {
    pub id: usize,
    pub region: usize,
    pub edges: Arc<[String]>,
    pub token: Arc<str>,
    pub cut: Arc<Notify>,
}

struct State {
    /// Per restaurant: the cursor it first subscribed after, its cursor,
    /// its last entitled seq once settling, and what it read.
    start: Vec<u64>,
    cursor: Vec<u64>,
    target: Vec<Option<u64>>,
    receipts: Vec<Vec<Receipt>>,
    connections: Vec<u64>,
    lost_at: Option<u64>,
    retry_hint: Option<Duration>,
    connected_wall: Option<u64>,
}

impl State {
    fn established(&mut self, ctx: &Ctx) {
        let now = ctx.stats.now_us();
        self.connections.push(now);
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

    fn receive(&mut self, ctx: &Ctx, screen: &ChainScreen, head: &Head<'_>) {
        let read_us = ctx.stats.now_us();
        let (r, foreign) = match ctx.by_id.get(&*head.restaurant_id) {
            Some(&r) => (r, false),
            None => (0, true),
        };
        let ts_us = head.ts_us();
        let live = self.connected_wall.is_some_and(|c| c <= ts_us);
        let remote = ctx.restaurants[r].home != screen.region;
        ctx.stats
            .delivered(Transport::Ws, read_us, ts_us, live, screen.region, remote);
        self.receipts[r].push(Receipt {
            seq: head.seq,
            read_us,
            conn: self.connections.len().saturating_sub(1) as u32,
            kind: Kind::parse(&head.kind),
            foreign,
        });
        if !foreign {
            self.cursor[r] = self.cursor[r].max(head.seq);
        }
    }

    fn done(&mut self, ctx: &Ctx, phase: Phase) -> bool {
        match phase {
            Phase::Traffic => false,
            Phase::Done => true,
            Phase::Settle => (0..self.cursor.len()).all(|r| {
                let start = self.start[r];
                let target = *self.target[r]
                    .get_or_insert_with(|| ctx.ledger.book(r).last_entitled(Viewer::Admin, start));
                self.cursor[r] >= target
            }),
        }
    }
}

/// Runs a chain admin until the run ends; returns one log per restaurant.
pub async fn run(ctx: Arc<Ctx>, screen: ChainScreen, start: Vec<u64>) -> Vec<ClientLog> {
    let n = ctx.restaurants.len();
    let mut st = State {
        cursor: start.clone(),
        start,
        target: vec![None; n],
        receipts: vec![Vec::new(); n],
        connections: Vec::new(),
        lost_at: None,
        retry_hint: None,
        connected_wall: None,
    };
    let mut phase = ctx.phase.clone();
    let mut edge = screen.id % screen.edges.len();
    let mut failures = 0u32;
    loop {
        let now = *phase.borrow_and_update();
        if st.done(&ctx, now) {
            break;
        }
        let base = screen.edges[edge].trim_end_matches('/').to_owned();
        let end = connection(&ctx, &screen, &base, &mut st, &mut phase).await;
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
                edge = (edge + 1) % screen.edges.len();
                st.retry_hint.take().unwrap_or(Duration::ZERO)
            }
            End::Failed(why) => {
                ctx.stats.connect_failures.fetch_add(1, Relaxed);
                if failures == 0 {
                    ctx.note_failure(&why);
                }
                failures += 1;
                edge = (edge + 1) % screen.edges.len();
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
    let State {
        start,
        receipts,
        connections,
        ..
    } = st;
    receipts
        .into_iter()
        .enumerate()
        .map(|(r, receipts)| ClientLog {
            id: screen.id,
            restaurant: r,
            viewer: Viewer::Admin,
            transport: Transport::Ws,
            region: screen.region,
            remote: ctx.restaurants[r].home != screen.region,
            start: start[r],
            receipts,
            connections: connections.clone(),
        })
        .collect()
}

/// Waits for a phase change and says whether the screen should stop.
async fn phase_says_stop(ctx: &Ctx, st: &mut State, phase: &mut watch::Receiver<Phase>) -> bool {
    if phase.changed().await.is_err() {
        return std::future::pending().await;
    }
    let now = *phase.borrow_and_update();
    st.done(ctx, now)
}

/// One WebSocket: subscribes to every restaurant from its cursor (paced),
/// then reads until it ends.
async fn connection(
    ctx: &Ctx,
    screen: &ChainScreen,
    base: &str,
    st: &mut State,
    phase: &mut watch::Receiver<Phase>,
) -> End {
    let who = format!("chain admin WS {base}");
    let mut socket = match open_ws(base, &screen.token, &who).await {
        Ok(socket) => socket,
        Err(end) => return end,
    };
    let mut pending: VecDeque<usize> = (0..ctx.restaurants.len()).collect();
    let mut tick = tokio::time::interval(SUBSCRIBE_EVERY);
    let mut sent = 0usize;
    let mut subscribed = false;
    loop {
        // Subscriptions go out in a burst, then at a steady pace.
        while let Some(&r) = pending.front()
            && sent < SUBSCRIBE_BURST
        {
            pending.pop_front();
            sent += 1;
            let subscribe = serde_json::json!({"type": "subscribe",
                "restaurant_id": ctx.restaurants[r].id, "since": st.cursor[r]});
            if let Err(e) = socket.send(Message::text(subscribe.to_string())).await {
                return End::Failed(format!("{who}: {e}"));
            }
        }
        let message = tokio::select! {
            m = socket.next() => m,
            _ = tick.tick(), if !pending.is_empty() => {
                sent = sent.saturating_sub(1).min(SUBSCRIBE_BURST - 1);
                continue;
            }
            () = screen.cut.notified() => return End::Cut,
            stop = phase_says_stop(ctx, st, phase) => if stop { return End::Finished } else { continue },
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
            ("subscribed", _) if !subscribed => {
                subscribed = true;
                st.established(ctx);
            }
            ("stale" | "live", _) => {
                let home = frame
                    .restaurant_id
                    .as_deref()
                    .and_then(|id| ctx.by_id.get(id))
                    .map(|&r| ctx.restaurants[r].home);
                ctx.stats.signal(
                    ctx.stats.now_us(),
                    screen.region,
                    Signal::named(&frame.kind) == Some(Signal::Stale),
                    home == Some(screen.region),
                );
            }
            ("error", _) => {
                // A refused subscription does not exist: start the socket
                // over, every restaurant from its cursor.
                return End::Failed(format!(
                    "{who}: {} {}",
                    frame.code.unwrap_or_default(),
                    frame.message.unwrap_or_default()
                ));
            }
            _ => {}
        }
        if st.done(ctx, *phase.borrow()) {
            return End::Finished;
        }
    }
}
