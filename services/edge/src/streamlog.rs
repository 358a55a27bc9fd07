//! The connect and close lines of every stream: who (the token's `sub` and
//! role, never the token), which restaurants, over which transport, how
//! long, how many events and why it ended. SSE and WebSocket log at info;
//! a long-poll answer is one request among many of the same screen, so its
//! lines are debug (its counts are in the minute lines of `activity.rs`).

use std::time::Instant;

use ordercast_core::auth::Principal;
use ordercast_core::{RestaurantId, Role};

use crate::metrics::Transport;

/// Who a stream serves.
pub(crate) struct Peer {
    /// The token's subject.
    pub sub: Box<str>,
    pub role: Role,
    /// Comma-separated restaurant ids (a WebSocket's are known at close).
    pub restaurants: String,
}

impl Peer {
    /// `principal` watching `restaurant` (none yet: a WebSocket).
    pub(crate) fn new(principal: &Principal, restaurant: Option<RestaurantId>) -> Peer {
        Peer {
            sub: principal.subject.as_str().into(),
            role: principal.role,
            restaurants: restaurant.map(|r| r.to_string()).unwrap_or_default(),
        }
    }
}

/// A stream's log state, from its connect line to its close line.
pub(crate) struct StreamLog {
    pub(crate) peer: Peer,
    pub(crate) delivered: u64,
    opened: Instant,
}

macro_rules! stream_line {
    ($transport:expr, $($rest:tt)*) => {
        match $transport {
            Transport::LongPoll => tracing::debug!($($rest)*),
            _ => tracing::info!($($rest)*),
        }
    };
}

impl StreamLog {
    pub(crate) fn open(transport: Transport, peer: Peer) -> StreamLog {
        stream_line!(transport, transport = transport.as_str(), restaurants = %peer.restaurants,
            role = peer.role.as_str(), sub = %peer.sub, "stream opened");
        StreamLog {
            peer,
            delivered: 0,
            opened: Instant::now(),
        }
    }

    pub(crate) fn close(&self, transport: Transport, reason: &str) {
        let peer = &self.peer;
        stream_line!(transport, transport = transport.as_str(), restaurants = %peer.restaurants,
            role = peer.role.as_str(), sub = %peer.sub,
            duration_ms = self.opened.elapsed().as_millis() as u64,
            delivered = self.delivered, reason, "stream closed");
    }
}
