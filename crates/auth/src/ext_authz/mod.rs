//! `extAuthz`: asks an external authorization service whether a request may proceed, as
//! agentgateway (and Envoy) do: over gRPC with Envoy's `envoy.service.auth.v3.Authorization/
//! Check`, or over plain HTTP. The service's answer can deny with its own status, headers and
//! body, or allow while setting or removing upstream headers and query parameters, adding
//! response headers and handing facts to later policies (`extauthz.*` in CEL). Every call is
//! bounded by [`CHECK_TIMEOUT`]; a service that is down or slow is handled by `failureMode`.

mod grpc;
mod http_mode;
pub mod proto;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::Value;

use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::response::LocalResponse;
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::request_vars::RequestScope;

/// Registry entry for `extAuthz` (listener, route, backend): after authentication, before
/// `authorization` (whose rules may read `extauthz.*`).
pub const SPEC: FilterSpec = FilterSpec {
    name: "extAuthz",
    levels: Levels::ALL,
    order: 33,
    build: |d| build_with(d, ExtAuthz::compile),
};

/// Longest wait for the service's decision (agentgateway 1.6's default).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The YAML block (agentgateway's `ExtAuthz`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthzConfig {
    /// `host:port` of the service.
    pub host: Option<String>,
    /// A `services` entry (not supported yet).
    pub service: Option<Value>,
    /// A `backends` entry (not supported yet).
    pub backend: Option<String>,
    /// Connection policies (not supported yet).
    pub policies: Option<Value>,
    /// `{grpc: {...}}` (default) or `{http: {...}}`.
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// `deny` (default), `allow`, or `{denyWithStatus: N}`.
    #[serde(default)]
    pub failure_mode: FailureModeConfig,
    /// Request headers sent (names, or `:authority`, `:method`, `:path`, `:scheme`).
    pub include_request_headers: Option<Vec<String>>,
    /// Sending the body (not supported yet).
    pub include_request_body: Option<Value>,
    /// Caching decisions (not supported yet).
    pub cache: Option<Value>,
    /// Conditional entries (not supported yet).
    pub conditional: Option<Value>,
}

/// `protocol:`: exactly one of `grpc`, `http`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Envoy's gRPC protocol.
    pub grpc: Option<GrpcConfig>,
    /// Plain HTTP.
    pub http: Option<HttpConfig>,
}

/// `protocol.grpc`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Sent as `context_extensions`.
    #[serde(default)]
    pub context: Option<HashMap<String, String>>,
    /// CEL values sent as `metadata_context.filter_metadata`.
    #[serde(default)]
    pub metadata: Option<HashMap<String, Expression>>,
}

/// `protocol.http`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// CEL: the check request's path (default: the request's path and query).
    pub path: Option<Expression>,
    /// CEL: where a refused (401/403) request is redirected instead.
    pub redirect: Option<Expression>,
    /// CEL: the check request's body (text as is, other values as JSON).
    pub body: Option<Expression>,
    /// Service response headers copied onto the upstream request.
    #[serde(default)]
    pub include_response_headers: Vec<String>,
    /// CEL: headers added to the check request.
    #[serde(default)]
    pub add_request_headers: HashMap<String, Expression>,
    /// `extauthz.*` from the service's response (not supported yet).
    pub metadata: Option<Value>,
}

/// `failureMode:` as written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FailureModeConfig {
    /// `allow` or `deny`.
    Named(String),
    /// `{denyWithStatus: N}`.
    Status {
        /// The status.
        #[serde(rename = "denyWithStatus")]
        deny_with_status: u16,
    },
}

impl Default for FailureModeConfig {
    fn default() -> Self {
        FailureModeConfig::Named("deny".into())
    }
}

/// What happens when the service cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Let the request through.
    Allow,
    /// 403.
    Deny,
    /// This status.
    DenyWithStatus(u16),
}

/// The service's verdict, or why there is none.
pub enum Verdict {
    /// Go on (the request was already adjusted).
    Allow,
    /// Answer with this.
    Deny(LocalResponse),
    /// No decision (down, slow, garbled).
    Failed(String),
}

enum Protocol {
    Grpc(grpc::GrpcCheck),
    Http(http_mode::HttpCheck),
}

/// The compiled policy.
pub struct ExtAuthz {
    protocol: Protocol,
    failure: FailureMode,
    scope: RequestScope,
}

impl std::fmt::Debug for ExtAuthz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.protocol {
            Protocol::Grpc(_) => "grpc",
            Protocol::Http(_) => "http",
        };
        write!(f, "ExtAuthz({kind}, {:?})", self.failure)
    }
}

/// Response headers the service asked for, applied when the response comes.
#[derive(Clone, Default)]
struct ResponseHeadersToAdd(Vec<(http::HeaderName, http::HeaderValue, proto::HeaderAction)>);

