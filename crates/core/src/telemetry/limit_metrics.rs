//! Metrics of rate limits and budgets, fed by the events their policies leave in the request
//! context ([`LimitEvent`]): decisions by policy, outcome and API key (the key's non-secret id:
//! as many series as configured keys, never more), the shared store's latency and errors, and
//! each budget's remainder.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::ctx::RequestCtx;

/// What a limit or budget decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitEvent {
    /// The policy (`localRateLimit`, `remoteRateLimit`, `budget`).
    pub policy: &'static str,
    /// `allowed`, `limited`, `failed_open` or `failed_closed`.
    pub decision: &'static str,
    /// How long the shared store (Redis, the rate-limit service) took, when one was asked.
    pub store_seconds: Option<f64>,
    /// A budget's remainder after this request's admission: (budget key, unit, amount).
    pub budget_remaining: Option<(String, &'static str, f64)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    policy: &'static str,
    decision: &'static str,
    api_key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    policy: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: String,
    unit: &'static str,
}

type Seconds = Family<StoreLabels, Histogram, fn() -> Histogram>;

fn store_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The families (registered by `Metrics::new` unless removed).
pub struct LimitMetrics {
    decisions: Family<DecisionLabels, Counter>,
    store: Seconds,
    budget: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

/// Names and counter-ness, for `config.metrics.remove`.
pub const NAMES: &[(&str, bool)] = &[
    ("tollgate_rate_limit_decisions", true),
    ("tollgate_rate_limit_store_seconds", false),
    ("tollgate_budget_remaining", false),
];

impl LimitMetrics {
    /// Makes the families and registers those `keep` allows.
    pub fn new(registry: &mut Registry, keep: impl Fn(&str, bool) -> bool) -> LimitMetrics {
        let m = LimitMetrics { decisions: Family::default(), store: Family::new_with_constructor(store_buckets), budget: Family::default() };
        if keep(NAMES[0].0, true) {
            registry.register(NAMES[0].0, "Rate-limit and budget decisions, by policy, decision and API key id", m.decisions.clone());
        }
        if keep(NAMES[1].0, false) {
            registry.register(NAMES[1].0, "Time the shared limit store (Redis, a rate-limit service) took to decide, by outcome", m.store.clone());
        }
        if keep(NAMES[2].0, false) {
            registry.register(NAMES[2].0, "What a budget has left in its window, after the last admission (tokens or USD)", m.budget.clone());
        }
        m
    }

    /// Records the request's limit events.
    pub fn record(&self, ctx: &RequestCtx) {
        if ctx.limits.is_empty() {
            return;
        }
        let api_key = ctx.api_key.as_ref().map(|k| k.id.clone()).unwrap_or_default();
        for e in &ctx.limits {
            self.decisions.get_or_create(&DecisionLabels { policy: e.policy, decision: e.decision, api_key: api_key.clone() }).inc();
            if let Some(s) = e.store_seconds {
                let outcome = if e.decision.starts_with("failed") { "error" } else { "ok" };
                self.store.get_or_create(&StoreLabels { policy: e.policy, outcome }).observe(s);
            }
            if let Some((budget, unit, left)) = &e.budget_remaining {
                self.budget.get_or_create(&BudgetLabels { budget: budget.clone(), unit }).set(*left);
            }
        }
    }
}
