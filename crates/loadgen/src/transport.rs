//! How the load generator's gRPC clients reach a server.
//!
//! - [`Transport::H2`] (the default): one HTTP/2 connection driven by hyper's `SendRequest`
//!   directly. A call goes from the caller's task to the connection's task and back; tonic's
//!   `Channel` adds a `tower::Buffer` in front (one more queue and one more task hop per call)
//!   and a reconnecting layer the bench does not need (a dropped connection is an error to
//!   report, not to hide).
//! - [`Transport::Tonic`]: tonic's `Channel`, kept to compare the two (`--transport tonic`).
//!
//! Both carry the call's deadline as `grpc-timeout` (the server enforces it); the direct
//! connection also gives up on its own after the deadline plus a grace, so no call of a load
//! run can hang.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};

/// Which client stack the connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// hyper's HTTP/2 `SendRequest`, one per connection.
    #[default]
    H2,
    /// tonic's buffered `Channel`.
    Tonic,
}

/// Time a direct call may run past its deadline before the client gives up by itself (the
/// server should have answered DEADLINE_EXCEEDED by then).
const GRACE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP/2 connection, cheap to clone (every clone shares it).
#[derive(Debug, Clone)]
pub enum Conn {
    H2(H2Conn),
    Tonic(Channel),
}

/// A direct HTTP/2 connection: hyper's request sender and the origin requests are sent to.
#[derive(Debug, Clone)]
pub struct H2Conn {
    send: SendRequest<Body>,
    scheme: Scheme,
    authority: Authority,
    give_up_after: Duration,
}

/// Why a call failed below gRPC.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    Tonic(#[from] tonic::transport::Error),
    #[error("no answer within the deadline plus {GRACE:?}")]
    TimedOut,
    #[error("cannot build the request URI: {0}")]
    Uri(#[from] http::Error),
}

impl Conn {
    /// Opens one connection to `url` (`http://host:port`); calls give up on their own after
    /// `deadline` plus a grace.
    pub async fn connect(
        url: &str,
        transport: Transport,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        match transport {
            Transport::Tonic => {
                let channel = Endpoint::from_shared(url.to_owned())?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
                Ok(Self::Tonic(channel))
            }
            Transport::H2 => Ok(Self::H2(H2Conn::connect(url, deadline).await?)),
        }
    }
}

impl H2Conn {
    async fn connect(url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().map_err(|e| anyhow::anyhow!("bad URL {url:?}: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            anyhow::bail!("{url}: the direct transport speaks plain http:// only");
        }
        let authority =
            uri.authority().cloned().ok_or_else(|| anyhow::anyhow!("{url}: no host:port"))?;
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((authority.host(), port)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to {url}: timed out"))?
        .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
        // Requests are small and latency-bound: never hold one back for Nagle.
        stream.set_nodelay(true)?;
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| anyhow::anyhow!("HTTP/2 handshake with {url}: {e}"))?;
        // The connection's task: reads and writes the socket until the last sender is gone.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { send, scheme: Scheme::HTTP, authority, give_up_after: deadline + GRACE })
    }

    /// `http://authority/path` for a request that names only its path (as tonic's do).
    fn absolute(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

type ConnFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, ConnError>> + Send>>;

impl tower_service::Service<http::Request<Body>> for Conn {
    type Response = http::Response<Body>;
    type Error = ConnError;
    type Future = ConnFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::H2(h2) => h2.send.poll_ready(cx).map_err(ConnError::from),
            Self::Tonic(channel) => {
                tower_service::Service::poll_ready(channel, cx).map_err(ConnError::from)
            }
        }
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self {
            Self::H2(h2) => {
                match h2.absolute(request.uri()) {
                    Ok(uri) => *request.uri_mut() = uri,
                    Err(e) => return Box::pin(std::future::ready(Err(ConnError::from(e)))),
                }
                let answer = h2.send.send_request(request);
                let give_up_after = h2.give_up_after;
                Box::pin(async move {
                    match tokio::time::timeout(give_up_after, answer).await {
                        Ok(Ok(response)) => Ok(response.map(Body::new)),
                        Ok(Err(e)) => Err(ConnError::from(e)),
                        Err(_) => Err(ConnError::TimedOut),
                    }
                })
            }
            Self::Tonic(channel) => {
                let answer = tower_service::Service::call(channel, request);
                Box::pin(async move { answer.await.map_err(ConnError::from) })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_a_clear_error() {
        let port = crate::ready::free_ports(1).unwrap()[0];
        let url = format!("http://127.0.0.1:{port}");
        for transport in [Transport::H2, Transport::Tonic] {
            let err = Conn::connect(&url, transport, Duration::from_secs(1)).await.unwrap_err();
            assert!(err.to_string().contains("cannot connect"), "{transport:?}: {err}");
        }
        let err = Conn::connect("https://127.0.0.1:1", Transport::H2, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
    }
}
