//! `backendAuth`: attach the provider credential upstream (`Authorization: Bearer <key>`, or a
//! Google access token), replacing whatever the client sent. The key never appears in logs.

mod aws_profile;
pub mod azure;
pub mod gcp;
pub mod jwt_sign;
pub mod location;

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
    /// Forward the caller's verified JWT (`{}` or `{location}`).
    pub passthrough: Option<PassthroughConfig>,
    /// Google access tokens (`{type: accessToken, credential}`).
    pub gcp: Option<GcpAuthConfig>,
    /// AWS SigV4 (`{accessKeyId, secretAccessKey, sessionToken, region, serviceName}`, or `{}`
    /// for the standard environment variables); signed by the backend that knows the body.
    pub aws: Option<AwsAuthConfig>,
    /// Microsoft Entra ID tokens (`{explicitConfig: {clientSecret | workloadIdentity}}` or
    /// `{implicit: {}}`).
    pub azure: Option<azure::AzureAuthConfig>,
    /// Not supported yet.
    pub copilot: Option<Unsupported>,
    /// Sign a short-lived JWT per request (cached for half its lifetime).
    pub jwt_sign: Option<jwt_sign::JwtSignConfig>,
    /// Not supported yet.
    pub oauth_token_exchange: Option<Unsupported>,
    /// Not supported yet.
    pub cross_app_access: Option<Unsupported>,
    /// Not supported yet.
    pub credentials: Option<Unsupported>,
}

/// Set when `backendAuth.passthrough` put the caller's own token in `Authorization` on
/// purpose: families that keep clients' credentials from their targets (MCP) let it through.
#[derive(Debug, Clone, Copy)]
pub struct ForwardsCallerToken;

/// `backendAuth.passthrough`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughConfig {
    /// Where the token goes (default `Authorization: Bearer`).
    pub location: Option<location::KeyLocation>,
}

/// `backendAuth.aws`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsAuthConfig {
    /// The access key id (else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<FileOrInline>,
    /// The secret key (else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<FileOrInline>,
    /// A session token (else `AWS_SESSION_TOKEN`, when set).
    pub session_token: Option<FileOrInline>,
    /// The signing region (else the provider's).
    pub region: Option<String>,
    /// The signing service (default `bedrock`).
    pub service_name: Option<String>,
    /// Not supported yet.
    pub assume_role: Option<Unsupported>,
}

/// AWS keys and where they sign.
#[derive(Clone)]
pub struct AwsKeys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// Session token.
    pub session_token: Option<String>,
    /// Signing region, when the credential names one.
    pub region: Option<String>,
    /// Signing service.
    pub service: Option<String>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AwsKeys({}…)", self.access_key_id.chars().take(4).collect::<String>())
    }
}

impl AwsAuthConfig {
    fn keys(&self) -> std::result::Result<AwsKeys, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if self.access_key_id.is_none() && self.secret_access_key.is_none() && env("AWS_ACCESS_KEY_ID").is_none() {
            // The standard chain's next step: the shared credentials file's profile.
            if let Some((access_key_id, secret_access_key, session_token)) = aws_profile::profile_keys().map_err(|e| format!("backendAuth.aws: {e}"))? {
                return Ok(AwsKeys { access_key_id, secret_access_key, session_token, region: self.region.clone(), service: self.service_name.clone() });
            }
        }
        let pick = |v: &Option<FileOrInline>, name: &str| v.as_ref().map(|s| s.0.trim().to_string()).or_else(|| env(name));
        let access_key_id = pick(&self.access_key_id, "AWS_ACCESS_KEY_ID").ok_or("backendAuth.aws needs accessKeyId (or AWS_ACCESS_KEY_ID, or a profile in the shared credentials file; roles are not supported yet)")?;
        let secret_access_key = pick(&self.secret_access_key, "AWS_SECRET_ACCESS_KEY").ok_or("backendAuth.aws needs secretAccessKey (or AWS_SECRET_ACCESS_KEY)")?;
        let explicit = self.access_key_id.is_some();
        let session_token = match &self.session_token {
            Some(t) => Some(t.0.trim().to_string()),
            None if !explicit => env("AWS_SESSION_TOKEN"),
            None => None,
        };
        Ok(AwsKeys { access_key_id, secret_access_key, session_token, region: self.region.clone(), service: self.service_name.clone() })
    }
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

