//! Who is calling: the principals the authentication policies established for this request
//! (an API key's claims, a JWT's claims, a basic-auth user), shared with every later policy,
//! log line and trace through `RequestCtx`. Lives in the core so that `auth`, `limits`, `mcp`
//! and `llm` agree on them without depending on each other.

use std::sync::Arc;

/// What an accepted API key says about its caller (agentgateway's `apiKey` claims).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyClaims {
    /// The key's `metadata` as configured (any JSON; an object's fields are `apiKey.<field>`).
    pub metadata: serde_json::Value,
    /// `allowedModels`: model patterns (`*` wildcards) this key may use; `None` = any model,
    /// an empty list = none.
    pub allowed_models: Option<Arc<[String]>>,
    /// A stable, non-secret identifier of the key: the first 12 hex digits of its SHA-256.
    /// Rate-limit buckets and metrics use it; it never reveals the key.
    pub id: String,
}

impl ApiKeyClaims {
    /// Whether this key may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        match &self.allowed_models {
            None => true,
            Some(patterns) => patterns.iter().any(|p| wildcard_match(p, model)),
        }
    }
}

/// A JWT a `jwtAuth` (or `mcpAuthentication`) policy verified: its claims are `jwt.*` in CEL.
#[derive(Clone, PartialEq)]
pub struct JwtClaims {
    /// The payload (a JSON object).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The token as presented, for `backendAuth: passthrough` (never logged or shown to CEL).
    pub raw: String,
}

impl JwtClaims {
    /// The `sub` claim when it is text (the principal logged for the request).
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(serde_json::Value::as_str)
    }
}

impl std::fmt::Debug for JwtClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        write!(f, "JwtClaims(sub: {:?}, iss: {:?})", self.subject(), self.claims.get("iss"))
    }
}

/// `pattern` (`*` matches any run of characters, the rest literally) against all of `text`.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &pieces[1..pieces.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_models_match_wildcards_and_empty_denies() {
        let claims = |m: Option<Vec<&str>>| ApiKeyClaims {
            metadata: serde_json::Value::Null,
            allowed_models: m.map(|v| v.into_iter().map(String::from).collect()),
            id: "x".into(),
        };
        assert!(claims(None).allows_model("gpt-4o"));
        assert!(!claims(Some(vec![])).allows_model("gpt-4o"));
        assert!(claims(Some(vec!["gpt-4o*"])).allows_model("gpt-4o-mini"));
        assert!(!claims(Some(vec!["gpt-4o*"])).allows_model("claude-3"));
        assert!(claims(Some(vec!["*-mini", "claude-*"])).allows_model("claude-3"));
    }
}
