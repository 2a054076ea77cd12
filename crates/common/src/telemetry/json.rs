//! JSON log lines: one object per event, each key once.
//!
//! ```text
//! {"timestamp":"…","level":"INFO","target":"order_service::saga::engine",
//!  "trace_id":"4bf9…","span_id":"00f0…","span":"drive_new",
//!  "fields":{"message":"order settled","order_id":"…","reservation_id":"…","status":"CONFIRMED"}}
//! ```
//!
//! `fields` holds the event's fields and those of every span it is in, merged: nested spans
//! often carry the same key (`order_id` on the RPC, the drive and the step), and a key
//! written twice in one object is read differently by every log collector. The event's own
//! value wins, then the innermost span's. `trace_id` / `span_id` are those of the innermost
//! span the OpenTelemetry layer knows, so a line leads to its trace; a line outside any
//! span has none. The shape is tracing-subscriber's (`fields` nested), so queries such as
//! `.fields.kind` keep working.

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The fmt layer writing [`JsonLines`] to `writer`.
pub(super) fn layer<S, W>(writer: W) -> tracing_subscriber::fmt::Layer<S, JsonFields, JsonLines, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
        .with_writer(writer)
}

/// The event format of JSON logs (see the module docs). Span fields must be recorded by
/// [`JsonFields`], which keeps them as a JSON object per span.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                innermost = Some(span.name());
                let extensions = span.extensions();
                let Some(recorded) = extensions.get::<FormattedFields<N>>() else { continue };
                // A span without fields records an empty string, not `{}`.
                if let Ok(Value::Object(own)) = serde_json::from_str(&recorded.fields) {
                    fields.extend(own.into_iter().filter(|(key, _)| !is_meta(key)));
                }
            }
        }
        let mut visitor = EventFields::default();
        event.record(&mut visitor);
        fields.extend(visitor.fields);
        let metadata = event.metadata();
        let target = visitor.log_target.as_deref().unwrap_or(metadata.target());

        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), target.into());
        if let Some((trace_id, span_id)) = current_ids() {
            line.insert("trace_id".into(), trace_id.into());
            line.insert("span_id".into(), span_id.into());
        }
        if let Some(span) = innermost {
            line.insert("span".into(), span.into());
        }
        line.insert("fields".into(), Value::Object(fields));
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Keys that steer a span rather than describe the work: `otel.*` (span kind, name, status
/// for the exporter) and `log.*` (the metadata of `log` records).
fn is_meta(key: &str) -> bool {
    key.starts_with("otel.") || key.starts_with("log.")
}

/// Trace and span id of the innermost span the OpenTelemetry layer entered on this thread
/// (it makes a span's context current while the span is entered).
fn current_ids() -> Option<(String, String)> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let ids = span.span_context();
        ids.is_valid().then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    })
}

/// An event's fields as JSON values.
#[derive(Default)]
struct EventFields {
    fields: Map<String, Value>,
    /// The target of a `log` record (its event's own target is `log`).
    log_target: Option<String>,
}

impl EventFields {
    fn insert(&mut self, field: &Field, value: Value) {
        if !is_meta(field.name()) {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.log_target = Some(value.to_owned());
        }
        self.insert(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` arrives here too, wrapped so that Debug prints its Display.
        self.insert(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Everything the layer wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
            String::from_utf8(bytes).unwrap().lines().map(str::to_owned).collect()
        }
    }

    /// Runs `log` under a JSON layer (with the OpenTelemetry layer when `traced`); returns
    /// the lines written.
    fn logged(traced: bool, log: impl FnOnce()) -> Vec<String> {
        let written = Written::default();
        let writer = {
            let written = written.clone();
            move || written.clone()
        };
        if traced {
            let provider = SdkTracerProvider::builder().build();
            let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
            let subscriber = tracing_subscriber::registry().with(otel).with(layer(writer));
            tracing::subscriber::with_default(subscriber, log);
        } else {
            let subscriber = tracing_subscriber::registry().with(layer(writer));
            tracing::subscriber::with_default(subscriber, log);
        }
        written.lines()
    }

    fn occurrences(line: &str, key: &str) -> usize {
        line.matches(&format!("\"{key}\":")).count()
    }

    #[test]
    fn nested_spans_give_each_key_once_the_innermost_winning() {
        let mut ids = None;
        let lines = logged(true, || {
            let rpc = tracing::info_span!("grpc.server", otel.kind = "server", order_id = "o-1");
            let _rpc = rpc.enter();
            let drive = tracing::info_span!("drive_new", order_id = "o-1", reservation_id = "r-1");
            let _drive = drive.enter();
            let step = tracing::info_span!(
                "saga.step",
                order_id = "o-1",
                reservation_id = tracing::field::Empty
            );
            let _step = step.enter();
            step.record("reservation_id", "r-2");
            tracing::info!(status = "CONFIRMED", "order settled");
            let own = step.context().span().span_context().clone();
            ids = Some((own.trace_id().to_string(), own.span_id().to_string()));
        });
        let [line] = lines.as_slice() else { panic!("one line: {lines:?}") };
        for key in ["order_id", "reservation_id", "trace_id", "span_id", "message", "status"] {
            assert_eq!(occurrences(line, key), 1, "{key} in {line}");
        }
        assert_eq!(occurrences(line, "otel.kind"), 0, "{line}");
        let parsed: Value = serde_json::from_str(line).unwrap();
        let (trace_id, span_id) = ids.unwrap();
        assert_eq!(parsed["trace_id"], trace_id.as_str(), "top-level, the step's trace");
        assert_eq!(parsed["span_id"], span_id.as_str(), "the innermost span");
        assert_eq!(parsed["span"], "saga.step");
        assert_eq!(parsed["level"], "INFO");
        let fields = &parsed["fields"];
        assert_eq!(fields["reservation_id"], "r-2", "the innermost span's value");
        assert_eq!(fields["order_id"], "o-1");
        assert_eq!(fields["message"], "order settled");
        assert_eq!(fields["status"], "CONFIRMED");
    }

    #[test]
    fn the_events_own_value_wins_over_its_spans() {
        let lines = logged(true, || {
            let span = tracing::info_span!("drive", order_id = "from-span", attempts = 3_i64);
            let _span = span.enter();
            tracing::warn!(order_id = "from-event", retry = true, "step failed");
        });
        let parsed: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(occurrences(&lines[0], "order_id"), 1, "{}", lines[0]);
        assert_eq!(parsed["fields"]["order_id"], "from-event");
        assert_eq!(parsed["fields"]["attempts"], 3, "typed values stay typed");
        assert_eq!(parsed["fields"]["retry"], true);
        assert_eq!(parsed["level"], "WARN");
    }

    #[test]
    fn a_line_outside_any_trace_has_no_ids() {
        let lines = logged(false, || {
            let span = tracing::info_span!("startup", port = 50051_u64);
            let _span = span.enter();
            tracing::info!("listening");
        });
        let parsed: Value = serde_json::from_str(&lines[0]).unwrap();
        assert!(parsed.get("trace_id").is_none() && parsed.get("span_id").is_none(), "{parsed}");
        assert_eq!(parsed["fields"]["port"], 50051);
        let outside = logged(true, || tracing::info!("no span at all"));
        let parsed: Value = serde_json::from_str(&outside[0]).unwrap();
        assert!(parsed.get("trace_id").is_none() && parsed.get("span").is_none(), "{parsed}");
    }
}
