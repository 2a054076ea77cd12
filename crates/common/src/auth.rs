//! Authorization of admin RPCs: a bearer token (`ADMIN_TOKEN` / `ADMIN_TOKEN_FILE`) and/or an
//! allow-list of mutual-TLS client identities (`ADMIN_ALLOWED_IDENTITIES`). A server asks
//! [`AdminGuard::check`] in exactly the handlers it guards. It fails closed: with none of
//! them set, the guard cannot be built unless `ADMIN_AUTH_DISABLED=true` says to run the
//! admin RPCs open on purpose.
//!
//! Outcomes: no credentials, or a bearer token that is malformed or wrong, is
//! `UNAUTHENTICATED` (the caller has not proven who it is); a verified client certificate
//! whose names are not allowed is `PERMISSION_DENIED` (known, but not allowed). Tokens are
//! compared as SHA-256 digests in constant time, so neither content nor length leaks.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use security::Secret;
use security::tls::ServerTlsSettings;

/// Who may call admin RPCs (flattened into the settings of a server that has them).
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminAuthSettings {
    /// Bearer token admin RPCs accept (`authorization: Bearer <token>`). One of ADMIN_TOKEN,
    /// ADMIN_TOKEN_FILE, ADMIN_ALLOWED_IDENTITIES or ADMIN_AUTH_DISABLED=true is required.
    // hide_env_values: `--help` would otherwise print the token taken from the env.
    #[arg(
        long,
        env = "ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<Secret>,

    /// File whose first line is the admin token (a mounted secret); instead of ADMIN_TOKEN.
    #[arg(long, env = "ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Comma-separated client certificate names (subject CN or DNS SAN) allowed to call admin
    /// RPCs over mutual TLS (needs TLS_CLIENT_CA_PATH).
    #[arg(long, env = "ADMIN_ALLOWED_IDENTITIES", value_name = "NAMES", value_delimiter = ',')]
    pub admin_allowed_identities: Vec<String>,

    /// Run the admin RPCs open to every client, on purpose (local runs, tests, a network
    /// that only operators reach). Without it, a server given no admin token or identities
    /// refuses to start. Ignored when a token or identities are set.
    #[arg(
        long,
        env = "ADMIN_AUTH_DISABLED",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub admin_auth_disabled: bool,
}

/// Why the admin settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSettingsError {
    /// ADMIN_TOKEN_FILE cannot be read.
    #[error("ADMIN_TOKEN_FILE: cannot read {path}: {source}")]
    ReadTokenFile { path: PathBuf, source: std::io::Error },
    /// The token is empty, or its file holds nothing.
    #[error("{0}: the admin token is empty")]
    EmptyToken(&'static str),
    /// Nothing guards the admin RPCs and nobody said that is on purpose.
    #[error(
        "the admin RPCs would be open to every client: set ADMIN_TOKEN, ADMIN_TOKEN_FILE or \
         ADMIN_ALLOWED_IDENTITIES, or ADMIN_AUTH_DISABLED=true to run them open on purpose"
    )]
    Unguarded,
    /// Identities are allowed but no client ever presents a certificate.
    #[error(
        "ADMIN_ALLOWED_IDENTITIES needs mutual TLS (TLS_CERT_PATH, TLS_KEY_PATH and \
         TLS_CLIENT_CA_PATH): without it no client presents a certificate"
    )]
    IdentitiesWithoutMutualTls,
}

