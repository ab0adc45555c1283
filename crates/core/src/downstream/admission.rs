//! How many client connections the process holds, and who gives way when that is too many.
//!
//! Every connection takes a [`Permit`]. Past the cap, the connection that has waited longest
//! for a request (idle keep-alive, or a head still trickling in) is told to close, as nginx
//! reuses its idle keep-alive connections when it runs out; if none is waiting, the new
//! connection is refused with a 503. Connections serving a request are never cut. So idle
//! or slowloris connections can neither exhaust file descriptors nor lock real clients out.
//!
//! Evicted connections close asynchronously (their task must run), so in a burst the accept
//! loop can get ahead of them. Past the cap plus a margin it then waits, briefly, for evicted
//! connections to go (backpressure: newcomers queue in the kernel's backlog) rather than
//! closing a newcomer that would have been served a moment later.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Connections that may exist for a moment past the cap while evicted ones close.
const OVERSHOOT: usize = 64;

/// How long the accept loop waits for evicted connections to close before it gives up on a
/// newcomer.
const ACCEPT_WAIT: Duration = Duration::from_secs(2);

/// The signal that tells one connection to give up its place.
#[derive(Debug, Default)]
pub struct Evict {
    notify: Notify,
    told: AtomicBool,
}

impl Evict {
    /// Resolves once the connection has been told to go.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// The process's connection budget (shared by every bind).
#[derive(Debug)]
pub struct Admission {
    cap: usize,
    open: AtomicUsize,
    /// Accepted by the listener, not yet admitted: each holds a descriptor.
    in_flight: AtomicUsize,
    next_seq: AtomicU64,
    /// Connections waiting for a request head, oldest first.
    waiting: Mutex<BTreeMap<u64, Arc<Evict>>>,
    /// Connections told to go that have not closed yet.
    evicting: AtomicUsize,
    /// Signalled whenever a connection closes.
    closed: Notify,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    /// Signalled when the gateway needs this connection's place.
    pub evict: Arc<Evict>,
}

impl Permit {
    /// The connection was told to go just as it got work and carries on: it no longer counts
    /// as closing (the stored notice still ends it at its next wait for a request).
    pub fn carry_on(&self) {
        if self.evict.told.swap(false, Ordering::AcqRel) {
            self.admission.evicting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.evict.told.swap(false, Ordering::AcqRel) {
            self.admission.evicting.fetch_sub(1, Ordering::AcqRel);
        }
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
        self.admission.closed.notify_waiters();
    }
}

/// While held, the connection is waiting for a request and may be evicted.
pub struct Waiting<'a> {
    admission: &'a Admission,
    seq: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.admission.lock().remove(&self.seq);
    }
}

impl Admission {
    /// A budget of `cap` connections.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Admission {
            cap: cap.max(1),
            open: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
            waiting: Mutex::default(),
            evicting: AtomicUsize::new(0),
            closed: Notify::new(),
        })
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Evict>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the longest-waiting connection to go; false if none is waiting.
    fn evict_oldest(&self) -> bool {
        // Marked while the entry is still locked: its `Waiting` guard (which takes the lock)
        // drops before its `Permit`, so the permit always sees the mark it must undo.
        let mut waiting = self.lock();
        let Some((_, victim)) = waiting.pop_first() else { return false };
        if !victim.told.swap(true, Ordering::AcqRel) {
            self.evicting.fetch_add(1, Ordering::AcqRel);
        }
        drop(waiting);
        victim.notify.notify_one();
        true
    }

    /// Takes one accepted connection into the in-flight count if the margin allows.
    fn try_take_in_flight(&self) -> bool {
        let pending = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        if self.open() + pending > self.cap + OVERSHOOT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// In the listener's accept loop, before anything is spawned for the connection: whether
    /// to keep it at all. Past the cap plus a margin, accepted descriptors would pile up
    /// faster than their tasks run (reaching the open-file limit stalls Pingora's accept loop
    /// for a second), so the loop waits up to [`ACCEPT_WAIT`] for evicted connections to
    /// close, evicting waiting ones as needed. Only when every connection is serving a
    /// request (nothing to evict, nothing closing) is the newcomer closed at once.
    ///
    /// Every connection this admits must reach [`Admission::admit`], which takes it off the
    /// in-flight count. Listeners are plain TCP (TLS is handshaken after admission, in the
    /// gateway's own accept path), so that always happens.
    pub async fn on_accept(&self) -> bool {
        let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.try_take_in_flight() {
                return true;
            }
            if self.evicting.load(Ordering::Acquire) == 0 && !self.evict_oldest() {
                return false;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return false;
            }
        }
    }

    /// Admits a new connection, evicting the longest-waiting one when full; `None` means
    /// refuse it.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        // The connection passed `on_accept`; it is now counted as open instead.
        let _ = self.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        let now_open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let permit = Permit { admission: self.clone(), evict: Arc::default() };
        if now_open <= self.cap {
            return Some(permit);
        }
        if now_open > self.cap + OVERSHOOT {
            return None;
        }
        self.evict_oldest().then_some(permit)
    }

    /// Marks a connection as waiting for a request until the guard drops.
    pub fn waiting(&self, permit: &Permit) -> Waiting<'_> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(seq, permit.evict.clone());
        Waiting { admission: self, seq }
    }
}

