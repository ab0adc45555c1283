//! Server-sent events: an incremental parser for upstream streams and the writer for the
//! client's. Events are bounded so a stream that never ends an event cannot grow memory.

use bytes::{Bytes, BytesMut};

/// Largest single event accepted from an upstream.
pub const MAX_EVENT: usize = 16 * 1024 * 1024;

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` (empty means `message`).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:`.
    pub id: Option<String>,
    /// `retry:` (milliseconds): how long to wait before resuming a closed stream.
    pub retry: Option<u64>,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct Parser {
    buf: BytesMut,
    /// How far `buf` is known to hold no blank line (so big events are scanned once).
    scanned: usize,
}

impl Parser {
    /// Feeds bytes; returns the events they complete, or an error when an event is too big.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, String> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        // A separator may straddle the previous end: look back two bytes.
        while let Some((end, sep)) = find_blank_line(&self.buf, self.scanned.saturating_sub(2)) {
            let block = self.buf.split_to(end + sep);
            self.scanned = 0;
            let text = String::from_utf8_lossy(&block[..end]);
            if let Some(e) = parse_block(&text) {
                events.push(e);
            }
        }
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_EVENT {
            return Err(format!("an event stream sent an event over {MAX_EVENT} bytes"));
        }
        Ok(events)
    }
}

fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    for i in from..buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
    }
    None
}

fn parse_block(text: &str) -> Option<Event> {
    let mut e = Event::default();
    let mut data = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => e.event = value.to_string(),
            "data" => data.push(value),
            "id" => e.id = Some(value.to_string()),
            "retry" => e.retry = value.parse().ok(),
            _ => {}
        }
    }
    // A priming event (SEP-1699) carries only `id` and `retry`: kept, for resumption.
    if data.is_empty() && e.event.is_empty() && e.id.is_none() && e.retry.is_none() {
        return None;
    }
    e.data = data.join("\n");
    Some(e)
}

/// A `message` event carrying one JSON-RPC message.
pub fn message_event(json: &serde_json::Value) -> Bytes {
    // Written straight into the buffer: `{json}` in a `format!` goes through `fmt` (~5k).
    // Compact JSON holds no newline, so the data stays one line.
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"event: message\ndata: ");
    let _ = serde_json::to_writer(&mut out, json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A named event with raw data.
pub fn named_event(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks() {
        let mut p = Parser::default();
        assert!(p.feed(b"event: endpoint\r\ndata: /messages/?session_id=1\r\n").unwrap().is_empty());
        let ev = p.feed(b"\r\n: ping\n\ndata: {\"a\":\ndata: 1}\n\n").unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "endpoint");
        assert_eq!(ev[0].data, "/messages/?session_id=1");
        assert_eq!(ev[1].data, "{\"a\":\n1}");
    }

    #[test]
    fn finds_separators_split_across_feeds() {
        let mut p = Parser::default();
        assert!(p.feed(b"data: 1\n").unwrap().is_empty());
        assert_eq!(p.feed(b"\ndata: 2\r\n").unwrap()[0].data, "1");
        assert!(p.feed(b"\r").unwrap().is_empty());
        assert_eq!(p.feed(b"\n").unwrap()[0].data, "2");
        let big = vec![b'x'; 1 << 20];
        assert!(p.feed(b"data: ").unwrap().is_empty());
        for chunk in big.chunks(1000) {
            assert!(p.feed(chunk).unwrap().is_empty());
        }
        assert_eq!(p.feed(b"\n\n").unwrap()[0].data.len(), 1 << 20);
    }
}
