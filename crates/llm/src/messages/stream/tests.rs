//! Chat stream → Messages events, event by event.

use serde_json::{json, Value};

use super::ChatToMessagesStream;

/// (event name, data) pairs of an Anthropic SSE byte string.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
            let data = serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
            (name, data)
        })
        .collect()
}

fn run(chunks: &[Value], done: bool) -> Vec<(String, Value)> {
    let mut s = ChatToMessagesStream::default();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.chunk(c.to_string().as_bytes()));
    }
    if done {
        out.extend(s.chunk(b"[DONE]"));
    }
    out.extend(s.end());
    events(&out)
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-1", "model": "gpt-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[test]
fn text_then_a_tool_call_then_usage() {
    let got = run(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Let me "}), Value::Null),
        chunk(json!({"content": "check."}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-1", "model": "gpt-x", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 5}}}),
    ], true);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(got[0].1["message"]["model"], "gpt-x");
    assert_eq!(got[1].1, json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
    assert_eq!(got[3].1["delta"], json!({"type": "text_delta", "text": "check."}));
    assert_eq!(got[5].1["content_block"], json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}));
    assert_eq!(got[5].1["index"], 1);
    let args: String = got[6..8].iter().map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string()).collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert_eq!(got[9].1["delta"], json!({"stop_reason": "tool_use", "stop_sequence": null}));
    assert_eq!(got[9].1["usage"], json!({"input_tokens": 15, "output_tokens": 7, "cache_read_input_tokens": 5}));
}

#[test]
fn reasoning_arrives_as_a_thinking_block_and_length_is_max_tokens() {
    let got = run(&[
        chunk(json!({"reasoning_content": "hmm"}), Value::Null),
        chunk(json!({"content": "ok"}), json!("length")),
    ], true);
    assert_eq!(got[1].1["content_block"]["type"], "thinking");
    assert_eq!(got[2].1["delta"], json!({"type": "thinking_delta", "thinking": "hmm"}));
    assert_eq!(got[3].0, "content_block_stop");
    assert_eq!(got[4].1["content_block"]["type"], "text");
    assert_eq!(got.iter().find(|(n, _)| n == "message_delta").unwrap().1["delta"]["stop_reason"], "max_tokens");
}

#[test]
fn a_stream_cut_before_its_finish_ends_in_an_error_event() {
    let got = run(&[chunk(json!({"content": "par"}), Value::Null)], false);
    assert_eq!(got.last().unwrap().0, "error");
    assert!(!got.iter().any(|(n, _)| n == "message_stop"));
    // With a finish reason but no [DONE] (some servers omit it), the message ends normally.
    let got = run(&[chunk(json!({"content": "x"}), json!("stop"))], false);
    assert_eq!(got.last().unwrap().0, "message_stop");
}

#[test]
fn an_error_inside_the_stream_is_an_error_event() {
    let got = run(&[chunk(json!({"content": "a"}), Value::Null), json!({"error": {"message": "overloaded"}})], true);
    let (name, data) = got.last().unwrap();
    assert_eq!((name.as_str(), data["error"]["message"].as_str()), ("error", Some("overloaded")));
}
