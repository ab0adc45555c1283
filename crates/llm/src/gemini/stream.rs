//! Gemini's `streamGenerateContent` events, for a Chat Completions client: chunk by chunk for a
//! streaming client, or gathered into one completion for the others (the gateway always asks
//! Gemini for a stream, so the path does not depend on the request body's `stream`).

use serde_json::{json, Value};

use crate::anthropic::response::now;
use tollgate_core::json_pointer::Pointer as _;

/// The translation state of one answer.
#[derive(Debug, Default, Clone)]
pub struct GeminiToChat {
    /// The client asked for a stream.
    pub client_streams: bool,
    /// The client asked for the usage chunk at the end of its stream.
    pub include_usage: bool,
    /// The model, as it stands in the request path.
    pub path_model: String,
    started: bool,
    finished: bool,
    id: String,
    model: Value,
    created: u64,
    text: String,
    reasoning: String,
    calls: Vec<Value>,
    finish: Option<&'static str>,
    usage: Option<Value>,
    /// An error event ended the stream; a gathered answer becomes this error.
    error: Option<Value>,
}

/// Most text a gathered answer may hold (as `translation::MAX_RESPONSE_COPY` for whole answers).
const MAX_GATHERED: usize = crate::translation::MAX_RESPONSE_COPY;

