//! The messages of Envoy's rate-limit service (`envoy/service/ratelimit/v3/rls.proto` and
//! `envoy/extensions/common/ratelimit/v3/ratelimit.proto`), written out for prost: the fields
//! tollgate sends and reads, with Envoy's field numbers (unknown ones are skipped on decode).

/// `RateLimitRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitRequest {
    /// The domain the service's configuration is keyed by.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// What to count.
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// Hits for every descriptor without its own (tollgate sets each descriptor's).
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

/// `RateLimitDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitDescriptor {
    /// Key/value pairs, in order.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// `limit` override (not sent).
    #[prost(message, optional, tag = "2")]
    pub limit: Option<RateLimitOverride>,
    /// How many hits this request counts for.
    #[prost(message, optional, tag = "3")]
    pub hits_addend: Option<UInt64Value>,
}

/// `RateLimitDescriptor.Entry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// Descriptor key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Descriptor value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `RateLimitDescriptor.RateLimitOverride`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitOverride {
    /// Requests per unit.
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// `RateLimitUnit`.
    #[prost(int32, tag = "2")]
    pub unit: i32,
}

/// `google.protobuf.UInt64Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UInt64Value {
    /// The value.
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `RateLimitResponse.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// No decision.
    Unknown = 0,
    /// Under the limit.
    Ok = 1,
    /// Over the limit.
    OverLimit = 2,
}

/// `RateLimitResponse` (the fields tollgate uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitResponse {
    /// `Code` of the whole request.
    #[prost(int32, tag = "1")]
    pub overall_code: i32,
    /// Headers for the client's response.
    #[prost(message, repeated, tag = "3")]
    pub response_headers_to_add: Vec<HeaderValue>,
    /// Headers for the upstream request.
    #[prost(message, repeated, tag = "4")]
    pub request_headers_to_add: Vec<HeaderValue>,
}

/// `config.core.v3.HeaderValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    /// Name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value as text.
    #[prost(string, tag = "2")]
    pub value: String,
    /// Value as bytes (wins when set).
    #[prost(bytes = "vec", tag = "3")]
    pub raw_value: Vec<u8>,
}

impl HeaderValue {
    /// The header as `http` types, or `None` when the service sent an invalid name or value
    /// (skipped: a bad answer must not fail the request).
    pub fn valid(&self) -> Option<(http::HeaderName, http::HeaderValue)> {
        let name = http::HeaderName::from_bytes(self.key.as_bytes()).ok()?;
        let value = http::HeaderValue::from_str(&self.text()).ok()?;
        Some((name, value))
    }

    /// The value, from `raw_value` when set.
    pub fn text(&self) -> String {
        if self.raw_value.is_empty() {
            self.value.clone()
        } else {
            String::from_utf8_lossy(&self.raw_value).into_owned()
        }
    }
}
