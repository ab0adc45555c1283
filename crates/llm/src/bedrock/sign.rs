//! AWS Signature Version 4 for a Bedrock request, once its body is final (the signature covers
//! the body's hash): `host`, `content-type`, `x-amz-date` and the session token are signed.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use pingora::http::RequestHeader;

use tollgate_core::filters::backend_auth::AwsKeys;

/// Signs `req` (its path and query, and `host`) with `body`; `region` is the provider's
/// unless the credential names one.
pub fn sign_request(req: &mut RequestHeader, keys: &AwsKeys, region: &str, host: &str, body: &[u8]) -> Result<(), String> {
    let creds = aws_credential_types::Credentials::new(keys.access_key_id.clone(), keys.secret_access_key.clone(), keys.session_token.clone(), None, "tollgate");
    let identity: Identity = creds.into();
    let region = keys.region.as_deref().unwrap_or(region);
    let service = keys.service.as_deref().unwrap_or("bedrock");
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("https://{host}{pq}");
    let content_type = req.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
    let headers = [("host", host), ("content-type", content_type.as_str())];
    let signable = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body)).map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| format!("SigV4 signing: {e}"))?.into_parts();
    let (signed, _) = instructions.into_parts();
    req.insert_header(http::header::HOST, host).map_err(|e| e.to_string())?;
    req.insert_header(http::header::CONTENT_TYPE, content_type).map_err(|e| e.to_string())?;
    for h in signed {
        let mut value = http::HeaderValue::from_str(h.value()).map_err(|e| e.to_string())?;
        value.set_sensitive(h.sensitive());
        req.insert_header(h.name(), value).map_err(|e| e.to_string())?;
    }
    Ok(())
}
