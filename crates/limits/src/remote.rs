//! `remoteRateLimit`: asks an Envoy rate-limit service (`envoy.service.ratelimit.v3.
//! RateLimitService/ShouldRateLimit`, gRPC) whether a request may go on, with descriptors built
//! from CEL, as agentgateway does. `type: requests` descriptors are checked when the request
//! arrives (hits 1); `type: tokens` ones when the LLM request is parsed (hits = the prompt's
//! estimate), topped up with the rest of the real usage when the response ends (the protocol
//! has no refunds). `OVER_LIMIT` is 429 in the caller's format with the service's response
//! headers; a failure or a late answer (2 s, like agentgateway's external calls) is decided by
//! `failureMode` (`failClosed`, the default: 500; `failOpen`). One HTTP/2 channel per policy,
//! made lazily and kept by tonic (reconnects included).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::Value;

use tollgate_core::admission::{LlmAdmission, LlmAdmissions, TokenEstimate};
use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, LocalResponse, RequestCtx};
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::limit_metrics::LimitEvent;
use tollgate_core::telemetry::request_vars::{value_text, RequestScope};

use crate::local::Kind;
use crate::redis_conn::FailureMode;
use crate::rls_proto::{Code, Entry, RateLimitDescriptor, RateLimitRequest, RateLimitResponse, UInt64Value};

/// Registry entry for `remoteRateLimit` (route level in agentgateway's schema).
pub const SPEC: FilterSpec = FilterSpec {
    name: "remoteRateLimit",
    levels: Levels::ROUTE,
    order: 42,
    build: |d| {
        let v: Value = erased_serde::deserialize(d)?;
        RemoteRateLimit::compile(v).map(|f| Arc::new(f) as Arc<dyn Filter>).map_err(<erased_serde::Error as serde::de::Error>::custom)
    },
};

/// The longest wait for the service.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    condition: Option<Expression>,
    host: Option<String>,
    service: Option<Value>,
    backend: Option<Value>,
    domain: String,
    #[serde(default)]
    policies: Option<Value>,
    descriptors: Vec<DescriptorConfig>,
    #[serde(default)]
    failure_mode: FailureMode,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DescriptorConfig {
    entries: Vec<KeyValue>,
    #[serde(default, rename = "type")]
    kind: Kind,
    #[serde(default)]
    cost: Option<Value>,
    #[serde(default)]
    limit_override: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyValue {
    key: String,
    value: Expression,
}


#[derive(Debug)]
struct Descriptor {
    entries: Vec<(String, Expression)>,
    kind: Kind,
}

/// One service and its descriptors (a `conditional` entry, or the whole policy).
struct Service {
    condition: Option<Expression>,
    domain: String,
    descriptors: Vec<Descriptor>,
    failure_mode: FailureMode,
    endpoint: tonic::transport::Endpoint,
    /// Made on first use, inside the proxy's runtime (making it spawns its connection task).
    channel: std::sync::OnceLock<tonic::transport::Channel>,
}

/// The compiled policy.
pub struct RemoteRateLimit {
    services: Vec<Arc<Service>>,
    scope: RequestScope,
}

impl std::fmt::Debug for RemoteRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteRateLimit({} services)", self.services.len())
    }
}

impl Service {
    fn compile(c: Config, at: &str) -> std::result::Result<Service, String> {
        if c.service.is_some() || c.backend.is_some() {
            return Err(format!("{at}service / backend references are not supported yet (use `host`)"));
        }
        if c.policies.as_ref().is_some_and(|p| p.as_object().is_none_or(|o| !o.is_empty())) {
            return Err(format!("{at}policies (for the connection to the service) are not supported yet"));
        }
        let host = c.host.ok_or(format!("{at}`host` is required"))?;
        let uri = if host.contains("://") { host.clone() } else { format!("http://{host}") };
        let endpoint = tonic::transport::Endpoint::from_shared(uri).map_err(|_| format!("{at}host `{host}` is not host:port"))?;
        if endpoint.uri().scheme_str() != Some("http") {
            return Err(format!("{at}host: only plain-text gRPC (http) is supported yet"));
        }
        let endpoint = endpoint.connect_timeout(CALL_TIMEOUT).timeout(CALL_TIMEOUT);
        let mut descriptors = Vec::new();
        for (i, d) in c.descriptors.into_iter().enumerate() {
            if d.cost.is_some() {
                return Err(format!("{at}descriptors[{i}].cost is not supported yet"));
            }
            if d.limit_override.is_some() {
                return Err(format!("{at}descriptors[{i}].limitOverride is not supported yet"));
            }
            descriptors.push(Descriptor { entries: d.entries.into_iter().map(|kv| (kv.key, kv.value)).collect(), kind: d.kind });
        }
        Ok(Service { condition: c.condition, domain: c.domain, descriptors, failure_mode: c.failure_mode, endpoint, channel: Default::default() })
    }

