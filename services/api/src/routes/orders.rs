//! Orders: create, list (snapshot), read, status and item changes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordercast_core::auth::Principal;
use ordercast_core::order::{Channel, ItemStatus, Order, OrderStatus};
use ordercast_core::order_scope::OrderScope;
use ordercast_core::policy::Action;
use ordercast_core::{ItemId, OrderId, RestaurantId, Role, Seq, SessionId, WaiterId};
use ordercast_store::{
    NewItem, NewOrder, OrderCursor, Outcome, Page, Replay, SNAPSHOT_LIMIT, SNAPSHOT_MAX_BYTES,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::headers::if_match;
use crate::once::{Once, commit_once, key_of};
use crate::state::AppState;
use crate::validate::Checks;
use ordercast_http::Caller;
use ordercast_http::extract::{Body, Path, Query};
use ordercast_http::trace::traceparent;
use ordercast_http::{HttpError, Problem};

/// Most items in one order.
pub const MAX_ITEMS: usize = 100;
/// Most units of one item.
pub const MAX_QUANTITY: i64 = 999;
/// Highest unit price, in cents.
pub const MAX_UNIT_PRICE_CENTS: i64 = 100_000_000;
/// Most bytes (UTF-8) of text in one order: its table and notes and every
/// item's sku, name, station and notes together. Each field has its own
/// bound too, but 100 items at their bounds would make an order of 40 KB,
/// copied into every event, snapshot and replay of it.
pub const MAX_ORDER_TEXT_BYTES: usize = 8 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(set_order_status))
        .routes(routes!(set_item_status))
}

/// A new order. Its text (table, notes, and every item's sku, name,
/// station and notes) totals at most 8 192 bytes of UTF-8.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    /// Table label, at most 32 characters.
    #[schema(min_length = 1, max_length = 32)]
    table: Option<String>,
    /// The customer's table session (forced to the token's own for customers).
    session_id: Option<SessionId>,
    /// The waiter in charge (forced to the token's own for waiters).
    waiter_id: Option<WaiterId>,
    channel: Channel,
    /// 1 to 100 items.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<CreateItem>,
    /// At most 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    notes: Option<String>,
}

/// One line of a new order.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateItem {
    /// At most 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    sku: String,
    /// At most 120 characters.
    #[schema(min_length = 1, max_length = 120)]
    name: String,
    /// 1 to 999.
    #[schema(minimum = 1, maximum = 999)]
    quantity: i64,
    /// 0 to 100 000 000.
    #[schema(minimum = 0, maximum = 100_000_000)]
    unit_price_cents: i64,
    /// Kitchen station (grill, bar…), at most 32 characters.
    #[schema(min_length = 1, max_length = 32)]
    station: Option<String>,
    /// At most 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    notes: Option<String>,
}

impl CreateOrder {
    fn validate(&self) -> Result<(), HttpError> {
        let mut c = Checks::new();
        c.opt_text("table", self.table.as_deref(), 32);
        c.opt_text("notes", self.notes.as_deref(), 500);
        c.count("items", self.items.len(), 1, MAX_ITEMS);
        for (i, item) in self.items.iter().enumerate() {
            c.text(format!("items[{i}].sku"), &item.sku, 64);
            c.text(format!("items[{i}].name"), &item.name, 120);
            c.range(
                format!("items[{i}].quantity"),
                item.quantity,
                1,
                MAX_QUANTITY,
            );
            c.range(
                format!("items[{i}].unit_price_cents"),
                item.unit_price_cents,
                0,
                MAX_UNIT_PRICE_CENTS,
            );
            c.opt_text(format!("items[{i}].station"), item.station.as_deref(), 32);
            c.opt_text(format!("items[{i}].notes"), item.notes.as_deref(), 200);
        }
        c.check(
            self.text_bytes() <= MAX_ORDER_TEXT_BYTES,
            "items",
            format!(
                "the order's text (table, notes, and every item's sku, name, station and notes) \
                 must total at most {MAX_ORDER_TEXT_BYTES} bytes"
            ),
        );
        c.finish()
    }

    /// Bytes of free text in the order (see [`MAX_ORDER_TEXT_BYTES`]).
    fn text_bytes(&self) -> usize {
        let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let items: usize = self
            .items
            .iter()
            .map(|i| i.sku.len() + i.name.len() + len(&i.station) + len(&i.notes))
            .sum();
        len(&self.table) + len(&self.notes) + items
    }

