//! CEL evaluated while a request is in flight, by policies (a rate limit's `key` and
//! `condition`): the variables agentgateway offers at that point (`request`, `source`,
//! `apiKey`, `backend`), built from the live request and only the fields the policy's
//! expressions read.

use std::net::SocketAddr;

use pingora::http::RequestHeader;

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
                        "apiKey" => {
                            if let Some(claims) = &ctx.api_key {
                                scope.add_variable_from_value("apiKey", vars::api_key(claims));
                            }
                        }
                        _ => {}
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
