//! What a Redis operation can fail with, classified once here.

use redis::RedisError;

/// A failed Redis operation.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// An `XADD` whose id is not above the stream's last entry: the event
    /// is there already, or superseded (readers fill such gaps from
    /// PostgreSQL). Nothing is left to publish.
    #[error("the stream already holds this entry or a later one")]
    StaleId,
    /// Redis could not be reached, dropped the connection or did not answer
    /// in time.
    #[error("Redis is unavailable")]
    Unavailable(#[source] RedisError),
    /// Redis answered with an error.
    #[error("Redis refused the command")]
    Refused(#[source] RedisError),
}

impl From<RedisError> for BusError {
    fn from(e: RedisError) -> BusError {
        // Redis gives this refusal no error code of its own: its message is
        // the only way to tell it (checked against every Redis we test).
        let stale = e
            .detail()
            .is_some_and(|d| d.contains("equal or smaller than the target stream top item"));
        if stale {
            BusError::StaleId
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            BusError::Unavailable(e)
        } else {
            BusError::Refused(e)
        }
    }
}
