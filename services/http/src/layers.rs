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
                .on_response(crate::trace::record_response)
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// Every field recorded on the `http` spans, as text.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<BTreeMap<String, String>>>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            let mut fields = self.0.lock().unwrap();
            fields.insert(field.name().to_owned(), value.to_owned());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let mut fields = self.0.lock().unwrap();
            fields.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Fields {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            if attrs.metadata().name() == "http" {
                attrs.record(&mut self.clone());
            }
        }

        fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
            values.record(&mut self.clone());
        }
    }

    #[tokio::test]
    async fn a_request_span_carries_opentelemetry_http_attributes_and_no_query() {
        let fields = Fields::default();
        let _default =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(fields.clone()));
        let failing = || async { StatusCode::INTERNAL_SERVER_ERROR };
        let routes = Router::new().route("/v1/restaurants/{rid}/orders", get(failing));
        let app = instrument(routes, HttpMetrics::new(&Registry::new()).unwrap());
        let request = Request::get("/v1/restaurants/r1/orders?access_token=secret")
            .body(Body::empty())
            .unwrap();

        let response = app.oneshot(request).await.unwrap();

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let fields = fields.0.lock().unwrap().clone();
        let expected = [
            ("http.request.method", "GET"),
            ("url.path", "/v1/restaurants/r1/orders"),
            ("http.route", "/v1/restaurants/{rid}/orders"),
            ("http.response.status_code", "500"),
            ("otel.name", "GET /v1/restaurants/{rid}/orders"),
            ("otel.kind", "server"),
            ("otel.status_code", "error"),
        ];
        for (name, value) in expected {
            assert_eq!(
                fields.get(name).map(String::as_str),
                Some(value),
                "{name}: {fields:?}"
            );
        }
        assert!(!format!("{fields:?}").contains("secret"), "{fields:?}");
    }
}
