//! Naming, routing and merging rules of a federation.

use serde_json::json;

use super::*;

fn fed(yaml: &str) -> Federation {
    let b: McpBackend = serde_yaml_ng::from_str(yaml).unwrap();
    Federation::compile(&b, "route/0").unwrap()
}

const TWO: &str = r#"
targets:
- {name: time, stdio: {cmd: t}}
- {name: time_zone, mcp: {host: "http://127.0.0.1:1/mcp"}}
"#;

#[test]
fn prefixed_names_find_the_longest_target_name() {
    let f = fed(TWO);
    assert!(f.prefixed);
    assert_eq!(f.split_name("time_now"), Some((0, "now")));
    assert_eq!(f.split_name("time_zone_get_zone"), Some((1, "get_zone")));
    assert_eq!(f.split_name("time_"), None);
    assert_eq!(f.split_name("nosuch_tool"), None);
    assert_eq!(f.split_uri("time_zone+file:///a+b"), Some((1, "file:///a+b")));
    assert_eq!(f.split_uri("file:///x"), None);
    let d = f.describe(&json!({"method": "tools/call", "params": {"name": "time_zone_get_zone"}}));
    assert_eq!((d.target.as_deref(), d.resource.as_deref(), d.resource_type), (Some("time_zone"), Some("get_zone"), Some("tool")));
}

#[test]
fn prefix_modes() {
    assert!(!fed("targets: [{name: a, stdio: {cmd: x}}]").prefixed);
    assert!(fed("prefixMode: always\ntargets: [{name: a, stdio: {cmd: x}}]").prefixed);
    assert!(!fed(&format!("prefixMode: never\n{TWO}")).prefixed);
    let e = Federation::compile(&serde_yaml_ng::from_str("targets: [{name: a, stdio: {cmd: x}}, {name: a, stdio: {cmd: y}}]").unwrap(), "r");
    assert!(e.unwrap_err().contains("two targets are named `a`"));
}

#[test]
fn fingerprints_tell_backends_apart() {
    let b: McpBackend = serde_yaml_ng::from_str(TWO).unwrap();
    let (a1, a2, other) = (Federation::compile(&b, "r/0").unwrap(), Federation::compile(&b, "r/0").unwrap(), Federation::compile(&b, "r/1").unwrap());
    assert_eq!(a1.fingerprint, a2.fingerprint);
    assert_ne!(a1.fingerprint, other.fingerprint);
    let moved = fed(&TWO.replace("127.0.0.1:1", "127.0.0.1:2"));
    assert_ne!(a1.fingerprint, moved.fingerprint);
}

#[test]
fn initialize_results_merge() {
    let f = fed(TWO);
    let merged = merge_initialize(&f, &[
        (0, json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {"listChanged": false}}, "instructions": "tell time"})),
        (1, json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}, "prompts": {}}})),
    ]);
    assert_eq!(merged["protocolVersion"], "2025-06-18");
    assert_eq!(merged["capabilities"], json!({"tools": {"listChanged": true}, "prompts": {}}));
    assert_eq!(merged["serverInfo"]["name"], "tollgate");
    assert_eq!(merged["instructions"], "time: tell time");
    // One target: its own answer, untouched.
    let single = fed("targets: [{name: a, stdio: {cmd: x}}]");
    let own = json!({"protocolVersion": "2025-11-25", "serverInfo": {"name": "a"}});
    assert_eq!(merge_initialize(&single, &[(0, own.clone())]), own);
}

#[test]
fn fingerprints_do_not_change_between_builds() {
    // Session ids made by one tollgate build must resume on the next (upgrades, mixed
    // replicas): the canonical form is versioned; changing it must be deliberate.
    let f = fed(TWO);
    assert_eq!(f.targets[0].canonical(), "v1|time|stdio|t|||false|false|false");
    assert_eq!(f.targets[1].canonical(), "v1|time_zone|http|127.0.0.1|1|false|/mcp|false|false");
}
