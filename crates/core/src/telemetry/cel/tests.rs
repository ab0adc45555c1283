//! CEL extension functions, and the seed config's expressions against a recorded request.

use serde_json::json;

use super::*;

fn eval_with(expr: &str, vars: &[(&str, serde_json::Value)]) -> Value {
    let mut ctx = new_context();
    for (name, v) in vars {
        ctx.add_variable_from_value(*name, json_to_cel(v.clone()));
    }
    Expression::compile(expr).unwrap().eval(&ctx).unwrap_or_else(|e| panic!("{expr}: {e:?}"))
}

fn eval(expr: &str) -> serde_json::Value {
    eval_with(expr, &[]).json().unwrap()
}

#[test]
fn json_functions() {
    assert_eq!(eval(r#"json("{\"a\": [1, 2]}").a[1]"#), json!(2));
    assert_eq!(eval(r#"toJson([1, "x"])"#), json!(r#"[1,"x"]"#));
}

#[test]
fn default_and_coalesce() {
    assert_eq!(eval("default(null, 3)"), json!(3));
    assert_eq!(eval("default(1, 3)"), json!(1));
    assert_eq!(eval("coalesce(null, null, 'z', 'y')"), json!("z"));
}

#[test]
fn maps_strings_and_encodings() {
    assert_eq!(eval("merge({'a': 1, 'b': 1}, {'b': 2})"), json!({"a": 1, "b": 2}));
    assert_eq!(eval("regexReplace('sk-abc123 used', 'sk-[a-z0-9]+', '<key>')"), json!("<key> used"));
    assert_eq!(eval("base64.encode(b'hello!?')"), json!("aGVsbG8hPw=="));
    assert_eq!(eval("string(base64.decode('aGVsbG8hPw=='))"), json!("hello!?"));
    assert_eq!(eval("'A,b'.lowerAscii().split(',')"), json!(["a", "b"]));
    assert_eq!(eval("math.greatest(1, 5, 3)"), json!(5));
    let u = eval("uuid()");
    let u = u.as_str().unwrap();
    assert_eq!(u.len(), 36);
    assert_eq!(&u[14..15], "4");
    let r = eval("random()").as_f64().unwrap();
    assert!((0.0..1.0).contains(&r));
}

#[test]
fn flatten_recursive_marks_nested_lists_and_maps() {
    let v = eval_with(
        "flattenRecursive([{'a': [1, {'b': 2}]}])",
        &[],
    );
    let (recursive, inner) = as_flatten(&v).expect("marker");
    assert!(recursive);
    assert_eq!(inner.json().unwrap(), json!([{"a": [1, {"b": 2}]}]));
    let (recursive, _) = as_flatten(&eval_with("flatten([1])", &[])).unwrap();
    assert!(!recursive);
}

#[test]
fn seed_expressions_against_a_recorded_request() {
    let llm = json!({
        "provider": "openai", "requestModel": "any-model-name", "responseModel": "qwen-plus",
        "prompt": [{"role": "user", "content": "Hello!"}],
        "completion": ["Hello! How can I assist you today?"],
        "params": {"temperature": 0.2, "top_p": null},
    });
    let request = json!({"headers": {"content-type": "application/json"}, "body": "{\"model\":\"any-model-name\"}"});
    let response = json!({"code": 200, "body": "{\"model\":\"qwen-plus\"}"});
    let vars = [("llm", llm), ("request", request), ("response", response)];
    let table: &[(&str, serde_json::Value)] = &[
        (r#""openai.chat""#, json!("openai.chat")),
        ("llm.provider", json!("openai")),
        ("llm.params.temperature", json!(0.2)),
        ("request.headers", json!({"content-type": "application/json"})),
        ("request.body", json!("{\"model\":\"any-model-name\"}")),
        ("response.body", json!("{\"model\":\"qwen-plus\"}")),
        ("llm.completion", json!(["Hello! How can I assist you today?"])),
    ];
    for (expr, want) in table {
        assert_eq!(&eval_with(expr, &vars).json().unwrap(), want, "{expr}");
    }
    let flattened: &[(&str, serde_json::Value)] = &[
        (r#"flattenRecursive(llm.prompt.map(c, {"message": c}))"#, json!([{"message": {"role": "user", "content": "Hello!"}}])),
        ("flattenRecursive(llm.prompt)", json!([{"role": "user", "content": "Hello!"}])),
        (
            r#"flattenRecursive(llm.completion.map(c, {"role":"assistant", "content": c}))"#,
            json!([{"role": "assistant", "content": "Hello! How can I assist you today?"}]),
        ),
    ];
    for (expr, want) in flattened {
        let v = eval_with(expr, &vars);
        let (recursive, inner) = as_flatten(&v).unwrap_or_else(|| panic!("{expr} is not flattened"));
        assert!(recursive);
        assert_eq!(&inner.json().unwrap(), want, "{expr}");
    }
}

#[test]
fn mentions_decides_capture() {
    let e = Expression::compile("request.body").unwrap();
    assert!(e.mentions("request.body"));
    assert!(!e.mentions("response.body"));
    assert!(Expression::compile(r#"request["body"]"#).unwrap().mentions("request.body"));
    assert!(Expression::compile("llm.prompt +").is_err());
}

#[test]
fn binding_and_map_macros() {
    assert_eq!(eval("(1 + 2).with(x, x * x)"), json!(9));
    assert_eq!(eval("{'a': 1, 'b': 2}.filterKeys(k, k != 'b')"), json!({"a": 1}));
    assert_eq!(eval("{'a': 1, 'b': 2}.mapValues(v, v * 10)"), json!({"a": 10, "b": 20}));
    let headers = json!({"x-tenant": "acme", "content-type": "json", "x-trace": "1"});
    let v = eval_with("request.headers.filterKeys(k, k.startsWith('x-')).mapValues(v, v.upperAscii())", &[("request", json!({"headers": headers}))]);
    assert_eq!(v.json().unwrap(), json!({"x-tenant": "ACME", "x-trace": "1"}));
    assert!(Expression::compile("{'a': 1}.filterKeys(1, true)").is_err());
}
