//! Telemetry: CEL-defined access-log fields and span attributes, OTLP traces and
//! Prometheus metrics, fed from the per-request context when a request ends.

pub mod access_log;
pub mod cel;
pub mod limit_metrics;
pub mod metrics;
pub mod request_vars;
pub mod span_batch;
pub mod traces;
pub mod vars;

use std::sync::{Arc, OnceLock};

use opentelemetry::KeyValue;
use pingora::http::RequestHeader;
use pingora::Error;
use serde_json::Value as Json;

use crate::config::settings::Settings;
use crate::ctx::{CaptureNeeds, RequestCtx};
use access_log::{AccessLog, CelFields};
use cel::uses::Uses;
use cel::Expression;
use metrics::Metrics;
use traces::{TraceConfig, Tracing};
use vars::{Facts, DEFAULT_SENSITIVE};

/// Everything the proxy reports about requests.
pub struct Telemetry {
    access_log: AccessLog,
    /// Prometheus metrics (also served by the stats endpoint).
    pub metrics: Arc<Metrics>,
    trace_config: Option<TraceConfig>,
    tracing: OnceLock<Option<Tracing>>,
    needs: CaptureNeeds,
    redact: Vec<String>,
    /// The CEL variables (and their fields) any expression reads.
    uses: Uses,
    /// `config.metrics.fields.add`: extra metric labels.
    metric_fields: Vec<(String, Expression)>,
    /// Whether span fields are exactly the log's (same names, same expressions).
    trace_fields_are_log_fields: bool,
}

impl Telemetry {
    /// Builds telemetry from `config:`. Starts the trace exporter's thread, so call it after
    /// the process has daemonized.
    pub fn new(settings: &Settings) -> Result<Telemetry, String> {
        let access_log = AccessLog::new(settings.logging.as_ref());
        let trace_config = match &settings.tracing {
            Some(t) => TraceConfig::from_settings(t)?,
            None => None,
        };
        let metric_fields = metric_fields(settings);
        let exprs: Vec<&Expression> = access_log
            .expressions()
            .chain(metric_fields.iter().map(|(_, e)| e))
            .chain(trace_config.iter().flat_map(|t| t.fields.iter().map(|(_, e)| e).chain(t.sampling_expr.as_ref())))
            .collect();
        let mentions = |p: &str| exprs.iter().any(|e| e.mentions(p));
        let needs = CaptureNeeds {
            request_headers: mentions("request.headers") || mentions("request.host"),
            request_body: mentions("request.body"),
            response_headers: mentions("response.headers"),
            response_body: mentions("response.body"),
            llm_prompt: mentions("llm.prompt"),
            llm_completion: mentions("llm.completion"),
        };
        // A sensitive header stays hidden unless some expression asks for it by name.
        let sensitive = settings.sensitive_headers.clone().unwrap_or_default();
        let redact = DEFAULT_SENSITIVE
            .iter()
            .map(|h| h.to_string())
            .chain(sensitive.iter().map(|h| h.to_ascii_lowercase()))
            .filter(|h| !exprs.iter().any(|e| e.source.to_ascii_lowercase().contains(&format!("\"{h}\""))))
            .collect();
        let uses = Uses::of(exprs.iter().copied());
        let same = |a: &[(String, Expression)], b: &[(String, Expression)]| {
            a.len() == b.len() && a.iter().zip(b).all(|((n, e), (m, f))| n == m && e.source == f.source)
        };
        let trace_fields_are_log_fields = trace_config.as_ref().is_some_and(|t| same(&t.fields, &access_log.add));
        Ok(Telemetry {
            access_log,
            metrics: Arc::new(Metrics::new(settings.metrics.as_ref().map_or(&[], |m| &m.remove))),
            trace_config,
            tracing: OnceLock::new(),
            needs,
            redact,
            uses,
            metric_fields,
            trace_fields_are_log_fields,
        })
    }

    /// What requests must capture.
    pub fn needs(&self) -> CaptureNeeds {
        self.needs
    }

    /// The tracer, started on first use (in the serving process, after any daemonizing fork).
    fn tracer(&self) -> Option<&Tracing> {
        let config = self.trace_config.as_ref()?;
        self.tracing
            .get_or_init(|| {
                // On a thread of its own: this may run inside Pingora's runtime, where another
                // runtime can neither be started nor waited on.
                let config = config.clone();
                let started = std::thread::spawn(move || config.start())
                    .join()
                    .unwrap_or_else(|_| Err("the trace exporter panicked while starting".into()));
                started.map_err(|e| tracing::error!(target: "tollgate", error = %e, "tracing disabled")).ok()
            })
            .as_ref()
    }

