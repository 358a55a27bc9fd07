//! The event envelope: one format on every transport (docs/protocol.md, "Events").

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::audience::Audience;
use crate::ids::{ItemId, RestaurantId, Seq};

/// Longest accepted event type name, in bytes.
pub const EVENT_TYPE_MAX_LEN: usize = 64;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    OrderCreated,
    OrderStatusChanged,
    OrderItemStatusChanged,
    RequestCreated,
    RequestStatusChanged,
    SessionTransferred,
    Notification,
    CacheInvalidate,
    /// An integration's own `x.<name>` event.
    Custom(String),
}

const BUILT_IN: [(EventType, &str); 8] = [
    (EventType::OrderCreated, "order.created"),
    (EventType::OrderStatusChanged, "order.status_changed"),
    (
        EventType::OrderItemStatusChanged,
        "order.item_status_changed",
    ),
    (EventType::RequestCreated, "request.created"),
    (EventType::RequestStatusChanged, "request.status_changed"),
    (EventType::SessionTransferred, "session.transferred"),
    (EventType::Notification, "notification"),
    (EventType::CacheInvalidate, "cache.invalidate"),
];

/// Why an event type name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "event type must be a built-in type or \"x.<name>\" with <name> of lowercase letters, digits, '.', '_' or '-' (at most {EVENT_TYPE_MAX_LEN} bytes in all)"
)]
pub struct InvalidEventType;

impl EventType {
    /// The wire name, e.g. `order.created`.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Custom(name) => name,
            built_in => {
                BUILT_IN
                    .iter()
                    .find(|(t, _)| t == built_in)
                    .expect("every built-in type has a name")
                    .1
            }
        }
    }

    /// The wire names of the built-in types.
    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(_, name)| *name)
    }

    /// Parses a custom integration type; only `x.<name>` is accepted.
    pub fn custom(name: &str) -> Result<EventType, InvalidEventType> {
        let rest = name.strip_prefix("x.").ok_or(InvalidEventType)?;
        let valid = name.len() <= EVENT_TYPE_MAX_LEN
            && !rest.is_empty()
            && rest.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if valid {
            Ok(EventType::Custom(name.to_owned()))
        } else {
            Err(InvalidEventType)
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = InvalidEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match BUILT_IN.iter().find(|(_, name)| *name == s) {
            Some((t, _)) => Ok(t.clone()),
            None => EventType::custom(s),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An event before it has a place in its restaurant's sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    pub kind: EventType,
    pub audience: Audience,
    pub data: serde_json::Value,
    pub previous_status: Option<String>,
    pub item_id: Option<ItemId>,
}

impl EventDraft {
    /// A draft with no previous status or item.
    pub fn new(kind: EventType, audience: Audience, data: serde_json::Value) -> Self {
        EventDraft {
            kind,
            audience,
            data,
            previous_status: None,
            item_id: None,
        }
    }
}

/// A sequenced event, exactly as delivered to clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Envelope {
    pub restaurant_id: RestaurantId,
    pub seq: Seq,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "order.created")]
    pub kind: EventType,
    /// Commit time of the command that produced the event (UTC, microseconds).
    pub ts: DateTime<Utc>,
    pub audience: Audience,
    /// The full resource after the change (order, request…) or the
    /// notification / integration payload.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// For `*.status_changed` events: the status before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    /// For `order.item_status_changed`: the item that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ItemId>,
    /// W3C `traceparent` of the request that produced the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl Envelope {
    /// Seals a draft at its place in the sequence.
    pub fn seal(
        restaurant_id: RestaurantId,
        seq: Seq,
        ts: DateTime<Utc>,
        trace: Option<String>,
        draft: EventDraft,
    ) -> Envelope {
        Envelope {
            restaurant_id,
            seq,
            kind: draft.kind,
            ts,
            audience: draft.audience,
            data: draft.data,
            previous_status: draft.previous_status,
            item_id: draft.item_id,
            trace,
        }
    }

    /// The current time at the precision PostgreSQL stores (microseconds),
    /// so an envelope read back equals the one that was published.
    pub fn now() -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_types_round_trip() {
        for (t, name) in BUILT_IN.iter() {
            assert_eq!(t.as_str(), *name);
            assert_eq!(name.parse::<EventType>().as_ref(), Ok(t));
        }
    }

    #[test]
    fn custom_types_need_the_x_prefix_and_a_plain_name() {
        assert_eq!(
            "x.loyalty.points_added".parse(),
            Ok(EventType::Custom("x.loyalty.points_added".into()))
        );
        for bad in ["x.", "loyalty", "x.Upper", "x.with space", "order.createdd"] {
            assert_eq!(bad.parse::<EventType>(), Err(InvalidEventType), "{bad}");
        }
        let long = format!("x.{}", "a".repeat(EVENT_TYPE_MAX_LEN));
        assert_eq!(long.parse::<EventType>(), Err(InvalidEventType));
    }

    #[test]
    fn envelope_serializes_as_the_contract_says() {
        let rid: RestaurantId = "6f1c0d2e-0000-4000-8000-000000000001".parse().unwrap();
        let ts = "2026-11-23T10:00:00.123456Z".parse().unwrap();
        let mut draft = EventDraft::new(
            EventType::OrderStatusChanged,
            Audience::roles(&[crate::Role::Kitchen]),
            serde_json::json!({"id": "o1"}),
        );
        draft.previous_status = Some("in_progress".into());
        let env = Envelope::seal(rid, Seq(1057), ts, None, draft);
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "restaurant_id": "6f1c0d2e-0000-4000-8000-000000000001",
                "seq": 1057,
                "type": "order.status_changed",
                "ts": "2026-11-23T10:00:00.123456Z",
                "audience": {"roles": ["kitchen"]},
                "data": {"id": "o1"},
                "previous_status": "in_progress"
            })
        );
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }
}
