//! An event's spans after its request: the api's XADD and the edge's
//! delivery join the trace of the request that produced the event, through
//! the `traceparent` it carries. They are made only while spans are
//! exported ([`exporting`]): a span per event is not free.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use ordercast_core::TraceParent;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request's span, as another process sees it.
fn remote(trace: &TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace.trace_id),
        SpanId::from(trace.span_id),
        TraceFlags::new(trace.flags),
        true,
        TraceState::default(),
    )
}

/// Makes `span` a child of the request's span (a step of that request's
/// own work, e.g. publishing its event).
pub fn continue_trace(span: &Span, trace: &TraceParent) {
    let parent = opentelemetry::Context::new().with_remote_span_context(remote(trace));
    // Without an OpenTelemetry layer there is nothing to attach to.
    let _ = span.set_parent(parent);
}

/// Links `span` to the request's span (work done for many requests at
/// once, e.g. delivering a batch of events).
pub fn link(span: &Span, trace: &TraceParent) {
    span.add_link(remote(trace));
}

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called once spans are exported (the binary's telemetry setup).
pub fn start_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether spans are exported: hot paths skip the spans nobody receives.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}
