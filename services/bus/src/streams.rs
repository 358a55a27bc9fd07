//! Publishing envelopes to restaurant streams with `XADD <seq>-0`, on one
//! Redis node (a primary, with or without replicas) or a Redis Cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use ordercast_core::{Envelope, RestaurantId, Seq};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::streams::StreamRangeReply;
use redis::{
    AsyncCommands, AsyncConnectionConfig, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, TlsCertificates, Value,
};
use tokio::sync::OnceCell;

use crate::entries::EVENT_FIELD;
use crate::{BusError, Entry, Keys, Shard, entry_id};

/// How to reach Redis and shape its streams.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://host:port/db` (`ORDERCAST_REDIS_URL`); with `cluster`, the
    /// comma-separated URLs of one or more of the cluster's nodes.
    pub url: String,
    /// The URL names Redis Cluster nodes (`ORDERCAST_REDIS_CLUSTER`).
    pub cluster: bool,
    /// Key prefix (`ORDERCAST_REDIS_PREFIX`, default `oc`).
    pub prefix: String,
    /// Approximate per-restaurant stream length (`ORDERCAST_STREAM_MAXLEN`,
    /// default 10 000); older events are served from PostgreSQL.
    pub stream_maxlen: u64,
    /// Command connections in the pool (one Redis node only: a cluster
    /// connection multiplexes one connection per node). Default 16.
    pub pool_size: usize,
    /// For `rediss://`: the PEM certificates to trust instead of the
    /// system's (`ORDERCAST_REDIS_CA_FILE`).
    pub ca_pem: Option<Vec<u8>>,
    /// Longest wait for Redis (`ORDERCAST_REDIS_TIMEOUT`, default 1 s): to
    /// connect, for a pooled connection, and for each command's answer. A
    /// command that misses it counts as failed, so a Redis that hangs (a
    /// frozen process, a black-holed network) is handled like one that
    /// refuses: publishing falls back to the outbox, readers to PostgreSQL.
    pub timeout: Duration,
}

impl RedisSettings {
    /// Default key prefix.
    pub const DEFAULT_PREFIX: &str = "oc";
    /// Default approximate length of each restaurant stream.
    pub const DEFAULT_STREAM_MAXLEN: u64 = 10_000;
    /// Default number of pooled command connections.
    pub const DEFAULT_POOL_SIZE: usize = 16;
    /// Default wait for Redis.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// The node URLs: one, or a cluster's seeds.
    pub fn urls(&self) -> Vec<&str> {
        self.url.split(',').map(str::trim).collect()
    }

    /// How to reach each node of [`RedisSettings::urls`], with the trusted
    /// certificates of `ca_pem` for `rediss://`.
    pub fn connection_infos(&self) -> RedisResult<Vec<ConnectionInfo>> {
        self.urls()
            .into_iter()
            .map(|url| match self.certificates() {
                Some(certificates) => Ok(redis::Client::build_with_tls(url, certificates)?
                    .get_connection_info()
                    .clone()),
                None => url.into_connection_info(),
            })
            .collect()
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        self.ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }
}

/// What became of one event's XADD.
#[derive(Debug)]
pub enum PublishOutcome {
    /// Newly added to its stream.
    Added,
    /// Redis refused the id as equal to or older than the stream's top: it
    /// is there already, or was superseded (readers fill such gaps from
    /// PostgreSQL). Either way there is nothing left to publish.
    AlreadyThere,
    /// This command failed; try again later.
    Failed(BusError),
}

impl PublishOutcome {
    /// True unless the event must be retried.
    pub fn is_settled(&self) -> bool {
        !matches!(self, PublishOutcome::Failed(_))
    }
}

/// The restaurant streams of one Redis deployment.
#[derive(Clone)]
pub struct Streams {
    commands: Commands,
    keys: Keys,
    maxlen: u64,
}

