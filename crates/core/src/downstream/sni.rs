//! Reading a TLS ClientHello far enough to learn the server name (SNI) the client wants,
//! without consuming it: the bytes stay in the connection's prefix for the handshake (or
//! for the upstream, when TLS passes through).

use tokio::time::Instant;

use super::prefixed::Prefixed;

/// Largest TLS record accepted (a record's payload is at most 16 KiB + 2 KiB).
const MAX_RECORD: usize = 16 * 1024 + 2048;
/// Largest ClientHello accepted, across however many records carry it.
const MAX_HELLO: usize = 64 * 1024;

/// What the start of a TLS port's connection turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// A ClientHello; the server name, if it gave one.
    Tls(Option<String>),
    /// Not a TLS handshake.
    NotTls,
    /// Closed (or failed) before the whole ClientHello arrived.
    Closed,
    /// The deadline passed first.
    TimedOut,
}

/// Reads the whole ClientHello into the prefix (by `deadline`), reassembling it when the
/// client split it across records, and returns its SNI. rustls reassembles it the same way,
/// so both read the same server name.
pub async fn read_client_hello(conn: &mut Prefixed, deadline: Instant) -> Hello {
    loop {
        match scan(&conn.prefix) {
            Scan::Done(hello) => return hello,
            Scan::More => {}
        }
        if conn.prefix.len() >= MAX_HELLO + 5 * 8 {
            return Hello::NotTls;
        }
        match tokio::time::timeout_at(deadline, conn.fill(16 * 1024)).await {
            Err(_) => return Hello::TimedOut,
            Ok(Ok(0)) | Ok(Err(_)) => return Hello::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

enum Scan {
    Done(Hello),
    More,
}

/// Walks the handshake records received so far.
fn scan(buf: &[u8]) -> Scan {
    let mut handshake = Vec::new();
    let mut pos = 0;
    loop {
        let Some(header) = buf.get(pos..pos + 5) else { return Scan::More };
        if header[0] != 0x16 || header[1] != 3 {
            return Scan::Done(Hello::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Scan::Done(Hello::NotTls);
        }
        let Some(payload) = buf.get(pos + 5..pos + 5 + len) else { return Scan::More };
        handshake.extend_from_slice(payload);
        pos += 5 + len;
        if handshake.len() >= 4 {
            let need = 4 + (usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]));
            if need > MAX_HELLO {
                return Scan::Done(Hello::NotTls);
            }
            if handshake.len() >= need {
                return Scan::Done(Hello::Tls(server_name(&handshake[..need])));
            }
        }
    }
}

/// The server_name extension of a ClientHello handshake message (the payload of the first
/// record); `None` when absent, truncated or not a valid host name.
pub fn server_name(record: &[u8]) -> Option<String> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let body_len = r.u24()?;
    let mut body = Reader(r.take(body_len.min(r.0.len()))?);
    body.take(2 + 32)?; // legacy_version, random
    let session = usize::from(body.u8()?);
    body.take(session)?;
    let suites = usize::from(body.u16()?);
    body.take(suites)?;
    let compression = usize::from(body.u8()?);
    body.take(compression)?;
    let ext_len = usize::from(body.u16()?);
    let mut exts = Reader(body.take(ext_len.min(body.0.len()))?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let data = exts.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(data);
        let list_len = usize::from(list.u16()?);
        let mut names = Reader(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let n = usize::from(names.u16()?);
            let name = names.take(n)?;
            if name_type == 0 {
                return valid_host(name);
            }
        }
        return None;
    }
    None
}

/// A DNS host name (letters, digits, `-`, `.`, `_`), lowercased; anything else is ignored.
fn valid_host(name: &[u8]) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    ok.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello handshake message with the given SNI.
    fn hello(sni: Option<&str>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        let mut exts = Vec::new();
        exts.extend([0x00, 0x2b, 0, 3, 2, 3, 4]); // supported_versions
        if let Some(name) = sni {
            let n = name.len() as u16;
            exts.extend([0, 0]);
            exts.extend((n + 5).to_be_bytes());
            exts.extend((n + 3).to_be_bytes());
            exts.push(0);
            exts.extend(n.to_be_bytes());
            exts.extend(name.as_bytes());
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut msg = vec![1];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    #[test]
    fn finds_the_server_name() {
        assert_eq!(server_name(&hello(Some("A.Example.com"))), Some("a.example.com".into()));
        assert_eq!(server_name(&hello(None)), None);
    }

    fn records(msg: &[u8], cut: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [&msg[..cut], &msg[cut..]] {
            out.extend([0x16, 3, 1]);
            out.extend((part.len() as u16).to_be_bytes());
            out.extend(part);
        }
        out
    }

    #[test]
    fn a_client_hello_split_across_records_is_reassembled() {
        let msg = hello(Some("secure.test"));
        for cut in [1, 3, 10, msg.len() - 1] {
            let wire = records(&msg, cut);
            assert!(matches!(scan(&wire), Scan::Done(Hello::Tls(Some(ref n))) if n == "secure.test"), "cut at {cut}");
            assert!(matches!(scan(&wire[..wire.len() - 1]), Scan::More));
        }
        assert!(matches!(scan(b"GET / HTTP/1.1"), Scan::Done(Hello::NotTls)));
    }

    #[test]
    fn truncated_or_hostile_input_gives_none() {
        let full = hello(Some("a.example.com"));
        for cut in 0..full.len() {
            assert_eq!(server_name(&full[..cut]), None, "cut at {cut}");
        }
        assert_eq!(server_name(&hello(Some("a b"))), None);
        assert_eq!(server_name(&hello(Some("x/../y"))), None);
    }
}
