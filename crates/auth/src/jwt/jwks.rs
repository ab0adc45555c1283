//! JSON Web Key Sets for `jwtAuth` and `mcpAuthentication`: inline, from a file, or from a URL.
//! A remote set is fetched lazily (on the first token that needs it) through the gateway's
//! shared upstream client, kept for [`JWKS_TTL`], fetched again early when a token names a
//! `kid` the set lacks (at most once per [`MIN_REFETCH`], so junk tokens cannot make the
//! gateway hammer the identity provider), and served stale when the provider is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use tollgate_core::config::types::read_config_file;
use tollgate_core::upstream_call::{CallOpts, HttpClient, Origin, Request};

/// How long a fetched key set is used before it is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(300);
/// Least time between the end of one fetch and the start of the next (a token with an unknown
/// `kid`, a provider that is down).
pub const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Longest wait for the identity provider's answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// `jwks:` as written (agentgateway's `FileInlineOrRemote`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum JwksConfig {
    /// The set as JSON text.
    Inline(String),
    /// `{file: path}`.
    File {
        /// Path, relative to the config file.
        file: String,
    },
    /// `{url: https://…}`.
    Url {
        /// Where the set is fetched.
        url: String,
    },
}

/// One verification key and the algorithms it may verify.
pub struct VerifyKey {
    /// The key.
    pub key: DecodingKey,
    /// Algorithms a token signed with it may name (never HMAC, never `none`).
    pub algorithms: Vec<Algorithm>,
}

/// Keys by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet({:?})", self.keys.keys().collect::<Vec<_>>())
    }
}

impl KeySet {
    /// Parses a JWKS document. Every key needs a `kid`; symmetric (`oct`) keys are refused
    /// (a public key set must not hold a shared secret, and HMAC keys invite algorithm confusion).
    pub fn parse(text: &str) -> Result<KeySet, String> {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set ({e})"))?;
        let mut keys = HashMap::new();
        let mut skipped = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            // Encryption keys, keys without a `kid` and key types tollgate cannot verify with
            // are left out (identity providers publish them beside their signing keys).
            match Self::verify_key(jwk) {
                Ok(Some((kid, key))) => {
                    keys.insert(kid, key);
                }
                Ok(None) => {}
                Err(why) => skipped.push(format!("key {i}: {why}")),
            }
        }
        if keys.is_empty() && !set.keys.is_empty() {
            return Err(format!("no usable signing key ({})", skipped.join("; ")));
        }
        if !skipped.is_empty() {
            tracing::warn!(target: "tollgate", skipped = %skipped.join("; "), "JSON Web Key Set: keys left out");
        }
        Ok(KeySet { keys })
    }

    /// One key as a verification key; `None` for encryption keys.
    fn verify_key(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Option<(String, VerifyKey)>, String> {
        if matches!(jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)) {
            return Ok(None);
        }
        let kid = jwk.common.key_id.clone().ok_or("no `kid`")?;
        let family: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => {
                &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512]
            }
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => &[Algorithm::ES256],
                EllipticCurve::P384 => &[Algorithm::ES384],
                _ => return Err(format!("`{kid}` uses an unsupported curve")),
            },
            AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
            AlgorithmParameters::OctetKey(_) => return Err(format!("`{kid}` is symmetric (`oct`); only public keys are accepted")),
        };
        let algorithms = match jwk.common.key_algorithm {
            Some(named) => {
                let alg: Algorithm = named.to_string().parse().map_err(|_| format!("`{kid}` names an `alg` that does not sign"))?;
                if !family.contains(&alg) {
                    return Err(format!("`{kid}`: `alg` {alg:?} does not fit its key type"));
                }
                vec![alg]
            }
            None => family.to_vec(),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("`{kid}` is not usable ({e})"))?;
        Ok(Some((kid, VerifyKey { key, algorithms })))
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyKey> {
        self.keys.get(kid)
    }
}

/// Where a provider's keys come from.
pub enum Jwks {
    /// Inline or from a file: read once, at load.
    Fixed(Arc<KeySet>),
    /// From a URL.
    Remote(Arc<RemoteJwks>),
}

impl Jwks {
    /// Reads inline and file sets now; a URL is only checked (it is fetched when first needed).
    pub fn compile(config: JwksConfig) -> Result<Jwks, String> {
        match config {
            JwksConfig::Inline(text) => Ok(Jwks::Fixed(Arc::new(KeySet::parse(&text)?))),
            JwksConfig::File { file } => Ok(Jwks::Fixed(Arc::new(KeySet::parse(&read_config_file(&file)?).map_err(|e| format!("{file}: {e}"))?))),
            JwksConfig::Url { url } => Ok(Jwks::Remote(Arc::new(RemoteJwks::new(&url)?))),
        }
    }

    /// The current keys (fetching a remote set the first time, or when it is old).
    pub async fn keys(&self) -> Result<Arc<KeySet>, String> {
        match self {
            Jwks::Fixed(k) => Ok(k.clone()),
            Jwks::Remote(r) => r.keys().await,
        }
    }

    /// A fresher set after a token named a `kid` this one lacks; `None` when the set is fixed
    /// or was fetched too recently.
    pub async fn refetch(&self) -> Option<Arc<KeySet>> {
        match self {
            Jwks::Fixed(_) => None,
            Jwks::Remote(r) => r.refetch().await,
        }
    }
}

