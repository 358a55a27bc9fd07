//! Shift changes: a waiter hands table sessions over to another.

use ordercast_core::event::EventDraft;
use ordercast_core::{Audience, EventType, OrderId, RestaurantId, Role, SessionId, WaiterId};
use serde::Serialize;

use crate::events::append;
use crate::{Pending, Store, StoreError};

/// What a transfer moved; the data of its `session.transferred` event.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Transfer {
    pub from_waiter_id: WaiterId,
    pub to_waiter_id: WaiterId,
    /// Sessions whose open orders or requests changed hands.
    pub session_ids: Vec<SessionId>,
    pub order_ids: Vec<OrderId>,
}

/// What a table session's guests learn of a transfer: their waiter
/// changed, and which of their orders moved. It names no other session and
/// not the waiter who left (staff business): the data of the
/// `session.transferred` event sent to that session alone.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GuestTransfer {
    pub session_id: SessionId,
    pub to_waiter_id: WaiterId,
    /// The session's open orders now served by `to_waiter_id`.
    pub order_ids: Vec<OrderId>,
}

impl Transfer {
    /// One event for the staff, then one per session for its guests.
    fn drafts(&self, moved: &[(uuid::Uuid, Option<String>)]) -> Vec<EventDraft> {
        // Both waiters must learn of it, so the staff event names neither.
        let staff = EventDraft::new(
            EventType::SessionTransferred,
            Audience::roles(&[Role::Owner, Role::Waiter]),
            serde_json::to_value(self).expect("transfers serialize"),
        );
        let guests = self.session_ids.iter().map(|session| {
            let guest = GuestTransfer {
                session_id: session.clone(),
                to_waiter_id: self.to_waiter_id.clone(),
                order_ids: moved
                    .iter()
                    .filter(|(_, s)| s.as_deref() == Some(session.as_str()))
                    .map(|(id, _)| (*id).into())
                    .collect(),
            };
            let audience = Audience {
                roles: vec![Role::Customer],
                session_id: Some(session.clone()),
                waiter_id: None,
            };
            let data = serde_json::to_value(&guest).expect("transfers serialize");
            EventDraft::new(EventType::SessionTransferred, audience, data)
        });
        std::iter::once(staff).chain(guests).collect()
    }
}

impl Store {
    /// Gives `from`'s open orders and open requests (of `sessions` only,
    /// when given) to `to`, with a `session.transferred` event for the
    /// staff and one for each session that changed hands.
    #[tracing::instrument(name = "UPDATE orders waiter_requests", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn transfer_sessions(
        &self,
        restaurant: RestaurantId,
        from: WaiterId,
        to: WaiterId,
        sessions: Option<Vec<SessionId>>,
        trace: Option<&str>,
    ) -> Result<Pending<Transfer>, StoreError> {
        let mut tx = self.begin().await?;
        let only: Option<Vec<&str>> = sessions
            .as_ref()
            .map(|s| s.iter().map(SessionId::as_str).collect());
        let moved: Vec<(uuid::Uuid, Option<String>)> = sqlx::query_as(
            "UPDATE orders SET waiter_id = $3, version = version + 1, updated_at = now()
             WHERE restaurant_id = $1 AND waiter_id = $2
               AND status NOT IN ('paid', 'cancelled', 'rejected')
               AND ($4::text[] IS NULL OR session_id = ANY($4))
             RETURNING id, session_id",
        )
        .bind(restaurant.as_uuid())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(&only)
        .fetch_all(&mut *tx)
        .await?;
        let requests: Vec<Option<String>> = sqlx::query_scalar(
            "UPDATE waiter_requests SET waiter_id = $3, version = version + 1, updated_at = now()
             WHERE restaurant_id = $1 AND waiter_id = $2 AND status NOT IN ('resolved', 'cancelled')
               AND ($4::text[] IS NULL OR session_id = ANY($4))
             RETURNING session_id",
        )
        .bind(restaurant.as_uuid())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(&only)
        .fetch_all(&mut *tx)
        .await?;
        let mut session_ids: Vec<SessionId> = moved
            .iter()
            .map(|(_, s)| s.clone())
            .chain(requests)
            .flatten()
            .filter_map(|s| SessionId::try_from(s).ok())
            .collect();
        session_ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        session_ids.dedup();
        let transfer = Transfer {
            from_waiter_id: from,
            to_waiter_id: to,
            session_ids,
            order_ids: moved.iter().map(|(id, _)| (*id).into()).collect(),
        };
        let drafts = transfer.drafts(&moved);
        let events = append(&mut tx, restaurant, trace, drafts).await?;
        Ok(Pending::new(tx, transfer, events, None))
    }
}
