//! Errors the gateway itself returns, as JSON in the caller's API format, and the
//! mapping from Pingora's error kinds to HTTP statuses.

use pingora::{Error, ErrorSource, ErrorType};

use crate::ctx::ErrorFormat;
use crate::filters::LocalResponse;

/// A JSON error response in the caller's API format: OpenAI's
/// `{"error": {"message", "type", "code"}}`, or Anthropic's
/// `{"type": "error", "error": {"type", "message"}}` (its type follows the status).
pub fn json_error(format: ErrorFormat, status: u16, kind: &str, message: &str) -> LocalResponse {
    let body = match format {
        ErrorFormat::OpenAi => serde_json::json!({
            "error": {"message": message, "type": kind, "code": status.to_string(), "param": null}
        }),
        ErrorFormat::Anthropic => serde_json::json!({
            "type": "error", "error": {"type": anthropic_error_type(status), "message": message}
        }),
        ErrorFormat::Google => serde_json::json!({
            "error": {"code": status, "message": message, "status": google_status(status)}
        }),
        // The MCP transport answers HTTP errors with a JSON-RPC error whose id is unknown.
        ErrorFormat::JsonRpc => serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32000, "message": message, "data": {"status": status, "type": kind}}
        }),
    };
    LocalResponse::json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// The error shape a caller of an LLM route speaks, by the request path: Anthropic's for the
/// Messages API, Google's for Gemini model paths, OpenAI's otherwise.
pub fn llm_error_format(path: &str) -> ErrorFormat {
    if path.ends_with("/v1/messages") || path.ends_with("/v1/messages/count_tokens") {
        ErrorFormat::Anthropic
    } else if gemini_path_model(path).is_some() {
        ErrorFormat::Google
    } else {
        ErrorFormat::OpenAi
    }
}

/// The model a Gemini path names (`…/models/{model}:generateContent` and the like).
pub fn gemini_path_model(path: &str) -> Option<String> {
    let tail = path.rsplit_once("/models/")?.1;
    let (model, method) = tail.split_once(':')?;
    let known = matches!(method, "generateContent" | "streamGenerateContent" | "countTokens");
    (known && !model.is_empty() && !model.contains('/')).then(|| model.to_string())
}

/// Google's status name for an HTTP status (its APIs' `error.status`).
pub fn google_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Anthropic's error type for an HTTP status (its API has a fixed set).
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The status, error type and message for a proxying failure. Status 0 means the
/// client is gone and nothing should be written. The message is for the client: it never
/// carries Pingora's context or cause, which name internal addresses (`Peer: addr: …`);
/// [`describe`] gives those to the log.
pub fn classify(e: &Error) -> (u16, &'static str, String) {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(400) => (400, "invalid_request_error", "invalid request".into()),
        HTTPStatus(413) => (413, "request_too_large", "the request body is too large".into()),
        HTTPStatus(504) => (504, "request_timeout", "the request timed out".into()),
        HTTPStatus(code) => (*code, "gateway_error", "the gateway could not complete the request".into()),
        ConnectTimedout => (504, "upstream_timeout", "upstream timed out: connect".into()),
        ReadTimedout => (504, "upstream_timeout", "upstream timed out: read".into()),
        WriteTimedout => (504, "upstream_timeout", "upstream timed out: write".into()),
        ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert
        | HandshakeError => (502, "upstream_unreachable", format!("cannot reach upstream: {}", e.etype().as_str())),
        Custom("dns") => (502, "upstream_unreachable", "cannot resolve the upstream's name".into()),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "upstream_error", format!("upstream failed: {}", e.etype().as_str())),
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => (0, "client_gone", String::new()),
                _ => (400, "invalid_request_error", "invalid request".into()),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal_error", "internal error".into()),
        },
    }
}

/// A one-line description of an error, its context and cause, for the gateway's own log.
pub fn describe(e: &Error) -> String {
    let mut s = e.etype().as_str().to_string();
    if let Some(c) = &e.context {
        s.push_str(": ");
        s.push_str(c.as_str());
    }
    if let Some(cause) = &e.cause {
        s.push_str(": ");
        s.push_str(&cause.to_string());
    }
    s
}
