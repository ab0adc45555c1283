//! The `tollgate` binary.

use std::process::ExitCode;

use clap::Parser;

use tollgate_core::cli::Cli;
use tollgate_core::{logging, server};

/// mimalloc instead of glibc's allocator. Why: a proxied request allocates and frees a few
/// hundred small objects (header maps, body chunks, futures); glibc's malloc/free cost ~50k of
/// a streamed completion's 272k instructions (issue 14, bench/README.md). Built with `no_thp`
/// (Cargo.toml): with transparent huge pages its arenas made an idle gateway 8 MiB larger.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = tollgate::install() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let loaded = match server::load(&cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.validate_only {
        for w in &loaded.config.warnings {
            eprintln!("warning: {w}");
        }
        println!("config is valid: {} bind(s)", loaded.gateway.binds.len());
        return ExitCode::SUCCESS;
    }
    let log_control = logging::init(loaded.config.config.logging.as_ref());
    for w in &loaded.config.warnings {
        tracing::warn!(target: "tollgate", "{w}");
    }
    match server::run(cli, loaded, log_control) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
