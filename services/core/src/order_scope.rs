//! Which orders a viewer may list: the delivery rule ([`Scope`]) applied
//! to orders, as a condition on an order's table session and waiter, so
//! the store can turn it into SQL. It never disagrees with
//! [`Viewer::may_see`] on an order's audience (tested below).

use crate::audience::{Role, Scope};
use crate::ids::{SessionId, WaiterId};
use crate::order::Order;

/// Which orders a viewer may see (the store turns it into SQL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderScope {
    All,
    /// Orders of this waiter or of none (`None`: of none only).
    WaiterOrUnassigned(Option<WaiterId>),
    /// Orders of this table session.
    Session(SessionId),
    Nothing,
}

impl OrderScope {
    /// Whether an order of this table session and waiter is visible.
    pub fn admits(&self, session: Option<&SessionId>, waiter: Option<&WaiterId>) -> bool {
        match self {
            OrderScope::All => true,
            OrderScope::WaiterOrUnassigned(own) => waiter.is_none() || waiter == own.as_ref(),
            OrderScope::Session(own) => session == Some(own),
            OrderScope::Nothing => false,
        }
    }
}

impl Scope {
    /// The role this scope needs an audience to name, if any.
    fn role(&self) -> Option<Role> {
        match self {
            Scope::Everything => None,
            Scope::Kitchen => Some(Role::Kitchen),
            Scope::Waiter(_) => Some(Role::Waiter),
            Scope::Customer(_) => Some(Role::Customer),
        }
    }

    /// The orders visible, as a condition on an order's table session and
    /// waiter (every order's audience is [`Order::ROLES`] with those two).
    pub fn orders(&self) -> OrderScope {
        if self.role().is_some_and(|r| !Order::ROLES.contains(&r)) {
            return OrderScope::Nothing;
        }
        match self {
            Scope::Waiter(own) => OrderScope::WaiterOrUnassigned(own.clone()),
            Scope::Customer(Some(session)) => OrderScope::Session(session.clone()),
            Scope::Customer(None) => OrderScope::Nothing,
            Scope::Everything | Scope::Kitchen => OrderScope::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::tests::{order_audience, viewer};

    #[test]
    fn the_order_filter_and_the_delivery_rule_never_disagree() {
        let ids = [None, Some("a"), Some("b")];
        let mut viewers = vec![];
        for role in Role::ALL {
            for waiter in ids {
                for session in ids {
                    viewers.push(viewer(role, waiter, session));
                }
            }
        }
        for v in &viewers {
            let orders = v.scope().orders();
            for session in ids {
                for waiter in ids {
                    let audience = order_audience(session, waiter);
                    let (s, w) = (audience.session_id.as_ref(), audience.waiter_id.as_ref());
                    assert_eq!(
                        orders.admits(s, w),
                        v.may_see(&audience),
                        "{v:?} on an order of session {session:?}, waiter {waiter:?}"
                    );
                }
            }
        }
    }
}