impl AdminAuthSettings {
    /// The guard these settings describe, checked against the server's TLS settings (an
    /// identity allow-list needs mutual TLS). Reads ADMIN_TOKEN_FILE now.
    pub fn guard(&self, tls: &ServerTlsSettings) -> Result<AdminGuard, AuthSettingsError> {
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => Some(digest(non_empty(token.expose(), "ADMIN_TOKEN")?.as_bytes())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    AuthSettingsError::ReadTokenFile { path: path.clone(), source }
                })?;
                // The first line: files written by `echo` or editors end with a newline.
                let first_line = text.lines().next().unwrap_or_default();
                Some(digest(non_empty(first_line, "ADMIN_TOKEN_FILE")?.as_bytes()))
            }
            (None, None) => None,
        };
        let identities: Vec<String> = self
            .admin_allowed_identities
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        if !identities.is_empty() && !tls.is_mutual() {
            return Err(AuthSettingsError::IdentitiesWithoutMutualTls);
        }
        if token.is_none() && identities.is_empty() && !self.admin_auth_disabled {
            return Err(AuthSettingsError::Unguarded);
        }
        Ok(AdminGuard { token, identities: identities.into() })
    }
}

fn non_empty<'a>(token: &'a str, setting: &'static str) -> Result<&'a str, AuthSettingsError> {
    let token = token.trim();
    if token.is_empty() { Err(AuthSettingsError::EmptyToken(setting)) } else { Ok(token) }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Decides whether a call may use an admin RPC. Cheap to clone.
#[derive(Clone, Default)]
pub struct AdminGuard {
    /// SHA-256 of the accepted token: the token itself is not kept in memory here.
    token: Option<[u8; 32]>,
    identities: Arc<[String]>,
}

// Manual impl: say what is configured, never the digest.
impl fmt::Debug for AdminGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminGuard")
            .field("token", &self.token.is_some())
            .field("identities", &self.identities)
            .finish()
    }
}

impl AdminGuard {
    /// A guard that lets every call through (nothing configured).
    pub fn open() -> Self {
        Self::default()
    }

    /// Whether every call gets through.
    pub fn is_open(&self) -> bool {
        self.token.is_none() && self.identities.is_empty()
    }

    /// Logs, once at start, how admin RPCs named `methods` are protected: a warning when they
    /// are open, or when a token would travel without TLS.
    pub fn log_startup(&self, methods: &str, tls_enabled: bool) {
        if self.is_open() {
            tracing::warn!(
                "admin RPCs ({methods}) are open to every client (ADMIN_AUTH_DISABLED=true): set \
                 ADMIN_TOKEN, ADMIN_TOKEN_FILE or ADMIN_ALLOWED_IDENTITIES to guard them"
            );
            return;
        }
        if self.token.is_some() && !tls_enabled {
            tracing::warn!(
                "admin token accepted over plaintext gRPC: it crosses the network unencrypted; \
                 set TLS_CERT_PATH and TLS_KEY_PATH"
            );
        }
        tracing::info!(
            token = self.token.is_some(),
            identities = ?self.identities,
            "admin RPCs ({methods}) require a bearer token or an allowed client certificate"
        );
    }

    /// `Ok` when `request` may call an admin RPC; otherwise the status to answer with.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.is_open() {
            return Ok(());
        }
        let certs = request.peer_certs();
        self.check_parts(request.metadata(), certs.as_deref().map(Vec::as_slice))
    }

    /// [`check`](Self::check) on the request's metadata and verified client chain (leaf
    /// first; `None` without TLS or without a client certificate).
    pub fn check_parts(
        &self,
        metadata: &MetadataMap,
        peer_certs: Option<&[CertificateDer<'static>]>,
    ) -> Result<(), Status> {
        if self.is_open() {
            return Ok(());
        }
        let names = peer_certs.and_then(<[_]>::first).map(|leaf| certificate_names(leaf));
        if let Some(names) = &names
            && names.iter().any(|name| self.identities.iter().any(|allowed| allowed == name))
        {
            return Ok(());
        }
        match bearer(metadata) {
            Bearer::Present(token) => {
                let accepted = self
                    .token
                    .is_some_and(|expected| bool::from(digest(token.as_bytes()).ct_eq(&expected)));
                if accepted {
                    Ok(())
                } else {
                    tracing::warn!("admin call refused: wrong bearer token");
                    Err(Status::unauthenticated("invalid admin token"))
                }
            }
            Bearer::Malformed => {
                tracing::warn!("admin call refused: malformed authorization header");
                Err(Status::unauthenticated(
                    "malformed authorization metadata: expected `Bearer <token>`",
                ))
            }
            Bearer::Absent => match names {
                Some(names) if !self.identities.is_empty() => {
                    tracing::warn!(identities = ?names, "admin call refused: client identity not allowed");
                    Err(Status::permission_denied(format!(
                        "client certificate ({}) is not allowed to call admin RPCs",
                        names.join(", ")
                    )))
                }
                _ => Err(Status::unauthenticated(
                    "admin RPC: send `authorization: Bearer <token>` or use an allowed client \
                     certificate",
                )),
            },
        }
    }
}

