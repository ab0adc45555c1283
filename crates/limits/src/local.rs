//! `localRateLimit`: token buckets in this process, as agentgateway's (a list of limits that
//! all apply, or `conditional` entries of which the first whose `condition` holds applies),
//! counting `requests` when the request arrives or LLM `tokens` at admission (the prompt's
//! estimate taken from the bucket, settled with the real usage when the response ends).
//!
//! tollgate extension: `key`, a CEL expression (`apiKey.id`, `source.address`,
//! `request.headers["x-user"]`) giving each value its own bucket; agentgateway has no such
//! field (its limits are per route), so a config using it does not load there. A key that
//! does not evaluate to text shares one bucket with the other such requests.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::Value;

use tollgate_core::admission::{LlmAdmission, LlmAdmissions, TokenEstimate};
use tollgate_core::config::types::parse_go_duration;
use tollgate_core::filters::registry::{FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, LocalResponse, RequestCtx};
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::limit_metrics::LimitEvent;
use tollgate_core::telemetry::request_vars::{value_text, RequestScope, TextPath};

use crate::bucket::{Outcome, Rate};
use crate::headers;
use crate::keyed::KeyedBuckets;
use crate::redis_store::{FailureMode, RedisBuckets, RedisConfig};
use tollgate_core::errors::json_error;

/// Registry entry for `localRateLimit` (a route policy in agentgateway's schema).
pub const SPEC: FilterSpec = FilterSpec {
    name: "localRateLimit",
    levels: Levels::ROUTE,
    order: 40,
    build: |d| {
        let v: Value = erased_serde_value(d)?;
        LocalRateLimit::compile(v).map(|f| Arc::new(f) as Arc<dyn Filter>).map_err(<erased_serde::Error as serde::de::Error>::custom)
    },
};

fn erased_serde_value(d: &mut dyn erased_serde::Deserializer) -> std::result::Result<Value, erased_serde::Error> {
    erased_serde::deserialize(d)
}

/// One limit as written (`RateLimitSpec`, plus `condition` in a conditional entry and
/// tollgate's `key`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecConfig {
    #[serde(default)]
    condition: Option<Expression>,
    #[serde(default)]
    max_tokens: u64,
    #[serde(default)]
    tokens_per_fill: u64,
    fill_interval: String,
    #[serde(default, rename = "type")]
    kind: Kind,
    #[serde(default)]
    key: Option<Expression>,
    #[serde(default)]
    redis: Option<RedisConfig>,
}

/// What a limit counts (also `remoteRateLimit`'s descriptor `type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Kind {
    #[default]
    Requests,
    Tokens,
}

/// Where a limit's buckets are counted.
#[derive(Debug)]
enum Store {
    /// In this process (swappable: a reload hands the counters to the new policy).
    Local(arc_swap::ArcSwap<KeyedBuckets>),
    /// In Redis, shared by every process using it (tollgate extension `redis:`).
    Redis(RedisBuckets),
}

/// One compiled limit.
#[derive(Debug)]
struct Limit {
    condition: Option<Expression>,
    kind: Kind,
    key: Option<Expression>,
    /// `key` read without CEL, when it is a plain read (`apiKey.id`, a header).
    key_path: Option<TextPath>,
    store: Store,
}

/// What a limit decided for one request.
enum Decision {
    Allowed(Outcome),
    Refused(Outcome),
    /// The store could not decide and `failOpen` let the request through.
    Unknown,
    /// The store could not decide and `failClosed` refuses.
    Unavailable,
}

impl Limit {
    async fn take(&self, key: &str, n: u64) -> (Decision, Option<f64>) {
        let outcome = match &self.store {
            Store::Local(b) => b.load().bucket(key, Instant::now()).take(n, Instant::now()),
            Store::Redis(r) => {
                let started = Instant::now();
                let taken = r.take(key, n).await;
                let secs = Some(started.elapsed().as_secs_f64());
                match taken {
                    Ok(o) if o.allowed => return (Decision::Allowed(o), secs),
                    Ok(o) => return (Decision::Refused(o), secs),
                    Err(_) if r.conn.failure_mode == FailureMode::FailOpen => return (Decision::Unknown, secs),
                    Err(_) => return (Decision::Unavailable, secs),
                }
            }
        };
        let decision = if outcome.allowed { Decision::Allowed(outcome) } else { Decision::Refused(outcome) };
        (decision, None)
    }

    /// Settles a reservation; Redis calls run in the background (the request is over).
    fn amend(self: &Arc<Self>, key: String, delta: i64) {
        match &self.store {
            Store::Local(b) => b.load().bucket(&key, Instant::now()).amend(delta, Instant::now()),
            Store::Redis(_) => {
                let limit = self.clone();
                tokio::spawn(async move {
                    if let Store::Redis(r) = &limit.store {
                        r.amend(&key, delta).await;
                    }
                });
            }
        }
    }

