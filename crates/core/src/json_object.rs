//! A JSON object's top-level members, found in one validating pass over its bytes, and the
//! object written again with some members replaced.
//!
//! An LLM request is a small object around a large prompt: the gateway reads a few top-level
//! fields (`model`, `stream`) and replaces one or two, but must still refuse a body that is not
//! JSON. serde_json validates a skipped string eight bytes at a time (~46 µs for a 256 KiB
//! prompt); here a string is scanned 64 bytes a step with vector compares that find its quotes,
//! escapes and control characters at once, a string with multi-byte characters is checked as
//! UTF-8 once, whole (see `scan`), and values are never built. What is accepted is
//! what `serde_json::from_slice` accepts for a map of raw values (the `json_object` fuzz
//! target compares the two), including its map semantics: a repeated key's last value wins, in
//! the first one's place.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;

mod scan;
#[cfg(test)]
mod tests;

use scan::plain_run;
pub use scan::write_json_string;

/// Why a text is not a JSON object, and where (1-based, as serde_json reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// What was wrong.
    pub what: &'static str,
    /// Line of the offending byte.
    pub line: usize,
    /// Column of the offending byte.
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.what, self.line, self.column)
    }
}

impl std::error::Error for JsonError {}

/// One top-level member: its key (unescaped) and where its key and value lie in the text.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// The key, unescaped (borrowed from the text when it has no escapes).
    pub key: Cow<'a, str>,
    /// The key as written, quotes included.
    key_span: Range<usize>,
    /// The value as written.
    value_span: Range<usize>,
}

/// A JSON object's top-level members, in order, borrowed from the validated text.
#[derive(Debug, Clone)]
pub struct JsonObject<'a> {
    text: &'a [u8],
    members: Vec<Member<'a>>,
    /// Where the closing `}` is.
    close: usize,
}

impl<'a> JsonObject<'a> {
    /// Validates `text` as one JSON object (whitespace around it allowed) and lists its members.
    pub fn parse(text: &'a [u8]) -> Result<Self, JsonError> {
        let mut scan = Scanner { text, at: 0, stack: Vec::new() };
        let (members, close) = scan.object().map_err(|what| scan.error(what))?;
        Ok(JsonObject { text, members, close })
    }

    /// The value of `key` as written (the last one when the key repeats).
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.members.iter().rev().find(|m| m.key == key).map(|m| &self.text[m.value_span.clone()])
    }

    /// The members as written, repeats included.
    pub fn members(&self) -> &[Member<'a>] {
        &self.members
    }

    /// The object written compactly (no whitespace between members) with each `(key, value)`
    /// of `replace` (a JSON value's text) in place of that key's value, or added at the end, in
    /// order, when the object has no such key. A repeated key is written once: in its first
    /// place, with its last value. Keys and untouched values are copied as written.
    pub fn rewrite(&self, replace: &[(&str, &[u8])]) -> Vec<u8> {
        let extra: usize = replace.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(self.text.len() + extra);
        out.push(b'{');
        let repeats = self.has_repeated_keys();
        for (i, m) in self.members.iter().enumerate() {
            if repeats && self.members[..i].iter().any(|e| e.key == m.key) {
                continue;
            }
            let value = match replace.iter().find(|(k, _)| *k == m.key) {
                Some((_, v)) => *v,
                None if repeats => self.get(&m.key).unwrap_or_default(),
                None => &self.text[m.value_span.clone()],
            };
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(&self.text[m.key_span.clone()]);
            out.push(b':');
            out.extend_from_slice(value);
        }
        for (key, value) in replace.iter().filter(|(k, _)| !self.members.iter().any(|m| m.key == *k)) {
            if out.len() > 1 {
                out.push(b',');
            }
            // A key given by the gateway is a plain name; written through serde_json anyway.
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
        out
    }

    /// The object as [`Self::rewrite`] would make it, but as pieces of `body` (the bytes this
    /// object was parsed from) around the new values: each stretch of at least `lend_min`
    /// bytes is an uncopied slice of `body`; the rest (the new values, the short stretches
    /// between them) is copied into small pieces. Whitespace between members stays as
    /// written. `None` when a key repeats (use [`Self::rewrite`]). For a large body with a
    /// model name replaced, this is the difference between copying the prompt and not.
    pub fn rewrite_parts(&self, body: &Bytes, replace: &[(&str, &[u8])], lend_min: usize) -> Option<Vec<Bytes>> {
        // The same bytes, not equal ones: comparing a prompt with itself costs a pass over it.
        let same = std::ptr::eq(body.as_ptr(), self.text.as_ptr()) && body.len() == self.text.len();
        if !same || self.has_repeated_keys() {
            return None;
        }
        // (where, what): a replaced value's span, or an insertion before the closing brace.
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
        let mut added = Vec::new();
        for (key, value) in replace {
            match self.members.iter().find(|m| m.key == *key) {
                Some(m) => edits.push((m.value_span.clone(), value.to_vec())),
                None => {
                    if !self.members.is_empty() || !added.is_empty() {
                        added.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut added, key);
                    added.push(b':');
                    added.extend_from_slice(value);
                }
            }
        }
        if !added.is_empty() {
            edits.push((self.close..self.close, added));
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut parts = Vec::new();
        let mut small = Vec::new();
        let mut at = 0;
        let keep = |range: Range<usize>, small: &mut Vec<u8>, parts: &mut Vec<Bytes>| {
            if range.len() >= lend_min {
                if !small.is_empty() {
                    parts.push(Bytes::from(std::mem::take(small)));
                }
                parts.push(body.slice(range));
            } else {
                small.extend_from_slice(&body[range]);
            }
        };
        for (range, value) in edits {
            keep(at..range.start, &mut small, &mut parts);
            small.extend_from_slice(&value);
            at = range.end;
        }
        keep(at..body.len(), &mut small, &mut parts);
        if !small.is_empty() {
            parts.push(Bytes::from(small));
        }
        Some(parts)
    }

    /// Whether any key appears twice (rare; quadratic only for small objects).
    fn has_repeated_keys(&self) -> bool {
        let n = self.members.len();
        if n <= 16 {
            return (1..n).any(|i| self.members[..i].iter().any(|e| e.key == self.members[i].key));
        }
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(n, foldhash::quality::RandomState::default());
        !self.members.iter().all(|m| seen.insert(&*m.key))
    }
}

/// A string whose closing quote comes within this many bytes, with nothing but plain ASCII
/// before it, is read a byte at a time (see `Scanner::string`).
const SHORT_STRING: usize = 24;

/// The validating pass: `at` is the next unread byte; `stack` holds the open arrays and
/// objects below the top level (`[` or `{`), so nesting costs a byte per level, not a frame.
struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
    stack: Vec<u8>,
}

