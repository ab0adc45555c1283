//! The one `ProxyHttp` implementation: maps a matched route and its filter chain onto
//! Pingora's hooks. Per request: match (request_filter) → peer (upstream_peer) →
//! header and body filters → access log (logging).

pub mod dns;
pub mod llm_route;
pub mod path;
pub mod peer;
pub mod whole_body;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};

use crate::ctx::RequestCtx;
use crate::downstream::prefixed::DeadlineSlot;
use crate::errors::{classify, json_error};
use crate::filters::{request_host, FilterAction, LocalResponse};
use crate::router::host_without_port;
use crate::runtime::listener::{listener_for_host, listener_for_sni};
use crate::runtime::tls::ClientTls;
use crate::runtime::{BackendTarget, BindTransport, FilterChain, Gateway, ListenerKind};
use crate::telemetry::Telemetry;

/// Serves one bind (listening port) from the current runtime tables.
pub struct TollgateProxy {
    /// The port this service listens on; selects the bind in the tables.
    pub port: u16,
    /// The live tables, swapped whole on reload.
    pub gateway: Arc<ArcSwap<Gateway>>,
    /// Access log, traces and metrics (process-wide, from `config:`).
    pub telemetry: Arc<Telemetry>,
}

/// The request's filter chain, as a handle that does not borrow the context
/// (so filters may take `&mut ctx`); one reference-count increment.
fn chain_owned(ctx: &RequestCtx) -> Arc<FilterChain> {
    ctx.chain.clone().unwrap_or_default()
}

impl TollgateProxy {
    /// Finds the route and backend; `Err(response)` when there is none.
    fn route_request(&self, session: &Session, ctx: &mut RequestCtx) -> std::result::Result<(), LocalResponse> {
        let gateway = self.gateway.load();
        let req = session.req_header();
        let host = host_without_port(request_host(req));
        let not_found = || json_error(ctx.error_format, 404, "not_found", "no route matches this request");
        let bind = gateway.binds.iter().find(|b| b.port == self.port).ok_or_else(not_found)?;
        // On a TLS port the handshake's server name chose the listener (its certificate and
        // client-certificate rule); the request must land on that same listener.
        let listener = if bind.transport == BindTransport::Tls {
            let misdirected = || json_error(ctx.error_format, 421, "misdirected_request", "this connection cannot serve this request; open a new one");
            let tls = ctx.client_tls.clone().ok_or_else(misdirected)?;
            let listener = listener_for_sni(&bind.listeners, tls.sni.as_deref()).ok_or_else(misdirected)?;
            match &listener.kind {
                ListenerKind::Https(server) if server.identity == tls.identity => listener,
                _ => return Err(misdirected()),
            }
        } else {
            listener_for_host(&bind.listeners, host).ok_or_else(not_found)?
        };
        let Some(selected) = listener.routes.select(req, host) else {
            // No route: the listener's own policies still see the request (a preflight).
            if !listener.chain.filters.is_empty() {
                ctx.chain = Some(listener.chain.clone());
            }
            return Err(not_found());
        };
        let mut route = selected.route.clone();
        let mut matched_prefix = selected.matched_prefix;
        let mut backend = route.pick_backend().cloned();
        // `routeGroup:` delegation: the group's routes are matched against the same request
        // (compiled acyclic, so this ends); no route of the group matching is a 404.
        while let Some(BackendTarget::RouteGroup(table)) = backend.as_ref().map(|b| &b.target) {
            let selected = table.select(req, host).ok_or_else(not_found)?;
            route = selected.route.clone();
            matched_prefix = selected.matched_prefix;
            backend = route.pick_backend().cloned();
        }
        ctx.upstream.connect_timeout = Some(gateway.connect_timeout);
        ctx.upstream.connect = gateway.upstream_connect;
        ctx.max_buffer = gateway.frontend.max_buffer;
        ctx.original_path = req.uri.path().to_string();
        ctx.matched_prefix = matched_prefix;
        ctx.backend = backend;
        ctx.chain = Some(match &ctx.backend {
            Some(b) => b.chain.clone(),
            None => route.chain_without_backend.clone(),
        });
        ctx.route = Some(route);
        // Errors (an API key refused, a limit hit) reach the caller in its API's shape.
        ctx.error_format = match ctx.backend.as_ref().map(|b| &b.target) {
            Some(BackendTarget::Ai(_) | BackendTarget::AiGroups(_) | BackendTarget::LlmRouter(_)) => {
                crate::errors::llm_error_format(&ctx.original_path)
            }
            Some(BackendTarget::Mcp) => crate::ctx::ErrorFormat::JsonRpc,
            _ => crate::ctx::ErrorFormat::OpenAi,
        };
        ctx.model_catalog = Some(gateway.model_catalog.clone());
        // Plain hosts are the target as written; AI and MCP filters set their own.
        if let Some(BackendTarget::Host { host, port }) = ctx.backend.as_ref().map(|b| &b.target) {
            ctx.upstream.host.clone_from(host);
            ctx.upstream.port = *port;
        }
        Ok(())
    }