/// The key, and where it goes when not in `Authorization: Bearer`.
#[derive(Debug, Clone)]
pub struct KeySource {
    /// The key.
    pub value: FileOrInline,
    /// `location`, when given.
    pub location: Option<location::KeyLocation>,
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Long {
            value: FileOrInline,
            location: Option<location::KeyLocation>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Long(Long),
            Short(FileOrInline),
        }
        // The long form first, so that its own errors (a bad `location`) are the ones reported.
        let v = serde_json::Value::deserialize(d)?;
        if let serde_json::Value::Object(m) = &v {
            if m.contains_key("value") || m.contains_key("location") {
                let l: Long = serde_json::from_value(v).map_err(|e| de::Error::custom(format!("key: {e}")))?;
                return Ok(KeySource { value: l.value, location: l.location });
            }
        }
        match Either::deserialize(v).map_err(|_| {
            de::Error::custom("key must be a string, {file: path} or {value: string | {file: path}, location}")
        })? {
            Either::Long(l) => Ok(KeySource { value: l.value, location: l.location }),
            Either::Short(s) => Ok(KeySource { value: s, location: None }),
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
    /// AWS SigV4: the backend signs the request once its body is final.
    Aws(Arc<AwsKeys>),
    /// A Microsoft Entra ID token, fetched and refreshed.
    Azure(Arc<azure::AzureTokenSource>),
    /// A key with its own `location`: placed last, after every rewrite of the request.
    Placed(Arc<location::PlacedKey>),
    /// The caller's JWT (verified by `jwtAuth` or `mcpAuthentication`), forwarded.
    Passthrough(Option<location::KeyLocation>),
    /// A JWT the gateway signs.
    JwtSign(Arc<jwt_sign::JwtSigner>),
}

impl Credential {
    /// The `Authorization` value to send now (marked sensitive).
    pub fn header(&self) -> std::result::Result<HeaderValue, String> {
        match self {
            Credential::Static(h) => Ok(h.clone()),
            Credential::Gcp(source) => source.header(),
            Credential::Aws(_) => Err("AWS credentials sign the request; they are not a header".into()),
            Credential::Azure(_) => Err("an Entra ID token is fetched per host; use `header_for`".into()),
            Credential::Placed(_) => Err("the key has its own `location`, not Authorization".into()),
            Credential::JwtSign(s) if s.location.is_none() => {
                let mut h = HeaderValue::from_str(&format!("Bearer {}", s.token()?)).map_err(|_| "the signed token is not a header value".to_string())?;
                h.set_sensitive(true);
                Ok(h)
            }
            Credential::JwtSign(_) => Err("the signed token has its own `location`, not Authorization".into()),
            Credential::Passthrough(_) => Err("passthrough forwards each caller's own token; it is not usable here yet".into()),
        }
    }

    /// The `Authorization` value for a request to `host`: Entra ID tokens are fetched (or
    /// reused) here, the rest as [`Credential::header`].
    pub async fn header_for(&self, host: &str) -> std::result::Result<HeaderValue, String> {
        match self {
            Credential::Azure(source) => source.header(azure::AzureTokenSource::scope_for(host)).await,
            other => other.header(),
        }
    }

    /// The value for `host` without waiting: an Entra ID token only when one is cached (see
    /// [`Credential::header_for`], which fetches it).
    pub fn header_now(&self, host: &str) -> std::result::Result<HeaderValue, String> {
        match self {
            Credential::Azure(source) => source.cached(azure::AzureTokenSource::scope_for(host)).ok_or_else(|| "no Entra ID token has been fetched yet".into()),
            other => other.header(),
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
        let kinds = [self.key.is_some(), self.gcp.is_some(), self.aws.is_some(), self.azure.is_some(), self.passthrough.is_some(), self.jwt_sign.is_some()];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err("backendAuth takes one kind: `key`, `gcp`, `aws`, `azure`, `passthrough` or `jwtSign`".into());
        }
        if let Some(p) = &self.passthrough {
            return Ok(Credential::Passthrough(p.location.clone()));
        }
        if let Some(j) = &self.jwt_sign {
            return Ok(Credential::JwtSign(Arc::new(jwt_sign::JwtSigner::compile(j.clone()).map_err(|e| format!("backendAuth.jwtSign: {e}"))?)));
        }
        if let Some(a) = &self.azure {
            return Ok(Credential::Azure(Arc::new(a.token_source().map_err(|e| format!("backendAuth.azure: {e}"))?)));
        }
        if let Some(a) = &self.aws {
            return Ok(Credential::Aws(Arc::new(a.keys()?)));
        }
        if let Some(g) = &self.gcp {
            match g.kind.as_deref() {
                None | Some("accessToken") => {}
                Some(other) => return Err(format!("backendAuth.gcp type `{other}` is not supported yet (only accessToken)")),
            }
            let json = match &g.credential {
                Some(c) => c.0.clone(),
                // Application Default Credentials' first step: the key file the environment names.
                None => {
                    let path = std::env::var("GOOGLE_APPLICATION_CREDENTIALS").ok().filter(|p| !p.is_empty());
                    let path = path.ok_or("backendAuth.gcp needs `credential` or GOOGLE_APPLICATION_CREDENTIALS (the metadata server and gcloud's user credentials are not supported yet)")?;
                    std::fs::read_to_string(&path).map_err(|e| format!("backendAuth.gcp: GOOGLE_APPLICATION_CREDENTIALS {path}: {e}"))?
                }
            };
            return Ok(Credential::Gcp(Arc::new(gcp::GcpTokenSource::from_json(&json).map_err(|e| format!("backendAuth.gcp.credential: {e}"))?)));
        }
        if let Some(KeySource { value, location: Some(l) }) = &self.key {
            let placed = location::PlacedKey::new(value.0.trim().to_string(), l.clone()).map_err(|e| format!("backendAuth.key: {e}"))?;
            return Ok(Credential::Placed(Arc::new(placed)));
        }
        Ok(Credential::Static(self.header()?))
    }

