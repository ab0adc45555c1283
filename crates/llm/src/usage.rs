//! Reading usage and the answering model from OpenAI responses, whole (JSON) or
//! streamed (SSE), without holding the stream back.

use serde::Deserialize;
use memchr::memmem;
use std::borrow::Cow;
use std::sync::LazyLock;

use crate::members::top_level;
use tollgate_core::llm::Usage;

/// The parts of a response or stream chunk the gateway records.
#[derive(Debug, Default)]
pub struct ResponseView {
    /// Model that answered.
    pub model: Option<String>,
    /// Usage, if in this object.
    pub usage: Option<UsageView>,
    /// Whether `choices` is an empty list (`None`: no list); an empty list plus usage marks
    /// the final usage-only stream chunk.
    pub choices_empty: Option<bool>,
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
        view.append(out);
    }

    fn append(self, out: &mut Vec<String>) {
        for c in self.choices {
            // The index comes from the upstream: one far out must not size the list.
            if c.index >= MAX_CHOICES {
                continue;
            }
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

/// Choices whose text is kept: OpenAI's `n` is at most 128.
const MAX_CHOICES: usize = 128;

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
    /// Reads a JSON object's `model`, `usage` and whether its `choices` are empty; anything
    /// not shaped as a JSON object yields an empty view. The members are found by stepping
    /// over the rest ([`top_level`]) and only `model` and `usage` are parsed (issue 14: serde
    /// read a whole completion, keys and text, for these two). A member of an unexpected type
    /// is left out, the others still read.
    pub fn parse(bytes: &[u8]) -> ResponseView {
        match top_level(bytes, ["model", "usage", "choices"]) {
            Some([model, usage, choices]) => ResponseView::of(model, usage, choices),
            None => ResponseView::default(),
        }
    }

    fn of(model: Option<&[u8]>, usage: Option<&[u8]>, choices: Option<&[u8]>) -> ResponseView {
        ResponseView {
            model: model.and_then(|v| serde_json::from_slice::<Option<String>>(v).ok().flatten()),
            usage: usage.and_then(|v| serde_json::from_slice::<Option<UsageView>>(v).ok().flatten()),
            choices_empty: choices.and_then(array_is_empty),
        }
    }

    /// [`Self::parse`] and [`ChoicesView::append_to`] in one pass over the document; only
    /// the `choices` member is read for text. Choices the text reader cannot read (an unusual
    /// `content`) add no text, and never lose the usage.
    pub fn parse_with_text(bytes: &[u8], out: &mut Vec<String>) -> ResponseView {
        let Some([model, usage, choices]) = top_level(bytes, ["model", "usage", "choices"]) else {
            return ResponseView::default();
        };
        if let Some(Ok(Some(list))) = choices.map(serde_json::from_slice::<Option<Vec<ChoiceView>>>) {
            ChoicesView { choices: list }.append(out);
        }
        ResponseView::of(model, usage, choices)
    }

    /// A chunk that only carries usage (what `include_usage` adds at the end of a stream).
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices_empty == Some(true)
    }
}

/// The `model` string of a JSON object, its other members stepped over ([`top_level`]): the
/// first event of a stream names the model, and its choices need no parse for that.
pub fn model_of(bytes: &[u8]) -> Option<String> {
    let [model] = top_level(bytes, ["model"])?;
    serde_json::from_slice(model?).ok()
}

/// Whether a JSON value (as [`top_level`] found it: no whitespace around it) is an array, and
/// if so whether it is empty.
fn array_is_empty(value: &[u8]) -> Option<bool> {
    let rest = value.strip_prefix(b"[")?;
    Some(rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b']'))
}

