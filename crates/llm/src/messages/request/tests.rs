//! Messages → Chat request translation, field by field (shapes from Anthropic's and
//! OpenAI's published API references).

use serde_json::{json, Value};

use super::messages_to_chat;

fn translate(req: Value) -> Value {
    let out = messages_to_chat(req.to_string().as_bytes(), None, false).unwrap();
    serde_json::from_slice(&out.body).unwrap()
}

fn refused(req: Value) -> String {
    messages_to_chat(req.to_string().as_bytes(), None, false).unwrap_err()
}

#[test]
fn a_conversation_with_tools_translates_field_by_field() {
    let chat = translate(json!({
        "model": "claude-x", "max_tokens": 256, "temperature": 0.2, "top_p": 0.9,
        "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Be kind."}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "text", "text": "And tomorrow?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
        ],
    }));
    assert_eq!(chat["model"], "claude-x");
    assert_eq!(chat["max_completion_tokens"], 256);
    assert_eq!((chat["temperature"].clone(), chat["top_p"].clone()), (json!(0.2), json!(0.9)));
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["user"], "u-1");
    assert_eq!(chat["tool_choice"], "required");
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(chat["tools"][0], json!({"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}));
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]}));
    assert_eq!(m[1], json!({"role": "user", "content": "Weather in Paris?"}));
    assert_eq!(m[2]["role"], "assistant");
    assert_eq!(m[2]["content"], "Checking.");
    assert_eq!(m[2]["reasoning_content"], "use the tool");
    assert_eq!(m[2]["tool_calls"][0], json!({"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}));
    // The tool result comes right after the tool call, before the user's new words.
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}));
    assert_eq!(m[4], json!({"role": "user", "content": [{"type": "text", "text": "And tomorrow?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}));
    assert!(chat.get("stream").is_none());
}

#[test]
fn streaming_asks_for_usage_and_errors_keep_their_meaning() {
    let chat = translate(json!({"model": "m", "max_tokens": 8, "stream": true,
        "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": true}]}]}));
    assert_eq!(chat["stream"], true);
    assert_eq!(chat["stream_options"], json!({"include_usage": true}));
    assert_eq!(chat["messages"][0], json!({"role": "tool", "tool_call_id": "t", "content": "Error: boom"}));
}

#[test]
fn tool_choice_kinds() {
    let base = |choice: Value| translate(json!({"model": "m", "max_tokens": 8, "messages": [], "tool_choice": choice}));
    assert_eq!(base(json!({"type": "auto"}))["tool_choice"], "auto");
    assert_eq!(base(json!({"type": "none"}))["tool_choice"], "none");
    assert_eq!(base(json!({"type": "tool", "name": "f"}))["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    assert!(base(json!({"type": "auto"})).get("parallel_tool_calls").is_none());
}

#[test]
fn the_gateway_model_replaces_the_clients_and_thinking_maps_to_effort() {
    let raw = json!({"model": "claude-x", "max_tokens": 8, "messages": [], "thinking": {"type": "adaptive"}}).to_string();
    let out = messages_to_chat(raw.as_bytes(), Some("gpt-pinned"), false).unwrap();
    let chat: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(chat["model"], "gpt-pinned");
    assert_eq!(out.request_model.as_deref(), Some("claude-x"));
    assert_eq!(chat["reasoning_effort"], "high");
    let chat = translate(json!({"model": "m", "max_tokens": 8, "messages": [], "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"effort": "low"}}));
    assert_eq!(chat["reasoning_effort"], "low");
}

#[test]
fn what_has_no_chat_meaning_is_refused_naming_it() {
    assert!(refused(json!({"model": "m", "max_tokens": 8, "messages": [], "mcp_servers": []})).contains("`mcp_servers`"));
    assert!(translate(json!({"model": "m", "max_tokens": 8, "messages": [], "top_k": 5})).get("top_k").is_none());
    assert!(refused(json!({"model": "m", "max_tokens": 8, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
        .contains("web_search_20250305"));
    let doc = json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]});
    assert!(refused(doc).contains("messages[0]: content[0]: a `document` block"));
    let img = json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}]});
    assert!(refused(img).contains("text only"));
    assert!(refused(json!({"max_tokens": 8, "messages": []})).contains("`model` is required"));
    assert!(refused(json!({"model": "m", "max_tokens": "many", "messages": []})).contains("max_tokens"));
    assert!(messages_to_chat(b"[1]", None, false).is_err());
}

#[test]
fn claude_codes_extras_a_system_turn_and_context_management() {
    let chat = translate(json!({"model": "m", "max_tokens": 8, "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "text", "text": "be terse"}]}]}));
    assert_eq!(chat["messages"][1], json!({"role": "system", "content": [{"type": "text", "text": "be terse"}]}));
    assert!(chat.get("context_management").is_none());
}
