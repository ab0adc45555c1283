//! The compiled `llm:` model router: each model an `ai` backend, each virtual model a choice
//! between them. The proxy asks it for a backend once the request's model is known (after the
//! route's policies, before the model's own); see `crate::proxy::llm_route`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::picker::WeightedPicker;
use super::CompiledBackend;
use crate::config::llm::{LlmRouterConfig, RouterModel};
use crate::telemetry::cel::Expression;

/// The router of one `llm:` route.
#[derive(Debug)]
pub struct LlmRouter {
    /// Models, most specific pattern first.
    pub models: Vec<RoutedModel>,
    /// Virtual models by name.
    pub virtual_models: Vec<(String, VirtualChoice)>,
    /// When the config was loaded (`created` of the model list).
    pub created: u64,
}

/// A model entry and its backend.
#[derive(Debug)]
pub struct RoutedModel {
    /// The entry (its pattern and visibility).
    pub config: RouterModel,
    /// The backend for requests that name a model matching it.
    pub backend: Arc<CompiledBackend>,
    /// Its `matches` (any of them; none: every request).
    pub matches: Vec<crate::router::HeaderRules>,
}

/// How a virtual model picks a backend.
#[derive(Debug)]
pub enum VirtualChoice {
    /// In proportion to weights (`None`: every weight is 0).
    Weighted(Vec<Arc<CompiledBackend>>, Option<WeightedPicker>),
    /// One `ai.groups` backend: priority tiers, failing over within the request.
    Failover(Arc<CompiledBackend>),
    /// The first target whose condition holds (`None`: the fallback).
    Conditional(Vec<(Option<Expression>, Arc<CompiledBackend>)>),
}

/// Why no backend serves the request.
#[derive(Debug, PartialEq, Eq)]
pub enum NoModel {
    /// No model entry or virtual model matches (404).
    NotFound,
    /// A virtual model's weights are all 0 (404).
    NotResolved,
    /// No conditional target's condition holds (400).
    NoMatchingTarget,
}

impl LlmRouter {
    /// Compiles the router; `compile` turns an `ai` backend (and, for failover, the route
    /// policies it keeps) into a compiled backend.
    pub fn compile(cfg: &LlmRouterConfig, compile: &dyn Fn(crate::config::backend::LocalBackend) -> Result<Arc<CompiledBackend>, String>) -> Result<LlmRouter, String> {
        use crate::config::backend::{AiBackend, AiGroup, BackendKind, LocalBackend};
        let local = |ai: AiBackend, policies| LocalBackend { name: None, weight: 1, policies, kind: BackendKind::Ai(Box::new(ai)) };
        let mut models = Vec::new();
        for m in &cfg.models {
            let matches = m.matches.iter().map(|x| crate::router::HeaderRules::compile(&x.headers)).collect();
            models.push(RoutedModel { config: m.clone(), backend: compile(local(m.backend.clone(), Default::default()))?, matches });
        }
        let resolve = |name: &str| cfg.models.iter().find(|m| m.matches.is_empty() && m.matches(name)).ok_or_else(|| format!("virtual model target `{name}` matches no model"));
        let mut virtual_models = Vec::new();
        for v in &cfg.virtual_models {
            let r = &v.routing;
            let choice = if let Some(w) = &r.weighted {
                let backends = w.targets.iter().map(|t| compile(local(resolve(&t.model)?.backend_for(&t.model), Default::default()))).collect::<Result<Vec<_>, _>>()?;
                let weights: Vec<u32> = w.targets.iter().map(|t| t.weight).collect();
                // All weights 0: a 404 at request time, as agentgateway answers.
                let picker = if weights.iter().all(|w| *w == 0) { None } else { Some(WeightedPicker::new(&weights).map_err(|e| format!("virtual model `{}`: {e}", v.name))?) };
                VirtualChoice::Weighted(backends, picker)
            } else if let Some(f) = &r.failover {
                let mut targets: Vec<_> = f.targets.iter().collect();
                targets.sort_by_key(|t| t.priority);
                let mut tiers: Vec<(u32, Vec<AiBackend>)> = Vec::new();
                let mut body_rules = None;
                let rules_of = |m: &RouterModel| m.body_rules.clone();
                let first_rules = rules_of(resolve(&targets[0].model)?);
                if let Some(t) = targets.iter().find(|t| resolve(&t.model).map(rules_of).ok() != Some(first_rules.clone())) {
                    return Err(format!("virtual model `{}`: failover target `{}` has other defaults, overrides, promptCaching or header modifiers than the first; the group applies one set", v.name, t.model));
                }
                for t in targets {
                    let mut b = resolve(&t.model)?.backend_for(&t.model);
                    // The `ai` policy (routes, body rules) serves the whole group: the first
                    // target's. Each provider keeps its own TLS and credentials.
                    let group_level = ["ai", "requestHeaderModifier", "responseHeaderModifier"];
                    let (ai, own): (Vec<_>, Vec<_>) = b.policies.0.drain(..).partition(|e| group_level.contains(&e.spec.name));
                    body_rules.get_or_insert(ai);
                    b.policies.0 = own;
                    match tiers.last_mut() {
                        Some((p, list)) if *p == t.priority => list.push(b),
                        _ => tiers.push((t.priority, vec![b])),
                    }
                }
                let groups = tiers.into_iter().map(|(_, providers)| AiGroup { providers }).collect();
                let group = AiBackend { name: String::new(), provider: None, host_override: None, path_override: None, path_prefix: None, policies: Default::default(), tokenize: None, groups: Some(groups) };
                let policies = crate::config::policies::Policies(body_rules.unwrap_or_default());
                VirtualChoice::Failover(compile(local(group, policies)).map_err(|e| format!("virtual model `{}`: {e}", v.name))?)
            } else if let Some(c) = &r.conditional {
                let targets = c.targets.iter().map(|t| Ok((t.when.clone(), compile(local(resolve(&t.model)?.backend_for(&t.model), Default::default()))?))).collect::<Result<Vec<_>, String>>()?;
                VirtualChoice::Conditional(targets)
            } else {
                return Err(format!("virtual model `{}`: no routing", v.name));
            };
            virtual_models.push((v.name.clone(), choice));
        }
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(LlmRouter { models, virtual_models, created })
    }

