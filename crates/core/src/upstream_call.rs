//! HTTP exchanges the gateway makes itself (MCP and OpenAPI targets, token endpoints), through
//! Pingora's connector, so they share its connection pools, TLS and timeouts with the rest of
//! the gateway (no second client stack). A response is read as a stream of chunks; a fully
//! read one returns its connection to the pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;

use crate::ctx::{ConnectPolicy, TlsPlan, UpstreamPlan};
use crate::proxy::peer::build_peer;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The upstream did not answer in time.
    Timeout,
    /// The upstream could not be reached or answered badly.
    Upstream(String),
    /// The request could not be built.
    Internal(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("the upstream did not answer in time"),
            CallError::Upstream(m) | CallError::Internal(m) => f.write_str(m),
        }
    }
}

/// How one exchange is made: forwarded headers, TLS, and its time limits.
#[derive(Debug, Clone)]
pub struct CallOpts<'a> {
    /// Headers sent with the request (the request's own win).
    pub headers: &'a HeaderMap,
    /// TLS for https origins; `None` means system roots.
    pub tls: Option<Arc<TlsPlan>>,
    /// Connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Pooling and TCP keepalive.
    pub connect: ConnectPolicy,
    /// Longest wait for one step (connecting, the response header).
    pub wait: Duration,
    /// When the exchange must be over, whatever `wait` says (the client request's deadline).
    pub deadline: Option<Instant>,
}

impl CallOpts<'_> {
    /// The wait for the next step: `wait`, cut short by the deadline.
    fn step(&self) -> Duration {
        self.deadline.map_or(self.wait, |d| left(self.wait, d))
    }
}

/// `wait`, cut short by `until`.
pub fn left(wait: Duration, until: Instant) -> Duration {
    wait.min(until.saturating_duration_since(Instant::now()))
}

/// How long an idle pooled connection to a target is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The connector the gateway's own exchanges share.
pub struct HttpClient {
    connector: Connector,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient { connector: Connector::new(None) }
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

/// An HTTP server: host, port, TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `https`.
    pub tls: bool,
}

impl Origin {
    /// `host[:port]` as the Host header (the port only when not the scheme's default).
    /// (Built by hand: it is made for every call, and `format!` costs ~800 instructions.)
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let bracketed = self.host.contains(':');
        let mut out = String::with_capacity(self.host.len() + 8);
        if bracketed {
            out.push('[');
        }
        out.push_str(&self.host);
        if bracketed {
            out.push(']');
        }
        if self.port != default_port {
            out.push(':');
            out.push_str(itoa::Buffer::new().format(self.port));
        }
        out
    }
}

/// A response being read.
pub struct Response {
    session: Option<HttpSession>,
    peer: Box<HttpPeer>,
    client: Arc<HttpClient>,
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
}

impl Response {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the body is an event stream.
    pub fn is_sse(&self) -> bool {
        self.header("content-type").is_some_and(|c| c.starts_with("text/event-stream"))
    }

    /// The next body chunk; `None` at the end (the connection then goes back to the pool).
    /// `wait` bounds the time until the chunk arrives (`None`: unbounded, for server streams).
    pub async fn chunk(&mut self, wait: Option<Duration>) -> Result<Option<Bytes>, CallError> {
        let Some(session) = self.session.as_mut() else { return Ok(None) };
        let read = session.read_response_body();
        let got = match wait {
            Some(w) => tokio::time::timeout(w, read).await.map_err(|_| CallError::Timeout)?,
            None => read.await,
        };
        match got.map_err(|e| CallError::Upstream(format!("reading the response: {e}")))? {
            Some(b) => Ok(Some(b)),
            None => {
                // Boxed: the release holds the HTTP session and the pool's futures (~4.4 KiB), and
                // inline it would grow every future that awaits a chunk by that much, each of them
                // copied as it is created (the MCP path nests eight deep). One allocation per
                // response instead.
                Box::pin(self.release()).await;
                Ok(None)
            }
        }
    }

    /// The whole body, up to `limit` bytes, by `until`.
    pub async fn body(&mut self, until: Instant, limit: usize) -> Result<Bytes, CallError> {
        // A body that arrives in one piece (most answers) is that piece, not a copy of it.
        let mut first: Option<Bytes> = None;
        let mut all = BytesMut::new();
        while let Some(b) = self.chunk(Some(until.saturating_duration_since(Instant::now()))).await? {
            let had = first.as_ref().map_or(0, Bytes::len) + all.len();
            if had + b.len() > limit {
                return Err(CallError::Upstream(format!("response larger than {limit} bytes")));
            }
            match first.take() {
                None if all.is_empty() => first = Some(b),
                None => all.extend_from_slice(&b),
                Some(f) => {
                    all.reserve(f.len() + b.len());
                    all.extend_from_slice(&f);
                    all.extend_from_slice(&b);
                }
            }
        }
        Ok(first.unwrap_or_else(|| all.freeze()))
    }

