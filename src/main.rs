//! The `tollgate` binary.

use std::process::ExitCode;

use clap::Parser;

use tollgate_core::cli::Cli;
use tollgate_core::{logging, server};

mod alloc;

/// mimalloc instead of glibc's allocator. Why: a proxied request allocates and frees a few
/// hundred small objects (header maps, body chunks, futures); glibc's malloc/free cost ~50k of
/// a streamed completion's 272k instructions (issue 14, bench/README.md). Transparent huge pages
/// are off for the process (`disable_transparent_huge_pages`; the `no_thp` feature only stops
/// mimalloc asking for them): with them its arenas made an idle gateway 8 MiB larger and each
/// open stream 10 KiB larger. Plain blocks are asked for with `mi_malloc`, not
/// `mi_malloc_aligned` (src/alloc.rs says why).
#[global_allocator]
static GLOBAL: alloc::Mimalloc = alloc::Mimalloc;

/// Turns transparent huge pages off for this process, as mimalloc's own default build does
/// (`MI_DEFAULT_ALLOW_THP=0`): on a host whose THP mode is `always`, the kernel would otherwise
/// back the allocator's arenas with 2 MiB pages that idle streams only partly use.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
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
