//! Turning the request's [`UpstreamPlan`] into a Pingora `HttpPeer`: async DNS at request
//! time (never `HttpPeer::new`'s blocking lookup), TLS settings, SNI and timeouts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pingora::prelude::HttpPeer;
use pingora::Result;

use crate::ctx::UpstreamPlan;
use crate::router::host_without_port;

/// Connect timeout when the config sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub use super::dns::Families;

/// Resolves `host:port` to an address of `families` with the process's caching resolver;
/// IP literals skip DNS.
pub async fn resolve(host: &str, port: u16, families: Families) -> Result<SocketAddr> {
    super::dns::Dns::system().resolve(host, port, families).await
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
