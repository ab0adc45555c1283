//! OpenAI's Responses API for clients (the OpenAI SDKs' `responses`, the Codex CLI), stateless:
//! native on OpenAI-compatible providers (usage read on the way), and through Chat Completions
//! for the others (`request.rs` one way, `response.rs` and `stream.rs` the other).

pub mod native;
pub mod request;
pub mod response;
pub mod stream;
