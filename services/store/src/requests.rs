//! Waiter requests: a table calls the waiter, asks for the bill or water.

use ordercast_core::event::EventDraft;
use ordercast_core::request::{RequestKind, RequestStatus, WaiterRequest};
use ordercast_core::{Envelope, EventType, RequestId, RestaurantId, SessionId, WaiterId};

use crate::events::append;
use crate::rows::{REQUEST_COLUMNS, RequestRow};
use crate::{Pending, Store, StoreError};

/// A request to create (validated by the caller).
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub kind: RequestKind,
    pub table: String,
    pub session_id: Option<SessionId>,
    pub message: Option<String>,
}

/// Owners and waiters handle requests; the table that asked sees its own.
fn request_event(request: &WaiterRequest, kind: EventType) -> EventDraft {
    EventDraft::new(
        kind,
        request.audience(),
        serde_json::to_value(request).expect("requests serialize"),
    )
}

impl Store {
    /// Creates a request. It is addressed to the waiter of the session's
    /// latest order, when there is one.
    #[tracing::instrument(name = "INSERT waiter_requests", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn create_request(
        &self,
        restaurant: RestaurantId,
        new: NewRequest,
        trace: Option<&str>,
    ) -> Result<Pending<WaiterRequest>, StoreError> {
        let mut tx = self.begin().await?;
        let waiter: Option<String> = match &new.session_id {
            None => None,
            Some(session) => {
                sqlx::query_scalar(
                    "SELECT waiter_id FROM orders
                 WHERE restaurant_id = $1 AND session_id = $2 AND waiter_id IS NOT NULL
                 ORDER BY created_at DESC LIMIT 1",
                )
                .bind(restaurant.as_uuid())
                .bind(session.as_str())
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let now = Envelope::now();
        let request = WaiterRequest {
            id: RequestId::new(),
            restaurant_id: restaurant,
            kind: new.kind,
            table: new.table,
            session_id: new.session_id,
            waiter_id: waiter.and_then(|w| WaiterId::try_from(w).ok()),
            message: new.message,
            status: RequestStatus::Open,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO waiter_requests (id, restaurant_id, kind, table_label, session_id, waiter_id,
                                          message, status, version, created_at, updated_at, region, reach)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9, r.region, r.reach
             FROM restaurants r WHERE r.id = $2",
        )
        .bind(request.id.as_uuid())
        .bind(restaurant.as_uuid())
        .bind(request.kind.as_str())
        .bind(&request.table)
        .bind(request.session_id.as_ref().map(SessionId::as_str))
        .bind(request.waiter_id.as_ref().map(WaiterId::as_str))
        .bind(&request.message)
        .bind(request.status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let draft = request_event(&request, EventType::RequestCreated);
        let events = append(&mut tx, restaurant, trace, vec![draft]).await?;
        Ok(Pending::new(tx, request, events, None))
    }

    /// A request by id.
    pub async fn request(
        &self,
        restaurant: RestaurantId,
        id: RequestId,
    ) -> Result<WaiterRequest, StoreError> {
        let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM waiter_requests WHERE restaurant_id = $1 AND id = $2"
        )))
        .bind(restaurant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or(StoreError::NotFound("request"))?.into_request()
    }

    /// Moves a request to `to`; a `message` replaces the request's (none
    /// keeps it).
    #[tracing::instrument(name = "UPDATE waiter_requests", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn set_request_status(
        &self,
        restaurant: RestaurantId,
        id: RequestId,
        to: RequestStatus,
        message: Option<String>,
        trace: Option<&str>,
    ) -> Result<Pending<WaiterRequest>, StoreError> {
        let mut tx = self.begin().await?;
        let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM waiter_requests
             WHERE restaurant_id = $1 AND id = $2 FOR UPDATE"
        )))
        .bind(restaurant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let mut request = row.ok_or(StoreError::NotFound("request"))?.into_request()?;
        if !request.status.can_become(to) {
            let message = format!("a request that is {} cannot become {to}", request.status);
            return Err(StoreError::illegal(message, &request));
        }
        let previous = request.status;
        request.status = to;
        request.version += 1;
        request.updated_at = Envelope::now();
        if message.is_some() {
            request.message = message;
        }
        sqlx::query(
            "UPDATE waiter_requests SET status = $2, version = $3, updated_at = $4, message = $5
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(to.as_str())
        .bind(request.version)
        .bind(request.updated_at)
        .bind(&request.message)
        .execute(&mut *tx)
        .await?;
        let mut draft = request_event(&request, EventType::RequestStatusChanged);
        draft.previous_status = Some(previous.to_string());
        let events = append(&mut tx, restaurant, trace, vec![draft]).await?;
        Ok(Pending::new(tx, request, events, None))
    }
}
