//! A JSON object's top-level members, found in one validating pass over its bytes, and the
//! object written again with some members replaced.
//!
//! An LLM request is a small object around a large prompt: the gateway reads a few top-level
//! fields (`model`, `stream`) and replaces one or two, but must still refuse a body that is not
//! JSON. serde_json validates a skipped string eight bytes at a time (~46 µs for a 256 KiB
//! prompt); here a string's extent is found with `memchr` and its bytes checked 64 at a time
//! in code the compiler vectorises (~11 µs), and values are never built. What is accepted is
//! what `serde_json::from_slice` accepts for a map of raw values (the `json_object` fuzz
//! target compares the two), including its map semantics: a repeated key's last value wins, in
//! the first one's place.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;

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

/// How far a string's content runs from its start as text and one-character escapes.
pub(crate) struct PlainRun {
    /// Bytes up to the stop: a quote, a control character, or a backslash not stepped over
    /// (`\\u`, a bad escape); the whole input when none.
    len: usize,
    /// One-character escapes (`\\n`, `\\"`, ...) were stepped over.
    escaped: bool,
    /// Some byte was not ASCII: the string must be checked as UTF-8.
    non_ascii: bool,
}

/// Finds the [`PlainRun`] at the start of `s`. On a large prompt this pass is most of the
/// request's cost, and prose stops it every few words (quotes, newlines), so each 64-byte step
/// takes a mask of its stops from vector compares and steps from stop to stop within it: AVX2
/// where the CPU has it (checked at run time), SSE2 (every x86-64 CPU) otherwise, a byte at a
/// time on other CPUs.
fn plain_run(s: &[u8]) -> PlainRun {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to have AVX2, all the function needs.
            return unsafe { simd::plain_run_avx2(s) };
        }
        // SAFETY: SSE2 is part of x86-64.
        unsafe { simd::plain_run_sse2(s) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    plain_run_scalar(s)
}

/// [`plain_run`] a byte at a time: other CPUs, and the reference in tests.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn plain_run_scalar(s: &[u8]) -> PlainRun {
    let mut high = false;
    let mut run = plain_run_with(s, |block| step_scalar(block, &mut high));
    run.non_ascii |= high;
    run
}

/// Whether a byte stops a plain run: a quote, a backslash or a control character.
fn stops_plain_run(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The stops among 64 bytes as bits (bit `i` for byte `i`), a byte at a time; `non_ascii` is
/// set when a byte is not ASCII.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn step_scalar(block: &[u8; 64], non_ascii: &mut bool) -> u64 {
    *non_ascii |= !block.is_ascii();
    block.iter().enumerate().fold(0, |mask, (i, &b)| mask | u64::from(stops_plain_run(b)) << i)
}

