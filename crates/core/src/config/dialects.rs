//! agentgateway's other ways to write the same gateway: the `mcp:` shortcut and the
//! `gateways:` / `routes:` / `tcpRoutes:` dialect. Both are rewritten into `binds:` right
//! after parsing, so the runtime sees one shape.

use indexmap::IndexMap;
use serde::de;
use serde::Deserialize;

use super::backend::{BackendKind, LocalBackend};
use super::mcp::{FailureMode, McpBackend, McpTarget, PrefixMode, StatefulMode};
use super::policies::Policies;
use super::schema::{ListenerProtocol, LocalBind, LocalConfig, LocalListener, LocalRoute, LocalTcpRoute, PathMatch, RouteMatch};
use super::tls::TlsServerConfig;
use super::policies::ListenerPolicies;
use super::types::{AnyValue, Unsupported};

/// agentgateway's port for the `mcp:` shortcut when neither `port` nor a gateway is given.
pub const DEFAULT_MCP_PORT: u16 = 3000;

/// The top-level `mcp:` shortcut: one MCP endpoint for its targets.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimpleMcp {
    /// Gateways (`name` or `name/listener`) to serve on, instead of a port of its own.
    pub gateways: Option<GatewayRefs>,
    /// Port of its own (default 3000 when there is no `default` gateway).
    pub port: Option<u16>,
    /// Policies of the generated route.
    #[serde(default)]
    pub policies: Policies,
    /// Upstream MCP servers.
    pub targets: Vec<McpTarget>,
    /// As in an `mcp` backend.
    #[serde(default)]
    pub stateful_mode: StatefulMode,
    /// As in an `mcp` backend.
    #[serde(default)]
    pub prefix_mode: PrefixMode,
    /// As in an `mcp` backend.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// As in an `mcp` backend.
    pub dns_rebinding_protection: Option<bool>,
}

/// `gateways: a`, `gateways: a/listener` or a list of them.
#[derive(Debug, Clone, Default)]
pub struct GatewayRefs(pub Vec<String>);

impl<'de> Deserialize<'de> for GatewayRefs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(GatewayRefs(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }))
    }
}

/// `gateways.<name>`: a port, and its listeners (or one implicit listener).
// The `Unsupported` fields exist only to fail the load with a clear message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalGateway {
    /// The port (required).
    pub port: Option<u16>,
    /// Protocol of the implicit listener (default HTTP, or HTTPS with `tls`).
    pub protocol: Option<ListenerProtocol>,
    /// TLS of the implicit listener.
    pub tls: Option<TlsServerConfig>,
    /// Named listeners; without them the gateway is one listener.
    #[serde(default)]
    pub listeners: Vec<LocalGatewayListener>,
    /// Not supported yet (gateway-level policy).
    pub oidc: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub jwt_auth: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub authorization: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub ext_authz: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub ext_proc: Option<Unsupported>,
    /// Gateway-level CORS, for every request on the gateway's listeners.
    pub cors: Option<AnyValue>,
    /// Not supported yet (gateway-level policy).
    pub transformations: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub basic_auth: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub api_key: Option<Unsupported>,
}

/// One listener of a gateway.
// The `Unsupported` fields exist only to fail the load with a clear message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalGatewayListener {
    /// Name, for `gateway/listener` references (default `listener<index>`).
    pub name: Option<String>,
    /// Host (SNI on TLS ports) this listener answers.
    pub hostname: Option<String>,
    /// Protocol (default HTTP, or HTTPS with `tls`).
    pub protocol: Option<ListenerProtocol>,
    /// Server TLS.
    pub tls: Option<TlsServerConfig>,
    /// Not supported yet (gateway-level policy).
    pub oidc: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub jwt_auth: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub authorization: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub ext_authz: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub ext_proc: Option<Unsupported>,
    /// Gateway-level CORS, for every request on the gateway's listeners.
    pub cors: Option<AnyValue>,
    /// Not supported yet (gateway-level policy).
    pub transformations: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub basic_auth: Option<Unsupported>,
    /// Not supported yet (gateway-level policy).
    pub api_key: Option<Unsupported>,
}

