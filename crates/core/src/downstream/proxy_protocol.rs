//! The PROXY protocol (HAProxy's, v1 text and v2 binary) in front of a connection from a load
//! balancer: the header names the real client, which then is the request's `source` in CEL,
//! the logs and traces. `frontendPolicies.proxyProtocol` says which versions are accepted and
//! whether the header is required.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Buf;
use tokio::time::Instant;

use super::prefixed::Prefixed;

/// v2's 12-byte signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the spec's bound).
const V1_MAX: usize = 107;
/// The largest v2 header accepted (addresses plus TLVs).
const V2_MAX: usize = 16 + 1024;

/// What the start of the connection is.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A header of `len` bytes; the client it names (`None` for LOCAL / UNKNOWN).
    Header {
        /// The original client.
        source: Option<SocketAddr>,
        /// Header length, to strip.
        len: usize,
    },
    /// These bytes do not start a PROXY header.
    NotProxy,
    /// More bytes are needed to tell.
    Incomplete,
    /// A PROXY header, but malformed or of a version not accepted.
    Invalid(&'static str),
}

/// Accepted versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Text headers.
    pub v1: bool,
    /// Binary headers.
    pub v2: bool,
}

/// Parses a PROXY header at the start of `buf`.
pub fn parse(buf: &[u8], versions: Versions) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    let v2_candidate = V2_SIGNATURE.starts_with(&buf[..buf.len().min(V2_SIGNATURE.len())]);
    let v1_candidate = b"PROXY ".starts_with(&buf[..buf.len().min(6)]);
    if v2_candidate {
        if buf.len() < 16 {
            return Parsed::Incomplete;
        }
        if !versions.v2 {
            return Parsed::Invalid("PROXY protocol v2 is not accepted here");
        }
        return parse_v2(buf);
    }
    if v1_candidate {
        if buf.len() < 6 {
            return Parsed::Incomplete;
        }
        if !versions.v1 {
            return Parsed::Invalid("PROXY protocol v1 is not accepted here");
        }
        return parse_v1(buf);
    }
    Parsed::NotProxy
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX { Parsed::Invalid("PROXY v1 line too long") } else { Parsed::Incomplete };
    };
    let Ok(line) = std::str::from_utf8(&buf[..end]) else { return Parsed::Invalid("PROXY v1 line is not text") };
    let parts: Vec<&str> = line.split(' ').collect();
    let len = end + 2;
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Parsed::Header { source: None, len },
        ["PROXY", family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let Ok(ip) = src.parse::<IpAddr>() else { return Parsed::Invalid("PROXY v1 source address") };
            if (*family == "TCP4") != ip.is_ipv4() {
                return Parsed::Invalid("PROXY v1 address family");
            }
            match sport.parse::<u16>() {
                Ok(port) => Parsed::Header { source: Some(SocketAddr::new(ip, port)), len },
                Err(_) => Parsed::Invalid("PROXY v1 source port"),
            }
        }
        _ => Parsed::Invalid("malformed PROXY v1 line"),
    }
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf[12] >> 4 != 2 {
        return Parsed::Invalid("PROXY v2 version");
    }
    let command = buf[12] & 0x0f;
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Parsed::Invalid("PROXY v2 header too long");
    }
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    let addr = &buf[16..len];
    let source = match (command, buf[13]) {
        (0, _) => None, // LOCAL: the balancer's own health check
        (1, 0x11) if addr.len() >= 12 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([addr[8], addr[9]])))
        }
        (1, 0x21) if addr.len() >= 36 => {
            let octets: [u8; 16] = addr[..16].try_into().unwrap_or([0; 16]);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), u16::from_be_bytes([addr[32], addr[33]])))
        }
        (1, 0x00) => None, // UNSPEC
        (1, 0x11 | 0x21) => return Parsed::Invalid("PROXY v2 addresses truncated"),
        (1, _) => None, // UNIX or datagram families: no IP client to report
        _ => return Parsed::Invalid("PROXY v2 command"),
    };
    Parsed::Header { source, len }
}

/// Reads a PROXY header into place (by `deadline`) and strips it. `Ok(Some(addr))`: the
/// client it names; `Ok(None)`: no header (allowed when not `required`) or a LOCAL one.
pub async fn read(conn: &mut Prefixed, versions: Versions, required: bool, deadline: Instant) -> Result<Option<SocketAddr>, &'static str> {
    loop {
        match parse(&conn.prefix, versions) {
            Parsed::Header { source, len } => {
                conn.prefix.advance(len);
                return Ok(source);
            }
            Parsed::NotProxy if required => return Err("a PROXY protocol header is required"),
            Parsed::NotProxy => return Ok(None),
            Parsed::Invalid(why) => return Err(why),
            Parsed::Incomplete => {}
        }
        match tokio::time::timeout_at(deadline, conn.fill(V2_MAX - conn.prefix.len().min(V2_MAX))).await {
            Err(_) => return Err("the PROXY header did not arrive in time"),
            Ok(Ok(0)) | Ok(Err(_)) => return Err("closed before the PROXY header"),
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Versions = Versions { v1: true, v2: true };

    #[test]
    fn v1_lines() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n";
        assert_eq!(parse(line, BOTH), Parsed::Header { source: Some("203.0.113.7:5555".parse().unwrap()), len: 41 });
        assert_eq!(parse(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n", BOTH), Parsed::Header { source: Some("[2001:db8::1]:1".parse().unwrap()), len: 32 });
        assert_eq!(parse(b"PROXY UNKNOWN\r\n", BOTH), Parsed::Header { source: None, len: 15 });
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4", BOTH), Parsed::Incomplete);
        assert_eq!(parse(b"PRO", BOTH), Parsed::Incomplete);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", BOTH), Parsed::NotProxy);
        assert!(matches!(parse(b"PROXY TCP4 ::1 ::1 1 2\r\n", BOTH), Parsed::Invalid(_)));
        assert!(matches!(parse(&[b'P', b'R', b'O', b'X', b'Y', b' ', b'x'].repeat(20), BOTH), Parsed::Invalid(_)));
        assert!(matches!(parse(line, Versions { v1: false, v2: true }), Parsed::Invalid(_)));
    }

    #[test]
    fn v2_headers() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]);
        h.extend(b"rest");
        assert_eq!(parse(&h, BOTH), Parsed::Header { source: Some("198.51.100.9:8080".parse().unwrap()), len: 28 });
        assert_eq!(parse(&h[..20], BOTH), Parsed::Incomplete);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local, BOTH), Parsed::Header { source: None, len: 16 });
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend([0x31, 0x11, 0, 0]);
        assert!(matches!(parse(&bad, BOTH), Parsed::Invalid(_)));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend([0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(parse(&short, BOTH), Parsed::Invalid(_)));
        assert!(matches!(parse(&h, Versions { v1: true, v2: false }), Parsed::Invalid(_)));
    }
}
