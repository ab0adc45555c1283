//! The legacy HTTP+SSE front end (protocol 2024-11-05): `GET …/sse` opens the client's
//! stream, whose first `endpoint` event names the gateway's own message URL (`…/sse?sessionId=`,
//! on the same route); every POST to
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

/// Longest wait to queue an answer for a client that does not read its stream.
const SEND_WAIT: Duration = Duration::from_secs(30);
/// Messages of one client handled at once; more get 429.
const IN_FLIGHT: usize = 32;

/// One legacy client: its stream and, after `initialize`, its session.
pub struct LegacyClient {
    /// The backend whose stream the client opened (its messages are served by it alone).
    pub fed: Arc<Federation>,
    /// The client's stream.
    pub tx: mpsc::Sender<Value>,
    /// The session, once initialized.
    pub session: tokio::sync::Mutex<Option<Arc<McpSession>>>,
    /// Bounds the messages being handled.
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

impl LegacyClient {
    /// A client and the receiving end of its stream.
    pub fn new(fed: Arc<Federation>) -> (Arc<LegacyClient>, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(RELAY_QUEUE);
        let client = LegacyClient { fed, tx, session: tokio::sync::Mutex::new(None), in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)) };
        (Arc::new(client), rx)
    }

    async fn send(&self, msg: Value) {
        if let Err(e) = self.tx.send_timeout(msg, SEND_WAIT).await {
            tracing::debug!("MCP answer for a legacy client dropped: {e}");
        }
    }

    async fn current(&self) -> Option<Arc<McpSession>> {
        self.session.lock().await.clone()
    }

    /// The message endpoint for a stream opened at `sse_path`: the same path with the
    /// client's id, so whatever route matched the stream matches its messages too.
    pub fn endpoint(sse_path: &str, id: &str) -> String {
        format!("{sse_path}?sessionId={id}")
    }

    /// Handles one posted message; answers go to the stream.
    pub async fn handle(self: Arc<Self>, msg: Value, cc: CallCtx, id: String) {
        let fed = self.fed.clone();
        let req_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let kind = jsonrpc::kind(&msg);
        if kind == Kind::Request && jsonrpc::method(&msg) == "initialize" {
            let hello = ClientHello::from_params(msg.get("params"));
            let answer = match connect_all(&fed, &cc, &hello, &self.tx).await {
                Ok((upstreams, result)) => {
                    let (_, unused_rx) = mpsc::channel(1);
                    let s = Arc::new(McpSession::new(id, fed, hello, upstreams, (self.tx.clone(), unused_rx)));
                    s.touch(&cc);
                    let old = self.session.lock().await.replace(s.clone());
                    if let Some(old) = old {
                        old.close(&cc).await;
                    }
                    if self.tx.is_closed() {
                        // The client left while its targets were starting: nobody will end it.
                        self.session.lock().await.take();
                        s.close(&cc).await;
                        return;
                    }
                    jsonrpc::result(&req_id, result)
                }
                Err(e) => e.to_response(&req_id),
            };
            self.send(answer).await;
            return;
        }
        let Some(s) = self.current().await else {
            if kind == Kind::Request {
                self.send(jsonrpc::error(&req_id, jsonrpc::INVALID_REQUEST, "the session is not initialized")).await;
            }
            return;
        };
        s.touch(&cc);
        match kind {
            Kind::Request => {
                let answer = s.handle_request(msg, &cc, &self.tx, false).await.map_or_else(|e| e.to_response(&req_id), |a| a.into_message(&req_id));
                self.send(answer).await;
            }
            Kind::Notification => s.handle_notification(msg, &cc).await,
            Kind::Response => {
                if let Err(e) = s.handle_response(msg, &cc).await {
                    tracing::debug!("MCP client response not delivered: {e}");
                }
            }
            Kind::Invalid => self.send(jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, "not a JSON-RPC 2.0 message")).await,
        }
    }

    /// Ends the session (the client's stream closed).
    pub async fn close(&self, cc: &CallCtx) {
        let s = self.session.lock().await.take();
        if let Some(s) = s {
            s.close(cc).await;
        }
    }
}

impl super::McpProxy {
    /// `GET …/sse`: a legacy client's stream, for as long as the client keeps it open.
    pub(super) async fn legacy_stream(&self, session: &mut pingora::proxy::Session, ctx: &mut tollgate_core::ctx::RequestCtx, cc: CallCtx) -> pingora::Result<()> {
        if !self.store.has_room() {
            let e = jsonrpc::error(&Value::Null, jsonrpc::INTERNAL_ERROR, format!("too many MCP sessions (limit {})", super::session::MAX_SESSIONS));
            return super::front::json(session, ctx, 503, &e, None).await;
        }
        let (client, mut rx) = LegacyClient::new(self.fed.clone());
        let id = format!("{:032x}", rand::random::<u128>());
        self.store.legacy.lock().unwrap().insert(id.clone(), client.clone());
        // Whatever ends this request (the client leaving, a shutdown), the client's targets end.
        let _cleanup = LegacyCleanup { store: self.store.clone(), id: id.clone(), client: client.clone(), cc: cc.clone() };
        let endpoint = LegacyClient::endpoint(session.req_header().uri.path(), &id);
        let mut out = super::front::EventStream::new();
        out.start(session, ctx, None).await?;
        out.raw(session, super::sse::named_event("endpoint", &endpoint)).await?;
        out.relay(session, ctx, &mut rx, None, None).await
    }

    /// `POST …/message?sessionId=`: accepted now, answered on the stream.
    pub(super) async fn legacy_message(&self, session: &mut pingora::proxy::Session, ctx: &mut tollgate_core::ctx::RequestCtx, cc: CallCtx, id: &str) -> pingora::Result<()> {
        let client = self.store.legacy.lock().unwrap().get(id).cloned();
        let Some(client) = client.filter(|c| c.fed.fingerprint == self.fed.fingerprint) else {
            let e = McpError::SessionGone.to_response(&Value::Null);
            return super::front::json(session, ctx, 404, &e, None).await;
        };
        let body = match super::front::read_body(session, ctx.deadline).await? {
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
        if let Err(why) = jsonrpc::check_client_message(&msg) {
            let e = jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, why);
            return super::front::json(session, ctx, 400, &e, None).await;
        }
        ctx.mcp = Some(Box::new(self.fed.describe(&msg)));
        let Ok(permit) = client.in_flight.clone().try_acquire_owned() else {
            let e = jsonrpc::error(&Value::Null, jsonrpc::INTERNAL_ERROR, "too many messages in flight for this session");
            return super::front::json(session, ctx, 429, &e, None).await;
        };
        let id = id.to_string();
        tokio::spawn(async move {
            client.handle(msg, cc, id).await;
            drop(permit);
        });
        super::front::empty(session, ctx, 202).await
    }
}

/// Removes a legacy client and ends its session when its stream's request ends, however it ends.
struct LegacyCleanup {
    store: Arc<super::session::SessionStore>,
    id: String,
    client: Arc<LegacyClient>,
    cc: CallCtx,
}

impl Drop for LegacyCleanup {
    fn drop(&mut self) {
        self.store.legacy.lock().unwrap().remove(&self.id);
        let (client, cc) = (self.client.clone(), self.cc.clone());
        tokio::spawn(async move { client.close(&cc).await });
    }
}
