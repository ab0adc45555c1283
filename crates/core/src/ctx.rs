//! The per-request context: everything the hooks of one request share, from the matched
//! route to the upstream plan and the LLM accounting. Filters read and write it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::llm::LlmExchange;
use crate::runtime::{CompiledBackend, CompiledRoute, FilterChain};

/// Where and how to connect upstream; filled in by the backend and request filters,
/// turned into a Pingora `HttpPeer` in `upstream_peer`.
#[derive(Debug, Clone, Default)]
pub struct UpstreamPlan {
    /// Host name or IP literal to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// TLS towards the upstream, if any.
    pub tls: Option<Arc<TlsPlan>>,
    /// TCP (+TLS) connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Longest wait for any single read or write on the upstream connection.
    pub io_timeout: Option<Duration>,
    /// Name resolution, pooling and TCP keepalive of upstream connections
    /// (`config.dns`, `config.backend`).
    pub connect: ConnectPolicy,
}

/// How upstream connections are made and kept: address families, idle time in the pool,
/// TCP keepalive probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// Which addresses of a resolved name may be dialled (`config.dns.lookupFamily`).
    pub families: crate::proxy::peer::Families,
    /// How long an idle connection stays pooled (`poolIdleTimeout`, default 90 s).
    pub idle: Duration,
    /// TCP keepalive probes (`keepalives`; agentgateway's default: on, 3m / 3m / 9).
    pub keepalive: Option<crate::runtime::TcpKeepalive>,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        let three_minutes = Duration::from_secs(180);
        ConnectPolicy {
            families: crate::proxy::peer::Families::V4First,
            idle: Duration::from_secs(90),
            keepalive: Some(crate::runtime::TcpKeepalive { idle: three_minutes, interval: three_minutes, count: 9 }),
        }
    }
}

/// Upstream TLS settings (from `backendTLS` or a provider default).
#[derive(Debug, Clone, Default)]
pub struct TlsPlan {
    /// SNI and verification name; when unset the upstream `Host` (or the target host) is used.
    pub sni: Option<String>,
    /// Trusted roots; `None` means the system roots.
    pub roots: Option<Arc<pingora::protocols::tls::CaType>>,
    /// Client certificate for mutual TLS.
    pub client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
    /// Skip certificate verification entirely.
    pub insecure: bool,
    /// Verify the chain but not the host name.
    pub insecure_host: bool,
}

/// One MCP message through the gateway, for logs, traces and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpExchange {
    /// JSON-RPC method (`tools/call`, `initialize`...), or the HTTP verb's role (`stream`, `delete`).
    pub method: String,
    /// The target it went to, when one target owns it.
    pub target: Option<String>,
    /// `tool`, `prompt` or `resource`.
    pub resource_type: Option<&'static str>,
    /// Tool or prompt name, or resource URI, as the target knows it.
    pub resource: Option<String>,
    /// The client's session id.
    pub session_id: Option<String>,
    /// JSON-RPC error code and message of the answer, if it was an error.
    pub error: Option<(i64, String)>,
}

