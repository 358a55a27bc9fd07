//! Stream entries: id `<seq>-0` (docs/architecture.md, "Sequence numbers"), one field `event` holding the
//! envelope JSON exactly as published.

use bytes::Bytes;
use ordercast_core::Seq;
use redis::Value;
use redis::streams::StreamId;

/// The field of an entry that holds the envelope.
pub(crate) const EVENT_FIELD: &str = "event";

/// The stream entry id of the event `seq`.
pub fn entry_id(seq: Seq) -> String {
    format!("{}-0", seq.0)
}

/// The seq of an entry id of the form `<seq>-0`.
pub fn parse_entry_id(id: &str) -> Option<Seq> {
    match id.split_once('-') {
        Some((seq, "0")) => seq.parse().ok().map(Seq),
        _ => None,
    }
}

/// One event read from a restaurant's stream.
#[derive(Clone, Debug)]
pub struct Entry {
    pub seq: Seq,
    /// The envelope JSON as the api published it.
    pub event: Bytes,
}

impl Entry {
    /// The entry, unless it is not of the form `<seq>-0 event <json>`
    /// (logged; the seq it should have held is then filled from PostgreSQL).
    pub(crate) fn from_stream(key: &str, mut entry: StreamId) -> Option<Entry> {
        let seq = parse_entry_id(&entry.id);
        let event = match entry.map.remove(EVENT_FIELD) {
            Some(Value::BulkString(json)) => Some(Bytes::from(json)),
            _ => None,
        };
        match (seq, event) {
            (Some(seq), Some(event)) => Some(Entry { seq, event }),
            _ => {
                tracing::warn!(stream = key, id = %entry.id, "stream entry is not <seq>-0 with an event field; skipped");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_the_seq_with_sequence_zero() {
        assert_eq!(entry_id(Seq(1057)), "1057-0");
        assert_eq!(parse_entry_id("1057-0"), Some(Seq(1057)));
        for foreign in ["1057-1", "1057", "x-0", "-0", "1700000000000-0-0"] {
            assert_eq!(parse_entry_id(foreign), None, "{foreign}");
        }
    }
}
