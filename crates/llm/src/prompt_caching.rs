//! The `ai` policy's `promptCaching`: cache markers the gateway adds to requests for providers
//! that cache only where told to (Anthropic's `cache_control`, Bedrock's `cachePoint`), so long
//! system prompts, conversation history and tool lists are billed at the cache rate on the next
//! turn. As agentgateway places them: the system prompt's last block (when the system prompt
//! is at least `minTokens`, counted as words × 1.3), the last block of the second-to-last
//! message (`cacheMessageOffset` further back), the last tool; a client's own markers count
//! toward the provider's limit of four and are never replaced. Other providers cache on their
//! own and get nothing.

use serde::Deserialize;
use serde_json::{json, Value};

use tollgate_core::llm::{AiProvider, RouteType};

/// Anthropic and Bedrock refuse more than four cache breakpoints.
const MAX_BREAKPOINTS: usize = 4;

/// `promptCaching`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PromptCaching {
    /// Mark the system prompt.
    pub cache_system: bool,
    /// Mark the conversation history.
    pub cache_messages: bool,
    /// Mark the tool definitions.
    pub cache_tools: bool,
    /// Smallest system prompt (estimated tokens) worth a marker.
    pub min_tokens: Option<usize>,
    /// How many messages before the second-to-last the history marker goes.
    pub cache_message_offset: usize,
}

impl Default for PromptCaching {
    fn default() -> Self {
        PromptCaching { cache_system: true, cache_messages: true, cache_tools: false, min_tokens: Some(1024), cache_message_offset: 0 }
    }
}

impl PromptCaching {
    /// Adds the markers to `body`, the request as it goes to `provider` (its own API's shape);
    /// `bedrock_model` is the model a Bedrock request goes to (only some models cache).
    pub fn apply(&self, provider: AiProvider, route: RouteType, body: Vec<u8>, bedrock_model: Option<&str>) -> Vec<u8> {
        let marks = match (provider, route) {
            (_, RouteType::AnthropicTokenCount | RouteType::GeminiCountTokens | RouteType::Embeddings | RouteType::Rerank) => return body,
            (AiProvider::Anthropic, _) => anthropic as fn(&PromptCaching, &mut Value),
            (AiProvider::Bedrock, _) if bedrock_model.is_some_and(bedrock_caches) => bedrock,
            _ => return body,
        };
        let Ok(mut v) = serde_json::from_slice::<Value>(&body) else { return body };
        marks(self, &mut v);
        serde_json::to_vec(&v).unwrap_or(body)
    }

    /// The message the history marker goes on: the second-to-last, `cacheMessageOffset` back.
    fn history_index(&self, len: usize) -> Option<usize> {
        (len >= 2).then(|| (len - 2).saturating_sub(self.cache_message_offset))
    }

    fn system_is_long_enough(&self, texts: impl Iterator<Item = String>) -> bool {
        let words: usize = texts.map(|t| t.split_whitespace().count()).sum();
        self.min_tokens.is_none_or(|min| words * 13 / 10 >= min)
    }
}

