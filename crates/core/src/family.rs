//! Backend families served outside the core. The core parses their part of the config
//! (agentgateway's schema is one), a family's crate serves it: the binary installs the
//! family at start, as it installs the filters.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;

use crate::config::mcp::McpBackend;
use crate::config::policies::PolicyEntry;
use crate::config::LocalConfig;
use crate::telemetry::metrics::Metrics;

/// The MCP family: serves `mcp` backends and keeps their sessions across reloads.
#[async_trait]
pub trait McpFamily: Send + Sync + 'static {
    /// The filters that serve one `mcp` backend; `identity` names it (route and position), so
    /// a session is honoured only by the backend that made it.
    fn compile(&self, backend: &McpBackend, identity: &str) -> Result<Vec<PolicyEntry>, String>;
    /// Runs for the life of the process (session expiry), publishing to `metrics`.
    async fn maintain(&self, shutdown: ShutdownWatch, metrics: Arc<Metrics>);
    /// The process is ending: stop what must not outlive it (stdio children).
    async fn stop(&self);
}

/// Builds the MCP family from the config's `config:` section, once per process. `key_dir`
/// is where a generated session key is kept (`None`: a throwaway, for `--validate-only`).
pub type McpFamilyFactory = fn(&LocalConfig, Option<&Path>) -> Result<Arc<dyn McpFamily>, String>;

static MCP: OnceLock<McpFamilyFactory> = OnceLock::new();

/// Installs the MCP family; once, at start, before the first config is compiled.
pub fn install_mcp(factory: McpFamilyFactory) -> Result<(), String> {
    MCP.set(factory).map_err(|_| "the MCP family is installed once, at start".to_string())
}

/// The installed MCP family's factory, if this build has one.
pub fn mcp_factory() -> Option<McpFamilyFactory> {
    MCP.get().copied()
}
