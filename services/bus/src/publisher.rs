//! The fast path: XADD each committed event right after its commit, in
//! commit order, without making the client wait for Redis.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ordercast_core::{Envelope, RestaurantId, Seq, TraceParent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Span;

use crate::sequencer::Ticket;
use crate::{BusMetrics, HeldConn, PublishOutcome, Sequencer, Streams, trace};

/// Events waiting for XADD; beyond this they are left to the outbox sweeper.
const QUEUE_CAPACITY: usize = 65_536;
/// Most events sent in one pipeline.
const BATCH: usize = 256;

struct Queued {
    envelope: Envelope,
    committed_at: Instant,
}

struct Shared {
    // std Mutex: held only for in-memory bookkeeping, never across .await.
    sequencer: Mutex<Sequencer>,
    queue: mpsc::Sender<Queued>,
    metrics: BusMetrics,
}

/// Hands committed events to a background XADD task, in commit order.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

/// Places in the publish order, taken before COMMIT. Release it with the
/// committed events; dropping it means the write did not (knowingly) commit.
#[must_use = "release the reservation after commit, or drop it on rollback"]
pub struct Reservation {
    publisher: Publisher,
    keys: Vec<(RestaurantId, Seq)>,
}

impl Publisher {
    /// Starts the XADD task. It reports every event that is settled in Redis
    /// (added, or already there) on `receipts`, so the caller can mark it
    /// published; the task ends when every `Publisher` clone is dropped.
    pub fn start(
        streams: Streams,
        metrics: BusMetrics,
        receipts: mpsc::Sender<Vec<(RestaurantId, Seq)>>,
    ) -> (Publisher, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run(rx, streams, metrics.clone(), receipts));
        let shared = Shared {
            sequencer: Mutex::new(Sequencer::new()),
            queue,
            metrics,
        };
        let publisher = Publisher {
            shared: Arc::new(shared),
        };
        (publisher, task)
    }

    /// Reserves the places of `events`; call while the write's transaction
    /// is still open.
    pub fn reserve(&self, events: &[Envelope]) -> Reservation {
        let keys: Vec<_> = events.iter().map(|e| (e.restaurant_id, e.seq)).collect();
        self.lock().reserve(keys.iter().copied());
        Reservation {
            publisher: self.clone(),
            keys,
        }
    }

    /// Takes a place for a single autocommit statement writing to
    /// `restaurant`; call before sending it, release it with what it committed.
    pub fn ticket(&self, restaurant: RestaurantId) -> InFlight {
        let ticket = self.lock().open_ticket(restaurant);
        InFlight {
            publisher: self.clone(),
            ticket: Some(ticket),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sequencer> {
        // A panic while holding this lock leaves consistent-enough state:
        // at worst some events wait for the sweeper.
        self.shared
            .sequencer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settle(&self, update: impl FnOnce(&mut Sequencer, &mut Vec<Envelope>)) {
        let mut ready = Vec::new();
        let mut sequencer = self.lock();
        update(&mut sequencer, &mut ready);
        // Enqueue under the lock so the queue keeps the sequencer's order.
        let committed_at = Instant::now();
        for envelope in ready {
            let queued = Queued {
                envelope,
                committed_at,
            };
            if self.shared.queue.try_send(queued).is_err() {
                self.shared.metrics.dropped.inc();
            }
        }
    }
}

impl Reservation {
    /// The write committed: publish its events (after any earlier ones).
    pub fn release(mut self, committed: Vec<Envelope>) {
        self.keys.clear();
        self.publisher.settle(|s, out| s.commit(committed, out));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.keys.is_empty() {
            let keys = std::mem::take(&mut self.keys);
            self.publisher.settle(|s, out| s.abort(&keys, out));
        }
    }
}

/// An autocommit write in flight (see [`Publisher::ticket`]). Dropping it
/// means the write failed or its outcome is unknown (the outbox sweeper
/// covers the latter).
#[must_use = "release the ticket with the committed events, or drop it on failure"]
pub struct InFlight {
    publisher: Publisher,
    ticket: Option<Ticket>,
}

impl InFlight {
    /// The write committed these events: publish them (after any earlier ones).
    pub fn release(mut self, committed: Vec<Envelope>) {
        if let Some(ticket) = self.ticket.take() {
            self.publisher
                .settle(|s, out| s.close_ticket(ticket, committed, out));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.publisher
                .settle(|s, out| s.close_ticket(ticket, Vec::new(), out));
        }
    }
}

#[tracing::instrument(name = "publisher", skip_all)]
async fn run(
    mut rx: mpsc::Receiver<Queued>,
    streams: Streams,
    metrics: BusMetrics,
    receipts: mpsc::Sender<Vec<(RestaurantId, Seq)>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut healthy = true;
    let mut conn = HeldConn::default();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut settled = Vec::with_capacity(batch.len());
        let spans: Vec<Span> = match trace::exporting() {
            true => batch
                .iter()
                .map(|q| xadd_span(&q.envelope, batch.len()))
                .collect(),
            false => Vec::new(),
        };
        let failed = |i: usize| {
            if let Some(span) = spans.get(i) {
                span.record("otel.status_code", "error");
            }
        };
        match streams
            .publish(&mut conn, batch.iter().map(|q| &q.envelope))
            .await
        {
            Ok(outcomes) => {
                let (mut refused, mut last_refusal) = (0usize, None);
                for (i, (queued, outcome)) in batch.iter().zip(outcomes).enumerate() {
                    let e = &queued.envelope;
                    match outcome {
                        PublishOutcome::Added => {
                            metrics
                                .publish_latency
                                .observe(queued.committed_at.elapsed().as_secs_f64());
                            metrics
                                .published
                                .with_label_values(&[BusMetrics::type_label(&e.kind)])
                                .inc();
                        }
                        PublishOutcome::AlreadyThere => {}
                        PublishOutcome::Failed(err) => {
                            failed(i);
                            metrics.redis_errors.with_label_values(&["xadd"]).inc();
                            metrics.dropped.inc();
                            refused += 1;
                            last_refusal = Some((e.restaurant_id, e.seq, err));
                            continue;
                        }
                    }
                    settled.push((e.restaurant_id, e.seq));
                }
                if let Some((restaurant, seq, error)) = last_refusal {
                    tracing::warn!(%restaurant, %seq, %error, refused, "XADD refused; the outbox sweeper will retry");
                }
                if !healthy {
                    tracing::info!("Redis is back; publishing on the fast path again");
                    healthy = true;
                }
            }
            Err(err) => {
                (0..batch.len()).for_each(failed);
                metrics.redis_errors.with_label_values(&["xadd"]).inc();
                metrics.dropped.inc_by(batch.len() as u64);
                if healthy {
                    tracing::warn!(error = %err, "Redis unreachable; events wait for the outbox sweeper");
                    healthy = false;
                }
            }
        }
        drop(spans);
        batch.clear();
        if !settled.is_empty() {
            // Full means the marker is behind; the sweeper will mark these.
            let _ = receipts.try_send(settled);
        }
    }
}

/// The span of one event's XADD (its batch's pipeline, from send to reply),
/// a child of the request that produced the event; none for an event
/// without a trace.
fn xadd_span(event: &Envelope, batch: usize) -> Span {
    let Some(trace) = event
        .trace
        .as_deref()
        .and_then(|t| t.parse::<TraceParent>().ok())
    else {
        return Span::none();
    };
    let span = tracing::info_span!(
        parent: None,
        "XADD",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        "db.system.name" = "redis",
        "db.operation.name" = "XADD",
        "db.operation.batch.size" = batch,
        "ordercast.restaurant_id" = %event.restaurant_id,
        "ordercast.seq" = event.seq.0,
    );
    trace::continue_trace(&span, &trace);
    span
}
