//! Cross-origin access to the public port: which other origins' pages (a
//! kitchen display app on its own domain, a tablet app's webview) may call
//! the api and open event streams, and may open a WebSocket.
//!
//! Tokens travel as bearer headers, query parameters or a WebSocket
//! subprotocol, never as cookies, so no credentials mode is needed.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer (10 minutes, the most
/// Chromium honours).
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Request headers a cross-origin page may send.
const ALLOWED_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::IF_MATCH,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("traceparent"),
];

/// Response headers a cross-origin page may read.
const EXPOSED_HEADERS: [HeaderName; 4] = [
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("idempotent-replayed"),
];

/// The origins allowed to call the public port (`ORDERCAST_CORS_ORIGINS`):
/// exact `scheme://host[:port]` values. Empty (the default): no CORS
/// headers at all, so browsers allow same-origin pages only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsOrigins(Vec<HeaderValue>);

impl CorsOrigins {
    /// No origin: no CORS headers.
    pub const NONE: CorsOrigins = CorsOrigins(Vec::new());

    /// Parses a comma-separated list; each entry must be an origin
    /// (`https://kds.example.com`, no path, no trailing slash).
    pub fn parse(list: &str) -> Result<CorsOrigins, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let uri = entry.parse::<Uri>().ok();
            let is_origin = uri.is_some_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some()
                    && uri.path() == "/"
                    && uri.query().is_none()
                    && !entry.ends_with('/')
                    && entry.to_ascii_lowercase() == entry
            });
            if !is_origin {
                return Err(format!(
                    "{entry:?} is not an origin: write scheme://host[:port], lowercase, no path"
                ));
            }
            origins.push(HeaderValue::from_str(entry).map_err(|e| e.to_string())?);
        }
        Ok(CorsOrigins(origins))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `router` answering preflights and adding CORS headers to requests
    /// from a page (those with an `Origin`); unchanged without origins.
    /// A request without `Origin` never meets the CORS layer, which would
    /// answer any `OPTIONS` itself: a plain `OPTIONS` keeps its `204` and
    /// `Allow` from the router.
    pub fn apply(&self, router: Router) -> Router {
        match self.layer() {
            Some(layer) => router.layer(axum::middleware::from_fn_with_state(layer, from_pages)),
            None => router,
        }
    }

    fn layer(&self) -> Option<CorsLayer> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.0.clone()))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers(ALLOWED_HEADERS)
                .expose_headers(EXPOSED_HEADERS)
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }

    /// Whether a WebSocket handshake may proceed: always without a list or
    /// without an `Origin` (not a browser); else a same-origin page (the
    /// edge's own demo screens) or a listed origin.
    pub fn allows_websocket(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        if self.0.is_empty() || self.0.contains(origin) {
            return true;
        }
        // Same origin: the Origin's host:port is the Host the page asked.
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, authority)| authority);
        host.is_some() && host == authority
    }
}

async fn from_pages(State(cors): State<CorsLayer>, request: Request, next: Next) -> Response {
    if !request.headers().contains_key(header::ORIGIN) {
        return next.run(request).await;
    }
    match cors.layer(next).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_scheme_host_and_port() {
        let ok = CorsOrigins::parse(" https://kds.example.com, http://127.0.0.2:8081 ,").unwrap();
        assert_eq!(ok.0.len(), 2);
        assert!(CorsOrigins::parse("").unwrap().is_empty());
        for bad in [
            "kds.example.com",
            "https://kds.example.com/",
            "https://kds.example.com/app",
            "ftp://kds.example.com",
            "*",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_websocket_from_a_page_needs_its_origin_listed_or_the_same_origin() {
        let list = CorsOrigins::parse("https://kds.example.com").unwrap();
        let handshake = |origin: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("edge.example.com"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        assert!(list.allows_websocket(&handshake(None)), "not a browser");
        assert!(list.allows_websocket(&handshake(Some("https://kds.example.com"))));
        assert!(list.allows_websocket(&handshake(Some("https://edge.example.com"))));
        assert!(!list.allows_websocket(&handshake(Some("https://evil.example"))));
        let none = CorsOrigins::default();
        assert!(none.allows_websocket(&handshake(Some("https://evil.example"))));
    }
}
