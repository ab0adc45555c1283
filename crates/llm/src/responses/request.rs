//! A Responses request as a Chat Completions request: `instructions` and `input` items become
//! messages, function tools and tool choice their Chat forms, `text.format` the
//! `response_format`. What has no Chat meaning (hosted tools, stored state, files) is a 400
//! naming it.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;

use super::response::Namespaces;
use crate::translation::{chat_prompt, TranslatedRequest};

/// Fields that change nothing in the answer's content, left out: storage and caching hints,
/// `metadata` (kept by OpenAI with a stored response), `include` (extra output the translation
/// never makes), `truncation: disabled` / `auto` (the provider sees the whole input), the
/// reasoning summary request (reasoning is not echoed through Chat).
/// `client_metadata` is the client's own telemetry (Codex sends its session and turn ids).
const HINTS: &[&str] = &["store", "metadata", "include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier", "user", "stream_options", "client_metadata"];

/// Translates a Responses request; the error is a message for a 400 naming the field.
/// Also returns what the response echoes of the request.
pub fn responses_to_chat(raw: &[u8], model_override: Option<&str>, want_prompt: bool) -> Result<(TranslatedRequest, super::response::Echo), String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let request_model = crate::translation::request_model(&req)?;
    let model = model_override.map(str::to_string).or_else(|| request_model.clone()).ok_or("`model` is required")?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let namespaces = match req.get("tools") {
        Some(Value::Array(tools)) => namespaces(tools)?,
        _ => Default::default(),
    };
    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err("invalid `instructions`: expected a string".into()),
    }
    match req.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &mut messages, &namespaces).map_err(|e| format!("input[{i}]: {e}"))?;
            }
        }
        _ => return Err("`input` is required: a string or a list of items".into()),
    }
    let prompt = want_prompt.then(|| chat_prompt(&messages));
    out.insert("messages".into(), Value::Array(messages));
    let mut params = LlmParams::default();
    let mut streaming = false;
    for (key, value) in &req {
        match key.as_str() {
            "model" | "instructions" | "input" => {}
            k if HINTS.contains(&k) => {}
            "stream" => {
                streaming = value.as_bool().ok_or("invalid `stream`: expected a boolean")?;
                if streaming {
                    out.insert("stream".into(), true.into());
                    // The closing `response.completed` carries usage.
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "max_output_tokens" => {
                let n = value.as_u64().ok_or("invalid `max_output_tokens`: expected a positive integer")?;
                params.max_tokens = Some(n);
                out.insert("max_completion_tokens".into(), n.into());
            }
            "temperature" | "top_p" => {
                let x = value.as_f64().ok_or_else(|| format!("invalid `{key}`: expected a number"))?;
                if key == "temperature" {
                    params.temperature = Some(x);
                } else {
                    params.top_p = Some(x);
                }
                out.insert(key.clone(), value.clone());
            }
            "parallel_tool_calls" => {
                out.insert(key.clone(), value.clone());
            }
            "tools" => {
                let tools = value.as_array().ok_or("invalid `tools`: expected a list")?;
                let mut chat_tools = Vec::new();
                for (i, t) in tools.iter().enumerate() {
                    chat_tools.extend(tool(t, &namespaces).map_err(|e| format!("tools[{i}]: {e}"))?);
                }
                if !chat_tools.is_empty() {
                    out.insert("tools".into(), Value::Array(chat_tools));
                }
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(value)?);
            }
            "text" => {
                if let Some(format) = value.get("format") {
                    if let Some(rf) = response_format(format)? {
                        out.insert("response_format".into(), rf);
                    }
                }
                if let Some(v) = value.get("verbosity").filter(|v| !v.is_null()) {
                    out.insert("verbosity".into(), v.clone());
                }
            }
            "reasoning" => {
                if let Some(effort) = value.get("effort").filter(|v| !v.is_null()) {
                    out.insert("reasoning_effort".into(), effort.clone());
                }
            }
            "background" if value == &Value::Bool(false) => {}
            "previous_response_id" | "conversation" if value.is_null() => {}
            "previous_response_id" | "conversation" => {
                return Err(format!("`{key}` needs a stored response, which this provider (reached through Chat Completions) does not keep: send the whole input"));
            }
            other => return Err(format!("`{other}` has no Chat Completions equivalent; this provider cannot take it")),
        }
    }
    let mut echo = super::response::Echo::of(&req);
    echo.1 = namespaces;
    Ok((TranslatedRequest { body: serde_json::to_vec(&Value::Object(out)).map_err(|e| e.to_string())?, request_model, streaming, include_usage: false, params, prompt }, echo))
}

