//! What the tests start from: a store on a fresh database, restaurants and
//! orders, and a few ways of looking at what was written.

use ordercast_core::order::{Channel, Order, OrderStatus};
use ordercast_core::request::{RequestKind, WaiterRequest};
use ordercast_core::{Envelope, OrderId, RestaurantId, SessionId, WaiterId};
use ordercast_store::{
    DbSettings, IdempotencyKey, NewItem, NewOrder, NewRequest, NewRestaurant, Outcome, Replay,
    Store, StoreError,
};

/// Counts the restaurant's orders (with [`count`]).
pub(crate) const ORDERS: &str = "SELECT count(*) FROM orders WHERE restaurant_id = $1";

/// A store on a new, migrated database of its own.
pub(crate) async fn store() -> Store {
    let [store] = stores().await;
    store
}

/// `N` stores on one new database, as `N` replicas of the api would be.
pub(crate) async fn stores<const N: usize>() -> [Store; N] {
    let url = ordercast_testkit::fresh_database().await;
    let settings = DbSettings::from_url(&url).expect("a valid database URL");
    std::array::from_fn(|_| Store::connect_lazy(&settings))
}

/// A new restaurant with no events yet.
pub(crate) async fn restaurant(store: &Store) -> RestaurantId {
    let id = RestaurantId::new();
    store
        .create_restaurant(NewRestaurant {
            id,
            name: "Trattoria Test".into(),
            chain_id: None,
            region: Default::default(),
            reach: Default::default(),
        })
        .await
        .expect("create restaurant");
    id
}

/// One line of an order.
pub(crate) fn item(sku: &str, quantity: i32, unit_price_cents: i64) -> NewItem {
    NewItem {
        sku: sku.into(),
        name: format!("dish {sku}"),
        quantity,
        unit_price_cents,
        station: Some("grill".into()),
        notes: None,
    }
}

/// An order at table 7 with `items`.
pub(crate) fn order_of(items: Vec<NewItem>) -> NewOrder {
    NewOrder {
        table: Some("7".into()),
        session_id: None,
        waiter_id: None,
        channel: Channel::Pos,
        notes: None,
        items,
    }
}

/// A one-item order.
pub(crate) fn simple_order() -> NewOrder {
    order_of(vec![item("pizza", 1, 1_200)])
}

/// An order of `session`, taken by `waiter`.
pub(crate) fn session_order(session: &str, waiter: &str) -> NewOrder {
    NewOrder {
        session_id: Some(session_id(session)),
        waiter_id: Some(waiter_id(waiter)),
        ..simple_order()
    }
}

/// Creates `new` (committed) and returns it.
pub(crate) async fn create(store: &Store, rid: RestaurantId, new: NewOrder) -> Order {
    store
        .create_order(rid, new, None)
        .await
        .expect("create order")
        .value
}

/// Creates `n` orders one after the other.
pub(crate) async fn create_many(store: &Store, rid: RestaurantId, n: usize) -> Vec<Order> {
    let mut orders = Vec::with_capacity(n);
    for _ in 0..n {
        orders.push(create(store, rid, simple_order()).await);
    }
    orders
}

/// A request for water at table 4, from no session.
pub(crate) fn water() -> NewRequest {
    NewRequest {
        kind: RequestKind::Water,
        table: "4".into(),
        session_id: None,
        message: None,
    }
}

/// Creates a request (committed) and returns it.
pub(crate) async fn create_request(
    store: &Store,
    rid: RestaurantId,
    new: NewRequest,
) -> WaiterRequest {
    let pending = store.create_request(rid, new, None).await;
    pending
        .expect("create request")
        .commit()
        .await
        .expect("commit")
        .value
}

/// Moves an order to `to` and commits.
pub(crate) async fn advance(store: &Store, rid: RestaurantId, id: OrderId, to: OrderStatus) {
    store
        .set_order_status(rid, id, to, None, None, None)
        .await
        .expect("legal transition")
        .commit()
        .await
        .expect("commit");
}

/// Every event of the restaurant, in seq order.
pub(crate) async fn all_events(store: &Store, rid: RestaurantId) -> Vec<Envelope> {
    store
        .events_after(rid, ordercast_core::Seq::ZERO, 10_000)
        .await
        .expect("read events")
}

/// Walks a new order all the way to paid.
pub(crate) async fn pay(store: &Store, rid: RestaurantId, id: OrderId) {
    use OrderStatus::*;
    for to in [Accepted, Ready, Served, Paid] {
        advance(store, rid, id, to).await;
    }
}

pub(crate) fn seqs(events: &[Envelope]) -> Vec<u64> {
    events.iter().map(|e| e.seq.0).collect()
}

/// `SELECT count(*) …` with the restaurant as `$1`.
pub(crate) async fn count(store: &Store, sql: &'static str, rid: RestaurantId) -> i64 {
    sqlx::query_scalar(sql)
        .bind(rid.as_uuid())
        .fetch_one(store.pool())
        .await
        .expect("count rows")
}

pub(crate) fn session_id(id: &str) -> SessionId {
    id.parse().expect("a valid session id")
}

pub(crate) fn waiter_id(id: &str) -> WaiterId {
    id.parse().expect("a valid waiter id")
}

/// An idempotency key of `rid` for a request that hashes to `request`.
pub(crate) fn key(rid: RestaurantId, key: &str, request: &[u8]) -> IdempotencyKey {
    IdempotencyKey {
        restaurant: rid,
        key: key.into(),
        request_hash: request.to_vec(),
    }
}

/// What the api does: a fresh create stores its answer and commits; a
/// retry answers what was stored.
pub(crate) async fn create_once(store: &Store, key: IdempotencyKey) -> Result<Replay, StoreError> {
    match store
        .create_order_once(key.restaurant, simple_order(), key, None)
        .await?
    {
        Outcome::Fresh(mut pending) => {
            let body = serde_json::to_value(pending.value()).unwrap();
            pending.remember_response(201, &body).await?;
            pending.commit().await?;
            Ok(Replay { status: 201, body })
        }
        Outcome::Replayed(replay) => Ok(replay),
    }
}
