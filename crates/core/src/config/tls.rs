//! Downstream TLS as agentgateway writes it: a listener's `tls` block (`LocalTLSServerConfig`)
//! and the gateway-wide defaults under `frontendPolicies.tls`.

use serde::de;
use serde::Deserialize;

use super::types::{GoDuration, Unsupported};

/// A listener's `tls:` block (HTTPS, or TLS terminated in front of a TCP route).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsServerConfig {
    /// `static` (cert/key are the leaf) only; `dynamicCa` is not supported yet.
    pub mode: Option<TlsServerMode>,
    /// PEM certificate chain file (leaf first).
    pub cert: Option<String>,
    /// PEM private key file.
    pub key: Option<String>,
    /// PEM CA file: when set, clients must present a certificate it signed (mTLS).
    pub root: Option<String>,
    /// Not supported: needs a SPIFFE Workload API.
    pub spiffe: Option<Unsupported>,
    /// Cipher-suite allowlist, in preference order (IANA names).
    pub cipher_suites: Option<Vec<String>>,
    /// Lowest TLS version accepted.
    #[serde(rename = "minTLSVersion", alias = "minTlsVersion")]
    pub min_tls_version: Option<TlsVersion>,
    /// Highest TLS version accepted.
    #[serde(rename = "maxTLSVersion", alias = "maxTlsVersion")]
    pub max_tls_version: Option<TlsVersion>,
    /// Key exchange groups allowed (`X25519`, `P-256`, `P-384`).
    pub key_exchange_groups: Option<Vec<String>>,
}

super::types::one_supported_value! {
    /// `tls.mode`.
    TlsServerMode, "tls mode", "static", ["dynamicCa"]
}

/// A TLS protocol version; rustls (like agentgateway) speaks only 1.2 and 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "TLS_V1_2" | "1.2" | "TLSv1.2" => Ok(TlsVersion::V1_2),
            "TLS_V1_3" | "1.3" | "TLSv1.3" => Ok(TlsVersion::V1_3),
            v @ ("TLS_V1_0" | "TLS_V1_1" | "1.0" | "1.1") => {
                Err(de::Error::custom(format!("TLS version `{v}` is not supported (only TLS 1.2 and 1.3)")))
            }
            other => Err(de::Error::unknown_variant(other, &["TLS_V1_2", "TLS_V1_3"])),
        }
    }
}

/// `frontendPolicies.tls`: defaults for every TLS listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendTls {
    /// Longest a client may take to complete its handshake (default 15 s).
    pub handshake_timeout: Option<GoDuration>,
    /// ALPN protocols offered, as byte strings (default `h2`, `http/1.1`).
    pub alpn: Option<Vec<Vec<u8>>>,
    /// Lowest TLS version, unless a listener says otherwise.
    pub min_version: Option<TlsVersion>,
    /// Highest TLS version, unless a listener says otherwise.
    pub max_version: Option<TlsVersion>,
    /// Cipher-suite allowlist, unless a listener says otherwise.
    pub cipher_suites: Option<Vec<String>>,
    /// Key exchange groups, unless a listener says otherwise.
    pub key_exchange_groups: Option<Vec<String>>,
}
