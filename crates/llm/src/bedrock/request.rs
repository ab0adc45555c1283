//! A Chat Completions request as a Converse request: system messages → `system`, turns →
//! `messages` (same-role turns merged, as Converse wants them alternating), images inline,
//! tool calls → `toolUse`, tool results → `toolResult`, tools → `toolConfig`, sampling →
//! `inferenceConfig`. What Converse cannot carry is a 400 naming it.

use base64::Engine;
use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;
use tollgate_core::json_pointer::Pointer as _;

use crate::translation::{chat_prompt, TranslatedRequest};

/// Chat fields that change nothing in the answer's content: left out.
const HINTS: &[&str] = &["user", "metadata", "store", "parallel_tool_calls", "service_tier", "prompt_cache_key", "safety_identifier"];

/// The translated body, with the model for the path and whether the client streams.
pub struct ConverseRequest {
    /// The request and what the gateway records of it.
    pub translated: TranslatedRequest,
    /// The model id (the path names it).
    pub model: String,
}

/// Translates a Chat request; the error is a message for a 400 naming the field.
pub fn chat_to_converse(raw: &[u8], model_override: Option<&str>, want_prompt: bool) -> Result<ConverseRequest, String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let request_model = crate::translation::request_model(&req)?;
    let model = model_override.map(str::to_string).or_else(|| request_model.clone()).ok_or("`model` is required")?;
    let chat = match req.get("messages") {
        Some(Value::Array(a)) => a,
        _ => return Err("`messages` is required and must be a list".into()),
    };
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in chat.iter().enumerate() {
        turn(m, &mut system, &mut messages).map_err(|e| format!("messages[{i}]: {e}"))?;
    }
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    let mut params = LlmParams::default();
    let (mut streaming, mut include_usage) = (false, false);
    let mut tools: Option<Vec<Value>> = None;
    let mut choice: Option<Value> = None;
    for (key, value) in &req {
        match key.as_str() {
            "model" | "messages" => {}
            k if HINTS.contains(&k) => {}
            "stream" => streaming = value.as_bool().ok_or("invalid `stream`: expected a boolean")?,
            "stream_options" => include_usage = value.get("include_usage").and_then(Value::as_bool).unwrap_or(false),
            "max_tokens" | "max_completion_tokens" => {
                let n = value.as_u64().ok_or_else(|| format!("invalid `{key}`: expected a positive integer"))?;
                params.max_tokens = Some(n);
                inference.insert("maxTokens".into(), n.into());
            }
            "temperature" => {
                params.temperature = Some(value.as_f64().ok_or("invalid `temperature`: expected a number")?);
                inference.insert("temperature".into(), value.clone());
            }
            "top_p" => {
                params.top_p = Some(value.as_f64().ok_or("invalid `top_p`: expected a number")?);
                inference.insert("topP".into(), value.clone());
            }
            "stop" => {
                let stops = match value {
                    Value::String(s) => vec![Value::String(s.clone())],
                    Value::Array(a) => a.clone(),
                    Value::Null => vec![],
                    _ => return Err("invalid `stop`: expected a string or a list".into()),
                };
                if !stops.is_empty() {
                    inference.insert("stopSequences".into(), Value::Array(stops));
                }
            }
            "n" if value.as_u64() == Some(1) => {}
            "tools" => {
                let list = value.as_array().ok_or("invalid `tools`: expected a list")?;
                tools = Some(list.iter().enumerate().map(|(i, t)| tool(t).map_err(|e| format!("tools[{i}]: {e}"))).collect::<Result<_, _>>()?);
            }
            "tool_choice" => choice = Some(value.clone()),
            other => return Err(format!("`{other}` has no Bedrock Converse equivalent")),
        }
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let none = choice.as_ref().and_then(Value::as_str) == Some("none");
    if let (Some(tools), false) = (tools.filter(|t| !t.is_empty()), none) {
        let mut config = json!({"tools": tools});
        match &choice {
            None => {}
            Some(Value::String(s)) if s == "auto" => config["toolChoice"] = json!({"auto": {}}),
            Some(Value::String(s)) if s == "required" => config["toolChoice"] = json!({"any": {}}),
            Some(Value::Object(o)) => {
                let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or("invalid `tool_choice`: a function choice needs `function.name`")?;
                config["toolChoice"] = json!({"tool": {"name": name}});
            }
            Some(_) => return Err("invalid `tool_choice`".into()),
        }
        out.insert("toolConfig".into(), config);
    }
    let prompt = want_prompt.then(|| chat_prompt(chat));
    let body = serde_json::to_vec(&Value::Object(out)).map_err(|e| e.to_string())?;
    Ok(ConverseRequest { translated: TranslatedRequest { body, request_model, streaming, include_usage, params, prompt }, model })
}

