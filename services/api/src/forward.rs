//! Writes for a restaurant homed in another region go to that region's api
//! and come back as its answer: same status, body and headers
//! (docs/multi-region.md). The caller's token is verified here first (a
//! forged one never costs the peer anything) and again at home, where the
//! policy, the rate budget and the Idempotency-Key apply: a retry after a
//! timeout finds the key and never writes twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ordercast_core::{Region, RestaurantId};
use ordercast_http::extract::BODY_LIMIT_BYTES;
use ordercast_http::forwarding::{REQUEST_HEADERS, kept_response_headers};
use ordercast_http::{Caller, HttpError};
use ordercast_store::{Store, StoreError};

use crate::state::AppState;

/// Set on a forwarded request, naming the region that forwarded it. A
/// forwarded request is never forwarded again: if the two regions disagree
/// about a restaurant's home, the write is refused, not bounced.
pub const FORWARDED_FROM: HeaderName = HeaderName::from_static("ordercast-forwarded-from");

/// Restaurants' homes remembered at most (a home never changes; the map is
/// cleared when full).
const HOMES_CACHED: usize = 100_000;

/// This region and how to reach its peers' apis.
#[derive(Clone, Debug)]
pub struct RegionSettings {
    pub me: Region,
    /// Each peer's api base URL, e.g. `http://api.us-east.internal:8080`.
    pub peers: Vec<(Region, String)>,
    /// How long a forwarded write may take before the caller gets `503
    /// region-unavailable` (and retries with its Idempotency-Key).
    pub timeout: Duration,
}

