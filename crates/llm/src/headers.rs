//! Provider-specific request headers: where a provider reads its key, Anthropic's version
//! header, Bedrock's SigV4 signature.

use pingora::http::RequestHeader;
use pingora::Result;

use tollgate_core::filters::RequestCtx;
use tollgate_core::runtime::BackendTarget;

use crate::{bedrock, failover, CompletionState};

/// Moves a `backendAuth` key (`Authorization: Bearer …`) to the header a provider reads it
/// from (`x-api-key`, `x-goog-api-key`).
pub(crate) fn bearer_to_header(req: &mut RequestHeader, header: &'static str) -> Result<()> {
    let bearer = req.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_string);
    if let Some(key) = bearer {
        let mut value = http::HeaderValue::from_str(&key).map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "provider key", e))?;
        value.set_sensitive(true);
        req.remove_header(&http::header::AUTHORIZATION);
        req.insert_header(header, value)?;
    }
    Ok(())
}

/// A Bedrock call carries only AWS's credential: the client's keys go, and the request is
/// signed (SigV4) with the backend's keys over the body about to be sent.
pub(crate) fn bedrock_headers(req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    for name in ["authorization", "x-api-key", "x-goog-api-key", "anthropic-version", "anthropic-beta"] {
        req.remove_header(name);
    }
    let Some(keys) = ctx.extensions.get::<std::sync::Arc<tollgate_core::filters::backend_auth::AwsKeys>>().cloned() else {
        // No credential: an overridden host is the user's to authenticate (as agentgateway).
        return Ok(());
    };
    let Some(body) = ctx.extensions.get::<CompletionState>().and_then(|s| s.prepared.clone()) else {
        return Err(pingora::Error::explain(pingora::ErrorType::InternalError, "a bedrock request is signed over a body read before the call"));
    };
    let host = if ctx.upstream.port == 443 { ctx.upstream.host.clone() } else { format!("{}:{}", ctx.upstream.host, ctx.upstream.port) };
    let region = ctx.backend.as_ref().and_then(|b| match &b.target {
        BackendTarget::Ai(ai) => ai.bedrock_region.clone(),
        _ => None,
    });
    let region = region.or_else(|| ctx.extensions.get::<failover::Failover>().and_then(|f| f.current_bedrock_region())).unwrap_or_else(|| "us-east-1".into());
    bedrock::sign::sign_request(req, &keys, &region, &host, &body).map_err(|e| pingora::Error::explain(pingora::ErrorType::InternalError, e))
}

/// Anthropic's API takes its key as `x-api-key` (`backendAuth` sets `Authorization:
/// Bearer`) and wants `anthropic-version`.
pub(crate) fn anthropic_headers(req: &mut RequestHeader) -> Result<()> {
    bearer_to_header(req, "x-api-key")?;
    if !req.headers.contains_key("anthropic-version") {
        req.insert_header("anthropic-version", "2023-06-01")?;
    }
    Ok(())
}
