//! Upstream name resolution: hickory's asynchronous resolver, so a backend named by hostname
//! costs a DNS query once per record TTL (its cache), not a `getaddrinfo` call on the blocking
//! pool per request. `/etc/hosts` first, then the name servers of `/etc/resolv.conf`, the
//! address families of `config.dns.lookupFamily`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use pingora::{Error, ErrorType, Result};

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

/// A caching resolver. The gateway uses one per process ([`Dns::system`]), as the system's
/// resolver is one per host: every request, listener and config generation shares its cache
/// (internally synchronized; entries expire with their records' TTL).
pub struct Dns {
    /// `None` when the system's resolver configuration could not be used: names then go to
    /// the system's `getaddrinfo` (on the blocking pool), as a last resort.
    resolver: Option<TokioResolver>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("cached", &self.resolver.is_some()).finish()
    }
}

impl Dns {
    /// The process's resolver: `/etc/resolv.conf` and `/etc/hosts`, read on first use.
    pub fn system() -> &'static Dns {
        static SYSTEM: std::sync::OnceLock<Dns> = std::sync::OnceLock::new();
        SYSTEM.get_or_init(|| {
            let resolver = TokioResolver::builder_tokio().and_then(|mut b| {
                tune(b.options_mut());
                b.build()
            });
            match resolver {
                Ok(r) => Dns { resolver: Some(r) },
                Err(e) => {
                    tracing::warn!(target: "tollgate", error = %e, "DNS: the system resolver configuration is unusable; upstream names go to getaddrinfo, uncached");
                    Dns { resolver: None }
                }
            }
        })
    }

    /// A resolver asking the given name servers (no hosts file): for tests.
    pub fn with_config(config: ResolverConfig) -> Result<Dns, String> {
        let mut b = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        tune(b.options_mut());
        b.options_mut().use_hosts_file = ResolveHosts::Never;
        let resolver = b.build().map_err(|e| e.to_string())?;
        Ok(Dns { resolver: Some(resolver) })
    }

    /// Resolves `host:port` to an address of `families` (IPv4 first); IP literals skip DNS
    /// (and the family rule: an address written in the config is dialled as written).
    pub async fn resolve(&self, host: &str, port: u16, families: Families) -> Result<SocketAddr> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let addrs: Vec<IpAddr> = match &self.resolver {
            Some(r) => match tokio::time::timeout(DNS_TIMEOUT, r.lookup_ip(bare)).await {
                Ok(Ok(found)) => found.iter().collect(),
                Ok(Err(e)) => return Err(dns_error(format!("{host}: {e}"))),
                Err(_) => return Err(dns_error(format!("{host}: lookup timed out"))),
            },
            None => match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(e)) => return Err(dns_error(format!("{host}: {e}"))),
                Err(_) => return Err(dns_error(format!("{host}: lookup timed out"))),
            },
        };
        let admitted = || addrs.iter().filter(|ip| families.admits(ip));
        admitted()
            .find(|ip| ip.is_ipv4())
            .or_else(|| admitted().next())
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| dns_error(format!("{host}: no addresses of the allowed families (config.dns.lookupFamily)")))
    }
}

/// Both families are asked for (at once), so one cache serves every `lookupFamily`.
fn tune(opts: &mut ResolverOpts) {
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.use_hosts_file = ResolveHosts::Always;
    opts.timeout = DNS_TIMEOUT;
}

fn dns_error(msg: String) -> Box<Error> {
    let mut e = Error::explain(ErrorType::Custom("dns"), msg);
    e.esource = pingora::ErrorSource::Upstream;
    e
}

#[cfg(test)]
mod tests;
