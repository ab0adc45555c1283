//! An OpenAI Chat Completions request, for Gemini's `streamGenerateContent`: translated field
//! by field; what has no Gemini meaning is refused naming the field.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;
use tollgate_core::json_pointer::Pointer as _;

use crate::translation::{chat_prompt, TranslatedRequest};

/// A Gemini model name as it may stand in the request path (`models/{model}:…`): letters,
/// digits, `.`, `-`, `_`; a `models/` prefix is dropped. Anything else could change the path.
pub fn path_model(model: &str) -> Result<String, String> {
    let bare = model.strip_prefix("models/").unwrap_or(model);
    let ok = !bare.is_empty() && bare.len() <= 128 && bare.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(bare.to_string())
    } else {
        Err(format!("model `{model}` is not a Gemini model name (letters, digits, `.`, `-`, `_`)"))
    }
}

/// Translates a Chat request; also returns the model for the path. The error is for a 400.
pub fn chat_to_gemini(raw: &[u8], model_override: Option<&str>, want_prompt: bool) -> Result<(TranslatedRequest, String), String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let request_model = crate::translation::request_model(&req)?;
    let model = path_model(model_override.or(request_model.as_deref()).ok_or("`model` is required")?)?;
    let chat = match req.get("messages") {
        Some(Value::Array(a)) => a,
        _ => return Err("`messages` is required and must be a list".into()),
    };
    let mut out = Map::new();
    let (system, contents) = translate_messages(chat)?;
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert("contents".into(), Value::Array(contents));
    let mut config = Map::new();
    let mut params = LlmParams::default();
    let (mut streaming, mut include_usage) = (false, false);
    for (key, value) in &req {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" => {}
            "max_tokens" | "max_completion_tokens" => {
                let n = value.as_u64().ok_or_else(|| format!("invalid `{key}`: expected a positive integer"))?;
                params.max_tokens = Some(n);
                config.insert("maxOutputTokens".into(), n.into());
            }
            "temperature" | "top_p" | "presence_penalty" | "frequency_penalty" => {
                let x = value.as_f64().ok_or_else(|| format!("invalid `{key}`: expected a number"))?;
                let name = match key.as_str() {
                    "temperature" => {
                        params.temperature = Some(x);
                        "temperature"
                    }
                    "top_p" => {
                        params.top_p = Some(x);
                        "topP"
                    }
                    "presence_penalty" => "presencePenalty",
                    _ => "frequencyPenalty",
                };
                config.insert(name.into(), value.clone());
            }
            "seed" => {
                params.seed = value.as_i64();
                config.insert("seed".into(), value.clone());
            }
            "stop" => {
                let stops = match value {
                    Value::String(s) => json!([s]),
                    Value::Array(a) if a.iter().all(Value::is_string) => value.clone(),
                    _ => return Err("invalid `stop`: expected a string or a list of strings".into()),
                };
                config.insert("stopSequences".into(), stops);
            }
            "n" if value.as_u64() == Some(1) => {}
            "stream" => streaming = value.as_bool().ok_or("invalid `stream`: expected true or false")?,
            "stream_options" => include_usage = value.get("include_usage").and_then(Value::as_bool).unwrap_or(false),
            "response_format" => match value.get("type").and_then(Value::as_str) {
                Some("text") => {}
                Some("json_object") => {
                    config.insert("responseMimeType".into(), "application/json".into());
                }
                Some("json_schema") => {
                    let schema = value.at("/json_schema/schema").cloned().ok_or("`response_format.json_schema.schema` is required")?;
                    config.insert("responseMimeType".into(), "application/json".into());
                    config.insert("responseJsonSchema".into(), schema);
                }
                _ => return Err("invalid `response_format`".into()),
            },
            "tools" => {
                let decls = translate_tools(value)?;
                if !decls.is_empty() {
                    out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
                }
            }
            "tool_choice" => {
                out.insert("toolConfig".into(), json!({"functionCallingConfig": translate_tool_choice(value)?}));
            }
            other => return Err(format!("`{other}` cannot be translated for a Gemini upstream")),
        }
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    let prompt = want_prompt.then(|| chat_prompt(chat));
    let body = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    Ok((TranslatedRequest { body, request_model, streaming, include_usage, params, prompt }, model))
}

