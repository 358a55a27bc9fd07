//! The database deadline of a command or query (DESIGN §12: every wait on
//! a dependency has one).
//!
//! A PostgreSQL that hangs instead of refusing (a stopped server, a
//! black-holed network) never enforces its own `statement_timeout`, so the
//! api gives each request's database work `ORDERCAST_DATABASE_TIMEOUT`,
//! waiting for a pooled connection included, and then answers
//! `503 unavailable` with `Retry-After`. Cutting a handler short is what a
//! client going away already does: its transaction rolls back unless its
//! `COMMIT` had reached the server, and whatever committed is published by
//! the outbox sweeper. A retry with the same `Idempotency-Key` then gets
//! the first answer, never a second order.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::LengthLimitError;
use ordercast_http::HttpError;
use ordercast_http::deadline::{caused_by, is_body_timeout};
use ordercast_http::extract::BODY_LIMIT_BYTES;
use ordercast_store::StoreError;

use crate::state::AppState;

/// Runs the handler within the store's deadline, counted from when the
/// request's body has arrived: a client sending its body slowly is not
/// PostgreSQL failing.
pub(crate) async fn database_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let request = match buffered(request).await {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    match tokio::time::timeout(state.store.timeout(), next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError::Store(StoreError::timed_out()).into_response(),
    }
}

/// The request with its body read into memory (at most
/// [`BODY_LIMIT_BYTES`], as the JSON extractor would allow, and within the
/// server's body deadline).
async fn buffered(request: Request) -> Result<Request, HttpError> {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, BODY_LIMIT_BYTES).await {
        Ok(bytes) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Err(e) if caused_by::<LengthLimitError>(&e) => {
            Err(HttpError::PayloadTooLarge(BODY_LIMIT_BYTES))
        }
        Err(e) if is_body_timeout(&e) => Err(HttpError::RequestTimeout),
        Err(e) => Err(HttpError::InvalidJson(format!(
            "the request body could not be read: {e}"
        ))),
    }
}
