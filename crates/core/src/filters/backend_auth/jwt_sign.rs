//! `backendAuth.jwtSign`: a short-lived JWT signed with a configured private key, for upstreams
//! that take per-caller keypair JWTs (Snowflake's SQL API, internal services) instead of a
//! static secret. The token carries the static `claims` plus `iat` and `exp`; it is reused
//! while more than half its lifetime is left (an RSA signature costs about a millisecond,
//! too much to pay per request) and signed afresh after that.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::types::{parse_go_duration, FileOrInline};

use super::location::KeyLocation;

/// Token lifetime when `ttl` is not set (agentgateway's).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// `backendAuth.jwtSign` as written (agentgateway's `JwtSignAuth`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtSignConfig {
    /// PEM private key (RSA, or EC in PKCS#8), matching `alg`.
    pub signing_key: FileOrInline,
    /// `RS256` (default), `RS384`, `RS512`, `PS256`, `ES256`, `ES384`.
    pub alg: Option<String>,
    /// The `kid` header.
    pub kid: Option<String>,
    /// Static claims (`iat`, `exp`, `nbf` are the signer's).
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Lifetime (`exp - iat`), a duration such as `300s`.
    pub ttl: Option<String>,
    /// Where the token goes (default `Authorization: Bearer`).
    pub location: Option<KeyLocation>,
}

/// The compiled signer.
pub struct JwtSigner {
    key: EncodingKey,
    header: Header,
    claims: Map<String, Value>,
    ttl: Duration,
    /// Where the token goes, when not in `Authorization: Bearer`.
    pub location: Option<KeyLocation>,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtSigner({:?}, ttl {:?})", self.header.alg, self.ttl)
    }
}

impl JwtSigner {
    /// Reads the key and checks the claims.
    pub fn compile(c: JwtSignConfig) -> Result<JwtSigner, String> {
        let alg = match c.alg.as_deref().unwrap_or("RS256") {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            other => return Err(format!("alg `{other}` is not one of RS256, RS384, RS512, PS256, ES256, ES384")),
        };
        let pem = c.signing_key.0.as_bytes();
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .map_err(|e| format!("signingKey is not a {alg:?} private key in PEM ({e})"))?;
        if let Some(reserved) = ["iat", "exp", "nbf"].iter().find(|r| c.claims.contains_key(**r)) {
            return Err(format!("claims.{reserved} is set by the signer and cannot be configured"));
        }
        let ttl = match &c.ttl {
            Some(t) => parse_go_duration(t).map_err(|e| format!("ttl: {e}"))?,
            None => DEFAULT_TTL,
        };
        if ttl < Duration::from_secs(1) {
            return Err("ttl must be at least 1s".into());
        }
        let mut header = Header::new(alg);
        header.kid = c.kid;
        Ok(JwtSigner { key, header, claims: c.claims, ttl, location: c.location, cached: Mutex::new(None) })
    }

    /// A token with more than half its lifetime left.
    pub fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, expires)) = cached.as_ref() {
            if expires.saturating_duration_since(Instant::now()) > self.ttl / 2 {
                return Ok(t.clone());
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| "the clock is before 1970")?.as_secs();
        let mut claims = self.claims.clone();
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.ttl.as_secs()).into());
        let token = encode(&self.header, &claims, &self.key).map_err(|e| format!("signing: {e}"))?;
        *cached = Some((token.clone(), Instant::now() + self.ttl));
        Ok(token)
    }
}
