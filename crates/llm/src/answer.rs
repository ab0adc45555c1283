//! The provider's answer as the `ai` filter reads it: whether it is a stream, its model and
//! usage (whole, or event by event without holding the stream back), the completion text for
//! telemetry, and a translated answer's framing.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::Result;
use std::time::Instant;

use tollgate_core::filters::RequestCtx;
use tollgate_core::llm::LlmExchange;

use crate::usage::{has_usage_object, model_of, ChoicesView, ResponseView};
use crate::translation::{self, MAX_RESPONSE_COPY};
use crate::{AiPolicy, CompletionState, ResponseMode};

impl AiPolicy {
    pub(crate) fn response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        let Some(state) = ctx.extensions.get_mut::<CompletionState>() else { return Ok(()) };
        let is_sse = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !matches!(state.answer.translation, translation::Translation::None) {
            let answer = &mut state.answer;
            answer.sse = is_sse;
            if !resp.status.is_success() {
                answer.error_status = Some(resp.status.as_u16());
            }
            if answer.rewrites() {
                // A translated answer's length is not known ahead.
                resp.remove_header(&http::header::CONTENT_LENGTH);
                if answer.error_status.is_some() || !answer.translation.outputs_sse(is_sse) {
                    // An error, or a stream gathered into one document.
                    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
                } else if !is_sse {
                    // An event stream in another framing (Bedrock's), now server-sent events.
                    resp.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
                }
            }
            return Ok(());
        }
        if !resp.status.is_success() {
            return Ok(());
        }
        state.response = if is_sse { ResponseMode::Sse } else { ResponseMode::Json };
        if is_sse && state.injected_usage {
            // An event the client did not ask for is dropped, so the length changes.
            resp.remove_header(&http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    pub(crate) fn response_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<()> {
        let started = ctx.started;
        let format = ctx.error_format;
        let want_completion = ctx.needs.llm_completion;
        let Some(state) = ctx.extensions.get_mut::<CompletionState>() else { return Ok(()) };
        let Some(llm) = ctx.llm.as_mut() else { return Ok(()) };
        if llm.time_to_first_byte.is_none() && body.as_ref().is_some_and(|b| !b.is_empty()) {
            llm.time_to_first_byte = Some(Instant::now().duration_since(started));
        }
        if !matches!(state.answer.translation, translation::Translation::None) {
            state.answer.on_body(llm, body, end, want_completion);
            return Ok(());
        }
        match state.response {
            ResponseMode::Untouched => {}
            ResponseMode::Json => {
                if let Some(b) = body.as_ref() {
                    if !hold_json(state, b) {
                        return Ok(());
                    }
                }
                if end {
                    let view = if want_completion {
                        ResponseView::parse_with_text(&state.response_body, llm.completion.get_or_insert_with(Vec::new))
                    } else {
                        ResponseView::parse(&state.response_body)
                    };
                    record(llm, &view);
                    state.response_body = Vec::new();
                }
            }
            ResponseMode::Sse if llm.completion_allowance.is_some() => crate::allowance::scan_sse_within(state, llm, body, end, format, want_completion),
            ResponseMode::Sse => scan_sse(state, llm, body, end, want_completion),
        }
        Ok(())
    }
}

/// Holds a JSON answer's bytes to be read at its end. One too large to hold is not read at all
/// (nor held any longer), rather than read with a hole where a piece did not fit.
fn hold_json(state: &mut CompletionState, bytes: &[u8]) -> bool {
    if state.response_body.len() + bytes.len() <= MAX_RESPONSE_COPY {
        state.response_body.extend_from_slice(bytes);
        return true;
    }
    state.response = ResponseMode::Untouched;
    state.response_body = Vec::new();
    false
}

pub(crate) fn record(llm: &mut LlmExchange, view: &ResponseView) {
    if let Some(m) = &view.model {
        llm.response_model.get_or_insert_with(|| m.clone());
    }
    if let Some(u) = &view.usage {
        llm.usage = Some(u.to_usage());
    }
}

/// The events of a chunk when one may be dropped: while every event so far is whole, kept
/// and next in the chunk, only their length is counted, so the chunk (or its front) goes on
/// uncopied; the first event that is not starts a copy.
struct PassedEvents {
    /// Bytes from the chunk's start passed on as they came.
    passed: usize,
    copy: Option<Vec<u8>>,
}

impl PassedEvents {
    fn new() -> Self {
        PassedEvents { passed: 0, copy: None }
    }

    fn event(&mut self, chunk: &[u8], event: &[u8], keep: bool) {
        if let Some(copy) = &mut self.copy {
            if keep {
                copy.extend_from_slice(event);
            }
            return;
        }
        // Lent from the chunk right after the passed events? (An event joined from earlier
        // reads is held elsewhere.)
        let next_in_chunk = event.as_ptr() as usize == chunk.as_ptr() as usize + self.passed && self.passed + event.len() <= chunk.len();
        if keep && next_in_chunk {
            self.passed += event.len();
            return;
        }
        let mut copy = Vec::with_capacity(chunk.len() + if next_in_chunk { 0 } else { event.len() });
        copy.extend_from_slice(&chunk[..self.passed]);
        if keep {
            copy.extend_from_slice(event);
        }
        self.copy = Some(copy);
    }

    /// The body to pass on: the chunk (or its front) as it came, or the copy.
    fn into_body(self, mut chunk: Bytes) -> Option<Bytes> {
        match self.copy {
            Some(copy) => (!copy.is_empty()).then(|| Bytes::from(copy)),
            None if self.passed == 0 => None,
            None => {
                chunk.truncate(self.passed);
                Some(chunk)
            }
        }
    }
}

/// Reads usage from each complete event. Chunks pass through as they are, unless the gateway
/// injected `include_usage`: then complete events pass and the usage-only one is dropped.
fn scan_sse(state: &mut CompletionState, llm: &mut LlmExchange, body: &mut Option<Bytes>, end: bool, want_completion: bool) {
    let incoming = body.take().unwrap_or_default();
    let injected_usage = state.injected_usage;
    // Only when the gateway injected `include_usage` are events rewritten (one dropped), and
    // even then a chunk of whole, kept events is passed on as it came, not copied.
    let mut out = PassedEvents::new();
    state.sse.each_event_data(&incoming, end, |event, data| {
        let keep = match data {
            // The first event, for its model alone (no usage in it, no text wanted).
            Some(data) if llm.response_model.is_none() && !want_completion && &*data != b"[DONE]" && !has_usage_object(&data) => {
                llm.response_model = model_of(&data);
                true
            }
            // Parse only the first event (for the model) and events that carry usage (with
            // the text in the same pass when it is wanted).
            Some(data) if &*data != b"[DONE]" && (llm.response_model.is_none() || has_usage_object(&data)) => {
                let view = if want_completion {
                    ResponseView::parse_with_text(&data, llm.completion.get_or_insert_with(Vec::new))
                } else {
                    ResponseView::parse(&data)
                };
                record(llm, &view);
                !(injected_usage && view.is_usage_only())
            }
            Some(data) => {
                if want_completion {
                    ChoicesView::append_to(&data, llm.completion.get_or_insert_with(Vec::new));
                }
                true
            }
            None => true,
        };
        if injected_usage {
            out.event(&incoming, event, keep);
        }
    });
    *body = if injected_usage { out.into_body(incoming) } else { Some(incoming) };
    if end && body.is_none() {
        *body = Some(Bytes::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::SseSplitter;

    /// Feeds `chunks` as scan_sse does, dropping events that contain `drop`; returns each
    /// chunk's output and whether it is the chunk itself (same memory, not copied).
    fn pass(chunks: &[&[u8]], drop: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut sse = SseSplitter::default();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let incoming = Bytes::copy_from_slice(c);
                let at = incoming.as_ptr();
                let mut out = PassedEvents::new();
                sse.each_event(&incoming, i + 1 == chunks.len(), |e| {
                    let keep = !e.windows(drop.len()).any(|w| w == drop);
                    out.event(&incoming, e, keep);
                });
                let body = out.into_body(incoming).unwrap_or_default();
                let same = body.as_ptr() == at;
                (body.to_vec(), same)
            })
            .collect()
    }

    #[test]
    fn an_answer_too_large_to_hold_is_not_read_with_a_hole() {
        let mut state = CompletionState { response: ResponseMode::Json, ..Default::default() };
        let half = vec![b' '; MAX_RESPONSE_COPY / 2 + 1];
        assert!(hold_json(&mut state, b"{\"a\":\""));
        assert!(hold_json(&mut state, &half));
        assert!(!hold_json(&mut state, &half), "the piece that does not fit");
        assert!(matches!(state.response, ResponseMode::Untouched));
        assert!(state.response_body.is_empty() && state.response_body.capacity() == 0);
    }

    #[test]
    fn whole_kept_events_pass_uncopied() {
        let out = pass(&[b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\n"], b"usage");
        assert_eq!(out, vec![(b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\n".to_vec(), true)]);
    }

    #[test]
    fn a_dropped_event_is_cut_out() {
        let out = pass(&[b"data: 1\n\ndata: usage\n\ndata: [DONE]\n\n"], b"usage");
        assert_eq!(out[0].0, b"data: 1\n\ndata: [DONE]\n\n".to_vec());
        let out = pass(&[b"data: usage\n\n"], b"usage");
        assert_eq!(out[0].0, b"".to_vec());
    }

    #[test]
    fn a_split_event_waits_and_the_front_passes() {
        let out = pass(&[b"data: 1\n\ndata: 2", b"2\n\ndata: 3\n\n", b"data: usage\n\ndata: 4\n\n"], b"usage");
        assert_eq!(out[0], (b"data: 1\n\n".to_vec(), true), "the front of the chunk, not a copy");
        assert_eq!(out[1].0, b"data: 22\n\ndata: 3\n\n".to_vec());
        assert_eq!(out[2].0, b"data: 4\n\n".to_vec());
        let all: Vec<u8> = out.into_iter().flat_map(|(b, _)| b).collect();
        assert_eq!(all, b"data: 1\n\ndata: 22\n\ndata: 3\n\ndata: 4\n\n".to_vec());
    }

    #[test]
    fn an_unterminated_tail_is_given_at_the_end() {
        let out = pass(&[b"data: 1\n\n", b"data: 2"], b"usage");
        assert_eq!(out[1].0, b"data: 2".to_vec());
    }
}
