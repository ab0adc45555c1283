//! agentgateway's local config file, binds dialect: `config` plus
//! `binds → listeners → routes → policies / backends`. Strict: unknown keys are errors.

use indexmap::IndexMap;
use serde::de;
use serde::Deserialize;

use super::backend::LocalBackend;
use super::policies::ListenerPolicies;
use super::dialects::{GatewayRefs, LocalGateway, SimpleMcp};
use super::frontend::FrontendPolicies;
use super::policies::Policies;
use super::settings::Settings;
use super::tls::TlsServerConfig;
use super::types::Unsupported;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalConfig {
    /// Process-wide settings.
    #[serde(default)]
    pub config: Settings,
    /// Listening ports and what they serve.
    #[serde(default)]
    pub binds: Vec<LocalBind>,
    /// Limits and timeouts for every downstream connection.
    #[serde(default)]
    pub frontend_policies: FrontendPolicies,
    /// Policies attached by name to gateways, listeners, routes and backends.
    #[serde(default)]
    pub policies: Vec<super::targets::LocalPolicy>,
    /// Not supported yet.
    pub workloads: Option<Unsupported>,
    /// Not supported yet.
    pub services: Option<Unsupported>,
    /// Named backends that routes refer to with `backend: name`.
    #[serde(default)]
    pub backends: Vec<LocalBackend>,
    /// Routes that routes delegate to with a `routeGroup: name` backend.
    #[serde(default)]
    pub route_groups: Vec<LocalRouteGroup>,
    /// Ports and listeners that top-level routes attach to (rewritten into `binds`).
    #[serde(default)]
    pub gateways: IndexMap<String, LocalGateway>,
    /// HTTP routes attached to gateways by `gateways:` references.
    #[serde(default)]
    pub routes: Vec<LocalRoute>,
    /// TCP routes attached to gateways by `gateways:` references.
    #[serde(default)]
    pub tcp_routes: Vec<LocalTcpRoute>,
    /// Models served on one endpoint, routed by the request's model.
    pub llm: Option<super::llm::LocalLlm>,
    /// The MCP shortcut (rewritten into `binds`).
    pub mcp: Option<SimpleMcp>,
    /// Not supported yet.
    pub ui: Option<Unsupported>,
    /// What loaded but deserves the operator's eye (e.g. a policy target that matches
    /// nothing); logged at start and on reload, printed by `--validate-only`.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `routeGroups[]`: routes matched, against the whole request, when a route's
/// `routeGroup: name` backend is chosen.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRouteGroup {
    /// What `routeGroup:` backends refer to.
    pub name: String,
    /// The group's routes.
    pub routes: Vec<LocalRoute>,
}

/// One listening port.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalBind {
    /// TCP port, listened on all addresses.
    pub port: u16,
    /// Virtual hosts on this port.
    pub listeners: Vec<LocalListener>,
    /// Only `direct` is supported.
    pub tunnel_protocol: Option<TunnelProtocol>,
    /// Not supported yet.
    pub mode: Option<Unsupported>,
}

/// `tunnelProtocol`: tollgate serves plain connections only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelProtocol;

/// Accepts exactly `only`; any other agentgateway value is "not supported yet".
fn only_value<'de, D: de::Deserializer<'de>>(d: D, what: &str, only: &str) -> Result<(), D::Error> {
    match String::deserialize(d)?.as_str() {
        v if v == only => Ok(()),
        other => Err(de::Error::custom(format!("{what} `{other}` is not supported yet (only `{only}`)"))),
    }
}

impl<'de> Deserialize<'de> for TunnelProtocol {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        only_value(d, "tunnel protocol", "direct").map(|_| TunnelProtocol)
    }
}

/// A virtual host on a bind.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalListener {
    /// Name, for logs.
    pub name: Option<String>,
    /// Namespace, for logs.
    pub namespace: Option<String>,
    /// Host this listener answers (`*.example.com` allowed); none = any.
    pub hostname: Option<String>,
    /// `HTTP` (default), `HTTPS`, `TLS` or `TCP`.
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// HTTP routes (`HTTP` and `HTTPS` listeners).
    pub routes: Option<Vec<LocalRoute>>,
    /// Server TLS (`HTTPS`; `TLS` to terminate rather than pass through).
    pub tls: Option<TlsServerConfig>,
    /// TCP routes (`TLS` and `TCP` listeners).
    pub tcp_routes: Option<Vec<LocalTcpRoute>>,
    /// Gateway-level policies: every request on this listener, before route selection.
    #[serde(default)]
    pub policies: ListenerPolicies,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerProtocol {
    /// Plain HTTP/1 and h2c.
    #[default]
    Http,
    /// HTTP over TLS terminated here.
    Https,
    /// TLS routed by SNI: passed through, or terminated when the listener has `tls`.
    Tls,
    /// Plain TCP.
    Tcp,
}

