//! Top-level `policies[]`: a policy attached by name to a gateway, a listener, a route or a
//! named backend, as agentgateway's `LocalPolicy`. They are merged into the inline
//! `policies` of what they target right after parsing, under agentgateway's precedence:
//! inline wins over targeted, a route's own over its listener's, and among targeted
//! policies of one kind the first in the file wins.

use serde::Deserialize;

use super::policies::{Policies, PolicyEntry};
use super::schema::{LocalConfig, LocalRoute};
use super::types::Unsupported;

/// One `policies[]` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalPolicy {
    /// The policy's own name (for the operator; it does not affect matching).
    pub name: ResourceName,
    /// What it attaches to.
    pub target: PolicyTarget,
    /// `route` (default): with the target's routes; `gateway`: before route selection.
    #[serde(default)]
    pub phase: PolicyPhase,
    /// Exactly one policy, as under a route's `policies`.
    pub policy: Policies,
}

/// `{name, namespace}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceName {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// When a targeted policy runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyPhase {
    /// After route selection, as a route policy.
    #[default]
    Route,
    /// Before route selection, as a listener (gateway-level) policy.
    Gateway,
}

/// What a policy attaches to.
#[derive(Debug)]
pub enum PolicyTarget {
    /// A gateway, or one of its listeners (by name or port).
    Gateway(ListenerTarget),
    /// A route by name.
    Route(RouteTarget),
    /// A named top-level backend.
    Backend(NamedBackendTarget),
}

// `{gateway: …} | {route: …} | {backend: …}`: one key (serde_yaml reads enums as tags).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyTargetRaw {
    gateway: Option<ListenerTarget>,
    route: Option<RouteTarget>,
    backend: Option<BackendTarget>,
    listener_set: Option<Unsupported>,
}

impl<'de> Deserialize<'de> for PolicyTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = PolicyTargetRaw::deserialize(d)?;
        match (raw.gateway, raw.route, raw.backend) {
            (Some(g), None, None) => Ok(PolicyTarget::Gateway(g)),
            (None, Some(r), None) => Ok(PolicyTarget::Route(r)),
            (None, None, Some(BackendTarget { backend: Some(b), .. })) => Ok(PolicyTarget::Backend(b)),
            (None, None, Some(_)) => Err(serde::de::Error::custom("target.backend needs `backend: {name, namespace}`")),
            _ => Err(serde::de::Error::custom("a target is exactly one of gateway, route, backend")),
        }
    }
}

/// `target.gateway`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTarget {
    /// `default` for `binds:`; the key of a `gateways:` entry.
    pub gateway_name: String,
    /// `default` in a local file.
    pub gateway_namespace: String,
    /// One listener (`listener<index>` when unnamed); none = every listener.
    pub listener_name: Option<String>,
    /// The listeners of one port, instead of `listenerName`.
    pub port: Option<u16>,
}

/// `target.route`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTarget {
    /// The route's `name` (`route<index>` when unnamed).
    pub name: String,
    /// The route's `namespace` (`default` when unset).
    pub namespace: String,
    /// Not supported yet (local routes have no rules).
    pub rule_name: Option<Unsupported>,
    /// Not supported yet.
    pub kind: Option<Unsupported>,
}

/// `target.backend`: `{backend: {name, namespace}}` (`service` is not supported yet).
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackendTarget {
    backend: Option<NamedBackendTarget>,
    service: Option<Unsupported>,
}

/// `target.backend.backend`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedBackendTarget {
    /// The backend's `name`.
    pub name: String,
    /// Empty for top-level backends of a local file.
    pub namespace: String,
    /// Not supported yet.
    pub section: Option<Unsupported>,
}

/// The one policy of entry `i`, checked.
fn single(i: usize, p: &LocalPolicy) -> Result<PolicyEntry, String> {
    match p.policy.0.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("policies[{i}].policy must contain exactly 1 policy (it has {})", p.policy.0.len())),
    }
}

/// Adds `entry` unless a policy of its kind is already there (inline and earlier win), except
/// for policies whose levels combine (`authorization` rules): those merge, so a gateway-wide
/// deny still applies where a route has rules of its own.
fn add_if_absent(policies: &mut Policies, entry: &PolicyEntry) {
    match policies.0.iter_mut().find(|p| p.spec.name == entry.spec.name) {
        None => policies.0.push(entry.clone()),
        Some(existing) => {
            if let Some(merged) = existing.filter.merge_over(&*entry.filter) {
                existing.filter = merged;
            }
        }
    }
}

