//! An edge for unit tests that never reach PostgreSQL or Redis (both are
//! connected lazily, at an address where nothing listens), one over the
//! test PostgreSQL and Redis (`make test`'s), its tokens, and a WebSocket
//! session without a socket.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, Utf8Bytes};
use ordercast_bus::{RedisSettings, Streams};
use ordercast_core::auth::{Claims, Principal, TokenIssuer, TokenVerifier};
use ordercast_core::event::EventDraft;
use ordercast_core::{Audience, Envelope, EventType, RestaurantId, Role, Seq};
use ordercast_store::{DbSettings, Store};
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

use crate::state::Shared;
use crate::{ApiLink, EdgeService, EdgeSettings};

const SECRET: &[u8] = b"unit-test-secret-of-at-least-32-bytes";

/// The one restaurant of [`kitchen_token`].
pub(crate) const KITCHEN_RESTAURANT: &str = "6f1c0d2e-0000-4000-8000-000000000001";

/// The edge's shared state with `settings`.
pub(crate) fn shared(settings: EdgeSettings) -> Arc<Shared> {
    shared_with_api(settings, ApiLink::Unset)
}

/// The edge's shared state with `settings`, running commands on `api`.
pub(crate) fn shared_with_api(settings: EdgeSettings, api: ApiLink) -> Arc<Shared> {
    let store = Store::connect_lazy(&DbSettings::from_url("postgres://127.0.0.1:1/none").unwrap());
    let redis = RedisSettings {
        url: "redis://127.0.0.1:1".into(),
        cluster: false,
        prefix: "unit".into(),
        stream_maxlen: 10_000,
        pool_size: 1,
        ca_pem: None,
        timeout: RedisSettings::DEFAULT_TIMEOUT,
    };
    let streams = Streams::new(&redis).unwrap();
    let verifier = TokenVerifier::hs256(SECRET, None, "ordercast").unwrap();
    let registry = prometheus::Registry::new();
    EdgeService::start(store, streams, &redis, verifier, &registry, settings, api)
        .unwrap()
        .shared
}

/// An edge over the test PostgreSQL (a fresh database) and Redis (a fresh
/// key prefix).
pub(crate) struct OnServers {
    pub shared: Arc<Shared>,
    pub streams: Streams,
    pub store: Store,
}

/// An edge with `settings` over the test servers.
pub(crate) async fn on_servers(settings: EdgeSettings) -> OnServers {
    let url = ordercast_testkit::fresh_database().await;
    let store = Store::connect_lazy(&DbSettings::from_url(&url).unwrap());
    let redis = RedisSettings {
        url: ordercast_testkit::redis_url(),
        cluster: false,
        prefix: ordercast_testkit::unique_prefix(),
        stream_maxlen: 10_000,
        pool_size: 4,
        ca_pem: None,
        timeout: RedisSettings::DEFAULT_TIMEOUT,
    };
    let streams = Streams::new(&redis).unwrap();
    let verifier = TokenVerifier::hs256(SECRET, None, "ordercast").unwrap();
    let registry = prometheus::Registry::new();
    let edge = EdgeService::start(
        store.clone(),
        streams.clone(),
        &redis,
        verifier,
        &registry,
        settings,
        ApiLink::Unset,
    )
    .unwrap();
    OnServers {
        shared: edge.shared,
        streams,
        store,
    }
}

/// Adds a kitchen notification with `seq` to the restaurant's stream, as
/// the api would; returns it.
pub(crate) async fn publish(streams: &Streams, restaurant: RestaurantId, seq: u64) -> Envelope {
    let envelope = Envelope::seal(
        restaurant,
        Seq(seq),
        Envelope::now(),
        None,
        EventDraft::new(
            EventType::Notification,
            Audience::roles(&[Role::Kitchen]),
            serde_json::json!({}),
        ),
    );
    let mut conn = streams.conn().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(streams.keys().stream(restaurant))
        .arg(format!("{seq}-0"))
        .arg("event")
        .arg(serde_json::to_string(&envelope).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    envelope
}

/// A kitchen token that expires `ttl` from now.
pub(crate) fn kitchen_token(ttl: Duration) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let claims = Claims {
        sub: "kds-1".into(),
        role: Role::Kitchen,
        restaurants: vec![KITCHEN_RESTAURANT.into()],
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

/// [`KITCHEN_RESTAURANT`] as an id.
pub(crate) fn kitchen_restaurant() -> RestaurantId {
    KITCHEN_RESTAURANT.parse().unwrap()
}

/// The far end of a WebSocket session: what it wrote, and its inbound half.
pub(crate) struct WsPeer {
    /// The session's `hello` was read.
    greeted: bool,
    written: UnboundedReceiver<Message>,
    inbound: UnboundedSender<Result<Message, axum::Error>>,
    _session: JoinHandle<()>,
}

/// Runs a WebSocket session of `principal` over channels.
pub(crate) fn ws_session(state: &Arc<Shared>, principal: Principal) -> WsPeer {
    let (sink, written) = unbounded_channel();
    let (inbound, stream) = unbounded_channel();
    let sink = Box::pin(futures_util::sink::unfold(
        sink,
        |sink: UnboundedSender<Message>, message| async move {
            sink.send(message).map_err(axum::Error::new)?;
            Ok::<_, axum::Error>(sink)
        },
    ));
    let stream = Box::pin(futures_util::stream::unfold(
        stream,
        |mut stream| async move { stream.recv().await.map(|message| (message, stream)) },
    ));
    let opened = crate::ws::Opened {
        principal: Arc::new(principal),
        token: ordercast_http::StreamToken("unit".into()),
        protocol: None,
    };
    let session = crate::ws::run_session(sink, stream, state.clone(), opened);
    WsPeer {
        greeted: false,
        written,
        inbound,
        _session: tokio::spawn(session),
    }
}

impl WsPeer {
    /// The next frame after the session's `hello`.
    pub(crate) async fn next(&mut self) -> Message {
        loop {
            let message = self.written.recv().await.expect("the session wrote more");
            if !self.greeted {
                self.greeted = true;
                if let Message::Text(text) = &message
                    && text.starts_with(r#"{"type":"hello""#)
                {
                    continue;
                }
                panic!("the first frame is not a hello: {message:?}");
            }
            return message;
        }
    }

    pub(crate) async fn next_json(&mut self) -> Value {
        match self.next().await {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("not a text frame: {other:?}"),
        }
    }

    pub(crate) fn send(&self, message: Message) {
        self.inbound.send(Ok(message)).unwrap();
    }

    pub(crate) fn send_json(&self, value: Value) {
        self.send(Message::Text(Utf8Bytes::from(value.to_string())));
    }
}
