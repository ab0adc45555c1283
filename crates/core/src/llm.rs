//! What one LLM exchange did: provider, models, streaming, token usage and timing.
//! Filled in by the AI filter, read by logging and metrics.

use std::time::Duration;

/// The kind of LLM API call, from the `ai.routes` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    /// `/v1/chat/completions`: parsed, model overridden, usage recorded.
    Completions,
    /// `/v1/messages` (Anthropic's Messages API): translated for the provider, usage recorded.
    Messages,
    /// `/v1/messages/count_tokens`: Anthropic's own, or estimated by the gateway.
    AnthropicTokenCount,
    /// `/v1/embeddings`: model overridden, usage recorded.
    Embeddings,
    /// Gemini's `models/{model}:generateContent` / `:streamGenerateContent`: translated.
    GenerateContent,
    /// `/v1/models`: forwarded untouched.
    Models,
    /// Anything else the provider serves: forwarded untouched.
    Passthrough,
    /// Forwarded untouched, but the request's model and the answer's model and usage are read
    /// (whole or streamed) for telemetry, cost and limits (`detect`).
    Detect,
    /// OpenAI's Responses API (`/v1/responses`), stateless: native or translated.
    Responses,
    /// A rerank (`/v1/rerank`, `/v2/rerank`: Cohere's shape, as Jina, vLLM and others serve
    /// it): model overridden, usage recorded.
    Rerank,
    /// Gemini's `models/{model}:countTokens`: Gemini's own, or the gateway's estimate.
    GeminiCountTokens,
}

/// The API an `ai` backend's provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AiProvider {
    /// OpenAI's (and every OpenAI-compatible server's) Chat Completions.
    #[default]
    OpenAi,
    /// Anthropic's Messages.
    Anthropic,
    /// Google AI Studio's Gemini `generateContent`.
    Gemini,
    /// Amazon Bedrock's Converse.
    Bedrock,
}

impl AiProvider {
    /// The name in telemetry (`gen_ai.provider.name`).
    pub fn name(self) -> &'static str {
        match self {
            AiProvider::OpenAi => "openai",
            AiProvider::Anthropic => "anthropic",
            AiProvider::Gemini => "gcp.gemini",
            AiProvider::Bedrock => "aws.bedrock",
        }
    }
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub input_tokens: u64,
    /// Completion (output) tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Prompt tokens served from the provider's cache, when reported.
    pub cached_input_tokens: Option<u64>,
    /// Prompt tokens written to the provider's cache, when reported (inside `input_tokens`).
    pub cache_creation_input_tokens: Option<u64>,
    /// Reasoning tokens, when reported.
    pub reasoning_tokens: Option<u64>,
}

/// Sampling parameters from the request, for logs and span attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmParams {
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `max_tokens` or `max_completion_tokens`.
    pub max_tokens: Option<u64>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `seed`.
    pub seed: Option<i64>,
}

/// A request body the gateway read before the backend's filters ran (the `llm:` router reads
/// it to find the model); the `ai` filter takes it instead of reading again.
#[derive(Debug, Clone)]
pub struct PreReadBody(pub bytes::Bytes);

/// The record of one LLM exchange.
#[derive(Debug, Clone)]
pub struct LlmExchange {
    /// Provider name (`openai`).
    pub provider: &'static str,
    /// The API the provider speaks.
    pub provider_api: AiProvider,
    /// Backend name from the config.
    pub backend: String,
    /// What kind of call it is.
    pub route: RouteType,
    /// Model the client asked for.
    pub request_model: Option<String>,
    /// Model sent upstream, when the gateway replaced it.
    pub override_model: Option<String>,
    /// Model the provider says answered.
    pub response_model: Option<String>,
    /// Whether the client asked for a stream.
    pub streaming: bool,
    /// Token usage, once known.
    pub usage: Option<Usage>,
    /// Sampling parameters.
    pub params: LlmParams,
    /// Time from request start to the first response body bytes.
    pub time_to_first_byte: Option<Duration>,
    /// The prompt messages, when telemetry asks for them.
    pub prompt: Option<Vec<PromptMessage>>,
    /// The completion text per choice, when telemetry asks for it.
    pub completion: Option<Vec<String>>,
    /// Providers of an `ai.groups` backend that failed in this request (and were evicted).
    pub failed_attempts: Vec<FailedAttempt>,
    /// What the exchange cost, when its model is priced (set when the request ends).
    pub cost: Option<crate::cost::Cost>,
    /// Prompt tokens the gateway estimated from the request at admission (token limits and
    /// budgets reserve these and settle with `usage` at the end).
    pub estimated_input_tokens: Option<u64>,
    /// Completion tokens this request may still produce (a budget's remainder); a stream
    /// that passes it is ended with an error event.
    pub completion_allowance: Option<u64>,
    /// Completion tokens counted on the stream (estimated from its text) when an allowance
    /// is enforced: what a stream cut short used, when no usage report came.
    pub counted_output_tokens: Option<u64>,
}

/// A provider attempt that failed: failed over when another provider was left, else the
/// answer the client got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    /// The provider's backend name.
    pub backend: String,
    /// Why: the status (`429`, `503`…), `connect`, `timeout` or `io`.
    pub reason: String,
}

/// One prompt message as logged: role and text content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PromptMessage {
    /// `system`, `user`, `assistant`, `tool`.
    pub role: String,
    /// Text content (parts joined); non-text parts are left out.
    pub content: String,
}

impl LlmExchange {
    /// A fresh record for a call to `backend` of kind `route`.
    pub fn new(provider: &'static str, backend: &str, route: RouteType) -> Self {
        LlmExchange {
            provider,
            provider_api: AiProvider::default(),
            backend: backend.to_string(),
            route,
            request_model: None,
            override_model: None,
            response_model: None,
            streaming: false,
            usage: None,
            params: LlmParams::default(),
            time_to_first_byte: None,
            prompt: None,
            completion: None,
            failed_attempts: Vec::new(),
            cost: None,
            estimated_input_tokens: None,
            completion_allowance: None,
            counted_output_tokens: None,
        }
    }
}
