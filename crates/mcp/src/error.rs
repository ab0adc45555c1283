//! Why an MCP operation failed, and how each failure reaches the client.

use serde_json::Value;

use super::jsonrpc;

/// A failure talking to a target or serving the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpError {
    /// A target did not answer in time.
    Timeout,
    /// A target could not be reached or answered badly.
    Upstream(String),
    /// The target no longer knows the session (it answered 404).
    SessionGone,
    /// The client's message is wrong (unknown tool, bad params).
    InvalidParams(String),
    /// No target serves this method.
    MethodNotFound(String),
    /// A bug or an impossible state.
    Internal(String),
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpError::Timeout => f.write_str("the target did not answer in time"),
            McpError::Upstream(m) | McpError::InvalidParams(m) | McpError::MethodNotFound(m) | McpError::Internal(m) => f.write_str(m),
            McpError::SessionGone => f.write_str("the target ended the session"),
        }
    }
}

impl From<tollgate_core::upstream_call::CallError> for McpError {
    fn from(e: tollgate_core::upstream_call::CallError) -> Self {
        use tollgate_core::upstream_call::CallError;
        match e {
            CallError::Timeout => McpError::Timeout,
            CallError::Upstream(m) => McpError::Upstream(m),
            CallError::Internal(m) => McpError::Internal(m),
        }
    }
}

impl McpError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            McpError::InvalidParams(_) => jsonrpc::INVALID_PARAMS,
            McpError::MethodNotFound(_) => jsonrpc::METHOD_NOT_FOUND,
            McpError::SessionGone => jsonrpc::SESSION_NOT_FOUND,
            _ => jsonrpc::INTERNAL_ERROR,
        }
    }

    /// Prefixes the message with the target's name.
    pub fn at(self, target: &str) -> McpError {
        match self {
            McpError::Upstream(m) => McpError::Upstream(format!("target `{target}`: {m}")),
            McpError::Timeout => McpError::Upstream(format!("target `{target}`: did not answer in time")),
            McpError::Internal(m) => McpError::Internal(format!("target `{target}`: {m}")),
            other => other,
        }
    }

    /// The error response for a request with `id`.
    pub fn to_response(&self, id: &Value) -> Value {
        jsonrpc::error(id, self.code(), self.to_string())
    }
}
