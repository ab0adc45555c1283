//! `POST /v1/messages/count_tokens` when the provider is not Anthropic, and Gemini's
//! `:countTokens` when it is not Gemini: answered by the gateway with an estimate
//! (OpenAI-compatible servers have no such endpoint; Claude Code calls it, and a 404 there
//! breaks it). The request is checked as a request of its API would be, so what could not be
//! sent is refused the same way.

use serde_json::Value;

/// Tokens an image is counted as (a mid-sized image on Anthropic's scale).
const IMAGE_TOKENS: u64 = 1600;
/// Per-message framing, as OpenAI's tokenizer guidance counts it.
const PER_MESSAGE: u64 = 4;
/// Bytes per token of English text and JSON, the usual rule of thumb.
const BYTES_PER_TOKEN: u64 = 4;

/// The estimated `input_tokens` of a Messages request: its text and tool definitions at
/// about 4 bytes a token, images at a flat rate, plus framing. The error is for a 400.
pub fn estimate_input_tokens(raw: &[u8]) -> Result<u64, String> {
    // Needs a model to translate; counting does not care which.
    let mut req: serde_json::Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    req.entry("max_tokens").or_insert(1.into());
    let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    let chat = super::request::messages_to_chat(&body, Some("count"), false)?;
    estimate_chat(&chat.body)
}

/// The estimated `totalTokens` of a Gemini `countTokens` request (`contents`, or a whole
/// `generateContentRequest`), counted as [`estimate_input_tokens`] counts.
pub fn estimate_gemini_tokens(raw: &[u8]) -> Result<u64, String> {
    let req: serde_json::Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let inner = match req.get("generateContentRequest").or_else(|| req.get("generate_content_request")) {
        Some(Value::Object(g)) => Value::Object(g.iter().filter(|(k, _)| k.as_str() != "model").map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(_) => return Err("invalid `generateContentRequest`: expected an object".into()),
        None => Value::Object(req),
    };
    let body = serde_json::to_vec(&inner).map_err(|e| e.to_string())?;
    let chat = crate::generate::request::generate_to_chat(&body, "count", false, false)?;
    estimate_chat(&chat.body)
}

/// Counts a Chat Completions body (what the client's request became).
pub(crate) fn estimate_chat(chat: &[u8]) -> Result<u64, String> {
    let chat: Value = serde_json::from_slice(chat).map_err(|e| e.to_string())?;
    let text_tokens = |bytes: usize| (bytes as u64).div_ceil(BYTES_PER_TOKEN);
    let mut total = 3;
    for m in chat.get("messages").and_then(Value::as_array).into_iter().flatten() {
        total += PER_MESSAGE;
        match m.get("content") {
            Some(Value::String(s)) => total += text_tokens(s.len()),
            Some(Value::Array(parts)) => {
                for p in parts {
                    match p.get("type").and_then(Value::as_str) {
                        Some("image_url") => total += IMAGE_TOKENS,
                        _ => total += text_tokens(p.get("text").and_then(Value::as_str).map_or(0, str::len)),
                    }
                }
            }
            _ => {}
        }
        if let Some(calls) = m.get("tool_calls") {
            total += text_tokens(calls.to_string().len());
        }
        if let Some(r) = m.get("reasoning_content").and_then(Value::as_str) {
            total += text_tokens(r.len());
        }
    }
    if let Some(tools) = chat.get("tools") {
        total += text_tokens(tools.to_string().len());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_grow_with_text_tools_and_images() {
        let small = estimate_input_tokens(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let long = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#, "word ".repeat(1000));
        let long = estimate_input_tokens(long.as_bytes()).unwrap();
        assert!(small < 10 && (1200..1300).contains(&long), "{small} {long}");
        let with_tool = estimate_input_tokens(br#"{"model":"m","tools":[{"name":"f","description":"a tool","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(with_tool > small);
        let image = estimate_input_tokens(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}"#).unwrap();
        assert!(image >= IMAGE_TOKENS);
        assert!(estimate_input_tokens(br#"{"model":"m","messages":[],"mcp_servers":[]}"#).is_err());
    }

    #[test]
    fn gemini_counts_take_contents_or_a_whole_request() {
        let short = estimate_gemini_tokens(br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#).unwrap();
        let long = format!(r#"{{"generateContentRequest":{{"model":"models/g","contents":[{{"role":"user","parts":[{{"text":"{}"}}]}}]}}}}"#, "word ".repeat(1000));
        let long = estimate_gemini_tokens(long.as_bytes()).unwrap();
        assert!(short < 10 && (1200..1300).contains(&long), "{short} {long}");
        assert!(estimate_gemini_tokens(br#"{"contents":[{"role":"user","parts":[{"executableCode":{}}]}]}"#).is_err());
        assert!(estimate_gemini_tokens(b"[1]").is_err());
    }
}
