//! Failover between the providers of an `ai.groups` backend, within one request. A provider
//! that answers 429 or 5xx, cannot be reached, breaks the connection or times out before the
//! client has seen anything is evicted (see `tollgate_core::runtime::ai_groups`) and the request
//! is planned again for the next provider: its host, TLS and credentials, its path, and the
//! client's body translated afresh for its API. Pingora then sends it (`Filter::on_upstream_error`).
//! Only a body that can be sent again qualifies: a completion's (read whole before the first
//! attempt, any size up to the body limit), or another body up to Pingora's 64 KiB retry buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

use tollgate_core::ctx::TlsPlan;
use tollgate_core::filters::backend_auth::location::PlacedKey;
use tollgate_core::filters::{is_retry_error, retry_error, RequestCtx};
use tollgate_core::llm::{AiProvider, FailedAttempt, LlmExchange, RouteType};
use tollgate_core::runtime::ai_groups::{AiGroups, GroupProvider};

use crate::first_event::{self, StreamKind};
use crate::{azure, translation, AiPolicy, CompletionState};

/// Pingora's default retry buffer: a body not read ahead can be sent again up to this size.
const REPLAYABLE_BODY: usize = 64 * 1024;
/// The longest a provider's `200` is held back from the client waiting for its first bytes
/// (a read timeout, when set, ends the wait sooner, and then the next provider is tried).
const HOLD_FOR_FIRST_BYTES: Duration = Duration::from_secs(120);

/// Per-request failover state of an `ai.groups` backend.
#[derive(Clone)]
pub struct Failover {
    groups: Arc<AiGroups>,
    /// The provider of the attempt under way.
    current: Arc<GroupProvider>,
    /// Every provider tried so far, `current` included.
    tried: Vec<Arc<GroupProvider>>,
    /// TLS the backend's own policies set (a provider's `backendTLS` beats it).
    base_tls: Option<Arc<TlsPlan>>,
    /// The client's body, when it was read before the first attempt.
    pub raw: Option<Bytes>,
    /// Path and query of a later attempt (the first one's is on the request already).
    pq: Option<String>,
    /// Body bytes seen in this attempt.
    body_seen: usize,
    /// What a 429's `Retry-After` asked for.
    retry_after: Option<Duration>,
    /// The attempt answered with a stream whose first chunk is still to be judged.
    first_chunk: Option<StreamKind>,
    /// The backend's own `backendAuth.key` with a `location`, for providers without a credential.
    base_key: Option<Arc<PlacedKey>>,
}

impl Failover {
    /// The AWS region of the provider under way, when it is a bedrock one.
    pub fn current_bedrock_region(&self) -> Option<String> {
        self.current.target.bedrock_region.clone()
    }

    /// State for a request whose first attempt goes to `first`.
    pub fn new(groups: Arc<AiGroups>, first: Arc<GroupProvider>, base_tls: Option<Arc<TlsPlan>>, base_key: Option<Arc<PlacedKey>>) -> Self {
        Failover { groups, tried: vec![first.clone()], current: first, base_tls, raw: None, pq: None, body_seen: 0, retry_after: None, first_chunk: None, base_key }
    }
}

/// The attempt's path and the provider's own credential.
pub fn on_upstream_request(req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    let Some(f) = ctx.extensions.get::<Failover>() else { return Ok(()) };
    // While another provider is left, the client sees nothing of this one's answer until its
    // first bytes: a stream that fails before them can still fail over unseen.
    let hold = f.groups.next(&f.tried, Instant::now()).is_some().then(|| {
        let left = ctx.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        left.map_or(HOLD_FOR_FIRST_BYTES, |l| l.min(HOLD_FOR_FIRST_BYTES))
    });
    ctx.hold_response_header = hold;
    let Some(f) = ctx.extensions.get::<Failover>() else { return Ok(()) };
    if let Some(pq) = &f.pq {
        crate::replace_path_and_query(req, pq)?;
    }
    match &f.current.auth {
        // AWS keys sign the request once its body is final (see `bedrock_headers`).
        // A key with a `location` is placed by the proxy after this hook (see `use_credential`).
        Some(tollgate_core::filters::backend_auth::Credential::Aws(_) | tollgate_core::filters::backend_auth::Credential::Placed(_)) | None => {}
        Some(auth) => {
            let header = auth.header_now(&f.current.target.host).map_err(|e| pingora::Error::explain(pingora::ErrorType::HTTPStatus(503), format!("the provider's credential: {e}")))?;
            req.insert_header(http::header::AUTHORIZATION, header)?;
        }
    }
    Ok(())
}

