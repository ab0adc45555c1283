//! An OpenAI Chat Completions request, for Anthropic's Messages API: translated field by
//! field; what has no Messages meaning is refused naming the field.

use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;
use tollgate_core::json_pointer::Pointer as _;

use crate::translation::{chat_prompt, TranslatedRequest};

/// `max_tokens` is required by Anthropic; Chat clients may leave it out.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Translates a Chat request; the error is a message for a 400 naming the field.
pub fn chat_to_messages(raw: &[u8], model_override: Option<&str>, want_prompt: bool) -> Result<TranslatedRequest, String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let mut out = Map::new();
    let mut params = LlmParams::default();
    let request_model = crate::translation::request_model(&req)?;
    let model = model_override.map(str::to_string).or_else(|| request_model.clone()).ok_or("`model` is required")?;
    out.insert("model".into(), model.into());
    let chat = match req.get("messages") {
        Some(Value::Array(a)) => a,
        _ => return Err("`messages` is required and must be a list".into()),
    };
    let (system, turns) = translate_messages(chat)?;
    let prompt = want_prompt.then(|| chat_prompt(chat));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    let mut streaming = false;
    let mut include_usage = false;
    let mut parallel: Option<bool> = None;
    let mut max_tokens = None;
    for (key, value) in &req {
        match key.as_str() {
            "model" | "messages" => {}
            "max_tokens" | "max_completion_tokens" => {
                if value.is_null() {
                    continue;
                }
                max_tokens = Some(value.as_u64().ok_or_else(|| format!("invalid `{key}`: expected a positive integer"))?);
            }
            "temperature" | "top_p" => {
                if value.is_null() {
                    continue;
                }
                let x = value.as_f64().ok_or_else(|| format!("invalid `{key}`: expected a number"))?;
                if key == "temperature" {
                    params.temperature = Some(x);
                } else {
                    params.top_p = Some(x);
                }
                out.insert(key.clone(), value.clone());
            }
            "stop" => match value {
                Value::Null => {}
                Value::String(s) => {
                    out.insert("stop_sequences".into(), json!([s]));
                }
                Value::Array(a) if a.iter().all(Value::is_string) => {
                    if !a.is_empty() {
                        out.insert("stop_sequences".into(), value.clone());
                    }
                }
                _ => return Err("invalid `stop`: expected a string or a list of strings".into()),
            },
            "stream" => {
                streaming = value.as_bool().ok_or("invalid `stream`: expected true or false")?;
                out.insert("stream".into(), streaming.into());
            }
            "stream_options" => {
                include_usage = value.get("include_usage").and_then(Value::as_bool).unwrap_or(false);
            }
            "user" => {
                if let Some(u) = value.as_str() {
                    out.insert("metadata".into(), json!({"user_id": u}));
                }
            }
            "tools" => {
                let tools = translate_tools(value)?;
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), translate_tool_choice(value)?);
            }
            "parallel_tool_calls" => parallel = value.as_bool(),
            "reasoning_effort" => {
                if let Some(e) = value.as_str() {
                    out.insert("thinking".into(), json!({"type": "adaptive"}));
                    out.insert("output_config".into(), json!({"effort": e}));
                }
            }
            "n" if value.as_u64() == Some(1) || value.is_null() => {}
            other => return Err(format!("`{other}` cannot be translated for an Anthropic upstream")),
        }
    }
    params.max_tokens = max_tokens;
    out.insert("max_tokens".into(), max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into());
    if parallel == Some(false) {
        let choice = out.entry("tool_choice").or_insert_with(|| json!({"type": "auto"}));
        if let Some(c) = choice.as_object_mut().filter(|c| c.get("type").and_then(Value::as_str) != Some("none")) {
            c.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    let body = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    Ok(TranslatedRequest { body, request_model, streaming, include_usage, params, prompt })
}

/// The system prompt (from `system` and `developer` messages) and the turns.
fn translate_messages(chat: &[Value]) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for (i, m) in chat.iter().enumerate() {
        let at = |e: String| format!("messages[{i}]: {e}");
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| at("`role` is required".into()))?;
        match role {
            "system" | "developer" => {
                for text in texts(m.get("content")).map_err(at)? {
                    system.push(json!({"type": "text", "text": text}));
                }
            }
            "user" => turns.push(json!({"role": "user", "content": user_blocks(m.get("content")).map_err(at)?})),
            "assistant" => {
                let blocks = assistant_blocks(m).map_err(at)?;
                if !blocks.is_empty() {
                    turns.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| at("a tool message needs `tool_call_id`".into()))?;
                let text = texts(m.get("content")).map_err(at)?.join("\n");
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": text});
                // Results of one round of calls go back together, in one user turn.
                match turns.last_mut() {
                    Some(last) if last["role"] == "user" && last["content"].as_array().is_some_and(|c| c.iter().all(|b| b["type"] == "tool_result")) => {
                        if let Some(c) = last["content"].as_array_mut() {
                            c.push(block);
                        }
                    }
                    _ => turns.push(json!({"role": "user", "content": [block]})),
                }
            }
            other => return Err(at(format!("role `{other}` cannot be translated for an Anthropic upstream"))),
        }
    }
    Ok((system, turns))
}

