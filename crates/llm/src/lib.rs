//! The `ai` policy: LLM handling for an `ai` backend. It classifies each call with the
//! `ai.routes` suffix table; chat completions get the model override, usage injection for
//! streams and token accounting; calls whose API differs from the provider's (a Messages
//! client on an OpenAI provider, a Chat client on an Anthropic one) are translated both ways
//! (`translation.rs`); `models` and `passthrough` calls are forwarded untouched.

mod admit;
mod allowance;
mod answer;
pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod body_policy;
pub mod failover;
pub mod first_event;
pub mod gemini;
pub mod generate;
mod body;
mod headers;
mod members;
mod observe;
mod paths;
pub mod messages;
pub mod prompt_caching;
pub mod request;
pub mod responses;
pub mod translation;
pub mod usage;
pub mod vertex;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use indexmap::IndexMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{set_request_path, BodyAccess, Filter, FilterAction, RequestCtx};
use tollgate_core::config::types::Unsupported;
use tollgate_core::ctx::TlsPlan;
use tollgate_core::ctx::ErrorFormat;
use tollgate_core::errors::json_error;
use tollgate_core::llm::{AiProvider, LlmExchange, RouteType};
use tollgate_core::runtime::{AiTarget, BackendTarget};
use usage::SseSplitter;

use body::{count_tokens_locally, passthrough_model, read_whole_body};
use headers::{anthropic_headers, bearer_to_header, bedrock_headers};
pub(crate) use paths::{azure_upstream_path, gemini_path, gemini_pq, native_generate_pq, replace_path_and_query, strip_query, upstream_path};

/// Registry entry for `ai`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "ai",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 200,
    build: |d| build_with(d, |c: AiPolicyConfig| AiPolicy::compile(c)),
};

/// The YAML block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiPolicyConfig {
    /// Path suffix → route type; `"*"` matches everything else.
    pub routes: Option<IndexMap<String, RouteTypeName>>,
    /// Not supported yet.
    pub prompt_guard: Option<Unsupported>,
    /// Request body fields set when the client did not (top-level keys).
    pub defaults: Option<serde_json::Map<String, serde_json::Value>>,
    /// Request body fields set always (top-level keys).
    pub overrides: Option<serde_json::Map<String, serde_json::Value>>,
    /// Not supported yet.
    pub transformations: Option<Unsupported>,
    /// Not supported yet.
    pub final_transformations: Option<Unsupported>,
    /// Messages added before and after the client's.
    pub prompts: Option<body_policy::PromptEnrichment>,
    /// Requested model → model sent (`*` wildcards; exact keys first).
    pub model_aliases: Option<IndexMap<String, String>>,
    /// Cache markers for Anthropic and Bedrock.
    pub prompt_caching: Option<prompt_caching::PromptCaching>,
}

/// Route type names as agentgateway spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteTypeName {
    /// Chat completions.
    Completions,
    /// Model listing.
    Models,
    /// Untouched.
    Passthrough,
    /// Anthropic Messages, translated for the provider.
    Messages,
    /// Untouched, with model and usage read.
    Detect,
    /// OpenAI's Responses API, native or translated.
    Responses,
    /// Embeddings: model override and usage.
    Embeddings,
    /// Not supported yet.
    Realtime,
    /// Anthropic's token count: the provider's own, or the gateway's estimate.
    AnthropicTokenCount,
    /// Gemini's generateContent / streamGenerateContent, translated for the provider.
    GenerateContent,
    /// Gemini's token count: the provider's own, or the gateway's estimate.
    GeminiCountTokens,
    /// A rerank: model override and usage.
    Rerank,
}

/// Compiled `ai` policy.
#[derive(Debug, Default)]
pub struct AiPolicy {
    /// `None`: every path is a completion (agentgateway's default for the binds dialect).
    routes: Option<Vec<(String, RouteType)>>,
    /// `modelAliases`, `defaults`, `overrides`, `prompts`, when any is set.
    body: Option<body_policy::BodyPolicy>,
    /// `promptCaching`.
    caching: Option<prompt_caching::PromptCaching>,
}

