//! Shard readers: one task and one dedicated Redis connection per shard with
//! local demand, blocking in `XREAD` over the streams of that shard's
//! watched restaurants. A change of that set wakes the reader at once with
//! `CLIENT UNBLOCK`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ordercast_bus::{Keys, Shard, Streams};
use ordercast_core::{RestaurantId, Seq};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
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
    client: redis::Client,
    streams: Streams,
    metrics: EdgeMetrics,
}

impl ShardReaders {
    pub(crate) fn new(
        url: &str,
        streams: Streams,
        metrics: EdgeMetrics,
    ) -> redis::RedisResult<Self> {
        Ok(ShardReaders {
            readers: Mutex::default(),
            client: redis::Client::open(url)?,
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
            degraded: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        });
        self.metrics.shard_readers.inc();
        tokio::spawn(read(
            state.clone(),
            self.client.clone(),
            self.metrics.clone(),
        ));
        tokio::spawn(unblock(state.clone(), self.streams.clone()));
        state
    }
}

/// Wakes the reader with `CLIENT UNBLOCK` until it has picked up the latest
/// membership (an unblock sent before its `XREAD` arrives is retried).
async fn unblock(state: Arc<ReaderState>, streams: Streams) {
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
            if id >= 0
                && let Ok(mut conn) = streams.pool().get().await
            {
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(id)
                    .query_async(&mut *conn)
                    .await;
            }
            tokio::select! {
                _ = state.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
}

async fn connect(client: &redis::Client) -> redis::RedisResult<(MultiplexedConnection, i64)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    Ok((conn, id))
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

/// The reader task: (re)connects, then loops on `XREAD BLOCK`.
async fn read(state: Arc<ReaderState>, client: redis::Client, metrics: EdgeMetrics) {
    let mut backoff = Duration::from_millis(100);
    while !state.stop.is_cancelled() {
        let connected = tokio::select! {
            _ = state.stop.cancelled() => return,
            c = connect(&client) => c,
        };
        let mut conn = match connected {
            Ok((conn, id)) => {
                state.client_id.store(id, Ordering::Release);
                set_degraded(&state, &metrics, false);
                backoff = Duration::from_millis(100);
                conn
            }
            Err(e) => {
                metrics.redis_errors.inc();
                tracing::debug!(shard = %state.shard, error = %e, "cannot connect to Redis");
                set_degraded(&state, &metrics, true);
                tokio::select! {
                    _ = state.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
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
                    _ = state.stop.cancelled() => return,
                    _ = state.wake.notified() => continue,
                }
            }
            let options = StreamReadOptions::default()
                .block(BLOCK.as_millis() as usize)
                .count(COUNT);
            let reply: redis::RedisResult<Option<StreamReadReply>> = tokio::select! {
                _ = state.stop.cancelled() => return,
                r = redis::AsyncCommands::xread_options(&mut conn, &keys, &ids, &options) => r,
            };
            match reply {
                Ok(Some(reply)) => route(&state, reply),
                Ok(None) => {}
                Err(e) => {
                    metrics.redis_errors.inc();
                    tracing::warn!(shard = %state.shard, error = %e, "XREAD failed; reconnecting");
                    state.client_id.store(-1, Ordering::Release);
                    set_degraded(&state, &metrics, true);
                    break;
                }
            }
        }
    }
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
