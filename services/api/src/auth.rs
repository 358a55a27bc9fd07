//! Bearer tokens and restaurant-level authorization.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use ordercast_core::auth::{Access, AuthError, Principal, TokenVerifier};
use ordercast_core::policy::{self, Action};
use ordercast_core::{ChainId, RestaurantId};
use ordercast_store::{Store, StoreError};

use crate::error::ApiError;

/// Most restaurants whose chain is remembered; the map is cleared when full.
const CHAIN_CACHE_LIMIT: usize = 100_000;

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// The bearer token of a request, from `Authorization: Bearer …`.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Anything that can verify tokens (the api and edge states).
pub trait HasVerifier {
    fn verifier(&self) -> &TokenVerifier;
}

impl HasVerifier for crate::AppState {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl<S: HasVerifier + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(AuthError::Missing)?;
        Ok(Caller(state.verifier().verify(token)?))
    }
}

/// Remembers which chain each restaurant belongs to (it never changes), so
/// chain-scoped admins are authorized without a query per request.
#[derive(Default)]
pub struct ChainDirectory {
    // std Mutex: never held across .await.
    known: Mutex<HashMap<RestaurantId, Option<ChainId>>>,
}

impl ChainDirectory {
    async fn chain_of(&self, store: &Store, id: RestaurantId) -> Result<Option<ChainId>, ApiError> {
        if let Some(chain) = self.lock().get(&id) {
            return Ok(*chain);
        }
        let chain = match store.restaurant(id).await {
            Ok(r) => r.chain_id,
            // Unknown restaurants are not cached: they may be created later.
            Err(StoreError::NotFound(_)) => return Err(ApiError::Forbidden(FORBIDDEN)),
            Err(e) => return Err(e.into()),
        };
        let mut known = self.lock();
        if known.len() >= CHAIN_CACHE_LIMIT {
            known.clear();
        }
        known.insert(id, chain);
        Ok(chain)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, Option<ChainId>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const FORBIDDEN: &str = "this token does not grant access to that restaurant";

/// Checks that `principal` may perform `action` on restaurant `id`.
pub async fn authorize(
    principal: &Principal,
    id: RestaurantId,
    action: Action,
    chains: &Arc<ChainDirectory>,
    store: &Store,
) -> Result<(), ApiError> {
    if !policy::allowed(principal.role, action) {
        return Err(ApiError::Forbidden("this role may not do that"));
    }
    match principal.access(id) {
        Access::Granted => Ok(()),
        Access::Denied => Err(ApiError::Forbidden(FORBIDDEN)),
        Access::IfChainMatches => match chains.chain_of(store, id).await? {
            Some(chain) if principal.may_access_chain(chain) => Ok(()),
            _ => Err(ApiError::Forbidden(FORBIDDEN)),
        },
    }
}

impl crate::AppState {
    /// [`authorize`] with this state's directory and store; a command
    /// then spends one of the restaurant's write budget (`429` when spent).
    pub async fn authorize(
        &self,
        caller: &Caller,
        id: RestaurantId,
        action: Action,
    ) -> Result<(), ApiError> {
        authorize(&caller.0, id, action, &self.chains, &self.store).await?;
        if action.is_command() {
            self.write_limits
                .take(id)
                .inspect_err(|_| self.metrics.rate_limited.inc())?;
        }
        Ok(())
    }
}
