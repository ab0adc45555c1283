//! Route backends: `host`, `ai` (LLM provider), `mcp`, a named backend or a route group, each
//! with a weight and its own policies.

use serde::de;
use serde::Deserialize;

use super::policies::{BackendPolicies, Policies};

/// A backend's `policies`: backend-level ones only.
fn backend_policies<'de, D: de::Deserializer<'de>>(d: D) -> Result<Policies, D::Error> {
    BackendPolicies::deserialize(d).map(|b| b.0)
}
pub use super::mcp::McpBackend;
use super::types::Unsupported;

/// A backend as written in the file, reduced to exactly one kind.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// Top-level `backends` only: the name routes refer to with `backend: name`.
    pub name: Option<String>,
    /// Relative share of traffic (default 1).
    pub weight: u32,
    /// Policies that apply when this backend is chosen (override the route's).
    pub policies: Policies,
    /// What the backend is.
    pub kind: BackendKind,
}

/// The backend kinds tollgate serves.
#[derive(Debug, Clone)]
pub enum BackendKind {
    /// `host: "addr:port"`: plain HTTP proxying.
    Host(String),
    /// An LLM provider.
    Ai(Box<AiBackend>),
    /// MCP targets behind one endpoint.
    Mcp(Box<McpBackend>),
    /// `backend: name`: one of the top-level `backends`, resolved right after parsing.
    Named(String),
    /// `routeGroup: name`: delegation to the routes of a top-level `routeGroups` entry.
    RouteGroup(String),
    /// The `llm:` shortcut's model router (not written in YAML).
    LlmRouter(Box<super::llm::LlmRouterConfig>),
}

// The `Unsupported` fields exist only to fail the load with a clear message.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LocalBackendRaw {
    name: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default, deserialize_with = "backend_policies")]
    policies: Policies,
    host: Option<String>,
    ai: Option<Box<AiBackend>>,
    mcp: Option<Box<McpBackend>>,
    service: Option<Unsupported>,
    backend: Option<String>,
    internal: Option<Unsupported>,
    dynamic: Option<Unsupported>,
    aws: Option<Unsupported>,
    route_group: Option<String>,
    invalid: Option<Unsupported>,
}

impl<'de> Deserialize<'de> for LocalBackend {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = LocalBackendRaw::deserialize(d)?;
        let kind = match (raw.host, raw.ai, raw.mcp, raw.backend, raw.route_group) {
            (Some(h), None, None, None, None) => {
                validate_host_port(&h).map_err(de::Error::custom)?;
                BackendKind::Host(h)
            }
            (None, Some(a), None, None, None) => BackendKind::Ai(a),
            (None, None, Some(m), None, None) => BackendKind::Mcp(m),
            (None, None, None, Some(name), None) => BackendKind::Named(name),
            (None, None, None, None, Some(group)) => {
                // agentgateway attaches them to the reference, where they never reach the
                // group's backends: refuse rather than ignore.
                if !raw.policies.0.is_empty() {
                    return Err(de::Error::custom("a routeGroup backend takes no policies (they would never apply); set them on the route or the group's routes"));
                }
                BackendKind::RouteGroup(group)
            }
            _ => return Err(de::Error::custom("a backend needs exactly one of host, ai, mcp, backend, routeGroup")),
        };
        let weight = raw.weight.unwrap_or(1);
        Ok(LocalBackend { name: raw.name, weight, policies: raw.policies, kind })
    }
}

/// Checks `host:port` (IPv6 as `[::1]:port`) without resolving anything.
pub fn validate_host_port(text: &str) -> Result<(), String> {
    split_host_port(text).map(|_| ())
}

