//! MCP backends. This first stage proxies a backend with one Streamable HTTP target: every
//! request on the route (POST, the GET event stream, DELETE) goes to the target's URL with the
//! route's policies applied, responses (JSON or SSE) stream back untouched, and session ids pass
//! through. Federation of several targets, legacy SSE, stdio and OpenAPI targets come next
//! (issue 6) and are answered with a JSON-RPC error until then.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;

use super::registry::FilterSpec;
use super::{set_request_path, Filter, FilterAction, LocalResponse, RequestCtx};
use crate::config::backend::{split_host_port, McpBackend};
use crate::ctx::TlsPlan;

/// Not a YAML policy: the runtime adds it to every `mcp` backend's chain.
pub const SPEC: FilterSpec = FilterSpec {
    name: "mcp",
    order: 210,
    build: |_| Err(<erased_serde::Error as serde::de::Error>::custom("`mcp` is a backend, not a policy")),
};

/// Where a Streamable HTTP target lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Target name.
    pub name: String,
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path of the MCP endpoint.
    pub path: String,
    /// `https`.
    pub tls: bool,
}

/// The compiled MCP backend.
#[derive(Debug)]
pub enum McpProxy {
    /// One Streamable HTTP target: proxied.
    Single(HttpTarget),
    /// Anything else: not served yet, with the reason.
    Unsupported(String),
}

/// Parses `https://host:port/path` (port defaults by scheme, path defaults to `/`).
pub fn parse_url(url: &str) -> std::result::Result<(String, u16, String, bool), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{url}` must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if authority.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit())) {
        split_host_port(authority)?
    } else {
        (authority.trim_start_matches('[').trim_end_matches(']').to_string(), if tls { 443 } else { 80 })
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok((host, port, path.to_string(), tls))
}

impl McpProxy {
    /// Compiles the backend's targets.
    pub fn compile(b: &McpBackend) -> std::result::Result<McpProxy, String> {
        let [target] = b.targets.as_slice() else {
            return Ok(McpProxy::Unsupported(format!("{} targets: federating several MCP servers is not served yet", b.targets.len())));
        };
        let Some(spec) = &target.mcp else {
            return Ok(McpProxy::Unsupported(format!("target `{}`: only Streamable HTTP (`mcp:`) targets are served yet", target.name)));
        };
        let field = |k: &str| spec.get(k).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())));
        let (host, port, path, tls) = match (field("host"), field("port"), field("path")) {
            (Some(url), None, None) if url.contains("://") => parse_url(&url)?,
            (Some(host), Some(port), path) => {
                let port = port.parse().map_err(|_| format!("target `{}`: bad port", target.name))?;
                (host, port, path.unwrap_or_else(|| "/mcp".into()), false)
            }
            _ => return Err(format!("target `{}`: `mcp` needs `host: URL` or `host`, `port`, `path`", target.name)),
        };
        Ok(McpProxy::Single(HttpTarget { name: target.name.clone(), host, port, path, tls }))
    }
}

fn jsonrpc_error(status: u16, message: &str) -> LocalResponse {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32601, "message": message}});
    LocalResponse::json(status, body.to_string())
}

#[async_trait]
impl Filter for McpProxy {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let t = match self {
            McpProxy::Single(t) => t,
            McpProxy::Unsupported(why) => return Ok(FilterAction::Respond(jsonrpc_error(501, why))),
        };
        ctx.upstream.host.clone_from(&t.host);
        ctx.upstream.port = t.port;
        if t.tls && ctx.upstream.tls.is_none() {
            ctx.upstream.tls = Some(Arc::new(TlsPlan::default()));
        }
        let req = session.req_header_mut();
        set_request_path(req, &t.path)?;
        // MCP servers check Host (DNS-rebinding protection): send the target's own authority.
        let default_port = if t.tls { 443 } else { 80 };
        let authority = if t.port == default_port { t.host.clone() } else { format!("{}:{}", t.host, t.port) };
        req.insert_header(http::header::HOST, authority)?;
        Ok(FilterAction::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://192.168.1.68:8123/api/mcp").unwrap(), ("192.168.1.68".into(), 8123, "/api/mcp".into(), false));
        assert_eq!(parse_url("https://mcp.example.com/mcp").unwrap(), ("mcp.example.com".into(), 443, "/mcp".into(), true));
        assert_eq!(parse_url("http://[::1]:9/x").unwrap(), ("::1".into(), 9, "/x".into(), false));
        assert!(parse_url("ftp://x").is_err());
    }
}
