//! Certificates made at test time with rcgen: a CA, a server certificate for `127.0.0.1` and
//! `localhost`, and client certificates by name, as PEM files in a directory removed on drop.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use security::tls::{ClientTls, PemFile, ServerTlsSettings};

/// A test CA and the files it signed.
pub struct TestPki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients and mutual-TLS servers trust.
    pub ca_path: PathBuf,
    /// The server certificate (for 127.0.0.1 and localhost, serverAuth and clientAuth).
    pub server_cert: PathBuf,
    /// The server certificate's key.
    pub server_key: PathBuf,
}

impl TestPki {
    /// A fresh CA and server certificate in a new temporary directory.
    pub fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("shop-pki-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "shop test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_path = write(&dir, "ca.pem", &ca.pem())?;
        let mut pki =
            Self { dir, ca, ca_path, server_cert: PathBuf::new(), server_key: PathBuf::new() };
        // clientAuth too: under mutual TLS the healthcheck presents the server certificate.
        let (cert, key) = pki.issue(
            "server",
            &["127.0.0.1", "localhost"],
            &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        )?;
        pki.server_cert = cert;
        pki.server_key = key;
        Ok(pki)
    }

    /// A certificate for `name` (subject CN) with `sans`, signed by this CA, written as
    /// `<name>.pem` / `<name>.key`.
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        usages: &[ExtendedKeyUsagePurpose],
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok((
            write(&self.dir, &format!("{name}.pem"), &cert.pem())?,
            write(&self.dir, &format!("{name}.key"), &key.serialize_pem())?,
        ))
    }

    /// A client certificate whose subject CN is `name`, signed by this CA.
    pub fn client(&self, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.issue(name, &[], &[ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// Server settings: TLS with the server certificate, no client certificates.
    pub fn server_tls(&self) -> ServerTlsSettings {
        ServerTlsSettings {
            tls_cert_path: Some(self.server_cert.clone()),
            tls_key_path: Some(self.server_key.clone()),
            tls_client_ca_path: None,
        }
    }

    /// Server settings: mutual TLS, clients must present a certificate of this CA.
    pub fn server_mtls(&self) -> ServerTlsSettings {
        ServerTlsSettings { tls_client_ca_path: Some(self.ca_path.clone()), ..self.server_tls() }
    }

    /// A client trusting this CA, presenting a certificate for `identity` when set.
    pub fn client_tls(&self, identity: Option<&str>) -> anyhow::Result<ClientTls> {
        let files = identity.map(|name| self.client(name)).transpose()?;
        let pair = files.as_ref().map(|(cert, key)| {
            (PemFile::new("client cert", cert), PemFile::new("client key", key))
        });
        Ok(ClientTls::from_files(Some(PemFile::new("CA", &self.ca_path)), pair)?)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    Ok(path)
}
