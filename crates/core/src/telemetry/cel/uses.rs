//! Which parts of the request variables the configured expressions read, from their syntax
//! trees: a request binds only those (`request.path` alone never copies the body or builds
//! the header map).

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::Expression;

/// How one top-level variable (`request`, `llm`, ...) is read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Use {
    /// Read as a value of its own (`toJson(request)`, `x in llm`): every field is bound.
    pub whole: bool,
    /// Fields read by name (`request.body`, `request["headers"]`, `has(llm.prompt)`).
    pub fields: Vec<String>,
}

impl Use {
    /// Whether `field` must be bound.
    pub fn wants(&self, field: &str) -> bool {
        self.whole || self.fields.iter().any(|f| f == field)
    }
}

/// The uses of every variable any of the expressions reads.
#[derive(Debug, Default, Clone)]
pub struct Uses {
    vars: Vec<(String, Use)>,
}

impl Uses {
    /// Collects the uses in `exprs`.
    pub fn of<'a>(exprs: impl IntoIterator<Item = &'a Expression>) -> Uses {
        let mut uses = Uses::default();
        for e in exprs {
            walk(e.program.expression(), &mut Vec::new(), &mut uses);
        }
        uses
    }

    /// How `var` is read; `None` when no expression reads it.
    pub fn var(&self, var: &str) -> Option<&Use> {
        self.vars.iter().find(|(v, _)| v == var).map(|(_, u)| u)
    }

    /// The variables read, in a stable order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(v, _)| v.as_str())
    }

    fn entry(&mut self, var: &str) -> &mut Use {
        let i = match self.vars.iter().position(|(v, _)| v == var) {
            Some(i) => i,
            None => {
                self.vars.push((var.to_string(), Use::default()));
                self.vars.len() - 1
            }
        };
        &mut self.vars[i].1
    }

    fn field(&mut self, var: &str, field: &str) {
        let u = self.entry(var);
        if !u.fields.iter().any(|f| f == field) {
            u.fields.push(field.to_string());
        }
    }
}

/// `bound`: comprehension variables in scope, which shadow the request variables.
fn walk(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Uses) {
    let free = |name: &str, bound: &Vec<String>| !bound.iter().any(|b| b == name);
    match &e.expr {
        Expr::Ident(name) if free(name, bound) => out.entry(name).whole = true,
        Expr::Select(s) => match &s.operand.expr {
            Expr::Ident(name) if free(name, bound) => out.field(name, &s.field),
            _ => walk(&s.operand, bound, out),
        },
        Expr::Call(call) => {
            let literal_index = match (call.func_name.as_str(), call.args.as_slice()) {
                ("_[_]", [IdedExpr { expr: Expr::Ident(name), .. }, IdedExpr { expr: Expr::Literal(LiteralValue::String(k)), .. }])
                    if free(name, bound) =>
                {
                    Some((name, k.inner()))
                }
                _ => None,
            };
            match literal_index {
                Some((name, key)) => out.field(name, key),
                None => {
                    for arg in call.target.iter().map(|t| &**t).chain(call.args.iter()) {
                        walk(arg, bound, out);
                    }
                }
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, out);
            walk(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.extend([Some(c.iter_var.clone()), c.iter_var2.clone(), Some(c.accu_var.clone())].into_iter().flatten());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                walk(part, bound, out);
            }
            bound.truncate(depth);
        }
        Expr::List(l) => l.elements.iter().for_each(|x| walk(x, bound, out)),
        Expr::Map(m) => m.entries.iter().for_each(|x| walk_entry(&x.expr, bound, out)),
        Expr::Struct(s) => s.entries.iter().for_each(|x| walk_entry(&x.expr, bound, out)),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry(e: &EntryExpr, bound: &mut Vec<String>, out: &mut Uses) {
    match e {
        EntryExpr::MapEntry(m) => {
            walk(&m.key, bound, out);
            walk(&m.value, bound, out);
        }
        EntryExpr::StructField(f) => walk(&f.value, bound, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(sources: &[&str]) -> Uses {
        let exprs: Vec<Expression> = sources.iter().map(|s| Expression::compile(s).unwrap()).collect();
        Uses::of(&exprs)
    }

    #[test]
    fn fields_read_by_name_are_all_that_is_bound() {
        let u = uses(&["request.path", "request[\"method\"]", "has(llm.prompt)", "llm.params.temperature"]);
        let req = u.var("request").unwrap();
        assert!(!req.whole && req.wants("path") && req.wants("method") && !req.wants("body"));
        let llm = u.var("llm").unwrap();
        assert!(llm.wants("prompt") && llm.wants("params") && !llm.wants("completion"));
        assert!(u.var("response").is_none());
    }

    #[test]
    fn a_variable_used_as_a_value_is_bound_whole() {
        assert!(uses(&["toJson(request)"]).var("request").unwrap().whole);
        assert!(uses(&["flattenRecursive(llm.prompt.map(c, {\"message\": c}))"]).var("llm").unwrap().wants("prompt"));
        assert!(!uses(&["llm.prompt.map(c, c.role)"]).var("llm").unwrap().whole);
        // A dynamic key may read any field.
        assert!(uses(&["request[request.path]"]).var("request").unwrap().whole);
    }

    #[test]
    fn comprehension_variables_shadow_request_variables() {
        let u = uses(&["llm.prompt.map(request, request.role)"]);
        assert!(u.var("request").is_none());
        assert!(u.var("llm").unwrap().wants("prompt"));
    }
}
