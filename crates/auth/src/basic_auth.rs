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

/// The compiled policy.
#[derive(Debug)]
pub struct BasicAuth {
    users: Arc<Htpasswd>,
    realm: String,
    mode: BasicMode,
    location: Location,
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
        Ok(BasicAuth { users: Arc::new(users), realm, mode: c.mode, location: Location::compile(location)? })
    }

    /// The user name when `credential` (base64 of `user:password`) is valid.
    async fn check(&self, credential: &str) -> Option<String> {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credential.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let stored = self.users.get(user)?.clone();
        let password = password.to_string();
        let ok = if stored.is_slow() {
            tokio::task::spawn_blocking(move || stored.verify(&password)).await.unwrap_or(false)
        } else {
            stored.verify(&password)
        };
        ok.then(|| user.to_string())
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
            Some(user) => {
                self.location.remove(session.req_header_mut())?;
                ctx.basic_auth_user = Some(Arc::from(user));
                Ok(FilterAction::Continue)
            }
            None => {
                tracing::info!(target: "tollgate", route = ctx.route.as_ref().map_or("", |r| r.name.as_str()), "basicAuth refused invalid credentials");
                Ok(self.refuse(ctx, "invalid credentials"))
            }
        }
    }
}
