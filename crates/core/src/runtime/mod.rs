//! Compiled runtime tables: the loaded config turned into immutable structures the
//! proxy reads on every request (binds → listeners → route tables → backends with
//! their filter chains). A reload builds a new [`Gateway`] and swaps it in whole.

use crate::label::LabelText;
use std::sync::Arc;

use crate::config::backend::{split_host_port, BackendKind, LocalBackend};
use crate::config::policies::{Policies, PolicyEntry};
use crate::config::LocalConfig;
use crate::filters::{BodyAccess, Filter};
use crate::router::{HostPattern, RouteTable};

pub mod ai;
pub mod ai_groups;
pub mod carry_over;
pub mod custom;
pub mod listener;
pub mod llm_router;
pub mod picker;
pub mod tls;

pub use listener::{BindTransport, CompiledListener, ListenerKind};
use picker::WeightedPicker;
pub use ai::{AiTarget, AzurePaths, VertexTarget};
use ai::{ai_target, compile_ai_groups, default_ai_policy};

/// Everything the proxy needs to serve, for one version of the config.
#[derive(Debug)]
pub struct Gateway {
    /// One entry per listening port.
    pub binds: Vec<Arc<CompiledBind>>,
    /// Upstream connect timeout (`config.backend.connectTimeout`, default 10 s).
    pub connect_timeout: std::time::Duration,
    /// Client-side HTTP limits (`frontendPolicies.http`).
    pub frontend: FrontendHttp,
    /// Longest a TLS client may take to finish its handshake (`frontendPolicies.tls`).
    pub tls_handshake_timeout: std::time::Duration,
    /// TCP keepalive for client connections (`frontendPolicies.tcp.keepalives`), if enabled.
    pub client_keepalive: Option<TcpKeepalive>,
    /// Pooling and keepalive of upstream connections (`config.backend`).
    pub upstream_connect: crate::ctx::ConnectPolicy,
    /// PROXY protocol in front of every connection (`frontendPolicies.proxyProtocol`):
    /// the versions accepted and whether the header is required.
    pub proxy_protocol: Option<(crate::downstream::proxy_protocol::Versions, bool)>,
    /// Model prices (`config.modelCatalog` over the built-in table).
    pub model_catalog: Arc<crate::cost::ModelCatalog>,
}

impl TcpKeepalive {
    /// From agentgateway's `keepalives` block; `None` when disabled.
    pub fn from_config(k: &crate::config::frontend::Keepalives) -> Result<Option<TcpKeepalive>, String> {
        let three_minutes = std::time::Duration::from_secs(180);
        let ka = TcpKeepalive {
            idle: k.time.map_or(three_minutes, |d| d.0),
            interval: k.interval.map_or(three_minutes, |d| d.0),
            count: k.retries.unwrap_or(9),
        };
        // Linux's limits for TCP_KEEPIDLE / TCP_KEEPINTVL (seconds) and TCP_KEEPCNT.
        if ka.idle.as_secs() > 32767 || ka.interval.as_secs() > 32767 || ka.count > 127 {
            return Err("keepalives: time and interval at most 32767s, retries at most 127".into());
        }
        Ok(k.enabled.then_some(ka))
    }
}

/// TCP keepalive probe timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: std::time::Duration,
    /// Time between probes.
    pub interval: std::time::Duration,
    /// Unanswered probes before the connection is dropped.
    pub count: u32,
}

impl Gateway {
    /// The compiled bind for a port.
    pub fn bind(&self, port: u16) -> Option<&Arc<CompiledBind>> {
        self.binds.iter().find(|b| b.port == port)
    }
}

/// `frontendPolicies.http`, with agentgateway's defaults filled in.
#[derive(Debug, Clone, Copy)]
pub struct FrontendHttp {
    /// Largest request body the gateway buffers.
    pub max_buffer: usize,
    /// Most header lines in an HTTP/1 request.
    pub http1_max_headers: usize,
    /// How long a kept-alive HTTP/1 connection may wait for its next request.
    pub http1_idle_timeout: std::time::Duration,
    /// Longest a client connection may live (closed gracefully once past it).
    pub max_connection_duration: Option<std::time::Duration>,
}

