//! Shard readers: one task and one dedicated Redis connection per shard with
//! local demand, blocking in `XREAD` over the streams of that shard's
//! watched restaurants. A change of that set wakes the reader at once with
//! `CLIENT UNBLOCK`, sent on a second connection to the same node.
//!
//! On a Redis Cluster a shard is one hash slot: the reader starts at a seed
//! node and follows `MOVED` to the node that holds the slot, again whenever
//! the slot moves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ordercast_bus::{Keys, RedisSettings, Shard, Streams};
use ordercast_core::{RestaurantId, Seq};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::frame::Frame;
use crate::hub::Hub;
use crate::metrics::EdgeMetrics;

/// Longest a reader blocks in one `XREAD` (it is woken earlier whenever its
/// set of streams changes).
const BLOCK: Duration = Duration::from_secs(30);
/// Most entries one `XREAD` returns.
const COUNT: usize = 1_000;

struct Member {
    key: String,
    hub: Arc<Hub>,
    /// The last entry routed to the hub.
    last: Seq,
}

struct ReaderState {
    shard: Shard,
    members: Mutex<HashMap<RestaurantId, Member>>,
    /// Bumped on every membership change; `seen` is the generation the
    /// reader's current `XREAD` was built from.
    generation: AtomicU64,
    seen: AtomicU64,
    /// The Redis `CLIENT ID` of the reader's connection (-1 when none).
    client_id: AtomicI64,
    /// A connection to the reader's node, for `CLIENT UNBLOCK`.
    control: Mutex<Option<MultiplexedConnection>>,
    degraded: Arc<AtomicBool>,
    wake: Notify,
    stop: CancellationToken,
}

impl ReaderState {
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, Member>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// The shard readers of this process.
pub(crate) struct ShardReaders {
    readers: Mutex<HashMap<Shard, Arc<ReaderState>>>,
    /// Where readers start: the Redis node, or the cluster's seed nodes.
    seeds: Arc<[ConnectionInfo]>,
    streams: Streams,
    metrics: EdgeMetrics,
}

impl ShardReaders {
    pub(crate) fn new(
        redis: &RedisSettings,
        streams: Streams,
        metrics: EdgeMetrics,
    ) -> redis::RedisResult<Self> {
        let seeds = redis.connection_infos()?;
        Ok(ShardReaders {
            readers: Mutex::default(),
            seeds: seeds.into(),
            streams,
            metrics,
        })
    }

