//! Where a credential is read from (agentgateway's `AuthorizationLocation`): a header with an
//! optional prefix (default `Authorization: Bearer …`), a query parameter, a cookie, or a CEL
//! expression. Once accepted, the credential is removed so it never reaches the upstream.

use pingora::http::RequestHeader;
use serde::Deserialize;
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::request_vars::{value_text, RequestScope};
use tollgate_core::filters::RequestCtx;

/// `location:` as written: exactly one of `header`, `queryParameter`, `cookie`, `expression`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawLocation")]
pub enum LocationConfig {
    /// `header: {name, prefix}`.
    Header {
        /// Header name.
        name: String,
        /// Text before the credential (`Bearer `), matched case-insensitively.
        prefix: Option<String>,
    },
    /// `queryParameter: {name}`.
    QueryParameter {
        /// Parameter name.
        name: String,
    },
    /// `cookie: {name}`.
    Cookie {
        /// Cookie name.
        name: String,
    },
    /// `expression: <CEL>`: returns the credential; it cannot be removed.
    Expression(Expression),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLocation {
    header: Option<HeaderLocation>,
    query_parameter: Option<Named>,
    cookie: Option<Named>,
    expression: Option<Expression>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLocation {
    name: String,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
}

impl TryFrom<RawLocation> for LocationConfig {
    type Error = String;

    fn try_from(raw: RawLocation) -> Result<Self, String> {
        let mut found = Vec::new();
        if let Some(h) = raw.header {
            found.push(LocationConfig::Header { name: h.name, prefix: h.prefix });
        }
        if let Some(q) = raw.query_parameter {
            found.push(LocationConfig::QueryParameter { name: q.name });
        }
        if let Some(c) = raw.cookie {
            found.push(LocationConfig::Cookie { name: c.name });
        }
        if let Some(e) = raw.expression {
            found.push(LocationConfig::Expression(e));
        }
        match (found.pop(), found.is_empty()) {
            (Some(one), true) => Ok(one),
            _ => Err("set exactly one of `header`, `queryParameter`, `cookie`, `expression`".into()),
        }
    }
}

impl Default for LocationConfig {
    fn default() -> Self {
        LocationConfig::Header { name: "authorization".into(), prefix: Some("Bearer ".into()) }
    }
}

/// A compiled location.
#[derive(Debug)]
pub struct Location {
    config: LocationConfig,
    header: Option<http::HeaderName>,
    scope: RequestScope,
}

impl Location {
    /// Checks the names once.
    pub fn compile(config: LocationConfig) -> Result<Location, String> {
        let header = match &config {
            LocationConfig::Header { name, .. } => {
                Some(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("location.header.name: `{name}` is not a header name"))?)
            }
            _ => None,
        };
        let scope = match &config {
            LocationConfig::Expression(e) => RequestScope::of([e]),
            _ => RequestScope::default(),
        };
        Ok(Location { config, header, scope })
    }

    /// The credential the request carries here, if any (an empty one counts as none).
    pub fn extract(&self, req: &RequestHeader, ctx: &RequestCtx) -> Option<String> {
        let found = match &self.config {
            LocationConfig::Header { prefix, .. } => {
                let value = req.headers.get(self.header.as_ref()?)?.to_str().ok()?.trim();
                match prefix.as_deref().filter(|p| !p.is_empty()) {
                    None => Some(value.to_string()),
                    Some(p) => {
                        let p = p.trim_end();
                        let head = value.get(..p.len())?;
                        head.eq_ignore_ascii_case(p).then(|| value[p.len()..].trim().to_string())
                    }
                }
            }
            LocationConfig::QueryParameter { name } => {
                let query = req.uri.query()?;
                query.split('&').filter_map(|pair| pair.split_once('=').or(Some((pair, "")))).find_map(|(k, v)| {
                    (percent_decode(k).as_deref() == Some(name.as_str())).then(|| percent_decode(v)).flatten()
                })
            }
            LocationConfig::Cookie { name } => req
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim_matches('"').to_string()),
            LocationConfig::Expression(e) => self.scope.eval(req, None, ctx, |ev| ev.eval(e).and_then(value_text)),
        };
        found.filter(|s| !s.is_empty())
    }

    /// Removes the credential from the request (header, parameter or cookie).
    pub fn remove(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        match &self.config {
            LocationConfig::Header { .. } => {
                if let Some(h) = &self.header {
                    req.remove_header(h);
                }
            }
            LocationConfig::QueryParameter { name } => {
                let Some(query) = req.uri.query() else { return Ok(()) };
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| percent_decode(pair.split_once('=').map_or(*pair, |(k, _)| k)).as_deref() != Some(name.as_str()))
                    .collect();
                let path = req.uri.path().to_string();
                let pq = if kept.is_empty() { path } else { format!("{path}?{}", kept.join("&")) };
                tollgate_core::filters::set_path_and_query(req, pq)?;
            }
            LocationConfig::Cookie { name } => {
                let kept: Vec<String> = req
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty() && c.split_once('=').map_or(*c, |(k, _)| k) != name)
                    .map(str::to_string)
                    .collect();
                req.remove_header(&http::header::COOKIE);
                if !kept.is_empty() {
                    req.insert_header(http::header::COOKIE, kept.join("; "))?;
                }
            }
            LocationConfig::Expression(_) => {}
        }
        Ok(())
    }
}

/// `%XX` and `+` decoding of a query component; `None` when it is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    String::from_utf8(tollgate_core::router::query_decode_bytes(s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn header_prefix_query_and_cookie_are_read_and_removed() {
        let ctx = RequestCtx::default();
        let bearer = Location::compile(LocationConfig::default()).unwrap();
        let mut r = req("/x", &[("authorization", "bearer  sk-1 ")]);
        assert_eq!(bearer.extract(&r, &ctx).as_deref(), Some("sk-1"));
        bearer.remove(&mut r).unwrap();
        assert!(r.headers.get("authorization").is_none());
        assert_eq!(bearer.extract(&req("/x", &[("authorization", "Basic abc")]), &ctx), None);

        let query = Location::compile(LocationConfig::QueryParameter { name: "key".into() }).unwrap();
        let mut r = req("/x?a=1&key=s%2Bk&b=2", &[]);
        assert_eq!(query.extract(&r, &ctx).as_deref(), Some("s+k"));
        query.remove(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/x?a=1&b=2");

        let cookie = Location::compile(LocationConfig::Cookie { name: "k".into() }).unwrap();
        let mut r = req("/x", &[("cookie", "a=1; k=sek; b=2")]);
        assert_eq!(cookie.extract(&r, &ctx).as_deref(), Some("sek"));
        cookie.remove(&mut r).unwrap();
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
        assert_eq!(percent_decode("%zz%4"), Some("%zz%4".into()));
    }
}
