//! The Gemini provider (Google AI Studio's `generateContent` API): Chat Completions clients
//! translated to `streamGenerateContent` and back.

pub mod embeddings;
pub mod request;
pub mod signature;
pub mod stream;
