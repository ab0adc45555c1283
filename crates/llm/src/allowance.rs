//! In-stream enforcement of a completion allowance (a budget's remainder): the stream's
//! completion text is counted as it passes (about 4 bytes a token, as the prompt estimate),
//! and once the next event would pass the allowance the stream is ended for the client with
//! one error event in its API's format (and OpenAI's `[DONE]`). What the provider still
//! sends is read for its usage report and dropped. Applies to streams the gateway passes in
//! the provider's own API (OpenAI-compatible chat, Anthropic Messages, Gemini).

use bytes::Bytes;
use serde_json::Value;

use tollgate_core::ctx::ErrorFormat;
use tollgate_core::llm::LlmExchange;
use tollgate_core::json_pointer::Pointer as _;

use crate::answer::record;
use crate::usage::{has_usage_object, ChoicesView, ResponseView};
use crate::CompletionState;

const BYTES_PER_TOKEN: usize = 4;

/// Like the plain SSE scan, but ends the stream at the allowance.
pub(crate) fn scan_sse_within(
    state: &mut CompletionState,
    llm: &mut LlmExchange,
    body: &mut Option<Bytes>,
    end: bool,
    format: ErrorFormat,
    want_completion: bool,
) {
    let incoming = body.take().unwrap_or_default();
    let allowance = llm.completion_allowance.unwrap_or(u64::MAX);
    let injected_usage = state.injected_usage;
    let mut cut = state.cut;
    let mut counted = llm.counted_output_tokens.unwrap_or(0);
    let mut out = Vec::with_capacity(incoming.len());
    state.sse.each_event_data(&incoming, end, |event, data| {
        let Some(data) = data else {
            if !cut {
                out.extend_from_slice(event);
            }
            return;
        };
        if &*data == b"[DONE]" {
            if !cut {
                out.extend_from_slice(event);
            }
            return;
        }
        let usage_only = if llm.response_model.is_none() || has_usage_object(&data) {
            let view = ResponseView::parse(&data);
            record(llm, &view);
            view.is_usage_only()
        } else {
            false
        };
        if cut {
            return;
        }
        let tokens = completion_text_len(&data).div_ceil(BYTES_PER_TOKEN) as u64;
        if counted + tokens > allowance {
            cut = true;
            out.extend_from_slice(&end_event(format));
            tracing::info!(target: "tollgate", allowance, counted, "stream ended: its budget is spent");
            return;
        }
        counted += tokens;
        if want_completion {
            ChoicesView::append_to(&data, llm.completion.get_or_insert_with(Vec::new));
        }
        if !(injected_usage && usage_only) {
            out.extend_from_slice(event);
        }
    });
    state.cut = cut;
    llm.counted_output_tokens = Some(counted);
    *body = if out.is_empty() { if end { Some(Bytes::new()) } else { None } } else { Some(Bytes::from(out)) };
}

/// Bytes of completion text an event carries, in any of the three stream shapes.
fn completion_text_len(data: &[u8]) -> usize {
    let mut texts = Vec::new();
    ChoicesView::append_to(data, &mut texts);
    let chat: usize = texts.iter().map(String::len).sum();
    if chat > 0 {
        return chat;
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return 0 };
    let text_len = |v: &Value| v.get("text").and_then(Value::as_str).map_or(0, str::len);
    // Anthropic: content_block_delta {delta: {text | partial_json | thinking}}.
    if let Some(d) = v.get("delta") {
        return text_len(d)
            + d.get("partial_json").and_then(Value::as_str).map_or(0, str::len)
            + d.get("thinking").and_then(Value::as_str).map_or(0, str::len);
    }
    // Gemini: candidates[].content.parts[].text.
    v.get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.at("/content/parts").and_then(Value::as_array))
        .flatten()
        .map(text_len)
        .sum()
}

/// The error event that ends a stream at its allowance, in the client's API.
fn end_event(format: ErrorFormat) -> Vec<u8> {
    let message = "the token budget is spent: the stream was ended";
    match format {
        ErrorFormat::Anthropic => {
            let e = serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}});
            format!("event: error\ndata: {e}\n\n").into_bytes()
        }
        ErrorFormat::Google => {
            let e = serde_json::json!({"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}});
            format!("data: {e}\n\n").into_bytes()
        }
        _ => {
            let e = serde_json::json!({"error": {"message": message, "type": "budget_exceeded", "code": "429", "param": null}});
            format!("data: {e}\n\ndata: [DONE]\n\n").into_bytes()
        }
    }
}
