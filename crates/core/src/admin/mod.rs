//! The operator endpoints, each a small Pingora HTTP service on its own address:
//! admin (`adminAddr`, default 127.0.0.1:15000), Prometheus stats (`statsAddr`, default
//! port 15020, `/metrics`) and readiness (`readinessAddr`, default port 15021, `/healthz/ready`).

pub mod dump;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::logging::LogControl;
use crate::telemetry::metrics::Metrics;

/// Resolves an address setting: `ip:port`, `localhost:port`, `[::]:port`, or `off` (None).
pub fn parse_addr(value: Option<&str>, default: &str, ipv6: bool) -> Result<Option<String>, String> {
    let v = value.unwrap_or(default);
    if v == "off" {
        return Ok(None);
    }
    let v = v.replace("localhost:", "127.0.0.1:");
    let v = if !ipv6 && v.starts_with("[::]:") { v.replacen("[::]", "0.0.0.0", 1) } else { v };
    v.parse::<SocketAddr>().map_err(|_| format!("`{v}` is not an address (ip:port, localhost:port or off)"))?;
    Ok(Some(v))
}

fn respond(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

/// `adminAddr`: config dump, run-time log level, graceful shutdown, and an index page.
pub struct AdminApp {
    /// The effective config as JSON, secrets redacted.
    pub config_dump: Arc<serde_json::Value>,
    /// The log level control.
    pub logging: Arc<LogControl>,
}

const INDEX: &str = r#"<!doctype html><html><head><title>tollgate admin</title></head><body>
<h1>tollgate admin</h1><ul>
<li><a href="/config_dump">/config_dump</a>: the effective config as JSON (secrets redacted)</li>
<li><a href="/logging">/logging</a>: the log level; <code>POST /logging?level=debug</code> changes it</li>
<li><code>POST /quitquitquit</code>: drain and exit (as SIGTERM)</li>
</ul></body></html>"#;

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (method, path, query) = (req.method.clone(), req.uri.path().to_string(), req.uri.query().map(str::to_string));
        match (method.as_str(), path.as_str()) {
            ("GET", "/") => respond(200, "text/html; charset=utf-8", INDEX),
            ("GET", "/config_dump") => {
                respond(200, "application/json", serde_json::to_vec_pretty(&*self.config_dump).unwrap_or_default())
            }
            ("GET", "/logging") => respond(200, "text/plain", format!("{}\n", self.logging.current())),
            ("POST", "/logging") => match query_param(query.as_deref(), "level") {
                Some(level) => match self.logging.set(level) {
                    Ok(now) => respond(200, "text/plain", format!("{now}\n")),
                    Err(e) => respond(400, "text/plain", format!("{e}\n")),
                },
                None => respond(400, "text/plain", "use POST /logging?level=LEVEL\n"),
            },
            ("POST", "/quitquitquit") => {
                // The same path as SIGTERM: stop accepting, drain, exit 0. Signalled a moment
                // after this answer is written: an idle gateway drains at once, and the caller
                // must not see its connection cut instead of the answer.
                tokio::spawn(async {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
                    unsafe {
                        libc::kill(libc::getpid(), libc::SIGTERM);
                    }
                });
                respond(200, "text/plain", "draining\n")
            }
            _ => respond(404, "text/plain", "not found; see /\n"),
        }
    }
}

/// `statsAddr`: Prometheus text at `/metrics` (and `/stats/prometheus`).
pub struct StatsApp {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl ServeHttp for StatsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" | "/stats/prometheus" => {
                respond(200, "application/openmetrics-text; version=1.0.0; charset=utf-8", self.metrics.encode())
            }
            _ => respond(404, "text/plain", "see /metrics\n"),
        }
    }
}

/// `readinessAddr`: 200 at `/healthz/ready` once every bind accepts connections.
pub struct ReadinessApp {
    /// The bind ports to check on loopback.
    pub ports: Vec<u16>,
    ready: AtomicBool,
}

impl ReadinessApp {
    /// A readiness check for these bind ports.
    pub fn new(ports: Vec<u16>) -> Self {
        ReadinessApp { ports, ready: AtomicBool::new(false) }
    }

    fn all_listening(&self) -> bool {
        self.ports.iter().all(|p| {
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], *p)), Duration::from_millis(200)).is_ok()
        })
    }
}

#[async_trait]
impl ServeHttp for ReadinessApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().uri.path() != "/healthz/ready" {
            return respond(404, "text/plain", "see /healthz/ready\n");
        }
        if !self.ready.load(Ordering::Relaxed) && self.all_listening() {
            self.ready.store(true, Ordering::Relaxed);
        }
        if self.ready.load(Ordering::Relaxed) {
            respond(200, "text/plain", "ready\n")
        } else {
            respond(503, "text/plain", "not ready: binds not listening yet\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr(None, "localhost:15000", true).unwrap().as_deref(), Some("127.0.0.1:15000"));
        assert_eq!(parse_addr(Some("off"), "x", true).unwrap(), None);
        assert_eq!(parse_addr(None, "[::]:15020", false).unwrap().as_deref(), Some("0.0.0.0:15020"));
        assert!(parse_addr(Some("nowhere"), "x", true).is_err());
    }
}
