//! Verifying one token against a list of trusted issuers, as agentgateway does: the token's
//! header must name a `kid`; the providers whose issuer is the token's `iss` and whose key set
//! holds the `kid` are tried; failing that, the first provider holding the `kid` gives the
//! error (a wrong issuer); when no provider holds it, remote key sets are fetched again once.
//! Signature, `exp` and `nbf` (with [`LEEWAY_SECS`] of clock skew), `iss`, and `aud` (when
//! audiences are configured) are checked; `alg: none` and HMAC never verify.

use std::sync::Arc;

use base64::Engine;
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
            TokenError::InvalidHeader(e) => write!(f, "the token header is malformed: {e}"),
            TokenError::MissingKeyId => f.write_str("the token header does not specify a `kid`"),
            TokenError::UnknownKeyId(kid) => write!(f, "token uses the unknown key {kid:?}"),
            TokenError::Invalid(e) => write!(f, "the token is invalid or malformed: {e}"),
            TokenError::KeysUnavailable(e) => write!(f, "the signing keys are unavailable: {e}"),
        }
    }
}

/// The providers of one policy.
pub struct Validator {
    /// In config order.
    pub providers: Vec<Provider>,
}

/// The unverified `iss` of a token (only to choose which providers to try).
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

impl Validator {
    /// Verifies `token`; the claims on success.
    pub async fn validate(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("the token is too long".into()));
        }
        let header = decode_header(token).map_err(|e| TokenError::InvalidHeader(e.to_string()))?;
        let kid = header.kid.clone().ok_or(TokenError::MissingKeyId)?;
        let iss = unverified_issuer(token);
        let mut sets: Vec<Option<Arc<KeySet>>> = Vec::with_capacity(self.providers.len());
        let mut unavailable = None;
        for p in &self.providers {
            match p.jwks.keys().await {
                Ok(k) => sets.push(Some(k)),
                Err(e) => {
                    unavailable.get_or_insert(e);
                    sets.push(None);
                }
            }
        }
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
    /// when none holds it.
    fn try_providers(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        kid: &str,
        iss: Option<&str>,
        sets: &[Option<Arc<KeySet>>],
    ) -> Option<Result<Map<String, Value>, TokenError>> {
        let holding = || self.providers.iter().zip(sets).filter_map(|(p, s)| Some((p, s.as_ref()?.get(kid)?)));
        let mut first_error = None;
        for (p, key) in holding().filter(|(p, _)| Some(p.issuer.as_str()) == iss) {
            match verify(token, header, p, key) {
                Ok(claims) => return Some(Ok(claims)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Some(Err(e));
        }
        let (p, key) = holding().next()?;
        Some(verify(token, header, p, key))
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
