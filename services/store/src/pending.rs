//! A write whose events are sequenced but not yet committed.

use ordercast_core::{Envelope, Seq};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};

use crate::StoreError;
use crate::idempotency::IdempotencyKey;

/// An open transaction holding a command's domain rows and its events.
///
/// Between the command and [`Pending::commit`] the restaurant's row is
/// locked, so no later seq of that restaurant can commit first: that is
/// the moment to reserve the events' place in the publish order.
/// Dropping a `Pending` rolls the command back.
#[must_use = "a pending write is rolled back unless committed"]
pub struct Pending<T> {
    tx: Transaction<'static, Postgres>,
    value: T,
    events: Vec<Envelope>,
    idempotency: Option<IdempotencyKey>,
}

/// A committed write: the resource and its events.
#[derive(Debug)]
pub struct Created<T> {
    pub value: T,
    pub events: Vec<Envelope>,
}

impl<T> Created<T> {
    /// The seq of the last event the write produced.
    pub fn last_seq(&self) -> Seq {
        self.events.last().map(|e| e.seq).unwrap_or_default()
    }
}

impl<T> Pending<T> {
    pub(crate) fn new(
        tx: Transaction<'static, Postgres>,
        value: T,
        events: Vec<Envelope>,
        idempotency: Option<IdempotencyKey>,
    ) -> Self {
        Pending {
            tx,
            value,
            events,
            idempotency,
        }
    }

    /// The events this write will commit, in seq order.
    pub fn events(&self) -> &[Envelope] {
        &self.events
    }

    /// The resource as it will be committed.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The seq of the last event this write produces.
    pub fn last_seq(&self) -> Seq {
        self.events.last().map(|e| e.seq).unwrap_or_default()
    }

    /// Claims `key` for this write, in its transaction; `false` when a
    /// command with the same key committed first (drop this one and answer
    /// [`crate::Store::replay_known`]'s).
    pub async fn claim(&mut self, key: IdempotencyKey) -> Result<bool, StoreError> {
        let claimed = crate::idempotency::claim(&mut self.tx, &key).await?;
        if claimed {
            self.idempotency = Some(key);
        }
        Ok(claimed)
    }

    /// Stores the response for the command's idempotency key (if it has
    /// one), in the same transaction, so a retry gets exactly this answer.
    pub async fn remember_response(
        &mut self,
        status: u16,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let Some(key) = &self.idempotency else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE idempotency_keys SET response_status = $3, response_body = $4
             WHERE restaurant_id = $1 AND key = $2",
        )
        .bind(key.restaurant.as_uuid())
        .bind(&key.key)
        .bind(status as i16)
        .bind(Json(body))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Commits; only now may the client be answered and the events published.
    #[tracing::instrument(name = "COMMIT", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn commit(self) -> Result<Created<T>, StoreError> {
        self.tx.commit().await?;
        Ok(Created {
            value: self.value,
            events: self.events,
        })
    }
}
