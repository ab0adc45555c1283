//! An Anthropic Messages request, for an OpenAI Chat Completions upstream: the request
//! translated field by field (as agentgateway's `from_messages`, with its gaps closed: what
//! has no Chat Completions meaning is refused naming the field, not dropped).

use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;

use crate::translation::{chat_prompt, TranslatedRequest};

/// Fields a Messages request may carry that have no Chat Completions equivalent but change
/// nothing in the answer's content, so leaving them out is faithful: `cache_control`
/// markers are caching hints, `service_tier` a scheduling hint, `context_management` asks
/// Anthropic to trim old thinking and tool results from long contexts (the provider then
/// sees the whole conversation; Claude Code sends it on every request). `top_k` narrows
/// sampling and Chat has no such cut: the model samples without it (as agentgateway drops it).
const HINTS: &[&str] = &["service_tier", "context_management", "top_k"];

/// Translates a Messages request; the error is a message for a 400 naming the field.
pub fn messages_to_chat(raw: &[u8], model_override: Option<&str>, want_prompt: bool) -> Result<TranslatedRequest, String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let mut out = Map::new();
    let mut params = LlmParams::default();
    let mut streaming = false;
    let request_model = crate::translation::request_model(&req)?;
    let model = model_override.map(str::to_string).or_else(|| request_model.clone()).ok_or("`model` is required")?;
    out.insert("model".into(), model.into());
    let mut messages = Vec::new();
    if let Some(system) = req.get("system") {
        if let Some(m) = system_message(system)? {
            messages.push(m);
        }
    }
    let turns = match req.get("messages") {
        Some(Value::Array(a)) => a,
        _ => return Err("`messages` is required and must be a list".into()),
    };
    for (i, turn) in turns.iter().enumerate() {
        translate_turn(turn, &mut messages).map_err(|e| format!("messages[{i}]: {e}"))?;
    }
    let prompt = want_prompt.then(|| chat_prompt(&messages));
    out.insert("messages".into(), Value::Array(messages));
    for (key, value) in &req {
        match key.as_str() {
            "model" | "system" | "messages" => {}
            "max_tokens" => {
                let n = value.as_u64().ok_or("invalid `max_tokens`: expected a positive integer")?;
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
            "stop_sequences" => {
                let stops = value.as_array().ok_or("invalid `stop_sequences`: expected a list")?;
                if stops.iter().any(|s| !s.is_string()) {
                    return Err("invalid `stop_sequences`: expected strings".into());
                }
                if !stops.is_empty() {
                    out.insert("stop".into(), value.clone());
                }
            }
            "stream" => {
                streaming = value.as_bool().ok_or("invalid `stream`: expected true or false")?;
                out.insert("stream".into(), streaming.into());
                if streaming {
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "metadata" => {
                let meta = value.as_object().ok_or("invalid `metadata`: expected an object")?;
                for (k, v) in meta {
                    match (k.as_str(), v) {
                        ("user_id", Value::String(u)) => {
                            out.insert("user".into(), u.clone().into());
                        }
                        ("user_id", Value::Null) => {}
                        _ => return Err(format!("`metadata.{k}` cannot be translated for an OpenAI upstream")),
                    }
                }
            }
            "tools" => {
                let tools = translate_tools(value)?;
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
            }
            "tool_choice" => translate_tool_choice(value, &mut out)?,
            "thinking" => translate_thinking(value, req.get("output_config"), &mut out)?,
            "output_config" => translate_output_config(value, &mut out)?,
            k if HINTS.contains(&k) => {}
            other => return Err(format!("`{other}` cannot be translated for an OpenAI upstream")),
        }
    }
    let body = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    Ok(TranslatedRequest { body, request_model, streaming, include_usage: false, params, prompt })
}

/// `system`: a string, or text blocks (kept apart, as parts of one system message).
fn system_message(system: &Value) -> Result<Option<Value>, String> {
    match system {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(json!({"role": "system", "content": s}))),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match block_type(b) {
                    Some("text") => parts.push(json!({"type": "text", "text": text_of(b).map_err(|e| format!("system[{i}]: {e}"))?})),
                    other => return Err(format!("system[{i}]: a `{}` block cannot be a system prompt", other.unwrap_or("?"))),
                }
            }
            Ok((!parts.is_empty()).then(|| json!({"role": "system", "content": parts})))
        }
        _ => Err("invalid `system`: expected a string or a list of text blocks".into()),
    }
}

