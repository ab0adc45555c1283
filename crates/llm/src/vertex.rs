//! The `vertex` provider: Gemini and Claude models on Google Cloud's Vertex AI. The model's
//! family picks the API: Claude models speak Anthropic's Messages (`rawPredict` /
//! `streamRawPredict`, the model in the path, `anthropic_version: vertex-2023-10-16` in the
//! body), the others Gemini's `generateContent`. The path names the model, so it must be known
//! before the request goes: the backend's, or the one in a body read before the call.

use serde_json::{Map, Value};

use tollgate_core::llm::AiProvider;
use tollgate_core::runtime::VertexTarget;

/// The provider's name in telemetry (and how the filter knows a Vertex call).
pub const PROVIDER_NAME: &str = "gcp.vertex_ai";

/// Vertex's name for the Anthropic API version it serves.
const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The API a model's family speaks on Vertex: Claude models Anthropic's, the others Gemini's.
pub fn family(model: &str) -> AiProvider {
    if model.starts_with("claude-") || model.starts_with("anthropic/") || model.contains("publishers/anthropic/models/") {
        AiProvider::Anthropic
    } else {
        AiProvider::Gemini
    }
}

/// A model as it stands in a Vertex path: the publisher prefixes dropped, a Claude model's
/// `-YYYYMMDD` version written `@YYYYMMDD`; only letters, digits, `.`, `-`, `_`, `@`.
pub fn path_model(model: &str) -> Result<String, String> {
    let bare = ["publishers/anthropic/models/", "publishers/google/models/", "anthropic/", "google/", "models/"]
        .iter()
        .find_map(|p| model.strip_prefix(p))
        .unwrap_or(model);
    let mut m = bare.to_string();
    if family(model) == AiProvider::Anthropic && !m.contains('@') {
        if let Some((name, date)) = m.rsplit_once('-') {
            if date.len() == 8 && date.chars().all(|c| c.is_ascii_digit()) {
                m = format!("{name}@{date}");
            }
        }
    }
    let ok = !m.is_empty() && m.len() <= 128 && m.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@')) && !m.starts_with('.');
    if ok {
        Ok(m)
    } else {
        Err(format!("model `{model}` is not a Vertex model name (letters, digits, `.`, `-`, `_`, `@`)"))
    }
}

/// The path and query for `model` (already a path model) of `family`; `method` is Gemini's
/// (`generateContent` or `streamGenerateContent`), `streaming` Anthropic's.
pub fn pq(v: &VertexTarget, family: AiProvider, model: &str, gemini_stream: bool, anthropic_stream: bool) -> String {
    let base = format!("/v1/projects/{}/locations/{}", v.project, v.location);
    match family {
        AiProvider::Anthropic => {
            let method = if anthropic_stream { "streamRawPredict" } else { "rawPredict" };
            format!("{base}/publishers/anthropic/models/{model}:{method}")
        }
        _ if gemini_stream => format!("{base}/publishers/google/models/{model}:streamGenerateContent?alt=sse"),
        _ => format!("{base}/publishers/google/models/{model}:generateContent"),
    }
}

/// A Messages body as Vertex takes it: no `model` (the path names it), its `anthropic_version`.
/// Returns the body and the model it named.
pub fn anthropic_body(body: &[u8]) -> Result<(Vec<u8>, Option<String>), String> {
    let mut req: Map<String, Value> = serde_json::from_slice(body).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let model = match req.remove("model") {
        Some(Value::String(m)) => Some(m),
        _ => None,
    };
    req.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
    Ok((serde_json::to_vec(&Value::Object(req)).map_err(|e| e.to_string())?, model))
}

/// The `model` a JSON body names, if any (read before choosing the API).
pub fn peek_model(raw: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ModelOnly {
        model: Option<String>,
    }
    serde_json::from_slice::<ModelOnly>(raw).ok().and_then(|m| m.model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_path_models() {
        assert_eq!(family("claude-sonnet-4-5"), AiProvider::Anthropic);
        assert_eq!(family("gemini-2.5-flash"), AiProvider::Gemini);
        assert_eq!(path_model("claude-sonnet-4-5-20250929").unwrap(), "claude-sonnet-4-5@20250929");
        assert_eq!(path_model("publishers/google/models/gemini-2.5-pro").unwrap(), "gemini-2.5-pro");
        for bad in ["../x", "a/b", "a?b", "", ".hidden", "a#b"] {
            assert!(path_model(bad).is_err(), "{bad}");
        }
        let v = VertexTarget { project: "p".into(), location: "us-central1".into() };
        assert_eq!(pq(&v, AiProvider::Anthropic, "claude-x", false, true), "/v1/projects/p/locations/us-central1/publishers/anthropic/models/claude-x:streamRawPredict");
        assert_eq!(pq(&v, AiProvider::Gemini, "g", true, false), "/v1/projects/p/locations/us-central1/publishers/google/models/g:streamGenerateContent?alt=sse");
    }

    #[test]
    fn claude_bodies_lose_the_model_and_gain_the_version() {
        let (body, model) = anthropic_body(br#"{"model":"claude-x","max_tokens":5,"messages":[]}"#).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(model.as_deref(), Some("claude-x"));
        assert!(v.get("model").is_none());
        assert_eq!(v["anthropic_version"], "vertex-2023-10-16");
    }
}
