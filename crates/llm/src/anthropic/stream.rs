//! An Anthropic Messages stream, for a Chat Completions client: each Anthropic event becomes
//! the Chat chunk it means, as it arrives; `message_stop` ends the stream with the usage
//! chunk (when the client asked for it) and `[DONE]`.

use serde_json::{json, Value};

use super::response::{finish_reason, now, usage};
use tollgate_core::json_pointer::Pointer as _;

/// The translation state of one stream.
#[derive(Debug, Default, Clone)]
pub struct MessagesToChatStream {
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    id: Value,
    model: Value,
    created: u64,
    /// Tool calls seen so far: the next one's Chat index.
    tools: u64,
    /// The content block that is a tool call, and its Chat index.
    tool_block: Option<(u64, u64)>,
    usage: Value,
    finished: bool,
    started: bool,
}

fn data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl MessagesToChatStream {
    /// A new translation; `include_usage` as the client asked.
    pub fn new(include_usage: bool) -> Self {
        MessagesToChatStream { include_usage, usage: json!({}), ..Default::default() }
    }

    /// The usage so far, in Chat's shape.
    pub fn chat_usage(&self) -> Value {
        usage(&self.usage)
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    /// Translates one Anthropic event's `data`; returns the Chat events to send now.
    pub fn event(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let Ok(ev) = serde_json::from_slice::<Value>(raw) else { return out };
        match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let m = ev.get("message").cloned().unwrap_or_default();
                self.id = m.get("id").cloned().unwrap_or_else(|| "chatcmpl-tollgate".into());
                self.model = m.get("model").cloned().unwrap_or(Value::Null);
                self.created = now();
                self.merge_usage(m.get("usage"));
                self.started = true;
                data(&mut out, &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            Some("content_block_start") => {
                let block = ev.get("content_block").cloned().unwrap_or_default();
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let index = self.tools;
                    self.tools += 1;
                    self.tool_block = Some((ev.get("index").and_then(Value::as_u64).unwrap_or(0), index));
                    let call = json!({"index": index, "id": block.get("id"), "type": "function",
                                      "function": {"name": block.get("name"), "arguments": ""}});
                    data(&mut out, &self.chunk(json!({"tool_calls": [call]}), Value::Null));
                }
            }
            Some("content_block_delta") => {
                let delta = ev.get("delta").cloned().unwrap_or_default();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => data(&mut out, &self.chunk(json!({"content": delta.get("text")}), Value::Null)),
                    Some("thinking_delta") => data(&mut out, &self.chunk(json!({"reasoning_content": delta.get("thinking")}), Value::Null)),
                    Some("input_json_delta") => {
                        let block = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let Some((_, index)) = self.tool_block.filter(|(b, _)| *b == block) {
                            let call = json!({"index": index, "function": {"arguments": delta.get("partial_json")}});
                            data(&mut out, &self.chunk(json!({"tool_calls": [call]}), Value::Null));
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                self.merge_usage(ev.get("usage"));
                let reason = ev.at("/delta/stop_reason").and_then(Value::as_str);
                data(&mut out, &self.chunk(json!({}), finish_reason(reason).into()));
            }
            Some("message_stop") => self.finish_into(&mut out),
            Some("error") => {
                let message = ev.at("/error/message").and_then(Value::as_str).unwrap_or("the upstream stream failed");
                let kind = ev.at("/error/type").and_then(Value::as_str).unwrap_or("upstream_error");
                data(&mut out, &json!({"error": {"message": message, "type": kind}}));
                self.finished = true;
            }
            _ => {}
        }
        out
    }

    /// The upstream stream ended: without `message_stop`, the answer was cut short and the
    /// client gets an error event, not a stream that looks complete.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.finished {
            data(&mut out, &json!({"error": {"message": "the upstream stream ended before the answer was complete", "type": "upstream_error"}}));
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.finished = true;
        }
        out
    }

    fn merge_usage(&mut self, u: Option<&Value>) {
        let Some(u) = u.and_then(Value::as_object) else { return };
        if !self.usage.is_object() {
            self.usage = json!({});
        }
        for (k, v) in u {
            if !v.is_null() {
                self.usage[k] = v.clone();
            }
        }
    }

    fn finish_into(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                               "choices": [], "usage": self.chat_usage()});
            data(out, &chunk);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.finished = true;
    }
}
