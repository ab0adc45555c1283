//! OpenAPI targets: every operation of an OpenAPI 3 document becomes a tool (named by its
//! `operationId`); a call becomes the HTTP request the operation describes, with path,
//! query and header parameters from the arguments and the JSON body from `body`.

use bytes::Bytes;
use http::Method;
use serde_json::{json, Map, Value};

use super::client::{CallCtx, Origin, Request};
use super::error::McpError;
use super::jsonrpc;
use super::target::{http_location, parse_url};
use tollgate_core::config::mcp::{HttpTargetSpec, OpenApiDocument, OpenApiSpec};
use tollgate_core::json_pointer::Pointer as _;

/// Largest service response turned into a tool result.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Path,
    Query,
    Header,
}

#[derive(Debug)]
struct Operation {
    tool: Value,
    name: String,
    method: Method,
    path: String,
    params: Vec<(String, In)>,
}

/// A compiled OpenAPI target.
#[derive(Debug)]
pub struct OpenApiTarget {
    origin: Origin,
    prefix: String,
    ops: Vec<Operation>,
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..8 {
        match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => v = doc.at(pointer).unwrap_or(&Value::Null),
            None => break,
        }
    }
    v
}

/// Inlines local `$ref`s (bounded depth) so clients see self-contained schemas.
fn inline(doc: &Value, v: &Value, depth: u8) -> Value {
    if depth > 8 {
        return json!({});
    }
    match resolve(doc, v) {
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), inline(doc, x, depth + 1))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|x| inline(doc, x, depth + 1)).collect()),
        other => other.clone(),
    }
}

impl OpenApiTarget {
    /// A stable description of where calls go (for session-id fingerprints).
    pub fn canonical(&self) -> String {
        let ops: Vec<String> = self.ops.iter().map(|o| format!("{} {} {}", o.name, o.method, o.path)).collect();
        format!("{}|{}|{}|{}|{}", self.origin.host, self.origin.port, self.origin.tls, self.prefix, ops.join(","))
    }

    /// Reads the operations out of the document.
    pub fn compile(spec: &OpenApiSpec) -> Result<OpenApiTarget, String> {
        // A `{url}` schema is fetched now, at every load and reload.
        let fetched;
        let doc = match &spec.schema {
            OpenApiDocument::Inline(doc) => doc,
            OpenApiDocument::Url(url) => {
                let body = super::client::fetch_for_load(url)?;
                let text = String::from_utf8(body.to_vec()).map_err(|_| format!("`{url}` is not UTF-8 text"))?;
                fetched = match OpenApiDocument::parse(&text).map_err(|e| format!("`{url}`: {e}"))? {
                    OpenApiDocument::Inline(doc) => doc,
                    OpenApiDocument::Url(_) => return Err(format!("`{url}`: not a document")),
                };
                &fetched
            }
        };
        let (origin, mut prefix) = if spec.host.contains("://") {
            parse_url(&spec.host)?
        } else {
            let h = HttpTargetSpec { host: spec.host.clone(), port: spec.port, path: None, backend: None };
            http_location(&h, "")?
        };
        if let Some(p) = &spec.path {
            prefix = p.clone();
        } else if prefix.is_empty() || prefix == "/" {
            // The document's first server URL may carry a base path.
            let server = doc.at("/servers/0/url").and_then(Value::as_str).unwrap_or("");
            let base = if server.contains("://") { parse_url(server).map(|(_, p)| p).unwrap_or_default() } else { server.to_string() };
            prefix = base;
        }
        let prefix = prefix.trim_end_matches('/').to_string();
        let paths = doc.get("paths").and_then(Value::as_object).ok_or("the OpenAPI document has no `paths`")?;
        let mut ops = Vec::new();
        for (path, item) in paths {
            let item = resolve(doc, item);
            for m in ["get", "put", "post", "delete", "patch", "head", "options"] {
                let Some(op) = item.get(m) else { continue };
                let Some(name) = op.get("operationId").and_then(Value::as_str) else { continue };
                ops.push(operation(doc, path, m, name, item, op)?);
            }
        }
        if ops.is_empty() {
            return Err("the OpenAPI document has no operation with an operationId".into());
        }
        Ok(OpenApiTarget { origin, prefix, ops })
    }

