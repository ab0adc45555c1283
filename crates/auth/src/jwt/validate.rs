//! Verifying one token against a list of trusted issuers, as agentgateway does: the token's
//! header must name a `kid`; the providers whose issuer is the token's `iss` and whose key set
//! holds the `kid` are tried; failing that, the first provider holding the `kid` gives the
//! error (a wrong issuer); when no provider holds it, remote key sets are fetched again once.
//! Signature, `exp` and `nbf` (with [`LEEWAY_SECS`] of clock skew), `iss`, and `aud` (when
//! audiences are configured) are checked; `alg: none` and HMAC never verify.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};
use jsonwebtoken::{decode, decode_header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{Jwks, JwksConfig, KeySet};

/// Clock skew allowed on `exp` and `nbf` (jsonwebtoken's default, which agentgateway keeps).
pub const LEEWAY_SECS: u64 = 60;

/// Longest token accepted (a JWT in a header is a few KiB; this bounds the decode work).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One trusted issuer as written (agentgateway's `ProviderConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// Accepted `aud` values; empty or absent: not checked.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Its keys.
    pub jwks: JwksConfig,
    /// Claims that must be present.
    #[serde(default)]
    pub jwt_validation_options: Option<ValidationOptions>,
}

/// `jwtValidationOptions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationOptions {
    /// Registered claims that must be present (`exp`, `nbf`, `aud`, `iss`, `sub`; default `[exp]`).
    pub required_claims: Vec<String>,
}

/// Claims `requiredClaims` may name.
const KNOWN_CLAIMS: &[&str] = &["exp", "nbf", "aud", "iss", "sub"];

/// A compiled provider.
pub struct Provider {
    issuer: String,
    audiences: Vec<String>,
    required: Vec<String>,
    /// Its keys (pub so a reload can hand a fetched remote set over).
    pub jwks: Jwks,
}

impl Provider {
    /// Checks the provider and reads a fixed key set.
    pub fn compile(c: ProviderConfig) -> Result<Provider, String> {
        let required = match c.jwt_validation_options {
            Some(o) => {
                if let Some(bad) = o.required_claims.iter().find(|c| !KNOWN_CLAIMS.contains(&c.as_str())) {
                    return Err(format!("requiredClaims holds `{bad}`; only exp, nbf, aud, iss and sub can be required"));
                }
                o.required_claims
            }
            None => vec!["exp".into()],
        };
        let jwks = Jwks::compile(c.jwks).map_err(|e| format!("issuer `{}` jwks {e}", c.issuer))?;
        Ok(Provider { issuer: c.issuer, audiences: c.audiences.unwrap_or_default(), required, jwks })
    }

    fn validation(&self, alg: jsonwebtoken::Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        let mut required: Vec<&str> = self.required.iter().map(String::as_str).collect();
        required.push("iss");
        if self.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audiences);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// Why a token was refused (the text goes to the client: no key material, no claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// No token where one was looked for.
    Missing,
    /// The header cannot be read.
    InvalidHeader(String),
    /// The header names no key.
    MissingKeyId,
    /// No provider has the key.
    UnknownKeyId(String),
    /// Verification failed.
    Invalid(String),
    /// The keys could not be had (remote set never fetched).
    KeysUnavailable(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Missing => f.write_str("no bearer token found"),
            TokenError::InvalidHeader(_) => f.write_str("the token header is malformed"),
            TokenError::MissingKeyId => f.write_str("the token header does not specify a `kid`"),
            TokenError::UnknownKeyId(kid) => write!(f, "token uses the unknown key {:?}", kid.chars().take(64).collect::<String>()),
            TokenError::Invalid(e) => write!(f, "the token is invalid or malformed: {e}"),
            TokenError::KeysUnavailable(_) => f.write_str("the signing keys are unavailable"),
        }
    }
}