    /// The answer to a decision: `Ok(())` to go on, else the response.
    fn answer((decision, store_seconds): (Decision, Option<f64>), ctx: &mut RequestCtx, what: &str) -> std::result::Result<(), LocalResponse> {
        let label = match decision {
            Decision::Allowed(_) => "allowed",
            Decision::Refused(_) => "limited",
            Decision::Unknown => "failed_open",
            Decision::Unavailable => "failed_closed",
        };
        ctx.limits.push(LimitEvent { policy: "localRateLimit", decision: label, store_seconds, budget_remaining: None });
        match decision {
            Decision::Allowed(o) => {
                headers::note(ctx, o);
                Ok(())
            }
            Decision::Unknown => Ok(()),
            Decision::Refused(o) => Err(headers::too_many(ctx, &o, what)),
            Decision::Unavailable => Err(json_error(ctx.error_format, 503, "rate_limit_unavailable", "the rate limit store is unavailable")),
        }
    }
}

/// The compiled policy.
#[derive(Debug)]
pub struct LocalRateLimit {
    limits: Vec<Arc<Limit>>,
    /// `conditional:`: only the first limit whose condition holds applies.
    first_match: bool,
    scope: Option<RequestScope>,
}

impl LocalRateLimit {
    fn compile(v: Value) -> std::result::Result<LocalRateLimit, String> {
        let (entries, first_match, at) = match v {
            Value::Array(items) => (items, false, "limit "),
            Value::Object(mut m) if m.contains_key("conditional") && m.len() == 1 => match m.remove("conditional") {
                Some(Value::Array(items)) => (items, true, "limit conditional"),
                _ => return Err("`conditional` must be a list".into()),
            },
            _ => return Err("expected a list of limits or `conditional: [...]`".into()),
        };
        let count = entries.len();
        let mut limits = Vec::with_capacity(count);
        for (i, entry) in entries.into_iter().enumerate() {
            let spec: SpecConfig = serde_json::from_value(entry).map_err(|e| format!("{at}[{i}]: {e}"))?;
            if spec.condition.is_some() && !first_match {
                return Err(format!("limit [{i}].condition: only entries under `conditional` have a condition"));
            }
            if first_match && spec.condition.is_none() && i + 1 != count {
                return Err(format!("{at}[{i}]: an entry without a condition must be the last (the fallback)"));
            }
            let interval = parse_go_duration(&spec.fill_interval).map_err(|e| format!("{at}[{i}].fillInterval: {e}"))?;
            if interval.is_zero() {
                return Err(format!("{at}[{i}].fillInterval: must be longer than zero"));
            }
            let rate = Rate { max: spec.max_tokens, per_fill: spec.tokens_per_fill, interval };
            let store = match spec.redis {
                None => Store::Local(arc_swap::ArcSwap::from_pointee(KeyedBuckets::new(rate))),
                Some(redis) => {
                    let source = |e: &Option<Expression>| e.as_ref().map(|e| e.source.clone()).unwrap_or_default();
                    let identity = format!("{i}/{rate:?}/{:?}/{}/{}", spec.kind, source(&spec.key), source(&spec.condition));
                    Store::Redis(RedisBuckets::compile(redis, rate, &identity).map_err(|e| format!("{at}[{i}].{e}"))?)
                }
            };
            let key_path = spec.key.as_ref().and_then(TextPath::of);
            limits.push(Arc::new(Limit { condition: spec.condition, kind: spec.kind, key: spec.key, key_path, store }));
        }
        let exprs: Vec<&Expression> = limits.iter().flat_map(|l| l.condition.iter().chain(l.key.iter())).collect();
        let scope = (!exprs.is_empty()).then(|| RequestScope::of(exprs));
        Ok(LocalRateLimit { limits, first_match, scope })
    }

    /// The limits that apply to this request, with each one's bucket key.
    fn applicable(&self, session: &Session, ctx: &RequestCtx) -> Vec<(Arc<Limit>, String)> {
        let Some(scope) = &self.scope else {
            let all = self.limits.iter().map(|l| (l.clone(), String::new()));
            return if self.first_match { all.take(1).collect() } else { all.collect() };
        };
        let source = session.client_addr().and_then(|a| a.as_inet()).copied();
        if self.limits.iter().all(|l| l.condition.is_none() && (l.key.is_none() || l.key_path.is_some())) {
            // Plain reads only: no CEL evaluation.
            let req = session.req_header();
            let all = self.limits.iter().map(|l| {
                let key = l.key_path.as_ref().and_then(|p| p.text(req, source, ctx)).map(crate::bounded_key).unwrap_or_default();
                (l.clone(), key)
            });
            return if self.first_match { all.take(1).collect() } else { all.collect() };
        }
        scope.eval(session.req_header(), source, ctx, |ev| {
            let mut out = Vec::new();
            for l in &self.limits {
                if let Some(c) = &l.condition {
                    if !matches!(ev.eval(c), Some(::cel::Value::Bool(true))) {
                        continue;
                    }
                }
                let key = l.key.as_ref().and_then(|k| ev.eval(k).and_then(value_text)).map(crate::bounded_key).unwrap_or_default();
                out.push((l.clone(), key));
                if self.first_match {
                    break;
                }
            }
            out
        })
    }
}

