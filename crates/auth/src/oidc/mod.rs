//! `oidc`: browser login for a route with the OpenID Connect authorization-code flow and PKCE,
//! as agentgateway does it. A request without a session is sent to the provider's login page
//! (a `fetch`/XHR request gets `401` instead: it cannot follow a login page); the provider
//! sends the browser back to `redirectURI`, where the gateway exchanges the code, checks the ID
//! token (signature, issuer, audience, expiry, nonce) and sets an encrypted session cookie.
//! Later requests carry the cookie: the ID token's claims are `jwt.*` for later policies, and
//! the policy's cookies never reach the upstream. `logout: {path, redirect}` (agentgateway's
//! later field) ends the session.

mod cookies;
mod provider;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use http::Method;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::response::LocalResponse;
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::identity::JwtClaims;
use tollgate_core::upstream_call::HttpClient;

use crate::jwt::jwks::JwksConfig;
use cookies::{cookie, random_token, CookieJar};
use provider::{DiscoverySource, Resolved, TokenAuth};

/// Registry entry for `oidc` (listeners and routes): right after `cors`, before every other
/// authentication policy.
pub const SPEC: FilterSpec = FilterSpec {
    name: "oidc",
    levels: Levels::LISTENER_AND_ROUTE,
    order: 22,
    build: |d| build_with(d, Oidc::compile),
};

/// The environment variable holding the cookie key (64 hex digits), as in agentgateway.
pub const COOKIE_SECRET_ENV: &str = "OIDC_COOKIE_SECRET";
/// Lifetime of a login attempt.
const TRANSACTION_SECS: u64 = 300;
/// Longest session (shorter when the ID token expires sooner).
const SESSION_SECS: u64 = 3600;

/// The YAML block (agentgateway's `LocalOidcConfig`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider; ID tokens' `iss`.
    pub issuer: String,
    /// The discovery document (default `{issuer}/.well-known/openid-configuration`).
    pub discovery: Option<JwksConfig>,
    /// Explicit mode: the login endpoint.
    pub authorization_endpoint: Option<String>,
    /// Explicit mode: the token endpoint.
    pub token_endpoint: Option<String>,
    /// Explicit mode: `clientSecretBasic` (default) or `clientSecretPost`.
    pub token_endpoint_auth: Option<String>,
    /// Explicit mode: the ID-token keys.
    pub jwks: Option<JwksConfig>,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The callback URL the gateway answers.
    #[serde(rename = "redirectURI")]
    pub redirect_uri: String,
    /// Extra scopes (`openid` is always asked for).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Local logout (agentgateway's later `logout: {path, redirect}`).
    pub logout: Option<LogoutConfig>,
}

/// `logout:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutConfig {
    /// The path that ends the session (POST from the site's own pages).
    pub path: String,
    /// Where the browser goes afterwards (default `/`).
    pub redirect: Option<String>,
}

enum Endpoints {
    Explicit(Arc<Resolved>),
    Discovered { source: DiscoverySource, cell: tokio::sync::OnceCell<Arc<Resolved>> },
}

/// The compiled policy.
pub struct Oidc {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    redirect_path: String,
    redirect_origin: String,
    scope: String,
    logout: Option<LogoutConfig>,
    policy_id: String,
    jar: CookieJar,
    endpoints: Endpoints,
    client: Arc<HttpClient>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Oidc({}, client {})", self.issuer, self.client_id)
    }
}

/// A login attempt, sealed in its cookie.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    policy_id: String,
    transaction_id: String,
    csrf_state: String,
    nonce: String,
    pkce_verifier: String,
    original_uri: String,
    expires_at_unix: u64,
}

/// A session, sealed in its cookie.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionCookie {
    policy_id: String,
    raw_id_token: String,
    expires_at_unix: u64,
}

/// The `state` parameter: which transaction, and its CSRF value.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    transaction_id: String,
    csrf_state: String,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `oidc failure: <why>` as agentgateway answers it.
fn failure(status: u16, why: &str) -> LocalResponse {
    let mut r = LocalResponse::new(status);
    r.headers.push(("content-type".into(), "text/plain".into()));
    r.body = Bytes::from(format!("oidc failure: {why}"));
    r
}

/// Percent-encoding for query and form values.
fn enc(s: &str) -> String {
    crate::percent_encode(s)
}

/// Whether `uri` is a path on this site (not `//host`, no backslashes, bounded).
fn safe_local(uri: &str) -> bool {
    let decoded = String::from_utf8_lossy(&tollgate_core::router::query_decode_bytes(uri)).into_owned();
    uri.starts_with('/') && !uri.starts_with("//") && !uri.contains('\\') && !decoded.contains('\\') && !decoded.starts_with("//") && uri.len() <= 512
}

