//! Traces: one span per request, exported over OTLP (gRPC by default, or HTTP) on a small
//! runtime of its own, so a slow, down or unresolvable collector never touches request
//! handling: spans queue in a bounded buffer and are dropped when it is full, and a failing
//! collector is reported once (and once more when it recovers), not once per batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};

use super::cel::Expression;
use super::span_batch::{BatchSettings, SpanBatcher};
use crate::config::settings::{OtlpProtocol, TracingSettings};

/// The request's span, started when the request arrived.
pub struct RequestSpan {
    span: opentelemetry_sdk::trace::Span,
}

impl RequestSpan {
    /// The `traceparent` value for the upstream request (W3C trace context), its ids
    /// hex-encoded into the fixed 55 bytes (`format!` with the ids' `LowerHex` costs ~2k
    /// instructions a request).
    pub fn traceparent(&self) -> http::HeaderValue {
        let sc = self.span.span_context();
        traceparent_value(sc.trace_id().to_bytes(), sc.span_id().to_bytes(), sc.trace_flags().to_u8())
    }

    /// Whether the span is sampled (recorded and exported).
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }
}

/// `00-<trace id>-<span id>-<flags>` in lowercase hex.
fn traceparent_value(trace: [u8; 16], span: [u8; 8], flags: u8) -> http::HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    // The slices are exactly twice the bytes' lengths, so the encodings cannot fail.
    let _ = hex::encode_to_slice(trace, &mut out[3..35]);
    let _ = hex::encode_to_slice(span, &mut out[36..52]);
    let _ = hex::encode_to_slice([flags], &mut out[53..55]);
    // Hex digits and dashes only: always a valid header value.
    http::HeaderValue::from_bytes(&out).expect("traceparent is hex and dashes")
}

impl std::fmt::Debug for RequestSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestSpan")
    }
}

/// A running tracer and its exporter's runtime.
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    health: Arc<CollectorHealth>,
    _runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracing")
    }
}

/// `randomSampling`: a fixed root sampler, or a CEL expression decided per request.
enum RootSampling {
    Fixed(Sampler),
    Cel(Expression),
}

fn root_sampling(v: Option<&serde_yaml_ng::Value>) -> Result<RootSampling, String> {
    match v {
        Some(serde_yaml_ng::Value::String(s)) if !matches!(s.as_str(), "true" | "false") && s.parse::<f64>().is_err() => {
            Expression::compile(s).map(RootSampling::Cel).map_err(|e| format!("config.tracing.randomSampling: {e}"))
        }
        other => root_sampler(other).map(RootSampling::Fixed),
    }
}

/// A root sampler from `randomSampling`: bool or ratio (default: off).
fn root_sampler(v: Option<&serde_yaml_ng::Value>) -> Result<Sampler, String> {
    match v {
        None | Some(serde_yaml_ng::Value::Bool(false)) => Ok(Sampler::AlwaysOff),
        Some(serde_yaml_ng::Value::Bool(true)) => Ok(Sampler::AlwaysOn),
        Some(serde_yaml_ng::Value::Number(n)) => match n.as_f64() {
            Some(r) if (0.0..=1.0).contains(&r) => Ok(Sampler::TraceIdRatioBased(r)),
            _ => Err("config.tracing.randomSampling: a ratio must be between 0 and 1".into()),
        },
        Some(serde_yaml_ng::Value::String(s)) => match s.as_str() {
            "true" => Ok(Sampler::AlwaysOn),
            "false" => Ok(Sampler::AlwaysOff),
            other => other
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .map(Sampler::TraceIdRatioBased)
                .ok_or_else(|| "config.tracing.randomSampling: expected a bool, a ratio or a CEL expression".into()),
        },
        Some(_) => Err("config.tracing.randomSampling: expected a bool or a ratio".into()),
    }
}

fn is_true(v: Option<&serde_yaml_ng::Value>, default: bool) -> bool {
    match v {
        None => default,
        Some(serde_yaml_ng::Value::Bool(b)) => *b,
        Some(serde_yaml_ng::Value::String(s)) => s == "true",
        Some(_) => default,
    }
}

/// Validated tracing settings; the exporter starts on first use (after any daemonizing fork,
/// since it runs a thread of its own).
#[derive(Debug, Clone)]
pub struct TraceConfig {
    endpoint: String,
    protocol: OtlpProtocol,
    path: String,
    headers: Vec<(String, String)>,
    sampler: Sampler,
    /// Span attributes (name → CEL); `span.name` names the span.
    pub fields: Vec<(String, Expression)>,
    /// `randomSampling` as CEL over the request: true/false, or a ratio.
    pub sampling_expr: Option<Expression>,
    /// Whether a client's sampled `traceparent` decides.
    pub client_sampling: bool,
}

