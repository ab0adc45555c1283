//! Turning the request's [`UpstreamPlan`] into a Pingora `HttpPeer`: async DNS at request
//! time (never `HttpPeer::new`'s blocking lookup), TLS settings, SNI and timeouts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::ctx::UpstreamPlan;
use crate::router::host_without_port;

/// Connect timeout when the config sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest DNS lookup.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Which addresses of a name are dialled, and in which order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    /// Either family, IPv4 first (loopback-only and v4-only networks are common).
    V4First,
    /// IPv4 only.
    V4Only,
    /// IPv6 only.
    V6Only,
}

impl Families {
    /// agentgateway's `lookupFamily`; `Auto` depends on `enableIpv6` (default true).
    pub fn from_config(family: crate::config::settings::LookupFamily, enable_ipv6: bool) -> Families {
        use crate::config::settings::LookupFamily as L;
        match family {
            L::Auto if !enable_ipv6 => Families::V4Only,
            L::Auto | L::All | L::V4Preferred => Families::V4First,
            L::V4Only => Families::V4Only,
            L::V6Only => Families::V6Only,
        }
    }

    fn admits(self, ip: &IpAddr) -> bool {
        match self {
            Families::V4First => true,
            Families::V4Only => ip.is_ipv4(),
            Families::V6Only => ip.is_ipv6(),
        }
    }
}

/// Resolves `host:port` without blocking the runtime; IP literals skip DNS (and the family
/// rule: an address written in the config is dialled as written).
pub async fn resolve(host: &str, port: u16, families: Families) -> Result<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = tokio::net::lookup_host((bare, port));
    let addrs = match tokio::time::timeout(DNS_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.filter(|a| families.admits(&a.ip())).collect::<Vec<_>>(),
        Ok(Err(e)) => return Err(dns_error(format!("{host}: {e}"))),
        Err(_) => return Err(dns_error(format!("{host}: lookup timed out"))),
    };
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| dns_error(format!("{host}: no addresses of the allowed families (config.dns.lookupFamily)")))
}

fn dns_error(msg: String) -> Box<Error> {
    let mut e = Error::explain(ErrorType::Custom("dns"), msg);
    e.esource = pingora::ErrorSource::Upstream;
    e
}

/// The name used for SNI and certificate checks: `backendTLS.hostname`, else the Host sent
/// upstream (after rewrites), else the target host.
pub fn tls_name(plan: &UpstreamPlan, upstream_host_header: Option<&str>) -> String {
    if let Some(name) = plan.tls.as_ref().and_then(|t| t.sni.clone()) {
        return name;
    }
    let is_name = |h: &str| !h.is_empty() && h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_err();
    match upstream_host_header.map(host_without_port) {
        Some(h) if is_name(h) => h.to_string(),
        _ => plan.host.trim_start_matches('[').trim_end_matches(']').to_string(),
    }
}

/// Builds the peer for one upstream attempt.
pub async fn build_peer(plan: &UpstreamPlan, upstream_host_header: Option<&str>) -> Result<Box<HttpPeer>> {
    let addr = resolve(&plan.host, plan.port, plan.connect.families).await?;
    let sni = if plan.tls.is_some() { tls_name(plan, upstream_host_header) } else { String::new() };
    let mut peer = HttpPeer::new(addr, plan.tls.is_some(), sni);
    let connect = plan.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    peer.options.connection_timeout = Some(connect);
    peer.options.total_connection_timeout = Some(connect);
    peer.options.read_timeout = plan.io_timeout;
    peer.options.write_timeout = plan.io_timeout;
    peer.options.idle_timeout = Some(plan.connect.idle);
    peer.options.tcp_keepalive = plan.connect.keepalive.map(|ka| pingora::protocols::l4::ext::TcpKeepalive {
        idle: ka.idle,
        interval: ka.interval,
        count: usize::try_from(ka.count).unwrap_or(9),
        user_timeout: Duration::ZERO,
    });
    if let Some(tls) = &plan.tls {
        peer.options.verify_cert = !tls.insecure;
        peer.options.verify_hostname = !(tls.insecure || tls.insecure_host);
        peer.options.ca = tls.roots.clone();
        peer.client_cert_key = tls.client_cert.clone();
    }
    Ok(Box::new(peer))
}
