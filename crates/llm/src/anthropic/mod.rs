//! The Anthropic provider: Chat Completions clients translated to its Messages API and back;
//! Messages clients served natively (model override and usage only).

pub mod native;
pub mod request;
pub mod response;
pub mod stream;
