//! Upstream name resolution: hickory's asynchronous resolver, so a backend named by hostname
//! costs a DNS query once per record TTL (its cache), not a `getaddrinfo` call on the blocking
//! pool per request. `/etc/hosts` first, then the name servers of `/etc/resolv.conf`, the
//! address families of `config.dns.lookupFamily`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The answers in use, by name, until their TTL runs out: a request to a named backend
    /// costs a map lookup, not a resolver query (which parses the name and searches the
    /// hosts file and the resolver's own cache, ~15k instructions).
    recent: std::sync::RwLock<std::collections::HashMap<String, Recent>>,
}

/// One name's addresses and when they expire.
struct Recent {
    addrs: Arc<[IpAddr]>,
    until: Instant,
}

/// Names remembered at most (a gateway dials a handful); past it the oldest answers go.
const RECENT_NAMES: usize = 1024;

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
                Ok(r) => Dns { resolver: Some(r), recent: Default::default() },
                Err(e) => {
                    tracing::warn!(target: "tollgate", error = %e, "DNS: the system resolver configuration is unusable; upstream names go to getaddrinfo, uncached");
                    Dns { resolver: None, recent: Default::default() }
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
        Ok(Dns { resolver: Some(resolver), recent: Default::default() })
    }

    /// Resolves `host:port` to an address of `families` (IPv4 first); IP literals skip DNS
    /// (and the family rule: an address written in the config is dialled as written).
    pub async fn resolve(&self, host: &str, port: u16, families: Families) -> Result<SocketAddr> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let addrs = match self.remembered(bare) {
            Some(addrs) => addrs,
            None => self.lookup(host, bare, port).await?,
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
impl Dns {
    fn remembered(&self, name: &str) -> Option<Arc<[IpAddr]>> {
        let recent = self.recent.read().ok()?;
        recent.get(name).filter(|r| Instant::now() < r.until).map(|r| r.addrs.clone())
    }

    /// Asks the resolver, and remembers the answer for its TTL (getaddrinfo's: not at all).
    async fn lookup(&self, host: &str, bare: &str, port: u16) -> Result<Arc<[IpAddr]>> {
        let (addrs, until): (Arc<[IpAddr]>, Option<Instant>) = match &self.resolver {
            Some(r) => match tokio::time::timeout(DNS_TIMEOUT, r.lookup_ip(bare)).await {
                Ok(Ok(found)) => (found.iter().collect(), Some(found.valid_until())),
                Ok(Err(e)) => return Err(dns_error(format!("{host}: {e}"))),
                Err(_) => return Err(dns_error(format!("{host}: lookup timed out"))),
            },
            None => match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
                Ok(Ok(found)) => (found.map(|a| a.ip()).collect(), None),
                Ok(Err(e)) => return Err(dns_error(format!("{host}: {e}"))),
                Err(_) => return Err(dns_error(format!("{host}: lookup timed out"))),
            },
        };
        if let (Some(until), Ok(mut recent)) = (until, self.recent.write()) {
            if recent.len() >= RECENT_NAMES {
                let now = Instant::now();
                recent.retain(|_, r| r.until > now);
                if recent.len() >= RECENT_NAMES {
                    recent.clear();
                }
            }
            recent.insert(bare.to_string(), Recent { addrs: addrs.clone(), until });
        }
        Ok(addrs)
    }
}

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
