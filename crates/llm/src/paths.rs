//! Upstream paths: which path and query a call takes on each provider (the client's API's
//! path, a translated call's provider path, model-named paths on Gemini, Azure deployments).

use pingora::http::RequestHeader;
use pingora::Result;

use tollgate_core::llm::{AiProvider, RouteType};
use tollgate_core::runtime::AiTarget;

use crate::{azure, gemini, generate, AiPolicy};

pub(crate) fn upstream_path(ai: &AiTarget, kind: RouteType, client_path: &str) -> Option<String> {
    // The provider's path for the call; a translated call always takes it.
    let (api_path, translated) = match (ai.provider, kind) {
        (AiProvider::OpenAi, RouteType::Completions) => ("/chat/completions", false),
        (AiProvider::OpenAi, RouteType::Messages | RouteType::GenerateContent) => ("/chat/completions", true),
        (AiProvider::Anthropic, RouteType::GenerateContent) => ("/messages", true),
        (AiProvider::Anthropic, RouteType::Messages) => ("/messages", false),
        (AiProvider::Anthropic, RouteType::Completions) => ("/messages", true),
        (AiProvider::Anthropic, RouteType::AnthropicTokenCount) => ("/messages/count_tokens", false),
        // Answered by the gateway (see `on_request`).
        (AiProvider::OpenAi, RouteType::AnthropicTokenCount) => return None,
        (AiProvider::OpenAi, RouteType::Embeddings) => ("/embeddings", false),
        (AiProvider::OpenAi, RouteType::Rerank) => ("/rerank", false),
        // Refused in `on_request`: no rerank API.
        (_, RouteType::Rerank) => return None,
        // Gemini's own (see `native_generate_pq`), else answered by the gateway.
        (_, RouteType::GeminiCountTokens) => return None,
        (AiProvider::OpenAi, RouteType::Responses) => ("/responses", false),
        (AiProvider::Anthropic, RouteType::Responses) => ("/messages", true),
        // Refused in `on_request`: Anthropic has no embeddings API.
        (AiProvider::Anthropic, RouteType::Embeddings) => return None,
        (_, RouteType::Models) => ("/models", false),
        (_, RouteType::Passthrough | RouteType::Detect) => return None,
        // The model names the path: set once it is known (see `gemini_path`).
        (AiProvider::Gemini, _) => return None,
        // The model and streaming name the path: set once the body is read (see `start`).
        (AiProvider::Bedrock, _) => return None,
    };
    // `pathOverride` is for chat calls; a custom provider's format path for its own API.
    if matches!(kind, RouteType::Completions | RouteType::Messages) || ai.custom.is_some() {
        if let Some(p) = &ai.path_override {
            return Some(p.clone());
        }
    }
    if let Some(prefix) = &ai.path_prefix {
        return Some(format!("{}{api_path}", prefix.trim_end_matches('/')));
    }
    if translated {
        // The client's path belongs to its API, not to the provider's.
        return Some(format!("/v1{api_path}"));
    }
    (!ai.host_overridden && !client_path.starts_with("/v1/")).then(|| format!("/v1{api_path}"))
}

/// The path (and query) of an Azure call: `pathOverride` for completions, else Azure's path
/// for the call (behind `pathPrefix`), or the wait for the model it names.
pub(crate) fn azure_upstream_path(ai: &AiTarget, paths: &tollgate_core::runtime::AzurePaths, kind: RouteType) -> std::result::Result<azure::AzurePath, String> {
    if matches!(kind, RouteType::Completions | RouteType::Messages | RouteType::GenerateContent) {
        if let Some(p) = &ai.path_override {
            return Ok(azure::AzurePath::Set(p.clone()));
        }
    }
    Ok(match azure::path(paths, kind, ai.model.as_deref())? {
        azure::AzurePath::Set(pq) => azure::AzurePath::Set(match &ai.path_prefix {
            Some(prefix) => format!("{}{pq}", prefix.trim_end_matches('/')),
            None => pq,
        }),
        other => other,
    })
}

/// The Gemini path for `model`: `{pathPrefix or /v1beta}/models/{model}:streamGenerateContent`
/// with `alt=sse` (the gateway always streams from Gemini).
pub(crate) fn gemini_path(req: &mut RequestHeader, ai: &AiTarget, model: &str) -> Result<()> {
    replace_path_and_query(req, &gemini_pq(ai, model))
}

/// The Gemini path and query of a native generateContent call: the client's method, the
/// backend's model (else the client's, which must be a plain model name).
pub(crate) fn native_generate_pq(ai: &AiTarget, client_path: &str, policy: &AiPolicy) -> std::result::Result<String, String> {
    let prefix = ai.path_prefix.as_deref().unwrap_or("/v1beta").trim_end_matches('/');
    if let Some(model) = generate::request::count_model_in_path(client_path) {
        let model = gemini::request::path_model(&policy.generate_model(ai.model.as_deref().unwrap_or(&model)))?;
        return Ok(format!("{prefix}/models/{model}:countTokens"));
    }
    let (model, streaming) = generate::request::model_in_path(client_path).ok_or("the path names no `models/{model}:generateContent`")?;
    let model = gemini::request::path_model(&policy.generate_model(ai.model.as_deref().unwrap_or(&model)))?;
    Ok(if streaming { format!("{prefix}/models/{model}:streamGenerateContent?alt=sse") } else { format!("{prefix}/models/{model}:generateContent") })
}

/// The Gemini path and query for `model` (see [`gemini_path`]).
pub(crate) fn gemini_pq(ai: &AiTarget, model: &str) -> String {
    let prefix = ai.path_prefix.as_deref().unwrap_or("/v1beta").trim_end_matches('/');
    format!("{prefix}/models/{model}:streamGenerateContent?alt=sse")
}

/// Replaces the request's path and query (keeping an absolute form's scheme and authority).
pub(crate) fn replace_path_and_query(req: &mut RequestHeader, pq: &str) -> Result<()> {
    tollgate_core::filters::set_path_and_query(req, pq.to_string())
}

/// Drops the query string of the request's URI (keeping an absolute form's authority).
pub(crate) fn strip_query(req: &mut RequestHeader) -> Result<()> {
    if req.uri.query().is_none() {
        return Ok(());
    }
    let path = req.uri.path().to_string();
    tollgate_core::filters::set_path_and_query(req, path)
}
