//! Resumable client streams (MCP's Last-Event-ID, SEP-1699): every event tollgate sends on a
//! session's event stream carries an id `<stream>-<seq>` and is kept for a while, so a client
//! whose connection dropped can GET the stream again with `Last-Event-ID` and receive what it
//! missed, including the answer to a call that finished while it was away. Stream 0 is the
//! session's GET stream; each POST answered as a stream gets its own number.
//!
//! Bounded per session: at most [`MAX_STREAMS`] logs, [`MAX_EVENTS`] events and
//! [`MAX_BYTES`] per log (the oldest go first), and a finished log is kept [`KEEP_FINISHED`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

/// Streams whose events a session keeps.
pub const MAX_STREAMS: usize = 8;
/// Events kept per stream.
pub const MAX_EVENTS: usize = 256;
/// Bytes kept per stream.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long a finished stream can still be resumed.
pub const KEEP_FINISHED: Duration = Duration::from_secs(120);

/// The GET stream's number.
pub const GET_STREAM: u64 = 0;

#[derive(Default)]
struct Log {
    events: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next_seq: u64,
    finished: Option<Instant>,
}

/// A session's recent events, by stream.
pub struct Replay {
    logs: Mutex<HashMap<u64, Log>>,
    next_stream: Mutex<u64>,
    /// Bumped on every event, so a resumed stream wakes for new ones.
    changed: watch::Sender<u64>,
}

impl Default for Replay {
    fn default() -> Self {
        Replay { logs: Mutex::default(), next_stream: Mutex::new(GET_STREAM + 1), changed: watch::channel(0).0 }
    }
}

/// What a `Last-Event-ID` resumes: the events after it, and whether that stream is over.
#[derive(Clone)]
pub struct Resumed {
    /// The stream the id belongs to.
    pub stream: u64,
    /// Events after the id, in order, ready to write.
    pub events: Vec<Bytes>,
    /// The sequence number of the last event returned (to ask for more).
    pub last_seq: u64,
    /// The stream has ended: nothing more will come.
    pub finished: bool,
}

impl Replay {
    /// A new stream's number (its log starts empty).
    pub fn open(&self) -> u64 {
        let mut n = self.next_stream.lock().unwrap();
        let stream = *n;
        *n += 1;
        let mut logs = self.logs.lock().unwrap();
        prune(&mut logs);
        logs.insert(stream, Log::default());
        stream
    }

    /// Records one event and returns it framed with its id (`data` is one JSON message, or
    /// empty for a priming event, which also tells the client how soon to reconnect).
    pub fn push(&self, stream: u64, data: Option<&str>) -> Bytes {
        let mut logs = self.logs.lock().unwrap();
        let log = logs.entry(stream).or_default();
        let seq = log.next_seq;
        log.next_seq += 1;
        let event = match data {
            Some(d) => Bytes::from(format!("event: message\nid: {stream}-{seq}\ndata: {d}\n\n")),
            None => Bytes::from(format!("id: {stream}-{seq}\nretry: 1000\ndata: \n\n")),
        };
        log.bytes += event.len();
        log.events.push_back((seq, event.clone()));
        while log.events.len() > MAX_EVENTS || (log.bytes > MAX_BYTES && log.events.len() > 1) {
            if let Some((_, old)) = log.events.pop_front() {
                log.bytes -= old.len();
            }
        }
        drop(logs);
        self.changed.send_modify(|n| *n += 1);
        event
    }

    /// Marks a stream finished (its answer is in the log).
    pub fn finish(&self, stream: u64) {
        if let Some(log) = self.logs.lock().unwrap().get_mut(&stream) {
            log.finished = Some(Instant::now());
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The events after `last_event_id` (`<stream>-<seq>`), if that stream is still kept.
    pub fn after(&self, last_event_id: &str) -> Option<Resumed> {
        let (stream, seq) = parse_id(last_event_id)?;
        self.after_seq(stream, seq)
    }

    /// The events of `stream` after `seq`.
    pub fn after_seq(&self, stream: u64, seq: u64) -> Option<Resumed> {
        let logs = self.logs.lock().unwrap();
        let log = logs.get(&stream)?;
        let events: Vec<(u64, Bytes)> = log.events.iter().filter(|(s, _)| *s > seq).cloned().collect();
        let last_seq = events.last().map_or(seq, |(s, _)| *s);
        Some(Resumed { stream, events: events.into_iter().map(|(_, e)| e).collect(), last_seq, finished: log.finished.is_some() })
    }

    /// A receiver that changes whenever an event is recorded or a stream ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// `<stream>-<seq>`.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (s, q) = id.trim().split_once('-')?;
    Some((s.parse().ok()?, q.parse().ok()?))
}

/// Drops finished logs past their time, then the oldest logs beyond the limit.
fn prune(logs: &mut HashMap<u64, Log>) {
    logs.retain(|_, l| l.finished.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
    while logs.len() >= MAX_STREAMS {
        // Finished streams go first, then the oldest (lowest number); the GET stream stays.
        let victim = logs
            .iter()
            .filter(|(n, _)| **n != GET_STREAM)
            .min_by_key(|(n, l)| (l.finished.is_none(), **n))
            .map(|(n, _)| *n);
        match victim {
            Some(n) => {
                logs.remove(&n);
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_after_an_id_in_order() {
        let r = Replay::default();
        let s = r.open();
        let prime = r.push(s, None);
        assert!(String::from_utf8_lossy(&prime).starts_with(&format!("id: {s}-0\n")));
        r.push(s, Some("{\"a\":1}"));
        r.push(s, Some("{\"a\":2}"));
        let got = r.after(&format!("{s}-0")).unwrap();
        assert_eq!(got.events.len(), 2);
        assert!(!got.finished);
        assert_eq!(got.last_seq, 2);
        r.finish(s);
        let got = r.after(&format!("{s}-1")).unwrap();
        assert_eq!(got.events.len(), 1);
        assert!(got.finished);
        assert!(r.after("99-0").is_none());
        assert!(r.after("garbage").is_none());
    }

    #[test]
    fn logs_are_bounded() {
        let r = Replay::default();
        let s = r.open();
        for i in 0..(MAX_EVENTS + 10) {
            r.push(s, Some(&i.to_string()));
        }
        assert_eq!(r.after(&format!("{s}-0")).unwrap().events.len(), MAX_EVENTS);
        for _ in 0..(MAX_STREAMS * 2) {
            r.open();
        }
        assert!(r.logs.lock().unwrap().len() <= MAX_STREAMS);
    }
}