impl AiPolicy {
    fn compile(c: AiPolicyConfig) -> std::result::Result<Self, String> {
        let body = body_policy::BodyPolicy::compile(c.model_aliases, c.defaults, c.overrides, c.prompts);
        let caching = c.prompt_caching;
        let Some(routes) = c.routes else { return Ok(AiPolicy { routes: None, body, caching }) };
        let mut out = Vec::new();
        for (suffix, name) in routes {
            let kind = match name {
                RouteTypeName::Completions => RouteType::Completions,
                RouteTypeName::Models => RouteType::Models,
                RouteTypeName::Passthrough => RouteType::Passthrough,
                RouteTypeName::Detect => RouteType::Detect,
                RouteTypeName::Messages => RouteType::Messages,
                RouteTypeName::AnthropicTokenCount => RouteType::AnthropicTokenCount,
                RouteTypeName::Embeddings => RouteType::Embeddings,
                RouteTypeName::GenerateContent => RouteType::GenerateContent,
                RouteTypeName::Responses => RouteType::Responses,
                RouteTypeName::Rerank => RouteType::Rerank,
                RouteTypeName::GeminiCountTokens => RouteType::GeminiCountTokens,
                other => return Err(format!("route type `{other:?}` for `{suffix}` is not supported yet")),
            };
            out.push((suffix, kind));
        }
        // Longest suffix wins; "*" is the fallback.
        out.sort_by_key(|(s, _)| std::cmp::Reverse(if s == "*" { 0 } else { s.len() + 1 }));
        Ok(AiPolicy { routes: Some(out), body, caching })
    }

    /// The route type for a request path, or `None` when the table has no entry for it.
    pub fn route_type(&self, path: &str) -> Option<RouteType> {
        let Some(routes) = &self.routes else { return Some(RouteType::Completions) };
        routes.iter().find(|(s, _)| s == "*" || path.ends_with(s.as_str())).map(|(_, k)| *k)
    }
}

/// Below this many bytes a rewritten body is one copied buffer; from it on, the stretches of
/// the client's body between replaced values are lent to Pingora uncopied
/// ([`AiPolicy::lends_parts`]): one write more upstream, against a copy of the whole prompt.
const LEND_MIN: usize = 64 * 1024;

/// Per-request state of a chat completion.
#[derive(Default, Clone)]
struct CompletionState {
    /// The rewritten body, when the whole request was read before anything went upstream.
    prepared: Option<Bytes>,
    /// The rewritten body's length when it was lent to Pingora in pieces instead (they pass
    /// the body filter untouched).
    lent: Option<usize>,
    injected_usage: bool,
    response: ResponseMode,
    response_body: Vec<u8>,
    sse: SseSplitter,
    /// The answer's translation, when the client's API is not the provider's.
    answer: translation::TranslatedAnswer,
    /// A `detect` call: the request body as it streams by (up to the body limit), read for
    /// its model once whole; nothing is rewritten.
    detect: Option<Vec<u8>>,
    /// The stream passed its completion allowance and was ended (see `allowance.rs`).
    cut: bool,
}

#[derive(Default, Clone, PartialEq, Eq)]
enum ResponseMode {
    /// Not a successful completion: pass through untouched.
    #[default]
    Untouched,
    /// One JSON document.
    Json,
    /// Server-sent events.
    Sse,
}

impl AiPolicy {
    /// Rewrites a completion request body (or translates it for the provider), records what
    /// it says on the exchange, and readies the answer's translation.
    fn rewrite(&self, raw: &[u8], ctx: &mut RequestCtx) -> std::result::Result<(request::RewrittenRequest, translation::Translation), String> {
        let (mut rewritten, t) = self.translate(raw, ctx)?;
        if let (Some(c), Some(llm)) = (&self.caching, ctx.llm.as_ref()) {
            let bedrock_model = t.bedrock_route().map(|(m, _)| m);
            rewritten.body = c.apply(llm.provider_api, llm.route, std::mem::take(&mut rewritten.body), bedrock_model);
        }
        Ok((rewritten, t))
    }

    /// Whether a body is rewritten as pieces lent to Pingora ([`Self::rewrite_parts`]): a large
    /// Chat Completions body for an OpenAI-shaped provider, with nothing else that needs the
    /// body whole (body rules, prompt caching, Vertex, failover) or the client's own bytes
    /// replayed (request-body logging).
    fn lends_parts(&self, ai: &AiTarget, raw: &Bytes, ctx: &RequestCtx) -> bool {
        raw.len() >= LEND_MIN
            && self.body.is_none()
            && self.caching.is_none()
            && ai.vertex.is_none()
            && !ctx.needs.request_body
            && ctx.extensions.get::<failover::Failover>().is_none()
            && ctx.llm.as_ref().is_some_and(|l| l.provider_api == AiProvider::OpenAi && l.route == RouteType::Completions)
    }

