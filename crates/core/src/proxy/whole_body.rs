//! Reading a request body whole before the upstream is chosen (the model names the path, a
//! signature covers the body, failover resends it), within the body limit, and handing it to
//! Pingora to replay to the upstream (and on a retry) as it is: lent, not copied again (see
//! vendor/README.md: `set_retry_body`).

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;

use crate::ctx::ErrorFormat;
use crate::errors::json_error;
use crate::filters::LocalResponse;

/// The whole body, or a 413 in `format` when it exceeds `limit` bytes (declared or sent).
/// `Expect: 100-continue` is answered here, after the size check (the upstream gets the body
/// with no such wait). An HTTP/1 body of declared length is read into one buffer, uncopied;
/// another (chunked, HTTP/2) is gathered once, unless it came in one read.
pub async fn read_whole_body(session: &mut Session, limit: usize, format: ErrorFormat) -> Result<std::result::Result<Bytes, LocalResponse>> {
    let too_large = || json_error(format, 413, "request_too_large", &format!("request body exceeds the {limit} byte limit"));
    let declared = session.req_header().headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(Err(too_large()));
    }
    if session.req_header().headers.contains_key(http::header::EXPECT) {
        session.req_header_mut().remove_header(&http::header::EXPECT);
        session.write_continue_response().await?;
    }
    let lend = session.can_set_retry_body();
    if !lend {
        session.enable_retry_buffering_up_to(limit);
    }
    // An HTTP/1 body of declared length (within the limit, checked above) is read straight
    // into one buffer: no 64 KiB reads copied out and gathered again.
    if declared.is_some() {
        if let Some(body) = session.read_request_body_whole().await? {
            if lend {
                session.set_retry_body(body.clone());
            }
            return Ok(Ok(body));
        }
    }
    let mut first: Option<Bytes> = None;
    let mut gathered: Vec<u8> = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        let held = first.as_ref().map_or(gathered.len(), Bytes::len);
        if held + chunk.len() > limit {
            return Ok(Err(too_large()));
        }
        if let Some(f) = first.take() {
            gathered.reserve_exact(declared.unwrap_or(0).min(1 << 20).max(f.len() + chunk.len()));
            gathered.extend_from_slice(&f);
        } else if gathered.is_empty() {
            first = Some(chunk);
            continue;
        }
        gathered.extend_from_slice(&chunk);
    }
    let body = first.unwrap_or_else(|| Bytes::from(gathered));
    if lend {
        session.set_retry_body(body.clone());
    }
    Ok(Ok(body))
}
