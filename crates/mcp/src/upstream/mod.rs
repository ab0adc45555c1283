//! Connections to targets, one per target per client session: Streamable HTTP, legacy SSE,
//! a stdio child process, or OpenAPI operations. Each turns "send this request, give me its
//! response" into its transport; server-to-client messages that arrive meanwhile go to a
//! [`Relay`].

pub mod dispatch;
pub mod http;
pub mod sse;
pub mod stdio;

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::answer::Answer;
use super::client::CallCtx;
use super::error::McpError;
use super::jsonrpc::{self, Kind as MessageKind};
use super::openapi::OpenApiTarget;
use super::target::{Target, TargetKind, TargetTransport};
use tollgate_core::json_pointer::Pointer as _;

/// Messages queued for a client before the oldest are dropped (never blocks a target).
pub const RELAY_QUEUE: usize = 256;

/// Where server-to-client messages from one target go: the stream of the client request
/// they belong to, or the session's stream. Requests from the target get ids that name it,
/// so the client's answer finds its way back.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Index of the target in the backend.
    pub target: usize,
    /// `<target>+` when resource URIs are prefixed.
    pub uri_prefix: Option<Arc<str>>,
    /// The client-bound queue.
    pub tx: mpsc::Sender<Value>,
}

impl Relay {
    /// Rewrites and queues a message from the target; drops it (logged) if the client is gone
    /// or has not read the last [`RELAY_QUEUE`] messages.
    pub fn forward(&self, mut msg: Value) {
        match jsonrpc::kind(&msg) {
            MessageKind::Request => {
                let id = msg["id"].take();
                msg["id"] = json!(format!("tg{}.{id}", self.target));
            }
            MessageKind::Notification if jsonrpc::method(&msg) == "notifications/resources/updated" => {
                if let (Some(p), Some(uri)) = (&self.uri_prefix, msg.at_mut("/params/uri")) {
                    if let Some(u) = uri.as_str() {
                        *uri = json!(format!("{p}{u}"));
                    }
                }
            }
            _ => {}
        }
        if let Err(e) = self.tx.try_send(msg) {
            tracing::debug!("MCP message for the client dropped: {e}");
        }
    }
}

/// Splits a relayed request id `tg<target>.<original JSON id>` back apart.
pub fn relayed_id(id: &Value) -> Option<(usize, Value)> {
    let s = id.as_str()?.strip_prefix("tg")?;
    let (t, rest) = s.split_once('.')?;
    Some((t.parse().ok()?, serde_json::from_str(rest).ok()?))
}

/// A live connection to one target, with the target's own transport policies.
pub struct Upstream {
    /// The transport.
    pub kind: Kind,
    /// Credentials and TLS over the route's.
    pub transport: Arc<TargetTransport>,
}

/// The transports.
pub enum Kind {
    /// Streamable HTTP.
    Http(http::HttpUpstream),
    /// Legacy HTTP+SSE.
    Sse(sse::SseUpstream),
    /// A child process.
    Stdio(stdio::StdioUpstream),
    /// OpenAPI operations.
    OpenApi(Arc<OpenApiTarget>),
}

/// What the client said in `initialize`, replayed to each target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientHello {
    /// Protocol version the client asked for.
    #[serde(rename = "v")]
    pub protocol_version: String,
    /// The client's `initialize` params (capabilities, clientInfo).
    #[serde(rename = "p")]
    pub params: Value,
}

impl ClientHello {
    /// What is kept of a client's `initialize` params: the version, capabilities and name
    /// (bounded, since it travels in the session id).
    pub fn from_params(params: Option<&Value>) -> ClientHello {
        let p = params.cloned().unwrap_or_else(|| json!({}));
        let version = p.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-06-18").to_string();
        let mut kept = json!({"protocolVersion": version});
        for key in ["capabilities", "clientInfo"] {
            if let Some(v) = p.get(key).filter(|v| v.to_string().len() <= 2048) {
                kept[key] = v.clone();
            }
        }
        if kept.get("capabilities").is_none() {
            kept["capabilities"] = json!({});
        }
        ClientHello { protocol_version: version, params: kept }
    }

    fn initialize(&self) -> Value {
        jsonrpc::request(json!("tollgate-init"), "initialize", self.params.clone())
    }
}

