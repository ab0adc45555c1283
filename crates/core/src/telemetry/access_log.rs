//! The access log: one line per request after it ends (streams included), with default
//! fields plus the CEL fields of `config.logging.fields`, written to stdout as text or JSON.
//! Secrets in headers are redacted unless an expression names the header.

use std::io::Write;

use pingora::Error;
use serde_json::Value as Json;

use super::cel::{as_flatten, Evaluator, Expression, FieldValue};
use crate::config::settings::{LogFormat, LoggingSettings};
use crate::ctx::RequestCtx;
use crate::json_object::write_json_string;

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
            .map(|(k, v)| (*k, v))
            .chain(custom.fields.iter().map(|(k, v)| (k.as_str(), v)))
            .filter(|(k, _)| !self.remove.iter().any(|r| r == k));
        // The line is built in this thread's buffer, kept from the last line: a line carrying
        // bodies and headers grows to several KiB, and a fresh buffer is copied each time it
        // doubles (~0.5k instructions a line on the seed config).
        // `try_with`: a thread whose locals are being torn down gets a fresh buffer.
        let mut line = LINE.try_with(std::cell::Cell::take).unwrap_or_default();
        line.clear();
        if self.json {
            json_line(&mut line, fields);
        } else {
            text_line(&mut line, fields);
        }
        let _ = std::io::stdout().lock().write_all(&line);
        if line.capacity() <= KEPT_LINE {
            let _ = LINE.try_with(|kept| kept.set(line));
        }
    }
}

thread_local! {
    /// This thread's access-log line buffer (see [`AccessLog::write`]).
    static LINE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Largest line buffer a thread keeps (one with a large body in it is freed).
const KEPT_LINE: usize = 64 * 1024;

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
            let Some(value) = cel.field(expr) else { continue };
            out.names.push(name);
            match value {
                FieldValue::Json(j, flatten) => add_json(&mut out.fields, name, j, flatten),
                FieldValue::Cel(v) => add_field(&mut out.fields, name, v),
            }
        }
        out
    }

    /// Whether a configured field named `name` evaluated (and so replaces a default one).
    pub fn overrides(&self, name: &str) -> bool {
        self.names.iter().any(|n| *n == name)
    }
}

