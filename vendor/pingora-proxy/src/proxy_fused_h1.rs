// tollgate patch (see vendor/README.md and src/fuse.rs): once an HTTP/1 response's final header
// is out and its request is done, the rest of its body goes from the upstream to the client in
// one loop instead of through the task pipe between `proxy_1to1`'s two halves (proxy_h1.rs,
// which asks for it and hands over here).

use super::*;
use crate::proxy_cache::{range_filter::RangeBodyFilter, ServeFromCache};
use crate::proxy_common::ResponseStateMachine;
use crate::joined_body::JoinedBody;

/// At most this many upstream tasks already read go out in one downstream write (the pipe's
/// batches were at most its capacity plus one). An LLM answer that arrives whole is one task
/// per event (20–60 of them), so a small bound split it into several writes; the bytes bound
/// below is what limits memory.
const FUSED_BATCH: usize = 64;
/// Nor more than this many body bytes (the pipe's batches could reach five 64 KiB reads).
const FUSED_BATCH_BYTES: usize = 256 * 1024;

/// What the downstream half hands to the fused loop.
pub(crate) struct FusedState {
    response_state: ResponseStateMachine,
    serve_from_cache: ServeFromCache,
    range_body_filter: RangeBodyFilter,
}

impl FusedState {
    pub(crate) fn new(
        response_state: ResponseStateMachine,
        serve_from_cache: ServeFromCache,
        range_body_filter: RangeBodyFilter,
    ) -> Self {
        FusedState { response_state, serve_from_cache, range_body_filter }
    }
}

impl<SV, C> HttpProxy<SV, C>
where
    C: custom::Connector,
{
    /// The rest of a response whose header is out and whose request is done, read from the
    /// upstream, filtered and written downstream in one loop, as `process_upstream_tasks` does
    /// it for tasks from the pipe: what has already arrived (up to `FUSED_BATCH` tasks or
    /// `FUSED_BATCH_BYTES`) goes out in one write. The client is watched as the downstream
    /// half does once the request is done (a close or stray bytes end it).
    pub(crate) async fn proxy_fused_h1(
        &self,
        session: &mut Session,
        client_session: &mut HttpSessionV1,
        ctx: &mut SV::CTX,
        mut state: FusedState,
        upstream_can_reuse: bool,
    ) -> (bool, bool, Option<Box<Error>>)
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        while !state.response_state.is_done() {
            let first = tokio::select! {
                biased;
                task = client_session.read_response_task() => task,
                body = session.downstream_session.read_body_or_idle(true) => {
                    // Once the request is done this only returns an error (a close, or data
                    // after the body) or stays pending.
                    match body {
                        Err(e) => return (false, false, Some(e.into_down())),
                        Ok(_) => continue,
                    }
                }
            };
            let mut batch = Vec::with_capacity(FUSED_BATCH);
            let mut batch_bytes = 0;
            let mut read_tasks = 0;
            let mut joined = JoinedBody::default();
            let mut next = Some(first);
            while let Some(read) = next.take() {
                // As the upstream half does: a read error goes through the filters as a
                // failed task, which the write returns as the error (`response_duplex`).
                let task = read.unwrap_or_else(|e| HttpTask::Failed(e.into_up()));
                let end = task.is_end();
                read_tasks += 1;
                if let HttpTask::Body(Some(data), _) = &task {
                    batch_bytes += data.len();
                }
                // Small body pieces already read (an LLM stream's events, one HTTP chunk
                // each) go through the filters as one piece.
                let task = match joined.take(task) {
                    None => None,
                    Some((pending, task)) => {
                        if let Some(pending) = pending {
                            match self.fused_filter(session, ctx, pending, &mut state).await {
                                Ok(t) => batch.push(t),
                                Err(e) => return (false, false, Some(e)),
                            }
                        }
                        task
                    }
                };
                if let Some(task) = task {
                    match self.fused_filter(session, ctx, task, &mut state).await {
                        Ok(task) => batch.push(task),
                        Err(e) => return (false, false, Some(e)),
                    }
                }
                if !end && read_tasks < FUSED_BATCH && batch_bytes < FUSED_BATCH_BYTES {
                    // Cancel-safe (the upstream half's `select!` relies on it too); outside
                    // the cooperative budget, which would make a ready read look pending.
                    next = tokio::task::unconstrained(client_session.read_response_task())
                        .now_or_never();
                }
            }
            if let Some(pending) = joined.finish() {
                match self.fused_filter(session, ctx, pending, &mut state).await {
                    Ok(t) => batch.push(t),
                    Err(e) => return (false, false, Some(e)),
                }
            }
            match session.write_response_tasks(batch).await {
                Ok(done) => state.response_state.maybe_set_upstream_done(done),
                Err(e) => return (false, false, Some(e)),
            }
        }
        let reuse_downstream = match session.as_mut().finish_body().await {
            Ok(_) => true,
            Err(e) => {
                error!("Error finish sending body to downstream: {}", e);
                false
            }
        };
        // As the upstream half would: reusable only once the response was read to its end
        // (the client's framing can end first).
        let upstream_done = client_session.is_body_done();
        (reuse_downstream, upstream_can_reuse && upstream_done, None)
    }

    /// One upstream task through the response filters, as `process_upstream_tasks` runs them.
    async fn fused_filter(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        mut task: HttpTask,
        state: &mut FusedState,
    ) -> Result<HttpTask>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        #[cfg(feature = "upstream_modules")]
        session.upstream_modules_filter_task(&mut task).await?;
        session.upstream_compression.response_filter(&mut task);
        self.h1_response_filter(
            session,
            task,
            ctx,
            &mut state.serve_from_cache,
            &mut state.range_body_filter,
            false,
        )
        .await
    }
}
