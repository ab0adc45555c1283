//! The tollgate binary's one job beyond `main`: assembling the program from its crates. The
//! core (config, router, proxy, Filter API) knows none of the policy crates; here the
//! built-in policies, the LLM and MCP families and the enabled plugins join it.

use tollgate_core::filters::registry::{self, FilterSpec};

/// Every filter the binary offers beyond the core's own: built-in policies, the LLM
/// family, and the plugins enabled by Cargo feature.
pub fn filters() -> Vec<&'static FilterSpec> {
    let mut all: Vec<&'static FilterSpec> = tollgate_filters::FILTERS.to_vec();
    all.push(&tollgate_llm::SPEC);
    all.extend_from_slice(tollgate_mcp::FILTERS);
    all.extend_from_slice(tollgate_auth::FILTERS);
    all.extend_from_slice(tollgate_limits::FILTERS);
    #[cfg(feature = "plugin-tenant-tag")]
    all.push(&tollgate_plugin_tenant_tag::SPEC);
    all
}

/// Installs [`filters`] into the core's registry and the MCP family; call once, before
/// loading a config.
pub fn install() -> Result<(), String> {
    registry::install(filters())?;
    tollgate_core::family::install_mcp(tollgate_mcp::family::factory)
}