    async fn respond(session: &mut Session, ctx: &mut RequestCtx, resp: LocalResponse) -> Result<bool> {
        ctx.status = Some(resp.status);
        resp.write(session).await?;
        Ok(true)
    }
}

/// Checks what every request must satisfy before anything routes it, and puts the path in
/// normal form (see [`path`]): `Host` exactly once on HTTP/1.1 (RFC 9112 §3.2), at most one
/// distinct `Content-Length` (identical repeats collapse to one, RFC 9110 §8.6).
fn sanitize_request(req: &mut RequestHeader) -> std::result::Result<(), String> {
    let hosts = req.headers.get_all(http::header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && req.version == http::Version::HTTP_11) {
        return Err("an HTTP/1.1 request needs exactly one Host header".into());
    }
    let mut lengths = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next().cloned() {
        if lengths.any(|v| v != first) {
            return Err("conflicting Content-Length headers".into());
        }
        if req.headers.get_all(http::header::CONTENT_LENGTH).iter().count() > 1 {
            req.insert_header(http::header::CONTENT_LENGTH, first).map_err(|e| e.to_string())?;
        }
    }
    if req.uri.path() == "*" && req.method == http::Method::OPTIONS {
        return Ok(());
    }
    let normalized = match path::normalize(req.uri.path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(why) => return Err(why.to_string()),
    };
    crate::filters::set_request_path(req, &normalized).map_err(|e| e.to_string())
}

/// The answer's header, if it has reached the client. A `100 Continue` (sent before the
/// request body is read) or a `103` is recorded as written too, but after one the answer's
/// status is still to come: it can be retried elsewhere or replaced by an error response.
fn final_header_sent(session: &Session) -> Option<&ResponseHeader> {
    session.response_written().filter(|h| !h.status.is_informational())
}

/// Asks the request's filters whether one readied another attempt after `e` (see
/// [`crate::filters::Filter::on_upstream_error`]); only when nothing reached the client and
/// the body Pingora kept can be sent again (its retry buffer holds the first 64 KiB).
fn retry_elsewhere(session: &mut Session, ctx: &mut RequestCtx, e: &Error) -> bool {
    let replayable = final_header_sent(session).is_none() && !session.as_ref().retry_buffer_truncated() && !ctx.deadline_passed();
    let mut again = false;
    for filter in chain_owned(ctx).filters.iter() {
        again |= filter.on_upstream_error(e, replayable, ctx);
    }
    again && replayable
}

