//! The unit tests of tollgate's own additions to the vendored Pingora crates.
//!
//! `vendor/` is outside the workspace, so `cargo test --workspace` would never run them. The
//! additions below depend only on `std`, `futures`, `tokio`, `bytes` and Pingora's public
//! `HttpTask`, so they are compiled here by path, their `#[cfg(test)]` modules included
//! (`task_pipe`, `repoll`, `fuse`, `lazy_buf_writer`, `head_first`, `idle_pool`,
//! `joined_body`), and the first three are exercised together the way the proxy uses them: a
//! `task_pipe` between the two halves of a request, joined under `Repoll`, and the hand-over
//! of the rest of a response to one loop (`fuse`).

#[allow(dead_code)]
#[path = "../../../vendor/pingora-proxy/src/task_pipe.rs"]
mod task_pipe;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-proxy/src/repoll.rs"]
mod repoll;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-proxy/src/fuse.rs"]
mod fuse;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-core/src/protocols/l4/lazy_buf_writer.rs"]
mod lazy_buf_writer;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-core/src/protocols/http/v1/head_first.rs"]
mod head_first;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-core/src/connectors/idle_pool.rs"]
mod idle_pool;

use pingora::protocols::http::HttpTask;

#[allow(dead_code)]
#[path = "../../../vendor/pingora-proxy/src/joined_body.rs"]
mod joined_body;

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

/// `proxy_1to1`'s hand-over, in its shape: an upstream half reads a source (the upstream
/// socket) and passes items through a pipe to a downstream half; once the downstream half has
/// `fuse_after` items it asks for the fuse, the upstream half leaves between two reads, the
/// downstream half drains the pipe and sees it end without the source's end, and the rest is
/// read from the source after the join. Every item arrives once, in order, whenever the
/// request lands; returns whether the hand-over happened.
async fn fused_transfer(n: u32, fuse_after: u32, source_pace: u32) -> bool {
    let (src_tx, mut src) = task_pipe::channel::<u32>(4);
    tokio::spawn(async move {
        for i in 0..n {
            src_tx.send(i).await.unwrap();
            if source_pace > 0 && i % source_pace == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let (tx, mut rx) = task_pipe::channel::<u32>(4);
    let fuse = fuse::Fuse::default();
    let mut out = Vec::new();
    let mut handed_over = false;
    let upstream = async {
        let tx = tx;
        loop {
            tokio::select! {
                item = src.recv() => match item {
                    Some(i) => tx.send(i).await.expect("the downstream half drains the pipe"),
                    None => return,
                },
                _ = fuse.wait() => {
                    fuse.set_upstream_left();
                    return;
                }
            }
        }
    };
    let downstream = async {
        loop {
            if out.len() as u32 >= fuse_after && !fuse.is_requested() {
                fuse.request();
            }
            match rx.recv().await {
                Some(i) => out.push(i),
                None => {
                    handed_over = fuse.upstream_left();
                    return;
                }
            }
        }
    };
    let joined = Repoll::new(async { tokio::join!(upstream, downstream) });
    tokio::time::timeout(std::time::Duration::from_secs(10), joined)
        .await
        .expect("no half waits forever");
    if handed_over {
        while let Some(i) = src.recv().await {
            out.push(i);
        }
    }
    assert_eq!(out, (0..n).collect::<Vec<_>>(), "n={n} fuse_after={fuse_after} pace={source_pace}");
    handed_over
}

#[tokio::test]
async fn the_fused_hand_over_loses_and_repeats_nothing() {
    let mut handed_over = 0;
    for n in [0, 1, 2, 5, 40] {
        for fuse_after in [0, 1, 3, 4, 5, 8, 100] {
            for pace in [0, 1, 2, 7] {
                handed_over += fused_transfer(n, fuse_after, pace).await as u32;
            }
        }
    }
    // Fusing early in a long source is the case the proxy is for: it must happen.
    assert!(fused_transfer(1000, 1, 1).await, "the upstream half left on request");
    assert!(handed_over > 0);
    // Never asked: everything goes through the pipe.
    assert!(!fused_transfer(50, 100, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fused_hand_over_holds_with_the_source_on_another_thread() {
    for round in 0..200 {
        fused_transfer(64, round % 70, round % 5).await;
    }
}
