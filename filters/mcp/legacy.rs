//! The legacy HTTP+SSE front end (protocol 2024-11-05): `GET …/sse` opens the client's
//! stream, whose first `endpoint` event names the gateway's own message URL; every POST to
//! it is accepted at once (202) and its answer travels on the stream.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::client::CallCtx;
use super::error::McpError;
use super::federation::{connect_all, Federation};
use super::jsonrpc::{self, Kind};
use super::session::McpSession;
use super::upstream::{ClientHello, RELAY_QUEUE};

/// How often an idle client stream gets a comment (detects clients that went away).
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One legacy client: its stream and, after `initialize`, its session.
pub struct LegacyClient {
    /// The client's stream.
    pub tx: mpsc::Sender<Value>,
    /// The session, once initialized.
    pub session: tokio::sync::Mutex<Option<Arc<McpSession>>>,
}

impl LegacyClient {
    /// A client and the receiving end of its stream.
    pub fn new() -> (Arc<LegacyClient>, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(RELAY_QUEUE);
        (Arc::new(LegacyClient { tx, session: tokio::sync::Mutex::new(None) }), rx)
    }

    /// The message endpoint for a stream opened at `sse_path`.
    pub fn endpoint(sse_path: &str, id: &str) -> String {
        let base = sse_path.strip_suffix("/sse").unwrap_or(sse_path.trim_end_matches('/'));
        format!("{base}/message?sessionId={id}")
    }

    /// Handles one posted message; answers go to the stream.
    pub async fn handle(self: Arc<Self>, fed: Arc<Federation>, msg: Value, cc: CallCtx, id: String) {
        let req_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let kind = jsonrpc::kind(&msg);
        if kind == Kind::Request && jsonrpc::method(&msg) == "initialize" {
            let hello = ClientHello {
                protocol_version: jsonrpc::param_str(&msg, "protocolVersion").unwrap_or("2024-11-05").to_string(),
                params: msg.get("params").cloned().unwrap_or_default(),
            };
            let answer = match connect_all(&fed, &cc, &hello, &self.tx).await {
                Ok((upstreams, result)) => {
                    let (_, unused_rx) = mpsc::channel(1);
                    let s = Arc::new(McpSession::new(id, fed, hello, upstreams, (self.tx.clone(), unused_rx)));
                    s.touch(&cc);
                    if let Some(old) = self.session.lock().await.replace(s) {
                        old.close(&cc).await;
                    }
                    jsonrpc::result(&req_id, result)
                }
                Err(e) => e.to_response(&req_id),
            };
            let _ = self.tx.send(answer).await;
            return;
        }
        let Some(s) = self.session.lock().await.clone() else {
            if kind == Kind::Request {
                let _ = self.tx.send(jsonrpc::error(&req_id, jsonrpc::INVALID_REQUEST, "the session is not initialized")).await;
            }
            return;
        };
        s.touch(&cc);
        match kind {
            Kind::Request => {
                let answer = s.handle_request(msg, &cc, &self.tx).await;
                let _ = self.tx.send(answer).await;
            }
            Kind::Notification => s.handle_notification(msg, &cc).await,
            Kind::Response => {
                if let Err(e) = s.handle_response(msg, &cc).await {
                    log::debug!("MCP client response not delivered: {e}");
                }
            }
            Kind::Invalid => {
                let _ = self.tx.send(McpError::InvalidParams("not a JSON-RPC message".into()).to_response(&Value::Null)).await;
            }
        }
    }

    /// Ends the session (the client's stream closed).
    pub async fn close(&self, cc: &CallCtx) {
        if let Some(s) = self.session.lock().await.take() {
            s.close(cc).await;
        }
    }
}

impl super::McpProxy {
    /// `GET …/sse`: a legacy client's stream, for as long as the client keeps it open.
    pub(super) async fn legacy_stream(&self, session: &mut pingora::proxy::Session, ctx: &mut crate::ctx::RequestCtx, cc: CallCtx) -> pingora::Result<()> {
        let (client, mut rx) = LegacyClient::new();
        let id = format!("{:032x}", rand::random::<u128>());
        self.store.legacy.lock().unwrap().insert(id.clone(), client.clone());
        let endpoint = LegacyClient::endpoint(session.req_header().uri.path(), &id);
        let mut out = super::front::EventStream::new();
        let result = async {
            out.start(session, ctx, None).await?;
            out.raw(session, super::sse::named_event("endpoint", &endpoint)).await?;
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => out.message(session, ctx, &m, None).await?,
                        None => break,
                    },
                    _ = tokio::time::sleep(KEEPALIVE) => out.raw(session, bytes::Bytes::from_static(b": keepalive\n\n")).await?,
                }
            }
            out.finish(session).await
        }
        .await;
        self.store.legacy.lock().unwrap().remove(&id);
        client.close(&cc).await;
        super::streamable::client_gone_is_fine(result)
    }

    /// `POST …/message?sessionId=`: accepted now, answered on the stream.
    pub(super) async fn legacy_message(&self, session: &mut pingora::proxy::Session, ctx: &mut crate::ctx::RequestCtx, cc: CallCtx, id: &str) -> pingora::Result<()> {
        let Some(client) = self.store.legacy.lock().unwrap().get(id).cloned() else {
            let e = McpError::SessionGone.to_response(&Value::Null);
            return super::front::json(session, ctx, 404, &e, None).await;
        };
        let body = match super::front::read_body(session, ctx).await? {
            Ok(b) => b,
            Err(limit) => {
                let e = jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, format!("message larger than {limit} bytes"));
                return super::front::json(session, ctx, 413, &e, None).await;
            }
        };
        let msg: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let e = jsonrpc::error(&Value::Null, jsonrpc::PARSE_ERROR, format!("parse error: {e}"));
                return super::front::json(session, ctx, 400, &e, None).await;
            }
        };
        ctx.mcp = Some(self.fed.describe(&msg));
        tokio::spawn(client.handle(self.fed.clone(), msg, cc, id.to_string()));
        super::front::empty(session, ctx, 202).await
    }
}
