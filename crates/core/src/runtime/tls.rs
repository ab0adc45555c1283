//! Downstream TLS, compiled: one rustls server configuration per TLS listener (its
//! certificate, client-certificate roots, versions, cipher suites, key exchange groups and
//! ALPN), wrapped in Pingora's acceptor so the handshake yields a Pingora stream whose ALPN
//! picks HTTP/2 and whose digest carries the client's identity to the request.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::crypto::{ring, CryptoProvider, SupportedKxGroup};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::tls::{FrontendTls, TlsServerConfig, TlsVersion};
use crate::config::types::resolve_config_path;

/// agentgateway's default handshake deadline.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A compiled TLS listener: how to accept its handshakes.
pub struct TlsServer {
    /// Pingora's acceptor around this listener's rustls configuration.
    pub acceptor: Acceptor,
    /// Whether clients must present a certificate (mTLS).
    pub client_auth: bool,
    /// What a client agreed to by completing this handshake (hostname, certificate, client
    /// roots, versions, suites). A request is served only by a listener with the same
    /// identity as the one its connection was accepted by, so neither a ClientHello that our
    /// parser and rustls read differently nor a reload can move a connection past an mTLS
    /// check it never passed.
    pub identity: Arc<str>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsServer(mtls: {})", self.client_auth)
    }
}

/// What the handshake established about the client, for `source.*` in CEL and the logs.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
    /// The accepting listener's [`TlsServer::identity`].
    pub identity: Arc<str>,
    /// The verified client certificate's details (mTLS listeners only).
    pub peer: Option<Arc<PeerCertificate>>,
}

/// A verified client certificate, as agentgateway exposes it.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate {
    /// Subject distinguished name (RFC 4514 form).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The subject's common name, if any.
    pub subject_cn: Option<String>,
    /// DNS names, URIs, e-mail addresses and IPs from subjectAltName.
    pub subject_alt_names: Vec<String>,
    /// The leaf certificate, PEM.
    pub pem: String,
}

