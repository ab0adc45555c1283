//! `ai` backends compiled: a provider's target (host, port, paths, the API it speaks) and
//! `ai.groups`' tiers of providers with their own TLS and credentials.

use std::sync::Arc;

use super::ai_groups;
use crate::config::backend::{split_host_port, AiBackend};
use crate::config::policies::PolicyEntry;
use crate::filters::registry;

/// An LLM provider backend, ready for the `ai` filter.
#[derive(Debug, Clone)]
pub struct AiTarget {
    /// Backend name.
    pub name: String,
    /// The API the provider speaks.
    pub provider: crate::llm::AiProvider,
    /// The provider's name in telemetry (`gen_ai.provider.name`).
    pub provider_name: &'static str,
    /// Azure's paths, for an `azure` provider (which speaks OpenAI's API).
    pub azure: Option<AzurePaths>,
    /// Project and location of a `vertex` provider (whose API follows the model's family).
    pub vertex: Option<VertexTarget>,
    /// The AWS region of a `bedrock` provider (its host and signing region).
    pub bedrock_region: Option<String>,
    /// Model that replaces the client's.
    pub model: Option<String>,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// `hostOverride` was given: keep the client's path and use TLS only if `backendTLS` says so.
    pub host_overridden: bool,
    /// Replaces the path of completions.
    pub path_override: Option<String>,
    /// Base path for provider API paths.
    pub path_prefix: Option<String>,
    /// The APIs of a `custom` provider (see [`AiTarget::for_route`]).
    pub custom: Option<super::custom::CustomFormats>,
}

/// A Vertex AI endpoint: `/v1/projects/{project}/locations/{location}/publishers/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexTarget {
    /// The project.
    pub project: String,
    /// The location (`global`, `us`, `eu` or a region).
    pub location: String,
}

/// Where an Azure provider serves each API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzurePaths {
    /// The v1 API: `/openai/v1/{api}`, with `?api-version=preview` when asked for.
    V1 {
        /// `api-version=preview`.
        preview: bool,
    },
    /// Dated versions: `/openai/deployments/{model}/{api}?api-version={version}`.
    Deployments {
        /// The `api-version` query value.
        api_version: String,
    },
    /// AI Foundry: `/api/projects/{project}/openai/v1/{api}`.
    Foundry {
        /// The project.
        project: String,
    },
}

pub(super) fn default_ai_policy() -> Result<PolicyEntry, String> {
    let spec = registry::find("ai").ok_or("the ai filter is not registered")?;
    let mut de = serde_json::Deserializer::from_str("{}");
    let filter = (spec.build)(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(|e| e.to_string())?;
    Ok(PolicyEntry { spec, filter })
}

/// `ai.groups`: each provider compiled as a single one, with its own TLS and credentials.
pub(super) fn compile_ai_groups(ai: &AiBackend, groups: &[crate::config::backend::AiGroup]) -> Result<ai_groups::AiGroups, String> {
    let beside = [
        (!ai.name.is_empty(), "name"),
        (ai.provider.is_some(), "provider"),
        (ai.host_override.is_some(), "hostOverride"),
        (ai.path_override.is_some(), "pathOverride"),
        (ai.path_prefix.is_some(), "pathPrefix"),
        (!ai.policies.0.is_empty(), "policies"),
    ];
    if let Some((_, field)) = beside.iter().find(|(set, _)| *set) {
        return Err(format!("ai: `{field}` cannot stand beside `groups` (each provider of a group has its own; backend policies go beside `ai:`)"));
    }
    let mut tiers = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        if group.providers.is_empty() {
            return Err(format!("ai.groups[{g}]: a group needs at least one provider"));
        }
        let mut tier = Vec::new();
        for (p, provider) in group.providers.iter().enumerate() {
            let at = |e: String| format!("ai.groups[{g}].providers[{p}]: {e}");
            if provider.groups.is_some() {
                return Err(at("groups do not nest".into()));
            }
            let target = ai_target(provider).map_err(at)?;
            let (mut tls, mut auth) = (None, None);
            for entry in &provider.policies.0 {
                let filter: &dyn std::any::Any = &*entry.filter;
                if let Some(t) = filter.downcast_ref::<crate::filters::backend_tls::BackendTls>() {
                    tls = Some(t.plan().clone());
                } else if let Some(a) = filter.downcast_ref::<crate::filters::backend_auth::BackendAuth>() {
                    use crate::filters::backend_auth::Credential;
                    if matches!(a.credential(), Credential::Passthrough(_)) || matches!(a.credential(), Credential::JwtSign(s) if s.location.is_some()) {
                        return Err(at("backendAuth passthrough (or jwtSign with a location) on a provider of a group is not supported yet (put it beside `ai:`)".into()));
                    }
                    auth = Some(a.credential().clone());
                } else {
                    return Err(at(format!("policy `{}` on a provider of a group is not supported yet (backendTLS and backendAuth are; others go beside `ai:`)", entry.spec.name)));
                }
            }
            tier.push(Arc::new(ai_groups::GroupProvider { target, tls, auth, health: Default::default() }));
        }
        tiers.push(tier);
    }
    if tiers.is_empty() {
        return Err("ai.groups: at least one group is required".into());
    }
    Ok(ai_groups::AiGroups { tiers })
}

