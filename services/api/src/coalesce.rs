//! Coalesces cache-invalidation hints per restaurant into one
//! `cache.invalidate` event per priority window.
//!
//! Hints live in this process until their window closes (at most 5 s); on
//! shutdown every pending batch is flushed. A crash loses at most one
//! window of hints; they are refetch hints, and screens also refetch on
//! reconnect.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ordercast_core::event::EventDraft;
use ordercast_core::{Audience, Chain, EventType, RestaurantId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::metrics::ApiMetrics;
use crate::writer::Writer;
use ordercast_http::HttpError;

/// Hints waiting to be merged; beyond this, submitters get 503.
const QUEUE_CAPACITY: usize = 10_000;
/// Resources one event carries at most; a fuller batch is flushed at once.
const MAX_BATCH_RESOURCES: usize = 500;
/// Flush attempts before a batch is given up (PostgreSQL down that long).
const MAX_ATTEMPTS: u32 = 30;

/// How soon screens must hear of an invalidation.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Within 5 s.
    Low,
    /// Within 1 s.
    Medium,
    /// Within 200 ms.
    High,
}

impl Priority {
    /// The coalescing window.
    pub fn window(self) -> Duration {
        match self {
            Priority::High => Duration::from_millis(200),
            Priority::Medium => Duration::from_secs(1),
            Priority::Low => Duration::from_secs(5),
        }
    }
}

struct Hint {
    restaurant: RestaurantId,
    resources: Vec<String>,
    priority: Priority,
    audience: Audience,
    trace: Option<String>,
}

/// The hints of one restaurant and audience, merged.
pub(crate) struct Batch {
    audience: Audience,
    resources: BTreeSet<String>,
    priority: Priority,
    trace: Option<String>,
    due: Instant,
    attempts: u32,
}

/// Where due batches go: the writer (tests record them instead).
pub(crate) trait Publish: Send + Sync + 'static {
    /// Commits and publishes `batch` as one `cache.invalidate` event.
    fn publish(
        &self,
        restaurant: RestaurantId,
        batch: &Batch,
    ) -> impl Future<Output = Result<(), HttpError>> + Send;
}

impl Publish for Writer {
    async fn publish(&self, restaurant: RestaurantId, batch: &Batch) -> Result<(), HttpError> {
        let data = serde_json::json!({
            "resources": batch.resources,
            "priority": batch.priority,
        });
        let draft = EventDraft::new(EventType::CacheInvalidate, batch.audience.clone(), data);
        let write = self
            .store
            .publish_event(restaurant, draft, batch.trace.as_deref());
        self.commit_now(restaurant, write).await?;
        Ok(())
    }
}

/// The handle routes submit hints through.
#[derive(Clone)]
pub struct Coalescer {
    tx: mpsc::Sender<Hint>,
}

impl Coalescer {
    /// Starts the coalescing task; it flushes everything and ends when
    /// `shutdown` is cancelled.
    pub fn start(
        writer: Writer,
        metrics: ApiMetrics,
        shutdown: CancellationToken,
    ) -> (Coalescer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run(rx, writer, metrics, shutdown));
        (Coalescer { tx }, task)
    }

    /// Queues a hint; returns the window within which it will be published.
    pub async fn submit(
        &self,
        restaurant: RestaurantId,
        resources: Vec<String>,
        priority: Priority,
        audience: Audience,
        trace: Option<String>,
    ) -> Result<Duration, HttpError> {
        let hint = Hint {
            restaurant,
            resources,
            priority,
            audience,
            trace,
        };
        self.tx.try_send(hint).map_err(|_| HttpError::Unavailable)?;
        Ok(priority.window())
    }
}

#[tracing::instrument(name = "coalescer", skip_all)]
async fn run(
    mut rx: mpsc::Receiver<Hint>,
    writer: impl Publish,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
) {
    let mut pending: HashMap<RestaurantId, Vec<Batch>> = HashMap::new();
    loop {
        let next_due = pending.values().flatten().map(|b| b.due).min();
        tokio::select! {
            hint = rx.recv() => match hint {
                Some(hint) => {
                    metrics.invalidations.with_label_values(&["accepted"]).inc();
                    merge(&mut pending, hint);
                }
                None => break,
            },
            _ = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                flush(&mut pending, Instant::now(), &writer, &metrics).await;
            }
            _ = shutdown.cancelled() => break,
        }
    }
    // Whatever arrived before the stop is still published.
    while let Ok(hint) = rx.try_recv() {
        merge(&mut pending, hint);
    }
    let far = Instant::now() + Duration::from_secs(3600);
    flush(&mut pending, far, &writer, &metrics).await;
}

