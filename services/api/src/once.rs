//! `Idempotency-Key` on status changes: a command resent with the same key
//! (an HTTP retry, a WebSocket command resent after a reconnect) gets the
//! first answer again, marked `Idempotent-Replayed: true`, and never
//! applies twice. Keys are scoped to the restaurant, as on order creation.

use axum::http::HeaderMap;
use ordercast_core::RestaurantId;
use ordercast_store::{IdempotencyKey, Pending, Replay, StoreError};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::headers::idempotency_key;
use crate::state::AppState;
use ordercast_http::HttpError;

/// A command's answer: written now, or the one given to its key before.
pub(crate) enum Once {
    Fresh(Value),
    Replayed(Replay),
}

/// The request's key (if it has an `Idempotency-Key`), fingerprinted by
/// `request` (method and path), `If-Match` and `body`.
pub(crate) fn key_of(
    headers: &HeaderMap,
    rid: RestaurantId,
    request: &str,
    body: &impl Serialize,
) -> Result<Option<IdempotencyKey>, HttpError> {
    Ok(idempotency_key(headers)?.map(|key| {
        let mut hash = Sha256::new();
        hash.update(format!("{request}\n"));
        if let Some(version) = headers.get(axum::http::header::IF_MATCH) {
            hash.update(version.as_bytes());
            hash.update(b"\n");
        }
        hash.update(serde_json::to_vec(body).expect("bodies serialize"));
        IdempotencyKey {
            restaurant: rid,
            key,
            request_hash: hash.finalize().to_vec(),
        }
    }))
}

/// Runs `write` unless `key` was answered before, then commits it with its
/// answer (`answer` of the value and its last seq) stored under the key.
pub(crate) async fn commit_once<T, W, A>(
    state: &AppState,
    key: Option<IdempotencyKey>,
    write: W,
    answer: A,
) -> Result<Once, HttpError>
where
    W: Future<Output = Result<Pending<T>, StoreError>>,
    A: FnOnce(&T, ordercast_core::Seq) -> Value,
{
    if let Some(replay) = known(state, key.as_ref()).await? {
        return Ok(Once::Replayed(replay));
    }
    let mut pending = match write.await {
        Ok(pending) => pending,
        // The same command, resent while the first was committing, finds
        // the state it moved to: answer the first's answer.
        Err(e @ (StoreError::IllegalTransition { .. } | StoreError::VersionMismatch { .. })) => {
            return match known(state, key.as_ref()).await? {
                Some(replay) => Ok(Once::Replayed(replay)),
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(key) = key
        && !pending.claim(key.clone()).await?
    {
        drop(pending);
        return Ok(Once::Replayed(
            state
                .store
                .replay_known(&key)
                .await?
                .ok_or(HttpError::Store(StoreError::IdempotencyMismatch))?,
        ));
    }
    let json = answer(pending.value(), pending.last_seq());
    pending.remember_response(200, &json).await?;
    state.writer.commit(pending).await?;
    Ok(Once::Fresh(json))
}

async fn known(
    state: &AppState,
    key: Option<&IdempotencyKey>,
) -> Result<Option<Replay>, HttpError> {
    match key {
        Some(key) => Ok(state.store.replay_known(key).await?),
        None => Ok(None),
    }
}
