//! `jwtAuth`: authenticates callers by a JSON Web Token from trusted issuers, as agentgateway
//! does. The verified claims become the request's principal (`jwt.*` in CEL, `jwt.sub` in the
//! access log); the token is removed before the request goes upstream unless `preserveToken`.
//! A refused token gets a 401 in the caller's API format naming why (never the token).

pub mod jwks;
pub mod validate;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::identity::JwtClaims;

use crate::location::{Location, LocationConfig};
use crate::Mode;
use jwks::{Jwks, JwksConfig};
use validate::{Provider, ProviderConfig, TokenError, ValidationOptions, Validator};

/// Registry entry for `jwtAuth` (listeners and routes): before `basicAuth`, `apiKey`,
/// `extAuthz` and `authorization`, as agentgateway orders them.
pub const SPEC: FilterSpec = FilterSpec {
    name: "jwtAuth",
    levels: Levels::LISTENER_AND_ROUTE,
    order: 24,
    build: |d| build_with(d, JwtAuth::compile),
};

/// The YAML block (agentgateway's `LocalJwtConfig`): either `providers: [...]`, or one
/// provider's fields (`issuer`, `audiences`, `jwks`, `jwtValidationOptions`) at the top.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtAuthConfig {
    /// `strict`, `optional` (default) or `permissive`.
    #[serde(default)]
    pub mode: Mode,
    /// Where the token is read (default `Authorization: Bearer <token>`).
    #[serde(default)]
    pub location: LocationConfig,
    /// Trusted issuers.
    pub providers: Option<Vec<ProviderConfig>>,
    /// The single issuer (without `providers`).
    pub issuer: Option<String>,
    /// Its audiences.
    pub audiences: Option<Vec<String>>,
    /// Its keys.
    pub jwks: Option<JwksConfig>,
    /// Its claim requirements.
    pub jwt_validation_options: Option<ValidationOptions>,
    /// Keep the token on the upstream request (agentgateway's newer `preserveToken`).
    #[serde(default)]
    pub preserve_token: bool,
}

impl JwtAuthConfig {
    /// The providers, from either form.
    pub fn into_providers(self) -> std::result::Result<(Vec<ProviderConfig>, Mode, LocationConfig, bool), String> {
        let single = self.issuer.is_some() || self.jwks.is_some() || self.audiences.is_some() || self.jwt_validation_options.is_some();
        let providers = match (self.providers, single) {
            (Some(_), true) => return Err("set either `providers` or one provider's `issuer` and `jwks`, not both".into()),
            (Some(p), false) => p,
            (None, _) => {
                let issuer = self.issuer.ok_or("`issuer` is required (or list `providers`)")?;
                let jwks = self.jwks.ok_or("`jwks` is required")?;
                vec![ProviderConfig { issuer, audiences: self.audiences, jwks, jwt_validation_options: self.jwt_validation_options }]
            }
        };
        Ok((providers, self.mode, self.location, self.preserve_token))
    }
}

/// The compiled policy; also the token check of `mcpAuthentication`.
pub struct JwtAuth {
    validator: Validator,
    mode: Mode,
    location: Location,
    preserve_token: bool,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtAuth({} providers, {:?})", self.validator.providers.len(), self.mode)
    }
}

/// What checking a request's token found.
pub enum Outcome {
    /// A verified token (already recorded in the context).
    Verified,
    /// No token, and the mode lets that pass.
    Anonymous,
    /// Refused, with the reason.
    Refused(TokenError),
}

impl JwtAuth {
    /// Checks the block and reads fixed key sets.
    pub fn compile(config: JwtAuthConfig) -> std::result::Result<JwtAuth, String> {
        let (providers, mode, location, preserve_token) = config.into_providers()?;
        if providers.is_empty() {
            return Err("`providers` is empty: no token could ever be accepted".into());
        }
        let providers = providers.into_iter().map(Provider::compile).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(JwtAuth { validator: Validator::new(providers), mode, location: Location::compile(location)?, preserve_token })
    }

    /// Builds from parts (for `mcpAuthentication`).
    pub fn from_parts(providers: Vec<Provider>, mode: Mode, location: LocationConfig) -> std::result::Result<JwtAuth, String> {
        Ok(JwtAuth { validator: Validator::new(providers), mode, location: Location::compile(location)?, preserve_token: false })
    }

    /// Reads and verifies the request's token; a verified one becomes `ctx.jwt` and is removed
    /// from the request (unless preserved).
    pub async fn check(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Outcome> {
        let Some(token) = self.location.extract(session.req_header(), ctx) else {
            return Ok(match self.mode {
                Mode::Strict => Outcome::Refused(TokenError::Missing),
                _ => Outcome::Anonymous,
            });
        };
        match self.validator.validate(&token).await {
            Ok(claims) => {
                if !self.preserve_token {
                    self.location.remove(session.req_header_mut())?;
                }
                ctx.jwt = Some(Arc::new(JwtClaims { claims, raw: token }));
                Ok(Outcome::Verified)
            }
            Err(e) if self.mode == Mode::Permissive => {
                tracing::debug!(target: "tollgate", error = %e, "jwtAuth: invalid token passed (permissive mode)");
                Ok(Outcome::Anonymous)
            }
            Err(e) => Ok(Outcome::Refused(e)),
        }
    }
}

#[async_trait]
impl Filter for JwtAuth {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        match self.check(session, ctx).await? {
            Outcome::Verified | Outcome::Anonymous => Ok(FilterAction::Continue),
            Outcome::Refused(e) => {
                tracing::info!(target: "tollgate", route = ctx.route.as_ref().map_or("", |r| r.name.as_str()), reason = %e, "jwtAuth refused the request");
                let message = format!("authentication failure: {e}");
                Ok(FilterAction::Respond(json_error(ctx.error_format, 401, "authentication_error", &message)))
            }
        }
    }

    fn carry_over(&self, previous: &dyn Filter) {
        let Some(previous) = (previous as &dyn std::any::Any).downcast_ref::<JwtAuth>() else { return };
        self.adopt_keys(previous);
    }
}

impl JwtAuth {
    /// Takes over the remote key sets `previous` fetched for the same URLs.
    pub fn adopt_keys(&self, previous: &JwtAuth) {
        for p in &self.validator.providers {
            let Jwks::Remote(new) = &p.jwks else { continue };
            for old in &previous.validator.providers {
                if let Jwks::Remote(old) = &old.jwks {
                    new.adopt(old);
                }
            }
        }
    }
}
