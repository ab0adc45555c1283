//! `timeout`: bound the whole request (`requestTimeout`) and each upstream attempt
//! (`backendRequestTimeout`). A stalled upstream gets the client a 504.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::config::types::GoDuration;

/// Registry entry for `timeout`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "timeout",
    levels: Levels::ROUTE,
    order: 10,
    build: |d| build_with(d, |c: TimeoutConfig| Ok(Timeout(c))),
};

/// The YAML block.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Deadline for the whole request, response included.
    pub request_timeout: Option<GoDuration>,
    /// Deadline for one upstream attempt.
    pub backend_request_timeout: Option<GoDuration>,
}

/// Sets the request deadline and the upstream I/O timeout.
pub struct Timeout(TimeoutConfig);

impl Timeout {
    fn tightest(&self) -> Option<Duration> {
        let a = self.0.request_timeout.map(|d| d.0);
        let b = self.0.backend_request_timeout.map(|d| d.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[async_trait]
impl Filter for Timeout {
    async fn on_request(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        if let Some(limit) = self.0.request_timeout {
            ctx.set_deadline(Instant::now() + limit.0);
        }
        if let Some(limit) = self.tightest() {
            ctx.upstream.io_timeout = Some(ctx.upstream.io_timeout.map_or(limit, |t| t.min(limit)));
            ctx.upstream.connect_timeout = Some(ctx.upstream.connect_timeout.map_or(limit, |t| t.min(limit)));
        }
        Ok(FilterAction::Continue)
    }
}
