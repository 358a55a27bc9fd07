//! An edge for unit tests that never reach PostgreSQL or Redis (both are
//! connected lazily, at an address where nothing listens), and its tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordercast_bus::{RedisSettings, Streams};
use ordercast_core::Role;
use ordercast_core::auth::{Claims, Principal, TokenIssuer, TokenVerifier};
use ordercast_store::{DbSettings, Store};

use crate::state::Shared;
use crate::{EdgeService, EdgeSettings};

const SECRET: &[u8] = b"unit-test-secret-of-at-least-32-bytes";

/// The edge's shared state with `settings`.
pub(crate) fn shared(settings: EdgeSettings) -> Arc<Shared> {
    let store = Store::connect_lazy(&DbSettings::from_url("postgres://127.0.0.1:1/none").unwrap());
    let redis = RedisSettings {
        url: "redis://127.0.0.1:1".into(),
        cluster: false,
        prefix: "unit".into(),
        stream_maxlen: 10_000,
        pool_size: 1,
        ca_pem: None,
    };
    let streams = Streams::new(&redis).unwrap();
    let verifier = TokenVerifier::hs256(SECRET, None, "ordercast").unwrap();
    let registry = prometheus::Registry::new();
    EdgeService::start(store, streams, &redis, verifier, &registry, settings)
        .unwrap()
        .shared
}

/// A kitchen token that expires `ttl` from now.
pub(crate) fn kitchen_token(ttl: Duration) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let claims = Claims {
        sub: "kds-1".into(),
        role: Role::Kitchen,
        restaurants: vec!["6f1c0d2e-0000-4000-8000-000000000001".into()],
        chain_id: None,
        waiter_id: None,
        session_id: None,
        exp: (now + ttl).as_secs(),
        iat: Some(now.as_secs()),
        iss: None,
        aud: Some("ordercast".into()),
    };
    TokenIssuer::hs256(SECRET).unwrap().mint(&claims)
}

/// The verified principal of [`kitchen_token`].
pub(crate) fn kitchen(ttl: Duration) -> Principal {
    TokenVerifier::hs256(SECRET, None, "ordercast")
        .unwrap()
        .verify(&kitchen_token(ttl))
        .unwrap()
}
