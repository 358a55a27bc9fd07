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

/// Longest human message a request carries, in characters.
pub const MAX_REQUEST_MESSAGE_CHARS: usize = 200;

/// A request's life cycle (docs/protocol.md, "Request states"):
/// `open → acknowledged → in_progress ↔ on_hold`, and `resolved` or
/// `cancelled` at the end. A waiter may resolve a request at once (the
/// water is on the table) but starts work only on an acknowledged one, as
/// a kitchen accepts an order before working on it; work on hold resumes
/// before it is resolved, so the table sees it move again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Open,
    Acknowledged,
    InProgress,
    OnHold,
    Resolved,
    Cancelled,
}

wire_enum!(RequestStatus {
    Open => "open", Acknowledged => "acknowledged", InProgress => "in_progress",
    OnHold => "on_hold", Resolved => "resolved", Cancelled => "cancelled",
});

impl RequestStatus {
    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: RequestStatus) -> bool {
        use RequestStatus::*;
        matches!(
            (self, to),
            (Open, Acknowledged)
                | (Acknowledged | OnHold, InProgress)
                | (InProgress, OnHold)
                | (Open | Acknowledged | InProgress, Resolved)
                | (Open | Acknowledged | InProgress | OnHold, Cancelled)
        )
    }

    /// Not yet resolved or cancelled: a waiter still has it to do.
    pub fn is_open(self) -> bool {
        !matches!(self, RequestStatus::Resolved | RequestStatus::Cancelled)
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
    /// The latest human message (at most 200 characters): the guest's
    /// or waiter's at creation, replaced by one given with a status change
    /// ("coming in 5 minutes").
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

    use super::RequestStatus;

    const ALL: [RequestStatus; 6] = [Open, Acknowledged, InProgress, OnHold, Resolved, Cancelled];

    #[test]
    fn the_request_workflow_holds() {
        let legal = [
            (Open, Acknowledged),
            (Open, Resolved),
            (Open, Cancelled),
            (Acknowledged, InProgress),
            (Acknowledged, Resolved),
            (Acknowledged, Cancelled),
            (InProgress, OnHold),
            (InProgress, Resolved),
            (InProgress, Cancelled),
            (OnHold, InProgress),
            (OnHold, Cancelled),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn only_resolved_and_cancelled_requests_are_done() {
        let open: Vec<_> = ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(open, [Open, Acknowledged, InProgress, OnHold]);
    }
}
