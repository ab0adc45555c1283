//! `apiKey`: authenticates callers by API key, as agentgateway does. Keys are written inline
//! (`key`) or as their SHA-256 (`keyHash: sha256:<hex>`) or bcrypt hash; only digests are kept
//! in memory. An accepted key's metadata and `allowedModels` become the request's principal
//! (`apiKey.*` in CEL); the key itself is removed before the request goes upstream.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::identity::ApiKeyClaims;

use crate::location::{Location, LocationConfig};

/// Registry entry for `apiKey` (agentgateway allows it on listeners and routes).
pub const SPEC: FilterSpec = FilterSpec {
    name: "apiKey",
    levels: Levels::LISTENER_AND_ROUTE,
    order: 30,
    build: |d| build_with(d, ApiKeyPolicy::compile),
};

/// More bcrypt entries than this are slow to scan (each check runs the KDF); warned at load.
const MAX_BCRYPT_ENTRIES: usize = 100;

/// Most verified bcrypt keys remembered (the map is emptied when full).
const MAX_VERIFIED: usize = 10_000;

/// The YAML block (agentgateway's `LocalAPIKeys`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Accepted keys.
    pub keys: Vec<KeyEntry>,
    /// `strict`, `optional` (default) or `permissive`.
    #[serde(default)]
    pub mode: Mode,
    /// Where the key is read (default `Authorization: Bearer <key>`).
    #[serde(default)]
    pub location: LocationConfig,
}

/// One accepted key: exactly one of `key` and `keyHash`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyEntry {
    /// The key in clear.
    pub key: Option<String>,
    /// `sha256:<hex>` or a bcrypt hash (`$2b$…`).
    pub key_hash: Option<String>,
    /// Any JSON; visible as `apiKey.*`.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Model patterns this key may use (omitted: any; empty: none).
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

pub use crate::Mode;

/// The compiled policy.
pub struct ApiKeyPolicy {
    by_digest: HashMap<[u8; 32], Arc<ApiKeyClaims>>,
    bcrypt: Arc<Vec<(String, Arc<ApiKeyClaims>)>>,
    /// bcrypt keys already verified (by the presented key's SHA-256), so a valid key pays
    /// the deliberately slow KDF once per config, not per request.
    verified: std::sync::Mutex<HashMap<[u8; 32], Arc<ApiKeyClaims>>>,
    mode: Mode,
    location: Location,
}

impl std::fmt::Debug for ApiKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys' digests: counts only.
        write!(f, "ApiKeyPolicy({} keys, {} bcrypt, {:?})", self.by_digest.len(), self.bcrypt.len(), self.mode)
    }
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn key_id(digest: &[u8; 32]) -> String {
    hex::encode(&digest[..6])
}

impl ApiKeyPolicy {
    /// Checks every entry and keeps digests only.
    pub fn compile(config: ApiKeyConfig) -> std::result::Result<ApiKeyPolicy, String> {
        let mut by_digest = HashMap::new();
        let mut bcrypt = Vec::new();
        for (i, entry) in config.keys.into_iter().enumerate() {
            let allowed_models = entry.allowed_models.map(Arc::from);
            let claims = |id: String| Arc::new(ApiKeyClaims { metadata: entry.metadata.clone(), allowed_models: allowed_models.clone(), id });
            match (entry.key, entry.key_hash) {
                (Some(key), None) => {
                    if key.is_empty() {
                        return Err(format!("keys[{i}].key is empty"));
                    }
                    let digest = sha256(&key);
                    by_digest.insert(digest, claims(key_id(&digest)));
                }
                (None, Some(hash)) if is_bcrypt(&hash) => {
                    hash.parse::<bcrypt::HashParts>().map_err(|e| format!("keys[{i}].keyHash is not a bcrypt hash ({e})"))?;
                    let id = key_id(&sha256(&hash));
                    bcrypt.push((hash, claims(id)));
                }
                (None, Some(hash)) => {
                    let digest = parse_sha256(&hash).map_err(|e| format!("keys[{i}].keyHash is not usable ({e})"))?;
                    by_digest.insert(digest, claims(key_id(&digest)));
                }
                (Some(_), Some(_)) => return Err(format!("keys[{i}] sets both `key` and `keyHash` (set one)")),
                (None, None) => return Err(format!("keys[{i}] needs `key` or `keyHash`")),
            }
        }
        if bcrypt.len() > MAX_BCRYPT_ENTRIES {
            tracing::warn!(target: "tollgate", count = bcrypt.len(), "many bcrypt API keys: each request scans them, which is slow");
        }
        Ok(ApiKeyPolicy {
            by_digest,
            bcrypt: Arc::new(bcrypt),
            verified: Default::default(),
            mode: config.mode,
            location: Location::compile(config.location)?,
        })
    }

