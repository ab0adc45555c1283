//! Admission of a parsed LLM request by the caller's API key and by the policies that
//! registered a token check (`tollgate_core::admission`): the key's `allowedModels` (403
//! naming the model), then token limits and budgets with the prompt's estimate.

use tollgate_core::admission::{LlmAdmissions, TokenEstimate};
use tollgate_core::errors::json_error;
use tollgate_core::filters::{LocalResponse, RequestCtx};
use tollgate_core::llm::RouteType;

use crate::messages::count;

/// Bytes per token where the request's shape gives nothing better.
const BYTES_PER_TOKEN: u64 = 4;

/// `Err(answer)` when the request may not go on.
pub async fn admit(raw: &[u8], ctx: &mut RequestCtx) -> Result<(), LocalResponse> {
    let Some(llm) = ctx.llm.as_ref() else { return Ok(()) };
    if let Some(claims) = &ctx.api_key {
        // The model the client asked for (an `llm:` model name), else the one it is sent as.
        if let Some(model) = llm.request_model.as_deref().or(llm.override_model.as_deref()) {
            if !claims.allows_model(model) {
                let msg = format!("this API key may not use model `{model}`");
                return Err(json_error(ctx.error_format, 403, "permission_denied", &msg));
            }
        }
    }
    if ctx.extensions.get::<LlmAdmissions>().is_none() {
        return Ok(());
    }
    let prompt = match llm.route {
        RouteType::Completions => count::estimate_chat(raw).ok(),
        RouteType::Messages => count::estimate_input_tokens(raw).ok(),
        RouteType::GenerateContent => count::estimate_gemini_tokens(raw).ok(),
        _ => None,
    }
    .unwrap_or_else(|| (raw.len() as u64).div_ceil(BYTES_PER_TOKEN));
    let estimate = TokenEstimate { prompt };
    LlmAdmissions::run(ctx, estimate).await
}
