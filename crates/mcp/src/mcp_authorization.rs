//! `mcpAuthorization`: which tools, prompts and resources of an MCP route a request may see
//! and use. Rules are CEL over `mcp.tool` / `mcp.prompt` / `mcp.resource` (`name` — a
//! resource's URI, also as `uri` — and `target`), `request` (`method`, `path`, `headers`),
//! `source` and the principals (`jwt`, `apiKey`, `basicAuth`, `extauthz`), decided as
//! `authorization` decides (deny wins, every require must hold, then any allow; the route's
//! and backend's rules merge). Lists leave out what is not allowed, and a call to it is
//! answered as if it did not exist.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::rules::RuleSet;
use tollgate_core::telemetry::cel::uses::Uses;
use tollgate_core::telemetry::cel::with_evaluator;

/// Registry entry for `mcpAuthorization`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "mcpAuthorization",
    levels: Levels::ROUTE_AND_BACKEND,
    // After authentication (rules read `jwt.*`, `apiKey.*`), before header modifiers and
    // backendAuth (rules see the client's headers).
    order: 37,
    build: |d| build_with(d, |c: McpAuthorizationConfig| Ok(McpAuthorization::new(c.rules))),
};

/// The YAML block (agentgateway's `RuleSet`: plain CEL strings are allow rules; `{allow}`,
/// `{deny}`, `{require}` objects as in `authorization`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthorizationConfig {
    /// The rules.
    pub rules: RuleSet,
}

/// Hands the route's rules and the request's variables to the MCP gateway.
pub struct McpAuthorization {
    rules: Arc<RuleSet>,
    uses: Uses,
}

impl McpAuthorization {
    fn new(rules: RuleSet) -> McpAuthorization {
        let uses = Uses::of(rules.expressions());
        McpAuthorization { rules: Arc::new(rules), uses }
    }
}

/// The rules as they apply to one request (kept in the request's extensions for the MCP
/// gateway, which asks per item), with the request's variables the rules read.
#[derive(Clone)]
pub struct McpAccess {
    rules: Arc<RuleSet>,
    vars: Arc<Vec<(&'static str, ::cel::Value)>>,
}

impl std::fmt::Debug for McpAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "McpAccess({} rules)", self.rules.expressions().count())
    }
}

impl McpAccess {
    /// Whether the request may see and use `kind` (`tool`, `prompt`, `resource`) `name`
    /// (a URI for resources) of `target`.
    pub fn allows(&self, kind: &str, name: &str, target: &str) -> bool {
        let mut item = Map::new();
        // agentgateway names a resource's URI `name`; `uri` is kept for tollgate's earlier rules.
        let mut fields = json!({"name": name, "target": target});
        if kind == "resource" {
            fields["uri"] = json!(name);
        }
        item.insert(kind.to_string(), fields);
        let to_cel = tollgate_core::telemetry::cel::json_to_cel;
        with_evaluator(
            |scope| {
                scope.add_variable_from_value("mcp", to_cel(Json::Object(item)));
                for (name, value) in self.vars.iter() {
                    scope.add_variable_from_value(*name, value.clone());
                }
            },
            |ev| self.rules.allows(ev),
        )
    }
}

#[async_trait]
impl Filter for McpAuthorization {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let to_cel = tollgate_core::telemetry::cel::json_to_cel;
        let mut vars = Vec::new();
        for name in ["request", "source", "jwt", "apiKey", "basicAuth", "extauthz"] {
            if self.uses.var(name).is_none() {
                continue;
            }
            let value = match name {
                "request" => to_cel(request_json(session.req_header())),
                "source" => match session.client_addr().and_then(|a| a.as_inet()) {
                    Some(a) => to_cel(json!({"address": a.ip().to_canonical().to_string(), "port": a.port()})),
                    None => continue,
                },
                principal => match tollgate_core::telemetry::vars::principal(ctx, principal) {
                    Some(v) => v,
                    None => continue,
                },
            };
            vars.push((name, value));
        }
        ctx.extensions.insert(McpAccess { rules: self.rules.clone(), vars: Arc::new(vars) });
        Ok(FilterAction::Continue)
    }

    fn merge_over(&self, general: &dyn Filter) -> Option<Arc<dyn Filter>> {
        let general = (general as &dyn std::any::Any).downcast_ref::<McpAuthorization>()?;
        Some(Arc::new(McpAuthorization::new(self.rules.merged_with(&general.rules))))
    }
}

/// `request.*` as `authorization` sees it (repeated headers joined with `,`).
fn request_json(req: &pingora::http::RequestHeader) -> Json {
    let mut headers = Map::new();
    for (name, value) in req.headers.iter() {
        let v = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(Json::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Json::String(v.into_owned()));
            }
        }
    }
    json!({
        "method": req.method.as_str(),
        "uri": req.uri.to_string(),
        "path": req.uri.path(),
        "pathAndQuery": req.uri.path_and_query().map_or("/", |p| p.as_str()),
        "host": tollgate_core::filters::request_host(req),
        "headers": headers,
    })
}
