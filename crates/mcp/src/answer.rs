//! A target's answer to a client's request. A Streamable HTTP target's success response
//! that the gateway has nothing to change in is kept as the bytes the target sent: building
//! a `serde_json::Value` of a tool's result only to write it out again was most of the JSON
//! work of a `tools/call` (a parse, a serialisation and the tree's allocations).

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::jsonrpc;

/// What a client request gets back.
#[derive(Debug)]
pub enum Answer {
    /// A message the gateway built, merged or changed (or an error).
    Message(Value),
    /// A success response as the target sent it: checked to be one JSON object with a non-null
    /// `id` and a non-null `result`, no `error` and no `method`, nothing after it.
    Verbatim(Bytes),
}

/// The fields that decide whether a target's body is a plain success response; every other
/// field is skipped (its syntax still checked). A duplicate of one of these is a parse error,
/// so such a body takes the slow path, which reads it as the rest of the gateway does.
#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    method: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

impl Answer {
    /// `body` kept as it is when it is a plain success response, else `None` (parse it).
    pub fn verbatim(body: &Bytes) -> Option<Answer> {
        // A struct also deserializes from a JSON array: only an object qualifies.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        // Skipped strings are not checked for UTF-8 by the parser: JSON text must be UTF-8.
        std::str::from_utf8(body).ok()?;
        let shape: Shape = serde_json::from_slice(body).ok()?;
        let plain = shape.method.is_none() && shape.error.is_none() && shape.id.is_some() && shape.result.is_some();
        plain.then(|| Answer::Verbatim(body.clone()))
    }

    /// The answer to request `id` as a message. A verbatim body is parsed here; the check let
    /// through what a full parse refuses (a lone surrogate escape, nesting past 128 levels),
    /// and such a body becomes an error that still answers `id`, as it did before.
    pub fn into_message(self, id: &Value) -> Value {
        match self {
            Answer::Message(v) => v,
            Answer::Verbatim(b) => serde_json::from_slice(&b).unwrap_or_else(|e| jsonrpc::error(id, jsonrpc::INTERNAL_ERROR, format!("the target's answer is not a JSON-RPC response: {e}"))),
        }
    }

    /// The answer's JSON text.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            // `to_vec`, not `to_string`: `Value`'s `Display` writes through `fmt` (~5k a message).
            Answer::Message(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            Answer::Verbatim(b) => b.clone(),
        }
    }

    /// The JSON-RPC error it carries (a verbatim answer carries none).
    pub fn error(&self) -> Option<&Value> {
        match self {
            Answer::Message(v) => v.get("error"),
            Answer::Verbatim(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(s: &str) -> bool {
        matches!(Answer::verbatim(&Bytes::from(s.to_string())), Some(Answer::Verbatim(_)))
    }

    #[test]
    fn only_a_plain_success_response_is_kept_as_sent() {
        assert!(kept(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#));
        assert!(kept(" \n{\"result\":{},\"id\":\"a\",\"x\":[1,2,{\"y\":null}]}\n"));
        for s in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}} trailing"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"#,
            r#"[null,1,{},null]"#,
            "",
        ] {
            assert!(!kept(s), "{s}");
        }
        let bad_utf8 = Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"t\":\"\xff\xfe\"}}");
        assert!(Answer::verbatim(&bad_utf8).is_none());
    }

    #[test]
    fn a_kept_answer_reads_back_as_the_same_message() {
        let body = r#"{"jsonrpc":"2.0","id":12345678901234567890123,"result":{"n":1.000000000000000000001}}"#;
        let a = Answer::verbatim(&Bytes::from(body)).unwrap();
        assert_eq!(&a.to_bytes()[..], body.as_bytes());
        assert_eq!(a.error(), None);
        assert_eq!(a.into_message(&Value::Null), serde_json::from_str::<Value>(body).unwrap());
    }

    #[test]
    fn a_kept_answer_a_full_parse_refuses_still_answers_its_request() {
        let deep = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"x":{}{}}}}}"#, "[".repeat(200), "]".repeat(200));
        for body in [r#"{"jsonrpc":"2.0","id":1,"result":{"t":"\ud800"}}"#, deep.as_str()] {
            let a = Answer::verbatim(&Bytes::from(body.to_string())).expect("kept as sent");
            let m = a.into_message(&serde_json::json!(7));
            assert_eq!(m["id"], 7, "{m}");
            assert_eq!(m["error"]["code"], jsonrpc::INTERNAL_ERROR, "{m}");
        }
    }
}