    /// Sends the spans still queued before the process exits, waiting at most `budget`: the
    /// batch processor exports every few seconds, so without this a shutdown or a binary
    /// upgrade would lose the last seconds of spans. Returns whether the collector took them
    /// (true when no tracer ever started: nothing was queued).
    pub async fn flush_spans(self: &Arc<Self>, budget: std::time::Duration) -> bool {
        if !matches!(self.tracing.get(), Some(Some(_))) {
            return true;
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let telemetry = self.clone();
        // The SDK's flush blocks until the exporter's runtime answers: on a thread of its own,
        // so a slow collector holds neither a worker thread nor the exit past `budget`.
        std::thread::spawn(move || {
            let flushed = matches!(telemetry.tracing.get(), Some(Some(t)) if t.flush().is_ok());
            let _ = done.send(flushed);
        });
        matches!(tokio::time::timeout(budget, answer).await, Ok(Ok(true)))
    }

    /// Called when a request arrives: starts its span (if sampled).
    pub fn start(&self, req: &RequestHeader, ctx: &mut RequestCtx) {
        let (Some(t), Some(config)) = (self.tracer(), self.trace_config.as_ref()) else { return };
        let parent = req.headers.get("traceparent").and_then(|v| v.to_str().ok());
        if let Some(expr) = &config.sampling_expr {
            let parent_decides = config.client_sampling && parent.and_then(traces::parse_traceparent).is_some();
            if !parent_decides && !self.sampled_by(expr, ctx) {
                return;
            }
        }
        ctx.span = Some(Box::new(t.start(parent)));
    }

    /// Evaluates a CEL `randomSampling`: a bool, or a ratio in [0, 1].
    fn sampled_by(&self, expr: &Expression, ctx: &RequestCtx) -> bool {
        cel::with_evaluator(
            |scope| self.bind(scope, None, ctx),
            |ev| match ev.eval(expr) {
                Some(::cel::Value::Bool(b)) => *b,
                Some(::cel::Value::Float(r)) => cel::random_unit() < *r,
                Some(::cel::Value::Int(i)) => *i >= 1,
                _ => false,
            },
        )
    }

    /// Propagates the trace to the upstream.
    pub fn upstream_request(&self, req: &mut RequestHeader, ctx: &RequestCtx) -> pingora::Result<()> {
        if let Some(span) = &ctx.span {
            req.insert_header("traceparent", span.traceparent())?;
        }
        Ok(())
    }

    /// Called when a request has ended: metrics, the access-log line and the span.
    pub fn finish(&self, source: Option<std::net::SocketAddr>, error: Option<&Error>, ctx: &mut RequestCtx) {
        let log = self.access_log.enabled();
        let mut span = ctx.span.take().filter(|s| s.is_recording()).map(|s| *s);
        let tracer = self.tracer();
        // A collector backing off after failures would drop the span unsent: it is not built,
        // and dropped here without being queued (decided once, so no bare span is exported).
        if let Some(t) = tracer.filter(|t| t.collector_backing_off()) {
            if let Some(unsent) = span.take() {
                t.discard(unsent);
            }
        }
        let tracing = tracer.zip(self.trace_config.as_ref()).zip(span);
        let log_cel = log && self.access_log.expressions().next().is_some();
        let trace_cel = tracing.as_ref().is_some_and(|((_, c), _)| !c.fields.is_empty());
        let ctx = &*ctx;
        if log_cel || trace_cel || !self.metric_fields.is_empty() {
            cel::with_evaluator(
                |scope| self.bind(scope, source, ctx),
                |ev| {
                    let custom = self.metric_labels(ev);
                    self.metrics.record(ctx, &custom);
                    self.report(Some(ev), log, tracing, error, ctx)
                },
            );
        } else {
            self.metrics.record(ctx, &Vec::new());
            self.report(None, log, tracing, error, ctx);
        }
    }

    /// The `config.metrics.fields.add` labels: a CEL string as it is, anything else (an
    /// error, null, a number) `unknown`, as agentgateway writes them.
    fn metric_labels<'e>(&'e self, ev: &mut cel::Evaluator<'e, '_>) -> metrics::CustomLabels {
        self.metric_fields
            .iter()
            .map(|(name, expr)| {
                let value = match ev.eval(expr) {
                    Some(::cel::Value::String(s)) => s.to_string(),
                    _ => "unknown".to_string(),
                };
                (name.clone(), value)
            })
            .collect()
    }