impl Oidc {
    /// Checks the block; the provider is contacted when the first browser needs it.
    pub fn compile(c: OidcConfig) -> std::result::Result<Oidc, String> {
        let secret = std::env::var(COOKIE_SECRET_ENV).map_err(|_| format!("{COOKIE_SECRET_ENV} is required when oidc is configured (64 hex digits)"))?;
        let (redirect_origin, redirect_path) = provider::split_url(&c.redirect_uri).map_err(|e| format!("redirectURI {e}"))?;
        if redirect_path == "/" || redirect_path.contains('?') || redirect_path.contains("..") || redirect_path.to_ascii_lowercase().contains("%2f") {
            return Err("redirectURI needs a path of its own (not `/`, no query, no `..`)".into());
        }
        let explicit = [c.authorization_endpoint.is_some(), c.token_endpoint.is_some(), c.jwks.is_some()];
        let endpoints = match (explicit, c.jwks) {
            ([true, true, true], Some(jwks)) => {
                if c.discovery.is_some() {
                    return Err("`discovery` cannot be set with explicit endpoints".into());
                }
                let (authorization_endpoint, token_endpoint) = (c.authorization_endpoint.unwrap_or_default(), c.token_endpoint.unwrap_or_default());
                provider::split_url(&authorization_endpoint).map_err(|e| format!("authorizationEndpoint {e}"))?;
                provider::split_url(&token_endpoint).map_err(|e| format!("tokenEndpoint {e}"))?;
                let token_auth = match c.token_endpoint_auth.as_deref() {
                    None | Some("clientSecretBasic") => TokenAuth::Basic,
                    Some("clientSecretPost") => TokenAuth::Post,
                    Some(other) => return Err(format!("tokenEndpointAuth `{other}` is not clientSecretBasic or clientSecretPost")),
                };
                let validator = provider::id_token_validator(&c.issuer, &c.client_id, jwks)?;
                Endpoints::Explicit(Arc::new(Resolved { authorization_endpoint, token_endpoint, token_auth, validator }))
            }
            ([false, false, false], _) => {
                if c.token_endpoint_auth.is_some() {
                    return Err("tokenEndpointAuth is only for explicit endpoints (discovery says which to use)".into());
                }
                let source = match c.discovery {
                    None => DiscoverySource::Url(format!("{}/.well-known/openid-configuration", c.issuer.trim_end_matches('/'))),
                    Some(JwksConfig::Url { url }) => DiscoverySource::Url(url),
                    Some(JwksConfig::Inline(t)) => DiscoverySource::Text(t),
                    Some(JwksConfig::File { file }) => DiscoverySource::Text(tollgate_core::config::types::read_config_file(&file)?),
                };
                Endpoints::Discovered { source, cell: tokio::sync::OnceCell::new() }
            }
            _ => return Err("authorizationEndpoint, tokenEndpoint, and jwks must either all be set or all be omitted".into()),
        };
        let mut scopes = vec!["openid".to_string()];
        for s in c.scopes {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let policy_id = format!("{}|{}|{}", c.issuer, c.client_id, c.redirect_uri);
        let jar = CookieJar::new(&secret, &policy_id, redirect_origin.tls)?;
        Ok(Oidc {
            issuer: c.issuer,
            client_id: c.client_id,
            client_secret: c.client_secret,
            redirect_origin: format!("{}://{}", if redirect_origin.tls { "https" } else { "http" }, redirect_origin.authority()),
            redirect_uri: c.redirect_uri,
            redirect_path: redirect_path.clone(),
            scope: scopes.join(" "),
            logout: c.logout,
            policy_id,
            jar,
            endpoints,
            client: Arc::new(HttpClient::default()),
        })
    }

    async fn resolved(&self) -> std::result::Result<Arc<Resolved>, String> {
        match &self.endpoints {
            Endpoints::Explicit(r) => Ok(r.clone()),
            Endpoints::Discovered { source, cell } => cell
                .get_or_try_init(|| async { provider::discover(&self.client, &self.issuer, &self.client_id, source).await.map(Arc::new) })
                .await
                .cloned(),
        }
    }

    /// The session's claims, when the request carries a valid session cookie.
    async fn session(&self, req: &RequestHeader, resolved: &Resolved) -> Option<JwtClaims> {
        let s: SessionCookie = self.jar.open(cookie(req, &self.jar.session_name)?)?;
        if s.policy_id != self.policy_id || s.expires_at_unix <= now_unix() {
            return None;
        }
        let claims = resolved.validator.validate(&s.raw_id_token).await.map_err(|e| tracing::debug!(target: "tollgate", error = %e, "oidc session token no longer valid")).ok()?;
        Some(JwtClaims { claims, raw: s.raw_id_token })
    }

    /// The redirect to the provider's login page, with a fresh transaction cookie.
    fn start_login(&self, req: &RequestHeader, resolved: &Resolved) -> LocalResponse {
        let (transaction_id, csrf_state, nonce, pkce_verifier) = (random_token(16), random_token(16), random_token(16), random_token(32));
        let here = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let original_uri = if safe_local(here) { here.to_string() } else { "/".to_string() };
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(pkce_verifier.as_bytes()));
        let state = State { transaction_id: transaction_id.clone(), csrf_state: csrf_state.clone() };
        let state = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&state).unwrap_or_default());
        let t = Transaction { policy_id: self.policy_id.clone(), transaction_id: transaction_id.clone(), csrf_state, nonce: nonce.clone(), pkce_verifier, original_uri, expires_at_unix: now_unix() + TRANSACTION_SECS };
        let Ok(sealed) = self.jar.seal(&t) else { return failure(500, "cannot seal the transaction") };
        let sep = if resolved.authorization_endpoint.contains('?') { '&' } else { '?' };
        let location = format!(
            "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
            resolved.authorization_endpoint,
            enc(&self.client_id),
            enc(&self.redirect_uri),
            enc(&self.scope),
            state,
            nonce,
            challenge
        );
        let mut r = LocalResponse::new(302);
        r.headers.push(("location".into(), location));
        r.headers.push(("cache-control".into(), "no-store".into()));
        r.headers.push(("set-cookie".into(), self.jar.set_cookie(&format!("{}.{transaction_id}", self.jar.transaction_prefix), &sealed, TRANSACTION_SECS)));
        r
    }

    /// The provider sent the browser back: exchange the code, check the ID token, start the session.
    async fn callback(&self, req: &RequestHeader, query: &[(String, String)], resolved: &Resolved) -> LocalResponse {
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let state: Option<State> = param("state")
            .and_then(|s| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(state) = state else { return failure(400, "invalid callback") };
        let tx_cookie = format!("{}.{}", self.jar.transaction_prefix, state.transaction_id);
        let Some(sealed) = cookie(req, &tx_cookie) else { return failure(400, "missing transaction") };
        if let Some(err) = param("error") {
            let err: String = err.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return failure(400, &format!("oidc provider returned callback error '{err}'"));
        }
        let Some(code) = param("code") else { return failure(400, "invalid callback") };
        let Some(t) = self.jar.open::<Transaction>(sealed) else { return failure(400, "invalid transaction") };
        if t.policy_id != self.policy_id {
            return failure(400, "policy mismatch");
        }
        if t.transaction_id != state.transaction_id || t.expires_at_unix <= now_unix() {
            return failure(400, "invalid transaction");
        }
        if !constant_eq(t.csrf_state.as_bytes(), state.csrf_state.as_bytes()) {
            return failure(400, "csrf mismatch");
        }
        let id_token = match self.exchange(code, &t.pkce_verifier, resolved).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(target: "tollgate", issuer = %self.issuer, error = %e, "oidc token exchange failed");
                return failure(500, "token exchange failed");
            }
        };
        let claims = match resolved.validator.validate(&id_token).await {
            Ok(c) => c,
            Err(e) => return failure(500, &format!("invalid id token: {e}")),
        };
        if claims.get("nonce").and_then(|n| n.as_str()) != Some(t.nonce.as_str()) {
            return failure(400, "nonce mismatch");
        }
        let exp = claims.get("exp").and_then(|e| e.as_u64()).unwrap_or(u64::MAX);
        let expires = exp.min(now_unix() + SESSION_SECS);
        let session = SessionCookie { policy_id: self.policy_id.clone(), raw_id_token: id_token, expires_at_unix: expires };
        let Ok(sealed) = self.jar.seal(&session) else { return failure(500, "cannot seal the session") };
        if sealed.len() > cookies::MAX_COOKIE_BYTES {
            return failure(500, "session cookie too large");
        }
        let mut r = LocalResponse::new(302);
        r.headers.push(("location".into(), t.original_uri));
        r.headers.push(("cache-control".into(), "no-store".into()));
        r.headers.push(("set-cookie".into(), self.jar.set_cookie(&self.jar.session_name, &sealed, expires.saturating_sub(now_unix()))));
        r.headers.push(("set-cookie".into(), self.jar.set_cookie(&tx_cookie, "", 0)));
        r
    }

    /// `POST token_endpoint` with the code and the PKCE verifier; the ID token.
    async fn exchange(&self, code: &str, verifier: &str, resolved: &Resolved) -> std::result::Result<String, String> {
        let mut form = format!("grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}", enc(code), enc(&self.redirect_uri), enc(verifier));
        let mut headers = vec![(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded".to_string()), (http::header::ACCEPT, "application/json".to_string())];
        match resolved.token_auth {
            TokenAuth::Basic => {
                let pair = format!("{}:{}", enc(&self.client_id), enc(&self.client_secret));
                headers.push((http::header::AUTHORIZATION, format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))));
            }
            TokenAuth::Post => form.push_str(&format!("&client_id={}&client_secret={}", enc(&self.client_id), enc(&self.client_secret))),
        }
        let (status, body) = provider::call(&self.client, &resolved.token_endpoint, Method::POST, headers, Some(Bytes::from(form))).await?;
        if !(200..300).contains(&status) {
            return Err(format!("the token endpoint answered {status}"));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("token response: {e}"))?;
        v.get("id_token").and_then(|t| t.as_str()).map(str::to_string).ok_or_else(|| "no id_token in the token response".into())
    }

    /// `POST logout.path` from the site's own pages: the session cookie cleared, then a 303.
    fn logout(&self, req: &RequestHeader, l: &LogoutConfig) -> LocalResponse {
        if req.method != Method::POST {
            return failure(405, "method not allowed");
        }
        let origin = req.headers.get(http::header::ORIGIN).and_then(|o| o.to_str().ok());
        if origin != Some(self.redirect_origin.as_str()) {
            let mut r = LocalResponse::new(403);
            r.headers.push(("content-type".into(), "text/plain".into()));
            r.body = Bytes::from_static(b"CSRF validation failed");
            return r;
        }
        let mut r = LocalResponse::new(303);
        r.headers.push(("location".into(), l.redirect.clone().unwrap_or_else(|| "/".into())));
        r.headers.push(("cache-control".into(), "no-store".into()));
        r.headers.push(("set-cookie".into(), self.jar.set_cookie(&self.jar.session_name, "", 0)));
        for (name, _) in cookies::cookies(req).filter(|(n, _)| n.starts_with(&format!("{}.", self.jar.transaction_prefix))) {
            r.headers.push(("set-cookie".into(), self.jar.set_cookie(name, "", 0)));
        }
        r
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_pairs(req: &RequestHeader) -> Vec<(String, String)> {
    let decode = |s: &str| String::from_utf8_lossy(&tollgate_core::router::query_decode_bytes(s)).into_owned();
    req.uri.query().into_iter().flat_map(|q| q.split('&')).filter_map(|p| p.split_once('=').or(Some((p, "")))).map(|(k, v)| (decode(k), decode(v))).collect()
}

/// A request that cannot follow a login page (`fetch`, XHR, WebSocket): `Sec-Fetch-Mode` says so.
fn is_programmatic(req: &RequestHeader) -> bool {
    matches!(req.headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()), Some("cors" | "no-cors" | "same-origin" | "websocket"))
}

