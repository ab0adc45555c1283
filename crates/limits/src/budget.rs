//! `budget` (a tollgate policy; agentgateway's schema has no budgets): how many LLM tokens (or
//! how much money, priced by the model table) a key, a team or a route may spend per UTC hour,
//! day or month. `action: block` refuses requests once the budget is spent (429,
//! `budget_exceeded`) and ends a stream that would overrun it; `audit` only logs. With
//! `redis:` the spent amounts live in Redis, shared by every replica and kept across restarts
//! and upgrades; otherwise in this process.
//!
//! Admission: the prompt's estimate must fit in what is left (tokens); it is reserved at once
//! so concurrent requests cannot all spend the same remainder, and the rest of the remainder
//! becomes the request's completion allowance (enforced on the stream). When the response
//! ends, the reservation is settled with the real usage (or, for a stream cut short without a
//! usage report, with the tokens counted on the way).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::Value;

use tollgate_core::admission::{LlmAdmission, LlmAdmissions, TokenEstimate};
use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, LocalResponse, RequestCtx};
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::limit_metrics::LimitEvent;
use tollgate_core::telemetry::request_vars::{value_text, RequestScope, TextPath};

use crate::redis_conn::{FailureMode, RedisConfig, RedisConn};
use crate::window::Window;

/// Registry entry for `budget` (route level, like the rate limits).
pub const SPEC: FilterSpec = FilterSpec {
    name: "budget",
    levels: Levels::ROUTE,
    order: 45,
    build: |d| {
        let v: Value = erased_serde::deserialize(d)?;
        BudgetPolicy::compile(v).map(|f| Arc::new(f) as Arc<dyn Filter>).map_err(<erased_serde::Error as serde::de::Error>::custom)
    },
};

/// Most (window, key) entries one in-process budget remembers.
const MAX_LOCAL_ENTRIES: usize = 100_000;

/// Cost is counted in millionths of a dollar.
const MICRO: f64 = 1_000_000.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BudgetConfig {
    #[serde(default)]
    key: Option<Expression>,
    limit: Value,
    #[serde(default)]
    unit: Unit,
    window: Window,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    redis: Option<RedisConfig>,
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Unit {
    /// Input + output tokens.
    #[default]
    Tokens,
    /// US dollars, priced by the model table (`llm.cost`).
    Cost,
}

/// What happens when a budget is spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Action {
    /// Refuse and cut streams.
    #[default]
    Block,
    /// Log only.
    Audit,
}

/// The limit: a number, or CEL giving one per request (`apiKey.budget`).
#[derive(Debug)]
enum Amount {
    Fixed(f64),
    Expr(Expression),
}

/// Where spent amounts are kept.
#[derive(Debug)]
enum Spent {
    Local(Mutex<HashMap<(u64, String), i64>>),
    Redis { conn: RedisConn, script: redis::Script, prefix: String },
}

/// `{allowed, spent}`: adds ARGV[1] unless, for a take, the total would pass ARGV[2].
const SCRIPT: &str = r#"
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[4] == 'take' and limit >= 0 and (spent >= limit or spent + n > limit) then
  return {0, spent}
end
spent = redis.call('INCRBY', KEYS[1], n)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, spent}
"#;

#[derive(Debug)]
struct Budget {
    key: Option<Expression>,
    /// `key` and `limit` read without CEL, when they are plain reads.
    key_path: Option<TextPath>,
    limit_path: Option<TextPath>,
    limit: Amount,
    unit: Unit,
    window: Window,
    action: Action,
    spent: Spent,
}

/// The compiled policy.
#[derive(Debug)]
pub struct BudgetPolicy {
    budgets: Vec<Arc<Budget>>,
    scope: RequestScope,
}

/// What a store said about a take.
enum Taken {
    Yes { spent: i64 },
    No { spent: i64 },
    Failed,
}

impl Budget {
    fn units(&self, amount: f64) -> i64 {
        match self.unit {
            Unit::Tokens => amount.round() as i64,
            Unit::Cost => (amount * MICRO).round() as i64,
        }
    }

