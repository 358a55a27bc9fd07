//! The api's part in a multi-region deployment (docs/multi-region.md):
//! this region's heartbeat, the peers' silence and replication backlog as
//! metrics, and the relay that publishes events replicated from their home
//! regions to this region's Redis the moment they arrive.

use std::time::Duration;

use ordercast_bus::{BusMetrics, Streams};
use ordercast_core::backoff::Backoff;
use ordercast_core::{Chain, Region};
use ordercast_store::Store;
use ordercast_store::StoreError;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::metrics::ApiMetrics;
use crate::outbox::{Claim, SweepError, sweep_once};

/// How often this region beats and looks at its peers.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// The channel the replication trigger notifies (see the regions migration).
const CHANNEL: &str = "ordercast_outbox";

/// The advisory lock that makes one api replica per region the relay:
/// one publisher keeps each restaurant's replicated events in seq order on
/// their way into Redis. Its connection holds it; if the replica dies the
/// lock goes with the connection and another replica takes over.
const RELAY_LOCK: i64 = 0x006f_6372_656c_6179; // "ocrelay"

/// How often a replica that is not the relay checks whether the relay's
/// lock has become free.
const FOLLOWER_RETRY: Duration = Duration::from_secs(2);

/// Events a relay pass claims per transaction.
const RELAY_BATCH: i64 = 1_000;

/// The relay also looks without a notification this often (a notification
/// is lost when the listening connection drops).
const RELAY_POLL: Duration = Duration::from_secs(1);

/// Beats and watches the peers until `shutdown`.
#[tracing::instrument(name = "region_beats", skip_all)]
pub async fn beat(
    store: Store,
    me: Region,
    peers: Vec<Region>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = store.within(store.beat(&me)).await {
            metrics.count_store_error(&e);
            tracing::debug!(error = %Chain(&e), "could not write this region's heartbeat");
            continue;
        }
        match store.within(store.peer_silence(&peers)).await {
            Ok(silences) => {
                for s in silences {
                    let secs = s.silent_for.map_or(f64::INFINITY, |d| d.as_secs_f64());
                    metrics
                        .region_silence
                        .with_label_values(&[s.region.as_str()])
                        .set(secs);
                }
            }
            Err(e) => metrics.count_store_error(&e),
        }
        match store.within(store.peer_backlog(&me, &peers)).await {
            Ok(backlogs) => {
                for b in backlogs {
                    let region = b.region.as_str();
                    metrics
                        .replication_backlog
                        .with_label_values(&[region])
                        .set(b.bytes.unwrap_or(0));
                    metrics
                        .replication_streaming
                        .with_label_values(&[region])
                        .set(i64::from(b.streaming));
                }
            }
            Err(e) => metrics.count_store_error(&e),
        }
    }
}

/// Relays replicated events to Redis until `shutdown`, whenever this
/// replica holds the relay lock.
#[tracing::instrument(name = "relay", skip_all)]
pub async fn relay(
    store: Store,
    streams: Streams,
    metrics: ApiMetrics,
    bus_metrics: BusMetrics,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut failing = false;
    loop {
        let outcome = tokio::select! {
            outcome = lead(&store, &streams, &metrics, &bus_metrics) => outcome,
            _ = shutdown.cancelled() => return,
        };
        let wait = match outcome {
            // Another replica relays; look again in a while.
            Ok(false) => FOLLOWER_RETRY,
            Ok(true) => {
                failing = false;
                backoff.reset();
                backoff.next_pause()
            }
            Err(e) => {
                if let SweepError::Store(e) = &e {
                    metrics.count_store_error(e);
                }
                if !failing {
                    tracing::warn!(error = %Chain(&e), "relay interrupted; retrying until it works");
                }
                failing = true;
                backoff.next_pause()
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Takes the relay lock if it is free and relays while the connection
/// lives (then `Ok(true)`); returns at once with `Ok(false)` when another
/// replica is the relay.
///
/// The lock is a session lock, so its connection is one of its own, closed
/// whenever this returns: a pooled one would go back to the pool still
/// holding the lock, and no replica could relay until that connection
/// happened to be drawn again.
async fn lead(
    store: &Store,
    streams: &Streams,
    metrics: &ApiMetrics,
    bus_metrics: &BusMetrics,
) -> Result<bool, SweepError> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*store.pool().connect_options()).clone())
        .await
        .map_err(StoreError::from)?;
    let outcome = relay_on(&own, store, streams, metrics, bus_metrics).await;
    own.close().await;
    outcome
}

async fn relay_on(
    own: &PgPool,
    store: &Store,
    streams: &Streams,
    metrics: &ApiMetrics,
    bus_metrics: &BusMetrics,
) -> Result<bool, SweepError> {
    let mut listener = PgListener::connect_with(own)
        .await
        .map_err(StoreError::from)?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut listener)
        .await
        .map_err(StoreError::from)?;
    if !leader {
        return Ok(false);
    }
    listener.listen(CHANNEL).await.map_err(StoreError::from)?;
    tracing::info!("this replica relays replicated events to Redis");
    loop {
        sweep_once(
            store,
            streams,
            metrics,
            bus_metrics,
            Claim::FromPeers,
            RELAY_BATCH,
        )
        .await?;
        // `try_recv` returns `None` when the connection was lost: the lock
        // went with it, so step down and compete again.
        match tokio::time::timeout(RELAY_POLL, listener.try_recv()).await {
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(Ok(None)) => return Ok(true),
            Ok(Err(e)) => return Err(StoreError::from(e).into()),
        }
    }
}
