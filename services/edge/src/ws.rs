//! WebSocket: `GET /v1/ws`, many restaurants per socket (docs/protocol.md).
//!
//! `protocol` holds the messages, `budget` what a socket's `sync`s may cost, `session` the socket task (reads client
//! messages, writes, pings, ends the session), `subscription` one task per
//! subscribed restaurant, each feeding the session's bounded queue from its
//! cursor, so a full queue only pauses this socket's subscriptions and
//! never the hub.

mod budget;
mod command;
mod protocol;
mod session;
mod subscription;

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt;
use ordercast_http::upgrade::WebSocketUpgrade;
use ordercast_http::{HttpError, StreamToken, Subscriber};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::state::EdgeState;

#[cfg(test)]
pub(crate) use session::{Opened, run as run_session};

/// A socket's read buffer, bytes: also how much one read takes in.
const READ_BUFFER: usize = 256;

pub(crate) async fn upgrade(
    State(state): State<EdgeState>,
    subscriber: Subscriber,
    token: StreamToken,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    if !state.settings.cors.allows_websocket(&headers) {
        return Err(HttpError::Forbidden(
            "this page's origin may not open a WebSocket here (ORDERCAST_CORS_ORIGINS)",
        ));
    }
    let permit = state.admit(&subscriber.0)?;
    let max = state.settings.ws_max_message;
    let ws = ws.protocol(protocol::PROTOCOL);
    let protocol = ws.selected_protocol().map(|_| protocol::PROTOCOL);
    let opened = session::Opened {
        principal: Arc::new(subscriber.0),
        token,
        protocol,
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // Small buffers: thousands of mostly idle sockets per process. The
        // read buffer is allocated (and zeroed) whole, and what a client
        // sends is mostly small (`subscribe`, `ack`, pongs); a larger
        // message grows it to the message's size.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    Ok(ws.config(config).on_upgrade(move |socket| {
        let sessions = state.sessions.clone();
        sessions.track_future(async move {
            let _permit = permit;
            let (sink, inbound) = socket.split();
            session::run(sink, inbound, state, opened).await;
        })
    }))
}
