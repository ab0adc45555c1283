//! agentgateway's `llm:` shortcut: a set of models served on one endpoint, the request's
//! `model` choosing the provider. It becomes a route (every path) whose backend is a model
//! router; each model becomes an `ai` backend with the policies its fields stand for.
//!
//! Not supported yet (refused by name): `copilot` and `custom` providers, `passthrough`,
//! per-model `authorization`, `transformation`, `finalTransformation`, `health`, `backendTunnel`, `guardrails`, `tokenize`.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::backend::{AiBackend, BackendKind, LocalBackend};
use super::dialects::GatewayRefs;
use super::policies::Policies;
use super::schema::LocalRoute;
use super::types::Unsupported;
use crate::telemetry::cel::Expression;

/// agentgateway's port for `llm:` when neither `port` nor a gateway is given.
pub const DEFAULT_LLM_PORT: u16 = 4000;


/// Route policies `llm.policies` may hold (agentgateway's `LocalLLMPolicy`).
const LLM_POLICIES: &[&str] = &["oidc", "jwtAuth", "authorization", "extAuthz", "extProc", "cors", "transformations", "basicAuth", "apiKey", "localRateLimit", "remoteRateLimit", "timeout"];

/// The `llm:` block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalLlm {
    /// Gateways to serve on instead of a port of its own.
    pub gateways: Option<GatewayRefs>,
    /// Port of its own (default 4000 when there is no `default` gateway).
    pub port: Option<u16>,
    /// Server TLS of its own port (with `port`, not `gateways`).
    pub tls: Option<super::tls::TlsServerConfig>,
    /// Provider settings models refer to.
    #[serde(default)]
    pub providers: Vec<LlmProvider>,
    /// The models served, matched by the request's model.
    pub models: Vec<LlmModel>,
    /// Names that route to one of the models.
    #[serde(default)]
    pub virtual_models: Vec<VirtualModel>,
    /// Policies for every request, before a model is chosen.
    #[serde(default)]
    pub policies: Policies,
}

/// `llm.providers[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmProvider {
    /// What models refer to (`provider: {reference: name}`).
    pub name: String,
    /// Parameters of outgoing requests.
    #[serde(default)]
    pub params: LlmParams,
    /// The provider.
    pub provider: ModelProvider,
    /// Policy defaults for the models that use it.
    pub defaults: Option<ModelPolicies>,
}

/// `params`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmParams {
    /// The model sent upstream (else the request's).
    pub model: Option<String>,
    /// The provider's key: a string or `{file: path}`.
    pub api_key: Option<Value>,
    /// Bedrock's region.
    pub aws_region: Option<String>,
    /// Vertex's region.
    pub vertex_region: Option<String>,
    /// Vertex's project.
    pub vertex_project: Option<String>,
    /// Azure's resource.
    pub azure_resource_name: Option<String>,
    /// Azure's endpoint family.
    pub azure_resource_type: Option<String>,
    /// Azure's API version.
    pub azure_api_version: Option<String>,
    /// Azure AI Foundry's project.
    pub azure_project_name: Option<String>,
    /// `scheme://host[:port][/prefix]`: host override, path prefix and TLS.
    pub base_url: Option<String>,
    /// `host:port` instead of the provider's.
    pub host_override: Option<String>,
    /// The whole upstream path.
    pub path_override: Option<String>,
    /// Base path in front of the provider's API paths.
    pub path_prefix: Option<String>,
    /// Not supported yet when true.
    pub tokenize: Option<bool>,
}

/// A built-in provider's name, a preset's, or a reference to `llm.providers`.
#[derive(Debug, Clone)]
pub enum ModelProvider {
    /// `openai`, `anthropic`, `gemini`, `vertex`, `bedrock`, `azure`, or a preset.
    Named(String),
    /// `{reference: name}`.
    Reference(String),
}

impl<'de> Deserialize<'de> for ModelProvider {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(ModelProvider::Named(s)),
            Value::Object(m) if m.len() == 1 && m.get("reference").is_some_and(Value::is_string) => {
                Ok(ModelProvider::Reference(m["reference"].as_str().unwrap_or_default().to_string()))
            }
            Value::Object(m) if m.contains_key("custom") => Err(de::Error::custom("provider `custom` is not supported yet")),
            _ => Err(de::Error::custom("expected a provider name (openai, anthropic, gemini, vertex, bedrock, azure, or a preset) or `{reference: name}`")),
        }
    }
}

