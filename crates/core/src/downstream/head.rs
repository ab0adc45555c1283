//! Reading a request's head before Pingora does, against deadlines Pingora does not have:
//! a client gets `header_timeout` to send complete headers, an idle kept-alive connection
//! gets `idle_timeout` before the first byte of its next request, and bytes that cannot be
//! HTTP are refused at once instead of waiting for a header end that never comes.

use std::time::Duration;

use pingora_timeout::fast_timeout::fast_timeout;
use tokio::time::Instant;

use super::prefixed::Prefixed;

/// The HTTP/2 connection preface (RFC 9113 §3.4): a prior-knowledge h2c client.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest request head accepted (request line and headers), like nginx's default
/// `large_client_header_buffers` (4 × 8 KiB) with room for big tokens and cookies.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What the start of a request turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// A complete HTTP/1 request head is in the prefix.
    Http1,
    /// An HTTP/2 prior-knowledge preface.
    H2c,
    /// The client closed (or the connection failed) before sending a byte.
    Closed,
    /// Not HTTP: answer 400 and close.
    Invalid(&'static str),
    /// Head larger than allowed: 431 and close.
    TooLarge,
    /// More header lines than allowed: 431 and close.
    TooManyHeaders,
    /// Bytes arrived but the head was not complete in time: 408 and close.
    TimedOut,
    /// Nothing arrived in time (an idle connection): close quietly.
    Idle,
}

/// Deadlines for one request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadDeadlines {
    /// When the first byte must have arrived.
    pub first_byte: Instant,
    /// How long the head may take once its first byte is in.
    pub header_timeout: Duration,
    /// Never later than this (the connection's own first-request deadline).
    pub cap: Option<Instant>,
}

/// Reads until the prefix holds a complete head (or the answer is otherwise clear).
pub async fn read_head(conn: &mut Prefixed, deadlines: HeadDeadlines, max_headers: usize) -> Head {
    let mut complete_by = if conn.prefix.is_empty() { None } else { Some(Instant::now() + deadlines.header_timeout) };
    loop {
        if !conn.prefix.is_empty() {
            match classify(&conn.prefix, max_headers) {
                Some(head) => return head,
                None if conn.prefix.len() >= MAX_HEAD_BYTES => return Head::TooLarge,
                None => {}
            }
        }
        let mut until = complete_by.unwrap_or(deadlines.first_byte);
        if let Some(cap) = deadlines.cap {
            until = until.min(cap);
        }
        let had_bytes = !conn.prefix.is_empty();
        match wait_for_bytes(conn, until).await {
            Err(_) => return if had_bytes { Head::TimedOut } else { Head::Idle },
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {
                complete_by.get_or_insert_with(|| Instant::now() + deadlines.header_timeout);
            }
        }
    }
}

/// The longest single wait on Pingora's timer wheel. Its entries stay until their deadline even
/// when the wait ends first, so a long idle timeout (600 s by default) is waited for in slices:
/// the entries alive at once stay bounded by this slice's ticks, not by the idle timeout's.
const TIMER_SLICE: Duration = Duration::from_secs(30);

/// Reads more of a head, giving up at `until` (`Err(())`).
///
/// Waits on Pingora's shared 10 ms timer wheel, not a tokio timer: registering a tokio timer per
/// kept-alive request woke the runtime's driver through its eventfd each time (one `write`
/// system call and one extra `epoll_wait` per request, issue 14). A read that a slice's end
/// interrupts loses nothing (`read_buf` is cancel-safe).
async fn wait_for_bytes(conn: &mut Prefixed, until: Instant) -> Result<std::io::Result<usize>, ()> {
    loop {
        let wait = until.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Err(());
        }
        match fast_timeout(wait.min(TIMER_SLICE), conn.fill(MAX_HEAD_BYTES - conn.prefix.len())).await {
            Ok(read) => return Ok(read),
            Err(_) if wait > TIMER_SLICE => continue,
            Err(_) => return Err(()),
        }
    }
}

/// Decides from the bytes so far; `None` when more are needed.
pub fn classify(buf: &[u8], max_headers: usize) -> Option<Head> {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Head::H2c);
    }
    // Parse only once a line has ended: a trickling client costs one scan per line.
    memchr_newline(buf)?;
    // Uninitialised room: filling 256 empty headers first cost ~1.3k instructions per request.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADER_LINES];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers[..max_headers.min(MAX_HEADER_LINES)]) {
        Ok(httparse::Status::Complete(_)) => Some(Head::Http1),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Head::TooManyHeaders),
        Err(httparse::Error::Version) => Some(Head::Invalid("unsupported HTTP version")),
        Err(_) => Some(Head::Invalid("malformed request")),
    }
}

/// Upper bound on header lines whatever the config says (Pingora's own limit).
const MAX_HEADER_LINES: usize = 256;

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_heads_and_prefaces() {
        assert_eq!(classify(b"GET / HTTP/1.0\r\n\r\n", 100), Some(Head::Http1));
        assert_eq!(classify(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 100), Some(Head::Http1));
        assert_eq!(classify(b"GET / HTTP/1.1\nHost: a\n\n", 100), Some(Head::Http1));
        assert_eq!(classify(b"GET / HTTP/1.1\r\nHost: a\r\n", 100), None);
        assert_eq!(classify(b"GET / HT", 100), None);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n", 100), None);
        assert_eq!(classify(H2_PREFACE, 100), Some(Head::H2c));
    }

    #[test]
    fn garbage_is_refused_at_the_first_line() {
        assert!(matches!(classify(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 100), Some(Head::Invalid(_))));
        assert!(matches!(classify(b"GET / HTTP/9.9\r\n\r\n", 100), Some(Head::Invalid(_))));
        assert!(matches!(classify(b"G\0T / HTTP/1.1\r\n", 100), Some(Head::Invalid(_))));
    }

    #[test]
    fn header_count_limit() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..5 {
            head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(classify(&head, 5), Some(Head::Http1));
        assert_eq!(classify(&head, 4), Some(Head::TooManyHeaders));
    }
}