fn block_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

fn text_of(b: &Value) -> Result<&str, String> {
    b.get("text").and_then(Value::as_str).ok_or_else(|| "a text block needs `text`".into())
}

/// One Messages turn, as one or more Chat messages.
fn translate_turn(turn: &Value, out: &mut Vec<Value>) -> Result<(), String> {
    let role = turn.get("role").and_then(Value::as_str).ok_or("`role` is required")?;
    let single;
    let blocks: &[Value] = match turn.get("content") {
        Some(Value::String(s)) => {
            single = [json!({"type": "text", "text": s})];
            &single
        }
        Some(Value::Array(a)) => a,
        _ => return Err("`content` must be a string or a list of blocks".into()),
    };
    match role {
        "user" => user_turn(blocks, out),
        "assistant" => assistant_turn(blocks, out),
        // Not in Anthropic's reference, but clients send it (Claude Code does): a system
        // message where it stands, as agentgateway takes it.
        "system" => {
            out.extend(system_message(&Value::Array(blocks.to_vec()))?);
            Ok(())
        }
        other => Err(format!("role `{other}` is not a Messages role (user, assistant)")),
    }
}

/// A user turn: its tool results first, each a `tool` message (Chat needs them right after
/// the assistant's tool calls), then one user message with the text and images.
fn user_turn(blocks: &[Value], out: &mut Vec<Value>) -> Result<(), String> {
    let mut parts = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = |e: String| format!("content[{i}]: {e}");
        match block_type(b) {
            Some("text") => parts.push(json!({"type": "text", "text": text_of(b).map_err(at)?})),
            Some("image") => parts.push(image_part(b).map_err(at)?),
            Some("tool_result") => out.push(tool_message(b).map_err(at)?),
            other => return Err(at(format!("a `{}` block cannot be translated for an OpenAI upstream", other.unwrap_or("?")))),
        }
    }
    if !parts.is_empty() {
        // A single text part stays a plain string, the most widely accepted form.
        let content = match parts.as_slice() {
            [p] if p["type"] == "text" => p["text"].clone(),
            _ => Value::Array(parts),
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

/// `image` with a base64 or URL source, as an `image_url` part.
fn image_part(b: &Value) -> Result<Value, String> {
    let source = b.get("source").ok_or("an image needs `source`")?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source.get("media_type").and_then(Value::as_str).ok_or("a base64 image needs `media_type`")?;
            let data = source.get("data").and_then(Value::as_str).ok_or("a base64 image needs `data`")?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => source.get("url").and_then(Value::as_str).ok_or("a url image needs `url`")?.to_string(),
        other => return Err(format!("image source `{}` cannot be translated for an OpenAI upstream", other.unwrap_or("?"))),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// `tool_result` as a `tool` message. Chat has no error flag: an error result says so in
/// its text. Only text can go back to an OpenAI model as a tool result.
fn tool_message(b: &Value) -> Result<Value, String> {
    let id = b.get("tool_use_id").and_then(Value::as_str).ok_or("a tool_result needs `tool_use_id`")?;
    let mut text = match b.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match block_type(p) {
                    Some("text") => texts.push(text_of(p).map_err(|e| format!("content[{j}]: {e}"))?.to_string()),
                    other => {
                        return Err(format!(
                            "tool_result content[{j}]: a `{}` block cannot be a tool result for an OpenAI upstream (text only)",
                            other.unwrap_or("?")
                        ))
                    }
                }
            }
            texts.join("\n")
        }
        Some(_) => return Err("tool_result `content` must be a string or a list of blocks".into()),
    };
    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        text = format!("Error: {text}");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// An assistant turn: text, tool calls, and earlier reasoning (as `reasoning_content`, which
/// OpenAI-compatible servers that reason accept; `redacted_thinking` is opaque to them).
fn assistant_turn(blocks: &[Value], out: &mut Vec<Value>) -> Result<(), String> {
    let mut text = Vec::new();
    let mut calls = Vec::new();
    let mut reasoning = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = |e: String| format!("content[{i}]: {e}");
        match block_type(b) {
            Some("text") => text.push(text_of(b).map_err(at)?.to_string()),
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str).ok_or_else(|| at("a tool_use needs `id`".into()))?;
                let name = b.get("name").and_then(Value::as_str).ok_or_else(|| at("a tool_use needs `name`".into()))?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                let arguments = serde_json::to_string(&input).map_err(|e| at(e.to_string()))?;
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            Some("thinking") => {
                if let Some(t) = b.get("thinking").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    reasoning.push(t.to_string());
                }
            }
            Some("redacted_thinking") => {}
            other => return Err(at(format!("a `{}` block cannot be translated for an OpenAI upstream", other.unwrap_or("?")))),
        }
    }
    if text.is_empty() && calls.is_empty() && reasoning.is_empty() {
        return Ok(());
    }
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert("content".into(), if text.is_empty() { Value::Null } else { text.join("").into() });
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    if !reasoning.is_empty() {
        m.insert("reasoning_content".into(), reasoning.join("\n\n").into());
    }
    out.push(Value::Object(m));
    Ok(())
}