impl Default for FrontendHttp {
    fn default() -> Self {
        FrontendHttp {
            max_buffer: crate::ctx::DEFAULT_MAX_BUFFER,
            http1_max_headers: 100,
            http1_idle_timeout: std::time::Duration::from_secs(600),
            max_connection_duration: None,
        }
    }
}

impl FrontendHttp {
    fn compile(c: Option<&crate::config::frontend::FrontendHttp>) -> Self {
        let d = FrontendHttp::default();
        let Some(c) = c else { return d };
        FrontendHttp {
            max_buffer: c.max_buffer_size.unwrap_or(d.max_buffer),
            http1_max_headers: c.http1_max_headers.unwrap_or(d.http1_max_headers),
            http1_idle_timeout: c.http1_idle_timeout.map_or(d.http1_idle_timeout, |t| t.0),
            max_connection_duration: c.max_connection_duration.map(|t| t.0),
        }
    }
}

/// A listening port.
#[derive(Debug)]
pub struct CompiledBind {
    /// TCP port.
    pub port: u16,
    /// How its connections start.
    pub transport: BindTransport,
    /// Virtual hosts, most specific host pattern first.
    pub listeners: Vec<CompiledListener>,
}

/// A route: its name and where it sends traffic.
#[derive(Debug)]
pub struct CompiledRoute {
    /// Name for logs (`route0` style when unnamed).
    pub name: String,
    /// The name as its metrics' label, made once.
    pub label: LabelText,
    /// Backends and the weighted choice between them.
    pub backends: Vec<Arc<CompiledBackend>>,
    /// Picks a backend when there are several.
    pub picker: Option<WeightedPicker>,
    /// Filters for a route with no backends (e.g. only a `directResponse`).
    pub chain_without_backend: Arc<FilterChain>,
}

impl CompiledRoute {
    /// Chooses a backend for one request.
    pub fn pick_backend(&self) -> Option<&Arc<CompiledBackend>> {
        match (&self.picker, self.backends.len()) {
            (_, 0) => None,
            (Some(p), _) => self.backends.get(p.pick()),
            (None, _) => self.backends.first(),
        }
    }
}

/// A backend with the filter chain that applies when it is chosen.
#[derive(Debug)]
pub struct CompiledBackend {
    /// Name for logs.
    pub name: String,
    /// The name as its metrics' label, made once.
    pub label: LabelText,
    /// Where it is.
    pub target: BackendTarget,
    /// Route policies merged with the backend's own (backend wins), in execution order.
    pub chain: Arc<FilterChain>,
}

/// The kinds of upstream.
#[derive(Debug, Clone)]
pub enum BackendTarget {
    /// Plain HTTP to `host:port`.
    Host {
        /// Host name or IP.
        host: String,
        /// Port.
        port: u16,
    },
    /// An LLM provider.
    Ai(AiTarget),
    /// LLM providers in priority tiers, with failover (`ai.groups`).
    AiGroups(Arc<ai_groups::AiGroups>),
    /// MCP targets; served by the `mcp` filter.
    Mcp,
    /// `routeGroup:` delegation: the group's routes (their policies merged over the
    /// delegating route's), matched against the whole request once this backend is chosen.
    RouteGroup(Arc<RouteTable>),
    /// The `llm:` shortcut's model router: the backend is chosen by the request's model.
    LlmRouter(Arc<llm_router::LlmRouter>),
}

/// Ordered filters and the body access they need together.
#[derive(Clone, Default)]
pub struct FilterChain {
    /// In execution order.
    pub filters: Vec<Arc<dyn Filter>>,
    /// Each filter's policy name (same order), to pair filters across a reload.
    pub names: Vec<&'static str>,
    /// Union of the filters' body needs.
    pub body: BodyAccess,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FilterChain({} filters)", self.filters.len())
    }
}

