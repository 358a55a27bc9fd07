//! WebSocket upgrades on both of the server's paths: a connection hyper
//! serves (the upgrade comes from hyper's `OnUpgrade`), and one whose first
//! request was read by [`crate::direct`], which never goes through hyper
//! (the socket is handed over after the `101` is written, see
//! [`DirectUpgrade`]). Either way the handler sees the same
//! [`WebSocketUpgrade`] and its callback the same [`WebSocket`], and the
//! client the same handshake: axum's checks and answers, the same
//! `101` fields.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Sink, Stream};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self as ts};

/// A connection's byte stream, whichever path it came by.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// What runs on the socket once the `101` is written.
pub type OnSocket = Box<dyn FnOnce(Box<dyn Io>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Put in the extensions of a request read by [`crate::direct`]: the
/// handler's [`WebSocketUpgrade::on_upgrade`] leaves here what runs on the
/// socket, and the direct path runs it after writing the `101`. (std Mutex:
/// never held across an await.)
#[derive(Clone, Default)]
pub struct DirectUpgrade(Arc<Mutex<Option<OnSocket>>>);

impl DirectUpgrade {
    /// What the handler left to run on the socket, if it accepted the
    /// upgrade.
    pub fn take(&self) -> Option<OnSocket> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set(&self, on_socket: OnSocket) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(on_socket);
    }
}

/// Where the socket will come from.
enum Way {
    Hyper(OnUpgrade),
    Direct(DirectUpgrade),
}

/// A WebSocket handshake, as axum's `WebSocketUpgrade` but for both of the
/// server's paths.
pub struct WebSocketUpgrade {
    key: HeaderValue,
    /// The subprotocols the client offered, in its order.
    offered: Vec<HeaderValue>,
    selected: Option<HeaderValue>,
    config: WebSocketConfig,
    way: Way,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let way = match parts.extensions.remove::<OnUpgrade>() {
            Some(on_upgrade) => Some(Way::Hyper(on_upgrade)),
            None => parts.extensions.remove::<DirectUpgrade>().map(Way::Direct),
        };
        // axum's own checks, in its order and with its answers. With the
        // `OnUpgrade` taken out above, a handshake that passes them all is
        // refused as not upgradable: that is ours to decide.
        let axum = axum::extract::ws::WebSocketUpgrade::from_request_parts(parts, state).await;
        let way = match (axum, way) {
            (Err(WebSocketUpgradeRejection::ConnectionNotUpgradable(_)), Some(way)) => way,
            (Err(rejection), _) => return Err(rejection),
            (Ok(_), _) => unreachable!("the OnUpgrade was taken out"),
        };
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .expect("axum checked it")
            .clone();
        let offered = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|protocol| HeaderValue::from_bytes(protocol.trim_ascii()).ok())
            .collect();
        Ok(WebSocketUpgrade {
            key,
            offered,
            selected: None,
            config: WebSocketConfig::default(),
            way,
        })
    }
}

impl WebSocketUpgrade {
    /// Selects `protocol` if the client offered it.
    pub fn protocol(mut self, protocol: &'static str) -> Self {
        let value = HeaderValue::from_static(protocol);
        if self.offered.contains(&value) {
            self.selected = Some(value);
        }
        self
    }

    /// The subprotocol selected, if the client offered it.
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.selected.as_ref()
    }

    /// Sets the socket's limits and buffers.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// The `101` answer; `callback` runs with the socket once it is
    /// written: in a task of its own on hyper's path, in the connection's
    /// task on the direct path.
    #[must_use = "the upgrade happens only if this response is returned"]
    pub fn on_upgrade<C, F>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let config = self.config;
        let run = move |io: Box<dyn Io>| async move {
            let inner = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            callback(WebSocket { inner }).await;
        };
        match self.way {
            Way::Hyper(on_upgrade) => {
                tokio::spawn(async move {
                    // A failed upgrade: the client went away meanwhile.
                    if let Ok(upgraded) = on_upgrade.await {
                        run(Box::new(TokioIo::new(upgraded))).await;
                    }
                });
            }
            Way::Direct(direct) => direct.set(Box::new(move |io| Box::pin(run(io)))),
        }
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = derive_accept_key(self.key.as_bytes());
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a header value"),
        );
        if let Some(protocol) = self.selected {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }
}

/// An upgraded socket, in axum's message types (its errors wrap
/// tungstenite's, as axum's do).
pub struct WebSocket {
    inner: WebSocketStream<Box<dyn Io>>,
}

impl Stream for WebSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let message = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => message,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(axum::Error::new(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // A raw frame is never read, only written: skip it as axum does.
            if let Some(message) = from_tungstenite(message) {
                return Poll::Ready(Some(Ok(message)));
            }
        }
    }
}

impl Sink<Message> for WebSocket {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner)
            .poll_ready(cx)
            .map_err(axum::Error::new)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.inner)
            .start_send(into_tungstenite(message))
            .map_err(axum::Error::new)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner)
            .poll_flush(cx)
            .map_err(axum::Error::new)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner)
            .poll_close(cx)
            .map_err(axum::Error::new)
    }
}

/// axum's text is valid UTF-8 already; checking it again costs no copy.
fn text(text: Utf8Bytes) -> ts::Utf8Bytes {
    ts::Utf8Bytes::try_from(Bytes::from(text)).expect("axum's text is UTF-8")
}

fn into_tungstenite(message: Message) -> ts::Message {
    match message {
        Message::Text(t) => ts::Message::Text(text(t)),
        Message::Binary(b) => ts::Message::Binary(b),
        Message::Ping(b) => ts::Message::Ping(b),
        Message::Pong(b) => ts::Message::Pong(b),
        Message::Close(close) => ts::Message::Close(close.map(|c| ts::protocol::CloseFrame {
            code: c.code.into(),
            reason: text(c.reason),
        })),
    }
}

fn from_tungstenite(message: ts::Message) -> Option<Message> {
    let text = |t: ts::Utf8Bytes| {
        Utf8Bytes::try_from(Bytes::from(t)).expect("tungstenite's text is UTF-8")
    };
    Some(match message {
        ts::Message::Text(t) => Message::Text(text(t)),
        ts::Message::Binary(b) => Message::Binary(b),
        ts::Message::Ping(b) => Message::Ping(b),
        ts::Message::Pong(b) => Message::Pong(b),
        ts::Message::Close(close) => Message::Close(close.map(|c| CloseFrame {
            code: c.code.into(),
            reason: text(c.reason),
        })),
        ts::Message::Frame(_) => return None,
    })
}
