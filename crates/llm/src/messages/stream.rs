//! An OpenAI Chat Completions stream, for a Messages client: each Chat chunk becomes the
//! Anthropic events it means, as it arrives (`message_start`, a content block per text run,
//! reasoning run and tool call, `message_delta` with the stop reason and usage, then
//! `message_stop`). The end is written once, on `[DONE]`, or when the upstream's stream
//! ends without it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{stop_reason, usage};

/// The kind of a text-like run (tool calls are tracked apart, one block per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
}

/// A tool call being streamed: its block opens once its name is known.
#[derive(Debug, Default, Clone)]
struct ToolCall {
    id: Option<String>,
    name: Option<String>,
    /// Arguments that arrived before the block could open.
    pending: String,
    /// The Anthropic block index, once open; `None` again after it closed.
    block: Option<usize>,
    closed: bool,
}

/// The translation state of one stream.
#[derive(Debug, Default, Clone)]
pub struct ChatToMessagesStream {
    started: bool,
    finished: bool,
    next_block: usize,
    /// The open text or thinking block.
    open: Option<(usize, Block)>,
    tools: BTreeMap<u64, ToolCall>,
    stop: Option<(&'static str, Value)>,
    usage: Option<Value>,
    id: Value,
    model: Value,
}

fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl ChatToMessagesStream {
    /// Translates one Chat event's `data`; returns the Anthropic events to send now.
    pub fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if data == b"[DONE]" {
            self.finish_into(&mut out);
            return out;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else { return out };
        if let Some(err) = chunk.get("error") {
            // An error inside the stream: Anthropic's `error` event, and the stream is over.
            let message = err.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed");
            event(&mut out, "error", &json!({"type": "error", "error": {"type": "api_error", "message": message}}));
            self.finished = true;
            return out;
        }
        if !self.started {
            self.start(&chunk, &mut out);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else { return out };
        if let Some(delta) = choice.get("delta") {
            if let Some(r) = delta.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                let index = self.open_run(Block::Thinking, &mut out);
                event(&mut out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": r}}));
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let index = self.open_run(Block::Text, &mut out);
                event(&mut out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}}));
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                self.tool_delta(call, &mut out);
            }
        }
        if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
            self.stop = Some(stop_reason(choice));
        }
        out
    }

    /// The upstream stream ended. Without `[DONE]`: after a finish reason the message is
    /// ended as usual (some servers omit `[DONE]`); before one, the answer was cut short, and
    /// the client gets an `error` event rather than a message that looks complete.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if self.stop.is_some() {
            self.finish_into(&mut out);
        } else {
            let e = json!({"type": "error", "error": {"type": "api_error", "message": "the upstream stream ended before the answer was complete"}});
            event(&mut out, "error", &e);
            self.finished = true;
        }
        out
    }

    /// `message_start`, with the id and model of the first chunk.
    fn start(&mut self, first: &Value, out: &mut Vec<u8>) {
        self.started = true;
        self.id = first.get("id").cloned().unwrap_or_else(|| "msg_tollgate".into());
        self.model = first.get("model").cloned().unwrap_or(Value::Null);
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "content": [], "model": self.model,
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event(out, "message_start", &json!({"type": "message_start", "message": message}));
    }

    /// Opens a text or thinking run (closing any other open block) and returns its index.
    fn open_run(&mut self, kind: Block, out: &mut Vec<u8>) -> usize {
        if let Some((index, k)) = self.open {
            if k == kind {
                return index;
            }
        }
        self.close_all(out);
        let index = self.next_block;
        self.next_block += 1;
        let block = match kind {
            Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Text => json!({"type": "text", "text": ""}),
        };
        event(out, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": block}));
        self.open = Some((index, kind));
        index
    }

    fn tool_delta(&mut self, call: &Value, out: &mut Vec<u8>) {
        let key = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = call.get("function");
        let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default().to_string();
        let entry = self.tools.entry(key).or_default();
        if entry.closed {
            // A call whose block already closed cannot take more arguments: drop nothing
            // silently, but do not reopen an index either.
            tracing::debug!(target: "tollgate", "tool call {key} continued after its block closed");
            return;
        }
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            entry.id.get_or_insert_with(|| id.to_string());
        }
        if let Some(name) = f.and_then(|f| f.get("name")).and_then(Value::as_str).filter(|n| !n.is_empty()) {
            entry.name.get_or_insert_with(|| name.to_string());
        }
        if entry.block.is_none() {
            // Arguments wait for the call's name; a name that never comes cannot hold memory.
            if entry.pending.len() + args.len() > crate::translation::MAX_RESPONSE_COPY {
                tracing::debug!(target: "tollgate", "tool call {key} sent arguments without a name past the bound");
                return;
            }
            entry.pending.push_str(&args);
            if entry.name.is_none() {
                return;
            }
            // The name is known: open its block, closing text and thinking runs.
            let (id, name, pending) = (entry.id.clone(), entry.name.clone(), std::mem::take(&mut entry.pending));
            self.close_run(out);
            let index = self.next_block;
            self.next_block += 1;
            let id = id.unwrap_or_else(|| format!("toolu_{key}"));
            let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
            event(out, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": block}));
            if !pending.is_empty() {
                event(out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": pending}}));
            }
            if let Some(t) = self.tools.get_mut(&key) {
                t.block = Some(index);
            }
            return;
        }
        if let (Some(index), false) = (entry.block, args.is_empty()) {
            event(out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}));
        }
    }

    /// Closes the open text or thinking run.
    fn close_run(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            event(out, "content_block_stop", &json!({"type": "content_block_stop", "index": index}));
        }
    }

    /// Closes every open block: the run, then tool calls in order.
    fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close_run(out);
        for t in self.tools.values_mut() {
            if let Some(index) = t.block.take() {
                t.closed = true;
                event(out, "content_block_stop", &json!({"type": "content_block_stop", "index": index}));
            }
        }
    }

    fn finish_into(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            // `[DONE]` with nothing before it: still a well-formed (empty) message.
            self.start(&Value::Null, out);
        }
        self.close_all(out);
        let (reason, sequence) = self.stop.clone().unwrap_or(("end_turn", Value::Null));
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage(self.usage.as_ref()),
        });
        event(out, "message_delta", &delta);
        event(out, "message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }
}

#[cfg(test)]
mod tests;
