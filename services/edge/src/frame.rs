//! An event serialized once per wire format; every subscriber shares the
//! bytes.

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use ordercast_bus::Entry;
use ordercast_core::{Audience, Envelope, EventType, RestaurantId, Seq, TraceParent};
use serde::Deserialize;

/// One event, ready to write on any transport.
#[derive(Debug)]
pub struct Frame {
    pub seq: Seq,
    /// Commit time, the start of the delivery-latency measurement.
    pub ts: DateTime<Utc>,
    pub audience: Audience,
    /// The envelope as JSON (long-poll bodies embed it as is).
    pub json: Bytes,
    /// `id: <seq>\nevent: <type>\ndata: <json>\n\n`.
    pub sse: Bytes,
    /// `{"type":"event","event":<json>}`, checked as UTF-8 once.
    pub ws: Utf8Bytes,
    /// Read from PostgreSQL to fill a jump in the stream: delivered as
    /// catch-up even to live subscribers (see [`crate::metrics::Kind`]).
    pub filled: bool,
    /// The request that produced the event, for the delivery's span.
    pub trace: Option<TraceParent>,
}

/// The envelope fields the edge needs; `data` stays unparsed.
#[derive(Deserialize)]
struct Head {
    restaurant_id: RestaurantId,
    seq: Seq,
    #[serde(rename = "type")]
    kind: EventType,
    ts: DateTime<Utc>,
    audience: Audience,
    /// Never refuses the event: a trace that does not parse is left out.
    #[serde(default, deserialize_with = "lenient_trace")]
    trace: Option<TraceParent>,
}

fn lenient_trace<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TraceParent>, D::Error> {
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(text.and_then(|t| t.parse().ok()))
}

/// Why a stream entry could not be turned into a frame.
#[derive(Debug, thiserror::Error)]
#[error("malformed event JSON: {0}")]
pub struct MalformedEvent(#[from] serde_json::Error);

impl Frame {
    /// Bytes this frame holds in memory (its three encodings).
    pub fn size(&self) -> usize {
        self.json.len() + self.sse.len() + self.ws.len()
    }

    /// A frame from an envelope's JSON exactly as the api published it.
    /// Returns the restaurant it belongs to as well.
    pub fn from_json(json: Bytes) -> Result<(RestaurantId, Frame), MalformedEvent> {
        let head: Head = serde_json::from_slice(&json)?;
        Ok((head.restaurant_id, Frame::build(head, json)))
    }

    /// A frame from a stream entry of `restaurant`'s stream, unless its
    /// envelope is malformed or names another restaurant or seq (logged;
    /// the seq is then filled from PostgreSQL).
    pub fn from_entry(restaurant: RestaurantId, entry: Entry) -> Option<Frame> {
        match Frame::from_json(entry.event) {
            Ok((rid, frame)) if rid == restaurant && frame.seq == entry.seq => Some(frame),
            Ok(_) => {
                tracing::warn!(%restaurant, seq = %entry.seq, "stream entry does not match its id or stream");
                None
            }
            Err(e) => {
                tracing::warn!(%restaurant, seq = %entry.seq, error = %e, "malformed stream entry");
                None
            }
        }
    }

    /// A frame from an envelope read from PostgreSQL.
    pub fn from_envelope(envelope: &Envelope) -> Frame {
        let json = Bytes::from(serde_json::to_vec(envelope).expect("envelopes serialize"));
        let head = Head {
            restaurant_id: envelope.restaurant_id,
            seq: envelope.seq,
            kind: envelope.kind.clone(),
            ts: envelope.ts,
            audience: envelope.audience.clone(),
            trace: envelope.trace.as_deref().and_then(|t| t.parse().ok()),
        };
        Frame::build(head, json)
    }

    fn build(head: Head, json: Bytes) -> Frame {
        let kind = head.kind.as_str();
        // serde_json never emits a raw newline, so one `data:` line suffices.
        let mut sse = BytesMut::with_capacity(json.len() + kind.len() + 40);
        sse.put_slice(format!("id: {}\nevent: {kind}\ndata: ", head.seq).as_bytes());
        sse.put_slice(&json);
        sse.put_slice(b"\n\n");
        let mut ws = BytesMut::with_capacity(json.len() + 28);
        ws.put_slice(br#"{"type":"event","event":"#);
        ws.put_slice(&json);
        ws.put_slice(b"}");
        Frame {
            seq: head.seq,
            ts: head.ts,
            audience: head.audience,
            json,
            sse: sse.freeze(),
            ws: Utf8Bytes::try_from(ws.freeze()).expect("JSON is UTF-8"),
            filled: false,
            trace: head.trace,
        }
    }

    /// A frame from an envelope read from PostgreSQL to fill a gap.
    pub fn filled(envelope: &Envelope) -> Frame {
        Frame {
            filled: true,
            ..Frame::from_envelope(envelope)
        }
    }

    /// Seconds from the event's commit to now.
    pub fn age_secs(&self) -> f64 {
        let micros = (Utc::now() - self.ts).num_microseconds().unwrap_or(0);
        micros.max(0) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use ordercast_core::Role;
    use ordercast_core::event::EventDraft;

    use super::*;

    fn envelope() -> Envelope {
        Envelope::seal(
            "6f1c0d2e-0000-4000-8000-000000000001".parse().unwrap(),
            Seq(7),
            "2026-11-23T10:00:00.123456Z".parse().unwrap(),
            None,
            EventDraft::new(
                EventType::OrderCreated,
                Audience::roles(&[Role::Kitchen]),
                serde_json::json!({"note": "line one\nline two"}),
            ),
        )
    }

    #[test]
    fn every_format_carries_the_same_envelope() {
        let env = envelope();
        let frame = Frame::from_envelope(&env);
        let sse = std::str::from_utf8(&frame.sse).unwrap();
        let data = sse
            .strip_prefix("id: 7\nevent: order.created\ndata: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("an SSE event");
        assert!(
            !data.contains('\n'),
            "one data line even with newlines in the payload"
        );
        let back: Envelope = serde_json::from_str(data).unwrap();
        assert_eq!(back, env);
        let ws: serde_json::Value = serde_json::from_str(&frame.ws).unwrap();
        assert_eq!(ws["type"], "event");
        assert_eq!(
            serde_json::from_value::<Envelope>(ws["event"].clone()).unwrap(),
            env
        );
    }

    #[test]
    fn published_json_round_trips_without_reserializing() {
        let env = envelope();
        let json = Bytes::from(serde_json::to_vec(&env).unwrap());
        let (rid, frame) = Frame::from_json(json.clone()).unwrap();
        assert_eq!(rid, env.restaurant_id);
        assert_eq!(frame.seq, Seq(7));
        assert_eq!(frame.json, json);
        assert!(Frame::from_json(Bytes::from_static(b"{\"seq\":1}")).is_err());
    }
}
