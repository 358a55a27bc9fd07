//! Who is subscribing: the token comes from `Authorization: Bearer`, the
//! `access_token` query parameter (EventSource cannot set headers) or a
//! WebSocket subprotocol `ordercast.bearer.<token>`. None of them is ever
//! logged: request spans record the path only.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use axum::http::request::Parts;
use ordercast_api::auth::{authorize, bearer};
use ordercast_api::error::ApiError;
use ordercast_core::RestaurantId;
use ordercast_core::auth::{AuthError, Principal};
use ordercast_core::policy::Action;
use serde::Deserialize;

use crate::EdgeState;

/// Prefix of the WebSocket subprotocol that carries a token.
pub(crate) const PROTOCOL_TOKEN_PREFIX: &str = "ordercast.bearer.";

/// The verified subscriber.
pub(crate) struct Subscriber(pub Principal);

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

fn protocol_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix(PROTOCOL_TOKEN_PREFIX)
                .map(str::to_owned)
        })
}

impl FromRequestParts<EdgeState> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &EdgeState) -> Result<Self, ApiError> {
        let token = match bearer(parts) {
            Some(token) => token.to_owned(),
            None => Query::<TokenQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|q| q.0.access_token)
                .or_else(|| protocol_token(parts))
                .ok_or(AuthError::Missing)?,
        };
        Ok(Subscriber(state.verifier.verify(&token)?))
    }
}

/// Checks that `principal` may watch `restaurant`.
pub(crate) async fn may_watch(
    state: &EdgeState,
    principal: &Principal,
    restaurant: RestaurantId,
) -> Result<(), ApiError> {
    authorize(
        principal,
        restaurant,
        Action::Subscribe,
        &state.chains,
        &state.store,
    )
    .await
}
