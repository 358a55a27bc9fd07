//! Real clients: an SSE reader over a streaming HTTP response, a WebSocket
//! client (tokio-tungstenite) and long-poll requests.
#![allow(dead_code, unreachable_pub)]

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use ordercast_core::RestaurantId;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How long any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct SseEvent {
    pub id: u64,
    pub kind: String,
    pub data: Value,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An SSE connection, parsed as a browser's EventSource would.
pub struct Sse {
    pub events: Vec<SseEvent>,
    /// Blocks without an `id:` (not events: `stale`, `live`), as
    /// (event name, data).
    pub signals: Vec<(String, Value)>,
    pub retry: Option<u64>,
    pub comments: usize,
    pub ended: bool,
    pub headers: reqwest::header::HeaderMap,
    body: ByteStream,
    buf: Vec<u8>,
}

/// An SSE request's options.
#[derive(Default, Clone)]
pub struct Resume {
    pub last_event_id: Option<u64>,
    pub since: Option<String>,
    /// Send the token as `?access_token=` instead of a header.
    pub token_in_query: bool,
}

impl Resume {
    /// `?since=<since>`.
    pub fn since(since: &str) -> Resume {
        Resume {
            since: Some(since.into()),
            ..Resume::default()
        }
    }
}

impl Sse {
    pub async fn open(
        base: &str,
        rid: RestaurantId,
        token: &str,
        resume: Resume,
    ) -> Result<Sse, (StatusCode, Value)> {
        let mut url = reqwest::Url::parse(&format!("{base}/v1/restaurants/{rid}/stream")).unwrap();
        if let Some(since) = &resume.since {
            url.query_pairs_mut().append_pair("since", since);
        }
        let mut request = reqwest::Client::new().get(url.clone());
        if resume.token_in_query {
            url.query_pairs_mut().append_pair("access_token", token);
            request = reqwest::Client::new().get(url);
        } else {
            request = request.bearer_auth(token);
        }
        if let Some(id) = resume.last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.json().await.unwrap_or(Value::Null);
            return Err((status, body));
        }
        Ok(Sse {
            events: Vec::new(),
            signals: Vec::new(),
            retry: None,
            comments: 0,
            ended: false,
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        })
    }

    /// Opens and expects success.
    pub async fn connect(base: &str, rid: RestaurantId, token: &str, resume: Resume) -> Sse {
        match Sse::open(base, rid, token, resume).await {
            Ok(sse) => sse,
            Err((status, body)) => panic!("SSE refused: {status} {body}"),
        }
    }

    /// Reads until `done` holds (panics after the deadline).
    pub async fn until(&mut self, what: &str, done: impl Fn(&Sse) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            assert!(
                !self.ended,
                "stream ended while waiting for {what}; have seqs {:?}",
                self.seqs()
            );
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {what}; have seqs {:?}", self.seqs())
                });
            match chunk {
                Some(Ok(bytes)) => self.feed(&bytes),
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }

    /// Reads until `n` events in all have arrived.
    pub async fn until_count(&mut self, n: usize) {
        self.until(&format!("{n} events"), |s| s.events.len() >= n)
            .await
    }

    /// Reads until the server ends the stream.
    pub async fn until_end(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while !self.ended {
            match tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("the stream to end")
            {
                Some(Ok(bytes)) => self.feed(&bytes),
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|e| e.id).collect()
    }

    pub fn last_id(&self) -> Option<u64> {
        self.events.last().map(|e| e.id)
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let block = String::from_utf8(block).expect("UTF-8 events");
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).expect("JSON data"));
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    self.retry = Some(v.parse().expect("numeric retry"));
                } else if line.starts_with(':') {
                    self.comments += 1;
                }
            }
            match (id, kind, data) {
                (Some(id), Some(kind), Some(data)) => self.events.push(SseEvent { id, kind, data }),
                (None, Some(kind), Some(data)) => self.signals.push((kind, data)),
                _ => {}
            }
        }
    }
}

/// Asserts `seqs` is exactly `expected`, in order.
pub fn assert_exactly(seqs: &[u64], expected: impl IntoIterator<Item = u64>, who: &str) {
    let expected: Vec<u64> = expected.into_iter().collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "{who}: every event once, in order"
    );
}

/// A WebSocket client.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Every frame after the `hello`.
    pub frames: Vec<Value>,
    /// The session's first frame, once read.
    pub hello: Option<Value>,
    pub closed: Option<(u16, String)>,
}

impl Ws {
    pub async fn connect(base: &str, token: &str) -> Ws {
        Self::connect_with(base, |r| {
            r.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        })
        .await
    }

