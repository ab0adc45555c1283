//! Transport checks on a client's request before any target is involved: the protocol
//! version header, media types, and (with `dnsRebindingProtection`) the browser's Origin.

use pingora::http::RequestHeader;

use tollgate_core::router::host_without_port;

/// Protocol revisions tollgate speaks to clients.
pub const KNOWN_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

fn header<'a>(req: &'a RequestHeader, name: impl http::header::AsHeaderName) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_local_or_ip(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok()
}

/// `Err((status, why))` when the request must be refused.
pub fn check(req: &RequestHeader, is_post: bool, dns_rebinding_protection: bool) -> Result<(), (u16, String)> {
    if let Some(v) = header(req, crate::names::MCP_PROTOCOL_VERSION) {
        if !KNOWN_VERSIONS.contains(&v) {
            return Err((400, format!("unsupported MCP-Protocol-Version `{v}` (supported: {})", KNOWN_VERSIONS.join(", "))));
        }
    }
    if dns_rebinding_protection {
        // A rebinding page is served from the attacker's name, now pointing here: its requests
        // carry that name as Host (and Origin). Browsers may reach a protected gateway only by
        // a loopback name or an IP address, from a page on one.
        if let Some(origin) = header(req, http::header::ORIGIN) {
            let host = header(req, http::header::HOST).or_else(|| req.uri.authority().map(|a| a.as_str())).unwrap_or("");
            let origin_host = origin.split("://").nth(1).unwrap_or(origin);
            if !is_local_or_ip(host_without_port(host)) || !is_local_or_ip(host_without_port(origin_host)) {
                return Err((403, format!("Origin `{origin}` with Host `{host}` is refused (dnsRebindingProtection)")));
            }
        }
    }
    if is_post {
        if let Some(ct) = header(req, http::header::CONTENT_TYPE) {
            if !ct.to_ascii_lowercase().starts_with("application/json") {
                return Err((415, format!("Content-Type must be application/json, not `{ct}`")));
            }
        }
        if let Some(accept) = header(req, http::header::ACCEPT) {
            let a = accept.to_ascii_lowercase();
            if !["application/json", "text/event-stream", "*/*", "application/*"].iter().any(|t| a.contains(t)) {
                return Err((406, format!("Accept must allow application/json and text/event-stream, not `{accept}`")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/mcp", None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn refuses_bad_transport_headers() {
        assert!(check(&req(&[("content-type", "application/json"), ("accept", "application/json, text/event-stream")]), true, true).is_ok());
        assert_eq!(check(&req(&[("mcp-protocol-version", "1999-01-01")]), true, false).unwrap_err().0, 400);
        assert_eq!(check(&req(&[("content-type", "text/plain")]), true, false).unwrap_err().0, 415);
        assert_eq!(check(&req(&[("accept", "text/html")]), true, false).unwrap_err().0, 406);
        let evil = [("host", "127.0.0.1:3101"), ("origin", "http://evil.example")];
        assert_eq!(check(&req(&evil), false, true).unwrap_err().0, 403);
        assert!(check(&req(&evil), false, false).is_ok());
        // Rebinding: the attacker's name is both Host and Origin.
        let rebound = [("host", "evil.example:3101"), ("origin", "http://evil.example:3101")];
        assert_eq!(check(&req(&rebound), false, true).unwrap_err().0, 403);
        assert!(check(&req(&[("host", "localhost:3101"), ("origin", "http://localhost:5173")]), false, true).is_ok());
        assert!(check(&req(&[("host", "[::1]:3101"), ("origin", "http://127.0.0.1:6274")]), false, true).is_ok());
        // Clients that are not browsers send no Origin.
        assert!(check(&req(&[("host", "gw.example")]), false, true).is_ok());
    }
}
