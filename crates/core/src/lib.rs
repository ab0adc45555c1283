//! tollgate: an HTTP gateway for AI traffic (LLM and MCP) on Cloudflare's Pingora,
//! configured with agentgateway's local config file.
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod cost;
pub mod ctx;
pub mod downstream;
pub mod errors;
pub mod label;
pub mod family;
pub mod identity;
pub mod json_object;
pub mod json_pointer;
pub mod admission;
pub mod llm;
pub mod logging;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod router;
pub mod runtime;
pub mod server;
pub mod telemetry;
pub mod upstream_call;

pub mod filters;
