//! Operational plumbing shared by every layer: Prometheus metrics, logs and request traces.
//!
//! `inkling-ops` owns the process-wide metric registry, the log and trace setup, and the
//! [`trace::TraceContext`] that carries a request's trace between processes. It is a leaf:
//! it must never know about products, profiles, actors, nodes or HTTP, so that every other
//! crate can depend on it without creating a cycle.

pub mod metrics;
pub mod runtime;
pub mod trace;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the fields of every enclosing span (`trace_id`
    /// among them), for log pipelines.
    Json,
}

#[derive(Debug, Clone, Default)]
pub struct TelemetryOptions {
    pub log_format: LogFormat,
    /// An OTLP/HTTP collector (`http://host:4318`) to export spans to; none by default.
    pub otlp_endpoint: Option<String>,
    /// How this process is told apart in traces (`service.instance.id`): the node's name.
    pub instance: String,
}

/// Flushes the spans not yet exported when dropped; keep it until the process ends.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("warning: traces not flushed: {error}");
            }
        }
    }
}

/// Installs the global log (and, with an endpoint, trace) subscriber once; later calls
/// install nothing.
pub fn init_telemetry(options: &TelemetryOptions) -> anyhow::Result<TelemetryGuard> {
    let provider = match &options.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(endpoint, &options.instance)?),
        None => None,
    };
    trace::set_exporting(provider.is_some());
    // Each layer filters for itself, so traces do not depend on the log level.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("inkling"))
            .with_filter(inkling_spans())
    });
    let (text, json) = match options.log_format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colour codes only for a person at a terminal, never in a log file.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(log_filter()),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(std::io::stderr)
                    .with_filter(log_filter()),
            ),
        ),
    };
    let _ = tracing_subscriber::registry()
        .with(trace::TraceIdLayer.with_filter(inkling_spans()))
        .with(text)
        .with(json)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard { provider })
}

/// The log filter from `RUST_LOG`, `info` by default (with hnsw_rs, which reports every
/// graph it creates at info, held to warnings), so an operator can raise the level of one
/// module without rebuilding.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hnsw_rs=warn,openraft=error,openraft::replication=off,chitchat=warn")
    })
}

/// The spans of a request's stages, which Inkling's own crates open at info.
fn inkling_spans() -> Targets {
    [
        "inkling_ops",
        "inkling_actors",
        "inkling_replication",
        "inkling_gateway",
    ]
    .into_iter()
    .fold(Targets::new(), |targets, target| {
        targets.with_target(target, Level::INFO)
    })
}

fn tracer_provider(endpoint: &str, instance: &str) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(&endpoint)
        .build()
        .with_context(|| format!("cannot export traces to {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name("inkling")
        .with_attribute(KeyValue::new("service.instance.id", instance.to_string()))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
