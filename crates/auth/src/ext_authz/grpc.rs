//! The gRPC protocol: one `Check` call per request over a tonic channel made when first used
//! and kept (HTTP/2, multiplexed, reconnected by tonic), then the answer applied as Envoy
//! applies it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use pingora::http::RequestHeader;
use pingora::proxy::Session;

use tollgate_core::errors::json_error;
use tollgate_core::filters::response::LocalResponse;
use tollgate_core::filters::{request_host, RequestCtx};
use tollgate_core::telemetry::cel::Expression;
use tollgate_core::telemetry::request_vars::RequestScope;

use super::proto::*;
use super::{apply_request_header, host_port, keep_response_headers, GrpcConfig, Verdict, CHECK_TIMEOUT};

/// The gRPC check of one policy.
pub struct GrpcCheck {
    endpoint: tonic::transport::Endpoint,
    channel: OnceLock<tonic::transport::Channel>,
    context: HashMap<String, String>,
    metadata: Option<Vec<(String, Expression)>>,
    include: Option<Vec<String>>,
}

const PSEUDO: [&str; 4] = [":authority", ":method", ":path", ":scheme"];

impl GrpcCheck {
    pub(super) fn compile(host: &str, c: GrpcConfig, include: Option<Vec<String>>) -> Result<GrpcCheck, String> {
        let (h, port) = host_port(host)?;
        let authority = if h.contains(':') { format!("[{h}]:{port}") } else { format!("{h}:{port}") };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|_| format!("host `{host}` is not host:port"))?
            .connect_timeout(CHECK_TIMEOUT)
            .timeout(CHECK_TIMEOUT);
        let metadata = c.metadata.map(|m| {
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        });
        Ok(GrpcCheck { endpoint, channel: OnceLock::new(), context: c.context.unwrap_or_default(), metadata, include })
    }

    fn wants(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|names| names.iter().any(|n| n == name))
    }

    fn request(&self, session: &Session, ctx: &RequestCtx, scope: &RequestScope) -> CheckRequest {
        let req = session.req_header();
        let tls = ctx.client_tls.as_ref();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers: HashMap<String, String> = HashMap::new();
        for (name, value) in req.headers.iter() {
            if self.wants(name.as_str()) {
                let sep = if name == http::header::COOKIE { "; " } else { ", " };
                let v = String::from_utf8_lossy(value.as_bytes());
                headers.entry(name.as_str().to_string()).and_modify(|e| {
                    e.push_str(sep);
                    e.push_str(&v);
                }).or_insert_with(|| v.into_owned());
            }
        }
        for (pseudo, value) in PSEUDO.iter().zip([request_host(req), req.method.as_str(), path, scheme]) {
            if self.wants(pseudo) {
                headers.insert(pseudo.to_string(), value.to_string());
            }
        }
        let peer = |addr: Option<std::net::SocketAddr>, principal: String| Peer {
            address: addr.map(|a| Address { socket_address: Some(SocketAddress { address: a.ip().to_canonical().to_string(), port_value: a.port().into() }) }),
            principal,
        };
        let client_principal = tls.and_then(|t| t.peer.as_ref()).map(|p| p.subject_alt_names.first().cloned().unwrap_or_else(|| p.subject.clone()));
        let arrived = SystemTime::now().checked_sub(ctx.started.elapsed()).unwrap_or_else(SystemTime::now);
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(peer(session.client_addr().and_then(|a| a.as_inet()).copied(), client_principal.unwrap_or_default())),
                destination: Some(peer(session.server_addr().and_then(|a| a.as_inet()).copied(), String::new())),
                request: Some(AttrRequest {
                    time: Some(Timestamp::from(arrived)),
                    http: Some(HttpRequest {
                        id: String::new(),
                        method: req.method.as_str().to_string(),
                        headers,
                        path: path.to_string(),
                        host: request_host(req).to_string(),
                        scheme: scheme.to_string(),
                        size: 0,
                        protocol: format!("{:?}", req.version),
                    }),
                }),
                context_extensions: self.context.clone(),
                metadata_context: self.metadata_context(session, ctx, scope),
                tls_session: tls.and_then(|t| t.sni.clone()).map(|sni| TlsSession { sni }),
            }),
        }
    }

    /// `grpc.metadata` evaluated, or the verified JWT's payload where Envoy's jwt_authn filter
    /// would have put it (so services written for Envoy find it).
    fn metadata_context(&self, session: &Session, ctx: &RequestCtx, scope: &RequestScope) -> Option<Metadata> {
        let mut filter_metadata = HashMap::new();
        match &self.metadata {
            Some(exprs) => {
                let source = session.client_addr().and_then(|a| a.as_inet()).copied();
                let values: Vec<(String, serde_json::Value)> = scope.eval(session.req_header(), source, ctx, |ev| {
                    exprs.iter().filter_map(|(k, e)| Some((k.clone(), ev.eval(e)?.json().ok()?))).collect()
                });
                for (k, v) in values {
                    let s = match v {
                        serde_json::Value::Object(o) => json_to_struct(&o),
                        other => json_to_struct(&serde_json::Map::from_iter([("value".to_string(), other)])),
                    };
                    filter_metadata.insert(k, s);
                }
            }
            None => {
                let jwt = ctx.jwt.as_ref()?;
                let payload = serde_json::Map::from_iter([("jwt_payload".to_string(), serde_json::Value::Object(jwt.claims.clone()))]);
                filter_metadata.insert("envoy.filters.http.jwt_authn".to_string(), json_to_struct(&payload));
            }
        }
        Some(Metadata { filter_metadata })
    }

    async fn call(&self, request: CheckRequest) -> Result<CheckResponse, String> {
        let channel = self.channel.get_or_init(|| self.endpoint.connect_lazy()).clone();
        let mut grpc = tonic::client::Grpc::new(channel);
        let call = async {
            grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
            let path = http::uri::PathAndQuery::from_static(CHECK_PATH);
            let codec = tonic_prost::ProstCodec::<CheckRequest, CheckResponse>::default();
            grpc.unary(tonic::Request::new(request), path, codec).await.map(|r| r.into_inner()).map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        };
        match tokio::time::timeout(CHECK_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err("timed out".into()),
        }
    }

    pub(super) async fn check(&self, session: &mut Session, ctx: &mut RequestCtx, scope: &RequestScope) -> Verdict {
        let request = self.request(session, ctx, scope);
        let answer = match self.call(request).await {
            Ok(a) => a,
            Err(why) => return Verdict::Failed(why),
        };
        let code = answer.status.as_ref().map_or(0, |s| s.code);
        if code != 0 {
            return Verdict::Deny(denied(answer.denied_response, ctx));
        }
        let ok = answer.ok_response.unwrap_or_default();
        if let Some(m) = ok.dynamic_metadata.as_ref().or(answer.dynamic_metadata.as_ref()) {
            ctx.ext_authz = Some(Arc::new(struct_to_json(m)));
        }
        if let Err(e) = apply_ok(session.req_header_mut(), &ok) {
            return Verdict::Failed(format!("applying the service's changes: {e}"));
        }
        keep_response_headers(ctx, ok.response_headers_to_add.iter().filter_map(HeaderValueOption::parts).collect());
        Verdict::Allow
    }
}

