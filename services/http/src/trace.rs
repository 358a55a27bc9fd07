//! W3C trace context: links the event a command produces to its request.

use std::time::Duration;

use axum::http::{HeaderMap, Request};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use ordercast_core::TraceParent;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads the `traceparent` header, if any.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span of one HTTP request, with OpenTelemetry's attribute names for
/// an HTTP server: `http.request.method`, `url.path` (never the query
/// string: it may carry `access_token`), `http.route` (the matched pattern;
/// none when no route matched) and `http.response.status_code` (recorded by
/// [`record_response`]); named `<method> <route>`. Its parent is the
/// caller's `traceparent`.
pub fn http_span<B>(request: &Request<B>) -> Span {
    let method = request.method();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str());
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "http",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        "http.request.method" = %method,
        "url.path" = %request.uri().path(),
        "http.route" = route,
        "http.response.status_code" = tracing::field::Empty,
    );
    // The binary installs the W3C propagator when it enables OpenTelemetry.
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(request.headers())));
    // Without an OpenTelemetry layer there is nothing to attach to.
    let _ = span.set_parent(parent);
    span
}

/// Records the response's status on the request's span; a `5xx` marks the
/// span as failed (a `4xx` is the client's error, not the server's).
///
/// Logs it as tower-http's default does (at debug).
pub fn record_response<B>(response: &axum::http::Response<B>, latency: Duration, span: &Span) {
    use tower_http::trace::OnResponse;
    tower_http::trace::DefaultOnResponse::default().on_response(response, latency, span);
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// The `traceparent` an event should carry: the current span's when
/// OpenTelemetry is on, else the caller's own header passed through.
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    let context = Span::current().context();
    let span = context.span();
    let sc = span.span_context();
    if sc.is_valid() {
        return Some(format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ));
    }
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_traceparent(v))
        .map(str::to_owned)
}

fn is_traceparent(v: &str) -> bool {
    v.parse::<TraceParent>().is_ok()
}
