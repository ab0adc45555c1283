//! Admission of an LLM request by policies that run before its body is read (token rate
//! limits, budgets): such a policy registers an [`LlmAdmission`] in `on_request`, and the LLM
//! filter runs the registered ones once it has parsed the request and estimated its prompt,
//! before anything goes upstream. The policy crates and the LLM crate meet here, in the core,
//! without depending on each other.

use std::sync::Arc;

use crate::ctx::RequestCtx;
use crate::filters::LocalResponse;

/// What the LLM filter knows about a request when it asks for admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEstimate {
    /// Prompt tokens, estimated from the request body.
    pub prompt: u64,
}

/// A check that needs the LLM request's token estimate.
#[async_trait::async_trait]
pub trait LlmAdmission: Send + Sync {
    /// Admits the request (reserving what it will need) or answers it with an error.
    async fn admit(&self, estimate: TokenEstimate, ctx: &mut RequestCtx) -> Result<(), LocalResponse>;
}

/// The admissions registered for this request, in the order their policies ran.
#[derive(Default, Clone)]
pub struct LlmAdmissions(Vec<Arc<dyn LlmAdmission>>);

impl LlmAdmissions {
    /// Registers `check` to run when the LLM request is parsed.
    pub fn register(ctx: &mut RequestCtx, check: Arc<dyn LlmAdmission>) {
        match ctx.extensions.get_mut::<LlmAdmissions>() {
            Some(list) => list.0.push(check),
            None => {
                ctx.extensions.insert(LlmAdmissions(vec![check]));
            }
        }
    }

    /// Runs every registered check (once: they are taken); the first refusal is the answer.
    pub async fn run(ctx: &mut RequestCtx, estimate: TokenEstimate) -> Result<(), LocalResponse> {
        if let Some(llm) = ctx.llm.as_mut() {
            llm.estimated_input_tokens = Some(estimate.prompt);
        }
        let Some(list) = ctx.extensions.remove::<LlmAdmissions>() else { return Ok(()) };
        for check in &list.0 {
            check.admit(estimate, ctx).await?;
        }
        Ok(())
    }
}