fn data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Gemini's `finishReason` as Chat's; a turn that called functions ends in `tool_calls`.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's `usageMetadata` as Chat usage.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, candidates, thoughts) = (n("promptTokenCount"), n("candidatesTokenCount"), n("thoughtsTokenCount"));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": candidates + thoughts,
        "total_tokens": n("totalTokenCount").max(prompt + candidates + thoughts),
        "prompt_tokens_details": {"cached_tokens": n("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    })
}

impl GeminiToChat {
    /// A new translation, as the client asked.
    pub fn new(client_streams: bool, include_usage: bool) -> Self {
        GeminiToChat { client_streams, include_usage, ..Default::default() }
    }

    /// The usage so far, in Chat's shape.
    pub fn chat_usage(&self) -> Option<Value> {
        self.usage.as_ref().map(usage)
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    /// Translates one Gemini event's `data`; returns what a streaming client gets now (nothing
    /// for the others: see [`GeminiToChat::end`]).
    pub fn event(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let Ok(ev) = serde_json::from_slice::<Value>(raw) else { return out };
        if self.error.is_some() {
            return out;
        }
        if let Some(err) = ev.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed");
            let e = json!({"error": {"message": message, "type": err.get("status").and_then(Value::as_str).unwrap_or("upstream_error")}});
            if self.client_streams {
                data(&mut out, &e);
                self.finished = true;
            } else {
                self.error = Some(e);
            }
            return out;
        }
        if !self.started {
            self.started = true;
            self.id = ev.get("responseId").and_then(Value::as_str).map_or_else(|| "chatcmpl-tollgate".into(), |r| format!("chatcmpl-{r}"));
            self.model = ev.get("modelVersion").cloned().unwrap_or(Value::Null);
            self.created = now();
            if self.client_streams {
                data(&mut out, &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
        }
        if let Some(u) = ev.get("usageMetadata").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(candidate) = ev.get("candidates").and_then(Value::as_array).and_then(|c| c.first()) else { return out };
        for part in candidate.at("/content/parts").and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
                let (field, acc) = if thought { ("reasoning_content", &mut self.reasoning) } else { ("content", &mut self.text) };
                // A streaming client gets each piece as it comes; only a gathered answer holds
                // them, bounded: past the bound the answer is an error, not an unbounded buffer.
                if !self.client_streams {
                    if acc.len() + t.len() > MAX_GATHERED {
                        self.error = Some(json!({"error": {"message": "the upstream answer is larger than the gateway gathers", "type": "upstream_error"}}));
                        return out;
                    }
                    acc.push_str(t);
                }
                if self.client_streams {
                    data(&mut out, &self.chunk(json!({ field: t }), Value::Null));
                }
            }
            if let Some(call) = part.get("functionCall") {
                let index = self.calls.len();
                let id = call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{index}"), str::to_string);
                // Gemini wants the call's thought signature back with it next turn; a Chat
                // client only echoes the id, so the id carries it.
                let id = match part.get("thoughtSignature").and_then(Value::as_str) {
                    Some(sig) => super::signature::carry(&id, sig),
                    None => id,
                };
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                let call = json!({"id": id, "type": "function", "function": {"name": call.get("name"), "arguments": args.to_string()}});
                if self.client_streams {
                    let mut delta = call.clone();
                    delta["index"] = index.into();
                    data(&mut out, &self.chunk(json!({"tool_calls": [delta]}), Value::Null));
                }
                self.calls.push(call);
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.finish = Some(finish_reason(reason, !self.calls.is_empty()));
        }
        out
    }

    /// The stream ended: the finish chunk, usage and `[DONE]` for a streaming client, the whole
    /// completion for the others. Without a finish reason the answer was cut short: an error.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.finished = true;
        if let Some(e) = self.error.take() {
            return e.to_string().into_bytes();
        }
        let Some(finish) = self.finish else {
            let e = json!({"error": {"message": "the upstream stream ended before the answer was complete", "type": "upstream_error"}});
            if self.client_streams {
                data(&mut out, &e);
                out.extend_from_slice(b"data: [DONE]\n\n");
            } else {
                out = e.to_string().into_bytes();
            }
            return out;
        };
        if !self.client_streams {
            let mut message = json!({"role": "assistant", "content": if self.text.is_empty() && !self.calls.is_empty() { Value::Null } else { self.text.clone().into() }});
            if !self.calls.is_empty() {
                message["tool_calls"] = Value::Array(self.calls.clone());
            }
            if !self.reasoning.is_empty() {
                message["reasoning_content"] = self.reasoning.clone().into();
            }
            let whole = json!({"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                               "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                               "usage": self.chat_usage().unwrap_or_else(|| json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}))});
            return whole.to_string().into_bytes();
        }
        data(&mut out, &self.chunk(json!({}), finish.into()));
        if self.include_usage {
            let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                               "choices": [], "usage": self.chat_usage()});
            data(&mut out, &chunk);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_answer_gathers_into_one_completion_for_a_plain_client() {
        let mut g = GeminiToChat::new(false, false);
        let ev1 = json!({"responseId": "r1", "modelVersion": "gemini-x", "candidates": [{"content": {"role": "model", "parts": [{"text": "think", "thought": true}, {"text": "Hel"}]}}]});
        let ev2 = json!({"candidates": [{"content": {"parts": [{"text": "lo"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP"}],
                         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 2, "totalTokenCount": 10}});
        assert!(g.event(ev1.to_string().as_bytes()).is_empty() && g.event(ev2.to_string().as_bytes()).is_empty());
        let whole: Value = serde_json::from_slice(&g.end()).unwrap();
        assert_eq!(whole["choices"][0]["message"]["content"], "Hello");
        assert_eq!(whole["choices"][0]["message"]["reasoning_content"], "think");
        assert_eq!(whole["choices"][0]["message"]["tool_calls"][0]["function"], json!({"name": "f", "arguments": "{\"a\":1}"}));
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(whole["usage"]["completion_tokens"], 5);
        assert_eq!(whole["usage"]["completion_tokens_details"]["reasoning_tokens"], 2);
    }

    #[test]
    fn a_gathered_answer_is_bounded() {
        let mut g = GeminiToChat::new(false, false);
        let piece = "x".repeat(1 << 20);
        for _ in 0..9 {
            g.event(json!({"candidates": [{"content": {"parts": [{"text": piece}]}}]}).to_string().as_bytes());
        }
        g.event(json!({"candidates": [{"content": {"parts": [{"text": "y"}]}, "finishReason": "STOP"}]}).to_string().as_bytes());
        let out: Value = serde_json::from_slice(&g.end()).unwrap();
        assert!(out["error"]["message"].as_str().unwrap().contains("larger than"), "{out}");
    }

    #[test]
    fn limits_and_cut_streams() {
        let mut g = GeminiToChat::new(true, false);
        g.event(json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}]}).to_string().as_bytes());
        let tail = String::from_utf8(g.end()).unwrap();
        assert!(tail.contains("\"finish_reason\":\"length\"") && tail.ends_with("data: [DONE]\n\n"), "{tail}");
        let mut cut = GeminiToChat::new(true, false);
        cut.event(json!({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}).to_string().as_bytes());
        assert!(String::from_utf8(cut.end()).unwrap().contains("ended before the answer was complete"));
    }
}
