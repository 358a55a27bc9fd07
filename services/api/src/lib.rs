//! The api role: HTTP commands and queries over the store, the fast-path
//! publisher, the outbox sweeper, the published-marker, invalidation
//! coalescing, retention and the delivery ledger.

pub mod coalesce;
mod deadline;
pub mod forward;
pub mod headers;
pub mod ledger;
mod limits;
pub mod metrics;
mod once;
pub mod outbox;
pub mod regions;
pub mod retention;
mod routes;
pub mod state;
pub mod validate;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use ordercast_bus::{BusMetrics, Publisher, Streams};
use ordercast_core::auth::TokenVerifier;
use ordercast_http::extract::BODY_LIMIT_BYTES;
use ordercast_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use routes::{
    DEFAULT_PAGE_LIMIT, MAX_CUSTOM_DATA_BYTES, MAX_INVALIDATION_RESOURCES, MAX_ITEMS,
    MAX_ORDER_TEXT_BYTES, MAX_QUANTITY, MAX_TRANSFER_SESSIONS, MAX_UNIT_PRICE_CENTS,
};
pub use state::AppState;
pub use writer::Writer;

use crate::coalesce::Coalescer;
use crate::forward::Forwarder;
pub use crate::forward::RegionSettings;
use crate::ledger::LedgerSettings;
use crate::limits::WriteLimits;
pub use crate::limits::{WriteBudgets, WriteRate};
use crate::metrics::ApiMetrics;
use crate::outbox::OutboxSettings;
use crate::retention::RetentionSettings;
use ordercast_http::PostgresFailure;
use ordercast_store::ChainDirectory;

/// How long [`ApiService::stop`] waits for each background task.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Tuning of the api role: its background tasks and its limits.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub outbox: OutboxSettings,
    pub retention: RetentionSettings,
    pub ledger: LedgerSettings,
    /// Commands each restaurant's staff, its guests together, and each
    /// table session may send to this process.
    pub write_budgets: WriteBudgets,
    /// This region and its peers.
    pub regions: RegionSettings,
}

impl Default for ApiSettings {
    fn default() -> ApiSettings {
        ApiSettings {
            outbox: OutboxSettings::default(),
            retention: RetentionSettings::default(),
            ledger: LedgerSettings::default(),
            write_budgets: WriteBudgets::default(),
            regions: RegionSettings {
                me: ordercast_core::Region::default(),
                peers: vec![],
                timeout: RegionSettings::DEFAULT_TIMEOUT,
            },
        }
    }
}

/// A running api role: its routes and its background tasks.
pub struct ApiService {
    state: AppState,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    publisher_task: JoinHandle<()>,
    marker_task: JoinHandle<()>,
}

impl ApiService {
    /// Starts the publisher, marker, sweeper, coalescer and retention tasks.
    pub fn start(
        store: Store,
        streams: Streams,
        verifier: TokenVerifier,
        registry: &prometheus::Registry,
        bus_metrics: BusMetrics,
        settings: ApiSettings,
    ) -> anyhow::Result<ApiService> {
        let metrics = ApiMetrics::new(registry)?;
        for (peer, _) in &settings.regions.peers {
            for outcome in ["answered", "unavailable"] {
                metrics
                    .forwarded
                    .with_label_values(&[peer.as_str(), outcome]);
            }
        }
        store.register_metrics(registry)?;
        let shutdown = CancellationToken::new();
        let (receipts_tx, receipts_rx) = mpsc::channel(1_024);
        let (publisher, publisher_task) =
            Publisher::start(streams.clone(), bus_metrics.clone(), receipts_tx);
        let marker_task = tokio::spawn(outbox::mark_published(
            store.clone(),
            metrics.clone(),
            receipts_rx,
        ));
        let writer = Writer {
            store: store.clone(),
            publisher,
        };
        let (invalidations, coalescer_task) =
            Coalescer::start(writer.clone(), metrics.clone(), shutdown.clone());
        let ledger = tokio::spawn(ledger::run(
            store.clone(),
            streams.clone(),
            metrics.clone(),
            settings.ledger,
            settings.regions.me.clone(),
            shutdown.clone(),
        ));
        let mut tasks = vec![];
        let regions = &settings.regions;
        let forwarder = if regions.peers.is_empty() {
            None
        } else {
            let peers = regions.peers.iter().map(|(r, _)| r.clone()).collect();
            tasks.push(tokio::spawn(regions::beat(
                store.clone(),
                regions.me.clone(),
                peers,
                metrics.clone(),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(regions::relay(
                store.clone(),
                streams.clone(),
                metrics.clone(),
                bus_metrics.clone(),
                shutdown.clone(),
            )));
            Some(Arc::new(Forwarder::new(regions)?))
        };
        let sweeper = tokio::spawn(outbox::sweep(
            store.clone(),
            streams,
            metrics.clone(),
            bus_metrics,
            settings.outbox,
            shutdown.clone(),
        ));
        let retention = tokio::spawn(retention::run(
            store.clone(),
            metrics.clone(),
            settings.retention,
            shutdown.clone(),
        ));
        let state = AppState {
            store,
            writer,
            verifier: Arc::new(verifier),
            chains: Arc::new(ChainDirectory::default()),
            metrics,
            invalidations,
            write_limits: Arc::new(WriteLimits::new(settings.write_budgets)),
            region: settings.regions.me.clone(),
            peers: settings
                .regions
                .peers
                .iter()
                .map(|(r, _)| r.clone())
                .collect(),
            forwarder,
        };
        tasks.extend([coalescer_task, sweeper, retention, ledger]);
        Ok(ApiService {
            state,
            shutdown,
            tasks,
            publisher_task,
            marker_task,
        })
    }

    /// The api's routes (including `GET /openapi.json`), with the body
    /// limit applied. Unknown routes fall through to the caller's fallback.
    pub fn router(&self) -> Router {
        let (routes, _) = routes::all();
        routes
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                deadline::database_deadline,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                forward::forward_writes,
            ))
            .layer(axum::middleware::map_response_with_state(
                self.state.clone(),
                count_postgres_failures,
            ))
            .with_state(self.state.clone())
    }

    /// The OpenAPI document of the routes.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        routes::all().1
    }

    /// The shared state (tests and the edge reuse the store and verifier).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops the background tasks: pending invalidations are flushed, queued
    /// events published and their receipts recorded. Call after the HTTP
    /// server has stopped (its routes hold publisher handles).
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            wait(task, "api task").await;
        }
        // The last publisher handle goes with the state; the publisher then
        // drains its queue and the marker records the last receipts.
        drop(self.state);
        wait(self.publisher_task, "publisher").await;
        wait(self.marker_task, "published-marker").await;
    }
}

async fn wait(task: JoinHandle<()>, name: &str) {
    if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
        tracing::warn!(task = name, "did not stop within the grace period");
    }
}

async fn count_postgres_failures(State(state): State<AppState>, response: Response) -> Response {
    if let Some(PostgresFailure(kind)) = response.extensions().get::<PostgresFailure>() {
        state
            .metrics
            .postgres_errors
            .with_label_values(&[kind])
            .inc();
    }
    response
}
