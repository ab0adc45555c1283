//! Streamable HTTP targets: each message is a POST to the target's endpoint; the answer is
//! JSON or an event stream that may carry the target's notifications and requests before
//! the response. The target's own session id rides along in `Mcp-Session-Id`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderName, Method};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::Relay;
use crate::answer::Answer;
use crate::client::{left, CallCtx, Origin, Request, Response};
use crate::error::McpError;
use crate::jsonrpc::{self, Kind};
use crate::names;
use crate::sse;

/// Largest JSON response read from a target.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// The protocol revision without sessions or `initialize`.
pub const MODERN_VERSION: &str = "2026-07-28";

/// One session with a Streamable HTTP target.
pub struct HttpUpstream {
    origin: Origin,
    path: String,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
}

impl HttpUpstream {
    /// A connection to `origin` + `path`, resuming `session` when given.
    pub fn new(origin: Origin, path: String, session: Option<String>, version: Option<String>) -> Self {
        HttpUpstream { origin, path, session: Mutex::new(session), version: Mutex::new(version) }
    }

    /// Records the protocol version negotiated in `initialize` (sent on later requests).
    pub fn set_version(&self, v: Option<&str>) {
        *self.version.lock().unwrap() = v.map(str::to_string);
    }

    /// The target's session id, once it gave one.
    pub fn session(&self) -> Option<String> {
        self.session.lock().unwrap().clone()
    }

    /// The negotiated protocol version.
    pub fn version(&self) -> Option<String> {
        self.version.lock().unwrap().clone()
    }

    fn headers(&self, msg: Option<&Value>, accept: &str) -> Vec<(HeaderName, String)> {
        let mut h = vec![(header::ACCEPT, accept.to_string())];
        if msg.is_some() {
            h.push((header::CONTENT_TYPE, "application/json".into()));
        }
        if let Some(s) = self.session() {
            h.push((names::MCP_SESSION_ID, s));
        }
        let version = self.version();
        if let Some(v) = &version {
            h.push((names::MCP_PROTOCOL_VERSION, v.clone()));
        }
        if let (Some(m), Some(v)) = (msg, &version) {
            // The 2026-07-28 revision routes on these headers.
            if v.as_str() >= MODERN_VERSION && !jsonrpc::method(m).is_empty() {
                h.push((names::MCP_METHOD, jsonrpc::method(m).to_string()));
                if let Some(name) = jsonrpc::param_str(m, "name").or_else(|| jsonrpc::param_str(m, "uri")) {
                    h.push((names::MCP_NAME, name.to_string()));
                }
            }
        }
        h
    }

    async fn post(&self, cc: &CallCtx, msg: &Value) -> Result<Response, McpError> {
        let req = Request {
            method: Method::POST,
            path: &self.path,
            headers: self.headers(Some(msg), "application/json, text/event-stream"),
            // `to_vec`, not `to_string`: `Value`'s `Display` writes through `fmt` (~5k a message).
            body: Some(Bytes::from(serde_json::to_vec(msg).unwrap_or_default())),
        };
        let resp = cc.send(&self.origin, &req).await?;
        if resp.status == 404 && self.session().is_some() {
            return Err(McpError::SessionGone);
        }
        Ok(resp)
    }

    /// Sends a request; relays what the target sends before the response.
    pub async fn request(&self, cc: &CallCtx, msg: Value, relay: &Relay) -> Result<Value, McpError> {
        // Never verbatim here (`false`): the id only names a parse failure that cannot happen.
        self.call(cc, msg, relay, false).await.map(|a| a.into_message(&Value::Null))
    }

