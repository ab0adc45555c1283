//! A ConverseStream answer (AWS event-stream frames) as Chat Completions chunks, as they come
//! (or gathered into one completion for a client that did not stream), bounded.

use bytes::BytesMut;
use serde_json::{json, Value};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};

use super::response::{finish_reason, now, usage};
use tollgate_core::json_pointer::Pointer as _;

/// The longest frame the gateway holds while it is incomplete.
const MAX_FRAME: usize = 8 * 1024 * 1024;

/// The translation state of one stream.
#[derive(Debug, Default)]
pub struct BedrockToChat {
    /// The client asked for a stream (else the chunks are gathered).
    pub streaming: bool,
    /// The client asked for the usage chunk.
    pub include_usage: bool,
    /// The model, as the client's answer names it.
    pub model: String,
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    started: bool,
    finished: bool,
    /// Chat tool-call index of each Converse content block that is a tool use.
    tool_blocks: Vec<(u64, usize)>,
    text: String,
    calls: Vec<Value>,
    /// Bytes of text and arguments gathered for a client that does not stream.
    held: usize,
    finish: Option<&'static str>,
    usage: Option<Value>,
    error: Option<String>,
}

impl Clone for BedrockToChat {
    fn clone(&self) -> Self {
        // A fresh decoder: state in flight is never cloned (only a plan before any answer is).
        BedrockToChat { streaming: self.streaming, include_usage: self.include_usage, model: self.model.clone(), ..Default::default() }
    }
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        HeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

impl BedrockToChat {
    /// A translation for a client that does (or does not) stream.
    pub fn new(streaming: bool, include_usage: bool, model: String) -> Self {
        BedrockToChat { streaming, include_usage, model, ..Default::default() }
    }

