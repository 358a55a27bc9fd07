//! Cross-cutting HTTP layers: request metrics, tracing spans, and answers
//! for methods a route does not take.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramOpts, HistogramVec, Registry};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::HttpError;

/// `ordercast_http_request_duration_seconds{route,method,status}`.
#[derive(Clone)]
pub struct HttpMetrics {
    latency: HistogramVec,
}

impl HttpMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<HttpMetrics> {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "ordercast_http_request_duration_seconds",
                "HTTP request latency by route, method and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(HttpMetrics { latency })
    }
}

async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let start = Instant::now();
    let response = next.run(request).await;
    metrics
        .latency
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// Answers a method the route does not take: `OPTIONS` with `204`, anything
/// else with `405 method-not-allowed` as problem+json. The router adds
/// `Allow` (the methods the route takes) to both.
async fn methods(request: Request, next: Next) -> Response {
    let options = request.method() == Method::OPTIONS;
    let response = next.run(request).await;
    match response.status() {
        StatusCode::METHOD_NOT_ALLOWED if options => StatusCode::NO_CONTENT.into_response(),
        StatusCode::METHOD_NOT_ALLOWED => HttpError::MethodNotAllowed.into_response(),
        _ => response,
    }
}

/// Adds request metrics (labelled by matched route, never by raw path), a
/// tracing span per request (path only: the query may hold a token), and
/// [`methods`].
///
/// A 5xx is logged where its cause is known (a database error as an error,
/// an unreachable dependency as a warning, once); the layer's own line per
/// failed response is debug, or an expected `503` during an outage (a
/// partition, PostgreSQL down) would log thousands of errors a minute.
pub fn instrument(router: Router, metrics: HttpMetrics) -> Router {
    router
        .route_layer(axum::middleware::from_fn_with_state(metrics, track))
        .layer(axum::middleware::from_fn(methods))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::trace::http_span)
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
}
