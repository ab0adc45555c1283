//! `frontendPolicies`: settings for every downstream connection (agentgateway's
//! `LocalFrontendPolicies`). tollgate implements the HTTP/1 limits that bound what a client
//! may hold; the rest are named so that using them is a clear "not supported yet".

use serde::Deserialize;

use super::types::{GoDuration, Unsupported};

/// The `frontendPolicies` block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendPolicies {
    /// Limits and timeouts of the HTTP server.
    pub http: Option<FrontendHttp>,
    /// Not supported yet (downstream TLS arrives with HTTPS listeners).
    pub tls: Option<Unsupported>,
    /// Not supported yet.
    pub tcp: Option<Unsupported>,
    /// Not supported yet.
    pub network_authorization: Option<Unsupported>,
    /// Not supported yet.
    pub network_ext_authz: Option<Unsupported>,
    /// Not supported yet.
    pub proxy: Option<Unsupported>,
    /// Not supported yet.
    pub proxy_protocol: Option<Unsupported>,
    /// Not supported yet.
    pub connect: Option<Unsupported>,
    /// Not supported yet (use `config.logging`).
    pub access_log: Option<Unsupported>,
    /// Not supported yet (use `config.logging`).
    pub logging: Option<Unsupported>,
    /// Not supported yet (use `config.tracing`).
    pub tracing: Option<Unsupported>,
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
    /// Not supported yet.
    pub http1_header_case: Option<Unsupported>,
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
    /// Not supported yet.
    pub max_connection_duration: Option<Unsupported>,
}