/// Fetches (or finds cached) the Entra ID tokens of the group's providers, before any attempt:
/// the hooks that switch providers cannot wait for a token endpoint.
/// Together, within the fetch timeout and the request's deadline; a failed one is remembered
/// for a few seconds, so an identity provider outage does not slow every request.
pub async fn fetch_tokens(groups: &AiGroups, deadline: Option<Instant>) {
    use tollgate_core::filters::backend_auth::Credential;
    if !groups.tiers.iter().flatten().any(|p| matches!(p.auth, Some(Credential::Azure(_)))) {
        return; // the common case: no timer, no futures
    }
    let fetches = groups.tiers.iter().flatten().filter_map(|p| match &p.auth {
        Some(auth @ Credential::Azure(_)) => Some(async move {
            if let Err(e) = auth.header_for(&p.target.host).await {
                log::warn!(target: "tollgate", "ai provider {}: {e}", p.target.name);
            }
        }),
        _ => None,
    });
    let all = futures::future::join_all(fetches);
    let limit = deadline.map_or(tollgate_core::filters::backend_auth::azure::FETCH_TIMEOUT, |d| d.saturating_duration_since(Instant::now()).min(tollgate_core::filters::backend_auth::azure::FETCH_TIMEOUT));
    let _ = tokio::time::timeout(limit, all).await;
}

/// Readies the credential a provider signs with (AWS keys), or forgets the last one's.
/// A provider's own key with a `location` replaces the backend's (`base_key`); a provider
/// without a credential of its own uses the backend's.
pub fn use_credential(provider: &GroupProvider, base_key: Option<&Arc<PlacedKey>>, ctx: &mut RequestCtx) {
    use tollgate_core::filters::backend_auth::{AwsKeys, Credential};
    match &provider.auth {
        Some(Credential::Aws(keys)) => {
            ctx.extensions.insert(keys.clone());
        }
        _ => {
            ctx.extensions.remove::<Arc<AwsKeys>>();
        }
    }
    let key = match &provider.auth {
        Some(Credential::Placed(k)) => Some(k.clone()),
        Some(_) => None,
        None => base_key.cloned(),
    };
    match key {
        Some(k) => {
            ctx.extensions.insert(k);
        }
        None => {
            ctx.extensions.remove::<Arc<PlacedKey>>();
        }
    }
}

/// Counts the attempt's body bytes (whether another attempt could send them again).
pub fn count_body(n: usize, ctx: &mut RequestCtx) {
    if let Some(f) = ctx.extensions.get_mut::<Failover>() {
        f.body_seen = f.body_seen.saturating_add(n);
    }
}

/// A 429 or 5xx with another provider to try (and a body that can be sent again) is dropped
/// unseen; any answer settles the provider's health.
pub fn on_response(resp: &ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let deadline_passed = ctx.deadline_passed();
    let Some(f) = ctx.extensions.get_mut::<Failover>() else { return Ok(()) };
    let status = resp.status.as_u16();
    let now = Instant::now();
    if status != 429 && status < 500 {
        if resp.status.is_success() {
            let content_type = resp.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            f.first_chunk = StreamKind::of(content_type);
            if f.first_chunk.is_none() {
                // A stream is judged by its first event (see `on_first_chunk`).
                f.current.health.succeeded();
            }
        }
        return Ok(());
    }
    f.retry_after = (status == 429).then(|| retry_after(resp)).flatten();
    let replayable = f.raw.is_some() || f.body_seen <= REPLAYABLE_BODY;
    if replayable && !deadline_passed && f.groups.next(&f.tried, now).is_some() {
        return Err(retry_error(status, "the provider failed; failing over to the next"));
    }
    // This answer stands: the client gets it, and the provider rests.
    f.current.health.evict(now, f.retry_after);
    let backend = f.current.target.name.clone();
    if let Some(llm) = ctx.llm.as_mut() {
        llm.failed_attempts.push(FailedAttempt { backend, reason: status.to_string() });
    }
    Ok(())
}