    /// [`Self::rewrite`] for a body [`Self::lends_parts`] chose: the new body as pieces of
    /// `raw` around the replaced values, the prompt itself uncopied.
    fn rewrite_parts(&self, raw: &Bytes, ctx: &mut RequestCtx) -> std::result::Result<(request::RewrittenRequest, Vec<Bytes>), String> {
        let want_prompt = ctx.needs.llm_prompt;
        let Some(llm) = ctx.llm.as_mut() else { return Err("not an LLM call".into()) };
        let (mut r, parts) = request::rewrite_completion_request_parts(raw, llm.override_model.as_deref(), want_prompt, LEND_MIN)?;
        llm.request_model = r.request_model.take();
        llm.streaming = r.streaming;
        llm.params = std::mem::take(&mut r.params);
        llm.prompt = r.prompt.take();
        Ok((r, parts))
    }

    /// The body rules, then the translation for the provider.
    fn translate(&self, raw: &[u8], ctx: &mut RequestCtx) -> std::result::Result<(request::RewrittenRequest, translation::Translation), String> {
        let want_prompt = ctx.needs.llm_prompt;
        let path = ctx.original_path.clone();
        let Some(llm) = ctx.llm.as_mut() else { return Err("not an LLM call".into()) };
        let model = llm.override_model.clone();
        let Some(rules) = &self.body else {
            return translation::translate_request(llm.provider_api, llm.route, &path, raw, model.as_deref(), llm, want_prompt);
        };
        // The rules rewrite the client's own body first; the model is in it now, except for
        // generateContent, whose path names it.
        let (ruled, client_model) = rules.apply(raw, llm.route, model.as_deref())?;
        let model = match llm.route {
            RouteType::GenerateContent => {
                let path_model = generate::request::model_in_path(&path).map(|(m, _)| m);
                let effective = model.or(path_model);
                effective.as_deref().map(|m| rules.alias(m).unwrap_or(m).to_string())
            }
            _ => None,
        };
        let out = translation::translate_request(llm.provider_api, llm.route, &path, &ruled, model.as_deref(), llm, want_prompt)?;
        if llm.route != RouteType::GenerateContent {
            llm.request_model = client_model;
        }
        Ok(out)
    }

    /// The model the client asked for: in a generateContent path (aliased), else in the body.
    fn client_model(&self, kind: RouteType, path: &str, raw: &[u8]) -> Option<String> {
        match kind {
            RouteType::GenerateContent => generate::request::model_in_path(path).map(|(m, _)| self.generate_model(&m)),
            _ => vertex::peek_model(raw).map(|m| self.body.as_ref().and_then(|b| b.alias(&m)).unwrap_or(&m).to_string()),
        }
    }

    /// A Vertex call's body and path, once the body is translated for the model's family.
    fn vertex_plan(&self, ai: &AiTarget, v: &tollgate_core::runtime::VertexTarget, t: &translation::Translation, body: Vec<u8>, ctx: &RequestCtx) -> std::result::Result<(Vec<u8>, String), String> {
        let llm = ctx.llm.as_ref().ok_or("not an LLM call")?;
        if llm.provider_api == AiProvider::Anthropic {
            let (body, model) = vertex::anthropic_body(&body)?;
            let model = vertex::path_model(&model.ok_or("`model` is required")?)?;
            return Ok((body, vertex::pq(v, AiProvider::Anthropic, &model, false, llm.streaming)));
        }
        let (model, stream) = match t {
            translation::Translation::NativeGenerate => {
                let (m, s) = generate::request::model_in_path(&ctx.original_path).ok_or("the path names no model")?;
                (self.generate_model(ai.model.as_deref().unwrap_or(&m)), s)
            }
            _ => (t.gemini_path_model().ok_or("this call has no Gemini translation")?.to_string(), true),
        };
        Ok((body, vertex::pq(v, AiProvider::Gemini, &vertex::path_model(&model)?, stream, false)))
    }

