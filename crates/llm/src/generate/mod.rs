//! Gemini's `generateContent` API for clients (the google-genai SDKs, the Gemini CLI),
//! served by an OpenAI Chat Completions provider: the request translated, the answer
//! translated back, whole or event by event.

pub mod request;
pub mod response;
pub mod schema;
