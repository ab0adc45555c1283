//! The end of a process (SIGTERM, `/quitquitquit`, or handing over to a new binary): once
//! Pingora stops accepting, wait at least `connectionMinTerminationDeadline`, then exit as
//! soon as no client connection is left, or stop MCP stdio children just before Pingora's
//! own drain deadline (`connectionTerminationDeadline`) cuts what remains.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::admission::Admission;
use crate::family::McpFamily;
use crate::telemetry::Telemetry;

/// How often the drain checks for remaining connections.
const POLL: Duration = Duration::from_millis(50);
/// The longest the exit waits for the collector to take the last spans.
const SPAN_FLUSH: Duration = Duration::from_secs(2);

/// The drain, as a Pingora background service.
pub struct Drain {
    /// The connections still open.
    pub admission: Arc<Admission>,
    /// The MCP family, whose stdio children must not outlive the process.
    pub mcp: Option<Arc<dyn McpFamily>>,
    /// `connectionMinTerminationDeadline` (default 0).
    pub min: Duration,
    /// `connectionTerminationDeadline` (Pingora's drain period).
    pub grace: Duration,
    /// Its queued spans are sent before the exit.
    pub telemetry: Arc<Telemetry>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Drain {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            return;
        }
        let started = Instant::now();
        // Pingora drains for whole seconds, then cancels every task: act just before.
        let cut = started + Duration::from_secs(self.grace.as_secs());
        let last_call = cut - Duration::from_secs(self.grace.as_secs()).min(Duration::from_millis(700));
        tokio::time::sleep(self.min).await;
        while self.admission.open() > 0 && Instant::now() < last_call {
            tokio::time::sleep(POLL).await;
        }
        if let Some(mcp) = &self.mcp {
            mcp.stop().await;
        }
        // The requests that ended are reported: send their spans before the process goes.
        let budget = cut.saturating_duration_since(Instant::now()).saturating_sub(Duration::from_millis(100)).min(SPAN_FLUSH);
        if !self.telemetry.flush_spans(budget).await {
            tracing::warn!(target: "tollgate", "the last spans did not reach the collector before the exit");
        }
        if self.admission.open() == 0 {
            tracing::info!(target: "tollgate", drained_in_ms = started.elapsed().as_millis() as u64, "no connections left; exiting");
            std::process::exit(0);
        }
    }
}

/// Gives memory back to the system after a crowd of connections has gone: glibc keeps freed
/// memory in its arenas, so an RSS raised by a burst (or an attack) of connections would
/// otherwise stay raised. Checks every few seconds; trims once the open count has fallen by
/// [`TRIM_AFTER`] since the last trim.
pub struct Trim {
    /// The connections open now.
    pub admission: Arc<Admission>,
}

/// Connections that must have closed since the last trim before trimming again.
const TRIM_AFTER: usize = 256;

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Trim {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut high = self.admission.open();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let open = self.admission.open();
            high = high.max(open);
            if high - open >= TRIM_AFTER {
                // SAFETY: malloc_trim only releases free memory held by the allocator.
                unsafe {
                    libc::malloc_trim(0);
                }
                high = open;
            }
        }
    }
}
