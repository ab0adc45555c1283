//! The filter registry: policy name → builder. The core's filters are listed here; every
//! other crate's (the built-in policies of `filters/`, the LLM crate, plugins) are handed to
//! [`install`] by the binary, one list for all, so a plugin has exactly the built-ins' powers.

use std::sync::{Arc, OnceLock};

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
    /// Every level (`authorization`, `extAuthz`).
    pub const ALL: Levels = Levels { listener: true, route: true, backend: true };
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

/// The core's own filters (the rest are installed by the binary).
static CORE_FILTERS: &[&FilterSpec] = &[&super::backend_tls::SPEC, &super::backend_auth::SPEC];

/// The filters other crates provide (built-in policy crates and plugins alike), installed
/// once by the binary before the first config is loaded and read-only from then on: the
/// registry is part of the program, not of the config.
static INSTALLED: OnceLock<Vec<&'static FilterSpec>> = OnceLock::new();

/// Installs the filters of the other crates. Call it once, before loading a config; a second
/// call, or a name that is already taken, is an error (two filters cannot share a policy name).
pub fn install(specs: Vec<&'static FilterSpec>) -> Result<(), String> {
    for (i, s) in specs.iter().enumerate() {
        if CORE_FILTERS.iter().any(|c| c.name == s.name) || specs[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("two filters are registered as `{}`", s.name));
        }
    }
    INSTALLED.set(specs).map_err(|_| "the filter registry is installed once, at start".to_string())
}

fn all() -> impl Iterator<Item = &'static FilterSpec> {
    CORE_FILTERS.iter().copied().chain(INSTALLED.get().into_iter().flatten().copied())
}

/// Looks a filter up by its policy name.
pub fn find(name: &str) -> Option<&'static FilterSpec> {
    all().find(|s| s.name == name)
}

/// All registered names, sorted, for error messages.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<_> = all().map(|s| s.name).collect();
    v.sort_unstable();
    v
}

/// agentgateway policies tollgate knows by name but has not implemented yet.
const AGENTGATEWAY_POLICIES: &[&str] = &[
    "requestMirror", "mcpGuardrails",
    "a2a", "backendTunnel",
    "extProc", "transformations", "buffer", "retry", "delay",
    "http", "tcp", "health", "inferenceRouting", "sessionAffinity",
];

/// Whether `name` is an agentgateway policy that is not implemented here yet.
pub fn is_agentgateway_policy(name: &str) -> bool {
    AGENTGATEWAY_POLICIES.contains(&name)
}
