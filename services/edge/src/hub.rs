//! Hubs: one per watched restaurant, holding its head seq, a ring of recent
//! frames and a watch channel subscribers wait on.
//!
//! A hub's task is the only writer: it takes batches from its shard reader
//! (or polls PostgreSQL in degraded mode), drops what is at or below the
//! head, fills jumps from PostgreSQL, and only then moves the head. So the
//! ring always holds consecutive seqs and subscribers see every event once,
//! in order.
//!
//! With peer regions, a hub also looks up its restaurant's home region and,
//! when that is a peer, follows the region monitor's view of it in a second
//! watch channel: subscribers tell their clients when it goes stale and
//! when it is back (see `regions.rs`).
//!
//! Membership has one owner, the hub map's lock: a hub is created, starts
//! following its stream, and is stopped and unfollowed with that lock held,
//! so a hub that subscribers wait on always has a running reader.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ordercast_bus::{Degraded, Entry, Follower, Following, ShardReaders, trace};
use ordercast_core::backoff::Backoff;
use ordercast_core::{Chain, Region, RestaurantId, Seq};
use ordercast_store::Store;
use tokio::sync::{OnceCell, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::error::EdgeError;
use crate::frame::Frame;
use crate::metrics::EdgeMetrics;
use crate::regions::{PeerHome, PeerStates};

/// Batches a hub's inbox holds before its reader starts dropping (gaps
/// are then filled from PostgreSQL).
const INBOX_BATCHES: usize = 256;
/// Most events read from PostgreSQL per query when filling or polling.
const PG_BATCH: i64 = 1_000;

/// Consecutive recent frames, oldest first, bounded in count and in bytes
/// (large events would otherwise grow an edge by the ring size times their
/// size; what falls out is read from Redis or PostgreSQL).
struct Ring {
    frames: VecDeque<Arc<Frame>>,
    capacity: usize,
    /// Most bytes of frames held; the newest frame is held whatever its size.
    max_bytes: usize,
    /// Bytes of the frames held (see [`Frame::size`]).
    bytes: usize,
}

impl Ring {
    /// Frames `after+1 ..= head` (at most `max`), or `None` when the ring no
    /// longer (or does not yet) hold `after+1`.
    fn range(&self, after: Seq, head: Seq, max: usize) -> Option<Vec<Arc<Frame>>> {
        if after >= head {
            return Some(Vec::new());
        }
        let first = self.frames.front()?.seq;
        if after.0 + 1 < first.0 {
            return None;
        }
        let start = (after.0 + 1 - first.0) as usize;
        let frames: Vec<_> = self
            .frames
            .iter()
            .skip(start)
            .take(max)
            .take_while(|f| f.seq <= head)
            .cloned()
            .collect();
        (!frames.is_empty()).then_some(frames)
    }

    fn push(&mut self, frame: Arc<Frame>) {
        if self
            .frames
            .back()
            .is_some_and(|last| last.seq.next() != frame.seq)
        {
            // A jump PostgreSQL could not fill (expired events): start over
            // so the ring stays consecutive.
            self.frames.clear();
            self.bytes = 0;
        }
        self.bytes += frame.size();
        self.frames.push_back(frame);
        while self.frames.len() > self.capacity
            || (self.bytes > self.max_bytes && self.frames.len() > 1)
        {
            let oldest = self.frames.pop_front().expect("more than one frame");
            self.bytes -= oldest.size();
        }
    }
}

/// One watched restaurant.
pub(crate) struct Hub {
    pub restaurant: RestaurantId,
    ring: RwLock<Ring>,
    head: watch::Sender<Seq>,
    inbox: mpsc::Sender<Vec<Entry>>,
    inbox_rx: Mutex<Option<mpsc::Receiver<Vec<Entry>>>>,
    /// Set when the reader had to drop a batch: the task then polls once.
    overflowed: AtomicBool,
    stop: CancellationToken,
    init: OnceCell<()>,
    /// The restaurant's home region once looked up (`None` inside: not a
    /// named region, so homed here). Looked up only with peers.
    home_region: OnceLock<Option<Region>>,
    /// The home region when it is a peer, fresh or stale.
    home: watch::Sender<Option<PeerHome>>,
}

impl Hub {
    fn new(restaurant: RestaurantId, ring_size: usize, ring_bytes: usize) -> Hub {
        let (inbox, inbox_rx) = mpsc::channel(INBOX_BATCHES);
        Hub {
            restaurant,
            ring: RwLock::new(Ring {
                frames: VecDeque::with_capacity(ring_size.min(1_024)),
                capacity: ring_size.max(1),
                max_bytes: ring_bytes,
                bytes: 0,
            }),
            head: watch::channel(Seq::ZERO).0,
            inbox,
            inbox_rx: Mutex::new(Some(inbox_rx)),
            overflowed: AtomicBool::new(false),
            stop: CancellationToken::new(),
            init: OnceCell::new(),
            home_region: OnceLock::new(),
            home: watch::channel(None).0,
        }
    }

    /// The last seq this hub has in order.
    pub(crate) fn head(&self) -> Seq {
        *self.head.borrow()
    }

    /// A receiver that wakes whenever the head moves.
    pub(crate) fn watch_head(&self) -> watch::Receiver<Seq> {
        self.head.subscribe()
    }

    /// A receiver that wakes whenever the home region (when it is a peer)
    /// becomes known, goes stale or comes back.
    pub(crate) fn watch_home(&self) -> watch::Receiver<Option<PeerHome>> {
        self.home.subscribe()
    }

    /// The commit time of event `seq`, if the ring holds it.
    pub(crate) fn event_time(&self, seq: Seq) -> Option<DateTime<Utc>> {
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        let first = ring.frames.front()?.seq;
        let at = seq.0.checked_sub(first.0)?;
        ring.frames.get(usize::try_from(at).ok()?).map(|f| f.ts)
    }

    /// Frames `after+1 ..= head` from the ring, if it holds them.
    pub(crate) fn ring_range(&self, after: Seq, head: Seq, max: usize) -> Option<Vec<Arc<Frame>>> {
        self.ring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .range(after, head, max)
    }

    /// Frames currently in the ring.
    pub(crate) fn ring_len(&self) -> usize {
        self.ring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .frames
            .len()
    }

    /// Reads the head from PostgreSQL, follows the restaurant's stream and
    /// starts the task; done once, by the first subscriber (whose
    /// membership keeps the hub in the map meanwhile).
    async fn ready(self: &Arc<Self>, hubs: &Hubs) -> Result<(), EdgeError> {
        let ctx = &hubs.ctx;
        self.init
            .get_or_try_init(|| async {
                let head = ctx.store.within(ctx.store.head(self.restaurant)).await?;
                self.head.send_replace(head);
                let mut regions = ctx.regions.clone();
                if let Some(peers) = &mut regions {
                    self.learn_home(&ctx.store).await;
                    self.check_home(&peers.borrow_and_update());
                }
                // From here on nothing waits: the start cannot be cut short.
                let degraded = hubs.follow(self);
                let inbox = self
                    .inbox_rx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .expect("initialized once");
                let span = tracing::info_span!("hub", restaurant = %self.restaurant);
                let task = run(self.clone(), inbox, ctx.clone(), degraded, regions);
                tokio::spawn(task.instrument(span));
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Looks up the restaurant's home region unless known. A failure only
    /// means "not known yet": the next change of the peers retries.
    async fn learn_home(&self, store: &Store) {
        if self.home_region.get().is_some() {
            return;
        }
        match store.home_of(self.restaurant).await {
            Ok(home) => {
                let _ = self.home_region.set(home);
            }
            Err(e) => {
                tracing::debug!(restaurant = %self.restaurant, error = %Chain(&e),
                    "home region not known yet; retrying when a peer changes state");
            }
        }
    }

    /// Sets the home's state from the peers' and wakes subscribers if it
    /// changed.
    fn check_home(&self, peers: &PeerStates) {
        let home = self.home_region.get().and_then(Option::as_ref);
        let state = home.and_then(|home| peers.home(home));
        self.home.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// Appends consecutive frames and wakes subscribers once.
    fn push(&self, frames: Vec<Arc<Frame>>) {
        let Some(last) = frames.last().map(|f| f.seq) else {
            return;
        };
        let _delivery = self.delivery_span(&frames).entered();
        {
            let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
            for frame in frames {
                ring.push(frame);
            }
        }
        self.head.send_replace(last);
    }

    /// The span of handing a batch to this restaurant's subscribers, linked
    /// to the request of each event that carries a trace; none when spans
    /// are not exported or no event has a trace.
    fn delivery_span(&self, frames: &[Arc<Frame>]) -> Span {
        let traces = || frames.iter().filter_map(|f| f.trace.as_ref());
        if !trace::exporting() || traces().next().is_none() {
            return Span::none();
        }
        let span = tracing::info_span!(
            parent: None,
            "deliver",
            otel.kind = "consumer",
            "messaging.operation.type" = "process",
            "messaging.batch.message_count" = frames.len(),
            "ordercast.restaurant_id" = %self.restaurant,
            "ordercast.subscribers" = self.head.receiver_count(),
        );
        traces().for_each(|t| trace::link(&span, t));
        span
    }

    /// Takes a batch in stream order: duplicates dropped, jumps filled.
    async fn ingest(&self, batch: Vec<Entry>, ctx: &HubContext) {
        let mut ready = Vec::with_capacity(batch.len());
        let mut head = self.head();
        let frames = batch
            .into_iter()
            .filter_map(|entry| Frame::from_entry(self.restaurant, entry));
        for frame in frames {
            let frame = Arc::new(frame);
            if frame.seq <= head {
                ctx.metrics.duplicates_dropped.inc();
                continue;
            }
            if frame.seq != head.next() {
                self.push(std::mem::take(&mut ready));
                if !self.fill(Seq(frame.seq.0 - 1), ctx).await {
                    return;
                }
                head = self.head();
                if frame.seq <= head {
                    continue;
                }
            }
            head = frame.seq;
            ready.push(frame);
        }
        self.push(ready);
    }

    /// Reads `head+1 ..= upto` from PostgreSQL, retrying until it answers or
    /// the hub stops (false). Anything PostgreSQL no longer has is skipped.
    async fn fill(&self, upto: Seq, ctx: &HubContext) -> bool {
        ctx.metrics.gap_fills.inc();
        let mut backoff = Backoff::default();
        while self.head() < upto {
            let head = self.head();
            let want = (upto.0 - head.0).min(PG_BATCH as u64) as i64;
            let read = ctx.store.events_after(self.restaurant, head, want);
            match ctx.store.within(read).await {
                Ok(events) if events.is_empty() => {
                    tracing::warn!(restaurant = %self.restaurant, from = %head, to = %upto,
                        "events missing from PostgreSQL (expired?); skipping the gap");
                    return true;
                }
                Ok(events) => {
                    ctx.metrics.gap_filled_events.inc_by(events.len() as u64);
                    self.push(events.iter().map(|e| Arc::new(Frame::filled(e))).collect());
                }
                Err(e) => {
                    tracing::warn!(restaurant = %self.restaurant, error = %Chain(&e), "gap fill failed; retrying");
                    if !self.pause(&mut backoff).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Reads whatever PostgreSQL has after the head.
    async fn poll(&self, ctx: &HubContext) {
        loop {
            let read = ctx
                .store
                .events_after(self.restaurant, self.head(), PG_BATCH);
            match ctx.store.within(read).await {
                Ok(events) => {
                    let full = events.len() as i64 == PG_BATCH;
                    let frames = events
                        .iter()
                        .map(|e| Arc::new(Frame::from_envelope(e)))
                        .collect();
                    self.push(frames);
                    if !full {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(restaurant = %self.restaurant, error = %Chain(&e), "polling PostgreSQL failed");
                    return;
                }
            }
        }
    }

    /// Sleeps the next pause of `backoff` unless the hub stops first.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(backoff.next_pause()) => true,
        }
    }
}

impl Follower for Hub {
    fn restaurant(&self) -> RestaurantId {
        self.restaurant
    }

    fn head(&self) -> Seq {
        Hub::head(self)
    }

    /// Hands a batch read from Redis to the hub's task; never waits. A full
    /// inbox drops the batch and makes the task poll PostgreSQL instead.
    fn offer(&self, batch: Vec<Entry>) {
        if self.inbox.try_send(batch).is_err() {
            self.overflowed.store(true, Ordering::Release);
        }
    }
}

/// The hub's task: ingest from the reader; poll PostgreSQL while the shard
/// is degraded or after the inbox overflowed; follow the peers' states
/// (`regions`, with peers only).
async fn run(
    hub: Arc<Hub>,
    mut inbox: mpsc::Receiver<Vec<Entry>>,
    ctx: Arc<HubContext>,
    degraded: Degraded,
    mut regions: Option<watch::Receiver<PeerStates>>,
) {
    let mut poll = tokio::time::interval(ctx.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = hub.stop.cancelled() => return,
            batch = inbox.recv() => match batch {
                Some(batch) => hub.ingest(batch, &ctx).await,
                None => return,
            },
            _ = poll.tick() => {
                let overflowed = hub.overflowed.swap(false, Ordering::AcqRel);
                if overflowed || degraded.is_set() {
                    hub.poll(&ctx).await;
                }
            }
            changed = peers_changed(&mut regions) => match (changed, &mut regions) {
                (true, Some(peers)) => {
                    hub.learn_home(&ctx.store).await;
                    hub.check_home(&peers.borrow_and_update());
                }
                _ => regions = None,
            },
        }
    }
}

/// Whether the peers' states changed (false: the monitor is gone); never
/// returns without peers.
async fn peers_changed(regions: &mut Option<watch::Receiver<PeerStates>>) -> bool {
    match regions {
        Some(peers) => peers.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// What hubs need from the process.
pub(crate) struct HubContext {
    pub store: Store,
    pub readers: ShardReaders<Hub>,
    pub metrics: EdgeMetrics,
    /// Recent frames each hub keeps.
    pub ring_size: usize,
    /// Most bytes of recent frames each hub keeps.
    pub ring_bytes: usize,
    /// How often a hub polls PostgreSQL while its shard is degraded.
    pub poll_interval: Duration,
    /// The region monitor's view of the peers (none: a single region).
    pub regions: Option<watch::Receiver<PeerStates>>,
}

struct Member {
    hub: Arc<Hub>,
    subscribers: usize,
    /// Set once the hub has read its head and follows its stream.
    following: Option<Following<Hub>>,
}

/// Every hub of this process, by restaurant.
pub(crate) struct Hubs {
    // std Mutex: never held across .await. Held across every whole
    // membership change (see the module's documentation).
    map: Mutex<HashMap<RestaurantId, Member>>,
    ctx: Arc<HubContext>,
}

impl Hubs {
    pub(crate) fn new(ctx: HubContext) -> Hubs {
        Hubs {
            map: Mutex::default(),
            ctx: Arc::new(ctx),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, Member>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the restaurant's hub, creating and starting it for the first
    /// subscriber.
    pub(crate) async fn join(
        self: &Arc<Self>,
        restaurant: RestaurantId,
    ) -> Result<HubGuard, EdgeError> {
        let hub = {
            let mut map = self.lock();
            let member = map.entry(restaurant).or_insert_with(|| {
                self.ctx.metrics.watched_restaurants.inc();
                Member {
                    hub: Arc::new(Hub::new(
                        restaurant,
                        self.ctx.ring_size,
                        self.ctx.ring_bytes,
                    )),
                    subscribers: 0,
                    following: None,
                }
            });
            member.subscribers += 1;
            member.hub.clone()
        };
        let guard = HubGuard {
            hub,
            hubs: self.clone(),
        };
        guard.hub.ready(self).await?;
        Ok(guard)
    }

    /// Restaurants watched and frames held, for `/debug/stats`.
    pub(crate) fn stats(&self) -> (usize, usize) {
        let map = self.lock();
        (map.len(), map.values().map(|m| m.hub.ring_len()).sum())
    }

    /// One restaurant's hub, if this edge watches it.
    pub(crate) fn view(&self, restaurant: RestaurantId) -> Option<serde_json::Value> {
        let map = self.lock();
        let member = map.get(&restaurant)?;
        let head = member.hub.head();
        Some(serde_json::json!({
            "head_seq": head,
            "ring_frames": member.hub.ring_len(),
            "subscribers": member.subscribers,
            "degraded": member.following.as_ref().is_some_and(|f| f.degraded().is_set()),
            "last_event_at": member.hub.event_time(head),
        }))
    }

    /// Shard readers running and how many of them are degraded.
    pub(crate) fn readers(&self) -> (usize, usize) {
        self.ctx.readers.stats()
    }

    /// Makes `hub` follow its stream. Its caller is one of its subscribers,
    /// so the hub is in the map.
    fn follow(&self, hub: &Arc<Hub>) -> Degraded {
        let mut map = self.lock();
        let member = map
            .get_mut(&hub.restaurant)
            .filter(|m| Arc::ptr_eq(&m.hub, hub))
            .expect("a subscriber keeps its hub in the map");
        let following = self.ctx.readers.follow(hub.clone());
        let degraded = following.degraded();
        member.following = Some(following);
        degraded
    }

    fn leave(&self, hub: &Arc<Hub>) {
        let mut map = self.lock();
        let Some(member) = map
            .get_mut(&hub.restaurant)
            .filter(|m| Arc::ptr_eq(&m.hub, hub))
        else {
            return;
        };
        member.subscribers -= 1;
        if member.subscribers == 0 {
            let member = map.remove(&hub.restaurant).expect("present");
            member.hub.stop.cancel();
            drop(member.following);
            self.ctx.metrics.watched_restaurants.dec();
        }
    }
}

/// A subscriber's membership of a hub; the last one to leave stops it.
pub(crate) struct HubGuard {
    hub: Arc<Hub>,
    hubs: Arc<Hubs>,
}

impl std::ops::Deref for HubGuard {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        &self.hub
    }
}

impl Drop for HubGuard {
    fn drop(&mut self) {
        self.hubs.leave(&self.hub);
    }
}

#[cfg(test)]
mod tests {
    use ordercast_core::event::EventDraft;
    use ordercast_core::{Audience, Envelope, EventType};

    use super::*;

    fn frame(seq: u64) -> Arc<Frame> {
        large_frame(seq, 0)
    }

    fn ring(seqs: impl IntoIterator<Item = u64>, capacity: usize) -> Ring {
        let mut ring = Ring {
            frames: VecDeque::new(),
            capacity,
            max_bytes: usize::MAX,
            bytes: 0,
        };
        for s in seqs {
            ring.push(frame(s));
        }
        ring
    }

    fn seqs(frames: Option<Vec<Arc<Frame>>>) -> Option<Vec<u64>> {
        frames.map(|f| f.iter().map(|f| f.seq.0).collect())
    }

    #[test]
    fn the_ring_serves_what_it_holds_and_nothing_older() {
        let r = ring(1..=10, 5);
        assert_eq!(
            seqs(r.range(Seq(5), Seq(10), 100)),
            Some(vec![6, 7, 8, 9, 10])
        );
        assert_eq!(seqs(r.range(Seq(7), Seq(10), 2)), Some(vec![8, 9]));
        assert_eq!(seqs(r.range(Seq(7), Seq(9), 100)), Some(vec![8, 9]));
        assert_eq!(
            seqs(r.range(Seq(4), Seq(10), 100)),
            None,
            "6 is the oldest held"
        );
        assert_eq!(seqs(r.range(Seq(10), Seq(10), 100)), Some(vec![]));
    }

    #[test]
    fn a_jump_restarts_the_ring_so_it_stays_consecutive() {
        let r = ring([1, 2, 3, 7, 8], 10);
        assert_eq!(seqs(r.range(Seq(6), Seq(8), 100)), Some(vec![7, 8]));
        assert_eq!(seqs(r.range(Seq(2), Seq(8), 100)), None);
    }

    /// A frame whose data holds `bytes` characters of text.
    fn large_frame(seq: u64, bytes: usize) -> Arc<Frame> {
        let env = Envelope::seal(
            RestaurantId::new(),
            Seq(seq),
            Envelope::now(),
            None,
            EventDraft::new(
                EventType::Notification,
                Audience::default(),
                serde_json::json!({ "text": "x".repeat(bytes) }),
            ),
        );
        Arc::new(Frame::from_envelope(&env))
    }

    #[test]
    fn large_events_keep_the_ring_within_its_bytes_and_older_ones_fall_out() {
        let mut ring = Ring {
            frames: VecDeque::new(),
            capacity: 1_000,
            max_bytes: 1_000_000,
            bytes: 0,
        };
        for seq in 1..=1_000 {
            ring.push(large_frame(seq, 30_000));
            let held: usize = ring.frames.iter().map(|f| f.size()).sum();
            assert_eq!(ring.bytes, held);
            assert!(held <= 1_000_000, "{held} bytes held after {seq}");
        }
        let oldest = ring.frames.front().unwrap().seq;
        assert!(oldest > Seq(900), "the oldest held is {oldest}");
        assert_eq!(seqs(ring.range(Seq(1), Seq(1_000), 10)), None);
        let newest = ring.range(Seq(999), Seq(1_000), 10);
        assert_eq!(seqs(newest), Some(vec![1_000]));
    }

    #[test]
    fn an_event_larger_than_the_budget_is_still_held_alone() {
        let mut ring = Ring {
            frames: VecDeque::new(),
            capacity: 10,
            max_bytes: 1_000,
            bytes: 0,
        };
        ring.push(large_frame(1, 10));
        ring.push(large_frame(2, 5_000));
        assert_eq!(seqs(ring.range(Seq(1), Seq(2), 10)), Some(vec![2]));
        assert_eq!(seqs(ring.range(Seq(0), Seq(2), 10)), None);
    }
}
