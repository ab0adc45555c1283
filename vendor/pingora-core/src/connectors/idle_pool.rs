// tollgate: the keep-alive pool of idle upstream streams behind `TransportConnector`, in place
// of `pingora_pool::ConnectionPool` (which `connectors/http/v2.rs` still uses for HTTP/2).
//
// Why: `pingora_pool` watches every idle stream with a task of its own. Each request that gave a
// connection back spawned that task, made an `Arc<Mutex<Stream>>`, a oneshot channel, an
// `Arc<Notify>` and an idle-timeout timer, and, because a key's node is removed when it empties,
// a new node (an `ArrayQueue` of 16 slots and a `HashMap`) in a `DashMap`; taking the connection
// for the next request woke the task to end it and removed the node again. ~10k instructions of
// a proxied chat completion's ~91k (issue 14). Here a returned stream is one entry in a list
// under a lock, and one sweeper task per pool (running only while the pool holds streams) closes
// the streams whose idle timeout passed or whose peer closed or wrote, every `SWEEP_EVERY`; a
// stream taken for reuse is checked again (expiry here, the peer's close by the caller), as
// Pingora does.
//
// Self-contained (std and tokio only) so that its tests run with tollgate's own
// (`crates/core/tests/vendored_pingora_units.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
// tokio's clock (the same as std's unless a test pauses it), so the tests can step time.
use tokio::time::Instant;

/// How often idle streams are checked for an expired idle timeout or a peer that closed.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Whether an idle stream may still be used (`false`: the peer closed it, or sent bytes).
pub type Usable<S> = Box<dyn Fn(&mut S) -> bool + Send + Sync>;

/// Idle streams by peer key, most recently returned last; at most `capacity` in all, the one
/// idle longest evicted first.
pub struct IdlePool<S> {
    streams: Mutex<Streams<S>>,
    capacity: usize,
    usable: Usable<S>,
}

struct Streams<S> {
    by_key: HashMap<u64, VecDeque<Idle<S>>>,
    count: usize,
    /// Order of return (eviction takes the lowest: clocks can tie).
    next_seq: u64,
    /// A sweeper task is running (it stops when the pool empties).
    sweeping: bool,
}

struct Idle<S> {
    stream: S,
    seq: u64,
    since: Instant,
    /// When it leaves the pool unused (`None`: only when evicted or closed).
    expires: Option<Instant>,
}

