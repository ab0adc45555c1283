//! Compiled MCP targets: where each is and how it is reached.

use std::sync::Arc;

use super::client::{CallCtx, Origin};
use tollgate_core::ctx::TlsPlan;
use super::openapi::OpenApiTarget;
use tollgate_core::config::backend::split_host_port;
use tollgate_core::config::mcp::{HttpTargetSpec, McpTarget, StdioSpec};

/// One target of an MCP backend.
#[derive(Debug)]
pub struct Target {
    /// Name, used as the tool-name prefix and in session ids.
    pub name: String,
    /// Transport.
    pub kind: TargetKind,
    /// The target's own credentials and TLS.
    pub transport: Arc<TargetTransport>,
}

/// A target's own transport policies, applied over the route's to each of its exchanges.
#[derive(Default)]
pub struct TargetTransport {
    /// TLS instead of the route's `backendTLS`.
    pub tls: Option<Arc<TlsPlan>>,
    /// `Authorization` instead of the route's.
    pub auth: Option<http::HeaderValue>,
}

impl std::fmt::Debug for TargetTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The fingerprint of a backend hashes this: keep secrets out, but let changes show.
        write!(f, "TargetTransport {{ tls: {}, auth: {} }}", self.tls.is_some(), self.auth.is_some())
    }
}

impl TargetTransport {
    /// The exchange context for this target.
    pub fn apply<'a>(&self, cc: &'a CallCtx) -> std::borrow::Cow<'a, CallCtx> {
        if self.tls.is_none() && self.auth.is_none() {
            return std::borrow::Cow::Borrowed(cc);
        }
        let mut own = cc.clone();
        if let Some(tls) = &self.tls {
            own.tls = Some(tls.clone());
        }
        if let Some(auth) = &self.auth {
            own.headers.insert(http::header::AUTHORIZATION, auth.clone());
        }
        std::borrow::Cow::Owned(own)
    }
}

/// How a target is reached.
#[derive(Debug)]
pub enum TargetKind {
    /// Streamable HTTP at `path`.
    Http(Origin, String),
    /// Legacy HTTP+SSE: the event stream at `path`.
    Sse(Origin, String),
    /// A child process per session.
    Stdio(Arc<StdioSpec>),
    /// OpenAPI operations as tools.
    OpenApi(Arc<OpenApiTarget>),
}

/// Parses `https://host:port/path` (port defaults by scheme, path defaults to `/`).
pub fn parse_url(url: &str) -> Result<(Origin, String), String> {
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
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':'));
    let (host, port) = if has_port && !(authority.starts_with('[') && authority.ends_with(']')) {
        split_host_port(authority)?
    } else {
        (authority.trim_start_matches('[').trim_end_matches(']').to_string(), if tls { 443 } else { 80 })
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok((Origin { host, port, tls }, path.to_string()))
}

/// `host: URL`, or `host` + `port` (+ `path`, default `default_path`).
pub fn http_location(spec: &HttpTargetSpec, default_path: &str) -> Result<(Origin, String), String> {
    if spec.host.contains("://") {
        if spec.port.is_some() || spec.path.is_some() {
            return Err("give either `host` as a URL or `host`, `port` and `path`".into());
        }
        return parse_url(&spec.host);
    }
    let (host, port) = match spec.port {
        Some(p) => (spec.host.clone(), p),
        None => split_host_port(&spec.host)?,
    };
    let path = spec.path.clone().unwrap_or_else(|| default_path.to_string());
    Ok((Origin { host, port, tls: false }, path))
}

impl Target {
    /// A stable, explicit description of the target (what a session id was made against):
    /// versioned, so a new build only changes it on purpose.
    pub fn canonical(&self) -> String {
        let o = |o: &Origin, p: &str| format!("{}|{}|{}|{p}", o.host, o.port, o.tls);
        let kind = match &self.kind {
            TargetKind::Http(origin, path) => format!("http|{}", o(origin, path)),
            TargetKind::Sse(origin, path) => format!("sse|{}", o(origin, path)),
            TargetKind::Stdio(s) => {
                let env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("stdio|{}|{}|{}|{}", s.cmd, s.args.join("\u{1f}"), env.join("\u{1f}"), s.clear_env)
            }
            TargetKind::OpenApi(api) => format!("openapi|{}", api.canonical()),
        };
        format!("v1|{}|{kind}|{}|{}", self.name, self.transport.tls.is_some(), self.transport.auth.is_some())
    }

    /// Compiles one configured target.
    pub fn compile(t: &McpTarget) -> Result<Target, String> {
        let at = |e: String| format!("target `{}`: {e}", t.name);
        if t.name.is_empty() {
            return Err("a target needs a name".into());
        }
        let kind = match (&t.mcp, &t.sse, &t.stdio, &t.openapi) {
            (Some(h), None, None, None) => {
                let (o, p) = http_location(h, "/mcp").map_err(at)?;
                TargetKind::Http(o, p)
            }
            (None, Some(h), None, None) => {
                let (o, p) = http_location(h, "/sse").map_err(at)?;
                TargetKind::Sse(o, p)
            }
            (None, None, Some(s), None) => {
                if s.cmd.is_empty() {
                    return Err(at("stdio needs `cmd`".into()));
                }
                TargetKind::Stdio(Arc::new(s.clone()))
            }
            (None, None, None, Some(o)) => TargetKind::OpenApi(Arc::new(OpenApiTarget::compile(o).map_err(at)?)),
            _ => return Err(at("needs exactly one of mcp, sse, stdio, openapi".into())),
        };
        let mut transport = TargetTransport::default();
        if let Some(p) = &t.policies {
            if matches!(kind, TargetKind::Stdio(_)) {
                return Err(at("a stdio target takes no policies".into()));
            }
            if let Some(tls) = &p.backend_tls {
                transport.tls = Some(Arc::new(tls.compile().map_err(|e| at(format!("backendTLS: {e}")))?));
            }
            if let Some(auth) = &p.backend_auth {
                transport.auth = Some(auth.header().map_err(|e| at(format!("backendAuth: {e}")))?);
            }
        }
        // A `backend:` reference brings that backend's transport policies.
        for entry in &t.backend_policies.0 {
            let filter: &dyn std::any::Any = &*entry.filter;
            if let Some(tls) = filter.downcast_ref::<tollgate_core::filters::backend_tls::BackendTls>() {
                transport.tls = Some(tls.plan().clone());
            } else if let Some(auth) = filter.downcast_ref::<tollgate_core::filters::backend_auth::BackendAuth>() {
                match auth.credential() {
                    tollgate_core::filters::backend_auth::Credential::Static(h) => transport.auth = Some(h.clone()),
                    _ => return Err(at("its backend's backendAuth cannot apply to an MCP target yet (only `key`)".into())),
                }
            } else {
                return Err(at(format!("its backend's `{}` policy cannot apply to an MCP target (only backendTLS and backendAuth)", entry.spec.name)));
            }
        }
        Ok(Target { name: t.name.clone(), kind, transport: Arc::new(transport) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (o, p) = parse_url("http://192.168.1.68:8123/api/mcp").unwrap();
        assert_eq!((o.host.as_str(), o.port, p.as_str(), o.tls), ("192.168.1.68", 8123, "/api/mcp", false));
        let (o, p) = parse_url("https://mcp.example.com/mcp").unwrap();
        assert_eq!((o.host.as_str(), o.port, p.as_str(), o.tls), ("mcp.example.com", 443, "/mcp", true));
        let (o, _) = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 9));
        assert_eq!(o.authority(), "[::1]:9");
        assert!(parse_url("ftp://x").is_err());
    }
}
