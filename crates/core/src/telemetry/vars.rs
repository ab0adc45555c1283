//! The CEL variables of one request (`request`, `response`, `llm`, `source`, `backend`, `mcp`),
//! in agentgateway's shape. Built when a logged request ends, straight into CEL values that
//! borrow the request's data (no JSON step, no copy of a body or header a field reads), and
//! only the fields some expression reads ([`Use`]).

use std::collections::HashMap;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;

use super::cel::uses::Use;
use crate::ctx::RequestCtx;
use crate::llm::{LlmExchange, RouteType};
use crate::runtime::BackendTarget;

/// Header values shown instead of secrets.
pub const REDACTED: &str = "<redacted>";

/// Headers redacted unless an expression names them.
pub const DEFAULT_SENSITIVE: &[&str] = &["authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"];

/// A CEL value borrowing the request for `'a`.
pub type Var<'a> = Box<dyn Val + 'a>;

/// Request facts the proxy knows besides the context.
pub struct Facts<'a> {
    /// Client address, if known.
    pub source: Option<std::net::SocketAddr>,
    /// Headers to redact (lowercase), minus those an expression asks for.
    pub redact: &'a [String],
}

/// Every field of a nested object (`llm.params`, `llm.cost`).
const ALL: Use = Use { whole: true, fields: Vec::new() };

/// A map holding the fields `wants` asks for.
struct Object<'a, 'u> {
    wants: &'u Use,
    map: HashMap<CelMapKey<'a>, Var<'a>>,
}

impl<'a, 'u> Object<'a, 'u> {
    fn new(wants: &'u Use) -> Self {
        // Sized once: growing rehashes every (SipHashed) key again.
        let capacity = if wants.whole { 16 } else { wants.fields.len() };
        Object { wants, map: HashMap::with_capacity(capacity) }
    }

    fn field(&mut self, name: &'static str, value: impl FnOnce() -> Var<'a>) -> &mut Self {
        if self.wants.wants(name) {
            self.map.insert(CelMapKey::from(name), value());
        }
        self
    }

    fn done(&mut self) -> Var<'a> {
        Box::new(CelMap::from(std::mem::take(&mut self.map)))
    }
}

fn text<'a>(s: &'a str) -> Var<'a> {
    Box::new(CelString::from(s))
}

fn owned<'a>(s: String) -> Var<'a> {
    Box::new(CelString::from(s))
}

fn null<'a>() -> Var<'a> {
    Box::new(CelNull)
}

fn opt_text(s: Option<&str>) -> Var<'_> {
    s.map_or_else(null, text)
}

fn int<'a>(i: impl TryInto<i64>) -> Var<'a> {
    Box::new(CelInt::from(i.try_into().unwrap_or(i64::MAX)))
}

fn opt_int<'a>(i: Option<impl TryInto<i64>>) -> Var<'a> {
    i.map_or_else(null, int)
}

fn float<'a>(f: f64) -> Var<'a> {
    Box::new(CelDouble::from(f))
}

fn opt_float<'a>(f: Option<f64>) -> Var<'a> {
    f.map_or_else(null, float)
}

fn list<'a>(items: impl IntoIterator<Item = Var<'a>>) -> Var<'a> {
    Box::new(CelList::from(items.into_iter().collect::<Vec<_>>()))
}

/// Bytes as text, borrowed when they are UTF-8.
fn bytes_text(b: &[u8]) -> Var<'_> {
    Box::new(CelString::from(utf8_lossy(b)))
}

/// `String::from_utf8_lossy`, with std's word-at-a-time check first: a body or header is
/// nearly always valid UTF-8, and the lossy scan goes a byte at a time (~5× the cost).
pub fn utf8_lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(b),
    }
}

fn headers<'a>(headers: &'a http::HeaderMap, redact: &[String]) -> Var<'a> {
    let mut map = HashMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter();
        let value = if redact.iter().any(|r| r == name.as_str()) {
            text(REDACTED)
        } else {
            match (values.next(), values.next()) {
                (Some(one), None) => bytes_text(one.as_bytes()),
                _ => owned(
                    headers.get_all(name).iter().map(|v| utf8_lossy(v.as_bytes())).collect::<Vec<_>>().join(","),
                ),
            }
        };
        map.insert(CelMapKey::from(name.as_str()), value);
    }
    Box::new(CelMap::from(map))
}

fn body(body: &Option<Vec<u8>>) -> Var<'_> {
    body.as_deref().map_or_else(null, bytes_text)
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `request.*`.
pub fn request<'a>(ctx: &'a RequestCtx, facts: &Facts, wants: &Use) -> Var<'a> {
    let c = &ctx.captured;
    Object::new(wants)
        .field("method", || text(c.method.as_str()))
        .field("uri", || owned(c.uri.to_string()))
        .field("path", || text(c.uri.path()))
        .field("pathAndQuery", || text(c.uri.path_and_query().map_or("/", |p| p.as_str())))
        .field("host", || {
            let header = c.request_headers.as_ref().and_then(|h| h.get(http::header::HOST)).and_then(|v| v.to_str().ok());
            match header {
                Some(h) => text(h),
                None => c.uri.authority().map_or_else(null, |a| text(a.as_str())),
            }
        })
        .field("scheme", || text("http"))
        .field("version", || text(version(c.version)))
        .field("headers", || c.request_headers.as_ref().map_or_else(null, |h| headers(h, facts.redact)))
        .field("body", || body(&c.request_body))
        .field("startTime", || owned(start_time(ctx)))
        .done()
}

