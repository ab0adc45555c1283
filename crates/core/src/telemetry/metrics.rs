//! Prometheus metrics (served on `statsAddr` at `/metrics`): requests by route, backend and
//! status, and the OpenTelemetry GenAI client/server metrics for LLM calls.
//! `config.metrics` drops metrics by name (`remove`) and adds CEL-valued labels to the
//! request, GenAI and MCP metrics (`fields.add`), as agentgateway does.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::ctx::RequestCtx;
use crate::label::LabelText;
use crate::llm::RouteType;

#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: LabelText,
    backend: LabelText,
    status: u16,
    #[prometheus(flatten)]
    custom: CustomLabels,
}

#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct GenAiLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_system: &'static str,
    gen_ai_request_model: LabelText,
    gen_ai_response_model: LabelText,
    #[prometheus(flatten)]
    custom: CustomLabels,
}

#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_token_type: &'static str,
    gen_ai_operation_name: &'static str,
    gen_ai_system: &'static str,
    gen_ai_request_model: LabelText,
    gen_ai_response_model: LabelText,
    #[prometheus(flatten)]
    custom: CustomLabels,
}

#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct McpLabels {
    method: String,
    server: String,
    resource_type: &'static str,
    resource: String,
    error: bool,
    #[prometheus(flatten)]
    custom: CustomLabels,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvictionLabels {
    backend: String,
    reason: String,
}

/// `Hash` for a label set as one word (see [`crate::label::hash_as_word`]): the per-request
/// series lookups are SipHash's, and each field written to it costs ~100 instructions.
macro_rules! hash_as_one_word {
    ($($set:ident { $($field:ident),* })*) => {$(
        impl std::hash::Hash for $set {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                crate::label::hash_as_word(&($(&self.$field,)*), state)
            }
        }
    )*};
}

hash_as_one_word! {
    RequestLabels { route, backend, status, custom }
    GenAiLabels { gen_ai_operation_name, gen_ai_system, gen_ai_request_model, gen_ai_response_model, custom }
    TokenLabels { gen_ai_token_type, gen_ai_operation_name, gen_ai_system, gen_ai_request_model, gen_ai_response_model, custom }
    McpLabels { method, server, resource_type, resource, error, custom }
}

/// The labels tollgate's own metrics carry (custom ones may not reuse them).
pub const BUILT_IN_LABELS: &[&str] = &[
    "route", "backend", "status", "gen_ai_operation_name", "gen_ai_system", "gen_ai_request_model", "gen_ai_response_model",
    "gen_ai_token_type", "method", "server", "resource_type", "resource", "error", "le",
];

/// Labels from `config.metrics.fields.add`, in config order: (name, value).
pub type CustomLabels = Vec<(String, String)>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process's metrics; cloned handles share the same series.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RequestLabels>,
    token_usage: HistogramFamily<TokenLabels>,
    llm_duration: HistogramFamily<GenAiLabels>,
    time_to_first_token: HistogramFamily<GenAiLabels>,
    time_per_output_token: HistogramFamily<GenAiLabels>,
    mcp_requests: Family<McpLabels, Counter>,
    mcp_sessions: Family<SessionLabels, prometheus_client::metrics::gauge::Gauge>,
    provider_evictions: Family<EvictionLabels, Counter>,
    cost: Family<GenAiLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    body_captured: Family<CaptureLabels, Counter>,
    limits: super::limit_metrics::LimitMetrics,
    /// The empty label value, made once.
    empty: LabelText,
    /// Each request label set's handles, found with one lookup (see [`RequestSeries`]).
    request_series: RwLock<HashMap<RequestLabels, RequestSeries, foldhash::fast::RandomState>>,
    /// Each GenAI label set's handles (see [`GenAiSeries`]).
    gen_ai_series: RwLock<HashMap<GenAiLabels, Arc<GenAiSeries>, foldhash::fast::RandomState>>,
}

/// The count and duration series of one request label set. A request used to find each in its
/// family's map (a lock, a hash and a compare apiece); cached together, one lookup finds both
/// (issue 14: the GenAI metrics took six lookups per LLM call).
struct RequestSeries {
    count: Counter,
    duration: Histogram,
}