/// Token buckets this request took from at admission (limit, key, tokens), settled in `on_log`.
#[derive(Default, Clone)]
struct Reservations(Vec<(Arc<Limit>, String, u64)>);

/// The admission a `tokens` limit registers for an LLM request.
struct TokenAdmission {
    limit: Arc<Limit>,
    key: String,
}

#[async_trait]
impl LlmAdmission for TokenAdmission {
    async fn admit(&self, estimate: TokenEstimate, ctx: &mut RequestCtx) -> std::result::Result<(), LocalResponse> {
        let decision = self.limit.take(&self.key, estimate.prompt).await;
        let reserved = matches!(decision.0, Decision::Allowed(_));
        Limit::answer(decision, ctx, "token limit")?;
        if reserved {
            ctx.extensions.get_or_insert_default::<Reservations>().0.push((self.limit.clone(), self.key.clone(), estimate.prompt));
        }
        Ok(())
    }
}

#[async_trait]
impl Filter for LocalRateLimit {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        for (limit, key) in self.applicable(session, ctx) {
            match limit.kind {
                Kind::Requests => {
                    let decision = limit.take(&key, 1).await;
                    if let Err(resp) = Limit::answer(decision, ctx, "request limit") {
                        return Ok(FilterAction::Respond(resp));
                    }
                }
                Kind::Tokens => LlmAdmissions::register(ctx, Arc::new(TokenAdmission { limit, key })),
            }
        }
        Ok(FilterAction::Continue)
    }

    fn on_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        headers::add_to(resp, ctx)
    }

    fn carry_over(&self, previous: &dyn Filter) {
        let Some(previous) = (previous as &dyn std::any::Any).downcast_ref::<LocalRateLimit>() else { return };
        for (new, old) in self.limits.iter().zip(&previous.limits) {
            // The same limit (shape, kind, key): its counters go on; a changed one starts full.
            if let (Store::Local(n), Store::Local(o)) = (&new.store, &old.store) {
                let same_key = new.key.as_ref().map(|e| &e.source) == old.key.as_ref().map(|e| &e.source);
                if new.kind == old.kind && same_key && n.load().rate == o.load().rate {
                    n.store(o.load_full());
                }
            }
        }
    }

    fn on_log(&self, ctx: &mut RequestCtx) {
        let Some(Reservations(held)) = ctx.extensions.remove::<Reservations>() else { return };
        let used = ctx.llm.as_ref().and_then(|l| l.usage).map(|u| u.input_tokens + u.output_tokens);
        let ok = ctx.status.is_some_and(|s| (200..300).contains(&s));
        for (limit, key, reserved) in held {
            let delta = match used {
                Some(used) => used as i64 - reserved as i64,
                // Nothing came back: a failure gives the reservation back; a success without
                // a usage report keeps it.
                None if !ok => -(reserved as i64),
                None => 0,
            };
            if delta != 0 {
                limit.amend(key, delta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> std::result::Result<LocalRateLimit, String> {
        LocalRateLimit::compile(serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn list_and_conditional_forms_parse_and_errors_name_the_entry() {
        assert_eq!(compile("[{maxTokens: 10, tokensPerFill: 1, fillInterval: 1s}]").unwrap().limits.len(), 1);
        assert!(compile("[{maxTokens: 1, fillInterval: 1s, redis: {url: 'http://x', name: a}}]").unwrap_err().contains("redis.url"));
        assert!(compile("[{maxTokens: 1, fillInterval: 1s, redis: {url: 'redis://127.0.0.1:1', name: a, failureMode: failOpen, timeout: 50ms}}]").is_ok());
        assert!(compile("[{maxTokens: 1, fillInterval: 1s, redis: {url: 'redis://127.0.0.1:1'}}]").unwrap_err().contains("name"));
        let c = compile("conditional: [{condition: 'request.path == \"/a\"', maxTokens: 1, fillInterval: 1s}, {maxTokens: 5, fillInterval: 1s}]").unwrap();
        assert!(c.first_match && c.scope.is_some());
        assert!(compile("[{maxTokens: 10, tokensPerFill: x, fillInterval: 1s}]").unwrap_err().starts_with("limit [0]: "));
        assert!(compile("[{maxTokens: 1, fillInterval: 1s}, {maxTokens: 1, fillInterval: soon}]").unwrap_err().contains("[1].fillInterval"));
        assert!(compile("[{maxTokens: 1, fillInterval: 0s}]").is_err());
        assert!(compile("[{maxTokens: 1, fillInterval: 1s, extra: 1}]").is_err());
        assert!(compile("[{maxTokens: 1, fillInterval: 1s, type: bytes}]").is_err());
        assert!(compile("conditional: [{maxTokens: 1, fillInterval: 1s}, {condition: 'true', maxTokens: 1, fillInterval: 1s}]").unwrap_err().contains("fallback"));
        assert!(compile("{maxTokens: 1}").is_err());
    }
}
