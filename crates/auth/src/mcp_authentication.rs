//! `mcpAuthentication`: tollgate as an OAuth 2.1 resource server for an MCP route, per the MCP
//! authorization spec. It serves the route's protected-resource metadata (RFC 9728) at
//! `/.well-known/oauth-protected-resource…` naming the configured authorization server, answers
//! an MCP request without a valid token with `401` and `WWW-Authenticate: Bearer
//! resource_metadata="…"` (which starts the client's OAuth flow), and verifies tokens with the
//! `jwtAuth` machinery (claims become `jwt.*` for `mcpAuthorization`). As in agentgateway, the
//! route's `matches` must include the well-known paths for clients to reach them.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::response::LocalResponse;
use tollgate_core::filters::{request_host, Filter, FilterAction, RequestCtx};
use tollgate_core::upstream_call::{CallOpts, HttpClient, Origin, Request};

use crate::jwt::jwks::JwksConfig;
use crate::jwt::validate::{Provider, ProviderConfig, ValidationOptions};
use crate::jwt::{JwtAuth, Outcome};
use crate::location::LocationConfig;
use crate::Mode;

/// Registry entry for `mcpAuthentication` (routes; it takes the place of `jwtAuth`).
pub const SPEC: FilterSpec = FilterSpec {
    name: "mcpAuthentication",
    levels: Levels::ROUTE,
    order: 25,
    build: |d| build_with(d, McpAuthentication::compile),
};

const PRM_PATH: &str = "/.well-known/oauth-protected-resource";
const AS_PATH: &str = "/.well-known/oauth-authorization-server";
/// The MCP protocol version the metadata names (agentgateway's).
const MCP_PROTOCOL_VERSION: &str = "2025-06-18";
/// Longest wait for the authorization server's metadata.
const AS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the authorization server's metadata is reused (a failure: [`AS_FAILURE_TTL`]).
const AS_TTL: Duration = Duration::from_secs(300);
const AS_FAILURE_TTL: Duration = Duration::from_secs(5);
/// Largest metadata document relayed.
const AS_MAX_BYTES: usize = 64 * 1024;

/// The YAML block (agentgateway's `LocalMcpAuthentication`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthenticationConfig {
    /// The authorization server; tokens' `iss`.
    pub issuer: String,
    /// Accepted `aud` values (empty: not checked).
    pub audiences: Vec<String>,
    /// Extra protected-resource metadata (camelCase keys, written snake_case).
    pub resource_metadata: Map<String, Value>,
    /// Token keys; default `{issuer}/.well-known/jwks.json`.
    pub jwks: Option<JwksConfig>,
    /// `strict` (default), `optional` or `permissive`.
    #[serde(default = "strict")]
    pub mode: Mode,
    /// Where the token is read.
    #[serde(default)]
    pub authorization_location: LocationConfig,
    /// Claim requirements.
    pub jwt_validation_options: Option<ValidationOptions>,
    /// Identity-provider adaptations (not supported yet).
    pub provider: Option<Value>,
    /// Pre-registered client (not supported yet).
    pub client_id: Option<String>,
    /// Confidential client secret (not supported yet).
    pub client_secret: Option<String>,
}

fn strict() -> Mode {
    Mode::Strict
}

/// The compiled policy.
pub struct McpAuthentication {
    tokens: JwtAuth,
    issuer: String,
    metadata: Map<String, Value>,
    /// `resourceMetadata.resource`'s scheme and authority, when set (the public base URL).
    public_base: Option<String>,
    client: std::sync::Arc<HttpClient>,
    /// The relayed metadata and when it was fetched (one fetch at a time, shared by all).
    as_cache: tokio::sync::Mutex<Option<(Instant, LocalResponse)>>,
}

