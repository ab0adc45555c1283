//! agentgateway's binding and map macros, expanded at parse time into CEL comprehensions:
//! `x.with(b, expr)` (bind `b` to `x` in `expr`), `m.filterKeys(k, pred)` and
//! `m.mapValues(v, f)`. The map results are assembled by two helper functions.

use cel::common::ast::operators;
use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue};
use cel::parser::{Macro, MacroExprHelper, ParseError};

/// Builds a map from `[[key, value], ...]`.
pub const FROM_PAIRS: &str = "__tollgate_from_pairs";

/// The macros to register on the environment.
pub fn all() -> Vec<Macro> {
    vec![Macro::receiver("with", 2, with), Macro::receiver("filterKeys", 2, filter_keys), Macro::receiver("mapValues", 2, map_values)]
}


fn ident(h: &MacroExprHelper, e: &IdedExpr) -> Result<String, ParseError> {
    match &e.expr {
        Expr::Ident(name) => Ok(name.clone()),
        _ => Err(h.new_error(e.id, "argument must be a simple name")),
    }
}

fn call(h: &mut MacroExprHelper, name: &str, args: Vec<IdedExpr>) -> IdedExpr {
    h.next_expr(Expr::Call(CallExpr { func_name: name.to_string(), target: None, args }))
}

fn list(h: &mut MacroExprHelper, items: Vec<IdedExpr>) -> IdedExpr {
    h.next_expr(Expr::List(ListExpr::new(items)))
}

fn boolean(h: &mut MacroExprHelper, v: bool) -> IdedExpr {
    h.next_expr(Expr::Literal(LiteralValue::Boolean(v.into())))
}

/// `bind(name, value, body)`: a comprehension over nothing whose accumulator is `name`.
fn bind(h: &mut MacroExprHelper, name: String, value: IdedExpr, body: IdedExpr) -> IdedExpr {
    let range = list(h, vec![]);
    let cond = boolean(h, false);
    let step = h.next_expr(Expr::Ident(name.clone()));
    h.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: "#unused".into(),
        iter_var2: None,
        accu_var: name,
        accu_init: value,
        loop_cond: cond,
        loop_step: step,
        result: body,
    })))
}

/// A comprehension over the keys of `range` (as `key`) collecting `element` where `keep` holds.
fn collect(h: &mut MacroExprHelper, range: IdedExpr, key: String, element: IdedExpr, keep: Option<IdedExpr>) -> IdedExpr {
    let accu = "@result".to_string();
    let init = list(h, vec![]);
    let cond = boolean(h, true);
    let acc_ref = h.next_expr(Expr::Ident(accu.clone()));
    let one = list(h, vec![element]);
    let mut step = call(h, operators::ADD, vec![acc_ref, one]);
    if let Some(keep) = keep {
        let acc_ref = h.next_expr(Expr::Ident(accu.clone()));
        step = call(h, operators::CONDITIONAL, vec![keep, step, acc_ref]);
    }
    let result = h.next_expr(Expr::Ident(accu.clone()));
    h.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: key,
        iter_var2: None,
        accu_var: accu,
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result,
    })))
}

fn with(h: &mut MacroExprHelper, target: &mut Option<IdedExpr>, args: &mut Vec<IdedExpr>) -> Result<Option<IdedExpr>, ParseError> {
    let name = ident(h, &args[0])?;
    let (Some(value), Some(body)) = (target.take(), args.pop()) else { return Ok(None) };
    Ok(Some(bind(h, name, value, body)))
}

fn filter_keys(h: &mut MacroExprHelper, target: &mut Option<IdedExpr>, args: &mut Vec<IdedExpr>) -> Result<Option<IdedExpr>, ParseError> {
    let key = ident(h, &args[0])?;
    let (Some(map), Some(pred)) = (target.take(), args.pop()) else { return Ok(None) };
    // [[k, m[k]] for k in m if pred] → map
    let k1 = h.next_expr(Expr::Ident(key.clone()));
    let k2 = h.next_expr(Expr::Ident(key.clone()));
    let value = call(h, operators::INDEX, vec![map.clone(), k2]);
    let pair = list(h, vec![k1, value]);
    let pairs = collect(h, map, key, pair, Some(pred));
    Ok(Some(call(h, FROM_PAIRS, vec![pairs])))
}

fn map_values(h: &mut MacroExprHelper, target: &mut Option<IdedExpr>, args: &mut Vec<IdedExpr>) -> Result<Option<IdedExpr>, ParseError> {
    let var = ident(h, &args[0])?;
    let (Some(map), Some(f)) = (target.take(), args.pop()) else { return Ok(None) };
    // [[k, bind(v, m[k], f)] for k in m] → map
    let key = "@key".to_string();
    let k1 = h.next_expr(Expr::Ident(key.clone()));
    let k2 = h.next_expr(Expr::Ident(key.clone()));
    let value = call(h, operators::INDEX, vec![map.clone(), k2]);
    let mapped = bind(h, var, value, f);
    let pair = list(h, vec![k1, mapped]);
    let pairs = collect(h, map, key, pair, None);
    Ok(Some(call(h, FROM_PAIRS, vec![pairs])))
}

