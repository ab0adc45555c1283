//! Errors the gateway itself returns, as JSON in the caller's API format, and the
//! mapping from Pingora's error kinds to HTTP statuses.

use pingora::{Error, ErrorSource, ErrorType};

use crate::ctx::ErrorFormat;
use crate::filters::LocalResponse;

/// A JSON error response: `{"error": {"message", "type", "code"}}`.
pub fn json_error(format: ErrorFormat, status: u16, kind: &str, message: &str) -> LocalResponse {
    let body = match format {
        ErrorFormat::OpenAi => serde_json::json!({
            "error": {"message": message, "type": kind, "code": status.to_string(), "param": null}
        }),
    };
    LocalResponse::json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// The status, error type and message for a proxying failure. Status 0 means the
/// client is gone and nothing should be written.
pub fn classify(e: &Error) -> (u16, &'static str, String) {
    use ErrorType::*;
    let detail = e.context.as_ref().map(|c| c.as_str().to_string()).unwrap_or_else(|| e.etype().as_str().to_string());
    match e.etype() {
        HTTPStatus(400) => (400, "invalid_request_error", detail),
        HTTPStatus(413) => (413, "request_too_large", detail),
        HTTPStatus(code) => (*code, "gateway_error", detail),
        ConnectTimedout | ReadTimedout | WriteTimedout => (504, "upstream_timeout", format!("upstream timed out: {detail}")),
        ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert
        | HandshakeError => (502, "upstream_unreachable", format!("cannot reach upstream: {}", describe(e))),
        Custom("dns") => (502, "upstream_unreachable", format!("cannot resolve upstream: {detail}")),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "upstream_error", format!("upstream failed: {}", describe(e))),
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => (0, "client_gone", detail),
                _ => (400, "invalid_request_error", detail),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal_error", describe(e)),
        },
    }
}

/// A one-line description of an error and its cause.
fn describe(e: &Error) -> String {
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