    /// The model a generateContent path names, aliased.
    fn generate_model(&self, model: &str) -> String {
        self.body.as_ref().and_then(|b| b.alias(model)).unwrap_or(model).to_string()
    }
}

#[async_trait]
impl Filter for AiPolicy {
    fn body_access(&self) -> BodyAccess {
        BodyAccess { request: true, response: true }
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        // One reference-count increment; the target itself is not copied.
        let Some(backend) = ctx.backend.clone() else { return Ok(FilterAction::Continue) };
        match &backend.target {
            BackendTarget::Ai(ai) => self.start(session, ctx, ai).await,
            BackendTarget::AiGroups(groups) => {
                let Some(first) = groups.next(&[], Instant::now()) else {
                    return Ok(FilterAction::Respond(json_error(ctx.error_format, 503, "no_backend", "the ai backend has no provider")));
                };
                failover::fetch_tokens(groups, ctx.deadline).await;
                let base_key = ctx.extensions.get::<Arc<tollgate_core::filters::backend_auth::location::PlacedKey>>().cloned();
                failover::use_credential(&first, base_key.as_ref(), ctx);
                ctx.extensions.insert(failover::Failover::new(groups.clone(), first.clone(), ctx.upstream.tls.clone(), base_key));
                if let Some(tls) = &first.tls {
                    ctx.upstream.tls = Some(tls.clone());
                }
                self.start(session, ctx, &first.target).await
            }
            _ => Ok(FilterAction::Continue),
        }
    }

    fn on_upstream_error(&self, error: &pingora::Error, replayable: bool, ctx: &mut RequestCtx) -> bool {
        failover::on_upstream_error(self, error, replayable, ctx)
    }

    fn on_upstream_request(&self, req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
        failover::on_upstream_request(req, ctx)?;
        self.upstream_request(req, ctx)
    }

    fn on_request_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<()> {
        failover::count_body(body.as_ref().map_or(0, |b| b.len()), ctx);
        self.request_body(body, end, ctx)
    }

    fn on_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        failover::on_response(resp, ctx)?;
        self.response(resp, ctx)
    }

    fn on_response_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<()> {
        failover::on_first_chunk(body.as_deref().unwrap_or_default(), end, ctx)?;
        self.response_body(body, end, ctx)
    }
}

