//! Group commit for new orders.
//!
//! Creating an order is one autocommit statement, but at a high rate the
//! database spends most of its time on per-statement and per-commit work
//! (round trip, parse, lock, WAL flush), not on the rows. So new orders
//! queue here, and one writer task writes whatever has queued up in one
//! statement: one commit, one WAL flush. Nothing waits to fill a batch: an
//! idle writer takes a lone order at once, so it costs one channel hop more
//! than writing it directly; batches form only while a statement is in
//! flight, which is exactly when they pay off. (Measured on 2 cores at
//! 1,500 orders/s: a second writer made batches smaller and cost the
//! database 20 % more CPU; see docs/performance.md.)
//!
//! The statement is the one every new order is written with
//! (`orders::insert_orders`); it may take seqs of many restaurants.
//!
//! The writer keeps one connection of its own, set to reuse the statement's
//! generic plan. PostgreSQL otherwise plans the statement anew for each
//! batch (its plan cache judges the generic plan of `unnest` over
//! parameters costlier than a custom one), and that planning took 0.5–1 ms
//! of a ~1.5 ms write; the plan does not depend on the values.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ordercast_core::Envelope;
use ordercast_core::order::Order;
use prometheus::{Histogram, HistogramOpts, IntGauge, Registry};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use crate::events::Stamp;
use crate::orders::{Inserted, insert_order, insert_orders};
use crate::{CHECK_IDLE_AFTER, Created, StoreError};

/// Most orders one statement writes.
const MAX_BATCH: usize = 64;
/// Orders waiting for the writer; beyond this callers wait to enqueue.
const QUEUE: usize = 4_096;

struct Job {
    order: Order,
    trace: Option<String>,
    ts: DateTime<Utc>,
    queued_at: Instant,
    reply: oneshot::Sender<Result<Created<Order>, StoreError>>,
}

impl Job {
    fn stamp(&self) -> Stamp<'_> {
        Stamp::at(self.order.restaurant_id, self.trace.as_deref(), self.ts)
    }

    fn answer(mut self, inserted: Result<Inserted, StoreError>) {
        let created = inserted.map(|inserted| {
            self.order.number = inserted.number;
            Created {
                value: self.order,
                events: inserted.events,
            }
        });
        // The caller may have given up (its request was cancelled).
        let _ = self.reply.send(created);
    }
}

/// What the order writer reports.
#[derive(Clone, Debug)]
pub(crate) struct GroupMetrics {
    /// `ordercast_order_batch_size`: orders written by one statement.
    sizes: Histogram,
    /// `ordercast_orders_queued`: orders waiting for the writer.
    queued: IntGauge,
}

impl GroupMetrics {
    pub(crate) fn new() -> GroupMetrics {
        let sizes = HistogramOpts::new(
            "ordercast_order_batch_size",
            "New orders written by one statement and one commit (group commit).",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        GroupMetrics {
            sizes: Histogram::with_opts(sizes).expect("valid histogram"),
            queued: IntGauge::new(
                "ordercast_orders_queued",
                "New orders waiting for the order writer.",
            )
            .expect("valid gauge"),
        }
    }

    pub(crate) fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.sizes.clone()))?;
        registry.register(Box::new(self.queued.clone()))
    }
}

/// The queue in front of the order writer; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct OrderBatcher {
    queue: mpsc::Sender<Job>,
    queued: IntGauge,
}

impl OrderBatcher {
    /// Starts the writer on the current runtime; it ends when the last
    /// clone is dropped.
    /// Each statement gets `timeout` (see [`crate::Store::within`]).
    pub(crate) fn start(pool: PgPool, timeout: Duration, metrics: GroupMetrics) -> OrderBatcher {
        let (queue, rx) = mpsc::channel(QUEUE);
        let queued = metrics.queued.clone();
        tokio::spawn(work(WriterConn::new(pool, timeout), rx, metrics));
        OrderBatcher { queue, queued }
    }

    /// Writes `order` and its `order.created` event; committed when this
    /// returns.
    pub(crate) async fn write(
        &self,
        order: Order,
        trace: Option<&str>,
    ) -> Result<Created<Order>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            order,
            trace: trace.map(str::to_owned),
            ts: Envelope::now(),
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

async fn work(mut conn: WriterConn, mut rx: mpsc::Receiver<Job>, metrics: GroupMetrics) {
    // An order waits for the writer no longer than a command waits for a
    // pooled connection; then it fails unwritten, as that command would.
    let patience = conn.pool.options().get_acquire_timeout();
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // The next order, and every order queued behind it.
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        metrics.queued.sub(jobs.len() as i64);
        let (late, batch): (Vec<Job>, Vec<Job>) = jobs
            .drain(..)
            .partition(|job| job.queued_at.elapsed() > patience);
        for job in late {
            job.answer(Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
        }
        if !batch.is_empty() {
            metrics.sizes.observe(batch.len() as f64);
            write_batch(&mut conn, batch).await;
        }
    }
}

async fn write_batch(conn: &mut WriterConn, jobs: Vec<Job>) {
    let orders: Vec<_> = jobs.iter().map(|j| (&j.order, j.stamp())).collect();
    let written = conn.run(async |c| insert_orders(c, &orders).await).await;
    match written {
        Ok(written) => {
            for (job, inserted) in jobs.into_iter().zip(written) {
                job.answer(inserted.ok_or(StoreError::NotFound("restaurant")));
            }
        }
        // The database refused the statement, so nothing of it committed:
        // write each order alone, so one bad order fails only itself.
        Err(StoreError::Database(_)) if jobs.len() > 1 => {
            for job in jobs {
                let inserted = conn
                    .run(async |c| insert_order(c, &job.order, job.stamp()).await)
                    .await;
                job.answer(inserted);
            }
        }
        // PostgreSQL is unreachable (or the one order failed): every order
        // of the statement shares its fate.
        Err(err) => {
            let copy = copier(&err);
            let mut jobs = jobs.into_iter();
            if let Some(first) = jobs.next() {
                first.answer(Err(err));
            }
            for job in jobs {
                job.answer(Err(copy()));
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
    /// the next call takes a fresh one. Until the deadline, the orders
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

/// Makes copies of `err` for the other orders of a failed statement (sqlx
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
