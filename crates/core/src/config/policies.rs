//! The `policies:` block of a route or backend. Each key names a filter in the
//! registry (built-in policies and plugins alike); the filter parses its own
//! block straight from the YAML, so its errors carry file, line and path.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::filters::registry::{self, FilterSpec};
use crate::filters::Filter;

/// One configured policy: the registry entry and the filter built from its block.
#[derive(Clone)]
pub struct PolicyEntry {
    /// Which registry entry built it (name, order).
    pub spec: &'static FilterSpec,
    /// The compiled filter.
    pub filter: Arc<dyn Filter>,
}

impl fmt::Debug for PolicyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Policy({})", self.spec.name)
    }
}

/// The policies of one route or backend, in file order.
#[derive(Debug, Clone, Default)]
pub struct Policies(pub Vec<PolicyEntry>);

impl Policies {
    /// The entry for a policy name, if configured.
    pub fn get(&self, name: &str) -> Option<&PolicyEntry> {
        self.0.iter().find(|p| p.spec.name == name)
    }
}

impl<'de> Deserialize<'de> for Policies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PoliciesVisitor { level: Level::Route })
    }
}

/// Where a `policies:` block sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Listener,
    Route,
    Backend,
}

/// A listener's `policies:` block: gateway-level policies, run for every request on the
/// listener before a route is chosen (only those agentgateway allows there, e.g. `cors`).
#[derive(Debug, Clone, Default)]
pub struct ListenerPolicies(pub Policies);

impl<'de> Deserialize<'de> for ListenerPolicies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PoliciesVisitor { level: Level::Listener }).map(ListenerPolicies)
    }
}

/// A backend's `policies:` block: only backend-level policies (route-only ones such as
/// `timeout` or `cors` are refused, as agentgateway's `LocalBackendPolicies` refuses them).
#[derive(Debug, Clone, Default)]
pub struct BackendPolicies(pub Policies);

impl<'de> Deserialize<'de> for BackendPolicies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PoliciesVisitor { level: Level::Backend }).map(BackendPolicies)
    }
}

struct PoliciesVisitor {
    level: Level,
}

impl<'de> Visitor<'de> for PoliciesVisitor {
    type Value = Policies;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of policy name to policy settings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Policies, E> {
        Ok(Policies::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Policies, A::Error> {
        let mut out = Vec::new();
        while let Some(spec) = map.next_key_seed(PolicyNameSeed { level: self.level })? {
            let name = spec.name;
            if out.iter().any(|p: &PolicyEntry| p.spec.name == name) {
                return Err(de::Error::custom(format!("policy `{name}` is given twice")));
            }
            let filter = map.next_value_seed(FilterSeed(spec))?;
            out.push(PolicyEntry { spec, filter });
        }
        Ok(Policies(out))
    }
}

/// Looks the policy name up while the parser is on the key, so errors point at its line.
struct PolicyNameSeed {
    level: Level,
}

impl<'de> DeserializeSeed<'de> for PolicyNameSeed {
    type Value = &'static FilterSpec;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let name = String::deserialize(d)?;
        match registry::find(&name) {
            Some(spec) if self.level == Level::Backend && !spec.levels.backend => Err(de::Error::custom(format!(
                "`{name}` is a route policy; it cannot be set under a backend's `policies` (as in agentgateway)"
            ))),
            Some(spec) if self.level == Level::Listener && !spec.levels.listener => Err(de::Error::custom(format!(
                "`{name}` cannot be set under a listener's `policies` (as in agentgateway's gateway policies)"
            ))),
            Some(spec) => Ok(spec),
            None if registry::is_agentgateway_policy(&name) => Err(de::Error::custom(format!(
                "policy `{name}` is an agentgateway policy that tollgate does not support yet"
            ))),
            None => Err(de::Error::custom(format!("unknown policy `{name}` (known: {})", registry::names().join(", ")))),
        }
    }
}

/// Hands the policy's YAML block to its registry entry's builder.
struct FilterSeed(&'static FilterSpec);

impl<'de> DeserializeSeed<'de> for FilterSeed {
    type Value = Arc<dyn Filter>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let mut erased = <dyn erased_serde::Deserializer>::erase(d);
        (self.0.build)(&mut erased).map_err(de::Error::custom)
    }
}
