//! Publishing envelopes to restaurant streams with `XADD <seq>-0`.

use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use ordercast_core::Envelope;
use redis::RedisError;

use crate::Keys;

/// How to reach Redis and shape its streams.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://host:port/db` (`ORDERCAST_REDIS_URL`).
    pub url: String,
    /// Key prefix (`ORDERCAST_REDIS_PREFIX`, default `oc`).
    pub prefix: String,
    /// Approximate per-restaurant stream length (`ORDERCAST_STREAM_MAXLEN`,
    /// default 10 000); older events are served from PostgreSQL.
    pub stream_maxlen: u64,
    /// Command connections in the pool. Default 16.
    pub pool_size: usize,
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
    Failed(RedisError),
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
    pool: Pool,
    keys: Keys,
    maxlen: u64,
}

impl Streams {
    /// A lazily connecting pool for `settings`.
    pub fn new(settings: &RedisSettings) -> Result<Streams, deadpool_redis::CreatePoolError> {
        let mut config = deadpool_redis::Config::from_url(&settings.url);
        let mut pool = deadpool_redis::PoolConfig::new(settings.pool_size);
        // Fail fast when Redis is away: callers fall back to the outbox.
        pool.timeouts.wait = Some(Duration::from_secs(1));
        pool.timeouts.create = Some(Duration::from_secs(1));
        pool.timeouts.recycle = Some(Duration::from_secs(1));
        config.pool = Some(pool);
        Ok(Streams {
            pool: config.create_pool(Some(Runtime::Tokio1))?,
            keys: Keys::new(settings.prefix.clone()),
            maxlen: settings.stream_maxlen,
        })
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The command pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// XADDs `events` in one pipeline, in order. `Err` means nothing is
    /// known to have been published (no connection).
    pub async fn publish<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Envelope>,
    ) -> Result<Vec<PublishOutcome>, RedisError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for event in events {
            let json = serde_json::to_string(event).expect("envelopes serialize");
            pipe.cmd("XADD")
                .arg(self.keys.stream(event.restaurant_id))
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg(format!("{}-0", event.seq))
                .arg("event")
                .arg(json);
        }
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(&mut *conn).await?;
        Ok(replies.into_iter().map(outcome).collect())
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        redis::cmd("PING").query_async::<()>(&mut *conn).await
    }
}

fn outcome(reply: redis::RedisResult<redis::Value>) -> PublishOutcome {
    match reply {
        Ok(_) => PublishOutcome::Added,
        Err(e) if e.to_string().contains("equal or smaller") => PublishOutcome::AlreadyThere,
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
