//! HTTP exchanges with MCP and OpenAPI targets through Pingora's connector, so they share
//! its connection pools, TLS and timeouts with the rest of the gateway (no second client
//! stack). A response is read as a stream of chunks; a fully read one returns its
//! connection to the pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;

use super::error::McpError;
use tollgate_core::ctx::{TlsPlan, UpstreamPlan};
use tollgate_core::proxy::peer::build_peer;

/// How long an idle pooled connection to a target is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The connector shared by every MCP exchange of the process.
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
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What every upstream exchange of one client request carries: the headers the route's
/// policies produced, its TLS and timeouts, and the longest wait.
#[derive(Debug, Clone)]
pub struct CallCtx {
    /// Headers forwarded to targets (credentials from `backendAuth`, `requestHeaderModifier`...).
    pub headers: HeaderMap,
    /// `backendTLS` for https targets; `None` means system roots.
    pub tls: Option<Arc<TlsPlan>>,
    /// Connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Pooling and TCP keepalive of target connections.
    pub connect: tollgate_core::ctx::ConnectPolicy,
    /// Longest wait for one upstream exchange (a response, or the next event of a stream).
    pub wait: Duration,
    /// The client request's overall deadline (`timeout.requestTimeout`), if any.
    pub deadline: Option<Instant>,
    /// The shared connector.
    pub client: Arc<HttpClient>,
    /// The route's `mcpAuthorization`, if any: what this request may see and use.
    pub access: Option<crate::mcp_authorization::McpAccess>,
}

impl CallCtx {
    /// When one exchange must be over: the request's deadline, else `wait` from now.
    pub fn until(&self) -> Instant {
        self.deadline.unwrap_or_else(|| Instant::now() + self.wait)
    }

    /// The wait for the next step: `wait`, cut short by the deadline.
    pub fn step(&self) -> Duration {
        left(self.wait, self.until())
    }
}

