//! The Streamable HTTP front end: POST carries one JSON-RPC message (answered as JSON, or as
//! an event stream when targets send messages before the answer), GET opens the session's
//! stream, DELETE ends the session. Also the 2026-07-28 revision's session-less requests.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pingora::proxy::Session;
use pingora::Result;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::answer::Answer;
use super::client::CallCtx;
use super::error::McpError;
use super::federation::{connect_all, connect_some, request_queue};
use super::front::{self, EventStream};
use super::jsonrpc::{self, Kind};
use super::replay::{Resumed, GET_STREAM};
use super::session::McpSession;
use super::target::TargetKind;
use super::upstream::http::{HttpUpstream, MODERN_VERSION};
use super::upstream::{ClientHello, Kind as UpstreamKind, Upstream, RELAY_QUEUE};
use super::McpProxy;
use tollgate_core::ctx::RequestCtx;

/// How a request found its session.
enum Found {
    /// A session that outlives the request.
    Kept(Arc<McpSession>),
    /// Made for this request only; closed after it.
    Ephemeral(Arc<McpSession>),
}

fn header<'a>(session: &'a Session, name: impl http::header::AsHeaderName) -> Option<&'a str> {
    session.req_header().headers.get(name).and_then(|v| v.to_str().ok())
}

impl McpProxy {
    /// POST: one message from the client.
    pub(super) async fn post(&self, session: &mut Session, ctx: &mut RequestCtx, cc: CallCtx) -> Result<()> {
        let body = match front::read_body(session, ctx.deadline).await? {
            Ok(b) => b,
            Err(limit) => {
                let e = jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, format!("message larger than {limit} bytes"));
                return front::json(session, ctx, 413, &e, None).await;
            }
        };
        let msg: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return front::json(session, ctx, 400, &jsonrpc::error(&Value::Null, jsonrpc::PARSE_ERROR, format!("parse error: {e}")), None).await,
        };
        let kind = match jsonrpc::check_client_message(&msg) {
            Ok(k) => k,
            Err(why) => {
                // An id that is not valid is not echoed back.
                let id = msg.get("id").filter(|i| i.is_string() || i.is_i64() || i.is_u64()).cloned().unwrap_or(Value::Null);
                let e = jsonrpc::error(&id, jsonrpc::INVALID_REQUEST, why);
                return front::json(session, ctx, 400, &e, None).await;
            }
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        ctx.mcp = Some(Box::new(self.fed.describe(&msg)));
        match jsonrpc::method(&msg) {
            "initialize" if kind == Kind::Request => return self.initialize(session, ctx, cc, msg).await,
            "server/discover" if kind == Kind::Request => return self.discover(session, ctx, cc, msg).await,
            _ => {}
        }
        if kind != Kind::Request && (self.fed.stateless || header(session, crate::names::MCP_SESSION_ID).is_none()) {
            // Without a session there is nobody to tell: accepted, as the transport says.
            return front::empty(session, ctx, 202).await;
        }
        let found = match self.find(session, &cc, Some(&msg)).await {
            Ok(f) => f,
            Err((status, e)) => return front::json(session, ctx, status, &e.to_response(&id), None).await,
        };
        let s = match &found {
            Found::Kept(s) | Found::Ephemeral(s) => s.clone(),
        };
        s.touch(&cc);
        let sid = (!s.id.is_empty()).then(|| s.id.clone());
        if let Some(m) = ctx.mcp.as_mut() {
            m.session_id.clone_from(&sid);
        }
        let written = match kind {
            Kind::Request => self.answer(session, ctx, &s, msg, &cc, sid.as_deref()).await,
            Kind::Notification => {
                s.handle_notification(msg, &cc).await;
                front::empty(session, ctx, 202).await
            }
            _ => match s.handle_response(msg, &cc).await {
                Ok(()) => front::empty(session, ctx, 202).await,
                Err(e) => front::json(session, ctx, 400, &e.to_response(&Value::Null), None).await,
            },
        };
        if let Found::Ephemeral(s) = found {
            s.close(&cc).await;
        }
        written
    }

    /// The session a request belongs to: by id (resumed if another process made it), or one
    /// made for this request (stateless mode, or the 2026-07-28 revision).
    async fn find(&self, session: &Session, cc: &CallCtx, msg: Option<&Value>) -> std::result::Result<Found, (u16, McpError)> {
        let modern = header(session, crate::names::MCP_PROTOCOL_VERSION) == Some(MODERN_VERSION);
        match header(session, crate::names::MCP_SESSION_ID) {
            Some(id) if !self.fed.stateless && !modern => match self.store.find_or_resume(id, &self.fed, cc).await {
                Ok(s) => Ok(Found::Kept(s)),
                Err(McpError::SessionGone) => Err((404, McpError::SessionGone)),
                Err(e) => Err((200, e)),
            },
            _ if modern => self.modern_session().map(Found::Ephemeral).map_err(|e| (400, e)),
            _ if self.fed.stateless => {
                let hello = ClientHello { protocol_version: "2025-06-18".into(), params: json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")}}) };
                let stream = mpsc::channel(RELAY_QUEUE);
                // A call that names its target starts only that one.
                let owner = msg.and_then(|m| self.fed.describe(m).target).and_then(|t| self.fed.targets.iter().position(|x| x.name == t));
                let (upstreams, _) = connect_some(&self.fed, cc, &hello, &stream.0, owner).await.map_err(|e| (200, e))?;
                Ok(Found::Ephemeral(Arc::new(McpSession::new(String::new(), self.fed.clone(), hello, upstreams, stream))))
            }
            _ => Err((400, McpError::InvalidParams("Bad Request: Mcp-Session-Id header is required (initialize first)".into()))),
        }
    }

    /// A session for one 2026-07-28 request: every target must be Streamable HTTP.
    fn modern_session(&self) -> std::result::Result<Arc<McpSession>, McpError> {
        let mut upstreams = Vec::new();
        for t in &self.fed.targets {
            let TargetKind::Http(origin, path) = &t.kind else {
                return Err(McpError::MethodNotFound(format!("protocol {MODERN_VERSION} needs Streamable HTTP targets; `{}` is not: use initialize", t.name)));
            };
            let h = HttpUpstream::new(origin.clone(), path.clone(), None, Some(MODERN_VERSION.into()));
            upstreams.push(Some(Upstream { kind: UpstreamKind::Http(h), transport: t.transport.clone() }));
        }
        let hello = ClientHello { protocol_version: MODERN_VERSION.into(), params: json!({}) };
        Ok(Arc::new(McpSession::new(String::new(), self.fed.clone(), hello, upstreams, mpsc::channel(RELAY_QUEUE))))
    }

    /// Answers a request: JSON when the answer is all there is, else an event stream
    /// carrying the targets' messages (progress, sampling) and then the answer.
    async fn answer(&self, session: &mut Session, ctx: &mut RequestCtx, s: &Arc<McpSession>, msg: Value, cc: &CallCtx, sid: Option<&str>) -> Result<()> {
        let (tx, mut rx) = request_queue();
        let msg_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let handling = s.handle_request(msg, cc, &tx, true);
        tokio::pin!(handling);
        // A kept session's streams can be resumed: a client that drops this one still gets
        // the answer by GET with Last-Event-ID, so the call runs on without it.
        let mut stream = if s.id.is_empty() { EventStream::new() } else { EventStream::resumable(s.replay.clone(), None, s.client_resumes()) };
        let response = loop {
            tokio::select! {
                biased;
                Some(m) = rx.recv() => stream.message(session, ctx, &m, sid).await?,
                r = &mut handling => break r,
            }
        };
        while let Ok(m) = rx.try_recv() {
            stream.message(session, ctx, &m, sid).await?;
        }
        let id = msg_id;
        let (status, answer) = match response {
            Ok(r) => (200, r),
            Err(e) => {
                // A target lost its session: this session is over; the client re-initializes.
                if !s.id.is_empty() {
                    self.store.remove(&s.id);
                    let (s, cc) = (s.clone(), cc.clone());
                    tokio::spawn(async move { s.close(&cc).await });
                }
                // A one-request session has no id for the client to drop: a plain JSON-RPC error.
                (if s.id.is_empty() { 200 } else { 404 }, Answer::Message(e.to_response(&id)))
            }
        };
        if !stream.started() {
            return front::answer(session, ctx, status, &answer, sid).await;
        }
        let response = answer.into_message(&id);
        front::note_error(ctx, &response);
        stream.message(session, ctx, &response, sid).await?;
        stream.finish(session).await
    }

    /// `initialize`: connects every target and starts a session (none in stateless mode).
    async fn initialize(&self, session: &mut Session, ctx: &mut RequestCtx, cc: CallCtx, msg: Value) -> Result<()> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let hello = ClientHello::from_params(msg.get("params"));
        if !self.store.has_room() {
            let e = jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, format!("too many MCP sessions (limit {})", super::session::MAX_SESSIONS));
            return front::json(session, ctx, 503, &e, None).await;
        }
        let stream = mpsc::channel(RELAY_QUEUE);
        let (upstreams, result) = match connect_all(&self.fed, &cc, &hello, &stream.0).await {
            Ok(x) => x,
            Err(e) => return front::json(session, ctx, 200, &e.to_response(&id), None).await,
        };
        let mut s = McpSession::new(String::new(), self.fed.clone(), hello, upstreams, stream);
        if self.fed.stateless {
            s.close(&cc).await;
            return front::json(session, ctx, 200, &jsonrpc::result(&id, result), None).await;
        }
        s.id = self.store.new_id(&s.state());
        let s = Arc::new(s);
        s.touch(&cc);
        self.store.insert(s.clone());
        front::json(session, ctx, 200, &jsonrpc::result(&id, result), Some(&s.id)).await
    }

    /// `server/discover` (2026-07-28): served when every target speaks that revision; any
    /// other case answers with an error so the client falls back to `initialize`.
    async fn discover(&self, session: &mut Session, ctx: &mut RequestCtx, cc: CallCtx, msg: Value) -> Result<()> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let s = match self.modern_session() {
            Ok(s) => s,
            Err(e) => return front::json(session, ctx, 200, &e.to_response(&id), None).await,
        };
        let (tx, _rx) = request_queue();
        let calls = s.upstreams.iter().enumerate().filter_map(|(i, u)| u.as_ref().map(|u| (i, u))).map(|(i, u)| {
            let relay = s.relay(i, &tx);
            let msg = msg.clone();
            let cc = &cc;
            async move { u.request(cc, msg, &relay).await }
        });
        let mut results = Vec::new();
        for (i, r) in futures::future::join_all(calls).await.into_iter().enumerate() {
            match r.map(|v| v.get("result").cloned()) {
                Ok(Some(result)) if result.is_object() => results.push(result),
                _ => {
                    let why = format!("target `{}` does not speak {MODERN_VERSION}; use initialize", self.fed.targets[i].name);
                    return front::json(session, ctx, 200, &jsonrpc::error(&id, jsonrpc::METHOD_NOT_FOUND, why), None).await;
                }
            }
        }
        let result = if let [only] = results.as_slice() { only.clone() } else { merge_discover(&results) };
        front::json(session, ctx, 200, &jsonrpc::result(&id, result), None).await
    }

    /// GET: the session's stream (targets' notifications and requests outside any call).
    pub(super) async fn get_stream(&self, session: &mut Session, ctx: &mut RequestCtx, cc: CallCtx) -> Result<()> {
        // The stream is SSE: a client that cannot take it is told so first (as agentgateway's
        // `curl -k https://localhost:3000` check in its mcp-tls example expects).
        if !header(session, http::header::ACCEPT).is_some_and(|a| a.contains("text/event-stream")) {
            let e = jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, "Not Acceptable: Client must accept text/event-stream");
            return front::json(session, ctx, 406, &e, None).await;
        }
        if self.fed.stateless {
            return front::empty(session, ctx, 405).await;
        }
        let s = match self.find(session, &cc, None).await {
            Ok(Found::Kept(s)) => s,
            Ok(Found::Ephemeral(_)) => return front::empty(session, ctx, 405).await,
            Err((status, e)) => return front::json(session, ctx, status, &e.to_response(&Value::Null), None).await,
        };
        // Resumption: the events after the client's last one, from the stream it names.
        let mut changes = s.replay.subscribe();
        let resumed = header(session, crate::names::LAST_EVENT_ID).and_then(|id| s.replay.after(id));
        let sid = s.id.clone();
        if let Some(from) = resumed.clone().filter(|r| r.stream != GET_STREAM) {
            let result = resume_call_stream(session, ctx, &s, from, &mut changes, &sid).await;
            s.touch(&cc);
            return result;
        }
        let Ok(mut rx) = s.stream_rx.try_lock() else {
            let e = jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, "this session already has a stream open");
            return front::json(session, ctx, 409, &e, None).await;
        };
        s.streaming.store(true, Ordering::Relaxed);
        let _cleanup = StreamCleanup(s.clone());
        let mut ended = s.ended.subscribe();
        if *ended.borrow_and_update() {
            return front::json(session, ctx, 404, &McpError::SessionGone.to_response(&Value::Null), None).await;
        }
        // Every target's stream at once: one slow target must not hold up the others.
        let opens = s.upstreams.iter().enumerate().filter_map(|(i, u)| u.as_ref().map(|u| u.open_stream(&cc, s.relay(i, &s.stream_tx))));
        let tasks = futures::future::join_all(opens).await;
        s.stream_tasks.lock().unwrap().extend(tasks.into_iter().flatten());
        let mut out = EventStream::resumable(s.replay.clone(), Some(GET_STREAM), s.client_resumes());
        if let Some(r) = resumed {
            out.start(session, ctx, Some(&sid)).await?;
            for e in r.events {
                out.raw(session, e).await?;
            }
        }
        let result = out.relay(session, ctx, &mut rx, Some(ended), Some(&sid)).await;
        s.touch(&cc);
        result
    }

    /// DELETE: ends the session here and at every target.
    pub(super) async fn delete(&self, session: &mut Session, ctx: &mut RequestCtx, cc: CallCtx) -> Result<()> {
        if self.fed.stateless {
            return front::empty(session, ctx, 405).await;
        }
        let Some(id) = header(session, crate::names::MCP_SESSION_ID).map(str::to_string) else {
            let e = McpError::InvalidParams("Mcp-Session-Id header is required".into());
            return front::json(session, ctx, 400, &e.to_response(&Value::Null), None).await;
        };
        if let Some(s) = self.store.get(&id).filter(|s| s.fed.fingerprint == self.fed.fingerprint) {
            self.store.remove(&id);
            s.close(&cc).await;
            return front::empty(session, ctx, 200).await;
        }
        if self.store.end_elsewhere(&id, &self.fed, &cc).await {
            return front::empty(session, ctx, 200).await;
        }
        front::json(session, ctx, 404, &McpError::SessionGone.to_response(&Value::Null), None).await
    }
}

