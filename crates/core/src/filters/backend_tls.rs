//! `backendTLS`: connect to the upstream over TLS. `{}` trusts the system roots;
//! `root` a private CA; `cert`/`key` present a client certificate; `hostname` sets SNI.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::protocols::tls::CaType;
use pingora::proxy::Session;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use pingora::Result;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::registry::{build_with, FilterSpec, Levels};
use super::{Filter, FilterAction, RequestCtx};
use crate::config::types::{resolve_config_path, Unsupported};
use crate::ctx::TlsPlan;

/// Registry entry for `backendTLS`.
pub const SPEC: FilterSpec = FilterSpec {
    name: "backendTLS",
    levels: Levels::ROUTE_AND_BACKEND,
    order: 100,
    build: |d| build_with(d, |c: BackendTlsConfig| Ok(BackendTls(Arc::new(c.compile()?)))),
};

/// The YAML block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTlsConfig {
    /// Client certificate chain (PEM file) for mutual TLS.
    pub cert: Option<String>,
    /// Client private key (PEM file).
    pub key: Option<String>,
    /// CA bundle (PEM file) to trust instead of the system roots.
    pub root: Option<String>,
    /// SNI and the name the certificate must carry.
    pub hostname: Option<String>,
    /// Do not verify the certificate at all.
    #[serde(default)]
    pub insecure: bool,
    /// Verify the chain but not the host name.
    #[serde(default)]
    pub insecure_host: bool,
    /// Not supported yet.
    pub alpn: Option<Unsupported>,
    /// Not supported yet.
    pub subject_alt_names: Option<Unsupported>,
    /// Not supported yet.
    pub key_exchange_groups: Option<Unsupported>,
    /// Not supported yet.
    pub spiffe: Option<Unsupported>,
}

impl BackendTlsConfig {
    /// Loads the files once, at config load.
    pub fn compile(&self) -> Result<TlsPlan, String> {
        let roots = match &self.root {
            Some(path) => Some(load_roots(path)?),
            None => None,
        };
        let client_cert = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some(Arc::new(load_cert_key(c, k)?)),
            (None, None) => None,
            _ => return Err("`cert` and `key` must be given together".into()),
        };
        Ok(TlsPlan {
            sni: self.hostname.clone(),
            roots,
            client_cert,
            insecure: self.insecure,
            insecure_host: self.insecure_host,
        })
    }
}

fn read_certs(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let full = resolve_config_path(path);
    let certs = CertificateDer::pem_file_iter(&full)
        .map_err(|e| format!("cannot read certificates from `{}`: {e}", full.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM in `{}`: {e}", full.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in `{}`", full.display()));
    }
    certs
        .into_iter()
        .map(|c| {
            let der = c.as_ref().to_vec();
            // Pingora's parser panics on malformed DER; check it here instead.
            x509_ok(&der).then_some(der).ok_or_else(|| format!("malformed certificate in `{}`", full.display()))
        })
        .collect()
}

fn x509_ok(der: &[u8]) -> bool {
    let owned = der.to_vec();
    std::panic::catch_unwind(move || {
        WrappedX509::new(owned, parse_x509);
    })
    .is_ok()
}

fn load_roots(path: &str) -> Result<Arc<CaType>, String> {
    let certs: Vec<WrappedX509> = read_certs(path)?.into_iter().map(|der| WrappedX509::new(der, parse_x509)).collect();
    Ok(Arc::from(certs.into_boxed_slice()))
}

fn load_cert_key(cert: &str, key: &str) -> Result<CertKey, String> {
    let certs = read_certs(cert)?;
    let full = resolve_config_path(key);
    let key = PrivateKeyDer::from_pem_file(&full)
        .map_err(|e| format!("cannot read private key from `{}`: {e}", full.display()))?;
    Ok(CertKey::new(certs, key.secret_der().to_vec()))
}

/// Puts the TLS plan on the request's upstream.
pub struct BackendTls(Arc<TlsPlan>);

impl BackendTls {
    /// The TLS settings it applies (MCP targets that refer to a named backend reuse them).
    pub fn plan(&self) -> &Arc<TlsPlan> {
        &self.0
    }
}

#[async_trait]
impl Filter for BackendTls {
    async fn on_request(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<FilterAction> {
        ctx.upstream.tls = Some(self.0.clone());
        Ok(FilterAction::Continue)
    }
}
