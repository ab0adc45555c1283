// tollgate addition (see vendor/README.md).

//! A writer that sends a held request head in the same system call as the body's first bytes.
//!
//! Pingora writes an upstream request's head and flushes it, then writes the body: two
//! `sendto`s (and two wake-ups of the upstream) for a request whose body the gateway already
//! holds whole, as an LLM gateway does for every chat request. The HTTP/1 client session can
//! hold the head instead (`HttpSession::hold_request_header`); the body writer then writes
//! through this wrapper, which puts the head's unsent bytes in front of each write as one
//! vectored write until the head is out.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// At most this many of the caller's slices go into one vectored write behind the head.
const MAX_SLICES: usize = 8;

/// `inner`, with `head` written before anything else.
pub(crate) struct HeadFirst<'a, W> {
    head: &'a [u8],
    sent: usize,
    inner: &'a mut W,
}

impl<'a, W: AsyncWrite + Unpin> HeadFirst<'a, W> {
    pub(crate) fn new(head: &'a [u8], inner: &'a mut W) -> Self {
        HeadFirst { head, sent: 0, inner }
    }

    /// Whether some of the head is still unsent (a body write of nothing sends none of it).
    pub(crate) fn head_pending(&self) -> bool {
        self.sent < self.head.len()
    }

    /// Writes the rest of the head together with `bufs`; returns how many of `bufs`' bytes
    /// went out (0 only when `bufs` are empty and the head is out).
    fn poll_with_head(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        while self.head_pending() {
            let rest = &self.head[self.sent..];
            let mut slices = [IoSlice::new(&[]); MAX_SLICES + 1];
            slices[0] = IoSlice::new(rest);
            let mut count = 1;
            for b in bufs.iter().filter(|b| !b.is_empty()).take(MAX_SLICES) {
                slices[count] = IoSlice::new(b);
                count += 1;
            }
            let n = ready!(Pin::new(&mut *self.inner).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write the request head")));
            }
            if n <= rest.len() {
                self.sent += n;
                continue;
            }
            self.sent = self.head.len();
            return Poll::Ready(Ok(n - rest.len()));
        }
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for HeadFirst<'_, W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_with_head(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_with_head(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_with_head(cx, &[]))?;
        Pin::new(&mut *me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_with_head(cx, &[]))?;
        Pin::new(&mut *me.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records each write; accepts at most `limit` bytes per call.
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: usize,
        flushed: bool,
    }

    impl Recorder {
        fn new(limit: usize) -> Self {
            Recorder { writes: Vec::new(), limit, flushed: false }
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(mut self: Pin<&mut Self>, _: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            let mut all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            all.truncate(self.limit);
            let n = all.len();
            self.writes.push(all);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushed = true;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn head_and_body_go_out_in_one_write() {
        let mut inner = Recorder::new(usize::MAX);
        let mut w = HeadFirst::new(b"POST / HTTP/1.1\r\n\r\n", &mut inner);
        w.write_all(b"{\"a\":1}").await.unwrap();
        w.write_all(b"more").await.unwrap();
        assert!(!w.head_pending());
        assert_eq!(inner.writes, vec![b"POST / HTTP/1.1\r\n\r\n{\"a\":1}".to_vec(), b"more".to_vec()]);
    }

    #[tokio::test]
    async fn short_writes_resume_in_the_head_and_in_the_body() {
        let mut inner = Recorder::new(5);
        let mut w = HeadFirst::new(b"HEAD-LINE\r\n", &mut inner);
        w.write_all(b"body-bytes").await.unwrap();
        let all: Vec<u8> = inner.writes.concat();
        assert_eq!(all, b"HEAD-LINE\r\nbody-bytes".to_vec());
        assert!(inner.writes.iter().all(|w| w.len() <= 5));
    }

    #[tokio::test]
    async fn a_flush_with_no_body_sends_the_head() {
        let mut inner = Recorder::new(usize::MAX);
        let mut w = HeadFirst::new(b"GET / HTTP/1.1\r\n\r\n", &mut inner);
        w.write_all(b"").await.unwrap();
        assert!(w.head_pending(), "an empty write sends nothing");
        w.flush().await.unwrap();
        assert!(!w.head_pending());
        assert_eq!(inner.writes, vec![b"GET / HTTP/1.1\r\n\r\n".to_vec()]);
        assert!(inner.flushed);
    }

    #[tokio::test]
    async fn vectored_body_writes_follow_the_head() {
        let mut inner = Recorder::new(usize::MAX);
        let mut w = HeadFirst::new(b"H\r\n", &mut inner);
        let n = w.write_vectored(&[IoSlice::new(b"5\r\n"), IoSlice::new(b"hello"), IoSlice::new(b"\r\n")]).await.unwrap();
        assert_eq!(n, 10);
        assert_eq!(inner.writes, vec![b"H\r\n5\r\nhello\r\n".to_vec()]);
    }
}