/// Serves a call's stream again to a client that lost it: what it missed, then the rest as it
/// comes, until the call's answer has been sent (or the session ends).
async fn resume_call_stream(
    session: &mut Session,
    ctx: &mut RequestCtx,
    s: &Arc<McpSession>,
    mut from: Resumed,
    changes: &mut tokio::sync::watch::Receiver<u64>,
    sid: &str,
) -> Result<()> {
    let mut ended = s.ended.subscribe();
    let mut out = EventStream::new();
    let result = async {
        out.start(session, ctx, Some(sid)).await?;
        loop {
            for e in std::mem::take(&mut from.events) {
                out.raw(session, e).await?;
            }
            if from.finished {
                break;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = ended.changed() => break,
                _ = tokio::time::sleep(front::KEEPALIVE) => out.raw(session, bytes::Bytes::from_static(b": keepalive\n\n")).await?,
            }
            match s.replay.after_seq(from.stream, from.last_seq) {
                Some(next) => from = next,
                None => break,
            }
        }
        out.finish(session).await
    }
    .await;
    front::client_gone_is_fine(result)
}

/// Ends a session's client stream, however its request ends: the targets' streams stop and
/// the session may expire again.
struct StreamCleanup(Arc<McpSession>);

impl Drop for StreamCleanup {
    fn drop(&mut self) {
        for t in self.0.stream_tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        self.0.streaming.store(false, Ordering::Relaxed);
        *self.0.last_used.lock().unwrap() = std::time::Instant::now();
    }
}

/// Merges several `server/discover` results: versions every target supports, the union of
/// capabilities, the gateway's name.
fn merge_discover(results: &[Value]) -> Value {
    let versions = |r: &Value| r.get("supportedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut common = versions(&results[0]);
    for r in &results[1..] {
        let v = versions(r);
        common.retain(|x| v.contains(x));
    }
    let mut merged = results[0].clone();
    merged["supportedVersions"] = Value::Array(common);
    let mut caps = serde_json::Map::new();
    for r in results {
        if let Some(Value::Object(c)) = r.get("capabilities") {
            for (k, v) in c {
                caps.entry(k.clone()).or_insert(v.clone());
            }
        }
    }
    merged["capabilities"] = Value::Object(caps);
    merged["serverInfo"] = json!({"name": "tollgate", "version": env!("CARGO_PKG_VERSION")});
    merged
}
