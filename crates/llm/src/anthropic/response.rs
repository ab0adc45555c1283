//! An Anthropic Messages answer, for a Chat Completions client: the whole response, stop
//! reasons, usage, and errors in OpenAI's shape.

use serde_json::{json, Value};

/// A Messages `stop_reason` as Chat's `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Messages usage as Chat usage: prompt tokens include the cached ones, reported apart in
/// `prompt_tokens_details`.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let written = n("cache_creation_input_tokens");
    let prompt = n("input_tokens") + cached + written;
    let completion = n("output_tokens");
    let mut details = json!({"cached_tokens": cached});
    if written > 0 {
        // Not an OpenAI field; kept so cache writes can be priced (and told apart again).
        details["cache_write_tokens"] = written.into();
    }
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    })
}

/// Seconds since the epoch, for `created`.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A whole Messages response as a Chat completion; `None` when it is not one.
pub fn messages_to_chat(m: &Value) -> Option<Value> {
    let blocks = m.get("content")?.as_array()?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").map(|i| i.to_string()).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    Some(json!({
        "id": m.get("id").cloned().unwrap_or_else(|| "chatcmpl-tollgate".into()),
        "object": "chat.completion",
        "created": now(),
        "model": m.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(m.get("stop_reason").and_then(Value::as_str))}],
        "usage": usage(m.get("usage").unwrap_or(&Value::Null)),
    }))
}

/// An upstream error body (Anthropic's `{"type": "error", "error": {"type", "message"}}`,
/// or anything else) in OpenAI's shape, for the same status.
pub fn error_to_chat(status: u16, body: &[u8]) -> Value {
    let (kind, message) = crate::translation::upstream_error(status, body);
    let kind = kind.unwrap_or_else(|| "upstream_error".into());
    json!({"error": {"message": message, "type": kind, "code": status.to_string(), "param": null}})
}
