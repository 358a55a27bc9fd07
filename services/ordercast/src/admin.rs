//! The admin port: `/metrics`, `/healthz`, `/readyz`, `/debug/stats`,
//! `/debug/undelivered`, `/debug/restaurants/{rid}`, `/debug/activity`.
//!
//! Probes and Prometheus need no credentials. `/debug/*` shows every
//! tenant's restaurants and orders and costs PostgreSQL scans, so it exists
//! only with an admin token (`ORDERCAST_ADMIN_TOKEN`) and answers `401`
//! without it; with no token configured it is `404`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ordercast_bus::Streams;
use ordercast_core::auth::AuthError;
use ordercast_core::{Region, RestaurantId};
use ordercast_http::HttpError;
use ordercast_http::extract::Path;
use ordercast_store::Store;
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::json;

use crate::metrics::ProcessMetrics;

/// What the probes look at.
#[derive(Clone)]
pub struct Health {
    pub store: Store,
    pub streams: Streams,
    pub registry: Registry,
    /// Refreshed at each scrape.
    pub process: ProcessMetrics,
    pub draining: Arc<AtomicBool>,
    pub started: Instant,
    pub role: &'static str,
    /// The edge role, when this process serves it.
    pub edge: Option<ordercast_edge::EdgeService>,
    /// What counts as undelivered (`/debug/undelivered`).
    pub ledger: ordercast_api::ledger::LedgerSettings,
    pub regions: Regions,
}

/// This process's region and its peers (`/debug/stats`).
#[derive(Clone)]
pub struct Regions {
    pub me: Region,
    pub peers: Vec<Region>,
    /// A peer silent this long is stale.
    pub stale_after: Duration,
}

impl Regions {
    /// Each peer: how long it has been silent, whether it is stale, and
    /// how much WAL its replication slot here holds back.
    async fn stats(&self, store: &Store) -> serde_json::Value {
        let (silences, backlogs) = tokio::join!(
            store.peer_silence(&self.peers),
            store.peer_backlog(&self.me, &self.peers)
        );
        let (Ok(silences), Ok(backlogs)) = (silences, backlogs) else {
            return json!({"region": self.me, "peers": null});
        };
        let peers: Vec<_> = silences
            .iter()
            .zip(&backlogs)
            .map(|(s, b)| {
                json!({
                    "region": s.region,
                    "silent_for_secs": s.silent_for.map(|d| d.as_secs_f64()),
                    "stale": s.is_stale(self.stale_after),
                    "backlog_bytes": b.bytes,
                    "streaming": b.streaming,
                })
            })
            .collect();
        json!({"region": self.me, "peers": peers})
    }
}

impl Health {
    /// Marks the process as shutting down: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether PostgreSQL and Redis answer, each within
    /// [`Health::PROBE_DEADLINE`]: a dependency that hangs is down, and a
    /// probe never hangs with it.
    async fn dependencies(&self) -> (bool, bool) {
        let deadline = Self::PROBE_DEADLINE;
        let (pg, redis) = tokio::join!(
            tokio::time::timeout(deadline, self.store.ping()),
            tokio::time::timeout(deadline, self.streams.ping()),
        );
        (matches!(pg, Ok(Ok(()))), matches!(redis, Ok(Ok(()))))
    }

    /// Longest a probe waits for each dependency.
    const PROBE_DEADLINE: Duration = Duration::from_secs(1);
}

/// The bearer token `/debug/*` requires. Never printed.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// At least this many characters: a token is guessed by trying.
    pub const MIN_LEN: usize = 16;

    pub fn new(token: &str) -> AdminToken {
        AdminToken(token.into())
    }

    /// Whether `presented` is the token, in time independent of where they
    /// differ.
    fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The admin router: `/debug/*` only with `token`.
pub fn router(health: Health, token: Option<AdminToken>) -> Router {
    let open = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready));
    let router = match token {
        Some(token) => open.merge(
            Router::new()
                .route("/debug/stats", get(stats))
                .route("/debug/undelivered", get(undelivered))
                .route("/debug/restaurants/{rid}", get(restaurant))
                .route("/debug/activity", get(activity))
                .route_layer(axum::middleware::from_fn_with_state(token, require_token)),
        ),
        None => open,
    };
    router.with_state(health)
}

