//! Chat Completions chunks as Responses stream events, as they come: `response.created`, then
//! per output item `output_item.added`, its deltas (`output_text.delta`,
//! `function_call_arguments.delta`) and `…done` events, and `response.completed` (or
//! `response.incomplete`) with the whole response and usage at the end. A stream the provider
//! cuts short, or an error event, ends in `response.failed`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{call_item, envelope, message_item, status, usage, Echo};
use tollgate_core::json_pointer::Pointer as _;

/// Bound on text and arguments held for the closing events (a streaming client got them
/// already piece by piece): past it the stream fails rather than buffering without end.
const MAX_HELD: usize = 8 * 1024 * 1024;

/// The translation state of one stream.
#[derive(Debug, Clone, Default)]
pub struct ChatToResponsesStream {
    /// Request fields the response repeats.
    pub echo: Echo,
    started: bool,
    finished: bool,
    seq: u64,
    id: String,
    created: u64,
    model: Value,
    next_index: usize,
    /// The open message item: (output index, item id, text so far).
    text: Option<(usize, String, String)>,
    /// Open function calls by Chat index: (output index, call id, name, arguments so far).
    calls: BTreeMap<u64, (usize, String, String, String)>,
    /// Finished items by output index.
    done: BTreeMap<usize, Value>,
    held: usize,
    finish: Option<String>,
    usage: Option<Value>,
}

impl ChatToResponsesStream {
    /// A stream translation that echoes `echo`.
    pub fn new(echo: Echo) -> Self {
        ChatToResponsesStream { echo, ..Default::default() }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut fields: Value) {
        fields["type"] = kind.into();
        fields["sequence_number"] = self.seq.into();
        self.seq += 1;
        out.extend_from_slice(format!("event: {kind}\ndata: {fields}\n\n").as_bytes());
    }

    fn response(&self, status: &str, incomplete: Value, usage: Value) -> Value {
        let output = self.done.values().cloned().collect();
        envelope(&self.id, self.created, &self.model, status, output, usage, incomplete, &self.echo)
    }

    fn start(&mut self, out: &mut Vec<u8>, chunk: &Value) {
        self.started = true;
        let chat_id = chunk.get("id").and_then(Value::as_str).unwrap_or("tollgate").trim_start_matches("chatcmpl-").to_string();
        self.id = format!("resp_{chat_id}");
        self.created = chunk.get("created").and_then(Value::as_u64).unwrap_or(0);
        self.model = chunk.get("model").cloned().unwrap_or(Value::Null);
        let pending = self.response("in_progress", Value::Null, Value::Null);
        self.emit(out, "response.created", json!({"response": pending}));
        self.emit(out, "response.in_progress", json!({"response": pending}));
    }

    /// One chunk's `data`; returns the events it makes.
    pub fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished || data == b"[DONE]" {
            return out;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else { return out };
        if let Some(err) = chunk.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed").to_string();
            self.fail(&mut out, &message);
            return out;
        }
        if !self.started {
            self.start(&mut out, &chunk);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else { return out };
        let delta = choice.get("delta").cloned().unwrap_or_default();
        if let Some(t) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.text_delta(&mut out, t);
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.call_delta(&mut out, call);
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        if self.held > MAX_HELD {
            self.fail(&mut out, "the answer is larger than the gateway holds for the closing events");
        }
        out
    }

