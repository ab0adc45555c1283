//! CEL evaluated while a request is in flight, by policies (a rate limit's `key` and
//! `condition`, authorization rules): the variables agentgateway offers at that point
//! (`request`, `source`, `backend`, and the principals `apiKey`, `jwt`, `basicAuth`,
//! `extauthz`), built from the live request and only the fields the policy's
//! expressions read.

use std::net::SocketAddr;

use pingora::http::RequestHeader;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use super::cel::uses::Uses;
use super::cel::{with_evaluator, Evaluator, Expression};
use super::vars::{self, Facts};
use crate::ctx::RequestCtx;

/// The variables a set of expressions needs, worked out once when the policy is built.
#[derive(Debug, Clone, Default)]
pub struct RequestScope {
    uses: Uses,
}

impl RequestScope {
    /// The scope `exprs` need.
    pub fn of<'a>(exprs: impl IntoIterator<Item = &'a Expression>) -> RequestScope {
        RequestScope { uses: Uses::of(exprs) }
    }

    /// Runs `f` with an evaluator over this request's variables.
    pub fn eval<'e, R>(
        &self,
        req: &RequestHeader,
        source: Option<SocketAddr>,
        ctx: &RequestCtx,
        f: impl for<'s> FnOnce(&mut Evaluator<'e, 's>) -> R,
    ) -> R {
        let facts = Facts { source, redact: &[] };
        with_evaluator(
            |scope| {
                for name in self.uses.names() {
                    let Some(wants) = self.uses.var(name) else { continue };
                    match name {
                        "request" => scope.add_variable_as_val(name, vars::live_request(req, wants)),
                        "source" => scope.add_variable_as_val(name, vars::source(&facts, ctx, wants)),
                        "backend" => scope.add_variable_as_val(name, vars::backend(ctx, wants)),
                        other => {
                            if let Some(v) = vars::principal(ctx, other) {
                                scope.add_variable_from_value(other, v);
                            }
                        }
                    }
                }
            },
            f,
        )
    }
}

/// A CEL value as the text a key or label uses: strings as they are, numbers and booleans
/// printed; `None` for null, lists, maps and errors.
pub fn value_text(v: &::cel::Value) -> Option<String> {
    match v {
        ::cel::Value::String(s) => Some(s.to_string()),
        ::cel::Value::Int(i) => Some(i.to_string()),
        ::cel::Value::UInt(u) => Some(u.to_string()),
        ::cel::Value::Float(f) => Some(f.to_string()),
        ::cel::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A request-time expression that only reads one text value (`apiKey.id`, `apiKey.team`,
/// `source.address`, `request.path`, `request.headers["x-user"]`): read directly, without a
/// CEL evaluation (the per-request key of a rate limit or budget is usually one of these).
/// Gives what CEL would: the text, or `None` where CEL fails (a missing header or key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextPath {
    /// `apiKey.id`.
    ApiKeyId,
    /// `apiKey.<field>`: a metadata field that is text, a number or a boolean.
    ApiKeyField(String),
    /// `source.address`.
    SourceAddress,
    /// `request.path`.
    RequestPath,
    /// `request.method`.
    RequestMethod,
    /// `request.headers["name"]` (values of a repeated header joined with `,`).
    Header(http::HeaderName),
}

fn member<'a>(e: &'a IdedExpr) -> Option<(&'a IdedExpr, &'a str)> {
    match &e.expr {
        Expr::Select(s) if !s.test => Some((&s.operand, s.field.as_str())),
        Expr::Call(c) if c.func_name == "_[_]" && c.target.is_none() => match c.args.as_slice() {
            [operand, IdedExpr { expr: Expr::Literal(LiteralValue::String(k)), .. }] => Some((operand, k.inner())),
            _ => None,
        },
        _ => None,
    }
}

fn ident(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Ident(n) => Some(n.as_str()),
        _ => None,
    }
}

impl TextPath {
    /// The fast path `expr` takes, if it is one of the shapes above.
    pub fn of(expr: &Expression) -> Option<TextPath> {
        let (operand, field) = member(expr.ast())?;
        match (ident(operand), field) {
            (Some("apiKey"), "id") => Some(TextPath::ApiKeyId),
            (Some("apiKey"), "key") => None,
            (Some("apiKey"), f) => Some(TextPath::ApiKeyField(f.to_string())),
            (Some("source"), "address") => Some(TextPath::SourceAddress),
            (Some("request"), "path") => Some(TextPath::RequestPath),
            (Some("request"), "method") => Some(TextPath::RequestMethod),
            (None, name) => {
                let (inner, headers) = member(operand)?;
                // CEL's header map has lowercase keys: another spelling is left to CEL (absent).
                (ident(inner) == Some("request") && headers == "headers" && !name.bytes().any(|b| b.is_ascii_uppercase()))
                    .then(|| http::HeaderName::from_bytes(name.as_bytes()).ok().map(TextPath::Header))
                    .flatten()
            }
            _ => None,
        }
    }

    /// The value for this request.
    pub fn text(&self, req: &RequestHeader, source: Option<SocketAddr>, ctx: &RequestCtx) -> Option<String> {
        match self {
            TextPath::ApiKeyId => ctx.api_key.as_ref().map(|k| k.id.clone()),
            TextPath::ApiKeyField(f) => match ctx.api_key.as_ref()?.metadata.get(f)? {
                serde_json::Value::String(s) => Some(s.clone()),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
                _ => None,
            },
            TextPath::SourceAddress => source.map(|a| a.ip().to_canonical().to_string()),
            TextPath::RequestPath => Some(req.uri.path().to_string()),
            TextPath::RequestMethod => Some(req.method.as_str().to_string()),
            TextPath::Header(name) => {
                let mut values = req.headers.get_all(name).iter().map(|v| super::vars::utf8_lossy(v.as_bytes()));
                let first = values.next()?;
                Some(values.fold(first.into_owned(), |mut acc, v| {
                    acc.push(',');
                    acc.push_str(&v);
                    acc
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(src: &str) -> Option<TextPath> {
        TextPath::of(&Expression::compile(src).unwrap())
    }

    #[test]
    fn simple_reads_take_the_fast_path_and_the_rest_do_not() {
        assert_eq!(path("apiKey.id"), Some(TextPath::ApiKeyId));
        assert_eq!(path("apiKey.team"), Some(TextPath::ApiKeyField("team".into())));
        assert_eq!(path("apiKey[\"tier\"]"), Some(TextPath::ApiKeyField("tier".into())));
        assert_eq!(path("source.address"), Some(TextPath::SourceAddress));
        assert_eq!(path("request.headers[\"x-user\"]"), Some(TextPath::Header(http::HeaderName::from_static("x-user"))));
        assert_eq!(path("request.headers[\"X-User\"]"), None);
        assert_eq!(path("apiKey.key"), None);
        assert_eq!(path("has(apiKey.id)"), None);
        assert_eq!(path("apiKey.id + \"x\""), None);
        assert_eq!(path("request.headers"), None);

        let mut req = RequestHeader::build("GET", b"/p", None).unwrap();
        req.append_header("x-user", "a").unwrap();
        req.append_header("x-user", "b").unwrap();
        let ctx = RequestCtx::default();
        assert_eq!(path("request.headers[\"x-user\"]").unwrap().text(&req, None, &ctx).as_deref(), Some("a,b"));
        assert_eq!(path("request.headers[\"x-none\"]").unwrap().text(&req, None, &ctx), None);
        assert_eq!(path("apiKey.id").unwrap().text(&req, None, &ctx), None);
    }
}
