//! Route precedence, table-driven.

use std::sync::Arc;

use super::*;
use crate::config::schema::{PathMatch, RouteMatch, ValueMatch, ValueMatchNamed};
use crate::runtime::{CompiledRoute, FilterChain};

fn route(name: &str) -> Arc<CompiledRoute> {
    Arc::new(CompiledRoute {
        name: name.into(),
        label: crate::label::LabelText::new(name),
        backends: vec![],
        picker: None,
        chain_without_backend: Arc::new(FilterChain::default()),
    })
}

fn path(p: PathMatch) -> RouteMatch {
    RouteMatch { path: Some(p), ..Default::default() }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// (name, hostnames, matches) in file order.
type RouteDef = (&'static str, Vec<&'static str>, Vec<RouteMatch>);

fn table(defs: Vec<RouteDef>) -> RouteTable {
    let mut t = RouteTable::default();
    for (name, hosts, matches) in defs {
        let hosts: Vec<String> = hosts.into_iter().map(String::from).collect();
        t.add(route(name), &hosts, &matches);
    }
    t
}

fn pick(t: &RouteTable, method: &str, uri: &str, host: &str, headers: &[(&str, &str)]) -> Option<String> {
    t.select(&request(method, uri, headers), host).map(|s| s.route.name.clone())
}

#[test]
fn precedence_table() {
    let t = table(vec![
        ("catch-all", vec![], vec![]),
        ("prefix-v1", vec![], vec![path(PathMatch::Prefix("/v1".into()))]),
        ("prefix-v1-chat", vec![], vec![path(PathMatch::Prefix("/v1/chat/".into()))]),
        ("exact-models", vec![], vec![path(PathMatch::Exact("/v1/models".into()))]),
        ("regex-items", vec![], vec![path(PathMatch::Regex("/items/[0-9]+".into()))]),
        (
            "post-only",
            vec![],
            vec![RouteMatch { path: Some(PathMatch::Prefix("/v1/post".into())), method: Some("POST".into()), ..Default::default() }],
        ),
        ("any-method", vec![], vec![path(PathMatch::Prefix("/v1/post".into()))]),
        (
            "with-header",
            vec![],
            vec![RouteMatch {
                path: Some(PathMatch::Prefix("/h".into())),
                headers: vec![ValueMatchNamed { name: "x-tier".into(), value: ValueMatch::Regex("gold|silver".into()) }],
                ..Default::default()
            }],
        ),
        ("no-header", vec![], vec![path(PathMatch::Prefix("/h".into()))]),
        (
            "with-query",
            vec![],
            vec![RouteMatch {
                path: Some(PathMatch::Prefix("/q".into())),
                query: vec![ValueMatchNamed { name: "v".into(), value: ValueMatch::Exact("a b".into()) }],
                ..Default::default()
            }],
        ),
        ("no-query", vec![], vec![path(PathMatch::Prefix("/q".into()))]),
        ("host-exact", vec!["api.example.com"], vec![path(PathMatch::Prefix("/".into()))]),
        ("host-wild", vec!["*.example.com"], vec![path(PathMatch::Prefix("/v1".into()))]),
    ]);
    // (method, uri, host, headers, expected route)
    type Case = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)], Option<&'static str>);
    let cases: &[Case] = &[
        ("GET", "/v1/models", "h", &[], Some("exact-models")),
        ("GET", "/v1/models/x", "h", &[], Some("prefix-v1")),
        ("GET", "/v1/chat/completions", "h", &[], Some("prefix-v1-chat")),
        ("GET", "/v1", "h", &[], Some("prefix-v1")),
        ("GET", "/v1x", "h", &[], Some("catch-all")),
        // agentgateway ranks any prefix (even "/") above a regex.
        ("GET", "/items/42", "h", &[], Some("catch-all")),
        ("POST", "/v1/post", "h", &[], Some("post-only")),
        ("GET", "/v1/post", "h", &[], Some("any-method")),
        ("GET", "/h", "h", &[("x-tier", "gold")], Some("with-header")),
        ("GET", "/h", "h", &[("x-tier", "bronze")], Some("no-header")),
        ("GET", "/h", "h", &[("x-tier", "golden")], Some("no-header")),
        ("GET", "/q?v=a+b", "h", &[], Some("with-query")),
        ("GET", "/q?v=a%20b&w=1", "h", &[], Some("with-query")),
        ("GET", "/q?v=c", "h", &[], Some("no-query")),
        ("GET", "/v1/models", "api.example.com", &[], Some("host-exact")),
        ("GET", "/v1/models", "other.example.com", &[], Some("host-wild")),
        ("GET", "/other", "other.example.com", &[], Some("catch-all")),
        ("GET", "/v1/models", "example.com", &[], Some("exact-models")),
    ];
    for (method, uri, host, headers, want) in cases {
        assert_eq!(pick(&t, method, uri, host, headers).as_deref(), *want, "{method} {uri} host={host} {headers:?}");
    }
}

#[test]
fn regex_matches_whole_path() {
    let t = table(vec![("regex-items", vec![], vec![path(PathMatch::Regex("/items/[0-9]+".into()))])]);
    assert_eq!(pick(&t, "GET", "/items/42", "h", &[]).as_deref(), Some("regex-items"));
    assert_eq!(pick(&t, "GET", "/items/42/x", "h", &[]), None);
    assert_eq!(pick(&t, "GET", "/x/items/42", "h", &[]), None);
}

#[test]
fn no_match_is_none() {
    let t = table(vec![("only", vec![], vec![path(PathMatch::Exact("/a".into()))])]);
    assert_eq!(pick(&t, "GET", "/b", "h", &[]), None);
}

#[test]
fn equal_rank_keeps_file_order() {
    let t = table(vec![
        ("first", vec![], vec![path(PathMatch::Prefix("/a".into()))]),
        ("second", vec![], vec![path(PathMatch::Prefix("/a".into()))]),
    ]);
    assert_eq!(pick(&t, "GET", "/a/b", "h", &[]).as_deref(), Some("first"));
}

#[test]
fn host_helpers() {
    assert_eq!(host_without_port("a.com:80"), "a.com");
    assert_eq!(host_without_port("[::1]:80"), "::1");
    assert_eq!(host_without_port("a.com"), "a.com");
    assert!(prefix_matches("/", "/anything"));
    assert!(prefix_matches("/v1/", "/v1"));
    assert!(!prefix_matches("/v1", "/v10"));
}
