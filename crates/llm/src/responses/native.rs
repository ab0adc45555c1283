//! A Responses request for a provider that speaks Responses (OpenAI, Azure): the model
//! replaced when the backend sets one, the rest as written; usage is read from the answer.

use serde_json::Value;

use tollgate_core::json_object::JsonObject;
use tollgate_core::llm::LlmParams;
use tollgate_core::json_pointer::Pointer as _;

use crate::translation::TranslatedRequest;

/// The request with the backend's model; what the gateway records of it.
pub fn rewrite_responses_request(raw: &[u8], model_override: Option<&str>) -> Result<TranslatedRequest, String> {
    let top = JsonObject::parse(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let field = |name: &str| top.get(name).and_then(|r| serde_json::from_slice::<Value>(r).ok());
    let request_model = match top.get("model") {
        None | Some(b"null") => None,
        Some(m) => Some(serde_json::from_slice::<String>(m).map_err(|_| "invalid `model`: expected a string")?),
    };
    let streaming = field("stream").and_then(|v| v.as_bool()).unwrap_or(false);
    let params = LlmParams {
        temperature: field("temperature").and_then(|v| v.as_f64()),
        top_p: field("top_p").and_then(|v| v.as_f64()),
        max_tokens: field("max_output_tokens").and_then(|v| v.as_u64()),
        ..Default::default()
    };
    let body = match model_override {
        Some(m) => top.rewrite(&[("model", &serde_json::to_vec(m).map_err(|e| e.to_string())?)]),
        None => raw.to_vec(),
    };
    Ok(TranslatedRequest { body, request_model, streaming, include_usage: false, params, prompt: None })
}

/// Responses usage as Chat usage (what the gateway records).
pub fn chat_usage(u: &Value) -> Value {
    let n = |p: &str| u.at(p).and_then(Value::as_u64).unwrap_or(0);
    serde_json::json!({
        "prompt_tokens": n("/input_tokens"),
        "completion_tokens": n("/output_tokens"),
        "total_tokens": n("/total_tokens"),
        "prompt_tokens_details": {"cached_tokens": n("/input_tokens_details/cached_tokens")},
        "completion_tokens_details": {"reasoning_tokens": n("/output_tokens_details/reasoning_tokens")},
    })
}
