//! The `config:` section of agentgateway's local file: process-wide settings
//! (logging, tracing, admin/stats/readiness addresses, worker threads, sessions).
//! Fields tollgate does not implement are typed [`Unsupported`] so using them is an error.

use indexmap::IndexMap;
use serde::Deserialize;

use super::types::{AnyValue, ControlPlaneOnly, GoDuration, Unsupported};
use crate::telemetry::cel::Expression;

/// The `config:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Access-log settings (level, CEL fields, format).
    pub logging: Option<LoggingSettings>,
    /// OTLP tracing settings.
    pub tracing: Option<TracingSettings>,
    /// Prometheus metric customisation.
    pub metrics: Option<MetricsSettings>,
    /// Admin endpoint address (`ip:port`, `localhost:port` or `off`).
    pub admin_addr: Option<String>,
    /// Prometheus endpoint address.
    pub stats_addr: Option<String>,
    /// Readiness endpoint address.
    pub readiness_addr: Option<String>,
    /// Listen on IPv6 as well as IPv4 (default true).
    pub enable_ipv6: Option<bool>,
    /// Worker threads: a number or `"N%"` of the CPUs.
    pub worker_threads: Option<AnyValue>,
    /// Session id encryption key (hex, 32 bytes) for MCP sessions.
    pub session: Option<SessionSettings>,
    /// MCP settings.
    pub mcp: Option<McpSettings>,
    /// How long in-flight connections may drain on shutdown or upgrade.
    pub connection_termination_deadline: Option<GoDuration>,
    /// Minimum time to keep serving during shutdown.
    pub connection_min_termination_deadline: Option<GoDuration>,
    /// Upstream connection defaults.
    pub backend: Option<BackendSettings>,
    /// Headers treated as secrets in logs.
    pub sensitive_headers: Option<Vec<String>>,
    /// Histogram representation: `classic` (the default, and what tollgate's Prometheus
    /// endpoint serves); native histograms are not supported yet.
    pub histograms: Option<HistogramMode>,
    /// How upstream host names are resolved.
    pub dns: Option<DnsSettings>,
    /// Needs agentgateway's control plane (never on one host).
    pub local_xds_path: Option<ControlPlaneOnly>,
    /// Model prices (files, inline JSON, or inline data), over the built-in table.
    pub model_catalog: Option<Vec<crate::cost::CatalogSource>>,
    /// Not supported yet.
    pub database: Option<Unsupported>,
    /// Not supported yet.
    pub storage: Option<Unsupported>,
    /// Needs agentgateway's control plane (never on one host).
    pub ca_address: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub ca_auth_token: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub xds_address: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub xds_auth_token: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub spiffe: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub namespace: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub gateway: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub trust_domain: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub additional_trust_domains: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub skip_validate_trust_domain: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub service_account: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub cluster_id: Option<ControlPlaneOnly>,
    /// Needs agentgateway's control plane (never on one host).
    pub network: Option<ControlPlaneOnly>,
    /// Not supported yet.
    pub standard_attributes: Option<Unsupported>,
    /// Not supported yet.
    pub custom_functions: Option<Unsupported>,
    /// Needs agentgateway's control plane (never on one host).
    pub hbone: Option<ControlPlaneOnly>,
}

super::types::one_supported_value! {
    /// `config.histograms`: only classic buckets (agentgateway's default).
    HistogramMode, "histograms", "classic", ["native", "both"]
}

/// `config.logging`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggingSettings {
    /// Log level / filter directives (`info`, `debug`, `info,tollgate=trace`).
    pub level: Option<LevelSpec>,
    /// CEL expression deciding whether a request is logged.
    pub filter: Option<Expression>,
    /// Access-log fields to add (name → CEL) or remove.
    pub fields: Option<FieldsSettings>,
    /// `text` or `json`.
    pub format: Option<LogFormat>,
    /// Not supported yet.
    pub database: Option<Unsupported>,
}

/// A level given as one string or a list of directives.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LevelSpec {
    /// `"info,pingora=warn"`.
    One(String),
    /// `["info", "pingora=warn"]`.
    Many(Vec<String>),
}

impl LevelSpec {
    /// The directives as one `EnvFilter` string.
    pub fn directives(&self) -> String {
        match self {
            LevelSpec::One(s) => s.clone(),
            LevelSpec::Many(v) => v.join(","),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable key=value lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `fields: {add, remove}` for logs, traces and metrics.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldsSettings {
    /// Field name → CEL expression (compiled at load).
    #[serde(default)]
    pub add: IndexMap<String, Expression>,
    /// Default fields to drop.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `config.tracing`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingSettings {
    /// Collector URL, e.g. `http://collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// Extra headers sent to the collector.
    pub headers: Option<IndexMap<String, String>>,
    /// `grpc` (default) or `http`.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Span attributes (name → CEL).
    pub fields: Option<FieldsSettings>,
    /// bool, ratio 0..1 or CEL.
    pub random_sampling: Option<AnyValue>,
    /// bool, ratio or CEL: honour the client's `traceparent` sampling flag.
    pub client_sampling: Option<AnyValue>,
    /// HTTP export path (default `/v1/traces`).
    pub path: Option<String>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over gRPC.
    Grpc,
    /// OTLP over HTTP (protobuf).
    Http,
}

/// `config.metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsSettings {
    /// Metric names to drop.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Extra labels (name → CEL) on the request, GenAI and MCP metrics.
    pub fields: Option<MetricFields>,
}

/// `config.metrics.fields`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricFields {
    /// Label name → CEL expression (compiled at load); names Prometheus accepts that do not
    /// shadow a label tollgate sets.
    #[serde(default, deserialize_with = "label_fields")]
    pub add: IndexMap<String, Expression>,
}

fn label_fields<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IndexMap<String, Expression>, D::Error> {
    let add = IndexMap::<String, Expression>::deserialize(d)?;
    for name in add.keys() {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__");
        if !valid {
            return Err(serde::de::Error::custom(format!("`{name}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")));
        }
        if crate::telemetry::metrics::BUILT_IN_LABELS.contains(&name.as_str()) {
            return Err(serde::de::Error::custom(format!("`{name}` is a label tollgate already sets")));
        }
    }
    Ok(add)
}

/// `config.session`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSettings {
    /// 32-byte hex key for AES-256-GCM session ids.
    pub key: Option<String>,
}

/// `config.mcp`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpSettings {
    /// Idle session lifetime (default 30m).
    pub session_ttl: Option<GoDuration>,
}

/// `config.backend`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendSettings {
    /// TCP connect timeout (default 10s).
    pub connect_timeout: Option<GoDuration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Option<GoDuration>,
    /// TCP keepalive on upstream connections (default on: 3m / 3m / 9).
    pub keepalives: Option<super::frontend::Keepalives>,
    /// Not supported yet.
    pub pool_max_size: Option<Unsupported>,
}

/// `config.dns`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsSettings {
    /// Which address families upstream names resolve to (default `Auto`).
    pub lookup_family: Option<LookupFamily>,
    /// Not supported yet: tollgate uses the system resolver as configured.
    pub edns0: Option<Unsupported>,
}

/// `config.dns.lookupFamily`, as agentgateway names the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum LookupFamily {
    /// IPv4 only when `enableIpv6: false`, else both (IPv4 first).
    #[default]
    Auto,
    /// Both families (IPv4 first).
    All,
    /// IPv4 when there is one, else IPv6.
    V4Preferred,
    /// IPv4 addresses only.
    V4Only,
    /// IPv6 addresses only.
    V6Only,
}