/// The client's answer to a denial: the service's own status, headers and body, or 403.
fn denied(d: Option<DeniedHttpResponse>, ctx: &RequestCtx) -> LocalResponse {
    let Some(d) = d else {
        return json_error(ctx.error_format, 403, "permission_error", "external authorization failed");
    };
    let status = d.status.map(|s| s.code).filter(|c| (200..=599).contains(c)).map_or(403, |c| c as u16);
    let mut resp = LocalResponse::new(status);
    let parts: Vec<_> = d.headers.iter().filter_map(HeaderValueOption::parts).collect();
    let all: http::HeaderMap = parts.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect();
    for (name, value, _) in &parts {
        if !super::is_hop_by_hop(name, &all) {
            resp.headers.push((name.to_string(), value.to_str().unwrap_or_default().to_string()));
        }
    }
    resp.body = bytes::Bytes::from(d.body);
    resp
}

/// An allowed request's changes: headers removed, then set, then query parameters.
fn apply_ok(req: &mut RequestHeader, ok: &OkHttpResponse) -> pingora::Result<()> {
    for name in &ok.headers_to_remove {
        if !name.starts_with(':') && !name.eq_ignore_ascii_case("host") {
            req.remove_header(name.as_str());
        }
    }
    for h in &ok.headers {
        let Some(header) = &h.header else { continue };
        if header.key == ":path" {
            tollgate_core::filters::set_path_and_query(req, header.value.clone())?;
            continue;
        }
        if header.key.starts_with(':') {
            continue;
        }
        if let Some((name, value, action)) = h.parts() {
            apply_request_header(req, name, value, action)?;
        }
    }
    if !ok.query_parameters_to_set.is_empty() || !ok.query_parameters_to_remove.is_empty() {
        let set: Vec<(&str, &str)> = ok.query_parameters_to_set.iter().map(|q| (q.key.as_str(), q.value.as_str())).collect();
        let remove: Vec<&str> = ok.query_parameters_to_remove.iter().map(String::as_str).collect();
        let pq = edit_query(req.uri.path(), req.uri.query(), &set, &remove);
        tollgate_core::filters::set_path_and_query(req, pq)?;
    }
    Ok(())
}