    fn report<'e>(
        &'e self,
        mut cel: Option<&mut cel::Evaluator<'e, '_>>,
        log: bool,
        tracing: Option<((&Tracing, &'e TraceConfig), traces::RequestSpan)>,
        error: Option<&Error>,
        ctx: &RequestCtx,
    ) {
        let mut logged = None;
        if log && self.access_log.admits(cel.as_deref_mut()) {
            let custom = cel.as_deref_mut().map(|ev| CelFields::eval(&self.access_log.add, ev)).unwrap_or_default();
            self.access_log.write(&custom, error, ctx);
            logged = Some(custom);
        }
        if let Some(((t, config), span)) = tracing {
            // Spans usually carry the log's fields (the seed config's do): evaluated once.
            let custom = match logged {
                Some(fields) if self.trace_fields_are_log_fields => fields,
                _ => cel.map(|ev| CelFields::eval(&config.fields, ev)).unwrap_or_default(),
            };
            let (name, attributes) = span_attributes(custom, ctx);
            t.finish(span, name, attributes, error.is_some());
        }
    }

    /// Adds the variables the expressions read (only those, and only the fields they read) to
    /// a CEL scope, borrowing the request's data.
    fn bind<'a>(&self, scope: &mut ::cel::Context<'_, 'a>, source: Option<std::net::SocketAddr>, ctx: &'a RequestCtx) {
        let facts = Facts { source, redact: &self.redact };
        for name in self.uses.names() {
            let Some(wants) = self.uses.var(name) else { continue };
            let value = match name {
                "request" => vars::request(ctx, &facts, wants),
                "response" => vars::response(ctx, &facts, wants),
                "source" => vars::source(&facts, ctx, wants),
                "backend" => vars::backend(ctx, wants),
                "llm" => match &ctx.llm {
                    Some(l) => vars::llm(l, wants),
                    None => continue,
                },
                "mcp" => match &ctx.mcp {
                    Some(m) => vars::mcp(m, wants),
                    None => continue,
                },
                other => {
                    if let Some(v) = vars::principal(ctx, other) {
                        scope.add_variable_from_value(other, v);
                    }
                    continue;
                }
            };
            scope.add_variable_as_val(name, value);
        }
    }
}

/// `config.metrics.fields.add` (its label names were checked at load).
fn metric_fields(settings: &Settings) -> Vec<(String, Expression)> {
    let add = settings.metrics.as_ref().and_then(|m| m.fields.as_ref()).map(|f| &f.add);
    add.into_iter().flatten().map(|(name, expr)| (name.clone(), expr.clone())).collect()
}

/// The span name (from a `span.name` field) and its attributes: OpenTelemetry HTTP and GenAI
/// attributes, then the configured fields (flattened like log fields). The standard attributes'
/// names are static: not allocated here, nor copied again when the exporter clones its batch.
fn span_attributes(custom: CelFields<'_>, ctx: &RequestCtx) -> (Option<String>, Vec<KeyValue>) {
    use opentelemetry::Value as V;
    let mut kv: Vec<KeyValue> = Vec::with_capacity(16 + custom.fields.len());
    let mut add = |key: &'static str, value: V| {
        if !custom.overrides(key) {
            kv.push(KeyValue::new(key, value));
        }
    };
    let count = |n: u64| i64::try_from(n).map_or(V::F64(n as f64), V::I64);
    add("http.request.method", ctx.captured.method.as_str().to_string().into());
    add("url.path", ctx.original_path.clone().into());
    add("http.response.status_code", V::I64(ctx.status.unwrap_or(0).into()));
    if let Some(r) = &ctx.route {
        add("tollgate.route", r.name.clone().into());
    }
    if let Some(m) = &ctx.mcp {
        add("mcp.method.name", m.method.clone().into());
        if let Some(t) = &m.target {
            add("mcp.target", t.clone().into());
        }
        if let (Some("tool"), Some(name)) = (m.resource_type, &m.resource) {
            add("gen_ai.operation.name", "execute_tool".into());
            add("gen_ai.tool.name", name.clone().into());
        }
    }
    if let Some(l) = &ctx.llm {
        add("gen_ai.operation.name", "chat".into());
        add("gen_ai.system", l.provider.into());
        add("gen_ai.provider.name", l.provider.into());
        if let Some(m) = &l.request_model {
            add("gen_ai.request.model", m.clone().into());
        }
        if let Some(m) = &l.response_model {
            add("gen_ai.response.model", m.clone().into());
        }
        if let Some(t) = l.params.temperature {
            add("gen_ai.request.temperature", V::F64(t));
        }
        if let Some(t) = l.params.max_tokens {
            add("gen_ai.request.max_tokens", count(t));
        }
        if let Some(u) = l.usage {
            add("gen_ai.usage.input_tokens", count(u.input_tokens));
            add("gen_ai.usage.output_tokens", count(u.output_tokens));
        }
        if let Some(c) = l.cost {
            add("llm.cost", V::F64(c.total));
        }
    }
    let mut name = None;
    for (k, v) in custom.fields {
        if k == "span.name" && name.is_none() {
            name = Some(match v {
                Json::String(s) => s,
                other => other.to_string(),
            });
        } else {
            kv.push(KeyValue::new(k, to_attribute(v)));
        }
    }
    (name, kv)
}

fn to_attribute(v: Json) -> opentelemetry::Value {
    match v {
        Json::Bool(b) => b.into(),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => n.to_string().into(),
        },
        Json::String(s) => s.into(),
        // `serde_json::to_string`, not `Value`'s `Display`, which writes through `fmt` (~3k a header map).
        other => serde_json::to_string(&other).unwrap_or_default().into(),
    }
}
