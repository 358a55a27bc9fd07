//! Orders: create, read (consistent snapshots), status and item changes.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ordercast_core::event::EventDraft;
use ordercast_core::order::{Channel, ItemStatus, MAX_ORDER_NUMBER, Order, OrderItem, OrderStatus};
use ordercast_core::{Envelope, EventType, ItemId, OrderId, RestaurantId, SessionId, WaiterId};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::events::{Stamp, append, seal};
use crate::group::GroupWrite;
use crate::idempotency::{self, IdempotencyKey, Outcome};
use crate::rows::{ItemRow, ORDER_COLUMNS, OrderRow};
use crate::{Created, Pending, Store, StoreError};

/// An order to create (validated by the caller).
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub table: Option<String>,
    pub session_id: Option<SessionId>,
    pub waiter_id: Option<WaiterId>,
    pub channel: Channel,
    pub notes: Option<String>,
    pub items: Vec<NewItem>,
}

/// One line of a new order.
#[derive(Clone, Debug)]
pub struct NewItem {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub station: Option<String>,
    pub notes: Option<String>,
}

pub(crate) fn order_event(order: &Order, kind: EventType) -> EventDraft {
    EventDraft::new(
        kind,
        order.audience(),
        serde_json::to_value(order).expect("orders serialize"),
    )
}

impl Store {
    /// Creates an order and its `order.created` event in one autocommit
    /// statement, shared with the orders created at the same moment (see
    /// the `group` module): when this returns, the write is committed. Take
    /// the publisher's ticket before calling it.
    #[tracing::instrument(name = "INSERT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn create_order(
        &self,
        restaurant: RestaurantId,
        new: NewOrder,
        trace: Option<&str>,
    ) -> Result<Created<Order>, StoreError> {
        let write = OrderWrite {
            order: build_order(restaurant, new),
            trace: trace.map(str::to_owned),
            ts: Envelope::now(),
        };
        self.writers
            .orders(&self.pool, self.timeout)
            .write(write)
            .await
    }

    /// [`Store::create_order`] under an idempotency key: claims the key and
    /// writes in one transaction; a retry of a committed command gets the
    /// first answer.
    #[tracing::instrument(name = "INSERT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn create_order_once(
        &self,
        restaurant: RestaurantId,
        new: NewOrder,
        key: IdempotencyKey,
        trace: Option<&str>,
    ) -> Result<Outcome<Order>, StoreError> {
        let mut tx = self.begin().await?;
        if !idempotency::claim(&mut tx, &key).await? {
            drop(tx);
            return Ok(Outcome::Replayed(self.replay(&key).await?));
        }
        let mut order = build_order(restaurant, new);
        let stamp = Stamp::now(restaurant, trace);
        let inserted = insert_order(&mut tx, &order, stamp).await?;
        order.number = inserted.number;
        let events = inserted.events;
        Ok(Outcome::Fresh(Pending::new(tx, order, events, Some(key))))
    }

    /// One order with its items.
    pub async fn order(&self, restaurant: RestaurantId, id: OrderId) -> Result<Order, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_order(&mut conn, restaurant, id, false).await
    }

    /// Moves an order to `to`. `if_match` is the version the caller last saw.
    #[tracing::instrument(name = "UPDATE orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn set_order_status(
        &self,
        restaurant: RestaurantId,
        id: OrderId,
        to: OrderStatus,
        reason: Option<String>,
        if_match: Option<i32>,
        trace: Option<&str>,
    ) -> Result<Pending<Order>, StoreError> {
        let mut tx = self.begin().await?;
        let mut order = load_order(&mut tx, restaurant, id, true).await?;
        if let Some(expected) = if_match
            && expected != order.version
        {
            return Err(StoreError::VersionMismatch {
                version: order.version,
                current: serde_json::to_value(&order).expect("orders serialize"),
            });
        }
        if !order.status.can_become(to) {
            let message = format!("an order that is {} cannot become {to}", order.status);
            return Err(StoreError::illegal(message, &order));
        }
        let previous = order.status;
        order.status = to;
        if matches!(to, OrderStatus::Cancelled | OrderStatus::Rejected) {
            order.reason = reason;
        }
        touch(&mut order);
        save_order(&mut tx, &order).await?;
        let mut draft = order_event(&order, EventType::OrderStatusChanged);
        draft.previous_status = Some(previous.to_string());
        let events = append(&mut tx, restaurant, trace, vec![draft]).await?;
        Ok(Pending::new(tx, order, events, None))
    }

    /// Moves one item to `to`. When every live item is then ready, the order
    /// becomes `ready` in the same transaction: two events, in that order.
    #[tracing::instrument(name = "UPDATE orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn set_item_status(
        &self,
        restaurant: RestaurantId,
        order_id: OrderId,
        item_id: ItemId,
        to: ItemStatus,
        trace: Option<&str>,
    ) -> Result<Pending<Order>, StoreError> {
        let mut tx = self.begin().await?;
        let mut order = load_order(&mut tx, restaurant, order_id, true).await?;
        let order_allows = match to {
            ItemStatus::Served => {
                order.status.in_kitchen()
                    || matches!(order.status, OrderStatus::Ready | OrderStatus::Served)
            }
            _ => order.status.in_kitchen(),
        };
        let current = order
            .items
            .iter()
            .find(|i| i.id == item_id)
            .ok_or(StoreError::NotFound("item"))?
            .status;
        if !order_allows || !current.can_become(to) {
            let message = format!(
                "an item that is {current} cannot become {to} while its order is {}",
                order.status
            );
            return Err(StoreError::illegal(message, &order));
        }
        let item = order.item_mut(item_id).expect("found above");
        item.status = to;
        update_item(&mut tx, order_id, item).await?;
        order.total_cents = Order::compute_total(&order.items);
        touch(&mut order);
        let mut item_event = order_event(&order, EventType::OrderItemStatusChanged);
        item_event.previous_status = Some(current.to_string());
        item_event.item_id = Some(item_id);
        let mut drafts = vec![item_event];
        if order.status.in_kitchen() && order.all_live_items_ready() {
            let before = order.status;
            order.status = OrderStatus::Ready;
            touch(&mut order);
            let mut ready = order_event(&order, EventType::OrderStatusChanged);
            ready.previous_status = Some(before.to_string());
            drafts.push(ready);
        }
        // One write of the final row; each event carries its own version.
        save_order(&mut tx, &order).await?;
        let events: Vec<Envelope> = append(&mut tx, restaurant, trace, drafts).await?;
        Ok(Pending::new(tx, order, events, None))
    }
}

