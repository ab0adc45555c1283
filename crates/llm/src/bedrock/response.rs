//! A whole Converse answer as a Chat completion.

use serde_json::{json, Value};
use tollgate_core::json_pointer::Pointer as _;

/// Converse's `stopReason` as Chat's `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "content_filtered" | "guardrail_intervened" => "content_filter",
        _ => "stop",
    }
}

/// Converse `usage` as Chat usage.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (cache_read, cache_write) = (n("cacheReadInputTokens"), n("cacheWriteInputTokens"));
    let input = n("inputTokens") + cache_read + cache_write;
    let mut details = json!({"cached_tokens": cache_read});
    if cache_write > 0 {
        // As for Anthropic: kept so cache writes can be priced.
        details["cache_write_tokens"] = cache_write.into();
    }
    json!({
        "prompt_tokens": input,
        "completion_tokens": n("outputTokens"),
        "total_tokens": n("totalTokens").max(input + n("outputTokens")),
        "prompt_tokens_details": details,
    })
}

/// A Converse answer as a Chat completion for `model`; `None` when it is not one.
pub fn converse_to_chat(v: &Value, model: &str) -> Option<Value> {
    let content = v.at("/output/message/content")?.as_array()?;
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for block in content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(u) = block.get("toolUse") {
            let id = u.get("toolUseId").and_then(Value::as_str).unwrap_or("call");
            let args = u.get("input").cloned().unwrap_or_else(|| json!({})).to_string();
            calls.push(json!({"id": id, "type": "function", "function": {"name": u.get("name"), "arguments": args}}));
        } else if let Some(t) = block.at("/reasoningContent/reasoningText/text").and_then(Value::as_str) {
            reasoning.push_str(t);
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    let stop = v.get("stopReason").and_then(Value::as_str).unwrap_or("end_turn");
    let mut chat = json!({
        "id": "chatcmpl-bedrock", "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(stop)}],
    });
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        chat["usage"] = usage(u);
    }
    Some(chat)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tool_use() {
        let v = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Looking."}, {"toolUse": {"toolUseId": "t1", "name": "w", "input": {"a": 1}}}]}},
                       "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}});
        let c = converse_to_chat(&v, "m").unwrap();
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(c["usage"]["completion_tokens"], 4);
    }
}
