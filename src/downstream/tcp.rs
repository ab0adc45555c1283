//! TCP routes: a connection's bytes copied both ways to the route's backend (the TLS
//! ClientHello included, when TLS passes through), for as long as both sides keep it open.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::runtime::listener::TcpRoute;
use crate::runtime::TcpKeepalive;

/// Connects to the route's backend (by `connect_timeout`, with `config.backend`'s TCP
/// keepalive) and copies until either side closes. Returns a short reason when the
/// connection ends in error, for the debug log.
pub async fn proxy<C>(mut client: C, route: &TcpRoute, connect_timeout: Duration, keepalive: Option<TcpKeepalive>) -> Result<(), String>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (host, port) = route.pick_backend().ok_or("the TCP route has no backend")?.clone();
    let mut upstream = match tokio::time::timeout(connect_timeout, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect to {host}:{port}: {e}")),
        Err(_) => return Err(format!("connect to {host}:{port}: timed out")),
    };
    let _ = upstream.set_nodelay(true);
    if let Some(ka) = keepalive {
        use std::os::fd::AsRawFd;
        super::set_keepalive(upstream.as_raw_fd(), ka);
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .map(|_| ())
        .map_err(|e| format!("tcp route {}: {e}", route.name))
}
