//! `mcpAuthorization`: which tools, prompts and resources of an MCP route a request may see
//! and use. Each rule is a CEL expression over `mcp.tool` / `mcp.prompt` / `mcp.resource`
//! (`name` or `uri`, and `target`) and `request` (`method`, `path`, `headers`); an item is
//! allowed when any rule is true. Lists leave out what is not allowed, and a call to it is
//! answered as if it did not exist.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::telemetry::cel::{with_evaluator, Expression};

/// Registry entry for `mcpAuthorization`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "mcpAuthorization",
    levels: Levels::ROUTE_AND_BACKEND,
    // Before header modifiers and backendAuth: rules see the client's headers.
    order: 12,
    build: |d| build_with(d, |c: McpAuthorizationConfig| Ok(McpAuthorization(Arc::new(c.rules)))),
};

/// The YAML block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthorizationConfig {
    /// CEL rules; any true rule allows the item.
    pub rules: Vec<Expression>,
}

/// Hands the route's rules and the request's variables to the MCP gateway.
pub struct McpAuthorization(Arc<Vec<Expression>>);

/// The rules as they apply to one request (kept in the request's extensions for the MCP
/// gateway, which asks per item).
#[derive(Clone)]
pub struct McpAccess {
    rules: Arc<Vec<Expression>>,
    request: Arc<Json>,
}

impl std::fmt::Debug for McpAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "McpAccess({} rules)", self.rules.len())
    }
}

impl McpAccess {
    /// Whether the request may see and use `kind` (`tool`, `prompt`, `resource`) `name`
    /// (a URI for resources) of `target`.
    pub fn allows(&self, kind: &str, name: &str, target: &str) -> bool {
        let key = if kind == "resource" { "uri" } else { "name" };
        let mut item = Map::new();
        item.insert(kind.to_string(), json!({key: name, "target": target}));
        let to_cel = tollgate_core::telemetry::cel::json_to_cel;
        with_evaluator(
            |scope| {
                scope.add_variable_from_value("mcp", to_cel(Json::Object(item)));
                scope.add_variable_from_value("request", to_cel((*self.request).clone()));
            },
            |ev| self.rules.iter().any(|r| matches!(ev.eval(r), Some(::cel::Value::Bool(true)))),
        )
    }
}

#[async_trait]
impl Filter for McpAuthorization {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header();
        let mut headers = Map::new();
        for (name, value) in req.headers.iter() {
            headers.insert(name.as_str().to_string(), Json::String(String::from_utf8_lossy(value.as_bytes()).into_owned()));
        }
        let request = json!({"method": req.method.as_str(), "path": req.uri.path(), "headers": headers});
        ctx.extensions.insert(McpAccess { rules: self.0.clone(), request: Arc::new(request) });
        Ok(FilterAction::Continue)
    }
}
