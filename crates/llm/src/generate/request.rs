//! A Gemini `generateContent` request (google-genai SDKs), for an OpenAI Chat Completions
//! provider: translated field by field; what has no Chat meaning is refused naming the field.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;

use crate::translation::{chat_prompt, TranslatedRequest};

/// The model and the call kind a Gemini path names: `…/models/{model}:generateContent` or
/// `…:streamGenerateContent` (streamed).
pub fn model_in_path(path: &str) -> Option<(String, bool)> {
    let tail = path.rsplit("/models/").next()?;
    let (model, method) = tail.split_once(':')?;
    let streaming = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| (model.to_string(), streaming))
}

/// The model a `models/{model}:countTokens` path names.
pub fn count_model_in_path(path: &str) -> Option<String> {
    let tail = path.rsplit("/models/").next()?;
    let model = tail.strip_suffix(":countTokens")?;
    (!model.is_empty() && !model.contains('/')).then(|| model.to_string())
}

/// Translates a generateContent request; `model` and `streaming` come from the path.
pub fn generate_to_chat(raw: &[u8], model: &str, streaming: bool, want_prompt: bool) -> Result<TranslatedRequest, String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let mut messages = Vec::new();
    let mut out = Map::new();
    let mut params = LlmParams::default();
    out.insert("model".into(), model.into());
    if let Some(system) = req.get("systemInstruction").or_else(|| req.get("system_instruction")) {
        let text = parts_text(system.get("parts")).map_err(|e| format!("systemInstruction: {e}"))?;
        messages.push(json!({"role": "system", "content": text}));
    }
    let contents = req.get("contents").and_then(Value::as_array).ok_or("`contents` is required and must be a list")?;
    // Gemini's calls carry no ids: each gets one, and a response takes the oldest open id of
    // its function's name.
    let mut open: HashMap<String, VecDeque<String>> = HashMap::new();
    let mut next_id = 0;
    for (i, c) in contents.iter().enumerate() {
        translate_content(c, &mut messages, &mut open, &mut next_id).map_err(|e| format!("contents[{i}]: {e}"))?;
    }
    let prompt = want_prompt.then(|| chat_prompt(&messages));
    out.insert("messages".into(), Value::Array(messages));
    for (key, value) in &req {
        match key.as_str() {
            "contents" | "systemInstruction" | "system_instruction" => {}
            "generationConfig" | "generation_config" => generation_config(value, &mut out, &mut params)?,
            "tools" => {
                let tools = translate_tools(value)?;
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
            }
            "toolConfig" | "tool_config" => {
                if let Some(choice) = tool_choice(value)? {
                    out.insert("tool_choice".into(), choice);
                }
            }
            // Google's own safety filters: an OpenAI provider has its own policies.
            "safetySettings" | "safety_settings" => {
                if value.as_array().is_some_and(|a| !a.is_empty()) {
                    return Err("`safetySettings` cannot be translated for an OpenAI upstream".into());
                }
            }
            other => return Err(format!("`{other}` cannot be translated for an OpenAI upstream")),
        }
    }
    if streaming {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let body = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    Ok(TranslatedRequest { body, request_model: Some(model.to_string()), streaming, include_usage: false, params, prompt })
}

/// The text of text-only parts, joined.
fn parts_text(parts: Option<&Value>) -> Result<String, String> {
    let parts = parts.and_then(Value::as_array).ok_or("`parts` must be a list")?;
    let mut text = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        text.push(p.get("text").and_then(Value::as_str).ok_or_else(|| format!("parts[{j}]: only text can be here"))?);
    }
    Ok(text.join("\n"))
}

