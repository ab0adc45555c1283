//! Client connections, from accept to the last request: the gateway's own accept path in
//! front of Pingora's HTTP handling. Pingora reads request heads without a total deadline
//! (and waits forever for 24 bytes when h2c is on), so tollgate reads each head itself,
//! against deadlines, then hands the connection to Pingora with those bytes put back:
//!
//! - a new connection must send complete headers within `header_timeout`;
//! - a kept-alive connection gets `http1IdleTimeout` until its next request starts, then
//!   `header_timeout` to finish the head;
//! - requests a client pipelines on one connection are answered one by one, in order,
//!   each head read as above (RFC 9112 §9.3.2);
//! - a request body may pause at most `body_timeout` between reads, a response write at
//!   most [`WRITE_TIMEOUT`];
//! - bytes that are not HTTP get a 400, an oversized head a 431, a late one a 408, each
//!   followed by a close;
//! - the process holds at most `max_connections`; past that the longest-waiting idle
//!   connection is closed to make room, or the newcomer gets a 503 ([`admission`]).

pub mod admission;
pub mod drain;
pub mod head;
pub mod prefixed;
pub mod proxy_protocol;
pub mod sni;
pub mod tcp;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Ssl, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::proxy::TollgateProxy;
use crate::runtime::listener::listener_for_sni;
use crate::runtime::tls::TlsServer;
use crate::runtime::{BindTransport, Gateway, ListenerKind};
use admission::{Admission, Permit};
use head::{read_head, Head, HeadDeadlines};
use prefixed::Prefixed;

/// Longest a response write may block on a client that stopped reading (nginx's `send_timeout`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest the gateway waits to tell a refused or broken client why.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Process-wide connection limits (command line; see `tollgate --help`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Time for a complete request head.
    pub header_timeout: Duration,
    /// Longest pause between two request-body reads.
    pub body_timeout: Duration,
}

/// Pingora's server application for one bind: admits, reads heads, runs HTTP/1 keep-alive,
/// and passes HTTP/2 connections to Pingora whole.
pub struct Gate {
    /// The proxy that serves each request.
    pub proxy: Arc<HttpProxy<TollgateProxy>>,
    /// The process's connection budget.
    pub admission: Arc<Admission>,
    /// Head and body deadlines.
    pub limits: ConnLimits,
    /// The live tables (for `frontendPolicies.http`, which reloads).
    pub gateway: Arc<ArcSwap<Gateway>>,
    /// The port this bind listens on (its listeners are looked up per connection).
    pub port: u16,
}

#[async_trait]
impl ServerApp for Gate {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let gateway = self.gateway.load_full();
        let transport = gateway.bind(self.port).map_or(BindTransport::Plain, |b| b.transport);
        let Some(permit) = self.admission.admit() else {
            // Outside the budget: answer plain HTTP clients without lingering; others just close.
            if transport == BindTransport::Plain && gateway.proxy_protocol.is_none() {
                Box::pin(refuse(stream, 503, "the gateway is at its connection limit", false)).await;
            }
            return None;
        };
        if let Some(ka) = gateway.client_keepalive {
            // Listeners are plain TCP, whose stream id is its socket descriptor.
            set_keepalive(stream.id(), ka);
        }
        let stream = match gateway.proxy_protocol {
            Some((versions, required)) => self.read_proxy_header(stream, versions, required, &permit).await?,
            None => stream,
        };
        let aged = gateway.frontend.max_connection_duration.map(|d| connection_shutdown(shutdown, Instant::now() + d));
        let shutdown = aged.as_ref().unwrap_or(shutdown);
        match transport {
            BindTransport::Plain => self.serve_http(stream, &permit, shutdown).await,
            // Boxed, as the TCP branch and the refusal are: a connection's future is as large
            // as its largest state and stays allocated while the connection is open, so TLS
            // (9.5 KiB with its handshake) held inline would cost every plain connection.
            BindTransport::Tls => Box::pin(self.serve_tls(stream, &permit, shutdown, &gateway)).await,
            BindTransport::Tcp => {
                let bind = gateway.bind(self.port)?;
                let route = bind.listeners.first().and_then(|l| l.tcp_route(None))?;
                if let Err(why) = Box::pin(tcp::proxy(stream, route, gateway.connect_timeout, gateway.upstream_connect)).await {
                    tracing::debug!(target: "tollgate", port = self.port, "{why}");
                }
                None
            }
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(&*self.proxy).await
    }
}

