//! Group commit for single-statement writes: new orders, and events that
//! change no row (notifications, invalidations, integrations' `x.*`).
//!
//! Each such write is one autocommit statement, but at a high rate the
//! database spends most of its time on per-statement and per-commit work
//! (round trip, parse, lock, WAL flush), not on the rows. So writes of one
//! kind queue here, and one writer task per kind writes whatever has queued
//! up in one statement: one commit, one WAL flush. Nothing waits to fill a
//! batch: an idle writer takes a lone write at once, so it costs one channel
//! hop more than writing it directly, and saves the pool's checkout and the
//! checks on returning a connection (two round trips). Batches form only
//! while a statement is in flight, which is exactly when they pay off.
//! (Measured on 2 cores at 1,500 orders/s: a second writer made batches
//! smaller and cost the database 20 % more CPU; see docs/performance.md.)
//!
//! A kind ([`GroupWrite`]) brings its statement, which may take seqs of
//! many restaurants: `orders::insert_orders`, `events::insert_events`.
//!
//! Each writer keeps one connection of its own, set to reuse the
//! statement's generic plan. PostgreSQL otherwise plans the statement anew
//! for each batch (its plan cache judges the generic plan of `unnest` over
//! parameters costlier than a custom one), and that planning took 0.5–1 ms
//! of a ~1.5 ms write; the plan does not depend on the values.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntGauge, Registry};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use crate::events::EventWrite;
use crate::orders::OrderWrite;
use crate::{CHECK_IDLE_AFTER, StoreError};

/// Most writes one statement takes.
const MAX_BATCH: usize = 64;
/// Writes waiting for a writer; beyond this callers wait to enqueue.
const QUEUE: usize = 4_096;

/// A kind of write the group writer batches.
pub(crate) trait GroupWrite: Sized + Send + Sync + 'static {
    /// What the statement returns for one write.
    type Row: Send;
    /// What the caller gets back.
    type Written: Send + 'static;

    /// Writes `writes` in one autocommit statement; per write, its row, or
    /// `None` when its restaurant does not exist (and then nothing of it
    /// was written).
    fn write_all(
        conn: &mut PgConnection,
        writes: &[Self],
    ) -> impl Future<Output = Result<Vec<Option<Self::Row>>, StoreError>> + Send;

    /// The caller's answer, from the write and its row.
    fn written(self, row: Self::Row) -> Self::Written;
}

struct Job<W: GroupWrite> {
    write: W,
    queued_at: Instant,
    reply: Reply<W>,
}

type Reply<W> = oneshot::Sender<Result<<W as GroupWrite>::Written, StoreError>>;

/// Answers one write; the caller may have given up (its request was
/// cancelled).
fn answer<W: GroupWrite>(reply: Reply<W>, write: W, row: Result<Option<W::Row>, StoreError>) {
    let written = row.and_then(|row| row.ok_or(StoreError::NotFound("restaurant")));
    let _ = reply.send(written.map(|row| write.written(row)));
}

/// What a writer reports.
#[derive(Clone, Debug)]
pub(crate) struct GroupMetrics {
    /// `ordercast_order_batch_size`, `ordercast_event_batch_size`: writes
    /// taken by one statement.
    sizes: Histogram,
    /// `ordercast_orders_queued`, `ordercast_events_queued`: writes waiting
    /// for the writer.
    queued: IntGauge,
}

impl GroupMetrics {
    fn new(sizes: (&str, &str), queued: (&str, &str)) -> GroupMetrics {
        let sizes = HistogramOpts::new(sizes.0, sizes.1)
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        GroupMetrics {
            sizes: Histogram::with_opts(sizes).expect("valid histogram"),
            queued: IntGauge::new(queued.0, queued.1).expect("valid gauge"),
        }
    }

    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.sizes.clone()))?;
        registry.register(Box::new(self.queued.clone()))
    }
}

