//! What every handler shares.

use std::sync::Arc;

use ordercast_bus::Publisher;
use ordercast_core::RestaurantId;
use ordercast_core::Seq;
use ordercast_core::auth::TokenVerifier;
use ordercast_core::policy::Action;
use ordercast_http::{Caller, HasVerifier, authorize};
use ordercast_store::{Created, Pending, Store, StoreError};

use crate::coalesce::Coalescer;
use crate::metrics::ApiMetrics;
use ordercast_http::HttpError;
use ordercast_store::ChainDirectory;

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
    pub async fn commit<T>(&self, pending: Pending<T>) -> Result<(T, Seq), HttpError> {
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
    ) -> Result<(T, Seq), HttpError> {
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

impl HasVerifier for AppState {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl AppState {
    /// [`authorize`] with this state's directory and store; a command
    /// then spends one of the restaurant's write budget (`429` when spent).
    pub async fn authorize(
        &self,
        caller: &Caller,
        id: RestaurantId,
        action: Action,
    ) -> Result<(), HttpError> {
        authorize(&caller.0, id, action, &self.chains, &self.store).await?;
        if action.is_command() {
            self.write_limits
                .take(id)
                .inspect_err(|_| self.metrics.rate_limited.inc())?;
        }
        Ok(())
    }
}
