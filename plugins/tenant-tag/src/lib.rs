//! Example plugin, `tenantTag`: maps a credential header to a tenant name, tells the upstream
//! (and the client) which tenant a request belongs to, and optionally rejects unknown callers.
//! It is built like every built-in filter: a config struct, a `Filter` impl, a `FilterSpec`.
//!
//! ```yaml
//! policies:
//!   tenantTag:
//!     header: x-api-key          # where the caller's key is (default: authorization)
//!     tenants:                   # key -> tenant
//!       "Bearer team-a-key": team-a
//!     tagHeader: x-tenant        # header added upstream and to the response (default x-tenant)
//!     required: true             # unknown or missing key -> 403 (default false: untagged)
//! ```

use std::collections::HashMap;

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::errors::json_error;

/// Registry entry for `tenantTag` (behind the `plugin-tenant-tag` Cargo feature).
pub const SPEC: FilterSpec = FilterSpec {
    name: "tenantTag",
    levels: Levels::ROUTE_AND_BACKEND,
    // After CORS (20) so preflights stay unauthenticated; before header modifiers (60).
    order: 50,
    build: |d| build_with(d, TenantTag::compile),
};

/// The YAML block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantTagConfig {
    /// Request header holding the caller's key.
    #[serde(default = "default_header")]
    pub header: String,
    /// Key → tenant name.
    pub tenants: HashMap<String, String>,
    /// Header carrying the tenant name upstream and back to the client.
    #[serde(default = "default_tag_header")]
    pub tag_header: String,
    /// Reject callers whose key is unknown or missing.
    #[serde(default)]
    pub required: bool,
}

fn default_header() -> String {
    "authorization".into()
}

fn default_tag_header() -> String {
    "x-tenant".into()
}

/// The compiled plugin.
pub struct TenantTag {
    header: HeaderName,
    tag_header: HeaderName,
    tenants: HashMap<String, HeaderValue>,
    required: bool,
}

/// The tenant of the current request, for the response hook (and for other filters).
#[derive(Debug, Clone)]
pub struct Tenant(pub HeaderValue);

impl TenantTag {
    fn compile(c: TenantTagConfig) -> std::result::Result<Self, String> {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name `{n}`"));
        if c.tenants.is_empty() {
            return Err("`tenants` must name at least one key".into());
        }
        let tenants = c
            .tenants
            .into_iter()
            .map(|(k, t)| HeaderValue::from_str(&t).map(|v| (k, v)).map_err(|_| format!("invalid tenant name `{t}`")))
            .collect::<std::result::Result<_, _>>()?;
        Ok(TenantTag { header: name(&c.header)?, tag_header: name(&c.tag_header)?, tenants, required: c.required })
    }
}

#[async_trait]
impl Filter for TenantTag {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header_mut();
        let tenant = req.headers.get(&self.header).and_then(|v| v.to_str().ok()).and_then(|k| self.tenants.get(k)).cloned();
        // Never let a client choose its own tenant.
        req.remove_header(&self.tag_header);
        match tenant {
            Some(t) => {
                req.insert_header(self.tag_header.clone(), t.clone())?;
                ctx.extensions.insert(Tenant(t));
                Ok(FilterAction::Continue)
            }
            None if self.required => {
                Ok(FilterAction::Respond(json_error(ctx.error_format, 403, "permission_denied", "unknown tenant")))
            }
            None => Ok(FilterAction::Continue),
        }
    }

    fn on_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        if let Some(Tenant(t)) = ctx.extensions.get::<Tenant>() {
            resp.insert_header(self.tag_header.clone(), t.clone())?;
        }
        Ok(())
    }
}
