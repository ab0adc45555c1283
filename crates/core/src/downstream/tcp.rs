//! TCP routes: a connection's bytes copied both ways to the route's backend (the TLS
//! ClientHello included, when TLS passes through), for as long as both sides keep it open.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::runtime::listener::TcpRoute;
use crate::ctx::ConnectPolicy;
use crate::proxy::peer::resolve;

/// Connects to the route's backend (by `connect_timeout`, resolving and keeping the
/// connection alive as `config.dns` and `config.backend` say) and copies until either side closes. Returns a short reason when the
/// connection ends in error, for the debug log.
pub async fn proxy<C>(mut client: C, route: &TcpRoute, connect_timeout: Duration, policy: ConnectPolicy) -> Result<(), String>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (host, port) = route.pick_backend().ok_or("the TCP route has no backend")?.clone();
    let addr = resolve(&host, port, policy.families).await.map_err(|e| format!("resolve {host}: {e}"))?;
    let mut upstream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect to {host}:{port}: {e}")),
        Err(_) => return Err(format!("connect to {host}:{port}: timed out")),
    };
    let _ = upstream.set_nodelay(true);
    if let Some(ka) = policy.keepalive {
        use std::os::fd::AsRawFd;
        super::set_keepalive(upstream.as_raw_fd(), ka);
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .map(|_| ())
        .map_err(|e| format!("tcp route {}: {e}", route.name))
}
