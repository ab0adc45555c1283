//! Request path normalization, before routing: the path that routes, policies and
//! `ai.routes` match on is the path the upstream receives, so `/a/../admin`, `/a/%2e%2e/admin`
//! or `/v1/%63hat/completions` cannot reach what the plain spelling would not.
//!
//! Rules (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded
//! (`%61` → `a`, `%2E` → `.`), other escapes get upper-case hex, dot segments are removed
//! (§5.2.4), and runs of `/` become one. An encoded slash (`%2F`) or any backslash (raw or
//! `%5C`) is refused: servers disagree on whether they separate segments, which is exactly
//! what a path-confusion attack needs. So is a NUL (`%00`) and a path that does not start
//! with `/`.

use std::borrow::Cow;

/// Why a path was refused.
pub type PathError = &'static str;

/// The normalized form of `path` (borrowed when already normal).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err("the request path must start with `/`");
    }
    let b = path.as_bytes();
    let suspicious = b.iter().any(|&c| c == b'%' || c == b'\\') || path.contains("//") || has_dot_segment(b);
    if !suspicious {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(b)?;
    let mut out = String::with_capacity(decoded.len());
    for segment in remove_dot_segments(&decoded) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (decoded.ends_with('/') && !out.ends_with('/')) || ends_in_dot_segment(&decoded) {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

fn has_dot_segment(b: &[u8]) -> bool {
    b.windows(2).enumerate().any(|(i, w)| w == b"/." && matches!(b.get(i + 2), None | Some(b'/') | Some(b'.')))
}

fn ends_in_dot_segment(path: &str) -> bool {
    path.ends_with("/.") || path.ends_with("/..")
}

/// Decodes `%XX` for unreserved characters; other escapes stay, upper-cased.
fn decode_unreserved(b: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err("a backslash in the request path is refused"),
            b'%' => {
                let (hi, lo) = match (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err("a malformed percent-escape in the request path"),
                };
                let byte = hi << 4 | lo;
                match byte {
                    b'/' => return Err("an encoded slash (%2F) in the request path is refused"),
                    b'\\' => return Err("an encoded backslash (%5C) in the request path is refused"),
                    0 => return Err("an encoded NUL in the request path is refused"),
                    c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => out.push(c as char),
                    c => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(c >> 4)]));
                        out.push(char::from(HEX[usize::from(c & 15)]));
                    }
                }
                i += 3;
            }
            c => {
                // The path came from a parsed URI: ASCII only; anything else is refused.
                if !c.is_ascii() {
                    return Err("a non-ASCII byte in the request path is refused");
                }
                out.push(c as char);
                i += 1;
            }
        }
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The segments left after `.` and `..` are resolved and empty ones dropped.
fn remove_dot_segments(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn n(p: &str) -> String {
        normalize(p).map(|c| c.into_owned()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for p in ["/", "/v1/chat/completions", "/a.b/c..d/.e", "/x/"] {
            assert!(matches!(normalize(p), Ok(std::borrow::Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_escapes() {
        assert_eq!(n("/raw/x/../admin"), "/raw/admin");
        assert_eq!(n("/raw/./admin"), "/raw/admin");
        assert_eq!(n("/raw/%2e%2e/admin"), "/admin");
        assert_eq!(n("/raw/x/.%2e/admin"), "/raw/admin");
        assert_eq!(n("/raw/%61dmin"), "/raw/admin");
        assert_eq!(n("/v1/%63hat/completions"), "/v1/chat/completions");
        assert_eq!(n("//raw//admin"), "/raw/admin");
        assert_eq!(n("/../../etc"), "/etc");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("/a/%7e"), "/a/~");
        assert_eq!(n("/a/%c3%a9"), "/a/%C3%A9");
        assert_eq!(n("/a/%20b"), "/a/%20b");
        assert_eq!(n("/a//"), "/a/");
        assert_eq!(n("/.."), "/");
    }

    #[test]
    fn refused() {
        for p in ["/a%2fb", "/a%2Fb", "/a\\b", "/a%5cb", "/a%00", "/a%zz", "/a%4", "x/y", "*"] {
            assert!(normalize(p).is_err(), "{p}");
        }
    }
}