    /// Adds `n` to the window's spending (a take refuses past `limit`, when given).
    async fn add(&self, window: u64, key: &str, n: i64, limit: Option<i64>) -> Taken {
        match &self.spent {
            Spent::Local(map) => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= MAX_LOCAL_ENTRIES {
                    map.retain(|(w, _), _| *w >= window);
                }
                if map.len() >= MAX_LOCAL_ENTRIES && !map.contains_key(&(window, key.to_string())) {
                    return Taken::No { spent: 0 };
                }
                let spent = map.entry((window, key.to_string())).or_insert(0);
                if limit.is_some_and(|l| *spent >= l || *spent + n > l) {
                    return Taken::No { spent: *spent };
                }
                *spent += n;
                Taken::Yes { spent: *spent }
            }
            Spent::Redis { conn, script, prefix } => {
                let (_, left) = self.window.at(SystemTime::now());
                let mut inv = script.key(format!("{prefix}:{window}:{key}"));
                inv.arg(n).arg(limit.unwrap_or(-1)).arg((left.as_millis() as u64) + 3_600_000).arg(if limit.is_some() { "take" } else { "add" });
                match conn.invoke::<(i64, i64)>(&inv).await {
                    Ok((1, spent)) => Taken::Yes { spent },
                    Ok((_, spent)) => Taken::No { spent },
                    Err(_) => Taken::Failed,
                }
            }
        }
    }

    fn fail_open(&self) -> bool {
        match &self.spent {
            Spent::Redis { conn, .. } => conn.failure_mode == FailureMode::FailOpen,
            Spent::Local(_) => true,
        }
    }
}

impl BudgetPolicy {
    fn compile(v: Value) -> std::result::Result<BudgetPolicy, String> {
        let entries = match v {
            Value::Array(items) => items,
            one @ Value::Object(_) => vec![one],
            _ => return Err("expected a budget or a list of budgets".into()),
        };
        let mut budgets = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let c: BudgetConfig = serde_json::from_value(entry).map_err(|e| format!("budget [{i}]: {e}"))?;
            let limit = match &c.limit {
                Value::Number(n) => Amount::Fixed(n.as_f64().filter(|f| *f >= 0.0).ok_or(format!("budget [{i}].limit must not be negative"))?),
                Value::String(s) => Amount::Expr(Expression::compile(s).map_err(|e| format!("budget [{i}].limit is not CEL ({e})"))?),
                _ => return Err(format!("budget [{i}].limit must be a number or a CEL expression")),
            };
            let spent = match &c.redis {
                None => Spent::Local(Mutex::new(HashMap::new())),
                Some(r) => {
                    let conn = RedisConn::compile(r).map_err(|e| format!("budget [{i}].{e}"))?;
                    let prefix = format!("tollgate:budget:{}:{:?}:{:?}", conn.name, c.unit, c.window);
                    Spent::Redis { conn, script: redis::Script::new(SCRIPT), prefix }
                }
            };
            let key_path = c.key.as_ref().and_then(TextPath::of);
            let limit_path = match &limit {
                Amount::Expr(e) => TextPath::of(e),
                Amount::Fixed(_) => None,
            };
            budgets.push(Arc::new(Budget { key: c.key, key_path, limit_path, limit, unit: c.unit, window: c.window, action: c.action, spent }));
        }
        let exprs: Vec<&Expression> = budgets
            .iter()
            .flat_map(|b| b.key.iter().chain(match &b.limit {
                Amount::Expr(e) => Some(e),
                Amount::Fixed(_) => None,
            }))
            .collect();
        Ok(BudgetPolicy { scope: RequestScope::of(exprs), budgets })
    }
}

/// One budget's check for an LLM request, with the key and limit this request resolved.
struct BudgetAdmission {
    budget: Arc<Budget>,
    key: String,
    limit: i64,
}

