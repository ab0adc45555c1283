//! Matching a concrete resource URI against an RFC 6570 URI template, so a federation can
//! tell which target's `resources/templates/list` a URI was expanded from (`file:///{path}`
//! owns `file:///notes.txt`) when URIs carry no target prefix.

use regex::Regex;

/// Whether `uri` is an expansion of `template`; `Some(n)` with the template's literal length
/// (more literal text means a more specific template), `None` when it does not match.
pub fn matches(template: &str, uri: &str) -> Option<usize> {
    let (pattern, literal) = to_regex(template)?;
    Regex::new(&pattern).ok()?.is_match(uri).then_some(literal)
}

/// The template as an anchored regex, and how many literal characters it has.
fn to_regex(template: &str) -> Option<(String, usize)> {
    let mut out = String::from("^");
    let mut literal = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&regex::escape(&rest[..open]));
        literal += open;
        let close = rest[open..].find('}')? + open;
        out.push_str(expression(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(&regex::escape(rest));
    literal += rest.len();
    out.push('$');
    Some((out, literal))
}

/// What one `{…}` expression can expand to, by its operator (RFC 6570 §3.2).
fn expression(expr: &str) -> &'static str {
    match expr.chars().next() {
        // Reserved expansion: anything, slashes included.
        Some('+') => ".*",
        Some('#') => "(#.*)?",
        Some('/') => "(/[^?#]*)*",
        Some('.') => r"(\.[^/?#]*)*",
        Some(';') => "(;[^/?#]*)*",
        Some('?') | Some('&') => "([?&][^#]*)?",
        // Simple expansion percent-encodes reserved characters: one segment at most.
        _ => "[^/?#]*",
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn expansions_match_their_template() {
        assert!(matches("file:///{path}", "file:///notes.txt").is_some());
        assert!(matches("file:///{path}", "file:///a/b.txt").is_none());
        assert!(matches("file:///{+path}", "file:///a/b.txt").is_some());
        assert!(matches("demo://resource/dynamic/text/{id}", "demo://resource/dynamic/text/5").is_some());
        assert!(matches("demo://resource/dynamic/text/{id}", "demo://resource/static/5").is_none());
        assert!(matches("users://{id}/profile{?fields}", "users://7/profile?fields=a,b").is_some());
        assert!(matches("repo://{owner}/{repo}", "repo://a/b").is_some());
        // More literal text is more specific.
        assert!(matches("a://x/{id}", "a://x/1") > matches("a://{p}/{id}", "a://x/1"));
        assert!(matches("a://{unclosed", "a://x").is_none());
    }
}