    /// The claims of `presented`: by digest, then among keys already verified, then by
    /// running bcrypt over the hashed entries on the blocking pool (the KDF takes
    /// milliseconds per entry and must not stall the proxy's worker threads).
    async fn lookup(&self, presented: &str) -> Option<Arc<ApiKeyClaims>> {
        let digest = sha256(presented);
        if let Some(c) = self.by_digest.get(&digest) {
            return Some(c.clone());
        }
        if self.bcrypt.is_empty() {
            return None;
        }
        if let Some(c) = self.verified.lock().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            return Some(c.clone());
        }
        let (entries, presented) = (self.bcrypt.clone(), presented.to_string());
        let found = tokio::task::spawn_blocking(move || {
            entries.iter().find(|(hash, _)| bcrypt::verify(&presented, hash).unwrap_or(false)).map(|(_, c)| c.clone())
        })
        .await
        .ok()
        .flatten()?;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(digest, found.clone());
        Some(found)
    }
}

fn is_bcrypt(s: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p))
}

fn parse_sha256(s: &str) -> std::result::Result<[u8; 32], String> {
    let hex_digits = s.strip_prefix("sha256:").ok_or("use the sha256:<hex> format (or a bcrypt hash)")?;
    let bytes = hex::decode(hex_digits).map_err(|e| format!("not hex: {e}"))?;
    bytes.try_into().map_err(|_| "a sha256 digest is 32 bytes (64 hex digits)".to_string())
}

#[async_trait]
impl Filter for ApiKeyPolicy {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let presented = self.location.extract(session.req_header(), ctx);
        let refuse = |ctx: &RequestCtx, why: &str| Ok(FilterAction::Respond(json_error(ctx.error_format, 401, "authentication_error", why)));
        let Some(presented) = presented else {
            return match self.mode {
                Mode::Strict => refuse(ctx, "no API key found"),
                _ => Ok(FilterAction::Continue),
            };
        };
        match self.lookup(&presented).await {
            Some(claims) => {
                self.location.remove(session.req_header_mut())?;
                ctx.api_key = Some(claims);
                Ok(FilterAction::Continue)
            }
            None if self.mode == Mode::Permissive => Ok(FilterAction::Continue),
            None => refuse(ctx, "invalid API key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> std::result::Result<ApiKeyPolicy, String> {
        let c: ApiKeyConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        ApiKeyPolicy::compile(c)
    }

    #[tokio::test]
    async fn keys_are_found_by_value_by_digest_and_by_bcrypt() {
        let digest = hex::encode(sha256("hashed-key"));
        let bc = bcrypt::hash("salted-key", 4).unwrap();
        let p = policy(&format!(
            "keys:\n- key: plain-key\n  metadata: {{team: a}}\n- keyHash: sha256:{digest}\n  allowedModels: [gpt-*]\n- keyHash: '{bc}'\n"
        ))
        .unwrap();
        assert_eq!(p.lookup("plain-key").await.unwrap().metadata["team"], "a");
        assert!(p.lookup("hashed-key").await.unwrap().allows_model("gpt-4o"));
        assert!(p.lookup("salted-key").await.is_some());
        assert_eq!(p.verified.lock().unwrap().len(), 1, "a verified bcrypt key is remembered");
        assert!(p.lookup("salted-key").await.is_some());
        assert!(p.lookup("other").await.is_none());
        assert_eq!(p.lookup("plain-key").await.unwrap().id.len(), 12);
    }

    #[test]
    fn bad_entries_are_refused_by_position() {
        assert!(policy("keys: [{keyHash: 'md5:abc'}]").unwrap_err().contains("keys[0].keyHash"));
        assert!(policy("keys: [{key: a}, {key: b, keyHash: 'sha256:00'}]").unwrap_err().contains("keys[1]"));
        assert!(policy("keys: [{metadata: {}}]").unwrap_err().contains("needs"));
        assert!(policy("keys: [{key: a, extra: 1}]").is_err());
        assert!(policy("keys: [{key: a}]\nmode: lenient").is_err());
    }
}
