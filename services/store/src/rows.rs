//! Row shapes and their conversion into domain types.

use chrono::{DateTime, Utc};
use ordercast_core::order::{Channel, ItemStatus, Order, OrderItem, OrderStatus};
use ordercast_core::request::{RequestKind, RequestStatus, WaiterRequest};
use ordercast_core::{Audience, Envelope, EventType, Seq};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;

/// A text column holding one of our wire enums; the schema's CHECK
/// constraints make a parse failure a corrupted database, not bad input.
pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))
}

fn label<T: TryFrom<String>>(s: Option<String>) -> Option<T> {
    // Labels were validated on the way in; anything else is dropped, not trusted.
    s.and_then(|s| T::try_from(s).ok())
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub number: i32,
    pub status: String,
    pub version: i32,
    pub table_label: Option<String>,
    pub session_id: Option<String>,
    pub waiter_id: Option<String>,
    pub channel: String,
    pub notes: Option<String>,
    pub reason: Option<String>,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const ORDER_COLUMNS: &str = "id, restaurant_id, number, status, version, table_label, session_id, waiter_id, channel, notes, reason, total_cents, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    pub order_id: Uuid,
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub station: Option<String>,
    pub notes: Option<String>,
    pub status: String,
}

impl ItemRow {
    pub(crate) fn into_item(self) -> Result<OrderItem, StoreError> {
        Ok(OrderItem {
            id: self.id.into(),
            sku: self.sku,
            name: self.name,
            quantity: self.quantity,
            unit_price_cents: self.unit_price_cents,
            station: self.station,
            notes: self.notes,
            status: parse_enum::<ItemStatus>(&self.status)?,
        })
    }
}

impl OrderRow {
    pub(crate) fn into_order(self, items: Vec<OrderItem>) -> Result<Order, StoreError> {
        Ok(Order {
            id: self.id.into(),
            restaurant_id: self.restaurant_id.into(),
            number: self.number,
            status: parse_enum::<OrderStatus>(&self.status)?,
            version: self.version,
            table: self.table_label,
            session_id: label(self.session_id),
            waiter_id: label(self.waiter_id),
            channel: parse_enum::<Channel>(&self.channel)?,
            notes: self.notes,
            reason: self.reason,
            items,
            total_cents: self.total_cents,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RequestRow {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub kind: String,
    pub table_label: String,
    pub session_id: Option<String>,
    pub waiter_id: Option<String>,
    pub message: Option<String>,
    pub status: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const REQUEST_COLUMNS: &str = "id, restaurant_id, kind, table_label, session_id, waiter_id, message, status, version, created_at, updated_at";

impl RequestRow {
    pub(crate) fn into_request(self) -> Result<WaiterRequest, StoreError> {
        Ok(WaiterRequest {
            id: self.id.into(),
            restaurant_id: self.restaurant_id.into(),
            kind: parse_enum::<RequestKind>(&self.kind)?,
            table: self.table_label,
            session_id: label(self.session_id),
            waiter_id: label(self.waiter_id),
            message: self.message,
            status: parse_enum::<RequestStatus>(&self.status)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub restaurant_id: Uuid,
    pub seq: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub audience: Json<Audience>,
    pub data: Json<serde_json::Value>,
    pub previous_status: Option<String>,
    pub item_id: Option<Uuid>,
    pub trace: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const EVENT_COLUMNS: &str =
    "restaurant_id, seq, type, audience, data, previous_status, item_id, trace, created_at";

impl EventRow {
    pub(crate) fn into_envelope(self) -> Result<Envelope, StoreError> {
        let kind: EventType =
            self.kind
                .parse()
                .map_err(|e: ordercast_core::event::InvalidEventType| {
                    StoreError::Database(sqlx::Error::Decode(e.into()))
                })?;
        Ok(Envelope {
            restaurant_id: self.restaurant_id.into(),
            seq: Seq::from_i64(self.seq),
            kind,
            ts: self.created_at,
            audience: self.audience.0,
            data: self.data.0,
            previous_status: self.previous_status,
            item_id: self.item_id.map(Into::into),
            trace: self.trace,
        })
    }
}