impl<'de> Deserialize<'de> for ListenerProtocol {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "HTTP" => Ok(ListenerProtocol::Http),
            "HTTPS" => Ok(ListenerProtocol::Https),
            "TLS" => Ok(ListenerProtocol::Tls),
            "TCP" => Ok(ListenerProtocol::Tcp),
            "HBONE" => Err(de::Error::custom("listener protocol `HBONE` needs agentgateway's mesh; not supported")),
            other => Err(de::Error::unknown_variant(other, &["HTTP", "HTTPS", "TLS", "TCP"])),
        }
    }
}

/// A TCP route: connections (on a `TLS` listener, those whose SNI matches `hostnames`) go to
/// one of its backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalTcpRoute {
    /// Name, for logs.
    pub name: Option<String>,
    /// Namespace, for logs.
    pub namespace: Option<String>,
    /// Rule name, for logs.
    pub rule_name: Option<String>,
    /// Top-level TCP routes only: the gateways it attaches to.
    pub gateways: Option<GatewayRefs>,
    /// SNI names this route takes (`*.example.com` allowed); empty = any.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Not supported yet (`backendTLS` re-encryption).
    pub policies: Option<Unsupported>,
    /// Weighted backends.
    pub backends: Vec<LocalTcpBackend>,
}

/// A TCP route's backend.
// The `Unsupported` fields exist only to fail the load with a clear message.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalTcpBackend {
    /// Relative share of connections (default 1).
    pub weight: Option<u32>,
    /// `host:port` to connect to.
    pub host: Option<String>,
    /// Not supported yet.
    pub service: Option<Unsupported>,
    /// Not supported yet.
    pub backend: Option<Unsupported>,
    /// Not supported yet.
    pub dynamic: Option<Unsupported>,
    /// Not supported yet.
    pub policies: Option<Unsupported>,
}

/// One route: what it matches, the policies it applies, where it sends traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRoute {
    /// Name, for logs and metrics.
    pub name: Option<String>,
    /// Namespace, for logs.
    pub namespace: Option<String>,
    /// Rule name, for logs.
    pub rule_name: Option<String>,
    /// Top-level routes only: the gateways (`name` or `name/listener`) it attaches to.
    pub gateways: Option<GatewayRefs>,
    /// Hosts this route answers; empty = any.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// OR-ed matches; default is every path.
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    /// Route policies.
    #[serde(default)]
    pub policies: Policies,
    /// Backends, weighted.
    #[serde(default)]
    pub backends: Vec<LocalBackend>,
}

/// One match; its fields are AND-ed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// Path condition.
    pub path: Option<PathMatch>,
    /// HTTP method.
    pub method: Option<String>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<ValueMatchNamed>,
    /// Query-parameter conditions.
    #[serde(default)]
    pub query: Vec<ValueMatchNamed>,
}

/// `{exact}`, `{pathPrefix}` or `{regex}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this, on a segment boundary.
    Prefix(String),
    /// The whole path matches this regex.
    Regex(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathMatchRaw {
    exact: Option<String>,
    path_prefix: Option<String>,
    regex: Option<String>,
}

impl<'de> Deserialize<'de> for PathMatch {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = PathMatchRaw::deserialize(d)?;
        match (raw.exact, raw.path_prefix, raw.regex) {
            (Some(e), None, None) => Ok(PathMatch::Exact(e)),
            (None, Some(p), None) => Ok(PathMatch::Prefix(p)),
            (None, None, Some(r)) => {
                regex::Regex::new(&r).map_err(|e| de::Error::custom(format!("invalid regex: {e}")))?;
                Ok(PathMatch::Regex(r))
            }
            _ => Err(de::Error::custom("path match needs exactly one of exact, pathPrefix, regex")),
        }
    }
}

/// A named header or query condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatchNamed {
    /// Header or parameter name.
    pub name: String,
    /// The value condition.
    pub value: ValueMatch,
}

/// `{exact}` or `{regex}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Equal to this.
    Exact(String),
    /// Wholly matches this regex.
    Regex(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValueMatchRaw {
    exact: Option<String>,
    regex: Option<String>,
}

impl<'de> Deserialize<'de> for ValueMatch {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = ValueMatchRaw::deserialize(d)?;
        match (raw.exact, raw.regex) {
            (Some(e), None) => Ok(ValueMatch::Exact(e)),
            (None, Some(r)) => {
                regex::Regex::new(&r).map_err(|e| de::Error::custom(format!("invalid regex: {e}")))?;
                Ok(ValueMatch::Regex(r))
            }
            _ => Err(de::Error::custom("value match needs exactly one of exact, regex")),
        }
    }
}

/// Header name → value maps keep the file's order.
pub type HeaderMapConfig = IndexMap<String, String>;
