//! `urlRewrite`: rewrite the authority (Host) and/or path sent upstream.

use async_trait::async_trait;
use pingora::proxy::Session;
use pingora::Result;
use serde::de;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{request_host, set_request_path, Filter, FilterAction, RequestCtx};

/// Registry entry for `urlRewrite`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "urlRewrite",
    levels: Levels::ROUTE,
    order: 70,
    build: |d| build_with(d, |c: UrlRewriteConfig| Ok(UrlRewrite(c))),
};

/// The YAML block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewriteConfig {
    /// New authority.
    pub authority: Option<AuthorityRewrite>,
    /// New path.
    pub path: Option<PathRewrite>,
}

/// `{full}`, `{host}`, `{port}`, `"auto"` or `"none"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityRewrite {
    /// Replace host and port.
    Full(String),
    /// Replace the host, keep the port.
    Host(String),
    /// Replace the port, keep the host.
    Port(u16),
    /// Use the backend's host (the default for `auto`; tollgate already sends the client's Host).
    Auto,
    /// Leave as is.
    None,
}

impl<'de> Deserialize<'de> for AuthorityRewrite {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = AuthorityRewrite;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("{full}, {host}, {port}, \"auto\" or \"none\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthorityRewrite, E> {
                match v {
                    "auto" => Ok(AuthorityRewrite::Auto),
                    "none" => Ok(AuthorityRewrite::None),
                    other => Err(E::unknown_variant(other, &["auto", "none"])),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<AuthorityRewrite, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<AuthorityKey>()? {
                    let value = match key {
                        AuthorityKey::Full => AuthorityRewrite::Full(map.next_value()?),
                        AuthorityKey::Host => AuthorityRewrite::Host(map.next_value()?),
                        AuthorityKey::Port => AuthorityRewrite::Port(map.next_value()?),
                    };
                    if out.replace(value).is_some() {
                        return Err(de::Error::custom("authority needs exactly one of full, host, port"));
                    }
                }
                out.ok_or_else(|| de::Error::custom("authority needs one of full, host, port"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum AuthorityKey {
    Full,
    Host,
    Port,
}

/// `{full}` or `{prefix}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replace the whole path (the query is kept).
    Full(String),
    /// Replace the prefix the route matched.
    Prefix(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathRaw {
    full: Option<String>,
    prefix: Option<String>,
}

impl<'de> Deserialize<'de> for PathRewrite {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match PathRaw::deserialize(d)? {
            PathRaw { full: Some(f), prefix: None } => Ok(PathRewrite::Full(f)),
            PathRaw { full: None, prefix: Some(p) } => Ok(PathRewrite::Prefix(p)),
            _ => Err(de::Error::custom("path needs exactly one of full, prefix")),
        }
    }
}

impl AuthorityRewrite {
    /// The new authority given the current one (`host[:port]`), or `None` to keep it.
    pub fn apply(&self, current: &str) -> Option<String> {
        let (host, port) = split_authority(current);
        match self {
            AuthorityRewrite::Full(f) => Some(f.clone()),
            AuthorityRewrite::Host(h) => Some(match port {
                Some(p) => format!("{h}:{p}"),
                None => h.clone(),
            }),
            AuthorityRewrite::Port(p) => Some(format!("{host}:{p}")),
            AuthorityRewrite::Auto | AuthorityRewrite::None => None,
        }
    }
}

/// Splits `host[:port]`, keeping IPv6 brackets on the host.
pub fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find("]:") {
            Some(i) => (&authority[..=i], Some(&authority[i + 2..])),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    }
}

impl PathRewrite {
    /// The new path for `path`, given the prefix the route matched.
    pub fn apply(&self, path: &str, matched_prefix: Option<&str>) -> String {
        match self {
            PathRewrite::Full(f) => f.clone(),
            PathRewrite::Prefix(new) => {
                let old = matched_prefix.unwrap_or("/").trim_end_matches('/');
                let rest = path.strip_prefix(old).unwrap_or(path).trim_start_matches('/');
                let base = new.trim_end_matches('/');
                match (base.is_empty(), rest.is_empty()) {
                    (true, true) => "/".to_string(),
                    (false, true) => base.to_string(),
                    (true, false) => format!("/{rest}"),
                    (false, false) => format!("{base}/{rest}"),
                }
            }
        }
    }
}

/// Rewrites the request in place.
pub struct UrlRewrite(UrlRewriteConfig);

#[async_trait]
impl Filter for UrlRewrite {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header_mut();
        if let Some(auth) = &self.0.authority {
            if let Some(new) = auth.apply(request_host(req)) {
                req.insert_header(http::header::HOST, new)?;
            }
        }
        if let Some(path) = &self.0.path {
            let new_path = path.apply(req.uri.path(), ctx.matched_prefix.as_deref());
            set_request_path(req, &new_path)?;
        }
        Ok(FilterAction::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_rewrites() {
        assert_eq!(AuthorityRewrite::Full("a.com".into()).apply("x:1"), Some("a.com".into()));
        assert_eq!(AuthorityRewrite::Host("a.com".into()).apply("x:1"), Some("a.com:1".into()));
        assert_eq!(AuthorityRewrite::Port(9).apply("x:1"), Some("x:9".into()));
        assert_eq!(AuthorityRewrite::Port(9).apply("[::1]:1"), Some("[::1]:9".into()));
        assert_eq!(AuthorityRewrite::None.apply("x"), None);
    }

    #[test]
    fn path_rewrites() {
        let p = PathRewrite::Prefix("/new".into());
        assert_eq!(p.apply("/old/a/b", Some("/old")), "/new/a/b");
        assert_eq!(p.apply("/old", Some("/old")), "/new");
        assert_eq!(PathRewrite::Prefix("/".into()).apply("/old/a", Some("/old/")), "/a");
        assert_eq!(PathRewrite::Full("/x".into()).apply("/old/a", Some("/old")), "/x");
    }
}
