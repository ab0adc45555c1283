//! A few top-level members of a JSON object, found by stepping over everything else.
//!
//! An upstream's answer is read for its `model` and `usage` (and `choices`, for the logged
//! text): a few hundred bytes the gateway does not otherwise need. Validating and parsing the
//! whole answer cost ~20 instructions a byte (serde_json or `JsonObject`), most of it on keys
//! and strings nobody reads; stepping over them costs a few (issue 14). Only the members
//! found are parsed, by serde_json, which validates them; the rest of the answer is the
//! client's to judge. A text that does not hold together as an object (unbalanced, cut short,
//! no `{`) yields nothing.

use memchr::memchr2;

/// The value (as written, no whitespace around it) of each of `keys` among the top-level
/// members of the JSON object `text`, the last one when a key repeats; `None` when `text`
/// is not shaped as an object or has more than whitespace after it. A key spelled with
/// escapes is compared unescaped, as serde_json reads it.
pub fn top_level<'a, const N: usize>(text: &'a [u8], keys: [&str; N]) -> Option<[Option<&'a [u8]>; N]> {
    let mut found = [None; N];
    let mut at = skip_ws(text, 0);
    if text.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return Some(found);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(text, at + 1)?;
        let raw = &text[at + 1..key_end - 1];
        let unescaped = if raw.contains(&b'\\') { serde_json::from_slice::<String>(&text[at..key_end]).ok() } else { None };
        let key = unescaped.as_deref().map_or(raw, str::as_bytes);
        at = skip_ws(text, key_end);
        if text.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_ws(text, at + 1);
        let end = value_end(text, start)?;
        if let Some(i) = keys.iter().position(|k| k.as_bytes() == key) {
            found[i] = Some(&text[start..end]);
        }
        at = skip_ws(text, end);
        match text.get(at) {
            Some(b',') => at = skip_ws(text, at + 1),
            Some(b'}') => return (skip_ws(text, at + 1) == text.len()).then_some(found),
            _ => return None,
        }
    }
}

fn skip_ws(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\n' | b'\t' | b'\r')) {
        at += 1;
    }
    at
}

/// Where the string whose contents start at `at` ends (past its closing quote).
fn string_end(text: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += memchr2(b'"', b'\\', text.get(at..)?)?;
        if text[at] == b'"' {
            return Some(at + 1);
        }
        // An escape: the next byte is part of it, whatever it is.
        at += 2;
    }
}

/// Where the value starting at `at` ends. Brackets are counted, not matched by kind.
fn value_end(text: &[u8], at: usize) -> Option<usize> {
    match *text.get(at)? {
        b'"' => string_end(text, at + 1),
        b'{' | b'[' => {
            let (mut depth, mut at) = (1usize, at + 1);
            loop {
                match *text.get(at)? {
                    b'"' => at = string_end(text, at + 1)?,
                    b'{' | b'[' => {
                        depth += 1;
                        at += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        at += 1;
                        if depth == 0 {
                            return Some(at);
                        }
                    }
                    _ => at += 1,
                }
            }
        }
        // A number or literal: up to what may follow a value.
        b',' | b'}' | b']' | b':' => None,
        _ => {
            let len = text[at..].iter().position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r')).unwrap_or(text.len() - at);
            Some(at + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two(text: &str) -> Option<[Option<&str>; 2]> {
        top_level(text.as_bytes(), ["model", "usage"]).map(|f| f.map(|v| v.map(|v| std::str::from_utf8(v).unwrap())))
    }

    #[test]
    fn finds_top_level_members_only() {
        let doc = r#" { "id" : "x", "choices":[{"message":{"model":"inner","usage":{"a":1}}}], "model" : "m" ,"usage":{"total_tokens":3}, "n":-1.5e3 } "#;
        assert_eq!(two(doc), Some([Some(r#""m""#), Some(r#"{"total_tokens":3}"#)]));
        assert_eq!(two(r#"{"n":12,"model":null}"#), Some([Some("null"), None]));
        assert_eq!(two("{}"), Some([None, None]));
    }

    #[test]
    fn strings_hide_what_looks_like_structure() {
        let doc = r#"{"text":"a \"quoted\" }],{ \\","model":"m\"}","usage":"\\"}"#;
        assert_eq!(two(doc), Some([Some(r#""m\"}""#), Some(r#""\\""#)]));
        // Escaped quotes before, at and after the one-by-one look's end.
        for pad in 0..40 {
            let doc = format!(r#"{{"text":"{}\"}}\\","model":"{}\"}}","usage":1}}"#, "a".repeat(pad), "b".repeat(pad));
            let model = format!(r#""{}\"}}""#, "b".repeat(pad));
            assert_eq!(two(&doc), Some([Some(model.as_str()), Some("1")]), "{doc}");
        }
        // A key spelled with an escape is the key, as serde_json reads it.
        assert_eq!(two(r#"{"mod\u0065l":"m","usage":1,"us\u0061ge":2}"#), Some([Some(r#""m""#), Some("2")]));
    }

    #[test]
    fn what_does_not_hold_together_yields_nothing() {
        for doc in ["", "[DONE]", r#"{"model":"m"} {"usage":1}"#, r#"{"model":"m"}x"#, "[]", "{", r#"{"model":"m""#, r#"{"model":"m"#, r#"{"model":"m\"}"#, r#"{"model":{"a":[1,2}"#, r#"{"model"}"#, r#"{"model":}"#, r#"{"model":"m" "x":1}"#, r#"{model:"m"}"#, r#"{"s":"\"#] {
            assert_eq!(two(doc), None, "{doc}");
        }
    }

    #[test]
    fn deep_nesting_is_stepped_over_without_recursion() {
        let doc = format!(r#"{{"a":{}{},"model":"m"}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(two(&doc), Some([Some(r#""m""#), None]));
    }
}