/// A key set fetched from a URL.
pub struct RemoteJwks {
    url: String,
    origin: Origin,
    path: String,
    client: Arc<HttpClient>,
    state: Mutex<FetchState>,
    /// One fetch at a time; others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct FetchState {
    keys: Option<Arc<KeySet>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

impl RemoteJwks {
    fn new(url: &str) -> Result<RemoteJwks, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("jwks url `{url}` is not a URL ({e})"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("jwks url `{url}` must be http or https")),
        };
        let host = uri.host().ok_or_else(|| format!("jwks url `{url}` has no host"))?.trim_matches(['[', ']']).to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(RemoteJwks {
            url: url.to_string(),
            origin: Origin { host, port, tls },
            path,
            client: Arc::new(HttpClient::default()),
            state: Mutex::new(FetchState::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The URL (to pair a reloaded policy with its predecessor's cache).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes over `previous`'s fetched keys (a reload must not make every provider's set be
    /// fetched again, or lose it while the provider is down).
    pub fn adopt(&self, previous: &RemoteJwks) {
        if previous.url != self.url {
            return;
        }
        let old = previous.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut new = self.state.lock().unwrap_or_else(|e| e.into_inner());
        new.keys = old.keys.clone();
        new.fetched = old.fetched;
        new.attempted = old.attempted;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn keys(&self) -> Result<Arc<KeySet>, String> {
        let stale = {
            let s = self.state();
            match (&s.keys, s.fetched) {
                (Some(k), Some(at)) if at.elapsed() < JWKS_TTL => return Ok(k.clone()),
                (k, _) => k.clone(),
            }
        };
        // Keys in hand (old ones): never wait for the provider; one request refreshes them
        // while the others use the old set.
        let _one = match stale {
            Some(old) => match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(old),
            },
            None => match tokio::time::timeout(FETCH_TIMEOUT, self.fetching.lock()).await {
                Ok(guard) => guard,
                Err(_) => return Err(format!("the key set at {} is still being fetched", self.url)),
            },
        };
        let (cached, may_fetch) = {
            let s = self.state();
            let fresh = s.fetched.is_some_and(|at| at.elapsed() < JWKS_TTL);
            let recent = s.attempted.is_some_and(|at| at.elapsed() < MIN_REFETCH);
            (s.keys.clone(), !fresh && !recent)
        };
        if may_fetch {
            if let Ok(k) = self.fetch().await {
                return Ok(k);
            }
        }
        // Stale keys beat none: the provider may be briefly down.
        cached.ok_or_else(|| format!("the key set at {} could not be fetched", self.url))
    }

    async fn refetch(&self) -> Option<Arc<KeySet>> {
        // Someone is fetching already: this token's `kid` is checked against what they get next time.
        let _one = self.fetching.try_lock().ok()?;
        if self.state().attempted.is_some_and(|at| at.elapsed() < MIN_REFETCH) {
            return None;
        }
        self.fetch().await.ok()
    }

    /// Fetches the set now (the caller holds `fetching`).
    async fn fetch(&self) -> Result<Arc<KeySet>, String> {
        let result = self.download().await;
        // Counted from the end, so a provider that hangs is not asked again at once.
        self.state().attempted = Some(Instant::now());
        match &result {
            Ok(keys) => {
                let mut s = self.state();
                s.keys = Some(keys.clone());
                s.fetched = Some(Instant::now());
            }
            Err(e) => tracing::warn!(target: "tollgate", url = %self.url, error = %e, "fetching a JSON Web Key Set failed"),
        }
        result
    }

    async fn download(&self) -> Result<Arc<KeySet>, String> {
        let headers = HeaderMap::new();
        let until = Instant::now() + FETCH_TIMEOUT;
        let opts = CallOpts {
            headers: &headers,
            tls: None,
            connect_timeout: Some(FETCH_TIMEOUT),
            connect: Default::default(),
            wait: FETCH_TIMEOUT,
            deadline: Some(until),
        };
        let req = Request { method: Method::GET, path: &self.path, headers: vec![(http::header::ACCEPT, "application/json".into())], body: None };
        let mut resp = self.client.send(&opts, &self.origin, &req).await.map_err(|e| e.to_string())?;
        if resp.status != 200 {
            return Err(format!("status {}", resp.status));
        }
        let body = resp.body(until, MAX_JWKS_BYTES).await.map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&body).map_err(|_| "the key set is not UTF-8".to_string())?;
        Ok(Arc::new(KeySet::parse(text)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_JWK: &str = r#"{"kty":"RSA","kid":"k1","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}"#;

    #[test]
    fn key_sets_need_kids_and_public_keys() {
        let set = KeySet::parse(&format!(r#"{{"keys":[{RSA_JWK}]}}"#)).unwrap();
        assert_eq!(set.get("k1").unwrap().algorithms.len(), 6);
        let no_kid = RSA_JWK.replace(r#""kid":"k1","#, "");
        assert!(KeySet::parse(&format!(r#"{{"keys":[{no_kid}]}}"#)).unwrap_err().contains("no `kid`"));
        // An unusable key beside a good one is left out, not fatal.
        let mixed = format!(r#"{{"keys":[{RSA_JWK},{no_kid},{{"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"}}]}}"#);
        let set = KeySet::parse(&mixed).unwrap();
        assert!(set.get("k1").is_some() && set.get("e").is_none());
        let oct = r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#;
        assert!(KeySet::parse(oct).unwrap_err().contains("symmetric"));
        let wrong_alg = RSA_JWK.replace(r#""kid":"k1","#, r#""kid":"k1","alg":"ES256","#);
        assert!(KeySet::parse(&format!(r#"{{"keys":[{wrong_alg}]}}"#)).unwrap_err().contains("does not fit"));
        assert!(KeySet::parse("{}").is_err());
    }

    #[test]
    fn urls_must_be_http() {
        assert!(RemoteJwks::new("ftp://idp/keys").is_err());
        let r = RemoteJwks::new("http://127.0.0.1:9/certs?x=1").unwrap();
        assert_eq!((r.origin.port, r.path.as_str()), (9, "/certs?x=1"));
    }
}
