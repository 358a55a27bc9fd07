//! What a subscription can fail with.

use chrono::{DateTime, Utc};
use ordercast_core::Seq;
use ordercast_http::HttpError;
use ordercast_store::StoreError;

/// What a subscription can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("restaurant not found")]
    NotFound,
    #[error("cursor {0} is beyond the restaurant's last event")]
    CursorAhead(Seq),
    #[error(
        "since {at} is before retention's horizon ({horizon}): events from then may be deleted; resume from 0 (the oldest event kept) or a snapshot"
    )]
    CursorExpired {
        at: DateTime<Utc>,
        horizon: DateTime<Utc>,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error("the edge is shutting down")]
    Unavailable,
}

impl From<StoreError> for EdgeError {
    fn from(e: StoreError) -> EdgeError {
        match e {
            StoreError::NotFound(_) => EdgeError::NotFound,
            other => EdgeError::Store(other),
        }
    }
}

impl From<EdgeError> for HttpError {
    fn from(e: EdgeError) -> HttpError {
        match e {
            EdgeError::NotFound => HttpError::NotFound("restaurant"),
            EdgeError::CursorAhead(_) => HttpError::InvalidCursor(e.to_string()),
            EdgeError::CursorExpired { .. } => HttpError::CursorExpired(e.to_string()),
            EdgeError::Store(e) => HttpError::Store(e),
            EdgeError::Unavailable => HttpError::Unavailable,
        }
    }
}
