//! A span's W3C trace context as text, to store with work that is resumed later (a saga the
//! recovery worker picks up): the resumed run starts a trace of its own, linked to this one.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Longest `traceparent` kept: version 00 is 55 characters; later versions may append
/// fields, and anything much longer is not worth storing.
const MAX_TRACEPARENT: usize = 128;
/// Longest `tracestate` kept: the W3C limit of 32 members fits in the 512 characters the
/// specification asks to propagate at least; a longer one (caller-made) is dropped.
const MAX_TRACESTATE: usize = 512;

/// The W3C `traceparent` and `tracestate` of one span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct W3cTraceContext {
    traceparent: String,
    tracestate: String,
}

impl W3cTraceContext {
    /// The context of the current span, if it belongs to a trace (never without the
    /// OpenTelemetry layer, e.g. in tests that install none).
    pub fn current() -> Option<Self> {
        Self::of(&tracing::Span::current())
    }

    /// The context of `span`, if it belongs to a trace.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        let traceparent = carrier.remove("traceparent").filter(|t| t.len() <= MAX_TRACEPARENT)?;
        let tracestate =
            carrier.remove("tracestate").filter(|s| s.len() <= MAX_TRACESTATE).unwrap_or_default();
        Some(Self { traceparent, tracestate })
    }

    /// A stored context: None when `traceparent` is missing or is no valid W3C traceparent
    /// (a row written before trace contexts were kept, or damaged), so nothing links to junk.
    pub fn from_parts(traceparent: Option<String>, tracestate: Option<String>) -> Option<Self> {
        let stored = Self {
            traceparent: traceparent.filter(|t| t.len() <= MAX_TRACEPARENT)?,
            tracestate: tracestate.filter(|s| s.len() <= MAX_TRACESTATE).unwrap_or_default(),
        };
        stored.span_context().map(|_| stored)
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header value (empty when there was none).
    pub fn tracestate(&self) -> &str {
        &self.tracestate
    }

    /// Links `span` to this context: a span of another trace, e.g. the request that created
    /// the work `span` resumes. Does nothing without the OpenTelemetry layer.
    pub fn link(&self, span: &tracing::Span) {
        if let Some(linked) = self.span_context() {
            span.add_link(linked);
        }
    }

    fn span_context(&self) -> Option<SpanContext> {
        let mut carrier = HashMap::from([("traceparent".to_owned(), self.traceparent.clone())]);
        if !self.tracestate.is_empty() {
            carrier.insert("tracestate".to_owned(), self.tracestate.clone());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        let linked = cx.span().span_context().clone();
        linked.is_valid().then_some(linked)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_span_outside_any_trace_has_no_context() {
        // No subscriber at all: the span is disabled.
        assert_eq!(W3cTraceContext::of(&tracing::info_span!("alone")), None);
    }

    #[test]
    fn a_traced_span_gives_its_own_ids_and_they_read_back() {
        let (subscriber, _spans) = crate::telemetry::collect::subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("create");
            let stored = W3cTraceContext::of(&span).unwrap();
            let ids = span.context().span().span_context().clone();
            assert_eq!(
                stored.traceparent(),
                format!("00-{}-{}-01", ids.trace_id(), ids.span_id()),
                "sampled by the default sampler"
            );
            let back = W3cTraceContext::from_parts(Some(stored.traceparent.clone()), None);
            assert_eq!(back.unwrap().span_context().unwrap().span_id(), ids.span_id());
        });
    }

    #[test]
    fn stored_junk_reads_as_none() {
        assert!(W3cTraceContext::from_parts(Some(PARENT.to_owned()), None).is_some());
        for junk in [
            "",
            "00-zz-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        ] {
            assert_eq!(W3cTraceContext::from_parts(Some(junk.to_owned()), None), None, "{junk}");
        }
        assert_eq!(W3cTraceContext::from_parts(None, Some("k=v".to_owned())), None);
        let long_state = "k=".to_owned() + &"v".repeat(600);
        let kept = W3cTraceContext::from_parts(Some(PARENT.to_owned()), Some(long_state)).unwrap();
        assert_eq!(kept.tracestate(), "", "an oversized tracestate is dropped, the link kept");
    }

    #[test]
    fn link_adds_the_stored_span_to_a_new_root() {
        let (subscriber, spans) = crate::telemetry::collect::subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let stored = W3cTraceContext::from_parts(Some(PARENT.to_owned()), None).unwrap();
            let resumed = tracing::info_span!(parent: None, "resume");
            stored.link(&resumed);
            drop(resumed);
        });
        let resumed = spans.named("resume").pop().unwrap();
        assert_ne!(resumed.span_context.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(resumed.parent_span_id, opentelemetry::trace::SpanId::INVALID, "a root");
        let links: Vec<_> =
            resumed.links.iter().map(|l| l.span_context.span_id().to_string()).collect();
        assert_eq!(links, ["b7ad6b7169203331"]);
    }
}