    fn text_delta(&mut self, out: &mut Vec<u8>, t: &str) {
        if self.text.is_none() {
            let index = self.next_index;
            self.next_index += 1;
            let item_id = format!("msg_{}_{index}", self.id.trim_start_matches("resp_"));
            let item = json!({"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []});
            self.emit(out, "response.output_item.added", json!({"output_index": index, "item": item}));
            let part = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            self.emit(out, "response.content_part.added", json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}));
            self.text = Some((index, item_id, String::new()));
        }
        let Some((index, item_id, text)) = self.text.as_mut() else { return };
        text.push_str(t);
        self.held += t.len();
        let (index, item_id) = (*index, item_id.clone());
        self.emit(out, "response.output_text.delta", json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": t, "logprobs": []}));
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        let Some((index, item_id, text)) = self.text.take() else { return };
        self.emit(out, "response.output_text.done", json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}));
        let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
        self.emit(out, "response.content_part.done", json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}));
        let item = message_item(&item_id, &text);
        self.emit(out, "response.output_item.done", json!({"output_index": index, "item": item}));
        self.done.insert(index, item);
    }

    fn call_delta(&mut self, out: &mut Vec<u8>, call: &Value) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        if !self.calls.contains_key(&chat_index) {
            // A call starts: the text before it is finished.
            self.close_text(out);
            let index = self.next_index;
            self.next_index += 1;
            let call_id = call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{chat_index}"), str::to_string);
            let name = call.at("/function/name").and_then(Value::as_str).unwrap_or("").to_string();
            let mut item = call_item(&call_id, &name, "", &self.echo.1);
            item["status"] = "in_progress".into();
            self.emit(out, "response.output_item.added", json!({"output_index": index, "item": item}));
            self.calls.insert(chat_index, (index, call_id, name, String::new()));
        }
        let Some(piece) = call.at("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) else { return };
        let Some((index, call_id, _, args)) = self.calls.get_mut(&chat_index) else { return };
        args.push_str(piece);
        self.held += piece.len();
        let (index, item_id) = (*index, format!("fc_{call_id}"));
        self.emit(out, "response.function_call_arguments.delta", json!({"item_id": item_id, "output_index": index, "delta": piece}));
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for (_, (index, call_id, name, args)) in std::mem::take(&mut self.calls) {
            let item_id = format!("fc_{call_id}");
            let item = call_item(&call_id, &name, &args, &self.echo.1);
            self.emit(out, "response.function_call_arguments.done", json!({"item_id": item_id, "output_index": index, "name": item["name"], "arguments": args}));
            self.emit(out, "response.output_item.done", json!({"output_index": index, "item": item}));
            self.done.insert(index, item);
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: &str) {
        if !self.started {
            self.start(out, &Value::Null);
        }
        self.finished = true;
        let mut r = self.response("failed", Value::Null, Value::Null);
        r["error"] = json!({"code": "server_error", "message": message});
        self.emit(out, "response.failed", json!({"response": r}));
    }

    /// The stream ended: the open items close and the response completes (or, cut short
    /// before a finish reason, fails).
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if self.finish.is_none() {
            self.fail(&mut out, "the upstream stream ended before the answer was finished");
            return out;
        }
        self.finished = true;
        self.close_text(&mut out);
        self.close_calls(&mut out);
        let (status, incomplete) = status(self.finish.as_deref());
        let usage = self.usage.as_ref().map(usage).unwrap_or(Value::Null);
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        let r = self.response(status, incomplete, usage);
        self.emit(&mut out, kind, json!({"response": r}));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(out: &[u8]) -> Vec<Value> {
        String::from_utf8(out.to_vec()).unwrap().split("\n\n").filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap()).collect()
    }

    #[test]
    fn text_then_a_call_then_completion() {
        let mut s = ChatToResponsesStream::default();
        let mut out = Vec::new();
        for c in [
            json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "w", "arguments": "{\"a\""}}]}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}),
        ] {
            out.extend(s.chunk(c.to_string().as_bytes()));
        }
        out.extend(s.chunk(b"[DONE]"));
        out.extend(s.end());
        let ev = events(&out);
        let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, [
            "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
            "response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
            "response.function_call_arguments.done", "response.output_item.done", "response.completed",
        ]);
        let done = ev.last().unwrap();
        assert_eq!(done["response"]["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(done["response"]["usage"]["output_tokens"], 3);
        assert!(ev.iter().enumerate().all(|(i, e)| e["sequence_number"] == i as u64));
    }

    #[test]
    fn a_cut_stream_fails() {
        let mut s = ChatToResponsesStream::default();
        let mut out = s.chunk(json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}).to_string().as_bytes());
        out.extend(s.end());
        assert_eq!(events(&out).last().unwrap()["type"], "response.failed");
    }
}