impl<'a> Scanner<'a> {
    /// The error for the byte at `at` (or the end), with serde_json's line and column.
    fn error(&self, what: &'static str) -> JsonError {
        let upto = &self.text[..self.at.min(self.text.len())];
        let line = 1 + memchr::memchr_iter(b'\n', upto).count();
        let column = upto.len() - memchr::memrchr(b'\n', upto).map_or(0, |p| p + 1);
        JsonError { what, line, column: column + 1 }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// The whole text: one object, its members, then only whitespace.
    fn object(&mut self) -> Result<(Vec<Member<'a>>, usize), &'static str> {
        match self.peek() {
            Some(b'{') => self.at += 1,
            Some(_) => return Err("expected a JSON object"),
            None => return Err("EOF while parsing a value"),
        }
        let mut members = Vec::new();
        let close;
        if self.peek() == Some(b'}') {
            close = self.at;
            self.at += 1;
        } else {
            loop {
                members.push(self.member()?);
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        close = self.at;
                        self.at += 1;
                        break;
                    }
                    Some(_) => return Err("expected `,` or `}`"),
                    None => return Err("EOF while parsing an object"),
                }
            }
        }
        if self.peek().is_some() {
            return Err("trailing characters");
        }
        Ok((members, close))
    }

    /// `"key": value` at the top level.
    fn member(&mut self) -> Result<Member<'a>, &'static str> {
        match self.peek() {
            Some(b'"') => {}
            Some(_) => return Err("key must be a string"),
            None => return Err("EOF while parsing an object"),
        }
        let start = self.at;
        self.at += 1;
        let escaped = self.string()?;
        let key_span = start..self.at;
        let key = if escaped {
            // serde_json decodes a key strictly (a lone surrogate is an error), as here.
            let decoded: String = serde_json::from_slice(&self.text[key_span.clone()]).map_err(|_| "invalid escape in a key")?;
            Cow::Owned(decoded)
        } else {
            Cow::Borrowed(std::str::from_utf8(&self.text[start + 1..self.at - 1]).map_err(|_| "invalid unicode code point")?)
        };
        match self.peek() {
            Some(b':') => self.at += 1,
            Some(_) => return Err("expected `:`"),
            None => return Err("EOF while parsing an object"),
        }
        if self.peek().is_none() {
            return Err("EOF while parsing a value");
        }
        let value_start = self.at;
        self.value()?;
        Ok(Member { key, key_span, value_span: value_start..self.at })
    }

