//! Transport security: the TLS settings of every server (`TLS_*`) and of the order service's
//! peer clients (`PEER_TLS_*`), PEM loading whose errors name the setting and the file, and
//! the pinned-certificate client the container healthcheck uses against its own server.
//!
//! Plaintext stays the default: a server without `TLS_CERT_PATH` serves h2c as before, and a
//! client uses TLS only for `https://` URLs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};

/// Env variable of the server's certificate chain.
pub const TLS_CERT_PATH: &str = "TLS_CERT_PATH";
/// Env variable of the server's private key.
pub const TLS_KEY_PATH: &str = "TLS_KEY_PATH";
/// Env variable of the CA bundle client certificates must chain to (turns on mutual TLS).
pub const TLS_CLIENT_CA_PATH: &str = "TLS_CLIENT_CA_PATH";

/// A PEM file and the setting (env variable or flag) that named it, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct PemFile<'a> {
    /// The env variable or flag, e.g. `TLS_CERT_PATH`.
    pub setting: &'static str,
    /// Where the file is.
    pub path: &'a Path,
}

impl<'a> PemFile<'a> {
    /// `path` as named by `setting`.
    pub fn new(setting: &'static str, path: &'a Path) -> Self {
        Self { setting, path }
    }
}

/// Why a TLS setting cannot be used; every variant names the setting and, for files, the path.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("{setting}: cannot read {path}: {source}")]
    Read { setting: &'static str, path: PathBuf, source: std::io::Error },
    /// The file holds no PEM `CERTIFICATE` block (or a malformed one).
    #[error("{setting}: {path} holds no usable PEM certificate{detail}")]
    NoCertificate { setting: &'static str, path: PathBuf, detail: String },
    /// The file holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[error("{setting}: {path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey { setting: &'static str, path: PathBuf, reason: String },
    /// One setting of a pair is set without the other.
    #[error("{present} is set but {missing} is not: set both or neither")]
    Incomplete { present: &'static str, missing: &'static str },
    /// The setting needs TLS to be on.
    #[error("{setting} needs {needs}")]
    Needs { setting: &'static str, needs: &'static str },
    /// The files parse but do not make a working TLS configuration (e.g. key and certificate
    /// do not match).
    #[error("{settings}: not a usable TLS configuration: {source}")]
    Config { settings: &'static str, source: tonic::transport::Error },
}

/// TLS of a gRPC server (every server binary flattens this into its settings).
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTlsSettings {
    /// PEM certificate chain the gRPC server presents (leaf first). With TLS_KEY_PATH,
    /// turns TLS on; unset: plaintext.
    #[arg(long, env = "TLS_CERT_PATH", value_name = "FILE")]
    pub tls_cert_path: Option<PathBuf>,

    /// PEM private key of TLS_CERT_PATH (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TLS_KEY_PATH", value_name = "FILE")]
    pub tls_key_path: Option<PathBuf>,

    /// PEM CA bundle for mutual TLS: when set, every client must present a certificate
    /// signed by one of these CAs.
    #[arg(long, env = "TLS_CLIENT_CA_PATH", value_name = "FILE")]
    pub tls_client_ca_path: Option<PathBuf>,
}

impl ServerTlsSettings {
    /// The settings as the environment gives them (for the healthcheck, which runs before,
    /// and without, the full settings parse).
    pub fn from_env() -> Self {
        let path = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            tls_cert_path: path(TLS_CERT_PATH),
            tls_key_path: path(TLS_KEY_PATH),
            tls_client_ca_path: path(TLS_CLIENT_CA_PATH),
        }
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn requires_client_certs(&self) -> bool {
        self.tls_client_ca_path.is_some()
    }

    /// Whether every client proves its identity with a certificate: TLS on, client CA set.
    pub fn is_mutual(&self) -> bool {
        self.requires_client_certs() && self.tls_cert_path.is_some()
    }

    /// The certificate and key files, when TLS is on; an error when only one is set, or when
    /// a client CA is set without them.
    fn identity_files(&self) -> Result<Option<(PemFile<'_>, PemFile<'_>)>, TlsError> {
        match (&self.tls_cert_path, &self.tls_key_path) {
            (Some(cert), Some(key)) => {
                Ok(Some((PemFile::new(TLS_CERT_PATH, cert), PemFile::new(TLS_KEY_PATH, key))))
            }
            (Some(_), None) => {
                Err(TlsError::Incomplete { present: TLS_CERT_PATH, missing: TLS_KEY_PATH })
            }
            (None, Some(_)) => {
                Err(TlsError::Incomplete { present: TLS_KEY_PATH, missing: TLS_CERT_PATH })
            }
            (None, None) if self.tls_client_ca_path.is_some() => Err(TlsError::Needs {
                setting: TLS_CLIENT_CA_PATH,
                needs: "TLS_CERT_PATH and TLS_KEY_PATH (mutual TLS is TLS first)",
            }),
            (None, None) => Ok(None),
        }
    }

    /// The server's TLS configuration, `None` for plaintext. Reads and checks every file now
    /// (including that the key matches the certificate), so a bad setting fails at start.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        let Some((cert, key)) = self.identity_files()? else {
            return Ok(None);
        };
        let mut config = ServerTlsConfig::new().identity(read_identity(cert, key)?);
        if let Some(ca) = &self.tls_client_ca_path {
            config = config
                .client_ca_root(read_certificates(PemFile::new(TLS_CLIENT_CA_PATH, ca))?)
                .client_auth_optional(false);
        }
        // tonic builds the rustls acceptor here: a key that does not match its certificate
        // fails now, with the setting names, instead of on the first handshake.
        Server::builder().tls_config(config.clone()).map_err(|source| TlsError::Config {
            settings: "TLS_CERT_PATH/TLS_KEY_PATH",
            source,
        })?;
        Ok(Some(config))
    }

    /// What the healthcheck needs to call this server: `None` when it serves plaintext.
    pub fn self_check(&self) -> Result<Option<SelfCheckTls>, TlsError> {
        let Some((cert, key)) = self.identity_files()? else {
            return Ok(None);
        };
        let pem = read(cert)?;
        let leaf = first_certificate(cert, &pem)?;
        // Under mutual TLS the probe presents the server's own certificate as its client
        // certificate; that works when the client CA signed it and its EKU allows clientAuth.
        let identity =
            self.requires_client_certs().then(|| read_identity(cert, key)).transpose()?;
        Ok(Some(SelfCheckTls { leaf, identity }))
    }
}