impl AiPolicy {
    /// Readies the request for provider `ai`: where it goes, the path, the body's translation.
    async fn start(&self, session: &mut Session, ctx: &mut RequestCtx, ai: &AiTarget) -> Result<FilterAction> {
        ctx.upstream.host.clone_from(&ai.host);
        ctx.upstream.port = ai.port;
        if !ai.host_overridden && ctx.upstream.tls.is_none() {
            // The provider's public endpoint: TLS with the system roots unless backendTLS says otherwise.
            ctx.upstream.tls = Some(Arc::new(TlsPlan::default()));
        }
        let Some(kind) = self.route_type(&ctx.original_path) else {
            let msg = format!("no ai route for path {}", ctx.original_path);
            return Ok(FilterAction::Respond(json_error(ctx.error_format, 404, "not_found", &msg)));
        };
        // A custom provider serves the call as the provider of the API it picks for it.
        let ai = match ai.for_route(kind) {
            Ok(t) => t,
            Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
        };
        let ai: &AiTarget = &ai;
        let mut exchange = LlmExchange::new(ai.provider_name, &ai.name, kind);
        exchange.provider_api = ai.provider;
        exchange.override_model = ai.model.clone();
        ctx.llm = Some(exchange);
        if kind == RouteType::GenerateContent {
            ctx.error_format = ErrorFormat::Google;
        }
        if matches!(kind, RouteType::Messages | RouteType::AnthropicTokenCount) {
            ctx.error_format = ErrorFormat::Anthropic;
            if session.req_header().method != http::Method::POST {
                let msg = "the Messages API takes POST";
                return Ok(FilterAction::Respond(json_error(ctx.error_format, 405, "invalid_request_error", msg)));
            }
        }
        if kind == RouteType::GeminiCountTokens {
            ctx.error_format = ErrorFormat::Google;
            if session.req_header().method != http::Method::POST {
                return Ok(FilterAction::Respond(json_error(ctx.error_format, 405, "invalid_request_error", "countTokens takes POST")));
            }
        }
        // A provider without the client's token count API: the gateway's estimate.
        let counts_locally = match kind {
            RouteType::AnthropicTokenCount => ai.provider != AiProvider::Anthropic || ai.vertex.is_some(),
            RouteType::GeminiCountTokens => ai.provider != AiProvider::Gemini || ai.vertex.is_some(),
            _ => false,
        };
        if counts_locally {
            return count_tokens_locally(session, ctx, kind).await;
        }
        if ai.vertex.is_some() && kind == RouteType::Embeddings {
            return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", "embeddings on the vertex provider are not supported yet")));
        }
        if ai.azure.is_some() && kind == RouteType::Rerank {
            return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", "the azure provider has no rerank API")));
        }
        if let Some(msg) = refusal(ai.provider, kind) {
            return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", msg)));
        }
        let mut azure_needs_model = false;
        if ai.vertex.is_some() {
            // The model names the path and picks the API: set once it is known (below).
        } else if let Some(paths) = &ai.azure {
            match azure_upstream_path(ai, paths, kind) {
                Ok(azure::AzurePath::Set(pq)) => replace_path_and_query(session.req_header_mut(), &pq)?,
                Ok(azure::AzurePath::Keep) => {}
                Ok(azure::AzurePath::NeedsModel) => azure_needs_model = true,
                Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
            }
        } else if ai.provider == AiProvider::Gemini && matches!(kind, RouteType::GenerateContent | RouteType::GeminiCountTokens) {
            match native_generate_pq(ai, &ctx.original_path, self) {
                Ok(pq) => replace_path_and_query(session.req_header_mut(), &pq)?,
                Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
            }
        } else {
            if let Some(path) = upstream_path(ai, kind, &ctx.original_path) {
                set_request_path(session.req_header_mut(), &path)?;
            }
            if translation::is_translated(ai.provider, kind) {
                // The query belongs to the client's API (`?beta=true`), not to the provider's.
                strip_query(session.req_header_mut())?;
            }
        }
        if kind == RouteType::Detect {
            // As it is: the body is only watched on its way (model), the answer read for usage.
            ctx.extensions.insert(CompletionState { detect: Some(Vec::new()), ..Default::default() });
            return Ok(FilterAction::Continue);
        }
        let rewritten_kinds = [RouteType::Completions, RouteType::Messages, RouteType::AnthropicTokenCount, RouteType::Embeddings, RouteType::GenerateContent, RouteType::Responses, RouteType::Rerank];
        if !rewritten_kinds.contains(&kind) || session.req_header().method != http::Method::POST {
            passthrough_model(ai, ctx);
            return Ok(FilterAction::Continue);
        }
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let pre_read = ctx.extensions.remove::<tollgate_core::llm::PreReadBody>();
        if pre_read.as_ref().map_or_else(|| session.is_body_empty(), |b| b.0.is_empty()) {
            // Refused here, before anything (credentials included) goes upstream.
            return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", "the request body is empty")));
        }
        if declared.is_some_and(|n| n > ctx.max_buffer) {
            let msg = format!("request body exceeds the {} byte limit", ctx.max_buffer);
            return Ok(FilterAction::Respond(json_error(ctx.error_format, 413, "request_too_large", &msg)));
        }
        let mut state = CompletionState::default();
        {
            // The whole body is read and checked before anything goes upstream: nothing
            // invalid (and no credential) leaves, the path and signature can depend on it, and
            // failover can send it again. Pingora replays it to the body filter from its retry
            // buffer (patched to hold up to the body limit; see vendor/README.md).
            let raw = match pre_read {
                Some(body) => body.0,
                None => match read_whole_body(session, ctx).await? {
                    Ok(raw) => raw,
                    Err(resp) => return Ok(FilterAction::Respond(resp)),
                },
            };
            if ai.vertex.is_some() {
                // The model's family picks the API the body is translated for.
                let model = ai.model.clone().or_else(|| self.client_model(kind, &ctx.original_path, &raw));
                let Some(model) = model else {
                    return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", "`model` is required")));
                };
                if let Some(llm) = ctx.llm.as_mut() {
                    llm.provider_api = vertex::family(&model);
                }
            }
            let mut lent = None;
            let rewritten = if self.lends_parts(ai, &raw, ctx) {
                self.rewrite_parts(&raw, ctx).map(|(r, parts)| {
                    lent = Some(parts);
                    (r, translation::Translation::None)
                })
            } else {
                self.rewrite(&raw, ctx)
            };
            if rewritten.is_ok() {
                if let Err(resp) = admit::admit(&raw, ctx).await {
                    return Ok(FilterAction::Respond(resp));
                }
            }
            match rewritten {
                Ok((rewritten, t)) => {
                    state.injected_usage = rewritten.injected_usage;
                    let mut body = rewritten.body;
                    if let Some(v) = &ai.vertex {
                        match self.vertex_plan(ai, v, &t, body, ctx) {
                            Ok((b, pq)) => {
                                body = b;
                                replace_path_and_query(session.req_header_mut(), &pq)?;
                            }
                            Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
                        }
                    } else if let translation::Translation::EmbeddingsOverGemini(model, _) = &t {
                        let prefix = ai.path_prefix.as_deref().unwrap_or("/v1beta").trim_end_matches('/');
                        replace_path_and_query(session.req_header_mut(), &format!("{prefix}/models/{model}:batchEmbedContents"))?;
                    } else if let Some(model) = t.gemini_path_model() {
                        gemini_path(session.req_header_mut(), ai, model)?;
                    } else if let Some((model, streaming)) = t.bedrock_route() {
                        match bedrock::path(ai.path_prefix.as_deref(), model, streaming) {
                            Ok(pq) => replace_path_and_query(session.req_header_mut(), &pq)?,
                            Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
                        }
                    }
                    match lent {
                        Some(parts) => {
                            let len = parts.iter().map(Bytes::len).sum();
                            match session.set_retry_body_parts(parts) {
                                // Pingora sends the pieces as they are (the body filter lets them pass).
                                Ok(()) => state.lent = Some(len),
                                Err(parts) => state.prepared = Some(Bytes::from(parts.concat())),
                            }
                        }
                        None => state.prepared = Some(Bytes::from(body)),
                    }
                    state.answer.translation = t;
                    if let Some(f) = ctx.extensions.get_mut::<failover::Failover>() {
                        // Kept to translate again for another provider.
                        f.raw = Some(raw);
                    }
                }
                Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
            }
        }
        if azure_needs_model {
            // A dated API version names the deployment in the path: the request's model.
            let model = ctx.llm.as_ref().and_then(|l| l.override_model.clone().or_else(|| l.request_model.clone()));
            let Some(model) = model else {
                let msg = "`model` is required: the azure provider's dated apiVersion names the deployment in the path";
                return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", msg)));
            };
            let Some(paths) = &ai.azure else { return Ok(FilterAction::Continue) };
            match azure::path(paths, kind, Some(&model)) {
                Ok(azure::AzurePath::Set(pq)) => replace_path_and_query(session.req_header_mut(), &pq)?,
                Ok(_) => {}
                Err(msg) => return Ok(FilterAction::Respond(json_error(ctx.error_format, 400, "invalid_request_error", &msg))),
            }
        }
        ctx.extensions.insert(state);
        Ok(FilterAction::Continue)
    }

