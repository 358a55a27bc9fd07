//! Whether a subscriber may watch a restaurant.

use ordercast_core::RestaurantId;
use ordercast_core::auth::{Principal, TokenVerifier};
use ordercast_core::policy::Action;
use ordercast_http::{HasVerifier, HttpError, authorize};

use crate::state::Shared;

impl HasVerifier for Shared {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// Checks that `principal` may watch `restaurant`.
pub(crate) async fn may_watch(
    state: &Shared,
    principal: &Principal,
    restaurant: RestaurantId,
) -> Result<(), HttpError> {
    authorize(
        principal,
        restaurant,
        Action::Subscribe,
        &state.chains,
        &state.store,
    )
    .await
}
