//! The messages of Envoy's external authorization service (`envoy/service/auth/v3/
//! external_auth.proto`, `attribute_context.proto`, and the `envoy.config.core.v3` and
//! `google.rpc` types they use), written out for prost with Envoy's field numbers: the fields
//! tollgate sends and reads (unknown ones are skipped on decode). `google.protobuf` types come
//! from prost-types.

use std::collections::HashMap;

pub use prost_types::{Struct, Timestamp};

/// The gRPC method.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// `CheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckRequest {
    /// What is known about the request.
    #[prost(message, optional, tag = "1")]
    pub attributes: Option<AttributeContext>,
}

/// `AttributeContext`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeContext {
    /// The client.
    #[prost(message, optional, tag = "1")]
    pub source: Option<Peer>,
    /// The gateway's listening address.
    #[prost(message, optional, tag = "2")]
    pub destination: Option<Peer>,
    /// The request.
    #[prost(message, optional, tag = "4")]
    pub request: Option<AttrRequest>,
    /// `grpc.context`.
    #[prost(map = "string, string", tag = "10")]
    pub context_extensions: HashMap<String, String>,
    /// `grpc.metadata` (or the JWT payload).
    #[prost(message, optional, tag = "11")]
    pub metadata_context: Option<Metadata>,
    /// TLS facts of the client connection.
    #[prost(message, optional, tag = "12")]
    pub tls_session: Option<TlsSession>,
}

/// `AttributeContext.Peer`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    /// Its address.
    #[prost(message, optional, tag = "1")]
    pub address: Option<Address>,
    /// Its verified identity (client certificate), if any.
    #[prost(string, tag = "4")]
    pub principal: String,
}

/// `envoy.config.core.v3.Address` (the socket-address arm).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Address {
    /// IP and port.
    #[prost(message, optional, tag = "1")]
    pub socket_address: Option<SocketAddress>,
}

/// `envoy.config.core.v3.SocketAddress`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SocketAddress {
    /// The IP.
    #[prost(string, tag = "2")]
    pub address: String,
    /// The port.
    #[prost(uint32, tag = "3")]
    pub port_value: u32,
}

/// `AttributeContext.Request`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrRequest {
    /// When the request arrived.
    #[prost(message, optional, tag = "1")]
    pub time: Option<Timestamp>,
    /// The HTTP request.
    #[prost(message, optional, tag = "2")]
    pub http: Option<HttpRequest>,
}

/// `AttributeContext.HttpRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRequest {
    /// Request id (the trace id, when traced).
    #[prost(string, tag = "1")]
    pub id: String,
    /// Method.
    #[prost(string, tag = "2")]
    pub method: String,
    /// Headers, lowercase names, repeated values joined with `, `.
    #[prost(map = "string, string", tag = "3")]
    pub headers: HashMap<String, String>,
    /// Path and query.
    #[prost(string, tag = "4")]
    pub path: String,
    /// Host.
    #[prost(string, tag = "5")]
    pub host: String,
    /// `http` or `https`.
    #[prost(string, tag = "6")]
    pub scheme: String,
    /// Body length sent (0: none).
    #[prost(int64, tag = "9")]
    pub size: i64,
    /// `HTTP/1.1`, `HTTP/2`.
    #[prost(string, tag = "10")]
    pub protocol: String,
}

/// `envoy.config.core.v3.Metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// Namespaced structs.
    #[prost(map = "string, message", tag = "1")]
    pub filter_metadata: HashMap<String, Struct>,
}

/// `AttributeContext.TLSSession`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TlsSession {
    /// The server name the client asked for.
    #[prost(string, tag = "1")]
    pub sni: String,
}

