//! `requestHeaderModifier` / `responseHeaderModifier`: add, set or remove headers.

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, RequestCtx};
use tollgate_core::config::schema::HeaderMapConfig;

/// Registry entry for `requestHeaderModifier`.
pub const REQUEST_SPEC: FilterSpec = FilterSpec {
    name: "requestHeaderModifier",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 60,
    build: |d| build_with(d, |c: ModifierConfig| Ok(RequestHeaderModifier(HeaderEdits::compile(c)?))),
};

/// Registry entry for `responseHeaderModifier`.
pub const RESPONSE_SPEC: FilterSpec = FilterSpec {
    name: "responseHeaderModifier",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 120,
    build: |d| build_with(d, |c: ModifierConfig| Ok(ResponseHeaderModifier(HeaderEdits::compile(c)?))),
};

/// The YAML block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModifierConfig {
    /// Appended (kept alongside existing values).
    #[serde(default)]
    pub add: HeaderMapConfig,
    /// Replace existing values.
    #[serde(default)]
    pub set: HeaderMapConfig,
    /// Removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Validated header edits.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    add: Vec<(HeaderName, HeaderValue)>,
    set: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))?;
    let v = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))?;
    Ok((n, v))
}

impl HeaderEdits {
    /// Validates names and values once, at load.
    pub fn compile(c: ModifierConfig) -> Result<Self, String> {
        let pairs = |m: &HeaderMapConfig| m.iter().map(|(k, v)| header_pair(k, v)).collect::<Result<Vec<_>, _>>();
        let remove = c
            .remove
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name `{n}`")))
            .collect::<Result<_, _>>()?;
        Ok(HeaderEdits { add: pairs(&c.add)?, set: pairs(&c.set)?, remove })
    }
}

/// Edits the request before it goes upstream.
pub struct RequestHeaderModifier(HeaderEdits);

#[async_trait]
impl Filter for RequestHeaderModifier {
    async fn on_request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<FilterAction> {
        apply_to_request(&self.0, session.req_header_mut())?;
        Ok(FilterAction::Continue)
    }
}

/// Applies edits through `RequestHeader`'s own API so its header-name case map stays in sync.
fn apply_to_request(edits: &HeaderEdits, req: &mut RequestHeader) -> Result<()> {
    for (n, v) in &edits.set {
        req.insert_header(n.clone(), v.clone())?;
    }
    for (n, v) in &edits.add {
        req.append_header(n.clone(), v.clone())?;
    }
    for n in &edits.remove {
        req.remove_header(n);
    }
    Ok(())
}

/// Edits the response before it goes to the client.
pub struct ResponseHeaderModifier(HeaderEdits);

#[async_trait]
impl Filter for ResponseHeaderModifier {
    fn on_response(&self, resp: &mut ResponseHeader, _ctx: &mut RequestCtx) -> Result<()> {
        for (n, v) in &self.0.set {
            resp.insert_header(n.clone(), v.clone())?;
        }
        for (n, v) in &self.0.add {
            resp.append_header(n.clone(), v.clone())?;
        }
        for n in &self.0.remove {
            resp.remove_header(n);
        }
        Ok(())
    }
}
