//! The WebSocket protocol's messages (docs/protocol.md): what a client may
//! send, and everything the server sends but events (whose frames are
//! serialized once per event and shared, see `frame.rs`) and `stale` /
//! `live` (the same JSON as on SSE, see `regions.rs`).

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use ordercast_core::order::Order;
use ordercast_core::{RestaurantId, Seq};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The subprotocol the server selects when the client offers it.
pub(crate) const PROTOCOL: &str = "ordercast.v1";

/// Close code when the token expires: reconnect with a fresh token.
pub(crate) const TOKEN_EXPIRED: u16 = 4001;

/// A client → server message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ClientMessage {
    Subscribe {
        restaurant_id: RestaurantId,
        /// Checked by hand, for a clear `invalid_cursor` instead of a
        /// generic parse error.
        #[serde(default)]
        since: Option<Value>,
    },
    Unsubscribe {
        restaurant_id: RestaurantId,
    },
    Sync {
        restaurant_id: RestaurantId,
    },
    /// The screen has processed every event of the restaurant up to `seq`.
    /// With an `id`, the ack gets a `reply`.
    Ack {
        restaurant_id: RestaurantId,
        seq: Seq,
        #[serde(default)]
        id: Option<String>,
    },
    /// A command (`command.rs`): `id` is the client's request id, the rest
    /// names the command and carries its body.
    Command {
        id: String,
        #[serde(flatten)]
        fields: serde_json::Map<String, Value>,
    },
    /// A fresh token for the same identity, sent before the current one
    /// expires: the connection and its subscriptions carry on.
    Refresh {
        token: String,
    },
    Ping,
}

/// A server → client message other than an event.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerMessage {
    /// The first frame of every session.
    Hello(Hello),
    /// The one answer to a command (or an ack with an `id`).
    Reply {
        id: String,
        /// `status` is 2xx: `result` holds the answer.
        ok: bool,
        /// The HTTP status the api call answered.
        status: u16,
        /// The api call's JSON answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// The resource's version after the command (its ETag).
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<i64>,
        /// The answer is the one given to an earlier command with this id.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
        /// The api call's problem+json, when not `ok`.
        #[serde(skip_serializing_if = "Option::is_none")]
        problem: Option<Value>,
        /// Seconds to wait before retrying (rate limits).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    Subscribed {
        restaurant_id: RestaurantId,
        /// The cursor the subscription starts from.
        seq: Seq,
        /// The restaurant's last event as the edge knew it then.
        head: Seq,
    },
    Unsubscribed {
        restaurant_id: RestaurantId,
    },
    Snapshot {
        restaurant_id: RestaurantId,
        seq: Seq,
        orders: Vec<Order>,
        truncated: bool,
    },
    SyncComplete {
        restaurant_id: RestaurantId,
        seq: Seq,
    },
    Refreshed {
        /// The new token's expiry, Unix seconds.
        expires_at: u64,
    },
    Pong,
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        restaurant_id: Option<RestaurantId>,
    },
}

/// What a client learns when its socket opens.
#[derive(Debug, Serialize)]
pub(crate) struct Hello {
    pub server: &'static str,
    pub version: &'static str,
    /// The subprotocol selected (`ordercast.v1`), if the client offered it.
    pub protocol: Option<&'static str>,
    /// The server pings this often; a peer silent for two intervals is cut.
    pub ping_interval_ms: u64,
    /// When the connection's token expires (Unix seconds): `refresh` before.
    pub expires_at: u64,
    pub limits: Limits,
}

/// The limits a client must keep to.
#[derive(Debug, Serialize)]
pub(crate) struct Limits {
    /// Largest message, bytes (close 1009 beyond).
    pub max_message_bytes: usize,
    /// Restaurants one socket may subscribe to.
    pub max_subscriptions: usize,
    /// Sustained messages a second, in bursts of twice as many (close 1008
    /// beyond).
    pub messages_per_second: u32,
    /// Commands awaiting their reply at once.
    pub commands_in_flight: usize,
}

impl ServerMessage {
    pub(crate) fn error(
        code: impl Into<String>,
        message: impl std::fmt::Display,
        restaurant_id: Option<RestaurantId>,
    ) -> ServerMessage {
        ServerMessage::Error {
            code: code.into(),
            message: message.to_string(),
            restaurant_id,
        }
    }

    /// The message as a text frame.
    pub(crate) fn frame(&self) -> Message {
        let json = serde_json::to_string(self).expect("server messages serialize");
        Message::Text(Utf8Bytes::from(json))
    }
}

/// A close frame.
pub(crate) fn close(code: u16, reason: impl Into<Utf8Bytes>) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_messages_carry_their_type_and_leave_out_what_is_absent() {
        let rid: RestaurantId = "6f1c0d2e-0000-4000-8000-000000000001".parse().unwrap();
        let as_json = |m: ServerMessage| serde_json::to_value(m).unwrap();
        assert_eq!(
            as_json(ServerMessage::Subscribed {
                restaurant_id: rid,
                seq: Seq(3),
                head: Seq(7)
            }),
            json!({"type": "subscribed", "restaurant_id": rid, "seq": 3, "head": 7})
        );
        assert_eq!(
            as_json(ServerMessage::error("invalid_message", "bad", None)),
            json!({"type": "error", "code": "invalid_message", "message": "bad"})
        );
        assert_eq!(as_json(ServerMessage::Pong), json!({"type": "pong"}));
    }
}
