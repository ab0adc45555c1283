//! An OpenAI Chat Completions answer, for a Messages client: the whole response, the stop
//! reason and usage, and errors in Anthropic's shape.

use serde_json::{json, Map, Value};
use tollgate_core::json_pointer::Pointer as _;

/// Chat's `finish_reason` as a Messages `stop_reason`, with the stop sequence when the
/// upstream names it (vLLM's `stop_reason`, SGLang's `matched_stop`).
pub fn stop_reason(choice: &Value) -> (&'static str, Value) {
    let matched = choice.get("stop_reason").or_else(|| choice.get("matched_stop")).and_then(Value::as_str);
    match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") if matched.is_some() => ("stop_sequence", matched.map_or(Value::Null, |s| s.into())),
        Some("length") => ("max_tokens", Value::Null),
        Some("tool_calls" | "function_call") => ("tool_use", Value::Null),
        Some("content_filter") => ("refusal", Value::Null),
        _ => ("end_turn", Value::Null),
    }
}

/// Chat usage as Messages usage: cached prompt tokens are reported apart, as Anthropic does
/// (`input_tokens` excludes them).
pub fn usage(u: Option<&Value>) -> Value {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let Some(u) = u.filter(|u| u.is_object()) else { return json!({"input_tokens": 0, "output_tokens": 0}) };
    let cache_read = n(u.at("/prompt_tokens_details/cached_tokens").or_else(|| u.get("cache_read_input_tokens")));
    let cache_write = n(u.at("/prompt_tokens_details/cache_write_tokens").or_else(|| u.get("cache_creation_input_tokens")));
    let input = n(u.get("prompt_tokens")).saturating_sub(cache_read + cache_write);
    let mut out = Map::new();
    out.insert("input_tokens".into(), input.into());
    out.insert("output_tokens".into(), n(u.get("completion_tokens")).into());
    if cache_read > 0 {
        out.insert("cache_read_input_tokens".into(), cache_read.into());
    }
    if cache_write > 0 {
        out.insert("cache_creation_input_tokens".into(), cache_write.into());
    }
    Value::Object(out)
}

/// A tool call's `arguments` (a JSON string) as a `tool_use` input object: empty is `{}`;
/// text that is not JSON stays a string, so nothing the model wrote is lost.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

/// A whole Chat response as a Messages response; `None` when it is not one (no choices).
pub fn chat_to_messages(chat: &Value) -> Option<Value> {
    let choice = chat.get("choices")?.as_array()?.first()?;
    let message = choice.get("message")?;
    let mut content = Vec::new();
    if let Some(r) = message.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    if let Some(t) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let f = call.get("function")?;
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": f.get("name").and_then(Value::as_str).unwrap_or_default(),
            "input": tool_input(f.get("arguments").and_then(Value::as_str).unwrap_or_default()),
        }));
    }
    let (stop_reason, stop_sequence) = stop_reason(choice);
    Some(json!({
        "id": chat.get("id").cloned().unwrap_or_else(|| "msg_tollgate".into()),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage(chat.get("usage")),
    }))
}

/// An upstream error body (OpenAI's `{"error": {"message"}}`, or anything else) as an
/// Anthropic error for the same status. Text that is not OpenAI-shaped becomes the message,
/// cut to a sane length.
pub fn error_to_messages(status: u16, body: &[u8]) -> Value {
    let (_, message) = crate::translation::upstream_error(status, body);
    json!({"type": "error", "error": {"type": tollgate_core::errors::anthropic_error_type(status), "message": message}})
}