    /// Customers order for their own session; waiters for themselves.
    fn bind_to(&mut self, principal: &Principal) -> Result<(), HttpError> {
        match principal.role {
            Role::Customer => {
                if self.waiter_id.is_some()
                    || (self.session_id.is_some() && self.session_id != principal.session_id)
                {
                    return Err(HttpError::Forbidden(
                        "customers order only for their own session",
                    ));
                }
                self.session_id = principal.session_id.clone();
            }
            Role::Waiter => {
                if self.waiter_id.is_some() && self.waiter_id != principal.waiter_id {
                    return Err(HttpError::Forbidden("waiters order only for themselves"));
                }
                self.waiter_id = principal.waiter_id.clone();
            }
            _ => {}
        }
        Ok(())
    }

    fn into_new(self) -> NewOrder {
        NewOrder {
            table: self.table,
            session_id: self.session_id,
            waiter_id: self.waiter_id,
            channel: self.channel,
            notes: self.notes,
            items: self
                .items
                .into_iter()
                .map(|i| NewItem {
                    sku: i.sku,
                    name: i.name,
                    // Bounded by validate().
                    quantity: i.quantity as i32,
                    unit_price_cents: i.unit_price_cents,
                    station: i.station,
                    notes: i.notes,
                })
                .collect(),
        }
    }
}

/// An order after a write, with the seq of the event the write produced.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OrderWritten {
    order: Order,
    seq: Seq,
}

/// Create an order. With `Idempotency-Key`, a retry gets the first answer.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/orders", tag = "orders",
    params(("rid" = String, Path, format = Uuid),
           ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters")),
    request_body = CreateOrder,
    responses((status = 201, body = OrderWritten), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    headers: HeaderMap,
    Body(mut body): Body<CreateOrder>,
) -> Result<Response, HttpError> {
    state.authorize(&caller, rid, Action::CreateOrder).await?;
    body.validate()?;
    body.bind_to(&caller.0)?;
    let key = key_of(
        &headers,
        rid,
        &format!("POST /v1/restaurants/{rid}/orders"),
        &body,
    )?;
    let trace = traceparent(&headers);
    let new = body.into_new();
    let Some(key) = key else {
        let (order, seq) = state
            .writer
            .commit_now(rid, state.store.create_order(rid, new, trace.as_deref()))
            .await?;
        let written = OrderWritten { order, seq };
        return Ok(created(rid, &written.order, &written));
    };
    match state
        .store
        .create_order_once(rid, new, key, trace.as_deref())
        .await?
    {
        Outcome::Replayed(replay) => Ok(replayed(rid, replay)),
        Outcome::Fresh(mut pending) => {
            let written = OrderWritten {
                order: pending.value().clone(),
                seq: pending.last_seq(),
            };
            let json = serde_json::to_value(&written).expect("orders serialize");
            pending.remember_response(201, &json).await?;
            state.writer.commit(pending).await?;
            Ok(created(rid, &written.order, json))
        }
    }
}

/// `201 Created` with the order's location and ETag.
fn created(rid: RestaurantId, order: &Order, body: impl Serialize) -> Response {
    let headers = created_headers(rid, order.id, order.version);
    (StatusCode::CREATED, headers, Json(body)).into_response()
}

/// The order named by a stored create answer (an [`OrderWritten`]).
#[derive(Deserialize)]
struct StoredOrder {
    id: OrderId,
    version: i32,
}

/// The first answer to this key again, with the headers it had.
fn replayed(rid: RestaurantId, replay: Replay) -> Response {
    let status = StatusCode::from_u16(replay.status).unwrap_or(StatusCode::CREATED);
    let headers = StoredOrder::deserialize(&replay.body["order"])
        .ok()
        .map(|order| created_headers(rid, order.id, order.version));
    let marker = [("idempotent-replayed", "true")];
    (status, marker, headers, Json(replay.body)).into_response()
}

/// `Location` and `ETag` of a created order.
fn created_headers(
    rid: RestaurantId,
    id: OrderId,
    version: i32,
) -> [(header::HeaderName, HeaderValue); 2] {
    let location = HeaderValue::from_str(&format!("/v1/restaurants/{rid}/orders/{id}"))
        .expect("ids are a valid header");
    [
        (header::LOCATION, location),
        (header::ETAG, version_tag(version)),
    ]
}

/// Orders in one page of a list, unless `limit` says otherwise.
pub const DEFAULT_PAGE_LIMIT: usize = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `open` (default): orders not yet paid, cancelled or rejected; `all`.
    #[param(inline)]
    state: Option<StateFilter>,
    /// Most orders in the page: 1 to 1 000, default 100. A page also ends
    /// before 2 MiB of orders, so it may hold fewer.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page: continue with older orders.
    after: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum StateFilter {
    Open,
    All,
}

/// A page of orders and the seq it reflects, read in one consistent
/// snapshot. Pages go from the newest orders to the oldest; each lists its
/// orders oldest first. Stream from the first page's `seq` for no gap and
/// no duplicate (later pages may already show orders as events after that
/// seq left them: keep the higher `version`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OrdersPage {
    seq: Seq,
    orders: Vec<Order>,
    /// More orders follow: ask for them with `after=<next>`.
    truncated: bool,
    /// The cursor of the next page (absent on the last page).
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A page of the restaurant's orders, read in one consistent snapshot
/// (filtered to what the caller may see: customers their session, waiters
/// theirs and unassigned). Walk the pages with `next`.
#[utoipa::path(get, path = "/v1/restaurants/{rid}/orders", tag = "orders",
    params(("rid" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = OrdersPage), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    Query(query): Query<ListQuery>,
) -> Result<Json<OrdersPage>, HttpError> {
    state.authorize(&caller, rid, Action::ReadOrders).await?;
    let page = query.page()?;
    let open_only = !matches!(query.state, Some(StateFilter::All));
    let snapshot = state
        .store
        .visible_orders(rid, &caller.0.viewer(), open_only, page)
        .await?;
    Ok(Json(OrdersPage {
        seq: snapshot.seq,
        orders: snapshot.orders,
        truncated: snapshot.next.is_some(),
        next: snapshot.next.map(|c| c.to_string()),
    }))
}

impl ListQuery {
    /// The page asked for, within its bounds.
    fn page(&self) -> Result<Page, HttpError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if !(1..=SNAPSHOT_LIMIT).contains(&limit) {
            return Err(HttpError::InvalidParameter(format!(
                "limit must be between 1 and {SNAPSHOT_LIMIT}"
            )));
        }
        let after = match &self.after {
            Some(raw) => Some(
                raw.parse::<OrderCursor>()
                    .map_err(HttpError::InvalidCursor)?,
            ),
            None => None,
        };
        Ok(Page {
            after,
            limit,
            max_bytes: SNAPSHOT_MAX_BYTES,
        })
    }
}

