//! Shard readers (docs/architecture.md, "Shard readers"): one task and one dedicated Redis connection
//! per shard with local demand, blocking in `XREAD` over the streams of that
//! shard's followed restaurants and handing new entries to their followers
//! (the edge's hubs). A change of that set wakes the reader at once with
//! `CLIENT UNBLOCK`, sent on a second connection to the same node.
//!
//! Membership has one owner: every change (a follower added or removed, a
//! reader started or stopped) happens under the readers' one lock, and a
//! follower is removed by the [`Following`] handle that added it, never by
//! restaurant, so a late removal cannot take away a newer follower of the
//! same restaurant.
//!
//! On a Redis Cluster a shard is one hash slot: the reader starts at a seed
//! node and follows `MOVED` to the node that holds the slot, again whenever
//! the slot moves.

mod node;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ordercast_core::{RestaurantId, Seq};
use prometheus::{IntCounter, IntGauge};
use redis::ConnectionInfo;
use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Entry, Keys, RedisSettings, Shard};

/// What a reader hands a restaurant's new entries to.
pub trait Follower: Send + Sync + 'static {
    /// The restaurant followed.
    fn restaurant(&self) -> RestaurantId;
    /// The last seq the follower holds in order; reading resumes after it.
    fn head(&self) -> Seq;
    /// New entries, in stream order. Called with the shard's membership
    /// locked: it must not wait.
    fn offer(&self, entries: Vec<Entry>);
}

/// The gauges and counter the readers keep (registered by their owner).
#[derive(Clone)]
pub struct ReaderMetrics {
    /// Running shard readers.
    pub shard_readers: IntGauge,
    /// Shards whose reader cannot reach Redis.
    pub degraded_shards: IntGauge,
    /// Failed Redis reads.
    pub errors: IntCounter,
}

struct Member<F> {
    follower: Arc<F>,
    key: String,
    /// The last entry handed to the follower.
    last: Seq,
}

/// One shard's reader, shared by its task and the membership owner.
struct Reader<F> {
    shard: Shard,
    /// Changed only with the readers' lock held as well.
    members: Mutex<HashMap<u64, Member<F>>>,
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
    metrics: ReaderMetrics,
}

impl<F> Reader<F> {
    fn members(&self) -> MutexGuard<'_, HashMap<u64, Member<F>>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    fn set_degraded(&self, degraded: bool) {
        if self.degraded.swap(degraded, Ordering::AcqRel) != degraded {
            if degraded {
                tracing::warn!(shard = %self.shard, "Redis unreachable: polling PostgreSQL");
                self.metrics.degraded_shards.inc();
            } else {
                tracing::info!(shard = %self.shard, "Redis back: streaming again");
                self.metrics.degraded_shards.dec();
            }
        }
    }
}

struct Inner<F> {
    // std Mutex: never held across .await. Held across every whole
    // membership change, so a reader never stops while a follower joins it.
    readers: Mutex<HashMap<Shard, Arc<Reader<F>>>>,
    next_id: AtomicU64,
    /// Where readers start: the Redis node, or the cluster's seed nodes.
    seeds: Arc<[ConnectionInfo]>,
    /// The Redis deadline ([`RedisSettings::timeout`]).
    timeout: Duration,
    keys: Keys,
    metrics: ReaderMetrics,
}

/// The shard readers of a process.
pub struct ShardReaders<F> {
    inner: Arc<Inner<F>>,
}

impl<F> Clone for ShardReaders<F> {
    fn clone(&self) -> Self {
        ShardReaders {
            inner: self.inner.clone(),
        }
    }
}

/// A follower's membership of its shard's reader; dropping it ends the
/// membership (and the reader, with its last member).
pub struct Following<F: Follower> {
    inner: Arc<Inner<F>>,
    shard: Shard,
    id: u64,
    degraded: Degraded,
}

impl<F: Follower> Following<F> {
    /// Whether the shard's reader can reach Redis, as it changes.
    pub fn degraded(&self) -> Degraded {
        self.degraded.clone()
    }
}

/// Set while a shard's reader cannot reach Redis (its followers then poll
/// PostgreSQL).
#[derive(Clone)]
pub struct Degraded(Arc<AtomicBool>);

impl Degraded {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl<F: Follower> Drop for Following<F> {
    fn drop(&mut self) {
        self.inner.leave(self.shard, self.id);
    }
}

impl<F: Follower> ShardReaders<F> {
    /// Readers of the Redis `settings` name, for streams named by `keys`.
    pub fn new(
        settings: &RedisSettings,
        keys: Keys,
        metrics: ReaderMetrics,
    ) -> redis::RedisResult<Self> {
        Ok(ShardReaders {
            inner: Arc::new(Inner {
                readers: Mutex::default(),
                next_id: AtomicU64::new(0),
                seeds: settings.connection_infos()?.into(),
                timeout: settings.timeout,
                keys,
                metrics,
            }),
        })
    }

    /// Starts reading `follower`'s stream after its head, starting the
    /// shard's reader if it has none.
    pub fn follow(&self, follower: Arc<F>) -> Following<F> {
        let inner = &self.inner;
        let shard = Shard::of(follower.restaurant());
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            key: inner.keys.stream(follower.restaurant()),
            last: follower.head(),
            follower,
        };
        let mut readers = inner.lock();
        let reader = readers
            .entry(shard)
            .or_insert_with(|| inner.spawn(shard))
            .clone();
        reader.members().insert(id, member);
        drop(readers);
        reader.changed();
        Following {
            inner: inner.clone(),
            shard,
            id,
            degraded: Degraded(reader.degraded.clone()),
        }
    }

    /// Running readers and how many of them are degraded.
    pub fn stats(&self) -> (usize, usize) {
        let readers = self.inner.lock();
        let degraded = readers
            .values()
            .filter(|r| r.degraded.load(Ordering::Acquire))
            .count();
        (readers.len(), degraded)
    }
}

impl<F: Follower> Inner<F> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Shard, Arc<Reader<F>>>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self, shard: Shard) -> Arc<Reader<F>> {
        let reader = Arc::new(Reader {
            shard,
            members: Mutex::default(),
            generation: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            client_id: AtomicI64::new(-1),
            control: Mutex::default(),
            degraded: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            metrics: self.metrics.clone(),
        });
        self.metrics.shard_readers.inc();
        tokio::spawn(node::read(reader.clone(), self.seeds.clone(), self.timeout));
        tokio::spawn(node::unblock(reader.clone()));
        reader
    }

    fn leave(&self, shard: Shard, id: u64) {
        let mut readers = self.lock();
        let Some(reader) = readers.get(&shard).cloned() else {
            return;
        };
        let now_empty = {
            let mut members = reader.members();
            members.remove(&id);
            members.is_empty()
        };
        if now_empty {
            // The task clears the shard's degraded mark as it stops.
            readers.remove(&shard);
            drop(readers);
            reader.stop.cancel();
            self.metrics.shard_readers.dec();
        } else {
            drop(readers);
            reader.changed();
        }
    }
}
