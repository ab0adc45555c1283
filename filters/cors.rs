//! `cors`: answer preflight requests locally and add CORS headers to real responses.

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;

use tollgate_core::filters::registry::{build_with, FilterSpec, Levels};
use tollgate_core::filters::{Filter, FilterAction, LocalResponse, RequestCtx};

/// Registry entry for `cors`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "cors",
    levels: Levels::LISTENER_AND_ROUTE,
    order: 20,
    build: |d| build_with(d, |c: CorsConfig| Ok(Cors::compile(c))),
};

/// The YAML block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsConfig {
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Headers a browser may send.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Methods a browser may use.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Origins allowed: `*`, exact origins, or `https://*.example.com`.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Response headers a browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight (`10m` or seconds).
    pub max_age: Option<MaxAge>,
}

/// `maxAge` as a Go duration or a number of seconds.
#[derive(Debug, Clone, Copy)]
pub struct MaxAge(pub u64);

impl<'de> Deserialize<'de> for MaxAge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Secs(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Secs(s) => Ok(MaxAge(s)),
            Either::Text(t) => tollgate_core::config::types::parse_go_duration(&t)
                .map(|d| MaxAge(d.as_secs()))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Compiled CORS policy.
pub struct Cors {
    config: CorsConfig,
    any_origin: bool,
    allow_headers: String,
    allow_methods: String,
    expose_headers: String,
}

impl Cors {
    fn compile(config: CorsConfig) -> Self {
        let any_origin = config.allow_origins.iter().any(|o| o == "*");
        Cors {
            any_origin,
            allow_headers: config.allow_headers.join(","),
            allow_methods: config.allow_methods.join(","),
            expose_headers: config.expose_headers.join(","),
            config,
        }
    }

    /// The value for `Access-Control-Allow-Origin`, if this origin is allowed.
    fn allowed_origin(&self, origin: &str) -> Option<String> {
        if self.any_origin {
            // With credentials, browsers reject `*`: echo the origin instead.
            return Some(if self.config.allow_credentials { origin.to_string() } else { "*".to_string() });
        }
        self.config
            .allow_origins
            .iter()
            .any(|allowed| origin_matches(allowed, origin))
            .then(|| origin.to_string())
    }
}

/// `https://*.example.com` matches any subdomain; otherwise exact (case-insensitive).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once("*.") {
        Some((scheme, domain)) => {
            origin.starts_with(scheme) && origin[scheme.len()..].ends_with(&format!(".{domain}"))
        }
        None => pattern.eq_ignore_ascii_case(origin),
    }
}

/// Remembers the request's allowed origin for the response hook.
#[derive(Clone)]
struct AllowedOrigin(String);

#[async_trait]
impl Filter for Cors {
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        let req = session.req_header();
        let Some(origin) = req.headers.get("origin").and_then(|v| v.to_str().ok()) else {
            return Ok(FilterAction::Continue);
        };
        let allowed = self.allowed_origin(origin);
        let preflight =
            req.method == http::Method::OPTIONS && req.headers.contains_key("access-control-request-method");
        if !preflight {
            if let Some(a) = allowed {
                ctx.extensions.insert(AllowedOrigin(a));
            }
            return Ok(FilterAction::Continue);
        }
        let mut resp = LocalResponse::new(200);
        if let Some(a) = allowed {
            resp = resp.header("access-control-allow-origin", a);
            if self.config.allow_credentials {
                resp = resp.header("access-control-allow-credentials", "true");
            }
            if !self.allow_methods.is_empty() {
                resp = resp.header("access-control-allow-methods", self.allow_methods.clone());
            }
            if !self.allow_headers.is_empty() {
                resp = resp.header("access-control-allow-headers", self.allow_headers.clone());
            }
            if let Some(MaxAge(secs)) = self.config.max_age {
                resp = resp.header("access-control-max-age", secs.to_string());
            }
        }
        Ok(FilterAction::Respond(resp))
    }

    fn on_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        let Some(AllowedOrigin(origin)) = ctx.extensions.get::<AllowedOrigin>().cloned() else {
            return Ok(());
        };
        resp.insert_header("access-control-allow-origin", origin)?;
        if self.config.allow_credentials {
            resp.insert_header("access-control-allow-credentials", "true")?;
        }
        if !self.expose_headers.is_empty() {
            resp.insert_header("access-control-expose-headers", self.expose_headers.clone())?;
        }
        if !self.any_origin || self.config.allow_credentials {
            resp.append_header("vary", "Origin")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_matches("https://*.example.com", "https://a.example.com"));
        assert!(!origin_matches("https://*.example.com", "https://example.com"));
        assert!(!origin_matches("https://*.example.com", "http://a.example.com"));
        assert!(origin_matches("https://A.com", "https://a.com"));
    }
}
