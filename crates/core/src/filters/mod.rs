//! The Filter API: every policy (built-in or plugin), the LLM handling and the MCP handling
//! implement one trait, [`Filter`], and are built by name from YAML through the
//! [`registry`]. The proxy calls a route's filters in order at each Pingora hook.
//!
//! The core's own filters live here: the upstream transport policies (`backendTLS`,
//! `backendAuth`) that the config loader and MCP targets reuse. Every other policy is a crate
//! of its own on this API (`filters/`, `crates/llm`, `crates/mcp`, plugins) that the binary
//! installs into the registry.

pub mod backend_auth;
pub mod backend_tls;
pub mod registry;
pub mod response;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;

pub use crate::ctx::RequestCtx;
pub use response::LocalResponse;

/// The request's authority: the `Host` header, else the URI's authority, else empty.
pub fn request_host(req: &RequestHeader) -> &str {
    req.headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// Replaces the request path, keeping the query string.
pub fn set_request_path(req: &mut RequestHeader, path: &str) -> Result<()> {
    let pq = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    set_path_and_query(req, pq)
}

/// Replaces the request's path and query; an absolute-form (or HTTP/2) request keeps its
/// scheme and authority.
pub fn set_path_and_query(req: &mut RequestHeader, pq: String) -> Result<()> {
    let mut builder = http::Uri::builder();
    if let (Some(scheme), Some(authority)) = (req.uri.scheme(), req.uri.authority()) {
        builder = builder.scheme(scheme.clone()).authority(authority.clone());
    }
    let uri = builder.path_and_query(pq).build().map_err(|e| {
        pingora::Error::because(pingora::ErrorType::InternalError, "rewritten path is not a valid URI", e)
    })?;
    req.set_uri(uri);
    Ok(())
}

/// The error `on_response` returns to drop an upstream's answer unseen and have the proxy try
/// again (after `on_upstream_error` readied the next attempt): the client sees nothing of it.
pub fn retry_error(status: u16, why: &str) -> Box<pingora::Error> {
    let mut e = pingora::Error::explain(pingora::ErrorType::HTTPStatus(status), why.to_string());
    e.set_retry(true);
    e
}

/// Whether `e` is a [`retry_error`].
pub fn is_retry_error(e: &pingora::Error) -> bool {
    matches!(e.etype(), pingora::ErrorType::HTTPStatus(_)) && e.retry()
}

/// Which bodies a filter must see. The proxy only runs body hooks for a request
/// whose filters ask for them, so routes without body work pay nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyAccess {
    /// The filter reads or rewrites the request body.
    pub request: bool,
    /// The filter reads or rewrites the response body.
    pub response: bool,
}

impl BodyAccess {
    /// Union of two needs.
    pub fn union(self, other: BodyAccess) -> BodyAccess {
        BodyAccess { request: self.request || other.request, response: self.response || other.response }
    }
}

/// What to do after a filter's request hook.
#[derive(Debug)]
pub enum FilterAction {
    /// Go on to the next filter and then upstream.
    Continue,
    /// Answer the client now with this response; nothing goes upstream.
    Respond(LocalResponse),
    /// The filter has written the whole response itself (e.g. a stream it produces, as the
    /// MCP gateway does) and set `ctx.status`; nothing goes upstream.
    Handled,
}

/// A request/response filter. Every hook has a no-op default; implement the ones you need.
///
/// Hooks run in this order for one request: [`Filter::on_request`] (request headers, before the
/// upstream is chosen; may answer directly), [`Filter::on_upstream_request`] (the header about to
/// be sent upstream), [`Filter::on_request_body`] (each request body chunk, if
/// [`BodyAccess::request`]), [`Filter::on_response`] (response header), [`Filter::on_response_body`]
/// (each response chunk, if [`BodyAccess::response`]), [`Filter::on_log`] (after the request ends).
#[async_trait]
pub trait Filter: std::any::Any + Send + Sync + 'static {
    /// Bodies this filter needs to see.
    fn body_access(&self) -> BodyAccess {
        BodyAccess::default()
    }

    /// Request headers arrived. Mutating `session.req_header_mut()` changes what goes upstream.
    async fn on_request(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<FilterAction> {
        Ok(FilterAction::Continue)
    }

    /// The request header about to be sent upstream (after hop-by-hop headers were removed).
    fn on_upstream_request(&self, _req: &mut RequestHeader, _ctx: &mut RequestCtx) -> Result<()> {
        Ok(())
    }

    /// A request body chunk. Never set `*body = None` before the end: that ends the upstream
    /// body. To hold bytes back, take them and leave `Some(Bytes::new())`.
    fn on_request_body(&self, _body: &mut Option<Bytes>, _end: bool, _ctx: &mut RequestCtx) -> Result<()> {
        Ok(())
    }

    /// An upstream attempt failed before any of its response reached the client (could not
    /// connect, the connection broke, a read timed out, or `on_response` returned a
    /// [`retry_error`]). Return `true` when this filter has readied the request for another
    /// attempt (another upstream in `ctx.upstream`, say); the proxy then tries again if the
    /// request body can be sent again, calling `upstream_peer`, `on_upstream_request` and
    /// `on_request_body` (with the body Pingora kept) once more, but not `on_request`.
    /// `replayable` says whether another attempt is possible at all; a filter records the
    /// failure either way.
    fn on_upstream_error(&self, _error: &pingora::Error, _replayable: bool, _ctx: &mut RequestCtx) -> bool {
        false
    }

    /// The response header about to be sent downstream.
    fn on_response(&self, _resp: &mut ResponseHeader, _ctx: &mut RequestCtx) -> Result<()> {
        Ok(())
    }

    /// A response body chunk about to be sent downstream; `None` sends nothing now.
    fn on_response_body(&self, _body: &mut Option<Bytes>, _end: bool, _ctx: &mut RequestCtx) -> Result<()> {
        Ok(())
    }

    /// The request is over (success or failure); record what it did.
    fn on_log(&self, _ctx: &mut RequestCtx) {}

    /// A reload replaced `previous` (the same policy on the route of the same name) with this
    /// filter: take over the state that should outlive the config text, such as counters.
    /// Downcast `previous` (`as &dyn Any`) to the own type; it may be another type entirely.
    fn carry_over(&self, _previous: &dyn Filter) {}

    /// This policy is written at a more specific level (route over listener, backend over
    /// route) than `general`, the same policy's less specific block. The default is
    /// agentgateway's rule for most policies: the specific one replaces the general one
    /// (`None`). A policy whose levels combine (`authorization` rules merge across levels)
    /// returns the combined filter.
    fn merge_over(&self, _general: &dyn Filter) -> Option<std::sync::Arc<dyn Filter>> {
        None
    }
}
