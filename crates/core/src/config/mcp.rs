//! `mcp:` backends: the targets federated behind one MCP endpoint and how each is reached.
//! Strictly typed so a misspelt transport field fails the load with its line.

use indexmap::IndexMap;
use serde::de;
use serde::{Deserialize, Deserializer};

use super::types::{read_config_file, AnyValue};

/// `mcp:` targets federated behind one endpoint (served by the MCP module).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpBackend {
    /// Upstream MCP servers.
    pub targets: Vec<McpTarget>,
    /// `stateful` (default) or `stateless`.
    #[serde(default)]
    pub stateful_mode: StatefulMode,
    /// `conditional` (default), `always` or `never`.
    #[serde(default)]
    pub prefix_mode: PrefixMode,
    /// `failClosed` (default) or `failOpen`.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Refuse requests whose `Origin` is neither the gateway's host nor localhost.
    pub dns_rebinding_protection: Option<bool>,
}

/// Whether the gateway keeps MCP sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StatefulMode {
    /// Sessions with `Mcp-Session-Id`.
    #[default]
    Stateful,
    /// Every request stands alone.
    Stateless,
}

/// When tool and prompt names get a `<target>_` prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PrefixMode {
    /// Only with more than one target.
    #[default]
    Conditional,
    /// Always.
    Always,
    /// Never (names must not collide).
    Never,
}

/// What a failing target does to a session or a fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Any target failing fails the request.
    #[default]
    FailClosed,
    /// Failing targets are skipped; only all failing is an error.
    FailOpen,
}

/// One MCP target; exactly one transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpTarget {
    /// Target name (used to prefix tool names).
    pub name: String,
    /// Streamable HTTP transport.
    pub mcp: Option<HttpTargetSpec>,
    /// Legacy HTTP+SSE transport.
    pub sse: Option<HttpTargetSpec>,
    /// A child process per session speaking MCP on stdin/stdout.
    pub stdio: Option<StdioSpec>,
    /// An HTTP service whose OpenAPI operations become tools.
    pub openapi: Option<OpenApiSpec>,
    /// How to reach this target (credentials, TLS), over the route's.
    pub policies: Option<TargetPolicies>,
    /// The policies of the named backend a `backend:` reference points at (set while
    /// normalizing; only `backendTLS` and `backendAuth` can apply to a target).
    #[serde(skip)]
    pub backend_policies: super::policies::Policies,
}

/// Transport policies of one HTTP target: each target of a federation usually has its own
/// credentials and certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetPolicies {
    /// The credential this target gets (replaces the route's `Authorization`).
    pub backend_auth: Option<crate::filters::backend_auth::BackendAuthConfig>,
    /// TLS towards this target (replaces the route's `backendTLS`).
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<crate::filters::backend_tls::BackendTlsConfig>,
}

/// Where an HTTP target lives: `host: URL`, or `host`, `port` and `path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTargetSpec {
    /// `http(s)://host:port/path`, or a bare host name with `port` (empty with `backend`).
    #[serde(default)]
    pub host: String,
    /// Port, when `host` is not a URL.
    pub port: Option<u16>,
    /// Path, when `host` is not a URL (required with `backend`).
    pub path: Option<String>,
    /// A top-level `host` backend to reach the target through (its `backendTLS` and
    /// `backendAuth` apply); rewritten into `host` while normalizing.
    pub backend: Option<String>,
}

/// A child process target.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StdioSpec {
    /// Program to run.
    pub cmd: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Start from an empty environment.
    #[serde(default, alias = "clear_env")]
    pub clear_env: bool,
}

/// An OpenAPI target: the document and the service it describes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenApiSpec {
    /// The OpenAPI 3 document (JSON or YAML): `{file: path}`, `{url: URL}` or inline.
    pub schema: OpenApiDocument,
    /// The service: `host:port`, or a URL (empty with `backend`).
    #[serde(default)]
    pub host: String,
    /// Port, when `host` is a bare name.
    pub port: Option<u16>,
    /// Path prefix prepended to every operation path.
    pub path: Option<String>,
    /// A top-level `host` backend serving the API (its `backendTLS` and `backendAuth`
    /// apply); rewritten into `host` while normalizing.
    pub backend: Option<String>,
}

/// An OpenAPI document: read at load time (`{file}`, inline), or a URL the MCP family
/// fetches when it compiles the target (at every load and reload).
#[derive(Debug, Clone)]
pub enum OpenApiDocument {
    /// The parsed document.
    Inline(serde_json::Value),
    /// `{url: …}`: fetched when the target is compiled.
    Url(String),
}

impl<'de> Deserialize<'de> for OpenApiDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = AnyValue::deserialize(d)?;
        let text = match &value {
            AnyValue::Mapping(m) if m.len() == 1 && m.contains_key("file") => {
                let file = m.get("file").and_then(|f| f.as_str()).ok_or_else(|| de::Error::custom("`file` must be a path"))?;
                read_config_file(file).map_err(de::Error::custom)?
            }
            AnyValue::Mapping(m) if m.len() == 1 && m.contains_key("url") => {
                let url = m.get("url").and_then(|f| f.as_str()).ok_or_else(|| de::Error::custom("`url` must be a string"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(de::Error::custom(format!("`{url}` must start with http:// or https://")));
                }
                return Ok(OpenApiDocument::Url(url.to_string()));
            }
            AnyValue::String(s) => s.clone(),
            other => {
                return serde_json::to_value(other).map(OpenApiDocument::Inline).map_err(de::Error::custom);
            }
        };
        OpenApiDocument::parse(&text).map_err(de::Error::custom)
    }
}

impl OpenApiDocument {
    /// Parses a document's text (JSON or YAML); it must be an object.
    pub fn parse(text: &str) -> Result<OpenApiDocument, String> {
        let doc: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| format!("OpenAPI document: {e}"))?;
        if !doc.is_object() {
            return Err("the OpenAPI document must be an object".into());
        }
        Ok(OpenApiDocument::Inline(doc))
    }
}