    async fn release(&mut self) {
        if let Some(mut s) = self.session.take() {
            if s.response_done() {
                self.client.connector.release_http_session(s, &*self.peer, Some(POOL_IDLE)).await;
            } else {
                s.shutdown().await;
            }
        }
    }
}

/// One request to send.
pub struct Request<'a> {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: &'a str,
    /// Headers beyond the forwarded ones (these win). Names, not their text: a name given as
    /// text is parsed and checked again for each call.
    pub headers: Vec<(HeaderName, String)>,
    /// Body.
    pub body: Option<Bytes>,
}

impl HttpClient {
    /// Sends `req` to `origin` and reads the response header. A pooled connection that turns
    /// out dead is retried once on a fresh one.
    pub async fn send(self: &Arc<Self>, cc: &CallOpts<'_>, origin: &Origin, req: &Request<'_>) -> Result<Response, CallError> {
        let plan = UpstreamPlan {
            host: origin.host.clone(),
            port: origin.port,
            tls: origin.tls.then(|| cc.tls.clone().unwrap_or_default()),
            connect_timeout: cc.connect_timeout,
            io_timeout: None,
            connect: cc.connect,
        };
        let authority = origin.authority();
        let peer = build_peer(&plan, Some(&authority)).await.map_err(|e| CallError::Upstream(format!("{authority}: {e}")))?;
        for attempt in 0..2 {
            let (mut session, reused) = tokio::time::timeout(cc.step(), self.connector.get_http_session(&*peer))
                .await
                .map_err(|_| CallError::Timeout)?
                .map_err(|e| CallError::Upstream(format!("connecting to {authority}: {e}")))?;
            let header = build_header(cc, &authority, req)?;
            let exchange = async {
                // The body follows at once: its first write carries the head (one system call).
                if let (HttpSession::H1(h1), Some(_)) = (&mut session, &req.body) {
                    h1.hold_request_header();
                }
                session.write_request_header(Box::new(header)).await?;
                if let Some(body) = &req.body {
                    session.write_request_body(body.clone(), true).await?;
                }
                session.finish_request_body().await?;
                // Informational answers (100 Continue) precede the real one.
                loop {
                    session.read_response_header().await?;
                    match session.response_header().map(|h| h.status.as_u16()) {
                        Some(s) if (100..200).contains(&s) && s != 101 => continue,
                        _ => return Ok::<(), pingora::BError>(()),
                    }
                }
            };
            match tokio::time::timeout(cc.step(), exchange).await {
                Err(_) => return Err(CallError::Timeout),
                // A pooled connection the target had closed: nothing was processed, try a new one.
                Ok(Err(e)) if reused && attempt == 0 && stale_connection(&e) => {
                    tracing::debug!("pooled connection to {authority} failed ({e}); retrying on a new one");
                    continue;
                }
                Ok(Err(e)) => return Err(CallError::Upstream(format!("{authority}: {e}"))),
                Ok(Ok(())) => {}
            }
            let resp = session.response_header().ok_or_else(|| CallError::Upstream(format!("{authority}: no response header")))?;
            let (status, headers) = (resp.status.as_u16(), resp.headers.clone());
            return Ok(Response { session: Some(session), peer, client: self.clone(), status, headers });
        }
        Err(CallError::Upstream(format!("{authority}: connection failed")))
    }
}

/// Whether an error on a pooled connection means the target had closed it before our request
/// (nothing processed, safe to send again): Pingora marks those "retry if reused".
fn stale_connection(e: &pingora::Error) -> bool {
    matches!(e.retry, pingora::RetryType::ReusedOnly)
        || matches!(e.etype(), pingora::ErrorType::ConnectionClosed | pingora::ErrorType::WriteError)
}

