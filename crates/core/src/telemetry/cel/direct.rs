//! Log and span fields that need no CEL program run: a literal (`'"openai.chat"'`), a plain
//! path of fields (`request.headers`, `llm.params.temperature`, `request["body"]`), a `.map()`
//! of a path into a template (`llm.completion.map(c, {"role": "assistant", "content": c})`),
//! and `flatten`/`flattenRecursive` of these: all ten of the seed config's fields. They are
//! read from the bound variables and written straight to JSON. Through CEL, the value read (a
//! header map, a body) is first copied into CEL's own value tree and then converted again; the
//! JSON is the same either way.

use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, MapEntryExpr};
use cel::common::types::{CelList, CelMap, CelMapKey, CelString};
use cel::common::traits::Indexer;
use cel::common::value::{CowVal, Val};
use cel::Context;
use serde_json::Value as Json;

/// The shape of an expression that can be read directly.
#[derive(Debug, Clone, PartialEq)]
pub enum Direct {
    /// A literal: its JSON, worked out once.
    Literal(Json),
    /// `var.field.field...` (or `var["field"]`): a variable and the map keys under it.
    Path {
        /// The variable (`request`, `llm`, ...).
        var: String,
        /// The keys, outermost first.
        fields: Vec<String>,
    },
    /// `path.map(x, template)`: each item of the list at `path` made into `template`, a map
    /// literal (`{"role": "assistant", "content": x}`), `x`, a path under `x` or a literal.
    MapList {
        /// The variable holding the list.
        var: String,
        /// The keys under it, outermost first.
        fields: Vec<String>,
        /// What each item becomes.
        template: Template,
    },
    /// `flatten(path)` or `flattenRecursive(path)`: the path's value, to be expanded into
    /// dotted keys.
    Flatten {
        /// `flattenRecursive`.
        recursive: bool,
        /// The plain path flattened.
        inner: Box<Direct>,
    },
}

/// What `.map()` makes of each item.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A literal.
    Literal(Json),
    /// The item, or a path of map keys under it (`x.role`).
    Item(Vec<String>),
    /// A map literal with string keys.
    Object(Vec<(String, Template)>),
}

/// What a direct read gave.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// The value, as CEL's result converted to JSON would be.
    Value(Json),
    /// CEL would fail (no such variable or key): the field is left out.
    Failed,
    /// A value this reader does not convert (bytes, a non-string map key, a custom type):
    /// evaluate with CEL instead.
    Unsupported,
}

impl Direct {
    /// The direct form of `ast`, if it has one.
    pub fn of(ast: &IdedExpr) -> Option<Direct> {
        if let Expr::Call(c) = &ast.expr {
            let recursive = match c.func_name.as_str() {
                "flattenRecursive" => true,
                "flatten" => false,
                _ => return Direct::path(ast),
            };
            return match (&c.target, c.args.as_slice()) {
                (None, [arg]) => Some(Direct::Flatten { recursive, inner: Box::new(Direct::path(arg)?) }),
                _ => None,
            };
        }
        Direct::path(ast)
    }

    /// A literal, a plain path or a `.map()` of one.
    fn path(ast: &IdedExpr) -> Option<Direct> {
        match &ast.expr {
            Expr::Literal(lit) => match val_json(lit.to_val().as_ref()) {
                Read::Value(j) => Some(Direct::Literal(j)),
                _ => None,
            },
            Expr::Comprehension(c) => Direct::map_list(c),
            _ => {
                let (var, fields) = fields_of(ast)?;
                // A bare variable (`request`) is left to CEL: it is rarely a field of its own.
                (!fields.is_empty()).then_some(Direct::Path { var, fields })
            }
        }
    }

    /// `range.map(item, template)` as the parser expands it: a comprehension that appends
    /// `[template]` to an empty list for each item, with no filter.
    fn map_list(c: &ComprehensionExpr) -> Option<Direct> {
        const ACCU: &str = "@result";
        let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == ACCU);
        let empty_list = matches!(&c.accu_init.expr, Expr::List(l) if l.elements.is_empty());
        let always = matches!(&c.loop_cond.expr, Expr::Literal(LiteralValue::Boolean(b)) if *b.inner());
        if c.accu_var != ACCU || c.iter_var2.is_some() || !empty_list || !always || !is_accu(&c.result) {
            return None;
        }
        let Expr::Call(step) = &c.loop_step.expr else { return None };
        let template = match (step.func_name.as_str(), &step.target, step.args.as_slice()) {
            ("_+_", None, [accu, IdedExpr { expr: Expr::List(one), .. }])
                if is_accu(accu) && one.elements.len() == 1 && one.optional_indices.is_empty() =>
            {
                template_of(&one.elements[0], &c.iter_var)?
            }
            _ => return None,
        };
        match Direct::path(&c.iter_range)? {
            Direct::Path { var, fields } => Some(Direct::MapList { var, fields, template }),
            _ => None,
        }
    }

    /// Whether the value is to be flattened (`Some(recursive)`).
    pub fn flatten(&self) -> Option<bool> {
        match self {
            Direct::Flatten { recursive, .. } => Some(*recursive),
            _ => None,
        }
    }

    /// Reads the value from the variables bound in `scope` (a flattened path's value as it
    /// is; see [`Self::flatten`]).
    pub fn read(&self, scope: &Context<'_, '_>) -> Read {
        match self {
            Direct::Literal(j) => Read::Value(j.clone()),
            Direct::Path { var, fields } => with_path(scope, var, fields, val_json),
            Direct::Flatten { inner, .. } => inner.read(scope),
            Direct::MapList { var, fields, template } => {
                with_path(scope, var, fields, |v| {
                    let Some(list) = v.downcast_ref::<CelList>() else { return Read::Unsupported };
                    let mut items = Vec::with_capacity(list.inner().len());
                    for item in list.inner() {
                        match template.make(item.as_ref()) {
                            Read::Value(j) => items.push(j),
                            other => return other,
                        }
                    }
                    Read::Value(Json::Array(items))
                })
            }
        }
    }
}

