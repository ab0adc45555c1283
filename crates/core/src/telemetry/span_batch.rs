//! The span queue between the request threads and the OTLP exporter. The SDK's batch processor
//! for async runtimes sends every ended span through a channel to its exporter task, waking
//! that task (and the exporter's thread, on another core or sharing one with a worker) once per
//! span: measured on the seed config, ~5 µs of the exporter thread's CPU and a context switch
//! per request, with the collector down as much as up. Here a span is pushed onto a queue under
//! an uncontended lock, and the exporter is woken only when a whole batch is waiting, or by its
//! timer, or to flush: the SDK's thread-based processor works this way, but calls the exporter
//! outside any runtime, which the gRPC and HTTP exporters need.
//!
//! Settings as the SDK's processors read them: `OTEL_BSP_SCHEDULE_DELAY` (ms, default 5000),
//! `OTEL_BSP_MAX_QUEUE_SIZE` (2048; spans past it are dropped), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
//! (512, at most the queue size), `OTEL_BSP_EXPORT_TIMEOUT` (ms, 30000).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

/// Queue and batch sizes and intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSettings {
    /// How often the queue is exported even when no batch is full.
    pub delay: Duration,
    /// Spans held at most; more are dropped.
    pub max_queue: usize,
    /// Spans per export call; a full batch wakes the exporter at once.
    pub batch: usize,
    /// How long one export call may take.
    pub export_timeout: Duration,
}

impl BatchSettings {
    /// The SDK's defaults, overridden by the `OTEL_BSP_*` environment variables.
    pub fn from_env() -> BatchSettings {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> BatchSettings {
        let number = |name: &str, default: u64| var(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default);
        let max_queue = (number("OTEL_BSP_MAX_QUEUE_SIZE", 2048) as usize).max(1);
        BatchSettings {
            delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)),
            max_queue,
            // At least one: a batch of none would never end the export loop.
            batch: (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512) as usize).clamp(1, max_queue),
            export_timeout: Duration::from_millis(number("OTEL_BSP_EXPORT_TIMEOUT", 30_000)),
        }
    }
}

thread_local! {
    /// Set while [`discarding`] runs: spans ending then are dropped, not queued.
    static DISCARDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (which drops or ends spans) with every span ending on this thread in it dropped
/// instead of queued: for spans the caller already knows the exporter would drop unsent. The
/// SDK ends a span when it is dropped, so dropping one cannot skip the processor by itself.
pub fn discarding<T>(f: impl FnOnce() -> T) -> T {
    /// Clears the flag however `f` ends (a panic included), so later spans are queued again.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DISCARDING.set(false);
        }
    }
    DISCARDING.set(true);
    let _reset = Reset;
    f()
}

/// What the request threads share with the exporter task.
#[derive(Debug)]
struct Queue {
    spans: Mutex<Vec<SpanData>>,
    /// Rung when a batch is full (once per filling, not once per span).
    full: tokio::sync::Notify,
    dropped: AtomicUsize,
}

/// A flush or shutdown asked of the exporter task; the answer goes back on a plain channel
/// (the caller is a plain thread, or a runtime thread that bounds its wait).
enum Control {
    Flush(std::sync::mpsc::SyncSender<OTelSdkResult>),
    Shutdown(std::sync::mpsc::SyncSender<OTelSdkResult>),
    Resource(Resource),
}

/// The span processor: queues ended spans for the exporter task running on the tracing runtime.
pub struct SpanBatcher {
    queue: Arc<Queue>,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    settings: BatchSettings,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Flush(_) => "Flush",
            Control::Shutdown(_) => "Shutdown",
            Control::Resource(_) => "Resource",
        })
    }
}