    fn keys(&self) -> &Keys {
        self.streams.keys()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Shard, Arc<ReaderState>>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts reading `hub`'s stream after its head; returns the flag that
    /// says whether its shard is degraded (Redis unreachable).
    pub(crate) fn watch(&self, hub: Arc<Hub>) -> Arc<AtomicBool> {
        let shard = Shard::of(hub.restaurant);
        let mut readers = self.lock();
        let state = readers
            .entry(shard)
            .or_insert_with(|| self.spawn(shard))
            .clone();
        drop(readers);
        let member = Member {
            key: self.keys().stream(hub.restaurant),
            last: hub.head(),
            hub,
        };
        let rid = member.hub.restaurant;
        state.members().insert(rid, member);
        state.changed();
        state.degraded.clone()
    }

    /// Stops reading the restaurant's stream; the shard's reader stops with
    /// its last restaurant.
    pub(crate) fn unwatch(&self, restaurant: RestaurantId) {
        let shard = Shard::of(restaurant);
        let mut readers = self.lock();
        let Some(state) = readers.get(&shard).cloned() else {
            return;
        };
        let now_empty = {
            let mut members = state.members();
            members.remove(&restaurant);
            members.is_empty()
        };
        if now_empty {
            readers.remove(&shard);
            state.stop.cancel();
            if state.degraded.swap(false, Ordering::AcqRel) {
                self.metrics.degraded_shards.dec();
            }
            self.metrics.shard_readers.dec();
        } else {
            state.changed();
        }
    }

    /// Running readers and how many of them are degraded.
    pub(crate) fn stats(&self) -> (usize, usize) {
        let readers = self.lock();
        let degraded = readers
            .values()
            .filter(|s| s.degraded.load(Ordering::Acquire))
            .count();
        (readers.len(), degraded)
    }

    fn spawn(&self, shard: Shard) -> Arc<ReaderState> {
        let state = Arc::new(ReaderState {
            shard,
            members: Mutex::default(),
            generation: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            client_id: AtomicI64::new(-1),
            control: Mutex::default(),
            degraded: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        });
        self.metrics.shard_readers.inc();
        tokio::spawn(read(
            state.clone(),
            self.seeds.clone(),
            self.metrics.clone(),
        ));
        tokio::spawn(unblock(state.clone()));
        state
    }
}

/// Wakes the reader with `CLIENT UNBLOCK` until it has picked up the latest
/// membership (an unblock sent before its `XREAD` arrives is retried).
async fn unblock(state: Arc<ReaderState>) {
    loop {
        tokio::select! {
            _ = state.stop.cancelled() => return,
            _ = state.wake.notified() => {}
        }
        for _ in 0..400 {
            if state.seen.load(Ordering::Acquire) >= state.generation.load(Ordering::Acquire) {
                break;
            }
            let id = state.client_id.load(Ordering::Acquire);
            let control = state
                .control
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if id >= 0
                && let Some(mut conn) = control
            {
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(id)
                    .query_async(&mut conn)
                    .await;
            }
            tokio::select! {
                _ = state.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
}

/// The reader's connection to `node` and its `CLIENT ID`, and a control
/// connection to the same node.
async fn connect(
    node: &ConnectionInfo,
) -> redis::RedisResult<(MultiplexedConnection, i64, MultiplexedConnection)> {
    let client = redis::Client::open(node.clone())?;
    let timeout = Some(Duration::from_secs(1));
    let reading = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&reading)
        .await?;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    let controlling = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    let control = client
        .get_multiplexed_async_connection_with_config(&controlling)
        .await?;
    Ok((conn, id, control))
}

/// `node` with its address replaced by `host:port` (a `MOVED` target), TLS
/// and credentials kept.
fn moved_to(node: &ConnectionInfo, target: &str) -> Option<ConnectionInfo> {
    let (host, port) = target.rsplit_once(':')?;
    let (host, port) = (host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?);
    let addr = match node.addr() {
        ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host, port),
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => return None,
    };
    Some(node.clone().set_addr(addr))
}

fn set_degraded(state: &ReaderState, metrics: &EdgeMetrics, degraded: bool) {
    if state.degraded.swap(degraded, Ordering::AcqRel) != degraded {
        if degraded {
            tracing::warn!(shard = %state.shard, "Redis unreachable: polling PostgreSQL");
            metrics.degraded_shards.inc();
        } else {
            tracing::info!(shard = %state.shard, "Redis back: streaming again");
            metrics.degraded_shards.dec();
        }
    }
}

/// Pauses between failed attempts to read a shard.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Most `MOVED` redirects followed in a row without a pause (two nodes may
/// disagree for a moment while a slot migrates).
const MAX_REDIRECTS: u32 = 3;

/// Why a reader stopped reading from a node.
enum Interrupted {
    /// The reader was stopped.
    Stopped,
    /// The node could not be reached.
    Unreachable,
    /// The node does not hold the shard; this one does.
    Moved(Box<ConnectionInfo>),
    /// A command failed (connection lost, cluster down, …).
    Failed,
}

/// The reader task: reads from a node until interrupted, then moves on to
/// the node a `MOVED` names, or pauses (degraded) and tries again, the next
/// seed if the node was unreachable.
async fn read(state: Arc<ReaderState>, seeds: Arc<[ConnectionInfo]>, metrics: EdgeMetrics) {
    let mut backoff = MIN_BACKOFF;
    let mut redirects = 0;
    let mut next_seed = 0;
    let mut node = seeds[0].clone();
    loop {
        match read_from(&state, &node, &metrics, &mut backoff).await {
            Interrupted::Stopped => return,
            Interrupted::Moved(to) => {
                tracing::debug!(shard = %state.shard, node = ?to.addr(), "shard is served by another node");
                node = *to;
                redirects += 1;
                if redirects <= MAX_REDIRECTS {
                    continue;
                }
            }
            Interrupted::Unreachable => {
                next_seed = (next_seed + 1) % seeds.len();
                node = seeds[next_seed].clone();
            }
            Interrupted::Failed => {}
        }
        redirects = 0;
        set_degraded(&state, &metrics, true);
        tokio::select! {
            _ = state.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connects to `node` and loops on `XREAD BLOCK` there. The shard counts as
/// served (not degraded, `backoff` reset) once a command on one of its keys
/// succeeds.
async fn read_from(
    state: &ReaderState,
    node: &ConnectionInfo,
    metrics: &EdgeMetrics,
    backoff: &mut Duration,
) -> Interrupted {
    let connected = tokio::select! {
        _ = state.stop.cancelled() => return Interrupted::Stopped,
        c = connect(node) => c,
    };
    let (mut conn, id, control) = match connected {
        Ok(connected) => connected,
        Err(e) => {
            metrics.redis_errors.inc();
            tracing::debug!(shard = %state.shard, error = %e, "cannot connect to Redis");
            return Interrupted::Unreachable;
        }
    };
    *state.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(control);
    state.client_id.store(id, Ordering::Release);
    let interrupted = stream(state, &mut conn, node, metrics, backoff).await;
    state.client_id.store(-1, Ordering::Release);
    interrupted
}

async fn stream(
    state: &ReaderState,
    conn: &mut MultiplexedConnection,
    node: &ConnectionInfo,
    metrics: &EdgeMetrics,
    backoff: &mut Duration,
) -> Interrupted {
    // A keyed command answers at once whether this node holds the shard
    // (else MOVED) and whether the cluster serves it (else CLUSTERDOWN).
    let probe = state.members().values().next().map(|m| m.key.clone());
    if let Some(key) = probe {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&key);
        let served: redis::RedisResult<i64> = tokio::select! {
            _ = state.stop.cancelled() => return Interrupted::Stopped,
            r = exists.query_async(conn) => r,
        };
        if let Err(e) = served {
            return failed(state, node, metrics, &e, "probe");
        }
    }
    set_degraded(state, metrics, false);
    *backoff = MIN_BACKOFF;
    loop {
        let generation = state.generation.load(Ordering::Acquire);
        let (keys, ids): (Vec<String>, Vec<String>) = state
            .members()
            .values()
            .map(|m| (m.key.clone(), format!("{}-0", m.last.max(m.hub.head()))))
            .unzip();
        state.seen.store(generation, Ordering::Release);
        if keys.is_empty() {
            tokio::select! {
                _ = state.stop.cancelled() => return Interrupted::Stopped,
                _ = state.wake.notified() => continue,
            }
        }
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(COUNT);
        let reply: redis::RedisResult<Option<StreamReadReply>> = tokio::select! {
            _ = state.stop.cancelled() => return Interrupted::Stopped,
            r = redis::AsyncCommands::xread_options(conn, &keys, &ids, &options) => r,
        };
        match reply {
            Ok(Some(reply)) => route(state, reply),
            Ok(None) => {}
            Err(e) => return failed(state, node, metrics, &e, "XREAD"),
        }
    }
}

/// A failed command: a redirect to the node that holds the shard, or a
/// failure (counted and logged).
fn failed(
    state: &ReaderState,
    node: &ConnectionInfo,
    metrics: &EdgeMetrics,
    e: &redis::RedisError,
    what: &str,
) -> Interrupted {
    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved)
        && let Some(to) = e.redirect_node().and_then(|(to, _)| moved_to(node, to))
    {
        return Interrupted::Moved(Box::new(to));
    }
    metrics.redis_errors.inc();
    tracing::warn!(shard = %state.shard, error = %e, "{what} failed; reading again after a pause");
    Interrupted::Failed
}

/// Hands each stream's new entries to its hub.
fn route(state: &ReaderState, reply: StreamReadReply) {
    let mut members = state.members();
    let by_key: HashMap<&str, RestaurantId> = members
        .iter()
        .map(|(rid, m)| (m.key.as_str(), *rid))
        .collect();
    let mut batches: Vec<(RestaurantId, Vec<Arc<Frame>>, Seq)> = Vec::new();
    for stream in reply.keys {
        let Some(rid) = by_key.get(stream.key.as_str()).copied() else {
            continue;
        };
        let mut last = Seq::ZERO;
        let frames: Vec<Arc<Frame>> = stream
            .ids
            .iter()
            .filter_map(|entry| {
                let frame = parse_entry(rid, entry)?;
                last = last.max(frame.seq);
                Some(Arc::new(frame))
            })
            .collect();
        batches.push((rid, frames, last));
    }
    for (rid, frames, last) in batches {
        if let Some(member) = members.get_mut(&rid) {
            member.last = member.last.max(last);
            if !frames.is_empty() {
                member.hub.offer(frames);
            }
        }
    }
}

/// A stream entry `<seq>-0 event <envelope JSON>` as a frame; malformed
/// entries are logged and skipped (the seq gap is then filled from
/// PostgreSQL).
pub(crate) fn parse_entry(restaurant: RestaurantId, entry: &StreamId) -> Option<Frame> {
    let seq: Option<u64> = entry.id.split_once('-').and_then(|(s, _)| s.parse().ok());
    let json = match entry.map.get("event") {
        Some(redis::Value::BulkString(b)) => Bytes::copy_from_slice(b),
        _ => {
            tracing::warn!(%restaurant, id = %entry.id, "stream entry without an event field");
            return None;
        }
    };
    match Frame::from_json(json) {
        Ok((rid, frame)) if rid == restaurant && Some(frame.seq.0) == seq => Some(frame),
        Ok(_) => {
            tracing::warn!(%restaurant, id = %entry.id, "stream entry does not match its id or stream");
            None
        }
        Err(e) => {
            tracing::warn!(%restaurant, id = %entry.id, error = %e, "malformed stream entry");
            None
        }
    }
}
