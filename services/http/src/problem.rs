//! Errors as `application/problem+json` (RFC 9457) with a stable `type`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordercast_core::auth::AuthError;
use ordercast_store::StoreError;
use serde::Serialize;
use serde_json::Value;

/// Base of every problem `type` URI; the slug after it is the stable part.
pub const PROBLEM_BASE: &str = "https://ordercast.dev/problems/";

/// Marks a response caused by a PostgreSQL failure (`unavailable` or
/// `other`), for the metrics layer.
#[derive(Clone, Copy, Debug)]
pub struct PostgresFailure(pub &'static str);

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `items[3].quantity`.
    pub field: String,
    pub message: String,
}

/// A problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://ordercast.dev/problems/<slug>`; match on this.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Invalid fields (`validation-failed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The resource as it is now (`illegal-transition`, `version-mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub current: Option<Value>,
}

/// Everything an api or edge handler can fail with: the one catalogue of
/// problem types (each `type` slug is defined here and nowhere else).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidBody(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("some fields are invalid")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    InvalidParameter(String),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("no such route")]
    NoRoute,
    #[error("this route does not take that method; Allow lists those it takes")]
    MethodNotAllowed,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the service is shutting down or overloaded")]
    Unavailable,
    #[error("{0}")]
    InvalidCursor(String),
    /// A `since` time before retention's horizon: events from then may be
    /// gone, and a silent gap is worse than an error.
    #[error("{0}")]
    CursorExpired(String),
    #[error(
        "this process holds as many streaming connections as it may; try another or retry later"
    )]
    TooManyConnections,
    #[error("region {0} cannot be reached to commit this write; retry later")]
    RegionUnavailable(String),
    #[error("region {0} is not a region of this deployment")]
    UnknownRegion(String),
    #[error("the request body did not arrive in time; send it again on a new connection")]
    RequestTimeout,
    #[error(
        "this token holds as many streaming connections as one token may; close one, or retry after {} s", retry_after_secs(*.0)
    )]
    TooManyStreams(std::time::Duration),
    #[error("this restaurant has sent more commands than its rate allows; retry after {} s", retry_after_secs(*.0))]
    RateLimited(std::time::Duration),
    /// A WebSocket command that cannot reach the api (not configured, or
    /// not answering): the detail says which.
    #[error("{0}")]
    CommandsUnavailable(String),
    /// A WebSocket command beyond the socket's commands in flight.
    #[error(
        "this connection already has {0} commands in flight; wait for a reply before sending more"
    )]
    TooManyCommands(usize),
}