/// One `input` item, appended as Chat messages (consecutive function calls share one
/// assistant message, as Chat has them).
fn input_item(item: &Value, messages: &mut Vec<Value>, namespaces: &Namespaces) -> Result<(), String> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).ok_or("a message needs a `role`")?;
            if !matches!(role, "user" | "assistant" | "system" | "developer") {
                return Err(format!("role `{role}` is not a Chat role"));
            }
            let content = match item.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => content_parts(parts, role)?,
                _ => return Err("`content` must be a string or a list of parts".into()),
            };
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call_id = item.get("call_id").and_then(Value::as_str).ok_or("a function_call needs `call_id`")?;
            let name = item.get("name").and_then(Value::as_str).ok_or("a function_call needs `name`")?;
            let name = match item.get("namespace").and_then(Value::as_str) {
                Some(ns) => namespaces.chat_name(ns, name).ok_or_else(|| format!("a function_call names tool `{name}` of namespace `{ns}`, which `tools` does not declare"))?,
                None => name,
            };
            let arguments = item.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            let call = json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}});
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    let calls = last.as_object_mut().ok_or("bad message")?.entry("tool_calls").or_insert_with(|| json!([]));
                    calls.as_array_mut().ok_or("bad tool_calls")?.push(call);
                }
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let call_id = item.get("call_id").and_then(Value::as_str).ok_or("a function_call_output needs `call_id`")?;
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
                _ => return Err("`output` must be a string or a list of text parts".into()),
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        // Reasoning the model did earlier: Chat has no way to hand it back (OpenAI's own
        // reasoning is encrypted anyway); the conversation stands without it.
        "reasoning" => {}
        other => return Err(format!("item type `{other}` has no Chat Completions equivalent")),
    }
    Ok(())
}

/// Message content parts as Chat parts (text and images).
fn content_parts(parts: &[Value], role: &str) -> Result<Value, String> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "input_text" | "output_text" | "text" => {
                let text = p.get("text").and_then(Value::as_str).ok_or_else(|| format!("content[{i}]: `text` is required"))?;
                out.push(json!({"type": "text", "text": text}));
            }
            "refusal" => {
                let text = p.get("refusal").and_then(Value::as_str).unwrap_or("");
                out.push(json!({"type": "text", "text": text}));
            }
            "input_image" if role == "user" => {
                let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| format!("content[{i}]: an input_image needs `image_url` (a `file_id` needs OpenAI's file store)"))?;
                let mut image = json!({"url": url});
                if let Some(d) = p.get("detail").filter(|d| !d.is_null()) {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            other => return Err(format!("content[{i}]: part type `{other}` has no Chat Completions equivalent here")),
        }
    }
    // An assistant turn in Chat is text: join its parts.
    if role == "assistant" {
        let text: Vec<&str> = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(text.join("")));
    }
    Ok(Value::Array(out))
}

/// Chat names for the function tools of `namespace` groups: the tool's own name when no other
/// tool has it, else `{namespace}__{name}`.
fn namespaces(tools: &[Value]) -> Result<Namespaces, String> {
    let mut own_names: HashMap<&str, usize> = HashMap::new();
    let mut grouped = Vec::new();
    for t in tools {
        let inner: Vec<&Value> = match t.get("type").and_then(Value::as_str) {
            Some("namespace") => {
                let ns = t.get("name").and_then(Value::as_str).ok_or("a namespace tool needs `name`")?;
                let list = t.get("tools").and_then(Value::as_array).ok_or("a namespace tool needs `tools`")?;
                for f in list {
                    grouped.push((ns, f.get("name").and_then(Value::as_str).ok_or("a namespaced tool needs `name`")?));
                }
                list.iter().collect()
            }
            _ => vec![t],
        };
        for f in inner {
            if let Some(n) = f.get("name").and_then(Value::as_str) {
                *own_names.entry(n).or_default() += 1;
            }
        }
    }
    let mut map = HashMap::new();
    // Top-level functions keep their names; no two tools may end up with one Chat name.
    let mut taken: Vec<String> = tools.iter().filter(|t| t.get("type").and_then(Value::as_str) == Some("function")).filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string)).collect();
    for (ns, name) in grouped {
        let chat = if own_names.get(name) == Some(&1) { name.to_string() } else { format!("{ns}__{name}") };
        if taken.contains(&chat) {
            return Err(format!("tool `{name}` of namespace `{ns}` has the name of another tool (`{chat}`)"));
        }
        taken.push(chat.clone());
        map.insert(chat, (ns.to_string(), name.to_string()));
    }
    Ok(Namespaces(map))
}

