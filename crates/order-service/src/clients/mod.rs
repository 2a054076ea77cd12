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
use security::tls::ClientTls;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::backoff;
use crate::error::OrderError;
use crate::settings::Settings;

pub use inventory::InventoryPeer;
pub use payment::PaymentPeer;
pub use product::ProductPeer;
pub use user::UserPeer;

/// First wait between two inline attempts of one call.
const INLINE_FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two inline attempts: inline retries ride out blips, not outages.
const INLINE_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Deadline and inline retries of every peer call.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    pub timeout: Duration,
    pub retries: u32,
}

impl CallPolicy {
    /// The longest one call with its inline retries can take: every attempt running into
    /// its deadline, and the longest wait before each retry.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.timeout.saturating_mul(self.retries.saturating_add(1));
        // Past 31 doublings every wait is capped; count those without looping over them.
        let growing = self.retries.min(31);
        let capped = INLINE_MAX_BACKOFF.saturating_mul(self.retries - growing);
        (0..growing).fold(attempts.saturating_add(capped), |total, retry| {
            let wait = INLINE_FIRST_BACKOFF.saturating_mul(1 << retry).min(INLINE_MAX_BACKOFF);
            total.saturating_add(wait)
        })
    }
}

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

fn channel(peer: &str, url: &str, tls: &ClientTls, policy: CallPolicy) -> anyhow::Result<Channel> {
    Ok(tls
        .endpoint(url)
        .with_context(|| format!("{peer} service URL {url:?}"))?
        .connect_timeout(policy.timeout)
        .connect_lazy())
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
    pub fn code(&self) -> Code {
        self.status.code()
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        is_transient(self.code())
    }

    /// The error a request gets when a peer call fails before anything was written: a
    /// transient failure is UNAVAILABLE, anything else a broken peer contract (internal).
    /// The peer's own message is logged, never sent: it may describe the peer's internals.
    pub fn into_request_error(self) -> OrderError {
        if self.is_transient() {
            tracing::warn!(error = %self, "peer call failed");
            OrderError::PeerUnavailable { peer: self.peer, code: self.code() }
        } else {
            OrderError::Internal(anyhow::Error::new(self))
        }
    }
}

/// The canonical upper-case name of a gRPC code (`INVALID_ARGUMENT`), as fixed texts that
/// name a peer's answer quote it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
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
