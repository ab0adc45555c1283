//! MCP's view of the gateway's own HTTP client (`tollgate_core::upstream_call`): the per-request
//! context every target exchange carries, and fetches made while the config loads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::error::McpError;
use tollgate_core::ctx::TlsPlan;
pub use tollgate_core::upstream_call::{left, CallError, CallOpts, HttpClient, Origin, Request, Response};

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

    /// Sends `req` to `origin` with this request's headers, TLS and time limits.
    pub async fn send(&self, origin: &Origin, req: &Request<'_>) -> Result<Response, McpError> {
        let opts = CallOpts { headers: &self.headers, tls: self.tls.clone(), connect_timeout: self.connect_timeout, connect: self.connect, wait: self.wait, deadline: self.deadline };
        Ok(self.client.send(&opts, origin, req).await?)
    }
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
            let req = Request { method: Method::GET, path: &path, headers: vec![(http::header::ACCEPT, "application/json, application/yaml, */*".into())], body: None };
            let mut resp = cc.send(&origin, &req).await.map_err(|e| e.to_string())?;
            if !(200..300).contains(&resp.status) {
                return Err(format!("answered HTTP {}", resp.status));
            }
            resp.body(cc.until(), LOAD_FETCH_LIMIT).await.map_err(|e| e.to_string())
        })
    });
    worker.join().map_err(|_| "the fetch panicked".to_string())?.map_err(|e| format!("fetching `{url}`: {e}"))
}
