//! TCP routes: a connection's bytes copied both ways to the route's backend (the TLS
//! ClientHello included, when TLS passes through), for as long as both sides keep it open.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::runtime::listener::TcpRoute;

/// Connects to the route's backend (by `connect_timeout`) and copies until either side
/// closes. Returns a short reason when the connection ends in error, for the debug log.
pub async fn proxy<C>(mut client: C, route: &TcpRoute, connect_timeout: Duration) -> Result<(), String>
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
    keepalive(&upstream);
    tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .map(|_| ())
        .map_err(|e| format!("tcp route {}: {e}", route.name))
}

/// TCP keepalive on the upstream socket, so a vanished peer ends the copy.
fn keepalive(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a valid socket descriptor with a pointer to a c_int.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            std::ptr::addr_of!(on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
