//! Events that change no order: notifications, cache invalidations and
//! integrations' own `x.*` events.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ordercast_core::event::EventDraft;
use ordercast_core::policy::Action;
use ordercast_core::{Audience, EventType, RestaurantId, Role, Seq};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::coalesce::Priority;
use crate::state::AppState;
use crate::validate::Checks;
use ordercast_http::Caller;
use ordercast_http::extract::{Body, Path};
use ordercast_http::trace::traceparent;
use ordercast_http::{HttpError, Problem};

/// Most resources named by one invalidation request.
pub const MAX_INVALIDATION_RESOURCES: usize = 50;
/// Most bytes of a custom event's `data` (as compact JSON): every screen of
/// the audience receives it, and every edge keeps it in its ring.
pub const MAX_CUSTOM_DATA_BYTES: usize = 8 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(notify))
        .routes(routes!(invalidate))
        .routes(routes!(publish_custom))
}

fn check_audience(c: &mut Checks, audience: &Audience) {
    c.count("audience.roles", audience.roles.len(), 1, Role::ALL.len());
}

/// The seq an event got.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Published {
    seq: Seq,
}

#[derive(Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Urgency {
    Info,
    Urgent,
}

/// An alert for kitchen, owner or waiter screens.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Notify {
    audience: Audience,
    urgency: Urgency,
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120)]
    title: String,
    /// 1–1000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    message: String,
    /// Screens show one notification per group, the latest (≤ 64 characters).
    #[schema(min_length = 1, max_length = 64)]
    group_key: Option<String>,
}

/// Send a `notification` event.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/notifications", tag = "events",
    params(("rid" = String, Path, format = Uuid)),
    request_body = Notify,
    responses((status = 201, body = Published), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn notify(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    headers: HeaderMap,
    Body(body): Body<Notify>,
) -> Result<(StatusCode, Json<Published>), HttpError> {
    state.authorize(&caller, rid, Action::Notify).await?;
    let mut c = Checks::new();
    check_audience(&mut c, &body.audience);
    c.text("title", &body.title, 120);
    c.text("message", &body.message, 1000);
    c.opt_text("group_key", body.group_key.as_deref(), 64);
    c.finish()?;
    let data = serde_json::json!({
        "urgency": body.urgency,
        "title": body.title,
        "message": body.message,
        "group_key": body.group_key,
    });
    let draft = EventDraft::new(EventType::Notification, body.audience, data);
    publish(&state, rid, draft, &headers).await
}

async fn publish(
    state: &AppState,
    rid: RestaurantId,
    draft: EventDraft,
    headers: &HeaderMap,
) -> Result<(StatusCode, Json<Published>), HttpError> {
    let trace = traceparent(headers);
    let ((), seq) = state
        .writer
        .commit_now(rid, state.store.publish_event(rid, draft, trace.as_deref()))
        .await?;
    Ok((StatusCode::CREATED, Json(Published { seq })))
}

/// Resources whose cached copies screens should refetch.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Invalidate {
    /// 1–50 resource names (e.g. `menu`, `tables/12`), each ≤ 128 characters.
    #[schema(min_items = 1, max_items = 50)]
    resources: Vec<String>,
    priority: Priority,
    /// Defaults to every staff role.
    audience: Option<Audience>,
}

/// When the coalesced event will be published at the latest.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InvalidationAccepted {
    flush_within_ms: u64,
}

/// Ask screens to refetch resources. Hints are coalesced per restaurant
/// (high: 200 ms, medium: 1 s, low: 5 s) into one `cache.invalidate` event.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/invalidations", tag = "events",
    params(("rid" = String, Path, format = Uuid)),
    request_body = Invalidate,
    responses((status = 202, body = InvalidationAccepted), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn invalidate(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    headers: HeaderMap,
    Body(body): Body<Invalidate>,
) -> Result<(StatusCode, Json<InvalidationAccepted>), HttpError> {
    state.authorize(&caller, rid, Action::Invalidate).await?;
    let mut c = Checks::new();
    c.count(
        "resources",
        body.resources.len(),
        1,
        MAX_INVALIDATION_RESOURCES,
    );
    for (i, r) in body.resources.iter().enumerate() {
        c.text(format!("resources[{i}]"), r, 128);
    }
    if let Some(audience) = &body.audience {
        check_audience(&mut c, audience);
    }
    c.finish()?;
    // A restaurant the token names but that does not exist must not be queued.
    state.store.restaurant(rid).await?;
    let audience = body
        .audience
        .unwrap_or_else(|| Audience::roles(&[Role::Owner, Role::Kitchen, Role::Waiter]));
    let window = state
        .invalidations
        .submit(
            rid,
            body.resources,
            body.priority,
            audience,
            traceparent(&headers),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(InvalidationAccepted {
            flush_within_ms: window.as_millis() as u64,
        }),
    ))
}

/// An integration's own event.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishCustom {
    /// `x.<name>`: lowercase letters, digits, `.`, `_`, `-`; ≤ 64 characters.
    #[serde(rename = "type")]
    kind: String,
    audience: Audience,
    /// Any JSON, at most 8 192 bytes written compactly.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// Publish a custom `x.*` event to the restaurant's screens.
#[utoipa::path(post, path = "/v1/restaurants/{rid}/events", tag = "events",
    params(("rid" = String, Path, format = Uuid)),
    request_body = PublishCustom,
    responses((status = 201, body = Published), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn publish_custom(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
    headers: HeaderMap,
    Body(body): Body<PublishCustom>,
) -> Result<(StatusCode, Json<Published>), HttpError> {
    state.authorize(&caller, rid, Action::PublishCustom).await?;
    let mut c = Checks::new();
    let kind = EventType::custom(&body.kind);
    c.check(
        kind.is_ok(),
        "type",
        "must be \"x.<name>\" (lowercase letters, digits, '.', '_', '-'; at most 64 characters)",
    );
    check_audience(&mut c, &body.audience);
    let size = serde_json::to_vec(&body.data).map_or(usize::MAX, |v| v.len());
    c.check(
        size <= MAX_CUSTOM_DATA_BYTES,
        "data",
        format!("must be at most {MAX_CUSTOM_DATA_BYTES} bytes of JSON (compact), not {size}"),
    );
    c.finish()?;
    let draft = EventDraft::new(kind.expect("checked above"), body.audience, body.data);
    publish(&state, rid, draft, &headers).await
}