impl Upstream {
    /// Opens a session with `target`: connects and runs the `initialize` handshake (plus
    /// `notifications/initialized`). Returns the target's `initialize` result.
    pub async fn connect(target: &Target, cc: &CallCtx, hello: &ClientHello, relay: &Relay) -> Result<(Upstream, Value), McpError> {
        let own = target.transport.apply(cc);
        let kind = match &target.kind {
            TargetKind::Http(origin, path) => Kind::Http(http::HttpUpstream::new(origin.clone(), path.clone(), None, None)),
            TargetKind::Sse(origin, path) => Kind::Sse(sse::SseUpstream::open(&own, origin, path, relay).await?),
            TargetKind::Stdio(spec) => Kind::Stdio(stdio::StdioUpstream::spawn(spec, relay)?),
            TargetKind::OpenApi(api) => Kind::OpenApi(api.clone()),
        };
        let up = Upstream { kind, transport: target.transport.clone() };
        let response = match up.request(cc, hello.initialize(), relay).await {
            Ok(r) => r,
            Err(e) => {
                up.close(cc).await;
                return Err(e);
            }
        };
        let Some(result) = response.get("result").cloned() else {
            up.close(cc).await;
            let msg = response.at("/error/message").and_then(Value::as_str).unwrap_or("no result");
            return Err(McpError::Upstream(format!("initialize failed: {msg}")));
        };
        if let Kind::Http(h) = &up.kind {
            h.set_version(result.get("protocolVersion").and_then(Value::as_str));
        }
        if let Err(e) = up.notify(cc, jsonrpc::notification("notifications/initialized", json!({}))).await {
            up.close(cc).await;
            return Err(e);
        }
        Ok((up, result))
    }

    /// Rebuilds a connection from a session id: an HTTP target's upstream session is reused
    /// as is; other transports start a new one.
    pub async fn resume(target: &Target, cc: &CallCtx, hello: &ClientHello, saved: Option<&SavedTarget>, relay: &Relay) -> Result<Upstream, McpError> {
        match (&target.kind, saved) {
            (TargetKind::Http(origin, path), Some(s)) => {
                let h = http::HttpUpstream::new(origin.clone(), path.clone(), s.session.clone(), s.version.clone());
                Ok(Upstream { kind: Kind::Http(h), transport: target.transport.clone() })
            }
            _ => Upstream::connect(target, cc, hello, relay).await.map(|(u, _)| u),
        }
    }

    /// Sends a request and waits (bounded by `cc.wait`) for its response.
    pub async fn request(&self, cc: &CallCtx, msg: Value, relay: &Relay) -> Result<Value, McpError> {
        let cc = &*self.transport.apply(cc);
        match &self.kind {
            Kind::Http(h) => h.request(cc, msg, relay).await,
            Kind::Sse(s) => s.request(cc, msg, relay).await,
            Kind::Stdio(s) => s.request(cc, msg, relay).await,
            Kind::OpenApi(api) => api.request(cc, msg).await,
        }
    }

    /// [`request`](Self::request) for an answer the caller passes on unchanged: when
    /// `verbatim`, a Streamable HTTP target's plain JSON success response stays the bytes it sent.
    pub async fn call(&self, cc: &CallCtx, msg: Value, relay: &Relay, verbatim: bool) -> Result<Answer, McpError> {
        match &self.kind {
            Kind::Http(h) => h.call(&self.transport.apply(cc), msg, relay, verbatim).await,
            _ => self.request(cc, msg, relay).await.map(Answer::Message),
        }
    }

    /// Sends a notification or a response to a target's request.
    pub async fn notify(&self, cc: &CallCtx, msg: Value) -> Result<(), McpError> {
        let cc = &*self.transport.apply(cc);
        match &self.kind {
            Kind::Http(h) => h.notify(cc, msg).await,
            Kind::Sse(s) => s.notify(cc, msg).await,
            Kind::Stdio(s) => s.notify(cc, msg).await,
            Kind::OpenApi(_) => Ok(()),
        }
    }

    /// Starts relaying the target's unsolicited messages to `relay` (the client's stream).
    pub async fn open_stream(&self, cc: &CallCtx, relay: Relay) -> Option<JoinHandle<()>> {
        match &self.kind {
            Kind::Http(h) => h.open_stream(&self.transport.apply(cc), relay).await,
            Kind::Sse(s) => {
                s.dispatch.set_fallback(Some(relay));
                None
            }
            Kind::Stdio(s) => {
                s.dispatch.set_fallback(Some(relay));
                None
            }
            Kind::OpenApi(_) => None,
        }
    }

    /// Ends the target's session: DELETE for HTTP, closing the stream, killing the child.
    pub async fn close(&self, cc: &CallCtx) {
        match &self.kind {
            Kind::Http(h) => h.close(&self.transport.apply(cc)).await,
            Kind::Sse(s) => s.close(),
            Kind::Stdio(s) => s.close().await,
            Kind::OpenApi(_) => {}
        }
    }

    /// What a session id must remember to resume this connection elsewhere.
    pub fn saved(&self) -> Option<SavedTarget> {
        match &self.kind {
            Kind::Http(h) => Some(SavedTarget { session: h.session(), version: h.version() }),
            _ => None,
        }
    }
}

/// The resumable part of a target connection, kept inside the client's session id.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedTarget {
    /// The target's `Mcp-Session-Id`.
    #[serde(rename = "s", skip_serializing_if = "Option::is_none", default)]
    pub session: Option<String>,
    /// The negotiated protocol version.
    #[serde(rename = "v", skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}
