//! What travels when one Ordercast process runs a request on another's
//! behalf: an api forwarding a write to its home region, an edge running a
//! WebSocket command as the api call it stands for.

use axum::http::{HeaderMap, HeaderName, header};

/// The request headers that travel with a forwarded request.
pub const REQUEST_HEADERS: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::IF_MATCH,
    header::ACCEPT,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// The response headers that come back (hop-by-hop ones and the length
/// stay behind).
pub const RESPONSE_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
    IDEMPOTENT_REPLAYED,
];

/// The [`RESPONSE_HEADERS`] of an answer, to pass on.
pub fn kept_response_headers(answer: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in &RESPONSE_HEADERS {
        for value in answer.get_all(name) {
            kept.append(name, value.clone());
        }
    }
    kept
}

/// Set on an answer replayed for an `Idempotency-Key` seen before.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