impl std::fmt::Debug for SpanBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBatcher").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl SpanBatcher {
    /// Starts the exporter task on `runtime` and returns the processor feeding it.
    pub fn start<E: SpanExporter + 'static>(exporter: E, settings: BatchSettings, runtime: &tokio::runtime::Handle) -> SpanBatcher {
        let queue = Arc::new(Queue {
            spans: Mutex::new(Vec::with_capacity(settings.batch)),
            full: tokio::sync::Notify::new(),
            dropped: AtomicUsize::new(0),
        });
        let (control, commands) = tokio::sync::mpsc::unbounded_channel();
        runtime.spawn(export_loop(exporter, queue.clone(), commands, settings));
        SpanBatcher { queue, control, settings }
    }

    /// Asks the task for `make(reply)` and waits for its answer, at most `wait`.
    fn ask(&self, make: impl FnOnce(std::sync::mpsc::SyncSender<OTelSdkResult>) -> Control, wait: Duration) -> OTelSdkResult {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.control.send(make(reply)).map_err(|_| OTelSdkError::AlreadyShutdown)?;
        match answer.recv_timeout(wait) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(wait)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(OTelSdkError::AlreadyShutdown),
        }
    }
}

impl SpanProcessor for SpanBatcher {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        // As the SDK's processors: a span recorded but not sampled is not exported.
        if DISCARDING.get() || !span.span_context.is_sampled() {
            return;
        }
        let Ok(mut spans) = self.queue.spans.lock() else { return };
        if spans.len() >= self.settings.max_queue {
            drop(spans);
            if self.queue.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    target: "tollgate",
                    max_queue = self.settings.max_queue,
                    "span export queue full: dropping spans until the exporter catches up (reported once)"
                );
            }
            return;
        }
        spans.push(span);
        let filled = spans.len() == self.settings.batch;
        drop(spans);
        if filled {
            self.queue.full.notify_one();
        }
    }

    /// Exports everything queued and waits for the collector's answer, at most twice the export
    /// timeout (callers that must not wait that long bound it themselves).
    fn force_flush(&self) -> OTelSdkResult {
        let wait = self.settings.export_timeout.saturating_mul(2);
        self.ask(Control::Flush, wait)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Control::Shutdown, timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.control.send(Control::Resource(resource.clone()));
    }
}

/// The exporter task: exports the queue when a batch fills, every `delay`, and on request.
async fn export_loop<E: SpanExporter>(
    mut exporter: E,
    queue: Arc<Queue>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Control>,
    settings: BatchSettings,
) {
    // A zero delay (allowed by the SDK: export continuously) would make the interval panic.
    let delay = settings.delay.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let command = tokio::select! {
            _ = tick.tick() => None,
            _ = queue.full.notified() => None,
            command = commands.recv() => match command {
                Some(Control::Resource(resource)) => {
                    exporter.set_resource(&resource);
                    continue;
                }
                // Every processor handle is gone: send what is left and stop.
                None => {
                    let _ = export_queued(&exporter, &queue, settings).await;
                    return;
                }
                other => other,
            },
        };
        let result = export_queued(&exporter, &queue, settings).await;
        match command {
            Some(Control::Flush(reply)) => {
                let _ = reply.send(result);
            }
            Some(Control::Shutdown(reply)) => {
                let _ = reply.send(result.and(exporter.shutdown()));
                return;
            }
            _ => {}
        }
    }
}