/// Whole seconds to wait, rounded up and at least 1 (`Retry-After` takes
/// seconds).
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl HttpError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            HttpError::InvalidJson(_) => (S::BAD_REQUEST, "invalid-json", "Malformed JSON"),
            HttpError::InvalidBody(_) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Request body does not match the schema",
            ),
            HttpError::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            HttpError::PayloadTooLarge(_) => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            HttpError::Validation(_) => (
                S::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            HttpError::InvalidParameter(_) => {
                (S::BAD_REQUEST, "invalid-parameter", "Invalid parameter")
            }
            HttpError::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            HttpError::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Forbidden"),
            HttpError::NotFound(_) | HttpError::Store(StoreError::NotFound(_)) => {
                (S::NOT_FOUND, "not-found", "Not found")
            }
            HttpError::NoRoute => (S::NOT_FOUND, "no-route", "No such route"),
            HttpError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            HttpError::Store(StoreError::AlreadyExists(_)) => {
                (S::CONFLICT, "already-exists", "Already exists")
            }
            HttpError::Store(StoreError::IllegalTransition { .. }) => {
                (S::CONFLICT, "illegal-transition", "Illegal transition")
            }
            HttpError::Store(StoreError::VersionMismatch { .. }) => {
                (S::CONFLICT, "version-mismatch", "Version mismatch")
            }
            HttpError::Store(StoreError::IdempotencyMismatch) => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            HttpError::InvalidCursor(_) => (S::BAD_REQUEST, "invalid-cursor", "Invalid cursor"),
            HttpError::CursorExpired(_) => (S::GONE, "cursor-expired", "Cursor expired"),
            HttpError::TooManyConnections => (
                S::SERVICE_UNAVAILABLE,
                "too-many-connections",
                "Too many connections",
            ),
            HttpError::RateLimited(_) => {
                (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            }
            HttpError::RequestTimeout => (S::REQUEST_TIMEOUT, "request-timeout", "Request timeout"),
            HttpError::TooManyStreams(_) => (
                S::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many streams for this token",
            ),
            HttpError::TooManyCommands(_) => (
                S::TOO_MANY_REQUESTS,
                "too-many-commands",
                "Too many commands in flight",
            ),
            HttpError::Store(StoreError::Unavailable(_))
            | HttpError::Unavailable
            | HttpError::CommandsUnavailable(_) => {
                (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
            }
            HttpError::RegionUnavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "region-unavailable",
                "Home region unavailable",
            ),
            HttpError::UnknownRegion(_) => {
                (S::UNPROCESSABLE_ENTITY, "unknown-region", "Unknown region")
            }
            HttpError::Store(
                StoreError::Database(_)
                | StoreError::WrongRegion { .. }
                | StoreError::Replication(_),
            ) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The problem's stable slug (the end of its `type`), e.g. `not-found`.
    pub fn slug(&self) -> &'static str {
        self.parts().1
    }

    /// The same problem as a WebSocket `error` code: the slug with
    /// underscores, e.g. `not_found`.
    pub fn ws_code(&self) -> String {
        self.slug().replace('-', "_")
    }

    /// The problem body.
    pub fn problem(self) -> Problem {
        let (status, slug, title) = self.parts();
        let detail = match &self {
            // Never leak database details; they are logged instead.
            HttpError::Store(
                StoreError::Database(_)
                | StoreError::WrongRegion { .. }
                | StoreError::Replication(_),
            ) => "an internal error occurred; it has been logged".into(),
            other => other.to_string(),
        };
        let (errors, current) = match self {
            HttpError::Validation(errors) => (errors, None),
            HttpError::Store(StoreError::IllegalTransition { current, .. })
            | HttpError::Store(StoreError::VersionMismatch { current, .. }) => {
                (vec![], Some(current))
            }
            _ => (vec![], None),
        };
        Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
            current,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        match &self {
            HttpError::Store(StoreError::Database(e)) => {
                tracing::error!(error = ?e, "database error")
            }
            HttpError::Store(e @ (StoreError::WrongRegion { .. } | StoreError::Replication(_))) => {
                tracing::error!(error = %e, "region misconfigured")
            }
            HttpError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "database unavailable")
            }
            _ => {}
        }
        let postgres = match &self {
            HttpError::Store(StoreError::Database(_)) => Some(PostgresFailure("other")),
            HttpError::Store(StoreError::Unavailable(_)) => Some(PostgresFailure("unavailable")),
            _ => None,
        };
        let unauthorized = matches!(self, HttpError::Unauthorized(_));
        // The rest of a body that came too late is never read, so the
        // connection cannot carry another request.
        let close = matches!(self, HttpError::RequestTimeout);
        let retry_after = match &self {
            HttpError::RateLimited(wait) | HttpError::TooManyStreams(wait) => {
                Some(retry_after_secs(*wait))
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        let body = serde_json::to_vec(&self.problem()).expect("problems serialize");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(failure) = postgres {
            response.extensions_mut().insert(failure);
        }
        response
    }
}

impl From<JsonRejection> for HttpError {
    fn from(rejection: JsonRejection) -> Self {
        if crate::deadline::is_body_timeout(&rejection) {
            return HttpError::RequestTimeout;
        }
        match rejection {
            JsonRejection::JsonDataError(e) => HttpError::InvalidBody(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => HttpError::InvalidJson(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => HttpError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                HttpError::PayloadTooLarge(crate::extract::BODY_LIMIT_BYTES)
            }
            other => HttpError::InvalidJson(other.body_text()),
        }
    }
}

impl From<PathRejection> for HttpError {
    fn from(rejection: PathRejection) -> Self {
        HttpError::InvalidParameter(rejection.body_text())
    }
}

impl From<QueryRejection> for HttpError {
    fn from(rejection: QueryRejection) -> Self {
        HttpError::InvalidParameter(rejection.body_text())
    }
}

/// The fallback for unknown routes.
pub async fn no_route() -> HttpError {
    HttpError::NoRoute
}
