//! `basicAuth`: authenticates callers by user name and password against an htpasswd database
//! (inline or from a file), as agentgateway does. An accepted user becomes the request's
//! principal (`basicAuth.username`); the credential is removed before the request goes
//! upstream. Refusals are 401 with `WWW-Authenticate: Basic realm="…"`.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use tollgate_core::config::types::FileOrInline;
use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};

use crate::htpasswd::Htpasswd;
use crate::location::{Location, LocationConfig};

/// Registry entry for `basicAuth` (listeners and routes), after `jwtAuth`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "basicAuth",
    levels: Levels::LISTENER_AND_ROUTE,
    order: 26,
    build: |d| build_with(d, BasicAuth::compile),
};

/// The realm when none is configured (agentgateway's).
pub const DEFAULT_REALM: &str = "Restricted";

/// The YAML block (agentgateway's `LocalBasicAuth`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// `user:hash` lines, inline or `{file: path}`.
    pub htpasswd: FileOrInline,
    /// Shown in `WWW-Authenticate`.
    #[serde(default)]
    pub realm: Option<String>,
    /// `strict` or `optional` (default).
    #[serde(default)]
    pub mode: BasicMode,
    /// Where the credential is read (default `Authorization: Basic …`).
    pub authorization_location: Option<LocationConfig>,
}

/// agentgateway's `BasicAuthMode` (there is no permissive mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BasicMode {
    /// Valid credentials are required.
    Strict,
    /// Credentials, when present, must be valid.
    #[default]
    Optional,
}

/// bcrypt checks running at once (each takes a core for tens of milliseconds).
const BCRYPT_AT_ONCE: usize = 2;
/// Longest wait for a bcrypt slot before answering 503.
const BCRYPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Most verified bcrypt credentials remembered (emptied when full).
const MAX_VERIFIED: usize = 10_000;

/// What checking a credential found.
enum Check {
    User(String),
    Invalid,
    Busy,
}

/// The compiled policy.
#[derive(Debug)]
pub struct BasicAuth {
    users: Arc<Htpasswd>,
    realm: String,
    mode: BasicMode,
    location: Location,
    verified: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    bcrypt_slots: tokio::sync::Semaphore,
}

impl BasicAuth {
    /// Parses the user database.
    pub fn compile(c: BasicAuthConfig) -> std::result::Result<BasicAuth, String> {
        let users = Htpasswd::parse(&c.htpasswd.0)?;
        let realm = c.realm.unwrap_or_else(|| DEFAULT_REALM.to_string());
        if realm.contains(['"', '\r', '\n']) {
            return Err("realm may not contain quotes or line breaks".into());
        }
        let location = c.authorization_location.unwrap_or(LocationConfig::Header { name: "authorization".into(), prefix: Some("Basic ".into()) });
        Ok(BasicAuth {
            users: Arc::new(users),
            realm,
            mode: c.mode,
            location: Location::compile(location)?,
            verified: Default::default(),
            bcrypt_slots: tokio::sync::Semaphore::new(BCRYPT_AT_ONCE),
        })
    }

    /// The user name when `credential` (base64 of `user:password`) is valid. bcrypt entries run
    /// on the blocking pool, at most [`BCRYPT_AT_ONCE`] at a time (a flood of wrong passwords
    /// cannot take every core), and a verified credential is remembered (by its SHA-256) so a
    /// returning user does not pay the KDF per request.
    async fn check(&self, credential: &str) -> Check {
        let Some(text) = base64::engine::general_purpose::STANDARD.decode(credential.trim()).ok().and_then(|d| String::from_utf8(d).ok()) else {
            return Check::Invalid;
        };
        let Some((user, password)) = text.split_once(':') else { return Check::Invalid };
        let Some(stored) = self.users.get(user).cloned() else { return Check::Invalid };
        if !stored.is_slow() {
            return if stored.verify(password) { Check::User(user.to_string()) } else { Check::Invalid };
        }
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.verified.lock().unwrap_or_else(|e| e.into_inner()).contains(&digest) {
            return Check::User(user.to_string());
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(BCRYPT_WAIT, self.bcrypt_slots.acquire()).await else { return Check::Busy };
        let password = password.to_string();
        if !tokio::task::spawn_blocking(move || stored.verify(&password)).await.unwrap_or(false) {
            return Check::Invalid;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(digest);
        Check::User(user.to_string())
    }

    fn refuse(&self, ctx: &RequestCtx, why: &str) -> FilterAction {
        let mut resp = json_error(ctx.error_format, 401, "authentication_error", &format!("basic authentication failure: {why}"));
        resp.headers.push(("www-authenticate".into(), format!("Basic realm=\"{}\"", self.realm)));
        FilterAction::Respond(resp)
    }
}

#[async_trait]
impl Filter for BasicAuth {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let Some(credential) = self.location.extract(session.req_header(), ctx) else {
            return Ok(match self.mode {
                BasicMode::Strict => self.refuse(ctx, "no basic authentication credentials found"),
                BasicMode::Optional => FilterAction::Continue,
            });
        };
        match self.check(&credential).await {
            Check::User(user) => {
                self.location.remove(session.req_header_mut())?;
                ctx.basic_auth_user = Some(Arc::from(user));
                Ok(FilterAction::Continue)
            }
            Check::Busy => Ok(FilterAction::Respond(json_error(ctx.error_format, 503, "overloaded", "too many password checks at once; retry"))),
            Check::Invalid => {
                tracing::info!(target: "tollgate", route = ctx.route.as_ref().map_or("", |r| r.name.as_str()), "basicAuth refused invalid credentials");
                Ok(self.refuse(ctx, "invalid credentials"))
            }
        }
    }
}