    /// One value of any depth, validated without recursion (as serde_json skips a raw value).
    fn value(&mut self) -> Result<(), &'static str> {
        let base = self.stack.len();
        loop {
            // A value starts here.
            let Some(b) = self.peek() else { return Err("EOF while parsing a value") };
            match b {
                b'"' => {
                    self.at += 1;
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'[' | b'{' => {
                    self.at += 1;
                    let close = if b == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.at += 1;
                    } else {
                        self.stack.push(b);
                        if b == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                _ => return Err("expected value"),
            }
            // A value ended: close what ends with it, or go on to the next element.
            loop {
                if self.stack.len() == base {
                    return Ok(());
                }
                let open = self.stack[self.stack.len() - 1];
                match (self.peek(), open) {
                    (Some(b','), _) => {
                        self.at += 1;
                        if open == b'{' {
                            self.key()?;
                        }
                        break;
                    }
                    (Some(b']'), b'[') | (Some(b'}'), b'{') => {
                        self.at += 1;
                        self.stack.pop();
                    }
                    (Some(_), b'[') => return Err("expected `,` or `]`"),
                    (Some(_), _) => return Err("expected `,` or `}`"),
                    (None, b'[') => return Err("EOF while parsing a list"),
                    (None, _) => return Err("EOF while parsing an object"),
                }
            }
        }
    }

    /// A nested object's `"key":`.
    fn key(&mut self) -> Result<(), &'static str> {
        match self.peek() {
            Some(b'"') => self.at += 1,
            Some(_) => return Err("key must be a string"),
            None => return Err("EOF while parsing an object"),
        }
        self.string()?;
        match self.peek() {
            Some(b':') => {
                self.at += 1;
                Ok(())
            }
            Some(_) => Err("expected `:`"),
            None => Err("EOF while parsing an object"),
        }
    }

    /// The rest of a string after its opening quote, through the closing one; whether it had
    /// escapes. Control characters are refused and other bytes must be UTF-8, as in serde_json.
    fn string(&mut self) -> Result<bool, &'static str> {
        let start = self.at;
        // Keys and most values outside a prompt are a few plain characters: looked at one by
        // one, they end before a vector step would have been set up (a chat request's body:
        // 2.6k → 2.0k instructions).
        let head = &self.text[start..self.text.len().min(start + SHORT_STRING)];
        if let Some(end) = head.iter().position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b)) {
            if head[end] == b'"' {
                self.at = start + end + 1;
                return Ok(false);
            }
        }
        let (mut escaped, mut non_ascii) = (false, false);
        loop {
            let rest = &self.text[self.at..];
            // Most of a prompt is printable text and one-character escapes: one pass goes over
            // them and stops where the rest needs a closer look.
            let run = plain_run(rest);
            escaped |= run.escaped;
            non_ascii |= run.non_ascii;
            match rest.get(run.len) {
                None => {
                    self.at = self.text.len();
                    return Err("EOF while parsing a string");
                }
                Some(b'"') => {
                    // Multi-byte characters are checked once for the whole string: an escape
                    // is ASCII, so a character it splits is invalid either way, as serde_json
                    // finds checking the pieces between escapes. simdutf8: std's check takes
                    // ~10 instructions a byte of Chinese text.
                    let end = self.at + run.len;
                    if non_ascii {
                        if let Err(e) = simdutf8::compat::from_utf8(&self.text[start..end]) {
                            self.at = start + e.valid_up_to();
                            return Err("invalid unicode code point");
                        }
                    }
                    self.at = end + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    self.at += run.len + 1;
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => {
                    self.at += run.len;
                    return Err("control character (\\u0000-\\u001F) found while parsing a string");
                }
            }
        }
    }

    /// What follows a backslash (serde_json skips `\uXXXX` without checking surrogates).
    fn escape(&mut self) -> Result<(), &'static str> {
        let Some(&b) = self.text.get(self.at) else { return Err("EOF while parsing a string") };
        self.at += 1;
        match b {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => {
                for _ in 0..4 {
                    match self.text.get(self.at) {
                        Some(h) if h.is_ascii_hexdigit() => self.at += 1,
                        Some(_) => return Err("invalid escape"),
                        None => return Err("EOF while parsing a string"),
                    }
                }
                Ok(())
            }
            _ => Err("invalid escape"),
        }
    }

    /// A number in JSON's grammar (its value is not needed).
    fn number(&mut self) -> Result<(), &'static str> {
        if self.text[self.at] == b'-' {
            self.at += 1;
        }
        match self.text.get(self.at) {
            Some(b'0') => {
                self.at += 1;
                if matches!(self.text.get(self.at), Some(b'0'..=b'9')) {
                    return Err("invalid number");
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err("invalid number"),
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !matches!(self.text.get(self.at), Some(b'0'..=b'9')) {
                return Err("invalid number");
            }
            self.digits();
        }
        if matches!(self.text.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.text.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.text.get(self.at), Some(b'0'..=b'9')) {
                return Err("invalid number");
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.text.get(self.at), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self, word: &'static [u8]) -> Result<(), &'static str> {
        for &w in word {
            match self.text.get(self.at) {
                Some(&b) if b == w => self.at += 1,
                Some(_) => return Err("expected ident"),
                None => return Err("EOF while parsing a value"),
            }
        }
        Ok(())
    }
}