/// Policy fields a model (or a provider's `defaults`) sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPolicies {
    /// Request fields set when absent.
    pub defaults: Option<Map<String, Value>>,
    /// Request fields set always.
    pub overrides: Option<Map<String, Value>>,
    /// Not supported yet.
    pub transformation: Option<Unsupported>,
    /// Headers set, added or removed on the way to the provider (`requestHeaderModifier`).
    pub request_headers: Option<Value>,
    /// Headers set, added or removed on the provider's answers (`responseHeaderModifier`).
    pub response_headers: Option<Value>,
    /// TLS to the provider (as `backendTLS`).
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<Value>,
    /// Alias of `backendTLS`.
    pub tls: Option<Value>,
    /// Credentials (as `backendAuth`).
    pub auth: Option<Value>,
    /// Not supported yet.
    pub health: Option<Unsupported>,
    /// Not supported yet.
    pub backend_tunnel: Option<Unsupported>,
    /// Cache markers (as the `ai` policy's `promptCaching`).
    pub prompt_caching: Option<Value>,
}

/// Public models are requested directly; internal ones only through virtual models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Visibility {
    /// Listed and requestable.
    #[default]
    Public,
    /// Only a virtual model's target.
    Internal,
}

/// `llm.models[]`. Its policy fields are [`ModelPolicies`]' own, spelled out: serde cannot
/// flatten them into a struct that refuses unknown fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmModel {
    /// Stable identity (names the backend).
    pub id: Option<String>,
    /// The model name requests match: exact, or one `*` at the start or end.
    pub name: String,
    /// Whether clients may request it directly.
    #[serde(default)]
    pub visibility: Visibility,
    /// Parameters of outgoing requests.
    #[serde(default)]
    pub params: LlmParams,
    /// The provider.
    pub provider: ModelProvider,
    /// Not supported yet.
    pub passthrough: Option<Unsupported>,
    /// Not supported yet.
    pub authorization: Option<Unsupported>,
    /// Not supported yet.
    pub final_transformation: Option<Unsupported>,
    /// Not supported yet.
    pub guardrails: Option<Unsupported>,
    /// Header conditions (any entry; every header of one): the model serves only requests
    /// that meet one.
    #[serde(default)]
    pub matches: Vec<LlmRouteMatch>,
    /// Request fields set when absent.
    pub defaults: Option<Map<String, Value>>,
    /// Request fields set always.
    pub overrides: Option<Map<String, Value>>,
    /// Not supported yet.
    pub transformation: Option<Unsupported>,
    /// Headers set, added or removed on the way to the provider (`requestHeaderModifier`).
    pub request_headers: Option<Value>,
    /// Headers set, added or removed on the provider's answers (`responseHeaderModifier`).
    pub response_headers: Option<Value>,
    /// TLS to the provider (as `backendTLS`).
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<Value>,
    /// Alias of `backendTLS`.
    pub tls: Option<Value>,
    /// Credentials (as `backendAuth`).
    pub auth: Option<Value>,
    /// Not supported yet.
    pub health: Option<Unsupported>,
    /// Not supported yet.
    pub backend_tunnel: Option<Unsupported>,
    /// Cache markers (as the `ai` policy's `promptCaching`).
    pub prompt_caching: Option<Value>,
}

impl LlmModel {
    /// The model's own policy fields.
    fn policies(&self) -> ModelPolicies {
        ModelPolicies {
            defaults: self.defaults.clone(),
            overrides: self.overrides.clone(),
            backend_tls: self.backend_tls.clone(),
            tls: self.tls.clone(),
            auth: self.auth.clone(),
            prompt_caching: self.prompt_caching.clone(),
            request_headers: self.request_headers.clone(),
            response_headers: self.response_headers.clone(),
            ..ModelPolicies::default()
        }
    }
}

/// One `matches` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRouteMatch {
    /// Headers that must all match.
    #[serde(default)]
    pub headers: Vec<super::schema::ValueMatchNamed>,
}

/// `llm.virtualModels[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualModel {
    /// The name clients request.
    pub name: String,
    /// How a request picks a model.
    pub routing: VirtualRouting,
}

/// Exactly one routing strategy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualRouting {
    /// By weight.
    pub weighted: Option<Targets<WeightedTarget>>,
    /// By priority, failing over between tiers.
    pub failover: Option<Targets<FailoverTarget>>,
    /// The first target whose condition holds.
    pub conditional: Option<Targets<ConditionalTarget>>,
}

/// `{targets: [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets<T> {
    /// The targets.
    pub targets: Vec<T>,
}

/// A weighted target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    /// A model name, resolved against `llm.models`.
    pub model: String,
    /// Relative share (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// A failover target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverTarget {
    /// A model name, resolved against `llm.models`.
    pub model: String,
    /// Lower is tried first.
    pub priority: u32,
}

/// A conditional target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalTarget {
    /// CEL over `llmRequest` (the request body) and `request`; absent only on the last.
    pub when: Option<Expression>,
    /// A model name, resolved against `llm.models`.
    pub model: String,
}

