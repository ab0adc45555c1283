//! The filter registry: policy name → builder. Built-in policies and plugins are
//! listed the same way; a plugin is enabled by adding one [`FilterSpec`] line to
//! [`FILTERS`] (behind its Cargo feature) and then naming it under `policies:`.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Filter;

/// Builds a filter from its YAML block. Errors are reported with the block's line and path.
pub type BuildFn = fn(&mut dyn erased_serde::Deserializer) -> Result<Arc<dyn Filter>, erased_serde::Error>;

/// A registered filter kind.
#[derive(Debug)]
pub struct FilterSpec {
    /// The key under `policies:`.
    pub name: &'static str,
    /// Where the policy may be written (agentgateway's schema decides, per policy).
    pub levels: Levels,
    /// Position in the chain (lower runs first); built-ins follow agentgateway's policy order.
    pub order: u16,
    /// Parses the block and builds the filter.
    pub build: BuildFn,
}

/// The places a policy may be written: under a route's `policies`, or also under a
/// backend's (agentgateway's `LocalBackendPolicies` takes only the backend-level ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// Under a listener's `policies` (agentgateway's gateway phase: before route selection).
    pub listener: bool,
    /// Under a route's `policies`.
    pub route: bool,
    /// Under a backend's `policies`.
    pub backend: bool,
}

impl Levels {
    /// Route policies only (`timeout`, `directResponse`, `urlRewrite`, …).
    pub const ROUTE: Levels = Levels { listener: false, route: true, backend: false };
    /// Route and backend policies (`backendTLS`, `backendAuth`, header modifiers, …).
    pub const ROUTE_AND_BACKEND: Levels = Levels { listener: false, route: true, backend: true };
    /// Listener and route policies (`cors`, and the auth policies as they come).
    pub const LISTENER_AND_ROUTE: Levels = Levels { listener: true, route: true, backend: false };
}

/// Parses a filter's config block with serde and hands it to `make`; for use in [`BuildFn`]s.
pub fn build_with<C, F>(
    d: &mut dyn erased_serde::Deserializer,
    make: impl FnOnce(C) -> Result<F, String>,
) -> Result<Arc<dyn Filter>, erased_serde::Error>
where
    C: DeserializeOwned,
    F: Filter,
{
    let config: C = erased_serde::deserialize(d)?;
    make(config)
        .map(|f| Arc::new(f) as Arc<dyn Filter>)
        .map_err(<erased_serde::Error as serde::de::Error>::custom)
}

/// Every filter tollgate can build, in no particular order.
pub static FILTERS: &[FilterSpec] = &[
    super::timeout::SPEC,
    super::cors::SPEC,
    super::header_modifier::REQUEST_SPEC,
    super::url_rewrite::SPEC,
    super::request_redirect::SPEC,
    super::direct_response::SPEC,
    super::backend_tls::SPEC,
    super::backend_auth::SPEC,
    super::header_modifier::RESPONSE_SPEC,
    super::ai::SPEC,
    super::mcp_authorization::SPEC,
    // Plugins: one line each, behind their Cargo feature.
    #[cfg(feature = "plugin-tenant-tag")]
    super::tenant_tag::SPEC,
];

/// Looks a filter up by its policy name.
pub fn find(name: &str) -> Option<&'static FilterSpec> {
    FILTERS.iter().find(|s| s.name == name)
}

/// All registered names, sorted, for error messages.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<_> = FILTERS.iter().map(|s| s.name).collect();
    v.sort_unstable();
    v
}

/// agentgateway policies tollgate knows by name but has not implemented yet.
const AGENTGATEWAY_POLICIES: &[&str] = &[
    "requestMirror", "mcpGuardrails", "authorization", "mcpAuthentication",
    "a2a", "backendTunnel", "localRateLimit", "remoteRateLimit", "jwtAuth", "oidc", "basicAuth",
    "apiKey", "extAuthz", "extProc", "transformations", "csrf", "buffer", "retry", "delay",
    "http", "tcp", "health", "inferenceRouting", "sessionAffinity",
];

/// Whether `name` is an agentgateway policy that is not implemented here yet.
pub fn is_agentgateway_policy(name: &str) -> bool {
    AGENTGATEWAY_POLICIES.contains(&name)
}
