//! `backendAuth.azure`: Microsoft Entra ID access tokens for Azure OpenAI and AI Foundry, by the
//! OAuth client-credentials grant as Azure's SDKs make it: with a client secret, or with the
//! federated token of workload identity (`AZURE_FEDERATED_TOKEN_FILE`) as the client assertion.
//! Tokens are fetched lazily through the gateway's shared HTTP client, one fetch at a time,
//! cached per scope and refreshed five minutes before they expire; a fetch is bounded by
//! [`FETCH_TIMEOUT`], so a dead identity provider is a clear 503, never a hang. The authority
//! is `AZURE_AUTHORITY_HOST` when set (sovereign clouds), else the public cloud's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde::Deserialize;

use crate::config::types::Unsupported;
use crate::ctx::ConnectPolicy;
use crate::upstream_call::{CallOpts, HttpClient, Origin, Request};

/// The scope for Azure OpenAI and Cognitive Services hosts.
const COGNITIVE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The scope AI Foundry project endpoints (`*.services.ai.azure.com`) require.
const FOUNDRY_SCOPE: &str = "https://ai.azure.com/.default";
/// The public cloud's authority.
const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Longest wait for the token endpoint.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A token this close to expiry is replaced.
const REFRESH_SLACK: Duration = Duration::from_secs(300);
/// A token this close to expiry is no longer sent.
const EXPIRY_SLACK: Duration = Duration::from_secs(30);
/// After a failed fetch, requests get its error at once for this long instead of waiting on
/// the identity provider again.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// Largest token response read.
const MAX_RESPONSE: usize = 64 * 1024;

/// `backendAuth.azure`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureAuthConfig {
    /// An explicit credential: `clientSecret` or `workloadIdentity`.
    pub explicit_config: Option<AzureExplicitConfig>,
    /// Developer tools (`az login`): not supported yet.
    pub developer_implicit: Option<Unsupported>,
    /// The environment's credential: `AZURE_CLIENT_SECRET`, else workload identity.
    pub implicit: Option<EmptyBlock>,
}

/// `explicitConfig`: exactly one credential source.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureExplicitConfig {
    /// A service principal's secret.
    pub client_secret: Option<ClientSecret>,
    /// Managed identity (the instance metadata service): not supported yet.
    pub managed_identity: Option<Unsupported>,
    /// Kubernetes workload identity, from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub workload_identity: Option<EmptyBlock>,
}

/// `{}`: a block that takes no fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBlock {}

/// `clientSecret` (snake-case fields, as agentgateway names them).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecret {
    tenant_id: String,
    client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientSecret({}/{})", self.tenant_id, self.client_id)
    }
}

/// How the gateway proves who it is to Entra ID.
#[derive(Clone)]
enum Grant {
    /// `client_secret`.
    Secret(String),
    /// A federated token re-read from this file at each fetch (the kubelet rotates it).
    Assertion(String),
}

/// Fetches and caches Entra ID tokens for one identity.
pub struct AzureTokenSource {
    tenant: String,
    client_id: String,
    grant: Grant,
    authority: Origin,
    authority_path: String,
    client: Arc<HttpClient>,
    /// Per scope: the token, when to replace it, and when it expires (never held across a wait).
    cached: Mutex<HashMap<&'static str, CachedToken>>,
    /// Held while a token is fetched: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// The last failed fetch: when, and why.
    failed: Mutex<Option<(Instant, String)>>,
}

/// A fetched token.
#[derive(Clone)]
struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

impl std::fmt::Debug for AzureTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AzureTokenSource({}/{})", self.tenant, self.client_id)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Workload identity's identity, from the environment the webhook injects.
fn workload_identity() -> Result<(String, String, Grant), String> {
    let need = |n: &str| env(n).ok_or(format!("workload identity needs {n}"));
    Ok((need("AZURE_TENANT_ID")?, need("AZURE_CLIENT_ID")?, Grant::Assertion(need("AZURE_FEDERATED_TOKEN_FILE")?)))
}