/// Where commands go.
#[derive(Clone)]
enum Commands {
    /// A pool of connections to one node.
    Node(Pool),
    /// A Redis Cluster.
    Cluster(Arc<Cluster>),
}

/// One multiplexed cluster connection, made on first use (and retried on the
/// next use while that fails); it follows the cluster's slot map.
struct Cluster {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl Cluster {
    async fn conn(&self) -> RedisResult<ClusterConnection> {
        let connect = || self.client.get_async_connection();
        Ok(self.conn.get_or_try_init(connect).await?.clone())
    }
}

/// A command connection of either kind.
pub enum Conn {
    Node(deadpool_redis::Connection),
    Cluster(ClusterConnection),
}

/// A command connection one task keeps between calls (see
/// [`Streams::publish`]); starts empty.
#[derive(Default)]
pub struct HeldConn(Option<Conn>);

impl Streams {
    /// Connects lazily to the Redis of `settings`.
    pub fn new(settings: &RedisSettings) -> RedisResult<Streams> {
        let commands = if settings.cluster {
            let mut builder = ClusterClientBuilder::new(settings.urls());
            if let Some(certificates) = settings.certificates() {
                builder = builder.certs(certificates);
            }
            let client = builder
                .connection_timeout(settings.timeout)
                .response_timeout(settings.timeout)
                .overall_response_timeout(Some(2 * settings.timeout))
                // A node that refuses connections fails its slots' commands
                // within tens of milliseconds, not the library's default
                // 1.28 s or more per retry: one publish batch covers many
                // shards, and the live nodes' events wait for it.
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100)
                .build()?;
            Commands::Cluster(Arc::new(Cluster {
                client,
                conn: OnceCell::new(),
            }))
        } else {
            let node = settings.connection_infos()?.remove(0);
            let deadline = Some(settings.timeout);
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(deadline)
                .set_response_timeout(deadline);
            let pool = Pool::builder(Manager::new_with_config(node, config)?)
                .max_size(settings.pool_size)
                // Fail fast when Redis is away: callers fall back to the outbox.
                .wait_timeout(deadline)
                .create_timeout(deadline)
                .recycle_timeout(deadline)
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| RedisError::from(std::io::Error::other(e.to_string())))?;
            Commands::Node(pool)
        };
        Ok(Streams {
            commands,
            keys: Keys::new(settings.prefix.clone()),
            maxlen: settings.stream_maxlen,
        })
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A connection for one command or a pipeline of one shard's keys.
    pub async fn conn(&self) -> RedisResult<Conn> {
        match &self.commands {
            Commands::Node(pool) => Ok(Conn::Node(pool.get().await.map_err(pool_error)?)),
            Commands::Cluster(cluster) => Ok(Conn::Cluster(cluster.conn().await?)),
        }
    }