/// Whether a JSON document carries a non-null `usage` object: a cheap byte scan so that
/// stream chunks without usage (all but the last, normally) are not parsed at all.
pub fn has_usage_object(data: &[u8]) -> bool {
    const KEY: &[u8] = b"\"usage\"";
    static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(KEY));
    // One `find` per occurrence: an iterator's set-up cost more than the search of a
    // one-chunk event (issue 14).
    let mut from = 0;
    while let Some(i) = FINDER.find(&data[from..]) {
        from += i + KEY.len();
        if data[from..].iter().find(|b| !(b.is_ascii_whitespace() || **b == b':')) == Some(&b'{') {
            return true;
        }
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
    /// Feeds bytes and calls `f` with each complete event (terminator included) and, at the
    /// `end`, whatever is left. Events whole within `bytes` are lent from it, not copied: only
    /// an event split across reads is held. An unterminated event larger than [`MAX_EVENT`] is
    /// given as it is, so a misbehaving upstream cannot make the gateway buffer without bound.
    pub fn each_event(&mut self, bytes: &[u8], end: bool, mut f: impl FnMut(&[u8])) {
        self.each_split(bytes, end, |event, _| f(event));
    }

    /// As [`Self::each_event`], with each event's [`event_data`] (found without searching the
    /// event again when it is one `data:` line: the splitter saw where that line ends).
    pub fn each_event_data(&mut self, bytes: &[u8], end: bool, mut f: impl FnMut(&[u8], Option<Cow<'_, [u8]>>)) {
        self.each_split(bytes, end, |event, first_newline| {
            let data = match first_newline {
                // The first line ends where the terminator (`\n\n`, `\n\r\n`) starts.
                Some(nl) if nl + 2 == event.len() || (nl + 3 == event.len() && event[nl + 1] == b'\r') => data_line(&event[..nl]).map(Cow::Borrowed),
                _ => event_data(event),
            };
            f(event, data)
        });
    }

    /// Calls `f` with each event and where its first line ends (`None` for an unterminated
    /// event given at the end or over [`MAX_EVENT`]).
    fn each_split(&mut self, bytes: &[u8], end: bool, mut f: impl FnMut(&[u8], Option<usize>)) {
        if self.pending.is_empty() {
            let used = split_events(bytes, &mut f);
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            self.pending.extend_from_slice(bytes);
            let used = split_events(&self.pending, &mut f);
            self.pending.drain(..used);
        }
        if self.pending.len() > MAX_EVENT || (end && !self.pending.is_empty()) {
            f(&std::mem::take(&mut self.pending), None);
        }
    }

    /// Feeds bytes; returns each complete event (terminator included), as [`Self::each_event`].
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        self.each_event(bytes, false, |e| events.push(e.to_vec()));
        events
    }

    /// Bytes held for an incomplete event.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// Calls `f` with each complete event in `buf` and where its first line ends; returns how many
/// bytes they took.
fn split_events(buf: &[u8], f: &mut impl FnMut(&[u8], Option<usize>)) -> usize {
    let mut start = 0;
    while let Some((len, first_newline)) = event_end(&buf[start..]) {
        f(&buf[start..start + len], Some(first_newline));
        start += len;
    }
    start
}

/// Index just past the first blank-line terminator (`\n\n` or `\r\n\r\n`), and the index of
/// the first `\n`.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    let mut first = None;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i) {
        let first = *first.get_or_insert(i);
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => return Some((i + 2, first)),
            (Some(b'\r'), Some(b'\n')) => return Some((i + 3, first)),
            _ => from = i + 1,
        }
    }
    None
}

/// The lines of `bytes` (split at `\n`, found a word at a time).
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())).map(move |end| {
        let line = &bytes[start.min(end)..end];
        start = end + 1;
        line
    })
}

