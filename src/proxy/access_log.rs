//! The access log: one line per request after it ends, streams included.
//! (CEL-defined fields from `config.logging.fields` come with the observability work.)

use pingora::proxy::Session;
use pingora::Error;

use crate::ctx::RequestCtx;

/// Writes the request's access-log line at `info` on target `access`.
pub fn write(session: &Session, error: Option<&Error>, ctx: &RequestCtx) {
    let req = session.req_header();
    let route = ctx.route.as_ref().map(|r| r.name.as_str()).unwrap_or("-");
    let backend = ctx.backend.as_ref().map(|b| b.name.as_str()).unwrap_or("-");
    let status = ctx.status.unwrap_or(0);
    let duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0;
    let error = error.map(|e| e.etype().as_str()).unwrap_or("");
    let llm = ctx.llm.as_ref();
    let usage = llm.and_then(|l| l.usage).unwrap_or_default();
    tracing::info!(
        target: "access",
        method = %req.method,
        path = %ctx.original_path,
        status,
        route,
        backend,
        duration_ms,
        error,
        llm.provider = llm.map(|l| l.provider).unwrap_or(""),
        llm.request_model = llm.and_then(|l| l.request_model.as_deref()).unwrap_or(""),
        llm.response_model = llm.and_then(|l| l.response_model.as_deref()).unwrap_or(""),
        llm.streaming = llm.is_some_and(|l| l.streaming),
        llm.input_tokens = usage.input_tokens,
        llm.output_tokens = usage.output_tokens,
        llm.total_tokens = usage.total_tokens,
        "request"
    );
}
