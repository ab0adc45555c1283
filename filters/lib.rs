//! tollgate's built-in route policies. Each is a [`Filter`](tollgate_core::filters::Filter)
//! built from its YAML block through a [`FilterSpec`]; they use nothing a plugin cannot (this
//! crate depends on the core's public API only). The binary installs [`FILTERS`].

pub mod cors;
pub mod direct_response;
pub mod header_modifier;
pub mod request_redirect;
pub mod timeout;
pub mod url_rewrite;

use tollgate_core::filters::registry::FilterSpec;

/// Every policy of this crate, for the registry.
pub static FILTERS: &[&FilterSpec] = &[
    &timeout::SPEC,
    &cors::SPEC,
    &header_modifier::REQUEST_SPEC,
    &header_modifier::RESPONSE_SPEC,
    &url_rewrite::SPEC,
    &request_redirect::SPEC,
    &direct_response::SPEC,
];
