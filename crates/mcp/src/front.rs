//! Writing to the MCP client: the request body in, JSON or event-stream responses out, with
//! the route's response filters (CORS, header modifiers) applied to every header.

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{OrErr, Result};
use serde_json::Value;

use std::sync::Arc;

use super::answer::Answer;
use super::replay::Replay;
use super::sse;
use tollgate_core::ctx::RequestCtx;

/// Largest message accepted from a client (tool arguments carry whole files).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Longest wait for a client to take an event: one that stops reading is gone.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn write(session: &mut Session, bytes: Option<Bytes>, end: bool) -> Result<()> {
    match tokio::time::timeout(WRITE_WAIT, session.write_response_body(bytes, end)).await {
        Ok(r) => r,
        Err(_) => pingora::Error::e_explain(pingora::ErrorType::WriteError, "the client stopped reading its stream"),
    }
}

/// How often an idle client stream gets a comment (detects clients that went away).
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads the whole request body, within the request's deadline; `Err(size)` when it is over
/// the limit.
pub async fn read_body(session: &mut Session, deadline: Option<std::time::Instant>) -> Result<std::result::Result<Bytes, usize>> {
    let limit = MAX_MESSAGE;
    let read = async {
        let mut all = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await? {
            if all.len() + chunk.len() > limit {
                return Ok(Err(limit));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(Ok(all.freeze()))
    };
    match deadline {
        None => read.await,
        Some(at) => match tokio::time::timeout_at(tokio::time::Instant::from_std(at), read).await {
            Ok(r) => r,
            Err(_) => pingora::Error::e_explain(pingora::ErrorType::HTTPStatus(504), "the request body did not arrive in time"),
        },
    }
}

// Names as lowercase `&'static str` and constant values as static `HeaderValue`s: Pingora turns
// a `HeaderName` back into text (title case, or a copy for a non-standard name) and parses it
// again, and a `&str` value is checked and copied (~900 instructions a header).
fn header(status: u16, content_type: Option<&'static str>, session_id: Option<&str>, ctx: &mut RequestCtx) -> Result<ResponseHeader> {
    // Into the map as names: Pingora's `insert_header` parses a name's text again (and copies
    // one it does not know, as `mcp-session-id`). The head keeps no case map or reason phrase
    // yet, so its parts are all of it.
    let mut parts = http::response::Parts::from(ResponseHeader::build_no_case(status, Some(4))?);
    if let Some(ct) = content_type {
        parts.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(id) = session_id {
        let id = HeaderValue::from_str(id).or_err(pingora::ErrorType::InvalidHTTPHeader, "invalid session id")?;
        parts.headers.insert(crate::names::MCP_SESSION_ID, id);
    }
    let mut h = ResponseHeader::from(parts);
    if let Some(chain) = ctx.chain.clone() {
        for f in chain.filters.iter() {
            f.on_response(&mut h, ctx)?;
        }
    }
    expose_session_id(&mut h)?;
    ctx.status = Some(status);
    Ok(h)
}

/// Records a JSON-RPC error answer on the request, for telemetry.
pub fn note_error(ctx: &mut RequestCtx, response: &Value) {
    if let Some(e) = response.get("error") {
        note_error_of(ctx, e);
    }
}

fn note_error_of(ctx: &mut RequestCtx, e: &Value) {
    if let Some(m) = ctx.mcp.as_mut() {
        let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
        m.error = Some((code, e.get("message").and_then(Value::as_str).unwrap_or("").to_string()));
    }
}

/// A browser client must read `Mcp-Session-Id` to continue its session: when the route's
/// CORS policy answered, the header is exposed even if the policy did not list it.
fn expose_session_id(h: &mut ResponseHeader) -> Result<()> {
    if h.headers.get(http::header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none() || h.headers.get(crate::names::MCP_SESSION_ID).is_none() {
        return Ok(());
    }
    let current = h.headers.get(http::header::ACCESS_CONTROL_EXPOSE_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
    if current.split(',').any(|x| x.trim().eq_ignore_ascii_case("mcp-session-id") || x.trim() == "*") {
        return Ok(());
    }
    let value = if current.trim().is_empty() { "mcp-session-id".to_string() } else { format!("{current}, mcp-session-id") };
    h.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, value)
}

/// A complete JSON response.
pub async fn json(session: &mut Session, ctx: &mut RequestCtx, status: u16, body: &Value, session_id: Option<&str>) -> Result<()> {
    note_error(ctx, body);
    // `to_vec`, not `to_string`: `Value`'s `Display` writes through `fmt` (~5k a message).
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    json_bytes(session, ctx, status, bytes, session_id).await
}

/// The answer to a client's request as a complete JSON response.
pub async fn answer(session: &mut Session, ctx: &mut RequestCtx, status: u16, answer: &Answer, session_id: Option<&str>) -> Result<()> {
    if let Some(e) = answer.error() {
        note_error_of(ctx, e);
    }
    json_bytes(session, ctx, status, answer.to_bytes(), session_id).await
}

async fn json_bytes(session: &mut Session, ctx: &mut RequestCtx, status: u16, bytes: Bytes, session_id: Option<&str>) -> Result<()> {
    let mut h = header(status, Some("application/json"), session_id, ctx)?;
    h.insert_header("content-length", HeaderValue::from(bytes.len()))?;
    session.write_response_header(Box::new(h), false).await?;
    write(session, Some(bytes), true).await
}

/// A response without a body (202 Accepted, 200 for DELETE, 405).
pub async fn empty(session: &mut Session, ctx: &mut RequestCtx, status: u16) -> Result<()> {
    let mut h = header(status, None, None, ctx)?;
    h.insert_header("content-length", HeaderValue::from_static("0"))?;
    session.write_response_header(Box::new(h), true).await
}

/// An event stream to the client.
pub struct EventStream {
    started: bool,
    resumable: Option<Resumable>,
}

/// Where a resumable stream records its events.
struct Resumable {
    replay: Arc<Replay>,
    /// Its number once started (the GET stream is always 0).
    stream: Option<u64>,
    /// Send a priming event first (clients from 2025-11-25 on).
    prime: bool,
    /// The client went away: events are still recorded for a resuming client.
    client_gone: bool,
}

impl EventStream {
    /// Not yet started: the header goes out with the first event.
    pub fn new() -> Self {
        EventStream { started: false, resumable: None }
    }

    /// A stream whose events carry ids and are kept in `replay` (`stream`: a fixed number,
    /// or `None` for a new one when it starts). Once the client is gone, writes stop but the
    /// events are still recorded, so the answer waits for a client that resumes.
    pub fn resumable(replay: Arc<Replay>, stream: Option<u64>, prime: bool) -> Self {
        EventStream { started: false, resumable: Some(Resumable { replay, stream, prime, client_gone: false }) }
    }

    /// Whether the header went out.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Sends the header now.
    pub async fn start(&mut self, session: &mut Session, ctx: &mut RequestCtx, session_id: Option<&str>) -> Result<()> {
        if self.started {
            return Ok(());
        }
        let mut h = header(200, Some("text/event-stream"), session_id, ctx)?;
        h.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
        if session.req_header().version == http::Version::HTTP_11 {
            h.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        self.started = true;
        let prime = match self.resumable.as_mut() {
            Some(r) => {
                let stream = *r.stream.get_or_insert_with(|| r.replay.open());
                r.prime.then(|| r.replay.push(stream, None))
            }
            None => None,
        };
        let sent = session.write_response_header(Box::new(h), false).await;
        self.deliver(sent)?;
        if let Some(p) = prime {
            self.raw(session, p).await?;
        }
        Ok(())
    }

    /// A write's outcome: on a resumable stream a client that went away is noted, not an error.
    fn deliver(&mut self, r: Result<()>) -> Result<()> {
        match (&mut self.resumable, r) {
            (Some(res), Err(e)) if is_client_gone(&e) => {
                res.client_gone = true;
                Ok(())
            }
            (_, r) => r,
        }
    }

    fn client_gone(&self) -> bool {
        self.resumable.as_ref().is_some_and(|r| r.client_gone)
    }

    /// One JSON-RPC message as a `message` event.
    pub async fn message(&mut self, session: &mut Session, ctx: &mut RequestCtx, msg: &Value, session_id: Option<&str>) -> Result<()> {
        self.start(session, ctx, session_id).await?;
        let event = match &self.resumable {
            Some(Resumable { replay, stream: Some(n), .. }) => replay.push(*n, Some(&serde_json::to_string(msg).unwrap_or_default())),
            _ => sse::message_event(msg),
        };
        self.raw(session, event).await
    }

    /// Raw event bytes.
    pub async fn raw(&mut self, session: &mut Session, bytes: Bytes) -> Result<()> {
        if self.client_gone() {
            return Ok(());
        }
        let sent = write(session, Some(bytes), false).await;
        self.deliver(sent)
    }

    /// Ends the stream (and its log: a resuming client gets the end too).
    pub async fn finish(&mut self, session: &mut Session) -> Result<()> {
        if let Some(Resumable { replay, stream: Some(n), .. }) = &self.resumable {
            replay.finish(*n);
        }
        if self.client_gone() {
            return Ok(());
        }
        let sent = write(session, None, true).await;
        self.deliver(sent)
    }

    /// Sends the messages of `rx` (with keepalive comments when idle) until the queue closes,
    /// `ended` turns true, or the client goes away (not an error), then ends the stream.
    pub async fn relay(
        &mut self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        rx: &mut tokio::sync::mpsc::Receiver<Value>,
        mut ended: Option<tokio::sync::watch::Receiver<bool>>,
        session_id: Option<&str>,
    ) -> Result<()> {
        let result = async {
            self.start(session, ctx, session_id).await?;
            loop {
                let over = async {
                    match ended.as_mut() {
                        Some(e) => e.changed().await.unwrap_or(()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => self.message(session, ctx, &m, session_id).await?,
                        None => break,
                    },
                    _ = over => break,
                    _ = tokio::time::sleep(KEEPALIVE) => self.raw(session, Bytes::from_static(b": keepalive\n\n")).await?,
                }
                if self.client_gone() {
                    // Stop taking messages: the next stream (or a resuming client) gets them.
                    return Ok(());
                }
            }
            self.finish(session).await
        }
        .await;
        client_gone_is_fine(result)
    }
}

fn is_client_gone(e: &pingora::Error) -> bool {
    matches!(e.etype(), pingora::ErrorType::WriteError | pingora::ErrorType::ConnectionClosed)
}

/// A client that closes its stream is the normal end of a stream, not an error to report.
pub fn client_gone_is_fine(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if is_client_gone(&e) => {
            tracing::debug!("MCP client stream closed: {e}");
            Ok(())
        }
        other => other,
    }
}

impl Default for EventStream {
    fn default() -> Self {
        Self::new()
    }
}