/// The GenAI series of one label set, each made on its first observation, so that a metric a
/// call never observes (a cost without prices, tokens without usage) still has no series.
#[derive(Default)]
struct GenAiSeries {
    duration: OnceLock<Histogram>,
    cost: OnceLock<Counter<f64, std::sync::atomic::AtomicU64>>,
    time_to_first_token: OnceLock<Histogram>,
    time_per_output_token: OnceLock<Histogram>,
    input_tokens: OnceLock<Histogram>,
    output_tokens: OnceLock<Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaptureLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    transport: &'static str,
}

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn tokens() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 14))
}

fn per_token_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&[])
    }
}

/// Every metric tollgate registers, and whether it is a counter (exposed with `_total`).
const KNOWN: &[(&str, bool)] = &[
    ("tollgate_requests", true),
    ("tollgate_request_duration_seconds", false),
    ("gen_ai_client_token_usage", false),
    ("gen_ai_server_request_duration_seconds", false),
    ("gen_ai_server_time_to_first_token_seconds", false),
    ("gen_ai_server_time_per_output_token_seconds", false),
    ("tollgate_mcp_requests", true),
    ("tollgate_mcp_sessions", false),
    ("tollgate_llm_provider_evictions", true),
    ("gen_ai_client_cost", true),
    ("tollgate_body_bytes_captured", true),
];

/// The names a metric may be removed by: as written, with the `_total` a counter is exposed
/// with, and with agentgateway's or tollgate's prefix (agentgateway's configs name its own).
fn removal_names(registered: &str, counter: bool) -> Vec<String> {
    let bare = registered.strip_prefix("tollgate_").unwrap_or(registered);
    let mut names = Vec::new();
    for base in [bare.to_string(), format!("tollgate_{bare}"), format!("agentgateway_{bare}")] {
        names.push(base.clone());
        if counter {
            names.push(format!("{base}_total"));
        }
        if let Some(unitless) = base.strip_suffix("_seconds") {
            names.push(unitless.to_string());
        }
    }
    names
}

impl Metrics {
    /// The metrics, without those `remove` names (`config.metrics.remove`); unknown names
    /// are logged and ignored, as there is nothing to remove.
    pub fn new(remove: &[String]) -> Self {
        let mut registry = Registry::default();
        let removed = |name: &str, counter: bool| removal_names(name, counter).iter().any(|n| remove.contains(n));
        macro_rules! register {
            ($name:expr, $counter:expr, $help:expr, $metric:expr) => {
                if !removed($name, $counter) {
                    registry.register($name, $help, $metric);
                }
            };
        }
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration: HistogramFamily<RequestLabels> = Family::new_with_constructor(seconds);
        let token_usage: HistogramFamily<TokenLabels> = Family::new_with_constructor(tokens);
        let llm_duration: HistogramFamily<GenAiLabels> = Family::new_with_constructor(seconds);
        let time_to_first_token: HistogramFamily<GenAiLabels> = Family::new_with_constructor(seconds);
        let time_per_output_token: HistogramFamily<GenAiLabels> = Family::new_with_constructor(per_token_seconds);
        register!("tollgate_requests", true, "Requests handled, by route, backend and status", requests.clone());
        register!("tollgate_request_duration_seconds", false, "Request duration until the response ended", request_duration.clone());
        register!("gen_ai_client_token_usage", false, "Tokens used per LLM call (input or output)", token_usage.clone());
        register!("gen_ai_server_request_duration_seconds", false, "LLM call duration", llm_duration.clone());
        register!("gen_ai_server_time_to_first_token_seconds", false, "Time to the first response bytes of an LLM call", time_to_first_token.clone());
        register!("gen_ai_server_time_per_output_token_seconds", false, "Time per output token after the first", time_per_output_token.clone());
        let mcp_requests = Family::<McpLabels, Counter>::default();
        register!("tollgate_mcp_requests", true, "MCP messages by method, target and tool/prompt/resource", mcp_requests.clone());
        let mcp_sessions = Family::<SessionLabels, prometheus_client::metrics::gauge::Gauge>::default();
        register!("tollgate_mcp_sessions", false, "Open MCP client sessions, by front end", mcp_sessions.clone());
        let provider_evictions = Family::<EvictionLabels, Counter>::default();
        register!("tollgate_llm_provider_evictions", true, "Providers of ai.groups backends evicted after a failure (and failed over when another was left), by provider and reason", provider_evictions.clone());
        for name in remove {
            let known = KNOWN.iter().chain(super::limit_metrics::NAMES);
            if !known.into_iter().any(|(m, counter)| removal_names(m, *counter).contains(name)) {
                tracing::warn!(target: "tollgate", metric = %name, "config.metrics.remove names no metric tollgate exports");
            }
        }
        let cost = Family::<GenAiLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        register!("gen_ai_client_cost", true, "What LLM calls cost, in USD, by the model catalog's prices", cost.clone());
        let body_captured = Family::<CaptureLabels, Counter>::default();
        register!("tollgate_body_bytes_captured", true, "Body bytes copied for log and trace fields that read request.body or response.body, by direction (no series: no body was copied)", body_captured.clone());
        let limits = super::limit_metrics::LimitMetrics::new(&mut registry, |name, counter| !removed(name, counter));
        Metrics { registry, requests, request_duration, token_usage, llm_duration, time_to_first_token, time_per_output_token, mcp_requests, mcp_sessions, provider_evictions, cost, body_captured, limits, empty: LabelText::default(), request_series: Default::default(), gen_ai_series: Default::default() }
    }
}

