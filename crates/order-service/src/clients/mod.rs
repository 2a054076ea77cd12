//! Clients of the peer services. Each call carries a deadline and is retried inline a few
//! times on transient errors (every call here is idempotent on the peer's side); protobuf
//! types of the peers stop in these modules.

pub mod inventory;
pub mod payment;
pub mod product;
pub mod user;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use common::telemetry::ClientTrace;
use proto::status::{CallError, code_name};
use security::tls::ClientTls;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::backoff;
use crate::settings::{CallPolicy, INLINE_FIRST_BACKOFF, INLINE_MAX_BACKOFF, Settings};

pub use inventory::InventoryPeer;
pub use payment::PaymentPeer;
pub use product::ProductPeer;
pub use user::UserPeer;

/// The channel of every peer client: each call gets a client span and carries its W3C trace
/// context, so the peer's spans join the order's trace (recovery runs included).
pub type PeerChannel = ClientTrace<Channel>;

/// Every peer the order server talks to, over channels built once and shared.
#[derive(Debug, Clone)]
pub struct Peers {
    pub inventory: InventoryPeer,
    pub product: ProductPeer,
    pub payment: PaymentPeer,
    /// Present when `USER_SERVICE_URL` is set.
    pub user: Option<UserPeer>,
}

impl Peers {
    /// Lazily connecting clients for the URLs in `settings` (nothing is dialled until the
    /// first call, so the server starts while peers are still down).
    pub fn connect_lazy(settings: &Settings) -> anyhow::Result<Self> {
        let policy = settings.call_policy();
        // One TLS setup for every peer; it applies to the `https://` URLs only.
        let tls = settings.peer_tls.client_tls()?;
        let channel = |peer: &str, url: &str| channel(peer, url, &tls, policy);
        let user = match settings.user_service_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => Some(UserPeer::new(channel("user", url)?, policy)),
            None => None,
        };
        Ok(Self {
            inventory: InventoryPeer::new(
                channel("inventory", &settings.inventory_service_url)?,
                policy,
            ),
            product: ProductPeer::new(channel("product", &settings.product_service_url)?, policy),
            payment: PaymentPeer::new(channel("payment", &settings.payment_service_url)?, policy),
            user,
        })
    }
}

fn channel(
    peer: &str,
    url: &str,
    tls: &ClientTls,
    policy: CallPolicy,
) -> anyhow::Result<PeerChannel> {
    Ok(ClientTrace::new(
        tls.endpoint(url)
            .with_context(|| format!("{peer} service URL {url:?}"))?
            .connect_timeout(policy.timeout)
            .connect_lazy(),
    ))
}

/// A failed call to a peer, after any inline retries.
#[derive(Debug, thiserror::Error)]
#[error("{peer} {call}: {}: {}", common::metrics::grpc_code_name(status.code()), status.message())]
pub struct PeerError {
    pub peer: &'static str,
    pub call: &'static str,
    pub status: Status,
}

impl PeerError {
    /// The gRPC code of the last attempt.
    pub fn peer_code(&self) -> Code {
        self.status.code()
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        is_transient(self.peer_code())
    }
}

/// A peer call that failed before anything was written, as the order server's caller sees it:
/// a transient failure is UNAVAILABLE (naming the peer and its code), anything else a broken
/// peer contract (INTERNAL). The peer's own message is logged, never sent: it may describe
/// the peer's internals.
impl CallError for PeerError {
    fn code(&self) -> Code {
        if self.is_transient() { Code::Unavailable } else { Code::Internal }
    }

    fn public_message(&self) -> String {
        if self.is_transient() {
            format!(
                "{} service unavailable ({}), retry later",
                self.peer,
                code_name(self.peer_code())
            )
        } else {
            "internal error".to_owned()
        }
    }

    fn log(&self) {
        if self.is_transient() {
            tracing::warn!(error = %self, "peer call failed");
        } else {
            tracing::error!(error = %self, "peer broke its contract");
        }
    }
}

/// Every gRPC code, for tests that must cover them all.
#[cfg(test)]
pub(crate) const ALL_CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// Codes after which the same call may succeed. CANCELLED is included because a peer that
/// shuts down resets the calls in flight with it; every call here is safe to repeat.
pub fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
    )
}

/// `msg` as a request that tells the peer our deadline (`grpc-timeout`): the peer timeout,
/// or less when the call being handled must be answered sooner (so no work of ours runs on
/// at the peer after our caller gave up). The saga runs in its own tasks, outside any
/// call, so its steps get the whole peer timeout.
fn request<T>(policy: CallPolicy, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(common::overload::deadline::bounded(policy.timeout));
    req
}

/// Awaits one attempt, failing with DEADLINE_EXCEEDED when the peer does not answer in time
/// (a peer that ignores `grpc-timeout`, or a connection that hangs); `timeout` is shortened
/// like the one [`request`] sends.
async fn with_deadline<T>(
    timeout: Duration,
    call: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T, Status> {
    let timeout = common::overload::deadline::bounded(timeout);
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map(Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `policy.retries` retries of
/// transient failures are spent, waiting a jittered, growing delay between attempts.
async fn retrying<T, F, Fut>(
    policy: CallPolicy,
    peer: &'static str,
    call: &'static str,
    mut attempt: F,
) -> Result<T, PeerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(status) if is_transient(status.code()) && retries < policy.retries => {
                tracing::debug!(peer, call, code = ?status.code(), message = status.message(), "transient peer error, retrying");
                tokio::time::sleep(backoff::delay(
                    INLINE_FIRST_BACKOFF,
                    retries,
                    INLINE_MAX_BACKOFF,
                ))
                .await;
                retries += 1;
            }
            Err(status) => return Err(PeerError { peer, call, status }),
        }
    }
}
