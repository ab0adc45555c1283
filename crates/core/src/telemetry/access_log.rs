//! The access log: one line per request after it ends (streams included), with default
//! fields plus the CEL fields of `config.logging.fields`, written to stdout as text or JSON.
//! Secrets in headers are redacted unless an expression names the header.

use std::io::Write;

use pingora::Error;
use serde_json::{Map, Value as Json};

use super::cel::{as_flatten, Evaluator, Expression};
use crate::config::settings::{LogFormat, LoggingSettings};
use crate::ctx::RequestCtx;

/// The compiled access-log configuration.
#[derive(Debug, Default)]
pub struct AccessLog {
    json: bool,
    /// Field name → CEL.
    pub add: Vec<(String, Expression)>,
    remove: Vec<String>,
    /// Requests are logged only when this is true.
    pub filter: Option<Expression>,
}

impl AccessLog {
    /// Builds the log from `config.logging`.
    pub fn new(settings: Option<&LoggingSettings>) -> AccessLog {
        let Some(s) = settings else { return AccessLog::default() };
        let (add, remove) = match &s.fields {
            Some(f) => (f.add.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(), f.remove.clone()),
            None => (Vec::new(), Vec::new()),
        };
        AccessLog { json: s.format == Some(LogFormat::Json), add, remove, filter: s.filter.clone() }
    }

    /// Every expression this log evaluates.
    pub fn expressions(&self) -> impl Iterator<Item = &Expression> {
        self.add.iter().map(|(_, e)| e).chain(self.filter.as_ref())
    }

    /// Whether lines are written at all (the `access` target is on at `info`).
    pub fn enabled(&self) -> bool {
        tracing::enabled!(target: "access", tracing::Level::INFO)
    }

    /// Whether `filter` (if any) lets this request's line through.
    pub fn admits<'e>(&'e self, cel: Option<&mut Evaluator<'e, '_>>) -> bool {
        match (&self.filter, cel) {
            (Some(f), Some(cel)) => cel.eval(f) == Some(&cel::Value::Bool(true)),
            _ => true,
        }
    }

    /// Writes the line for a finished request: the default fields, then `custom` (the
    /// configured fields, evaluated), minus `fields.remove`.
    pub fn write(&self, custom: &CelFields<'_>, error: Option<&Error>, ctx: &RequestCtx) {
        let defaults = default_fields(error, ctx);
        let fields = defaults
            .iter()
            .filter(|(k, _)| !custom.overrides(k))
            .chain(custom.fields.iter())
            .filter(|(k, _)| !self.remove.iter().any(|r| r == k))
            .map(|(k, v)| (k.as_str(), v));
        let line = if self.json { json_line(fields) } else { text_line(fields) };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
    }
}

/// Configured CEL fields of one request, evaluated, `flatten` results expanded to dotted keys.
#[derive(Debug, Default)]
pub struct CelFields<'e> {
    /// Names of the fields that evaluated: they replace a default field of the same name.
    names: Vec<&'e str>,
    /// The fields, in configuration order.
    pub fields: Vec<(String, Json)>,
}