impl Gate {
    /// HTTP on a connection that is plain, or whose TLS is already terminated: HTTP/2 when
    /// ALPN chose it, else HTTP/1 (or h2c) from the first head.
    async fn serve_http(&self, stream: Stream, permit: &Permit, shutdown: &ShutdownWatch) -> Option<Stream> {
        let alpn_h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let tls = stream.get_ssl_digest().is_some();
        let mut conn = Prefixed::new(stream);
        let deadline = Instant::now() + self.limits.header_timeout;
        let first = HeadDeadlines { first_byte: deadline, header_timeout: self.limits.header_timeout, cap: Some(deadline) };
        // A new connection's first request is served even when a shutdown (or upgrade) began
        // after it was accepted: the client did nothing wrong, and its head deadline bounds it.
        // HTTP/2 (h2c, or ALPN h2 after TLS) must send its preface within the same deadline:
        // Pingora waits for it without one.
        match self.wait_for_head(&mut conn, first, permit, None).await {
            Head::H2c if alpn_h2 || !tls => ServerApp::process_new(&self.proxy, Box::new(conn), shutdown).await,
            _ if alpn_h2 => None,
            Head::Http1 => self.serve_http1(conn, permit, shutdown).await,
            Head::H2c => {
                answer_bad_head(conn, Head::Invalid("HTTP/2 over TLS needs ALPN h2")).await;
                None
            }
            other => {
                answer_bad_head(conn, other).await;
                None
            }
        }
    }

    /// Strips the PROXY protocol header a load balancer put in front of the connection and
    /// makes the client it names the connection's peer; `None` closes the connection.
    async fn read_proxy_header(&self, stream: Stream, versions: proxy_protocol::Versions, required: bool, permit: &Permit) -> Option<Stream> {
        let mut conn = Prefixed::new(stream);
        let deadline = Instant::now() + self.limits.header_timeout;
        let _waiting = self.admission.waiting(permit);
        let read = tokio::select! {
            biased;
            read = proxy_protocol::read(&mut conn, versions, required, deadline) => read,
            _ = permit.evict.notified() => return None,
        };
        permit.carry_on();
        match read {
            Ok(Some(client)) => conn.set_peer(client),
            Ok(None) => {}
            Err(why) => {
                tracing::debug!(target: "tollgate", port = self.port, "closing: {why}");
                return None;
            }
        }
        Some(Box::new(conn))
    }

