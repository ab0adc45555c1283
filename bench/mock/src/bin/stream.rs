//! Streaming load client: runs ROUNDS rounds of CONCURRENCY concurrent streaming chat
//! completions against one address and path, and prints one line:
//! `streams ttft_p50_us ttft_p99_us ttlt_p50_us events_per_stream stalls errors`
//! (time to first / last event; a stall is a gap between events longer than STALL_MS).
//! Usage: tollgate-bench-stream HOST:PORT PATH CONCURRENCY ROUNDS [STALL_MS]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY: &str = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;

/// What one stream saw.
struct StreamStats {
    ttft: Duration,
    ttlt: Duration,
    events: usize,
    max_gap: Duration,
}

/// The request body: `STREAM_BODY` from the environment, or a small chat request.
fn body() -> &'static str {
    static BODY_OVERRIDE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BODY_OVERRIDE.get_or_init(|| std::env::var("STREAM_BODY").unwrap_or_else(|_| BODY.to_string()))
}

async fn one_stream(addr: &str, path: &str) -> std::io::Result<StreamStats> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        body().len(),
        body()
    );
    let start = Instant::now();
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 16384];
    // Bytes carried over between reads so a `data: ` marker split across reads is still seen;
    // five bytes cannot hold a whole marker, so nothing is counted twice.
    let mut tail: Vec<u8> = Vec::new();
    let (mut first, mut last, mut events, mut max_gap) = (None::<Instant>, start, 0usize, Duration::ZERO);
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let now = Instant::now();
        let mut window = std::mem::take(&mut tail);
        window.extend_from_slice(&buf[..n]);
        let new = window.windows(6).filter(|w| w == b"data: ").count();
        if new > 0 {
            match first {
                None => first = Some(now),
                Some(_) => max_gap = max_gap.max(now - last),
            }
            events += new;
            last = now;
        }
        if window.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
        tail = window[window.len().saturating_sub(5)..].to_vec();
    }
    let first = first.ok_or_else(|| std::io::Error::other("no events"))?;
    Ok(StreamStats { ttft: first - start, ttlt: last - start, events, max_gap })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: tollgate-bench-stream HOST:PORT PATH CONCURRENCY ROUNDS [STALL_MS]");
        std::process::exit(2);
    }
    let addr: &'static str = Box::leak(args[1].clone().into_boxed_str());
    let path: &'static str = Box::leak(args[2].clone().into_boxed_str());
    let concurrency: usize = args[3].parse().expect("concurrency");
    let rounds: usize = args[4].parse().expect("rounds");
    let stall = Duration::from_millis(args.get(5).and_then(|v| v.parse().ok()).unwrap_or(1000));
    let (mut ttfts, mut ttlts) = (Vec::new(), Vec::new());
    let (mut events, mut stalls, mut errors) = (0usize, 0usize, 0usize);
    for _ in 0..rounds {
        let tasks: Vec<_> = (0..concurrency).map(|_| tokio::spawn(one_stream(addr, path))).collect();
        for t in tasks {
            match t.await {
                Ok(Ok(s)) => {
                    ttfts.push(s.ttft);
                    ttlts.push(s.ttlt);
                    events = events.max(s.events);
                    if s.max_gap > stall {
                        stalls += 1;
                    }
                }
                _ => errors += 1,
            }
        }
    }
    ttfts.sort();
    ttlts.sort();
    println!(
        "{} {} {} {} {} {} {}",
        ttfts.len(),
        percentile(&ttfts, 0.5).as_micros(),
        percentile(&ttfts, 0.99).as_micros(),
        percentile(&ttlts, 0.5).as_micros(),
        events,
        stalls,
        errors
    );
}
