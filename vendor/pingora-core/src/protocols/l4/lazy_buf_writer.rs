// tollgate addition (see vendor/README.md).

//! A write buffer that holds memory only while it holds bytes.
//!
//! tokio's `BufWriter` allocates its buffer up front and keeps it for the stream's whole
//! life. A proxy's downstream connections spend most of that life idle (an LLM stream between
//! two events, a kept-alive connection between two requests), so a 1,460-byte buffer per
//! connection was memory that held nothing. This writer buffers exactly as `BufWriter` does
//! (small writes are gathered until the buffer would overflow or the writer is flushed; a write
//! at least as large as the buffer goes straight through), but allocates the buffer on the first
//! buffered write and frees it whenever a flush empties it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A `BufWriter` whose buffer exists only between a buffered write and the next flush.
#[derive(Debug)]
pub(crate) struct LazyBufWriter<W> {
    inner: W,
    buf: Vec<u8>,
    written: usize,
    capacity: usize,
}

impl<W: AsyncWrite + Unpin> LazyBufWriter<W> {
    /// A writer that gathers writes smaller than `capacity` (0: every write goes straight through).
    pub(crate) fn with_capacity(capacity: usize, inner: W) -> Self {
        LazyBufWriter { inner, buf: Vec::new(), written: 0, capacity }
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer; anything still buffered is lost.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    /// Room left before the buffer would have to be flushed.
    fn room(&self) -> usize {
        self.capacity - self.buf.len()
    }

    /// Writes out what is buffered and frees the buffer.
    fn flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut ret = Ok(());
        while self.written < self.buf.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..])) {
                Ok(0) => {
                    ret = Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write the buffered data"));
                    break;
                }
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    ret = Err(e);
                    break;
                }
            }
        }
        if self.written == self.buf.len() {
            self.buf = Vec::new();
        } else {
            self.buf.drain(..self.written);
        }
        self.written = 0;
        Poll::Ready(ret)
    }

    /// Writes out what is buffered together with `bufs`, in vectored writes, until the
    /// buffered bytes are out. `Some(n)`: `n > 0` bytes of `bufs` went with them. `None`: the
    /// buffer went out alone (or held nothing), and `bufs` are still to write.
    /// Why: a response head or a chunk's size line, buffered, went out as a write of its own
    /// when the data behind it was too large to buffer.
    fn flush_with(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<Option<usize>>> {
        const SLICES: usize = 16;
        while self.written < self.buf.len() {
            let pending = self.buf.len() - self.written;
            let mut iov = [IoSlice::new(&[]); SLICES];
            iov[0] = IoSlice::new(&self.buf[self.written..]);
            let mut k = 1;
            for b in bufs.iter().filter(|b| !b.is_empty()).take(SLICES - 1) {
                iov[k] = IoSlice::new(b);
                k += 1;
            }
            match ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &iov[..k])) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write the buffered data")));
                }
                Ok(n) if n < pending => self.written += n,
                Ok(n) => {
                    self.buf = Vec::new();
                    self.written = 0;
                    return Poll::Ready(Ok((n > pending).then_some(n - pending)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(None))
    }

    /// Makes room for a write of `len` bytes: what is buffered goes out first, with the
    /// write's own bytes when these are too large to buffer and the inner writer takes
    /// vectored writes (`Some(n)`: `n` of them went).
    fn make_room(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>], len: usize) -> Poll<io::Result<Option<usize>>> {
        if len <= self.room() {
            return Poll::Ready(Ok(None));
        }
        if len >= self.capacity && self.inner.is_write_vectored() {
            return self.flush_with(cx, bufs);
        }
        ready!(self.flush_buf(cx))?;
        Poll::Ready(Ok(None))
    }

    /// Appends to the buffer, allocating it at its full capacity the first time (not for an
    /// empty write: that would hold a buffer with nothing to flush).
    fn buffer(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.capacity);
        }
        self.buf.extend_from_slice(bytes);
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LazyBufWriter<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if let Some(n) = ready!(me.make_room(cx, &[IoSlice::new(buf)], buf.len()))? {
            return Poll::Ready(Ok(n));
        }
        if buf.len() >= me.capacity {
            Pin::new(&mut me.inner).poll_write(cx, buf)
        } else {
            me.buffer(buf);
            Poll::Ready(Ok(buf.len()))
        }
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let total = bufs.iter().fold(0usize, |acc, b| acc.saturating_add(b.len()));
        if let Some(n) = ready!(me.make_room(cx, bufs, total))? {
            return Poll::Ready(Ok(n));
        }
        if total >= me.capacity {
            if me.inner.is_write_vectored() {
                return Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
            }
            // One slice at a time, as an unvectored writer would take them.
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
            return Pin::new(&mut me.inner).poll_write(cx, first);
        }
        for b in bufs {
            me.buffer(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<W: AsyncRead + Unpin> AsyncRead for LazyBufWriter<W> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records each write the inner writer is given.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        vectored: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(mut self: Pin<&mut Self>, _: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.writes.push(all);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn gathers_small_writes_and_frees_the_buffer_on_flush() {
        let mut w = LazyBufWriter::with_capacity(8, Recorder::default());
        assert_eq!(w.buf.capacity(), 0, "no buffer before the first write");
        w.write_all(b"abc").await.unwrap();
        w.write_all(b"def").await.unwrap();
        assert!(w.get_ref().writes.is_empty());
        assert_eq!(w.buf.capacity(), 8);
        w.flush().await.unwrap();
        assert_eq!(w.get_ref().writes, vec![b"abcdef".to_vec()]);
        assert_eq!(w.buf.capacity(), 0, "an emptied buffer is freed");
    }

    #[tokio::test]
    async fn overflow_flushes_first_and_large_writes_go_straight_through() {
        let mut w = LazyBufWriter::with_capacity(8, Recorder::default());
        w.write_all(b"head").await.unwrap();
        w.write_all(b"0123456789").await.unwrap();
        assert_eq!(w.get_ref().writes, vec![b"head".to_vec(), b"0123456789".to_vec()]);
        assert_eq!(w.buf.capacity(), 0);
        let mut unbuffered = LazyBufWriter::with_capacity(0, Recorder::default());
        unbuffered.write_all(b"x").await.unwrap();
        assert_eq!(unbuffered.get_ref().writes, vec![b"x".to_vec()]);
    }

    #[tokio::test]
    async fn vectored_writes_are_gathered_or_passed_on() {
        let mut w = LazyBufWriter::with_capacity(8, Recorder { vectored: true, ..Default::default() });
        let n = w.write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")]).await.unwrap();
        assert_eq!(n, 4);
        let n = w.write_vectored(&[IoSlice::new(b"0123"), IoSlice::new(b"45678")]).await.unwrap();
        assert_eq!(n, 9);
        // What was buffered goes out in the same vectored write as the large write.
        assert_eq!(w.get_ref().writes, vec![b"abcd012345678".to_vec()]);
        assert_eq!(w.buf.capacity(), 0);
        let n = w.write(b"0123456789").await.unwrap();
        assert_eq!(n, 10);
        assert_eq!(w.get_ref().writes.len(), 2, "nothing buffered: straight through");
        let mut plain = LazyBufWriter::with_capacity(4, Recorder::default());
        let n = plain.write_vectored(&[IoSlice::new(b""), IoSlice::new(b"01234"), IoSlice::new(b"5")]).await.unwrap();
        assert_eq!((n, plain.get_ref().writes.clone()), (5, vec![b"01234".to_vec()]));
    }

    /// Takes at most `limit` bytes a write.
    struct Trickle {
        limit: usize,
        got: Vec<u8>,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.got.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(mut self: Pin<&mut Self>, _: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            let mut left = self.limit;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
            }
            self.calls += 1;
            Poll::Ready(Ok(self.limit - left))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn short_writes_of_the_buffer_and_a_large_write_lose_nothing() {
        for limit in [1, 3, 4, 5, 6, 20] {
            let mut w = LazyBufWriter::with_capacity(8, Trickle { limit, got: Vec::new(), calls: 0 });
            w.write_all(b"abcd").await.unwrap();
            w.write_all(b"0123456789").await.unwrap();
            w.write_all(b"xy").await.unwrap();
            w.flush().await.unwrap();
            assert_eq!(w.get_ref().got, b"abcd0123456789xy", "limit {limit}");
        }
        let mut w = LazyBufWriter::with_capacity(8, Trickle { limit: 100, got: Vec::new(), calls: 0 });
        w.write_all(b"abcd").await.unwrap();
        w.write_all(b"0123456789").await.unwrap();
        assert_eq!(w.get_ref().calls, 1);
    }

    #[tokio::test]
    async fn empty_writes_allocate_nothing() {
        let mut w = LazyBufWriter::with_capacity(8, Recorder::default());
        assert_eq!(w.write(b"").await.unwrap(), 0);
        assert_eq!(w.write_vectored(&[IoSlice::new(b""), IoSlice::new(b"")]).await.unwrap(), 0);
        assert_eq!(w.buf.capacity(), 0);
    }
}
