//! Slots for streaming connections (SSE, WebSocket, waiting long-polls):
//! the process's, and each principal's (docs/design.md §12).
//!
//! The process-wide limit keeps the edge below its open files, so the
//! client past it is answered `503 too-many-connections` instead of the
//! process failing to accept anyone. The per-principal limit keeps one
//! token from taking the process's slots: a guest's table session or a
//! leaked token that opens thousands of streams is answered `429
//! too-many-streams` while every other restaurant's screens still connect.

use std::sync::Arc;
use std::time::Duration;

use ordercast_core::auth::Principal;
use ordercast_http::admission::{Counted, Counts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a client refused for its principal should wait: a slot frees
/// only when one of that principal's own streams ends.
pub(crate) const PRINCIPAL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a stream was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The process holds `max_connections` streams.
    Process,
    /// The principal holds `max_connections_per_principal` streams.
    Principal,
}

impl Refused {
    /// The `reason` label of `ordercast_streams_refused_total`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Process => "process",
            Refused::Principal => "principal",
        }
    }
}

/// The streaming slots of one process.
pub(crate) struct Streams {
    process: Arc<Semaphore>,
    per_principal: Option<usize>,
    /// Streams of each principal: the token's identity (subject, role,
    /// restaurants or chain, waiter, table session) whatever its expiry. A
    /// guest's table session is one principal; so are the kitchen screens
    /// of one restaurant that share a token.
    principals: Counts<Principal>,
}

impl Streams {
    /// `max` streams in all, `per_principal` each (`None`: no limit).
    pub(crate) fn new(max: usize, per_principal: Option<usize>) -> Streams {
        Streams {
            process: Arc::new(Semaphore::new(max)),
            per_principal,
            principals: Counts::default(),
        }
    }

    /// A slot for one stream of `principal`, held until dropped.
    pub(crate) fn admit(&self, principal: &Principal) -> Result<StreamSlot, Refused> {
        let principal = match self.per_principal {
            Some(limit) => Some(
                self.principals
                    .take(principal.identity(), limit)
                    .ok_or(Refused::Principal)?,
            ),
            None => None,
        };
        let process = self
            .process
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Process)?;
        Ok(StreamSlot {
            _process: process,
            _principal: principal,
        })
    }
}

/// One open stream's slots.
pub(crate) struct StreamSlot {
    _process: OwnedSemaphorePermit,
    _principal: Option<Counted<Principal>>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::kitchen;

    const HOUR: Duration = Duration::from_secs(3_600);

    #[test]
    fn a_principal_at_its_limit_is_refused_while_others_still_get_slots() {
        let streams = Streams::new(10, Some(2));
        let kitchen = kitchen(HOUR);
        let mut guest = kitchen.clone();
        guest.role = ordercast_core::Role::Customer;
        guest.session_id = Some("table-7".parse().unwrap());
        let _a = streams.admit(&guest).unwrap();
        let b = streams.admit(&guest).unwrap();
        assert_eq!(streams.admit(&guest).err(), Some(Refused::Principal));
        assert!(streams.admit(&kitchen).is_ok());
        drop(b);
        assert!(streams.admit(&guest).is_ok());
    }

    #[test]
    fn the_process_limit_holds_whoever_asks() {
        let streams = Streams::new(1, None);
        let _only = streams.admit(&kitchen(HOUR)).unwrap();
        assert_eq!(streams.admit(&kitchen(HOUR)).err(), Some(Refused::Process));
    }

    #[test]
    fn counts_of_closed_streams_are_forgotten() {
        let streams = Streams::new(4, Some(4));
        drop(streams.admit(&kitchen(HOUR)).unwrap());
        assert!(streams.principals.is_empty());
    }
}
