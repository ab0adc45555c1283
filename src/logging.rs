//! Log setup: `RUST_LOG` wins; otherwise `config.logging.level` sets tollgate's own level
//! (and the access log's). Pingora itself stays at `warn`, because its debug output prints
//! whole upstream request headers, credentials included.

use tracing_subscriber::EnvFilter;

use crate::config::settings::{LogFormat, LoggingSettings};

/// The filter directives for a configured level.
pub fn directives(settings: Option<&LoggingSettings>) -> String {
    let level = settings.and_then(|l| l.level.as_ref()).map(|l| l.directives()).unwrap_or_else(|| "info".into());
    if level.contains('=') {
        // Explicit per-target directives: taken as written.
        level
    } else {
        format!("warn,tollgate={level},access={level}")
    }
}

/// Installs the global subscriber (once, at start-up).
pub fn init(settings: Option<&LoggingSettings>) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(directives(settings)),
    };
    let json = settings.and_then(|s| s.format) == Some(LogFormat::Json);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