    /// XADDs `events`, in order per restaurant: in one pipeline on a single
    /// node; on a cluster, one pipeline per shard (a shard is one hash slot),
    /// all at once. `Err` means nothing is known to have been published.
    ///
    /// `held` is the caller's connection, kept from one call to the next.
    /// A connection taken from the pool is first checked with a round trip
    /// (`PING`), which on the publish path would double the time to Redis
    /// for every batch; a held one is used as it is. If it turns out to be
    /// broken (Redis restarted), the batch is sent once more on a fresh
    /// connection: an `XADD` with its own id is safe to repeat.
    pub async fn publish<'a>(
        &self,
        held: &mut HeldConn,
        events: impl IntoIterator<Item = &'a Envelope>,
    ) -> Result<Vec<PublishOutcome>, BusError> {
        let events: Vec<&Envelope> = events.into_iter().collect();
        let was_held = held.0.is_some();
        let replies = match self.publish_on(held, &events).await {
            Err(e) if was_held && (e.is_io_error() || e.is_connection_dropped()) => {
                self.publish_on(held, &events).await
            }
            replies => replies,
        }?;
        Ok(replies.into_iter().map(outcome).collect())
    }

    async fn publish_on(
        &self,
        held: &mut HeldConn,
        events: &[&Envelope],
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let conn = match &mut held.0 {
            Some(conn) => conn,
            slot @ None => slot.insert(self.conn().await?),
        };
        let replies = match conn {
            Conn::Node(_) => self.xadd(conn, events).await,
            Conn::Cluster(cluster) => self.xadd_by_shard(cluster, events).await,
        };
        if replies.is_err() {
            held.0 = None;
        }
        replies
    }

    /// One pipeline per shard, all sent at once (a pipeline may not cross
    /// hash slots); a shard's failure fails only its own events.
    async fn xadd_by_shard(
        &self,
        conn: &ClusterConnection,
        events: &[&Envelope],
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        // Positions in `events`, by shard.
        let mut by_shard: BTreeMap<Shard, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            by_shard
                .entry(Shard::of(e.restaurant_id))
                .or_default()
                .push(i);
        }
        let pipelines = by_shard.values().map(|at| {
            let group: Vec<&Envelope> = at.iter().map(|&i| events[i]).collect();
            let mut conn = conn.clone();
            async move { self.xadd(&mut conn, &group).await }
        });
        let results = futures_util::future::join_all(pipelines).await;
        if let Some(Err(e)) = results.first()
            && results.iter().all(Result::is_err)
        {
            return Err(e.clone());
        }
        let mut replies: Vec<Option<RedisResult<Value>>> = Vec::new();
        replies.resize_with(events.len(), || None);
        for (at, result) in by_shard.values().zip(results) {
            match result {
                Ok(group) => {
                    for (&i, reply) in at.iter().zip(group) {
                        replies[i] = Some(reply);
                    }
                }
                Err(e) => {
                    for &i in at {
                        replies[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        Ok(replies
            .into_iter()
            .map(|r| r.expect("every event is in one shard's pipeline"))
            .collect())
    }

    async fn xadd(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        events: &[&Envelope],
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for event in events {
            let json = serde_json::to_string(event).expect("envelopes serialize");
            pipe.cmd("XADD")
                .arg(self.keys.stream(event.restaurant_id))
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg(entry_id(event.seq))
                .arg(EVENT_FIELD)
                .arg(json);
        }
        pipe.query_async(conn).await
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.conn().await?;
        Ok(redis::cmd("PING").query_async::<()>(&mut conn).await?)
    }

    /// Entries `after+1 …` of the restaurant's stream, at most `max`, up to
    /// the first hole: empty when the stream no longer (or not yet) holds
    /// `after+1`.
    pub async fn range_after(
        &self,
        restaurant: RestaurantId,
        after: Seq,
        max: usize,
    ) -> Result<Vec<Entry>, BusError> {
        let key = self.keys.stream(restaurant);
        let mut conn = self.conn().await?;
        let reply: StreamRangeReply = conn
            .xrange_count(&key, entry_id(after.next()), "+", max)
            .await?;
        let mut expected = after.next();
        let mut entries = Vec::with_capacity(reply.ids.len());
        for id in reply.ids {
            match Entry::from_stream(&key, id) {
                Some(entry) if entry.seq == expected => {
                    expected = expected.next();
                    entries.push(entry);
                }
                _ => break,
            }
        }
        Ok(entries)
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipe, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipe, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

fn outcome(reply: RedisResult<Value>) -> PublishOutcome {
    match reply.map_err(BusError::from) {
        Ok(_) => PublishOutcome::Added,
        Err(BusError::StaleId) => PublishOutcome::AlreadyThere,
        Err(e) => PublishOutcome::Failed(e),
    }
}

/// Pool errors as Redis I/O errors, so callers handle one error type.
pub(crate) fn pool_error(e: deadpool_redis::PoolError) -> RedisError {
    match e {
        deadpool_redis::PoolError::Backend(e) => e,
        other => RedisError::from(std::io::Error::other(other.to_string())),
    }
}
