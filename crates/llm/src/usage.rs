//! Reading usage and the answering model from OpenAI responses, whole (JSON) or
//! streamed (SSE), without holding the stream back.

use serde::Deserialize;

use tollgate_core::llm::Usage;

/// The parts of a response or stream chunk the gateway records.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseView {
    /// Model that answered.
    pub model: Option<String>,
    /// Usage, if in this object.
    pub usage: Option<UsageView>,
    /// Choices; an empty list plus usage marks the final usage-only stream chunk.
    pub choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// The text of each choice: `message.content` (whole responses) or `delta.content` (chunks).
#[derive(Debug, Default, Deserialize)]
pub struct ChoicesView {
    #[serde(default)]
    choices: Vec<ChoiceView>,
}

#[derive(Debug, Default, Deserialize)]
struct ChoiceView {
    #[serde(default)]
    index: usize,
    message: Option<ContentView>,
    delta: Option<ContentView>,
}

#[derive(Debug, Default, Deserialize)]
struct ContentView {
    content: Option<String>,
}

impl ChoicesView {
    /// Appends this document's text to `out`, one string per choice index.
    pub fn append_to(bytes: &[u8], out: &mut Vec<String>) {
        let view: ChoicesView = serde_json::from_slice(bytes).unwrap_or_default();
        for c in view.choices {
            let text = c.message.or(c.delta).and_then(|m| m.content);
            if let Some(text) = text {
                if out.len() <= c.index {
                    out.resize(c.index + 1, String::new());
                }
                out[c.index].push_str(&text);
            }
        }
    }
}

/// OpenAI's usage object.
#[derive(Debug, Default, Deserialize)]
pub struct UsageView {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
    /// Written to the cache (Anthropic's and Bedrock's cache writes, as translated).
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl UsageView {
    /// Normalised usage.
    pub fn to_usage(&self) -> Usage {
        let output = self.completion_tokens.unwrap_or(0);
        // A rerank (Jina, vLLM) reports only `total_tokens`: all of it is input.
        let input = self.prompt_tokens.unwrap_or_else(|| if self.completion_tokens.is_none() { self.total_tokens.unwrap_or(0) } else { 0 });
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: self.total_tokens.unwrap_or(input + output),
            cached_input_tokens: self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens),
            cache_creation_input_tokens: self.prompt_tokens_details.as_ref().and_then(|d| d.cache_write_tokens),
            reasoning_tokens: self.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens),
        }
    }
}

impl ResponseView {
    /// Parses a JSON object; anything unparsable yields an empty view.
    pub fn parse(bytes: &[u8]) -> ResponseView {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// A chunk that only carries usage (what `include_usage` adds at the end of a stream).
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(|c| c.is_empty())
    }
}

/// Whether a JSON document carries a non-null `usage` object: a cheap byte scan so that
/// stream chunks without usage (all but the last, normally) are not parsed at all.
pub fn has_usage_object(data: &[u8]) -> bool {
    const KEY: &[u8] = b"\"usage\"";
    let mut rest = data;
    while let Some(i) = rest.windows(KEY.len()).position(|w| w == KEY) {
        let after = &rest[i + KEY.len()..];
        let value = after.iter().find(|b| !(b.is_ascii_whitespace() || **b == b':'));
        if value == Some(&b'{') {
            return true;
        }
        rest = after;
    }
    false
}

/// Largest SSE event held back while waiting for its end.
pub const MAX_EVENT: usize = 1024 * 1024;

/// Splits an SSE byte stream into complete events, keeping the incomplete tail.
#[derive(Debug, Default, Clone)]
pub struct SseSplitter {
    pending: Vec<u8>,
}

impl SseSplitter {
    /// Feeds bytes; returns each complete event (terminator included). An unterminated event
    /// larger than [`MAX_EVENT`] is returned as it is, so a misbehaving upstream cannot make
    /// the gateway buffer without bound.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(len) = event_end(&self.pending[start..]) {
            events.push(self.pending[start..start + len].to_vec());
            start += len;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_EVENT {
            events.push(std::mem::take(&mut self.pending));
        }
        events
    }

    /// The bytes of an unterminated last event.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Bytes held for an incomplete event.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// Index just past the first blank-line terminator (`\n\n` or `\r\n\r\n`).
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// The joined `data:` payload of one event, if any.
pub fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let d = data.get_or_insert_with(Vec::new);
            if !d.is_empty() {
                d.push(b'\n');
            }
            d.extend_from_slice(rest);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks() {
        let mut s = SseSplitter::default();
        assert!(s.push(b"data: {\"a\"").is_empty());
        let ev = s.push(b":1}\n\ndata: [DONE]\n\n");
        assert_eq!(ev.len(), 2);
        assert_eq!(event_data(&ev[0]).unwrap(), b"{\"a\":1}");
        assert_eq!(event_data(&ev[1]).unwrap(), b"[DONE]");
        let ev = s.push(b"data: x\r\n\r\n");
        assert_eq!(event_data(&ev[0]).unwrap(), b"x");
    }

    #[test]
    fn oversize_event_is_not_held_forever() {
        let mut s = SseSplitter::default();
        assert!(s.push(&vec![b'a'; MAX_EVENT]).is_empty());
        let ev = s.push(b"bb");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].len(), MAX_EVENT + 2);
        assert_eq!(s.pending_len(), 0);
    }

    #[test]
    fn finds_usage_objects_only() {
        assert!(has_usage_object(br#"{"choices":[],"usage": {"prompt_tokens":1}}"#));
        assert!(!has_usage_object(br#"{"choices":[{"delta":{}}],"usage":null}"#));
        assert!(!has_usage_object(br#"{"choices":[{"delta":{"content":"usage"}}]}"#));
        assert!(has_usage_object(br#"{"x":"\"usage\" in text","usage":{"total_tokens":3}}"#));
    }

    #[test]
    fn reads_usage() {
        let v = ResponseView::parse(br#"{"model":"qwen-plus","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":0}}}"#);
        assert!(v.is_usage_only());
        let u = v.usage.unwrap().to_usage();
        assert_eq!((u.input_tokens, u.output_tokens, u.total_tokens, u.cached_input_tokens), (10, 20, 30, Some(0)));
        assert_eq!(v.model.as_deref(), Some("qwen-plus"));
    }
}