/// The fields every line has (names static: nothing allocated for them).
fn default_fields(error: Option<&Error>, ctx: &RequestCtx) -> Vec<(&'static str, Json)> {
    let c = &ctx.captured;
    let mut f: Vec<(&'static str, Json)> = Vec::with_capacity(16);
    f.extend([
        ("http.method", c.method.as_str().into()),
        ("http.path", ctx.original_path.clone().into()),
        ("http.status", ctx.status.unwrap_or(0).into()),
        ("route", ctx.route.as_ref().map(|r| r.name.clone()).into()),
        // An LLM call names the provider that answered (one of an `ai.groups` backend).
        ("backend", ctx.llm.as_ref().map(|l| l.backend.clone()).or_else(|| ctx.backend.as_ref().map(|b| b.name.clone())).into()),
        ("duration_ms", ((ctx.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0).into()),
    ]);
    if ctx.timed_out {
        f.push(("error", "request timeout".into()));
    } else if let Some(e) = error {
        f.push(("error", e.etype().as_str().into()));
    }
    if let Some(l) = &ctx.llm {
        f.push(("gen_ai.provider.name", l.provider.into()));
        f.push(("gen_ai.request.model", l.request_model.clone().into()));
        f.push(("gen_ai.response.model", l.response_model.clone().into()));
        f.push(("gen_ai.streaming", l.streaming.into()));
        if !l.failed_attempts.is_empty() {
            let failed: Vec<String> = l.failed_attempts.iter().map(|a| format!("{}:{}", a.backend, a.reason)).collect();
            f.push(("llm.failed_attempts", failed.join(",").into()));
        }
        if let Some(u) = l.usage {
            f.push(("gen_ai.usage.input_tokens", u.input_tokens.into()));
            f.push(("gen_ai.usage.output_tokens", u.output_tokens.into()));
            f.push(("gen_ai.usage.total_tokens", u.total_tokens.into()));
        }
        if let Some(c) = l.cost {
            f.push(("llm.cost", c.total.into()));
        }
    }
    if let Some(m) = &ctx.mcp {
        if !m.method.is_empty() {
            f.push(("mcp.method.name", m.method.clone().into()));
        }
        f.push(("mcp.target", m.target.clone().into()));
        match m.resource_type {
            Some("tool") => f.push(("gen_ai.tool.name", m.resource.clone().into())),
            Some("prompt") => f.push(("gen_ai.prompt.name", m.resource.clone().into())),
            Some(_) => f.push(("mcp.resource.uri", m.resource.clone().into())),
            None => {}
        }
        if let Some((code, message)) = &m.error {
            f.push(("mcp.error.code", (*code).into()));
            f.push(("mcp.error.message", message.clone().into()));
        }
    }
    // The principal (never the credential): who made the request.
    if let Some(sub) = ctx.jwt.as_ref().and_then(|j| j.subject()) {
        f.push(("jwt.sub", sub.into()));
    }
    if let Some(user) = &ctx.basic_auth_user {
        f.push(("basicAuth.username", (**user).into()));
    }
    if let Some(k) = &ctx.api_key {
        f.push(("apiKey.id", k.id.clone().into()));
    }
    f.retain(|(_, v)| !v.is_null());
    f
}

/// Adds a CEL result under `name`; `flatten`/`flattenRecursive` results become dotted keys.
pub fn add_field(fields: &mut Vec<(String, Json)>, name: &str, v: &cel::Value) {
    let (flatten, value) = match as_flatten(v) {
        Some((recursive, inner)) => (Some(recursive), inner),
        None => (None, v),
    };
    match value.json() {
        Ok(j) => add_json(fields, name, j, flatten),
        Err(_) => fields.retain(|(k, _)| k != name),
    }
}

/// Adds `j` under `name`, replacing an earlier field of that name; with `flatten` (recursive
/// or not), its children become dotted keys. A null is left out.
fn add_json(fields: &mut Vec<(String, Json)>, name: &str, j: Json, flatten: Option<bool>) {
    fields.retain(|(k, _)| k != name);
    match flatten {
        Some(recursive) => flatten_into(fields, name, j, recursive),
        None if !j.is_null() => fields.push((name.to_string(), j)),
        None => {}
    }
}

fn flatten_into(fields: &mut Vec<(String, Json)>, prefix: &str, v: Json, recursive: bool) {
    let mut key = String::with_capacity(prefix.len() + 32);
    key.push_str(prefix);
    flatten_at(fields, &mut key, v, recursive);
}

/// Adds `v` under `key` (a leaf) or its children under `key.child` (one key buffer, grown
/// and cut back, for every child).
fn flatten_at(fields: &mut Vec<(String, Json)>, key: &mut String, v: Json, recursive: bool) {
    let child = |fields: &mut Vec<(String, Json)>, key: &mut String, name: &str, value: Json| {
        let len = key.len();
        key.push('.');
        key.push_str(name);
        if recursive {
            flatten_at(fields, key, value, true);
        } else if !value.is_null() {
            fields.push((key.clone(), value));
        }
        key.truncate(len);
    };
    // Objects iterate in key order (serde_json's map is sorted).
    match v {
        Json::Array(items) => {
            let mut index = itoa::Buffer::new();
            for (i, x) in items.into_iter().enumerate() {
                child(fields, key, index.format(i), x);
            }
        }
        Json::Object(m) => {
            for (k, x) in m {
                child(fields, key, &k, x);
            }
        }
        Json::Null => {}
        leaf => fields.push((key.clone(), leaf)),
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
    let mut out = String::with_capacity(27);
    let mut digits = |n: u64, width: u32, after: char| {
        for p in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10u64.pow(p) % 10) as u8));
        }
        out.push(after);
    };
    if (0..=9999).contains(&y) {
        digits(y as u64, 4, '-');
    } else {
        // Outside four digits (never on a real clock): as `format!` would print it.
        return format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:06}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_micros());
    }
    digits(m.into(), 2, '-');
    digits(dd.into(), 2, 'T');
    digits(rem / 3600, 2, ':');
    digits(rem % 3600 / 60, 2, ':');
    digits(rem % 60, 2, '.');
    digits(d.subsec_micros().into(), 6, 'Z');
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

