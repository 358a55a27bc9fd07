//! Snapshots: the orders a viewer may see, a page at a time, each page
//! read as of exactly one seq.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ordercast_core::order::Order;
use ordercast_core::order_scope::OrderScope;
use ordercast_core::{OrderId, RestaurantId, Seq, SessionId, Viewer, WaiterId};

use crate::orders::with_items;
use crate::rows::{ORDER_COLUMNS, OrderRow};
use crate::{Store, StoreError};

/// Most orders one page may hold (and the default of a WebSocket `sync`).
pub const SNAPSHOT_LIMIT: usize = 1_000;
/// Most bytes of orders (as JSON) one page may hold, whatever its limit:
/// large orders make short pages, not large ones.
pub const SNAPSHOT_MAX_BYTES: usize = 2 * 1024 * 1024;

/// Where a page of a snapshot starts: after the order of this creation time
/// and id (pages go from the newest orders to the oldest). Written as
/// `<microseconds since the epoch>_<order id>`; clients treat it as opaque.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCursor {
    created_at: DateTime<Utc>,
    id: OrderId,
}

impl OrderCursor {
    fn of(order: &Order) -> OrderCursor {
        OrderCursor {
            created_at: order.created_at,
            id: order.id,
        }
    }
}

impl fmt::Display for OrderCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at.timestamp_micros(), self.id)
    }
}

impl FromStr for OrderCursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("{s:?} is not a cursor this API returned");
        let (micros, id) = s.split_once('_').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(OrderCursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// Which page of a snapshot to read, and its bounds.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Continue after this order (`None`: the newest orders).
    pub after: Option<OrderCursor>,
    /// Most orders (at most [`SNAPSHOT_LIMIT`]).
    pub limit: usize,
    /// Most bytes of the orders as JSON; the page ends before the order
    /// that would pass it (a page holds at least one order).
    pub max_bytes: usize,
}

/// One page of the orders a viewer may see, as of exactly one seq.
#[derive(Clone, Debug)]
pub struct OrdersSnapshot {
    /// The last event the page reflects: stream from the first page's seq
    /// for no gap and no duplicate.
    pub seq: Seq,
    /// Oldest first.
    pub orders: Vec<Order>,
    /// Where the next (older) page starts, when more orders matched.
    pub next: Option<OrderCursor>,
}

impl Store {
    /// A page of the restaurant's orders `viewer` may see (only those still
    /// in progress with `open_only`) and the seq they reflect, read in one
    /// REPEATABLE READ snapshot: stream from that seq for no gap and no
    /// duplicate. The one snapshot of every transport (HTTP and WebSocket
    /// `sync`); its filter is the delivery rule's
    /// ([`Scope::orders`](ordercast_core::audience::Scope::orders)).
    /// Following `next` walks every order that existed at the first page
    /// once: pages are keyed by creation time and id, which never change.
    pub async fn visible_orders(
        &self,
        restaurant: RestaurantId,
        viewer: &Viewer,
        open_only: bool,
        page: Page,
    ) -> Result<OrdersSnapshot, StoreError> {
        let scope = viewer.scope().orders();
        let (session, waiter) = match &scope {
            OrderScope::All | OrderScope::Nothing => (None, None),
            OrderScope::WaiterOrUnassigned(own) => (None, Some(own.as_ref())),
            OrderScope::Session(own) => (Some(own), None),
        };
        let limit = page.limit.clamp(1, SNAPSHOT_LIMIT);
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM restaurants WHERE id = $1")
            .bind(restaurant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        let seq = seq.ok_or(StoreError::NotFound("restaurant"))?;
        // $3: the session an order must belong to, if any; $4: whether only
        // unassigned orders and those of waiter $5 pass; $8, $9: the cursor.
        let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders
             WHERE restaurant_id = $1 AND $6
               AND (NOT $2 OR status NOT IN ('paid', 'cancelled', 'rejected'))
               AND ($3::text IS NULL OR session_id = $3)
               AND (NOT $4 OR waiter_id IS NULL OR waiter_id = $5)
               AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9))
             ORDER BY created_at DESC, id DESC LIMIT $7"
        )))
        .bind(restaurant.as_uuid())
        .bind(open_only)
        .bind(session.map(SessionId::as_str))
        .bind(waiter.is_some())
        .bind(waiter.flatten().map(WaiterId::as_str))
        .bind(scope != OrderScope::Nothing)
        .bind(limit as i64 + 1)
        .bind(page.after.map(|c| c.created_at))
        .bind(page.after.map(|c| c.id.as_uuid()))
        .fetch_all(&mut *tx)
        .await?;
        let more = rows.len() > limit;
        let rows = rows.into_iter().take(limit).collect();
        let orders = with_items(&mut tx, rows).await?;
        tx.commit().await?;
        let (mut orders, next) = within_bytes(orders, page.max_bytes, more);
        orders.reverse();
        Ok(OrdersSnapshot {
            seq: Seq::from_i64(seq),
            orders,
            next,
        })
    }
}

/// The leading orders (newest first) that fit in `max_bytes` of JSON, at
/// least one, and the cursor after the last of them when any order was left
/// out (or `more` matched beyond them).
fn within_bytes(
    mut orders: Vec<Order>,
    max_bytes: usize,
    more: bool,
) -> (Vec<Order>, Option<OrderCursor>) {
    let mut used = 0;
    let fit = orders
        .iter()
        .take_while(|order| {
            let size = serde_json::to_vec(order).map_or(usize::MAX, |v| v.len());
            used = size.saturating_add(used);
            used <= max_bytes
        })
        .count()
        .max(1);
    let cut = fit < orders.len();
    orders.truncate(fit);
    let next = match cut || more {
        true => orders.last().map(OrderCursor::of),
        false => None,
    };
    (orders, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let cursor = OrderCursor {
            created_at: DateTime::from_timestamp_micros(1_764_900_000_123_456).unwrap(),
            id: OrderId::new(),
        };
        assert_eq!(cursor.to_string().parse(), Ok(cursor));
        assert!("12_not-an-id".parse::<OrderCursor>().is_err());
        assert!("".parse::<OrderCursor>().is_err());
    }
}
