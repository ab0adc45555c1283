//! Loader tests: the seed config field by field, strictness, errors with line and path.
//! Here, beside the binary, because they need every policy crate installed, as the binary
//! does it.

use tollgate_core::config::backend::BackendKind;
use tollgate_core::config::{expand_env, load_file, parse_str, ConfigError, LocalConfig};

const SEED: &str = include_str!("../conf/seed.yaml");

fn parse(text: &str) -> Result<LocalConfig, ConfigError> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| tollgate::install().expect("the registry installs"));
    parse_str(text, "test.yaml")
}

#[test]
fn seed_loads_with_every_field() {
    let c = parse(SEED).expect("seed config loads");
    let logging = c.config.logging.as_ref().unwrap();
    assert_eq!(logging.level.as_ref().unwrap().directives(), "debug");
    let fields = &logging.fields.as_ref().unwrap().add;
    assert_eq!(fields.len(), 10);
    assert_eq!(fields["span.name"].source, r#""openai.chat""#);
    assert_eq!(fields["llm.input_messages"].source, r#"flattenRecursive(llm.prompt.map(c, {"message": c}))"#);
    assert_eq!(c.config.admin_addr.as_deref(), Some("0.0.0.0:15000"));
    let tracing = c.config.tracing.as_ref().unwrap();
    assert_eq!(tracing.otlp_endpoint.as_deref(), Some("http://tracing:4317"));
    assert_eq!(tracing.random_sampling, Some(tollgate_core::config::types::AnyValue::Bool(true)));
    assert_eq!(tracing.client_sampling, Some(tollgate_core::config::types::AnyValue::Bool(true)));
    assert_eq!(tracing.fields.as_ref().unwrap().add.len(), 10);

    assert_eq!(c.binds.len(), 2);
    let llm = &c.binds[0];
    assert_eq!(llm.port, 3100);
    let route = &llm.listeners[0].routes.as_ref().unwrap()[0];
    let names: Vec<_> = route.policies.0.iter().map(|p| p.spec.name).collect();
    assert_eq!(names, ["urlRewrite", "requestHeaderModifier", "backendTLS", "backendAuth"]);
    let BackendKind::Ai(ai) = &route.backends[0].kind else { panic!("ai backend") };
    assert_eq!(ai.name, "qwen-plus");
    assert_eq!(ai.host_override.as_deref(), Some("dashscope.aliyuncs.com:443"));
    assert_eq!(ai.provider.as_ref().unwrap().open_ai.as_ref().unwrap().model.as_deref(), Some("qwen-plus"));
    assert!(ai.policies.get("ai").is_some());

    let mcp = &c.binds[1];
    assert_eq!(mcp.port, 3101);
    let route = &mcp.listeners[0].routes.as_ref().unwrap()[0];
    assert!(route.policies.get("cors").is_some());
    assert!(route.policies.get("requestHeaderModifier").is_some());
    let BackendKind::Mcp(m) = &route.backends[0].kind else { panic!("mcp backend") };
    assert_eq!(m.targets[0].name, "home-assistant");
}

#[test]
fn seed_compiles() {
    let c = parse(SEED).unwrap();
    let g = tollgate_core::runtime::compile(&c).unwrap();
    assert_eq!(g.binds.iter().map(|b| b.port).collect::<Vec<_>>(), [3100, 3101]);
}

#[test]
fn misspelt_key_names_line_and_path() {
    let bad = SEED.replace("allowOrigins:", "allowOrigin:");
    let e = parse(&bad).unwrap_err();
    let line = bad.lines().position(|l| l.contains("allowOrigin:")).unwrap() + 1;
    assert_eq!(e.line, Some(line));
    assert_eq!(e.path, "binds[1].listeners[0].routes[0].policies.cors.allowOrigin");
    assert!(e.message.contains("unknown field `allowOrigin`"), "{e}");
    assert!(e.to_string().starts_with(&format!("test.yaml:{line}:")), "{e}");
}

#[test]
fn bad_cel_names_line_and_field() {
    let bad = SEED.replace("'llm.provider'", "'llm.provider +'");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.path, "config.logging.fields.add.llm.system");
    assert_eq!(e.line, Some(bad.lines().position(|l| l.contains("'llm.provider +'")).unwrap() + 1));
    assert!(e.message.contains("invalid CEL expression"), "{e}");
}

#[test]
fn misspelt_policy_names_line() {
    let bad = SEED.replace("backendAuth:", "backendAuht:");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.line, Some(bad.lines().position(|l| l.contains("backendAuht:")).unwrap() + 1));
    assert!(e.message.contains("unknown policy `backendAuht`"), "{e}");
}

#[test]
fn unsupported_fields_are_errors_not_ignored() {
    let e = parse("config:\n  xdsAddress: http://x\n").unwrap_err();
    assert_eq!(e.path, "config.xdsAddress");
    assert!(e.message.contains("not support"), "{e}");
    let e = parse("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        extProc: {}\n").unwrap_err();
    assert!(e.message.contains("extProc") && e.message.contains("not support"), "{e}");
    assert_eq!(e.line, Some(6));
}

