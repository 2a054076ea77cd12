//! The stop signal of a process: SIGTERM from an orchestrator, or Ctrl-C at a terminal.

use std::future::Future;

/// Listens for SIGTERM and Ctrl-C from this call on, and resolves when one arrives.
///
/// The handlers are installed by the call, not by the first poll: a main that calls this
/// before binding its listeners never meets the window in which a SIGTERM (an orchestrator
/// that saw the port open) would still take the default action and kill the process
/// uncleanly. Call it inside the Tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let terminate = listen(Stop::Terminate);
    let interrupt = listen(Stop::Interrupt);
    async move {
        tokio::select! {
            () = terminate => tracing::info!("received SIGTERM, shutting down"),
            () = interrupt => tracing::info!("received Ctrl-C, shutting down"),
        }
    }
}

#[derive(Clone, Copy)]
enum Stop {
    Terminate,
    Interrupt,
}

#[cfg(unix)]
fn listen(stop: Stop) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let (kind, name) = match stop {
        Stop::Terminate => (SignalKind::terminate(), "SIGTERM"),
        Stop::Interrupt => (SignalKind::interrupt(), "Ctrl-C"),
    };
    let installed = signal(kind);
    async move {
        match installed {
            Ok(mut received) => {
                received.recv().await;
            }
            // Without a handler we cannot tell; keep waiting on the other signal.
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for {name}");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn listen(stop: Stop) -> impl Future<Output = ()> + Send + 'static {
    async move {
        match stop {
            Stop::Interrupt if tokio::signal::ctrl_c().await.is_ok() => {}
            _ => std::future::pending::<()>().await,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::{Signal, raise};

    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_not_lost() {
        let stop = super::signal();
        // Before anyone polls `stop`: were the handler installed at the first poll, this
        // would kill the test process.
        assert!(raise(Signal::SIGTERM).is_ok());
        let heard = tokio::time::timeout(Duration::from_secs(5), stop).await;
        assert!(heard.is_ok(), "the SIGTERM raised before the first poll was not seen");
    }
}
