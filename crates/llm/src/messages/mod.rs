//! Anthropic's Messages API for clients, served by an OpenAI Chat Completions provider:
//! the request translated, the answer translated back, whole or event by event.

pub mod count;
pub mod request;
pub mod response;
pub mod stream;