fn translate_content(c: &Value, messages: &mut Vec<Value>, open: &mut HashMap<String, VecDeque<String>>, next_id: &mut u32) -> Result<(), String> {
    let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
    let parts = c.get("parts").and_then(Value::as_array).ok_or("`parts` must be a list")?;
    let mut content = Vec::new();
    let mut calls = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = |e: &str| format!("parts[{j}]: {e}");
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) != Some(true) {
                content.push(json!({"type": "text", "text": t}));
            }
        } else if let Some(d) = p.get("inlineData").or_else(|| p.get("inline_data")) {
            let mime = d.get("mimeType").or_else(|| d.get("mime_type")).and_then(Value::as_str).ok_or_else(|| at("inlineData needs `mimeType`"))?;
            let data = d.get("data").and_then(Value::as_str).ok_or_else(|| at("inlineData needs `data`"))?;
            if !mime.starts_with("image/") {
                return Err(at(&format!("inline `{mime}` data cannot be translated for an OpenAI upstream (images only)")));
            }
            content.push(json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data}")}}));
        } else if let Some(call) = p.get("functionCall").or_else(|| p.get("function_call")) {
            let name = call.get("name").and_then(Value::as_str).ok_or_else(|| at("functionCall needs `name`"))?;
            let id = call.get("id").and_then(Value::as_str).map_or_else(
                || {
                    *next_id += 1;
                    format!("call_{next_id}")
                },
                str::to_string,
            );
            open.entry(name.to_string()).or_default().push_back(id.clone());
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}));
        } else if let Some(resp) = p.get("functionResponse").or_else(|| p.get("function_response")) {
            let name = resp.get("name").and_then(Value::as_str).ok_or_else(|| at("functionResponse needs `name`"))?;
            let id = match resp.get("id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None => open.get_mut(name).and_then(VecDeque::pop_front).ok_or_else(|| at(&format!("no earlier call of `{name}` is open")))?,
            };
            let result = resp.get("response").cloned().unwrap_or(Value::Null);
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": result.to_string()}));
        } else {
            return Err(at("this part cannot be translated for an OpenAI upstream"));
        }
    }
    match role {
        "model" => {
            if !content.is_empty() || !calls.is_empty() {
                let text: String = content.iter().filter_map(|c| c["text"].as_str()).collect();
                let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text.into() }});
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(calls);
                }
                messages.push(m);
            }
        }
        "user" | "function" | "tool" => {
            if !calls.is_empty() {
                return Err("a functionCall belongs to the model's turn".into());
            }
            if !content.is_empty() {
                let content = match content.as_slice() {
                    [p] if p["type"] == "text" => p["text"].clone(),
                    _ => Value::Array(content),
                };
                messages.push(json!({"role": "user", "content": content}));
            }
        }
        other => return Err(format!("role `{other}` is not a Gemini role")),
    }
    Ok(())
}

fn generation_config(config: &Value, out: &mut Map<String, Value>, params: &mut LlmParams) -> Result<(), String> {
    let config = config.as_object().ok_or("invalid `generationConfig`")?;
    for (k, v) in config {
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "maxOutputTokens" | "max_output_tokens" => {
                params.max_tokens = v.as_u64();
                out.insert("max_completion_tokens".into(), v.clone());
            }
            "temperature" => {
                params.temperature = v.as_f64();
                out.insert("temperature".into(), v.clone());
            }
            "topP" | "top_p" => {
                params.top_p = v.as_f64();
                out.insert("top_p".into(), v.clone());
            }
            "stopSequences" | "stop_sequences" => {
                out.insert("stop".into(), v.clone());
            }
            "seed" => {
                params.seed = v.as_i64();
                out.insert("seed".into(), v.clone());
            }
            "presencePenalty" | "presence_penalty" => {
                out.insert("presence_penalty".into(), v.clone());
            }
            "frequencyPenalty" | "frequency_penalty" => {
                out.insert("frequency_penalty".into(), v.clone());
            }
            "candidateCount" | "candidate_count" if v.as_u64() == Some(1) => {}
            // Narrows sampling; Chat has no such cut, so the model samples without it (the
            // Gemini CLI sends it on every request).
            "topK" | "top_k" => {}
            // `thinkingLevel` is Chat's `reasoning_effort`. As for Anthropic's `budget_tokens`, a
            // bare `thinkingBudget` has no Chat equivalent and sends none; `includeThoughts`
            // only asks to see them (`reasoning_content` comes back when the model sends it).
            "thinkingConfig" | "thinking_config" => {
                if let Some(level) = v.get("thinkingLevel").or_else(|| v.get("thinking_level")).and_then(Value::as_str) {
                    out.insert("reasoning_effort".into(), level.to_ascii_lowercase().into());
                }
            }
            "responseMimeType" | "response_mime_type" => match v.as_str() {
                Some("text/plain") => {}
                Some("application/json") if !config.contains_key("responseJsonSchema") && !config.contains_key("responseSchema") => {
                    out.insert("response_format".into(), json!({"type": "json_object"}));
                }
                Some("application/json") => {}
                _ => return Err(format!("`generationConfig.{k}` {v} cannot be translated for an OpenAI upstream")),
            },
            "responseJsonSchema" | "response_json_schema" => {
                out.insert("response_format".into(), json!({"type": "json_schema", "json_schema": {"name": "structured_output", "schema": v}}));
            }
            "responseSchema" | "response_schema" => {
                let schema = super::schema::to_json_schema(v);
                out.insert("response_format".into(), json!({"type": "json_schema", "json_schema": {"name": "structured_output", "schema": schema}}));
            }
            other => return Err(format!("`generationConfig.{other}` cannot be translated for an OpenAI upstream")),
        }
    }
    Ok(())
}