#[test]
fn durations_and_values_are_validated() {
    let yaml = |t: &str| format!("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        timeout: {{requestTimeout: {t}}}\n      backends: [{{host: 127.0.0.1:9}}]\n");
    assert!(parse(&yaml("1m30s")).is_ok());
    let e = parse(&yaml("soon")).unwrap_err();
    assert!(e.message.contains("invalid duration"), "{e}");
    assert!(e.path.ends_with("timeout.requestTimeout"), "{}", e.path);
    let e = parse("binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: nohost}]\n").unwrap_err();
    assert!(e.message.contains("host:port"), "{e}");
    let e = parse("binds:\n- port: 1\n  listeners:\n  - routes:\n    - matches: [{path: {regex: '('}}]\n").unwrap_err();
    assert!(e.message.contains("invalid regex"), "{e}");
}

#[test]
fn env_vars_expand() {
    std::env::set_var("TOLLGATE_TEST_KEY", "sk-from-env");
    let text = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        backendAuth: {key: \"${TOLLGATE_TEST_KEY}\"}\n        directResponse: {status: 200, body: \"cost $$5\"}\n";
    assert!(parse(text).is_ok());
    assert_eq!(expand_env("a: $TOLLGATE_TEST_KEY $$x", "f").unwrap(), "a: sk-from-env $x");
    let e = expand_env("a: 1\nb: ${TOLLGATE_SURELY_UNSET_VAR}\n", "f").unwrap_err();
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("TOLLGATE_SURELY_UNSET_VAR"));
}

#[test]
fn comment_lines_are_not_expanded() {
    // The first line of agentgateway's example configs.
    let text = "# yaml-language-server: $schema=https://agentgateway.dev/schema/config\n  # $UNSET_IN_COMMENT\nbinds: []\n";
    assert_eq!(expand_env(text, "f").unwrap(), text);
    assert!(parse(text).is_ok());
    let e = expand_env("# fine $X\na: ${TOLLGATE_SURELY_UNSET_VAR}\n", "f").unwrap_err();
    assert_eq!(e.line, Some(2));
}

#[test]
fn backend_auth_key_forms() {
    let dir = std::env::temp_dir().join(format!("tollgate-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key.txt"), "sk-file\n").unwrap();
    let file = dir.join("key.txt").display().to_string();
    for key in ["sk-inline".to_string(), format!("{{file: {file}}}"), format!("{{value: {{file: {file}}}}}"), "{value: sk-x}".to_string()] {
        let text = format!("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        backendAuth: {{key: {key}}}\n");
        let f = dir.join("c.yaml");
        std::fs::write(&f, text).unwrap();
        load_file(&f).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[test]
fn backend_needs_exactly_one_kind() {
    let e = parse("binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1', service: {name: x, port: 1}}]\n").unwrap_err();
    assert!(e.message.contains("not support"), "{e}");
    let e = parse("binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{weight: 2}]\n").unwrap_err();
    assert!(e.message.contains("exactly one"), "{e}");
}

#[test]
fn backend_connect_timeout_reaches_the_runtime() {
    let g = tollgate_core::runtime::compile(&parse("config: {backend: {connectTimeout: 3s}}\n").unwrap()).unwrap();
    assert_eq!(g.connect_timeout, std::time::Duration::from_secs(3));
    let g = tollgate_core::runtime::compile(&parse("binds: []\n").unwrap()).unwrap();
    assert_eq!(g.connect_timeout, std::time::Duration::from_secs(10));
}

#[test]
fn not_supported_messages_name_the_field_plainly() {
    let e = parse("config:\n  dns: {edns0: true}\n").unwrap_err();
    assert_eq!((e.path.as_str(), e.message.as_str()), ("config.dns.edns0", "is an agentgateway field that tollgate does not support yet"));
    let e = parse("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies: {backendAuth: copilot}\n").unwrap_err();
    assert_eq!(e.message, "backendAuth `copilot` is not supported yet (only `key`)");
}

#[test]
fn mcp_shortcut_and_gateways_become_binds() {
    let c = parse("mcp:\n  targets: []\n").unwrap();
    assert_eq!(c.binds.len(), 1);
    assert_eq!(c.binds[0].port, tollgate_core::config::dialects::DEFAULT_MCP_PORT);
    let c = parse("gateways:\n  default: {port: 7}\nroutes:\n- name: r\nmcp:\n  targets: []\n").unwrap();
    assert_eq!(c.binds.len(), 1);
    let routes = c.binds[0].listeners[0].routes.as_ref().unwrap();
    assert_eq!(routes.iter().map(|r| r.name.as_deref().unwrap_or("")).collect::<Vec<_>>(), ["mcp", "r"]);
    assert_eq!(routes[0].matches.len(), 3, "MCP on a shared gateway takes /mcp, /sse, /.well-known");
}