fn json_line<'a>(line: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a Json)>) {
    let (time, level, target) = (Json::String(timestamp()), Json::from("info"), Json::from("access"));
    let mut all: Vec<(&str, &Json)> = vec![("time", &time), ("level", &level), ("target", &target)];
    all.extend(fields.map(|(k, v)| -> (&str, &Json) { (k, v) }));
    // Keys in order, and a later field replaces an earlier one of the same name: the line a JSON
    // map of the fields would print, written straight from the values (no copies of them).
    all.sort_by(|a, b| a.0.cmp(b.0));
    line.reserve(512);
    let start = line.len();
    line.push(b'{');
    for (i, (key, value)) in all.iter().enumerate() {
        if all.get(i + 1).is_some_and(|(next, _)| next == key) {
            continue;
        }
        if line.len() > start + 1 {
            line.push(b',');
        }
        write_json_string(line, key);
        line.push(b':');
        match value {
            Json::String(text) => write_json_string(line, text),
            structured => {
                let _ = serde_json::to_writer(&mut *line, structured);
            }
        }
    }
    line.extend_from_slice(b"}\n");
}

/// `time info access request k=v ...`: a value with a space, quote or `=` (or an empty one)
/// is written as a JSON string; a structured value is its JSON text, quoted that way.
fn text_line<'a>(line: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a Json)>) {
    line.reserve(1024);
    line.extend_from_slice(timestamp().as_bytes());
    line.extend_from_slice(b" info access request");
    for (k, v) in fields {
        line.push(b' ');
        line.extend_from_slice(k.as_bytes());
        line.push(b'=');
        match v {
            Json::String(text) if text.is_empty() || memchr::memchr3(b' ', b'"', b'=', text.as_bytes()).is_some() => {
                write_json_string(line, text);
            }
            Json::String(text) => line.extend_from_slice(text.as_bytes()),
            structured if has_quote(structured) => {
                line.push(b'"');
                let mut quoted = serde_json::Serializer::with_formatter(&mut *line, QuotedJson);
                let _ = serde::Serialize::serialize(structured, &mut quoted);
                line.push(b'"');
            }
            // A number, boolean, `{}` or an array of those: no space, quote or `=` in its text.
            plain => {
                let _ = serde_json::to_writer(&mut *line, plain);
            }
        }
    }
    line.push(b'\n');
}

