//! `requestRedirect`: answer with a redirect built from the request and the config.

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use crate::url_rewrite::{AuthorityRewrite, PathRewrite};
use tollgate_core::filters::{request_host, Filter, FilterAction, LocalResponse, RequestCtx};

/// Registry entry for `requestRedirect`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "requestRedirect",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 80,
    build: |d| {
        build_with(d, |c: RedirectConfig| {
            let status = c.status.unwrap_or(302);
            if !(300..400).contains(&status) {
                return Err(format!("redirect status must be 3xx, got {status}"));
            }
            Ok(RequestRedirect(c))
        })
    },
};

/// The YAML block.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectConfig {
    /// `http` or `https`; default keeps the request's (`http`).
    pub scheme: Option<String>,
    /// New authority.
    pub authority: Option<AuthorityRewrite>,
    /// New path.
    pub path: Option<PathRewrite>,
    /// 3xx status (default 302).
    pub status: Option<u16>,
}

/// Answers every request with a redirect.
pub struct RequestRedirect(RedirectConfig);

#[async_trait]
impl Filter for RequestRedirect {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header();
        let host = request_host(req).to_string();
        let authority = match &self.0.authority {
            Some(a) => a.apply(&host).unwrap_or(host),
            None => host,
        };
        let path = match &self.0.path {
            Some(p) => p.apply(req.uri.path(), ctx.matched_prefix.as_deref()),
            None => req.uri.path().to_string(),
        };
        let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let scheme = self.0.scheme.as_deref().unwrap_or("http");
        let location = format!("{scheme}://{authority}{path}{query}");
        Ok(FilterAction::Respond(LocalResponse::new(self.0.status.unwrap_or(302)).header("location", location)))
    }
}