/// Loads an order the caller may see; others are "not found".
async fn visible_order(
    state: &AppState,
    caller: &Caller,
    rid: RestaurantId,
    oid: OrderId,
) -> Result<Order, HttpError> {
    let order = state.store.order(rid, oid).await?;
    if caller.0.viewer().may_see(&order.audience()) {
        Ok(order)
    } else {
        Err(HttpError::NotFound("order"))
    }
}

/// A waiter or a table session may act only on an order it can see; any
/// other answers 404, as a read would (a 409 would show the order whole).
async fn check_visible(
    state: &AppState,
    caller: &Caller,
    rid: RestaurantId,
    oid: OrderId,
) -> Result<(), HttpError> {
    if caller.0.viewer().scope().orders() == OrderScope::All {
        return Ok(());
    }
    visible_order(state, caller, rid, oid).await.map(drop)
}

fn etag(order: &Order) -> [(header::HeaderName, HeaderValue); 1] {
    [(header::ETAG, version_tag(order.version))]
}

fn version_tag(version: i32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// One order; its `ETag` is the version to send in `If-Match`.
#[utoipa::path(get, path = "/v1/restaurants/{rid}/orders/{oid}", tag = "orders",
    params(("rid" = String, Path, format = Uuid), ("oid" = String, Path, format = Uuid)),
    responses((status = 200, body = Order), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path((rid, oid)): Path<(RestaurantId, OrderId)>,
) -> Result<Response, HttpError> {
    state.authorize(&caller, rid, Action::ReadOrders).await?;
    let order = visible_order(&state, &caller, rid, oid).await?;
    Ok((etag(&order), Json(order)).into_response())
}

/// A status change.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetOrderStatus {
    status: OrderStatus,
    /// Why (for `cancelled` and `rejected`), at most 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    reason: Option<String>,
}

