//! The unit tests of tollgate's own additions to the vendored Pingora crates.
//!
//! `vendor/` is outside the workspace, so `cargo test --workspace` would never run them. The
//! additions below depend only on `std`, `futures` and `tokio`, so they are compiled here by
//! path, their `#[cfg(test)]` modules included (`task_pipe`, `repoll`, `lazy_buf_writer`,
//! `head_first`), and the first two are exercised together the way the proxy uses them: a
//! `task_pipe` between the two halves of a request, joined under `Repoll`.

#[allow(dead_code)]
#[path = "../../../vendor/pingora-proxy/src/task_pipe.rs"]
mod task_pipe;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-proxy/src/repoll.rs"]
mod repoll;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-core/src/protocols/l4/lazy_buf_writer.rs"]
mod lazy_buf_writer;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-core/src/protocols/http/v1/head_first.rs"]
mod head_first;

use repoll::Repoll;

/// The production shape: one task, two halves in a join, a 4-slot pipe between them.
#[tokio::test]
async fn a_task_pipe_between_repolled_halves_delivers_everything_in_order() {
    let (tx, mut rx) = task_pipe::channel::<u32>(4);
    let producer = async move {
        for i in 0..10_000 {
            tx.send(i).await.unwrap();
        }
    };
    let consumer = async move {
        let mut next = 0;
        while let Some(i) = rx.recv().await {
            assert_eq!(i, next, "items arrive once each, in order");
            next += 1;
        }
        next
    };
    let joined = Repoll::new(async { tokio::join!(producer, consumer) });
    let ((), received) = tokio::time::timeout(std::time::Duration::from_secs(10), joined)
        .await
        .expect("no lost wake-up");
    assert_eq!(received, 10_000);
}

/// Ends on different threads, the receiver gone half way: the sender learns it and nothing
/// waits forever (a lost wake-up would hang here until the test's timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gone_half_way_fails_the_sender_on_another_thread() {
    for _ in 0..200 {
        let (tx, mut rx) = task_pipe::channel::<Vec<u8>>(1);
        let sender = tokio::spawn(async move {
            let mut sent = 0;
            while tx.send(vec![0; 64]).await.is_ok() {
                sent += 1;
            }
            assert!(tx.is_closed());
            sent
        });
        let receiver = tokio::spawn(async move {
            for _ in 0..50 {
                rx.recv().await.expect("the sender is alive");
            }
        });
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            receiver.await.unwrap();
            sender.await.unwrap()
        })
        .await
        .expect("no lost wake-up");
        assert!(outcome >= 50, "every item received was sent");
    }
}