/// A server builder with `tls` applied (plaintext when `None`).
pub fn server_builder(tls: Option<ServerTlsConfig>) -> Result<Server, TlsError> {
    let builder = Server::builder();
    match tls {
        Some(config) => builder
            .tls_config(config)
            .map_err(|source| TlsError::Config { settings: "TLS_CERT_PATH/TLS_KEY_PATH", source }),
        None => Ok(builder),
    }
}

/// TLS of the order service's clients (inventory, product, payment, user): applied to every
/// peer URL that starts with `https://`; `http://` peers stay plaintext.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTlsSettings {
    /// PEM CA bundle trusted for `https://` peer URLs. Unset: the system's CA store.
    #[arg(long, env = "PEER_TLS_CA_PATH", value_name = "FILE")]
    pub peer_tls_ca_path: Option<PathBuf>,

    /// PEM client certificate presented to `https://` peers (mutual TLS); needs
    /// PEER_TLS_KEY_PATH.
    #[arg(long, env = "PEER_TLS_CERT_PATH", value_name = "FILE")]
    pub peer_tls_cert_path: Option<PathBuf>,

    /// PEM private key of PEER_TLS_CERT_PATH.
    #[arg(long, env = "PEER_TLS_KEY_PATH", value_name = "FILE")]
    pub peer_tls_key_path: Option<PathBuf>,
}

impl PeerTlsSettings {
    /// The client TLS these settings describe; reads and checks every file now.
    pub fn client_tls(&self) -> Result<ClientTls, TlsError> {
        let ca = self.peer_tls_ca_path.as_deref().map(|p| PemFile::new("PEER_TLS_CA_PATH", p));
        let identity = pair(
            self.peer_tls_cert_path.as_deref().map(|p| PemFile::new("PEER_TLS_CERT_PATH", p)),
            self.peer_tls_key_path.as_deref().map(|p| PemFile::new("PEER_TLS_KEY_PATH", p)),
            ("PEER_TLS_CERT_PATH", "PEER_TLS_KEY_PATH"),
        )?;
        ClientTls::from_files(ca, identity)
    }
}

/// Both files of a certificate/key pair, or neither; `names` are (certificate, key) settings.
pub fn pair<'a>(
    cert: Option<PemFile<'a>>,
    key: Option<PemFile<'a>>,
    names: (&'static str, &'static str),
) -> Result<Option<(PemFile<'a>, PemFile<'a>)>, TlsError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(TlsError::Incomplete { present: names.0, missing: names.1 }),
        (None, Some(_)) => Err(TlsError::Incomplete { present: names.1, missing: names.0 }),
    }
}

/// How a client speaks TLS to `https://` URLs: the trusted CAs (a file, or the system's
/// store) and an optional client certificate.
#[derive(Clone)]
pub struct ClientTls {
    config: ClientTlsConfig,
    source: String,
}