impl TlsServer {
    /// Builds a listener's TLS from its `tls:` block and the `frontendPolicies.tls` defaults;
    /// relative paths are read from the working directory, as agentgateway does.
    pub fn compile(tls: &TlsServerConfig, frontend: &FrontendTls, hostname: Option<&str>) -> Result<TlsServer, String> {
        let cert = tls.cert.as_deref().ok_or("tls.cert is required")?;
        let key = tls.key.as_deref().ok_or("tls.key is required")?;
        let certified = load_certified_key(cert, key)?;
        let provider = Arc::new(provider(
            tls.cipher_suites.as_ref().or(frontend.cipher_suites.as_ref()),
            tls.key_exchange_groups.as_ref().or(frontend.key_exchange_groups.as_ref()),
        )?);
        let min = tls.min_tls_version.or(frontend.min_version).unwrap_or(TlsVersion::V1_2);
        let max = tls.max_tls_version.or(frontend.max_version).unwrap_or(TlsVersion::V1_3);
        if min > max {
            return Err("tls: minTLSVersion is above maxTLSVersion".into());
        }
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::V1_2, &rustls::version::TLS12),
            (TlsVersion::V1_3, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls: {e} (do the cipher suites fit the TLS versions?)"))?;
        let builder = match &tls.root {
            Some(root) => {
                let mut roots = RootCertStore::empty();
                for cert in read_pem_certs(root)? {
                    roots.add(cert).map_err(|e| format!("tls.root `{}`: {e}", resolve_config_path(root).display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("tls.root: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(OneCertificate(Arc::new(certified))));
        config.alpn_protocols = match &frontend.alpn {
            Some(list) => list.clone(),
            None => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        let identity: Arc<str> = format!(
            "{hostname:?}|{cert}|{key}|{:?}|{min:?}-{max:?}|{:?}|{:?}|{:?}",
            tls.root,
            tls.cipher_suites.as_ref().or(frontend.cipher_suites.as_ref()),
            tls.key_exchange_groups.as_ref().or(frontend.key_exchange_groups.as_ref()),
            frontend.alpn,
        )
        .into();
        Ok(TlsServer { acceptor: acceptor(Arc::new(config), identity.clone())?, client_auth: tls.root.is_some(), identity })
    }
}

/// Pingora's acceptor with our configuration and the callback that records the client.
fn acceptor(config: Arc<ServerConfig>, identity: Arc<str>) -> Result<Acceptor, String> {
    let mut settings = TlsSettings::with_callbacks(Box::new(RecordClient(identity))).map_err(|e| e.to_string())?;
    // `build` insists on a certificate source; ours is in `config`, swapped in below.
    settings.set_cert_resolver(Arc::new(OneCertificate(Arc::new(placeholder_key()))));
    let mut acceptor = settings.build();
    acceptor.acceptor = pingora::tls::TlsAcceptor::from(config);
    Ok(acceptor)
}

/// A certified key that is never served (the resolver above is replaced before use).
fn placeholder_key() -> CertifiedKey {
    CertifiedKey::new(Vec::new(), Arc::new(NoSigner))
}

#[derive(Debug)]
struct NoSigner;

impl rustls::sign::SigningKey for NoSigner {
    fn choose_scheme(&self, _offered: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        None
    }
    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::Anonymous
    }
}

/// Serves one certificate whatever the client asked for: the listener was chosen by SNI
/// before the handshake.
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Records SNI, the client certificate and the listener's identity once the handshake
/// completes.
struct RecordClient(Arc<str>);

#[async_trait]
impl TlsAccept for RecordClient {
    async fn handshake_complete_callback(&self, tls: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let peer = tls.peer_certificate_der().and_then(PeerCertificate::parse).map(Arc::new);
        Some(Arc::new(ClientTls { sni: tls.server_name().map(str::to_ascii_lowercase), identity: self.0.clone(), peer }))
    }
}

impl PeerCertificate {
    /// Reads what CEL shows of a DER certificate (already verified by rustls).
    pub fn parse(der: &[u8]) -> Option<PeerCertificate> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject_cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        let mut subject_alt_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::RFC822Name(n) | GeneralName::URI(n) => subject_alt_names.push(n.to_string()),
                    GeneralName::IPAddress(ip) => {
                        let text = match ip.len() {
                            4 => <[u8; 4]>::try_from(*ip).ok().map(|o| std::net::IpAddr::from(o).to_string()),
                            16 => <[u8; 16]>::try_from(*ip).ok().map(|o| std::net::IpAddr::from(o).to_string()),
                            _ => None,
                        };
                        subject_alt_names.extend(text);
                    }
                    _ => {}
                }
            }
        }
        let pem = CertificateDer::from(der.to_vec());
        Some(PeerCertificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            subject_cn,
            subject_alt_names,
            pem: to_pem(&pem),
        })
    }
}

fn to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// ring's provider narrowed to the allowed cipher suites and key exchange groups.
fn provider(suites: Option<&Vec<String>>, groups: Option<&Vec<String>>) -> Result<CryptoProvider, String> {
    let mut p = ring::default_provider();
    if let Some(names) = suites {
        let all: Vec<SupportedCipherSuite> = ring::ALL_CIPHER_SUITES.to_vec();
        let mut chosen = Vec::new();
        for name in names {
            let found = all.iter().find(|s| s.suite().as_str() == Some(name.as_str()));
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    let known: Vec<&str> = all.iter().filter_map(|s| s.suite().as_str()).collect();
                    return Err(format!("tls.cipherSuites: unknown cipher suite `{name}` (known: {})", known.join(", ")));
                }
            }
        }
        if chosen.is_empty() {
            return Err("tls.cipherSuites: the list is empty".into());
        }
        p.cipher_suites = chosen;
    }
    if let Some(names) = groups {
        let all: Vec<&'static dyn SupportedKxGroup> = ring::ALL_KX_GROUPS.to_vec();
        let mut chosen = Vec::new();
        for name in names {
            let wanted = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "P-256" | "secp256r1" => rustls::NamedGroup::secp256r1,
                "P-384" | "secp384r1" => rustls::NamedGroup::secp384r1,
                other => return Err(format!("tls.keyExchangeGroups: `{other}` is not supported (X25519, P-256, P-384)")),
            };
            chosen.extend(all.iter().copied().filter(|g| g.name() == wanted));
        }
        if chosen.is_empty() {
            return Err("tls.keyExchangeGroups: the list is empty".into());
        }
        p.kx_groups = chosen;
    }
    Ok(p)
}

/// The certificate chain and key, checked to belong together.
fn load_certified_key(cert: &str, key: &str) -> Result<CertifiedKey, String> {
    let chain = read_pem_certs(cert)?;
    let key_path = resolve_config_path(key);
    let key_der = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls.key: cannot read a PEM private key from `{}`: {e}", key_path.display()))?;
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("tls.key `{}`: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("tls.cert and tls.key do not belong together ({e})"))?;
    Ok(certified)
}

fn read_pem_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let full = resolve_config_path(path);
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(&full)
        .map_err(|e| format!("cannot read certificates from `{}`: {e}", full.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("`{}`: {e}", full.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", full.display()));
    }
    Ok(certs)
}