/// The request head. Names go into the header map as names: Pingora's `insert_header` takes a
/// name's text and parses it again. The head keeps no case map, so its parts are all of it
/// but the target: an origin-form one (a path) is written from the parts' URI as given; any
/// other is set again, so that it goes out as configured rather than as `/`.
fn build_header(cc: &CallOpts<'_>, authority: &str, req: &Request<'_>) -> Result<RequestHeader, CallError> {
    let bad = |e: pingora::BError| CallError::Internal(format!("building an upstream request: {e}"));
    let value = |name: &HeaderName, text: &str| HeaderValue::from_str(text).map_err(|e| CallError::Internal(format!("header {name}: {e}")));
    let head = RequestHeader::build_no_case(req.method.clone(), req.path.as_bytes(), None).map_err(bad)?;
    let mut parts = http::request::Parts::from(head);
    // The `try_` forms: a map past its size limit is an error, as Pingora's methods made it,
    // not a panic.
    let full = |_| CallError::Internal("building an upstream request: too many headers".into());
    let map = &mut parts.headers;
    map.try_reserve(cc.headers.len() + req.headers.len() + 2).map_err(full)?;
    for (name, value) in cc.headers.iter() {
        map.try_append(name.clone(), value.clone()).map_err(full)?;
    }
    map.try_insert(header::HOST, value(&header::HOST, authority)?).map_err(full)?;
    for (name, text) in &req.headers {
        map.try_insert(name.clone(), value(name, text)?).map_err(full)?;
    }
    let len = req.body.as_ref().map_or(0, Bytes::len);
    if req.body.is_some() || req.method == Method::POST {
        map.try_insert(header::CONTENT_LENGTH, HeaderValue::from(len)).map_err(full)?;
    }
    let mut head = RequestHeader::from(parts);
    if !req.path.starts_with('/') {
        head.set_raw_path(req.path.as_bytes()).map_err(bad)?;
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head as it goes on the wire: the target as given, the call's own headers over the
    /// configured ones, a length for a POST.
    #[test]
    fn the_head_carries_the_target_and_the_calls_headers() {
        let mut configured = HeaderMap::new();
        configured.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        configured.insert(header::ACCEPT, HeaderValue::from_static("text/plain"));
        let cc = CallOpts { headers: &configured, tls: None, connect_timeout: None, connect: ConnectPolicy::default(), wait: Duration::from_secs(1), deadline: None };
        let mcp_session = HeaderName::from_static("mcp-session-id");
        let req = Request {
            method: Method::POST,
            path: "/mcp/a%20b?x=1&y=%2F",
            headers: vec![(header::ACCEPT, "application/json, text/event-stream".into()), (mcp_session.clone(), "s-1".into())],
            body: Some(Bytes::from_static(b"{}")),
        };
        let head = build_header(&cc, "127.0.0.1:9", &req).unwrap();
        assert_eq!(head.raw_path(), b"/mcp/a%20b?x=1&y=%2F");
        assert_eq!(head.method, Method::POST);
        let h = &head.headers;
        assert_eq!(h.get(header::HOST).unwrap(), "127.0.0.1:9");
        assert_eq!(h.get_all(header::ACCEPT).iter().collect::<Vec<_>>(), ["application/json, text/event-stream"]);
        assert_eq!(h.get(header::AUTHORIZATION).unwrap(), "Bearer t");
        assert_eq!(h.get(mcp_session).unwrap(), "s-1");
        assert_eq!(h.get(header::CONTENT_LENGTH).unwrap(), "2");
        // A target that is not a path goes out as given, not as `/`.
        for target in ["mcp", "*", "http://127.0.0.1:9/mcp"] {
            let req = Request { method: Method::GET, path: target, headers: Vec::new(), body: None };
            let old = RequestHeader::build_no_case(Method::GET, target.as_bytes(), None).unwrap();
            assert_eq!(build_header(&cc, "h", &req).unwrap().raw_path(), old.raw_path(), "{target}");
        }
        // A value that cannot be a header value is an error naming the header, not a panic.
        let bad = Request { method: Method::GET, path: "/", headers: vec![(header::ACCEPT, "a\nb".to_string())], body: None };
        assert!(matches!(build_header(&cc, "h", &bad), Err(CallError::Internal(m)) if m.contains("accept")));
        // More headers than a header map holds: an error, not a panic.
        let many = (0..40_000).map(|i| (HeaderName::try_from(format!("x-h{i}")).unwrap(), "v".to_string())).collect();
        let huge = Request { method: Method::GET, path: "/", headers: many, body: None };
        assert!(matches!(build_header(&cc, "h", &huge), Err(CallError::Internal(m)) if m.contains("too many headers")));
    }

    #[test]
    fn authority_names_the_port_only_when_not_the_schemes_default() {
        let o = |host: &str, port, tls| Origin { host: host.into(), port, tls }.authority();
        assert_eq!(o("example.com", 80, false), "example.com");
        assert_eq!(o("example.com", 443, true), "example.com");
        assert_eq!(o("example.com", 443, false), "example.com:443");
        assert_eq!(o("127.0.0.1", 8080, false), "127.0.0.1:8080");
        assert_eq!(o("::1", 80, false), "[::1]");
        assert_eq!(o("::1", 9443, true), "[::1]:9443");
    }
}