/// Takes the whole queue and exports it in batches; the first failure is the result (the
/// batches after it are still offered: the exporter decides what a failing collector gets).
async fn export_queued<E: SpanExporter>(exporter: &E, queue: &Queue, settings: BatchSettings) -> OTelSdkResult {
    let mut spans = match queue.spans.lock() {
        Ok(mut q) if !q.is_empty() => std::mem::replace(&mut *q, Vec::with_capacity(settings.batch)),
        _ => return Ok(()),
    };
    let mut result = Ok(());
    while !spans.is_empty() {
        let rest = spans.split_off(spans.len().min(settings.batch));
        let batch = std::mem::replace(&mut spans, rest);
        let sent = match tokio::time::timeout(settings.export_timeout, exporter.export(batch)).await {
            Ok(r) => r,
            Err(_) => Err(OTelSdkError::Timeout(settings.export_timeout)),
        };
        if result.is_ok() {
            result = sent;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is given.
    #[derive(Debug, Clone, Default)]
    struct Collector(Arc<Mutex<Vec<usize>>>);

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    /// An ended, sampled span.
    fn span() -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let mut s = super::super::traces::tests::span();
        s.span_context = SpanContext::new(TraceId::from(7u128), SpanId::from(7u64), TraceFlags::SAMPLED, false, TraceState::default());
        s
    }

    fn settings(batch: usize, max_queue: usize) -> BatchSettings {
        BatchSettings { delay: Duration::from_secs(3600), max_queue, batch, export_timeout: Duration::from_secs(5) }
    }

    #[test]
    fn settings_come_from_the_sdks_variables() {
        let defaults = BatchSettings::from_lookup(|_| None);
        assert_eq!(defaults, BatchSettings { delay: Duration::from_secs(5), max_queue: 2048, batch: 512, export_timeout: Duration::from_secs(30) });
        let set = BatchSettings::from_lookup(|n| match n {
            "OTEL_BSP_SCHEDULE_DELAY" => Some("250".into()),
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("100".into()),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("500".into()),
            _ => Some("nonsense".into()),
        });
        assert_eq!((set.delay, set.max_queue, set.batch, set.export_timeout), (Duration::from_millis(250), 100, 100, Duration::from_secs(30)));
    }

    #[test]
    fn discarded_and_unsampled_spans_are_not_queued() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let got = Collector::default();
        let p = SpanBatcher::start(got.clone(), settings(512, 2048), rt.handle());
        discarding(|| {
            p.on_end(span());
            p.on_end(span());
        });
        p.on_end(super::super::traces::tests::span()); // not sampled
        p.on_end(span());
        p.force_flush().unwrap();
        assert_eq!(*got.0.lock().unwrap(), vec![1], "only the sampled span ended outside `discarding` was exported");
    }

    /// Never answers.
    #[derive(Debug)]
    struct Stuck;

    impl SpanExporter for Stuck {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            std::future::pending().await
        }
    }

    #[test]
    fn an_export_is_cut_off_at_the_export_timeout() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let short = BatchSettings { export_timeout: Duration::from_millis(200), ..settings(512, 2048) };
        let p = SpanBatcher::start(Stuck, short, rt.handle());
        p.on_end(span());
        let started = std::time::Instant::now();
        let result = p.force_flush();
        assert!(matches!(result, Err(OTelSdkError::Timeout(t)) if t == Duration::from_millis(200)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
    }

    #[test]
    fn a_zero_delay_exports_continuously() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let got = Collector::default();
        let p = SpanBatcher::start(got.clone(), BatchSettings { delay: Duration::ZERO, ..settings(512, 2048) }, rt.handle());
        p.on_end(span());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*got.0.lock().unwrap(), vec![1]);
    }

    #[test]
    fn a_full_batch_is_sent_at_once_and_the_rest_waits_for_a_flush() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let got = Collector::default();
        let p = SpanBatcher::start(got.clone(), settings(4, 10), rt.handle());
        for _ in 0..3 {
            p.on_end(span());
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(got.0.lock().unwrap().is_empty(), "fewer than a batch: nothing sent before the timer");
        p.on_end(span());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*got.0.lock().unwrap(), vec![4]);
        for _ in 0..13 {
            p.on_end(span());
        }
        // A full batch (4) woke the task; whatever it has not yet taken goes with the flush,
        // in batches of at most 4, and the queue never held more than 10.
        p.force_flush().unwrap();
        let sizes = got.0.lock().unwrap().clone();
        assert!(sizes.iter().all(|n| *n <= 4), "{sizes:?}");
        let dropped = p.queue.dropped.load(Ordering::Relaxed);
        assert_eq!(sizes.iter().sum::<usize>() + dropped, 17, "{sizes:?} + {dropped} dropped");
        p.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        assert!(p.force_flush().is_err(), "the task has stopped");
    }
}
