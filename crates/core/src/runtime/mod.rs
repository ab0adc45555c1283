//! Compiled runtime tables: the loaded config turned into immutable structures the
//! proxy reads on every request (binds → listeners → route tables → backends with
//! their filter chains). A reload builds a new [`Gateway`] and swaps it in whole.

use std::sync::Arc;

use crate::config::backend::{split_host_port, AiBackend, BackendKind, LocalBackend};
use crate::config::policies::{Policies, PolicyEntry};
use crate::config::LocalConfig;
use crate::filters::{registry, BodyAccess, Filter};
use crate::router::{HostPattern, RouteTable};

pub mod ai_groups;
pub mod listener;
pub mod llm_router;
pub mod picker;
pub mod tls;

pub use listener::{BindTransport, CompiledListener, ListenerKind};
use picker::WeightedPicker;

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

/// An LLM provider backend, ready for the `ai` filter.
#[derive(Debug, Clone)]
pub struct AiTarget {
    /// Backend name.
    pub name: String,
    /// The API the provider speaks.
    pub provider: crate::llm::AiProvider,
    /// The provider's name in telemetry (`gen_ai.provider.name`).
    pub provider_name: &'static str,
    /// Azure's paths, for an `azure` provider (which speaks OpenAI's API).
    pub azure: Option<AzurePaths>,
    /// Project and location of a `vertex` provider (whose API follows the model's family).
    pub vertex: Option<VertexTarget>,
    /// The AWS region of a `bedrock` provider (its host and signing region).
    pub bedrock_region: Option<String>,
    /// Model that replaces the client's.
    pub model: Option<String>,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// `hostOverride` was given: keep the client's path and use TLS only if `backendTLS` says so.
    pub host_overridden: bool,
    /// Replaces the path of completions.
    pub path_override: Option<String>,
    /// Base path for provider API paths.
    pub path_prefix: Option<String>,
}

/// A Vertex AI endpoint: `/v1/projects/{project}/locations/{location}/publishers/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexTarget {
    /// The project.
    pub project: String,
    /// The location (`global`, `us`, `eu` or a region).
    pub location: String,
}

/// Where an Azure provider serves each API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzurePaths {
    /// The v1 API: `/openai/v1/{api}`, with `?api-version=preview` when asked for.
    V1 {
        /// `api-version=preview`.
        preview: bool,
    },
    /// Dated versions: `/openai/deployments/{model}/{api}?api-version={version}`.
    Deployments {
        /// The `api-version` query value.
        api_version: String,
    },
    /// AI Foundry: `/api/projects/{project}/openai/v1/{api}`.
    Foundry {
        /// The project.
        project: String,
    },
}

/// Ordered filters and the body access they need together.
#[derive(Clone, Default)]
pub struct FilterChain {
    /// In execution order.
    pub filters: Vec<Arc<dyn Filter>>,
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
        FilterChain { filters: entries.into_iter().map(|e| e.filter).collect(), body }
    }
}

/// Route policies overridden by backend policies of the same name.
fn merge(route: &Policies, backend: &Policies) -> Vec<PolicyEntry> {
    let mut out: Vec<PolicyEntry> =
        route.0.iter().filter(|r| backend.get(r.spec.name).is_none()).cloned().collect();
    out.extend(backend.0.iter().cloned());
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
        compiled.push(Arc::new(CompiledBackend { name: bname, target, chain: Arc::new(FilterChain::from_entries(entries)) }));
    }
    let picker = (compiled.len() > 1).then(|| WeightedPicker::new(&backends.iter().map(|b| b.weight).collect::<Vec<_>>()));
    let picker = picker.transpose()?;
    Ok(CompiledRoute {
        name,
        backends: compiled,
        picker,
        chain_without_backend: Arc::new(FilterChain::from_entries(policies.0.clone())),
    })
}