    /// [`request`](Self::request), keeping a plain JSON success response as the target sent
    /// it when `verbatim` (the caller changes nothing in it).
    pub async fn call(&self, cc: &CallCtx, msg: Value, relay: &Relay, verbatim: bool) -> Result<Answer, McpError> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let mut resp = self.post(cc, &msg).await?;
        if let Some(s) = resp.header("mcp-session-id") {
            let mut mine = self.session.lock().unwrap();
            if mine.is_none() {
                *mine = Some(s.to_string());
            }
        }
        if resp.is_sse() {
            // Boxed: reading a stream (and resuming it) is a ~3.5 KiB future; inline, it would
            // make every call's future that large, and the common JSON answer pays for
            // allocating and copying it.
            return Box::pin(self.read_stream_until(resp, &id, relay, cc)).await.map(Answer::Message);
        }
        let body = resp.body(cc.until(), MAX_RESPONSE).await?;
        if let Some(kept) = verbatim.then(|| Answer::verbatim(&body)).flatten() {
            return Ok(kept);
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if jsonrpc::kind(&v) == Kind::Response => Ok(Answer::Message(v)),
            _ if resp.status >= 400 => Err(McpError::Upstream(format!("HTTP {}: {}", resp.status, String::from_utf8_lossy(&body[..body.len().min(200)])))),
            _ => Err(McpError::Upstream(format!("HTTP {}: not a JSON-RPC response", resp.status))),
        }
    }

    /// Sends a notification or a response.
    pub async fn notify(&self, cc: &CallCtx, msg: Value) -> Result<(), McpError> {
        let mut resp = self.post(cc, &msg).await?;
        let _ = resp.body(cc.until(), MAX_RESPONSE).await;
        if resp.status >= 400 {
            return Err(McpError::Upstream(format!("HTTP {} for {}", resp.status, jsonrpc::method(&msg))));
        }
        Ok(())
    }

    /// Opens the target's server stream (GET) and relays it while the client's stream is open
    /// (the task is aborted then). A stream that drops (the target restarted, a proxy timed it
    /// out) is reopened with backoff, unless the target no longer offers it.
    pub async fn open_stream(&self, cc: &CallCtx, relay: Relay) -> Option<JoinHandle<()>> {
        let req = Request { method: Method::GET, path: &self.path, headers: self.headers(None, "text/event-stream"), body: None };
        let first = open_get(cc, &self.origin, &req).await?;
        // Reopening outlives the GET that started it: no request deadline.
        let cc = CallCtx { deadline: None, ..cc.clone() };
        let (origin, path, headers) = (self.origin.clone(), self.path.clone(), req.headers.clone());
        Some(tokio::spawn(async move {
            let mut resp = Some(first);
            let mut backoff = Duration::from_millis(500);
            loop {
                if let Some(mut r) = resp.take() {
                    let mut parser = sse::Parser::default();
                    while let Ok(Some(chunk)) = r.chunk(None).await {
                        let Ok(events) = parser.feed(&chunk) else { break };
                        backoff = Duration::from_millis(500);
                        for e in events {
                            if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                                relay.forward(v);
                            }
                        }
                    }
                }
                if relay.tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                let req = Request { method: Method::GET, path: &path, headers: headers.clone(), body: None };
                match cc.send(&origin, &req).await {
                    Ok(r) if r.status == 200 && r.is_sse() => resp = Some(r),
                    Ok(r) if matches!(r.status, 404 | 405) => return,
                    _ => {}
                }
            }
        }))
    }

    /// Ends the target's session (DELETE), if it has one.
    pub async fn close(&self, cc: &CallCtx) {
        if self.session().is_none() {
            return;
        }
        let req = Request { method: Method::DELETE, path: &self.path, headers: self.headers(None, "application/json"), body: None };
        let cc = CallCtx { wait: cc.wait.min(Duration::from_secs(5)), deadline: None, ..cc.clone() };
        if let Ok(mut r) = cc.send(&self.origin, &req).await {
            let _ = r.body(cc.until(), MAX_RESPONSE).await;
        }
    }
}

/// Opens a server stream; `None` when the target does not offer one.
async fn open_get(cc: &CallCtx, origin: &Origin, req: &Request<'_>) -> Option<Response> {
    match cc.send(origin, req).await {
        Ok(r) if r.status == 200 && r.is_sse() => Some(r),
        Ok(r) => {
            tracing::debug!("target stream not offered: HTTP {}", r.status);
            None
        }
        Err(e) => {
            tracing::debug!("target stream failed: {e}");
            None
        }
    }
}

/// Most times one request's stream is resumed after the target closed it.
const MAX_RESUMPTIONS: usize = 16;
/// Longest wait a target's `retry:` may ask for before a resumption.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

impl HttpUpstream {
    /// Reads an event stream, relaying every message until the response to `id`: each event
    /// within `cc.wait`, all of it by `cc.until()`. A target that closes the stream before
    /// answering, having given its events ids (SEP-1699: a priming event with `id` and
    /// `retry`, then a close), is resumed as the spec says: after `retry`, a GET with
    /// `Last-Event-ID` continues the same stream.
    async fn read_stream_until(&self, mut resp: Response, id: &Value, relay: &Relay, cc: &CallCtx) -> Result<Value, McpError> {
        // Each event within `wait`; the whole stream only by the request's deadline, so a long
        // call that keeps reporting progress is not cut off.
        let until = cc.deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
        let mut last_id: Option<String> = None;
        let mut retry = Duration::from_secs(1);
        for _ in 0..=MAX_RESUMPTIONS {
            let mut parser = sse::Parser::default();
            while let Some(chunk) = resp.chunk(Some(left(cc.wait, until))).await? {
                for e in parser.feed(&chunk).map_err(McpError::Upstream)? {
                    if let Some(i) = e.id {
                        last_id = Some(i);
                    }
                    if let Some(ms) = e.retry {
                        retry = Duration::from_millis(ms).min(MAX_RETRY_WAIT);
                    }
                    let Ok(msg) = serde_json::from_str::<Value>(&e.data) else { continue };
                    if jsonrpc::is_response_to(&msg, id) {
                        return Ok(msg);
                    }
                    relay.forward(msg);
                }
            }
            let Some(resume_from) = last_id.clone() else { break };
            if Instant::now() + retry >= until {
                break;
            }
            tokio::time::sleep(retry).await;
            let mut headers = self.headers(None, "text/event-stream");
            headers.push((names::LAST_EVENT_ID, resume_from));
            let req = Request { method: Method::GET, path: &self.path, headers, body: None };
            resp = cc.send(&self.origin, &req).await?;
            if resp.status != 200 || !resp.is_sse() {
                return Err(McpError::Upstream(format!("resuming the event stream: HTTP {}", resp.status)));
            }
        }
        Err(McpError::Upstream("the event stream ended without a response".into()))
    }
}
