//! A direct read gives exactly what CEL gives, converted to JSON, for every shape it takes.

use std::collections::HashMap;

use cel::common::types::{CelBool, CelBytes, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString};
use serde_json::json;

use super::*;
use crate::telemetry::cel::{as_flatten, new_context, Expression};

type Var<'a> = Box<dyn Val + 'a>;

fn map<'a>(entries: Vec<(&'a str, Var<'a>)>) -> Var<'a> {
    let m: HashMap<CelMapKey<'a>, Var<'a>> = entries.into_iter().map(|(k, v)| (CelMapKey::from(k), v)).collect();
    Box::new(CelMap::from(m))
}

fn text(s: &str) -> Var<'_> {
    Box::new(CelString::from(s))
}

/// What CEL gives: the JSON of its result, or `Failed` when it errors.
fn through_cel(expr: &Expression, scope: &Context<'_, '_>) -> Read {
    match expr.eval(scope) {
        // A `flatten` result: the value it marks.
        Ok(v) if as_flatten(&v).is_some() => as_flatten(&v).unwrap().1.json().map_or(Read::Unsupported, Read::Value),
        Ok(v) => v.json().map_or(Read::Unsupported, Read::Value),
        Err(_) => Read::Failed,
    }
}

#[test]
fn direct_reads_equal_cel_results() {
    let body = String::from(r#"{"model":"m","messages":[{"role":"user","content":"say \"hi\""}]}"#);
    let root = new_context();
    let mut scope = root.new_inner_scope();
    let int_keyed: HashMap<CelMapKey<'_>, Var<'_>> = [(CelMapKey::from(7i64), text("seven"))].into_iter().collect();
    scope.add_variable_as_val(
        "request",
        map(vec![
            ("headers", map(vec![("content-type", text("application/json")), ("x-multi", text("a,b")), ("authorization", text("<redacted>"))])),
            ("body", text(&body)),
            ("method", text("POST")),
            ("raw", Box::new(CelBytes::from(b"\x00\x01bytes".to_vec()))),
            ("numbers", Box::new(CelMap::from(int_keyed))),
        ]),
    );
    scope.add_variable_as_val(
        "llm",
        map(vec![
            ("provider", text("openai")),
            ("params", map(vec![("temperature", Box::new(CelDouble::from(0.5))), ("seed", Box::new(CelNull)), ("max_tokens", Box::new(CelInt::from(64)))])),
            ("streaming", Box::new(CelBool::from(true))),
            ("completion", Box::new(CelList::from(vec![text("one"), text("two")]))),
            (
                "prompt",
                Box::new(CelList::from(vec![
                    map(vec![("role", text("system")), ("content", text("Be brief."))]),
                    map(vec![("role", text("user")), ("content", text("Hello!"))]),
                ])),
            ),
        ]),
    );
    let cases: &[(&str, Option<Read>)] = &[
        ("\"openai.chat\"", Some(Read::Value(json!("openai.chat")))),
        ("42", Some(Read::Value(json!(42)))),
        ("1.5", Some(Read::Value(json!(1.5)))),
        ("true", Some(Read::Value(json!(true)))),
        ("null", Some(Read::Value(json!(null)))),
        ("request.headers", Some(Read::Value(json!({"content-type": "application/json", "x-multi": "a,b", "authorization": "<redacted>"})))),
        ("request.headers[\"x-multi\"]", Some(Read::Value(json!("a,b")))),
        ("request[\"body\"]", Some(Read::Value(json!(body)))),
        ("request.body", Some(Read::Value(json!(body)))),
        ("llm.provider", Some(Read::Value(json!("openai")))),
        ("llm.params.temperature", Some(Read::Value(json!(0.5)))),
        ("llm.params.seed", Some(Read::Value(json!(null)))),
        ("llm.params.max_tokens", Some(Read::Value(json!(64)))),
        ("llm.params", Some(Read::Value(json!({"temperature": 0.5, "seed": null, "max_tokens": 64})))),
        ("llm.streaming", Some(Read::Value(json!(true)))),
        ("llm.completion", Some(Read::Value(json!(["one", "two"])))),
        ("flattenRecursive(llm.completion)", Some(Read::Value(json!(["one", "two"])))),
        ("flatten(llm.params)", Some(Read::Value(json!({"temperature": 0.5, "seed": null, "max_tokens": 64})))),
        ("flattenRecursive(llm.nothing)", Some(Read::Failed)),
        // `.map()` into a template.
        ("llm.completion.map(c, {\"role\": \"assistant\", \"content\": c})", Some(Read::Value(json!([{"role": "assistant", "content": "one"}, {"role": "assistant", "content": "two"}])))),
        ("flattenRecursive(llm.prompt.map(c, {\"message\": c}))", Some(Read::Value(json!([{"message": {"role": "system", "content": "Be brief."}}, {"message": {"role": "user", "content": "Hello!"}}])))),
        ("llm.prompt.map(m, m.role)", Some(Read::Value(json!(["system", "user"])))),
        ("llm.prompt.map(m, {\"r\": m[\"role\"], \"n\": {\"k\": 1}})", Some(Read::Value(json!([{"r": "system", "n": {"k": 1}}, {"r": "user", "n": {"k": 1}}])))),
        ("llm.prompt.map(m, m.missing)", Some(Read::Failed)),
        ("llm.missing.map(c, c)", Some(Read::Failed)),
        // Over a map (CEL iterates its keys) or a string's field: read by CEL.
        ("llm.params.map(k, k)", Some(Read::Unsupported)),
        ("llm.completion.map(c, c.size)", Some(Read::Unsupported)),
        // CEL fails: no such key, no such variable, a field of a string.
        ("request.headers[\"x-none\"]", Some(Read::Failed)),
        ("llm.nothing", Some(Read::Failed)),
        ("mcp.method", Some(Read::Failed)),
        // Read by CEL: a field of a string (CEL fails too), bytes (base64), a map with an int key.
        ("request.method.size", Some(Read::Unsupported)),
        ("request.raw", Some(Read::Unsupported)),
        ("request.numbers", Some(Read::Unsupported)),
        // Not a plain path.
        ("b'x'", None),
        ("request", None),
        ("has(request.body)", None),
        ("request.headers[\"x-\" + \"multi\"]", None),
        ("llm.completion[0]", None),
        ("size(request.body)", None),
        ("llm.completion.map(c, c + 'x')", None),
        ("llm.completion.filter(c, c == 'one')", None),
        ("llm.completion.map(c, c == 'one', c)", None),
        ("llm.completion.map(c, {\"a\": c, \"a\": 1})", None),
        ("llm.completion.map(c, {\"p\": llm.provider})", None),
        ("flatten(llm.params, 1)", None),
    ];
    for (source, expected) in cases {
        let expr = Expression::compile(source).unwrap();
        let cel = through_cel(&expr, &scope);
        match Direct::of(expr.ast()) {
            Some(d) => {
                let read = d.read(&scope);
                let expected = expected.as_ref().unwrap_or_else(|| panic!("{source} should not be read directly"));
                assert_eq!(&read, expected, "{source}");
                let flattened = source.starts_with("flatten");
                assert_eq!(d.flatten(), flattened.then(|| source.starts_with("flattenRecursive")), "{source}");
                if read != Read::Unsupported {
                    assert_eq!(read, cel, "{source}: direct and CEL differ");
                }
            }
            None => assert!(expected.is_none(), "{source} should be read directly"),
        }
    }
}