/// Whether `v`'s JSON text has a quote: it holds a string or a non-empty object (its keys are
/// strings). A space or `=` can only be inside a string, so this is "must be quoted".
fn has_quote(v: &Json) -> bool {
    match v {
        Json::String(_) => true,
        Json::Object(m) => !m.is_empty(),
        Json::Array(items) => items.iter().any(has_quote),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}

/// Writes JSON text already escaped as the contents of a JSON string, in one pass: what
/// `to_string(&to_string(v))` gives between its outer quotes, without the second scan and copy.
/// The text's own quotes become `\"`, its escapes are escaped again (`\n` becomes `\\n`),
/// and everything else (structure, numbers, unescaped runs of strings) needs no escaping.
struct QuotedJson;

impl serde_json::ser::Formatter for QuotedJson {
    fn begin_string<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"\\\"")
    }

    fn end_string<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"\\\"")
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(&mut self, w: &mut W, e: serde_json::ser::CharEscape) -> std::io::Result<()> {
        use serde_json::ser::CharEscape as E;
        let escaped: &[u8] = match e {
            E::Quote => b"\\\\\\\"",
            E::ReverseSolidus => b"\\\\\\\\",
            E::Solidus => b"\\\\/",
            E::Backspace => b"\\\\b",
            E::FormFeed => b"\\\\f",
            E::LineFeed => b"\\\\n",
            E::CarriageReturn => b"\\\\r",
            E::Tab => b"\\\\t",
            E::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let code = [b'\\', b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
                return w.write_all(&code);
            }
        };
        w.write_all(escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_line_of<'a>(fields: impl Iterator<Item = (&'a str, &'a Json)>) -> Vec<u8> {
        let mut line = Vec::new();
        text_line(&mut line, fields);
        line
    }

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
    fn flattens_one_level_and_skips_nulls() {
        let mut f = Vec::new();
        flatten_into(&mut f, "p", serde_json::json!({"b": {"x": 1}, "a": null, "c": [2]}), false);
        assert_eq!(f, vec![("p.b".to_string(), serde_json::json!({"x": 1})), ("p.c".to_string(), serde_json::json!([2]))]);
        flatten_into(&mut f, "leaf", Json::from(3), true);
        assert_eq!(f.last().unwrap(), &("leaf".to_string(), Json::from(3)));
    }

    #[test]
    fn a_json_line_is_the_fields_map_in_key_order_last_one_winning() {
        let (a, b, c, d) = (Json::from("x\"y"), serde_json::json!({"k": [1, 2.5]}), Json::from(1), Json::from(2));
        let mut line = Vec::new();
        json_line(&mut line, [("zeta", &a), ("alpha", &b), ("level", &c), ("alpha", &d)].into_iter());
        let text = String::from_utf8(line).unwrap();
        let parsed: serde_json::Map<String, Json> = serde_json::from_str(&text).unwrap();
        let mut expected = parsed.clone();
        expected.insert("alpha".into(), Json::from(2));
        expected.insert("level".into(), Json::from(1));
        expected.insert("zeta".into(), Json::from("x\"y"));
        assert_eq!(parsed, expected);
        assert_eq!(parsed.len(), 5);
        assert!(text.ends_with("\"zeta\":\"x\\\"y\"}\n"), "{text}");
        assert_eq!(serde_json::to_string(&parsed).unwrap() + "\n", text);
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_795_657_323, 456_789_000);
        assert_eq!(rfc3339(t), "2026-11-26T01:42:03.456789Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_text_line_quotes_what_needs_it() {
        let (a, b, c, d) = (Json::from("plain"), Json::from("two words"), serde_json::json!({"k": "v w"}), Json::from(""));
        let line = String::from_utf8(text_line_of([("a", &a), ("b", &b), ("c", &c), ("d", &d), ("n", &Json::from(1.5))].into_iter())).unwrap();
        let (_, rest) = line.split_once(" info access request").unwrap();
        assert_eq!(rest, " a=plain b=\"two words\" c=\"{\\\"k\\\":\\\"v w\\\"}\" d=\"\" n=1.5\n");
    }

    /// The one-pass quoting of a structured value writes what quoting its JSON text would:
    /// every character that JSON escapes, in keys and values, at any depth.
    #[test]
    fn a_structured_value_is_quoted_as_its_json_text_would_be() {
        let every_char: String = (0u8..=0x7f).map(char::from).chain("é€😀 =".chars()).collect();
        let values = [
            serde_json::json!({"k": "v w", "q\"\\": [1, "a=b", {"n": null, "t": true}], "e": {}, "l": []}),
            serde_json::json!([every_char.clone(), {every_char.clone(): every_char.clone()}]),
            serde_json::json!([1, 2.5, [true, null]]),
            serde_json::json!([[], {}]),
            serde_json::json!({}),
            serde_json::json!(-3),
        ];
        for v in &values {
            let text = serde_json::to_string(v).unwrap();
            let expected = if text.contains([' ', '"', '=']) { serde_json::to_string(&text).unwrap() } else { text };
            let line = String::from_utf8(text_line_of([("f", v)].into_iter())).unwrap();
            let (_, rest) = line.split_once(" info access request f=").unwrap();
            assert_eq!(rest, format!("{expected}\n"), "{v}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
    }
}
