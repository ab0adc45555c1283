//! Authentication and authorization policies: who is calling and what they may do. `apiKey`,
//! `jwtAuth`, `basicAuth` establish principals in the request context (`RequestCtx::api_key`,
//! `jwt`, `basic_auth_user`) for every later policy, log line and trace; `authorization` and
//! `extAuthz` decide on them.

pub mod api_key;
pub mod authorization;
pub mod basic_auth;
pub mod csrf;
pub mod ext_authz;
pub mod htpasswd;
pub mod jwt;
pub mod location;
pub mod mcp_authentication;
pub mod oidc;

use serde::Deserialize;
use tollgate_core::filters::registry::FilterSpec;

/// The policies this crate provides, for the binary to install.
pub static FILTERS: &[&FilterSpec] = &[&api_key::SPEC, &jwt::SPEC, &basic_auth::SPEC, &authorization::SPEC, &mcp_authentication::SPEC, &ext_authz::SPEC, &oidc::SPEC, &csrf::SPEC];

/// How strictly an authentication policy requires its credential (agentgateway's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// A valid credential is required.
    Strict,
    /// A credential, when present, must be valid.
    #[default]
    Optional,
    /// Valid credentials are recognised; missing or invalid ones pass.
    Permissive,
}

/// Percent-encodes all but RFC 3986's unreserved characters (query and form values).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
