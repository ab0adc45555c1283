//! Listeners compiled: what each speaks (HTTP, HTTPS, TLS by SNI, TCP), its TLS acceptor,
//! and its TCP routes; plus the rules agentgateway applies to a port's listeners together.

use std::sync::Arc;

use crate::config::backend::split_host_port;
use crate::config::schema::{ListenerProtocol, LocalListener, LocalTcpRoute};
use crate::config::tls::FrontendTls;
use crate::router::{best_host_score, HostPattern, RouteTable};

use super::picker::WeightedPicker;
use super::tls::TlsServer;

/// How a port's connections start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindTransport {
    /// HTTP/1 or h2c.
    Plain,
    /// A TLS ClientHello, whose SNI picks the listener.
    Tls,
    /// Raw TCP for the port's TCP route.
    Tcp,
}

/// What one listener does with a connection it is given.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// HTTP routes, plain.
    Http,
    /// HTTP routes behind this TLS.
    Https(Arc<TlsServer>),
    /// TCP routes; with TLS terminated first when `Some`, else the TLS bytes pass through.
    Tls(Option<Arc<TlsServer>>),
    /// TCP routes on plain TCP.
    Tcp,
}

/// A virtual host on a port.
#[derive(Debug)]
pub struct CompiledListener {
    /// Host pattern (Host header, or SNI on TLS ports); `None` answers any host.
    pub hostname: Option<HostPattern>,
    /// What it speaks.
    pub kind: ListenerKind,
    /// Its HTTP routes.
    pub routes: RouteTable,
    /// Its TCP routes, in file order.
    pub tcp_routes: Vec<TcpRoute>,
    /// Its own (gateway-level) policies, for requests no route takes: a CORS preflight to
    /// any path is still answered.
    pub chain: Arc<super::FilterChain>,
}

/// A compiled TCP route.
#[derive(Debug)]
pub struct TcpRoute {
    /// Name for logs.
    pub name: String,
    /// SNI patterns; empty = any.
    pub hostnames: Vec<HostPattern>,
    /// `(host, port)` targets.
    pub backends: Vec<(String, u16)>,
    /// Weighted choice when there are several.
    pub picker: Option<WeightedPicker>,
}

impl TcpRoute {
    /// Chooses a backend for one connection.
    pub fn pick_backend(&self) -> Option<&(String, u16)> {
        match &self.picker {
            Some(p) => self.backends.get(p.pick()),
            None => self.backends.first(),
        }
    }
}

impl CompiledListener {
    /// The TCP route for a connection that named `sni` (most specific hostname wins).
    pub fn tcp_route(&self, sni: Option<&str>) -> Option<&TcpRoute> {
        let host = sni.unwrap_or("");
        self.tcp_routes
            .iter()
            .filter_map(|r| best_host_score(&r.hostnames, host).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| r)
    }
}

/// A listener's hostname as a pattern; `*` and none answer anything.
pub fn hostname_pattern(hostname: Option<&str>) -> Option<HostPattern> {
    hostname.filter(|h| !h.is_empty() && *h != "*").map(HostPattern::parse)
}

/// Checks the protocol against the blocks given and builds the TLS acceptor and TCP routes.
pub fn compile_kind(listener: &LocalListener, frontend_tls: &FrontendTls) -> Result<(ListenerKind, Vec<TcpRoute>), String> {
    let http = matches!(listener.protocol, ListenerProtocol::Http | ListenerProtocol::Https);
    let proto = match listener.protocol {
        ListenerProtocol::Http => "HTTP",
        ListenerProtocol::Https => "HTTPS",
        ListenerProtocol::Tls => "TLS",
        ListenerProtocol::Tcp => "TCP",
    };
    if http && listener.tcp_routes.is_some() {
        return Err(format!("an {proto} listener takes `routes`, not `tcpRoutes`"));
    }
    if http && listener.routes.is_none() {
        return Err(format!("an {proto} listener needs `routes`"));
    }
    if !http && listener.routes.is_some() {
        return Err(format!("a {proto} listener takes `tcpRoutes`, not `routes`"));
    }
    if !http && listener.tcp_routes.is_none() {
        return Err(format!("a {proto} listener needs `tcpRoutes`"));
    }
    let tls = |need: &str| -> Result<Arc<TlsServer>, String> {
        let t = listener.tls.as_ref().ok_or_else(|| format!("{need} needs `tls` (cert and key)"))?;
        TlsServer::compile(t, frontend_tls, listener.hostname.as_deref()).map(Arc::new)
    };
    let kind = match listener.protocol {
        ListenerProtocol::Http if listener.tls.is_some() => return Err("an HTTP listener takes no `tls` (use protocol: HTTPS)".into()),
        ListenerProtocol::Http => ListenerKind::Http,
        ListenerProtocol::Https => ListenerKind::Https(tls("an HTTPS listener")?),
        ListenerProtocol::Tls if listener.tls.is_some() => ListenerKind::Tls(Some(tls("a TLS listener")?)),
        ListenerProtocol::Tls => ListenerKind::Tls(None),
        ListenerProtocol::Tcp if listener.tls.is_some() => return Err("a TCP listener takes no `tls` (use protocol: TLS)".into()),
        ListenerProtocol::Tcp => ListenerKind::Tcp,
    };
    let mut routes = Vec::new();
    for (i, r) in listener.tcp_routes.iter().flatten().enumerate() {
        if listener.protocol == ListenerProtocol::Tcp && !r.hostnames.is_empty() {
            return Err(format!("tcpRoutes[{i}].hostnames: plain TCP carries no server name to match (use protocol: TLS)"));
        }
        routes.push(compile_tcp_route(r).map_err(|e| format!("tcpRoutes[{i}]: {e}"))?);
    }
    Ok((kind, routes))
}

