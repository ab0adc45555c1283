//! Log setup: `RUST_LOG` wins; otherwise `config.logging.level` sets tollgate's own level
//! (and the access log's). Pingora itself stays at `warn`, because its debug output prints
//! whole upstream request headers, credentials included. The level can be changed at run
//! time through the admin endpoint's `/logging`.

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::settings::{LogFormat, LoggingSettings};

/// The filter directives for a configured level.
pub fn directives(level: Option<&str>) -> String {
    let level = level.unwrap_or("info");
    if level.contains('=') {
        // Explicit per-target directives: taken as written.
        level.to_string()
    } else {
        format!("warn,tollgate={level},access={level}")
    }
}

/// Changes the log level of the running process.
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    current: Mutex<String>,
}

impl LogControl {
    /// The directives in force.
    pub fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Replaces the level (`debug`) or directives (`info,tollgate=trace`).
    pub fn set(&self, level: &str) -> Result<String, String> {
        let dirs = directives(Some(level));
        let filter = EnvFilter::try_new(&dirs).map_err(|e| format!("invalid level `{level}`: {e}"))?;
        let handle = self.handle.as_ref().ok_or("logging was initialised elsewhere")?;
        handle.reload(filter).map_err(|e| e.to_string())?;
        if let Ok(mut c) = self.current.lock() {
            c.clone_from(&dirs);
        }
        Ok(dirs)
    }
}

/// Installs the global subscriber (once, at start-up) and returns its level control.
pub fn init(settings: Option<&LoggingSettings>) -> Arc<LogControl> {
    let configured = settings.and_then(|l| l.level.as_ref()).map(|l| l.directives());
    let dirs = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => v,
        _ => directives(configured.as_deref()),
    };
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&dirs));
    let json = settings.and_then(|s| s.format) == Some(LogFormat::Json);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let installed = if json {
        tracing_subscriber::registry().with(filter).with(fmt.json().flatten_event(true)).try_init()
    } else {
        tracing_subscriber::registry().with(filter).with(fmt).try_init()
    };
    Arc::new(LogControl { handle: installed.is_ok().then_some(handle), current: Mutex::new(dirs) })
}