    /// The descriptors of `kind` this request resolves (one whose entry fails is dropped).
    fn build<'e>(&'e self, ev: &mut tollgate_core::telemetry::cel::Evaluator<'e, '_>, kind: Kind) -> Vec<RateLimitDescriptor> {
        let mut out = Vec::new();
        'descriptors: for d in self.descriptors.iter().filter(|d| d.kind == kind) {
            let mut entries = Vec::with_capacity(d.entries.len());
            for (key, expr) in &d.entries {
                let Some(value) = ev.eval(expr).and_then(value_text) else { continue 'descriptors };
                entries.push(Entry { key: key.clone(), value });
            }
            if !entries.is_empty() {
                out.push(RateLimitDescriptor { entries, limit: None, hits_addend: None });
            }
        }
        out
    }

    async fn call(&self, descriptors: Vec<RateLimitDescriptor>, hits: u64) -> (std::result::Result<RateLimitResponse, String>, f64) {
        let started = std::time::Instant::now();
        let reply = self.call_inner(descriptors, hits).await;
        (reply, started.elapsed().as_secs_f64())
    }

    async fn call_inner(&self, descriptors: Vec<RateLimitDescriptor>, hits: u64) -> std::result::Result<RateLimitResponse, String> {
        let descriptors = descriptors.into_iter().map(|mut d| {
            d.hits_addend = Some(UInt64Value { value: hits });
            d
        });
        let request = RateLimitRequest { domain: self.domain.clone(), descriptors: descriptors.collect(), hits_addend: 0 };
        let channel = self.channel.get_or_init(|| self.endpoint.connect_lazy()).clone();
        let mut grpc = tonic::client::Grpc::new(channel);
        let call = async {
            grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
            let path = http::uri::PathAndQuery::from_static(PATH);
            let codec = tonic_prost::ProstCodec::<RateLimitRequest, RateLimitResponse>::default();
            grpc.unary(tonic::Request::new(request), path, codec).await.map(|r| r.into_inner()).map_err(|s| format!("{:?}", s.code()))
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err("timed out".into()),
        }
    }

    /// The answer to the service's reply: go on (with headers to add), or a response.
    fn decide(&self, (reply, secs): (std::result::Result<RateLimitResponse, String>, f64), ctx: &mut RequestCtx) -> std::result::Result<Option<RateLimitResponse>, LocalResponse> {
        let decision = match &reply {
            Ok(r) if r.overall_code == Code::OverLimit as i32 => "limited",
            Ok(_) => "allowed",
            Err(_) if self.failure_mode == FailureMode::FailOpen => "failed_open",
            Err(_) => "failed_closed",
        };
        ctx.limits.push(LimitEvent { policy: "remoteRateLimit", decision, store_seconds: Some(secs), budget_remaining: None });
        match reply {
            Ok(r) if r.overall_code == Code::OverLimit as i32 => {
                let mut resp = json_error(ctx.error_format, 429, "rate_limit_exceeded", "rate limit exceeded (remote)");
                for (name, value) in r.response_headers_to_add.iter().filter_map(|h| h.valid()) {
                    resp = resp.header(name.as_str(), value.to_str().unwrap_or_default());
                }
                Err(resp)
            }
            Ok(r) => Ok(Some(r)),
            Err(why) => {
                tracing::warn!(target: "tollgate", domain = %self.domain, reason = %why, failure_mode = ?self.failure_mode, "remote rate-limit service failed");
                match self.failure_mode {
                    FailureMode::FailOpen => Ok(None),
                    FailureMode::FailClosed => Err(json_error(ctx.error_format, 500, "rate_limit_unavailable", "the rate limit service is unavailable")),
                }
            }
        }
    }
}