/// The joined `data:` payload of one event, if any; lent from the event when it has one
/// `data:` line (the usual case), joined with newlines when it has several.
pub fn event_data(event: &[u8]) -> Option<Cow<'_, [u8]>> {
    // The usual event is one `data:` line and its terminator: one search finds it.
    let first_end = memchr::memchr(b'\n', event).unwrap_or(event.len());
    if matches!(&event[first_end..], b"" | b"\n" | b"\n\n" | b"\n\r\n") {
        return data_line(&event[..first_end]).map(Cow::Borrowed);
    }
    let mut data: Option<Cow<'_, [u8]>> = None;
    for line in lines(event) {
        if let Some(rest) = data_line(line) {
            data = Some(match data {
                None => Cow::Borrowed(rest),
                Some(d) => {
                    let mut joined = d.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(rest);
                    Cow::Owned(joined)
                }
            });
        }
    }
    data
}

/// The value of one line (without its `\n`) when it is a `data:` field.
fn data_line(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"data:")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_of_reads_the_model_string_only() {
        assert_eq!(model_of(br#"{"id":"c","model":"gpt-4o","choices":[{"delta":{"content":"hi"}}]}"#).as_deref(), Some("gpt-4o"));
        assert_eq!(model_of(br#"{"model":"m\u00e9"}"#).as_deref(), Some("m\u{e9}"));
        assert_eq!(model_of(br#"{"model":5}"#), None);
        assert_eq!(model_of(br#"{"choices":[]}"#), None);
        assert_eq!(model_of(br#"{"model":"m","choices":[}"#), None, "not JSON");
    }

    #[test]
    fn event_data_reads_one_line_events_and_joins_several() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"data: {\"a\":1}\n\n", Some(b"{\"a\":1}")),
            (b"data:{\"a\":1}\r\n\r\n", Some(b"{\"a\":1}")),
            (b"data: tail without end", Some(b"tail without end")),
            (b"data: x\n", Some(b"x")),
            (b"data:  two spaces\n\n", Some(b" two spaces")),
            (b"event: ping\n\n", None),
            (b": comment\n\n", None),
            (b"event: delta\ndata: {}\n\n", Some(b"{}")),
            (b"data: a\ndata: b\n\n", Some(b"a\nb")),
            (b"data: a\r\nid: 7\r\ndata: b\r\n\r\n", Some(b"a\nb")),
            (b"datum: no\n\n", None),
        ];
        for (event, want) in cases {
            assert_eq!(event_data(event).as_deref(), *want, "{}", String::from_utf8_lossy(event));
        }
    }

    #[test]
    fn each_event_data_gives_what_event_data_reads_however_the_events_are_framed() {
        let stream: &[u8] = b"data: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\ndata: c\n\r\nevent: delta\ndata: {}\n\n\
data: x\ndata: y\n\n: comment\n\ndata: [DONE]\r\n\r\ndata: tail";
        // Every split of the stream into two reads, the tail given at the end.
        for cut in 0..=stream.len() {
            let mut splitter = SseSplitter::default();
            let mut seen = Vec::new();
            for (part, end) in [(&stream[..cut], false), (&stream[cut..], true)] {
                splitter.each_event_data(part, end, |event, data| {
                    assert_eq!(data.as_deref(), event_data(event).as_deref(), "cut {cut}: {}", String::from_utf8_lossy(event));
                    seen.push(data.map(|d| d.into_owned()));
                });
            }
            let want: Vec<Option<Vec<u8>>> = [Some(&b"{\"a\":1}"[..]), Some(b"{\"b\":2}"), Some(b"c"), Some(b"{}"), Some(b"x\ny"), None, Some(b"[DONE]"), Some(b"tail")]
                .iter()
                .map(|d| d.map(<[u8]>::to_vec))
                .collect();
            assert_eq!(seen, want, "cut {cut}");
        }
    }

    #[test]
    fn splits_events_across_chunks() {
        let mut s = SseSplitter::default();
        assert!(s.push(b"data: {\"a\"").is_empty());
        let ev = s.push(b":1}\n\ndata: [DONE]\n\n");
        assert_eq!(ev.len(), 2);
        assert_eq!(&*event_data(&ev[0]).unwrap(), &b"{\"a\":1}"[..]);
        assert_eq!(&*event_data(&ev[1]).unwrap(), &b"[DONE]"[..]);
        let ev = s.push(b"data: x\r\n\r\n");
        assert_eq!(&*event_data(&ev[0]).unwrap(), &b"x"[..]);
    }

    #[test]
    fn whole_events_are_lent_and_a_split_one_is_held() {
        let mut s = SseSplitter::default();
        let mut seen = Vec::new();
        s.each_event(b"data: a\n\ndata: b\r\n\r\ndata: c", false, |e| seen.push(e.to_vec()));
        assert_eq!(seen, vec![b"data: a\n\n".to_vec(), b"data: b\r\n\r\n".to_vec()]);
        assert_eq!(s.pending_len(), 7);
        seen.clear();
        s.each_event(b"\n", false, |e| seen.push(e.to_vec()));
        assert!(seen.is_empty());
        s.each_event(b"\ndata: d", true, |e| seen.push(e.to_vec()));
        assert_eq!(seen, vec![b"data: c\n\n".to_vec(), b"data: d".to_vec()]);
        assert_eq!(s.pending_len(), 0);
    }

    #[test]
    fn data_lines_are_joined() {
        assert_eq!(&*event_data(b"event: x\ndata: a\ndata:b\r\n\n").unwrap(), b"a\nb");
        assert!(matches!(event_data(b"data: one\n\n").unwrap(), Cow::Borrowed(b"one")));
        assert!(event_data(b": keep-alive\n\n").is_none());
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
    fn one_pass_reads_what_two_do() {
        let docs: [&[u8]; 6] = [
            br#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}},{"index":1,"message":{"content":"Yo"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            br#"{"model":"m","choices":[{"index":0,"delta":{"content":"He"}}]}"#,
            br#"{"choices":[],"usage":{"total_tokens":7}}"#,
            // Content the text reader does not take: usage must still be read.
            br#"{"model":"m","choices":[{"message":{"content":[{"type":"text","text":"x"}]}}],"usage":{"prompt_tokens":1}}"#,
            br#"{"model":"m","choices":null}"#,
            b"[DONE]",
        ];
        for doc in docs {
            let (mut one, mut two) = (Vec::new(), Vec::new());
            let a = ResponseView::parse_with_text(doc, &mut one);
            ChoicesView::append_to(doc, &mut two);
            let b = ResponseView::parse(doc);
            assert_eq!(one, two, "{}", String::from_utf8_lossy(doc));
            assert_eq!(a.model, b.model);
            assert_eq!(a.usage.map(|u| u.to_usage()), b.usage.map(|u| u.to_usage()));
            assert_eq!(a.choices_empty, b.choices_empty);
        }
    }

    #[test]
    fn reads_only_what_it_records() {
        // A model of another type is left out; the usage is still read.
        let v = ResponseView::parse(br#"{"model":7,"choices":[ ],"usage":{"total_tokens":4}}"#);
        assert_eq!(v.model, None);
        assert_eq!(v.usage.map(|u| u.to_usage().total_tokens), Some(4));
        assert_eq!(v.choices_empty, Some(true));
        let v = ResponseView::parse(br#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#);
        assert_eq!((v.choices_empty, v.usage.is_none(), v.is_usage_only()), (Some(false), true, false));
        // A choice index far out is not a list length.
        let mut text = Vec::new();
        let v = ResponseView::parse_with_text(br#"{"choices":[{"index":18446744073709551615,"message":{"content":"x"}},{"index":1,"message":{"content":"y"}}],"usage":{"total_tokens":1}}"#, &mut text);
        assert_eq!((text, v.usage.is_some()), (vec![String::new(), "y".to_string()], true));
        // Not JSON (a truncated answer): nothing recorded, nothing appended.
        let mut text = Vec::new();
        let v = ResponseView::parse_with_text(br#"{"model":"m","usage":{"total_tokens":4}"#, &mut text);
        assert!(v.model.is_none() && v.usage.is_none() && text.is_empty());
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
