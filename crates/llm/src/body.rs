//! Reading a request body before the call (within the body limit, answering `Expect:
//! 100-continue`), token counts the gateway answers itself, and passthrough bodies whose model
//! the backend names.

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;

use tollgate_core::errors::json_error;
use tollgate_core::filters::{FilterAction, RequestCtx};
use tollgate_core::llm::RouteType;
use tollgate_core::runtime::AiTarget;

use crate::{messages, CompletionState};

/// Answers a token count from the gateway's estimate; the body is read whole (bounded by the
/// buffer limit) and never goes upstream.
pub(crate) async fn count_tokens_locally(session: &mut Session, ctx: &mut RequestCtx, kind: RouteType) -> Result<FilterAction> {
    let raw = match ctx.extensions.remove::<tollgate_core::llm::PreReadBody>() {
        Some(body) => body.0,
        None => match read_whole_body(session, ctx).await? {
            Ok(raw) => raw,
            Err(resp) => return Ok(FilterAction::Respond(resp)),
        },
    };
    let estimate = if kind == RouteType::GeminiCountTokens { messages::count::estimate_gemini_tokens(&raw) } else { messages::count::estimate_input_tokens(&raw) };
    match estimate {
        Ok(n) => {
            let answer = if kind == RouteType::GeminiCountTokens { serde_json::json!({"totalTokens": n}) } else { serde_json::json!({"input_tokens": n}) };
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            Ok(FilterAction::Respond(tollgate_core::filters::LocalResponse::json(200, body)))
        }
        Err(msg) => Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
    }
}

/// Reads the whole request body, within the body limit, for Pingora to replay as it is
/// (`tollgate_core::proxy::whole_body`).
pub(crate) async fn read_whole_body(session: &mut Session, ctx: &RequestCtx) -> Result<std::result::Result<Bytes, tollgate_core::filters::LocalResponse>> {
    tollgate_core::proxy::whole_body::read_whole_body(session, ctx.max_buffer, ctx.error_format).await
}

/// A body the `llm:` router read for a path the gateway does not parse (`passthrough`): it
/// goes as it came, with the model the backend names (a virtual model's target, or the
/// entry's `params.model`) in place of the client's.
pub(crate) fn passthrough_model(ai: &AiTarget, ctx: &mut RequestCtx) {
    let Some(model) = ai.model.as_deref() else { return };
    let Some(pre) = ctx.extensions.remove::<tollgate_core::llm::PreReadBody>() else { return };
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice::<serde_json::Value>(&pre.0) else { return };
    if !body.get("model").is_some_and(serde_json::Value::is_string) {
        return;
    }
    body.insert("model".into(), model.into());
    let Ok(bytes) = serde_json::to_vec(&body) else { return };
    ctx.extensions.insert(CompletionState { prepared: Some(Bytes::from(bytes)), ..Default::default() });
}
