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
//! One statement may take seqs of many restaurants. It locks their rows in
//! id order, and no other command waits for anything once it holds its
//! restaurant's row, so batches from any number of replicas never deadlock
//! with each other or with other commands.

use std::sync::LazyLock;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ordercast_core::order::{Order, OrderItem, OrderStatus};
use ordercast_core::{Envelope, EventType, SessionId, WaiterId};
use prometheus::{Histogram, HistogramOpts, IntGauge, Registry};
use sqlx::PgPool;
use sqlx::types::Json;
use tokio::sync::{mpsc, oneshot};

use crate::events::{Stamp, seal};
use crate::orders::{insert_order, order_event};
use crate::{Created, StoreError};

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

    fn answer(self, events: Result<Vec<Envelope>, StoreError>) {
        let created = events.map(|events| Created {
            value: self.order,
            events,
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
    pub(crate) fn start(pool: PgPool, metrics: GroupMetrics) -> OrderBatcher {
        let (queue, rx) = mpsc::channel(QUEUE);
        let queued = metrics.queued.clone();
        tokio::spawn(work(pool, rx, metrics));
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

async fn work(pool: PgPool, mut rx: mpsc::Receiver<Job>, metrics: GroupMetrics) {
    // An order waits for the writer no longer than a command waits for a
    // pooled connection; then it fails unwritten, as that command would.
    let patience = pool.options().get_acquire_timeout();
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
            write_batch(&pool, batch).await;
        }
    }
}

async fn write_batch(pool: &PgPool, jobs: Vec<Job>) {
    let written = match pool.acquire().await {
        Ok(mut conn) if jobs.len() == 1 => {
            let job = &jobs[0];
            insert_order(&mut conn, &job.order, job.stamp())
                .await
                .map(|events| vec![Some(events)])
        }
        Ok(mut conn) => insert_batch(&mut conn, &jobs).await,
        Err(err) => Err(err.into()),
    };
    match written {
        Ok(events) => {
            for (job, events) in jobs.into_iter().zip(events) {
                job.answer(events.ok_or(StoreError::NotFound("restaurant")));
            }
        }
        // The database refused the statement, so nothing of it committed:
        // write each order alone, so one bad order fails only itself.
        Err(StoreError::Database(_)) if jobs.len() > 1 => {
            for job in jobs {
                let events = match pool.acquire().await {
                    Ok(mut conn) => insert_order(&mut conn, &job.order, job.stamp()).await,
                    Err(err) => Err(err.into()),
                };
                job.answer(events);
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

/// The batch statement: `b` is one row per order, `i` one per item (with
/// its order's ordinal). Orders of an unknown restaurant match no `s` row
/// and are not written.
const INSERT_BATCH: &str = "
    WITH b AS (
        SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[],
                             $9::text[], $10::bigint[], $11::timestamptz[], $12::timestamptz[],
                             $13::text[], $14::jsonb[], $15::jsonb[])
            WITH ORDINALITY AS b(restaurant_id, id, table_label, session_id, waiter_id, channel,
                                 notes, total_cents, created_at, event_at, trace, audience, data, ord)
    ), n AS (
        SELECT restaurant_id, count(*) AS n FROM b GROUP BY restaurant_id
    ), locked AS MATERIALIZED (
        SELECT r.id FROM restaurants r JOIN n ON n.restaurant_id = r.id ORDER BY r.id FOR UPDATE OF r
    ), s AS (
        UPDATE restaurants r SET last_seq = r.last_seq + n.n
        FROM n, locked WHERE r.id = n.restaurant_id AND locked.id = r.id
        RETURNING r.id, r.last_seq - n.n AS base
    ), q AS (
        SELECT b.*, s.base + row_number() OVER (PARTITION BY b.restaurant_id ORDER BY b.ord) AS seq
        FROM b JOIN s ON s.id = b.restaurant_id
    ), e AS (
        INSERT INTO events (restaurant_id, seq, type, audience, data, trace, created_at)
        SELECT restaurant_id, seq, $1, audience, data, trace, event_at FROM q
        RETURNING restaurant_id, seq, created_at
    ), o AS (
        INSERT INTO outbox (restaurant_id, seq, created_at) SELECT * FROM e
    ), ins_order AS (
        INSERT INTO orders (id, restaurant_id, status, version, table_label, session_id,
                            waiter_id, channel, notes, total_cents, created_at, updated_at)
        SELECT id, restaurant_id, $2, 1, table_label, session_id, waiter_id, channel, notes,
               total_cents, created_at, created_at FROM q
    ), ins_items AS (
        INSERT INTO order_items (order_id, id, position, sku, name, quantity, unit_price_cents,
                                 station, notes, status)
        SELECT q.id, i.id, i.position, i.sku, i.name, i.quantity, i.price, i.station, i.notes, 'queued'
        FROM unnest($16::bigint[], $17::uuid[], $18::int[], $19::text[], $20::text[], $21::int[],
                    $22::bigint[], $23::text[], $24::text[])
             AS i(ord, id, position, sku, name, quantity, price, station, notes)
        JOIN q ON q.ord = i.ord
    )
    SELECT ord, seq FROM q";

/// Writes every job's order in one statement; per job, its events, or
/// `None` when its restaurant does not exist.
async fn insert_batch(
    conn: &mut sqlx::PgConnection,
    jobs: &[Job],
) -> Result<Vec<Option<Vec<Envelope>>>, StoreError> {
    static EVENT_TYPE: LazyLock<String> = LazyLock::new(|| EventType::OrderCreated.to_string());
    let orders: Vec<&Order> = jobs.iter().map(|j| &j.order).collect();
    let drafts: Vec<_> = orders
        .iter()
        .map(|o| order_event(o, EventType::OrderCreated))
        .collect();
    let order_col = |f: fn(&Order) -> Option<&str>| orders.iter().map(|o| f(o)).collect::<Vec<_>>();
    let items: Vec<(i64, usize, &OrderItem)> = orders
        .iter()
        .zip(1..)
        .flat_map(|(o, ord)| o.items.iter().enumerate().map(move |(p, i)| (ord, p, i)))
        .collect();
    let item_col =
        |f: fn(&OrderItem) -> Option<&str>| items.iter().map(|i| f(i.2)).collect::<Vec<_>>();
    let rows: Vec<(i64, i64)> = sqlx::query_as(INSERT_BATCH)
        .bind(EVENT_TYPE.as_str())
        .bind(OrderStatus::New.as_str())
        .bind(
            orders
                .iter()
                .map(|o| o.restaurant_id.as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(orders.iter().map(|o| o.id.as_uuid()).collect::<Vec<_>>())
        .bind(order_col(|o| o.table.as_deref()))
        .bind(order_col(|o| o.session_id.as_ref().map(SessionId::as_str)))
        .bind(order_col(|o| o.waiter_id.as_ref().map(WaiterId::as_str)))
        .bind(order_col(|o| Some(o.channel.as_str())))
        .bind(order_col(|o| o.notes.as_deref()))
        .bind(orders.iter().map(|o| o.total_cents).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.created_at).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.ts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.trace.as_deref()).collect::<Vec<_>>())
        .bind(drafts.iter().map(|d| Json(&d.audience)).collect::<Vec<_>>())
        .bind(drafts.iter().map(|d| Json(&d.data)).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.2.id.as_uuid()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.1 as i32).collect::<Vec<_>>())
        .bind(item_col(|i| Some(i.sku.as_str())))
        .bind(item_col(|i| Some(i.name.as_str())))
        .bind(items.iter().map(|i| i.2.quantity).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| i.2.unit_price_cents)
                .collect::<Vec<_>>(),
        )
        .bind(item_col(|i| i.station.as_deref()))
        .bind(item_col(|i| i.notes.as_deref()))
        .fetch_all(conn)
        .await?;
    let mut seqs = vec![None; jobs.len()];
    for (ord, seq) in rows {
        seqs[ord as usize - 1] = Some(seq);
    }
    Ok(jobs
        .iter()
        .zip(drafts)
        .zip(seqs)
        .map(|((job, draft), seq)| seal(job.stamp(), vec![draft], seq).ok())
        .collect())
}
