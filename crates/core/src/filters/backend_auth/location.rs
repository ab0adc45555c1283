//! `backendAuth.key.location`: where a static key goes upstream, when not in
//! `Authorization: Bearer`: a header with an optional prefix (`x-api-key`, `api-key`), a query
//! parameter (Google's `?key=`), or a cookie. It is placed after every rewrite of the request
//! (paths, provider headers), last before the request leaves, and it replaces whatever the
//! client sent there. A CEL `expression` can read a credential but not place one, as in
//! agentgateway: a load error.

use http::header::HeaderName;
use http::HeaderValue;
use pingora::http::RequestHeader;
use serde::de;
use serde::Deserialize;

/// Where the key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// `{header: {name, prefix}}`: `name: {prefix}{key}`.
    Header {
        /// The header.
        name: HeaderName,
        /// Written before the key (`Bearer `), if any.
        prefix: Option<String>,
    },
    /// `{queryParameter: {name}}`: `?name={key}`, replacing the client's.
    QueryParameter(String),
    /// `{cookie: {name}}`: `Cookie: name={key}`, beside the client's other cookies.
    Cookie(String),
}

impl<'de> Deserialize<'de> for KeyLocation {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Header {
            name: String,
            prefix: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Named {
            name: String,
        }
        /// One key of: `header`, `queryParameter`, `cookie` (`expression` only to refuse it).
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Form {
            header: Option<Header>,
            query_parameter: Option<Named>,
            cookie: Option<Named>,
            expression: Option<de::IgnoredAny>,
        }
        let f = Form::deserialize(d)?;
        if f.expression.is_some() {
            return Err(de::Error::custom("location.expression can read a credential but cannot place one (use header, queryParameter or cookie)"));
        }
        match (f.header, f.query_parameter, f.cookie) {
            (Some(h), None, None) => {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| de::Error::custom(format!("location.header.name `{}` is not a header name", h.name)))?;
                // Framing and routing headers are the gateway's to write.
                if ["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"].contains(&name.as_str()) {
                    return Err(de::Error::custom(format!("location.header.name `{name}` cannot carry a credential")));
                }
                if h.prefix.as_deref().is_some_and(|p| HeaderValue::from_str(p).is_err()) {
                    return Err(de::Error::custom("location.header.prefix is not a valid header value"));
                }
                Ok(KeyLocation::Header { name, prefix: h.prefix })
            }
            (None, Some(q), None) if !q.name.is_empty() => Ok(KeyLocation::QueryParameter(q.name)),
            (None, Some(_), None) => Err(de::Error::custom("location.queryParameter.name is empty")),
            (None, None, Some(c)) if is_token(&c.name) => Ok(KeyLocation::Cookie(c.name)),
            (None, None, Some(c)) => Err(de::Error::custom(format!("location.cookie.name `{}` is not a cookie name", c.name))),
            _ => Err(de::Error::custom("location takes exactly one of header, queryParameter, cookie")),
        }
    }
}

/// An HTTP token (RFC 9110): what a cookie name may be.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A key and where it goes.
#[derive(Clone)]
pub struct PlacedKey {
    secret: String,
    location: KeyLocation,
}

impl std::fmt::Debug for PlacedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlacedKey({:?})", self.location)
    }
}

impl PlacedKey {
    /// The key for `location`, checked so that placing it cannot fail or split the request.
    pub fn new(secret: String, location: KeyLocation) -> Result<Self, String> {
        match &location {
            KeyLocation::Header { prefix, .. } => {
                HeaderValue::from_str(&format!("{}{secret}", prefix.as_deref().unwrap_or(""))).map_err(|_| "the key is not a valid header value")?;
            }
            KeyLocation::Cookie(_) if secret.bytes().any(|b| b <= b' ' || b == b';' || b == b',' || b == b'"' || b == b'\\' || b == 0x7f) => {
                return Err("the key cannot be a cookie value (spaces, `;`, `,`, quotes or control characters)".into());
            }
            _ => {}
        }
        Ok(PlacedKey { secret, location })
    }

