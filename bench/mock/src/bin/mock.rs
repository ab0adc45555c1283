//! A fast mock upstream for benchmarks: Anthropic `/v1/messages` (JSON), OpenAI chat completions (JSON, or SSE with
//! `MOCK_CHUNKS` chunks every `MOCK_CHUNK_DELAY_MS`), `/v1/models`, and a tiny MCP
//! server (`tools/list`, `tools/call`) on POST /mcp, and an OTLP/HTTP collector that discards
//! what it gets (POST /v1/traces). HTTP/1.1 with keep-alive; request
//! bodies may be Content-Length or chunked (tollgate sends rewritten bodies chunked).
//! `MOCK_RESET_EVERY=N` drops every Nth request's connection without an answer.
//! `MOCK_CLOSE=1` answers `connection: close` and closes, so every request needs a new connection.
//! Usage: tollgate-bench-mock [ADDR]   (default 127.0.0.1:9200)

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// An Anthropic Messages answer (for the translation benchmark's Anthropic provider).
const MESSAGE: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"mock-model","content":[{"type":"text","text":"Hello from the benchmark mock."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":6}}"#;
const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;
const MODELS: &str = r#"{"object":"list","data":[{"id":"mock-model","object":"model","created":1,"owned_by":"bench"}]}"#;

struct Settings {
    chunks: usize,
    delay: Duration,
    /// Every Nth request is answered by closing the connection (0: never), for soak runs.
    reset_every: u64,
    /// Every answer closes its connection (`MOCK_CLOSE=1`): what a new upstream connection costs.
    close_each: bool,
    served: std::sync::atomic::AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9200".into());
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let settings: &'static Settings = Box::leak(Box::new(Settings {
        chunks: env("MOCK_CHUNKS", 20) as usize,
        delay: Duration::from_millis(env("MOCK_CHUNK_DELAY_MS", 10)),
        reset_every: env("MOCK_RESET_EVERY", 0),
        close_each: env("MOCK_CLOSE", 0) == 1,
        served: std::sync::atomic::AtomicU64::new(0),
    }));
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("bench mock listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = serve(stream, settings).await;
        });
    }
}

/// One request's line, framing and body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

async fn read_request(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let (mut length, mut chunked, mut close) = (0usize, false, false);
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).await?;
    }
    Ok(Some(Request { method, path, body, close }))
}

async fn serve(stream: TcpStream, s: &Settings) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(req) = read_request(&mut reader).await? {
        let n = s.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if s.reset_every > 0 && n % s.reset_every == 0 {
            // An upstream that fails now and then: the connection drops with no answer.
            let _ = write.shutdown().await;
            return Ok(());
        }
        let body = String::from_utf8_lossy(&req.body);
        match (req.method.as_str(), req.path.split('?').next().unwrap_or("")) {
            ("POST", p) if p.ends_with("/chat/completions") && body.contains("\"stream\":true") => {
                stream_completion(&mut write, s).await?
            }
            ("POST", p) if p.ends_with("/chat/completions") => respond(&mut write, s, "application/json", COMPLETION).await?,
            ("POST", p) if p.ends_with("/messages") => respond(&mut write, s, "application/json", MESSAGE).await?,
            ("GET", p) if p.ends_with("/models") => respond(&mut write, s, "application/json", MODELS).await?,
            ("POST", "/mcp") => respond(&mut write, s, "application/json", &mcp(&body)).await?,
            // An OTLP/HTTP collector that takes every span (an empty ExportTraceServiceResponse).
            ("POST", "/v1/traces") => respond(&mut write, s, "application/x-protobuf", "").await?,
            _ => write.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await?,
        }
        if req.close || s.close_each {
            break;
        }
    }
    Ok(())
}

async fn respond(w: &mut tokio::net::tcp::OwnedWriteHalf, s: &Settings, ctype: &str, body: &str) -> std::io::Result<()> {
    let close = if s.close_each { "connection: close\r\n" } else { "" };
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n{close}\r\n", body.len());
    w.write_all(format!("{head}{body}").as_bytes()).await
}

async fn stream_completion(w: &mut tokio::net::tcp::OwnedWriteHalf, s: &Settings) -> std::io::Result<()> {
    w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n").await?;
    let chunk = |data: String| format!("{:x}\r\n{data}\r\n", data.len());
    for i in 0..s.chunks {
        if i > 0 && !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        let event = format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        );
        w.write_all(chunk(event).as_bytes()).await?;
    }
    let usage = format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock-model\",\"choices\":[],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        s.chunks,
        s.chunks + 9
    );
    w.write_all(chunk(usage).as_bytes()).await?;
    w.write_all(b"0\r\n\r\n").await
}

/// Minimal MCP over JSON: `initialize`, `tools/list`, `tools/call` (echo); the id is copied.
fn mcp(body: &str) -> String {
    let id = body
        .split("\"id\":")
        .nth(1)
        .map(|rest| rest.split([',', '}']).next().unwrap_or("null").trim().to_string())
        .unwrap_or_else(|| "null".into());
    let result = if body.contains("\"tools/list\"") {
        r#"{"tools":[{"name":"echo","description":"Echo a message","inputSchema":{"type":"object","properties":{"message":{"type":"string"}}}}]}"#
    } else if body.contains("\"tools/call\"") {
        r#"{"content":[{"type":"text","text":"echo"}],"isError":false}"#
    } else {
        r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"bench-mock","version":"0"}}"#
    };
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}