/// `CheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckResponse {
    /// The decision: code 0 allows.
    #[prost(message, optional, tag = "1")]
    pub status: Option<RpcStatus>,
    /// What to answer a denied request with.
    #[prost(message, optional, tag = "2")]
    pub denied_response: Option<DeniedHttpResponse>,
    /// What to change on an allowed request.
    #[prost(message, optional, tag = "3")]
    pub ok_response: Option<OkHttpResponse>,
    /// Facts for later policies (`extauthz.*`).
    #[prost(message, optional, tag = "4")]
    pub dynamic_metadata: Option<Struct>,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `DeniedHttpResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeniedHttpResponse {
    /// Status (default 403).
    #[prost(message, optional, tag = "1")]
    pub status: Option<HttpStatus>,
    /// Headers.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderValueOption>,
    /// Body.
    #[prost(string, tag = "3")]
    pub body: String,
}

/// `envoy.type.v3.HttpStatus` (the enum's numbers are the HTTP codes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpStatus {
    /// The code.
    #[prost(int32, tag = "1")]
    pub code: i32,
}

/// `OkHttpResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OkHttpResponse {
    /// Headers set on the upstream request.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderValueOption>,
    /// Deprecated metadata (wins over the response's when set).
    #[prost(message, optional, tag = "3")]
    pub dynamic_metadata: Option<Struct>,
    /// Headers removed from the upstream request.
    #[prost(string, repeated, tag = "5")]
    pub headers_to_remove: Vec<String>,
    /// Headers added to the client's response.
    #[prost(message, repeated, tag = "6")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Query parameters set on the upstream request.
    #[prost(message, repeated, tag = "7")]
    pub query_parameters_to_set: Vec<QueryParameter>,
    /// Query parameters removed from the upstream request.
    #[prost(string, repeated, tag = "8")]
    pub query_parameters_to_remove: Vec<String>,
}

/// `envoy.config.core.v3.HeaderValueOption`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValueOption {
    /// The header.
    #[prost(message, optional, tag = "1")]
    pub header: Option<HeaderValue>,
    /// Deprecated `append` (a `BoolValue`).
    #[prost(message, optional, tag = "2")]
    pub append: Option<BoolValue>,
    /// `HeaderAppendAction` (0 = append if exists or add, the default).
    #[prost(int32, tag = "3")]
    pub append_action: i32,
}

/// `google.protobuf.BoolValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BoolValue {
    /// The value.
    #[prost(bool, tag = "1")]
    pub value: bool,
}

/// `envoy.config.core.v3.HeaderValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    /// Name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value as text.
    #[prost(string, tag = "2")]
    pub value: String,
    /// Value as bytes (newer Envoy; used when `value` is empty).
    #[prost(bytes = "vec", tag = "3")]
    pub raw_value: Vec<u8>,
}

/// `envoy.config.core.v3.QueryParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParameter {
    /// Name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// How a header from the service is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderAction {
    /// Add another value (or add).
    Append,
    /// Add only when absent.
    AddIfAbsent,
    /// Replace (or add).
    Overwrite,
    /// Replace only when present.
    OverwriteIfExists,
}

impl HeaderValueOption {
    /// The name, value and action; `None` when the name or value is not a valid header.
    pub fn parts(&self) -> Option<(http::HeaderName, http::HeaderValue, HeaderAction)> {
        let h = self.header.as_ref()?;
        let name = http::HeaderName::from_bytes(h.key.as_bytes()).ok()?;
        let raw = if h.value.is_empty() { &h.raw_value[..] } else { h.value.as_bytes() };
        let value = http::HeaderValue::from_bytes(raw).ok()?;
        // An action left at its default (0) defers to the deprecated `append` flag, whose own
        // default for ext_authz is to overwrite.
        let action = match self.append_action {
            1 => HeaderAction::AddIfAbsent,
            2 => HeaderAction::Overwrite,
            3 => HeaderAction::OverwriteIfExists,
            _ => match &self.append {
                Some(BoolValue { value: true }) => HeaderAction::Append,
                _ => HeaderAction::Overwrite,
            },
        };
        Some((name, value, action))
    }
}

/// A JSON value as a protobuf `Struct` field value.
pub fn json_to_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue { values: a.iter().map(json_to_value).collect() }),
        serde_json::Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_to_struct(o: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct { fields: o.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() }
}

/// A protobuf `Struct` as JSON (for `extauthz.*` in CEL).
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect())
}

fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::ListValue(l)) => l.values.iter().map(value_to_json).collect(),
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}