/// One Chat message into `system` or `messages`.
fn turn(m: &Value, system: &mut Vec<Value>, messages: &mut Vec<Value>) -> Result<(), String> {
    let role = m.get("role").and_then(Value::as_str).ok_or("a message needs a `role`")?;
    let (role, blocks) = match role {
        "system" | "developer" => {
            for text in texts(m.get("content"))? {
                system.push(json!({"text": text}));
            }
            return Ok(());
        }
        "user" => ("user", user_blocks(m.get("content"))?),
        "assistant" => {
            let mut blocks: Vec<Value> = texts(m.get("content"))?.into_iter().filter(|t| !t.is_empty()).map(|t| json!({"text": t})).collect();
            for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let id = call.get("id").and_then(Value::as_str).ok_or("a tool call needs an `id`")?;
                let f = call.get("function").ok_or("a tool call needs a `function`")?;
                let name = f.get("name").and_then(Value::as_str).ok_or("a tool call needs a name")?;
                let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                let input: Value = serde_json::from_str(if args.trim().is_empty() { "{}" } else { args }).map_err(|_| format!("the arguments of tool call `{id}` are not JSON"))?;
                blocks.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
            }
            ("assistant", blocks)
        }
        "tool" => {
            let id = m.get("tool_call_id").and_then(Value::as_str).ok_or("a tool message needs `tool_call_id`")?;
            let content: Vec<Value> = texts(m.get("content"))?.into_iter().map(|t| json!({"text": t})).collect();
            ("user", vec![json!({"toolResult": {"toolUseId": id, "content": content}})])
        }
        other => return Err(format!("role `{other}` has no Converse equivalent")),
    };
    if blocks.is_empty() {
        return Ok(());
    }
    match messages.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(c) = last["content"].as_array_mut() {
                c.extend(blocks);
            }
        }
        _ => messages.push(json!({"role": role, "content": blocks})),
    }
    Ok(())
}

/// The text of a content that must be text (a string or text parts).
fn texts(content: Option<&Value>) -> Result<Vec<String>, String> {
    match content {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_string).ok_or_else(|| "a text part needs `text`".to_string()),
                other => Err(format!("content part `{}` is only taken in user messages", other.unwrap_or("?"))),
            })
            .collect(),
        Some(_) => Err("`content` must be a string or a list of parts".into()),
    }
}

/// A user message's blocks: text and inline images.
fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    let Some(Value::Array(parts)) = content else {
        return Ok(texts(content)?.into_iter().map(|t| json!({"text": t})).collect());
    };
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => out.push(json!({"text": p.get("text").and_then(Value::as_str).ok_or_else(|| format!("content[{i}]: `text` is required"))?})),
            Some("image_url") => {
                let url = p.at("/image_url/url").and_then(Value::as_str).ok_or_else(|| format!("content[{i}]: `image_url.url` is required"))?;
                out.push(image(url).map_err(|e| format!("content[{i}]: {e}"))?);
            }
            other => return Err(format!("content[{i}]: part type `{}` has no Converse equivalent", other.unwrap_or("?"))),
        }
    }
    Ok(out)
}

/// A `data:` URL image as a Converse image block (Converse takes images inline only).
fn image(url: &str) -> Result<Value, String> {
    let rest = url.strip_prefix("data:image/").ok_or("Bedrock takes images inline: a `data:image/…;base64,` URL")?;
    let (format, data) = rest.split_once(";base64,").ok_or("the image is not base64 data")?;
    let format = match format {
        "png" | "gif" | "webp" => format,
        "jpeg" | "jpg" => "jpeg",
        other => return Err(format!("image type `{other}` is not one Converse takes (png, jpeg, gif, webp)")),
    };
    base64::engine::general_purpose::STANDARD.decode(data.as_bytes()).map_err(|_| "the image's base64 does not decode")?;
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// A function tool as a Converse tool spec.
fn tool(t: &Value) -> Result<Value, String> {
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return Err("only function tools have a Converse equivalent".into());
    }
    let f = t.get("function").ok_or("a function tool needs `function`")?;
    let name = f.get("name").and_then(Value::as_str).ok_or("a function needs `name`")?;
    let mut spec = json!({"name": name, "inputSchema": {"json": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}))}});
    if let Some(d) = f.get("description").and_then(Value::as_str) {
        spec["description"] = d.into();
    }
    Ok(json!({"toolSpec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_round_trip_in_converse_shape() {
        let chat = json!({"model": "m", "stream": true, "max_tokens": 9, "stop": "x", "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "user", "content": "and?"},
            ]});
        let r = chat_to_converse(chat.to_string().as_bytes(), Some("pinned"), false).unwrap();
        let v: Value = serde_json::from_slice(&r.translated.body).unwrap();
        assert_eq!(r.model, "pinned");
        assert_eq!(v["system"], json!([{"text": "sys"}]));
        assert_eq!(v["messages"][1]["content"][0]["toolUse"]["input"], json!({"a": 1}));
        // The tool result and the next user turn share one user message.
        assert_eq!(v["messages"][2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(v["messages"][0]["content"][1]["image"]["format"], "png");
        assert_eq!(v["inferenceConfig"], json!({"maxTokens": 9, "stopSequences": ["x"]}));
        assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
        assert!(r.translated.streaming);
    }

    #[test]
    fn what_converse_cannot_carry_is_refused() {
        for (chat, word) in [
            (json!({"model": "m", "messages": [], "response_format": {"type": "json_object"}}), "response_format"),
            (json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}), "inline"),
            (json!({"model": "m", "messages": [], "n": 2}), "`n`"),
        ] {
            let e = chat_to_converse(chat.to_string().as_bytes(), None, false).err().unwrap();
            assert!(e.contains(word), "{e}");
        }
    }
}
