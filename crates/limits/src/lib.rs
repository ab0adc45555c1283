//! Rate limits and budgets: token buckets counted by requests or by LLM tokens, per route and
//! per key, with `x-ratelimit-*` headers on every answer and a 429 in the caller's API format;
//! spending budgets per UTC window; both in this process or shared through Redis.

pub mod bucket;
pub mod budget;
pub mod headers;
pub mod keyed;
pub mod local;
pub mod redis_conn;
pub mod redis_store;
pub mod remote;
pub mod rls_proto;
pub mod window;

use tollgate_core::filters::registry::FilterSpec;

/// The policies this crate provides, for the binary to install.
pub static FILTERS: &[&FilterSpec] = &[&local::SPEC, &remote::SPEC, &budget::SPEC];

/// Longest bucket or budget key kept as it is; longer ones (a header an attacker fills) are
/// kept as their SHA-256, so 100,000 keys cannot hold more than a few MiB.
const MAX_KEY_LEN: usize = 128;

/// The key a per-request value is counted under.
pub fn bounded_key(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_keys_are_kept_as_their_digest() {
        assert_eq!(super::bounded_key("team-a".into()), "team-a");
        let long = "x".repeat(64 * 1024);
        let kept = super::bounded_key(long.clone());
        assert!(kept.starts_with("sha256:") && kept.len() == 7 + 64);
        assert_eq!(kept, super::bounded_key(long), "the same value counts in the same bucket");
    }
}
