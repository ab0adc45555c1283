//! Reading usage and the answering model from a provider's native answer that goes back to the
//! client untouched (Anthropic Messages, Gemini, Responses), whole or event by event.

use serde_json::Value;

use tollgate_core::llm::LlmExchange;
use tollgate_core::json_pointer::Pointer as _;

use crate::anthropic::stream::MessagesToChatStream;
use crate::translation::{complete_events, record_usage, MAX_RESPONSE_COPY};
use crate::usage::{event_data, SseSplitter};

/// Reads usage and model from a native Anthropic answer without changing it.
pub(crate) fn observe_native(observer: &mut MessagesToChatStream, splitter: &mut SseSplitter, held: &mut Vec<u8>, sse: bool, llm: &mut LlmExchange, incoming: &[u8], end: bool) {
    if !sse {
        if held.len() + incoming.len() <= MAX_RESPONSE_COPY {
            held.extend_from_slice(incoming);
        }
        if end {
            let m: Value = serde_json::from_slice(held).unwrap_or_default();
            if let Some(model) = m.get("model").and_then(Value::as_str) {
                llm.response_model.get_or_insert_with(|| model.to_string());
            }
            if let Some(u) = m.get("usage") {
                record_usage(llm, &crate::anthropic::response::usage(u), None);
            }
            held.clear();
        }
        return;
    }
    for event in complete_events(splitter, incoming, end) {
        let Some(data) = event_data(&event) else { continue };
        let _ = observer.event(&data);
        if llm.response_model.is_none() {
            if let Some(m) = serde_json::from_slice::<Value>(&data).ok().and_then(|v| v.at("/message/model").and_then(Value::as_str).map(str::to_string)) {
                llm.response_model = Some(m);
            }
        }
    }
    record_usage(llm, &observer.chat_usage(), None);
}

/// Reads usage and model from a native Gemini or Responses answer (one document, or events)
/// without changing it.
pub(crate) fn observe_generate(splitter: &mut SseSplitter, held: &mut Vec<u8>, sse: bool, llm: &mut LlmExchange, incoming: &[u8], end: bool, responses: bool) {
    let record = |doc: &[u8], llm: &mut LlmExchange| {
        let Ok(v) = serde_json::from_slice::<Value>(doc) else { return };
        if responses {
            // A whole response, or the stream's closing event carrying it.
            let r = v.get("response").filter(|_| v.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("response."))).unwrap_or(&v);
            if let Some(m) = r.get("model").and_then(Value::as_str) {
                llm.response_model.get_or_insert_with(|| m.to_string());
            }
            if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
                record_usage(llm, &crate::responses::native::chat_usage(u), None);
            }
            return;
        }
        if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
            llm.response_model.get_or_insert_with(|| m.to_string());
        }
        if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
            record_usage(llm, &crate::gemini::stream::usage(u), None);
        }
    };
    if !sse {
        if held.len() + incoming.len() <= MAX_RESPONSE_COPY {
            held.extend_from_slice(incoming);
        }
        if end {
            record(held, llm);
            held.clear();
        }
        return;
    }
    for event in complete_events(splitter, incoming, end) {
        if let Some(data) = event_data(&event) {
            record(&data, llm);
        }
    }
}
