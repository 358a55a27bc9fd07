//! Who is calling, and whether they may act on a restaurant.
//!
//! A token comes from `Authorization: Bearer`, or, for streams only, from
//! the `access_token` query parameter (EventSource cannot set headers) or a
//! WebSocket subprotocol `ordercast.bearer.<token>`. None of them is ever
//! logged: request spans record the route only.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::request::Parts;
use ordercast_core::RestaurantId;
use ordercast_core::auth::{Access, AuthError, Principal, TokenVerifier};
use ordercast_core::policy::{self, Action};
use ordercast_store::{ChainDirectory, Store, StoreError};
use serde::Deserialize;

use crate::HttpError;

/// Prefix of the WebSocket subprotocol that carries a token.
pub const PROTOCOL_TOKEN_PREFIX: &str = "ordercast.bearer.";

const FORBIDDEN: &str = "this token does not grant access to that restaurant";

/// Anything that can verify tokens (the api and edge states).
pub trait HasVerifier {
    fn verifier(&self) -> &TokenVerifier;
}

impl<T: HasVerifier> HasVerifier for std::sync::Arc<T> {
    fn verifier(&self) -> &TokenVerifier {
        (**self).verifier()
    }
}

/// The verified caller of a command or query: the token comes from the
/// `Authorization` header only.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// The verified subscriber of a stream: the token comes from the header,
/// the `access_token` query parameter or the WebSocket subprotocol.
#[derive(Debug, Clone)]
pub struct Subscriber(pub Principal);

impl<S: HasVerifier + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        let token = bearer(parts).ok_or(AuthError::Missing)?;
        Ok(Caller(state.verifier().verify(token)?))
    }
}

impl<S: HasVerifier + Send + Sync> FromRequestParts<S> for Subscriber {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        let token = stream_token(parts).ok_or(AuthError::Missing)?;
        Ok(Subscriber(state.verifier().verify(&token)?))
    }
}

/// The token a stream was opened with, as sent (from the same places as
/// [`Subscriber`]'s), for a WebSocket to run commands as its client. Its
/// `Debug` never shows it.
#[derive(Clone)]
pub struct StreamToken(pub String);

impl std::fmt::Debug for StreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamToken(<redacted>)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for StreamToken {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        let token = stream_token(parts).ok_or(AuthError::Missing)?;
        Ok(StreamToken(token))
    }
}

/// A stream's token: the header, else the query parameter, else the
/// subprotocol.
fn stream_token(parts: &Parts) -> Option<String> {
    match bearer(parts) {
        Some(token) => Some(token.to_owned()),
        None => query_token(parts).or_else(|| protocol_token(parts)),
    }
}

/// The bearer token of a request, from `Authorization: Bearer …`.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

fn query_token(parts: &Parts) -> Option<String> {
    Query::<TokenQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|q| q.0.access_token)
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

/// Checks that `principal` may perform `action` on restaurant `id`. An
/// unknown restaurant is refused like another tenant's: `403`, never `404`.
pub async fn authorize(
    principal: &Principal,
    id: RestaurantId,
    action: Action,
    chains: &ChainDirectory,
    store: &Store,
) -> Result<(), HttpError> {
    if !policy::allowed(principal.role, action) {
        return Err(HttpError::Forbidden("this role may not do that"));
    }
    match principal.access(id) {
        Access::Granted => Ok(()),
        Access::Denied => Err(HttpError::Forbidden(FORBIDDEN)),
        Access::IfChainMatches => match chains.chain_of(store, id).await {
            Ok(Some(chain)) if principal.may_access_chain(chain) => Ok(()),
            Ok(_) | Err(StoreError::NotFound(_)) => Err(HttpError::Forbidden(FORBIDDEN)),
            Err(e) => Err(e.into()),
        },
    }
}