impl FilterChain {
    fn from_entries(mut entries: Vec<PolicyEntry>) -> FilterChain {
        entries.sort_by_key(|e| e.spec.order);
        let body = entries.iter().fold(BodyAccess::default(), |acc, e| acc.union(e.filter.body_access()));
        let names = entries.iter().map(|e| e.spec.name).collect();
        FilterChain { filters: entries.into_iter().map(|e| e.filter).collect(), names, body }
    }
}

/// Route policies overridden by backend policies of the same name.
fn merge(route: &Policies, backend: &Policies) -> Vec<PolicyEntry> {
    let mut out: Vec<PolicyEntry> =
        route.0.iter().filter(|r| backend.get(r.spec.name).is_none()).cloned().collect();
    for specific in &backend.0 {
        let combined = route.get(specific.spec.name).and_then(|general| specific.filter.merge_over(&*general.filter));
        out.push(match combined {
            Some(filter) => PolicyEntry { spec: specific.spec, filter },
            None => specific.clone(),
        });
    }
    out
}

/// Builds the runtime tables from a parsed config.
/// Process-wide state that compiled tables refer to and that outlives a reload: MCP
/// sessions stay usable when the routes are swapped.
#[derive(Clone)]
pub struct Shared {
    /// The MCP family (its sessions), when this build has one.
    pub mcp: Option<Arc<dyn crate::family::McpFamily>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared {{ mcp: {} }}", self.mcp.is_some())
    }
}

impl Shared {
    /// Builds the shared state from the `config:` section (read once, at start).
    pub fn from_config(config: &LocalConfig, key_dir: Option<&std::path::Path>) -> Result<Shared, String> {
        let mcp = crate::family::mcp_factory().map(|make| make(config, key_dir)).transpose()?;
        Ok(Shared { mcp })
    }
}

/// Compiles with fresh shared state (tests, `--validate-only`).
pub fn compile(config: &LocalConfig) -> Result<Gateway, String> {
    compile_with(config, &Shared::from_config(config, None)?)
}