fn build_order(restaurant: RestaurantId, new: NewOrder) -> Order {
    let now = Envelope::now();
    let items: Vec<OrderItem> = new
        .items
        .into_iter()
        .map(|i| OrderItem {
            id: ItemId::new(),
            sku: i.sku,
            name: i.name,
            quantity: i.quantity,
            unit_price_cents: i.unit_price_cents,
            station: i.station,
            notes: i.notes,
            status: ItemStatus::Queued,
        })
        .collect();
    Order {
        id: OrderId::new(),
        restaurant_id: restaurant,
        // Given by the statement that writes it.
        number: 0,
        status: OrderStatus::New,
        version: 1,
        table: new.table,
        session_id: new.session_id,
        waiter_id: new.waiter_id,
        channel: new.channel,
        notes: new.notes,
        reason: None,
        total_cents: Order::compute_total(&items),
        items,
        created_at: now,
        updated_at: now,
    }
}

/// Writes new orders (numbering them: see `Order::number`), their items, their `order.created` events and outbox
/// rows in one statement, each row stamped with its restaurant's region and
/// reach (what replication filters on): `b` is one row per order, `i` one per item (with
/// its order's ordinal). It may take seqs of many restaurants; it locks
/// their rows in id order, and no other command waits for anything once it
/// holds its restaurant's row, so statements from any number of replicas
/// never deadlock with each other or with other commands. Orders of an
/// unknown restaurant match no `s` row and are not written.
const INSERT_ORDERS: &str = "
    WITH b AS (
        SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[],
                             $9::text[], $10::bigint[], $11::timestamptz[], $12::timestamptz[],
                             $13::text[], $14::jsonb[], $15::jsonb[])
            WITH ORDINALITY AS b(restaurant_id, id, table_label, session_id, waiter_id, channel,
                                 notes, total_cents, created_at, event_at, trace, audience, data, ord)
    ), n AS (
        SELECT restaurant_id, count(*) AS n FROM b GROUP BY restaurant_id
    ), locked AS MATERIALIZED (
        SELECT r.id FROM restaurants r JOIN n ON n.restaurant_id = r.id ORDER BY r.id FOR UPDATE OF r
    ), s AS (
        UPDATE restaurants r SET last_seq = r.last_seq + n.n, orders_created = r.orders_created + n.n
        FROM n, locked WHERE r.id = n.restaurant_id AND locked.id = r.id
        RETURNING r.id, r.last_seq - n.n AS base, r.orders_created - n.n AS counted, r.region, r.reach
    ), r AS (
        SELECT b.*, row_number() OVER (PARTITION BY b.restaurant_id ORDER BY b.ord) AS k,
               s.base, s.counted, s.region, s.reach
        FROM b JOIN s ON s.id = b.restaurant_id
    ), q AS (
        SELECT r.*, base + k AS seq, ((counted + k - 1) % $25 + 1)::integer AS number FROM r
    ), e AS (
        INSERT INTO events (restaurant_id, seq, type, audience, data, trace, created_at, region, reach)
        SELECT restaurant_id, seq, $1, audience, jsonb_set(data, '{number}', to_jsonb(number)), trace,
               event_at, region, reach FROM q
        RETURNING restaurant_id, seq, created_at
    ), o AS (
        INSERT INTO outbox (restaurant_id, seq, created_at) SELECT * FROM e
    ), ins_order AS (
        INSERT INTO orders (id, restaurant_id, number, status, version, table_label, session_id,
                            waiter_id, channel, notes, total_cents, created_at, updated_at,
                            region, reach)
        SELECT id, restaurant_id, number, $2, 1, table_label, session_id, waiter_id, channel, notes,
               total_cents, created_at, created_at, region, reach FROM q
    ), ins_items AS (
        INSERT INTO order_items (order_id, id, position, sku, name, quantity, unit_price_cents,
                                 station, notes, status, region, reach)
        SELECT q.id, i.id, i.position, i.sku, i.name, i.quantity, i.price, i.station, i.notes, 'queued',
               q.region, q.reach
        FROM unnest($16::bigint[], $17::uuid[], $18::int[], $19::text[], $20::text[], $21::int[],
                    $22::bigint[], $23::text[], $24::text[])
             AS i(ord, id, position, sku, name, quantity, price, station, notes)
        JOIN q ON q.ord = i.ord
    )
    SELECT ord, seq, number FROM q";

