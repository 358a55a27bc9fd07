//! `POST /v1/restaurants`, `GET /v1/restaurants/{rid}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordercast_core::policy::Action;
use ordercast_core::{ChainId, Reach, Region, RestaurantId, Role};
use ordercast_store::{NewRestaurant, Restaurant, StoreError};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;
use crate::validate::Checks;
use ordercast_http::Caller;
use ordercast_http::extract::{Body, Path};
use ordercast_http::{HttpError, Problem};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_restaurant))
        .routes(routes!(get_restaurant))
}

/// A restaurant to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRestaurant {
    /// Defaults to a fresh UUIDv7.
    id: Option<RestaurantId>,
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// Defaults to the admin token's chain.
    chain_id: Option<ChainId>,
    /// Its home region, where its writes commit; defaults to the region
    /// that receives the request (another region's is forwarded there).
    #[schema(value_type = Option<String>)]
    region: Option<Region>,
    /// The other regions its orders and events may be stored in. Absent:
    /// every region of the deployment; `[]`: its home region only.
    #[schema(value_type = Option<Vec<String>>)]
    reach: Option<Vec<Region>>,
}

/// Create a restaurant (admin only; within the token's chain).
#[utoipa::path(post, path = "/v1/restaurants", tag = "restaurants",
    request_body = CreateRestaurant,
    responses((status = 201, body = Restaurant), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn create_restaurant(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateRestaurant>,
) -> Result<(StatusCode, Json<Restaurant>), HttpError> {
    let principal = &caller.0;
    if principal.role != Role::Admin {
        return Err(HttpError::Forbidden("only admins create restaurants"));
    }
    let chain_id = body.chain_id.or(principal.chain_id());
    let permitted = match chain_id {
        Some(chain) => principal.may_access_chain(chain),
        // A restaurant outside any chain: platform admins only.
        None => principal.is_platform_admin(),
    };
    if !permitted {
        return Err(HttpError::Forbidden(
            "this token may not create restaurants in that chain",
        ));
    }
    let mut checks = Checks::new();
    checks.text("name", &body.name, 200);
    checks.finish()?;
    let region = body.region.unwrap_or_else(|| state.region.clone());
    if region != state.region {
        // A peer's was forwarded before reaching this handler.
        return Err(HttpError::UnknownRegion(region.to_string()));
    }
    let reach = match body.reach {
        None => Reach::Everywhere,
        Some(regions) => {
            if let Some(unknown) = regions.iter().find(|r| !state.peers.contains(r)) {
                return Err(HttpError::UnknownRegion(unknown.to_string()));
            }
            Reach::Only(regions)
        }
    };
    let new = NewRestaurant {
        id: body.id.unwrap_or_default(),
        name: body.name,
        chain_id,
        region,
        reach,
    };
    let id = new.id;
    match state.store.create_restaurant(new).await {
        Ok(restaurant) => Ok((StatusCode::CREATED, Json(restaurant))),
        Err(taken @ StoreError::AlreadyExists(_)) => {
            // Only a restaurant the caller may read is its to know exists:
            // another chain's id is refused as the chain itself would be.
            state.authorize(&caller, id, Action::ReadRestaurant).await?;
            Err(taken.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A restaurant, with the seq of its latest event.
#[utoipa::path(get, path = "/v1/restaurants/{rid}", tag = "restaurants",
    params(("rid" = String, Path, format = Uuid)),
    responses((status = 200, body = Restaurant), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn get_restaurant(
    State(state): State<AppState>,
    caller: Caller,
    Path(rid): Path<RestaurantId>,
) -> Result<Json<Restaurant>, HttpError> {
    state
        .authorize(&caller, rid, Action::ReadRestaurant)
        .await?;
    Ok(Json(state.store.restaurant(rid).await?))
}