/// The text of a message's content: a string, or its text parts.
fn texts(content: Option<&Value>) -> Result<Vec<String>, String> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("content[{j}] needs `text`")),
                other => Err(format!("content[{j}]: a `{}` part can only be text here", other.unwrap_or("?"))),
            })
            .collect(),
        Some(_) => Err("`content` must be a string or a list of parts".into()),
    }
}

fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let t = p.get("text").and_then(Value::as_str).ok_or_else(|| format!("content[{j}] needs `text`"))?;
                    Ok(json!({"type": "text", "text": t}))
                }
                Some("image_url") => image_block(p).map_err(|e| format!("content[{j}]: {e}")),
                other => Err(format!("content[{j}]: a `{}` part cannot be translated for an Anthropic upstream", other.unwrap_or("?"))),
            })
            .collect(),
        _ => Err("`content` must be a string or a list of parts".into()),
    }
}

/// An `image_url` part: a `data:` URL becomes a base64 source, any other URL a url source.
fn image_block(p: &Value) -> Result<Value, String> {
    let url = p.at("/image_url/url").and_then(Value::as_str).ok_or("an image_url part needs `image_url.url`")?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(";base64,").ok_or("a data URL image must be base64")?;
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}));
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

/// An assistant message: reasoning, text, then tool calls (arguments parsed into `input`).
fn assistant_blocks(m: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = Vec::new();
    for text in texts(m.get("content"))? {
        if !text.is_empty() {
            blocks.push(json!({"type": "text", "text": text}));
        }
    }
    for (j, call) in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let id = call.get("id").and_then(Value::as_str).ok_or_else(|| format!("tool_calls[{j}] needs `id`"))?;
        let name = call.at("/function/name").and_then(Value::as_str).ok_or_else(|| format!("tool_calls[{j}] needs `function.name`"))?;
        let args = call.at("/function/arguments").and_then(Value::as_str).unwrap_or("");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| format!("tool_calls[{j}].function.arguments is not JSON"))?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn translate_tools(tools: &Value) -> Result<Vec<Value>, String> {
    let list = tools.as_array().ok_or("invalid `tools`: expected a list")?;
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(format!("tools[{i}]: only `function` tools can be translated for an Anthropic upstream"));
        }
        let f = t.get("function").ok_or_else(|| format!("tools[{i}] needs `function`"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| format!("tools[{i}] needs `function.name`"))?;
        let mut tool = Map::new();
        tool.insert("name".into(), name.into());
        if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
            tool.insert("description".into(), d.clone());
        }
        tool.insert("input_schema".into(), f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})));
        if let Some(strict) = f.get("strict").and_then(Value::as_bool) {
            tool.insert("strict".into(), strict.into());
        }
        out.push(Value::Object(tool));
    }
    Ok(out)
}

fn translate_tool_choice(choice: &Value) -> Result<Value, String> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "required" => Ok(json!({"type": "any"})),
            "none" => Ok(json!({"type": "none"})),
            other => Err(format!("`tool_choice` `{other}` is not a Chat tool choice")),
        },
        Value::Object(o) => {
            let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or("`tool_choice` needs `function.name`")?;
            Ok(json!({"type": "tool", "name": name}))
        }
        _ => Err("invalid `tool_choice`".into()),
    }
}