/// An order as [`insert_orders`] wrote it: its number and its events.
#[derive(Debug)]
pub(crate) struct Inserted {
    pub(crate) number: i32,
    pub(crate) events: Vec<Envelope>,
}

/// Writes `orders` (each with the stamp of its event) in one statement
/// ([`INSERT_ORDERS`]); per order, its number and events, or `None` when
/// its restaurant does not exist.
pub(crate) async fn insert_orders(
    conn: &mut PgConnection,
    writes: &[(&Order, Stamp<'_>)],
) -> Result<Vec<Option<Inserted>>, StoreError> {
    static EVENT_TYPE: LazyLock<String> = LazyLock::new(|| EventType::OrderCreated.to_string());
    let orders: Vec<&Order> = writes.iter().map(|w| w.0).collect();
    let drafts: Vec<_> = orders
        .iter()
        .map(|o| order_event(o, EventType::OrderCreated))
        .collect();
    let order_col = |f: fn(&Order) -> Option<&str>| orders.iter().map(|o| f(o)).collect::<Vec<_>>();
    let items: Vec<(i64, usize, &OrderItem)> = orders
        .iter()
        .zip(1..)
        .flat_map(|(o, ord)| o.items.iter().enumerate().map(move |(p, i)| (ord, p, i)))
        .collect();
    let item_col =
        |f: fn(&OrderItem) -> Option<&str>| items.iter().map(|i| f(i.2)).collect::<Vec<_>>();
    let rows: Vec<(i64, i64, i32)> = sqlx::query_as(INSERT_ORDERS)
        .bind(EVENT_TYPE.as_str())
        .bind(OrderStatus::New.as_str())
        .bind(
            orders
                .iter()
                .map(|o| o.restaurant_id.as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(orders.iter().map(|o| o.id.as_uuid()).collect::<Vec<_>>())
        .bind(order_col(|o| o.table.as_deref()))
        .bind(order_col(|o| o.session_id.as_ref().map(SessionId::as_str)))
        .bind(order_col(|o| o.waiter_id.as_ref().map(WaiterId::as_str)))
        .bind(order_col(|o| Some(o.channel.as_str())))
        .bind(order_col(|o| o.notes.as_deref()))
        .bind(orders.iter().map(|o| o.total_cents).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.created_at).collect::<Vec<_>>())
        .bind(writes.iter().map(|w| w.1.ts).collect::<Vec<_>>())
        .bind(writes.iter().map(|w| w.1.trace).collect::<Vec<_>>())
        .bind(drafts.iter().map(|d| Json(&d.audience)).collect::<Vec<_>>())
        .bind(drafts.iter().map(|d| Json(&d.data)).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.2.id.as_uuid()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.1 as i32).collect::<Vec<_>>())
        .bind(item_col(|i| Some(i.sku.as_str())))
        .bind(item_col(|i| Some(i.name.as_str())))
        .bind(items.iter().map(|i| i.2.quantity).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| i.2.unit_price_cents)
                .collect::<Vec<_>>(),
        )
        .bind(item_col(|i| i.station.as_deref()))
        .bind(item_col(|i| i.notes.as_deref()))
        .bind(MAX_ORDER_NUMBER)
        .fetch_all(conn)
        .await?;
    let mut written = vec![None; writes.len()];
    for (ord, seq, number) in rows {
        written[ord as usize - 1] = Some((seq, number));
    }
    Ok(writes
        .iter()
        .zip(drafts)
        .zip(written)
        .map(|((write, mut draft), written)| {
            let (seq, number) = written?;
            draft.data["number"] = number.into();
            let events = seal(write.1, vec![draft], Some(seq)).ok()?;
            Some(Inserted { number, events })
        })
        .collect())
}

/// A new order for the order writer (see the `group` module).
#[derive(Debug)]
pub(crate) struct OrderWrite {
    order: Order,
    trace: Option<String>,
    /// When its event happened (taken as it was queued).
    ts: DateTime<Utc>,
}

impl GroupWrite for OrderWrite {
    type Row = Inserted;
    type Written = Created<Order>;

    async fn write_all(
        conn: &mut PgConnection,
        writes: &[Self],
    ) -> Result<Vec<Option<Inserted>>, StoreError> {
        let writes: Vec<_> = writes
            .iter()
            .map(|w| {
                let stamp = Stamp::at(w.order.restaurant_id, w.trace.as_deref(), w.ts);
                (&w.order, stamp)
            })
            .collect();
        insert_orders(conn, &writes).await
    }

    fn written(mut self, inserted: Inserted) -> Created<Order> {
        self.order.number = inserted.number;
        Created {
            value: self.order,
            events: inserted.events,
        }
    }
}

/// Writes one new order (see [`insert_orders`]).
pub(crate) async fn insert_order(
    conn: &mut PgConnection,
    order: &Order,
    stamp: Stamp<'_>,
) -> Result<Inserted, StoreError> {
    let mut written = insert_orders(conn, &[(order, stamp)]).await?;
    written
        .pop()
        .flatten()
        .ok_or(StoreError::NotFound("restaurant"))
}

/// Records a change in memory: a new version and update time.
fn touch(order: &mut Order) {
    order.version += 1;
    order.updated_at = Envelope::now();
}

/// Writes the order's status, reason, total, version and update time.
async fn save_order(conn: &mut PgConnection, order: &Order) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE orders SET status = $2, reason = $3, total_cents = $4, version = $5, updated_at = $6
         WHERE id = $1",
    )
    .bind(order.id.as_uuid())
    .bind(order.status.as_str())
    .bind(&order.reason)
    .bind(order.total_cents)
    .bind(order.version)
    .bind(order.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn update_item(
    conn: &mut PgConnection,
    order: OrderId,
    item: &OrderItem,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE order_items SET status = $3 WHERE order_id = $1 AND id = $2")
        .bind(order.as_uuid())
        .bind(item.id.as_uuid())
        .bind(item.status.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn load_order(
    conn: &mut PgConnection,
    restaurant: RestaurantId,
    id: OrderId,
    for_update: bool,
) -> Result<Order, StoreError> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE restaurant_id = $1 AND id = $2 {lock}"
    )))
    .bind(restaurant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(StoreError::NotFound("order"))?;
    let mut orders = with_items(conn, vec![row]).await?;
    Ok(orders.pop().expect("one row in, one order out"))
}

/// Attaches items to order rows, keeping the rows' order.
pub(crate) async fn with_items(
    conn: &mut PgConnection,
    rows: Vec<OrderRow>,
) -> Result<Vec<Order>, StoreError> {
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT order_id, id, sku, name, quantity, unit_price_cents, station, notes, status
         FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, position",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut by_order: std::collections::HashMap<uuid::Uuid, Vec<OrderItem>> =
        std::collections::HashMap::with_capacity(rows.len());
    for item in items {
        by_order
            .entry(item.order_id)
            .or_default()
            .push(item.into_item()?);
    }
    rows.into_iter()
        .map(|row| {
            let items = by_order.remove(&row.id).unwrap_or_default();
            row.into_order(items)
        })
        .collect()
}