/// The system instruction parts and the contents. Tool results name the function, which Chat
/// keeps only on the call: the names are taken from the assistant's earlier tool calls.
fn translate_messages(chat: &[Value]) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, m) in chat.iter().enumerate() {
        let at = |e: String| format!("messages[{i}]: {e}");
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| at("`role` is required".into()))?;
        match role {
            "system" | "developer" => system.extend(text_parts(m.get("content")).map_err(at)?),
            "user" => contents.push(json!({"role": "user", "parts": user_parts(m.get("content")).map_err(at)?})),
            "assistant" => {
                let mut parts = text_parts(m.get("content")).map_err(at)?;
                for (j, call) in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    let name = call.at("/function/name").and_then(Value::as_str).ok_or_else(|| at(format!("tool_calls[{j}] needs `function.name`")))?;
                    let args = call.at("/function/arguments").and_then(Value::as_str).unwrap_or("");
                    let args: Value = if args.trim().is_empty() { json!({}) } else { serde_json::from_str(args).map_err(|_| at(format!("tool_calls[{j}].function.arguments is not JSON")))? };
                    let id = call.get("id").and_then(Value::as_str);
                    if let Some(id) = id {
                        call_names.insert(id.to_string(), name.to_string());
                    }
                    let mut part = json!({"functionCall": {"name": name, "args": args}});
                    if let Some(sig) = id.and_then(super::signature::recover) {
                        part["thoughtSignature"] = sig.into();
                    }
                    parts.push(part);
                }
                if !parts.is_empty() {
                    contents.push(json!({"role": "model", "parts": parts}));
                }
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| at("a tool message needs `tool_call_id`".into()))?;
                let name = call_names.get(id).ok_or_else(|| at(format!("no earlier tool call has the id `{id}`")))?;
                let text: Vec<String> = text_parts(m.get("content")).map_err(at)?.iter().filter_map(|p| p["text"].as_str().map(str::to_string)).collect();
                let part = json!({"functionResponse": {"name": name, "response": {"content": text.join("\n")}}});
                match contents.last_mut() {
                    Some(last) if last["role"] == "user" && last["parts"].as_array().is_some_and(|p| p.iter().all(|x| x.get("functionResponse").is_some())) => {
                        if let Some(p) = last["parts"].as_array_mut() {
                            p.push(part);
                        }
                    }
                    _ => contents.push(json!({"role": "user", "parts": [part]})),
                }
            }
            other => return Err(at(format!("role `{other}` cannot be translated for a Gemini upstream"))),
        }
    }
    Ok((system, contents))
}

/// Text content as `{text}` parts.
fn text_parts(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(|t| json!({"text": t})).ok_or_else(|| format!("content[{j}] needs `text`")),
                other => Err(format!("content[{j}]: a `{}` part can only be text here", other.unwrap_or("?"))),
            })
            .collect(),
        Some(_) => Err("`content` must be a string or a list of parts".into()),
    }
}

/// A user message: text, and images given as `data:` URLs (Gemini takes other images only
/// from its own file store).
fn user_parts(content: Option<&Value>) -> Result<Vec<Value>, String> {
    let Some(Value::Array(parts)) = content else { return text_parts(content) };
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
            Some("text") => p.get("text").and_then(Value::as_str).map(|t| json!({"text": t})).ok_or_else(|| format!("content[{j}] needs `text`")),
            Some("image_url") => {
                let url = p.at("/image_url/url").and_then(Value::as_str).ok_or_else(|| format!("content[{j}] needs `image_url.url`"))?;
                let (media, data) = url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(";base64,"))
                    .ok_or_else(|| format!("content[{j}]: only base64 `data:` image URLs can be sent to Gemini"))?;
                Ok(json!({"inlineData": {"mimeType": media, "data": data}}))
            }
            other => Err(format!("content[{j}]: a `{}` part cannot be translated for a Gemini upstream", other.unwrap_or("?"))),
        })
        .collect()
}

fn translate_tools(tools: &Value) -> Result<Vec<Value>, String> {
    let list = tools.as_array().ok_or("invalid `tools`: expected a list")?;
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(format!("tools[{i}]: only `function` tools can be translated for a Gemini upstream"));
        }
        let f = t.get("function").ok_or_else(|| format!("tools[{i}] needs `function`"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| format!("tools[{i}] needs `function.name`"))?;
        let mut decl = Map::new();
        decl.insert("name".into(), name.into());
        if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
            decl.insert("description".into(), d.clone());
        }
        if let Some(p) = f.get("parameters").filter(|p| !p.is_null()) {
            // JSON Schema as the client wrote it (`additionalProperties`, `$ref`, `anyOf`…):
            // Gemini's `parameters` takes only its OpenAPI subset and refuses the rest.
            decl.insert("parametersJsonSchema".into(), p.clone());
        }
        out.push(Value::Object(decl));
    }
    Ok(out)
}

fn translate_tool_choice(choice: &Value) -> Result<Value, String> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"mode": "AUTO"})),
            "required" => Ok(json!({"mode": "ANY"})),
            "none" => Ok(json!({"mode": "NONE"})),
            other => Err(format!("`tool_choice` `{other}` is not a Chat tool choice")),
        },
        Value::Object(o) => {
            let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or("`tool_choice` needs `function.name`")?;
            Ok(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
        _ => Err("invalid `tool_choice`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_models_cannot_change_the_path() {
        assert_eq!(path_model("models/gemini-2.5-flash").unwrap(), "gemini-2.5-flash");
        for bad in ["../x", "a/b", "a?b", "a b", "", "a%2f"] {
            assert!(path_model(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tool_result_names_its_function_from_the_earlier_call() {
        let raw = json!({"model": "g", "messages": [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}], "max_tokens": 9, "seed": 3, "stop": "END"}).to_string();
        let (t, model) = chat_to_gemini(raw.as_bytes(), None, false).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(model, "g");
        assert_eq!(v["contents"][2]["parts"][0], json!({"functionResponse": {"name": "f", "response": {"content": "ok"}}}));
        assert_eq!(v["generationConfig"], json!({"maxOutputTokens": 9, "seed": 3, "stopSequences": ["END"]}));
        let orphan = json!({"model": "g", "messages": [{"role": "tool", "tool_call_id": "zz", "content": "ok"}]}).to_string();
        assert!(chat_to_gemini(orphan.as_bytes(), None, false).unwrap_err().contains("zz"));
        let url = json!({"model": "g", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}).to_string();
        assert!(chat_to_gemini(url.as_bytes(), None, false).unwrap_err().contains("data:"));
    }
}
