//! Waiter requests from a table: call the waiter, the bill, water…

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audience::{Audience, Role};
use crate::ids::{RequestId, RestaurantId, SessionId, WaiterId};
use crate::order::wire_enum;

/// What the table asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    CallWaiter,
    Bill,
    Water,
    Other,
}

wire_enum!(RequestKind { CallWaiter => "call_waiter", Bill => "bill", Water => "water", Other => "other" });

/// A request's life cycle: `open → acknowledged → resolved`, or
/// `cancelled` before it is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Open,
    Acknowledged,
    Resolved,
    Cancelled,
}

wire_enum!(RequestStatus { Open => "open", Acknowledged => "acknowledged", Resolved => "resolved", Cancelled => "cancelled" });

impl RequestStatus {
    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: RequestStatus) -> bool {
        use RequestStatus::*;
        matches!(
            (self, to),
            (Open, Acknowledged) | (Open | Acknowledged, Resolved | Cancelled)
        )
    }
}

/// A waiter request, as stored and as carried by `request.*` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaiterRequest {
    pub id: RequestId,
    pub restaurant_id: RestaurantId,
    pub kind: RequestKind,
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// The waiter serving that session, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiter_id: Option<WaiterId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub status: RequestStatus,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WaiterRequest {
    /// The roles a request's events are for.
    pub const ROLES: [Role; 3] = [Role::Owner, Role::Waiter, Role::Customer];

    /// Who sees this request: owners; waiters only if it is theirs (or
    /// nobody's); customers only of the table session that asked.
    pub fn audience(&self) -> Audience {
        Audience {
            roles: WaiterRequest::ROLES.to_vec(),
            session_id: self.session_id.clone(),
            waiter_id: self.waiter_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RequestStatus::*;

    #[test]
    fn requests_resolve_or_cancel_once() {
        assert!(Open.can_become(Acknowledged));
        assert!(Acknowledged.can_become(Resolved));
        assert!(Open.can_become(Cancelled));
        assert!(!Resolved.can_become(Open));
        assert!(!Cancelled.can_become(Resolved));
        assert!(!Acknowledged.can_become(Acknowledged));
    }
}
