//! A client connection whose first bytes the gateway has already read (to check the request
//! head against its deadlines) and hands back to Pingora's parser: reads serve those bytes
//! first, everything else goes to the connection unchanged.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest, UniqueID,
    UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A connection plus the bytes read from it that Pingora has not seen yet.
#[derive(Debug)]
pub struct Prefixed {
    inner: Stream,
    /// Read from the connection, not yet consumed.
    pub prefix: BytesMut,
    /// The current request's deadline, set by its route's `timeout` policy.
    pub deadline: Arc<DeadlineSlot>,
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
    /// The client named by a PROXY protocol header, reported instead of the socket's peer.
    peer: Option<Arc<SocketDigest>>,
}

/// A request deadline shared between a connection and the request it is serving. Reads on
/// the connection fail once it passes; Pingora polls the client connection all through a
/// request (for its body, then to notice a disconnect), so the failure ends the exchange at
/// the deadline even while the upstream trickles its answer, and the proxy's error path
/// tells the client it timed out.
#[derive(Debug)]
pub struct DeadlineSlot {
    base: Instant,
    /// Nanoseconds after `base`, plus one; 0 means no deadline.
    at: AtomicU64,
}

impl DeadlineSlot {
    /// An empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(DeadlineSlot { base: Instant::now(), at: AtomicU64::new(0) })
    }

    /// Sets (or with `None` clears) the deadline.
    pub fn set(&self, when: Option<Instant>) {
        let v = when.map_or(0, |w| u64::try_from(w.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1) + 1);
        self.at.store(v, Ordering::Release);
    }

    /// The deadline, if any.
    pub fn get(&self) -> Option<Instant> {
        match self.at.load(Ordering::Acquire) {
            0 => None,
            v => Some(self.base + Duration::from_nanos(v - 1)),
        }
    }
}

impl Prefixed {
    /// Wraps a connection with nothing read yet.
    pub fn new(inner: Stream) -> Self {
        Prefixed { inner, prefix: BytesMut::new(), deadline: DeadlineSlot::new(), timer: None, peer: None }
    }

    /// Whether the request deadline has passed (a read then fails with `TimedOut`).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.deadline.get() else {
            self.timer = None;
            return false;
        };
        if self.timer.as_ref().is_none_or(|(t, _)| *t != at) {
            self.timer = Some((at, Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at)))));
        }
        self.timer.as_mut().is_some_and(|(_, sleep)| sleep.as_mut().poll(cx).is_ready())
    }

    /// Reads more bytes from the connection into the prefix; 0 means the client closed.
    pub async fn fill(&mut self, at_most: usize) -> std::io::Result<usize> {
        self.prefix.reserve(at_most.min(4 * 1024));
        let mut limited = (&mut self.inner).take(at_most as u64);
        limited.read_buf(&mut self.prefix).await
    }

    /// Puts bytes read earlier back in front of what the prefix still holds (a pipelined next
    /// request that Pingora read past the end of the last one).
    pub fn put_back(&mut self, mut earlier: BytesMut) {
        if !self.prefix.is_empty() {
            earlier.extend_from_slice(&self.prefix);
        }
        self.prefix = earlier;
    }

    /// Reports `client` as the connection's peer (from a PROXY protocol header): the request's
    /// client address, `source.*` in CEL, the logs.
    pub fn set_peer(&mut self, client: std::net::SocketAddr) {
        // Listeners are plain TCP, whose stream id is its socket descriptor.
        let digest = SocketDigest::from_raw_fd(self.inner.id());
        let _ = digest.peer_addr.set(Some(pingora::protocols::l4::socket::SocketAddr::Inet(client)));
        self.peer = Some(Arc::new(digest));
    }

    /// The connection underneath (for the TLS and socket details Pingora asks about).
    pub fn inner(&self) -> &Stream {
        &self.inner
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.poll_deadline(cx) {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the request deadline passed")));
        }
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Idle connections hold no buffer of ours.
                self.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Prefixed {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for Prefixed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Prefixed {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Prefixed {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Prefixed {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Prefixed {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.peer.clone().or_else(|| self.inner.get_socket_digest())
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Prefixed {
    /// Pingora peeks for the HTTP/2 preface; the gateway has read the head already, so the
    /// answer comes from the prefix without waiting (what is missing reads as zeros, which is
    /// never the preface).
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let n = self.prefix.len().min(buf.len());
        buf[..n].copy_from_slice(&self.prefix[..n]);
        buf[n..].fill(0);
        Ok(true)
    }
}
