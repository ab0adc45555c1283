//! Legacy HTTP+SSE targets: a long-lived GET stream whose first `endpoint` event names the
//! URL to POST messages to; every answer comes back on the stream.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::dispatch::Dispatcher;
use super::Relay;
use crate::client::{left, CallCtx, Origin, Request};
use crate::error::McpError;
use crate::sse;

/// One session with a legacy SSE target.
pub struct SseUpstream {
    origin: Origin,
    endpoint: String,
    /// Pending requests and where stray messages go.
    pub dispatch: Arc<Dispatcher>,
    reader: JoinHandle<()>,
}

/// Resolves the `endpoint` event's URL against the stream's path; only the path and query
/// are used, so a target cannot send the gateway's traffic elsewhere.
pub fn resolve_endpoint(stream_path: &str, data: &str) -> String {
    let data = data.trim();
    let path = match data.find("://") {
        Some(i) => data[i + 3..].find('/').map_or("/", |p| &data[i + 3 + p..]),
        None => data,
    };
    if path.starts_with('/') {
        return path.to_string();
    }
    let dir = stream_path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/{path}")
}

impl SseUpstream {
    /// Opens the stream and waits for the `endpoint` event.
    pub async fn open(cc: &CallCtx, origin: &Origin, path: &str, relay: &Relay) -> Result<SseUpstream, McpError> {
        let req = Request { method: Method::GET, path, headers: vec![(http::header::ACCEPT, "text/event-stream".into())], body: None };
        let mut resp = cc.send(origin, &req).await?;
        if resp.status != 200 || !resp.is_sse() {
            return Err(McpError::Upstream(format!("GET {path}: HTTP {} without an event stream", resp.status)));
        }
        let mut parser = sse::Parser::default();
        let mut pending = Vec::new();
        let until = cc.until();
        let endpoint = 'found: loop {
            if pending.len() > 64 {
                return Err(McpError::Upstream("no endpoint event among the stream's first messages".into()));
            }
            let chunk = resp.chunk(Some(left(cc.wait, until))).await?.ok_or_else(|| McpError::Upstream("the stream ended before its endpoint event".into()))?;
            for e in parser.feed(&chunk).map_err(McpError::Upstream)? {
                if e.event == "endpoint" {
                    break 'found resolve_endpoint(path, &e.data);
                }
                pending.push(e);
            }
        };
        let dispatch = Arc::new(Dispatcher::default());
        dispatch.set_fallback(Some(relay.clone()));
        let d = dispatch.clone();
        let reader = tokio::spawn(async move {
            let handle = |events: Vec<sse::Event>| {
                for e in events {
                    if e.event.is_empty() || e.event == "message" {
                        if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                            d.dispatch(v);
                        }
                    }
                }
            };
            handle(pending);
            loop {
                match resp.chunk(None).await {
                    Ok(Some(chunk)) => match parser.feed(&chunk) {
                        Ok(events) => handle(events),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
            d.close_all();
        });
        Ok(SseUpstream { origin: origin.clone(), endpoint, dispatch, reader })
    }

    async fn post(&self, cc: &CallCtx, msg: &Value) -> Result<(), McpError> {
        let req = Request {
            method: Method::POST,
            path: &self.endpoint,
            headers: vec![(http::header::CONTENT_TYPE, "application/json".into())],
            body: Some(Bytes::from(serde_json::to_vec(msg).unwrap_or_default())),
        };
        let mut resp = cc.send(&self.origin, &req).await?;
        let _ = resp.body(cc.until(), 64 * 1024).await;
        match resp.status {
            200..=299 => Ok(()),
            404 => Err(McpError::SessionGone),
            s => Err(McpError::Upstream(format!("POST {}: HTTP {s}", self.endpoint))),
        }
    }

    /// Sends a request and waits for its answer on the stream.
    pub async fn request(&self, cc: &CallCtx, mut msg: Value, relay: &Relay) -> Result<Value, McpError> {
        if self.reader.is_finished() {
            return Err(McpError::SessionGone);
        }
        let pending = self.dispatch.register(&mut msg, relay);
        self.post(cc, &msg).await?;
        pending.wait(cc.step()).await
    }

    /// Sends a notification or a response.
    pub async fn notify(&self, cc: &CallCtx, mut msg: Value) -> Result<(), McpError> {
        self.dispatch.translate_cancel(&mut msg);
        self.post(cc, &msg).await
    }

    /// Closes the stream, which ends the target's session.
    pub fn close(&self) {
        self.reader.abort();
        self.dispatch.close_all();
    }
}

impl Drop for SseUpstream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_endpoint;

    #[test]
    fn endpoints() {
        assert_eq!(resolve_endpoint("/sse", "/messages/?session_id=1"), "/messages/?session_id=1");
        assert_eq!(resolve_endpoint("/a/sse", "message?sessionId=2"), "/a/message?sessionId=2");
        assert_eq!(resolve_endpoint("/sse", "http://evil.example/m?x=1"), "/m?x=1");
    }
}