    /// The `Authorization` value a `key` sends (marked sensitive).
    pub fn header(&self) -> std::result::Result<HeaderValue, String> {
        let key = self.key.as_ref().ok_or("backendAuth needs `key`, `gcp`, `aws` or `azure` (other kinds are not supported yet)")?;
        if key.location.is_some() {
            return Err("a key with a `location` cannot go in Authorization here (only the default location is supported for this target)".into());
        }
        let key = key.value.0.trim().to_string();
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
        // A backend's own backendAuth replaces a route's: forget what an earlier one left.
        ctx.extensions.remove::<Arc<location::PlacedKey>>();
        ctx.extensions.remove::<Arc<AwsKeys>>();
        if let Credential::Aws(keys) = &self.credential {
            // Signed by the backend once the body is final; only LLM providers do that so far.
            let ai = matches!(ctx.backend.as_ref().map(|b| &b.target), Some(crate::runtime::BackendTarget::Ai(_) | crate::runtime::BackendTarget::AiGroups(_)));
            if !ai {
                let msg = "backendAuth.aws signs requests to ai backends only so far";
                return Ok(FilterAction::Respond(crate::errors::json_error(ctx.error_format, 500, "unsupported_credential", msg)));
            }
            ctx.extensions.insert(keys.clone());
            return Ok(FilterAction::Continue);
        }
        if let Credential::Placed(key) = &self.credential {
            // Placed by the proxy once every filter has shaped the request (see `location`).
            ctx.extensions.insert(key.clone());
            return Ok(FilterAction::Continue);
        }
        let placed = match &self.credential {
            // Nothing to forward without a verified token (as agentgateway).
            Credential::Passthrough(_) if ctx.jwt.is_none() => return Ok(FilterAction::Continue),
            Credential::Passthrough(Some(at)) => Some((ctx.jwt.as_ref().map(|j| j.raw.clone()).unwrap_or_default(), at)),
            Credential::Passthrough(None) => {
                let raw = ctx.jwt.as_ref().map(|j| j.raw.as_str()).unwrap_or_default();
                let mut h = HeaderValue::from_str(&format!("Bearer {raw}")).map_err(|_| pingora::Error::explain(pingora::ErrorType::InternalError, "the caller's token is not a header value"))?;
                h.set_sensitive(true);
                session.req_header_mut().insert_header(http::header::AUTHORIZATION, h)?;
                ctx.extensions.insert(ForwardsCallerToken);
                return Ok(FilterAction::Continue);
            }
            Credential::JwtSign(s) => match (&s.location, s.token()) {
                (Some(at), Ok(token)) => Some((token, at)),
                (_, Err(e)) => {
                    log::warn!(target: "tollgate", "backendAuth.jwtSign: {e}");
                    let msg = "the gateway could not sign its credential for the upstream";
                    return Ok(FilterAction::Respond(crate::errors::json_error(ctx.error_format, 500, "credential_unavailable", msg)));
                }
                (None, Ok(_)) => None,
            },
            _ => None,
        };
        if let Some((value, at)) = placed {
            let key = location::PlacedKey::new(value, at.clone()).map_err(|e| pingora::Error::explain(pingora::ErrorType::InternalError, e))?;
            ctx.extensions.insert(Arc::new(key));
            return Ok(FilterAction::Continue);
        }
        let host = match ctx.backend.as_ref().map(|b| &b.target) {
            // The provider's own host (the `ai` filter plans the upstream after this filter).
            Some(crate::runtime::BackendTarget::Ai(ai)) => ai.host.clone(),
            _ => ctx.upstream.host.clone(),
        };
        match self.credential.header_for(&host).await {
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
