//! Orders, their items, and the two state machines (docs/protocol.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audience::{Audience, Role};
use crate::ids::{ItemId, OrderId, RestaurantId, SessionId, WaiterId};

/// Where an order came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A point-of-sale terminal.
    Pos,
    /// The customer's QR-code menu at the table.
    Qr,
    /// A waiter's handheld.
    Waiter,
    /// A self-order kiosk.
    Kiosk,
    /// Online or delivery-platform order.
    Online,
    /// Taken on the phone.
    Phone,
}

macro_rules! wire_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(Channel { Pos => "pos", Qr => "qr", Waiter => "waiter", Kiosk => "kiosk", Online => "online", Phone => "phone" });

/// An order's life cycle:
/// `new → accepted → in_progress → ready → served → paid`,
/// `cancelled` before ready, `rejected` from new.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    New,
    Accepted,
    InProgress,
    Ready,
    Served,
    Paid,
    Cancelled,
    Rejected,
}

wire_enum!(OrderStatus {
    New => "new", Accepted => "accepted", InProgress => "in_progress", Ready => "ready",
    Served => "served", Paid => "paid", Cancelled => "cancelled", Rejected => "rejected",
});

impl OrderStatus {
    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (New, Accepted)
                | (Accepted, InProgress)
                | (Accepted | InProgress, Ready)
                | (Ready, Served)
                | (Served, Paid)
                | (New | Accepted | InProgress, Cancelled)
                | (New, Rejected)
        )
    }

    /// Still on its way through the restaurant (shown by `state=open`).
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            OrderStatus::Paid | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }

    /// The kitchen works on it: item changes are allowed.
    pub fn in_kitchen(self) -> bool {
        matches!(self, OrderStatus::Accepted | OrderStatus::InProgress)
    }
}

/// An item's life cycle: `queued → cooking → ready → served`, `cancelled`
/// while queued or cooking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Queued,
    Cooking,
    Ready,
    Served,
    Cancelled,
}

wire_enum!(ItemStatus { Queued => "queued", Cooking => "cooking", Ready => "ready", Served => "served", Cancelled => "cancelled" });

impl ItemStatus {
    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: ItemStatus) -> bool {
        use ItemStatus::*;
        matches!(
            (self, to),
            (Queued, Cooking) | (Cooking, Ready) | (Ready, Served) | (Queued | Cooking, Cancelled)
        )
    }
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderItem {
    pub id: ItemId,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub status: ItemStatus,
}

/// An order with its items: the resource every order event carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub restaurant_id: RestaurantId,
    /// The number a guest or a cook says out loud: per restaurant, rolling
    /// 1..=9999 in the order orders were created, then 1 again.
    #[schema(minimum = 1, maximum = 9999)]
    pub number: i32,
    pub status: OrderStatus,
    /// Bumped by every change; send it back in `If-Match` to update safely.
    pub version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiter_id: Option<WaiterId>,
    pub channel: Channel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Why it was cancelled or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub items: Vec<OrderItem>,
    /// Sum of `quantity × unit_price_cents` over items not cancelled.
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Highest order number; the next order after it is number 1 again.
pub const MAX_ORDER_NUMBER: i32 = 9_999;

impl Order {
    /// The roles an order's events are for.
    pub const ROLES: [Role; 4] = [Role::Owner, Role::Kitchen, Role::Waiter, Role::Customer];

    /// Who sees this order's events: every role; customers only of its
    /// table session; waiters only if it is theirs (or nobody's).
    pub fn audience(&self) -> Audience {
        Audience {
            roles: Order::ROLES.to_vec(),
            session_id: self.session_id.clone(),
            waiter_id: self.waiter_id.clone(),
        }
    }

    /// The item `id`, if the order has it.
    pub fn item_mut(&mut self, id: ItemId) -> Option<&mut OrderItem> {
        self.items.iter_mut().find(|i| i.id == id)
    }

    /// The total of the items still live (not cancelled).
    pub fn compute_total(items: &[OrderItem]) -> i64 {
        items
            .iter()
            .filter(|i| i.status != ItemStatus::Cancelled)
            .map(|i| i64::from(i.quantity) * i.unit_price_cents)
            .sum()
    }

    /// True when the kitchen has finished: every live item is ready (or
    /// already served), and at least one item is live.
    pub fn all_live_items_ready(&self) -> bool {
        let mut live = self
            .items
            .iter()
            .filter(|i| i.status != ItemStatus::Cancelled)
            .peekable();
        live.peek().is_some()
            && live.all(|i| matches!(i.status, ItemStatus::Ready | ItemStatus::Served))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    const ALL: [OrderStatus; 8] = [
        New, Accepted, InProgress, Ready, Served, Paid, Cancelled, Rejected,
    ];

    #[test]
    fn happy_path_is_legal() {
        let path = [New, Accepted, InProgress, Ready, Served, Paid];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{:?} → {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn cancel_only_before_ready_and_reject_only_from_new() {
        for from in ALL {
            assert_eq!(
                from.can_become(Cancelled),
                matches!(from, New | Accepted | InProgress)
            );
            assert_eq!(from.can_become(Rejected), from == New);
        }
    }

    #[test]
    fn terminal_states_go_nowhere() {
        for from in [Paid, Cancelled, Rejected] {
            assert!(ALL.iter().all(|to| !from.can_become(*to)));
        }
    }

    #[test]
    fn no_status_goes_back_or_stays() {
        for s in ALL {
            assert!(!s.can_become(s));
        }
        assert!(!Ready.can_become(InProgress));
        assert!(!Served.can_become(Ready));
    }

    #[test]
    fn items_follow_their_own_machine() {
        use ItemStatus as I;
        assert!(I::Queued.can_become(I::Cooking));
        assert!(I::Cooking.can_become(I::Ready));
        assert!(I::Ready.can_become(I::Served));
        assert!(!I::Queued.can_become(I::Served));
        assert!(!I::Ready.can_become(I::Cancelled));
        assert!(!I::Cancelled.can_become(I::Queued));
    }

    #[test]
    fn wire_names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
