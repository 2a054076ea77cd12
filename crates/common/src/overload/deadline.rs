//! The deadline of the call being handled: parsed from `grpc-timeout`, bounded by the
//! server's `REQUEST_TIMEOUT_MS`, and visible to the handler's code as a task-local, so code
//! deep inside a handler (a store, a peer client) can bound its own work without every
//! signature carrying it. Tasks the handler spawns do not inherit it, on purpose: work that
//! is meant to outlive the call (the order saga) keeps its own deadlines.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Request extension: the instant by which the server answers this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`), as the gRPC over HTTP/2 spec writes it. Anything else is `None`: the caller then gets
/// the server's own bound, as if it had sent no timeout (a malformed header is not worth
/// refusing a call over, and tonic's own timer ignores it the same way).
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: fits in a u64 and cannot overflow any unit below.
    let n = digits.iter().fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The deadline of the call this task is handling, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Time left until the current call's deadline (zero once passed); `None` outside a call
/// with a deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// `timeout`, shortened to what is left of the current call's deadline.
pub fn bounded(timeout: Duration) -> Duration {
    remaining().map_or(timeout, |left| left.min(timeout))
}

/// Runs `future` with `deadline` as the current call's deadline (what the overload layer
/// does for every call; tests and background work may use it too).
pub fn scope<F: Future>(
    deadline: Instant,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Instant, F> {
    DEADLINE.scope(deadline, future)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Option<Duration> {
        parse_grpc_timeout(value.as_bytes())
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("42S"), Some(Duration::from_secs(42)));
        assert_eq!(parse("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse("250u"), Some(Duration::from_micros(250)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parse("0m"), Some(Duration::ZERO));
        assert_eq!(parse("00000001S"), Some(Duration::from_secs(1)));
        // The largest legal value does not overflow.
        assert_eq!(parse("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "m",
            "S",
            "10",
            "10s",
            "10ms",
            "1.5S",
            "-1S",
            "+1S",
            " 1S",
            "1S ",
            "123456789m",
            "1x",
            "１S",
            "1h",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse_grpc_timeout(&[b'1', 0xff]), None);
    }

    #[tokio::test]
    async fn the_deadline_is_visible_inside_the_scope_only() {
        assert_eq!(current(), None);
        assert_eq!(bounded(Duration::from_secs(2)), Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_millis(500);
        scope(deadline, async move {
            assert_eq!(current(), Some(deadline));
            assert!(bounded(Duration::from_secs(2)) <= Duration::from_millis(500));
            assert_eq!(bounded(Duration::from_millis(1)), Duration::from_millis(1));
            // A spawned task is not part of the call.
            let inside = tokio::spawn(async { current() }).await.ok().flatten();
            assert_eq!(inside, None);
        })
        .await;
        let passed = Instant::now() - Duration::from_millis(1);
        scope(passed, async { assert_eq!(remaining(), Some(Duration::ZERO)) }).await;
    }
}
