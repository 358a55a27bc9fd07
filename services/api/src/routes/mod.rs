//! The public routes, each group in its own module, merged here.

mod orders;
mod publish;
mod requests;
mod restaurants;

use axum::Json;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use orders::{
    DEFAULT_PAGE_LIMIT, MAX_ITEMS, MAX_ORDER_TEXT_BYTES, MAX_QUANTITY, MAX_UNIT_PRICE_CENTS,
};
pub use publish::{MAX_CUSTOM_DATA_BYTES, MAX_INVALIDATION_RESOURCES};
pub use requests::MAX_TRANSFER_SESSIONS;

use crate::state::AppState;

/// Every api route, and the OpenAPI document describing them.
pub(crate) fn all() -> (axum::Router<AppState>, OpenApi) {
    let (router, mut api) = OpenApiRouter::new()
        .merge(restaurants::router())
        .merge(orders::router())
        .merge(requests::router())
        .merge(publish::router())
        .split_for_parts();
    api.info.title = "Ordercast API".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description =
        Some("Order commands and queries. Errors are application/problem+json.".into());
    let bearer = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build(),
    );
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", bearer);
    let document = api.clone();
    let router = router.route(
        "/openapi.json",
        axum::routing::get(move || async move { Json(document) }),
    );
    (router, api)
}
