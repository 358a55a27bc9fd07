//! Committing writes and handing their events to the publisher in commit
//! order.

use ordercast_bus::Publisher;
use ordercast_core::{RestaurantId, Seq};
use ordercast_http::HttpError;
use ordercast_store::{Created, Pending, Store, StoreError};

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
