//! The OpenID provider an `oidc` policy logs users in at: its endpoints (given, or read from
//! its discovery document when first needed, through the gateway's upstream client) and the
//! ID-token check (a `jwtAuth` provider: the issuer, audience = the client id, `exp`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::Deserialize;

use tollgate_core::upstream_call::{CallOpts, HttpClient, Origin, Request};

use crate::jwt::jwks::JwksConfig;
use crate::jwt::validate::{Provider, ProviderConfig, Validator};

/// Longest wait for the provider (discovery, token exchange).
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest document accepted from the provider.
const MAX_BODY: usize = 64 * 1024;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuth {
    /// HTTP Basic with the client id and secret.
    Basic,
    /// The id and secret in the form body.
    Post,
}

/// The endpoints and the ID-token check, once known.
pub struct Resolved {
    /// Where browsers are sent to log in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// How the client authenticates there.
    pub token_auth: TokenAuth,
    /// Verifies ID tokens.
    pub validator: Validator,
}

/// The provider's discovery document (the fields used).
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// An `http(s)` URL as an origin and a path.
pub fn split_url(url: &str) -> Result<(Origin, String), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("`{url}` must be an absolute http(s) URL")),
    };
    let host = uri.host().ok_or_else(|| format!("`{url}` has no host"))?.trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((Origin { host, port, tls }, uri.path_and_query().map_or("/", |p| p.as_str()).to_string()))
}

/// Sends one request to the provider; the status and body.
pub async fn call(client: &Arc<HttpClient>, url: &str, method: Method, headers: Vec<(http::HeaderName, String)>, body: Option<Bytes>) -> Result<(u16, Bytes), String> {
    let (origin, path) = split_url(url)?;
    let none = HeaderMap::new();
    let until = Instant::now() + PROVIDER_TIMEOUT;
    let opts = CallOpts { headers: &none, tls: None, connect_timeout: Some(PROVIDER_TIMEOUT), connect: Default::default(), wait: PROVIDER_TIMEOUT, deadline: Some(until) };
    let req = Request { method, path: &path, headers, body };
    let mut resp = client.send(&opts, &origin, &req).await.map_err(|e| e.to_string())?;
    let body = resp.body(until, MAX_BODY).await.map_err(|e| e.to_string())?;
    Ok((resp.status, body))
}

/// Builds the ID-token check for `issuer` and `client_id` with `jwks`.
pub fn id_token_validator(issuer: &str, client_id: &str, jwks: JwksConfig) -> Result<Validator, String> {
    let provider = Provider::compile(ProviderConfig { issuer: issuer.to_string(), audiences: Some(vec![client_id.to_string()]), jwks, jwt_validation_options: None })?;
    Ok(Validator::new(vec![provider]))
}

/// Reads the discovery document (at `url`, or given as text) and builds the endpoints.
pub async fn discover(client: &Arc<HttpClient>, issuer: &str, client_id: &str, source: &DiscoverySource) -> Result<Resolved, String> {
    let text = match source {
        DiscoverySource::Text(t) => t.clone(),
        DiscoverySource::Url(url) => {
            let (status, body) = call(client, url, Method::GET, vec![(http::header::ACCEPT, "application/json".into())], None).await?;
            if status != 200 {
                return Err(format!("discovery answered {status}"));
            }
            String::from_utf8(body.to_vec()).map_err(|_| "discovery is not UTF-8".to_string())?
        }
    };
    let d: Discovery = serde_json::from_str(&text).map_err(|e| format!("discovery document: {e}"))?;
    if d.issuer != issuer {
        return Err(format!("oidc discovery issuer mismatch: expected {issuer}, got {}", d.issuer));
    }
    let token_auth = match &d.token_endpoint_auth_methods_supported {
        None => TokenAuth::Basic,
        Some(m) if m.iter().any(|x| x == "client_secret_basic") => TokenAuth::Basic,
        Some(m) if m.iter().any(|x| x == "client_secret_post") => TokenAuth::Post,
        Some(_) => return Err("the provider supports neither client_secret_basic nor client_secret_post".into()),
    };
    split_url(&d.authorization_endpoint)?;
    split_url(&d.token_endpoint)?;
    let validator = id_token_validator(issuer, client_id, JwksConfig::Url { url: d.jwks_uri })?;
    Ok(Resolved { authorization_endpoint: d.authorization_endpoint, token_endpoint: d.token_endpoint, token_auth, validator })
}

/// Where the discovery document comes from.
#[derive(Debug, Clone)]
pub enum DiscoverySource {
    /// Fetched from here.
    Url(String),
    /// Given inline or in a file.
    Text(String),
}
