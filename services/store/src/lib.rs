//! PostgreSQL, the durable record (docs/architecture.md, "The write
//! path").
//!
//! Every command runs in one transaction that writes the domain rows, takes
//! the restaurant's next `seq` and appends the event row. A command that
//! reads before it writes returns a [`Pending`] write: the caller sees the
//! sequenced events *before* the commit (so a publisher can keep commit
//! order) and then commits. A command that only writes (creating an order,
//! publishing an event) is one autocommit statement, one round trip, and
//! returns [`Created`]: the caller takes the publisher's ticket before it.
//! New orders, and free-standing events, arriving together share one
//! statement (group commit, see `group.rs`).

mod chains;
mod cursors;
mod error;
mod events;
mod group;
mod idempotency;
mod ledger;
mod orders;
mod outbox;
mod pending;
mod regions;
mod requests;
mod restaurants;
mod retention;
mod rows;
mod sessions;
mod snapshots;

pub use events::MAX_EVENTS_PER_READ;
pub use snapshots::{SNAPSHOT_LIMIT, SNAPSHOT_MAX_BYTES};

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};

pub use chains::ChainDirectory;
pub use error::StoreError;
pub use idempotency::{IdempotencyKey, Outcome, Replay};
pub use ledger::{UNDELIVERED_PER_RESTAURANT, Undelivered};
pub use orders::{NewItem, NewOrder};
pub use outbox::OutboxBatch;
pub use pending::{Created, Pending};
pub use regions::{PeerBacklog, PeerDatabase, PeerSilence, RegionsReport, link_name};
pub use requests::NewRequest;
pub use restaurants::{NewRestaurant, Restaurant};
pub use retention::Expiring;
pub use sessions::{GuestTransfer, Transfer};
pub use snapshots::{OrderCursor, OrdersSnapshot, Page};
pub use sqlx::postgres::PgSslMode;

/// The embedded migrations of `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A pooled connection idle this long is pinged before it is used again.
pub(crate) const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// How to reach PostgreSQL.
#[derive(Clone, Debug)]
pub struct DbSettings {
    /// Connection options (parsed from `ORDERCAST_DATABASE_URL`).
    pub connect: PgConnectOptions,
    /// Pool size. Default 16.
    pub max_connections: u32,
    /// How long a command waits for a free connection before failing with
    /// "unavailable". Default 2 s.
    pub acquire_timeout: Duration,
    /// Longest a piece of work waits on PostgreSQL once it has a
    /// connection (see [`Store::within`]). Default 2 s.
    pub timeout: Duration,
    /// PostgreSQL's own `statement_timeout` on every pooled connection, so
    /// a slow statement is cancelled by the server, not only abandoned by
    /// the client; `None` for work that may run long (migrations).
    /// Default: [`DbSettings::timeout`].
    pub statement_timeout: Option<Duration>,
}

impl DbSettings {
    /// Default pool size.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
    /// Default wait for a free connection.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default wait on PostgreSQL.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Settings for `url` with the defaults above.
    pub fn from_url(url: &str) -> Result<DbSettings, sqlx::Error> {
        Ok(DbSettings {
            connect: url.parse()?,
            max_connections: DbSettings::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DbSettings::DEFAULT_ACQUIRE_TIMEOUT,
            timeout: DbSettings::DEFAULT_TIMEOUT,
            statement_timeout: Some(DbSettings::DEFAULT_TIMEOUT),
        })
    }

    /// The connection options, with the server's `statement_timeout`.
    fn connect_options(&self) -> PgConnectOptions {
        let connect = self.connect.clone().application_name("ordercast");
        match self.statement_timeout {
            Some(limit) => {
                connect.options([("statement_timeout", format!("{}ms", limit.as_millis()))])
            }
            None => connect,
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// The group-commit writers (new orders, free-standing events).
    writers: Arc<group::Writers>,
    /// [`DbSettings::timeout`].
    timeout: Duration,
}

impl Store {
    /// A pool that connects on first use, so a service can start (and report
    /// not-ready) while PostgreSQL is still down.
    pub fn connect_lazy(settings: &DbSettings) -> Store {
        let timeout = settings.timeout;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // sqlx pings every connection when it returns to the pool; a
            // ping before each use too would cost every command a round
            // trip, so only connections idle for a while are checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_release(move |conn, _| Box::pin(released_in_time(conn, timeout)))
            .connect_lazy_with(settings.connect_options());
        Store {
            timeout,
            ..Store::from_pool(pool)
        }
    }

    /// Wraps an existing pool (with the default deadline).
    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            writers: Arc::new(group::Writers::new()),
            timeout: DbSettings::DEFAULT_TIMEOUT,
        }
    }

    /// Runs `work` with the database deadline ([`DbSettings::timeout`]): a
    /// PostgreSQL that does not answer in time (a stopped server, a lost
    /// network) fails it as unavailable instead of letting it wait for
    /// ever; the server never enforces its own `statement_timeout` then.
    ///
    /// Work cut short may still commit, if its `COMMIT` had reached the
    /// server: callers treat the outcome as unknown (the outbox sweeper
    /// publishes whatever did commit). Its connection is closed, never
    /// reused (see [`released_in_time`]).
    pub async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| Err(StoreError::timed_out()))
    }

    /// [`DbSettings::timeout`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Registers the store's metrics (once per process, by the service that
    /// writes orders).
    pub fn register_metrics(&self, registry: &Registry) -> prometheus::Result<()> {
        self.writers.register(registry)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// Checks that PostgreSQL answers within the deadline.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.within(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a connection going back to the pool may be reused: it must
/// answer a ping within `timeout`. sqlx pings every released connection,
/// which also drains whatever a query abandoned mid-flight left on it (a
/// deadline, a client that went away) and rolls back an abandoned
/// transaction; but it waits for that without a deadline, so a connection
/// to a server that stopped answering would stay out of the pool, in an
/// unknown state, for as long as the server hangs. Instead it is closed
/// (`Err` closes it without a goodbye the server would have to answer).
async fn released_in_time(
    conn: &mut sqlx::PgConnection,
    timeout: Duration,
) -> Result<bool, sqlx::Error> {
    match tokio::time::timeout(timeout, conn.ping()).await {
        Ok(answered) => answered.map(|()| true),
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "a released connection did not answer a ping in time",
        ))),
    }
}
