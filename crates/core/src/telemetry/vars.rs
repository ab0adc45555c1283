//! The CEL variables of one request (`request`, `response`, `llm`, `source`, `backend`),
//! in agentgateway's shape. Built once per logged request, only when fields are configured.

use serde_json::{json, Map, Value as Json};

use crate::ctx::RequestCtx;
use crate::llm::{LlmExchange, RouteType};
use crate::runtime::BackendTarget;

/// Header values shown instead of secrets.
pub const REDACTED: &str = "<redacted>";

/// Headers redacted unless an expression names them.
pub const DEFAULT_SENSITIVE: &[&str] = &["authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"];

/// Request facts the proxy knows besides the context.
pub struct Facts<'a> {
    /// Client address, if known.
    pub source: Option<std::net::SocketAddr>,
    /// Headers to redact (lowercase), minus those an expression asks for.
    pub redact: &'a [String],
}

fn headers_json(headers: &http::HeaderMap, redact: &[String]) -> Json {
    let mut m = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let value = if redact.iter().any(|r| r == name.as_str()) { REDACTED.to_string() } else { joined };
        m.insert(name.as_str().to_string(), Json::String(value));
    }
    Json::Object(m)
}

fn body_json(body: &Option<Vec<u8>>) -> Json {
    body.as_ref().map_or(Json::Null, |b| Json::String(String::from_utf8_lossy(b).into_owned()))
}

/// `request.*`.
pub fn request(ctx: &RequestCtx, facts: &Facts) -> Json {
    let c = &ctx.captured;
    let host = c
        .request_headers
        .as_ref()
        .and_then(|h| h.get(http::header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| c.uri.authority().map(|a| a.to_string()));
    json!({
        "method": c.method.as_str(),
        "uri": c.uri.to_string(),
        "path": c.uri.path(),
        "pathAndQuery": c.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "host": host,
        "scheme": "http",
        "version": format!("{:?}", c.version),
        "headers": c.request_headers.as_ref().map_or(Json::Null, |h| headers_json(h, facts.redact)),
        "body": body_json(&c.request_body),
        "startTime": start_time(ctx),
    })
}

/// When the request arrived, as an RFC 3339 timestamp.
fn start_time(ctx: &RequestCtx) -> String {
    let now = std::time::SystemTime::now();
    super::access_log::rfc3339(now.checked_sub(ctx.started.elapsed()).unwrap_or(now))
}

/// `response.*`.
pub fn response(ctx: &RequestCtx, facts: &Facts) -> Json {
    let c = &ctx.captured;
    json!({
        "code": ctx.status,
        "headers": c.response_headers.as_ref().map_or(Json::Null, |h| headers_json(h, facts.redact)),
        "body": body_json(&c.response_body),
    })
}

/// `source.*`.
pub fn source(facts: &Facts, ctx: &RequestCtx) -> Json {
    // An IPv4 client on the dual-stack listener is shown as IPv4 (not ::ffff:a.b.c.d).
    let mut out = match facts.source {
        Some(a) => json!({"address": a.ip().to_canonical().to_string(), "port": a.port()}),
        None => json!({}),
    };
    // A verified client certificate (mTLS listener), as agentgateway shows it.
    if let (Some(peer), Json::Object(map)) = (ctx.client_tls.as_ref().and_then(|t| t.peer.as_ref()), &mut out) {
        map.insert("subject".into(), json!(peer.subject));
        map.insert("issuer".into(), json!(peer.issuer));
        map.insert("subjectCn".into(), json!(peer.subject_cn));
        map.insert("subjectAltNames".into(), json!(peer.subject_alt_names));
        map.insert("certificate".into(), json!(peer.pem));
    }
    out
}

/// `backend.*`.
pub fn backend(ctx: &RequestCtx) -> Json {
    let Some(b) = &ctx.backend else { return json!({}) };
    let (kind, protocol) = match b.target {
        BackendTarget::Host { .. } => ("static", "http"),
        BackendTarget::Ai(_) | BackendTarget::AiGroups(_) | BackendTarget::LlmRouter(_) => ("ai", "llm"),
        BackendTarget::Mcp => ("mcp", "mcp"),
        // Never the chosen backend: delegation picks one of the group's routes' backends.
        BackendTarget::RouteGroup(_) => ("unknown", "http"),
    };
    json!({"name": b.name, "type": kind, "protocol": protocol})
}

/// `llm.*` (absent for non-LLM requests). Unset params are present as null so that
/// `default(llm.params.temperature, 1.0)` works.
pub fn llm(l: &LlmExchange) -> Json {
    let u = l.usage.unwrap_or_default();
    let has_usage = l.usage.is_some();
    let p = &l.params;
    json!({
        "provider": l.provider,
        "requestModel": l.request_model,
        "responseModel": l.response_model,
        "streaming": l.streaming,
        "inputTokens": has_usage.then_some(u.input_tokens),
        "outputTokens": has_usage.then_some(u.output_tokens),
        "totalTokens": has_usage.then_some(u.total_tokens),
        "cachedInputTokens": u.cached_input_tokens,
        "reasoningTokens": u.reasoning_tokens,
        "cacheCreationInputTokens": u.cache_creation_input_tokens,
        "timeToFirstToken": l.time_to_first_byte.map(|d| d.as_millis() as u64),
        "cost": l.cost.map(|c| json!({
            "total": c.total, "input": c.input, "output": c.output, "cacheRead": c.cache_read,
            "cacheWrite": c.cache_write, "reasoning": c.reasoning, "inputAudio": 0.0, "outputAudio": 0.0,
        })),
        "costRates": l.cost.map(|c| {
            let r = c.rates;
            let d = |m: Option<crate::cost::catalog::Money>| m.map(|m| m.dollars());
            json!({
                "input": d(r.input), "output": d(r.output), "cacheRead": d(r.cache_read), "cacheWrite": d(r.cache_write),
                "reasoning": d(r.reasoning), "inputAudio": d(r.input_audio), "outputAudio": d(r.output_audio),
            })
        }),
        "prompt": l.prompt,
        "completion": l.completion,
        "params": {
            "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens,
            "frequency_penalty": p.frequency_penalty, "presence_penalty": p.presence_penalty, "seed": p.seed,
        },
        "operation": match l.route { RouteType::Completions | RouteType::Messages => "chat", RouteType::AnthropicTokenCount | RouteType::GeminiCountTokens => "count_tokens", RouteType::Rerank => "rerank", RouteType::Embeddings => "embeddings", RouteType::GenerateContent | RouteType::Responses => "chat", RouteType::Models => "models", RouteType::Passthrough => "passthrough", RouteType::Detect => "detect" },
    })
}

/// `mcp.*` (absent for non-MCP requests), in agentgateway's shape: `mcp.method`,
/// `mcp.tool.name` / `mcp.tool.target` (and `prompt`, `resource`), `mcp.session.id`, `mcp.error`.
pub fn mcp(m: &crate::ctx::McpExchange) -> Json {
    let mut v = json!({
        "method": m.method,
        "target": m.target,
        "session": {"id": m.session_id},
        "error": m.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
    });
    if let Some(kind) = m.resource_type {
        let key = if kind == "resource" { "uri" } else { "name" };
        v[kind] = json!({key: m.resource, "target": m.target});
    }
    v
}
