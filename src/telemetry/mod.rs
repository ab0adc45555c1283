//! Telemetry: CEL-defined access-log fields (and, later, traces and metrics).

pub mod access_log;
pub mod cel;
pub mod metrics;
pub mod vars;
