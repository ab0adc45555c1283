//! Whether a streamed answer failed before its first event: a provider often answers
//! `200 text/event-stream` at once and reports the failure inside the stream (Anthropic's
//! `event: error` with `overloaded_error`, an OpenAI-compatible server's `data: {"error": ...}`,
//! Bedrock's exception frame), or ends the stream with nothing in it. While the client has
//! seen nothing, such an answer is as good as a 5xx: another provider can take the request.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue;
use bytes::BytesMut;
use serde_json::Value;

use crate::usage::{event_data, SseSplitter};

/// The kind of stream an answer is, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Server-sent events.
    Sse,
    /// AWS event-stream frames (Bedrock's ConverseStream).
    EventStream,
}

impl StreamKind {
    /// The stream kind a `Content-Type` names, if it names one.
    pub fn of(content_type: &str) -> Option<StreamKind> {
        if content_type.starts_with("text/event-stream") {
            Some(StreamKind::Sse)
        } else if content_type.starts_with("application/vnd.amazon.eventstream") {
            Some(StreamKind::EventStream)
        } else {
            None
        }
    }
}

/// The failure a stream's first chunk shows, as an HTTP status and a reason, when the answer
/// is one another provider should take instead: it ended empty, or its first event is an error
/// a 429 or 5xx would have carried. `None` when the first event is an answer, or when the chunk
/// holds no complete event to judge by.
pub fn failure(kind: StreamKind, chunk: &[u8], end: bool) -> Option<(u16, String)> {
    if chunk.is_empty() {
        return end.then(|| (502, "the provider ended its stream before its first event".into()));
    }
    let (status, why) = match kind {
        StreamKind::Sse => sse_error(chunk)?,
        StreamKind::EventStream => event_stream_error(chunk)?,
    };
    (status == 429 || status >= 500).then_some((status, why))
}

/// The first meaningful server-sent event, when it is an error.
fn sse_error(chunk: &[u8]) -> Option<(u16, String)> {
    let mut splitter = SseSplitter::default();
    for event in splitter.push(chunk) {
        let named_error = event.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).any(|l| l == b"event: error" || l == b"event:error");
        let Some(data) = event_data(&event) else {
            if named_error {
                return Some((502, "the provider's stream began with an error event".into()));
            }
            continue; // a comment or keep-alive
        };
        let value: Option<Value> = serde_json::from_slice(&data).ok();
        let is_error = named_error || value.as_ref().is_some_and(|v| v.get("error").is_some_and(|e| !e.is_null()) || v.get("type").and_then(Value::as_str) == Some("error"));
        if !is_error {
            return None;
        }
        return Some(json_error_status(value.as_ref()));
    }
    None
}

/// A status for an error body, by its type or code (Anthropic, OpenAI and Google shapes).
fn json_error_status(value: Option<&Value>) -> (u16, String) {
    let e = value.map(|v| v.get("error").unwrap_or(v));
    if let Some(code) = e.and_then(|e| e.get("code")).and_then(Value::as_u64).filter(|c| (400..600).contains(c)) {
        return (code as u16, format!("the provider's stream began with error {code}"));
    }
    let kind = e.and_then(|e| e.get("type").or_else(|| e.get("status")).or_else(|| e.get("code"))).and_then(Value::as_str).unwrap_or("error");
    (status_of_kind(kind), format!("the provider's stream began with `{kind}`"))
}

/// The HTTP status an error kind stands for.
fn status_of_kind(kind: &str) -> u16 {
    let k = kind.to_ascii_lowercase();
    if k.contains("overloaded") {
        529
    } else if k.contains("rate_limit") || k.contains("resource_exhausted") || k.contains("throttl") || k.contains("quota") {
        429
    } else if k.contains("unavailable") {
        503
    } else if k.contains("timeout") || k.contains("deadline") {
        504
    } else if k.contains("invalid") || k.contains("validation") || k.contains("not_found") || k.contains("permission") || k.contains("authentication") {
        400
    } else {
        502
    }
}

/// The first event-stream frame, when it is an exception.
fn event_stream_error(chunk: &[u8]) -> Option<(u16, String)> {
    let mut buf = BytesMut::from(chunk);
    let mut decoder = MessageFrameDecoder::new();
    let Ok(DecodedFrame::Complete(m)) = decoder.decode_frame(&mut buf) else { return None };
    let header = |name: &str| {
        m.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str().to_string()),
            _ => None,
        })
    };
    let message_type = header(":message-type")?;
    if message_type != "exception" && message_type != "error" {
        return None;
    }
    let kind = header(":exception-type").or_else(|| header(":error-code")).unwrap_or_else(|| "exception".into());
    Some((status_of_kind(&kind), format!("the provider's stream began with `{kind}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_overloaded_first_event_is_529() {
        let chunk = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert_eq!(failure(StreamKind::Sse, chunk, false).map(|f| f.0), Some(529));
    }

    #[test]
    fn openai_style_error_chunk_and_codes() {
        let chunk = b"data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_exceeded\"}}\n\n";
        assert_eq!(failure(StreamKind::Sse, chunk, false).map(|f| f.0), Some(429));
        let gemini = b"data: {\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
        assert_eq!(failure(StreamKind::Sse, gemini, false).map(|f| f.0), Some(503));
    }

    #[test]
    fn answers_comments_client_errors_and_partial_events_pass() {
        let ok = b": ping\n\ndata: {\"id\":\"c\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n";
        assert_eq!(failure(StreamKind::Sse, ok, false), None);
        let bad_request = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\"}}\n\n";
        assert_eq!(failure(StreamKind::Sse, bad_request, false), None);
        assert_eq!(failure(StreamKind::Sse, b"data: {\"error\":", false), None);
        // An error after the answer began is the answer's business, not a failover.
        let later = b"data: {\"choices\":[]}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n";
        assert_eq!(failure(StreamKind::Sse, later, false), None);
    }

    #[test]
    fn an_empty_ended_stream_fails() {
        assert_eq!(failure(StreamKind::Sse, b"", true).map(|f| f.0), Some(502));
        assert_eq!(failure(StreamKind::Sse, b"", false), None);
    }

    #[test]
    fn bedrock_exception_frame() {
        use aws_smithy_eventstream::frame::write_message_to;
        use aws_smithy_types::event_stream::{Header, Message};
        let m = Message::new(&b"{\"message\":\"slow down\"}"[..])
            .add_header(Header::new(":message-type", HeaderValue::String("exception".into())))
            .add_header(Header::new(":exception-type", HeaderValue::String("throttlingException".into())));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        assert_eq!(failure(StreamKind::EventStream, &out, false).map(|f| f.0), Some(429));
        assert_eq!(failure(StreamKind::EventStream, &out[..10], false), None);
    }
}
