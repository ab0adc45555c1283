//! `backendAuth`: attach the provider credential upstream (`Authorization: Bearer <key>`, or a
//! Google access token), replacing whatever the client sent. The key never appears in logs.

pub mod gcp;

use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderValue;
use pingora::proxy::Session;
use pingora::Result;
use serde::de;
use serde::Deserialize;

use super::registry::{build_with, FilterSpec, Levels};
use super::{Filter, FilterAction, RequestCtx};
use crate::config::types::{FileOrInline, Unsupported};

/// Registry entry for `backendAuth`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "backendAuth",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 110,
    build: |d| build_with(d, |c: BackendAuthForm| BackendAuth::compile(c.0)),
};

/// The YAML block: one credential kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendAuthConfig {
    /// A static key: `"sk-..."`, `{file: path}` or `{value: ..., location: ...}`.
    pub key: Option<KeySource>,
    /// Not supported yet.
    pub passthrough: Option<Unsupported>,
    /// Google access tokens (`{type: accessToken, credential}`).
    pub gcp: Option<GcpAuthConfig>,
    /// Not supported yet.
    pub aws: Option<Unsupported>,
    /// Not supported yet.
    pub azure: Option<Unsupported>,
    /// Not supported yet.
    pub copilot: Option<Unsupported>,
    /// Not supported yet.
    pub jwt_sign: Option<Unsupported>,
    /// Not supported yet.
    pub oauth_token_exchange: Option<Unsupported>,
    /// Not supported yet.
    pub cross_app_access: Option<Unsupported>,
    /// Not supported yet.
    pub credentials: Option<Unsupported>,
}

/// `backendAuth.gcp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpAuthConfig {
    /// `accessToken` (the default); `idToken` is not supported yet.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only for ID tokens: not supported yet.
    pub audience: Option<Unsupported>,
    /// A service account key (file or inline JSON); ambient credentials are not supported yet.
    pub credential: Option<FileOrInline>,
}

/// `backendAuth` as written: a block, or a bare kind name (`copilot`), which names a kind
/// tollgate does not have yet.
struct BackendAuthForm(BackendAuthConfig);

impl<'de> Deserialize<'de> for BackendAuthForm {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = BackendAuthForm;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a backendAuth block such as {key: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<BackendAuthForm, E> {
                Err(E::custom(format!("backendAuth `{v}` is not supported yet (only `key`)")))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> std::result::Result<BackendAuthForm, A::Error> {
                BackendAuthConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(BackendAuthForm)
            }
        }
        d.deserialize_any(V)
    }
}

/// Where the key comes from.
#[derive(Debug, Clone)]
pub struct KeySource(pub FileOrInline);

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[allow(dead_code)] // `location` exists only to fail the load when used.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Long {
            value: FileOrInline,
            location: Option<Unsupported>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Long(Long),
            Short(FileOrInline),
        }
        match Either::deserialize(d).map_err(|_| {
            de::Error::custom("key must be a string, {file: path} or {value: string | {file: path}}")
        })? {
            Either::Long(l) => Ok(KeySource(l.value)),
            Either::Short(s) => Ok(KeySource(s)),
        }
    }
}

/// A credential to present upstream.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A fixed `Authorization` value.
    Static(HeaderValue),
    /// A Google access token, minted and refreshed.
    Gcp(Arc<gcp::GcpTokenSource>),
}

impl Credential {
    /// The `Authorization` value to send now (marked sensitive).
    pub fn header(&self) -> std::result::Result<HeaderValue, String> {
        match self {
            Credential::Static(h) => Ok(h.clone()),
            Credential::Gcp(source) => source.header(),
        }
    }
}

/// Sets the upstream Authorization header.
pub struct BackendAuth {
    credential: Credential,
}

impl BackendAuthConfig {
    /// The credential this block describes.
    pub fn credential(&self) -> std::result::Result<Credential, String> {
        if let Some(g) = &self.gcp {
            if self.key.is_some() {
                return Err("backendAuth takes one kind: `key` or `gcp`".into());
            }
            match g.kind.as_deref() {
                None | Some("accessToken") => {}
                Some(other) => return Err(format!("backendAuth.gcp type `{other}` is not supported yet (only accessToken)")),
            }
            let credential = g.credential.as_ref().ok_or("backendAuth.gcp needs `credential` (ambient Google credentials are not supported yet)")?;
            return Ok(Credential::Gcp(Arc::new(gcp::GcpTokenSource::from_json(&credential.0).map_err(|e| format!("backendAuth.gcp.credential: {e}"))?)));
        }
        Ok(Credential::Static(self.header()?))
    }

    /// The `Authorization` value a `key` sends (marked sensitive).
    pub fn header(&self) -> std::result::Result<HeaderValue, String> {
        let key = self.key.as_ref().ok_or("backendAuth needs `key` or `gcp` (other kinds are not supported yet)")?;
        let key = key.0 .0.trim().to_string();
        let mut header = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| "key is not a valid header value")?;
        header.set_sensitive(true);
        Ok(header)
    }
}

impl BackendAuth {
    /// The credential it presents (MCP targets and ai groups that refer to it reuse it).
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    fn compile(c: BackendAuthConfig) -> std::result::Result<Self, String> {
        Ok(BackendAuth { credential: c.credential()? })
    }
}

#[async_trait]
impl Filter for BackendAuth {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        match self.credential.header() {
            Ok(h) => session.req_header_mut().insert_header(http::header::AUTHORIZATION, h)?,
            Err(e) => {
                log::warn!(target: "tollgate", "backendAuth: {e}");
                let msg = "the gateway could not get its credential for the upstream";
                return Ok(FilterAction::Respond(crate::errors::json_error(ctx.error_format, 503, "credential_unavailable", msg)));
            }
        }
        Ok(FilterAction::Continue)
    }
}