impl SimpleMcp {
    fn into_route(self, matches: Vec<RouteMatch>) -> LocalRoute {
        let backend = McpBackend {
            targets: self.targets,
            stateful_mode: self.stateful_mode,
            prefix_mode: self.prefix_mode,
            failure_mode: self.failure_mode,
            dns_rebinding_protection: self.dns_rebinding_protection,
        };
        LocalRoute {
            name: Some("mcp".into()),
            namespace: None,
            rule_name: None,
            gateways: None,
            hostnames: Vec::new(),
            matches,
            policies: self.policies,
            backends: vec![LocalBackend { name: None, weight: 1, policies: Policies::default(), kind: BackendKind::Mcp(Box::new(backend)) }],
        }
    }
}

/// A shortcut's (`mcp:`, `llm:`) port of its own: one HTTP listener named after it, one route.
fn shortcut_bind(name: &str, port: u16, route: LocalRoute) -> GatewayBind {
    let listener = LocalListener {
        name: Some(name.into()),
        namespace: None,
        hostname: None,
        protocol: ListenerProtocol::Http,
        routes: Some(vec![route]),
        tls: None,
        tcp_routes: None,
        policies: Default::default(),
    };
    GatewayBind { port, listeners: vec![(name.into(), listener)] }
}

/// The paths MCP takes on a gateway shared with other routes (as agentgateway).
fn mcp_matches() -> Vec<RouteMatch> {
    ["/mcp", "/sse", "/.well-known"]
        .into_iter()
        .map(|p| RouteMatch { path: Some(PathMatch::Prefix(p.into())), ..RouteMatch::default() })
        .collect()
}

/// Rewrites `mcp:` and `gateways:` / `routes:` / `tcpRoutes:` into `binds`.
pub fn normalize(config: &mut LocalConfig) -> Result<(), String> {
    for (bi, bind) in config.binds.iter().enumerate() {
        for (li, l) in bind.listeners.iter().enumerate() {
            let attached = l.routes.iter().flatten().any(|r| r.gateways.is_some())
                || l.tcp_routes.iter().flatten().any(|r| r.gateways.is_some());
            if attached {
                return Err(format!("binds[{bi}].listeners[{li}]: `gateways` belongs on top-level `routes`, not inside `binds`"));
            }
        }
    }
    if let Some(tracing) = config.frontend_policies.tracing.take() {
        if config.config.tracing.is_some() {
            return Err("tracing is set in both config.tracing and frontendPolicies.tracing; keep one".into());
        }
        config.config.tracing = Some(tracing.into_settings()?);
    }
    if let Some(access_log) = config.frontend_policies.access_log.take() {
        access_log.merge_into(config.config.logging.get_or_insert_with(Default::default))?;
    }
    super::targets::apply_backend_targets(config)?;
    let named = resolve_named_backends(config)?;
    let mut gateway_names = vec!["default".to_string(); config.binds.len()];
    let gateways = std::mem::take(&mut config.gateways);
    let mut routes = std::mem::take(&mut config.routes);
    let mut tcp_routes = std::mem::take(&mut config.tcp_routes);
    let mut mcp = config.mcp.take();
    if mcp.as_ref().is_some_and(|m| m.port.is_some() && m.gateways.is_some()) {
        return Err("mcp: set `port` or `gateways`, not both".into());
    }
    let mut compiled = compile_gateways(gateways)?;
    // A standalone `mcp:` (its own port, or no `default` gateway to join) is a bind of its own.
    let standalone = mcp.as_ref().is_some_and(|m| m.gateways.is_none() && (m.port.is_some() || !compiled.contains_key("default")));
    if standalone {
        let m = mcp.take().ok_or("mcp")?;
        let port = m.port.unwrap_or(DEFAULT_MCP_PORT);
        let route = m.into_route(Vec::new());
        compiled.insert(SHORTCUT_KEY.into(), shortcut_bind("mcp", port, route));
    }
    if let Some(m) = mcp {
        let refs = m.gateways.clone().unwrap_or_else(|| GatewayRefs(vec!["default".into()]));
        let route = m.into_route(mcp_matches());
        attach(&mut compiled, "mcp", &refs, AttachedRoute::Http(route), false)?;
    }
    if let Some(llm) = config.llm.take() {
        if llm.gateways.is_some() && (llm.port.is_some() || llm.tls.is_some()) {
            return Err("llm.gateways cannot be used with llm.port or llm.tls".into());
        }
        let tls = llm.tls.clone();
        let refs = llm.gateways.clone();
        let standalone = refs.is_none() && (llm.port.is_some() || tls.is_some() || !compiled.contains_key("default"));
        let port = llm.port.unwrap_or(super::llm::DEFAULT_LLM_PORT);
        let route = llm.into_route()?;
        if standalone {
            if compiled.get(SHORTCUT_KEY).is_some_and(|g| g.port == port) {
                return Err(format!("llm and mcp cannot both serve port {port}"));
            }
            let mut bind = shortcut_bind("llm", port, route);
            if let Some((_, l)) = bind.listeners.first_mut() {
                l.protocol = if tls.is_some() { ListenerProtocol::Https } else { ListenerProtocol::Http };
                l.tls = tls;
            }
            compiled.insert(LLM_KEY.into(), bind);
        } else {
            let refs = refs.unwrap_or_else(|| GatewayRefs(vec!["default".into()]));
            attach(&mut compiled, "llm", &refs, AttachedRoute::Http(route), false)?;
        }
    }
    for (i, mut r) in routes.drain(..).enumerate() {
        let refs = r.gateways.take().unwrap_or_else(|| GatewayRefs(vec!["default".into()]));
        attach(&mut compiled, &format!("routes[{i}]"), &refs, AttachedRoute::Http(r), true)?;
    }
    for (i, mut r) in tcp_routes.drain(..).enumerate() {
        let refs = r.gateways.take().unwrap_or_else(|| GatewayRefs(vec!["default".into()]));
        attach(&mut compiled, &format!("tcpRoutes[{i}]"), &refs, AttachedRoute::Tcp(r), true)?;
    }
    for (name, gw) in compiled {
        if let Some(i) = config.binds.iter().position(|b| b.port == gw.port) {
            return Err(format!("port {} is configured by both binds[{i}] and {}", gw.port, describe(&name)));
        }
        config.binds.push(LocalBind {
            port: gw.port,
            listeners: gw.listeners.into_iter().map(|(_, l)| l).collect(),
            tunnel_protocol: None,
            mode: None,
        });
        gateway_names.push(if name == SHORTCUT_KEY || name == LLM_KEY { "default".into() } else { name });
    }
    resolve_mcp_target_backends(config, &named)?;
    super::targets::apply_route_and_gateway_targets(config, &gateway_names)
}

