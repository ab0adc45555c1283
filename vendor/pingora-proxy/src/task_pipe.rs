// tollgate addition (not in upstream Pingora).
//
// The bounded single-producer, single-consumer pipe between the two halves of a proxied
// request (`proxy_h1`, `proxy_h2`), in place of `tokio::sync::mpsc`.
//
// Why: the halves pass a handful of `HttpTask`s (capacity `TASK_BUFFER_SIZE`, 4), but a
// tokio mpsc channel allocates a 32-slot block plus a cache-padded channel header whatever
// its capacity (about 1.8 KiB per channel, two channels per HTTP/1 request, alive for a
// whole stream), and each message goes through a semaphore and the block list. Here a
// channel is one small allocation: a mutex over a ring of `capacity` slots and one waker
// per side. Only one task holds each end (neither end is `Clone`), so one waker slot per
// side is enough; the lock is never contended for long (push or pop one item).
//
// The API is the subset of tokio's mpsc the proxy uses, with the same meaning: `recv` is
// `None` once the sender is gone and the queue is empty; `send`/`reserve` fail once the
// receiver is gone; a dropped `Permit` gives its slot back; every future is cancel-safe.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

struct State<T> {
    queue: VecDeque<T>,
    /// Slots promised to a live `Permit` but not yet filled.
    reserved: usize,
    capacity: usize,
    sender_alive: bool,
    receiver_alive: bool,
    /// The receiving task, waiting for an item or for the sender to go.
    recv_waker: Option<Waker>,
    /// The sending task, waiting for a free slot or for the receiver to go.
    send_waker: Option<Waker>,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.queue.len() + self.reserved < self.capacity
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the queue consistent (push or pop only).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Creates a pipe holding at most `capacity` items (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(capacity),
            reserved: 0,
            capacity,
            sender_alive: true,
            receiver_alive: true,
            recv_waker: None,
            send_waker: None,
        }),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

/// The sending end; dropping it ends the stream of items for the receiver.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving end; dropping it makes every later send fail.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A reserved slot: `send` fills it without waiting; dropping it unused frees it.
pub struct Permit<'a, T> {
    sender: &'a Sender<T>,
}

/// The receiver is gone; the value that could not be sent is returned.
pub struct SendError<T>(pub T);

/// Why `try_reserve` could not reserve a slot.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// Every slot is taken.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for a free slot.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(_) => Err(SendError(value)),
        }
    }

    /// Waits for a free slot and reserves it.
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        poll_fn(|cx| self.poll_reserve(cx)).await?;
        Ok(Permit { sender: self })
    }

    /// Reserves a free slot if there is one now.
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(TrySendError::Closed(()));
        }
        if !state.has_room() {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(Permit { sender: self })
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.lock().receiver_alive
    }

    /// Resolves once the receiver is gone.
    pub async fn closed(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if !state.receiver_alive {
                return Poll::Ready(());
            }
            store_waker(&mut state.send_waker, cx);
            Poll::Pending
        })
        .await
    }

    fn poll_reserve(&self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<()>>> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Poll::Ready(Err(SendError(())));
        }
        if state.has_room() {
            state.reserved += 1;
            return Poll::Ready(Ok(()));
        }
        store_waker(&mut state.send_waker, cx);
        Poll::Pending
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.sender_alive = false;
            state.recv_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Permit<'_, T> {
    /// Fills the reserved slot (the value is dropped if the receiver is already gone).
    pub fn send(self, value: T) {
        let waker = {
            let mut state = self.sender.shared.lock();
            state.reserved -= 1;
            if state.receiver_alive {
                state.queue.push_back(value);
            }
            state.recv_waker.take()
        };
        std::mem::forget(self);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.sender.shared.lock();
            state.reserved -= 1;
            state.send_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and nothing is queued.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let (item, waker) = {
            let mut state = self.shared.lock();
            match state.queue.pop_front() {
                Some(item) => (item, state.send_waker.take()),
                None if !state.sender_alive => return Poll::Ready(None),
                None => {
                    store_waker(&mut state.recv_waker, cx);
                    return Poll::Pending;
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Some(item))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queued, waker) = {
            let mut state = self.shared.lock();
            state.receiver_alive = false;
            (std::mem::take(&mut state.queue), state.send_waker.take())
        };
        // Queued items are dropped outside the lock (they may own large buffers).
        drop(queued);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

fn store_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("channel closed")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("no available capacity"),
            TrySendError::Closed(_) => f.write_str("channel closed"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for TrySendError<T> {}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn items_arrive_in_order_and_end_when_the_sender_goes() {
        let (tx, mut rx) = channel::<u32>(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        assert!(tx.try_reserve().is_err(), "full at capacity");
        assert_eq!(rx.recv().await, Some(1));
        tx.try_reserve().unwrap().send(3);
        drop(tx);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_sender_waits_and_is_woken_by_a_receive() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.send(1).await.unwrap();
        let sending = tokio::spawn(async move {
            tx.send(2).await.unwrap();
            tx.send(3).await.unwrap();
        });
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        sending.await.unwrap();
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_dropped_permit_frees_its_slot_and_wakes_the_sender() {
        let (tx, mut rx) = channel::<u32>(1);
        let permit = tx.try_reserve().unwrap();
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        let mut waiting = Box::pin(tx.reserve());
        assert!((&mut waiting).now_or_never().is_none());
        drop(permit);
        let permit = waiting.await.unwrap();
        permit.send(7);
        assert_eq!(rx.recv().await, Some(7));
    }

    #[tokio::test]
    async fn sends_fail_once_the_receiver_is_gone() {
        let (tx, rx) = channel::<u32>(1);
        tx.send(1).await.unwrap();
        let blocked = tokio::spawn(async move {
            let result = tx.send(2).await;
            (result.map_err(|e| e.0), tx.is_closed(), tx.try_reserve().is_err())
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(blocked.await.unwrap(), (Err(2), true, true));
    }

    #[tokio::test]
    async fn closed_resolves_when_the_receiver_goes() {
        let (tx, rx) = channel::<u32>(1);
        let mut closed = Box::pin(tx.closed());
        assert!((&mut closed).now_or_never().is_none());
        drop(rx);
        closed.await;
    }

    #[tokio::test]
    async fn a_cancelled_receive_loses_nothing() {
        let (tx, mut rx) = channel::<u32>(1);
        assert!(rx.recv().now_or_never().is_none());
        tx.send(5).await.unwrap();
        assert_eq!(rx.recv().now_or_never(), Some(Some(5)));
    }
}