    /// A TLS port: the ClientHello's SNI picks the listener, which terminates TLS (HTTPS, or
    /// TLS in front of a TCP route) or passes the bytes through to its TCP route.
    async fn serve_tls(&self, stream: Stream, permit: &Permit, shutdown: &ShutdownWatch, gateway: &Gateway) -> Option<Stream> {
        let deadline = Instant::now() + gateway.tls_handshake_timeout;
        let mut conn = Prefixed::new(stream);
        // Until its handshake is done a connection only waits, as one whose head is still
        // arriving does: the gateway may close it to make room for a newcomer.
        let waiting = self.admission.waiting(permit);
        let hello = tokio::select! {
            biased;
            hello = sni::read_client_hello(&mut conn, deadline) => hello,
            _ = permit.evict.notified() => return None,
        };
        permit.carry_on();
        let sni = match hello {
            sni::Hello::Tls(sni) => sni,
            other => {
                tracing::debug!(target: "tollgate", port = self.port, "no TLS ClientHello: {other:?}");
                return None;
            }
        };
        let bind = gateway.bind(self.port)?;
        let Some(listener) = listener_for_sni(&bind.listeners, sni.as_deref()) else {
            tracing::debug!(target: "tollgate", port = self.port, sni = ?sni, "no TLS listener for this server name");
            return None;
        };
        let sni_seen = sni.clone();
        let handshake = |tls: Arc<TlsServer>, conn: Prefixed| async move {
            let result = tokio::select! {
                biased;
                r = tokio::time::timeout_at(deadline, tls.acceptor.tls_handshake(conn)) => r,
                _ = permit.evict.notified() => return None,
            };
            permit.carry_on();
            match result {
                // The listener was chosen by our reading of the ClientHello; rustls must have
                // read the same name (a ClientHello split across records could differ).
                Ok(Ok(stream)) if stream.get_ssl().and_then(|t| t.server_name()).map(str::to_ascii_lowercase) != sni_seen => {
                    tracing::debug!(target: "tollgate", "TLS server name differs from the ClientHello's first record");
                    None
                }
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!(target: "tollgate", "TLS handshake failed: {e}");
                    None
                }
                Err(_) => {
                    tracing::debug!(target: "tollgate", "TLS handshake timed out");
                    None
                }
            }
        };
        match &listener.kind {
            ListenerKind::Https(tls) => {
                let stream = handshake(tls.clone(), conn).await?;
                drop(waiting);
                self.serve_http(Box::new(stream), permit, shutdown).await
            }
            ListenerKind::Tls(terminate) => {
                let route = listener.tcp_route(sni.as_deref())?;
                let result = match terminate {
                    Some(tls) => {
                        let stream = handshake(tls.clone(), conn).await?;
                        drop(waiting);
                        tcp::proxy(stream, route, gateway.connect_timeout, gateway.upstream_connect).await
                    }
                    None => {
                        drop(waiting);
                        tcp::proxy(conn, route, gateway.connect_timeout, gateway.upstream_connect).await
                    }
                };
                if let Err(why) = result {
                    tracing::debug!(target: "tollgate", port = self.port, "{why}");
                }
                None
            }
            ListenerKind::Http | ListenerKind::Tcp => None,
        }
    }

    /// Reads a head while the connection may be evicted or (given `shutdown`, between
    /// keep-alive requests) the process may stop.
    async fn wait_for_head(&self, conn: &mut Prefixed, deadlines: HeadDeadlines, permit: &Permit, shutdown: Option<&ShutdownWatch>) -> Head {
        let max_headers = self.gateway.load().frontend.http1_max_headers;
        let _waiting = self.admission.waiting(permit);
        let stopping = async {
            match shutdown {
                Some(watch) => {
                    let _ = watch.clone().wait_for(|stop| *stop).await;
                }
                None => std::future::pending().await,
            }
        };
        // A head that has arrived is served even if the connection was just told to go.
        tokio::select! {
            biased;
            head = read_head(conn, deadlines, max_headers) => {
                permit.carry_on();
                head
            }
            _ = permit.evict.notified() => Head::Idle,
            _ = stopping => Head::Idle,
        }
    }

    /// HTTP/1 requests one after another on this connection, each head read against its deadlines.
    async fn serve_http1(&self, mut conn: Prefixed, permit: &Permit, shutdown: &ShutdownWatch) -> Option<Stream> {
        let mut settings: Option<HttpPersistentSettings> = None;
        let deadline = conn.deadline.clone();
        loop {
            let idle = self.gateway.load().frontend.http1_idle_timeout;
            // The session lives in a block that ends before the request is awaited: a local
            // whose scope spans an `.await` keeps its 712 bytes in this future, moved or not.
            let request = {
                let mut session = ServerSession::new_http1(Box::new(conn));
                match settings.take() {
                    Some(s) => s.apply_to_session(&mut session),
                    None => session.set_keepalive(Some(idle.as_secs().max(1))),
                }
                // Requests sent back to back are answered in order (RFC 9112 §9.3.2), as
                // agentgateway's HTTP stack does; Pingora closes the connection otherwise.
                session.set_pipelining_enabled(true);
                if *shutdown.borrow() {
                    session.set_keepalive(None);
                }
                session.set_read_timeout(Some(self.limits.body_timeout));
                // The request's filters find the connection's deadline slot here (`on_connection_reuse`).
                session.set_connection_user_context(Some(Box::new(deadline.clone())));
                session.set_write_timeout(Some(WRITE_TIMEOUT));
                // Inline (not the boxed `async_trait` method): no per-request box and copy of the proxy future.
                self.proxy.serve_http_request(session, shutdown)
            };
            let reused = request.await?;
            let (stream, mut next) = reused.consume();
            conn = *stream.into_any().downcast::<Prefixed>().ok()?;
            conn.deadline.set(None);
            // Bytes of the next request that came with this one are read as its head, under
            // the same deadlines as bytes still to come.
            if let Some(pipelined) = next.as_mut().and_then(HttpPersistentSettings::take_pipelined_prefix) {
                conn.put_back(pipelined);
            }
            settings = next;
            let deadlines = HeadDeadlines { first_byte: Instant::now() + idle, header_timeout: self.limits.header_timeout, cap: None };
            match self.wait_for_head(&mut conn, deadlines, permit, Some(shutdown)).await {
                Head::Http1 => continue,
                Head::H2c => {
                    answer_bad_head(conn, Head::Invalid("an HTTP/2 preface on an HTTP/1 connection")).await;
                    return None;
                }
                other => {
                    answer_bad_head(conn, other).await;
                    return None;
                }
            }
        }
    }
}

