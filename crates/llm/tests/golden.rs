//! Golden translation tests: for each client API → provider API pair in `tests/golden/`, a
//! request as the client's SDK sends it and the provider's answers as its API reference
//! documents them (whole and streamed), and what the gateway must make of them. Every field is
//! compared; a difference names its JSON path.
//!
//! Inputs per case: `case.json`, `client_request.json`, `provider_response.json`, and
//! `provider_stream.txt` (SSE as on the wire) or `provider_stream.jsonl` (Bedrock
//! ConverseStream events, framed here in AWS event-stream binary framing).
//! Expected outputs: `upstream_request.json`, `upstream_request_stream.json`,
//! `client_response.json`, `client_stream.txt`. `GOLDEN_BLESS=1 cargo test -p tollgate-llm
//! --test golden` writes them from the current translators, to be reviewed before committing.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;
use tollgate_core::llm::{AiProvider, LlmExchange, RouteType};
use tollgate_llm::translation::{translate_request, TranslatedAnswer};

/// Fields a translation fills from the clock or a random id: compared as present, not by value.
const VOLATILE: &[&str] = &["created", "created_at", "completed_at"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One case: the pair and its inputs.
struct Case {
    dir: PathBuf,
    kind: RouteType,
    provider: AiProvider,
    client_path: String,
}

impl Case {
    fn load(dir: PathBuf) -> Case {
        let c = read_json(&dir.join("case.json"));
        let kind = match c["client"].as_str() {
            Some("chat") => RouteType::Completions,
            Some("messages") => RouteType::Messages,
            Some("responses") => RouteType::Responses,
            Some("generate") => RouteType::GenerateContent,
            other => panic!("{}: unknown client {other:?}", dir.display()),
        };
        let provider = match c["provider"].as_str() {
            Some("openai") => AiProvider::OpenAi,
            Some("anthropic") => AiProvider::Anthropic,
            Some("gemini") => AiProvider::Gemini,
            Some("bedrock") => AiProvider::Bedrock,
            other => panic!("{}: unknown provider {other:?}", dir.display()),
        };
        let client_path = c["client_path"].as_str().expect("client_path").to_string();
        Case { dir, kind, provider, client_path }
    }

    fn exchange(&self) -> LlmExchange {
        let mut llm = LlmExchange::new(self.provider.name(), "golden", self.kind);
        llm.provider_api = self.provider;
        llm
    }

    /// The client's request, made a streaming one as its SDK would.
    fn streaming_request(&self) -> (Value, String) {
        let mut req = read_json(&self.dir.join("client_request.json"));
        match self.kind {
            RouteType::GenerateContent => return (req, self.client_path.replace(":generateContent", ":streamGenerateContent")),
            RouteType::Completions => {
                req["stream"] = Value::Bool(true);
                req["stream_options"] = serde_json::json!({"include_usage": true});
            }
            _ => req["stream"] = Value::Bool(true),
        }
        (req, self.client_path.clone())
    }

    /// The provider's streamed answer as it arrives on the wire.
    fn provider_stream(&self) -> Vec<u8> {
        let sse = self.dir.join("provider_stream.txt");
        if sse.exists() {
            return std::fs::read(sse).unwrap();
        }
        let events = std::fs::read_to_string(self.dir.join("provider_stream.jsonl")).expect("provider_stream.jsonl");
        let mut out = Vec::new();
        for line in events.lines().filter(|l| !l.trim().is_empty()) {
            let e: Value = serde_json::from_str(line).unwrap();
            out.extend(event_stream_frame(e["event"].as_str().unwrap(), &e["payload"]));
        }
        out
    }
}

/// One AWS event-stream frame, as Bedrock's ConverseStream sends it.
fn event_stream_frame(event: &str, payload: &Value) -> Vec<u8> {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let m = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(":event-type", HeaderValue::String(event.to_string().into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".to_string().into())))
        .add_header(Header::new(":message-type", HeaderValue::String("event".to_string().into())));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

/// Runs the provider's answer through the translation, `piece` bytes at a time.
fn translate_answer(answer: &mut TranslatedAnswer, llm: &mut LlmExchange, input: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = input.chunks(piece.max(1)).collect();
    for (i, p) in pieces.iter().enumerate() {
        let mut body = Some(Bytes::copy_from_slice(p));
        answer.on_body(llm, &mut body, i + 1 == pieces.len(), false);
        if let Some(b) = body {
            out.extend_from_slice(&b);
        }
    }
    out
}

/// The paths (`/a/0/b`) where `got` and `want` differ; volatile fields need only be present.
fn differences(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let p = format!("{path}/{k}");
                match g.get(k) {
                    None => out.push(format!("{p}: missing, want {wv}")),
                    Some(_) if VOLATILE.contains(&k.as_str()) => {}
                    Some(gv) => differences(&p, gv, wv, out),
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.push(format!("{path}/{k}: unexpected {gv}"));
                }
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                differences(&format!("{path}/{i}"), gv, wv, out);
            }
        }
        _ if got != want => out.push(format!("{}: got {got}, want {want}", if path.is_empty() { "/" } else { path })),
        _ => {}
    }
}

/// An SSE stream as a list of events, each `(event name, data)` with JSON data parsed.
fn sse_events(text: &str) -> Vec<(Option<String>, Value)> {
    let text = text.replace("\r\n", "\n");
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
        events.push((name, data));
    }
    events
}