impl RegionSettings {
    /// Default for [`RegionSettings::timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// Forwards writes to their home region.
pub struct Forwarder {
    me: Region,
    peers: HashMap<Region, String>,
    client: reqwest::Client,
    homes: Mutex<HashMap<RestaurantId, Option<Region>>>,
}

impl Forwarder {
    pub fn new(settings: &RegionSettings) -> Result<Forwarder, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(2)))
            .build()?;
        Ok(Forwarder {
            me: settings.me.clone(),
            peers: settings
                .peers
                .iter()
                .map(|(region, url)| (region.clone(), url.trim_end_matches('/').to_owned()))
                .collect(),
            client,
            homes: Mutex::default(),
        })
    }

    /// The home of `restaurant` when it is not this region (`None`: here,
    /// or unknown here, which the handler answers).
    async fn remote_home(
        &self,
        store: &Store,
        restaurant: RestaurantId,
    ) -> Result<Option<Region>, StoreError> {
        // std Mutex: never held across an await.
        let cached = self
            .homes
            .lock()
            .expect("homes lock")
            .get(&restaurant)
            .cloned();
        let home = match cached {
            Some(home) => home,
            None => match store.home_of(restaurant).await {
                Ok(home) => {
                    let mut homes = self.homes.lock().expect("homes lock");
                    if homes.len() >= HOMES_CACHED {
                        homes.clear();
                    }
                    homes.insert(restaurant, home.clone());
                    home
                }
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        Ok(home.filter(|home| *home != self.me))
    }

    /// Sends the request to `home`'s api and returns its answer as is.
    async fn forward(
        &self,
        home: &Region,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: axum::body::Bytes,
    ) -> Result<Response, HttpError> {
        // A home no peer is configured for (a region removed, or not yet
        // added): nowhere to commit, as when the home cannot be reached.
        let base = self
            .peers
            .get(home)
            .ok_or_else(|| HttpError::RegionUnavailable(home.to_string()))?;
        let mut request = self
            .client
            .request(method, format!("{base}{path_and_query}"))
            .header(FORWARDED_FROM, self.me.as_str())
            .body(body);
        for name in &REQUEST_HEADERS {
            for value in headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        // Per request at debug: during a partition every write for the far
        // region fails, and `ordercast_forwarded_writes_total` counts them.
        let answer = request.send().await.map_err(|e| {
            tracing::debug!(region = %home, error = %e, "forwarding a write failed");
            HttpError::RegionUnavailable(home.to_string())
        })?;
        let status = answer.status();
        let kept = kept_response_headers(answer.headers());
        let body = answer.bytes().await.map_err(|e| {
            tracing::debug!(region = %home, error = %e, "reading a forwarded answer failed");
            HttpError::RegionUnavailable(home.to_string())
        })?;
        let mut response = (status, body).into_response();
        response.headers_mut().extend(kept);
        Ok(response)
    }
}

/// Where a write goes: a restaurant's routes, or a new restaurant (its
/// home is in the body).
enum Target {
    Restaurant(RestaurantId),
    NewRestaurant,
}

fn target(method: &Method, path: &str) -> Option<Target> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let rest = path.strip_prefix("/v1/restaurants")?;
    if rest.is_empty() || rest == "/" {
        return (*method == Method::POST).then_some(Target::NewRestaurant);
    }
    let id = rest.strip_prefix('/')?.split('/').next()?;
    id.parse().ok().map(Target::Restaurant)
}

/// Middleware: forwards writes homed elsewhere, runs the rest here.
pub(crate) async fn forward_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(forwarder) = state.forwarder.clone() else {
        return next.run(request).await;
    };
    let Some(target) = target(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    match route(&state, &forwarder, target, request, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(
    state: &AppState,
    forwarder: &Forwarder,
    target: Target,
    request: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let (mut parts, body) = request.into_parts();
    let forwarded = parts.headers.contains_key(FORWARDED_FROM);
    // Only a new restaurant's body is read here; any other stays a stream
    // unless it leaves.
    let (home, body) = match target {
        Target::Restaurant(rid) => (forwarder.remote_home(&state.store, rid).await?, body),
        Target::NewRestaurant => {
            let bytes = bytes_of(body).await?;
            let home = requested_region(&bytes).filter(|r| *r != forwarder.me);
            (home, Body::from(bytes))
        }
    };
    let Some(home) = home else {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    };
    if forwarded {
        // The forwarding region thinks the home is here; this one thinks it
        // is `home`. Committing here would give the restaurant two seqs.
        tracing::error!(region = %home, "a forwarded write whose home is not this region");
        return Err(HttpError::RegionUnavailable(home.to_string()));
    }
    Caller::from_request_parts(&mut parts, state).await?;
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str())
        .to_owned();
    let bytes = bytes_of(body).await?;
    let response = forwarder
        .forward(&home, parts.method, &path, &parts.headers, bytes)
        .await;
    state
        .metrics
        .forwarded
        .with_label_values(&[
            home.as_str(),
            if response.is_ok() {
                "answered"
            } else {
                "unavailable"
            },
        ])
        .inc();
    response
}

async fn bytes_of(body: Body) -> Result<axum::body::Bytes, HttpError> {
    to_bytes(body, BODY_LIMIT_BYTES)
        .await
        .map_err(|_| HttpError::PayloadTooLarge(BODY_LIMIT_BYTES))
}

/// The `region` a restaurant-creation body asks for, if it is a valid name
/// (anything else is the handler's to refuse).
fn requested_region(body: &[u8]) -> Option<Region> {
    #[derive(serde::Deserialize)]
    struct Home {
        region: Option<String>,
    }
    serde_json::from_slice::<Home>(body)
        .ok()?
        .region?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_under_a_restaurant_or_creating_one_are_routed() {
        let rid = RestaurantId::new();
        let orders = format!("/v1/restaurants/{rid}/orders");
        assert!(matches!(target(&Method::POST, &orders), Some(Target::Restaurant(r)) if r == rid));
        assert!(matches!(
            target(&Method::PATCH, &format!("/v1/restaurants/{rid}")),
            Some(Target::Restaurant(_))
        ));
        assert!(target(&Method::GET, &orders).is_none());
        assert!(matches!(
            target(&Method::POST, "/v1/restaurants"),
            Some(Target::NewRestaurant)
        ));
        assert!(target(&Method::POST, "/v1/restaurants/not-a-uuid/orders").is_none());
        assert!(target(&Method::POST, "/v1/tokens").is_none());
    }

    #[test]
    fn the_requested_home_is_read_from_the_body() {
        assert_eq!(
            requested_region(br#"{"name":"x","region":"us"}"#),
            Some("us".parse().unwrap())
        );
        assert_eq!(requested_region(br#"{"name":"x"}"#), None);
        assert_eq!(
            requested_region(br#"{"name":"x","region":"Not Valid"}"#),
            None
        );
        assert_eq!(requested_region(b"not json"), None);
    }
}
