//! A Messages request for a Messages provider: only the model is replaced (when the backend
//! sets one); the rest goes as the client wrote it, untouched down to key order.

use tollgate_core::json_object::JsonObject;
use tollgate_core::llm::LlmParams;

/// The body to send and what the gateway records of the request.
#[derive(Debug)]
pub struct NativeRequest {
    /// Bytes to send upstream.
    pub body: Vec<u8>,
    /// `model` as the client sent it.
    pub request_model: Option<String>,
    /// `stream: true`.
    pub streaming: bool,
    /// Sampling parameters.
    pub params: LlmParams,
}

/// Replaces `model` when `model_override` is set; the error is a message for a 400.
pub fn rewrite_messages_request(raw: &[u8], model_override: Option<&str>) -> Result<NativeRequest, String> {
    let top = JsonObject::parse(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let field = |name: &str| top.get(name).and_then(|r| serde_json::from_slice::<serde_json::Value>(r).ok());
    let request_model = field("model").and_then(|m| m.as_str().map(str::to_string));
    let streaming = field("stream").and_then(|s| s.as_bool()).unwrap_or(false);
    let params = LlmParams {
        temperature: field("temperature").and_then(|v| v.as_f64()),
        top_p: field("top_p").and_then(|v| v.as_f64()),
        max_tokens: field("max_tokens").and_then(|v| v.as_u64()),
        ..Default::default()
    };
    let body = match model_override {
        Some(model) => {
            let raw_model = serde_json::to_vec(model).map_err(|e| e.to_string())?;
            top.rewrite(&[("model", &raw_model)])
        }
        None => raw.to_vec(),
    };
    Ok(NativeRequest { body, request_model, streaming, params })
}
