//! Request traces: one trace id per shopper request, carried across actors and nodes, in
//! every log line of the request and, when an OTLP endpoint is configured, in the spans
//! exported to it.
//!
//! Inside a process the context travels by itself: ractor hands each message the span that
//! was current when it was sent. Between processes it travels as a [`TraceContext`], a W3C
//! `traceparent` inside the cluster messages, from which the receiving side opens its span
//! with [`TraceContext::span`].
//!
//! Exporting is off by default. Then no OpenTelemetry layer is installed at all, and the
//! trace id is kept by [`TraceIdLayer`], which copies it from span to child span.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanId, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use serde::{Deserialize, Serialize};
use tracing::Span;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The HTTP header, and the key inside cluster messages, of a W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Whether spans go to an OpenTelemetry exporter; set once, when logging starts.
static EXPORTING: OnceLock<bool> = OnceLock::new();

pub(crate) fn set_exporting(exporting: bool) {
    let _ = EXPORTING.set(exporting);
}

fn exporting() -> bool {
    EXPORTING.get().copied().unwrap_or(false)
}

/// A request's place in its trace, as it travels inside a cluster message: a W3C
/// `traceparent` (`00-{trace id}-{parent span id}-{flags}`), or nothing when the sender was
/// not inside a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl TraceContext {
    /// The context a client sent in its `traceparent` header, when the header is well
    /// formed; else none, and the request starts a trace of its own.
    pub fn from_header(header: Option<&str>) -> Self {
        Self {
            traceparent: header
                .filter(|value| parse_traceparent(value).is_some())
                .map(str::to_string),
        }
    }

    /// The context of the span the caller is in, to send along with a message that leaves
    /// the process.
    pub fn current() -> Self {
        Self::of(&Span::current())
    }

    /// The context of `span`, for its children in other processes.
    pub fn of(span: &Span) -> Self {
        if exporting() {
            let mut carrier = HashMap::new();
            TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
            if let Some(traceparent) = carrier.remove(TRACEPARENT) {
                return Self {
                    traceparent: Some(traceparent),
                };
            }
        }
        Self {
            traceparent: recorded_trace_id(span)
                .map(|trace_id| format!("00-{trace_id}-{}-01", SpanId::INVALID)),
        }
    }

    /// The trace id as 32 hex digits, when there is one.
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent
            .as_deref()
            .and_then(parse_traceparent)
            .map(|(trace_id, _)| trace_id)
    }

    /// A span for the stage `name` of a request, continuing this trace (or starting one when
    /// the context is empty): the child of the remote parent when spans are exported, and
    /// carrying the trace id in its `trace_id` field for the logs either way.
    pub fn span(&self, name: impl Display) -> Span {
        // Without an exporter a span only serves to put the trace id in the logs; a local
        // caller's span, which ractor hands on with the message, already does.
        if !exporting() {
            let current = Span::current();
            if self.trace_id().is_some()
                && recorded_trace_id(&current).as_deref() == self.trace_id()
            {
                return current;
            }
        }
        let span = tracing::info_span!(
            "inkling",
            otel.name = %name,
            trace_id = tracing::field::Empty
        );
        if exporting() {
            if let Some(parent) = self.remote_parent() {
                let _ = span.set_parent(parent);
            }
        }
        let trace_id = match self.trace_id() {
            Some(trace_id) => trace_id.to_string(),
            None if exporting() => span.context().span().span_context().trace_id().to_string(),
            None => RandomIdGenerator::default().new_trace_id().to_string(),
        };
        span.record("trace_id", trace_id.as_str());
        span
    }

    fn remote_parent(&self) -> Option<opentelemetry::Context> {
        let carrier = HashMap::from([(TRACEPARENT.to_string(), self.traceparent.clone()?)]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        let valid = parent.span().span_context().is_valid();
        valid.then_some(parent)
    }
}

/// A span for a stage of the request the caller is in, inside one process (the session,
/// the ranker). Opened only when spans are exported: otherwise the request's own span, which
/// stays current, already gives the logs their trace id, and a span per stage would cost
/// every request for nothing.
pub fn stage(name: &'static str) -> Span {
    if exporting() {
        tracing::info_span!("inkling", otel.name = name)
    } else {
        Span::current()
    }
}

/// `00-{32 hex}-{16 hex}-{2 hex}` with a non-zero trace id: the trace id and the parent.
fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|byte| byte.is_ascii_hexdigit())
    };
    let well_formed = version == "00"
        && hex(trace_id, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && parts.next().is_none()
        && trace_id.bytes().any(|byte| byte != b'0');
    well_formed.then_some((trace_id, parent))
}

/// The trace id a span or one of its ancestors was opened with, as [`TraceIdLayer`] keeps it.
fn recorded_trace_id(span: &Span) -> Option<String> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let extensions = data.extensions();
        extensions.get::<RecordedTraceId>().map(|id| id.0.clone())
    })
    .flatten()
}

#[derive(Clone)]
struct RecordedTraceId(String);

/// Keeps each span's trace id in the span itself, taken from its `trace_id` field or
/// inherited from its parent, so [`TraceContext::current`] works without an exporter.
pub struct TraceIdLayer;

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else {
            return;
        };
        let mut field = TraceIdField(None);
        attributes.record(&mut field);
        let trace_id = field.0.filter(|trace_id| !trace_id.is_empty()).or_else(|| {
            let parent = span.parent()?;
            let extensions = parent.extensions();
            extensions.get::<RecordedTraceId>().map(|id| id.0.clone())
        });
        if let Some(trace_id) = trace_id {
            span.extensions_mut().replace(RecordedTraceId(trace_id));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let mut field = TraceIdField(None);
        values.record(&mut field);
        let (Some(trace_id), Some(span)) = (field.0, context.span(id)) else {
            return;
        };
        if !trace_id.is_empty() {
            span.extensions_mut().replace(RecordedTraceId(trace_id));
        }
    }
}

struct TraceIdField(Option<String>);

impl Visit for TraceIdField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_headers_are_checked() {
        let cases = [
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                true,
            ),
            (
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                false,
            ),
            (
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                false,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
                false,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
                false,
            ),
            ("garbage", false),
        ];
        for (header, valid) in cases {
            assert_eq!(parse_traceparent(header).is_some(), valid, "{header}");
            let context = TraceContext::from_header(Some(header));
            assert_eq!(context.traceparent.is_some(), valid, "{header}");
        }
    }

    #[test]
    fn the_trace_id_passes_from_span_to_child_without_an_exporter() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(TraceIdLayer);
        tracing::subscriber::with_default(subscriber, || {
            let request = TraceContext::from_header(None).span("request");
            let trace_id = TraceContext::of(&request).trace_id().unwrap().to_string();
            assert_eq!(trace_id.len(), 32);
            let _request = request.entered();
            let _child = tracing::info_span!("child").entered();
            let sent = TraceContext::current();
            assert_eq!(sent.trace_id(), Some(trace_id.as_str()));
        });
        assert_eq!(TraceContext::current().trace_id(), None);
    }
}