/// The providers of one policy, and the tokens they verified lately.
pub struct Validator {
    /// In config order.
    pub providers: Vec<Provider>,
    /// Verified tokens by their SHA-256: an RSA signature check costs hundreds of microseconds,
    /// and clients send the same token with every request until it expires.
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

/// A token verified with a provider's key set.
struct Verified {
    claims: Map<String, Value>,
    /// The key set it was verified with (a rotated-out key no longer counts).
    set: std::sync::Weak<KeySet>,
    provider: usize,
    /// `exp` (plus the leeway); `None` without one.
    until: Option<u64>,
}

/// Most verified tokens remembered per policy (emptied when full).
const MAX_VERIFIED: usize = 10_000;

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The unverified `iss` of a token (only to choose which providers to try).
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

impl Validator {
    /// A validator over `providers`.
    pub fn new(providers: Vec<Provider>) -> Validator {
        Validator { providers, verified: Default::default() }
    }

    /// The claims of a token verified before, while it has not expired and its provider still
    /// serves the key set it was verified with.
    async fn remembered(&self, digest: &[u8; 32]) -> Option<Map<String, Value>> {
        let (provider, set) = {
            let cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            let v = cache.get(digest)?;
            if v.until.is_some_and(|u| u < now_unix()) {
                return None;
            }
            (v.provider, v.set.clone())
        };
        let current = self.providers.get(provider)?.jwks.keys().await.ok()?;
        if !std::ptr::eq(Arc::as_ptr(&current), set.as_ptr()) {
            return None;
        }
        self.verified.lock().unwrap_or_else(|e| e.into_inner()).get(digest).map(|v| v.claims.clone())
    }

    fn remember(&self, digest: [u8; 32], claims: &Map<String, Value>, provider: usize, set: &Arc<KeySet>) {
        let until = claims.get("exp").and_then(Value::as_u64).map(|e| e.saturating_add(LEEWAY_SECS));
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_VERIFIED {
            cache.clear();
        }
        cache.insert(digest, Verified { claims: claims.clone(), set: Arc::downgrade(set), provider, until });
    }

    /// Verifies `token`; the claims on success. A token verified before is answered from
    /// memory until it expires (`exp` and `nbf` were checked then; `exp` is checked again).
    pub async fn validate(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("the token is too long".into()));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.remembered(&digest).await {
            return Ok(claims);
        }
        let result = self.verify_fresh(token).await;
        if let Ok((claims, provider, set)) = &result {
            self.remember(digest, claims, *provider, set);
        }
        result.map(|(claims, _, _)| claims)
    }

    /// Loads the key sets of the providers `which` selects; the first failure is kept.
    async fn load_sets(&self, sets: &mut [Option<Arc<KeySet>>], unavailable: &mut Option<String>, which: impl Fn(&Provider) -> bool) {
        for (i, p) in self.providers.iter().enumerate().filter(|(_, p)| which(p)) {
            match p.jwks.keys().await {
                Ok(k) => sets[i] = Some(k),
                Err(e) => {
                    unavailable.get_or_insert(e);
                }
            }
        }
    }

    async fn verify_fresh(&self, token: &str) -> Result<(Map<String, Value>, usize, Arc<KeySet>), TokenError> {
        let header = decode_header(token).map_err(|e| TokenError::InvalidHeader(e.to_string()))?;
        let kid = header.kid.clone().ok_or(TokenError::MissingKeyId)?;
        let iss = unverified_issuer(token);
        // The token's issuer's keys first: a dead identity provider of another issuer must
        // not hold up tokens of a healthy one. The others only when needed (the error).
        let mut sets: Vec<Option<Arc<KeySet>>> = vec![None; self.providers.len()];
        let mut unavailable = None;
        self.load_sets(&mut sets, &mut unavailable, |p| Some(p.issuer.as_str()) == iss.as_deref()).await;
        if let Some(result) = self.try_providers(token, &header, &kid, iss.as_deref(), &sets) {
            return result;
        }
        self.load_sets(&mut sets, &mut unavailable, |p| Some(p.issuer.as_str()) != iss.as_deref()).await;
        if let Some(result) = self.try_providers(token, &header, &kid, iss.as_deref(), &sets) {
            return result;
        }
        // No provider knows the key: the provider may have rotated its keys.
        // Only the token's issuer's set, when it is one of ours (a token cannot make every
        // provider be fetched).
        let of_issuer = self.providers.iter().any(|q| Some(q.issuer.as_str()) == iss.as_deref());
        let mut refreshed = false;
        for (p, set) in self.providers.iter().zip(sets.iter_mut()) {
            if of_issuer && Some(p.issuer.as_str()) != iss.as_deref() {
                continue;
            }
            if let Some(k) = p.jwks.refetch().await {
                *set = Some(k);
                refreshed = true;
            }
        }
        if refreshed {
            if let Some(result) = self.try_providers(token, &header, &kid, iss.as_deref(), &sets) {
                return result;
            }
        }
        match unavailable {
            Some(e) if sets.iter().all(Option::is_none) => Err(TokenError::KeysUnavailable(e)),
            _ => Err(TokenError::UnknownKeyId(kid)),
        }
    }

