//! JSON-RPC 2.0 messages as MCP uses them. Messages stay `serde_json::Value`s so fields the
//! gateway does not know (newer protocol revisions, `_meta`) pass through untouched.

use serde_json::{json, Value};

/// Parse error: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON is not a JSON-RPC message.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters (e.g. an unknown tool name).
pub const INVALID_PARAMS: i64 = -32602;
/// The gateway or a target failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// The session is missing, unknown or ended (MCP SDKs use -32001 / -32000).
pub const SESSION_NOT_FOUND: i64 = -32001;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`.
    Response,
    /// Anything else.
    Invalid,
}

/// Classifies a message.
pub fn kind(msg: &Value) -> Kind {
    let has_method = msg.get("method").is_some_and(Value::is_string);
    let has_id = msg.get("id").is_some_and(|i| !i.is_null());
    match (has_method, has_id) {
        (true, true) => Kind::Request,
        (true, false) => Kind::Notification,
        (false, true) if msg.get("result").is_some() || msg.get("error").is_some() => Kind::Response,
        _ => Kind::Invalid,
    }
}

/// Checks a message from a client strictly, as JSON-RPC 2.0 and MCP require: an object with
/// `"jsonrpc": "2.0"`, and an id (when there is one) that is a string or an integer, never
/// null, a fraction, an object, an array or a boolean. Integer ids keep every digit (the
/// gateway parses numbers exactly), so the answer carries the id as it was sent.
pub fn check_client_message(msg: &Value) -> Result<Kind, &'static str> {
    let Some(obj) = msg.as_object() else {
        return Err(if msg.is_array() { "batches are not supported at this protocol version" } else { "a JSON-RPC message must be an object" });
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("\"jsonrpc\": \"2.0\" is required");
    }
    if let Some(id) = obj.get("id") {
        let integer = id.as_number().is_some_and(|n| is_integer_text(&n.to_string()));
        if !(id.is_string() || integer) {
            return Err("a request id must be a string or an integer");
        }
    }
    match kind(msg) {
        Kind::Invalid => Err("not a JSON-RPC 2.0 request, notification or response"),
        k => Ok(k),
    }
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The message's method, or "".
pub fn method(msg: &Value) -> &str {
    msg.get("method").and_then(Value::as_str).unwrap_or("")
}

/// A string parameter.
pub fn param_str<'a>(msg: &'a Value, name: &str) -> Option<&'a str> {
    msg.get("params")?.get(name)?.as_str()
}

/// An error response for `id`.
pub fn error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A success response for `id`.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A request.
pub fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// Whether `msg` is the response to a request with `id`.
pub fn is_response_to(msg: &Value, id: &Value) -> bool {
    kind(msg) == Kind::Response && msg.get("id") == Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})), Kind::Request);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})), Kind::Notification);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":"a","result":{}})), Kind::Response);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":1})), Kind::Invalid);
        assert_eq!(kind(&json!([1])), Kind::Invalid);
    }

    #[test]
    fn strict_client_messages() {
        let ok = |v: Value| check_client_message(&v).is_ok();
        assert!(ok(json!({"jsonrpc":"2.0","id":1,"method":"ping"})));
        assert!(ok(json!({"jsonrpc":"2.0","id":"a","method":"ping"})));
        assert!(ok(json!({"jsonrpc":"2.0","method":"notifications/initialized"})));
        assert!(!ok(json!({"id":1,"method":"ping"})));
        assert!(!ok(json!({"jsonrpc":"1.0","id":1,"method":"ping"})));
        for id in [json!({}), json!([]), json!(true), json!(null), json!(1.5)] {
            assert!(!ok(json!({"jsonrpc":"2.0","id":id,"method":"ping"})), "{id}");
        }
        assert!(!ok(json!([{"jsonrpc":"2.0","id":1,"method":"ping"}])));
        // Big integers survive a round trip exactly.
        let big: Value = serde_json::from_str(r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#).unwrap();
        assert!(check_client_message(&big).is_ok());
        let answer = error(&big["id"], INTERNAL_ERROR, "x").to_string();
        assert!(answer.contains("123456789012345678901234567890"), "{answer}");
    }
}
