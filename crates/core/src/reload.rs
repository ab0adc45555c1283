//! Config reload: watch the config file and, on a valid change, swap the compiled routes,
//! policies and backends in for new requests (in-flight requests finish on the tables they
//! started with). An invalid change is logged with file, line and field and the running
//! config keeps serving. A change of the listening ports is refused: it needs the socket
//! hand-over of a binary upgrade (`tollgate -u`), which reopens listeners.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config;
use crate::runtime::{self, Gateway};

/// How long to wait for a burst of file events (editors write in several steps) to settle.
const SETTLE: Duration = Duration::from_millis(250);

/// Watches the config file and swaps in valid changes.
pub struct ConfigWatcher {
    /// The config file.
    pub path: PathBuf,
    /// The live tables.
    pub gateway: Arc<ArcSwap<Gateway>>,
    /// State new tables share with the old (MCP sessions).
    pub shared: runtime::Shared,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// New tables are serving.
    Applied,
    /// The file did not change the config's binds and failed to load or compile.
    Rejected(String),
}

/// Loads `path` and, if it is valid and keeps the same ports, swaps it in.
pub fn reload(path: &Path, gateway: &ArcSwap<Gateway>, shared: &runtime::Shared) -> ReloadOutcome {
    let parsed = match config::load_file(path) {
        Ok(c) => c,
        Err(e) => return ReloadOutcome::Rejected(e.to_string()),
    };
    let compiled = match runtime::compile_with(&parsed, shared) {
        Ok(g) => g,
        Err(e) => return ReloadOutcome::Rejected(format!("{}: {e}", path.display())),
    };
    let ports = |g: &Gateway| {
        let mut p: Vec<u16> = g.binds.iter().map(|b| b.port).collect();
        p.sort_unstable();
        p
    };
    let (old, new) = (ports(&gateway.load()), ports(&compiled));
    if old != new {
        return ReloadOutcome::Rejected(format!(
            "{}: the bind ports changed ({old:?} -> {new:?}); a reload cannot open or close listeners: \
             start the new config with `tollgate -u -f ...` and send SIGQUIT to this process",
            path.display()
        ));
    }
    for w in &parsed.warnings {
        tracing::warn!(target: "tollgate", "{}: {w}", path.display());
    }
    runtime::carry_over::carry_over(&gateway.load(), &compiled);
    gateway.store(Arc::new(compiled));
    ReloadOutcome::Applied
}

/// The names of the files a change of which reloads: the config and the model catalogs it
/// reads (agentgateway watches those too).
fn watched_names(path: &Path, gateway: &Gateway) -> std::collections::HashSet<std::ffi::OsString> {
    std::iter::once(path).chain(gateway.model_catalog.files.iter().map(PathBuf::as_path)).filter_map(|p| p.file_name().map(|n| n.to_os_string())).collect()
}

/// The directories of the catalog files (watched as the config's is: files are replaced by
/// renaming).
fn catalog_dirs(gateway: &Gateway) -> Vec<PathBuf> {
    gateway.model_catalog.files.iter().map(|f| f.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()).collect()
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let names = Arc::new(std::sync::RwLock::new(watched_names(&self.path, &self.gateway.load())));
        let seen = names.clone();
        let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let names = seen.read().unwrap_or_else(|e| e.into_inner());
                if event.paths.iter().any(|p| p.file_name().is_some_and(|n| names.contains(n))) {
                    let _ = tx.send(());
                }
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(target: "tollgate", error = %e, "cannot watch the config file; reload disabled");
                return;
            }
        };
        // Watch the directory: editors and config managers replace the file by renaming.
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::error!(target: "tollgate", error = %e, dir = %dir.display(), "cannot watch the config directory; reload disabled");
            return;
        }
        let mut dirs = vec![dir.to_path_buf()];
        let watch_catalogs = |watcher: &mut notify::RecommendedWatcher, gateway: &Gateway, dirs: &mut Vec<PathBuf>| {
            for d in catalog_dirs(gateway) {
                if !dirs.contains(&d) {
                    if let Err(e) = watcher.watch(&d, RecursiveMode::NonRecursive) {
                        tracing::warn!(target: "tollgate", error = %e, dir = %d.display(), "cannot watch a model catalog's directory");
                    }
                    dirs.push(d);
                }
            }
        };
        watch_catalogs(&mut watcher, &self.gateway.load(), &mut dirs);
        tracing::info!(target: "tollgate", file = %self.path.display(), "watching the config file for changes");
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = rx.recv() => {
                    if event.is_none() {
                        return;
                    }
                    tokio::time::sleep(SETTLE).await;
                    while rx.try_recv().is_ok() {}
                    match reload(&self.path, &self.gateway, &self.shared) {
                        ReloadOutcome::Applied => tracing::info!(target: "tollgate", file = %self.path.display(), "config reloaded"),
                        ReloadOutcome::Rejected(why) => {
                            tracing::error!(target: "tollgate", "config reload failed, the running config keeps serving: {why}")
                        }
                    }
                    let gateway = self.gateway.load();
                    *names.write().unwrap_or_else(|e| e.into_inner()) = watched_names(&self.path, &gateway);
                    watch_catalogs(&mut watcher, &gateway, &mut dirs);
                }
            }
        }
    }
}
