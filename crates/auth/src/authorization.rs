//! `authorization`: CEL rules over the request and its principals (`request`, `source`,
//! `jwt`, `apiKey`, `basicAuth`, `extauthz`) deciding whether it may proceed; a denied request
//! gets a 403 in the caller's API format. Written at listener, route or backend level; unlike
//! other policies the levels' rules merge (agentgateway evaluates every level's rules together).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::errors::json_error;
use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::rules::RuleSet;
use tollgate_core::telemetry::request_vars::RequestScope;

/// Registry entry for `authorization`: after authentication (jwtAuth, basicAuth, apiKey,
/// extAuthz), before rate limits, as agentgateway orders them.
pub const SPEC: FilterSpec = FilterSpec {
    name: "authorization",
    levels: Levels::ALL,
    order: 36,
    build: |d| build_with(d, |c: AuthorizationConfig| Ok(Authorization::new(c.rules))),
};

/// The YAML block (agentgateway's `RuleSet`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// The rules.
    pub rules: RuleSet,
}

/// The compiled policy.
#[derive(Debug)]
pub struct Authorization {
    rules: RuleSet,
    scope: RequestScope,
}

impl Authorization {
    fn new(rules: RuleSet) -> Authorization {
        let scope = RequestScope::of(rules.expressions());
        Authorization { rules, scope }
    }
}

#[async_trait]
impl Filter for Authorization {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        if self.rules.is_empty() {
            return Ok(FilterAction::Continue);
        }
        let source = session.client_addr().and_then(|a| a.as_inet()).copied();
        let allowed = self.scope.eval(session.req_header(), source, ctx, |ev| self.rules.allows(ev));
        if allowed {
            return Ok(FilterAction::Continue);
        }
        tracing::info!(
            target: "tollgate",
            route = ctx.route.as_ref().map_or("", |r| r.name.as_str()),
            principal = %principal(ctx),
            "authorization denied the request"
        );
        Ok(FilterAction::Respond(json_error(ctx.error_format, 403, "permission_error", "authorization failed")))
    }

    fn merge_over(&self, general: &dyn Filter) -> Option<Arc<dyn Filter>> {
        let general = (general as &dyn std::any::Any).downcast_ref::<Authorization>()?;
        Some(Arc::new(Authorization::new(self.rules.merged_with(&general.rules))))
    }
}

/// Who the request is from, for the decision log (never a credential).
pub fn principal(ctx: &RequestCtx) -> String {
    if let Some(sub) = ctx.jwt.as_ref().and_then(|j| j.subject()) {
        return format!("jwt.sub={sub}");
    }
    if let Some(user) = &ctx.basic_auth_user {
        return format!("basicAuth.username={user}");
    }
    if let Some(k) = &ctx.api_key {
        return format!("apiKey.id={}", k.id);
    }
    "anonymous".into()
}