/// How errors are rendered to this caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorFormat {
    /// `{"error": {"message", "type", "code"}}` (OpenAI's shape; also the generic default).
    #[default]
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}` (Anthropic's Messages API).
    Anthropic,
    /// `{"error": {"code", "message", "status"}}` (Google's APIs).
    Google,
    /// A JSON-RPC error object (`{"jsonrpc": "2.0", "id": null, "error": {...}}`), for MCP routes.
    JsonRpc,
}

/// What the configured telemetry needs a request to keep (decided once, at config load,
/// from the CEL expressions), so unused fields cost nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureNeeds {
    /// The client's request headers, before any policy changed them.
    pub request_headers: bool,
    /// The client's request body, before any rewrite.
    pub request_body: bool,
    /// The response headers sent to the client.
    pub response_headers: bool,
    /// The response body sent to the client.
    pub response_body: bool,
    /// The LLM prompt messages.
    pub llm_prompt: bool,
    /// The LLM completion text.
    pub llm_completion: bool,
}

/// What the request kept for telemetry, bounded by [`RequestCtx::max_buffer`].
#[derive(Debug, Default)]
pub struct Captured {
    /// Method, URI and Host as the client sent them.
    pub method: http::Method,
    /// The URI as the client sent it.
    pub uri: http::Uri,
    /// The HTTP version the client used.
    pub version: http::Version,
    /// The client's headers, when needed.
    pub request_headers: Option<http::HeaderMap>,
    /// The client's body, when needed.
    pub request_body: Option<Vec<u8>>,
    /// The response headers, when needed.
    pub response_headers: Option<http::HeaderMap>,
    /// The response body, when needed.
    pub response_body: Option<Vec<u8>>,
}

/// State shared by every hook of one request.
pub struct RequestCtx {
    /// When the request arrived.
    pub started: Instant,
    /// The matched route.
    pub route: Option<Arc<CompiledRoute>>,
    /// The chosen backend.
    pub backend: Option<Arc<CompiledBackend>>,
    /// The filters that apply: the backend's chain, or the route's when it has no backend.
    pub chain: Option<Arc<FilterChain>>,
    /// Path as received, before any rewrite.
    pub original_path: String,
    /// The path prefix the route matched on, for `urlRewrite.path.prefix`.
    pub matched_prefix: Option<String>,
    /// Where the request goes.
    pub upstream: UpstreamPlan,
    /// Overall deadline (from `timeout.requestTimeout`); set it with [`RequestCtx::set_deadline`].
    pub deadline: Option<Instant>,
    /// What the client's TLS handshake established (SNI, client certificate); TLS ports only.
    pub client_tls: Option<Arc<crate::runtime::tls::ClientTls>>,
    /// The client connection's deadline slot (HTTP/1): reads fail once the deadline passes.
    pub conn_deadline: Option<Arc<crate::downstream::prefixed::DeadlineSlot>>,
    /// Largest request body the gateway will buffer.
    pub max_buffer: usize,
    /// The LLM exchange, when the backend is an LLM provider.
    pub llm: Option<LlmExchange>,
    /// The MCP message, when the backend is an MCP gateway. Boxed, as `span` is: the context
    /// lives as long as the request (an LLM stream's whole life), and most requests have neither.
    pub mcp: Option<Box<McpExchange>>,
    /// Model prices of the config the request was routed by (for `llm.cost`).
    pub model_catalog: Option<Arc<crate::cost::ModelCatalog>>,
    /// Error rendering for this caller.
    pub error_format: ErrorFormat,
    /// The API key an `apiKey` policy accepted (`apiKey.*` in CEL).
    pub api_key: Option<Arc<crate::identity::ApiKeyClaims>>,
    /// The JWT a `jwtAuth` or `mcpAuthentication` policy verified (`jwt.*` in CEL).
    pub jwt: Option<Arc<crate::identity::JwtClaims>>,
    /// The user a `basicAuth` policy accepted (`basicAuth.username` in CEL).
    pub basic_auth_user: Option<Arc<str>>,
    /// What an `extAuthz` service said about the request (`extauthz.*` in CEL).
    pub ext_authz: Option<Arc<serde_json::Value>>,
    /// What rate limits and budgets decided, for metrics.
    pub limits: Vec<crate::telemetry::limit_metrics::LimitEvent>,
    /// Status sent downstream.
    pub status: Option<u16>,
    /// The request ended because its deadline passed.
    pub timed_out: bool,
    /// Why a filter failed the request, for the client's error body (Pingora replaces an
    /// error's context with the peer address as it propagates).
    pub failure_message: Option<String>,
    /// Free slots for filters (built-in or plugin) to keep per-request state.
    pub extensions: http::Extensions,
    /// What telemetry needs captured for this request.
    pub needs: CaptureNeeds,
    /// What was captured.
    pub captured: Captured,
    /// The request's trace span, when tracing is on.
    pub span: Option<Box<crate::telemetry::traces::RequestSpan>>,
    /// Hold a 2xx response header until the first body bytes, at most this long, so a failure
    /// before them can still be retried elsewhere unseen (set per attempt by a filter that can
    /// fail over; see `vendor/README.md`).
    pub hold_response_header: Option<std::time::Duration>,
}

/// Default request-body buffer limit (agentgateway's `maxBufferSize`).
pub const DEFAULT_MAX_BUFFER: usize = 2 * 1024 * 1024;

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            started: Instant::now(),
            route: None,
            backend: None,
            chain: None,
            original_path: String::new(),
            matched_prefix: None,
            client_tls: None,
            upstream: UpstreamPlan::default(),
            deadline: None,
            conn_deadline: None,
            max_buffer: DEFAULT_MAX_BUFFER,
            llm: None,
            mcp: None,
            model_catalog: None,
            error_format: ErrorFormat::default(),
            api_key: None,
            jwt: None,
            basic_auth_user: None,
            ext_authz: None,
            limits: Vec::new(),
            status: None,
            timed_out: false,
            failure_message: None,
            extensions: http::Extensions::new(),
            needs: CaptureNeeds::default(),
            captured: Captured::default(),
            span: None,
            hold_response_header: None,
        }
    }
}

impl RequestCtx {
    /// Appends to a capture buffer without exceeding the buffer limit.
    pub fn capture_into(buf: &mut Option<Vec<u8>>, bytes: &[u8], limit: usize) {
        let b = buf.get_or_insert_with(Vec::new);
        let room = limit.saturating_sub(b.len());
        b.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Fails the request with an HTTP status and a message for the client; for body and
    /// response hooks, which cannot answer directly.
    pub fn reject(&mut self, status: u16, message: impl Into<String>) -> Box<pingora::Error> {
        let message = message.into();
        self.failure_message = Some(message.clone());
        pingora::Error::explain(pingora::ErrorType::HTTPStatus(status), message)
    }

    /// Sets the request's overall deadline: every wait of the request and the client
    /// connection itself are bounded by it.
    pub fn set_deadline(&mut self, at: Instant) {
        self.deadline = Some(at);
        if let Some(slot) = &self.conn_deadline {
            slot.set(Some(at));
        }
    }

    /// Whether the request's deadline has passed.
    pub fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Time left before the request deadline, if one is set.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }
}