/// Attaches backend-targeted policies to the named top-level backends (before `backend:`
/// references copy them). Only backend-level policies may target a backend.
pub fn apply_backend_targets(config: &mut LocalConfig) -> Result<(), String> {
    for (i, p) in config.policies.iter().enumerate() {
        let PolicyTarget::Backend(target) = &p.target else { continue };
        let entry = single(i, p)?;
        if !entry.spec.levels.backend {
            return Err(format!("policies[{i}]: `{}` is a route policy; it cannot target a backend (as in agentgateway)", entry.spec.name));
        }
        if p.phase == PolicyPhase::Gateway {
            return Err(format!("policies[{i}]: `phase: gateway` applies to gateways and listeners only"));
        }
        let found = config.backends.iter_mut().filter(|b| target.namespace.is_empty() && b.name.as_deref() == Some(target.name.as_str()));
        let mut matched = false;
        for b in found {
            add_if_absent(&mut b.policies, &entry);
            matched = true;
        }
        if !matched {
            unmatched(&mut config.warnings, i, &format!("backend `{}`", target.name));
        }
    }
    Ok(())
}

/// Attaches route- and gateway-targeted policies, once every bind exists. `gateway_names`
/// gives each bind's gateway name (`default` for `binds:`).
pub fn apply_route_and_gateway_targets(config: &mut LocalConfig, gateway_names: &[String]) -> Result<(), String> {
    let policies = std::mem::take(&mut config.policies);
    // Routes' own targets first: they win over their listener's.
    for (i, p) in policies.iter().enumerate() {
        let PolicyTarget::Route(target) = &p.target else { continue };
        let entry = single(i, p)?;
        if p.phase == PolicyPhase::Gateway {
            return Err(format!("policies[{i}]: `phase: gateway` applies to gateways and listeners only"));
        }
        let mut matched = false;
        for_each_route(config, |idx, route| {
            let name = route.name.clone().unwrap_or_else(|| format!("route{idx}"));
            if name == target.name && route.namespace.as_deref().unwrap_or("default") == target.namespace {
                add_if_absent(&mut route.policies, &entry);
                matched = true;
            }
        });
        if !matched {
            unmatched(&mut config.warnings, i, &format!("route `{}/{}`", target.namespace, target.name));
        }
    }
    for (i, p) in policies.iter().enumerate() {
        let PolicyTarget::Gateway(target) = &p.target else { continue };
        let entry = single(i, p)?;
        if target.listener_name.is_some() && target.port.is_some() {
            return Err(format!("policies[{i}].target.gateway: set `listenerName` or `port`, not both"));
        }
        if p.phase == PolicyPhase::Gateway && !entry.spec.levels.listener {
            return Err(format!("policies[{i}]: `{}` cannot run in the gateway phase (as in agentgateway's gateway policies)", entry.spec.name));
        }
        let mut matched = false;
        for (bind, gateway) in config.binds.iter_mut().zip(gateway_names) {
            if *gateway != target.gateway_name || target.gateway_namespace != "default" || target.port.is_some_and(|p| p != bind.port) {
                continue;
            }
            for (li, listener) in bind.listeners.iter_mut().enumerate() {
                let name = listener.name.clone().unwrap_or_else(|| format!("listener{li}"));
                if target.listener_name.as_ref().is_some_and(|n| *n != name) {
                    continue;
                }
                matched = true;
                match p.phase {
                    PolicyPhase::Gateway => add_if_absent(&mut listener.policies.0, &entry),
                    PolicyPhase::Route => listener.routes.iter_mut().flatten().for_each(|r| add_if_absent(&mut r.policies, &entry)),
                }
            }
        }
        if !matched {
            unmatched(&mut config.warnings, i, &format!("gateway `{}/{}`", target.gateway_namespace, target.gateway_name));
        }
    }
    config.policies = policies;
    Ok(())
}

/// Every HTTP route (listeners' and route groups'), with its index in its list.
fn for_each_route(config: &mut LocalConfig, mut f: impl FnMut(usize, &mut LocalRoute)) {
    for bind in &mut config.binds {
        for listener in &mut bind.listeners {
            for (ri, route) in listener.routes.iter_mut().flatten().enumerate() {
                f(ri, route);
            }
        }
    }
    for group in &mut config.route_groups {
        for (ri, route) in group.routes.iter_mut().enumerate() {
            f(ri, route);
        }
    }
}

/// agentgateway keeps a policy whose target matches nothing without error; so does
/// tollgate, but says so.
fn unmatched(warnings: &mut Vec<String>, i: usize, what: &str) {
    warnings.push(format!("policies[{i}]: its target {what} matches nothing; the policy has no effect"));
}
