//! An OpenAI Chat Completions answer, for a Gemini `generateContent` client: the whole
//! response, or the stream event by event (text as it comes; tool calls, which Gemini sends
//! whole, once their arguments are complete), and errors in Google's shape.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tollgate_core::json_pointer::Pointer as _;

/// Chat's `finish_reason` as Gemini's `finishReason`.
fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        _ => "STOP",
    }
}

/// Chat usage as `usageMetadata`.
fn usage_metadata(u: Option<&Value>) -> Value {
    let n = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    let cached = u.and_then(|u| u.at("/prompt_tokens_details/cached_tokens")).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = u.and_then(|u| u.at("/completion_tokens_details/reasoning_tokens")).and_then(Value::as_u64).unwrap_or(0);
    let mut m = json!({
        "promptTokenCount": n("prompt_tokens"),
        "candidatesTokenCount": n("completion_tokens").saturating_sub(thoughts),
        "totalTokenCount": n("total_tokens"),
    });
    if cached > 0 {
        m["cachedContentTokenCount"] = cached.into();
    }
    if thoughts > 0 {
        m["thoughtsTokenCount"] = thoughts.into();
    }
    m
}

fn call_part(name: &Value, arguments: &str, id: &Value) -> Value {
    // Gemini's `args` is an object: arguments that are not one are kept under `value`.
    let args = match crate::messages::response::tool_input(arguments) {
        v @ Value::Object(_) => v,
        other => json!({"value": other}),
    };
    let mut call = json!({"name": name, "args": args});
    if let Some(id) = id.as_str() {
        call["id"] = id.into();
    }
    json!({"functionCall": call})
}

/// A whole Chat response as a Gemini response; `None` when it is not one.
pub fn chat_to_generate(chat: &Value) -> Option<Value> {
    let choice = chat.get("choices")?.as_array()?.first()?;
    let message = choice.get("message")?;
    let mut parts = Vec::new();
    if let Some(r) = message.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        parts.push(json!({"text": r, "thought": true}));
    }
    if let Some(t) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        parts.push(json!({"text": t}));
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let f = call.get("function")?;
        parts.push(call_part(f.get("name").unwrap_or(&Value::Null), f.get("arguments").and_then(Value::as_str).unwrap_or(""), call.get("id").unwrap_or(&Value::Null)));
    }
    Some(json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish_reason(choice.get("finish_reason").and_then(Value::as_str)), "index": 0}],
        "usageMetadata": usage_metadata(chat.get("usage")),
        "modelVersion": chat.get("model").cloned().unwrap_or(Value::Null),
        "responseId": chat.get("id").cloned().unwrap_or(Value::Null),
    }))
}

/// An upstream error as Google's `{"error": {"code", "message", "status"}}`.
pub fn error_to_generate(status: u16, body: &[u8]) -> Value {
    let (_, message) = crate::translation::upstream_error(status, body);
    json!({"error": {"code": status, "message": message, "status": tollgate_core::errors::google_status(status)}})
}

#[derive(Debug, Default, Clone)]
struct PendingCall {
    id: Value,
    name: Value,
    arguments: String,
}

/// The translation state of one stream.
#[derive(Debug, Default, Clone)]
pub struct ChatToGenerateStream {
    calls: BTreeMap<u64, PendingCall>,
    finish: Option<String>,
    usage: Option<Value>,
    model: Value,
    id: Value,
    finished: bool,
    started: bool,
}

fn data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

impl ChatToGenerateStream {
    fn response(&self, parts: Vec<Value>, finish: Option<&str>) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = finish_reason(Some(f)).into();
        }
        json!({"candidates": [candidate], "modelVersion": self.model, "responseId": self.id})
    }

    /// Translates one Chat event's `data`; returns the Gemini events to send now.
    pub fn chunk(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if raw == b"[DONE]" {
            self.finish_into(&mut out);
            return out;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(raw) else { return out };
        if let Some(err) = chunk.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed");
            data(&mut out, &json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}}));
            self.finished = true;
            return out;
        }
        if !self.started {
            self.started = true;
            self.model = chunk.get("model").cloned().unwrap_or(Value::Null);
            self.id = chunk.get("id").cloned().unwrap_or(Value::Null);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else { return out };
        let mut parts = Vec::new();
        if let Some(delta) = choice.get("delta") {
            if let Some(r) = delta.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                parts.push(json!({"text": r, "thought": true}));
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                parts.push(json!({"text": t}));
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let entry = self.calls.entry(call.get("index").and_then(Value::as_u64).unwrap_or(0)).or_default();
                if let Some(id) = call.get("id").filter(|i| !i.is_null()) {
                    entry.id = id.clone();
                }
                if let Some(name) = call.at("/function/name").filter(|n| !n.is_null()) {
                    entry.name = name.clone();
                }
                let piece = call.at("/function/arguments").and_then(Value::as_str).unwrap_or("");
                // Gemini sends a call whole, so its arguments are held until it ends: bounded.
                if entry.arguments.len() + piece.len() > crate::translation::MAX_RESPONSE_COPY {
                    data(&mut out, &json!({"error": {"code": 502, "message": "the upstream tool call is larger than the gateway holds", "status": "INTERNAL"}}));
                    self.finished = true;
                    return out;
                }
                entry.arguments.push_str(piece);
            }
        }
        if !parts.is_empty() {
            data(&mut out, &self.response(parts, None));
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        out
    }

    /// The upstream stream ended: end the answer if `[DONE]` did not; before any finish
    /// reason the answer was cut short, and the client gets an error.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if self.finish.is_some() {
            self.finish_into(&mut out);
        } else {
            data(&mut out, &json!({"error": {"code": 502, "message": "the upstream stream ended before the answer was complete", "status": "UNAVAILABLE"}}));
            self.finished = true;
        }
        out
    }

    /// The last event: complete tool calls, the finish reason and the usage.
    fn finish_into(&mut self, out: &mut Vec<u8>) {
        let parts: Vec<Value> = self.calls.values().map(|c| call_part(&c.name, &c.arguments, &c.id)).collect();
        let mut last = self.response(parts, Some(self.finish.as_deref().unwrap_or("stop")));
        last["usageMetadata"] = usage_metadata(self.usage.as_ref());
        data(out, &last);
        self.finished = true;
    }
}
