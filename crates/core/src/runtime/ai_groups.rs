//! `ai.groups`: LLM providers in priority tiers. A request goes to a provider of the first tier
//! that has one not evicted (chosen at random within the tier); when that provider fails before
//! the client has seen anything, the request is re-planned for the next one (the `ai` filter does
//! that, see `Filter::on_upstream_error`). A failed provider is evicted for a back-off that
//! grows with each consecutive eviction and is forgiven by a success.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::AiTarget;
use crate::ctx::TlsPlan;

/// How long a failed provider sits out the first time (agentgateway's default); each
/// consecutive eviction adds as much again.
pub const BASE_EVICTION: Duration = Duration::from_secs(3);
/// The longest eviction, however often a provider failed or whatever `Retry-After` said.
pub const MAX_EVICTION: Duration = Duration::from_secs(300);

/// The compiled `groups` of one `ai` backend.
#[derive(Debug)]
pub struct AiGroups {
    /// Tiers in priority order; providers within a tier share the load.
    pub tiers: Vec<Vec<Arc<GroupProvider>>>,
}

/// One provider of a group, with the credentials and TLS of its own `policies`.
#[derive(Debug)]
pub struct GroupProvider {
    /// Where it is and what it speaks.
    pub target: AiTarget,
    /// Its `backendTLS` (else the provider's public endpoint gets system-root TLS).
    pub tls: Option<Arc<TlsPlan>>,
    /// Its `backendAuth` credential.
    pub auth: Option<crate::filters::backend_auth::Credential>,
    /// Its eviction state, shared by every request to this backend (reset by a reload).
    pub health: ProviderHealth,
}

/// Eviction state of one provider.
#[derive(Debug, Default)]
pub struct ProviderHealth {
    state: Mutex<EvictionState>,
}

#[derive(Debug, Default)]
struct EvictionState {
    until: Option<Instant>,
    times: u32,
}

impl ProviderHealth {
    /// Whether the provider may be chosen at `now`.
    pub fn available(&self, now: Instant) -> bool {
        self.state.lock().map(|s| s.until.is_none_or(|u| u <= now)).unwrap_or(true)
    }

    /// Takes the provider out until `now` plus `retry_after` (what a 429 asked for) or the
    /// growing back-off; returns how long.
    pub fn evict(&self, now: Instant, retry_after: Option<Duration>) -> Duration {
        let Ok(mut s) = self.state.lock() else { return Duration::ZERO };
        s.times = s.times.saturating_add(1);
        let backoff = BASE_EVICTION.saturating_mul(s.times);
        let span = retry_after.unwrap_or(backoff).min(MAX_EVICTION);
        s.until = Some(now + span);
        span
    }

    /// A success: the back-off starts over.
    pub fn succeeded(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.times = 0;
            s.until = None;
        }
    }
}

impl AiGroups {
    /// The next provider to try, skipping those in `tried` (by pointer): the first tier with an
    /// available untried provider, at random within it; when every untried provider is
    /// evicted and nothing was tried yet, the first tier's anyway (as agentgateway does: a
    /// request is never refused only because every provider is resting).
    pub fn next(&self, tried: &[Arc<GroupProvider>], now: Instant) -> Option<Arc<GroupProvider>> {
        let untried = |p: &&Arc<GroupProvider>| !tried.iter().any(|t| Arc::ptr_eq(t, p));
        for tier in &self.tiers {
            let ready: Vec<_> = tier.iter().filter(untried).filter(|p| p.health.available(now)).collect();
            if !ready.is_empty() {
                return Some(ready[rand::random_range(0..ready.len())].clone());
            }
        }
        if tried.is_empty() {
            let first: Vec<_> = self.tiers.first()?.iter().collect();
            return first.get(rand::random_range(0..first.len().max(1))).map(|p| (*p).clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::AiProvider;

    fn provider(name: &str) -> Arc<GroupProvider> {
        let target = AiTarget {
            name: name.into(),
            provider: AiProvider::OpenAi,
            provider_name: "openai",
            azure: None,
            vertex: None,
            bedrock_region: None,
            model: None,
            host: "127.0.0.1".into(),
            port: 1,
            host_overridden: true,
            path_override: None,
            path_prefix: None,
            custom: None,
        };
        Arc::new(GroupProvider { target, tls: None, auth: None, health: ProviderHealth::default() })
    }

    #[test]
    fn tiers_in_order_and_evicted_providers_skipped() {
        let (a, b, c) = (provider("a"), provider("b"), provider("c"));
        let g = AiGroups { tiers: vec![vec![a.clone()], vec![b.clone(), c.clone()]] };
        let now = Instant::now();
        assert!(Arc::ptr_eq(&g.next(&[], now).unwrap(), &a));
        let second = g.next(&[a.clone()], now).unwrap();
        assert!(Arc::ptr_eq(&second, &b) || Arc::ptr_eq(&second, &c));
        assert!(g.next(&[a.clone(), b.clone(), c.clone()], now).is_none());
        assert_eq!(a.health.evict(now, None), BASE_EVICTION);
        assert!(!Arc::ptr_eq(&g.next(&[], now).unwrap(), &a));
        // Back again once the back-off has passed.
        assert!(Arc::ptr_eq(&g.next(&[], now + BASE_EVICTION).unwrap(), &a));
        // Consecutive evictions grow; a success forgives them.
        assert_eq!(a.health.evict(now, None), BASE_EVICTION * 2);
        assert_eq!(a.health.evict(now, Some(Duration::from_secs(3600))), MAX_EVICTION);
        a.health.succeeded();
        assert!(a.health.available(now));
        assert_eq!(a.health.evict(now, None), BASE_EVICTION);
    }

    #[test]
    fn everything_evicted_still_serves_the_first_tier() {
        let (a, b) = (provider("a"), provider("b"));
        let g = AiGroups { tiers: vec![vec![a.clone()], vec![b.clone()]] };
        let now = Instant::now();
        a.health.evict(now, None);
        b.health.evict(now, None);
        assert!(Arc::ptr_eq(&g.next(&[], now).unwrap(), &a));
        assert!(g.next(&[a.clone()], now).is_none());
    }
}
