//! Choosing an `llm:` route's backend by the request's model: the body is read whole (up to the
//! body limit) after the route's policies ran, its `model` (or the Gemini path's) picks a model
//! entry or a virtual model, and the model's own filters take over with the body kept for them
//! (`PreReadBody`). `/v1/models` is answered here.

use std::sync::Arc;

use pingora::proxy::Session;
use pingora::Result;
use serde_json::{json, Value};

use crate::ctx::RequestCtx;
use crate::errors::json_error;
use crate::filters::LocalResponse;
use crate::llm::PreReadBody;
use crate::proxy::whole_body::read_whole_body;
use crate::runtime::llm_router::{LlmRouter, NoModel};
use crate::runtime::CompiledBackend;

/// The backend for this request, or the answer the client gets instead.
pub async fn route_by_model(session: &mut Session, ctx: &mut RequestCtx, router: &LlmRouter) -> Result<std::result::Result<Arc<CompiledBackend>, LocalResponse>> {
    let path = session.req_header().uri.path().to_string();
    let format = error_format(&path);
    let trimmed = path.trim_end_matches('/');
    let listing = ["/v1/models", "/models"].iter().any(|p| trimmed == *p || trimmed.starts_with(&format!("{p}/")));
    // `/v1/models/{model}:generateContent` is a Gemini call (the SDK's v1 path), not the list.
    if listing && session.req_header().method == http::Method::GET && path_model(&path).is_none() {
        let body = serde_json::to_vec(&router.model_list()).unwrap_or_default();
        return Ok(Err(LocalResponse::json(200, body)));
    }
    let raw = match read_whole_body(session, ctx.max_buffer, format).await? {
        Ok(raw) => raw,
        Err(resp) => return Ok(Err(resp)),
    };
    let body: Value = match path_model(&path) {
        Some(_) => serde_json::from_slice(&raw).unwrap_or(Value::Null),
        None => match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(_) => return Ok(Err(json_error(format, 400, "invalid_request_error", "the request body is not JSON (invalid_request_body)"))),
        },
    };
    let model = path_model(&path).or_else(|| body.get("model").and_then(Value::as_str).map(str::to_string));
    let Some(model) = model else {
        return Ok(Err(json_error(format, 400, "invalid_request_error", "the request names no `model` (missing_model)")));
    };
    let req = session.req_header();
    // Repeated headers are joined with commas, as HTTP allows.
    let mut headers = serde_json::Map::new();
    for name in req.headers.keys() {
        let values: Vec<&str> = req.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        headers.insert(name.as_str().to_string(), values.join(", ").into());
    }
    let host = crate::filters::request_host(req).to_string();
    let uri = req.uri.path_and_query().map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    let request = json!({"method": req.method.as_str(), "path": path, "uri": uri, "host": host, "headers": headers});
    match router.choose(&model, &body, &request, session.req_header()) {
        Ok(backend) => {
            ctx.extensions.insert(PreReadBody(raw));
            Ok(Ok(backend))
        }
        Err(why) => {
            let (status, message) = match why {
                NoModel::NotFound => (404, format!("model `{model}` not found (model_not_found)")),
                NoModel::NotResolved => (404, format!("virtual model `{model}` has no target with weight (virtual_model_not_resolved)")),
                NoModel::NoMatchingTarget => (400, format!("no target of virtual model `{model}` matches this request (virtual_model_no_matching_target)")),
            };
            let kind = if status == 404 { "not_found_error" } else { "invalid_request_error" };
            Ok(Err(json_error(format, status, kind, &message)))
        }
    }
}

use crate::errors::{gemini_path_model as path_model, llm_error_format as error_format};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::ErrorFormat;

    #[test]
    fn gemini_paths_name_the_model() {
        assert_eq!(path_model("/v1beta/models/gemini-2.5-flash:generateContent").as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(path_model("/v1beta/models/g:countTokens").as_deref(), Some("g"));
        assert_eq!(path_model("/v1/chat/completions"), None);
        assert_eq!(path_model("/v1beta/models/a/b:generateContent"), None);
        assert_eq!(error_format("/v1/messages"), ErrorFormat::Anthropic);
    }
}