/// The router a `llm:` route's backend is: each model as an `ai` backend.
#[derive(Debug, Clone)]
pub struct LlmRouterConfig {
    /// Models, in config order.
    pub models: Vec<RouterModel>,
    /// Virtual models.
    pub virtual_models: Vec<VirtualModel>,
}

/// One model of the router.
#[derive(Debug, Clone)]
pub struct RouterModel {
    /// The match pattern.
    pub name: String,
    /// Requestable directly.
    pub public: bool,
    /// The model sent upstream, when `params.model` sets it.
    pub upstream_model: Option<String>,
    /// The model as an `ai` backend.
    pub backend: AiBackend,
    /// Its `defaults`, `overrides`, `promptCaching` and header modifiers (failover targets must
    /// share them).
    pub body_rules: Value,
    /// Its header conditions (none: every request).
    pub matches: Vec<LlmRouteMatch>,
}

impl RouterModel {
    /// Whether `model` matches this entry's pattern.
    pub fn matches(&self, model: &str) -> bool {
        name_matches(&self.name, model)
    }

    /// This model's backend sending `model` upstream unless `params.model` names another.
    pub fn backend_for(&self, model: &str) -> AiBackend {
        let mut b = self.backend.clone();
        if self.upstream_model.is_none() {
            if let Some(p) = b.provider.as_mut() {
                set_provider_model(p, model);
            }
        }
        b
    }
}

/// `*` matches all; `pfx*` and `*sfx` by prefix and suffix; else exact.
pub fn name_matches(pattern: &str, model: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(p) = pattern.strip_suffix('*') {
        return model.starts_with(p);
    }
    if let Some(s) = pattern.strip_prefix('*') {
        return model.ends_with(s);
    }
    pattern == model
}

fn set_provider_model(p: &mut super::backend::Provider, model: &str) {
    let m = Some(model.to_string());
    if let Some(x) = p.open_ai.as_mut() {
        x.model = m;
    } else if let Some(x) = p.anthropic.as_mut() {
        x.model = m;
    } else if let Some(x) = p.gemini.as_mut() {
        x.model = m;
    } else if let Some(x) = p.vertex.as_mut() {
        x.model = m;
    } else if let Some(x) = p.bedrock.as_mut() {
        x.model = m;
    } else if let Some(x) = p.azure.as_mut() {
        x.model = m;
    }
}

impl LocalLlm {
    /// The route serving every path with the model router.
    pub fn into_route(self) -> Result<LocalRoute, String> {
        for entry in &self.policies.0 {
            if !LLM_POLICIES.contains(&entry.spec.name) {
                return Err(format!("llm.policies: `{}` is not a policy of `llm:` (it takes {})", entry.spec.name, LLM_POLICIES.join(", ")));
            }
        }
        let router = router_config(&self.providers, &self.models, self.virtual_models)?;
        Ok(LocalRoute {
            name: Some("llm".into()),
            namespace: None,
            rule_name: None,
            gateways: None,
            hostnames: Vec::new(),
            matches: Vec::new(),
            policies: self.policies,
            backends: vec![LocalBackend { name: None, weight: 1, policies: Policies::default(), kind: BackendKind::LlmRouter(Box::new(router)) }],
        })
    }
}

