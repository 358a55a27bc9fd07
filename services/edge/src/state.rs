//! What every edge handler and task shares.

use std::sync::Arc;
use std::time::Duration;

use ordercast_bus::Streams;
use ordercast_core::auth::{Principal, TokenVerifier};
use ordercast_http::HttpError;
use ordercast_store::{ChainDirectory, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiLink;
use crate::hub::Hubs;
use crate::metrics::EdgeMetrics;
use crate::receipts::Receipts;
use crate::settings::EdgeSettings;
use crate::streams::{self, Refused, StreamSlot};

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
    pub connections: streams::Streams,
    /// Where WebSocket commands run.
    pub api: ApiLink,
    /// Counts over time (`/debug/activity`).
    pub activity: Arc<crate::activity::Activity>,
    /// Subscribers per restaurant (`/debug/restaurants/{rid}`).
    pub watchers: Arc<crate::watchers::Watchers>,
}

impl Shared {
    /// A slot for one streaming connection of `principal`, unless the
    /// process or the principal holds as many as it may, or the process is
    /// draining. A refusal is counted by reason.
    pub(crate) fn admit(&self, principal: &Principal) -> Result<StreamSlot, HttpError> {
        if self.drain.is_cancelled() {
            return Err(HttpError::Unavailable);
        }
        self.connections.admit(principal).map_err(|refused| {
            self.metrics
                .streams_refused
                .with_label_values(&[refused.as_str()])
                .inc();
            match refused {
                Refused::Process => HttpError::TooManyConnections,
                Refused::Principal => HttpError::TooManyStreams(streams::PRINCIPAL_RETRY_AFTER),
            }
        })
    }

    /// A random delay within the drain window, so clients told to
    /// reconnect do not all come back at once.
    pub(crate) fn drain_jitter(&self) -> Duration {
        let window = self.settings.drain_window.as_millis().max(1) as u64;
        Duration::from_millis(rand::random_range(0..window))
    }
}

pub(crate) type EdgeState = Arc<Shared>;
