//! The edge role (docs/architecture.md, "The edge"): hubs follow the Redis streams of the
//! restaurants local clients watch (through the bus's shard readers), order
//! and buffer their events, and SSE, WebSocket and long-poll deliver them
//! with gap-free resume.

mod activity;
mod api;
mod assets;
mod auth;
mod error;
mod frame;
mod gzip;
mod hub;
pub mod metrics;
mod poll;
mod receipts;
mod regions;
mod settings;
mod sse;
mod state;
mod streamlog;
mod streams;
mod subscription;
mod watchers;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use ordercast_bus::{ReaderMetrics, RedisSettings, ShardReaders, Streams};
use ordercast_core::auth::TokenVerifier;
use ordercast_http::{EVENT_STREAM_ROUTE, WEBSOCKET_ROUTE};
use ordercast_store::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::{ApiLink, COMMAND_TIMEOUT};
pub use error::EdgeError;
pub use frame::Frame;
pub use metrics::{EdgeMetrics, Transport};
pub use settings::EdgeSettings;

use crate::hub::{HubContext, Hubs};
use crate::receipts::Receipts;
use crate::state::Shared;

/// A running edge role.
#[derive(Clone)]
pub struct EdgeService {
    shared: Arc<Shared>,
}

impl EdgeService {
    /// Builds the edge; shard readers start with the first subscriber.
    /// WebSocket commands run on `api`. With
    /// peer regions (`settings.peers`) it also starts the region monitor,
    /// which lives as long as the edge.
    pub fn start(
        store: Store,
        streams: Streams,
        redis: &RedisSettings,
        verifier: TokenVerifier,
        registry: &prometheus::Registry,
        settings: EdgeSettings,
        api: ApiLink,
    ) -> anyhow::Result<EdgeService> {
        let metrics = EdgeMetrics::new(registry)?;
        metrics
            .max_connections
            .set(i64::try_from(settings.max_connections).unwrap_or(i64::MAX));
        let readers = ShardReaders::new(
            redis,
            streams.keys().clone(),
            ReaderMetrics {
                shard_readers: metrics.shard_readers.clone(),
                degraded_shards: metrics.degraded_shards.clone(),
                errors: metrics.redis_errors.clone(),
            },
        )?;
        let regions = regions::start(
            store.clone(),
            &settings.peers,
            settings.region_stale_after,
            metrics.region_stale.clone(),
        );
        let hubs = Hubs::new(HubContext {
            store: store.clone(),
            readers,
            metrics: metrics.clone(),
            ring_size: settings.ring_size,
            ring_bytes: settings.ring_bytes,
            poll_interval: settings.degraded_poll_interval,
            regions,
        });
        let activity = Arc::new(activity::Activity::new(metrics.clone()));
        tokio::spawn(activity::run(
            Arc::downgrade(&activity),
            settings.activity_every,
        ));
        let receipts = Arc::new(Receipts::default());
        tokio::spawn(receipts::flush(
            Arc::downgrade(&receipts),
            streams.clone(),
            metrics.clone(),
        ));
        let shared = Arc::new(Shared {
            store,
            streams,
            connections: streams::Streams::new(
                settings.max_connections,
                settings.max_connections_per_principal,
            ),
            settings,
            metrics,
            hubs: Arc::new(hubs),
            verifier: Arc::new(verifier),
            chains: Arc::default(),
            drain: CancellationToken::new(),
            sessions: TaskTracker::new(),
            receipts,
            api,
            activity,
            watchers: Arc::default(),
        });
        Ok(EdgeService { shared })
    }

    /// The public routes: SSE, WebSocket and long-poll, plus the browser
    /// client (`/client/`) and the demo screens (`/demo/`).
    pub fn router(&self) -> Router {
        Router::new()
            .route(EVENT_STREAM_ROUTE, get(sse::stream))
            .route("/v1/restaurants/{rid}/events", get(poll::events))
            .route(WEBSOCKET_ROUTE, get(ws::upgrade))
            .with_state(self.shared.clone())
            .merge(assets::router())
    }

    /// Tells every client to reconnect (spread over the drain window) and
    /// refuses new ones.
    pub fn drain(&self) {
        self.shared.drain.cancel();
    }

    /// Waits until every WebSocket session has said goodbye (after
    /// [`EdgeService::drain`]).
    pub async fn sessions_closed(&self) {
        self.shared.sessions.close();
        self.shared.sessions.wait().await;
    }

    /// Lets go of the in-process api WebSocket commands run on, so the api
    /// can stop; later commands are answered `unavailable`.
    pub fn release_api(&self) {
        self.shared.api.release();
    }

    /// Counts a client cut because its socket stopped taking writes.
    pub fn write_stalled(&self) {
        self.shared
            .metrics
            .slow_consumer_actions
            .with_label_values(&["disconnected"])
            .inc();
    }

    /// For `/debug/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let (watched, ring_frames) = self.shared.hubs.stats();
        let (readers, degraded) = self.shared.hubs.readers();
        let by = |t: Transport| {
            self.shared
                .metrics
                .connections
                .with_label_values(&[t.as_str()])
                .get()
        };
        json!({
            "watched_restaurants": watched,
            "ring_frames": ring_frames,
            "shard_readers": readers,
            "degraded_shards": degraded,
            "degraded": degraded > 0,
            "draining": self.shared.drain.is_cancelled(),
            "connections": {
                "sse": by(Transport::Sse),
                "websocket": by(Transport::WebSocket),
                "long_poll": by(Transport::LongPoll),
            },
        })
    }
}

/// What one restaurant looks like on this edge (`/debug/restaurants/{rid}`).
impl EdgeService {
    /// The restaurant's hub (head, ring, degraded, last event time) when
    /// this edge watches it, and its subscribers by transport and role.
    pub fn restaurant(&self, restaurant: ordercast_core::RestaurantId) -> serde_json::Value {
        let hub = self.shared.hubs.view(restaurant);
        json!({
            "watched": hub.is_some(),
            "hub": hub,
            "subscribers": self.shared.watchers.of(restaurant),
        })
    }

    /// Counts over time: the current interval so far and the kept samples
    /// (`/debug/activity`).
    pub fn activity(&self) -> serde_json::Value {
        json!({
            "every_secs": self.shared.settings.activity_every.as_secs_f64(),
            "current": self.shared.activity.current(),
            "samples": self.shared.activity.samples(),
        })
    }
}

#[cfg(test)]
mod churn_tests;
#[cfg(test)]
mod region_tests;
#[cfg(test)]
mod testing;
