//! agentgateway's local config file, binds dialect: `config` plus
//! `binds → listeners → routes → policies / backends`. Strict: unknown keys are errors.

use indexmap::IndexMap;
use serde::de;
use serde::Deserialize;

use super::backend::LocalBackend;
use super::frontend::FrontendPolicies;
use super::policies::Policies;
use super::settings::Settings;
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
    /// Not supported yet.
    pub policies: Option<Unsupported>,
    /// Not supported yet.
    pub workloads: Option<Unsupported>,
    /// Not supported yet.
    pub services: Option<Unsupported>,
    /// Not supported yet.
    pub backends: Option<Unsupported>,
    /// Not supported yet.
    pub route_groups: Option<Unsupported>,
    /// Not supported yet (use `binds`).
    pub gateways: Option<Unsupported>,
    /// Not supported yet (use `binds`).
    pub routes: Option<Unsupported>,
    /// Not supported yet.
    pub tcp_routes: Option<Unsupported>,
    /// Not supported yet (use `binds` with an `ai` backend).
    pub llm: Option<Unsupported>,
    /// Not supported yet (use `binds` with an `mcp` backend).
    pub mcp: Option<Unsupported>,
    /// Not supported yet.
    pub ui: Option<Unsupported>,
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
    /// Only `HTTP` is supported yet.
    pub protocol: Option<ListenerProtocol>,
    /// HTTP routes.
    #[serde(default)]
    pub routes: Vec<LocalRoute>,
    /// Not supported yet.
    pub tls: Option<Unsupported>,
    /// Not supported yet.
    pub tcp_routes: Option<Unsupported>,
    /// Not supported yet.
    pub policies: Option<Unsupported>,
}

/// Listener protocol; only plain HTTP for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerProtocol;

impl<'de> Deserialize<'de> for ListenerProtocol {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        only_value(d, "listener protocol", "HTTP").map(|_| ListenerProtocol)
    }
}

/// One route: what it matches, the policies it applies, where it sends traffic.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRoute {
    /// Name, for logs and metrics.
    pub name: Option<String>,
    /// Namespace, for logs.
    pub namespace: Option<String>,
    /// Rule name, for logs.
    pub rule_name: Option<String>,
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