/// A tool in Chat's shape: function tools, and the function tools of a `namespace` group.
/// A web search limited to OpenAI's cache (`external_web_access: false`, as Codex declares it)
/// is left out, as agentgateway leaves it: no other provider has that cache. Other hosted
/// tools (web search, files, code, MCP…) are refused.
fn tool(t: &Value, namespaces: &Namespaces) -> Result<Vec<Value>, String> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "function" => Ok(vec![function_tool(t, None)?]),
        "namespace" => {
            let ns = t.get("name").and_then(Value::as_str).unwrap_or("");
            let inner = t.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            inner
                .iter()
                .map(|f| {
                    if f.get("type").and_then(Value::as_str) != Some("function") {
                        return Err(format!("namespace `{ns}`: only function tools have a Chat Completions equivalent"));
                    }
                    let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                    function_tool(f, namespaces.chat_name(ns, name))
                })
                .collect()
        }
        "web_search" if t.get("external_web_access") == Some(&Value::Bool(false)) => Ok(Vec::new()),
        _ => Err(format!("tool type `{kind}` runs on OpenAI's side and has no Chat Completions equivalent")),
    }
}

/// A function tool, named `chat_name` when given.
fn function_tool(t: &Value, chat_name: Option<&str>) -> Result<Value, String> {
    let name = t.get("name").and_then(Value::as_str).ok_or("a function tool needs `name`")?;
    let name = chat_name.unwrap_or(name);
    let mut function = json!({"name": name, "parameters": t.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
    if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
        function["description"] = d.clone();
    }
    if let Some(s) = t.get("strict").filter(|s| !s.is_null()) {
        function["strict"] = s.clone();
    }
    Ok(json!({"type": "function", "function": function}))
}

fn tool_choice(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(v.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).ok_or("invalid `tool_choice`: a function choice needs `name`")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err("invalid `tool_choice`: only auto, none, required or a function have a Chat Completions equivalent".into()),
    }
}

/// `text.format` as Chat's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, String> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(format!("text.format type `{other}` has no Chat Completions equivalent")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(v: Value) -> Result<Value, String> {
        let (t, _) = responses_to_chat(v.to_string().as_bytes(), None, false)?;
        Ok(serde_json::from_slice(&t.body).unwrap())
    }

    #[test]
    fn a_tool_round_trip_becomes_chat_messages() {
        let chat = translate(json!({
            "model": "m", "instructions": "Be brief.", "stream": true, "max_output_tokens": 50,
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": "data:image/png;base64,AA"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"a\":1}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"},
            ],
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low", "summary": "auto"}, "store": false,
        }))
        .unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(m[1]["content"][1]["image_url"]["url"], "data:image/png;base64,AA");
        assert_eq!(m[2]["tool_calls"].as_array().unwrap().len(), 2);
        assert_eq!((m[3]["role"].as_str(), m[3]["tool_call_id"].as_str()), (Some("tool"), Some("c1")));
        assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "w"}}));
        assert_eq!(chat["tools"][0]["function"]["name"], "w");
        assert_eq!(chat["max_completion_tokens"], 50);
        assert_eq!(chat["stream_options"]["include_usage"], true);
        assert_eq!(chat["response_format"]["json_schema"]["name"], "x");
        assert_eq!(chat["reasoning_effort"], "low");
    }

    #[test]
    fn namespaced_tools_are_flattened_and_cache_only_search_left_out() {
        let tools = json!([
            {"type": "function", "name": "close", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "agents", "tools": [
                {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
                {"type": "function", "name": "close", "parameters": {"type": "object"}}]},
            {"type": "web_search", "external_web_access": false},
        ]);
        let req = json!({"model": "m", "tools": tools, "client_metadata": {"turn_id": "t"}, "input": [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c1", "namespace": "agents", "name": "close", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"}]});
        let (t, echo) = responses_to_chat(req.to_string().as_bytes(), None, false).unwrap();
        let chat: Value = serde_json::from_slice(&t.body).unwrap();
        let names: Vec<&str> = chat["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["close", "spawn", "agents__close"]);
        assert_eq!(chat["messages"][1]["tool_calls"][0]["function"]["name"], "agents__close");
        // The answer's calls are reported under their namespace again.
        let item = super::super::response::call_item("c2", "agents__close", "{}", &echo.1);
        assert_eq!((item["namespace"].as_str(), item["name"].as_str()), (Some("agents"), Some("close")));
        let item = super::super::response::call_item("c3", "spawn", "{}", &echo.1);
        assert_eq!((item["namespace"].as_str(), item["name"].as_str()), (Some("agents"), Some("spawn")));
        assert!(super::super::response::call_item("c4", "close", "{}", &echo.1).get("namespace").is_none());
    }

    #[test]
    fn what_chat_cannot_carry_is_refused_by_name() {
        for (req, word) in [
            (json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}), "previous_response_id"),
            (json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}), "web_search"),
            (json!({"model": "m", "input": [{"type": "file_search_call"}]}), "file_search_call"),
            (json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}), "input_file"),
            (json!({"model": "m", "input": "x", "prompt": {"id": "p"}}), "prompt"),
            (json!({"model": "m", "input": "x", "background": true}), "background"),
            (json!({"model": "m"}), "input"),
        ] {
            let e = translate(req).unwrap_err();
            assert!(e.contains(word), "{e}");
        }
    }
}
