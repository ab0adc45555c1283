//! What a reload keeps: state a policy holds that should outlive the config text (a local
//! rate limit's counters). After new tables are compiled, each filter of a route is paired
//! with the filter of the same policy on the old route of the same name and port (backends
//! paired by name) and may take the old one's state over ([`Filter::carry_over`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::{CompiledRoute, FilterChain, Gateway};
use crate::filters::Filter;

/// Lets every filter of `new` take over what its counterpart in `old` holds.
pub fn carry_over(old: &Gateway, new: &Gateway) {
    for nb in &new.binds {
        let Some(ob) = old.binds.iter().find(|b| b.port == nb.port) else { continue };
        let mut old_routes: HashMap<&str, &Arc<CompiledRoute>> = HashMap::new();
        for r in ob.listeners.iter().flat_map(|l| l.routes.routes()) {
            old_routes.entry(r.name.as_str()).or_insert(r);
        }
        for route in nb.listeners.iter().flat_map(|l| l.routes.routes()) {
            let Some(previous) = old_routes.get(route.name.as_str()) else { continue };
            pair(&route.chain_without_backend, &previous.chain_without_backend);
            for b in &route.backends {
                if let Some(ob) = previous.backends.iter().find(|o| o.name == b.name) {
                    pair(&b.chain, &ob.chain);
                }
            }
        }
    }
}

fn pair(new: &FilterChain, old: &FilterChain) {
    for (filter, name) in new.filters.iter().zip(&new.names) {
        if let Some(j) = old.names.iter().position(|n| n == name) {
            let previous: &dyn Filter = &*old.filters[j];
            filter.carry_over(previous);
        }
    }
}