/// When the request arrived, as an RFC 3339 timestamp.
fn start_time(ctx: &RequestCtx) -> String {
    let now = std::time::SystemTime::now();
    super::access_log::rfc3339(now.checked_sub(ctx.started.elapsed()).unwrap_or(now))
}

/// `response.*`.
pub fn response<'a>(ctx: &'a RequestCtx, facts: &Facts, wants: &Use) -> Var<'a> {
    let c = &ctx.captured;
    Object::new(wants)
        .field("code", || opt_int(ctx.status))
        .field("headers", || c.response_headers.as_ref().map_or_else(null, |h| headers(h, facts.redact)))
        .field("body", || body(&c.response_body))
        .done()
}

/// `source.*`.
pub fn source<'a>(facts: &Facts, ctx: &'a RequestCtx, wants: &Use) -> Var<'a> {
    let mut out = Object::new(wants);
    // An IPv4 client on the dual-stack listener is shown as IPv4 (not ::ffff:a.b.c.d).
    if let Some(a) = facts.source {
        out.field("address", || owned(a.ip().to_canonical().to_string())).field("port", || int(a.port()));
    }
    // A verified client certificate (mTLS listener), as agentgateway shows it.
    if let Some(peer) = ctx.client_tls.as_ref().and_then(|t| t.peer.as_ref()) {
        out.field("subject", || text(&peer.subject))
            .field("issuer", || text(&peer.issuer))
            .field("subjectCn", || opt_text(peer.subject_cn.as_deref()))
            .field("subjectAltNames", || list(peer.subject_alt_names.iter().map(|s| text(s))))
            .field("certificate", || text(&peer.pem));
    }
    out.done()
}

/// `backend.*`.
pub fn backend<'a>(ctx: &'a RequestCtx, wants: &Use) -> Var<'a> {
    let mut out = Object::new(wants);
    let Some(b) = &ctx.backend else { return out.done() };
    let (kind, protocol) = match b.target {
        BackendTarget::Host { .. } => ("static", "http"),
        BackendTarget::Ai(_) | BackendTarget::AiGroups(_) | BackendTarget::LlmRouter(_) => ("ai", "llm"),
        BackendTarget::Mcp => ("mcp", "mcp"),
        // Never the chosen backend: delegation picks one of the group's routes' backends.
        BackendTarget::RouteGroup(_) => ("unknown", "http"),
    };
    out.field("name", || text(&b.name)).field("type", || text(kind)).field("protocol", || text(protocol)).done()
}

/// `llm.*` (absent for non-LLM requests). Unset params are present as null so that
/// `default(llm.params.temperature, 1.0)` works.
pub fn llm<'a>(l: &'a LlmExchange, wants: &Use) -> Var<'a> {
    let u = l.usage.unwrap_or_default();
    let has_usage = l.usage.is_some();
    let p = &l.params;
    Object::new(wants)
        .field("provider", || text(l.provider))
        .field("requestModel", || opt_text(l.request_model.as_deref()))
        .field("responseModel", || opt_text(l.response_model.as_deref()))
        .field("streaming", || Box::new(CelBool::from(l.streaming)))
        .field("inputTokens", || opt_int(has_usage.then_some(u.input_tokens)))
        .field("outputTokens", || opt_int(has_usage.then_some(u.output_tokens)))
        .field("totalTokens", || opt_int(has_usage.then_some(u.total_tokens)))
        .field("cachedInputTokens", || opt_int(u.cached_input_tokens))
        .field("reasoningTokens", || opt_int(u.reasoning_tokens))
        .field("cacheCreationInputTokens", || opt_int(u.cache_creation_input_tokens))
        .field("timeToFirstToken", || opt_int(l.time_to_first_byte.map(|d| d.as_millis())))
        .field("cost", || l.cost.map_or_else(null, cost))
        .field("costRates", || l.cost.map_or_else(null, |c| cost_rates(&c.rates)))
        .field("prompt", || match &l.prompt {
            Some(messages) => list(messages.iter().map(|m| {
                Object::new(&ALL).field("role", || text(&m.role)).field("content", || text(&m.content)).done()
            })),
            None => null(),
        })
        .field("completion", || l.completion.as_ref().map_or_else(null, |c| list(c.iter().map(|s| text(s)))))
        .field("params", || {
            Object::new(&ALL)
                .field("temperature", || opt_float(p.temperature))
                .field("top_p", || opt_float(p.top_p))
                .field("max_tokens", || opt_int(p.max_tokens))
                .field("frequency_penalty", || opt_float(p.frequency_penalty))
                .field("presence_penalty", || opt_float(p.presence_penalty))
                .field("seed", || opt_int(p.seed))
                .done()
        })
        .field("operation", || text(operation(l.route)))
        .done()
}