/// Compiles the config into runtime tables that use `shared`.
pub fn compile_with(config: &LocalConfig, shared: &Shared) -> Result<Gateway, String> {
    let mut binds = Vec::new();
    for (bi, bind) in config.binds.iter().enumerate() {
        if binds.iter().any(|b: &Arc<CompiledBind>| b.port == bind.port) {
            return Err(format!("binds[{bi}]: port {} is bound twice", bind.port));
        }
        let mut listeners = Vec::new();
        let frontend_tls = config.frontend_policies.tls.clone().unwrap_or_default();
        for (li, listener) in bind.listeners.iter().enumerate() {
            let (kind, tcp_routes) =
                listener::compile_kind(listener, &frontend_tls).map_err(|e| format!("binds[{bi}].listeners[{li}]: {e}"))?;
            let mut routes = RouteTable::default();
            for (ri, route) in listener.routes.iter().flatten().enumerate() {
                let at = format!("binds[{bi}].listeners[{li}].routes[{ri}]");
                let name = route.name.clone().unwrap_or_else(|| format!("bind{}/route{ri}", bind.port));
                // Listener (gateway-level) policies apply to every route; a route's own win.
                let policies = Policies(merge(&listener.policies.0, &route.policies));
                let scope = Scope { shared, groups: &config.route_groups, delegating: Vec::new() };
                let compiled = compile_route(name, &at, &policies, &route.backends, &scope).map_err(|e| format!("{at}: {e}"))?;
                routes.add(Arc::new(compiled), &route.hostnames, &route.matches);
            }
            let hostname = listener::hostname_pattern(listener.hostname.as_deref());
            let chain = Arc::new(FilterChain::from_entries(listener.policies.0 .0.clone()));
            listeners.push(CompiledListener { hostname, kind, routes, tcp_routes, chain });
        }
        // Most specific host first; host-less listeners last.
        listeners.sort_by_key(|l| match &l.hostname {
            Some(HostPattern::Exact(_)) => 0,
            Some(HostPattern::Wildcard(_)) => 1,
            None => 2,
        });
        let transport = listener::bind_transport(&listeners).map_err(|e| format!("binds[{bi}] (port {}): {e}", bind.port))?;
        binds.push(Arc::new(CompiledBind { port: bind.port, transport, listeners }));
    }
    let connect_timeout = config
        .config
        .backend
        .as_ref()
        .and_then(|b| b.connect_timeout)
        .map_or(crate::proxy::peer::DEFAULT_CONNECT_TIMEOUT, |d| d.0);
    let frontend = FrontendHttp::compile(config.frontend_policies.http.as_ref());
    let tls_handshake_timeout = config
        .frontend_policies
        .tls
        .as_ref()
        .and_then(|t| t.handshake_timeout)
        .map_or(tls::DEFAULT_HANDSHAKE_TIMEOUT, |d| d.0);
    let client_keepalive = match &config.frontend_policies.tcp {
        Some(t) => TcpKeepalive::from_config(&t.keepalives).map_err(|e| format!("frontendPolicies.tcp.{e}"))?,
        None => None,
    };
    let mut upstream_connect = crate::ctx::ConnectPolicy::default();
    let family = config.config.dns.as_ref().and_then(|d| d.lookup_family).unwrap_or_default();
    upstream_connect.families = crate::proxy::peer::Families::from_config(family, config.config.enable_ipv6.unwrap_or(true));
    if let Some(b) = &config.config.backend {
        if let Some(idle) = b.pool_idle_timeout {
            upstream_connect.idle = idle.0;
        }
        if let Some(k) = &b.keepalives {
            upstream_connect.keepalive = TcpKeepalive::from_config(k).map_err(|e| format!("config.backend.{e}"))?;
        }
    }
    let proxy_protocol = config.frontend_policies.proxy_protocol.map(|p| {
        use crate::config::frontend::{ProxyMode, ProxyVersion};
        let version = p.version.unwrap_or(ProxyVersion::V2);
        let versions = crate::downstream::proxy_protocol::Versions {
            v1: matches!(version, ProxyVersion::V1 | ProxyVersion::All),
            v2: matches!(version, ProxyVersion::V2 | ProxyVersion::All),
        };
        (versions, p.mode.unwrap_or(ProxyMode::Strict) == ProxyMode::Strict)
    });
    let mut catalog_warnings = Vec::new();
    let model_catalog = match &config.config.model_catalog {
        Some(sources) => crate::cost::ModelCatalog::load(sources, &mut catalog_warnings)?,
        None => crate::cost::ModelCatalog::default(),
    };
    for w in catalog_warnings {
        tracing::warn!(target: "tollgate", "{w}");
    }
    let model_catalog = Arc::new(model_catalog);
    Ok(Gateway { binds, connect_timeout, frontend, tls_handshake_timeout, client_keepalive, upstream_connect, proxy_protocol, model_catalog })
}

/// What compiling a route may refer to: process-wide state, the route groups, and the
/// groups being compiled around it (a group that delegates to itself is a cycle).
struct Scope<'a> {
    shared: &'a Shared,
    groups: &'a [crate::config::schema::LocalRouteGroup],
    delegating: Vec<&'a str>,
}

