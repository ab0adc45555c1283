//! JSON Pointer look-ups (`/params/name`) without serde_json's per-token allocations.
//!
//! `Value::pointer` unescapes every token with two `str::replace` calls (`~1`, `~0`), each a
//! new `String` and a substring searcher: ~500 instructions a token, ~8k per MCP request and
//! more per translated stream event. The pointers tollgate reads are written in its code and
//! rarely hold a `~`; those that do go to serde_json's own look-up, so the results are the same.

use serde_json::Value;

/// `at`/`at_mut`: [`Value::pointer`]/[`Value::pointer_mut`], same results, cheaper.
pub trait Pointer {
    /// The value at `pointer` (RFC 6901), as [`Value::pointer`] finds it.
    fn at(&self, pointer: &str) -> Option<&Value>;
    /// The value at `pointer`, mutable, as [`Value::pointer_mut`] finds it.
    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value>;
}

impl Pointer for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        let Some(tokens) = plain_tokens(pointer) else { return self.pointer(pointer) };
        tokens?.try_fold(self, |v, token| match v {
            Value::Object(map) => map.get(token),
            Value::Array(items) => index(token).and_then(|i| items.get(i)),
            _ => None,
        })
    }

    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value> {
        let Some(tokens) = plain_tokens(pointer) else { return self.pointer_mut(pointer) };
        tokens?.try_fold(self, |v, token| match v {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => index(token).and_then(move |i| items.get_mut(i)),
            _ => None,
        })
    }
}

/// The tokens of a pointer without escapes (`None`: serde_json's look-up must read it; the
/// inner `None`: it has no leading `/`, so it finds nothing). Split by hand: `str::split` and
/// `contains` with a `char` build a searcher each time (~300 instructions for `/params/name`).
fn plain_tokens(pointer: &str) -> Option<Option<Tokens<'_>>> {
    if pointer.is_empty() || pointer.as_bytes().contains(&b'~') {
        return None;
    }
    Some(pointer.strip_prefix('/').map(|rest| Tokens(Some(rest))))
}

/// The `/`-separated tokens of a pointer's text after its leading `/`.
struct Tokens<'a>(Option<&'a str>);

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b'/') {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// An array index token as serde_json reads one: digits, no sign, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_serde_json_finds() {
        let mut doc = serde_json::json!({
            "params": {"name": "echo", "arguments": {"a/b": 1, "m~n": 2, "": 3, "list": [10, {"x": [true]}]}},
            "0": "zero key",
            "arr": [0, 1, 2],
        });
        let pointers = [
            "", "/", "/params", "/params/name", "/params/name/x", "/params/arguments/a~1b", "/params/arguments/m~0n",
            "/params/arguments/", "/params/arguments/list/1/x/0", "/params/arguments/list/01", "/params/arguments/list/+1",
            "/params/arguments/list/-1", "/params/arguments/list/2", "/0", "/arr/0", "/arr/3", "/arr/", "params",
            "/params//name", "/arr/1/", "/missing/deeper",
        ];
        for p in pointers {
            assert_eq!(doc.at(p), doc.pointer(p), "{p}");
            let expected = doc.clone().pointer_mut(p).cloned();
            assert_eq!(doc.at_mut(p).cloned(), expected, "{p}");
        }
        *doc.at_mut("/params/arguments/list/1/x/0").unwrap() = Value::Bool(false);
        assert_eq!(doc.pointer("/params/arguments/list/1/x/0"), Some(&Value::Bool(false)));
    }
}
