//! How the edge reaches the api to run a WebSocket command as the HTTP call
//! it stands for: the api's router in this process (`ordercast all`, no
//! network), or an api over HTTP (`ORDERCAST_API_URL`, a split `ordercast
//! edge`). The edge never imports the api crate: `ordercast` hands it a
//! router.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use ordercast_http::extract::BODY_LIMIT_BYTES;
use ordercast_http::forwarding::kept_response_headers;
use tower::ServiceExt;

/// Longest a command may take to be answered by an api over HTTP before its
/// client gets `unavailable` (and may resend it with the same id).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the edge's WebSocket commands run.
#[derive(Clone, Default)]
pub enum ApiLink {
    /// Nowhere: every command is answered `unavailable`.
    #[default]
    Unset,
    /// The api's router, in this process, until [`ApiLink::release`] (the
    /// router holds the api's state, which must go for the api to stop).
    InProcess(Arc<RwLock<Option<Router>>>),
    /// An api at this base URL, e.g. `http://ordercast-api:8080`.
    Http {
        base: String,
        client: reqwest::Client,
    },
}

/// The api's answer to a command: status, the headers forwarding keeps,
/// body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiLink {
    /// The api's router in this process.
    pub fn in_process(router: Router) -> ApiLink {
        ApiLink::InProcess(Arc::new(RwLock::new(Some(router))))
    }

    /// Lets go of an in-process api (on shutdown); later commands are
    /// answered `unavailable`.
    pub fn release(&self) {
        if let ApiLink::InProcess(router) = self {
            router.write().expect("api link lock").take();
        }
    }

    /// An api over HTTP at `base`.
    pub fn http(base: &str) -> Result<ApiLink, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(ApiLink::Http {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// Runs `request` (a path and query without scheme or host) on the api;
    /// `Err` says why it could not (never the token).
    pub(crate) async fn call(&self, request: Request<Bytes>) -> Result<Answer, String> {
        match self {
            ApiLink::Unset => Err(
                "this edge runs no api and has no ORDERCAST_API_URL, so it cannot run commands; send them to the api over HTTP".into(),
            ),
            ApiLink::InProcess(router) => {
                // std RwLock: never held across an await.
                let router = router.read().expect("api link lock").clone();
                let router = router.ok_or("the api in this process is shutting down")?;
                let response = router
                    .oneshot(request.map(Body::from))
                    .await
                    .unwrap_or_else(|never| match never {});
                let (parts, body) = response.into_parts();
                let body = to_bytes(body, BODY_LIMIT_BYTES)
                    .await
                    .map_err(|e| format!("reading the api's answer failed: {e}"))?;
                Ok(Answer {
                    status: parts.status,
                    headers: kept_response_headers(&parts.headers),
                    body,
                })
            }
            ApiLink::Http { base, client } => over_http(base, client, request).await,
        }
    }
}

async fn over_http(
    base: &str,
    client: &reqwest::Client,
    request: Request<Bytes>,
) -> Result<Answer, String> {
    let (parts, body) = request.into_parts();
    let unreachable = |e: reqwest::Error| {
        // Without the URL: reqwest's errors name it, and it has no token, but
        // the base is enough to act on.
        format!("the api at {base} did not answer: {}", e.without_url())
    };
    let answer = client
        .request(parts.method, format!("{base}{}", parts.uri))
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = answer.status();
    let headers = kept_response_headers(answer.headers());
    let body = answer.bytes().await.map_err(unreachable)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}
