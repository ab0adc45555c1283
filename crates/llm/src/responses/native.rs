//! A Responses request for a provider that speaks Responses (OpenAI, Azure): the model
//! replaced when the backend sets one, the rest as written; usage is read from the answer.

use serde_json::{Map, Value};

use tollgate_core::llm::LlmParams;
use tollgate_core::json_pointer::Pointer as _;

use crate::translation::TranslatedRequest;

/// The request with the backend's model; what the gateway records of it.
pub fn rewrite_responses_request(raw: &[u8], model_override: Option<&str>) -> Result<TranslatedRequest, String> {
    let mut req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let request_model = crate::translation::request_model(&req)?;
    if let Some(m) = model_override {
        req.insert("model".into(), m.into());
    }
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let params = LlmParams {
        temperature: req.get("temperature").and_then(Value::as_f64),
        top_p: req.get("top_p").and_then(Value::as_f64),
        max_tokens: req.get("max_output_tokens").and_then(Value::as_u64),
        ..Default::default()
    };
    let body = if model_override.is_some() { serde_json::to_vec(&Value::Object(req)).map_err(|e| e.to_string())? } else { raw.to_vec() };
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