impl Template {
    /// The template filled in with `item`.
    fn make(&self, item: &dyn Val) -> Read {
        match self {
            Template::Literal(j) => Read::Value(j.clone()),
            Template::Item(fields) => match walk(item, fields) {
                Ok(v) => val_json(v),
                Err(read) => read,
            },
            Template::Object(entries) => {
                let mut object = serde_json::Map::new();
                for (k, t) in entries {
                    match t.make(item) {
                        Read::Value(j) => object.insert(k.clone(), j),
                        other => return other,
                    };
                }
                Read::Value(Json::Object(object))
            }
        }
    }
}

/// The template of a `.map()` over `item`, if it is one of [`Template`]'s shapes.
fn template_of(e: &IdedExpr, item: &str) -> Option<Template> {
    match &e.expr {
        Expr::Literal(lit) => match val_json(lit.to_val().as_ref()) {
            Read::Value(j) => Some(Template::Literal(j)),
            _ => None,
        },
        Expr::Map(m) => {
            let mut entries: Vec<(String, Template)> = Vec::with_capacity(m.entries.len());
            for entry in &m.entries {
                let EntryExpr::MapEntry(MapEntryExpr { key, value, optional: false }) = &entry.expr else { return None };
                let Expr::Literal(LiteralValue::String(k)) = &key.expr else { return None };
                // A repeated key is an error in CEL: left to it.
                if entries.iter().any(|(seen, _)| seen == k.inner()) {
                    return None;
                }
                entries.push((k.inner().to_string(), template_of(value, item)?));
            }
            Some(Template::Object(entries))
        }
        _ => match fields_of(e)? {
            (var, fields) if var == item => Some(Template::Item(fields)),
            _ => None,
        },
    }
}

/// `var.a.b` or `var["a"]["b"]`: the variable and the keys, outermost first.
fn fields_of(ast: &IdedExpr) -> Option<(String, Vec<String>)> {
    let mut fields = Vec::new();
    let mut e = ast;
    loop {
        match &e.expr {
            Expr::Ident(var) => {
                fields.reverse();
                return Some((var.clone(), fields));
            }
            Expr::Select(s) if !s.test => {
                fields.push(s.field.clone());
                e = &s.operand;
            }
            Expr::Call(c) if c.func_name == "_[_]" && c.target.is_none() => match c.args.as_slice() {
                [operand, IdedExpr { expr: Expr::Literal(LiteralValue::String(k)), .. }] => {
                    fields.push(k.inner().to_string());
                    e = operand;
                }
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// Calls `f` with the value at `var.fields...` in `scope`.
fn with_path(scope: &Context<'_, '_>, var: &str, fields: &[String], f: impl FnOnce(&dyn Val) -> Read) -> Read {
    let Some(root) = scope.get_variable(var) else { return Read::Failed };
    match walk(root.as_ref(), fields) {
        Ok(v) => f(v),
        Err(read) => read,
    }
}

/// The value under `v` at the map keys `fields`: lent, looked up by borrowed keys.
fn walk<'b, 'v>(mut v: &'b (dyn Val + 'v), fields: &[String]) -> Result<&'b (dyn Val + 'v), Read> {
    for field in fields {
        let Some(map) = v.downcast_ref::<CelMap>() else { return Err(Read::Unsupported) };
        v = match map.get(&CelString::from(field.as_str())) {
            Ok(CowVal::Borrowed(next)) => next,
            Ok(CowVal::Owned(_)) => return Err(Read::Unsupported),
            Err(_) => return Err(Read::Failed),
        };
    }
    Ok(v)
}

/// A CEL value as JSON, as `cel::Value::json` gives it after CEL's own conversion.
fn val_json(v: &dyn Val) -> Read {
    if let Some(s) = v.downcast_ref::<CelString>() {
        return Read::Value(Json::String(s.inner().to_owned()));
    }
    if let Some(list) = v.downcast_ref::<CelList>() {
        let mut items = Vec::with_capacity(list.inner().len());
        for item in list.inner() {
            match val_json(item.as_ref()) {
                Read::Value(j) => items.push(j),
                other => return other,
            }
        }
        return Read::Value(Json::Array(items));
    }
    if let Some(map) = v.downcast_ref::<CelMap>() {
        let mut object = serde_json::Map::new();
        for (k, item) in map.inner() {
            let CelMapKey::String(k) = k else { return Read::Unsupported };
            match val_json(item.as_ref()) {
                Read::Value(j) => object.insert(k.inner().to_owned(), j),
                other => return other,
            };
        }
        return Read::Value(Json::Object(object));
    }
    // Numbers, booleans and null: CEL's own conversion (cheap for these); bytes and the rest
    // go to CEL, which knows how it prints them.
    match cel::Value::try_from(v) {
        Ok(value @ (cel::Value::Int(_) | cel::Value::UInt(_) | cel::Value::Float(_) | cel::Value::Bool(_) | cel::Value::Null)) => {
            value.json().map_or(Read::Unsupported, Read::Value)
        }
        _ => Read::Unsupported,
    }
}

#[cfg(test)]
mod tests;
