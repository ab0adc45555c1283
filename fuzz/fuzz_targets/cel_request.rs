//! CEL over request data a client controls (method, path, headers, body): the expressions
//! agentgateway configs use for logs, traces and authorization evaluate without panicking
//! whatever the request holds. The first byte picks how the rest is split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tollgate::telemetry::cel::{new_context, Expression};

const EXPRESSIONS: &[&str] = &[
    "request.method + ' ' + request.path",
    "request.headers['x-user']",
    "json(request.body).model",
    "json(request.body).messages.map(m, m.role)",
    "string(request.body).size() > 10",
    "request.path.startsWith('/v1') && request.headers['authorization'].contains('Bearer')",
    "regexReplace(request.path, '[0-9]+', 'N')",
    "toJson(request.headers)",
    "flattenRecursive(json(request.body))",
    "default(json(request.body).stream, false)",
    "request.headers.filterKeys(k, k.startsWith('x-'))",
    "base64.encode(request.body)",
    "string(request.body).lowerAscii().split(',')",
];

fn compiled() -> &'static Vec<Expression> {
    static C: OnceLock<Vec<Expression>> = OnceLock::new();
    C.get_or_init(|| EXPRESSIONS.iter().map(|e| Expression::compile(e).expect("valid")).collect())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(data[0]) % data.len();
    let (head, body) = data[1..].split_at(split.min(data.len() - 1));
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let path = lines.next().unwrap_or("/").to_string();
    let mut headers = serde_json::Map::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().into());
        }
    }
    let request = cel::objects::Value::Map(
        [
            ("method", cel::objects::Value::from("POST")),
            ("path", cel::objects::Value::from(path)),
            ("headers", tollgate::telemetry::cel::json_to_cel(serde_json::Value::Object(headers))),
            ("body", cel::objects::Value::Bytes(std::sync::Arc::new(body.to_vec()))),
        ]
        .into_iter()
        .map(|(k, v)| (cel::objects::Key::from(k), v))
        .collect::<std::collections::HashMap<_, _>>()
        .into(),
    );
    let mut ctx = new_context();
    ctx.add_variable_from_value("request", request);
    for e in compiled() {
        let _ = e.eval(&ctx);
    }
    // Expressions themselves, as a config would carry them.
    if let Ok(src) = std::str::from_utf8(body) {
        if src.len() < 512 {
            let _ = Expression::compile(src);
        }
    }
});
