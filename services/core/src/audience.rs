//! Who may see an event (docs/protocol.md, "Delivery rule").

use serde::{Deserialize, Serialize};

use crate::ids::{SessionId, WaiterId};

/// A token's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Chain-wide (or platform-wide) administrator.
    Admin,
    /// A restaurant's owner or manager: sees everything of its restaurants.
    Owner,
    /// Kitchen display (KDS) and expo screens.
    Kitchen,
    /// A waiter's handheld.
    Waiter,
    /// A customer's table screen, bound to one table session.
    Customer,
    /// POS terminals and integrations.
    Service,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Owner,
        Role::Kitchen,
        Role::Waiter,
        Role::Customer,
        Role::Service,
    ];

    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Kitchen => "kitchen",
            Role::Waiter => "waiter",
            Role::Customer => "customer",
            Role::Service => "service",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// The audience of an event: which roles, and optionally which table
/// session or waiter it concerns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Roles the event is meant for. Owners, admins and services see every
    /// event regardless.
    #[schema(min_items = 1, max_items = 6)]
    pub roles: Vec<Role>,
    /// The customer table session the event belongs to; customers see only
    /// events naming their own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// The waiter the event is for; when set, other waiters do not see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiter_id: Option<WaiterId>,
}

impl Audience {
    /// An audience of the given roles, for no particular session or waiter.
    pub fn roles(roles: &[Role]) -> Self {
        Audience {
            roles: roles.to_vec(),
            ..Audience::default()
        }
    }

    /// Whether the audience names `role`.
    pub fn includes(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The identity events are filtered for: a role and, for waiters and
/// customers, who exactly they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// The viewer's role.
    pub role: Role,
    /// A waiter's own id.
    pub waiter_id: Option<WaiterId>,
    /// A customer's own table session.
    pub session_id: Option<SessionId>,
}

impl Viewer {
    /// What this viewer may see: the one delivery rule, as data.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin | Role::Owner | Role::Service => Scope::Everything,
            Role::Kitchen => Scope::Kitchen,
            Role::Waiter => Scope::Waiter(self.waiter_id.clone()),
            Role::Customer => Scope::Customer(self.session_id.clone()),
        }
    }

    /// Whether an event of `audience` is for this viewer.
    pub fn may_see(&self, audience: &Audience) -> bool {
        self.scope().admits(audience)
    }
}

/// The delivery rule for one viewer: owner, admin and service
/// see all; kitchen sees the kitchen audience; a waiter sees the waiter
/// audience unless the event names another waiter; a customer sees only
/// events of its own table session. Both the in-memory check
/// ([`Scope::admits`]) and the store's filter of orders ([`Scope::orders`],
/// in `order_scope.rs`) come from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Everything,
    Kitchen,
    /// A waiter, and its own id (a token without one sees only events that
    /// name no waiter).
    Waiter(Option<WaiterId>),
    /// A customer, and its table session (a token without one sees nothing).
    Customer(Option<SessionId>),
}

impl Scope {
    /// Whether an event of `audience` is visible.
    pub fn admits(&self, audience: &Audience) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Kitchen => audience.includes(Role::Kitchen),
            Scope::Waiter(own) => {
                audience.includes(Role::Waiter)
                    && (audience.waiter_id.is_none() || audience.waiter_id == *own)
            }
            Scope::Customer(own) => {
                audience.includes(Role::Customer)
                    && audience.session_id.is_some()
                    && audience.session_id == *own
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn viewer(role: Role, waiter: Option<&str>, session: Option<&str>) -> Viewer {
        Viewer {
            role,
            waiter_id: waiter.map(|w| w.parse().unwrap()),
            session_id: session.map(|s| s.parse().unwrap()),
        }
    }

    /// The audience of an order of this table session and waiter.
    pub(crate) fn order_audience(session: Option<&str>, waiter: Option<&str>) -> Audience {
        Audience {
            roles: crate::order::Order::ROLES.to_vec(),
            session_id: session.map(|s| s.parse().unwrap()),
            waiter_id: waiter.map(|w| w.parse().unwrap()),
        }
    }

    #[test]
    fn owners_admins_and_services_see_everything() {
        let secret = Audience::roles(&[Role::Kitchen]);
        for role in [Role::Owner, Role::Admin, Role::Service] {
            assert!(viewer(role, None, None).may_see(&secret));
        }
    }

    #[test]
    fn kitchen_sees_only_kitchen_audience() {
        let kitchen = viewer(Role::Kitchen, None, None);
        assert!(kitchen.may_see(&order_audience(Some("s1"), Some("w1"))));
        assert!(!kitchen.may_see(&Audience::roles(&[Role::Waiter, Role::Owner])));
    }

    #[test]
    fn waiter_sees_untargeted_and_own_events_only() {
        let w1 = viewer(Role::Waiter, Some("w1"), None);
        assert!(w1.may_see(&order_audience(None, None)));
        assert!(w1.may_see(&order_audience(None, Some("w1"))));
        assert!(!w1.may_see(&order_audience(None, Some("w2"))));
        assert!(!w1.may_see(&Audience::roles(&[Role::Kitchen])));
    }

    #[test]
    fn customer_sees_only_its_own_session() {
        let s1 = viewer(Role::Customer, None, Some("s1"));
        assert!(s1.may_see(&order_audience(Some("s1"), None)));
        assert!(!s1.may_see(&order_audience(Some("s2"), None)));
        // An event naming no session is not for any one customer.
        assert!(!s1.may_see(&order_audience(None, None)));
        let mut staff_only = order_audience(Some("s1"), None);
        staff_only.roles.retain(|r| *r != Role::Customer);
        assert!(!s1.may_see(&staff_only));
    }
}