/// Move an order along its life cycle. Illegal transitions and stale
/// `If-Match` versions are 409 with the order as it is. A retry with the
/// same `Idempotency-Key` gets the first answer (`Idempotent-Replayed`).
#[utoipa::path(post, path = "/v1/restaurants/{rid}/orders/{oid}/status", tag = "orders",
    params(("rid" = String, Path, format = Uuid), ("oid" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "the version last seen, e.g. \"3\""),
           ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters")),
    request_body = SetOrderStatus,
    responses((status = 200, body = OrderWritten), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn set_order_status(
    State(state): State<AppState>,
    caller: Caller,
    Path((rid, oid)): Path<(RestaurantId, OrderId)>,
    headers: HeaderMap,
    Body(body): Body<SetOrderStatus>,
) -> Result<Response, HttpError> {
    state
        .authorize(&caller, rid, Action::ChangeOrderStatus)
        .await?;
    let mut c = Checks::new();
    c.opt_text("reason", body.reason.as_deref(), 200);
    c.finish()?;
    let expected = if_match(&headers)?;
    check_visible(&state, &caller, rid, oid).await?;
    // A customer may only cancel its own order (the state machine says when).
    if caller.0.role == Role::Customer && body.status != OrderStatus::Cancelled {
        return Err(HttpError::Forbidden(
            "customers may only cancel their own orders",
        ));
    }
    let trace = traceparent(&headers);
    let path = format!("POST /v1/restaurants/{rid}/orders/{oid}/status");
    let key = key_of(&headers, rid, &path, &body)?;
    let write = state.store.set_order_status(
        rid,
        oid,
        body.status,
        body.reason,
        expected,
        trace.as_deref(),
    );
    let once = commit_once(&state, key, write, written).await?;
    Ok(order_answer(once))
}

/// An [`OrderWritten`] as JSON.
fn written(order: &Order, seq: Seq) -> serde_json::Value {
    let order = order.clone();
    serde_json::to_value(OrderWritten { order, seq }).expect("orders serialize")
}

/// A status change's answer with the order's ETag; a replayed one marked.
fn order_answer(once: Once) -> Response {
    let (status, body, replayed) = match once {
        Once::Fresh(body) => (StatusCode::OK, body, None),
        Once::Replayed(replay) => (
            StatusCode::from_u16(replay.status).unwrap_or(StatusCode::OK),
            replay.body,
            Some([("idempotent-replayed", "true")]),
        ),
    };
    let tag = StoredOrder::deserialize(&body["order"])
        .ok()
        .map(|order| [(header::ETAG, version_tag(order.version))]);
    (status, replayed, tag, Json(body)).into_response()
}

/// An item status change.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetItemStatus {
    status: ItemStatus,
}

/// Move one item along its life cycle; when every live item is ready the
/// order becomes `ready` too (two events; `seq` is the last). A retry with
/// the same `Idempotency-Key` gets the first answer.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/orders/{oid}/items/{iid}/status", tag = "orders",
    params(("rid" = String, Path, format = Uuid), ("oid" = String, Path, format = Uuid), ("iid" = String, Path, format = Uuid),
           ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters")),
    request_body = SetItemStatus,
    responses((status = 200, body = OrderWritten), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn set_item_status(
    State(state): State<AppState>,
    caller: Caller,
    Path((rid, oid, iid)): Path<(RestaurantId, OrderId, ItemId)>,
    headers: HeaderMap,
    Body(body): Body<SetItemStatus>,
) -> Result<Response, HttpError> {
    state
        .authorize(&caller, rid, Action::ChangeItemStatus)
        .await?;
    check_visible(&state, &caller, rid, oid).await?;
    let trace = traceparent(&headers);
    let path = format!("POST /v1/restaurants/{rid}/orders/{oid}/items/{iid}/status");
    let key = key_of(&headers, rid, &path, &body)?;
    let write = state
        .store
        .set_item_status(rid, oid, iid, body.status, trace.as_deref());
    let once = commit_once(&state, key, write, written).await?;
    Ok(order_answer(once))
}
