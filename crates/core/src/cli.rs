//! Command line: agentgateway-compatible where the two overlap (`-f`, `--validate-only`,
//! `-V`), plus Pingora's process controls (`-u` upgrade, `-d` daemon).

use std::path::PathBuf;

use clap::Parser;

/// tollgate: an HTTP gateway for AI traffic (LLM and MCP) on Pingora.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Cli {
    /// Config file (agentgateway's local format, YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Config given inline instead of a file.
    #[arg(short = 'c', long = "config", value_name = "YAML", conflicts_with = "file")]
    pub config: Option<String>,

    /// Parse and compile the config, print what is wrong, and exit (non-zero on error).
    #[arg(long)]
    pub validate_only: bool,

    /// Take the listening sockets over from a running tollgate (then send it SIGQUIT).
    #[arg(short = 'u', long)]
    pub upgrade: bool,

    /// One-step upgrade: take the sockets over from the tollgate running with the same
    /// `--runtime-dir` and tell it to drain and exit (implies `--upgrade`).
    #[arg(long)]
    pub take_over: bool,

    /// Run in the background.
    #[arg(short = 'd', long)]
    pub daemon: bool,

    /// Directory for the pid file and the upgrade socket.
    #[arg(long, env = "TOLLGATE_RUNTIME_DIR", default_value = "/tmp/tollgate", value_name = "DIR")]
    pub runtime_dir: PathBuf,

    /// Most client connections held open at once; past it the longest-idle connection is closed
    /// to make room, or the new one is refused with 503. Default: half the open-file limit.
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Time a client has to send complete request headers (from connecting, or from the first
    /// byte of a later request on a kept-alive connection), e.g. `30s`.
    #[arg(long, env = "TOLLGATE_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_timeout: std::time::Duration,

    /// Longest pause allowed between two reads of a request body, e.g. `60s`.
    #[arg(long, env = "TOLLGATE_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_timeout: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::types::parse_go_duration(text)
}
