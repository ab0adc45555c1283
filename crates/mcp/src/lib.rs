//! The MCP gateway: clients speak MCP to tollgate (Streamable HTTP, or legacy SSE at
//! `…/sse`) and tollgate speaks MCP to the backend's targets (Streamable HTTP, legacy SSE,
//! stdio children, OpenAPI services), federating several behind one endpoint. The route's
//! policies apply: request filters shape the headers every target sees, response filters
//! (CORS) the headers the client sees.

pub mod answer;
pub mod checks;
pub mod client;
pub mod credentials;
pub mod error;
pub mod family;
pub mod federation;
pub mod front;
pub mod jsonrpc;
pub mod legacy;
pub mod mcp_authorization;
pub mod openapi;
pub mod replay;
pub mod session;
pub mod sse;
pub mod target;
pub mod token;
pub mod upstream;
pub mod uri_template;
mod streamable;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Method;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;

use tollgate_core::filters::registry::{FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::config::mcp::McpBackend;
use client::CallCtx;
use federation::Federation;
use session::SessionStore;

/// The policies of the MCP family, for the registry.
pub static FILTERS: &[&FilterSpec] = &[&mcp_authorization::SPEC];

/// Not a YAML policy: the family adds it to every `mcp` backend's chain.
pub const SPEC: FilterSpec = FilterSpec {
    name: "mcp",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 210,
    build: |_| Err(<erased_serde::Error as serde::de::Error>::custom("`mcp` is a backend, not a policy")),
};

/// MCP's header names, made once: a look-up by name text parses and hashes the text first.
pub(crate) mod names {
    use http::HeaderName;
    /// `Mcp-Session-Id`.
    pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
    /// `MCP-Protocol-Version`.
    pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
    /// `Last-Event-ID`.
    pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
    /// `Mcp-Method` (the 2026-07-28 revision's routing header).
    pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
    /// `Mcp-Name` (the 2026-07-28 revision's routing header).
    pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
}

/// Longest wait for a target when the route sets no timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// Client headers that describe the client's own exchange and never reach a target.
const HOP_HEADERS: &[&str] = &[
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
    "proxy-connection", "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "accept",
    "content-type", "last-event-id", "accept-encoding", "origin", "expect",
];

/// The compiled MCP backend.
pub struct McpProxy {
    fed: Arc<Federation>,
    store: Arc<SessionStore>,
}

impl McpProxy {
    /// Compiles the backend; sessions live in `store` (shared across reloads).
    /// `identity` names the backend (route and position) so session ids are only honoured by
    /// the backend that made them.
    pub fn compile(b: &McpBackend, store: Arc<SessionStore>, identity: &str) -> std::result::Result<McpProxy, String> {
        Ok(McpProxy { fed: Arc::new(Federation::compile(b, identity)?), store })
    }

    /// What every target exchange of this request carries.
    fn call_ctx(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CallCtx> {
        // The client's head without the hop and MCP transport headers, built in one pass over
        // its names: cloning the whole head and then removing those cost ~3k a request (and
        // removing each of the nineteen by its text ~5k before that).
        let client = session.req_header();
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = client.method.clone();
        parts.uri = client.uri.clone();
        parts.version = client.version;
        parts.headers.reserve(client.headers.len());
        for (name, value) in client.headers.iter() {
            if !HOP_HEADERS.contains(&name.as_str()) {
                parts.headers.append(name.clone(), value.clone());
            }
        }
        let mut req = RequestHeader::from(parts);
        credentials::strip_client_credentials(&mut req, ctx);
        if let Some(chain) = ctx.chain.clone() {
            for f in chain.filters.iter() {
                f.on_upstream_request(&mut req, ctx)?;
            }
        }
        let wait = ctx.upstream.io_timeout.unwrap_or(DEFAULT_WAIT);
        Ok(CallCtx {
            deadline: ctx.deadline,
            headers: http::request::Parts::from(req).headers,
            tls: ctx.upstream.tls.clone(),
            connect_timeout: ctx.upstream.connect_timeout,
            connect: ctx.upstream.connect,
            wait,
            client: self.store.client.clone(),
            access: ctx.extensions.get::<crate::mcp_authorization::McpAccess>().cloned(),
        })
    }
}

fn query_param<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.uri.query()?.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

#[async_trait]
impl Filter for McpProxy {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let cc = self.call_ctx(session, ctx)?;
        let req = session.req_header();
        let method = req.method.clone();
        let legacy_id = query_param(req, "sessionId").map(str::to_string);
        let is_sse_path = req.uri.path().ends_with("/sse");
        let role = match (&method, &legacy_id) {
            (&Method::GET, _) => "stream",
            (&Method::DELETE, _) => "delete",
            _ => "",
        };
        ctx.mcp = Some(Box::new(tollgate_core::ctx::McpExchange { method: role.to_string(), ..Default::default() }));
        if let Err((status, why)) = checks::check(req, method == Method::POST, self.fed.dns_rebinding_protection) {
            let e = jsonrpc::error(&serde_json::Value::Null, jsonrpc::INVALID_REQUEST, why);
            front::json(session, ctx, status, &e, None).await?;
            return Ok(FilterAction::Handled);
        }
        match (method, legacy_id) {
            (Method::GET, _) if is_sse_path => self.legacy_stream(session, ctx, cc).await?,
            (Method::POST, Some(id)) => self.legacy_message(session, ctx, cc, &id).await?,
            (Method::POST, None) => self.post(session, ctx, cc).await?,
            (Method::GET, None) => self.get_stream(session, ctx, cc).await?,
            // Boxed: a session's end is rare and its future is the largest here.
            (Method::DELETE, None) => Box::pin(self.delete(session, ctx, cc)).await?,
            _ => front::empty(session, ctx, 405).await?,
        }
        Ok(FilterAction::Handled)
    }
}