/// One `ai` backend (or one provider of a group) as the `ai` filter's target: provider, host,
/// and the provider's own paths.
pub(super) fn ai_target(ai: &AiBackend) -> Result<AiTarget, String> {
    use crate::config::backend::AzureResourceType;
    use crate::llm::AiProvider;
    if ai.name.is_empty() {
        return Err("ai: `name` is required".into());
    }
    let p = ai.provider.as_ref().ok_or("ai: `provider` (or `groups`) is required")?;
    let named = [p.open_ai.is_some(), p.anthropic.is_some(), p.gemini.is_some(), p.azure.is_some(), p.vertex.is_some(), p.bedrock.is_some(), p.custom.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        return Err("ai.provider: exactly one provider is required (openAI, anthropic, gemini, vertex, bedrock, azure or custom)".into());
    }
    let mut custom = None;
    let mut azure = None;
    let mut bedrock_region = None;
    let mut vertex = None;
    let (provider, provider_name, model, default_host) = if let Some(o) = &p.open_ai {
        (AiProvider::OpenAi, "openai", o.model.clone(), "api.openai.com".to_string())
    } else if let Some(a) = &p.anthropic {
        (AiProvider::Anthropic, "anthropic", a.model.clone(), "api.anthropic.com".to_string())
    } else if let Some(g) = &p.gemini {
        (AiProvider::Gemini, "gcp.gemini", g.model.clone(), "generativelanguage.googleapis.com".to_string())
    } else if let Some(b) = &p.bedrock {
        let region = &b.region;
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(format!("ai.provider.bedrock.region `{region}` is not an AWS region"));
        }
        bedrock_region = Some(region.clone());
        (AiProvider::Bedrock, "aws.bedrock", b.model.clone(), format!("bedrock-runtime.{region}.amazonaws.com"))
    } else if let Some(v) = &p.vertex {
        let location = v.region.clone().unwrap_or_else(|| "global".into());
        let plain = |s: &str| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !plain(&v.project_id) {
            return Err(format!("ai.provider.vertex.projectId `{}` is not a project id", v.project_id));
        }
        if !plain(&location) {
            return Err(format!("ai.provider.vertex.region `{location}` is not a region"));
        }
        let host = match location.as_str() {
            "global" => "aiplatform.googleapis.com".to_string(),
            "us" | "eu" => format!("aiplatform.{location}.rep.googleapis.com"),
            region => format!("{region}-aiplatform.googleapis.com"),
        };
        vertex = Some(VertexTarget { project: v.project_id.clone(), location });
        (AiProvider::Gemini, "gcp.vertex_ai", v.model.clone(), host)
    } else if let Some(z) = &p.azure {
        let resource = &z.resource_name;
        let valid_label = !resource.is_empty() && resource.len() <= 63 && resource.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_label {
            return Err(format!("ai.provider.azure.resourceName `{resource}` is not a host name label"));
        }
        let (host, paths) = match z.resource_type {
            AzureResourceType::OpenAi => {
                if z.project_name.is_some() {
                    return Err("ai.provider.azure.projectName applies to resourceType foundry only".into());
                }
                let paths = match z.api_version.as_deref().unwrap_or("v1") {
                    "v1" => AzurePaths::V1 { preview: false },
                    "preview" => AzurePaths::V1 { preview: true },
                    v if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => AzurePaths::Deployments { api_version: v.to_string() },
                    v => return Err(format!("ai.provider.azure.apiVersion `{v}` is not an API version")),
                };
                (format!("{resource}.openai.azure.com"), paths)
            }
            AzureResourceType::Foundry => {
                let project = z.project_name.clone().unwrap_or_else(|| resource.clone());
                if project.is_empty() || !project.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                    return Err(format!("ai.provider.azure.projectName `{project}` is not a project name"));
                }
                (format!("{resource}.services.ai.azure.com"), AzurePaths::Foundry { project })
            }
        };
        azure = Some(paths);
        (AiProvider::OpenAi, "azure.ai.openai", z.model.clone(), host)
    } else if let Some(c) = &p.custom {
        if ai.host_override.is_none() {
            return Err("ai.provider.custom needs `hostOverride` (a custom provider has no host of its own)".into());
        }
        let (formats, name) = super::custom::compile(c)?;
        custom = Some(formats);
        (AiProvider::OpenAi, name, c.model.clone(), String::new())
    } else {
        return Err("ai.provider: exactly one provider is required".into());
    };
    let (host, port, host_overridden) = match &ai.host_override {
        Some(h) => {
            let (host, port) = split_host_port(h)?;
            (host, port, true)
        }
        None => (default_host, 443, false),
    };
    Ok(AiTarget {
        name: ai.name.clone(),
        provider,
        provider_name,
        azure,
        vertex,
        bedrock_region,
        model,
        host,
        port,
        host_overridden,
        path_override: ai.path_override.clone(),
        path_prefix: ai.path_prefix.clone(),
        custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(yaml: &str) -> Result<AiTarget, String> {
        let backend: AiBackend = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        ai_target(&backend)
    }

    #[test]
    fn azure_hosts_come_from_the_resource() {
        let t = target("{name: a, provider: {azure: {resourceName: acme, resourceType: openAI}}}").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.host_overridden), ("acme.openai.azure.com", 443, false));
        assert_eq!(t.azure, Some(AzurePaths::V1 { preview: false }));
        assert_eq!(t.provider_name, "azure.ai.openai");
        let t = target("{name: a, provider: {azure: {resourceName: acme, resourceType: foundry, projectName: p}}}").unwrap();
        assert_eq!(t.host, "acme.services.ai.azure.com");
        assert_eq!(t.azure, Some(AzurePaths::Foundry { project: "p".into() }));
        let t = target("{name: a, hostOverride: '127.0.0.1:9', provider: {azure: {resourceName: acme, resourceType: openAI, apiVersion: 2024-10-21}}}").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.host_overridden), ("127.0.0.1", 9, true));
        assert_eq!(t.azure, Some(AzurePaths::Deployments { api_version: "2024-10-21".into() }));
    }

    #[test]
    fn vertex_and_bedrock_hosts_come_from_the_region() {
        for (region, host) in [("", "aiplatform.googleapis.com"), ("global", "aiplatform.googleapis.com"), ("eu", "aiplatform.eu.rep.googleapis.com"), ("us-central1", "us-central1-aiplatform.googleapis.com")] {
            let region = if region.is_empty() { String::new() } else { format!(", region: {region}") };
            let t = target(&format!("{{name: v, provider: {{vertex: {{projectId: p{region}}}}}}}")).unwrap();
            assert_eq!((t.host.as_str(), t.port), (host, 443));
        }
        let t = target("{name: v, provider: {vertex: {projectId: p}}}").unwrap();
        assert_eq!(t.vertex, Some(VertexTarget { project: "p".into(), location: "global".into() }));
        assert!(target("{name: v, provider: {vertex: {projectId: 'a/b'}}}").is_err());
        let t = target("{name: b, provider: {bedrock: {region: eu-west-1}}}").unwrap();
        assert_eq!((t.host.as_str(), t.bedrock_region.as_deref()), ("bedrock-runtime.eu-west-1.amazonaws.com", Some("eu-west-1")));
        assert!(target("{name: b, provider: {bedrock: {region: 'eu-west-1.evil.com/'}}}").is_err());
    }
}