/// Rewrites MCP targets' `backend: name` into the named `host` backend's address (`https`
/// when it has `backendTLS`), carrying its policies to the target, as agentgateway resolves
/// them. The reference needs `path` (except for OpenAPI) and excludes target `policies`.
fn resolve_mcp_target_backends(config: &mut LocalConfig, named: &IndexMap<String, LocalBackend>) -> Result<(), String> {
    let resolve = |t: &mut McpTarget| -> Result<(), String> {
        let at = format!("target `{}`", t.name);
        let (name, host, path) = match (&mut t.mcp, &mut t.sse, &mut t.openapi) {
            (Some(h), _, _) | (_, Some(h), _) => match h.backend.take() {
                Some(name) => (name, &mut h.host, Some(&mut h.path)),
                None => return Ok(()),
            },
            (_, _, Some(o)) => match o.backend.take() {
                Some(name) => (name, &mut o.host, None),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        if !host.is_empty() {
            return Err(format!("{at}: set `host` or `backend`, not both"));
        }
        let b = named.get(&name).ok_or_else(|| format!("{at}: no top-level backend is named `{name}`"))?;
        let BackendKind::Host(addr) = &b.kind else {
            return Err(format!("{at}: backend `{name}` must be a `host` backend to serve an MCP target"));
        };
        if t.policies.is_some() {
            return Err(format!("{at}: a target that refers to a backend takes no `policies` (set them on backend `{name}`)"));
        }
        let scheme = if b.policies.get("backendTLS").is_some() { "https" } else { "http" };
        *host = match path {
            Some(path) => {
                let p = path.take().ok_or_else(|| format!("{at}: `path` is required when `backend` is set"))?;
                format!("{scheme}://{addr}{p}")
            }
            None => format!("{scheme}://{addr}"),
        };
        t.backend_policies = b.policies.clone();
        Ok(())
    };
    let mcp_backends = config
        .binds
        .iter_mut()
        .flat_map(|b| b.listeners.iter_mut())
        .flat_map(|l| l.routes.iter_mut().flatten())
        .chain(config.route_groups.iter_mut().flat_map(|g| g.routes.iter_mut()))
        .flat_map(|r| r.backends.iter_mut());
    for b in mcp_backends {
        if let BackendKind::Mcp(m) = &mut b.kind {
            for t in &mut m.targets {
                resolve(t)?;
            }
        }
    }
    Ok(())
}

/// The `mcp:` shortcut's own bind among the gateways (not a name a gateway can have).
const SHORTCUT_KEY: &str = "<mcp>";
const LLM_KEY: &str = "<llm>";

fn describe(name: &str) -> String {
    if name == SHORTCUT_KEY {
        "mcp".into()
    } else if name == LLM_KEY {
        "llm".into()
    } else {
        format!("gateways.{name}")
    }
}

/// A gateway on its way to becoming a bind.
struct GatewayBind {
    port: u16,
    /// (listener name, listener).
    listeners: Vec<(String, LocalListener)>,
}

enum AttachedRoute {
    Http(LocalRoute),
    Tcp(LocalTcpRoute),
}

fn compile_gateways(gateways: IndexMap<String, LocalGateway>) -> Result<IndexMap<String, GatewayBind>, String> {
    let mut out: IndexMap<String, GatewayBind> = IndexMap::new();
    for (name, gw) in gateways {
        let at = format!("gateways.{name}");
        let port = gw.port.ok_or_else(|| format!("{at}.port is required"))?;
        if let Some((other, _)) = out.iter().find(|(_, g)| g.port == port) {
            return Err(format!("port {port} is configured by both gateways.{other} and {at}"));
        }
        let listeners = if gw.listeners.is_empty() {
            let mut l = listener(Some(name.clone()), None, gw.protocol, gw.tls, &at)?;
            l.policies = gateway_policies(gw.cors, &at)?;
            vec![(name.clone(), l)]
        } else {
            if gw.protocol.is_some() || gw.tls.is_some() || gw.cors.is_some() {
                return Err(format!("{at}: a gateway with `listeners` sets protocol, tls and policies on each listener"));
            }
            let mut ls = Vec::new();
            for (i, l) in gw.listeners.into_iter().enumerate() {
                let lname = l.name.clone().unwrap_or_else(|| format!("listener{i}"));
                let lat = format!("{at}.listeners[{i}]");
                let mut compiled = listener(Some(lname.clone()), l.hostname, l.protocol, l.tls, &lat)?;
                compiled.policies = gateway_policies(l.cors, &lat)?;
                ls.push((lname, compiled));
            }
            ls
        };
        out.insert(name, GatewayBind { port, listeners });
    }
    Ok(out)
}

fn listener(name: Option<String>, hostname: Option<String>, protocol: Option<ListenerProtocol>, tls: Option<TlsServerConfig>, at: &str) -> Result<LocalListener, String> {
    let protocol = match (protocol, &tls) {
        (Some(p), _) => p,
        (None, Some(_)) => ListenerProtocol::Https,
        (None, None) => ListenerProtocol::Http,
    };
    if protocol == ListenerProtocol::Https && tls.is_none() {
        return Err(format!("{at}: an HTTPS listener needs `tls`"));
    }
    Ok(LocalListener { name, namespace: None, hostname, protocol, routes: None, tls, tcp_routes: None, policies: Default::default() })
}

/// Adds a route to every listener its references name (`gw` = all of its listeners of the
/// route's kind, `gw/listener` = that one).
fn attach(gateways: &mut IndexMap<String, GatewayBind>, at: &str, refs: &GatewayRefs, route: AttachedRoute, explicit_error: bool) -> Result<(), String> {
    let http = matches!(route, AttachedRoute::Http(_));
    let mut targets: Vec<(String, usize)> = Vec::new();
    for r in &refs.0 {
        let (gw, lname) = match r.split_once('/') {
            Some((g, l)) => (g, Some(l)),
            None => (r.as_str(), None),
        };
        let Some(g) = gateways.get(gw) else {
            return Err(if r == "default" && explicit_error {
                format!("{at} must set `gateways` (there is no gateway named `default`)")
            } else {
                format!("{at}: unknown gateway reference `{r}`")
            });
        };
        let mut found = false;
        for (i, (name, l)) in g.listeners.iter().enumerate() {
            let kind_fits = matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https) == http;
            if lname.is_none_or(|n| n == name) && kind_fits {
                targets.push((gw.to_string(), i));
                found = true;
            }
        }
        if !found {
            let kind = if http { "HTTP" } else { "TCP" };
            return Err(format!("{at}: gateway reference `{r}` has no {kind} listeners"));
        }
    }
    for (gw, i) in targets {
        let Some(g) = gateways.get_mut(&gw) else { continue };
        let l = &mut g.listeners[i].1;
        match &route {
            AttachedRoute::Http(r) => l.routes.get_or_insert_with(Vec::new).push(r.clone()),
            AttachedRoute::Tcp(r) => l.tcp_routes.get_or_insert_with(Vec::new).push(r.clone()),
        }
    }
    Ok(())
}

/// Replaces every `backend: name` in the binds with a copy of the top-level backend of that
/// name (the reference keeps its weight; its own policies override the named backend's).
fn resolve_named_backends(config: &mut LocalConfig) -> Result<IndexMap<String, LocalBackend>, String> {
    let mut named: IndexMap<String, LocalBackend> = IndexMap::new();
    for (i, b) in std::mem::take(&mut config.backends).into_iter().enumerate() {
        let name = b.name.clone().ok_or_else(|| format!("backends[{i}] needs a `name`"))?;
        if matches!(b.kind, BackendKind::Named(_) | BackendKind::RouteGroup(_)) {
            return Err(format!("backends[{i}] ({name}) must be a host, ai or mcp backend (not a `backend:` or `routeGroup:` reference)"));
        }
        if named.insert(name.clone(), b).is_some() {
            return Err(format!("backends[{i}]: the name `{name}` is used twice"));
        }
    }
    let resolve = |at: &str, b: &mut LocalBackend| -> Result<(), String> {
        if b.name.is_some() {
            return Err(format!("{at}: `name` is only for top-level `backends`"));
        }
        let BackendKind::Named(name) = &b.kind else { return Ok(()) };
        let target = named.get(name).ok_or_else(|| format!("{at}: no top-level backend is named `{name}`"))?;
        let mut policies = target.policies.clone();
        for mut own in std::mem::take(&mut b.policies.0) {
            // The reference's own policy replaces the named backend's, or merges with it
            // where the policy's levels combine (`authorization`).
            if let Some(merged) = policies.get(own.spec.name).and_then(|general| own.filter.merge_over(&*general.filter)) {
                own.filter = merged;
            }
            policies.0.retain(|p| p.spec.name != own.spec.name);
            policies.0.push(own);
        }
        b.kind = target.kind.clone();
        b.policies = policies;
        Ok(())
    };
    for (bi, bind) in config.binds.iter_mut().enumerate() {
        for (li, l) in bind.listeners.iter_mut().enumerate() {
            for (ri, r) in l.routes.iter_mut().flatten().enumerate() {
                for (i, b) in r.backends.iter_mut().enumerate() {
                    resolve(&format!("binds[{bi}].listeners[{li}].routes[{ri}].backends[{i}]"), b)?;
                }
            }
        }
    }
    for (ri, r) in config.routes.iter_mut().enumerate() {
        for (i, b) in r.backends.iter_mut().enumerate() {
            resolve(&format!("routes[{ri}].backends[{i}]"), b)?;
        }
    }
    for (gi, g) in config.route_groups.iter_mut().enumerate() {
        for (ri, r) in g.routes.iter_mut().enumerate() {
            if r.gateways.is_some() {
                return Err(format!("routeGroups[{gi}].routes[{ri}]: a group's routes attach through `routeGroup:` backends, not `gateways`"));
            }
            for (i, b) in r.backends.iter_mut().enumerate() {
                resolve(&format!("routeGroups[{gi}].routes[{ri}].backends[{i}]"), b)?;
            }
        }
    }
    Ok(named)
}

/// The policies written beside a gateway's or gateway listener's fields (only `cors` so far).
fn gateway_policies(cors: Option<AnyValue>, at: &str) -> Result<ListenerPolicies, String> {
    let Some(cors) = cors else { return Ok(ListenerPolicies::default()) };
    let mut map = serde_yaml_ng::Mapping::new();
    map.insert("cors".into(), cors);
    <ListenerPolicies as Deserialize>::deserialize(serde_yaml_ng::Value::Mapping(map)).map_err(|e| format!("{at}.{e}"))
}
