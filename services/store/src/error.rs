use serde_json::Value;

/// What can go wrong with a command or query.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The restaurant, order, item or request does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A resource with this id already exists.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The state machine forbids the change; `current` is the resource as it is.
    #[error("{message}")]
    IllegalTransition { message: String, current: Value },
    /// `If-Match` named another version; `current` is the resource as it is.
    #[error("the resource has version {version}, not the one given in If-Match")]
    VersionMismatch { version: i32, current: Value },
    /// The idempotency key was used before with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    /// PostgreSQL cannot be reached (down, restarting, pool exhausted).
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database belongs to another region than the process's.
    #[error("the database belongs to region {database}, not {configured}")]
    WrongRegion {
        database: String,
        configured: String,
    },
    /// Replication between regions cannot be set up as configured.
    #[error("{0}")]
    Replication(String),
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// PostgreSQL did not answer within the deadline ([`crate::Store::within`]).
    pub fn timed_out() -> StoreError {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "PostgreSQL did not answer in time",
        )))
    }

    pub(crate) fn illegal(message: String, current: &impl serde::Serialize) -> StoreError {
        StoreError::IllegalTransition {
            message,
            current: serde_json::to_value(current).unwrap_or(Value::Null),
        }
    }
}

/// SQLSTATE classes and codes that mean "the server is not there right now".
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "53400")
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if is_unavailable_code(&code) {
                    StoreError::Unavailable(e)
                } else {
                    StoreError::Database(e)
                }
            }
            _ => StoreError::Database(e),
        }
    }
}
