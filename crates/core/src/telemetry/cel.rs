//! CEL for log and trace fields: one shared environment with agentgateway's extra
//! functions, expressions compiled at config load, evaluated against per-request variables.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::extractors::Arguments;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value};

pub mod direct;
pub mod macros;
pub mod uses;

/// The shared CEL environment: the standard library plus the strings, math and encoders
/// extensions (`lowerAscii`, `split`, `math.greatest`, `base64.encode`, ...).
pub fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        for ext in [cel::extensions::strings, cel::extensions::math, cel::extensions::encoders] {
            if let Err(e) = env.add_extension(ext) {
                tracing::warn!(target: "tollgate", error = ?e, "CEL extension not loaded");
            }
        }
        for m in macros::all() {
            if let Err(e) = env.add_macro(m) {
                tracing::warn!(target: "tollgate", error = ?e, "CEL macro not loaded");
            }
        }
        Arc::new(env)
    })
}

/// A compiled expression with its source (for errors and `/config_dump`).
#[derive(Clone)]
pub struct Expression {
    /// The text as written in the config.
    pub source: String,
    program: Arc<Program>,
    /// How it reads without running the program, if it has one of [`direct`]'s shapes.
    direct: Option<Arc<direct::Direct>>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

impl Expression {
    /// Compiles `source`; the error is a message for the config loader.
    pub fn compile(source: &str) -> Result<Expression, String> {
        let program = env().compile(source).map_err(|e| format!("invalid CEL expression `{source}`: {e}"))?;
        let direct = direct::Direct::of(program.expression()).map(Arc::new);
        Ok(Expression { source: source.to_string(), program: Arc::new(program), direct })
    }

    /// The syntax tree (for analyses such as [`uses`] and request-time fast paths).
    pub fn ast(&self) -> &cel::common::ast::IdedExpr {
        self.program.expression()
    }

    /// Evaluates against `ctx`.
    pub fn eval(&self, ctx: &Context) -> Result<Value, ExecutionError> {
        self.program.execute(ctx)
    }

    /// Whether the expression mentions `path` (e.g. `request.body`), textually. Used to decide
    /// what a request must capture; conservative for the forms agentgateway documents.
    pub fn mentions(&self, path: &str) -> bool {
        let (root, field) = path.split_once('.').unwrap_or((path, ""));
        self.source.contains(path) || self.source.contains(&format!("{root}[\"{field}\"]"))
    }
}

impl<'de> serde::Deserialize<'de> for Expression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Expression::compile(&source).map_err(serde::de::Error::custom)
    }
}

/// A context holding the extension functions; variables are added per evaluation.
pub fn new_context() -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env().clone());
    register_functions(&mut ctx);
    ctx
}

thread_local! {
    /// Per worker thread: the functions are registered once, not per request.
    static ROOT: Context<'static, 'static> = new_context();
}

/// A log or span field's value: JSON read directly ([`direct`]) or CEL's result.
pub enum FieldValue<'a> {
    /// Read without running CEL; to be expanded into dotted keys when the flag is set
    /// (`Some(true)`: `flattenRecursive`).
    Json(serde_json::Value, Option<bool>),
    /// CEL's result (it may be a `flatten` marker).
    Cel(&'a Value),
}

/// Evaluates expressions against one request's variables, each distinct expression once
/// (the seed config logs and traces the same ten fields).
pub struct Evaluator<'e, 's> {
    ctx: &'s Context<'s, 's>,
    memo: Vec<(&'e str, Option<Value>)>,
}

impl<'e> Evaluator<'e, '_> {
    /// The value of `expr`, or `None` when it fails (a missing key, a type error).
    pub fn eval(&mut self, expr: &'e Expression) -> Option<&Value> {
        let i = match self.memo.iter().position(|(src, _)| *src == expr.source) {
            Some(i) => i,
            None => {
                let v = expr
                    .eval(self.ctx)
                    .map_err(|e| tracing::debug!(target: "tollgate", expr = %expr.source, error = %e, "CEL field not evaluated"))
                    .ok();
                self.memo.push((&expr.source, v));
                self.memo.len() - 1
            }
        };
        self.memo[i].1.as_ref()
    }