/// One kind's writer, started on its first write (it needs a runtime).
#[derive(Debug)]
struct Group<W: GroupWrite> {
    batcher: OnceLock<Batcher<W>>,
    metrics: GroupMetrics,
}

impl<W: GroupWrite> Group<W> {
    fn new(metrics: GroupMetrics) -> Self {
        Group {
            batcher: OnceLock::new(),
            metrics,
        }
    }

    fn batcher(&self, pool: &PgPool, timeout: Duration) -> &Batcher<W> {
        self.batcher
            .get_or_init(|| Batcher::start(pool.clone(), timeout, self.metrics.clone()))
    }
}

/// The writers of a store: one for new orders, one for free-standing
/// events.
#[derive(Debug)]
pub(crate) struct Writers {
    orders: Group<OrderWrite>,
    events: Group<EventWrite>,
}

impl Writers {
    pub(crate) fn new() -> Writers {
        Writers {
            orders: Group::new(GroupMetrics::new(
                (
                    "ordercast_order_batch_size",
                    "New orders written by one statement and one commit (group commit).",
                ),
                (
                    "ordercast_orders_queued",
                    "New orders waiting for the order writer.",
                ),
            )),
            events: Group::new(GroupMetrics::new(
                (
                    "ordercast_event_batch_size",
                    "Events that change no order (notifications, invalidations, x.*) written by one statement and one commit (group commit).",
                ),
                (
                    "ordercast_events_queued",
                    "Events that change no order waiting for the event writer.",
                ),
            )),
        }
    }

    pub(crate) fn orders(&self, pool: &PgPool, timeout: Duration) -> &Batcher<OrderWrite> {
        self.orders.batcher(pool, timeout)
    }

    pub(crate) fn events(&self, pool: &PgPool, timeout: Duration) -> &Batcher<EventWrite> {
        self.events.batcher(pool, timeout)
    }

    pub(crate) fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        self.orders.metrics.register(registry)?;
        self.events.metrics.register(registry)
    }
}

/// The queue in front of one writer.
#[derive(Debug)]
pub(crate) struct Batcher<W: GroupWrite> {
    queue: mpsc::Sender<Job<W>>,
    queued: IntGauge,
}

impl<W: GroupWrite> Batcher<W> {
    /// Starts the writer on the current runtime; it ends when the batcher
    /// is dropped. Each statement gets `timeout` (see
    /// [`crate::Store::within`]).
    fn start(pool: PgPool, timeout: Duration, metrics: GroupMetrics) -> Batcher<W> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let queued = metrics.queued.clone();
        tokio::spawn(work(WriterConn::new(pool, timeout), rx, metrics));
        Batcher { queue, queued }
    }

    /// Writes `write`; committed when this returns.
    pub(crate) async fn write(&self, write: W) -> Result<W::Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write,
            queued_at: Instant::now(),
            reply,
        };
        self.queued.inc();
        if self.queue.send(job).await.is_err() {
            self.queued.dec();
            return Err(stopped());
        }
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer is gone (the runtime is shutting down).
fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

async fn work<W: GroupWrite>(
    mut conn: WriterConn,
    mut rx: mpsc::Receiver<Job<W>>,
    metrics: GroupMetrics,
) {
    // A write waits for the writer no longer than a command waits for a
    // pooled connection; then it fails unwritten, as that command would.
    let patience = conn.pool.options().get_acquire_timeout();
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // The next write, and every write queued behind it.
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        metrics.queued.sub(jobs.len() as i64);
        let (late, batch): (Vec<Job<W>>, Vec<Job<W>>) = jobs
            .drain(..)
            .partition(|job| job.queued_at.elapsed() > patience);
        for job in late {
            let late = StoreError::Unavailable(sqlx::Error::PoolTimedOut);
            answer(job.reply, job.write, Err(late));
        }
        if !batch.is_empty() {
            metrics.sizes.observe(batch.len() as f64);
            write_batch(&mut conn, batch).await;
        }
    }
}