    /// The usage so far, in Chat's shape.
    pub fn chat_usage(&self) -> Option<Value> {
        self.usage.clone()
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-bedrock", "object": "chat.completion.chunk", "created": now(), "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn emit(&self, out: &mut Vec<u8>, v: &Value) {
        if self.streaming {
            // Straight into the buffer: `{v}` in a `format!` writes through `fmt`.
            out.extend_from_slice(b"data: ");
            let _ = serde_json::to_writer(&mut *out, v);
            out.extend_from_slice(b"\n\n");
        }
    }

    /// Bytes of the answer; returns the Chat events a streaming client gets now.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished || self.error.is_some() {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => self.message(&m, &mut out),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    self.fail(&mut out, format!("the upstream event stream is malformed: {e}"));
                    break;
                }
            }
            if self.error.is_some() {
                break;
            }
        }
        if self.buf.len() > MAX_FRAME {
            self.fail(&mut out, "an upstream event is larger than the gateway holds".into());
        }
        out
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: String) {
        let e = json!({"error": {"message": message, "type": "upstream_error"}});
        self.emit(out, &e);
        self.error = Some(message);
        self.finished = self.streaming;
    }

    fn message(&mut self, m: &Message, out: &mut Vec<u8>) {
        if header(m, ":message-type") == Some("exception") || header(m, ":message-type") == Some("error") {
            let kind = header(m, ":exception-type").or_else(|| header(m, ":error-code")).unwrap_or("exception").to_string();
            let text = serde_json::from_slice::<Value>(m.payload()).ok().and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
            self.fail(out, format!("{kind}: {}", text.unwrap_or_default()));
            return;
        }
        let Ok(p) = serde_json::from_slice::<Value>(m.payload()) else { return };
        match header(m, ":event-type").unwrap_or("") {
            "messageStart" => {
                if !self.started {
                    self.started = true;
                    let c = self.chunk(json!({"role": "assistant", "content": ""}), Value::Null);
                    self.emit(out, &c);
                }
            }
            "contentBlockStart" => {
                if let Some(u) = p.at("/start/toolUse") {
                    let block = p.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
                    let index = self.calls.len();
                    self.tool_blocks.push((block, index));
                    let id = u.get("toolUseId").and_then(Value::as_str).unwrap_or("call").to_string();
                    let call = json!({"id": id, "type": "function", "function": {"name": u.get("name"), "arguments": ""}});
                    let mut delta = call.clone();
                    delta["index"] = index.into();
                    let c = self.chunk(json!({"tool_calls": [delta]}), Value::Null);
                    self.emit(out, &c);
                    self.calls.push(call);
                }
            }
            "contentBlockDelta" => {
                let block = p.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
                if let Some(t) = p.at("/delta/text").and_then(Value::as_str) {
                    if !self.streaming {
                        self.held += t.len();
                        if self.held > MAX_FRAME {
                            self.fail(out, "the answer is larger than the gateway gathers".into());
                            return;
                        }
                        self.text.push_str(t);
                    }
                    let c = self.chunk(json!({"content": t}), Value::Null);
                    self.emit(out, &c);
                } else if let Some(piece) = p.at("/delta/toolUse/input").and_then(Value::as_str) {
                    let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) else { return };
                    if !self.streaming {
                        self.held += piece.len();
                        if self.held > MAX_FRAME {
                            self.fail(out, "the answer is larger than the gateway gathers".into());
                            return;
                        }
                        if let Some(args) = self.calls[index].at_mut("/function/arguments") {
                            let joined = format!("{}{piece}", args.as_str().unwrap_or(""));
                            *args = joined.into();
                        }
                    }
                    let c = self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), Value::Null);
                    self.emit(out, &c);
                } else if let Some(t) = p.at("/delta/reasoningContent/text").and_then(Value::as_str) {
                    let c = self.chunk(json!({"reasoning_content": t}), Value::Null);
                    self.emit(out, &c);
                }
            }
            "messageStop" => {
                let stop = p.get("stopReason").and_then(Value::as_str).unwrap_or("end_turn");
                self.finish = Some(finish_reason(stop));
            }
            "metadata" => {
                if let Some(u) = p.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(usage(u));
                }
            }
            _ => {}
        }
    }

    /// The answer ended: the finish chunk, usage and `[DONE]` for a streaming client, the
    /// whole completion for the others. Without a stop reason the answer was cut short.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.finished = true;
        if let Some(e) = self.error.take() {
            return json!({"error": {"message": e, "type": "upstream_error"}}).to_string().into_bytes();
        }
        let Some(finish) = self.finish else {
            let e = json!({"error": {"message": "the upstream stream ended before the answer was finished", "type": "upstream_error"}});
            if self.streaming {
                self.emit(&mut out, &e);
                return out;
            }
            return e.to_string().into_bytes();
        };
        if !self.streaming {
            let mut message = json!({"role": "assistant", "content": if self.text.is_empty() && !self.calls.is_empty() { Value::Null } else { self.text.clone().into() }});
            if !self.calls.is_empty() {
                message["tool_calls"] = Value::Array(self.calls.clone());
            }
            let mut chat = json!({"id": "chatcmpl-bedrock", "object": "chat.completion", "created": now(), "model": self.model,
                                  "choices": [{"index": 0, "message": message, "finish_reason": finish}]});
            if let Some(u) = &self.usage {
                chat["usage"] = u.clone();
            }
            return chat.to_string().into_bytes();
        }
        let c = self.chunk(json!({}), finish.into());
        self.emit(&mut out, &c);
        if let (true, Some(u)) = (self.include_usage, &self.usage) {
            let mut c = json!({"id": "chatcmpl-bedrock", "object": "chat.completion.chunk", "created": now(), "model": self.model, "choices": []});
            c["usage"] = u.clone();
            self.emit(&mut out, &c);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(event: &str, payload: Value) -> Vec<u8> {
        let m = Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(":event-type", HeaderValue::String(event.to_string().into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".to_string().into())));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    #[test]
    fn frames_split_anywhere_become_chunks() {
        let mut all = Vec::new();
        all.extend(frame("messageStart", json!({"role": "assistant"})));
        all.extend(frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}})));
        all.extend(frame("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "w"}}})));
        all.extend(frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":1}"}}})));
        all.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
        all.extend(frame("metadata", json!({"usage": {"inputTokens": 2, "outputTokens": 3, "totalTokens": 5}})));
        let mut s = BedrockToChat::new(true, true, "m".into());
        let mut out = Vec::new();
        for piece in all.chunks(7) {
            out.extend(s.push(piece));
        }
        out.extend(s.end());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\"content\":\"Hi\"") && text.contains("\"finish_reason\":\"tool_calls\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"completion_tokens\":3"), "{text}");
        let mut whole = BedrockToChat::new(false, false, "m".into());
        assert!(whole.push(&all).is_empty());
        let v: Value = serde_json::from_slice(&whole.end()).unwrap();
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    }

    #[test]
    fn gathered_answers_are_bounded() {
        let piece = "x".repeat(1024 * 1024);
        let mut whole = BedrockToChat::new(false, false, "m".into());
        whole.push(&frame("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "w"}}})));
        for _ in 0..9 {
            whole.push(&frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}})));
        }
        let out = String::from_utf8(whole.end()).unwrap();
        assert!(out.contains("larger than the gateway gathers"), "{}", &out[..out.len().min(200)]);
    }

    #[test]
    fn a_cut_or_garbled_stream_is_an_error() {
        let mut s = BedrockToChat::new(true, false, "m".into());
        let mut out = s.push(&frame("messageStart", json!({})));
        out.extend(s.end());
        assert!(String::from_utf8(out).unwrap().contains("\"error\""));
        let mut g = BedrockToChat::new(true, false, "m".into());
        let out = g.push(&[0, 0, 0, 20, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(String::from_utf8(out).unwrap().contains("malformed"));
    }
}
