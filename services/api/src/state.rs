//! What every handler shares.

use std::sync::Arc;

use ordercast_bus::Publisher;
use ordercast_core::RestaurantId;
use ordercast_core::Seq;
use ordercast_core::auth::TokenVerifier;
use ordercast_store::{Created, Pending, Store, StoreError};

use crate::auth::ChainDirectory;
use crate::coalesce::Coalescer;
use crate::error::ApiError;
use crate::metrics::ApiMetrics;

/// Commits pending writes and hands their events to the publisher in
/// commit order.
#[derive(Clone)]
pub struct Writer {
    pub store: Store,
    pub publisher: Publisher,
}

impl Writer {
    /// Reserves the events' publish order, commits, then publishes; returns
    /// the committed value and the seq of its last event.
    pub async fn commit<T>(&self, pending: Pending<T>) -> Result<(T, Seq), ApiError> {
        // Reserved before COMMIT, while the restaurant row is still locked.
        let reservation = self.publisher.reserve(pending.events());
        let created = pending.commit().await?;
        let seq = created.last_seq();
        reservation.release(created.events);
        Ok((created.value, seq))
    }

    /// Runs a single-statement write to `restaurant` (committed when it
    /// returns) and publishes its events after any earlier ones.
    pub async fn commit_now<T>(
        &self,
        restaurant: RestaurantId,
        write: impl Future<Output = Result<Created<T>, StoreError>>,
    ) -> Result<(T, Seq), ApiError> {
        let in_flight = self.publisher.ticket(restaurant);
        let created = write.await?;
        let seq = created.last_seq();
        in_flight.release(created.events);
        Ok((created.value, seq))
    }
}

/// Shared state of the api routes.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub verifier: Arc<TokenVerifier>,
    pub chains: Arc<ChainDirectory>,
    pub metrics: ApiMetrics,
    pub invalidations: Coalescer,
    pub(crate) write_limits: Arc<crate::limits::WriteLimits>,
}
