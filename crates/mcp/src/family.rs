//! The MCP family as the core sees it: compiles `mcp` backends into the gateway's filters and
//! owns the session store, which outlives reloads.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use tollgate_core::config::mcp::McpBackend;
use tollgate_core::config::policies::PolicyEntry;
use tollgate_core::config::LocalConfig;
use tollgate_core::family::McpFamily;
use tollgate_core::telemetry::metrics::Metrics;

use crate::session::SessionStore;

/// The MCP family: one per process.
pub struct Mcp {
    store: Arc<SessionStore>,
}

/// Builds the family from `config.session.key` (else a key kept in `key_dir`, else a
/// throwaway) and `config.mcp.sessionTtl`; install it with `tollgate_core::family::install_mcp`.
pub fn factory(config: &LocalConfig, key_dir: Option<&Path>) -> Result<Arc<dyn McpFamily>, String> {
    let key = match (config.config.session.as_ref().and_then(|s| s.key.as_deref()), key_dir) {
        (Some(k), _) => k.to_string(),
        (None, Some(dir)) => crate::token::load_or_create_key(dir).map_err(|e| format!("MCP session key: {e}"))?,
        (None, None) => crate::token::random_key(),
    };
    let ttl = config.config.mcp.as_ref().and_then(|m| m.session_ttl).map(|d| d.0);
    let store = SessionStore::new(&key, ttl).map_err(|e| format!("config.session.key: {e}"))?;
    Ok(Arc::new(Mcp { store: Arc::new(store) }))
}

#[async_trait]
impl McpFamily for Mcp {
    fn compile(&self, backend: &McpBackend, identity: &str) -> Result<Vec<PolicyEntry>, String> {
        let proxy = crate::McpProxy::compile(backend, self.store.clone(), identity)?;
        Ok(vec![
            PolicyEntry { spec: &crate::SPEC, filter: Arc::new(proxy) },
            PolicyEntry { spec: &crate::credentials::SPEC, filter: Arc::new(crate::credentials::ClientCredentials) },
        ])
    }

    async fn maintain(&self, shutdown: ShutdownWatch, metrics: Arc<Metrics>) {
        self.store.maintain(shutdown, &metrics).await;
    }

    async fn stop(&self) {
        self.store.stop_children().await;
    }
}
