// tollgate patch (see vendor/README.md): hold a response header until its body's first bytes.

use std::time::Duration;

use pingora_core::protocols::http::HttpTask;
use pingora_error::Result;

/// Whether the batch so far ends without any body bytes (more may come).
fn awaiting_body(tasks: &[HttpTask]) -> bool {
    match tasks.last() {
        Some(HttpTask::Header(_, end)) => !*end,
        Some(HttpTask::Body(b, end)) => !*end && b.as_ref().is_none_or(|b| b.is_empty()),
        _ => false,
    }
}

/// Pulls tasks from `rx` into `tasks` (which begins with a response header) until the first
/// non-empty body chunk, the end of the response, or `limit`. An upstream failure meanwhile is
/// returned as the error, with nothing written downstream, so the request can be retried.
pub(crate) async fn hold_response_header(
    tasks: &mut Vec<HttpTask>,
    rx: &mut crate::task_pipe::Receiver<HttpTask>,
    limit: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while awaiting_body(tasks) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(t)) => tasks.push(t),
            Ok(None) | Err(_) => break,
        }
    }
    // A failure before any body bytes (held for, or already in the same batch as the header):
    // nothing goes downstream.
    let first_bytes = tasks.iter().position(|t| matches!(t, HttpTask::Body(Some(b), _) if !b.is_empty()));
    let failed = tasks.iter().position(|t| matches!(t, HttpTask::Failed(_)));
    if let Some(at) = failed.filter(|f| first_bytes.is_none_or(|b| *f < b)) {
        if let HttpTask::Failed(e) = tasks.remove(at) {
            return Err(e);
        }
    }
    Ok(())
}
