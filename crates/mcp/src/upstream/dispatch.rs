//! Matching responses to requests on transports that carry every message of a session on
//! one stream (legacy SSE, stdio). Outgoing request ids are replaced by the gateway's own
//! numbers (two client requests can never collide), and messages that are not responses go
//! to the relay of the request they most likely belong to, else to the session's stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::Relay;
use crate::error::McpError;
use crate::jsonrpc::{self, Kind};
use tollgate_core::json_pointer::Pointer as _;

struct InFlight {
    original_id: Value,
    progress_token: Option<Value>,
    relay: Relay,
    reply: Option<oneshot::Sender<Value>>,
}

/// Pending requests of one target connection.
#[derive(Default)]
pub struct Dispatcher {
    next: AtomicU64,
    inflight: Mutex<Vec<(u64, InFlight)>>,
    fallback: Mutex<Option<Relay>>,
}

/// A registered request; dropping it forgets the request.
pub struct Pending<'a> {
    dispatcher: &'a Dispatcher,
    n: u64,
    rx: Option<oneshot::Receiver<Value>>,
}

impl Pending<'_> {
    /// Waits for the response (bounded).
    pub async fn wait(mut self, wait: Duration) -> Result<Value, McpError> {
        let rx = self.rx.take().expect("waited once");
        match tokio::time::timeout(wait, rx).await {
            Err(_) => Err(McpError::Timeout),
            Ok(Err(_)) => Err(McpError::Upstream("the connection closed before the response".into())),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.dispatcher.inflight.lock().unwrap().retain(|(n, _)| *n != self.n);
    }
}

impl Dispatcher {
    /// Gives `msg` a gateway id and registers it; the returned handle waits for the response.
    pub fn register(&self, msg: &mut Value, relay: &Relay) -> Pending<'_> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let original_id = std::mem::replace(&mut msg["id"], json!(n));
        let progress_token = msg.at("/params/_meta/progressToken").cloned();
        let (tx, rx) = oneshot::channel();
        let entry = InFlight { original_id, progress_token, relay: relay.clone(), reply: Some(tx) };
        self.inflight.lock().unwrap().push((n, entry));
        Pending { dispatcher: self, n, rx: Some(rx) }
    }

    /// Where unsolicited messages go when no request is waiting.
    pub fn set_fallback(&self, relay: Option<Relay>) {
        *self.fallback.lock().unwrap() = relay;
    }

    /// Translates a client's `notifications/cancelled` to the gateway id the target knows.
    pub fn translate_cancel(&self, msg: &mut Value) {
        if jsonrpc::method(msg) != "notifications/cancelled" {
            return;
        }
        if let Some(id) = msg.at_mut("/params/requestId") {
            let list = self.inflight.lock().unwrap();
            if let Some((n, _)) = list.iter().find(|(_, f)| f.original_id == *id) {
                *id = json!(n);
            }
        }
    }

    /// Routes one message read from the target.
    pub fn dispatch(&self, mut msg: Value) {
        if jsonrpc::kind(&msg) == Kind::Response {
            let mut list = self.inflight.lock().unwrap();
            let n = msg.get("id").and_then(Value::as_u64);
            if let Some((_, f)) = list.iter_mut().find(|(k, _)| Some(*k) == n) {
                msg["id"] = f.original_id.clone();
                if let Some(tx) = f.reply.take() {
                    let _ = tx.send(msg);
                }
                return;
            }
            tracing::debug!("MCP target answered an unknown request id: {:?}", msg.get("id"));
            return;
        }
        let relay = {
            let list = self.inflight.lock().unwrap();
            let token = msg.at("/params/progressToken");
            let by_token = token.and_then(|t| list.iter().find(|(_, f)| f.progress_token.as_ref() == Some(t)));
            // Otherwise the newest request whose client is still listening.
            by_token.or_else(|| list.iter().rev().find(|(_, f)| !f.relay.tx.is_closed())).map(|(_, f)| f.relay.clone())
        };
        match relay.or_else(|| self.fallback.lock().unwrap().clone()) {
            Some(r) => r.forward(msg),
            None => tracing::debug!("MCP message from a target with nobody to receive it: {}", jsonrpc::method(&msg)),
        }
    }

    /// The connection ended: every waiting request fails now rather than at its deadline.
    pub fn close_all(&self) {
        self.inflight.lock().unwrap().clear();
    }
}