fn operation(route: RouteType) -> &'static str {
    match route {
        RouteType::Completions | RouteType::Messages | RouteType::GenerateContent | RouteType::Responses => "chat",
        RouteType::AnthropicTokenCount | RouteType::GeminiCountTokens => "count_tokens",
        RouteType::Rerank => "rerank",
        RouteType::Embeddings => "embeddings",
        RouteType::Models => "models",
        RouteType::Passthrough => "passthrough",
        RouteType::Detect => "detect",
    }
}

fn cost<'a>(c: crate::cost::Cost) -> Var<'a> {
    Object::new(&ALL)
        .field("total", || float(c.total))
        .field("input", || float(c.input))
        .field("output", || float(c.output))
        .field("cacheRead", || float(c.cache_read))
        .field("cacheWrite", || float(c.cache_write))
        .field("reasoning", || float(c.reasoning))
        .field("inputAudio", || float(0.0))
        .field("outputAudio", || float(0.0))
        .done()
}

fn cost_rates<'a>(r: &crate::cost::catalog::Rates) -> Var<'a> {
    let d = |m: Option<crate::cost::catalog::Money>| opt_float(m.map(|m| m.dollars()));
    Object::new(&ALL)
        .field("input", || d(r.input))
        .field("output", || d(r.output))
        .field("cacheRead", || d(r.cache_read))
        .field("cacheWrite", || d(r.cache_write))
        .field("reasoning", || d(r.reasoning))
        .field("inputAudio", || d(r.input_audio))
        .field("outputAudio", || d(r.output_audio))
        .done()
}

/// `mcp.*` (absent for non-MCP requests), in agentgateway's shape: `mcp.method`,
/// `mcp.tool.name` / `mcp.tool.target` (and `prompt`, `resource`), `mcp.session.id`, `mcp.error`.
pub fn mcp<'a>(m: &'a crate::ctx::McpExchange, wants: &Use) -> Var<'a> {
    let mut out = Object::new(wants);
    out.field("method", || text(&m.method))
        .field("target", || opt_text(m.target.as_deref()))
        .field("session", || Object::new(&ALL).field("id", || opt_text(m.session_id.as_deref())).done())
        .field("error", || match &m.error {
            Some((code, message)) => Object::new(&ALL).field("code", || int(*code)).field("message", || text(message)).done(),
            None => null(),
        });
    if let Some(kind) = m.resource_type {
        let key = if kind == "resource" { "uri" } else { "name" };
        out.field(kind, || Object::new(&ALL).field(key, || opt_text(m.resource.as_deref())).field("target", || opt_text(m.target.as_deref())).done());
    }
    out.done()
}

/// `apiKey.*`: the key's metadata fields (an object's fields at the top, as agentgateway
/// flattens them), `key` always redacted, and `id`, the key's non-secret identifier.
pub fn api_key(claims: &crate::identity::ApiKeyClaims) -> ::cel::Value {
    let mut out = match &claims.metadata {
        serde_json::Value::Object(m) => m.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("metadata".to_string(), other.clone())]),
    };
    out.insert("key".into(), REDACTED.into());
    out.insert("id".into(), claims.id.clone().into());
    super::cel::json_to_cel(serde_json::Value::Object(out))
}

/// The principals' variables (`apiKey`, `jwt`, `basicAuth`, `extauthz`) as CEL values, when the
/// request has that principal; `None` for other names or when absent (CEL then reports the
/// variable undeclared, which rules treat as false).
pub fn principal(ctx: &RequestCtx, name: &str) -> Option<::cel::Value> {
    match name {
        "apiKey" => ctx.api_key.as_deref().map(api_key),
        "jwt" => ctx.jwt.as_ref().map(|j| super::cel::json_to_cel(serde_json::Value::Object(j.claims.clone()))),
        "basicAuth" => ctx
            .basic_auth_user
            .as_ref()
            .map(|u| super::cel::json_to_cel(serde_json::json!({"username": &**u}))),
        "extauthz" => ctx.ext_authz.as_ref().map(|v| super::cel::json_to_cel((**v).clone())),
        _ => None,
    }
}

/// `request.*` of a request still in flight (for policies that evaluate CEL before the
/// upstream is called): method, URI, path, host, headers as they are now (unredacted: the
/// values stay inside the gateway).
pub fn live_request<'a>(req: &'a pingora::http::RequestHeader, wants: &Use) -> Var<'a> {
    Object::new(wants)
        .field("method", || text(req.method.as_str()))
        .field("uri", || owned(req.uri.to_string()))
        .field("path", || text(req.uri.path()))
        .field("pathAndQuery", || text(req.uri.path_and_query().map_or("/", |p| p.as_str())))
        .field("host", || text(crate::filters::request_host(req)))
        .field("scheme", || text("http"))
        .field("version", || text(version(req.version)))
        .field("headers", || headers(&req.headers, &[]))
        .done()
}
