//! `directResponse`: answer with a fixed status and body; nothing goes upstream.

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, LocalResponse, RequestCtx};
use tollgate_core::config::types::Unsupported;

/// Registry entry for `directResponse`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "directResponse",
    levels: Levels::ROUTE,
    order: 90,
    build: |d| {
        build_with(d, |c: DirectResponseConfig| {
            if !(100..1000).contains(&c.status) {
                return Err(format!("invalid status {}", c.status));
            }
            Ok(DirectResponse(c))
        })
    },
};

/// The YAML block.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectResponseConfig {
    /// Response body.
    #[serde(default)]
    pub body: String,
    /// Status code.
    pub status: u16,
    /// Not supported yet (needs CEL).
    pub body_expression: Option<Unsupported>,
    /// Not supported yet (needs CEL).
    pub headers: Option<Unsupported>,
    /// Not supported yet (needs CEL).
    pub conditional: Option<Unsupported>,
}

/// Answers every request with the configured response.
pub struct DirectResponse(DirectResponseConfig);

#[async_trait]
impl Filter for DirectResponse {
    async fn on_request(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<FilterAction> {
        Ok(FilterAction::Respond(LocalResponse::new(self.0.status).body(self.0.body.clone())))
    }
}
