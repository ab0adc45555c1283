//! The HTTP protocol: the request's method and path (or `path`'s CEL value) sent to the service
//! with the chosen headers, through the gateway's shared upstream client. A 2xx allows (and may
//! hand headers to the upstream request); any other answer goes back to the client as the
//! service gave it, or as a redirect when `redirect` is set and the service said 401 or 403.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::proxy::Session;

use tollgate_core::filters::response::LocalResponse;
use tollgate_core::filters::RequestCtx;
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::request_vars::{value_text, RequestScope};
use tollgate_core::upstream_call::{CallOpts, HttpClient, Origin, Request};

use super::{host_port, HttpConfig, Verdict, CHECK_TIMEOUT};

/// Largest service answer relayed to the client.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The HTTP check of one policy.
pub struct HttpCheck {
    origin: Origin,
    client: Arc<HttpClient>,
    path: Option<Expression>,
    redirect: Option<Expression>,
    body: Option<Expression>,
    include_response_headers: Vec<HeaderName>,
    add_request_headers: Vec<(HeaderName, Expression)>,
    include: Vec<HeaderName>,
}

/// What the CEL expressions gave for one request.
#[derive(Default)]
struct Computed {
    path: Option<String>,
    redirect: Option<String>,
    body: Option<Bytes>,
    headers: Vec<(HeaderName, HeaderValue)>,
    failed: Option<&'static str>,
}

fn header_name(n: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("`{n}` is not a header name"))
}

impl HttpCheck {
    pub(super) fn compile(host: &str, c: HttpConfig, include: Option<Vec<String>>) -> Result<HttpCheck, String> {
        let (h, port) = host_port(host)?;
        let include = include
            .unwrap_or_else(|| vec!["authorization".into()])
            .iter()
            .filter(|n| !n.starts_with(':'))
            .map(|n| header_name(n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut add: Vec<(HeaderName, Expression)> = Vec::new();
        for (n, e) in c.add_request_headers {
            add.push((header_name(&n)?, e));
        }
        add.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(HttpCheck {
            origin: Origin { host: h, port, tls: false },
            client: Arc::new(HttpClient::default()),
            path: c.path,
            redirect: c.redirect,
            body: c.body,
            include_response_headers: c.include_response_headers.iter().map(|n| header_name(n)).collect::<Result<_, _>>()?,
            add_request_headers: add,
            include,
        })
    }

    fn compute(&self, session: &Session, ctx: &RequestCtx, scope: &RequestScope) -> Computed {
        if self.path.is_none() && self.redirect.is_none() && self.body.is_none() && self.add_request_headers.is_empty() {
            return Computed::default();
        }
        let source = session.client_addr().and_then(|a| a.as_inet()).copied();
        scope.eval(session.req_header(), source, ctx, |ev| {
            let mut c = Computed::default();
            if let Some(p) = &self.path {
                match ev.eval(p) {
                    Some(::cel::Value::String(s)) if s.starts_with('/') && http::uri::PathAndQuery::try_from(s.as_str()).is_ok() => c.path = Some(s.to_string()),
                    _ => c.failed = Some("`path` did not give a valid path"),
                }
            }
            if let Some(r) = &self.redirect {
                c.redirect = ev.eval(r).and_then(value_text);
            }
            if let Some(b) = &self.body {
                c.body = match ev.eval(b) {
                    Some(::cel::Value::String(s)) => Some(Bytes::from(s.to_string())),
                    Some(::cel::Value::Bytes(b)) => Some(Bytes::from(b.to_vec())),
                    Some(other) => other.json().ok().map(|j| Bytes::from(j.to_string())),
                    None => {
                        c.failed = Some("`body` failed");
                        None
                    }
                };
            }
            for (name, e) in &self.add_request_headers {
                if let Some(v) = ev.eval(e).and_then(value_text).and_then(|t| HeaderValue::from_str(&t).ok()) {
                    c.headers.push((name.clone(), v));
                }
            }
            c
        })
    }

    pub(super) async fn check(&self, session: &mut Session, ctx: &mut RequestCtx, scope: &RequestScope) -> Verdict {
        let computed = self.compute(session, ctx, scope);
        if let Some(why) = computed.failed {
            // agentgateway refuses the request when its own expressions fail.
            tracing::warn!(target: "tollgate", reason = why, "extAuthz: an expression failed");
            return Verdict::Deny(tollgate_core::errors::json_error(ctx.error_format, 403, "permission_error", "external authorization failed"));
        }
        let req = session.req_header();
        let mut headers = HeaderMap::new();
        for name in &self.include {
            for v in req.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        for (name, v) in computed.headers {
            headers.insert(name, v);
        }
        let path = computed.path.unwrap_or_else(|| req.uri.path_and_query().map_or("/", |p| p.as_str()).to_string());
        let until = Instant::now() + CHECK_TIMEOUT;
        let opts = CallOpts { headers: &headers, tls: None, connect_timeout: Some(CHECK_TIMEOUT), connect: ctx.upstream.connect, wait: CHECK_TIMEOUT, deadline: Some(until) };
        let request = Request { method: req.method.clone(), path: &path, headers: Vec::new(), body: computed.body };
        // The status decides: once the service has said no, a body that is too large or too
        // slow must not turn the denial into a failure (which `failureMode: allow` would pass).
        let mut resp = match self.client.send(&opts, &self.origin, &request).await {
            Ok(r) => r,
            Err(e) => return Verdict::Failed(e.to_string()),
        };
        let (status, answer_headers) = (resp.status, std::mem::take(&mut resp.headers));
        // Read to the end (so the connection goes back to the pool), best effort.
        let body = resp.body(until, MAX_ANSWER_BYTES).await.unwrap_or_default();
        if (200..300).contains(&status) {
            for name in &self.include_response_headers {
                if let Some(v) = answer_headers.get(name) {
                    if let Err(e) = session.req_header_mut().insert_header(name.clone(), v.clone()) {
                        return Verdict::Failed(e.to_string());
                    }
                }
            }
            return Verdict::Allow;
        }
        if let (401 | 403, Some(location)) = (status, computed.redirect) {
            let mut resp = LocalResponse::new(302);
            resp.headers.push(("location".into(), location));
            return Verdict::Deny(resp);
        }
        let mut resp = LocalResponse::new(if (200..=599).contains(&status) { status } else { 403 });
        for (name, v) in answer_headers.iter() {
            if !super::is_hop_by_hop(name, &answer_headers) {
                resp.headers.push((name.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()));
            }
        }
        resp.body = body;
        Verdict::Deny(resp)
    }
}