impl TraceConfig {
    /// Checks `config.tracing`; `None` when no collector is configured.
    pub fn from_settings(s: &TracingSettings) -> Result<Option<TraceConfig>, String> {
        let Some(endpoint) = s.otlp_endpoint.clone() else { return Ok(None) };
        let (root, sampling_expr) = match root_sampling(s.random_sampling.as_ref())? {
            RootSampling::Fixed(sampler) => (sampler, None),
            // The expression decides before the span starts; the SDK then records what starts.
            RootSampling::Cel(expr) => (Sampler::AlwaysOn, Some(expr)),
        };
        let client_sampling = is_true(s.client_sampling.as_ref(), true);
        let sampler = if client_sampling { Sampler::ParentBased(Box::new(root)) } else { root };
        Ok(Some(TraceConfig {
            endpoint,
            protocol: s.otlp_protocol.unwrap_or(OtlpProtocol::Grpc),
            path: s.path.clone().unwrap_or_else(|| "/v1/traces".into()),
            headers: s.headers.clone().unwrap_or_default().into_iter().collect(),
            sampler,
            fields: s.fields.as_ref().map(|f| f.add.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
            sampling_expr,
            client_sampling,
        }))
    }

    /// Starts the exporter and returns the tracer.
    pub fn start(&self) -> Result<Tracing, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tollgate-otlp")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the trace exporter: {e}"))?;
        let health = Arc::new(CollectorHealth::default());
        let provider = runtime.block_on(async {
            let exporter = self.exporter()?;
            let quiet = QuietExporter::new(exporter, self.endpoint.clone(), health.clone());
            let processor = SpanBatcher::start(quiet, BatchSettings::from_env(), &tokio::runtime::Handle::current());
            Ok::<_, String>(
                SdkTracerProvider::builder()
                    .with_sampler(self.sampler.clone())
                    .with_span_processor(processor)
                    .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("tollgate").build())
                    .build(),
            )
        })?;
        let tracer = provider.tracer("tollgate");
        Ok(Tracing { tracer, provider, health, _runtime: runtime })
    }

    fn exporter(&self) -> Result<opentelemetry_otlp::SpanExporter, String> {
        match self.protocol {
            OtlpProtocol::Grpc => {
                let mut map = http::HeaderMap::new();
                for (k, v) in &self.headers {
                    if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
                        map.insert(k, v);
                    }
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(self.endpoint.clone())
                    .with_timeout(Duration::from_secs(5))
                    .with_metadata(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
                    .build()
            }
            OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}{}", self.endpoint.trim_end_matches('/'), self.path))
                .with_timeout(Duration::from_secs(5))
                .with_headers(self.headers.iter().cloned().collect())
                .build(),
        }
        .map_err(|e| format!("config.tracing: {e}"))
    }
}

impl Tracing {
    /// Starts the span for a request, as a child of the client's `traceparent` when present.
    pub fn start(&self, traceparent: Option<&str>) -> RequestSpan {
        let parent = traceparent.and_then(parse_traceparent).map_or_else(Context::new, |sc| Context::new().with_remote_span_context(sc));
        let span = self
            .tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .with_start_time(SystemTime::now())
            .start_with_context(&self.tracer, &parent);
        RequestSpan { span }
    }

    /// Whether the collector failed and is not yet due for another try: every span ended now
    /// would be dropped unsent, so none is built (the request pays nothing for a down collector).
    pub fn collector_backing_off(&self) -> bool {
        self.health.backing_off()
    }

    /// Ends a span with its name, attributes and status.
    pub fn finish(&self, mut span: RequestSpan, name: Option<String>, attributes: Vec<KeyValue>, error: bool) {
        if !span.span.is_recording() {
            return;
        }
        if let Some(n) = name {
            span.span.update_name(n);
        }
        span.span.set_attributes(attributes);
        if error {
            span.span.set_status(Status::error("request failed"));
        }
        span.span.end();
    }

    /// Exports the spans still queued (the batch processor sends every few seconds), waiting
    /// for the collector's answer. Blocks the calling thread. An error too when spans were
    /// dropped unbuilt (see [`Self::discard`]) since the collector last took a batch.
    pub fn flush(&self) -> OTelSdkResult {
        self.provider.force_flush()?;
        if self.health.lost.load(Ordering::Relaxed) {
            return Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("spans dropped while the collector was failing".into()));
        }
        Ok(())
    }

    /// Drops a span without exporting it (the SDK would end and queue it on drop), remembering
    /// that spans were lost until the collector next takes a batch.
    pub fn discard(&self, span: RequestSpan) {
        self.health.lost.store(true, Ordering::Relaxed);
        super::span_batch::discarding(|| drop(span));
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Parses a W3C `traceparent` header.
pub fn parse_traceparent(v: &str) -> Option<SpanContext> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 || version == "ff" {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, TraceState::default()))
}

/// While the collector fails, it is probed (with one span) a second after the first failure,
/// then after twice as long each time, up to [`MAX_PROBE_INTERVAL`]; the batches in between are
/// dropped at once, without being encoded and sent to fail the same way.
const FIRST_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a recovered collector waits for spans.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// What the exporter knows of the collector, shared with the request side: while it is
/// failing and not due for a probe, spans are neither built nor queued.
#[derive(Debug, Default)]
struct CollectorHealth {
    failing: AtomicBool,
    /// When a failing collector is next offered a batch, and the interval that led there.
    next_probe: std::sync::Mutex<Option<(std::time::Instant, Duration)>>,
    /// Spans were dropped unbuilt since the collector last took a batch.
    lost: AtomicBool,
}