fn default_ai_policy() -> Result<PolicyEntry, String> {
    let spec = registry::find("ai").ok_or("the ai filter is not registered")?;
    let mut de = serde_json::Deserializer::from_str("{}");
    let filter = (spec.build)(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(|e| e.to_string())?;
    Ok(PolicyEntry { spec, filter })
}

/// `ai.groups`: each provider compiled as a single one, with its own TLS and credentials.
fn compile_ai_groups(ai: &AiBackend, groups: &[crate::config::backend::AiGroup]) -> Result<ai_groups::AiGroups, String> {
    let beside = [
        (!ai.name.is_empty(), "name"),
        (ai.provider.is_some(), "provider"),
        (ai.host_override.is_some(), "hostOverride"),
        (ai.path_override.is_some(), "pathOverride"),
        (ai.path_prefix.is_some(), "pathPrefix"),
        (!ai.policies.0.is_empty(), "policies"),
    ];
    if let Some((_, field)) = beside.iter().find(|(set, _)| *set) {
        return Err(format!("ai: `{field}` cannot stand beside `groups` (each provider of a group has its own; backend policies go beside `ai:`)"));
    }
    let mut tiers = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        if group.providers.is_empty() {
            return Err(format!("ai.groups[{g}]: a group needs at least one provider"));
        }
        let mut tier = Vec::new();
        for (p, provider) in group.providers.iter().enumerate() {
            let at = |e: String| format!("ai.groups[{g}].providers[{p}]: {e}");
            if provider.groups.is_some() {
                return Err(at("groups do not nest".into()));
            }
            let target = ai_target(provider).map_err(at)?;
            let (mut tls, mut auth) = (None, None);
            for entry in &provider.policies.0 {
                let filter: &dyn std::any::Any = &*entry.filter;
                if let Some(t) = filter.downcast_ref::<crate::filters::backend_tls::BackendTls>() {
                    tls = Some(t.plan().clone());
                } else if let Some(a) = filter.downcast_ref::<crate::filters::backend_auth::BackendAuth>() {
                    auth = Some(a.credential().clone());
                } else {
                    return Err(at(format!("policy `{}` on a provider of a group is not supported yet (backendTLS and backendAuth are; others go beside `ai:`)", entry.spec.name)));
                }
            }
            tier.push(Arc::new(ai_groups::GroupProvider { target, tls, auth, health: Default::default() }));
        }
        tiers.push(tier);
    }
    if tiers.is_empty() {
        return Err("ai.groups: at least one group is required".into());
    }
    Ok(ai_groups::AiGroups { tiers })
}