fn merge(pending: &mut HashMap<RestaurantId, Vec<Batch>>, hint: Hint) {
    let due = Instant::now() + hint.priority.window();
    let batches = pending.entry(hint.restaurant).or_default();
    match batches.iter_mut().find(|b| b.audience == hint.audience) {
        Some(batch) => {
            batch.resources.extend(hint.resources);
            batch.priority = batch.priority.max(hint.priority);
            batch.due = batch.due.min(due);
            if batch.trace.is_none() {
                batch.trace = hint.trace;
            }
            if batch.resources.len() >= MAX_BATCH_RESOURCES {
                batch.due = Instant::now();
            }
        }
        None => batches.push(Batch {
            audience: hint.audience,
            resources: hint.resources.into_iter().collect(),
            priority: hint.priority,
            trace: hint.trace,
            due,
            attempts: 0,
        }),
    }
}

/// Publishes every batch due by `now`; failed ones are retried a second later.
async fn flush(
    pending: &mut HashMap<RestaurantId, Vec<Batch>>,
    now: Instant,
    writer: &impl Publish,
    metrics: &ApiMetrics,
) {
    let restaurants: Vec<RestaurantId> = pending.keys().copied().collect();
    for restaurant in restaurants {
        let batches = pending.remove(&restaurant).unwrap_or_default();
        let mut kept = Vec::new();
        for mut batch in batches {
            if batch.due > now {
                kept.push(batch);
                continue;
            }
            match writer.publish(restaurant, &batch).await {
                Ok(()) => metrics
                    .invalidations
                    .with_label_values(&["published"])
                    .inc(),
                Err(e) if batch.attempts + 1 < MAX_ATTEMPTS => {
                    tracing::warn!(%restaurant, error = %Chain(&e), "cache.invalidate not published yet; retrying");
                    batch.attempts += 1;
                    batch.due = Instant::now() + Duration::from_secs(1);
                    kept.push(batch);
                }
                Err(e) => {
                    tracing::error!(%restaurant, error = %Chain(&e), "cache.invalidate given up")
                }
            }
        }
        if !kept.is_empty() {
            pending.insert(restaurant, kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ordercast_core::Role;

    use super::*;

    /// What was published, when (since the start), with what.
    type Log = Arc<Mutex<Vec<(Duration, RestaurantId, Vec<String>, Priority)>>>;

    /// Records batches; the first `fail` attempts fail.
    struct Recorder {
        start: Instant,
        log: Log,
        fail: Mutex<u32>,
    }

    impl Publish for Recorder {
        async fn publish(&self, restaurant: RestaurantId, batch: &Batch) -> Result<(), HttpError> {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(HttpError::Unavailable);
            }
            let resources = batch.resources.iter().cloned().collect();
            let entry = (self.start.elapsed(), restaurant, resources, batch.priority);
            self.log.lock().unwrap().push(entry);
            Ok(())
        }
    }

    struct Harness {
        hints: mpsc::Sender<Hint>,
        log: Log,
        shutdown: CancellationToken,
        task: JoinHandle<()>,
    }

    fn start(fail: u32) -> Harness {
        let (hints, rx) = mpsc::channel(16);
        let log = Log::default();
        let recorder = Recorder {
            start: Instant::now(),
            log: log.clone(),
            fail: Mutex::new(fail),
        };
        let metrics = ApiMetrics::new(&prometheus::Registry::new()).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(rx, recorder, metrics, shutdown.clone()));
        Harness {
            hints,
            log,
            shutdown,
            task,
        }
    }

    async fn hint(h: &Harness, restaurant: RestaurantId, resource: &str, priority: Priority) {
        let hint = Hint {
            restaurant,
            resources: vec![resource.into()],
            priority,
            audience: Audience::roles(&[Role::Kitchen]),
            trace: None,
        };
        h.hints.send(hint).await.unwrap();
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn hints_merge_until_the_earliest_window_closes_and_each_batch_is_one_event() {
        let h = start(0);
        let (r1, r2) = (RestaurantId::new(), RestaurantId::new());
        hint(&h, r1, "menu", Priority::Low).await;
        hint(&h, r2, "tables", Priority::High).await;
        tokio::time::sleep(ms(500)).await;
        hint(&h, r1, "prices", Priority::Medium).await;
        hint(&h, r1, "menu", Priority::Low).await;
        tokio::time::sleep(ms(10_000)).await;

        let log = h.log.lock().unwrap().clone();
        assert_eq!(
            log,
            [
                (ms(200), r2, vec!["tables".into()], Priority::High),
                (
                    ms(1_500),
                    r1,
                    vec!["menu".into(), "prices".into()],
                    Priority::Medium
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_batch_is_retried_a_second_later() {
        let h = start(2);
        let r1 = RestaurantId::new();
        hint(&h, r1, "menu", Priority::High).await;
        tokio::time::sleep(ms(5_000)).await;

        let log = h.log.lock().unwrap().clone();
        assert_eq!(log, [(ms(2_200), r1, vec!["menu".into()], Priority::High)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_publishes_what_is_pending_at_once() {
        let h = start(0);
        let r1 = RestaurantId::new();
        hint(&h, r1, "menu", Priority::Low).await;
        tokio::time::sleep(ms(100)).await;

        h.shutdown.cancel();
        h.task.await.unwrap();

        let log = h.log.lock().unwrap().clone();
        assert_eq!(log, [(ms(100), r1, vec!["menu".into()], Priority::Low)]);
    }
}
