//! `backendAuth.gcp`: Google OAuth access tokens from a service account key, for Vertex AI and
//! other Google APIs. As Google's own client libraries do for service accounts, the token is a
//! self-signed JWT (RS256, `iss` = `sub` = the account, the cloud-platform scope, one hour),
//! minted locally, so no token endpoint is called and nothing can hang; it is reused until four
//! minutes before it expires.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::Deserialize;

/// The scope Vertex AI and most Google APIs accept.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Token lifetime.
const LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to expiry is replaced.
const REFRESH_SLACK: Duration = Duration::from_secs(240);

/// The fields of a service account key file tollgate uses.
#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "type")]
    kind: String,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    scope: &'a str,
    iat: u64,
    exp: u64,
}

/// Mints and caches access tokens for one service account.
pub struct GcpTokenSource {
    email: String,
    key: jsonwebtoken::EncodingKey,
    key_id: Option<String>,
    cached: Mutex<Option<(HeaderValue, SystemTime)>>,
}

impl std::fmt::Debug for GcpTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcpTokenSource({})", self.email)
    }
}

impl GcpTokenSource {
    /// From a credential file's JSON; only service account keys so far.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let k: ServiceAccountKey = serde_json::from_str(json).map_err(|e| format!("the credential is not a Google credential JSON: {e}"))?;
        if k.kind != "service_account" {
            return Err(format!("credential type `{}` is not supported yet (only service_account keys)", k.kind));
        }
        let email = k.client_email.ok_or("the service account key has no client_email")?;
        let pem = k.private_key.ok_or("the service account key has no private_key")?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("the service account's private_key is not an RSA key: {e}"))?;
        Ok(GcpTokenSource { email, key, key_id: k.private_key_id, cached: Mutex::new(None) })
    }

    /// `Authorization: Bearer <token>`, minted or cached.
    pub fn header(&self) -> Result<HeaderValue, String> {
        let now = SystemTime::now();
        let mut cached = self.cached.lock().map_err(|_| "the token cache is poisoned")?;
        if let Some((header, expires)) = cached.as_ref() {
            if now + REFRESH_SLACK < *expires {
                return Ok(header.clone());
            }
        }
        let iat = now.duration_since(UNIX_EPOCH).map_err(|_| "the clock is before 1970")?.as_secs();
        let claims = Claims { iss: &self.email, sub: &self.email, scope: SCOPE, iat, exp: iat + LIFETIME.as_secs() };
        let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jwt_header.kid.clone_from(&self.key_id);
        let token = jsonwebtoken::encode(&jwt_header, &claims, &self.key).map_err(|e| format!("could not sign a GCP access token: {e}"))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "the token is not a header value")?;
        header.set_sensitive(true);
        *cached = Some((header.clone(), now + LIFETIME));
        Ok(header)
    }
}