/// Lets through only requests with `Authorization: Bearer <admin token>`.
async fn require_token(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    match ordercast_http::auth::bearer(&parts) {
        Some(presented) if token.matches(presented) => {
            Ok(next.run(Request::from_parts(parts, body)).await)
        }
        Some(_) => Err(AuthError::BadSignature.into()),
        None => Err(AuthError::Missing.into()),
    }
}

/// The registry's metrics, with `ordercast_dependency_up` from the same
/// probes as `/readyz` (so a scrape waits at most
/// [`Health::PROBE_DEADLINE`] for them) and the pool's connections as they
/// are now.
async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    let (postgres, redis) = health.dependencies().await;
    health.process.refresh(&health.store, postgres, redis);
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&health.registry.gather(), &mut body) {
        tracing::error!(error = %e, "cannot encode metrics");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            Vec::new(),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
}

/// Ready when not draining and PostgreSQL answers. Redis is reported but
/// not required: without it orders are still accepted and delivered late.
async fn ready(State(health): State<Health>) -> impl IntoResponse {
    let draining = health.draining.load(Ordering::SeqCst);
    let (postgres, redis) = health.dependencies().await;
    let ready = !draining && postgres;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "draining": draining,
        "postgres": if postgres { "up" } else { "down" },
        "redis": if redis { "up" } else { "down" },
    });
    (status, Json(body))
}

async fn stats(State(health): State<Health>) -> impl IntoResponse {
    let deadline = Health::PROBE_DEADLINE;
    let ((postgres, redis), backlog, regions) = tokio::join!(
        health.dependencies(),
        tokio::time::timeout(deadline, health.store.outbox_backlog()),
        tokio::time::timeout(deadline, health.regions.stats(&health.store)),
    );
    let backlog = backlog.ok().and_then(Result::ok);
    let regions = regions.unwrap_or_else(|_| json!({"region": health.regions.me, "peers": null}));
    Json(json!({
        "role": health.role,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": health.started.elapsed().as_secs(),
        "draining": health.draining.load(Ordering::SeqCst),
        "postgres": if postgres { "up" } else { "down" },
        "redis": if redis { "up" } else { "down" },
        "outbox_backlog": backlog,
        "edge": health.edge.as_ref().map(|e| e.stats()),
        "regions": regions,
    }))
}

/// Kitchen events no kitchen screen has received (delivery ledger): the
/// oldest first, at most 10 000.
async fn undelivered(State(health): State<Health>) -> impl IntoResponse {
    let settings = &health.ledger;
    match health
        .store
        .undelivered(
            &health.regions.me,
            settings.undelivered_after,
            settings.undelivered_within,
            ordercast_api::ledger::UNDELIVERED_LIMIT,
        )
        .await
    {
        Ok(events) => (
            StatusCode::OK,
            Json(json!({
                "undelivered_after_secs": settings.undelivered_after.as_secs_f64(),
                "within_secs": settings.undelivered_within.as_secs_f64(),
                "count": events.len(),
                "events": events,
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

/// One restaurant as this process sees it: its PostgreSQL head, its hub
/// on this edge (head, ring, degraded, last event time), its subscribers
/// here by transport and role, and its undelivered kitchen events.
async fn restaurant(
    State(health): State<Health>,
    Path(rid): Path<RestaurantId>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let store = &health.store;
    let head = store.within(store.head(rid)).await?;
    let settings = &health.ledger;
    let undelivered = store.within(store.undelivered(
        &health.regions.me,
        settings.undelivered_after,
        settings.undelivered_within,
        ordercast_api::ledger::UNDELIVERED_LIMIT,
    ));
    let undelivered: Vec<_> = undelivered
        .await?
        .into_iter()
        .filter(|e| e.restaurant_id == rid)
        .collect();
    let mut view = json!({
        "restaurant_id": rid,
        "head_seq": head,
        "undelivered_kitchen_events": undelivered,
    });
    if let Some(edge) = &health.edge {
        view["edge"] = edge.restaurant(rid);
    }
    Ok(Json(view))
}

/// Connections and deliveries over time (the edge's samples).
async fn activity(State(health): State<Health>) -> impl IntoResponse {
    Json(json!({"edge": health.edge.as_ref().map(|e| e.activity())}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_matches_and_it_never_prints() {
        let token = AdminToken::new("an-admin-token-for-tests");
        assert!(token.matches("an-admin-token-for-tests"));
        assert!(!token.matches("an-admin-token-for-test"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "[redacted]");
    }
}