/// The stop signal of one connection that may live only until `deadline`
/// (`maxConnectionDuration`): it fires at the deadline or when the process stops. HTTP/1 then
/// closes after the request in progress; Pingora's HTTP/2 loop sends GOAWAY and lets the
/// streams in flight finish, as on a graceful shutdown.
fn connection_shutdown(process: &ShutdownWatch, deadline: Instant) -> ShutdownWatch {
    let (tx, rx) = tokio::sync::watch::channel(*process.borrow());
    let mut process = process.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = process.wait_for(|stop| *stop) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = tx.closed() => return,
        }
        let _ = tx.send(true);
    });
    rx
}

/// Turns on TCP keepalive probes on a socket: client sockets (`frontendPolicies.tcp`), TCP
/// routes' upstream sockets (`config.backend.keepalives`).
fn set_keepalive(fd: i32, ka: crate::runtime::TcpKeepalive) {
    let secs = |d: Duration| libc::c_int::try_from(d.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    let options = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(ka.idle)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs(ka.interval)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, libc::c_int::try_from(ka.count.max(1)).unwrap_or(9)),
    ];
    for (level, name, value) in options {
        // SAFETY: setsockopt on the connection's own descriptor with a pointer to a c_int.
        let rc = unsafe {
            libc::setsockopt(fd, level, name, std::ptr::addr_of!(value).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t)
        };
        if rc != 0 {
            tracing::debug!(target: "tollgate", "setting TCP keepalive failed: {}", std::io::Error::last_os_error());
            return;
        }
    }
}

/// Tells a client why its connection ends (when there is anything to say) and closes it.
async fn answer_bad_head(conn: Prefixed, head: Head) {
    let (status, message) = match head {
        Head::Invalid(why) => (400, why),
        Head::TooLarge => (431, "the request head is too large"),
        Head::TooManyHeaders => (431, "the request has too many header lines"),
        Head::TimedOut => (408, "the request head did not arrive in time"),
        Head::Http1 | Head::H2c | Head::Closed | Head::Idle => return,
    };
    // Boxed: the refusal's state (its 4 KiB drain buffer) would otherwise be part of the
    // future of every connection that may answer a bad head, for as long as it is open.
    Box::pin(refuse(Box::new(conn), status, message, true)).await;
}

/// Writes a minimal JSON error with `Connection: close`, bounded in time, then closes.
/// Closing with unread request bytes makes the kernel send a reset, which can reach the
/// client before it has read the answer; so, like nginx's lingering close, what the client
/// still sends is read and dropped for a moment (bounded in time and bytes) first, when
/// `linger` (connections inside the budget; a refusal past it must not hold descriptors).
async fn refuse(mut stream: Stream, status: u16, message: &str, linger: bool) {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let kind = if status == 503 { "overloaded" } else { "invalid_request_error" };
    let body = serde_json::json!({"error": {"message": message, "type": kind, "code": status.to_string(), "param": null}}).to_string();
    let retry = if status == 503 { "retry-after: 1\r\n" } else { "" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
        body.len()
    );
    if !linger {
        // What the client sent already is read first, so closing does not turn into a reset.
        let _ = tokio::time::timeout(Duration::from_millis(20), drain_input(&mut stream)).await;
    }
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(REFUSAL_WRITE, write).await.is_ok() && linger {
        let _ = tokio::time::timeout(LINGER, drain_input(&mut stream)).await;
    }
}

/// How long a refused connection's remaining input is read and dropped before it closes.
const LINGER: Duration = Duration::from_millis(500);

/// Reads and drops the client's input until it closes, up to 64 KiB.
async fn drain_input(stream: &mut Stream) {
    let mut buf = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
