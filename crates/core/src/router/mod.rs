//! Route selection: listener by host name, then the best route by agentgateway's
//! (Gateway API) precedence: most specific host, exact path, longest prefix, regex,
//! then method, most header matches, most query matches, then file order.

use std::sync::Arc;

use http::{HeaderName, Method};
use regex::Regex;

use crate::config::schema::{PathMatch, RouteMatch, ValueMatch, ValueMatchNamed};
use crate::runtime::CompiledRoute;

/// A host name pattern: exact or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Equal to this (lowercase).
    Exact(String),
    /// Any host ending in `.suffix` (stored with the leading dot).
    Wildcard(String),
}

impl HostPattern {
    /// Parses `example.com` or `*.example.com`.
    pub fn parse(text: &str) -> HostPattern {
        let t = text.to_ascii_lowercase();
        match t.strip_prefix('*') {
            Some(rest) if rest.starts_with('.') => HostPattern::Wildcard(rest.to_string()),
            _ => HostPattern::Exact(t),
        }
    }

    /// How specifically this pattern matches `host` (higher is more specific), or `None`.
    pub fn score(&self, host: &str) -> Option<usize> {
        match self {
            HostPattern::Exact(h) => (h.eq_ignore_ascii_case(host)).then_some(1_000_000 + h.len()),
            HostPattern::Wildcard(suffix) => {
                let lower = host.to_ascii_lowercase();
                (lower.len() > suffix.len() && lower.ends_with(suffix.as_str())).then_some(1 + suffix.len())
            }
        }
    }
}

/// The best score among `patterns` for `host`; an empty list matches any host with score 0.
pub fn best_host_score(patterns: &[HostPattern], host: &str) -> Option<usize> {
    if patterns.is_empty() {
        return Some(0);
    }
    patterns.iter().filter_map(|p| p.score(host)).max()
}

/// Strips the port from a Host header value.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map(|h| &h[1..]).unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host })
}

#[derive(Debug)]
enum PathRule {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
enum ValueRule {
    Exact(String),
    Regex(Regex),
}

impl ValueRule {
    fn compile(v: &ValueMatch) -> ValueRule {
        match v {
            ValueMatch::Exact(s) => ValueRule::Exact(s.clone()),
            ValueMatch::Regex(r) => ValueRule::Regex(anchored(r)),
        }
    }
    fn matches(&self, value: &str) -> bool {
        match self {
            ValueRule::Exact(s) => s == value,
            ValueRule::Regex(r) => r.is_match(value),
        }
    }
}

/// Header conditions, all of which must hold (a route match's `headers`, an `llm:` model's
/// `matches`): a header holds when any of its values matches.
#[derive(Debug)]
pub struct HeaderRules(Vec<(HeaderName, ValueRule)>);

impl HeaderRules {
    /// Compiles `headers` (regexes were checked when the config was read).
    pub fn compile(headers: &[ValueMatchNamed]) -> HeaderRules {
        HeaderRules(headers.iter().filter_map(|h| HeaderName::from_bytes(h.name.as_bytes()).ok().map(|n| (n, ValueRule::compile(&h.value)))).collect())
    }

    /// Whether every condition holds for a request with `headers`.
    pub fn matches(&self, headers: &http::HeaderMap) -> bool {
        self.0.iter().all(|(name, rule)| headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| rule.matches(v))))
    }
}

/// Regexes must match the whole value.
fn anchored(r: &str) -> Regex {
    Regex::new(&format!("^(?:{r})$")).expect("validated at load")
}

/// One (route, match) pair, ready to test against requests.
#[derive(Debug)]
struct Candidate {
    route: Arc<CompiledRoute>,
    hostnames: Arc<Vec<HostPattern>>,
    path: PathRule,
    method: Option<Method>,
    headers: HeaderRules,
    query: Vec<(String, ValueRule)>,
}

impl Candidate {
    /// Sort key: lower sorts first.
    fn rank(&self) -> (u8, std::cmp::Reverse<usize>, bool, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
        let (kind, len) = match &self.path {
            PathRule::Exact(p) => (0, p.len()),
            PathRule::Prefix(p) => (1, p.len()),
            PathRule::Regex(_) => (2, 0),
        };
        (
            kind,
            std::cmp::Reverse(len),
            self.method.is_none(),
            std::cmp::Reverse(self.headers.0.len()),
            std::cmp::Reverse(self.query.len()),
        )
    }