/// `path?query` with parameters removed and set (set ones replace all of that name).
fn edit_query(path: &str, query: Option<&str>, set: &[(&str, &str)], remove: &[&str]) -> String {
    let key_of = |pair: &str| String::from_utf8_lossy(&tollgate_core::router::query_decode_bytes(pair.split_once('=').map_or(pair, |(k, _)| k))).into_owned();
    let mut kept: Vec<String> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = key_of(p);
            !remove.contains(&k.as_str()) && !set.iter().any(|(s, _)| *s == k)
        })
        .map(str::to_string)
        .collect();
    kept.extend(set.iter().map(|(k, v)| format!("{}={}", crate::percent_encode(k), crate::percent_encode(v))));
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_edits_replace_remove_and_encode() {
        assert_eq!(edit_query("/p", Some("a=1&b=2&a=3"), &[("a", "x y")], &["b"]), "/p?a=x%20y");
        assert_eq!(edit_query("/p", None, &[], &["b"]), "/p");
        assert_eq!(edit_query("/p", Some("keep=1&drop%20me=2"), &[], &["drop me"]), "/p?keep=1");
    }

    #[test]
    fn header_actions_follow_envoy() {
        let opt = |action: i32, append: Option<bool>| HeaderValueOption {
            header: Some(HeaderValue { key: "x-a".into(), value: "1".into(), raw_value: vec![] }),
            append: append.map(|value| BoolValue { value }),
            append_action: action,
        };
        use HeaderAction::*;
        assert_eq!(opt(0, None).parts().unwrap().2, Overwrite);
        assert_eq!(opt(0, Some(true)).parts().unwrap().2, Append);
        assert_eq!(opt(1, None).parts().unwrap().2, AddIfAbsent);
        assert_eq!(opt(3, None).parts().unwrap().2, OverwriteIfExists);
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("x-a", "0").unwrap();
        apply_request_header(&mut req, "x-a".parse().unwrap(), "1".parse().unwrap(), AddIfAbsent).unwrap();
        assert_eq!(req.headers["x-a"], "0");
        apply_request_header(&mut req, "x-b".parse().unwrap(), "1".parse().unwrap(), OverwriteIfExists).unwrap();
        assert!(req.headers.get("x-b").is_none());
        apply_request_header(&mut req, "x-a".parse().unwrap(), "2".parse().unwrap(), Append).unwrap();
        assert_eq!(req.headers.get_all("x-a").iter().count(), 2);
    }
}