/// Splits `host:port`; the port is required.
pub fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{text}` is not host:port");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// `ai:` an LLM provider backend: one provider (`name`, `provider`, …), or `groups` of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiBackend {
    /// Name, for logs and metrics.
    #[serde(default)]
    pub name: String,
    /// Which provider API this backend speaks (absent only beside `groups`).
    pub provider: Option<Provider>,
    /// `host:port` to send to instead of the provider's default.
    pub host_override: Option<String>,
    /// Replaces the upstream path entirely.
    pub path_override: Option<String>,
    /// Base path in front of the provider's API paths.
    pub path_prefix: Option<String>,
    /// Policies for this provider (e.g. `ai.routes`).
    #[serde(default, deserialize_with = "backend_policies")]
    pub policies: Policies,
    /// Not supported yet.
    pub tokenize: Option<Unsupported>,
    /// Priority tiers of providers, for failover (the only key of this form).
    pub groups: Option<Vec<AiGroup>>,
}

/// One priority tier of `ai.groups`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiGroup {
    /// Providers sharing this tier's load.
    pub providers: Vec<AiBackend>,
}

/// Exactly one provider kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// OpenAI or any OpenAI-compatible API.
    #[serde(rename = "openAI")]
    pub open_ai: Option<OpenAiProvider>,
    /// Google AI Studio's Gemini API.
    pub gemini: Option<GeminiProvider>,
    /// Gemini and Claude models on Google Cloud's Vertex AI.
    pub vertex: Option<VertexProvider>,
    /// Anthropic's Messages API.
    pub anthropic: Option<AnthropicProvider>,
    /// Amazon Bedrock's Converse API.
    pub bedrock: Option<BedrockProvider>,
    /// Azure OpenAI / AI Foundry (OpenAI's wire format on Azure's hosts and paths).
    pub azure: Option<AzureProvider>,
    /// Not supported yet.
    pub copilot: Option<Unsupported>,
    /// Any server, described by the APIs (`formats`) it speaks; needs `hostOverride`.
    pub custom: Option<CustomProvider>,
}

/// `provider.custom`: a server that speaks some of the APIs the gateway knows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomProvider {
    /// Model that replaces whatever the client asked for.
    pub model: Option<String>,
    /// The provider's name in telemetry and for cost lookups (default `custom`).
    pub provider_override: Option<String>,
    /// The APIs the server accepts, each at its own path if given.
    pub formats: Vec<ProviderFormatConfig>,
}

/// One API a custom provider accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderFormatConfig {
    /// The API.
    #[serde(rename = "type")]
    pub format: ProviderFormat,
    /// Where the server serves it (else the API's usual path behind `pathPrefix`).
    pub path: Option<String>,
}

/// The APIs a custom provider can declare (agentgateway's `ProviderFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProviderFormat {
    /// OpenAI Chat Completions.
    Completions,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Responses.
    Responses,
    /// OpenAI embeddings.
    Embeddings,
    /// Anthropic's token count.
    AnthropicTokenCount,
    /// Gemini generateContent (not supported yet on custom providers).
    GenerateContent,
    /// Gemini countTokens (not supported yet on custom providers).
    GeminiCountTokens,
    /// Realtime over WebSocket (not supported yet).
    Realtime,
    /// Cohere-shaped rerank.
    Rerank,
}

/// `provider.gemini`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeminiProvider {
    /// Model that replaces whatever the client asked for (also names the request path).
    pub model: Option<String>,
}

/// `provider.bedrock`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BedrockProvider {
    /// Model (id or inference profile ARN) that replaces the client's; the path names it.
    pub model: Option<String>,
    /// The AWS region (`bedrock-runtime.{region}.amazonaws.com`, and the signing region).
    pub region: String,
    /// Not supported yet.
    pub guardrail_identifier: Option<Unsupported>,
    /// Not supported yet.
    pub guardrail_version: Option<Unsupported>,
}

/// `provider.vertex`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VertexProvider {
    /// Model that replaces the client's (it names the path, and its family the API).
    pub model: Option<String>,
    /// `global` (the default), `us` / `eu` (multi-region), or a region such as `us-central1`.
    pub region: Option<String>,
    /// The Google Cloud project.
    pub project_id: String,
}

/// `provider.azure`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureProvider {
    /// Model (the deployment, on deployment paths) that replaces the client's.
    pub model: Option<String>,
    /// Names the host: `{resourceName}.openai.azure.com` or `….services.ai.azure.com`.
    pub resource_name: String,
    /// Which Azure endpoint family.
    pub resource_type: AzureResourceType,
    /// `v1` (default) or `preview` for the v1 API; a dated version selects the deployment paths.
    pub api_version: Option<String>,
    /// Foundry project (`/api/projects/{project}/openai/v1/…`); defaults to the resource name.
    pub project_name: Option<String>,
}

/// `provider.azure.resourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AzureResourceType {
    /// Azure OpenAI Service.
    #[serde(rename = "openAI", alias = "azureOpenAI")]
    OpenAi,
    /// Azure AI Foundry project.
    #[serde(rename = "foundry", alias = "aiServices")]
    Foundry,
}

/// `provider.anthropic`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnthropicProvider {
    /// Model that replaces whatever the client asked for.
    pub model: Option<String>,
}

/// `provider.openAI`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenAiProvider {
    /// Model that replaces whatever the client asked for.
    pub model: Option<String>,
    /// Not supported yet.
    pub moderation: Option<Unsupported>,
}

