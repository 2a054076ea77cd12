//! The payment stand-in in this process, so the run can read its [`Ledger`] and drive its
//! [`Faults`]; restartable on the same address with different decline rules and the same
//! books.

use std::net::SocketAddr;
use std::time::Duration;

use dev_standins::{Faults, Ledger, PaymentApp, PaymentSettings};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

struct Running {
    faults: Faults,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The payment stand-in at a fixed address.
pub struct Payment {
    addr: SocketAddr,
    ledger: Ledger,
    running: Mutex<Option<Running>>,
}

impl Payment {
    /// Starts it on a free loopback port, approving every charge.
    pub async fn start() -> anyhow::Result<Self> {
        let ledger = Ledger::new();
        let (addr, running) = launch(PaymentSettings::loopback(), ledger.clone()).await?;
        Ok(Self { addr, ledger, running: Mutex::new(Some(running)) })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its books (shared, live, kept across restarts).
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }

    /// The fault switchboard of the running instance.
    pub async fn faults(&self) -> Option<Faults> {
        self.running.lock().await.as_ref().map(|r| r.faults.clone())
    }

    /// Stops it gracefully and starts it again on the same address and books, declining
    /// charges over `decline_over_minor` (None: no limit), with no faults.
    pub async fn restart(&self, decline_over_minor: Option<i64>) -> anyhow::Result<()> {
        let mut slot = self.running.lock().await;
        if let Some(old) = slot.take() {
            old.faults.reset();
            let _ = old.stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), old.task).await;
        }
        let settings = PaymentSettings {
            grpc_addr: self.addr,
            decline_over_minor,
            ..PaymentSettings::loopback()
        };
        // The old listener may take a moment to go away.
        let mut tries = 0;
        let running = loop {
            match launch(settings.clone(), self.ledger.clone()).await {
                Ok((_, running)) => break running,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err.context("restarting the payment stand-in")),
            }
        };
        *slot = Some(running);
        Ok(())
    }
}

async fn launch(
    settings: PaymentSettings,
    ledger: Ledger,
) -> anyhow::Result<(SocketAddr, Running)> {
    let app = PaymentApp::build_with_ledger(settings, ledger).await?;
    let addr = app.grpc_addr()?;
    let faults = app.faults();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Ok((addr, Running { faults, stop, task }))
}

impl Drop for Payment {
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().take() {
            let _ = running.stop.send(());
            running.task.abort();
        }
    }
}