impl std::fmt::Debug for McpAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "McpAuthentication({})", self.issuer)
    }
}

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl McpAuthentication {
    /// Checks the block; a remote key set is fetched when a token first needs it.
    pub fn compile(c: McpAuthenticationConfig) -> std::result::Result<McpAuthentication, String> {
        for (set, field) in [(c.provider.is_some(), "provider"), (c.client_id.is_some(), "clientId"), (c.client_secret.is_some(), "clientSecret")] {
            if set {
                return Err(format!("mcpAuthentication.{field} is not supported yet"));
            }
        }
        let jwks = c.jwks.unwrap_or_else(|| JwksConfig::Url { url: format!("{}/.well-known/jwks.json", c.issuer.trim_end_matches('/')) });
        let provider = Provider::compile(ProviderConfig {
            issuer: c.issuer.clone(),
            audiences: Some(c.audiences),
            jwks,
            jwt_validation_options: c.jwt_validation_options,
        })?;
        // `optional` lets a request without a token pass but refuses a bad one; only
        // `permissive` never refuses (as agentgateway maps the modes).
        let tokens = JwtAuth::from_parts(vec![provider], c.mode, c.authorization_location)?;
        let metadata: Map<String, Value> = c.resource_metadata.into_iter().map(|(k, v)| (snake_case(&k), v)).collect();
        let public_base = match metadata.get("resource") {
            Some(Value::String(r)) => {
                let uri: http::Uri = r.parse().map_err(|_| format!("resourceMetadata.resource `{r}` is not a URL"))?;
                match (uri.scheme_str(), uri.authority()) {
                    (Some(s), Some(a)) => Some(format!("{s}://{a}")),
                    _ => return Err(format!("resourceMetadata.resource `{r}` needs a scheme and host")),
                }
            }
            Some(_) => return Err("resourceMetadata.resource must be a string".into()),
            None => None,
        };
        Ok(McpAuthentication { tokens, issuer: c.issuer, metadata, public_base, client: Default::default(), as_cache: Default::default() })
    }

    /// `scheme://authority` the client used (or `resourceMetadata.resource`'s).
    fn base_url(&self, req: &RequestHeader, ctx: &RequestCtx) -> String {
        if let Some(b) = &self.public_base {
            return b.clone();
        }
        let forwarded = req.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).filter(|p| matches!(*p, "http" | "https"));
        let scheme = forwarded.unwrap_or(if ctx.client_tls.is_some() { "https" } else { "http" });
        format!("{scheme}://{}", request_host(req))
    }

    fn metadata_document(&self, req: &RequestHeader, ctx: &RequestCtx, resource_path: &str) -> LocalResponse {
        let mut doc = Map::new();
        doc.insert("resource".into(), json!(format!("{}{resource_path}", self.base_url(req, ctx))));
        doc.insert("authorization_servers".into(), json!([self.issuer]));
        doc.insert("mcp_protocol_version".into(), json!(MCP_PROTOCOL_VERSION));
        doc.insert("resource_type".into(), json!("mcp-server"));
        for (k, v) in &self.metadata {
            doc.insert(k.clone(), v.clone());
        }
        json_response(200, Bytes::from(Value::Object(doc).to_string()))
    }

    fn unauthorized(&self, req: &RequestHeader, ctx: &RequestCtx) -> LocalResponse {
        let body = Bytes::from_static(br#"{"error":"unauthorized","error_description":"JWT token required"}"#);
        let mut resp = json_response(401, body);
        let url = format!("{}{PRM_PATH}{}", self.base_url(req, ctx), req.uri.path());
        resp.headers.push(("www-authenticate".into(), format!("Bearer resource_metadata=\"{url}\"")));
        resp
    }

    /// The authorization server's RFC 8414 metadata, for clients that ask the resource: fetched
    /// once per [`AS_TTL`] (unauthenticated callers cannot make the gateway hammer the issuer).
    async fn authorization_server_metadata(&self) -> LocalResponse {
        let Ok(mut cache) = tokio::time::timeout(AS_FETCH_TIMEOUT, self.as_cache.lock()).await else {
            return json_response(503, Bytes::from_static(br#"{"error":"temporarily_unavailable"}"#));
        };
        if let Some((at, resp)) = cache.as_ref() {
            let ttl = if resp.status == 200 { AS_TTL } else { AS_FAILURE_TTL };
            if at.elapsed() < ttl {
                return resp.clone();
            }
        }
        let resp = self.fetch_authorization_server_metadata().await;
        *cache = Some((Instant::now(), resp.clone()));
        resp
    }

    async fn fetch_authorization_server_metadata(&self) -> LocalResponse {
        let fetched = async {
            let uri: http::Uri = self.issuer.parse().map_err(|_| "the issuer is not a URL".to_string())?;
            let tls = uri.scheme_str() == Some("https");
            let host = uri.host().ok_or("the issuer has no host")?.trim_matches(['[', ']']).to_string();
            let origin = Origin { host, port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }), tls };
            let path = format!("{AS_PATH}{}", uri.path().trim_end_matches('/'));
            let headers = HeaderMap::new();
            let until = Instant::now() + AS_FETCH_TIMEOUT;
            let opts = CallOpts { headers: &headers, tls: None, connect_timeout: Some(AS_FETCH_TIMEOUT), connect: Default::default(), wait: AS_FETCH_TIMEOUT, deadline: Some(until) };
            let req = Request { method: Method::GET, path: &path, headers: vec![(http::header::ACCEPT, "application/json".into())], body: None };
            let mut resp = self.client.send(&opts, &origin, &req).await.map_err(|e| e.to_string())?;
            let body = resp.body(until, AS_MAX_BYTES).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((resp.status, body))
        };
        match fetched.await {
            Ok((status, body)) => json_response(status, body),
            Err(e) => {
                tracing::warn!(target: "tollgate", issuer = %self.issuer, error = %e, "fetching the authorization server's metadata failed");
                json_response(502, Bytes::from_static(br#"{"error":"temporarily_unavailable","error_description":"the authorization server's metadata could not be fetched"}"#))
            }
        }
    }
}

fn json_response(status: u16, body: Bytes) -> LocalResponse {
    let mut resp = LocalResponse::new(status);
    resp.headers.push(("content-type".into(), "application/json".into()));
    resp.headers.extend(cors());
    resp.body = body;
    resp
}

fn cors() -> [(String, String); 3] {
    [
        ("access-control-allow-origin".into(), "*".into()),
        ("access-control-allow-methods".into(), "GET, OPTIONS".into()),
        ("access-control-allow-headers".into(), "content-type, mcp-protocol-version".into()),
    ]
}

#[async_trait]
impl Filter for McpAuthentication {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header();
        let path = req.uri.path();
        if let Some(rest) = path.strip_prefix(PRM_PATH).filter(|r| r.is_empty() || r.starts_with('/')) {
            return Ok(FilterAction::Respond(match req.method {
                Method::OPTIONS => {
                    let mut r = LocalResponse::new(204);
                    r.headers.extend(cors());
                    r
                }
                _ => self.metadata_document(req, ctx, rest),
            }));
        }
        if path.strip_prefix(AS_PATH).is_some_and(|r| r.is_empty() || r.starts_with('/')) {
            return Ok(FilterAction::Respond(self.authorization_server_metadata().await));
        }
        match self.tokens.check(session, ctx).await? {
            Outcome::Verified | Outcome::Anonymous => Ok(FilterAction::Continue),
            Outcome::Refused(why) => {
                tracing::info!(target: "tollgate", route = ctx.route.as_ref().map_or("", |r| r.name.as_str()), reason = %why, "mcpAuthentication refused the request");
                Ok(FilterAction::Respond(self.unauthorized(session.req_header(), ctx)))
            }
        }
    }

    fn carry_over(&self, previous: &dyn Filter) {
        if let Some(previous) = (previous as &dyn std::any::Any).downcast_ref::<McpAuthentication>() {
            self.tokens.adopt_keys(&previous.tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_become_snake_case_and_unsupported_fields_are_named() {
        assert_eq!(snake_case("scopesSupported"), "scopes_supported");
        let c: McpAuthenticationConfig =
            serde_yaml_ng::from_str("{issuer: 'http://idp', audiences: [], resourceMetadata: {}, provider: {keycloak: {}}}").unwrap();
        assert!(McpAuthentication::compile(c).unwrap_err().contains("provider is not supported yet"));
        let c: McpAuthenticationConfig = serde_yaml_ng::from_str("{issuer: 'http://idp', audiences: [], resourceMetadata: {resource: 'mcp'}}").unwrap();
        assert!(McpAuthentication::compile(c).is_err());
    }
}
