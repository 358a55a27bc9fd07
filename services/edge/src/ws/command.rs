//! WebSocket commands (docs/protocol.md, "Commands"): each one runs as the
//! api call it stands for, with the socket's current token, its `id` as
//! the `Idempotency-Key` and its `version` as `If-Match`, so authorization,
//! validation, idempotency, rate budgets and versioning are the api's own.
//! The api's answer comes back as one `reply` frame with the same `id`.

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Request, header};
use ordercast_core::{ItemId, OrderId, RequestId, RestaurantId};
use ordercast_http::HttpError;
use ordercast_http::forwarding::IDEMPOTENT_REPLAYED;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::protocol::ServerMessage;
use crate::api::{Answer, ApiLink};

/// Commands one socket may have in flight; one more is answered
/// `too-many-commands` at once.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// Longest command `id` (as the api's `Idempotency-Key`).
const MAX_ID_LEN: usize = 255;

/// What a command changes (the `command` names it, e.g. `order.status`); every other field of the frame is the api
/// call's JSON body (`status`, `reason`, `message`, …), passed as sent.
#[derive(Debug, Deserialize)]
#[serde(tag = "command")]
enum Kind {
    #[serde(rename = "order.status")]
    Order {
        restaurant_id: RestaurantId,
        order_id: OrderId,
        /// The order's version last seen (`If-Match`).
        #[serde(default)]
        version: Option<i64>,
    },
    #[serde(rename = "order.item_status")]
    Item {
        restaurant_id: RestaurantId,
        order_id: OrderId,
        item_id: ItemId,
    },
    #[serde(rename = "request.status")]
    Request {
        restaurant_id: RestaurantId,
        request_id: RequestId,
    },
}

/// The fields that name the target, not the body.
const TARGET_FIELDS: [&str; 6] = [
    "command",
    "restaurant_id",
    "order_id",
    "item_id",
    "request_id",
    "version",
];

/// A command, checked and ready to run.
pub(crate) struct Command {
    id: String,
    path: String,
    version: Option<i64>,
    body: Map<String, Value>,
}

impl Command {
    /// Reads a command frame's fields (all but `type` and `id`); `Err` is
    /// the reply for a frame that names no valid command.
    pub(crate) fn parse(
        id: String,
        mut fields: Map<String, Value>,
    ) -> Result<Command, Box<ServerMessage>> {
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            let e = HttpError::InvalidParameter(format!(
                "a command id must be 1 to {MAX_ID_LEN} visible ASCII characters (it is the Idempotency-Key)"
            ));
            return Err(Box::new(failed(id, e)));
        }
        let kind = match Kind::deserialize(Value::Object(fields.clone())) {
            Ok(kind) => kind,
            Err(e) => return Err(Box::new(failed(id, HttpError::InvalidBody(e.to_string())))),
        };
        fields.retain(|name, _| !TARGET_FIELDS.contains(&name.as_str()));
        let (path, version) = match kind {
            Kind::Order {
                restaurant_id,
                order_id,
                version,
            } => (
                format!("/v1/restaurants/{restaurant_id}/orders/{order_id}/status"),
                version,
            ),
            Kind::Item {
                restaurant_id,
                order_id,
                item_id,
            } => (
                format!("/v1/restaurants/{restaurant_id}/orders/{order_id}/items/{item_id}/status"),
                None,
            ),
            Kind::Request {
                restaurant_id,
                request_id,
            } => (
                format!("/v1/restaurants/{restaurant_id}/requests/{request_id}/status"),
                None,
            ),
        };
        Ok(Command {
            id,
            path,
            version,
            body: fields,
        })
    }

    /// The command's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The api call: `POST <path>` with the body as JSON and the socket's
    /// token, the id as `Idempotency-Key`, the version as `If-Match` and
    /// the trace.
    fn request(&self, token: &str) -> Request<Bytes> {
        let body = serde_json::to_vec(&self.body).expect("JSON maps serialize");
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header("idempotency-key", &self.id);
        if let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) {
            request = request.header(header::AUTHORIZATION, bearer);
        }
        if let Some(version) = self.version {
            request = request.header(header::IF_MATCH, format!("\"{version}\""));
        }
        let none = axum::http::HeaderMap::new();
        if let Some(trace) = ordercast_http::trace::traceparent(&none) {
            request = request.header("traceparent", trace);
        }
        request
            .body(Bytes::from(body))
            .expect("ids, paths and versions are valid in a request")
    }

    /// Runs the command on the api as the holder of `token`; the reply.
    pub(crate) async fn run(self, api: &ApiLink, token: &str) -> ServerMessage {
        match api.call(self.request(token)).await {
            Ok(answer) => reply(self.id, answer),
            Err(why) => {
                tracing::warn!(error = %why, "a WebSocket command could not reach the api");
                failed(self.id, HttpError::CommandsUnavailable(why))
            }
        }
    }
}

/// The api's answer as a reply: its body as `result` (with the ETag's
/// `version` and whether it was `replayed`) or as `problem` (with
/// `retry_after`).
fn reply(id: String, answer: Answer) -> ServerMessage {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let header = |name| answer.headers.get(name).and_then(|v| v.to_str().ok());
    let ok = answer.status.is_success();
    ServerMessage::Reply {
        id,
        ok,
        status: answer.status.as_u16(),
        version: header(header::ETAG)
            .and_then(|tag| tag.trim_matches('"').parse().ok())
            .filter(|_| ok),
        replayed: header(IDEMPOTENT_REPLAYED) == Some("true"),
        retry_after: header(header::RETRY_AFTER).and_then(|s| s.parse().ok()),
        result: ok.then(|| body.clone()),
        problem: (!ok).then_some(body),
    }
}

/// A reply refusing the command with `e`'s problem.
pub(crate) fn failed(id: String, e: HttpError) -> ServerMessage {
    let problem = e.problem();
    ServerMessage::Reply {
        id,
        ok: false,
        status: problem.status,
        version: None,
        replayed: false,
        retry_after: None,
        result: None,
        problem: Some(serde_json::to_value(problem).expect("problems serialize")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn an_order_status_command_is_the_status_call_with_its_body_and_version() {
        let (rid, oid) = (RestaurantId::new(), OrderId::new());
        let command = Command::parse(
            "c-1".into(),
            fields(
                json!({"command": "order.status", "restaurant_id": rid, "order_id": oid,
                          "status": "cancelled", "reason": "no stock", "version": 3}),
            ),
        )
        .unwrap();

        let request = command.request("tok");

        assert_eq!(
            request.uri().path(),
            format!("/v1/restaurants/{rid}/orders/{oid}/status")
        );
        assert_eq!(request.headers()["if-match"], "\"3\"");
        assert_eq!(request.headers()["idempotency-key"], "c-1");
        assert_eq!(request.headers()["authorization"], "Bearer tok");
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body, json!({"status": "cancelled", "reason": "no stock"}));
    }

    #[test]
    fn a_frame_naming_no_command_is_refused_with_its_id() {
        let refused = |id: &str, value: Value| match *Command::parse(id.into(), fields(value))
            .err()
            .expect("refused")
        {
            ServerMessage::Reply { id, status, .. } => (id, status),
            other => panic!("not a reply: {other:?}"),
        };
        assert_eq!(
            refused("a", json!({"command": "order.delete"})),
            ("a".into(), 422)
        );
        assert_eq!(
            refused(
                "b",
                json!({"command": "request.status", "restaurant_id": "x"})
            ),
            ("b".into(), 422)
        );
        assert_eq!(
            refused("has space", json!({"command": "order.status"})),
            ("has space".into(), 400)
        );
    }
}