    /// Answers an MCP request from the operations.
    pub async fn request(&self, cc: &CallCtx, msg: Value) -> Result<Value, McpError> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let result = match jsonrpc::method(&msg) {
            "initialize" => json!({
                "protocolVersion": msg.at("/params/protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "openapi", "version": env!("CARGO_PKG_VERSION")},
            }),
            "ping" => json!({}),
            "tools/list" => json!({"tools": self.ops.iter().map(|o| o.tool.clone()).collect::<Vec<_>>()}),
            "tools/call" => self.call(cc, &msg).await?,
            m => return Ok(jsonrpc::error(&id, jsonrpc::METHOD_NOT_FOUND, format!("an OpenAPI target has no `{m}`"))),
        };
        Ok(jsonrpc::result(&id, result))
    }

    async fn call(&self, cc: &CallCtx, msg: &Value) -> Result<Value, McpError> {
        let name = jsonrpc::param_str(msg, "name").unwrap_or("");
        let op = self.ops.iter().find(|o| o.name == name).ok_or_else(|| McpError::InvalidParams(format!("unknown tool `{name}`")))?;
        let empty = Map::new();
        let args = msg.at("/params/arguments").and_then(Value::as_object).unwrap_or(&empty);
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let mut path = op.path.clone();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        for (p, at) in &op.params {
            let Some(v) = args.get(p) else {
                if *at == In::Path {
                    return Err(McpError::InvalidParams(format!("missing path parameter `{p}`")));
                }
                continue;
            };
            match at {
                In::Path => path = path.replace(&format!("{{{p}}}"), &encode(&text(v))),
                In::Query => query.push(format!("{}={}", encode(p), encode(&text(v)))),
                In::Header => headers.push((p.as_str(), text(v))),
            }
        }
        let mut full = format!("{}{}", self.prefix, path);
        if !query.is_empty() {
            full = format!("{full}?{}", query.join("&"));
        }
        let body = args.get("body").map(|b| Bytes::from(b.to_string()));
        let mut req_headers = vec![(http::header::ACCEPT, "application/json".to_string())];
        if body.is_some() {
            req_headers.push((http::header::CONTENT_TYPE, "application/json".into()));
        }
        let mut cc = cc.clone();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(&value)) {
                cc.headers.insert(n, v);
            }
        }
        let req = Request { method: op.method.clone(), path: &full, headers: req_headers, body };
        let mut resp = cc.send(&self.origin, &req).await?;
        let bytes = resp.body(cc.until(), MAX_RESPONSE).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut result = json!({"content": [{"type": "text", "text": text}], "isError": resp.status >= 400});
        if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&bytes) {
            result["structuredContent"] = v;
        }
        Ok(result)
    }
}

fn operation(doc: &Value, path: &str, method: &str, name: &str, item: &Value, op: &Value) -> Result<Operation, String> {
    let mut props = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    let all = item.get("parameters").and_then(Value::as_array).into_iter().flatten().chain(op.get("parameters").and_then(Value::as_array).into_iter().flatten());
    for p in all {
        let p = resolve(doc, p);
        let Some(pname) = p.get("name").and_then(Value::as_str) else { continue };
        let at = match p.get("in").and_then(Value::as_str) {
            Some("path") => In::Path,
            Some("query") => In::Query,
            Some("header") => In::Header,
            _ => continue,
        };
        let mut schema = p.get("schema").map(|s| inline(doc, s, 0)).unwrap_or_else(|| json!({"type": "string"}));
        if let (Some(d), Value::Object(m)) = (p.get("description"), &mut schema) {
            m.entry("description").or_insert(d.clone());
        }
        props.insert(pname.to_string(), schema);
        if at == In::Path || p.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(pname));
        }
        params.retain(|(n, _): &(String, In)| n != pname);
        params.push((pname.to_string(), at));
    }
    if let Some(body) = op.get("requestBody").map(|b| resolve(doc, b)) {
        let schema = body.at("/content/application~1json/schema").map(|s| inline(doc, s, 0)).unwrap_or_else(|| json!({}));
        props.insert("body".into(), schema);
        if body.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!("body"));
        }
    }
    let description = op.get("description").or_else(|| op.get("summary")).and_then(Value::as_str).unwrap_or(name);
    let tool = json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": props, "required": required},
    });
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string())?;
    Ok(Operation { tool, name: name.to_string(), method, path: path.to_string(), params })
}

/// Percent-encodes a path segment or query component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
