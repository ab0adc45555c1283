//! Log and span fields that need no CEL program run: a literal (`'"openai.chat"'`) or a plain
//! path of fields (`request.headers`, `llm.params.temperature`, `request["body"]`), six of the
//! seed config's ten fields. They are read from the bound variables and written straight to
//! JSON. Through CEL, the value read (a header map, a body) is first copied into CEL's own
//! value tree and then converted again; the JSON is the same either way.

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
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
    /// `flatten(path)` or `flattenRecursive(path)`: the path's value, to be expanded into
    /// dotted keys.
    Flatten {
        /// `flattenRecursive`.
        recursive: bool,
        /// The plain path flattened.
        inner: Box<Direct>,
    },
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

    /// A literal or a plain path.
    fn path(ast: &IdedExpr) -> Option<Direct> {
        if let Expr::Literal(lit) = &ast.expr {
            return match val_json(lit.to_val().as_ref()) {
                Read::Value(j) => Some(Direct::Literal(j)),
                _ => None,
            };
        }
        let mut fields = Vec::new();
        let mut e = ast;
        loop {
            match &e.expr {
                Expr::Ident(var) => {
                    fields.reverse();
                    // A bare variable (`request`) is left to CEL: it is rarely a field of its own.
                    return (!fields.is_empty()).then(|| Direct::Path { var: var.clone(), fields });
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
        let (var, fields) = match self {
            Direct::Literal(j) => return Read::Value(j.clone()),
            Direct::Path { var, fields } => (var, fields),
            Direct::Flatten { inner, .. } => return inner.read(scope),
        };
        let Some(root) = scope.get_variable(var) else { return Read::Failed };
        let mut current: &dyn Val = root.as_ref();
        for field in fields {
            let Some(map) = current.downcast_ref::<CelMap>() else { return Read::Unsupported };
            // Looked up by a borrowed key, the entry lent: nothing copied.
            current = match map.get(&CelString::from(field.as_str())) {
                Ok(CowVal::Borrowed(v)) => v,
                Ok(CowVal::Owned(_)) => return Read::Unsupported,
                Err(_) => return Read::Failed,
            };
        }
        val_json(current)
    }
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
