//! A Chat Completions answer as a Responses object (whole), and the pieces the stream
//! translation shares: the response envelope, output items and usage.

use serde_json::{json, Value};
use tollgate_core::json_pointer::Pointer as _;

/// What the response object echoes of the request (the SDKs read `tools` and friends back).
#[derive(Debug, Clone, Default)]
pub struct Echo(pub serde_json::Map<String, Value>, pub Namespaces);

/// Function tools of `namespace` tool groups, flattened for Chat: the Chat name of each, and
/// the namespace and name a call to it is reported under.
#[derive(Debug, Clone, Default)]
pub struct Namespaces(pub std::collections::HashMap<String, (String, String)>);

impl Namespaces {
    /// The (namespace, name) a Chat tool name stands for, if it is a namespaced tool.
    pub fn lookup(&self, chat_name: &str) -> Option<&(String, String)> {
        self.0.get(chat_name)
    }

    /// The Chat name of `name` in `namespace`.
    pub fn chat_name(&self, namespace: &str, name: &str) -> Option<&str> {
        self.0.iter().find(|(_, (ns, n))| ns == namespace && n == name).map(|(k, _)| k.as_str())
    }
}

impl Echo {
    /// The request fields a response repeats.
    pub fn of(req: &serde_json::Map<String, Value>) -> Echo {
        let mut out = serde_json::Map::new();
        for key in ["instructions", "max_output_tokens", "metadata", "parallel_tool_calls", "temperature", "text", "tool_choice", "tools", "top_p", "reasoning", "store", "truncation"] {
            if let Some(v) = req.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        Echo(out, Namespaces::default())
    }
}

/// Chat usage as Responses usage.
pub fn usage(u: &Value) -> Value {
    let n = |p: &str| u.at(p).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (n("/prompt_tokens"), n("/completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": n("/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n("/completion_tokens_details/reasoning_tokens")},
        "total_tokens": n("/total_tokens").max(input + output),
    })
}

/// The status (and `incomplete_details`) a Chat `finish_reason` means.
pub fn status(finish: Option<&str>) -> (&'static str, Value) {
    match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The response envelope.
#[allow(clippy::too_many_arguments)]
pub fn envelope(id: &str, created: u64, model: &Value, status: &str, output: Vec<Value>, usage: Value, incomplete: Value, echo: &Echo) -> Value {
    let mut r = json!({
        "id": id, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "usage": usage, "error": null, "incomplete_details": incomplete,
        "instructions": null, "metadata": {}, "parallel_tool_calls": true, "temperature": null, "top_p": null,
        "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}}, "previous_response_id": null,
    });
    for (k, v) in &echo.0 {
        r[k] = v.clone();
    }
    r
}

/// A finished assistant message item.
pub fn message_item(id: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// A finished function call item (a namespaced tool's under its namespace and own name).
pub fn call_item(call_id: &str, name: &str, arguments: &str, namespaces: &Namespaces) -> Value {
    let mut item = json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"});
    if let Some((ns, own)) = namespaces.lookup(name) {
        item["name"] = own.as_str().into();
        item["namespace"] = ns.as_str().into();
    }
    item
}

/// A whole Chat completion as a Responses object; `None` when it is not one.
pub fn chat_to_response(chat: &Value, echo: &Echo) -> Option<Value> {
    let choice = chat.get("choices")?.as_array()?.first()?;
    let message = choice.get("message")?;
    let chat_id = chat.get("id").and_then(Value::as_str).unwrap_or("tollgate");
    let id = format!("resp_{}", chat_id.trim_start_matches("chatcmpl-"));
    let mut output = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        output.push(message_item(&format!("msg_{}", chat_id.trim_start_matches("chatcmpl-")), text));
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let call_id = call.get("id").and_then(Value::as_str).unwrap_or("call");
        let f = call.get("function").cloned().unwrap_or_default();
        output.push(call_item(call_id, f["name"].as_str().unwrap_or(""), f["arguments"].as_str().unwrap_or("{}"), &echo.1));
    }
    if output.is_empty() {
        output.push(message_item(&format!("msg_{}", chat_id.trim_start_matches("chatcmpl-")), ""));
    }
    let (status, incomplete) = status(choice.get("finish_reason").and_then(Value::as_str));
    let created = chat.get("created").and_then(Value::as_u64).unwrap_or(0);
    let usage = chat.get("usage").filter(|u| u.is_object()).map(usage).unwrap_or(Value::Null);
    Some(envelope(&id, created, chat.get("model").unwrap_or(&Value::Null), status, output, usage, incomplete, echo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_calls_become_output_items() {
        let chat = json!({"id": "chatcmpl-9", "created": 5, "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Looking.", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}});
        let r = chat_to_response(&chat, &Echo::default()).unwrap();
        assert_eq!((r["id"].as_str(), r["status"].as_str()), (Some("resp_9"), Some("completed")));
        assert_eq!(r["output"][0]["content"][0]["text"], "Looking.");
        assert_eq!((r["output"][1]["call_id"].as_str(), r["output"][1]["name"].as_str()), (Some("c1"), Some("w")));
        assert_eq!((r["usage"]["input_tokens"].as_u64(), r["usage"]["output_tokens"].as_u64()), (Some(3), Some(4)));
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "a"}}]});
        assert_eq!(chat_to_response(&cut, &Echo::default()).unwrap()["incomplete_details"]["reason"], "max_output_tokens");
    }
}