    fn matches(&self, req: &http::request::Parts) -> Option<Option<String>> {
        let path = req.uri.path();
        let matched_prefix = match &self.path {
            PathRule::Exact(p) => (path == p).then_some(None)?,
            PathRule::Prefix(p) => prefix_matches(p, path).then(|| Some(p.clone()))?,
            PathRule::Regex(r) => r.is_match(path).then_some(None)?,
        };
        if self.method.as_ref().is_some_and(|m| m != req.method) {
            return None;
        }
        if !self.headers.matches(&req.headers) {
            return None;
        }
        if !self.query.is_empty() {
            let q = req.uri.query().unwrap_or("");
            for (name, rule) in &self.query {
                let ok = q.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))).any(|(k, v)| {
                    k == name && rule.matches(&percent_decode(v))
                });
                if !ok {
                    return None;
                }
            }
        }
        Some(matched_prefix)
    }
}

/// Prefix match on a path-segment boundary; a trailing `/` in the prefix is ignored.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    path.starts_with(p) && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
}

/// `%XX` and `+` decoding of a query component, as bytes (a bad escape is kept as written).
pub fn query_decode_bytes(v: &str) -> Vec<u8> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn percent_decode(v: &str) -> String {
    String::from_utf8_lossy(&query_decode_bytes(v)).into_owned()
}

/// The routes of one listener, pre-sorted by precedence.
#[derive(Debug, Default)]
pub struct RouteTable {
    candidates: Vec<Candidate>,
}

/// The chosen route and the prefix it matched on.
pub struct Selected<'a> {
    /// The route.
    pub route: &'a Arc<CompiledRoute>,
    /// The `pathPrefix` that matched, for prefix rewrites.
    pub matched_prefix: Option<String>,
}

impl RouteTable {
    /// Adds a route with its matches (none = every path) and host names.
    pub fn add(&mut self, route: Arc<CompiledRoute>, hostnames: &[String], matches: &[RouteMatch]) {
        let hostnames = Arc::new(hostnames.iter().map(|h| HostPattern::parse(h)).collect::<Vec<_>>());
        let default = [RouteMatch::default()];
        let matches = if matches.is_empty() { &default[..] } else { matches };
        for m in matches {
            let path = match &m.path {
                None => PathRule::Prefix("/".into()),
                Some(PathMatch::Exact(p)) => PathRule::Exact(p.clone()),
                Some(PathMatch::Prefix(p)) => PathRule::Prefix(p.clone()),
                Some(PathMatch::Regex(r)) => PathRule::Regex(anchored(r)),
            };
            let headers = HeaderRules::compile(&m.headers);
            let query = m.query.iter().map(|q| (q.name.clone(), ValueRule::compile(&q.value))).collect();
            let method = m.method.as_ref().and_then(|s| Method::from_bytes(s.as_bytes()).ok());
            self.candidates.push(Candidate { route: route.clone(), hostnames: hostnames.clone(), path, method, headers, query });
        }
        // Stable sort: equal ranks keep file order.
        self.candidates.sort_by_key(|c| c.rank());
    }

    /// Every route of the table (a route with several matches once per match).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.candidates.iter().map(|c| &c.route)
    }

    /// The best route for a request to `host` (without port).
    pub fn select(&self, req: &http::request::Parts, host: &str) -> Option<Selected<'_>> {
        let mut best: Option<(usize, &Candidate, Option<String>)> = None;
        for c in &self.candidates {
            let Some(score) = best_host_score(&c.hostnames, host) else { continue };
            if best.as_ref().is_some_and(|(s, _, _)| *s >= score) {
                continue;
            }
            if let Some(prefix) = c.matches(req) {
                best = Some((score, c, prefix));
            }
        }
        best.map(|(_, c, matched_prefix)| Selected { route: &c.route, matched_prefix })
    }
}

#[cfg(test)]
mod tests;
