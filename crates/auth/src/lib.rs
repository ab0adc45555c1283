//! Authentication policies: who is calling. `apiKey` today; each establishes a principal in
//! the request context (`RequestCtx::api_key`) for every later policy, log line and trace.

pub mod api_key;
pub mod location;

use tollgate_core::filters::registry::FilterSpec;

/// The policies this crate provides, for the binary to install.
pub static FILTERS: &[&FilterSpec] = &[&api_key::SPEC];
