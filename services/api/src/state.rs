//! What every handler shares.

use std::sync::Arc;

use ordercast_core::auth::TokenVerifier;
use ordercast_core::policy::Action;
use ordercast_core::{Region, RestaurantId, Role};
use ordercast_http::{Caller, HasVerifier, HttpError, authorize};
use ordercast_store::{ChainDirectory, Store};

use crate::coalesce::Coalescer;
use crate::limits::Spender;
use crate::metrics::ApiMetrics;
use crate::writer::Writer;

/// Shared state of the api routes.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub verifier: Arc<TokenVerifier>,
    pub chains: Arc<ChainDirectory>,
    pub metrics: ApiMetrics,
    pub invalidations: Coalescer,
    pub(crate) write_limits: Arc<crate::limits::WriteLimits>,
    /// This region, and its peers.
    pub region: Region,
    pub peers: Vec<Region>,
    /// Sends writes homed elsewhere to their region (`None`: no peers).
    pub(crate) forwarder: Option<Arc<crate::forward::Forwarder>>,
}

impl HasVerifier for AppState {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl AppState {
    /// [`authorize`] with this state's directory and store; a command
    /// then spends one of its caller's write budgets (`429` when spent): a
    /// guest's table session and the restaurant's guests, anyone else the
    /// restaurant's staff budget.
    pub async fn authorize(
        &self,
        caller: &Caller,
        id: RestaurantId,
        action: Action,
    ) -> Result<(), HttpError> {
        authorize(&caller.0, id, action, &self.chains, &self.store).await?;
        if action.is_command() {
            let principal = &caller.0;
            let spender = match (principal.role, &principal.session_id, &principal.waiter_id) {
                (Role::Customer, Some(session), _) => Spender::Guest(session),
                (Role::Waiter, _, Some(waiter)) => Spender::Waiter(waiter),
                _ => Spender::Staff,
            };
            self.write_limits
                .take(id, spender)
                .inspect_err(|_| self.metrics.rate_limited.inc())?;
        }
        Ok(())
    }
}
