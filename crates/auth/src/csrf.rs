//! `csrf`: refuses state-changing requests a browser sends from another site, as agentgateway
//! does: `GET`, `HEAD` and `OPTIONS` pass; otherwise `Sec-Fetch-Site: same-origin | none`
//! passes, and without that header an `Origin` that is absent, `null`, the request's own
//! origin or one of `additionalOrigins` passes. Refusals are `403 CSRF validation failed`.

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::response::LocalResponse;
use tollgate_core::filters::{request_host, Filter, FilterAction, RequestCtx};

/// Registry entry for `csrf` (routes).
pub const SPEC: FilterSpec = FilterSpec {
    name: "csrf",
    levels: Levels::ROUTE,
    order: 58,
    build: |d| build_with(d, |c: CsrfConfig| Ok(Csrf { additional: c.additional_origins })),
};

/// The YAML block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsrfConfig {
    /// Other origins trusted to send state-changing requests (`https://app.example.com`).
    #[serde(default)]
    pub additional_origins: Vec<String>,
}

/// The compiled policy.
#[derive(Debug)]
pub struct Csrf {
    additional: Vec<String>,
}

impl Csrf {
    fn allows(&self, session: &Session, tls: bool) -> bool {
        let req = session.req_header();
        if matches!(req.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return true;
        }
        let text = |name: &str| req.headers.get(name).map(|v| v.to_str().ok());
        let origin = text("origin");
        let trusted = |o: Option<Option<&str>>| matches!(o, Some(Some(o)) if self.additional.iter().any(|a| a == o));
        match text("sec-fetch-site") {
            Some(Some("same-origin" | "none")) => return true,
            Some(_) => return trusted(origin),
            None => {}
        }
        match origin {
            None | Some(Some("null")) => true,
            Some(None) => false,
            Some(Some(o)) => {
                let own = format!("{}://{}", if tls { "https" } else { "http" }, request_host(req));
                o == own || trusted(Some(Some(o)))
            }
        }
    }
}

#[async_trait]
impl Filter for Csrf {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        if self.allows(session, ctx.client_tls.is_some()) {
            return Ok(FilterAction::Continue);
        }
        let mut r = LocalResponse::new(403);
        r.headers.push(("content-type".into(), "text/plain".into()));
        r.body = Bytes::from_static(b"CSRF validation failed");
        Ok(FilterAction::Respond(r))
    }
}
