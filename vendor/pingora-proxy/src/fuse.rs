// tollgate patch (issue 14): once a proxied HTTP/1 response's header is out and the request
// body is done, its body goes from the upstream socket to the client in one loop, not through
// the task pipe between the two halves of `proxy_1to1`.
//
// The halves exist so that a request body can be uploaded while the response is read. Once
// the request is over, the upstream half only reads response tasks and hands each to the
// downstream half through a channel, which runs the filters and writes it. For a streamed LLM
// answer that is every SSE chunk paying a channel send and receive, a wake of the partner, a
// re-poll of the join and of both halves' `select!`s and two batch allocations: about a
// quarter of what each chunk cost (callgrind, bench/instructions scenario 2).
//
// The downstream half asks for the fuse (`Fuse::request`) when its state allows it (request
// done, final header written, no cache, no upgrade, no custom messages). The upstream half
// answers by leaving its loop between two reads, which drops its pipe sender; the downstream
// half, still draining the pipe meanwhile, sees the pipe end without the response's end and
// leaves its loop too, handing its state over (`FusedState`). `proxy_1to1` then runs
// `proxy_fused_h1` (src/proxy_fused_h1.rs) with both sessions. A half that never sees or
// never honours the request (an upstream half that already read the response's end, or one
// with a failed request body write) simply finishes as before.
//
// Only std, futures and tokio here, so that crates/core/tests/vendored_pingora_units.rs can
// compile this file and test the hand-over the way proxy_h1.rs uses it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;


/// The request from the downstream half to the upstream half to stop reading, and the
/// upstream half's answer.
#[derive(Default)]
pub(crate) struct Fuse {
    requested: AtomicBool,
    /// Set by the upstream half when it left its loop because of the request.
    upstream_left: AtomicBool,
    waker: AtomicWaker,
}

impl Fuse {
    /// Asks the upstream half to stop reading at its next chance.
    pub(crate) fn request(&self) {
        self.requested.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Resolves once [`Fuse::request`] has been called.
    pub(crate) fn wait(&self) -> FuseWait<'_> {
        FuseWait(self)
    }

    pub(crate) fn set_upstream_left(&self) {
        self.upstream_left.store(true, Ordering::Release);
    }

    /// Whether the upstream half left its loop on request (the response is not over).
    pub(crate) fn upstream_left(&self) -> bool {
        self.upstream_left.load(Ordering::Acquire)
    }
}

/// The future of [`Fuse::wait`].
pub(crate) struct FuseWait<'a>(&'a Fuse);

impl Future for FuseWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_requested() {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        if self.0.is_requested() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn wait_resolves_only_after_request() {
        let fuse = Fuse::default();
        assert!(fuse.wait().now_or_never().is_none());
        assert!(!fuse.upstream_left());
        fuse.request();
        assert!(fuse.wait().now_or_never().is_some());
        fuse.set_upstream_left();
        assert!(fuse.upstream_left());
    }

    #[tokio::test]
    async fn request_wakes_a_waiting_half() {
        let fuse = std::sync::Arc::new(Fuse::default());
        let waiter = {
            let fuse = fuse.clone();
            tokio::spawn(async move { fuse.wait().await })
        };
        tokio::task::yield_now().await;
        fuse.request();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiting half was woken")
            .unwrap();
    }
}