/// Pingora's hook in its accept loop, backed by the budget.
#[derive(Debug)]
pub struct AcceptFilter(pub Arc<Admission>);

#[async_trait::async_trait]
impl pingora::listeners::ConnectionFilter for AcceptFilter {
    async fn should_accept(&self, _addr: Option<&std::net::SocketAddr>) -> bool {
        self.0.on_accept().await
    }
}

/// The default cap: half the open-file limit (each proxied request may hold an upstream
/// connection too), less a reserve for listeners, the operator ports, pooled upstream
/// connections, files and MCP stdio pipes.
pub fn default_cap() -> usize {
    let limit = raise_fd_limit();
    (limit.saturating_sub(RESERVED_FDS) / 2).max(16)
}

/// Descriptors kept out of the connection budget.
const RESERVED_FDS: usize = 128;

/// Raises the soft open-file limit to the hard one (as Go and many servers do at start) and
/// returns the limit in force.
pub fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX).min(1 << 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_budget_evicts_the_longest_waiting() {
        let a = Admission::new(2);
        let p1 = a.admit().unwrap();
        let p2 = a.admit().unwrap();
        let w1 = a.waiting(&p1);
        let w2 = a.waiting(&p2);
        let p3 = a.admit().expect("room is made");
        // p1 waited longest: it was told to go (a stored permit), p2 was not.
        assert!(futures::FutureExt::now_or_never(p1.evict.notified()).is_some());
        assert!(futures::FutureExt::now_or_never(p2.evict.notified()).is_none());
        drop((w1, w2));
        // Nobody waiting: a fourth is refused while three are open.
        assert!(a.admit().is_none());
        drop((p1, p3));
        assert_eq!(a.open(), 1);
        assert!(a.admit().is_some());
        drop(p2);
    }

    #[test]
    fn a_connection_that_carries_on_no_longer_counts_as_closing() {
        let a = Admission::new(1);
        let p1 = a.admit().unwrap();
        let w1 = a.waiting(&p1);
        let p2 = a.admit().expect("p1 makes room");
        assert_eq!(a.evicting.load(Ordering::Acquire), 1);
        drop(w1);
        p1.carry_on(); // its request head had already arrived
        assert_eq!(a.evicting.load(Ordering::Acquire), 0);
        drop(p1);
        assert_eq!(a.evicting.load(Ordering::Acquire), 0, "no double count on close");
        drop(p2);
        assert_eq!(a.open(), 0);
    }

    #[tokio::test]
    async fn accept_loop_refuses_past_the_margin_when_all_are_busy() {
        let a = Admission::new(1);
        let mut accepted = 0;
        for _ in 0..100 {
            accepted += usize::from(a.on_accept().await);
        }
        assert_eq!(accepted, 1 + OVERSHOOT);
        let p = a.admit().unwrap();
        assert!(!a.on_accept().await, "still full: one open plus the rest in flight");
        drop(p);
    }

    #[tokio::test(start_paused = true)]
    async fn accept_loop_waits_for_an_evicted_connection_to_close() {
        let a = Admission::new(1);
        for _ in 0..=OVERSHOOT {
            assert!(a.on_accept().await);
        }
        let idle = a.admit().unwrap();
        let waiting = a.waiting(&idle);
        let closer = async {
            idle.evict.notified().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(waiting);
            drop(idle);
        };
        // Over the margin, but a waiting connection can make room: the newcomer is kept.
        let (kept, ()) = tokio::join!(a.on_accept(), closer);
        assert!(kept);
        a.in_flight.fetch_sub(OVERSHOOT + 1, Ordering::AcqRel);
        assert_eq!(a.open(), 0);
    }
}
