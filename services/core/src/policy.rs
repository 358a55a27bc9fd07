//! Who may do what (the matrix in docs/protocol.md).

use crate::audience::Role;

/// A command or query of the public API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    CreateRestaurant,
    ReadRestaurant,
    CreateOrder,
    ReadOrders,
    ChangeOrderStatus,
    ChangeItemStatus,
    CreateRequest,
    ChangeRequestStatus,
    TransferSessions,
    Notify,
    Invalidate,
    PublishCustom,
    /// Open a stream (SSE, WebSocket, long-poll) of a restaurant's events.
    Subscribe,
}

impl Action {
    /// The action writes to a restaurant (and counts against its command
    /// rate), rather than reading it.
    pub fn is_command(self) -> bool {
        !matches!(
            self,
            Action::ReadRestaurant | Action::ReadOrders | Action::Subscribe
        )
    }
}

/// Whether `role` may perform `action` at all. Per-resource limits (a
/// customer acts only for its own session, a waiter transfers only its own
/// tables) are checked by the handlers on top of this.
pub fn allowed(role: Role, action: Action) -> bool {
    use Action::*;
    use Role::*;
    match action {
        CreateRestaurant => role == Admin,
        ReadRestaurant | ReadOrders | Subscribe | ChangeOrderStatus => true,
        CreateOrder | CreateRequest | ChangeRequestStatus => role != Kitchen,
        ChangeItemStatus | Notify => role != Customer,
        TransferSessions => matches!(role, Admin | Owner | Service | Waiter),
        Invalidate | PublishCustom => matches!(role, Admin | Owner | Service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Role::*;

    #[test]
    fn the_matrix_holds() {
        let cases = [
            (CreateRestaurant, vec![Admin]),
            (CreateOrder, vec![Admin, Owner, Waiter, Customer, Service]),
            (
                ChangeOrderStatus,
                vec![Admin, Owner, Kitchen, Waiter, Customer, Service],
            ),
            (
                ChangeItemStatus,
                vec![Admin, Owner, Kitchen, Waiter, Service],
            ),
            (CreateRequest, vec![Admin, Owner, Waiter, Customer, Service]),
            (
                ChangeRequestStatus,
                vec![Admin, Owner, Waiter, Customer, Service],
            ),
            (TransferSessions, vec![Admin, Owner, Waiter, Service]),
            (Notify, vec![Admin, Owner, Kitchen, Waiter, Service]),
            (Invalidate, vec![Admin, Owner, Service]),
            (PublishCustom, vec![Admin, Owner, Service]),
            (Subscribe, Role::ALL.to_vec()),
        ];
        for (action, permitted) in cases {
            for role in Role::ALL {
                assert_eq!(
                    allowed(role, action),
                    permitted.contains(&role),
                    "{role:?} {action:?}"
                );
            }
        }
    }
}