impl ExtAuthz {
    /// Checks the block.
    pub fn compile(c: ExtAuthzConfig) -> std::result::Result<ExtAuthz, String> {
        let unsupported = [
            (c.service.is_some(), "service"),
            (c.backend.is_some(), "backend"),
            (c.policies.is_some(), "policies"),
            (c.include_request_body.is_some(), "includeRequestBody"),
            (c.cache.is_some(), "cache"),
            (c.conditional.is_some(), "conditional"),
            (c.protocol.http.as_ref().is_some_and(|h| h.metadata.is_some()), "protocol.http.metadata"),
        ];
        if let Some((_, field)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(format!("extAuthz.{field} is not supported yet"));
        }
        let host = c.host.ok_or("`host` is required (`service` and `backend` are not supported yet)")?;
        let failure = match c.failure_mode {
            FailureModeConfig::Named(n) if n == "allow" => FailureMode::Allow,
            FailureModeConfig::Named(n) if n == "deny" => FailureMode::Deny,
            FailureModeConfig::Named(n) => return Err(format!("failureMode `{n}` is not one of allow, deny, {{denyWithStatus: N}}")),
            FailureModeConfig::Status { deny_with_status } if (200..=599).contains(&deny_with_status) => FailureMode::DenyWithStatus(deny_with_status),
            FailureModeConfig::Status { deny_with_status } => return Err(format!("failureMode.denyWithStatus {deny_with_status} is not an HTTP status")),
        };
        let include = c.include_request_headers.map(|names| names.into_iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>());
        let (protocol, exprs): (Protocol, Vec<Expression>) = match (c.protocol.grpc, c.protocol.http) {
            (Some(_), Some(_)) => return Err("protocol: set one of `grpc`, `http`".into()),
            (g, None) => {
                let g = g.unwrap_or_default();
                let exprs = g.metadata.iter().flat_map(|m| m.values().cloned()).collect();
                (Protocol::Grpc(grpc::GrpcCheck::compile(&host, g, include)?), exprs)
            }
            (None, Some(h)) => {
                let exprs = h.path.iter().chain(&h.redirect).chain(&h.body).chain(h.add_request_headers.values()).cloned().collect();
                (Protocol::Http(http_mode::HttpCheck::compile(&host, h, include)?), exprs)
            }
        };
        Ok(ExtAuthz { protocol, failure, scope: RequestScope::of(&exprs) })
    }

    fn failed(&self, why: &str, ctx: &RequestCtx) -> FilterAction {
        tracing::warn!(target: "tollgate", reason = %why, failure_mode = ?self.failure, "external authorization service failed");
        match self.failure {
            FailureMode::Allow => FilterAction::Continue,
            FailureMode::Deny => FilterAction::Respond(json_error(ctx.error_format, 403, "permission_error", "external authorization failed")),
            FailureMode::DenyWithStatus(s) => FilterAction::Respond(json_error(ctx.error_format, s, "authorization_unavailable", "Authorization service unavailable")),
        }
    }
}

#[async_trait]
impl Filter for ExtAuthz {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let verdict = match &self.protocol {
            Protocol::Grpc(g) => g.check(session, ctx, &self.scope).await,
            Protocol::Http(h) => h.check(session, ctx, &self.scope).await,
        };
        Ok(match verdict {
            Verdict::Allow => FilterAction::Continue,
            Verdict::Deny(resp) => {
                tracing::info!(target: "tollgate", status = resp.status, principal = %crate::authorization::principal(ctx), "extAuthz denied the request");
                FilterAction::Respond(resp)
            }
            Verdict::Failed(why) => self.failed(&why, ctx),
        })
    }

    fn on_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        let Some(add) = ctx.extensions.remove::<ResponseHeadersToAdd>() else { return Ok(()) };
        for (name, value, action) in add.0 {
            apply_response_header(resp, name, value, action)?;
        }
        Ok(())
    }
}

/// Applies one header from the service to the upstream request.
fn apply_request_header(req: &mut pingora::http::RequestHeader, name: http::HeaderName, value: http::HeaderValue, action: proto::HeaderAction) -> Result<()> {
    use proto::HeaderAction::*;
    let present = req.headers.contains_key(&name);
    match action {
        Append => {
            req.append_header(name, value)?;
        }
        Overwrite => req.insert_header(name, value)?,
        AddIfAbsent | OverwriteIfExists if present == (action == OverwriteIfExists) => req.insert_header(name, value)?,
        AddIfAbsent | OverwriteIfExists => {}
    }
    Ok(())
}

/// Applies one header from the service to the client's response.
fn apply_response_header(resp: &mut ResponseHeader, name: http::HeaderName, value: http::HeaderValue, action: proto::HeaderAction) -> Result<()> {
    use proto::HeaderAction::*;
    let present = resp.headers.contains_key(&name);
    match action {
        Append => {
            resp.append_header(name, value)?;
        }
        Overwrite => resp.insert_header(name, value)?,
        AddIfAbsent | OverwriteIfExists if present == (action == OverwriteIfExists) => resp.insert_header(name, value)?,
        AddIfAbsent | OverwriteIfExists => {}
    }
    Ok(())
}

/// Keeps response headers for [`Filter::on_response`].
fn keep_response_headers(ctx: &mut RequestCtx, headers: Vec<(http::HeaderName, http::HeaderValue, proto::HeaderAction)>) {
    if !headers.is_empty() {
        ctx.extensions.get_or_insert_default::<ResponseHeadersToAdd>().0.extend(headers);
    }
}

/// Whether a header of the service's answer must not be relayed to the client: framing and
/// connection headers (RFC 9110 §7.6.1) and those the answer's `Connection` names.
pub(crate) fn is_hop_by_hop(name: &http::HeaderName, all: &http::HeaderMap) -> bool {
    const HOP: [&str; 9] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "proxy-authenticate"];
    HOP.contains(&name.as_str())
        || all.get_all(http::header::CONNECTION).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(name.as_str()))
}

/// `host:port` split, for both protocols.
fn host_port(host: &str) -> std::result::Result<(String, u16), String> {
    let (h, p) = host.rsplit_once(':').ok_or_else(|| format!("host `{host}` must be host:port"))?;
    let port = p.parse::<u16>().map_err(|_| format!("host `{host}` has no valid port"))?;
    Ok((h.trim_matches(['[', ']']).to_string(), port))
}