/// Judges a stream's first chunk: one that shows the provider failed (an error event a 429 or
/// 5xx would have carried, or an empty stream) is dropped unseen and the request fails over,
/// while the client has received nothing (the header was held for it, see
/// `on_upstream_request`) and another provider is left.
pub fn on_first_chunk(chunk: &[u8], end: bool, ctx: &mut RequestCtx) -> Result<()> {
    // Read before the borrow below; the clock only when the first event failed.
    let deadline = ctx.deadline;
    let Some(f) = ctx.extensions.get_mut::<Failover>() else { return Ok(()) };
    let Some(kind) = f.first_chunk else { return Ok(()) };
    if chunk.is_empty() && !end {
        return Ok(());
    }
    f.first_chunk = None;
    let Some((status, why)) = first_event::failure(kind, chunk, end) else {
        f.current.health.succeeded();
        return Ok(());
    };
    let replayable = f.raw.is_some() || f.body_seen <= REPLAYABLE_BODY;
    let deadline_passed = deadline.is_some_and(|d| Instant::now() >= d);
    if ctx.hold_response_header.is_some() && replayable && !deadline_passed && f.groups.next(&f.tried, Instant::now()).is_some() {
        return Err(retry_error(status, &why));
    }
    Ok(())
}

/// `Retry-After` in seconds (the HTTP-date form is not used by LLM providers).
fn retry_after(resp: &ResponseHeader) -> Option<Duration> {
    let v = resp.headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Why an attempt failed, for logs and metrics.
fn reason(e: &pingora::Error) -> String {
    use pingora::ErrorType::*;
    match e.etype() {
        HTTPStatus(s) => s.to_string(),
        ConnectTimedout | ReadTimedout | WriteTimedout => "timeout".into(),
        ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure | TLSHandshakeFailure | TLSHandshakeTimedout => "connect".into(),
        _ => "io".into(),
    }
}

/// Evicts the failed provider and readies the request for the next one, if any and if the
/// request can be sent again.
pub fn on_upstream_error(policy: &AiPolicy, e: &pingora::Error, replayable: bool, ctx: &mut RequestCtx) -> bool {
    let Some(mut f) = ctx.extensions.remove::<Failover>() else { return false };
    let now = Instant::now();
    let retry_after = if is_retry_error(e) { f.retry_after.take() } else { None };
    let rest = f.current.health.evict(now, retry_after);
    let why = reason(e);
    log::warn!(target: "tollgate", "ai provider {} failed ({why}); it rests {}s", f.current.target.name, rest.as_secs());
    let mut failed = ctx.llm.as_ref().map(|l| l.failed_attempts.clone()).unwrap_or_default();
    failed.push(FailedAttempt { backend: f.current.target.name.clone(), reason: why });
    if let Some(llm) = ctx.llm.as_mut() {
        llm.failed_attempts = failed.clone();
    }
    let mut again = false;
    while replayable {
        let Some(next) = f.groups.next(&f.tried, now) else { break };
        f.tried.push(next.clone());
        match replan(policy, ctx, &mut f, &next, &failed) {
            Ok(()) => {
                f.current = next;
                again = true;
                break;
            }
            Err(why) => log::warn!(target: "tollgate", "ai provider {} skipped: {why}", next.target.name),
        }
    }
    ctx.extensions.insert(f);
    again
}

/// Plans the request for `next`: upstream, exchange record, body translation, path.
fn replan(policy: &AiPolicy, ctx: &mut RequestCtx, f: &mut Failover, next: &GroupProvider, failed: &[FailedAttempt]) -> std::result::Result<(), String> {
    let kind = ctx.llm.as_ref().map(|l| l.route).ok_or("not an LLM call")?;
    let ai = next.target.for_route(kind)?;
    let ai: &tollgate_core::runtime::AiTarget = &ai;
    if let Some(why) = crate::refusal(ai.provider, kind) {
        return Err(why.into());
    }
    if kind == RouteType::AnthropicTokenCount && ai.provider == AiProvider::OpenAi {
        return Err("token counts for OpenAI providers are answered before any attempt".into());
    }
    let mut exchange = LlmExchange::new(ai.provider_name, &ai.name, kind);
    exchange.provider_api = ai.provider;
    exchange.override_model = ai.model.clone();
    exchange.failed_attempts = failed.to_vec();
    ctx.llm = Some(exchange);
    ctx.upstream.host.clone_from(&ai.host);
    ctx.upstream.port = ai.port;
    ctx.upstream.tls = next.tls.clone().or_else(|| f.base_tls.clone()).or_else(|| (!ai.host_overridden).then(|| Arc::new(TlsPlan::default())));
    use_credential(next, f.base_key.clone().as_ref(), ctx);
    let mut gemini_model = None;
    let mut bedrock_route = None;
    let mut vertex_pq = None;
    if let Some(previous) = ctx.extensions.get::<CompletionState>() {
        let mut state = CompletionState::default();
        // A `detect` call stays one: forwarded as it is, its model read again on the way.
        state.detect = previous.detect.as_ref().map(|_| Vec::new());
        if let Some(raw) = &f.raw {
            if ai.vertex.is_some() {
                // The model's family picks the API the body is translated for.
                let model = ai.model.clone().or_else(|| policy.client_model(kind, &ctx.original_path, raw)).ok_or("`model` is required")?;
                if let Some(llm) = ctx.llm.as_mut() {
                    llm.provider_api = crate::vertex::family(&model);
                }
            }
            let (rewritten, t) = policy.rewrite(raw, ctx)?;
            state.injected_usage = rewritten.injected_usage;
            let mut body = rewritten.body;
            if let Some(v) = &ai.vertex {
                let (b, pq) = policy.vertex_plan(ai, v, &t, body, ctx)?;
                body = b;
                vertex_pq = Some(pq);
            }
            state.prepared = Some(Bytes::from(body));
            gemini_model = t.gemini_path_model().map(str::to_string);
            bedrock_route = t.bedrock_route().map(|(m, s)| (m.to_string(), s));
            state.answer.translation = t;
        }
        // A completion's body is always read ahead (`raw`), so it is translated afresh here.
        ctx.extensions.insert(state);
    }
    f.pq = Some(match (bedrock_route, vertex_pq) {
        // The model (and streaming) name Bedrock's and Vertex's paths.
        (Some((model, streaming)), _) => crate::bedrock::path(ai.path_prefix.as_deref(), &model, streaming)?,
        (_, Some(pq)) => pq,
        _ if ai.provider == AiProvider::Bedrock || ai.vertex.is_some() => return Err("a bedrock or vertex provider takes a completion read before the call".into()),
        _ => path_for(policy, ai, kind, ctx, gemini_model)?,
    });
    f.body_seen = 0;
    f.retry_after = None;
    f.first_chunk = None;
    Ok(())
}

/// The path and query of a later attempt on `ai`.
fn path_for(policy: &AiPolicy, ai: &tollgate_core::runtime::AiTarget, kind: RouteType, ctx: &RequestCtx, gemini_model: Option<String>) -> std::result::Result<String, String> {
    let client_query = ctx.captured.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    if let Some(paths) = &ai.azure {
        return match crate::azure_upstream_path(ai, paths, kind)? {
            azure::AzurePath::Set(pq) => Ok(pq),
            azure::AzurePath::Keep => Ok(format!("{}{client_query}", ctx.original_path)),
            azure::AzurePath::NeedsModel => {
                let model = ctx.llm.as_ref().and_then(|l| l.override_model.clone().or_else(|| l.request_model.clone()));
                let model = model.ok_or("the azure deployment path needs a model, and the body is not read yet")?;
                match azure::path(paths, kind, Some(&model))? {
                    azure::AzurePath::Set(pq) => Ok(pq),
                    _ => Err("no azure path".into()),
                }
            }
        };
    }
    if ai.provider == AiProvider::Gemini && kind == RouteType::GenerateContent {
        return crate::native_generate_pq(ai, &ctx.original_path, policy);
    }
    if ai.provider == AiProvider::Gemini && matches!(kind, RouteType::Completions | RouteType::Messages | RouteType::Responses) {
        let model = match gemini_model {
            Some(m) => m,
            None => crate::gemini::request::path_model(ai.model.as_deref().ok_or("the gemini path needs `provider.gemini.model` for a body not read yet")?)?,
        };
        return Ok(crate::gemini_pq(ai, &model));
    }
    let translated = translation::is_translated(ai.provider, kind);
    let path = crate::upstream_path(ai, kind, &ctx.original_path).unwrap_or_else(|| ctx.original_path.clone());
    Ok(if translated { path } else { format!("{path}{client_query}") })
}
