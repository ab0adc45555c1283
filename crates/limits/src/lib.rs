//! Rate limits and budgets: token buckets counted by requests or by LLM tokens, per route and
//! per key, with `x-ratelimit-*` headers on every answer and a 429 in the caller's API format;
//! spending budgets per UTC window; both in this process or shared through Redis.

pub mod bucket;
pub mod budget;
pub mod headers;
pub mod keyed;
pub mod local;
pub mod redis_conn;
pub mod redis_store;
pub mod remote;
pub mod rls_proto;
pub mod window;

use tollgate_core::filters::registry::FilterSpec;

/// The policies this crate provides, for the binary to install.
pub static FILTERS: &[&FilterSpec] = &[&local::SPEC, &remote::SPEC, &budget::SPEC];