impl AzureAuthConfig {
    /// The token source this block describes (nothing is fetched yet).
    pub fn token_source(&self) -> Result<AzureTokenSource, String> {
        let (tenant, client_id, grant) = match (&self.explicit_config, &self.implicit) {
            (Some(_), Some(_)) => return Err("backendAuth.azure takes one of `explicitConfig` and `implicit`".into()),
            (Some(e), None) => match (&e.client_secret, &e.workload_identity) {
                (Some(s), None) => (s.tenant_id.clone(), s.client_id.clone(), Grant::Secret(s.client_secret.clone())),
                (None, Some(_)) => workload_identity()?,
                _ => return Err("backendAuth.azure.explicitConfig takes one of `clientSecret` and `workloadIdentity`".into()),
            },
            (None, Some(_)) => match (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET")) {
                (Some(t), Some(c), Some(s)) => (t, c, Grant::Secret(s)),
                _ if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => workload_identity()?,
                _ => return Err("backendAuth.azure.implicit found no credential: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or workload identity's AZURE_FEDERATED_TOKEN_FILE (managed identity and developer tools are not supported yet)".into()),
            },
            (None, None) => return Err("backendAuth.azure needs `explicitConfig` or `implicit`".into()),
        };
        if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err("backendAuth.azure: the tenant id must be a GUID or a domain name".into());
        }
        let (authority, authority_path) = parse_authority(&env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| PUBLIC_AUTHORITY.into()))?;
        Ok(AzureTokenSource { tenant, client_id, grant, authority, authority_path, client: Arc::new(HttpClient::default()), cached: Mutex::new(HashMap::new()), fetching: tokio::sync::Mutex::new(()), failed: Mutex::new(None) })
    }
}

/// `https://host[:port][/path]` as an origin and a path prefix.
fn parse_authority(url: &str) -> Result<(Origin, String), String> {
    let u = url::Url::parse(url).map_err(|e| format!("AZURE_AUTHORITY_HOST `{url}`: {e}"))?;
    let tls = match u.scheme() {
        "https" => true,
        "http" => false,
        s => return Err(format!("AZURE_AUTHORITY_HOST: scheme `{s}` (only https or http)")),
    };
    let host = u.host_str().ok_or("AZURE_AUTHORITY_HOST has no host")?.trim_matches(['[', ']']).to_string();
    let port = u.port_or_known_default().unwrap_or(443);
    Ok((Origin { host, port, tls }, u.path().trim_end_matches('/').to_string()))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<serde_json::Value>,
}