impl RemoteRateLimit {
    fn compile(v: Value) -> std::result::Result<RemoteRateLimit, String> {
        let (entries, conditional) = match v {
            Value::Object(mut m) if m.len() == 1 && m.contains_key("conditional") => match m.remove("conditional") {
                Some(Value::Array(items)) => (items, true),
                _ => return Err("`conditional` must be a list".into()),
            },
            other => (vec![other], false),
        };
        let count = entries.len();
        let mut services = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            let at = if conditional { format!("conditional [{i}] ") } else { String::new() };
            let c: Config = serde_json::from_value(e).map_err(|e| format!("{at}{e}"))?;
            if c.condition.is_some() && !conditional {
                return Err("`condition` belongs to `conditional` entries".into());
            }
            if conditional && c.condition.is_none() && i + 1 != count {
                return Err(format!("{at}an entry without a condition must be the last (the fallback)"));
            }
            services.push(Arc::new(Service::compile(c, &at)?));
        }
        let exprs: Vec<&Expression> = services
            .iter()
            .flat_map(|s| s.condition.iter().chain(s.descriptors.iter().flat_map(|d| d.entries.iter().map(|(_, e)| e))))
            .collect();
        Ok(RemoteRateLimit { scope: RequestScope::of(exprs), services })
    }
}

/// What the service asked to add to the response, kept for `on_response`.
#[derive(Clone, Default)]
struct HeadersToAdd(Vec<(String, String)>);

/// Token descriptors checked at admission and topped up at the end.
#[derive(Clone)]
struct TokenCheck {
    service: Arc<Service>,
    descriptors: Vec<RateLimitDescriptor>,
}

#[derive(Clone, Default)]
struct Charged(Vec<(TokenCheck, u64)>);

#[async_trait]
impl LlmAdmission for TokenCheck {
    async fn admit(&self, estimate: TokenEstimate, ctx: &mut RequestCtx) -> std::result::Result<(), LocalResponse> {
        let reply = self.service.call(self.descriptors.clone(), estimate.prompt).await;
        if let Some(r) = self.service.decide(reply, ctx)? {
            keep_headers(ctx, &r);
        }
        ctx.extensions.get_or_insert_default::<Charged>().0.push((self.clone(), estimate.prompt));
        Ok(())
    }
}

fn keep_headers(ctx: &mut RequestCtx, r: &RateLimitResponse) {
    if !r.response_headers_to_add.is_empty() {
        let add = ctx.extensions.get_or_insert_default::<HeadersToAdd>();
        add.0.extend(r.response_headers_to_add.iter().filter_map(|h| h.valid()).map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string())));
    }
}

#[async_trait]
impl Filter for RemoteRateLimit {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let source = session.client_addr().and_then(|a| a.as_inet()).copied();
        let (service, requests, tokens) = match self.scope.eval(session.req_header(), source, ctx, |ev| {
            let service = self.services.iter().find(|s| s.condition.as_ref().is_none_or(|c| matches!(ev.eval(c), Some(::cel::Value::Bool(true)))))?;
            Some((service.clone(), service.build(ev, Kind::Requests), service.build(ev, Kind::Tokens)))
        }) {
            Some(found) => found,
            None => return Ok(FilterAction::Continue),
        };
        if !requests.is_empty() {
            let reply = service.call(requests, 1).await;
            match service.decide(reply, ctx) {
                Err(resp) => return Ok(FilterAction::Respond(resp)),
                Ok(Some(r)) => {
                    for (name, value) in r.request_headers_to_add.iter().filter_map(|h| h.valid()) {
                        session.req_header_mut().insert_header(name, value)?;
                    }
                    keep_headers(ctx, &r);
                }
                Ok(None) => {}
            }
        }
        if !tokens.is_empty() {
            LlmAdmissions::register(ctx, Arc::new(TokenCheck { service, descriptors: tokens }));
        }
        Ok(FilterAction::Continue)
    }

    fn on_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        if let Some(add) = ctx.extensions.get::<HeadersToAdd>() {
            for (k, v) in &add.0 {
                resp.append_header(k.clone(), v.as_str())?;
            }
        }
        Ok(())
    }

    fn on_log(&self, ctx: &mut RequestCtx) {
        let Some(Charged(charged)) = ctx.extensions.remove::<Charged>() else { return };
        let Some(usage) = ctx.llm.as_ref().and_then(|l| l.usage) else { return };
        let used = usage.input_tokens + usage.output_tokens;
        for (check, prompt) in charged {
            // The protocol has no refunds: only what the estimate missed is added.
            if used > prompt {
                tokio::spawn(async move {
                    let _ = check.service.call(check.descriptors, used - prompt).await;
                });
            }
        }
    }
}
