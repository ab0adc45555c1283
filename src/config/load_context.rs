//! The directory of the config file being loaded, so relative paths inside it
//! (`{file: ...}`, `backendTLS.root`) resolve against the file, not the process's cwd.
//! Scoped to one load on one thread; never read while serving requests.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

thread_local! {
    static BASE_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `f` with `dir` as the base for relative paths.
pub fn with_base_dir<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    let previous = BASE_DIR.with(|b| b.replace(Some(dir.to_path_buf())));
    let out = f();
    BASE_DIR.with(|b| *b.borrow_mut() = previous);
    out
}

/// The base directory of the current load (the cwd outside a load).
pub fn base_dir() -> PathBuf {
    BASE_DIR
        .with(|b| b.borrow().clone())
        .unwrap_or_else(|| PathBuf::from("."))
}