    pub async fn connect_with(
        base: &str,
        edit: impl FnOnce(&mut tokio_tungstenite::tungstenite::handshake::client::Request),
    ) -> Ws {
        let url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "ordercast.v1".parse().unwrap());
        edit(&mut request);
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        assert_eq!(response.headers()["sec-websocket-protocol"], "ordercast.v1");
        Ws {
            socket,
            frames: Vec::new(),
            hello: None,
            closed: None,
        }
    }

    /// A connection with a 4 KiB receive buffer, whose writes stall soon
    /// once it stops reading.
    pub async fn connect_small(base: &str, token: &str) -> Ws {
        let address = base.trim_start_matches("http://");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(address.parse().unwrap()).await.unwrap();
        let url = format!("ws://{address}/v1/ws");
        let mut request = url.into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("sec-websocket-protocol", "ordercast.v1".parse().unwrap());
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) =
            tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
                .await
                .expect("WebSocket handshake");
        Ws {
            socket,
            frames: Vec::new(),
            hello: None,
            closed: None,
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) -> bool {
        self.socket.send(message).await.is_ok()
    }

    /// Subscribes to `rid` (from `since`, or from now) and waits until the
    /// subscription is open.
    pub async fn subscribe(&mut self, rid: RestaurantId, since: Option<u64>) {
        let opened = |w: &Ws| {
            w.of_type("subscribed")
                .iter()
                .filter(|f| f["restaurant_id"] == rid.to_string())
                .count()
        };
        let before = opened(self);
        self.send(serde_json::json!({"type": "subscribe", "restaurant_id": rid, "since": since}))
            .await;
        self.until("subscribed", |w| opened(w) > before).await;
    }

    /// Reads until `done` holds over the frames received so far.
    pub async fn until(&mut self, what: &str, done: impl Fn(&Ws) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            assert!(
                self.closed.is_none(),
                "closed {:?} while waiting for {what}",
                self.closed
            );
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {what}; frames: {:?}", self.frames)
                });
            self.record(message);
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn until_closed(&mut self) -> (u16, String) {
        let deadline = Instant::now() + DEADLINE;
        while self.closed.is_none() {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a close");
            self.record(message);
        }
        self.closed.clone().unwrap()
    }

    fn record(&mut self, message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        match message {
            Some(Ok(Message::Text(t))) => {
                let frame: Value = serde_json::from_str(&t).unwrap();
                if self.hello.is_none() && self.frames.is_empty() {
                    assert_eq!(frame["type"], "hello", "the first frame");
                    self.hello = Some(frame);
                } else {
                    self.frames.push(frame);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                self.closed = Some(
                    frame
                        .map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()))
                        .unwrap_or((1005, String::new())),
                );
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                self.closed.get_or_insert((1006, String::new()));
            }
        }
    }

    /// Sends a command frame (with `id`) and waits for its reply.
    pub async fn command(&mut self, id: &str, command: Value) -> Value {
        let mut frame = command;
        frame["type"] = "command".into();
        frame["id"] = id.into();
        let before = self.replies(id).len();
        self.send(frame).await;
        self.reply_after(id, before).await
    }

    /// Waits for a reply to command `id`.
    pub async fn reply(&mut self, id: &str) -> Value {
        self.reply_after(id, 0).await
    }

    /// Waits for the reply to `id` that follows the `before` already read.
    async fn reply_after(&mut self, id: &str, before: usize) -> Value {
        let replied = |w: &Ws| w.replies(id).len();
        self.until(&format!("the reply to {id}"), |w| replied(w) > before)
            .await;
        self.replies(id)[before].clone()
    }

    /// The replies to command `id` so far.
    pub fn replies(&self, id: &str) -> Vec<&Value> {
        self.of_type("reply")
            .into_iter()
            .filter(|f| f["id"] == id)
            .collect()
    }

    /// Frames of a type.
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.frames.iter().filter(|f| f["type"] == kind).collect()
    }

    /// The `code` of each `error` frame so far.
    pub fn error_codes(&self) -> Vec<Value> {
        self.of_type("error")
            .iter()
            .map(|e| e["code"].clone())
            .collect()
    }

    /// Seqs of the event frames of a restaurant.
    pub fn seqs(&self, rid: RestaurantId) -> Vec<u64> {
        self.of_type("event")
            .iter()
            .filter(|f| f["event"]["restaurant_id"] == rid.to_string())
            .map(|f| f["event"]["seq"].as_u64().unwrap())
            .collect()
    }
}

/// One long-poll request: (status, body).
pub async fn poll(base: &str, rid: RestaurantId, token: &str, query: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/restaurants/{rid}/events?{query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}