/// Compares (or, blessing, writes) one expected output.
fn check_json(case: &Case, file: &str, got: &Value, failures: &mut Vec<String>) {
    let path = case.dir.join(file);
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(got).unwrap() + "\n").unwrap();
        return;
    }
    if !path.exists() {
        failures.push(format!("{}: no expected output (run with GOLDEN_BLESS=1 and review it)", path.display()));
        return;
    }
    let mut diffs = Vec::new();
    differences("", got, &read_json(&path), &mut diffs);
    failures.extend(diffs.into_iter().map(|d| format!("{}: {d}", path.display())));
}

fn check_stream(case: &Case, got: &[u8], failures: &mut Vec<String>) {
    let path = case.dir.join("client_stream.txt");
    let got = String::from_utf8(got.to_vec()).expect("the translated stream is UTF-8");
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let Ok(want) = std::fs::read_to_string(&path) else {
        failures.push(format!("{}: no expected output (run with GOLDEN_BLESS=1 and review it)", path.display()));
        return;
    };
    let (got, want) = (sse_events(&got), sse_events(&want));
    if got.len() != want.len() {
        failures.push(format!("{}: {} events, want {}", path.display(), got.len(), want.len()));
    }
    for (i, ((gn, gd), (wn, wd))) in got.iter().zip(&want).enumerate() {
        if gn != wn {
            failures.push(format!("{}: event {i} is {gn:?}, want {wn:?}", path.display()));
        }
        let mut diffs = Vec::new();
        differences("", gd, wd, &mut diffs);
        failures.extend(diffs.into_iter().map(|d| format!("{}: event {i} {d}", path.display())));
    }
}

/// The whole case: request and answer, whole and streamed.
fn run_case(case: &Case, failures: &mut Vec<String>) {
    let raw = std::fs::read(case.dir.join("client_request.json")).unwrap();
    let mut llm = case.exchange();
    let (req, t) = translate_request(case.provider, case.kind, &case.client_path, &raw, None, &mut llm, false)
        .unwrap_or_else(|e| panic!("{}: the request is refused: {e}", case.dir.display()));
    let upstream: Value = serde_json::from_slice(&req.body).expect("the translated request is JSON");
    check_json(case, "upstream_request.json", &upstream, failures);
    let answer = std::fs::read(case.dir.join("provider_response.json")).unwrap();
    let mut translated = TranslatedAnswer::new(t, false, None);
    let client = translate_answer(&mut translated, &mut llm, &answer, answer.len());
    let client: Value = serde_json::from_slice(&client).unwrap_or_else(|e| panic!("{}: the translated answer is not JSON: {e}", case.dir.display()));
    check_json(case, "client_response.json", &client, failures);

    let (streaming, path) = case.streaming_request();
    let mut llm = case.exchange();
    let raw = serde_json::to_vec(&streaming).unwrap();
    let (req, t) = translate_request(case.provider, case.kind, &path, &raw, None, &mut llm, false)
        .unwrap_or_else(|e| panic!("{}: the streaming request is refused: {e}", case.dir.display()));
    let upstream: Value = serde_json::from_slice(&req.body).expect("the translated request is JSON");
    check_json(case, "upstream_request_stream.json", &upstream, failures);
    // Small pieces: events split anywhere, as a network splits them.
    let stream = case.provider_stream();
    let mut translated = TranslatedAnswer::new(t, true, None);
    let out = translate_answer(&mut translated, &mut llm, &stream, 7);
    check_stream(case, &out, failures);
    // The same stream in one piece translates the same.
    let (_, t) = translate_request(case.provider, case.kind, &path, &raw, None, &mut case.exchange(), false).unwrap();
    let whole = translate_answer(&mut TranslatedAnswer::new(t, true, None), &mut case.exchange(), &stream, stream.len());
    let (a, b) = (sse_events(&String::from_utf8_lossy(&out)), sse_events(&String::from_utf8_lossy(&whole)));
    if a.len() != b.len() || a.iter().zip(&b).any(|((an, ad), (bn, bd))| {
        let mut d = Vec::new();
        differences("", ad, bd, &mut d);
        an != bn || !d.is_empty()
    }) {
        failures.push(format!("{}: the stream translates differently in 7-byte pieces and whole", case.dir.display()));
    }
}

#[test]
fn every_golden_case_translates_as_recorded() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "golden cases missing: {dirs:?}");
    let mut failures = Vec::new();
    for dir in dirs {
        run_case(&Case::load(dir), &mut failures);
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}