/// Custom tools as functions. Anthropic's server tools (web search, code execution...) run
/// at Anthropic: an OpenAI upstream has nothing to run them with.
fn translate_tools(tools: &Value) -> Result<Vec<Value>, String> {
    let list = tools.as_array().ok_or("invalid `tools`: expected a list")?;
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let kind = block_type(t);
        if kind.is_some_and(|k| k != "custom") {
            return Err(format!("tools[{i}]: the server tool `{}` runs only at Anthropic", kind.unwrap_or("?")));
        }
        let name = t.get("name").and_then(Value::as_str).ok_or_else(|| format!("tools[{i}] needs `name`"))?;
        let mut f = Map::new();
        f.insert("name".into(), name.into());
        if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
            f.insert("description".into(), d.clone());
        }
        f.insert("parameters".into(), t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})));
        if let Some(strict) = t.get("strict").and_then(Value::as_bool) {
            f.insert("strict".into(), strict.into());
        }
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(out)
}

fn translate_tool_choice(choice: &Value, out: &mut Map<String, Value>) -> Result<(), String> {
    let kind = block_type(choice).ok_or("invalid `tool_choice`: expected an object with `type`")?;
    let mapped = match kind {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = choice.get("name").and_then(Value::as_str).ok_or("`tool_choice` of type `tool` needs `name`")?;
            json!({"type": "function", "function": {"name": name}})
        }
        other => return Err(format!("`tool_choice` type `{other}` is not a Messages tool choice")),
    };
    out.insert("tool_choice".into(), mapped);
    if kind != "none" {
        if let Some(disable) = choice.get("disable_parallel_tool_use").and_then(Value::as_bool) {
            out.insert("parallel_tool_calls".into(), (!disable).into());
        }
    }
    Ok(())
}

/// `thinking`: `disabled` sends nothing; `adaptive` and `enabled` ask for reasoning with
/// `output_config.effort` (default `high` for adaptive). As in agentgateway, a bare
/// `budget_tokens` has no Chat Completions equivalent and sends no effort.
fn translate_thinking(thinking: &Value, output_config: Option<&Value>, out: &mut Map<String, Value>) -> Result<(), String> {
    let effort = output_config.and_then(|c| c.get("effort")).and_then(Value::as_str);
    match block_type(thinking) {
        Some("disabled") => {}
        Some("adaptive") => {
            out.insert("reasoning_effort".into(), effort.unwrap_or("high").into());
        }
        Some("enabled") => {
            if let Some(e) = effort {
                out.insert("reasoning_effort".into(), e.into());
            }
        }
        _ => return Err("invalid `thinking`: expected `type` enabled, adaptive or disabled".into()),
    }
    Ok(())
}

/// `output_config`: `format` (a JSON schema) becomes `response_format`; `effort` is read
/// with `thinking`.
fn translate_output_config(config: &Value, out: &mut Map<String, Value>) -> Result<(), String> {
    let config = config.as_object().ok_or("invalid `output_config`: expected an object")?;
    for (k, v) in config {
        match k.as_str() {
            "effort" => {}
            "format" => {
                let schema = v.get("schema").cloned().ok_or("`output_config.format` needs `schema`")?;
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": {"name": "structured_output", "schema": schema}}),
                );
            }
            other => return Err(format!("`output_config.{other}` cannot be translated for an OpenAI upstream")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
