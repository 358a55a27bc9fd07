//! Waiter requests and shift transfers.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ordercast_core::audience::Scope;
use ordercast_core::policy::Action;
use ordercast_core::request::{
    MAX_REQUEST_MESSAGE_CHARS, RequestKind, RequestStatus, WaiterRequest,
};
use ordercast_core::{RequestId, RestaurantId, Role, Seq, SessionId, WaiterId};
use ordercast_store::{NewRequest, Transfer};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::once::{Once, commit_once, key_of};
use crate::state::AppState;
use crate::validate::Checks;
use ordercast_http::Caller;
use ordercast_http::extract::{Body, Path};
use ordercast_http::trace::traceparent;
use ordercast_http::{HttpError, Problem};

/// Most sessions one transfer may name.
pub const MAX_TRANSFER_SESSIONS: usize = 100;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_request))
        .routes(routes!(set_request_status))
        .routes(routes!(transfer_sessions))
}

/// A request from a table.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    kind: RequestKind,
    /// Table label, 1–32 characters.
    #[schema(min_length = 1, max_length = 32)]
    table: String,
    /// Forced to the token's own session for customers.
    session_id: Option<SessionId>,
    /// A human message ("no ice, please"), at most 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    message: Option<String>,
}

/// A request after a write, with the seq of its event.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RequestWritten {
    request: WaiterRequest,
    seq: Seq,
}

/// Call the waiter, ask for the bill or water. The request goes to the
/// waiter of the session's latest order, when there is one.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/requests", tag = "requests",
    params(("rid" = String, Path, format = Uuid)),
    request_body = CreateRequest,
    responses((status = 201, body = RequestWritten), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn create_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    headers: HeaderMap,
    Body(mut body): Body<CreateRequest>,
) -> Result<(StatusCode, Json<RequestWritten>), HttpError> {
    state.authorize(&caller, rid, Action::CreateRequest).await?;
    let mut c = Checks::new();
    c.text("table", &body.table, 32);
    c.opt_text(
        "message",
        body.message.as_deref(),
        MAX_REQUEST_MESSAGE_CHARS,
    );
    c.finish()?;
    if caller.0.role == Role::Customer {
        if body.session_id.is_some() && body.session_id != caller.0.session_id {
            return Err(HttpError::Forbidden(
                "customers ask only for their own session",
            ));
        }
        body.session_id = caller.0.session_id.clone();
    }
    let new = NewRequest {
        kind: body.kind,
        table: body.table,
        session_id: body.session_id,
        message: body.message,
    };
    let trace = traceparent(&headers);
    let pending = state
        .store
        .create_request(rid, new, trace.as_deref())
        .await?;
    let (request, seq) = state.writer.commit(pending).await?;
    Ok((StatusCode::CREATED, Json(RequestWritten { request, seq })))
}

/// A request status change.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetRequestStatus {
    status: RequestStatus,
    /// Replaces the request's message ("coming in 5 minutes"); at most 200
    /// characters. Absent: the message stays.
    #[schema(min_length = 1, max_length = 200)]
    message: Option<String>,
}

/// Move a request along `open → acknowledged → in_progress ↔ on_hold →
/// resolved | cancelled` (customers: cancel their own). An illegal move is
/// `409 illegal-transition` with the request as it is.
/// A retry with the same `Idempotency-Key` gets the first answer.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/requests/{id}/status", tag = "requests",
    params(("rid" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid),
           ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters")),
    request_body = SetRequestStatus,
    responses((status = 200, body = RequestWritten), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn set_request_status(
    State(state): State<AppState>,
    caller: Caller,
    Path((rid, id)): Path<(RestaurantId, RequestId)>,
    headers: HeaderMap,
    Body(body): Body<SetRequestStatus>,
) -> Result<Response, HttpError> {
    state
        .authorize(&caller, rid, Action::ChangeRequestStatus)
        .await?;
    let mut c = Checks::new();
    c.opt_text(
        "message",
        body.message.as_deref(),
        MAX_REQUEST_MESSAGE_CHARS,
    );
    c.finish()?;
    let viewer = caller.0.viewer();
    if viewer.scope() != Scope::Everything {
        // Another waiter's or table's request does not exist for this
        // caller, as for a read: a 409 would show it whole.
        let request = state.store.request(rid, id).await?;
        if !viewer.may_see(&request.audience()) {
            return Err(HttpError::NotFound("request"));
        }
    }
    if caller.0.role == Role::Customer && body.status != RequestStatus::Cancelled {
        return Err(HttpError::Forbidden(
            "customers may only cancel their own requests",
        ));
    }
    let trace = traceparent(&headers);
    let path = format!("POST /v1/restaurants/{rid}/requests/{id}/status");
    let key = key_of(&headers, rid, &path, &body)?;
    let write =
        state
            .store
            .set_request_status(rid, id, body.status, body.message, trace.as_deref());
    let written = |request: &WaiterRequest, seq| {
        let request = request.clone();
        serde_json::to_value(RequestWritten { request, seq }).expect("requests serialize")
    };
    Ok(match commit_once(&state, key, write, written).await? {
        Once::Fresh(body) => Json(body).into_response(),
        Once::Replayed(replay) => {
            let status = StatusCode::from_u16(replay.status).unwrap_or(StatusCode::OK);
            let marker = [("idempotent-replayed", "true")];
            (status, marker, Json(replay.body)).into_response()
        }
    })
}

/// A shift change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    /// Waiters may only hand over their own sessions.
    from_waiter_id: WaiterId,
    to_waiter_id: WaiterId,
    /// Only these sessions (at most 100); all of the waiter's when absent.
    #[schema(min_items = 1, max_items = 100)]
    session_ids: Option<Vec<SessionId>>,
}

/// What moved, with the seq of the last `session.transferred` event (one
/// for the staff, then one for each table session that changed hands).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TransferWritten {
    transfer: Transfer,
    seq: Seq,
}

/// Hand a waiter's open orders and requests to another waiter.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/sessions/transfer", tag = "requests",
    params(("rid" = String, Path, format = Uuid)),
    request_body = TransferBody,
    responses((status = 200, body = TransferWritten), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn transfer_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    headers: HeaderMap,
    Body(body): Body<TransferBody>,
) -> Result<Json<TransferWritten>, HttpError> {
    state
        .authorize(&caller, rid, Action::TransferSessions)
        .await?;
    if caller.0.role == Role::Waiter && caller.0.waiter_id.as_ref() != Some(&body.from_waiter_id) {
        return Err(HttpError::Forbidden(
            "waiters may only hand over their own sessions",
        ));
    }
    let mut c = Checks::new();
    c.check(
        body.from_waiter_id != body.to_waiter_id,
        "to_waiter_id",
        "must differ from from_waiter_id",
    );
    if let Some(sessions) = &body.session_ids {
        c.count("session_ids", sessions.len(), 1, MAX_TRANSFER_SESSIONS);
    }
    c.finish()?;
    let trace = traceparent(&headers);
    let pending = state
        .store
        .transfer_sessions(
            rid,
            body.from_waiter_id,
            body.to_waiter_id,
            body.session_ids,
            trace.as_deref(),
        )
        .await?;
    let (transfer, seq) = state.writer.commit(pending).await?;
    Ok(Json(TransferWritten { transfer, seq }))
}
