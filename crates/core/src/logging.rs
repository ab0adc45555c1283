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
        // The reload set the `log` crate's level from the new filter's: capped again.
        cap_log_crate(own_directives(Some(level)));
        if let Ok(mut c) = self.current.lock() {
            c.clone_from(&dirs);
        }
        Ok(dirs)
    }
}

/// Installs the global subscriber (once, at start-up) and returns its level control.
pub fn init(settings: Option<&LoggingSettings>) -> Arc<LogControl> {
    let configured = settings.and_then(|l| l.level.as_ref()).map(|l| l.directives());
    let (dirs, own) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => (v, false),
        _ => (directives(configured.as_deref()), own_directives(configured.as_deref())),
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
    if installed.is_ok() {
        cap_log_crate(own);
    }
    Arc::new(LogControl { handle: installed.is_ok().then_some(handle), current: Mutex::new(dirs) })
}

/// Whether `level` gives tollgate's own directives (`warn,tollgate=…,access=…`): a level,
/// not directives written out.
fn own_directives(level: Option<&str>) -> bool {
    !level.unwrap_or("info").contains('=')
}

/// Under tollgate's own directives, records of the `log` crate (Pingora's, other
/// dependencies') are shown from `warn` up, whatever the level; but the subscriber hands the
/// `log` crate its most verbose level (`debug` for `tollgate=debug`), so each of Pingora's
/// `debug!` calls was built into an event and then refused by the filter (~9k instructions per
/// request at `level: debug`). The `log` crate is told `warn`, and refuses them at the call.
/// (tollgate's own records go through `tracing`, which the cap does not touch.)
fn cap_log_crate(own: bool) {
    if own {
        log::set_max_level(log::max_level().min(log::LevelFilter::Warn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_crate_is_capped_at_warn_only_under_tollgates_own_directives() {
        assert!(own_directives(Some("debug")) && own_directives(None));
        assert!(!own_directives(Some("info,pingora_proxy=debug")));
        log::set_max_level(log::LevelFilter::Debug);
        cap_log_crate(own_directives(Some("info,pingora_proxy=debug")));
        assert_eq!(log::max_level(), log::LevelFilter::Debug);
        cap_log_crate(own_directives(Some("debug")));
        assert_eq!(log::max_level(), log::LevelFilter::Warn);
    }
}