    fn upstream_request(&self, req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
        if let Some(state) = ctx.extensions.get::<CompletionState>() {
            // The body is rewritten, so its length changes (it is known: the body was read whole).
            match (&state.prepared, state.lent) {
                (Some(body), _) => req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?,
                (None, Some(len)) => req.insert_header(http::header::CONTENT_LENGTH, len.to_string())?,
                (None, None) if state.detect.is_some() => {}
                (None, None) => {
                    req.remove_header(&http::header::CONTENT_LENGTH);
                }
            }
            // Usage is read from the response: ask for it uncompressed.
            req.remove_header(&http::header::ACCEPT_ENCODING);
            if state.answer.translation.client_api_differs() && matches!(ctx.llm.as_ref().map(|l| l.route), Some(RouteType::Messages | RouteType::GenerateContent)) {
                // The client spoke another API to the gateway: its key and API headers are
                // not the provider's (backendAuth sets the provider's credential).
                req.remove_header("x-api-key");
                req.remove_header("x-goog-api-key");
                let anthropic: Vec<_> = req.headers.keys().filter(|k| k.as_str().starts_with("anthropic-")).cloned().collect();
                for name in anthropic {
                    req.remove_header(&name);
                }
            }
        }
        if ctx.llm.as_ref().is_some_and(|l| l.provider_api == AiProvider::Bedrock) {
            return bedrock_headers(req, ctx);
        }
        if ctx.llm.as_ref().is_some_and(|l| l.provider == vertex::PROVIDER_NAME) {
            // Vertex takes the Google access token as it is (`Authorization: Bearer`); API
            // keys the client sent for other APIs are not Google's.
            req.remove_header("x-api-key");
            req.remove_header("x-goog-api-key");
            return Ok(());
        }
        // A key with an explicit `location` is where the config says, untouched (as agentgateway).
        let explicit = ctx.extensions.get::<Arc<tollgate_core::filters::backend_auth::location::PlacedKey>>().is_some();
        if explicit {
            // The client's keys were for the gateway; the provider's key goes where the config says.
            for name in ["authorization", "x-api-key", "x-goog-api-key"] {
                req.remove_header(name);
            }
        }
        match ctx.llm.as_ref().map(|l| l.provider_api) {
            Some(AiProvider::Anthropic) if explicit => {
                if !req.headers.contains_key("anthropic-version") {
                    req.insert_header("anthropic-version", "2023-06-01")?;
                }
            }
            Some(AiProvider::Anthropic) => anthropic_headers(req)?,
            Some(AiProvider::Gemini) if !explicit => bearer_to_header(req, "x-goog-api-key")?,
            _ => {}
        }
        Ok(())
    }