impl Metrics {
    /// Records a finished request; `custom` are the `config.metrics.fields.add` labels.
    /// The request's own count goes last: a scrape that sees a request counted sees everything
    /// else it recorded (its tokens, its MCP call), even while the first request of a new label
    /// set waits for a family a scrape is reading.
    pub fn record(&self, ctx: &RequestCtx, custom: &CustomLabels) {
        let elapsed = ctx.started.elapsed();
        self.record_parts(ctx, custom, elapsed);
        let labels = RequestLabels {
            route: ctx.route.as_ref().map(|r| r.label.clone()).unwrap_or_else(|| self.empty.clone()),
            backend: ctx.backend.as_ref().map(|b| b.label.clone()).unwrap_or_else(|| self.empty.clone()),
            status: ctx.status.unwrap_or(0),
            custom: custom.clone(),
        };
        self.with_request_series(labels, |series| {
            series.count.inc();
            series.duration.observe(elapsed.as_secs_f64());
        });
    }

    /// What a request recorded besides its count: copied bytes, limits, MCP, GenAI.
    fn record_parts(&self, ctx: &RequestCtx, custom: &CustomLabels, elapsed: std::time::Duration) {
        // What telemetry made the request copy: nothing unless a field reads a body.
        for (direction, body) in [("request", &ctx.captured.request_body), ("response", &ctx.captured.response_body)] {
            if let Some(b) = body {
                self.body_captured.get_or_create(&CaptureLabels { direction }).inc_by(b.len() as u64);
            }
        }
        self.limits.record(ctx);
        if let Some(m) = ctx.mcp.as_ref().filter(|m| !m.method.is_empty()) {
            self.record_mcp(m, custom);
        }
        if let Some(llm) = &ctx.llm {
            self.record_llm(llm, custom, elapsed);
        }
    }

    /// An MCP message, by method, target and tool/prompt/resource.
    fn record_mcp(&self, m: &crate::ctx::McpExchange, custom: &CustomLabels) {
        // Label values come from the client: only known methods, and names only of items
        // that were served (a client inventing tool names must not invent series).
        const METHODS: &[&str] = &[
            "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
            "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
            "completion/complete", "logging/setLevel", "server/discover", "stream", "delete",
        ];
        let method = if METHODS.contains(&m.method.as_str()) || m.method.starts_with("notifications/") { m.method.clone() } else { "other".into() };
        let served = m.error.is_none();
        let labels = McpLabels {
            method,
            server: if served { m.target.clone().unwrap_or_default() } else { String::new() },
            resource_type: m.resource_type.unwrap_or(""),
            resource: if served { m.resource.clone().unwrap_or_default() } else { String::new() },
            error: !served,
            custom: custom.clone(),
        };
        self.mcp_requests.get_or_create(&labels).inc();
    }

