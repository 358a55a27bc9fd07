//! What every edge handler and task shares, and what a subscription can
//! fail with.

use std::sync::Arc;
use std::time::Duration;

use ordercast_bus::Streams;
use ordercast_core::Seq;
use ordercast_core::auth::TokenVerifier;
use ordercast_http::HttpError;
use ordercast_store::{ChainDirectory, Store, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::Hubs;
use crate::metrics::EdgeMetrics;
use crate::receipts::Receipts;
use crate::settings::EdgeSettings;

/// What a subscription can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("restaurant not found")]
    NotFound,
    #[error("cursor {0} is beyond the restaurant's last event")]
    CursorAhead(Seq),
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
            EdgeError::Store(e) => HttpError::Store(e),
            EdgeError::Unavailable => HttpError::Unavailable,
        }
    }
}

/// What every edge handler and task shares.
pub(crate) struct Shared {
    pub store: Store,
    pub streams: Streams,
    pub settings: EdgeSettings,
    pub metrics: EdgeMetrics,
    pub hubs: Arc<Hubs>,
    pub verifier: Arc<TokenVerifier>,
    pub chains: Arc<ChainDirectory>,
    /// Cancelled when the process starts draining.
    pub drain: CancellationToken,
    /// Upgraded WebSocket sessions, which outlive their HTTP connection.
    pub sessions: TaskTracker,
    /// What screens were sent, for the delivery ledger.
    pub receipts: Arc<Receipts>,
    pub connections: Arc<Semaphore>,
}

impl Shared {
    /// A slot for one streaming connection, unless full or draining.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, HttpError> {
        if self.drain.is_cancelled() {
            return Err(HttpError::Unavailable);
        }
        self.connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| HttpError::TooManyConnections)
    }

    /// A random delay within the drain window, so clients told to
    /// reconnect do not all come back at once.
    pub(crate) fn drain_jitter(&self) -> Duration {
        let window = self.settings.drain_window.as_millis().max(1) as u64;
        Duration::from_millis(rand::random_range(0..window))
    }
}

pub(crate) type EdgeState = Arc<Shared>;
