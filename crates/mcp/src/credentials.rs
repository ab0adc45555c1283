//! Keeps the client's own credentials away from MCP targets. A token the client presented to
//! the gateway is not meant for the servers behind it (the MCP authorization spec forbids
//! passing it through); credentials that the route's policies set (`backendAuth`,
//! `requestHeaderModifier`) still reach the targets.

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;

use tollgate_core::filters::registry::{FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};

/// Headers that carry the client's credentials.
/// (Names, not text: a look-up by text parses and hashes it first.)
const CREDENTIAL_HEADERS: [HeaderName; 3] = [http::header::AUTHORIZATION, http::header::PROXY_AUTHORIZATION, http::header::COOKIE];

/// Not a YAML policy: the runtime adds it, first, to every `mcp` backend's chain.
pub const SPEC: FilterSpec = FilterSpec {
    name: "mcpClientCredentials",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 1,
    build: |_| Err(<erased_serde::Error as serde::de::Error>::custom("`mcpClientCredentials` is not a policy")),
};

/// The credential headers as the client sent them (kept in the request's extensions).
#[derive(Debug, Clone, Default)]
pub struct ClientSent(pub Vec<(HeaderName, HeaderValue)>);

/// Notes the client's credential headers before any policy runs.
pub struct ClientCredentials;

#[async_trait]
impl Filter for ClientCredentials {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header();
        let sent = CREDENTIAL_HEADERS
            .iter()
            .flat_map(|n| req.headers.get_all(n).iter().map(|v| (n.clone(), v.clone())))
            .collect::<Vec<_>>();
        if !sent.is_empty() {
            ctx.extensions.insert(ClientSent(sent));
        }
        Ok(FilterAction::Continue)
    }
}

/// Removes the client's credentials that no policy replaced.
pub fn strip_client_credentials(req: &mut RequestHeader, ctx: &RequestCtx) {
    let Some(ClientSent(sent)) = ctx.extensions.get::<ClientSent>() else { return };
    let forwarded = ctx.extensions.get::<tollgate_core::filters::backend_auth::ForwardsCallerToken>().is_some();
    for name in &CREDENTIAL_HEADERS {
        if forwarded && name == http::header::AUTHORIZATION {
            continue; // `backendAuth.passthrough` forwards the verified token on purpose
        }
        let theirs: Vec<&HeaderValue> = sent.iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect();
        if theirs.is_empty() {
            continue;
        }
        let kept: Vec<HeaderValue> = req.headers.get_all(name).iter().filter(|v| !theirs.contains(v)).cloned().collect();
        req.remove_header(name);
        for v in kept {
            let _ = req.append_header(name.clone(), v);
        }
    }
}