// Manual impl: ClientTlsConfig's derived Debug would print the client's private key.
impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("source", &self.source).finish()
    }
}

impl Default for ClientTls {
    fn default() -> Self {
        Self { config: ClientTlsConfig::new().with_native_roots(), source: "system CAs".into() }
    }
}

impl ClientTls {
    /// Trusts the CAs in `ca` (else the system's store) and presents `identity` (certificate,
    /// key) when set.
    pub fn from_files(
        ca: Option<PemFile<'_>>,
        identity: Option<(PemFile<'_>, PemFile<'_>)>,
    ) -> Result<Self, TlsError> {
        let (mut config, mut source) = match ca {
            Some(ca) => (
                ClientTlsConfig::new().ca_certificate(read_certificates(ca)?),
                format!("CA {}", ca.path.display()),
            ),
            None => (ClientTlsConfig::new().with_native_roots(), "system CAs".to_owned()),
        };
        if let Some((cert, key)) = identity {
            config = config.identity(read_identity(cert, key)?);
            source.push_str(&format!(", client certificate {}", cert.path.display()));
        }
        Ok(Self { config, source })
    }

    /// An endpoint for `url`, with TLS when its scheme is `https`.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(url.to_owned())?;
        if is_https(&endpoint) { endpoint.tls_config(self.config.clone()) } else { Ok(endpoint) }
    }
}

/// Whether `endpoint` is an `https://` URL.
pub fn is_https(endpoint: &Endpoint) -> bool {
    endpoint.uri().scheme_str() == Some("https")
}

/// The healthcheck's way into its own TLS server: it trusts exactly the server's own leaf
/// certificate (it connects to loopback, so no name or CA check applies) and, under mutual
/// TLS, presents the server's certificate and key as its client identity.
#[derive(Clone)]
pub struct SelfCheckTls {
    leaf: CertificateDer<'static>,
    identity: Option<Identity>,
}

// Manual impl: Identity's derived Debug would print the private key.
impl fmt::Debug for SelfCheckTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfCheckTls")
            .field("leaf_len", &self.leaf.len())
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

impl SelfCheckTls {
    /// `endpoint` (an `https://` URL) set up to accept only the pinned certificate.
    pub fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        let mut config = ClientTlsConfig::new();
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        endpoint.tls_config_with_verifier(config, Arc::new(PinnedCert::new(self.leaf.clone())))
    }
}

/// Accepts exactly one server certificate (byte for byte), and checks the handshake
/// signatures with it as usual.
#[derive(Debug)]
struct PinnedCert {
    leaf: CertificateDer<'static>,
    provider: CryptoProvider,
}

impl PinnedCert {
    fn new(leaf: CertificateDer<'static>) -> Self {
        Self { leaf, provider: rustls::crypto::ring::default_provider() }
    }
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn read(file: PemFile<'_>) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file.path).map_err(|source| TlsError::Read {
        setting: file.setting,
        path: file.path.to_owned(),
        source,
    })
}