#[async_trait]
impl Filter for Oidc {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header();
        if let Some(l) = self.logout.as_ref().filter(|l| req.uri.path() == l.path) {
            return Ok(FilterAction::Respond(self.logout(req, l)));
        }
        let resolved = match self.resolved().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "tollgate", issuer = %self.issuer, error = %e, "oidc provider discovery failed");
                return Ok(FilterAction::Respond(failure(502, "the identity provider is unavailable")));
            }
        };
        if req.method == Method::GET && req.uri.path() == self.redirect_path {
            let query = query_pairs(req);
            let has = |k: &str| query.iter().any(|(n, _)| n == k);
            if has("state") && (has("code") || has("error")) {
                return Ok(FilterAction::Respond(self.callback(req, &query, &resolved).await));
            }
        }
        let preflight = req.method == Method::OPTIONS && req.headers.contains_key(http::header::ORIGIN) && req.headers.get("access-control-request-method").is_some_and(|v| !v.is_empty());
        if preflight {
            cookies::strip(session.req_header_mut())?;
            return Ok(FilterAction::Continue);
        }
        if let Some(claims) = self.session(req, &resolved).await {
            ctx.jwt = Some(Arc::new(claims));
            cookies::strip(session.req_header_mut())?;
            return Ok(FilterAction::Continue);
        }
        if is_programmatic(req) {
            return Ok(FilterAction::Respond(failure(401, "authentication required")));
        }
        Ok(FilterAction::Respond(self.start_login(req, &resolved)))
    }

    fn carry_over(&self, previous: &dyn Filter) {
        let Some(previous) = (previous as &dyn std::any::Any).downcast_ref::<Oidc>() else { return };
        if let (Endpoints::Discovered { cell, .. }, Endpoints::Discovered { cell: old, .. }) = (&self.endpoints, &previous.endpoints) {
            if previous.issuer == self.issuer && previous.client_id == self.client_id {
                if let Some(r) = old.get() {
                    let _ = cell.set(r.clone());
                }
            }
        }
    }
}