fn ai_target(ai: &AiBackend) -> Result<AiTarget, String> {
    use crate::config::backend::AzureResourceType;
    use crate::llm::AiProvider;
    if ai.name.is_empty() {
        return Err("ai: `name` is required".into());
    }
    let p = ai.provider.as_ref().ok_or("ai: `provider` (or `groups`) is required")?;
    let named = [p.open_ai.is_some(), p.anthropic.is_some(), p.gemini.is_some(), p.azure.is_some(), p.vertex.is_some(), p.bedrock.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        return Err("ai.provider: exactly one provider is required (openAI, anthropic, gemini, vertex, bedrock or azure)".into());
    }
    let mut azure = None;
    let mut bedrock_region = None;
    let mut vertex = None;
    let (provider, provider_name, model, default_host) = if let Some(o) = &p.open_ai {
        (AiProvider::OpenAi, "openai", o.model.clone(), "api.openai.com".to_string())
    } else if let Some(a) = &p.anthropic {
        (AiProvider::Anthropic, "anthropic", a.model.clone(), "api.anthropic.com".to_string())
    } else if let Some(g) = &p.gemini {
        (AiProvider::Gemini, "gcp.gemini", g.model.clone(), "generativelanguage.googleapis.com".to_string())
    } else if let Some(b) = &p.bedrock {
        let region = &b.region;
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(format!("ai.provider.bedrock.region `{region}` is not an AWS region"));
        }
        bedrock_region = Some(region.clone());
        (AiProvider::Bedrock, "aws.bedrock", b.model.clone(), format!("bedrock-runtime.{region}.amazonaws.com"))
    } else if let Some(v) = &p.vertex {
        let location = v.region.clone().unwrap_or_else(|| "global".into());
        let plain = |s: &str| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !plain(&v.project_id) {
            return Err(format!("ai.provider.vertex.projectId `{}` is not a project id", v.project_id));
        }
        if !plain(&location) {
            return Err(format!("ai.provider.vertex.region `{location}` is not a region"));
        }
        let host = match location.as_str() {
            "global" => "aiplatform.googleapis.com".to_string(),
            "us" | "eu" => format!("aiplatform.{location}.rep.googleapis.com"),
            region => format!("{region}-aiplatform.googleapis.com"),
        };
        vertex = Some(VertexTarget { project: v.project_id.clone(), location });
        (AiProvider::Gemini, "gcp.vertex_ai", v.model.clone(), host)
    } else if let Some(z) = &p.azure {
        let resource = &z.resource_name;
        let valid_label = !resource.is_empty() && resource.len() <= 63 && resource.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_label {
            return Err(format!("ai.provider.azure.resourceName `{resource}` is not a host name label"));
        }
        let (host, paths) = match z.resource_type {
            AzureResourceType::OpenAi => {
                if z.project_name.is_some() {
                    return Err("ai.provider.azure.projectName applies to resourceType foundry only".into());
                }
                let paths = match z.api_version.as_deref().unwrap_or("v1") {
                    "v1" => AzurePaths::V1 { preview: false },
                    "preview" => AzurePaths::V1 { preview: true },
                    v if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => AzurePaths::Deployments { api_version: v.to_string() },
                    v => return Err(format!("ai.provider.azure.apiVersion `{v}` is not an API version")),
                };
                (format!("{resource}.openai.azure.com"), paths)
            }
            AzureResourceType::Foundry => {
                let project = z.project_name.clone().unwrap_or_else(|| resource.clone());
                if project.is_empty() || !project.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                    return Err(format!("ai.provider.azure.projectName `{project}` is not a project name"));
                }
                (format!("{resource}.services.ai.azure.com"), AzurePaths::Foundry { project })
            }
        };
        azure = Some(paths);
        (AiProvider::OpenAi, "azure.ai.openai", z.model.clone(), host)
    } else {
        return Err("ai.provider: exactly one provider is required".into());
    };
    let (host, port, host_overridden) = match &ai.host_override {
        Some(h) => {
            let (host, port) = split_host_port(h)?;
            (host, port, true)
        }
        None => (default_host, 443, false),
    };
    Ok(AiTarget {
        name: ai.name.clone(),
        provider,
        provider_name,
        azure,
        vertex,
        bedrock_region,
        model,
        host,
        port,
        host_overridden,
        path_override: ai.path_override.clone(),
        path_prefix: ai.path_prefix.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(yaml: &str) -> Result<AiTarget, String> {
        let backend: AiBackend = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        ai_target(&backend)
    }

    #[test]
    fn azure_hosts_come_from_the_resource() {
        let t = target("{name: a, provider: {azure: {resourceName: acme, resourceType: openAI}}}").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.host_overridden), ("acme.openai.azure.com", 443, false));
        assert_eq!(t.azure, Some(AzurePaths::V1 { preview: false }));
        assert_eq!(t.provider_name, "azure.ai.openai");
        let t = target("{name: a, provider: {azure: {resourceName: acme, resourceType: foundry, projectName: p}}}").unwrap();
        assert_eq!(t.host, "acme.services.ai.azure.com");
        assert_eq!(t.azure, Some(AzurePaths::Foundry { project: "p".into() }));
        let t = target("{name: a, hostOverride: '127.0.0.1:9', provider: {azure: {resourceName: acme, resourceType: openAI, apiVersion: 2024-10-21}}}").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.host_overridden), ("127.0.0.1", 9, true));
        assert_eq!(t.azure, Some(AzurePaths::Deployments { api_version: "2024-10-21".into() }));
    }

    #[test]
    fn vertex_and_bedrock_hosts_come_from_the_region() {
        for (region, host) in [("", "aiplatform.googleapis.com"), ("global", "aiplatform.googleapis.com"), ("eu", "aiplatform.eu.rep.googleapis.com"), ("us-central1", "us-central1-aiplatform.googleapis.com")] {
            let region = if region.is_empty() { String::new() } else { format!(", region: {region}") };
            let t = target(&format!("{{name: v, provider: {{vertex: {{projectId: p{region}}}}}}}")).unwrap();
            assert_eq!((t.host.as_str(), t.port), (host, 443));
        }
        let t = target("{name: v, provider: {vertex: {projectId: p}}}").unwrap();
        assert_eq!(t.vertex, Some(VertexTarget { project: "p".into(), location: "global".into() }));
        assert!(target("{name: v, provider: {vertex: {projectId: 'a/b'}}}").is_err());
        let t = target("{name: b, provider: {bedrock: {region: eu-west-1}}}").unwrap();
        assert_eq!((t.host.as_str(), t.bedrock_region.as_deref()), ("bedrock-runtime.eu-west-1.amazonaws.com", Some("eu-west-1")));
        assert!(target("{name: b, provider: {bedrock: {region: 'eu-west-1.evil.com/'}}}").is_err());
    }
}
