//! Failures and latency injected at runtime, so tests can exercise a client's retries,
//! deadlines and "outcome unknown" handling against a stand-in.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tonic::Code;

use crate::error::StandinError;

/// A shared, cheaply cloned switchboard of faults; every clone controls the same stand-in.
///
/// Per call, in order: wait the latency; fail if `fail_all` is on or a `fail_next_n`
/// failure is left (the call does nothing); run the call; if it succeeded and a
/// `fail_after_apply_next_n` failure is left, fail anyway (the call's effect, e.g. a charge,
/// stays recorded: "outcome unknown"). Injected failures answer UNAVAILABLE unless
/// [`set_fail_code`](Self::set_fail_code) chose another code.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    latency_ms: AtomicU64,
    fail_next_n: AtomicU32,
    fail_all: AtomicBool,
    fail_after_apply_next_n: AtomicU32,
    /// The code of injected failures as `Code as i32`; 0 (OK) stands for the default,
    /// UNAVAILABLE, so `Default` needs no special case.
    fail_code: AtomicI32,
    calls: AtomicU64,
}

impl Faults {
    /// No latency, no failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Faults with every call delayed by `latency_ms`.
    pub fn with_latency_ms(latency_ms: u64) -> Self {
        let faults = Self::new();
        faults.set_latency_ms(latency_ms);
        faults
    }

    /// Delays every later call by `latency_ms` before anything else happens (0: none).
    pub fn set_latency_ms(&self, latency_ms: u64) {
        self.inner.latency_ms.store(latency_ms, Ordering::SeqCst);
    }

    /// The current delay per call, in milliseconds.
    pub fn latency_ms(&self) -> u64 {
        self.inner.latency_ms.load(Ordering::SeqCst)
    }

    /// Makes the next `n` calls answer UNAVAILABLE without doing anything (replaces any rest).
    pub fn fail_next_n(&self, n: u32) {
        self.inner.fail_next_n.store(n, Ordering::SeqCst);
    }

    /// While `on`, every call answers UNAVAILABLE without doing anything.
    pub fn set_fail_all(&self, on: bool) {
        self.inner.fail_all.store(on, Ordering::SeqCst);
    }

    /// Makes the next `n` successful calls do their work, then answer UNAVAILABLE anyway.
    ///
    /// On the payment stand-in the charge or refund is recorded (and a retry with the same
    /// idempotency key gets the stored outcome); on the read-only stand-ins the lookup runs
    /// and its answer is dropped. Calls refused as invalid do not use one up.
    pub fn fail_after_apply_next_n(&self, n: u32) {
        self.inner.fail_after_apply_next_n.store(n, Ordering::SeqCst);
    }

    /// Makes injected failures answer `code` instead of UNAVAILABLE (OK means the default),
    /// so a client's handling of each code can be tested.
    pub fn set_fail_code(&self, code: Code) {
        self.inner.fail_code.store(code as i32, Ordering::SeqCst);
    }

    /// The code injected failures answer with.
    pub fn fail_code(&self) -> Code {
        match Code::from_i32(self.inner.fail_code.load(Ordering::SeqCst)) {
            Code::Ok => Code::Unavailable,
            code => code,
        }
    }

    /// Back to no latency and no failures, which answer UNAVAILABLE again (the call count is
    /// kept).
    pub fn reset(&self) {
        self.set_latency_ms(0);
        self.fail_next_n(0);
        self.set_fail_all(false);
        self.fail_after_apply_next_n(0);
        self.set_fail_code(Code::Ok);
    }

    /// How many service calls reached the stand-in, injected failures included.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Runs `call` under the current faults.
    pub(crate) async fn around<T>(
        &self,
        call: impl Future<Output = Result<T, StandinError>>,
    ) -> Result<T, StandinError> {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        let latency = self.latency_ms();
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if self.inner.fail_all.load(Ordering::SeqCst) || take_one(&self.inner.fail_next_n) {
            tracing::info!(code = ?self.fail_code(), "injected failure before the call");
            return Err(StandinError::Injected(
                self.fail_code(),
                "injected failure (development stand-in)",
            ));
        }
        let result = call.await;
        if result.is_ok() && take_one(&self.inner.fail_after_apply_next_n) {
            tracing::info!(code = ?self.fail_code(), "injected failure after the call was applied");
            return Err(StandinError::Injected(
                self.fail_code(),
                "injected failure after the call was applied (development stand-in)",
            ));
        }
        result
    }
}

/// Decrements `counter` if it is above zero; whether it did.
fn take_one(counter: &AtomicU32) -> bool {
    // fetch_update, not load + store: concurrent calls must not both take the last one.
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(faults: &Faults) -> Result<u32, StandinError> {
        faults.around(async { Ok(7) }).await
    }

    #[tokio::test]
    async fn fail_next_n_fails_exactly_n_calls() {
        let faults = Faults::new();
        faults.fail_next_n(2);
        assert!(call(&faults).await.is_err());
        assert!(call(&faults).await.is_err());
        assert_eq!(call(&faults).await.unwrap(), 7);
        assert_eq!(faults.calls(), 3);
    }

    #[tokio::test]
    async fn fail_all_until_switched_off() {
        let faults = Faults::new();
        faults.set_fail_all(true);
        assert!(call(&faults).await.is_err());
        faults.set_fail_all(false);
        assert!(call(&faults).await.is_ok());
    }

    #[tokio::test]
    async fn fail_after_apply_runs_the_call_and_skips_failed_ones() {
        let faults = Faults::new();
        faults.fail_after_apply_next_n(1);
        let refused = faults.around(async { Err::<(), _>(StandinError::invalid("f", "bad")) });
        assert!(matches!(refused.await, Err(StandinError::InvalidArgument(_))));
        let ran = AtomicBool::new(false);
        let result = faults
            .around(async {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(StandinError::Injected(Code::Unavailable, _))));
        assert!(ran.load(Ordering::SeqCst));
        assert!(call(&faults).await.is_ok());
    }

    #[tokio::test]
    async fn injected_failures_answer_the_chosen_code() {
        let faults = Faults::new();
        assert_eq!(faults.fail_code(), Code::Unavailable);
        faults.set_fail_code(Code::Internal);
        faults.fail_next_n(1);
        let status = tonic::Status::from(call(&faults).await.unwrap_err());
        assert_eq!(status.code(), Code::Internal);
        faults.reset();
        faults.fail_next_n(1);
        let status = tonic::Status::from(call(&faults).await.unwrap_err());
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[tokio::test]
    async fn latency_delays_each_call() {
        let faults = Faults::with_latency_ms(50);
        let started = std::time::Instant::now();
        call(&faults).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        faults.reset();
        assert_eq!(faults.latency_ms(), 0);
    }
}