    /// Verifies with the providers holding `kid`, those of the token's issuer first; `None`
    /// when none holds it. On success also which provider and key set verified it.
    fn try_providers(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        kid: &str,
        iss: Option<&str>,
        sets: &[Option<Arc<KeySet>>],
    ) -> Option<Result<(Map<String, Value>, usize, Arc<KeySet>), TokenError>> {
        let holding = || {
            self.providers.iter().enumerate().zip(sets).filter_map(|((i, p), s)| {
                let set = s.as_ref()?;
                Some((i, p, set, set.get(kid)?))
            })
        };
        let mut first_error = None;
        for (i, p, set, key) in holding().filter(|(_, p, _, _)| Some(p.issuer.as_str()) == iss) {
            match verify(token, header, p, key) {
                Ok(claims) => return Some(Ok((claims, i, set.clone()))),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Some(Err(e));
        }
        let (i, p, set, key) = holding().next()?;
        Some(verify(token, header, p, key).map(|claims| (claims, i, set.clone())))
    }
}

fn verify(token: &str, header: &jsonwebtoken::Header, p: &Provider, key: &super::jwks::VerifyKey) -> Result<Map<String, Value>, TokenError> {
    if !key.algorithms.contains(&header.alg) {
        return Err(TokenError::Invalid(format!("the key does not verify {:?} signatures", header.alg)));
    }
    decode::<Map<String, Value>>(token, &key.key, &p.validation(header.alg))
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(format!("{:?}", e.kind())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::jwks::JwksConfig;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgf4vedp2fv6K3oA8P
FwdUxlB1+8w4WHC6nsIrs8TPhuqhRANCAAQdrql7lX09zR8zabqAnELMvNZX9hYg
K20L426VXXBFWGa6alAdHGOcid+F1EMQ5Tsom1iBHINxlApFh4fKw9um
-----END PRIVATE KEY-----";
    const JWKS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "Ha6pe5V9Pc0fM2m6gJxCzLzWV_YWICttC-NulV1wRVg", "y": "ZrpqUB0cY5yJ34XUQxDlOyibWIEcg3GUCkWHh8rD26Y", "kid": "t"}]}"#;

    fn token(exp: u64) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("t".into());
        let claims = serde_json::json!({"iss": "i", "sub": "s", "exp": exp});
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(PEM.as_bytes()).unwrap()).unwrap()
    }

    fn validator() -> Validator {
        let p = Provider::compile(ProviderConfig { issuer: "i".into(), audiences: None, jwks: JwksConfig::Inline(JWKS.into()), jwt_validation_options: None }).unwrap();
        Validator::new(vec![p])
    }

    #[tokio::test]
    async fn remembered_tokens_still_expire() {
        let v = validator();
        // Expired 59 s ago: inside the 60 s leeway, so accepted, and remembered until it passes.
        let t = token(now_unix() - 59);
        assert_eq!(v.validate(&t).await.unwrap()["sub"], "s");
        assert_eq!(v.verified.lock().unwrap().len(), 1);
        assert!(v.validate(&t).await.is_ok(), "answered from memory");
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(matches!(v.validate(&t).await, Err(TokenError::Invalid(e)) if e.contains("Expired")));
        // A tampered token is not the remembered one.
        let good = token(now_unix() + 300);
        v.validate(&good).await.unwrap();
        let tampered = format!("{}x", &good[..good.len() - 1]);
        assert!(v.validate(&tampered).await.is_err());
    }
}