    /// The backend for a request naming `model`; `body` and `request` are what conditions see,
    /// `req` what `matches` see.
    pub fn choose(&self, model: &str, body: &Value, request: &Value, req: &pingora::http::RequestHeader) -> Result<Arc<CompiledBackend>, NoModel> {
        if let Some((_, choice)) = self.virtual_models.iter().find(|(n, _)| n == model) {
            return match choice {
                VirtualChoice::Weighted(backends, picker) => picker.as_ref().and_then(|p| backends.get(p.pick())).cloned().ok_or(NoModel::NotResolved),
                VirtualChoice::Failover(b) => Ok(b.clone()),
                VirtualChoice::Conditional(targets) => first_holding(targets, body, request).ok_or(NoModel::NoMatchingTarget),
            };
        }
        let serves = |m: &&RoutedModel| m.config.public && m.config.matches(model) && (m.matches.is_empty() || m.matches.iter().any(|r| r.matches(&req.headers)));
        self.models.iter().find(serves).map(|m| m.backend.clone()).ok_or(NoModel::NotFound)
    }

    /// The model list (`/v1/models`): public entries by name, then the virtual models.
    pub fn model_list(&self) -> Value {
        let mut names: Vec<&str> = Vec::new();
        // A catch-all `*` names no model a client could ask for.
        for n in self.models.iter().filter(|m| m.config.public && m.config.name != "*").map(|m| m.config.name.as_str()).chain(self.virtual_models.iter().map(|(n, _)| n.as_str())) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let data: Vec<Value> = names.iter().map(|n| json!({"id": n, "object": "model", "created": self.created, "owned_by": "openai"})).collect();
        json!({"object": "list", "data": data})
    }
}

/// The backend of the first target whose condition is true (an error or a non-boolean is
/// false; no condition is true); the request is bound for CEL once.
fn first_holding(targets: &[(Option<Expression>, Arc<CompiledBackend>)], body: &Value, request: &Value) -> Option<Arc<CompiledBackend>> {
    use crate::telemetry::cel::{json_to_cel, with_evaluator};
    with_evaluator(
        |scope| {
            scope.add_variable_from_value("llmRequest", json_to_cel(body.clone()));
            scope.add_variable_from_value("request", json_to_cel(request.clone()));
        },
        |ev| targets.iter().find(|(when, _)| when.as_ref().is_none_or(|w| matches!(ev.eval(w), Some(::cel::Value::Bool(true))))).map(|(_, b)| b.clone()),
    )
}