    /// Writes the key into the request about to go upstream.
    pub fn place(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        match &self.location {
            KeyLocation::Header { name, prefix } => {
                let mut v = HeaderValue::from_str(&format!("{}{}", prefix.as_deref().unwrap_or(""), self.secret))
                    .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "backendAuth key", e))?;
                v.set_sensitive(true);
                req.insert_header(name.clone(), v)?;
            }
            KeyLocation::QueryParameter(name) => {
                let path = req.uri.path().to_string();
                let mut pairs: Vec<&str> = req.uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()).filter(|p| !query_key_is(p, name)).collect();
                let mine = form_urlencoded::Serializer::new(String::new()).append_pair(name, &self.secret).finish();
                pairs.push(&mine);
                let pq = format!("{path}?{}", pairs.join("&"));
                crate::filters::set_path_and_query(req, pq)?;
            }
            KeyLocation::Cookie(name) => {
                let mut cookies: Vec<String> = Vec::new();
                for v in req.headers.get_all(http::header::COOKIE) {
                    let Ok(v) = v.to_str() else { continue };
                    cookies.extend(v.split(';').map(str::trim).filter(|c| !c.is_empty() && c.split('=').next() != Some(name.as_str())).map(str::to_string));
                }
                cookies.push(format!("{name}={}", self.secret));
                let mut v = HeaderValue::from_str(&cookies.join("; ")).map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "backendAuth cookie", e))?;
                v.set_sensitive(true);
                req.remove_header(&http::header::COOKIE);
                req.insert_header(http::header::COOKIE, v)?;
            }
        }
        Ok(())
    }
}

/// Whether a raw `k=v` query pair's key, decoded, is `name`.
fn query_key_is(pair: &str, name: &str) -> bool {
    let key = pair.split('=').next().unwrap_or("");
    form_urlencoded::parse(format!("{key}=").as_bytes()).next().is_some_and(|(k, _)| k == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pq: &str) -> RequestHeader {
        RequestHeader::build("POST", pq.as_bytes(), None).unwrap()
    }

    #[test]
    fn a_query_key_replaces_the_client_s_and_keeps_the_rest() {
        let k = PlacedKey::new("s3cr&t".into(), KeyLocation::QueryParameter("key".into())).unwrap();
        let mut r = req("/v1beta/models/m:generateContent?alt=sse&key=client&k%65y=also");
        k.place(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/v1beta/models/m:generateContent?alt=sse&key=s3cr%26t");
        let mut r = req("/p");
        k.place(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/p?key=s3cr%26t");
    }

    #[test]
    fn headers_and_cookies() {
        let k = PlacedKey::new("abc".into(), KeyLocation::Header { name: HeaderName::from_static("api-key"), prefix: Some("Key ".into()) }).unwrap();
        let mut r = req("/");
        r.insert_header("api-key", "client").unwrap();
        k.place(&mut r).unwrap();
        assert_eq!(r.headers.get("api-key").unwrap(), "Key abc");
        let c = PlacedKey::new("abc".into(), KeyLocation::Cookie("session".into())).unwrap();
        let mut r = req("/");
        r.insert_header("cookie", "a=1; session=client; b=2").unwrap();
        c.place(&mut r).unwrap();
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2; session=abc");
        assert!(PlacedKey::new("a;b".into(), KeyLocation::Cookie("s".into())).is_err());
        assert!(PlacedKey::new("a\nb".into(), KeyLocation::Header { name: HeaderName::from_static("x"), prefix: None }).is_err());
    }

    #[test]
    fn locations_parse_as_agentgateway_writes_them() {
        let l: KeyLocation = serde_yaml_ng::from_str("{header: {name: x-api-key}}").unwrap();
        assert_eq!(l, KeyLocation::Header { name: HeaderName::from_static("x-api-key"), prefix: None });
        let l: KeyLocation = serde_yaml_ng::from_str("{queryParameter: {name: key}}").unwrap();
        assert_eq!(l, KeyLocation::QueryParameter("key".into()));
        for bad in ["{expression: 'request.headers.x'}", "{header: {name: content-length}}", "{cookie: {name: 'a b'}}", "{header: {name: x, other: 1}}"] {
            assert!(serde_yaml_ng::from_str::<KeyLocation>(bad).is_err(), "{bad}");
        }
    }
}
