//! W3C trace context as an event carries it: the `traceparent` of the
//! request that produced the event, so the processes that publish and
//! deliver it can link their spans to that request's trace.

use std::str::FromStr;

/// A version-00 `traceparent`: `00-<trace id>-<parent id>-<flags>`, in
/// lower or upper case hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub flags: u8,
}

/// The text is not a version-00 `traceparent`.
#[derive(Debug, thiserror::Error)]
#[error("not a W3C traceparent")]
pub struct NotATraceParent;

impl FromStr for TraceParent {
    type Err = NotATraceParent;

    fn from_str(s: &str) -> Result<TraceParent, NotATraceParent> {
        let mut parts = s.split('-');
        let mut hex = |digits: usize| {
            let part = parts.next().filter(|p| p.len() == digits)?;
            part.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| u128::from_str_radix(part, 16).ok())
                .flatten()
        };
        let (version, trace_id, span_id, flags) = (hex(2), hex(32), hex(16), hex(2));
        match (version, trace_id, span_id, flags, parts.next()) {
            // The spec makes all-zero ids invalid.
            (Some(0), Some(trace_id), Some(span_id), Some(flags), None)
                if trace_id != 0 && span_id != 0 =>
            {
                Ok(TraceParent {
                    trace_id,
                    span_id: span_id as u64,
                    flags: flags as u8,
                })
            }
            _ => Err(NotATraceParent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn a_well_formed_traceparent_gives_its_ids_and_flags() {
        let parsed: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        assert_eq!(parsed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.span_id, 0x00f067aa0ba902b7);
        assert_eq!(parsed.flags, 1);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "garbage",
            "00-short-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad}");
        }
    }
}