    fn request_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<()> {
        let max_buffer = ctx.max_buffer;
        let Some(state) = ctx.extensions.get_mut::<CompletionState>() else { return Ok(()) };
        if let Some(seen) = state.detect.as_mut() {
            if let Some(b) = body.as_ref() {
                let room = max_buffer.saturating_sub(seen.len());
                seen.extend_from_slice(&b[..b.len().min(room)]);
            }
            if end {
                let seen = std::mem::take(seen);
                if let Some(llm) = ctx.llm.as_mut() {
                    detected_request(&seen, llm);
                }
            }
            return Ok(());
        }
        if let Some(prepared) = &state.prepared {
            // Pingora replays what was read in `on_request` (its retry buffer): send the
            // rewritten body instead, once.
            *body = Some(if end { prepared.clone() } else { Bytes::new() });
        }
        Ok(())
    }
}

/// What a `detect` call's body says: its model and whether it streams (when it is JSON).
fn detected_request(body: &[u8], llm: &mut LlmExchange) {
    #[derive(serde::Deserialize)]
    struct Seen {
        model: Option<String>,
        stream: Option<bool>,
    }
    if let Ok(seen) = serde_json::from_slice::<Seen>(body) {
        llm.request_model = seen.model;
        llm.streaming = seen.stream.unwrap_or(false);
    }
}

/// Why provider API `provider` cannot serve a call of `kind` (a 400), if it cannot.
fn refusal(provider: AiProvider, kind: RouteType) -> Option<&'static str> {
    // Token counts are answered by the gateway where the provider has no such API.
    let counts = matches!(kind, RouteType::AnthropicTokenCount | RouteType::GeminiCountTokens);
    match (provider, kind) {
        (AiProvider::Gemini | AiProvider::Anthropic, RouteType::Rerank) => Some("the provider has no rerank API"),
        (AiProvider::Bedrock, RouteType::Rerank) => Some("rerank on the bedrock provider (its agent runtime's Rerank) is not supported yet"),
        (AiProvider::Gemini, k) if !counts && !matches!(k, RouteType::Completions | RouteType::Messages | RouteType::GenerateContent | RouteType::Responses | RouteType::Embeddings | RouteType::Passthrough | RouteType::Detect) => {
            Some("the gemini provider serves chat completions, messages, responses, generateContent, embeddings and token counts so far")
        }
        (AiProvider::Anthropic, RouteType::Embeddings) => Some("the anthropic provider has no embeddings API"),
        (AiProvider::Bedrock, k) if !counts && !matches!(k, RouteType::Completions | RouteType::Messages | RouteType::GenerateContent | RouteType::Responses | RouteType::Passthrough | RouteType::Detect) => {
            Some("the bedrock provider serves chat completions, messages, responses, generateContent and token counts so far")
        }
        _ => None,
    }
}