impl<S> Idle<S> {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

impl<S: Send + 'static> IdlePool<S> {
    /// An empty pool of at most `capacity` streams; `usable` probes a stream without blocking.
    pub fn new(capacity: usize, usable: Usable<S>) -> Self {
        IdlePool { streams: Mutex::new(Streams { by_key: HashMap::new(), count: 0, next_seq: 0, sweeping: false }), capacity, usable }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams<S>> {
        // Nothing that can panic runs under the lock (probes run outside it); a poisoned lock
        // still holds consistent lists, and `sweep` recounts `count`.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently returned stream for `key` whose idle timeout has not passed.
    pub fn take(&self, key: u64) -> Option<S> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let found = {
            let mut streams = self.lock();
            let mut found = None;
            if let Some(list) = streams.by_key.get_mut(&key) {
                while let Some(idle) = list.pop_back() {
                    if idle.expired(now) {
                        expired.push(idle.stream);
                    } else {
                        found = Some(idle.stream);
                        break;
                    }
                }
            }
            streams.count -= expired.len() + usize::from(found.is_some());
            found
        };
        drop(expired); // closed outside the lock
        found
    }

    /// Keeps `stream` for `key` until it is taken, `idle_timeout` passes, its peer closes it or
    /// it is evicted; returns how long the evicted stream (if the pool was full) had been idle.
    pub fn put(self: &Arc<Self>, key: u64, stream: S, idle_timeout: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let (evicted, start_sweeper) = {
            let mut streams = self.lock();
            let seq = streams.next_seq;
            streams.next_seq += 1;
            let idle = Idle { stream, seq, since: now, expires: idle_timeout.and_then(|t| now.checked_add(t)) };
            streams.by_key.entry(key).or_default().push_back(idle);
            streams.count += 1;
            let evicted = if streams.count > self.capacity { streams.evict_oldest() } else { None };
            let start = !streams.sweeping && streams.count > 0;
            streams.sweeping |= start;
            (evicted, start)
        };
        if start_sweeper {
            self.start_sweeper();
        }
        evicted.map(|e| e.since.elapsed())
    }

    /// How many streams are pooled.
    pub fn len(&self) -> usize {
        self.lock().count
    }

    fn start_sweeper(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime to sweep on: streams are still checked when taken.
            self.lock().sweeping = false;
            return;
        };
        let pool = Arc::downgrade(self);
        // Made here, not in the task: a task dropped before its first poll drops it too.
        let guard = SweeperGuard { pool: pool.clone(), done: false };
        rt.spawn(async move {
            let mut guard = guard;
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(pool) = pool.upgrade() else { break };
                if pool.sweep() {
                    break;
                }
            }
            guard.done = true;
        });
    }

    /// Closes expired and unusable streams; `true` (and no longer sweeping) once none is left.
    /// Each key's streams are probed with the lock released (a probe reads, and on a large
    /// machine the pool holds thousands of streams): its list is taken out, probed, and what
    /// is still usable goes back in front of any stream returned meanwhile. A request for that
    /// key in between opens a new connection.
    fn sweep(&self) -> bool {
        let now = Instant::now();
        let keys: Vec<u64> = self.lock().by_key.keys().copied().collect();
        for key in keys {
            let Some(list) = self.lock().by_key.get_mut(&key).map(std::mem::take) else { continue };
            let mut usable = VecDeque::with_capacity(list.len());
            let mut dead = Vec::new();
            for mut idle in list {
                if idle.expired(now) || !(self.usable)(&mut idle.stream) {
                    dead.push(idle.stream);
                } else {
                    usable.push_back(idle);
                }
            }
            {
                let mut streams = self.lock();
                let list = streams.by_key.entry(key).or_default();
                for idle in usable.into_iter().rev() {
                    list.push_front(idle);
                }
                streams.count -= dead.len();
            }
            drop(dead); // closed outside the lock
        }
        let mut streams = self.lock();
        streams.by_key.retain(|_, list| !list.is_empty());
        // Recounted: right even after a probe panicked in an earlier sweep (its list was lost).
        streams.count = streams.by_key.values().map(VecDeque::len).sum();
        let stop = streams.count == 0;
        streams.sweeping = !stop;
        stop
    }
}

impl<S> Streams<S> {
    /// Removes the stream idle longest (the front of some key's list).
    fn evict_oldest(&mut self) -> Option<Idle<S>> {
        let key = *self.by_key.iter().filter_map(|(k, l)| l.front().map(|i| (k, i.seq))).min_by_key(|(_, seq)| *seq)?.0;
        let idle = self.by_key.get_mut(&key)?.pop_front()?;
        self.count -= 1;
        Some(idle)
    }
}

/// Marks the pool as not swept when its sweeper ends without saying so (its runtime shut down),
/// so that the next `put` starts another.
struct SweeperGuard<S> {
    pool: Weak<IdlePool<S>>,
    done: bool,
}

