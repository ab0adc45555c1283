//! The `ai` policy's request body rules, applied to the client's JSON in its own API's shape
//! before any translation, as agentgateway does: the backend's model, then `overrides` (set
//! always), then `defaults` (set when absent; a JSON `null` counts as present), then
//! `modelAliases` on the model in effect, then `prompts` (messages added before and after the
//! client's, where each API keeps them). Keys are top-level fields.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use tollgate_core::llm::RouteType;

/// `prompts`: messages to add around the client's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptEnrichment {
    /// Added before the client's messages.
    #[serde(default)]
    pub prepend: Vec<SimpleMessage>,
    /// Added after the client's messages.
    #[serde(default)]
    pub append: Vec<SimpleMessage>,
}

/// A message of `prompts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleMessage {
    /// `system`, `developer`, `user`, `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// The compiled body rules.
#[derive(Debug, Default)]
pub struct BodyPolicy {
    /// Exact aliases.
    exact: Vec<(String, String)>,
    /// Wildcard aliases (`*` = anything), longest pattern first.
    wildcard: Vec<(String, String)>,
    defaults: Map<String, Value>,
    overrides: Map<String, Value>,
    prompts: PromptEnrichment,
}

impl BodyPolicy {
    /// Compiles the policy's fields; `None` when none is set (the body is then not touched).
    pub fn compile(aliases: Option<indexmap::IndexMap<String, String>>, defaults: Option<Map<String, Value>>, overrides: Option<Map<String, Value>>, prompts: Option<PromptEnrichment>) -> Option<BodyPolicy> {
        if aliases.is_none() && defaults.is_none() && overrides.is_none() && prompts.is_none() {
            return None;
        }
        let mut p = BodyPolicy { defaults: defaults.unwrap_or_default(), overrides: overrides.unwrap_or_default(), prompts: prompts.unwrap_or_default(), ..Default::default() };
        for (from, to) in aliases.unwrap_or_default() {
            if from.contains('*') {
                p.wildcard.push((from, to));
            } else {
                p.exact.push((from, to));
            }
        }
        p.wildcard.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Some(p)
    }

    /// The alias of `model`, if one applies: an exact key first, then the longest wildcard.
    pub fn alias<'a>(&'a self, model: &str) -> Option<&'a str> {
        if let Some((_, to)) = self.exact.iter().find(|(from, _)| from == model) {
            return Some(to);
        }
        self.wildcard.iter().find(|(from, _)| wildcard_match(from, model)).map(|(_, to)| to.as_str())
    }

    /// Applies the rules to a request body of `kind`; `provider_model` is the backend's model
    /// (set first, so `overrides` and aliases may still change it).
    /// Also returns the model the client wrote (what the gateway records as requested).
    pub fn apply(&self, raw: &[u8], kind: RouteType, provider_model: Option<&str>) -> Result<(Vec<u8>, Option<String>), String> {
        let mut req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
        let client_model = req.get("model").and_then(Value::as_str).map(str::to_string);
        let model_in_body = kind != RouteType::GenerateContent;
        if let (Some(m), true) = (provider_model, model_in_body) {
            req.insert("model".into(), m.into());
        }
        for (k, v) in &self.overrides {
            req.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.defaults {
            req.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if model_in_body {
            let aliased = req.get("model").and_then(Value::as_str).and_then(|m| self.alias(m)).map(str::to_string);
            if let Some(to) = aliased {
                req.insert("model".into(), to.into());
            }
        }
        if !self.prompts.prepend.is_empty() || !self.prompts.append.is_empty() {
            match kind {
                RouteType::Completions => chat_prompts(&mut req, &self.prompts)?,
                RouteType::Messages => messages_prompts(&mut req, &self.prompts)?,
                RouteType::Responses => responses_prompts(&mut req, &self.prompts)?,
                RouteType::GenerateContent => gemini_prompts(&mut req, &self.prompts)?,
                _ => {}
            }
        }
        Ok((serde_json::to_vec(&Value::Object(req)).map_err(|e| e.to_string())?, client_model))
    }
}

use tollgate_core::identity::wildcard_match;

fn list<'a>(req: &'a mut Map<String, Value>, key: &str) -> Result<&'a mut Vec<Value>, String> {
    req.get_mut(key).and_then(Value::as_array_mut).ok_or_else(|| format!("`{key}` must be a list to add `prompts` to it"))
}

/// Chat: the messages as written, at the start and the end of `messages`.
fn chat_prompts(req: &mut Map<String, Value>, p: &PromptEnrichment) -> Result<(), String> {
    let messages = list(req, "messages")?;
    let head: Vec<Value> = p.prepend.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
    messages.splice(0..0, head);
    messages.extend(p.append.iter().map(|m| json!({"role": m.role, "content": m.content})));
    Ok(())
}

/// Messages: `system` prompts into the `system` blocks, the others into `messages`.
fn messages_prompts(req: &mut Map<String, Value>, p: &PromptEnrichment) -> Result<(), String> {
    let block = |m: &SimpleMessage| json!({"type": "text", "text": m.content});
    let (sys_head, head): (Vec<_>, Vec<_>) = p.prepend.iter().partition(|m| m.role == "system");
    let (sys_tail, tail): (Vec<_>, Vec<_>) = p.append.iter().partition(|m| m.role == "system");
    if !sys_head.is_empty() || !sys_tail.is_empty() {
        let mut system = match req.remove("system") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(a)) => a,
            Some(_) => return Err("`system` must be a string or a list of blocks".into()),
        };
        system.splice(0..0, sys_head.iter().map(|m| block(m)));
        system.extend(sys_tail.iter().map(|m| block(m)));
        req.insert("system".into(), Value::Array(system));
    }
    let messages = list(req, "messages")?;
    messages.splice(0..0, head.iter().map(|m| json!({"role": m.role, "content": m.content})));
    messages.extend(tail.iter().map(|m| json!({"role": m.role, "content": m.content})));
    Ok(())
}