fn compile_tcp_route(route: &LocalTcpRoute) -> Result<TcpRoute, String> {
    let mut backends = Vec::new();
    let mut weights = Vec::new();
    for (i, b) in route.backends.iter().enumerate() {
        let host = b.host.as_deref().ok_or_else(|| format!("backends[{i}]: `host` is required"))?;
        backends.push(split_host_port(host).map_err(|e| format!("backends[{i}].host: {e}"))?);
        weights.push(b.weight.unwrap_or(1));
    }
    if backends.is_empty() {
        return Err("a TCP route needs at least one backend".into());
    }
    let picker = (backends.len() > 1).then(|| WeightedPicker::new(&weights)).transpose()?;
    Ok(TcpRoute {
        name: route.name.clone().unwrap_or_else(|| "tcproute".into()),
        hostnames: route.hostnames.iter().map(|h| HostPattern::parse(h)).collect(),
        backends,
        picker,
    })
}

/// The transport of a port from its listeners: TLS and plaintext, or HTTP and TCP, do not
/// share a port (the first bytes could not say which listener a connection is for).
pub fn bind_transport(listeners: &[CompiledListener]) -> Result<BindTransport, String> {
    let tls = listeners.iter().filter(|l| matches!(l.kind, ListenerKind::Https(_) | ListenerKind::Tls(_))).count();
    let tcp = listeners.iter().filter(|l| matches!(l.kind, ListenerKind::Tcp)).count();
    let http = listeners.len() - tls - tcp;
    match (http, tls, tcp) {
        (_, 0, 0) => Ok(BindTransport::Plain),
        (0, _, 0) => Ok(BindTransport::Tls),
        (0, 0, 1) => Ok(BindTransport::Tcp),
        (0, 0, _) => Err("a port has at most one TCP listener".into()),
        _ => Err("TLS, plaintext HTTP and TCP listeners cannot share a port".into()),
    }
}

/// The listener a TLS connection belongs to, by its SNI: the most specific hostname that
/// matches (exact, then the longest wildcard); a listener without hostname takes the rest.
pub fn listener_for_sni<'a>(listeners: &'a [CompiledListener], sni: Option<&str>) -> Option<&'a CompiledListener> {
    listener_for_host(listeners, sni.unwrap_or(""))
}

/// The listener for a host name (SNI, or the `Host` of a plain request): the best-scoring
/// hostname pattern, else the first listener without one.
pub fn listener_for_host<'a>(listeners: &'a [CompiledListener], host: &str) -> Option<&'a CompiledListener> {
    listeners
        .iter()
        .filter_map(|l| match &l.hostname {
            Some(p) => p.score(host).map(|s| (s + 1, l)),
            None => Some((0, l)),
        })
        .fold(None, |best: Option<(usize, &CompiledListener)>, (score, l)| match best {
            Some((b, _)) if b >= score => best,
            _ => Some((score, l)),
        })
        .map(|(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(hostname: Option<&str>) -> CompiledListener {
        CompiledListener {
            hostname: hostname_pattern(hostname),
            kind: ListenerKind::Http,
            routes: RouteTable::default(),
            tcp_routes: Vec::new(),
            chain: Arc::default(),
        }
    }

    #[test]
    fn the_most_specific_hostname_wins_whatever_the_file_order() {
        let ls = [listener(Some("*.example.test")), listener(Some("*.secure.example.test")), listener(Some("a.example.test")), listener(None)];
        let pick = |host| listener_for_host(&ls, host).and_then(|l| l.hostname.clone());
        assert_eq!(pick("x.secure.example.test"), Some(HostPattern::parse("*.secure.example.test")));
        assert_eq!(pick("a.example.test"), Some(HostPattern::parse("a.example.test")));
        assert_eq!(pick("b.example.test"), Some(HostPattern::parse("*.example.test")));
        assert_eq!(pick("elsewhere.test"), None, "the host-less listener");
        assert!(listener_for_sni(&ls, None).is_some_and(|l| l.hostname.is_none()));
    }
}