impl<S> Drop for SweeperGuard<S> {
    fn drop(&mut self) {
        if !self.done {
            if let Some(pool) = self.pool.upgrade() {
                pool.streams.lock().unwrap_or_else(|e| e.into_inner()).sweeping = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A stream that is usable until its flag says it was closed; the flag is shared with the
    /// test, and `dropped` records that the pool let go of it.
    struct Fake {
        id: u32,
        closed: Arc<AtomicBool>,
        dropped: Arc<AtomicBool>,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    fn fake(id: u32) -> (Fake, Arc<AtomicBool>, Arc<AtomicBool>) {
        let (closed, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        (Fake { id, closed: closed.clone(), dropped: dropped.clone() }, closed, dropped)
    }

    fn pool(capacity: usize) -> Arc<IdlePool<Fake>> {
        Arc::new(IdlePool::new(capacity, Box::new(|s: &mut Fake| !s.closed.load(Ordering::SeqCst))))
    }

    #[test]
    fn the_most_recently_returned_stream_of_the_key_is_taken() {
        let p = pool(8);
        for id in [1, 2] {
            p.put(7, fake(id).0, None);
        }
        p.put(8, fake(3).0, None);
        assert_eq!(p.take(7).map(|s| s.id), Some(2));
        assert_eq!(p.take(7).map(|s| s.id), Some(1));
        assert!(p.take(7).is_none());
        assert_eq!(p.take(8).map(|s| s.id), Some(3));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_sweep_keeps_the_usable_streams_in_their_order_and_recounts() {
        let p = pool(8);
        let (b, b_closed, _) = fake(2);
        p.put(7, fake(1).0, None);
        p.put(7, b, None);
        p.put(7, fake(3).0, None);
        p.put(9, fake(4).0, Some(Duration::ZERO));
        b_closed.store(true, Ordering::SeqCst);
        assert!(!p.sweep(), "streams are left: the sweeper goes on");
        assert_eq!(p.len(), 2);
        assert_eq!(p.take(7).map(|s| s.id), Some(3));
        assert_eq!(p.take(7).map(|s| s.id), Some(1));
        assert!(p.lock().by_key.get(&9).is_none(), "an emptied key is dropped");
        assert!(p.sweep(), "an empty pool stops its sweeper");
    }

    #[test]
    fn a_full_pool_evicts_the_stream_idle_longest_whatever_its_key() {
        let p = pool(2);
        let (a, _, a_dropped) = fake(1);
        assert!(p.put(1, a, None).is_none());
        assert!(p.put(2, fake(2).0, None).is_none());
        assert!(p.put(2, fake(3).0, None).is_some(), "the third stream evicts one");
        assert!(a_dropped.load(Ordering::SeqCst), "the oldest (key 1) was closed");
        assert!(p.take(1).is_none());
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn an_expired_stream_is_closed_not_taken() {
        let p = pool(8);
        let (old, _, old_dropped) = fake(1);
        p.put(1, old, Some(Duration::ZERO));
        assert!(p.take(1).is_none());
        assert!(old_dropped.load(Ordering::SeqCst));
        assert_eq!(p.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_closes_expired_and_closed_streams_and_stops_when_empty() {
        let p = pool(8);
        let (a, _, a_dropped) = fake(1);
        let (b, b_closed, b_dropped) = fake(2);
        let (c, _, c_dropped) = fake(3);
        p.put(1, a, Some(Duration::from_millis(400)));
        p.put(1, b, None);
        p.put(2, c, None);
        b_closed.store(true, Ordering::SeqCst); // its peer hung up
        let margin = Duration::from_millis(100);
        tokio::time::sleep(SWEEP_EVERY + margin).await;
        assert!(b_dropped.load(Ordering::SeqCst), "a closed stream leaves at the next sweep");
        assert!(!a_dropped.load(Ordering::SeqCst) && !c_dropped.load(Ordering::SeqCst));
        tokio::time::sleep(SWEEP_EVERY).await;
        assert!(a_dropped.load(Ordering::SeqCst), "an expired stream leaves within a sweep of its timeout");
        assert_eq!(p.len(), 1);
        assert_eq!(p.take(2).map(|s| s.id), Some(3));
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        assert!(!p.lock().sweeping, "the sweeper stops once the pool is empty");
        let (d, _, d_dropped) = fake(4);
        p.put(3, d, Some(Duration::from_millis(100)));
        assert!(p.lock().sweeping, "and the next stream starts another");
        tokio::time::sleep(SWEEP_EVERY + margin).await;
        assert!(d_dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn a_sweeper_whose_runtime_ended_is_replaced() {
        let p = pool(8);
        {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            rt.block_on(async { p.put(1, fake(1).0, None) });
            assert!(p.lock().sweeping);
        } // the runtime and its sweeper are gone
        assert!(!p.lock().sweeping);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async { p.put(1, fake(2).0, None) });
        assert!(p.lock().sweeping);
    }
}