impl CollectorHealth {
    /// Whether a batch should be dropped unsent: the collector failed less than an interval
    /// ago. (One relaxed load while the collector is healthy.)
    fn backing_off(&self) -> bool {
        if !self.failing.load(Ordering::Relaxed) {
            return false;
        }
        let next = self.next_probe.lock().map(|n| *n).unwrap_or(None);
        next.is_some_and(|(at, _)| std::time::Instant::now() < at)
    }

    /// After an export: a failure schedules the next probe (each interval twice the last), a
    /// success clears the schedule.
    fn after_export(&self, failed: bool) {
        if !failed {
            self.lost.store(false, Ordering::Relaxed);
        }
        if let Ok(mut n) = self.next_probe.lock() {
            *n = failed.then(|| {
                let interval = n.map_or(FIRST_PROBE_INTERVAL, |(_, last)| (last * 2).min(MAX_PROBE_INTERVAL));
                (std::time::Instant::now() + interval, interval)
            });
        }
    }
}

/// Reports the first failed export and the first success after failures; silent otherwise.
/// While the collector is failing, probes it with backing off intervals.
#[derive(Debug)]
struct QuietExporter<E> {
    inner: E,
    endpoint: String,
    health: Arc<CollectorHealth>,
}

impl<E> QuietExporter<E> {
    fn new(inner: E, endpoint: String, health: Arc<CollectorHealth>) -> Self {
        QuietExporter { inner, endpoint, health }
    }
}

impl<E: SpanExporter> SpanExporter for QuietExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.health.backing_off() {
            return Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("collector failing; batch dropped".into()));
        }
        let mut batch = batch;
        if self.health.failing.load(Ordering::Relaxed) {
            // A probe of a failing collector carries one span: encoding the whole batch only to
            // fail again is most of the cost of a down collector. The rest are dropped, as they
            // would be if the probe fails.
            batch.truncate(1);
        }
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.health.after_export(result.is_err());
        match &result {
            Err(e) if !self.health.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                target: "tollgate",
                endpoint = %self.endpoint,
                error = %e,
                "trace export failed; dropping spans until the collector answers (reported once)"
            ),
            Ok(()) if self.health.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!(target: "tollgate", endpoint = %self.endpoint, spans = n, "trace export recovered")
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("garbage").is_none());
    }

    #[test]
    fn traceparent_is_written_as_the_w3c_format() {
        let v = traceparent_value([0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36], [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7], 1);
        assert_eq!(v.to_str().unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        // What is sent parses back to the same context.
        let sc = parse_traceparent(v.to_str().unwrap()).unwrap();
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(traceparent_value([0xff; 16], [0xff; 8], 0).to_str().unwrap(), format!("00-{}-{}-00", "f".repeat(32), "f".repeat(16)));
    }

    /// Fails every export and counts them (and the spans offered).
    #[derive(Debug, Default)]
    struct DownCollector(std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize);

    impl SpanExporter for DownCollector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(1, Ordering::Relaxed);
            self.1.fetch_add(batch.len(), Ordering::Relaxed);
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("down".into()))
        }
    }

    /// An ended span with nothing in it.
    pub(crate) fn span() -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "request".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_failing_collector_is_probed_not_hammered() {
        let e = QuietExporter::new(DownCollector::default(), "http://127.0.0.1:9".into(), Arc::default());
        for _ in 0..5 {
            assert!(e.export(Vec::new()).await.is_err());
        }
        assert_eq!(e.inner.0.load(Ordering::Relaxed), 1, "batches within the first second are dropped unsent");
        // Due for a probe: one span of the batch goes to the collector, and the next interval doubles.
        e.health.next_probe.lock().unwrap().as_mut().unwrap().0 = std::time::Instant::now();
        assert!(e.export(vec![span(), span(), span()]).await.is_err());
        assert_eq!(e.inner.0.load(Ordering::Relaxed), 2);
        assert_eq!(e.inner.1.load(Ordering::Relaxed), 1, "a probe carries one span");
        assert_eq!(e.health.next_probe.lock().unwrap().unwrap().1, FIRST_PROBE_INTERVAL * 2);
    }

    #[test]
    fn sampling_settings() {
        assert!(matches!(root_sampler(None), Ok(Sampler::AlwaysOff)));
        assert!(matches!(root_sampler(Some(&serde_yaml_ng::Value::Bool(true))), Ok(Sampler::AlwaysOn)));
        assert!(matches!(
            root_sampling(Some(&serde_yaml_ng::Value::String("request.path == '/'".into()))),
            Ok(RootSampling::Cel(_))
        ));
        assert!(root_sampling(Some(&serde_yaml_ng::Value::String("request.path ==".into()))).is_err());
        assert!(matches!(root_sampling(Some(&serde_yaml_ng::Value::String("0.5".into()))), Ok(RootSampling::Fixed(_))));
    }
}