async fn write_batch<W: GroupWrite>(conn: &mut WriterConn, jobs: Vec<Job<W>>) {
    let (writes, replies): (Vec<W>, Vec<Reply<W>>) =
        jobs.into_iter().map(|job| (job.write, job.reply)).unzip();
    let written = conn.run(async |c| W::write_all(c, &writes).await).await;
    match written {
        Ok(rows) => {
            for ((write, reply), row) in writes.into_iter().zip(replies).zip(rows) {
                answer(reply, write, Ok(row));
            }
        }
        // The database refused the statement, so nothing of it committed:
        // write each alone, so one bad write fails only itself.
        Err(StoreError::Database(_)) if writes.len() > 1 => {
            for (write, reply) in writes.into_iter().zip(replies) {
                let one = std::slice::from_ref(&write);
                let row = conn.run(async |c| W::write_all(c, one).await).await;
                answer(reply, write, row.map(|mut rows| rows.pop().flatten()));
            }
        }
        // PostgreSQL is unreachable (or the one write failed): every write
        // of the statement shares its fate.
        Err(err) => {
            let copy = copier(&err);
            let errors = std::iter::once(err).chain(std::iter::repeat_with(copy));
            for ((write, reply), err) in writes.into_iter().zip(replies).zip(errors) {
                answer(reply, write, Err(err));
            }
        }
    }
}

/// The writer's own connection, taken from the pool when first needed and
/// kept until it fails. It is set to always use generic plans, so it is
/// closed rather than returned to the pool.
struct WriterConn {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
    used_at: Instant,
    /// Longest one statement (with taking the connection) may wait.
    timeout: Duration,
}

impl WriterConn {
    fn new(pool: PgPool, timeout: Duration) -> WriterConn {
        WriterConn {
            pool,
            conn: None,
            used_at: Instant::now(),
            timeout,
        }
    }

    /// Runs `statement` on the connection; one that PostgreSQL could not
    /// be reached on, or that did not answer within the deadline, is
    /// closed (its state is unknown: the statement may yet commit), and
    /// the next call takes a fresh one. Until the deadline, the writes
    /// queued behind this statement wait for it.
    async fn run<T>(
        &mut self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = self.timeout;
        let run = async {
            match self.get().await {
                Ok(conn) => statement(conn).await,
                Err(err) => Err(err),
            }
        };
        let result = tokio::time::timeout(deadline, run)
            .await
            .unwrap_or_else(|_| Err(StoreError::timed_out()));
        self.used_at = Instant::now();
        if matches!(result, Err(StoreError::Unavailable(_))) {
            self.conn = None;
        }
        result
    }

    async fn get(&mut self) -> Result<&mut PgConnection, StoreError> {
        // As the pool does: a connection idle for a while may have been
        // cut (PostgreSQL restarted, a proxy's idle timeout), so check it.
        if let Some(conn) = &mut self.conn
            && self.used_at.elapsed() >= CHECK_IDLE_AFTER
            && conn.ping().await.is_err()
        {
            self.conn = None;
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = self.pool.acquire().await?;
                conn.close_on_drop();
                sqlx::query("SET plan_cache_mode = force_generic_plan")
                    .execute(&mut *conn)
                    .await?;
                conn
            }
        };
        Ok(&mut **self.conn.insert(conn))
    }
}

/// Makes copies of `err` for the other writes of a failed statement (sqlx
/// errors do not clone): same kind, same message.
fn copier(err: &StoreError) -> impl Fn() -> StoreError + use<> {
    let unavailable = matches!(err, StoreError::Unavailable(_));
    let message = match err {
        StoreError::Unavailable(source) | StoreError::Database(source) => source.to_string(),
        other => other.to_string(),
    };
    move || {
        let source = sqlx::Error::Protocol(message.clone());
        if unavailable {
            StoreError::Unavailable(source)
        } else {
            StoreError::Database(source)
        }
    }
}