/// A reservation made at admission, settled in `on_log`.
#[derive(Clone)]
struct Reserved {
    budget: Arc<Budget>,
    key: String,
    window: u64,
    units: i64,
}

#[derive(Clone, Default)]
struct Reservations(Vec<Reserved>);

fn exhausted(ctx: &RequestCtx, b: &Budget) -> LocalResponse {
    let what = match b.unit {
        Unit::Tokens => "token",
        Unit::Cost => "spending",
    };
    let msg = format!("{what} budget exhausted for this {:?} window", b.window).to_lowercase();
    json_error(ctx.error_format, 429, "budget_exceeded", &msg)
}

#[async_trait]
impl LlmAdmission for BudgetAdmission {
    async fn admit(&self, estimate: TokenEstimate, ctx: &mut RequestCtx) -> std::result::Result<(), LocalResponse> {
        let b = &self.budget;
        let (window, _) = b.window.at(SystemTime::now());
        // Cost is charged when the price is known, at the end; tokens are reserved now.
        let units = match b.unit {
            Unit::Tokens => estimate.prompt as i64,
            Unit::Cost => 0,
        };
        let limit = (b.action == Action::Block).then_some(self.limit);
        let started = std::time::Instant::now();
        let taken = b.add(window, &self.key, units, limit).await;
        let store_seconds = matches!(b.spent, Spent::Redis { .. }).then(|| started.elapsed().as_secs_f64());
        let (decision, spent) = match &taken {
            Taken::Yes { spent } => ("allowed", Some(*spent)),
            Taken::No { spent } => ("limited", Some(*spent)),
            Taken::Failed if b.fail_open() => ("failed_open", None),
            Taken::Failed => ("failed_closed", None),
        };
        let budget_remaining = spent.map(|spent| {
            let (unit, left) = match b.unit {
                Unit::Tokens => ("tokens", (self.limit - spent) as f64),
                Unit::Cost => ("usd", (self.limit - spent) as f64 / MICRO),
            };
            (if self.key.is_empty() { "route".to_string() } else { self.key.clone() }, unit, left)
        });
        ctx.limits.push(LimitEvent { policy: "budget", decision, store_seconds, budget_remaining });
        match taken {
            Taken::Yes { spent } => {
                if b.action == Action::Audit && spent > self.limit {
                    tracing::warn!(target: "tollgate", budget_key = %self.key, spent, limit = self.limit, "budget exceeded (audit: served)");
                }
                if b.unit == Unit::Tokens && b.action == Action::Block {
                    if let Some(llm) = ctx.llm.as_mut() {
                        let left = (self.limit - spent).max(0) as u64;
                        llm.completion_allowance = Some(llm.completion_allowance.map_or(left, |a| a.min(left)));
                    }
                }
                ctx.extensions.get_or_insert_default::<Reservations>().0.push(Reserved { budget: b.clone(), key: self.key.clone(), window, units });
                Ok(())
            }
            Taken::No { spent } => {
                tracing::debug!(target: "tollgate", budget_key = %self.key, spent, limit = self.limit, "budget spent: refused");
                Err(exhausted(ctx, b))
            }
            Taken::Failed if b.fail_open() => Ok(()),
            Taken::Failed => Err(json_error(ctx.error_format, 503, "rate_limit_unavailable", "the budget store is unavailable")),
        }
    }
}