/// Anthropic Messages: `cache_control: {type: ephemeral}` on the chosen blocks.
fn anthropic(c: &PromptCaching, req: &mut Value) {
    let Some(req) = req.as_object_mut() else { return };
    let blocks = |v: Option<&Value>| v.and_then(Value::as_array).map_or(0, |b| b.iter().filter(|x| x.get("cache_control").is_some_and(|m| !m.is_null())).count());
    let mut used = blocks(req.get("system")) + blocks(req.get("tools"));
    used += req.get("messages").and_then(Value::as_array).map_or(0, |m| m.iter().map(|m| blocks(m.get("content"))).sum());
    if c.cache_system && used < MAX_BREAKPOINTS {
        if let Some(system) = req.get_mut("system") {
            let texts: Vec<String> = match &*system {
                Value::String(s) => vec![s.clone()],
                Value::Array(b) => b.iter().filter_map(|x| x.get("text").and_then(Value::as_str).map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            if c.system_is_long_enough(texts.into_iter()) && as_blocks(system).is_some_and(|b| mark_last(b, true)) {
                used += 1;
            }
        }
    }
    if c.cache_messages && used < MAX_BREAKPOINTS {
        if let Some(messages) = req.get_mut("messages").and_then(Value::as_array_mut) {
            if let Some(i) = c.history_index(messages.len()) {
                if messages[i].get_mut("content").and_then(as_blocks).is_some_and(|b| mark_last(b, true)) {
                    used += 1;
                }
            }
        }
    }
    if c.cache_tools && used < MAX_BREAKPOINTS {
        if let Some(tools) = req.get_mut("tools").and_then(Value::as_array_mut) {
            mark_last(tools, false);
        }
    }
}

/// Block types Anthropic takes a marker on: a marker it refuses would fail the request.
const CACHEABLE: &[&str] = &["text", "image", "document", "search_result", "tool_use", "tool_result", "server_tool_use", "web_search_tool_result"];

/// Anthropic's string shorthand as the block list that can carry a marker.
fn as_blocks(v: &mut Value) -> Option<&mut Vec<Value>> {
    if let Some(text) = v.as_str() {
        *v = json!([{"type": "text", "text": text}]);
    }
    v.as_array_mut()
}

/// Marks the last (cacheable) entry, unless it is marked already.
fn mark_last(list: &mut [Value], typed: bool) -> bool {
    // Anthropic refuses a marker on an empty text block.
    let empty_text = |b: &Value| b.get("type").and_then(Value::as_str) == Some("text") && b.get("text").and_then(Value::as_str).is_none_or(str::is_empty);
    let found = list.iter_mut().rfind(|b| b.is_object() && (!typed || (b.get("type").and_then(Value::as_str).is_some_and(|t| CACHEABLE.contains(&t)) && !empty_text(b))));
    match found.and_then(Value::as_object_mut) {
        Some(b) if b.get("cache_control").is_none_or(Value::is_null) => {
            b.insert("cache_control".into(), json!({"type": "ephemeral"}));
            true
        }
        _ => false,
    }
}

/// Whether Bedrock caches prompts for `model` (Claude 3 and later, Nova; as agentgateway
/// decides): other models refuse `cachePoint` blocks.
fn bedrock_caches(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    (m.contains("anthropic.claude") && !["claude-instant", "claude-v1", "claude-v2"].iter().any(|old| m.contains(old))) || m.contains("amazon.nova")
}

/// Bedrock Converse: `{cachePoint: {type: default}}` blocks after the chosen content, for the
/// models Bedrock caches for (Claude and Nova).
fn bedrock(c: &PromptCaching, req: &mut Value) {
    let Some(req) = req.as_object_mut() else { return };
    let point = || json!({"cachePoint": {"type": "default"}});
    let points = |v: Option<&Value>| v.and_then(Value::as_array).map_or(0, |b| b.iter().filter(|x| x.get("cachePoint").is_some()).count());
    let mut used = points(req.get("system")) + points(req.get("toolConfig").and_then(|t| t.get("tools")));
    used += req.get("messages").and_then(Value::as_array).map_or(0, |m| m.iter().map(|m| points(m.get("content"))).sum());
    if c.cache_system && used < MAX_BREAKPOINTS {
        if let Some(system) = req.get_mut("system").and_then(Value::as_array_mut) {
            let texts = system.iter().filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_string)).collect::<Vec<_>>();
            if !system.is_empty() && c.system_is_long_enough(texts.into_iter()) && system.last().is_some_and(|b| b.get("cachePoint").is_none()) {
                system.push(point());
                used += 1;
            }
        }
    }
    if c.cache_messages && used < MAX_BREAKPOINTS {
        if let Some(messages) = req.get_mut("messages").and_then(Value::as_array_mut) {
            if let Some(i) = c.history_index(messages.len()) {
                if let Some(content) = messages[i].get_mut("content").and_then(Value::as_array_mut) {
                    if content.last().is_some_and(|b| b.get("cachePoint").is_none()) {
                        content.push(point());
                        used += 1;
                    }
                }
            }
        }
    }
    if c.cache_tools && used < MAX_BREAKPOINTS {
        if let Some(tools) = req.get_mut("toolConfig").and_then(|t| t.get_mut("tools")).and_then(Value::as_array_mut) {
            if tools.last().is_some_and(|t| t.get("cachePoint").is_none()) {
                tools.push(point());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(c: &PromptCaching, provider: AiProvider, v: Value) -> Value {
        serde_json::from_slice(&c.apply(provider, RouteType::Messages, v.to_string().into_bytes(), Some("us.anthropic.claude-sonnet-4-5-v1:0"))).unwrap()
    }

    fn all() -> PromptCaching {
        PromptCaching { cache_tools: true, min_tokens: None, ..Default::default() }
    }

    #[test]
    fn anthropic_marks_system_history_and_tools() {
        let v = apply(&all(), AiProvider::Anthropic, json!({
            "system": "be brief",
            "tools": [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}],
            "messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": [{"type": "text", "text": "two"}]}, {"role": "user", "content": "three"}]}));
        assert_eq!(v["system"], json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]));
        assert_eq!(v["messages"][1]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(v["messages"][2]["content"], "three", "the current turn is not cached");
        assert!(v["tools"][0].get("cache_control").is_none() && v["tools"][1]["cache_control"]["type"] == "ephemeral");
    }

    #[test]
    fn min_tokens_offset_and_the_limit_of_four() {
        let c = PromptCaching { cache_message_offset: 5, ..Default::default() };
        let v = apply(&c, AiProvider::Anthropic, json!({"system": "short", "messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}));
        assert_eq!(v["system"], "short", "under minTokens: left alone");
        assert_eq!(v["messages"][0]["content"][0]["cache_control"]["type"], "ephemeral", "offset clamped at the first");
        let marked = json!({"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}});
        let v = apply(&all(), AiProvider::Anthropic, json!({"system": [marked, marked, marked, marked], "messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}));
        assert_eq!(v["messages"][0]["content"], "a", "four client markers leave no room");
        assert_eq!(v["system"][3]["cache_control"]["ttl"], "1h");
    }

    #[test]
    fn bedrock_gets_cache_points_and_others_nothing() {
        let body = json!({"system": [{"text": "sys"}], "toolConfig": {"tools": [{"toolSpec": {"name": "t"}}]}, "messages": [
            {"role": "user", "content": [{"text": "a"}]}, {"role": "assistant", "content": [{"text": "b"}]}, {"role": "user", "content": [{"text": "c"}]}]});
        let v = apply(&all(), AiProvider::Bedrock, body.clone());
        assert_eq!(v["system"][1], json!({"cachePoint": {"type": "default"}}));
        assert_eq!(v["messages"][1]["content"][1], json!({"cachePoint": {"type": "default"}}));
        assert_eq!(v["messages"][2]["content"].as_array().unwrap().len(), 1);
        assert_eq!(v["toolConfig"]["tools"][1], json!({"cachePoint": {"type": "default"}}));
        assert_eq!(apply(&all(), AiProvider::OpenAi, body.clone()), body);
        let llama = all().apply(AiProvider::Bedrock, RouteType::Messages, body.to_string().into_bytes(), Some("meta.llama3-70b-instruct-v1:0"));
        assert_eq!(serde_json::from_slice::<Value>(&llama).unwrap(), body, "models Bedrock does not cache for get no cache points");
        assert!(bedrock_caches("amazon.nova-pro-v1:0") && !bedrock_caches("anthropic.claude-v2:1"));
    }
}