/// Compiles the routes of group `name` under a delegating route's `policies` (theirs win).
fn compile_group(name: &str, policies: &Policies, scope: &Scope<'_>) -> Result<RouteTable, String> {
    let (gi, group) = scope
        .groups
        .iter()
        .enumerate()
        .find(|(_, g)| g.name == name)
        .ok_or_else(|| format!("no route group is named `{name}`"))?;
    if scope.delegating.contains(&group.name.as_str()) {
        return Err(format!("route group `{name}` delegates to itself ({} -> {name})", scope.delegating.join(" -> ")));
    }
    let mut inner = Scope { shared: scope.shared, groups: scope.groups, delegating: scope.delegating.clone() };
    inner.delegating.push(group.name.as_str());
    let mut table = RouteTable::default();
    for (ri, route) in group.routes.iter().enumerate() {
        let at = format!("routeGroups[{gi}].routes[{ri}]");
        let route_name = route.name.clone().unwrap_or_else(|| format!("routegroup/{name}/route{ri}"));
        let merged = Policies(merge(policies, &route.policies));
        let compiled = compile_route(route_name, &at, &merged, &route.backends, &inner).map_err(|e| format!("{at}: {e}"))?;
        table.add(Arc::new(compiled), &route.hostnames, &route.matches);
    }
    Ok(table)
}

fn compile_route(name: String, at: &str, policies: &Policies, backends: &[LocalBackend], scope: &Scope<'_>) -> Result<CompiledRoute, String> {
    let shared = scope.shared;
    let mut compiled = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        let (bname, target, entries) = match &b.kind {
            BackendKind::Host(h) => {
                let (host, port) = split_host_port(h)?;
                (h.clone(), BackendTarget::Host { host, port }, merge(policies, &b.policies))
            }
            BackendKind::Ai(ai) => {
                // An ai backend's policies may sit beside `ai:` or inside it (as in the seed).
                let own = Policies(merge(&b.policies, &ai.policies));
                let mut entries = merge(policies, &own);
                if !entries.iter().any(|e| e.spec.name == "ai") {
                    entries.push(default_ai_policy()?);
                }
                match &ai.groups {
                    Some(groups) => (format!("ai-groups{i}"), BackendTarget::AiGroups(Arc::new(compile_ai_groups(ai, groups)?)), entries),
                    None => (ai.name.clone(), BackendTarget::Ai(ai_target(ai)?), entries),
                }
            }
            BackendKind::Named(name) => return Err(format!("backends[{i}]: `backend: {name}` was not resolved")),
            BackendKind::RouteGroup(group) => {
                let table = compile_group(group, policies, scope).map_err(|e| format!("backends[{i}]: {e}"))?;
                (format!("routegroup/{group}"), BackendTarget::RouteGroup(Arc::new(table)), Vec::new())
            }
            BackendKind::LlmRouter(r) => {
                let compile = |lb: LocalBackend| -> Result<Arc<CompiledBackend>, String> {
                    let route = compile_route(name.clone(), at, policies, std::slice::from_ref(&lb), scope)?;
                    route.backends.into_iter().next().ok_or_else(|| "a model compiled to no backend".to_string())
                };
                let router = llm_router::LlmRouter::compile(r, &compile)?;
                ("llm:router".to_string(), BackendTarget::LlmRouter(Arc::new(router)), merge(policies, &b.policies))
            }
            BackendKind::Mcp(m) => {
                let mut entries = merge(policies, &b.policies);
                let family = shared.mcp.as_ref().ok_or("`mcp` backends need the MCP family, which this build does not include")?;
                entries.extend(family.compile(m, &format!("{at}.backends[{i}]"))?);
                (format!("mcp{i}"), BackendTarget::Mcp, entries)
            }
        };
        let label = LabelText::new(&bname);
        compiled.push(Arc::new(CompiledBackend { name: bname, label, target, chain: Arc::new(FilterChain::from_entries(entries)) }));
    }
    let picker = (compiled.len() > 1).then(|| WeightedPicker::new(&backends.iter().map(|b| b.weight).collect::<Vec<_>>()));
    let picker = picker.transpose()?;
    Ok(CompiledRoute {
        label: LabelText::new(&name),
        name,
        backends: compiled,
        picker,
        chain_without_backend: Arc::new(FilterChain::from_entries(policies.0.clone())),
    })
}