fn translate_tools(tools: &Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, t) in tools.as_array().ok_or("invalid `tools`: expected a list")?.iter().enumerate() {
        let Some(obj) = t.as_object() else { return Err(format!("tools[{i}] must be an object")) };
        for (k, v) in obj {
            if k != "functionDeclarations" && k != "function_declarations" {
                return Err(format!("tools[{i}].{k}: Google's own tools run only at Google"));
            }
            for (j, d) in v.as_array().into_iter().flatten().enumerate() {
                let name = d.get("name").and_then(Value::as_str).ok_or_else(|| format!("tools[{i}].{k}[{j}] needs `name`"))?;
                let mut f = Map::new();
                f.insert("name".into(), name.into());
                if let Some(desc) = d.get("description") {
                    f.insert("description".into(), desc.clone());
                }
                let json_schema = d.get("parametersJsonSchema").or_else(|| d.get("parameters_json_schema")).cloned();
                let params = json_schema.or_else(|| d.get("parameters").map(super::schema::to_json_schema));
                f.insert("parameters".into(), params.unwrap_or_else(|| json!({"type": "object", "properties": {}})));
                out.push(json!({"type": "function", "function": f}));
            }
        }
    }
    Ok(out)
}

fn tool_choice(config: &Value) -> Result<Option<Value>, String> {
    let Some(fc) = config.get("functionCallingConfig").or_else(|| config.get("function_calling_config")) else { return Ok(None) };
    let names = fc.get("allowedFunctionNames").or_else(|| fc.get("allowed_function_names")).and_then(Value::as_array);
    Ok(Some(match fc.get("mode").and_then(Value::as_str) {
        None | Some("AUTO") | Some("MODE_UNSPECIFIED") => json!("auto"),
        Some("NONE") => json!("none"),
        Some("ANY") => match names.map(Vec::as_slice) {
            Some([one]) => json!({"type": "function", "function": {"name": one}}),
            None | Some([]) => json!("required"),
            Some(_) => return Err("`toolConfig`: several allowed functions cannot be translated for an OpenAI upstream".into()),
        },
        Some(other) => return Err(format!("`toolConfig` mode `{other}` cannot be translated for an OpenAI upstream")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_model_and_kind() {
        assert_eq!(model_in_path("/v1beta/models/gemini-2.5-flash:generateContent"), Some(("gemini-2.5-flash".into(), false)));
        assert_eq!(model_in_path("/v1beta/models/g:streamGenerateContent"), Some(("g".into(), true)));
        assert_eq!(model_in_path("/v1beta/models/g:countTokens"), None);
        assert_eq!(model_in_path("/v1beta/models/:generateContent"), None);
    }

    #[test]
    fn calls_get_ids_and_responses_take_them_in_order() {
        let raw = json!({"contents": [
            {"role": "user", "parts": [{"text": "w?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}, {"functionCall": {"name": "f", "args": {"a": 2}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}}}, {"functionResponse": {"name": "f", "response": {"r": 2}}}]}],
            "generationConfig": {"maxOutputTokens": 7, "stopSequences": ["X"], "responseMimeType": "application/json"},
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}}).to_string();
        let t = generate_to_chat(raw.as_bytes(), "m", true, false).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let m = v["messages"].as_array().unwrap();
        let ids: Vec<&str> = m[1]["tool_calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!((m[2]["tool_call_id"].as_str().unwrap(), m[3]["tool_call_id"].as_str().unwrap()), (ids[0], ids[1]));
        assert_eq!(m[2]["content"], "{\"r\":1}");
        assert_eq!((v["max_completion_tokens"].clone(), v["stop"].clone()), (json!(7), json!(["X"])));
        assert_eq!(v["response_format"], json!({"type": "json_object"}));
        assert_eq!(v["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        assert_eq!((v["stream"].clone(), v["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
        let orphan = json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]}]}).to_string();
        assert!(generate_to_chat(orphan.as_bytes(), "m", false, false).unwrap_err().contains("`g`"));
        let search = json!({"contents": [], "tools": [{"googleSearch": {}}]}).to_string();
        assert!(generate_to_chat(search.as_bytes(), "m", false, false).unwrap_err().contains("googleSearch"));
    }
}
