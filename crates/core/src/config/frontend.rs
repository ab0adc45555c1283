//! `frontendPolicies`: settings for every downstream connection (agentgateway's
//! `LocalFrontendPolicies`). tollgate implements the HTTP/1 limits that bound what a client
//! may hold; the rest are named so that using them is a clear "not supported yet".

use serde::Deserialize;

use indexmap::IndexMap;

use super::settings::{FieldsSettings, LoggingSettings, OtlpProtocol, TracingSettings};
use super::types::{AnyValue, GoDuration, Unsupported};
use crate::telemetry::cel::Expression;

/// The `frontendPolicies` block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendPolicies {
    /// Limits and timeouts of the HTTP server.
    pub http: Option<FrontendHttp>,
    /// Defaults for TLS listeners (handshake deadline, versions, suites, ALPN).
    pub tls: Option<super::tls::FrontendTls>,
    /// TCP keepalive on client connections.
    pub tcp: Option<FrontendTcp>,
    /// Not supported yet.
    pub network_authorization: Option<Unsupported>,
    /// Not supported yet.
    pub network_ext_authz: Option<Unsupported>,
    /// PROXY protocol from a load balancer in front (alias `proxy`).
    #[serde(alias = "proxy")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Not supported yet.
    pub connect: Option<Unsupported>,
    /// Access-log fields and filter (agentgateway's newer home for `config.logging`'s).
    #[serde(alias = "logging")]
    pub access_log: Option<FrontendAccessLog>,
    /// OTLP tracing (agentgateway's newer home for `config.tracing`; the two are one setting).
    pub tracing: Option<FrontendTracing>,
}

/// `frontendPolicies.tracing`, rewritten into `config.tracing` at load.
// The `Unsupported` fields exist only to fail the load with a clear message.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendTracing {
    /// Collector `host:port` (or a URL).
    pub host: Option<String>,
    /// Not supported yet.
    pub service: Option<Unsupported>,
    /// Not supported yet.
    pub backend: Option<Unsupported>,
    /// Not supported yet.
    pub policies: Option<Unsupported>,
    /// Span attributes: name → CEL.
    pub attributes: Option<IndexMap<String, Expression>>,
    /// Not supported yet.
    pub resources: Option<Unsupported>,
    /// Default attributes to drop.
    pub remove: Option<Vec<String>>,
    /// bool, ratio 0..1 or CEL.
    pub random_sampling: Option<AnyValue>,
    /// bool, ratio or CEL: honour the client's `traceparent` sampling flag.
    pub client_sampling: Option<AnyValue>,
    /// Not supported yet.
    pub filter: Option<Unsupported>,
    /// HTTP export path (default `/v1/traces`).
    pub path: Option<String>,
    /// `grpc` (default) or `http`.
    pub protocol: Option<OtlpProtocol>,
}

/// `frontendPolicies.proxyProtocol`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// `v1`, `v2` (default) or `all`.
    pub version: Option<ProxyVersion>,
    /// `strict` (default: the header is required) or `optional`.
    pub mode: Option<ProxyMode>,
}

/// Accepted PROXY protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    /// Text headers only.
    V1,
    /// Binary headers only.
    V2,
    /// Both.
    All,
}

/// Whether the PROXY header is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// Connections without the header are closed.
    Strict,
    /// Connections without it are served with the socket's own peer.
    Optional,
}

/// `frontendPolicies.tcp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendTcp {
    /// Keepalive probes, so that a client that vanished without a FIN is noticed.
    pub keepalives: Keepalives,
}

/// TCP keepalive settings (agentgateway's `KeepaliveConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keepalives {
    /// Whether probes are sent (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Idle time before the first probe (default 3m).
    pub time: Option<GoDuration>,
    /// Time between probes (default 3m).
    pub interval: Option<GoDuration>,
    /// Unanswered probes before the connection is dropped (default 9).
    pub retries: Option<u32>,
}

fn yes() -> bool {
    true
}

/// `frontendPolicies.accessLog` (alias `logging`), moved into `config.logging` at load.
// The `Unsupported` fields exist only to fail the load with a clear message.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendAccessLog {
    /// CEL: whether a request is logged.
    pub filter: Option<Expression>,
    /// Fields to add: name → CEL.
    pub add: Option<IndexMap<String, Expression>>,
    /// Default fields to drop.
    pub remove: Option<Vec<String>>,
    /// Not supported yet.
    pub otlp: Option<Unsupported>,
    /// Not supported yet.
    pub database: Option<Unsupported>,
}

impl FrontendAccessLog {
    /// Moves the filter and fields into `config.logging` (which keeps its level and format).
    pub fn merge_into(self, logging: &mut LoggingSettings) -> Result<(), String> {
        if logging.filter.is_some() || logging.fields.is_some() {
            return Err("access-log fields are set in both config.logging and frontendPolicies.accessLog; keep one".into());
        }
        logging.filter = self.filter;
        if self.add.is_some() || self.remove.is_some() {
            logging.fields = Some(FieldsSettings { add: self.add.unwrap_or_default(), remove: self.remove.unwrap_or_default() });
        }
        Ok(())
    }
}

impl FrontendTracing {
    /// The same settings in `config.tracing`'s shape.
    pub fn into_settings(self) -> Result<TracingSettings, String> {
        let host = self.host.ok_or("frontendPolicies.tracing.host is required")?;
        let endpoint = if host.contains("://") { host } else { format!("http://{host}") };
        let fields = (self.attributes.is_some() || self.remove.is_some())
            .then(|| FieldsSettings { add: self.attributes.unwrap_or_default(), remove: self.remove.unwrap_or_default() });
        Ok(TracingSettings {
            otlp_endpoint: Some(endpoint),
            headers: None,
            otlp_protocol: self.protocol,
            fields,
            random_sampling: self.random_sampling,
            client_sampling: self.client_sampling,
            path: self.path,
        })
    }
}

/// `frontendPolicies.http`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendHttp {
    /// Largest request body the gateway buffers (LLM requests); default 2 MiB.
    pub max_buffer_size: Option<usize>,
    /// Most header lines an HTTP/1 request may have (default 100, as agentgateway's hyper).
    pub http1_max_headers: Option<usize>,
    /// How long an idle HTTP/1 connection may wait for its next request (default 10m).
    pub http1_idle_timeout: Option<GoDuration>,
    /// How HTTP/1 header names are written: `lowercase` (agentgateway's default) is what
    /// tollgate does; `preserve` is refused as not supported yet.
    pub http1_header_case: Option<Http1HeaderCase>,
    /// Not supported yet.
    pub http2_window_size: Option<Unsupported>,
    /// Not supported yet.
    pub http2_connection_window_size: Option<Unsupported>,
    /// Not supported yet.
    pub http2_frame_size: Option<Unsupported>,
    /// Not supported yet.
    pub http2_max_header_size: Option<Unsupported>,
    /// Not supported yet.
    pub http2_keepalive_interval: Option<Unsupported>,
    /// Not supported yet.
    pub http2_keepalive_timeout: Option<Unsupported>,
    /// Longest a client connection lives: HTTP/1 closes after the request in progress
    /// (`Connection: close`), HTTP/2 sends GOAWAY and finishes its streams.
    pub max_connection_duration: Option<GoDuration>,
}

super::types::one_supported_value! {
    /// `frontendPolicies.http.http1HeaderCase`. Only `lowercase`: tollgate writes every HTTP/1
    /// header name in lowercase (parsed heads keep no case map), as agentgateway does by
    /// default; `preserve` would need the received case kept and replayed.
    Http1HeaderCase, "http1HeaderCase", "lowercase", ["preserve"]
}