fn router_config(providers: &[LlmProvider], models: &[LlmModel], virtual_models: Vec<VirtualModel>) -> Result<LlmRouterConfig, String> {
    let mut names = std::collections::HashSet::new();
    for p in providers {
        if !names.insert(p.name.as_str()) {
            return Err(format!("llm.providers: two providers are named `{}`", p.name));
        }
        if matches!(p.provider, ModelProvider::Reference(_)) {
            return Err(format!("llm.providers `{}`: a provider cannot refer to another", p.name));
        }
    }
    let mut ids = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let at = |e: String| format!("llm.models[{i}] ({}): {e}", m.name);
        let stars = m.name.matches('*').count();
        if stars > 1 || (stars == 1 && !m.name.starts_with('*') && !m.name.ends_with('*')) {
            return Err(at("a name has at most one `*`, at its start or end".into()));
        }
        if let Some(id) = &m.id {
            if id.is_empty() || !ids.insert(id.clone()) {
                return Err(at(format!("id `{id}` is empty or not unique")));
            }
        }
        let (params, provider, policies) = resolve_reference(m, providers).map_err(at)?;
        let backend_name = m.id.clone().unwrap_or_else(|| format!("llm:model:{}:{i}", m.name));
        let backend = super::llm_backend::model_backend(&backend_name, &params, &provider, &policies).map_err(at)?;
        let body_rules = json!([policies.defaults, policies.overrides, policies.prompt_caching, policies.request_headers, policies.response_headers]);
        out.push(RouterModel { name: m.name.clone(), public: m.visibility == Visibility::Public, upstream_model: params.model.clone(), backend, body_rules, matches: m.matches.clone() });
    }
    // Most specific first (non-`*` characters), config order among equals.
    out.sort_by_key(|m| std::cmp::Reverse(m.name.chars().filter(|c| *c != '*').count()));
    for (i, v) in virtual_models.iter().enumerate() {
        let at = |e: String| format!("llm.virtualModels[{i}] ({}): {e}", v.name);
        if virtual_models[..i].iter().any(|w| w.name == v.name) {
            return Err(at("another virtual model has this name".into()));
        }
        let r = &v.routing;
        let targets: Vec<&str> = match (&r.weighted, &r.failover, &r.conditional) {
            (Some(w), None, None) => w.targets.iter().map(|t| t.model.as_str()).collect(),
            (None, Some(f), None) => f.targets.iter().map(|t| t.model.as_str()).collect(),
            (None, None, Some(c)) => {
                let last = c.targets.len().saturating_sub(1);
                if c.targets.iter().enumerate().any(|(j, t)| t.when.is_none() && j != last) {
                    return Err(at("only the last conditional target may omit `when`".into()));
                }
                c.targets.iter().map(|t| t.model.as_str()).collect()
            }
            _ => return Err(at("routing needs exactly one of weighted, failover, conditional".into())),
        };
        if targets.is_empty() {
            return Err(at("routing needs at least one target".into()));
        }
        if let Some(t) = targets.iter().find(|t| !out.iter().any(|m| m.matches.is_empty() && m.matches(t))) {
            return Err(at(format!("target `{t}` matches no entry of llm.models (without `matches`: a target is chosen before the request's headers are seen)")));
        }
    }
    Ok(LlmRouterConfig { models: out, virtual_models })
}

/// A model's params, provider and policies, with its provider reference resolved.
fn resolve_reference(m: &LlmModel, providers: &[LlmProvider]) -> Result<(LlmParams, String, ModelPolicies), String> {
    let ModelProvider::Reference(name) = &m.provider else {
        let ModelProvider::Named(p) = &m.provider else { unreachable!() };
        return Ok((m.params.clone(), p.clone(), m.policies()));
    };
    let p = providers.iter().find(|p| &p.name == name).ok_or_else(|| format!("no llm.providers entry is named `{name}`"))?;
    let LlmParams { model: _, api_key, aws_region, vertex_region, vertex_project, azure_resource_name, azure_resource_type, azure_api_version, azure_project_name, base_url, host_override, path_override, path_prefix, tokenize } = &m.params;
    let others = [api_key.is_some(), aws_region.is_some(), vertex_region.is_some(), vertex_project.is_some(), azure_resource_name.is_some(), azure_resource_type.is_some(),
                  azure_api_version.is_some(), azure_project_name.is_some(), base_url.is_some(), host_override.is_some(), path_override.is_some(), path_prefix.is_some(), tokenize.is_some()];
    if others.contains(&true) {
        return Err("a model that refers to a provider sets only `params.model` (the rest is the provider's)".into());
    }
    let ModelProvider::Named(kind) = &p.provider else { unreachable!() };
    let base = p.defaults.clone().unwrap_or_default();
    let own = &m.policies();
    // The model's own credentials replace the provider's key.
    let api_key = if own.auth.is_some() { None } else { p.params.api_key.clone() };
    let params = LlmParams { model: m.params.model.clone().or_else(|| p.params.model.clone()), api_key, ..p.params.clone() };
    let merge = |a: &Option<Map<String, Value>>, b: &Option<Map<String, Value>>| match (a, b) {
        (None, None) => None,
        _ => {
            let mut out = a.clone().unwrap_or_default();
            out.extend(b.clone().unwrap_or_default());
            Some(out)
        }
    };
    let policies = ModelPolicies {
        defaults: merge(&base.defaults, &own.defaults),
        overrides: merge(&base.overrides, &own.overrides),
        // `tls` is `backendTLS` by another name: the model's, either way, replaces the provider's.
        backend_tls: own.backend_tls.clone().or(own.tls.clone()).or(base.backend_tls).or(base.tls),
        tls: None,
        auth: own.auth.clone().or(base.auth),
        prompt_caching: own.prompt_caching.clone().or(base.prompt_caching),
        request_headers: own.request_headers.clone().or(base.request_headers),
        response_headers: own.response_headers.clone().or(base.response_headers),
        ..ModelPolicies::default()
    };
    Ok((params, kind.clone(), policies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_one_star() {
        assert!(name_matches("*", "x") && name_matches("gpt-*", "gpt-4o") && name_matches("*-mini", "o4-mini"));
        assert!(!name_matches("gpt-*", "claude") && !name_matches("gpt-4o", "gpt-4o-mini"));
    }
}
