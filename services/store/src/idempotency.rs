//! `Idempotency-Key`: a retried command gets the first answer, not a second order.

use ordercast_core::RestaurantId;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::{Pending, Store, StoreError};

/// A client's idempotency key with the fingerprint of its request.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub restaurant: RestaurantId,
    /// The header's value (validated by the caller: 1–255 visible ASCII).
    pub key: String,
    /// SHA-256 of method, path and body.
    pub request_hash: Vec<u8>,
}

/// The stored answer to an earlier request with the same key.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Claims `key` inside the caller's transaction.
///
/// Returns `Ok(None)` when the key is new: the caller goes on and stores its
/// response before committing. When another transaction holds the same key,
/// the insert waits for it to finish, so ten concurrent retries yield one
/// order and ten identical answers.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (restaurant_id, key, request_hash)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(key.restaurant.as_uuid())
    .bind(&key.key)
    .bind(&key.request_hash)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

impl Store {
    /// The stored answer for a key that [`claim`] found taken.
    pub(crate) async fn replay(&self, key: &IdempotencyKey) -> Result<Replay, StoreError> {
        // Claimed and committed without a response, or expired between the
        // two statements: neither happens in practice; refuse rather than guess.
        self.replay_known(key)
            .await?
            .ok_or(StoreError::IdempotencyMismatch)
    }

    /// The stored answer for `key`, if a command with it has committed;
    /// `IdempotencyMismatch` when the key was used for another request.
    pub async fn replay_known(&self, key: &IdempotencyKey) -> Result<Option<Replay>, StoreError> {
        type Row = (Vec<u8>, Option<i16>, Option<Json<serde_json::Value>>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys
             WHERE restaurant_id = $1 AND key = $2",
        )
        .bind(key.restaurant.as_uuid())
        .bind(&key.key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some((hash, _, _)) if hash != key.request_hash => Err(StoreError::IdempotencyMismatch),
            Some((_, Some(status), Some(Json(body)))) => Ok(Some(Replay {
                status: status as u16,
                body,
            })),
            Some(_) => Err(StoreError::IdempotencyMismatch),
        }
    }
}

/// The result of a command that may be a retry.
pub enum Outcome<T> {
    /// First time: commit it.
    Fresh(Pending<T>),
    /// A retry of a committed command: answer what was answered then.
    Replayed(Replay),
}