impl AzureTokenSource {
    /// The scope a request to `host` needs.
    pub fn scope_for(host: &str) -> &'static str {
        if host.ends_with(".services.ai.azure.com") {
            FOUNDRY_SCOPE
        } else {
            COGNITIVE_SCOPE
        }
    }

    fn entry(&self, scope: &str) -> Option<CachedToken> {
        self.cached.lock().ok()?.get(scope).cloned()
    }

    /// `Authorization: Bearer <token>` for `scope`: cached, or fetched now (by one request at a
    /// time; the others wait for it). While a token due for refresh is still valid, a failed
    /// refresh keeps it in use. A fetch that failed within [`FAILURE_MEMORY`] is not retried.
    pub async fn header(&self, scope: &'static str) -> Result<HeaderValue, String> {
        if let Some(t) = self.entry(scope).filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.header);
        }
        let recent_failure = self.failed.lock().ok().and_then(|f| f.clone()).filter(|(at, _)| at.elapsed() < FAILURE_MEMORY);
        if let Some((_, why)) = recent_failure {
            return self.cached(scope).ok_or(why);
        }
        let _one = tokio::time::timeout(FETCH_TIMEOUT, self.fetching.lock()).await.map_err(|_| "waited too long for another token fetch")?;
        if let Some(t) = self.entry(scope).filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.header); // fetched meanwhile
        }
        match self.fetch(scope).await {
            Ok((header, lifetime)) => {
                let now = Instant::now();
                let t = CachedToken { header: header.clone(), refresh_at: now + lifetime.saturating_sub(REFRESH_SLACK), expires_at: now + lifetime.saturating_sub(EXPIRY_SLACK) };
                if let Ok(mut c) = self.cached.lock() {
                    c.insert(scope, t);
                }
                Ok(header)
            }
            Err(why) => {
                if let Ok(mut f) = self.failed.lock() {
                    *f = Some((Instant::now(), why.clone()));
                }
                self.cached(scope).ok_or(why)
            }
        }
    }

    /// The token last fetched for `scope`, until it expires (for hooks that cannot wait).
    pub fn cached(&self, scope: &'static str) -> Option<HeaderValue> {
        self.entry(scope).filter(|t| Instant::now() < t.expires_at).map(|t| t.header)
    }

    async fn fetch(&self, scope: &str) -> Result<(HeaderValue, Duration), String> {
        let assertion = match &self.grant {
            Grant::Secret(_) => None,
            Grant::Assertion(file) => Some(tokio::fs::read_to_string(file).await.map_err(|e| format!("reading AZURE_FEDERATED_TOKEN_FILE {file}: {e}"))?),
        };
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials").append_pair("client_id", &self.client_id).append_pair("scope", scope);
            match (&self.grant, &assertion) {
                (_, Some(token)) => {
                    form.append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer").append_pair("client_assertion", token.trim());
                }
                (Grant::Secret(s), None) => {
                    form.append_pair("client_secret", s);
                }
                (Grant::Assertion(_), None) => {}
            }
            form.finish()
        };
        let path = format!("{}/{}/oauth2/v2.0/token", self.authority_path, self.tenant);
        let headers = HeaderMap::new();
        let until = Instant::now() + FETCH_TIMEOUT;
        let opts = CallOpts { headers: &headers, tls: None, connect_timeout: Some(FETCH_TIMEOUT), connect: ConnectPolicy::default(), wait: FETCH_TIMEOUT, deadline: Some(until) };
        let req = Request {
            method: Method::POST,
            path: &path,
            headers: vec![(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded".into()), (http::header::ACCEPT, "application/json".into())],
            body: Some(Bytes::from(form)),
        };
        let authority = self.authority.authority();
        let mut resp = self.client.send(&opts, &self.authority, &req).await.map_err(|e| format!("the Entra ID token endpoint {authority}: {e}"))?;
        let body = resp.body(until, MAX_RESPONSE).await.map_err(|e| format!("the Entra ID token endpoint {authority}: {e}"))?;
        if !(200..300).contains(&resp.status) {
            // The error body names the problem (AADSTS codes) and holds no secret.
            let why: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(format!("the Entra ID token endpoint {authority} answered {}: {why}", resp.status));
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| format!("the Entra ID token response: {e}"))?;
        let seconds = match t.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        let mut header = HeaderValue::from_str(&format!("Bearer {}", t.access_token)).map_err(|_| "the Entra ID token is not a header value")?;
        header.set_sensitive(true);
        Ok((header, Duration::from_secs(seconds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foundry_hosts_take_the_ai_scope() {
        assert_eq!(AzureTokenSource::scope_for("proj.services.ai.azure.com"), FOUNDRY_SCOPE);
        assert_eq!(AzureTokenSource::scope_for("res.openai.azure.com"), COGNITIVE_SCOPE);
        assert_eq!(AzureTokenSource::scope_for("services.ai.azure.com.evil.example"), COGNITIVE_SCOPE);
    }

    #[test]
    fn authority_hosts() {
        let (o, p) = parse_authority("https://login.microsoftonline.us/").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.tls, p.as_str()), ("login.microsoftonline.us", 443, true, ""));
        let (o, p) = parse_authority("http://127.0.0.1:8080/base").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.tls, p.as_str()), ("127.0.0.1", 8080, false, "/base"));
        assert!(parse_authority("ftp://x").is_err());
    }
}