/// The first certificate of `pem` (checking that every certificate block parses).
fn first_certificate(file: PemFile<'_>, pem: &[u8]) -> Result<CertificateDer<'static>, TlsError> {
    let no_certificate = |detail: String| TlsError::NoCertificate {
        setting: file.setting,
        path: file.path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_certificate(format!(": {e}")))?;
    certs.into_iter().next().ok_or_else(|| no_certificate(String::new()))
}

/// The certificates in `file`, checked to hold at least one well-formed PEM certificate.
pub fn read_certificates(file: PemFile<'_>) -> Result<Certificate, TlsError> {
    let pem = read(file)?;
    first_certificate(file, &pem)?;
    Ok(Certificate::from_pem(pem))
}

/// The certificate chain in `cert` with the private key in `key`, both checked to parse.
pub fn read_identity(cert: PemFile<'_>, key: PemFile<'_>) -> Result<Identity, TlsError> {
    let cert_pem = read(cert)?;
    first_certificate(cert, &cert_pem)?;
    let key_pem = read(key)?;
    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        setting: key.setting,
        path: key.path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Identity::from_pem(cert_pem, key_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("common-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self { dir }
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.dir.join(name);
            std::fs::write(&path, contents).expect("write");
            path
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn self_signed(name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("rcgen");
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    #[test]
    fn plaintext_by_default() {
        let settings = ServerTlsSettings::default();
        assert!(settings.server_config().expect("plaintext").is_none());
        assert!(settings.self_check().expect("plaintext").is_none());
    }

    #[test]
    fn a_good_pair_turns_tls_on() {
        let files = Files::new("good");
        let (cert, key) = self_signed("localhost");
        let settings = ServerTlsSettings {
            tls_cert_path: Some(files.write("cert.pem", &cert)),
            tls_key_path: Some(files.write("key.pem", &key)),
            tls_client_ca_path: Some(files.write("ca.pem", &cert)),
        };
        assert!(settings.server_config().expect("tls").is_some());
        let check = settings.self_check().expect("self check").expect("tls on");
        assert!(check.identity.is_some(), "mutual TLS: the probe presents the server identity");
        let debug = format!("{check:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn errors_name_the_setting_and_the_file() {
        let files = Files::new("errors");
        let (cert, key) = self_signed("localhost");
        let cert_path = files.write("cert.pem", &cert);
        let key_path = files.write("key.pem", &key);
        let junk = files.write("junk.pem", "not pem at all\n");
        let missing = files.dir.join("missing.pem");
        let message = |settings: ServerTlsSettings| {
            settings.server_config().expect_err("must be refused").to_string()
        };

        let text = message(ServerTlsSettings {
            tls_cert_path: Some(cert_path.clone()),
            ..Default::default()
        });
        assert!(text.contains("TLS_CERT_PATH") && text.contains("TLS_KEY_PATH"), "{text}");

        let text = message(ServerTlsSettings {
            tls_cert_path: Some(missing.clone()),
            tls_key_path: Some(key_path.clone()),
            tls_client_ca_path: None,
        });
        assert!(text.starts_with("TLS_CERT_PATH: cannot read"), "{text}");
        assert!(text.contains("missing.pem"), "{text}");

        let text = message(ServerTlsSettings {
            tls_cert_path: Some(junk.clone()),
            tls_key_path: Some(key_path.clone()),
            tls_client_ca_path: None,
        });
        assert!(text.starts_with("TLS_CERT_PATH") && text.contains("junk.pem"), "{text}");

        let text = message(ServerTlsSettings {
            tls_cert_path: Some(cert_path.clone()),
            tls_key_path: Some(junk.clone()),
            tls_client_ca_path: None,
        });
        assert!(text.starts_with("TLS_KEY_PATH") && text.contains("junk.pem"), "{text}");

        let text = message(ServerTlsSettings {
            tls_cert_path: Some(cert_path.clone()),
            tls_key_path: Some(key_path.clone()),
            tls_client_ca_path: Some(junk.clone()),
        });
        assert!(text.starts_with("TLS_CLIENT_CA_PATH") && text.contains("junk.pem"), "{text}");

        let text = message(ServerTlsSettings {
            tls_client_ca_path: Some(cert_path.clone()),
            ..Default::default()
        });
        assert!(text.starts_with("TLS_CLIENT_CA_PATH needs"), "{text}");

        // A key that belongs to another certificate.
        let (_, other_key) = self_signed("other");
        let text = message(ServerTlsSettings {
            tls_cert_path: Some(cert_path),
            tls_key_path: Some(files.write("other-key.pem", &other_key)),
            tls_client_ca_path: None,
        });
        assert!(text.contains("TLS_CERT_PATH/TLS_KEY_PATH"), "{text}");

        let text = PeerTlsSettings { peer_tls_key_path: Some(key_path), ..Default::default() }
            .client_tls()
            .expect_err("key without certificate")
            .to_string();
        assert!(
            text.contains("PEER_TLS_KEY_PATH") && text.contains("PEER_TLS_CERT_PATH"),
            "{text}"
        );
        let text = PeerTlsSettings { peer_tls_ca_path: Some(missing), ..Default::default() }
            .client_tls()
            .expect_err("missing CA")
            .to_string();
        assert!(text.starts_with("PEER_TLS_CA_PATH: cannot read"), "{text}");
    }

    #[test]
    fn client_tls_applies_to_https_only() {
        let files = Files::new("client");
        let (cert, key) = self_signed("localhost");
        let tls = PeerTlsSettings {
            peer_tls_ca_path: Some(files.write("ca.pem", &cert)),
            peer_tls_cert_path: Some(files.write("cert.pem", &cert)),
            peer_tls_key_path: Some(files.write("key.pem", &key)),
        }
        .client_tls()
        .expect("client tls");
        let debug = format!("{tls:?}");
        assert!(!debug.contains("PRIVATE KEY") && debug.contains("ca.pem"), "{debug}");
        assert!(is_https(&tls.endpoint("https://127.0.0.1:1").expect("https")));
        assert!(!is_https(&tls.endpoint("http://127.0.0.1:1").expect("http")));
        assert!(tls.endpoint("not a url").is_err());
    }
}
