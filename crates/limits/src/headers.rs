//! What a client learns about its limits: `x-ratelimit-limit`, `-remaining` and `-reset`
//! (seconds) on every response of a limited route, the tightest of its limits; a refused
//! request gets 429 in its API's error shape with `Retry-After` (seconds, rounded up).

use std::time::Duration;

use pingora::http::ResponseHeader;
use tollgate_core::errors::json_error;
use tollgate_core::filters::{LocalResponse, RequestCtx};

use crate::bucket::Outcome;

/// The tightest limit seen by this request, kept for its response header.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitHeaders(pub Outcome);

fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Keeps `o` if it is tighter than what the request already holds.
pub fn note(ctx: &mut RequestCtx, o: Outcome) {
    match ctx.extensions.get_mut::<RateLimitHeaders>() {
        Some(held) if held.0.remaining <= o.remaining => {}
        Some(held) => held.0 = o,
        None => {
            ctx.extensions.insert(RateLimitHeaders(o));
        }
    }
}

fn pairs(o: &Outcome) -> [(&'static str, String); 3] {
    [
        ("x-ratelimit-limit", o.limit.to_string()),
        ("x-ratelimit-remaining", o.remaining.to_string()),
        ("x-ratelimit-reset", secs_up(o.reset).to_string()),
    ]
}

/// Adds the held limit's headers to a response.
pub fn add_to(resp: &mut ResponseHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    if let Some(RateLimitHeaders(o)) = ctx.extensions.get::<RateLimitHeaders>() {
        for (name, value) in pairs(o) {
            resp.insert_header(name, value)?;
        }
    }
    Ok(())
}

/// The 429 for a refused request.
pub fn too_many(ctx: &RequestCtx, o: &Outcome, what: &str) -> LocalResponse {
    let message = format!("rate limit exceeded: {what}");
    let mut resp = json_error(ctx.error_format, 429, "rate_limit_exceeded", &message)
        .header("retry-after", secs_up(o.retry_after).max(1).to_string());
    for (name, value) in pairs(o) {
        resp = resp.header(name, value);
    }
    resp
}
