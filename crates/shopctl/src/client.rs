//! Channels to the services, shared by every command module: URL handling and deadlines.

use std::time::Duration;

use security::tls::ClientTls;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::cli::GlobalArgs;
use crate::error::CliError;

/// `url` with `http://` in front when it names no scheme (`127.0.0.1:50051`).
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") { url.to_owned() } else { format!("http://{url}") }
}

/// A lazily connecting channel to `url` (the value of `--{flag}`), over `tls` when it is an
/// `https://` URL: connecting and every call must finish within `deadline`.
pub fn channel(
    flag: &str,
    url: &str,
    tls: &ClientTls,
    deadline: Duration,
) -> Result<Channel, CliError> {
    let endpoint =
        tls.endpoint(url).map_err(|e| CliError::Usage(format!("invalid --{flag} '{url}': {e}")))?;
    if endpoint.uri().host().is_none() {
        return Err(CliError::Usage(format!("invalid --{flag} '{url}': no host")));
    }
    Ok(endpoint.connect_timeout(deadline).timeout(deadline).connect_lazy())
}

/// `Bearer <token>` of the admin token, if one is given (marked sensitive: its Debug shows
/// no token).
pub fn bearer(global: &GlobalArgs) -> Result<Option<MetadataValue<Ascii>>, CliError> {
    let Some(token) = global.admin_token() else { return Ok(None) };
    let mut value =
        MetadataValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| {
            CliError::Usage("--token: only visible ASCII characters are allowed".into())
        })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// A request carrying `deadline`, which is also sent to the server as `grpc-timeout`.
pub fn request<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_gets_http() {
        assert_eq!(normalize_url("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(normalize_url("https://inv.example:443"), "https://inv.example:443");
    }

    #[tokio::test]
    async fn malformed_urls_are_usage_errors() {
        let deadline = Duration::from_secs(1);
        for url in ["not a url", "http://", ""] {
            let err =
                channel("inventory-url", url, &ClientTls::default(), deadline).expect_err(url);
            assert_eq!(err.exit_code(), 2, "{url}");
        }
        assert!(
            channel("inventory-url", "http://127.0.0.1:1", &ClientTls::default(), deadline).is_ok()
        );
        assert!(
            channel("inventory-url", "https://127.0.0.1:1", &ClientTls::default(), deadline)
                .is_ok()
        );
    }
}