impl<'e> CelFields<'e> {
    /// Evaluates `add` (name → expression).
    pub fn eval(add: &'e [(String, Expression)], cel: &mut Evaluator<'e, '_>) -> CelFields<'e> {
        let mut out = CelFields { names: Vec::with_capacity(add.len()), fields: Vec::with_capacity(add.len()) };
        for (name, expr) in add {
            if let Some(v) = cel.eval(expr) {
                out.names.push(name);
                add_field(&mut out.fields, name, v);
            }
        }
        out
    }

    /// Whether a configured field named `name` evaluated (and so replaces a default one).
    pub fn overrides(&self, name: &str) -> bool {
        self.names.iter().any(|n| *n == name)
    }
}

fn default_fields(error: Option<&Error>, ctx: &RequestCtx) -> Vec<(String, Json)> {
    let c = &ctx.captured;
    let mut f: Vec<(String, Json)> = vec![
        ("http.method".into(), c.method.as_str().into()),
        ("http.path".into(), ctx.original_path.clone().into()),
        ("http.status".into(), ctx.status.unwrap_or(0).into()),
        ("route".into(), ctx.route.as_ref().map(|r| r.name.clone()).into()),
        // An LLM call names the provider that answered (one of an `ai.groups` backend).
        ("backend".into(), ctx.llm.as_ref().map(|l| l.backend.clone()).or_else(|| ctx.backend.as_ref().map(|b| b.name.clone())).into()),
        ("duration_ms".into(), ((ctx.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0).into()),
    ];
    if ctx.timed_out {
        f.push(("error".into(), "request timeout".into()));
    } else if let Some(e) = error {
        f.push(("error".into(), e.etype().as_str().into()));
    }
    if let Some(l) = &ctx.llm {
        f.push(("gen_ai.provider.name".into(), l.provider.into()));
        f.push(("gen_ai.request.model".into(), l.request_model.clone().into()));
        f.push(("gen_ai.response.model".into(), l.response_model.clone().into()));
        f.push(("gen_ai.streaming".into(), l.streaming.into()));
        if !l.failed_attempts.is_empty() {
            let failed: Vec<String> = l.failed_attempts.iter().map(|a| format!("{}:{}", a.backend, a.reason)).collect();
            f.push(("llm.failed_attempts".into(), failed.join(",").into()));
        }
        if let Some(u) = l.usage {
            f.push(("gen_ai.usage.input_tokens".into(), u.input_tokens.into()));
            f.push(("gen_ai.usage.output_tokens".into(), u.output_tokens.into()));
            f.push(("gen_ai.usage.total_tokens".into(), u.total_tokens.into()));
        }
        if let Some(c) = l.cost {
            f.push(("llm.cost".into(), c.total.into()));
        }
    }
    if let Some(m) = &ctx.mcp {
        if !m.method.is_empty() {
            f.push(("mcp.method.name".into(), m.method.clone().into()));
        }
        f.push(("mcp.target".into(), m.target.clone().into()));
        match m.resource_type {
            Some("tool") => f.push(("gen_ai.tool.name".into(), m.resource.clone().into())),
            Some("prompt") => f.push(("gen_ai.prompt.name".into(), m.resource.clone().into())),
            Some(_) => f.push(("mcp.resource.uri".into(), m.resource.clone().into())),
            None => {}
        }
        if let Some((code, message)) = &m.error {
            f.push(("mcp.error.code".into(), (*code).into()));
            f.push(("mcp.error.message".into(), message.clone().into()));
        }
    }
    f.retain(|(_, v)| !v.is_null());
    f
}

/// Adds a CEL result under `name`; `flatten`/`flattenRecursive` results become dotted keys.
pub fn add_field(fields: &mut Vec<(String, Json)>, name: &str, v: &cel::Value) {
    fields.retain(|(k, _)| k != name);
    match as_flatten(v) {
        Some((recursive, inner)) => {
            let Ok(j) = inner.json() else { return };
            flatten_into(fields, name, j, recursive);
        }
        None => {
            if let Ok(j) = v.json() {
                if !j.is_null() {
                    fields.push((name.to_string(), j));
                }
            }
        }
    }
}

fn flatten_into(fields: &mut Vec<(String, Json)>, prefix: &str, v: Json, recursive: bool) {
    // Objects iterate in key order (serde_json's map is sorted).
    let children: Vec<(String, Json)> = match v {
        Json::Array(items) => items.into_iter().enumerate().map(|(i, x)| (i.to_string(), x)).collect(),
        Json::Object(m) => m.into_iter().collect(),
        Json::Null => return,
        leaf => {
            fields.push((prefix.to_string(), leaf));
            return;
        }
    };
    for (k, child) in children {
        let key = format!("{prefix}.{k}");
        if recursive {
            flatten_into(fields, &key, child, true);
        } else if !child.is_null() {
            fields.push((key, child));
        }
    }
}

fn timestamp() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `2026-11-25T01:02:03.456789Z` for a point in time.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:06}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_micros())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn json_line<'a>(fields: impl Iterator<Item = (&'a str, &'a Json)>) -> String {
    let mut m = Map::new();
    m.insert("time".into(), timestamp().into());
    m.insert("level".into(), "info".into());
    m.insert("target".into(), "access".into());
    for (k, v) in fields {
        m.insert(k.to_string(), v.clone());
    }
    let mut s = Json::Object(m).to_string();
    s.push('\n');
    s
}

/// `time info access request k=v ...`: a value with a space, quote or `=` (or an empty one)
/// is written as a JSON string.
fn text_line<'a>(fields: impl Iterator<Item = (&'a str, &'a Json)>) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(256);
    s.push_str(&timestamp());
    s.push_str(" info access request");
    let mut other = String::new();
    for (k, v) in fields {
        let text = match v {
            Json::String(t) => t.as_str(),
            other_value => {
                other.clear();
                let _ = write!(other, "{other_value}");
                other.as_str()
            }
        };
        s.reserve(k.len() + text.len() + 2);
        s.push(' ');
        s.push_str(k);
        s.push('=');
        if text.is_empty() || text.contains([' ', '"', '=']) {
            let _ = serde_json::to_writer(StringWriter(&mut s), text);
        } else {
            s.push_str(text);
        }
    }
    s.push('\n');
    s
}

/// `io::Write` into a `String` for serde_json's string escaper (which writes valid UTF-8).
struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push_str(std::str::from_utf8(buf).map_err(std::io::Error::other)?);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_recursively_with_dotted_keys() {
        let mut f = Vec::new();
        let v = serde_json::json!([{"message": {"role": "user", "content": "Hello!"}}]);
        flatten_into(&mut f, "llm.input_messages", v, true);
        assert_eq!(
            f,
            vec![
                ("llm.input_messages.0.message.content".to_string(), Json::from("Hello!")),
                ("llm.input_messages.0.message.role".to_string(), Json::from("user")),
            ]
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
    }
}