#[async_trait]
impl ProxyHttp for TollgateProxy {
    /// Boxed: Pingora's request futures hold the context by value at several levels (an
    /// async fn keeps its argument and a moved copy), ~1.8 KiB each, for a stream's whole life.
    type CTX = Box<RequestCtx>;

    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::default()
    }

    /// None: Pingora's default is its response compression module, switched off, and tollgate
    /// never switches it on; it still cost an allocation per request and a call per body chunk
    /// (issue 14).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        if let Err(why) = sanitize_request(session.req_header_mut()) {
            return Err(ctx.reject(400, why));
        }
        ctx.client_tls = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|ssl| ssl.extension.get::<ClientTls>())
            .cloned()
            .map(Arc::new);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.needs = self.telemetry.needs();
        let req = session.req_header();
        ctx.captured.method = req.method.clone();
        ctx.captured.uri = req.uri.clone();
        ctx.captured.version = req.version;
        if ctx.needs.request_headers {
            // Before any policy adds credentials or rewrites the Host.
            ctx.captured.request_headers = Some(req.headers.clone());
        }
        self.telemetry.start(req, ctx);
        if let Err(resp) = self.route_request(session, ctx) {
            for filter in chain_owned(ctx).filters.iter() {
                match filter.on_request(session, ctx).await? {
                    FilterAction::Continue => {}
                    FilterAction::Respond(own) => return Self::respond(session, ctx, own).await,
                    FilterAction::Handled => return Ok(true),
                }
            }
            return Self::respond(session, ctx, resp).await;
        }
        for filter in chain_owned(ctx).filters.iter() {
            match filter.on_request(session, ctx).await? {
                FilterAction::Continue => {}
                FilterAction::Respond(resp) => return Self::respond(session, ctx, resp).await,
                FilterAction::Handled => return Ok(true),
            }
        }
        if let Some(BackendTarget::LlmRouter(router)) = ctx.backend.as_ref().map(|b| &b.target) {
            // The route's policies ran (authentication first); the model picks the backend,
            // whose own filters run now.
            let router = router.clone();
            let backend = match llm_route::route_by_model(session, ctx, &router).await? {
                Ok(b) => b,
                Err(resp) => return Self::respond(session, ctx, resp).await,
            };
            let ran = chain_owned(ctx);
            ctx.backend = Some(backend.clone());
            ctx.chain = Some(backend.chain.clone());
            for filter in backend.chain.filters.iter().filter(|f| !ran.filters.iter().any(|r| Arc::ptr_eq(r, f))) {
                match filter.on_request(session, ctx).await? {
                    FilterAction::Continue => {}
                    FilterAction::Respond(resp) => return Self::respond(session, ctx, resp).await,
                    FilterAction::Handled => return Ok(true),
                }
            }
        }
        match ctx.backend.as_ref().map(|b| &b.target) {
            None => {
                let resp = json_error(ctx.error_format, 503, "no_backend", "the matched route has no backend");
                Self::respond(session, ctx, resp).await
            }
            Some(_) => Ok(false),
        }
    }

    fn on_connection_reuse(&self, _session: &mut Session, ctx: &mut Self::CTX, from_connection: Box<dyn std::any::Any + Send + Sync>) {
        // The gateway's accept path hands every HTTP/1 request its connection's deadline slot.
        if let Ok(slot) = from_connection.downcast::<Arc<DeadlineSlot>>() {
            ctx.conn_deadline = Some(*slot);
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        if ctx.deadline_passed() {
            return Err(ctx.reject(504, "the request timed out"));
        }
        let host = session.req_header().headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
        let mut peer = peer::build_peer(&ctx.upstream, host).await?;
        // No single upstream wait may outlast the request's deadline.
        if let Some(left) = ctx.time_left() {
            let left = left.max(Duration::from_millis(1));
            for t in [&mut peer.options.read_timeout, &mut peer.options.write_timeout, &mut peer.options.total_connection_timeout] {
                *t = Some(t.map_or(left, |t| t.min(left)));
            }
        }
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        for filter in chain_owned(ctx).filters.iter() {
            filter.on_upstream_request(req, ctx)?;
        }
        if let Some(key) = ctx.extensions.get::<Arc<crate::filters::backend_auth::location::PlacedKey>>() {
            // A `backendAuth.key` with a `location`: after every rewrite, so nothing drops it.
            key.place(req)?;
        }
        self.telemetry.upstream_request(req, ctx)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if ctx.needs.request_body {
            if let Some(b) = body.as_ref() {
                RequestCtx::capture_into(&mut ctx.captured.request_body, b, ctx.max_buffer);
            }
        }
        let chain = chain_owned(ctx);
        if !chain.body.request {
            return Ok(());
        }
        for filter in chain.filters.iter() {
            filter.on_request_body(body, end, ctx)?;
        }
        Ok(())
    }

    async fn response_filter(&self, _session: &mut Session, resp: &mut ResponseHeader, ctx: &mut Self::CTX) -> Result<()> {
        ctx.status = Some(resp.status.as_u16());
        for filter in chain_owned(ctx).filters.iter() {
            filter.on_response(resp, ctx)?;
        }
        if ctx.needs.response_headers {
            ctx.captured.response_headers = Some(resp.headers.clone());
        }
        Ok(())
    }

    fn response_header_hold(&self, header: &ResponseHeader, ctx: &Self::CTX) -> Option<Duration> {
        ctx.hold_response_header.filter(|_| header.status.is_success())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if ctx.hold_response_header.is_some() && final_header_sent(session).is_some() {
            // The hold ran out and the header went out: the answer can no longer be retried.
            ctx.hold_response_header = None;
        }
        if !end && ctx.deadline_passed() {
            return Err(ctx.reject(504, "the request timed out"));
        }
        let chain = chain_owned(ctx);
        if chain.body.response {
            for filter in chain.filters.iter() {
                filter.on_response_body(body, end, ctx)?;
            }
        }
        if ctx.needs.response_body {
            if let Some(b) = body.as_ref() {
                RequestCtx::capture_into(&mut ctx.captured.response_body, b, ctx.max_buffer);
            }
        }
        Ok(None)
    }

    fn fail_to_connect(&self, session: &mut Session, _peer: &HttpPeer, ctx: &mut Self::CTX, mut e: Box<Error>) -> Box<Error> {
        if retry_elsewhere(session, ctx, &e) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(&self, peer: &HttpPeer, session: &mut Session, e: Box<Error>, ctx: &mut Self::CTX, client_reused: bool) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if retry_elsewhere(session, ctx, &e) {
            e.set_retry(true);
        } else if crate::filters::is_retry_error(&e) || !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            // Pingora's own rule: an idempotent request on a reused connection (which the
            // upstream may have closed meanwhile) is tried once more.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Self::CTX) -> FailToProxy {
        let (mut status, mut kind, mut message) = classify(e);
        if let Some(m) = ctx.failure_message.take() {
            message = m;
        }
        if status >= 500 {
            log::warn!(target: "tollgate", "request failed with {status}: {}", crate::errors::describe(e));
        }
        if ctx.deadline_passed() {
            // Whatever failed first (a client read cut by the deadline, an upstream read), the
            // request ran out of time: the client hears that, and the log says so.
            (status, kind, message) = (504, "request_timeout", "the request timed out".to_string());
            ctx.timed_out = true;
        }
        if status == 0 {
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        if let Some(sent) = final_header_sent(session) {
            // Mid-response: the status is gone. End an event stream with an error event and a
            // proper terminator so clients see a clean end rather than a broken connection.
            let is_sse = sent
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if is_sse {
                let event = serde_json::json!({"error": {"message": message, "type": kind, "code": status.to_string()}});
                let bytes = Bytes::from(format!("data: {event}\n\n"));
                let _ = session.write_response_body(Some(bytes), true).await;
            }
            return FailToProxy { error_code: status, can_reuse_downstream: false };
        }
        ctx.status = Some(status);
        // The connection is not reused after a failure: say so.
        session.set_keepalive(None);
        let resp = json_error(ctx.error_format, status, kind, &message);
        if let Err(err) = resp.write(session).await {
            tracing::debug!("could not send error response: {err}");
        }
        FailToProxy { error_code: status, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        for filter in chain_owned(ctx).filters.iter() {
            filter.on_log(ctx);
        }
        if let (Some(l), Some(catalog)) = (ctx.llm.as_mut(), ctx.model_catalog.as_ref()) {
            l.cost = catalog.price(l);
        }
        let source = session.client_addr().and_then(|a| a.as_inet()).copied();
        self.telemetry.finish(source, e, ctx);
    }
}