/// [`plain_run`] with `step` reading each 64 bytes (its stops as bits; it notes bytes that are
/// not ASCII in its own state, read by the caller after the run); inlined into each
/// CPU-specific version so their steps are computed with its instructions.
#[inline(always)]
fn plain_run_with(s: &[u8], mut step: impl FnMut(&[u8; 64]) -> u64) -> PlainRun {
    let simple_escape = |b: Option<&u8>| matches!(b, Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't'));
    let (mut escaped, mut non_ascii) = (false, false);
    let mut at = 0;
    while let Some(block) = s.get(at..at + 64) {
        let block_start = at;
        let mut mask = step(block.try_into().expect("64 bytes"));
        at = block_start + 64;
        while mask != 0 {
            let i = block_start + mask.trailing_zeros() as usize;
            if s[i] != b'\\' || !simple_escape(s.get(i + 1)) {
                return PlainRun { len: i, escaped, non_ascii };
            }
            escaped = true;
            // Past the escape: the escaped character is content whatever it is (`\\"`).
            let next = i + 2;
            if next >= block_start + 64 {
                at = next;
                break;
            }
            mask &= !0u64 << (next - block_start);
        }
    }
    while let Some(&b) = s.get(at) {
        if b == b'\\' && simple_escape(s.get(at + 1)) {
            escaped = true;
            at += 2;
        } else if stops_plain_run(b) {
            return PlainRun { len: at, escaped, non_ascii };
        } else {
            non_ascii |= !b.is_ascii();
            at += 1;
        }
    }
    PlainRun { len: s.len(), escaped, non_ascii }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{plain_run_with, PlainRun};
    use std::arch::x86_64::*;

    /// Two 32-byte compares a step. Bytes that are not ASCII are gathered in one register
    /// (their top bits OR-ed) and looked at once, after the run: a byte past the run's end in
    /// its last step may set it, which only asks for a UTF-8 check that finds nothing wrong.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn plain_run_avx2(s: &[u8]) -> PlainRun {
        let mut high = _mm256_setzero_si256();
        let mut run = plain_run_with(s, |block| {
            let (quote, backslash, space) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\\' as i8), _mm256_set1_epi8(0x20));
            // SAFETY: offsets 0 and 32, so each unaligned load reads within the 64 bytes.
            let (lo, hi) = unsafe { (_mm256_loadu_si256(block.as_ptr().cast()), _mm256_loadu_si256(block.as_ptr().add(32).cast())) };
            // A lane's top bit says whether it stops the run; only top bits are read. Below
            // 0x20 signed but not negative: a control character, not part of a multi-byte one.
            let stops = |v: __m256i| {
                let special = _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash));
                _mm256_or_si256(special, _mm256_andnot_si256(v, _mm256_cmpgt_epi8(space, v)))
            };
            high = _mm256_or_si256(high, _mm256_or_si256(lo, hi));
            u64::from(_mm256_movemask_epi8(stops(lo)) as u32) | u64::from(_mm256_movemask_epi8(stops(hi)) as u32) << 32
        });
        run.non_ascii |= _mm256_movemask_epi8(high) != 0;
        run
    }

    /// Four 16-byte compares a step.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn plain_run_sse2(s: &[u8]) -> PlainRun {
        let mut high = _mm_setzero_si128();
        let mut run = plain_run_with(s, |block| {
            let (quote, backslash, space) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x20));
            let mut mask = 0u64;
            for quarter in 0..4 {
                // SAFETY: offsets 0, 16, 32 and 48, so each unaligned load reads within the 64 bytes.
                let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * quarter).cast()) };
                let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
                let stops = _mm_or_si128(special, _mm_andnot_si128(v, _mm_cmpgt_epi8(space, v)));
                mask |= u64::from(_mm_movemask_epi8(stops) as u16) << (16 * quarter);
                high = _mm_or_si128(high, v);
            }
            mask
        });
        run.non_ascii |= _mm_movemask_epi8(high) != 0;
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Serde<'a> = indexmap::IndexMap<String, &'a serde_json::value::RawValue>;

    /// The same verdict as serde_json, and on success the same members (last value wins).
    fn same_as_serde(text: &str) {
        let ours = JsonObject::parse(text.as_bytes());
        let theirs: Result<Serde, _> = serde_json::from_str(text);
        match (&ours, &theirs) {
            (Ok(o), Ok(t)) => {
                let keys: Vec<&str> = t.keys().map(String::as_str).collect();
                let mut ours_keys: Vec<&str> = Vec::new();
                for m in o.members() {
                    if !ours_keys.contains(&&*m.key) {
                        ours_keys.push(&m.key);
                    }
                }
                assert_eq!(ours_keys, keys, "{text}");
                for (k, v) in t {
                    assert_eq!(o.get(k), Some(v.get().as_bytes()), "{text}");
                }
            }
            (Err(_), Err(_)) => {}
            _ => panic!("{text:?}: ours {:?}, serde_json {:?}", ours.as_ref().map(|_| ()), theirs.as_ref().map(|_| ())),
        }
    }

    #[test]
    fn accepts_and_refuses_what_serde_json_does() {
        let cases = [
            r#"{}"#, r#" { } "#, r#"{"a":1}"#, r#"{"a":[1,2,{"b":[true,false,null]}],"c":"d"}"#,
            r#"{"a":-0.5e+10,"b":0,"c":1E3,"d":-1}"#, r#"{"a":01}"#, r#"{"a":1.}"#, r#"{"a":.5}"#, r#"{"a":1e}"#,
            r#"{"a":-}"#, r#"{"a":+1}"#, r#"{"a":"\u00e9\n\"\\\/\b\f\r\t"}"#, r#"{"a":"\x"}"#, r#"{"a":"\u12G4"}"#,
            r#"{"a":"\ud800"}"#, r#"{"\ud800":1}"#, r#"{"\u0061":1,"a":2}"#, r#"{"a":1,"b":2,"a":3}"#,
            r#"{"a":1,}"#, r#"{,"a":1}"#, r#"{"a" 1}"#, r#"{"a":1 "b":2}"#, r#"{"a":[1,]}"#, r#"{"a":[,1]}"#,
            r#"{"a":{"b":1,}}"#, r#"{"a":{"b"}}"#, r#"{"a":{1:2}}"#, r#"{"a":tru}"#, r#"{"a":nul}"#, r#"{"a":truex}"#,
            r#"{"a":1}x"#, r#"{"a":1}{}"#, r#"[1]"#, r#""a""#, r#"1"#, r#""#, r#"{"#, r#"{"a""#, r#"{"a":"#,
            r#"{"a":"b"#, r#"{"a":[1"#, r#"{"a":{"b":1"#, r#"{"a":"é日本"}"#, "{\"a\":\"\u{1}\"}", "{\"a\":\"\t\"}",
            "{\"a\":\"\u{7f}\"}", "{\"a\"\n:\r\t1\n}", r#"{"a":[[[[[[[]]]]]]]}"#, r#"{"a":[[[[[[[]]]]]]}"#,
            r#"{"a":{"b":{"c":{}}}}"#, r#"{"a":{"b":{"c":{}}}"#, r#"{"a":[{}]}"#, r#"{"a":[{"b":[]},{"c":{}}]}"#,
            r#"{"a":[}"#, r#"{"a":{]}"#, r#"{"":""}"#,
        ];
        for case in cases {
            same_as_serde(case);
        }
        // Invalid UTF-8 in a string and in a key.
        for bytes in [&b"{\"a\":\"\xff\"}"[..], b"{\"\xc3\":1}", b"{\"a\":\"\xe6\x97\"}"] {
            assert!(JsonObject::parse(bytes).is_err());
            assert!(serde_json::from_slice::<Serde>(bytes).is_err());
        }
    }

    #[test]
    fn long_strings_are_checked_on_both_sides_of_every_step() {
        // A bad byte at each offset of a run longer than one 64-byte step is found.
        for len in [63, 64, 65, 130] {
            for at in 0..len {
                let mut s = vec![b'x'; len];
                s[at] = 0x01;
                let text = [&b"{\"a\":\""[..], &s, b"\"}"].concat();
                let err = JsonObject::parse(&text).unwrap_err();
                assert_eq!(err.column, 7 + at, "len {len} at {at}");
                s[at] = b'x';
                let ok = [&b"{\"a\":\""[..], &s, b"\"}"].concat();
                assert!(JsonObject::parse(&ok).is_ok());
            }
        }
    }

    #[test]
    fn errors_say_where() {
        let err = JsonObject::parse(b"{\"a\":1,\n  \"b\":x}").unwrap_err();
        assert_eq!((err.what, err.line, err.column), ("expected value", 2, 7));
        assert_eq!(JsonObject::parse(b"[]").unwrap_err().to_string(), "expected a JSON object at line 1 column 1");
    }

    #[test]
    fn rewrite_replaces_in_place_adds_at_the_end_and_collapses_repeats() {
        let o = JsonObject::parse(br#" { "model" : "a", "messages": [ 1 ], "stream": true } "#).unwrap();
        let out = o.rewrite(&[("model", br#""b""#), ("stream_options", br#"{"include_usage":true}"#)]);
        assert_eq!(out, br#"{"model":"b","messages":[ 1 ],"stream":true,"stream_options":{"include_usage":true}}"#);
        let o = JsonObject::parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(o.rewrite(&[]), br#"{"a":3,"b":2}"#);
        assert_eq!(o.rewrite(&[("a", b"9")]), br#"{"a":9,"b":2}"#);
        assert_eq!(o.get("a"), Some(&b"3"[..]));
        let o = JsonObject::parse(b"{}").unwrap();
        assert_eq!(o.rewrite(&[("model", br#""m""#)]), br#"{"model":"m"}"#);
        // An escaped key is the same key.
        let o = JsonObject::parse(br#"{"mod\u0065l":"a"}"#).unwrap();
        assert_eq!(o.get("model"), Some(&br#""a""#[..]));
        assert_eq!(o.rewrite(&[("model", br#""b""#)]), br#"{"mod\u0065l":"b"}"#);
    }

    #[test]
    fn rewrite_parts_lend_the_long_stretches_and_read_back_as_the_rewrite() {
        let prompt = "p".repeat(1000);
        let text = format!(r#" {{"model": "a", "messages": [{{"content": "{prompt}"}}], "n": 1}} "#);
        let body = Bytes::from(text.clone());
        let o = JsonObject::parse(&body).unwrap();
        let replace: [(&str, &[u8]); 2] = [("model", br#""longer-name""#), ("stream_options", br#"{"include_usage":true}"#)];
        let parts = o.rewrite_parts(&body, &replace, 100).unwrap();
        // Three pieces: the head with the new model, the prompt lent, the tail with the addition.
        assert_eq!(parts.len(), 3);
        let lent = body.as_ptr_range();
        assert!(lent.contains(&parts[1].as_ptr()) && parts[1].len() > 1000);
        assert!(!lent.contains(&parts[0].as_ptr()) && !lent.contains(&parts[2].as_ptr()));
        let joined: serde_json::Value = serde_json::from_slice(&parts.concat()).unwrap();
        let rewritten: serde_json::Value = serde_json::from_slice(&o.rewrite(&replace)).unwrap();
        assert_eq!(joined, rewritten);
        assert_eq!(joined["model"], "longer-name");
        assert_eq!(joined["stream_options"]["include_usage"], true);
        // Nothing long enough to lend: one copied piece; a repeated key: no pieces.
        assert_eq!(o.rewrite_parts(&body, &replace, 10_000).unwrap().len(), 1);
        let dup = Bytes::from_static(br#"{"a":1,"a":2}"#);
        assert!(JsonObject::parse(&dup).unwrap().rewrite_parts(&dup, &[], 1).is_none());
        // Equal bytes held elsewhere are not the body the object was read from: no pieces.
        assert!(o.rewrite_parts(&Bytes::from(text.clone()), &replace, 100).is_none());
        // An empty object gets the added member without a comma.
        let empty = Bytes::from_static(b"{ }");
        let parts = JsonObject::parse(&empty).unwrap().rewrite_parts(&empty, &[("model", br#""m""#)], 1).unwrap();
        assert_eq!(parts.concat(), br#"{ "model":"m"}"#);
    }

    /// Every version of [`plain_run`] on `s`, as (length, escaped), each checked for its
    /// non-ASCII flag: set when the run has a byte that is not ASCII (and possibly when only
    /// bytes past the run's end are not), clear when `s` is all ASCII.
    fn plain_runs(s: &[u8]) -> Vec<(usize, bool)> {
        let mut all = vec![plain_run(s), plain_run_scalar(s)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of x86-64.
        all.push(unsafe { simd::plain_run_sse2(s) });
        for r in &all {
            assert!(r.non_ascii || s[..r.len].is_ascii(), "a multi-byte character missed in {s:?}");
            assert!(!r.non_ascii || !s.is_ascii(), "non-ASCII flagged in ASCII {s:?}");
        }
        all.into_iter().map(|r| (r.len, r.escaped)).collect()
    }

    /// The same, byte by byte, as the JSON grammar says.
    fn plain_run_by_the_book(s: &[u8]) -> (usize, bool) {
        let (mut at, mut escaped) = (0, false);
        while at < s.len() {
            match (s[at], s.get(at + 1)) {
                (b'\\', Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')) => {
                    escaped = true;
                    at += 2;
                }
                (b, _) if b == b'"' || b == b'\\' || b < 0x20 => break,
                _ => at += 1,
            }
        }
        (at.min(s.len()), escaped)
    }

    #[test]
    fn plain_runs_stop_where_the_grammar_says_wherever_stops_fall_in_a_step() {
        for len in [0, 1, 31, 32, 63, 64, 65, 127, 128, 200] {
            let plain = vec![b'a'; len];
            assert!(plain_runs(&plain).iter().all(|&r| r == (len, false)));
            for stop in [b'"', b'\\', b'\n', 0x00, 0x1f, 0x80, 0xff] {
                for at in [0, len / 2, len.saturating_sub(1)] {
                    let mut s = plain.clone();
                    s.resize(len.max(1), b'a');
                    let last = s.len() - 1;
                    s[at.min(last)] = stop;
                    let want = plain_run_by_the_book(&s);
                    assert!(plain_runs(&s).iter().all(|&r| r == want), "len {len}, {stop:#x} at {at}: {:?} vs {want:?}", plain_runs(&s));
                }
            }
        }
        // Escapes stepped over anywhere in a step, across its end, and at the very end;
        // multi-byte characters gone through.
        let pieces: [&[u8]; 9] = [br#"\n"#, br#"\""#, br#"\\"#, br#"\u0041"#, br#"\x"#, "é".as_bytes(), "文字".as_bytes(), b"\t", b"\\"];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut s = Vec::new();
            while s.len() < 150 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if seed >> 61 == 0 {
                    s.extend_from_slice(pieces[(seed >> 32) as usize % pieces.len()]);
                } else {
                    s.extend(std::iter::repeat_n(b'w', (seed >> 40) as usize % 70));
                }
            }
            s.truncate((seed >> 20) as usize % 150);
            let want = plain_run_by_the_book(&s);
            assert!(plain_runs(&s).iter().all(|&r| r == want), "{:?}: {:?} vs {want:?}", String::from_utf8_lossy(&s), plain_runs(&s));
        }
        // Printable ASCII goes through, 0x7f included (JSON allows DEL in strings).
        assert_eq!(plain_runs(b" ~\x7f!\""), vec![(4, false); plain_runs(b"").len()]);
    }

    #[test]
    fn strings_with_multi_byte_characters_are_checked_as_utf8_whole() {
        let ok = |text: &[u8]| JsonObject::parse(text).is_ok();
        let long = "敏捷的棕色狐狸".repeat(40);
        assert!(ok(format!(r#"{{"content":"{long}\n{long}\"{long}"}}"#).as_bytes()));
        // A character cut by an escape, a stray continuation byte, a truncated one at the end,
        // an overlong encoding: refused wherever they fall in a step.
        for bad in [&b"\xe6\\n\x95\x8f"[..], b"\x95", b"\xe6\x95", b"\xc0\xaf"] {
            for pad in [0, 30, 63, 64, 100] {
                let mut text = format!(r#"{{"content":"{}"#, "a".repeat(pad)).into_bytes();
                text.extend_from_slice(bad);
                text.extend_from_slice(format!(r#"{}"}}"#, long).as_bytes());
                assert!(!ok(&text), "{bad:?} after {pad}");
            }
        }
        // A control character among multi-byte ones.
        assert!(!ok(format!("{{\"content\":\"{long}\u{1f}{long}\"}}").as_bytes()));
    }

    #[test]
    fn many_members_with_a_repeat_are_found() {
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k3\":\"last\"}");
        let o = JsonObject::parse(text.as_bytes()).unwrap();
        assert!(o.has_repeated_keys());
        let out: serde_json::Value = serde_json::from_slice(&o.rewrite(&[])).unwrap();
        assert_eq!(out["k3"], "last");
        assert_eq!(out.as_object().unwrap().len(), 40);
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let depth = 200_000;
        let text = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(JsonObject::parse(text.as_bytes()).is_ok());
    }
}