    /// The value of a log or span field, or `None` when it fails. The shapes [`direct`] takes
    /// are read straight to JSON; anything else runs (and is remembered) as [`Self::eval`].
    pub fn field(&mut self, expr: &'e Expression) -> Option<FieldValue<'_>> {
        if let Some(d) = &expr.direct {
            match d.read(self.ctx) {
                direct::Read::Value(j) => return Some(FieldValue::Json(j, d.flatten())),
                direct::Read::Failed => return None,
                direct::Read::Unsupported => {}
            }
        }
        self.eval(expr).map(FieldValue::Cel)
    }
}

/// Runs `f` with an evaluator whose variables `bind` adds, on this thread's function registry.
/// The variables may borrow the request (`'v`): they live no longer than this call.
pub fn with_evaluator<'e, 'v, R>(
    bind: impl FnOnce(&mut Context<'_, 'v>),
    f: impl for<'s> FnOnce(&mut Evaluator<'e, 's>) -> R,
) -> R {
    ROOT.with(|root| {
        // The root holds no variables of its own, so a scope under it may hold shorter-lived ones.
        let root: &Context<'_, 'v> = root;
        let mut scope = root.new_inner_scope();
        bind(&mut scope);
        let mut ev = Evaluator { ctx: &scope, memo: Vec::new() };
        f(&mut ev)
    })
}

fn register_functions(ctx: &mut Context<'static, 'static>) {
    // Registration only fails on a name clash with the standard library, which these avoid.
    let _ = ctx.add_function("flattenRecursive", |v: Value| marker("recursive", v));
    let _ = ctx.add_function("flatten", |v: Value| marker("one", v));
    let _ = ctx.add_function("json", json_parse);
    let _ = ctx.add_function("toJson", to_json);
    let _ = ctx.add_function("default", |v: Value, fallback: Value| if v == Value::Null { fallback } else { v });
    let _ = ctx.add_function("coalesce", |Arguments(args): Arguments| {
        args.iter().find(|v| **v != Value::Null).cloned().unwrap_or(Value::Null)
    });
    let _ = ctx.add_function("merge", merge);
    let _ = ctx.add_function(macros::FROM_PAIRS, from_pairs);
    let _ = ctx.add_function("regexReplace", regex_replace);
    let _ = ctx.add_function("random", random);
    let _ = ctx.add_function("uuid", uuid);
}

/// What `flatten` / `flattenRecursive` return: the value, marked for the log writer to
/// expand into dotted keys. Opaque to expressions; `toJson` sees the value itself.
#[derive(Debug, PartialEq, Eq)]
struct Flatten {
    recursive: bool,
    value: Value,
}

impl cel::objects::Opaque for Flatten {
    fn runtime_type_name(&self) -> &str {
        "tollgate.Flatten"
    }

    fn json(&self) -> Option<serde_json::Value> {
        self.value.json().ok()
    }
}

fn marker(kind: &str, v: Value) -> Value {
    Value::Opaque(Arc::new(Flatten { recursive: kind == "recursive", value: v }))
}

/// If `v` is a `flatten`/`flattenRecursive` result: (recursive?, inner value).
pub fn as_flatten(v: &Value) -> Option<(bool, &Value)> {
    let Value::Opaque(o) = v else { return None };
    let f = o.downcast_ref::<Flatten>()?;
    Some((f.recursive, &f.value))
}

fn err(name: &str, msg: impl ToString) -> ExecutionError {
    ExecutionError::function_error(name, msg)
}

fn string_arg(name: &str, v: &Value) -> Result<String, ExecutionError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(err(name, format!("expected a string, got {other:?}"))),
    }
}

fn json_parse(v: Value) -> Result<Value, ExecutionError> {
    let text = string_arg("json", &v)?;
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| err("json", e))?;
    Ok(json_to_cel(parsed))
}

/// A JSON value as CEL sees it. Written out rather than through `cel::to_value` (serde):
/// tollgate parses JSON numbers exactly (`arbitrary_precision`, so MCP request ids keep every
/// digit), which serde would hand CEL as a private wrapper map instead of a number.
pub fn json_to_cel(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(Arc::new(s)),
        J::Array(a) => Value::List(Arc::new(a.into_iter().map(json_to_cel).collect())),
        J::Object(o) => {
            let map: HashMap<Key, Value> = o.into_iter().map(|(k, v)| (Key::from(k), json_to_cel(v))).collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

fn to_json(v: Value) -> Result<Value, ExecutionError> {
    let j = v.json().map_err(|e| err("toJson", e.to_string()))?;
    Ok(Value::String(Arc::new(j.to_string())))
}

fn merge(a: Value, b: Value) -> Result<Value, ExecutionError> {
    match (a, b) {
        (Value::Map(a), Value::Map(b)) => {
            let mut m: HashMap<Key, Value> = (*a.map).clone();
            m.extend(b.map.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Value::Map(Map { map: Arc::new(m) }))
        }
        _ => Err(err("merge", "expected two maps")),
    }
}

fn from_pairs(pairs: Value) -> Result<Value, ExecutionError> {
    let Value::List(items) = pairs else { return Err(err(macros::FROM_PAIRS, "expected a list")) };
    let mut m = HashMap::new();
    for item in items.iter() {
        let Value::List(kv) = item else { return Err(err(macros::FROM_PAIRS, "expected pairs")) };
        let key = match kv.first() {
            Some(Value::String(s)) => Key::String(s.clone()),
            Some(Value::Int(i)) => Key::Int(*i),
            Some(Value::UInt(u)) => Key::Uint(*u),
            Some(Value::Bool(b)) => Key::Bool(*b),
            _ => return Err(err(macros::FROM_PAIRS, "unsupported key")),
        };
        m.insert(key, kv.get(1).cloned().unwrap_or(Value::Null));
    }
    Ok(Value::Map(Map { map: Arc::new(m) }))
}

fn regex_replace(s: Value, pattern: Value, replacement: Value) -> Result<Value, ExecutionError> {
    let (s, p, r) = (string_arg("regexReplace", &s)?, string_arg("regexReplace", &pattern)?, string_arg("regexReplace", &replacement)?);
    let re = regex::Regex::new(&p).map_err(|e| err("regexReplace", e))?;
    Ok(Value::String(Arc::new(re.replace_all(&s, r.as_str()).into_owned())))
}

/// A random float in [0, 1).
fn random() -> Value {
    Value::Float(random_unit())
}

/// A random float in [0, 1), for sampling.
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A random (version 4) UUID.
fn uuid() -> Value {
    let (a, b) = (random_u64(), random_u64());
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let s = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    );
    Value::String(Arc::new(s))
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per instance: good enough for sampling and ids in logs.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[cfg(test)]
mod tests;