/// `wait`, cut short by `until`.
pub fn left(wait: Duration, until: Instant) -> Duration {
    wait.min(until.saturating_duration_since(Instant::now()))
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
    pub async fn chunk(&mut self, wait: Option<Duration>) -> Result<Option<Bytes>, McpError> {
        let Some(session) = self.session.as_mut() else { return Ok(None) };
        let read = session.read_response_body();
        let got = match wait {
            Some(w) => tokio::time::timeout(w, read).await.map_err(|_| McpError::Timeout)?,
            None => read.await,
        };
        match got.map_err(|e| McpError::Upstream(format!("reading the response: {e}")))? {
            Some(b) => Ok(Some(b)),
            None => {
                self.release().await;
                Ok(None)
            }
        }
    }

    /// The whole body, up to `limit` bytes, by `until`.
    pub async fn body(&mut self, until: Instant, limit: usize) -> Result<Bytes, McpError> {
        let mut all = BytesMut::new();
        while let Some(b) = self.chunk(Some(until.saturating_duration_since(Instant::now()))).await? {
            if all.len() + b.len() > limit {
                return Err(McpError::Upstream(format!("response larger than {limit} bytes")));
            }
            all.extend_from_slice(&b);
        }
        Ok(all.freeze())
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
    /// Headers beyond the forwarded ones (these win).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Option<Bytes>,
}

impl HttpClient {
    /// Sends `req` to `origin` and reads the response header. A pooled connection that turns
    /// out dead is retried once on a fresh one.
    pub async fn send(self: &Arc<Self>, cc: &CallCtx, origin: &Origin, req: &Request<'_>) -> Result<Response, McpError> {
        let plan = UpstreamPlan {
            host: origin.host.clone(),
            port: origin.port,
            tls: origin.tls.then(|| cc.tls.clone().unwrap_or_default()),
            connect_timeout: cc.connect_timeout,
            io_timeout: None,
            connect: cc.connect,
        };
        let authority = origin.authority();
        let peer = build_peer(&plan, Some(&authority)).await.map_err(|e| McpError::Upstream(format!("{authority}: {e}")))?;
        for attempt in 0..2 {
            let (mut session, reused) = tokio::time::timeout(cc.step(), self.connector.get_http_session(&*peer))
                .await
                .map_err(|_| McpError::Timeout)?
                .map_err(|e| McpError::Upstream(format!("connecting to {authority}: {e}")))?;
            let header = build_header(cc, &authority, req)?;
            let exchange = async {
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
                Err(_) => return Err(McpError::Timeout),
                // A pooled connection the target had closed: nothing was processed, try a new one.
                Ok(Err(e)) if reused && attempt == 0 && stale_connection(&e) => {
                    log::debug!("pooled connection to {authority} failed ({e}); retrying on a new one");
                    continue;
                }
                Ok(Err(e)) => return Err(McpError::Upstream(format!("{authority}: {e}"))),
                Ok(Ok(())) => {}
            }
            let resp = session.response_header().ok_or_else(|| McpError::Upstream(format!("{authority}: no response header")))?;
            let (status, headers) = (resp.status.as_u16(), resp.headers.clone());
            return Ok(Response { session: Some(session), peer, client: self.clone(), status, headers });
        }
        Err(McpError::Upstream(format!("{authority}: connection failed")))
    }
}

/// Whether an error on a pooled connection means the target had closed it before our request
/// (nothing processed, safe to send again): Pingora marks those "retry if reused".
fn stale_connection(e: &pingora::Error) -> bool {
    matches!(e.retry, pingora::RetryType::ReusedOnly)
        || matches!(e.etype(), pingora::ErrorType::ConnectionClosed | pingora::ErrorType::WriteError)
}

fn build_header(cc: &CallCtx, authority: &str, req: &Request<'_>) -> Result<RequestHeader, McpError> {
    let bad = |e: pingora::BError| McpError::Internal(format!("building an upstream request: {e}"));
    let mut h = RequestHeader::build(req.method.clone(), req.path.as_bytes(), Some(cc.headers.len() + req.headers.len() + 2)).map_err(bad)?;
    for (name, value) in cc.headers.iter() {
        h.append_header(name.clone(), value.clone()).map_err(bad)?;
    }
    h.insert_header(http::header::HOST, authority).map_err(bad)?;
    for (name, value) in &req.headers {
        let v = HeaderValue::from_str(value).map_err(|e| McpError::Internal(format!("header {name}: {e}")))?;
        h.insert_header(*name, v).map_err(bad)?;
    }
    let len = req.body.as_ref().map_or(0, Bytes::len);
    if req.body.is_some() || req.method == Method::POST {
        h.insert_header(http::header::CONTENT_LENGTH, len.to_string()).map_err(bad)?;
    }
    Ok(h)
}

/// Longest wait for a document fetched while the config loads (an OpenAPI `schema.url`).
pub const LOAD_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest document fetched while the config loads.
pub const LOAD_FETCH_LIMIT: usize = 16 << 20;

/// Fetches `url` (GET, http or https with the system roots) for the config loader, which is
/// synchronous and may run inside the server's runtime: on a thread of its own with a
/// runtime of its own, through the same connector code as every MCP exchange, bounded by
/// [`LOAD_FETCH_TIMEOUT`] and [`LOAD_FETCH_LIMIT`]. Anything but a 2xx is an error.
pub fn fetch_for_load(url: &str) -> Result<Bytes, String> {
    let (origin, path) = super::target::parse_url(url)?;
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let cc = CallCtx {
                headers: HeaderMap::new(),
                tls: None,
                connect_timeout: Some(LOAD_FETCH_TIMEOUT),
                connect: tollgate_core::ctx::ConnectPolicy::default(),
                wait: LOAD_FETCH_TIMEOUT,
                deadline: Some(Instant::now() + LOAD_FETCH_TIMEOUT),
                client: Arc::new(HttpClient::default()),
                access: None,
            };
            let req = Request { method: Method::GET, path: &path, headers: vec![("accept", "application/json, application/yaml, */*".into())], body: None };
            let mut resp = cc.client.send(&cc, &origin, &req).await.map_err(|e| e.to_string())?;
            if !(200..300).contains(&resp.status) {
                return Err(format!("answered HTTP {}", resp.status));
            }
            resp.body(cc.until(), LOAD_FETCH_LIMIT).await.map_err(|e| e.to_string())
        })
    });
    worker.join().map_err(|_| "the fetch panicked".to_string())?.map_err(|e| format!("fetching `{url}`: {e}"))
}