/// What the `authorization` metadata carries.
enum Bearer<'a> {
    Absent,
    Malformed,
    Present(&'a str),
}

fn bearer(metadata: &MetadataMap) -> Bearer<'_> {
    let Some(value) = metadata.get("authorization") else {
        return Bearer::Absent;
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    match value.trim().split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Bearer::Present(token.trim())
        }
        _ => Bearer::Malformed,
    }
}

/// The names of the verified client certificate `request` came with (its subject CN, then its
/// DNS SANs); `None` without mutual TLS. The TLS layer has checked the chain already, so these
/// names are what a caller can be authorized by.
pub fn client_names<T>(request: &Request<T>) -> Option<Vec<String>> {
    let certs = request.peer_certs()?;
    certs.first().map(|leaf| certificate_names(leaf))
}

/// The names a certificate claims: its subject common name(s), then its DNS SANs. Empty
/// when the DER does not parse (the TLS layer has already verified the chain).
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    fn cert_der(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().clone()
    }

    fn mtls() -> ServerTlsSettings {
        ServerTlsSettings {
            tls_cert_path: Some("cert.pem".into()),
            tls_key_path: Some("key.pem".into()),
            tls_client_ca_path: Some("ca.pem".into()),
        }
    }

    fn with_auth(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", MetadataValue::try_from(value).expect("ascii"));
        metadata
    }

    fn guard(token: Option<&str>, identities: &[&str]) -> AdminGuard {
        AdminAuthSettings {
            admin_token: token.map(Secret::new),
            admin_token_file: None,
            admin_allowed_identities: identities.iter().map(|s| (*s).to_owned()).collect(),
            admin_auth_disabled: false,
        }
        .guard(&mtls())
        .expect("guard")
    }

    #[test]
    fn names_are_the_common_name_and_dns_sans() {
        let der = cert_der("ops-admin", &["admin.internal", "127.0.0.1"]);
        assert_eq!(certificate_names(&der), vec!["ops-admin", "admin.internal"]);
        assert!(certificate_names(b"not der").is_empty());
    }

    #[test]
    fn fails_closed_unless_disabled_on_purpose() {
        let unguarded = AdminAuthSettings::default().guard(&ServerTlsSettings::default());
        let message = unguarded.expect_err("nothing configured").to_string();
        for name in ["ADMIN_TOKEN", "ADMIN_ALLOWED_IDENTITIES", "ADMIN_AUTH_DISABLED=true"] {
            assert!(message.contains(name), "{message}");
        }
        let disabled = AdminAuthSettings { admin_auth_disabled: true, ..Default::default() };
        let guard = disabled.guard(&ServerTlsSettings::default()).expect("open on purpose");
        assert!(guard.is_open());
        assert!(guard.check_parts(&MetadataMap::new(), None).is_ok());
        // A token wins over the switch.
        let both = AdminAuthSettings {
            admin_token: Some(Secret::new("t")),
            admin_auth_disabled: true,
            ..Default::default()
        };
        assert!(!both.guard(&ServerTlsSettings::default()).expect("guarded").is_open());
    }

    #[test]
    fn tokens() {
        let guard = guard(Some("s3cret-token"), &[]);
        let code = |metadata: &MetadataMap| guard.check_parts(metadata, None).map_err(|s| s.code());
        assert_eq!(code(&MetadataMap::new()), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(&with_auth("Bearer wrong")), Err(tonic::Code::Unauthenticated));
        assert_eq!(
            code(&with_auth("Bearer s3cret-token-longer")),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(code(&with_auth("Basic s3cret-token")), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(&with_auth("s3cret-token")), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(&with_auth("Bearer s3cret-token")), Ok(()));
        assert_eq!(code(&with_auth("bearer  s3cret-token ")), Ok(()));
        let debug = format!("{guard:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn identities() {
        let guard = guard(None, &["ops-admin", " deploy.internal "]);
        let allowed = [cert_der("ops-admin", &[])];
        let by_san = [cert_der("someone", &["deploy.internal"])];
        let other = [cert_der("intruder", &["intruder.internal"])];
        let none = MetadataMap::new();
        assert!(guard.check_parts(&none, Some(&allowed)).is_ok());
        assert!(guard.check_parts(&none, Some(&by_san)).is_ok());
        let refused = guard.check_parts(&none, Some(&other)).expect_err("not allowed");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("intruder"), "{}", refused.message());
        let anonymous = guard.check_parts(&none, None).expect_err("no certificate");
        assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
        // No token is configured: a bearer token proves nothing.
        let token = guard.check_parts(&with_auth("Bearer x"), Some(&other)).expect_err("token");
        assert_eq!(token.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn token_or_identity() {
        let guard = guard(Some("t"), &["ops-admin"]);
        let other = [cert_der("intruder", &[])];
        assert!(guard.check_parts(&with_auth("Bearer t"), Some(&other)).is_ok());
        assert!(
            guard.check_parts(&MetadataMap::new(), Some(&[cert_der("ops-admin", &[])])).is_ok()
        );
    }

    #[test]
    fn settings_errors() {
        let identities_without_mtls = AdminAuthSettings {
            admin_allowed_identities: vec!["ops".into()],
            ..Default::default()
        }
        .guard(&ServerTlsSettings::default());
        assert!(matches!(
            identities_without_mtls,
            Err(AuthSettingsError::IdentitiesWithoutMutualTls)
        ));
        let empty =
            AdminAuthSettings { admin_token: Some(Secret::new("  ")), ..Default::default() }
                .guard(&ServerTlsSettings::default());
        assert!(matches!(empty, Err(AuthSettingsError::EmptyToken("ADMIN_TOKEN"))));

        let path = std::env::temp_dir().join(format!("common-admin-token-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").expect("write");
        let from_file =
            AdminAuthSettings { admin_token_file: Some(path.clone()), ..Default::default() }
                .guard(&ServerTlsSettings::default())
                .expect("token file");
        let _ = std::fs::remove_file(&path);
        assert!(from_file.check_parts(&with_auth("Bearer from-file"), None).is_ok());
        let missing = AdminAuthSettings { admin_token_file: Some(path), ..Default::default() }
            .guard(&ServerTlsSettings::default())
            .expect_err("gone");
        assert!(missing.to_string().starts_with("ADMIN_TOKEN_FILE: cannot read"), "{missing}");
    }

    #[test]
    fn help_and_debug_hide_the_token() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            admin: AdminAuthSettings,
        }
        let cli = Cli::try_parse_from([
            "server",
            "--admin-token",
            "hunter2-token",
            "--admin-allowed-identities",
            "a,b",
        ])
        .expect("parse");
        assert_eq!(cli.admin.admin_allowed_identities, vec!["a", "b"]);
        let debug = format!("{cli:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("ADMIN_TOKEN"), "{help}");
        let both = Cli::try_parse_from(["server", "--admin-token", "x", "--admin-token-file", "f"]);
        assert!(both.is_err(), "token and token file conflict");
    }
}