/// Responses: input messages at the start and end of `input` (a string input becomes one).
fn responses_prompts(req: &mut Map<String, Value>, p: &PromptEnrichment) -> Result<(), String> {
    if let Some(Value::String(s)) = req.get("input") {
        let item = json!({"role": "user", "content": [{"type": "input_text", "text": s}]});
        req.insert("input".into(), json!([item]));
    }
    let item = |m: &SimpleMessage| {
        let role = if matches!(m.role.as_str(), "system" | "developer" | "assistant") { m.role.as_str() } else { "user" };
        json!({"role": role, "content": m.content})
    };
    let input = list(req, "input")?;
    input.splice(0..0, p.prepend.iter().map(item));
    input.extend(p.append.iter().map(item));
    Ok(())
}

/// Gemini: `system` prompts into `systemInstruction.parts`, the others into `contents`.
fn gemini_prompts(req: &mut Map<String, Value>, p: &PromptEnrichment) -> Result<(), String> {
    let content = |m: &SimpleMessage| json!({"role": if m.role == "assistant" { "model" } else { "user" }, "parts": [{"text": m.content}]});
    let (sys_head, head): (Vec<_>, Vec<_>) = p.prepend.iter().partition(|m| m.role == "system");
    let (sys_tail, tail): (Vec<_>, Vec<_>) = p.append.iter().partition(|m| m.role == "system");
    if !sys_head.is_empty() || !sys_tail.is_empty() {
        let key = if req.contains_key("system_instruction") { "system_instruction" } else { "systemInstruction" };
        let instruction = req.entry(key.to_string()).or_insert_with(|| json!({"parts": []}));
        let parts = instruction.as_object_mut().ok_or("`systemInstruction` must be an object")?.entry("parts").or_insert_with(|| json!([]));
        let parts = parts.as_array_mut().ok_or("`systemInstruction.parts` must be a list")?;
        parts.splice(0..0, sys_head.iter().map(|m| json!({"text": m.content})));
        parts.extend(sys_tail.iter().map(|m| json!({"text": m.content})));
    }
    let contents = list(req, "contents")?;
    contents.splice(0..0, head.iter().map(|m| content(m)));
    contents.extend(tail.iter().map(|m| content(m)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BodyPolicy {
        let aliases = [("fast", "gpt-4o-mini"), ("claude-haiku-*", "haiku-any"), ("claude-haiku-3.5-*", "haiku-35"), ("test.*", "dot")]
            .into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let prompts = PromptEnrichment {
            prepend: vec![SimpleMessage { role: "system".into(), content: "first".into() }],
            append: vec![SimpleMessage { role: "user".into(), content: "last".into() }],
        };
        let defaults = json!({"temperature": 0.5, "top_p": 0.9}).as_object().cloned();
        let overrides = json!({"max_tokens": 10}).as_object().cloned();
        BodyPolicy::compile(Some(aliases), defaults, overrides, Some(prompts)).unwrap()
    }

    #[test]
    fn aliases_exact_then_longest_wildcard() {
        let p = policy();
        assert_eq!(p.alias("fast"), Some("gpt-4o-mini"));
        assert_eq!(p.alias("claude-haiku-3.5-x"), Some("haiku-35"));
        assert_eq!(p.alias("claude-haiku-4"), Some("haiku-any"));
        assert_eq!(p.alias("testXv1"), None);
        assert_eq!(p.alias("test.v1"), Some("dot"));
        assert_eq!(p.alias("other"), None);
    }

    #[test]
    fn chat_body_rules_in_order() {
        let raw = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}], "temperature": null, "max_tokens": 99});
        let out: Value = serde_json::from_slice(&policy().apply(raw.to_string().as_bytes(), RouteType::Completions, None).unwrap().0).unwrap();
        assert_eq!(out["model"], "gpt-4o-mini");
        assert_eq!(out["temperature"], Value::Null, "null counts as given");
        assert_eq!((out["top_p"].as_f64(), out["max_tokens"].as_u64()), (Some(0.9), Some(10)));
        let roles: Vec<&str> = out["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "user"]);
        // The backend's model is set first; an alias of it still applies.
        let out: Value = serde_json::from_slice(&policy().apply(raw.to_string().as_bytes(), RouteType::Completions, Some("fast")).unwrap().0).unwrap();
        assert_eq!(out["model"], "gpt-4o-mini");
    }

    #[test]
    fn prompts_where_each_api_keeps_them() {
        let p = policy();
        let m: Value = serde_json::from_slice(&p.apply(br#"{"model":"m","system":"be kind","messages":[{"role":"user","content":"hi"}]}"#, RouteType::Messages, None).unwrap().0).unwrap();
        assert_eq!(m["system"], json!([{"type": "text", "text": "first"}, {"type": "text", "text": "be kind"}]));
        assert_eq!(m["messages"].as_array().unwrap().len(), 2);
        let r: Value = serde_json::from_slice(&p.apply(br#"{"model":"m","input":"hi"}"#, RouteType::Responses, None).unwrap().0).unwrap();
        assert_eq!(r["input"].as_array().unwrap().len(), 3);
        assert_eq!(r["input"][0], json!({"role": "system", "content": "first"}));
        let g: Value = serde_json::from_slice(&p.apply(br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#, RouteType::GenerateContent, Some("x")).unwrap().0).unwrap();
        assert_eq!(g["systemInstruction"]["parts"][0]["text"], "first");
        assert_eq!(g["contents"][1]["parts"][0]["text"], "last");
        assert!(g.get("model").is_none(), "generateContent names its model in the path");
    }
}
