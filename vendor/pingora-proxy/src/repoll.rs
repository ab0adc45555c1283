// tollgate patch (issue 14): poll the two halves of a proxied request again, in place, when one
// of them wakes the other, instead of scheduling the whole connection task again.
//
// The HTTP/1 and HTTP/2 proxy pipelines run an upstream half and a downstream half joined in
// one task and connected by `mpsc` channels. When the upstream half queues a body chunk, the
// channel wakes the downstream half's waker, which is the task's own: tokio then reschedules
// the task, and the worker polls the connection's whole future again from its top (Pingora's
// session loop, the request's state machine, down to the join) just to deliver the chunk. A
// streamed LLM answer pays this for every chunk, in both directions.
//
// `Repoll` gives the joined halves a waker of its own. A wake that happens while `Repoll` is
// polling them (a half woke its partner) only marks the join for another round, which runs at
// once; a wake from elsewhere (the socket, a timer, another thread) is passed on to the task's
// waker as before. The rounds are bounded so that a future that wakes itself directly cannot
// make it spin (tokio's cooperative budget defers its own wake until the task's poll ends, so
// an exhausted budget just ends the rounds with `Pending`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// At most this many rounds in one poll; past it the task is woken and yields as before.
const MAX_ROUNDS: usize = 32;

/// The waker the inner future sees.
struct Inner {
    /// Set while `Repoll::poll` is polling the inner future.
    polling: AtomicBool,
    /// Set by every wake; read after each round.
    woken: AtomicBool,
    /// The task's waker, to pass on wakes that come while the inner future is not being polled.
    outer: AtomicWaker,
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Mark first, then look: if `polling` is already false here, the poller may have read
        // `woken` before this store, so the wake must go to the task.
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.outer.wake();
        }
    }
}

/// A future that polls `F` with a waker that turns self-wakes into immediate re-polls.
pub(crate) struct Repoll<F> {
    future: F,
    inner: Arc<Inner>,
    waker: Waker,
}

impl<F: Future> Repoll<F> {
    pub(crate) fn new(future: F) -> Self {
        let inner = Arc::new(Inner {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            outer: AtomicWaker::new(),
        });
        let waker = Waker::from(inner.clone());
        Repoll {
            future,
            inner,
            waker,
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, and
        // `Repoll` has no `Drop` impl or `Unpin` impl that would move it.
        let this = unsafe { self.get_unchecked_mut() };
        this.inner.outer.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_ROUNDS {
            this.inner.woken.store(false, Ordering::SeqCst);
            this.inner.polling.store(true, Ordering::SeqCst);
            // SAFETY: see above; `future` stays where it is.
            let future = unsafe { Pin::new_unchecked(&mut this.future) };
            let polled = future.poll(&mut inner_cx);
            this.inner.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !this.inner.woken.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        // Still waking itself: yield to the scheduler (lets tokio's budget refill).
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn a_pipe_between_two_halves_delivers_everything() {
        let (tx, mut rx) = mpsc::channel::<u32>(2);
        let producer = async move {
            for i in 0..1000 {
                tx.send(i).await.unwrap();
            }
        };
        let consumer = async move {
            let mut sum = 0u64;
            while let Some(i) = rx.recv().await {
                sum += i as u64;
            }
            sum
        };
        let ((), sum) = Repoll::new(async { tokio::join!(producer, consumer) }).await;
        assert_eq!(sum, 999 * 1000 / 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_from_another_task_reach_the_joined_future() {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        let sender = tokio::spawn(async move {
            for i in 0..200 {
                tokio::task::yield_now().await;
                tx.send(i).await.unwrap();
            }
        });
        let got = Repoll::new(async move {
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        })
        .await;
        sender.await.unwrap();
        assert_eq!(got, 200);
    }
}
