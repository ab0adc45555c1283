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

/// Resolves `host:port` without blocking the runtime; IP literals skip DNS.
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = tokio::net::lookup_host((bare, port));
    let addrs = match tokio::time::timeout(DNS_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
        Ok(Err(e)) => return Err(dns_error(format!("{host}: {e}"))),
        Err(_) => return Err(dns_error(format!("{host}: lookup timed out"))),
    };
    // Prefer IPv4 when both exist: loopback-only and v4-only networks are common.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| dns_error(format!("{host}: no addresses")))
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
    let addr = resolve(&plan.host, plan.port).await?;
    let sni = if plan.tls.is_some() { tls_name(plan, upstream_host_header) } else { String::new() };
    let mut peer = HttpPeer::new(addr, plan.tls.is_some(), sni);
    let connect = plan.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    peer.options.connection_timeout = Some(connect);
    peer.options.total_connection_timeout = Some(connect);
    peer.options.read_timeout = plan.io_timeout;
    peer.options.write_timeout = plan.io_timeout;
    peer.options.idle_timeout = Some(plan.pool.idle);
    peer.options.tcp_keepalive = plan.pool.keepalive.map(|ka| pingora::protocols::l4::ext::TcpKeepalive {
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