    /// An LLM call: failed providers, then the GenAI duration, cost, time to first token, time
    /// per output token and token usage of its label set.
    fn record_llm(&self, llm: &crate::llm::LlmExchange, custom: &CustomLabels, elapsed: std::time::Duration) {
        for failed in &llm.failed_attempts {
            self.provider_evictions.get_or_create(&EvictionLabels { backend: failed.backend.clone(), reason: failed.reason.clone() }).inc();
        }
        let operation = match llm.route {
            RouteType::Completions | RouteType::Messages | RouteType::GenerateContent | RouteType::Responses => "chat",
            RouteType::Embeddings => "embeddings",
            _ => return,
        };
        let request_model = self.model_label(llm.request_model.as_deref());
        // Usually the same model answers: one label text for both.
        let response_model = if llm.response_model == llm.request_model { request_model.clone() } else { self.model_label(llm.response_model.as_deref()) };
        let gen = GenAiLabels {
            gen_ai_operation_name: operation,
            gen_ai_system: llm.provider,
            gen_ai_request_model: request_model,
            gen_ai_response_model: response_model,
            custom: custom.clone(),
        };
        let series = self.gen_ai_series(&gen);
        series.duration.get_or_init(|| self.llm_duration.get_or_create(&gen).clone()).observe(elapsed.as_secs_f64());
        if let Some(c) = llm.cost {
            series.cost.get_or_init(|| self.cost.get_or_create(&gen).clone()).inc_by(c.total);
        }
        if let Some(ttft) = llm.time_to_first_byte {
            series.time_to_first_token.get_or_init(|| self.time_to_first_token.get_or_create(&gen).clone()).observe(ttft.as_secs_f64());
            if let Some(u) = llm.usage.filter(|u| u.output_tokens > 1) {
                let after_first = elapsed.saturating_sub(ttft).as_secs_f64();
                let per_token = series.time_per_output_token.get_or_init(|| self.time_per_output_token.get_or_create(&gen).clone());
                per_token.observe(after_first / (u.output_tokens - 1) as f64);
            }
        }
        if let Some(u) = llm.usage {
            for (kind, n, handle) in [("input", u.input_tokens, &series.input_tokens), ("output", u.output_tokens, &series.output_tokens)] {
                let histogram = handle.get_or_init(|| {
                    let labels = TokenLabels {
                        gen_ai_token_type: kind,
                        gen_ai_operation_name: gen.gen_ai_operation_name,
                        gen_ai_system: gen.gen_ai_system,
                        gen_ai_request_model: gen.gen_ai_request_model.clone(),
                        gen_ai_response_model: gen.gen_ai_response_model.clone(),
                        custom: gen.custom.clone(),
                    };
                    self.token_usage.get_or_create(&labels).clone()
                });
                histogram.observe(n as f64);
            }
        }
    }

    /// Runs `f` on the count and duration series of `labels`, made on first use.
    fn with_request_series(&self, labels: RequestLabels, f: impl FnOnce(&RequestSeries)) {
        if let Some(series) = self.request_series.read().unwrap_or_else(|e| e.into_inner()).get(&labels) {
            return f(series);
        }
        let mut all = self.request_series.write().unwrap_or_else(|e| e.into_inner());
        let series = all.entry(labels).or_insert_with_key(|labels| RequestSeries {
            count: self.requests.get_or_create(labels).clone(),
            duration: self.request_duration.get_or_create(labels).clone(),
        });
        f(series)
    }

    /// The GenAI series of `labels`, made on first use.
    fn gen_ai_series(&self, labels: &GenAiLabels) -> Arc<GenAiSeries> {
        if let Some(series) = self.gen_ai_series.read().unwrap_or_else(|e| e.into_inner()).get(labels) {
            return series.clone();
        }
        self.gen_ai_series.write().unwrap_or_else(|e| e.into_inner()).entry(labels.clone()).or_default().clone()
    }

    /// A model's label (empty when there is none).
    fn model_label(&self, model: Option<&str>) -> LabelText {
        model.map_or_else(|| self.empty.clone(), LabelText::new)
    }

    /// Records how many MCP sessions are open (Streamable HTTP, legacy SSE).
    pub fn set_mcp_sessions(&self, streamable: usize, legacy: usize) {
        self.mcp_sessions.get_or_create(&SessionLabels { transport: "streamable_http" }).set(streamable as i64);
        self.mcp_sessions.get_or_create(&SessionLabels { transport: "sse" }).set(legacy as i64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