#[async_trait]
impl Filter for BudgetPolicy {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let source = session.client_addr().and_then(|a| a.as_inet()).copied();
        let plain = |b: &Budget| (b.key.is_none() || b.key_path.is_some()) && (matches!(b.limit, Amount::Fixed(_)) || b.limit_path.is_some());
        let resolved: Vec<(Arc<Budget>, String, Option<f64>)> = if self.budgets.iter().all(|b| plain(b)) {
            // Plain reads only: no CEL evaluation.
            let req = session.req_header();
            self.budgets
                .iter()
                .map(|b| {
                    let key = b.key_path.as_ref().and_then(|p| p.text(req, source, ctx)).map(crate::bounded_key).unwrap_or_default();
                    let limit = match &b.limit {
                        Amount::Fixed(f) => Some(*f),
                        Amount::Expr(_) => b.limit_path.as_ref().and_then(|p| p.text(req, source, ctx)).and_then(|t| t.parse::<f64>().ok()),
                    };
                    (b.clone(), key, limit)
                })
                .collect()
        } else { self.scope.eval(session.req_header(), source, ctx, |ev| {
            self.budgets
                .iter()
                .map(|b| {
                    let key = b.key.as_ref().and_then(|k| ev.eval(k).and_then(value_text)).map(crate::bounded_key).unwrap_or_default();
                    let limit = match &b.limit {
                        Amount::Fixed(f) => Some(*f),
                        Amount::Expr(e) => ev.eval(e).and_then(value_text).and_then(|t| t.parse::<f64>().ok()),
                    };
                    (b.clone(), key, limit)
                })
                .collect()
        }) };
        for (budget, key, limit) in resolved {
            // A per-request limit that does not resolve (a key without `budget` metadata): no budget.
            let Some(limit) = limit else { continue };
            let limit = budget.units(limit);
            LlmAdmissions::register(ctx, Arc::new(BudgetAdmission { budget, key, limit }));
        }
        Ok(FilterAction::Continue)
    }

    fn on_log(&self, ctx: &mut RequestCtx) {
        let Some(Reservations(held)) = ctx.extensions.remove::<Reservations>() else { return };
        let Some(llm) = ctx.llm.as_ref() else { return };
        let tokens = match (llm.usage, llm.counted_output_tokens) {
            (Some(u), _) => Some(u.input_tokens + u.output_tokens),
            (None, Some(out)) => Some(llm.estimated_input_tokens.unwrap_or(0) + out),
            (None, None) => None,
        };
        let cost = ctx.model_catalog.as_ref().and_then(|c| c.price(llm)).map(|c| c.total);
        let ok = ctx.status.is_some_and(|s| (200..300).contains(&s));
        for r in held {
            let used = match r.budget.unit {
                Unit::Tokens => tokens.map(|t| t as i64),
                Unit::Cost => cost.map(|c| r.budget.units(c)),
            };
            let delta = match used {
                Some(used) => used - r.units,
                None if !ok => -r.units,
                None => 0,
            };
            if delta != 0 {
                tokio::spawn(async move {
                    r.budget.add(r.window, &r.key, delta, None).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> std::result::Result<BudgetPolicy, String> {
        BudgetPolicy::compile(serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn forms_and_errors() {
        assert_eq!(compile("{limit: 100, window: day}").unwrap().budgets.len(), 1);
        assert_eq!(compile("[{limit: 'apiKey.budget', key: apiKey.team, window: month, unit: cost, action: audit}]").unwrap().budgets.len(), 1);
        assert!(compile("{limit: -1, window: day}").unwrap_err().contains("negative"));
        assert!(compile("{limit: 1, window: week}").is_err());
        assert!(compile("{limit: 1, window: day, redis: {url: 'redis://127.0.0.1:1'}}").unwrap_err().contains("name"));
        assert!(compile("{limit: 'nope(', window: day}").unwrap_err().contains("limit"));
    }

    #[tokio::test]
    async fn local_spending_refuses_past_the_limit_and_settles() {
        let p = compile("{limit: 100, window: day}").unwrap();
        let b = &p.budgets[0];
        assert!(matches!(b.add(1, "k", 60, Some(100)).await, Taken::Yes { spent: 60 }));
        assert!(matches!(b.add(1, "k", 50, Some(100)).await, Taken::No { spent: 60 }));
        assert!(matches!(b.add(1, "k", 40, None).await, Taken::Yes { spent: 100 }));
        assert!(matches!(b.add(1, "k", 0, Some(100)).await, Taken::No { .. }), "a spent budget refuses even an empty take");
        assert!(matches!(b.add(2, "k", 10, Some(100)).await, Taken::Yes { spent: 10 }), "a new window starts at zero");
    }
}
