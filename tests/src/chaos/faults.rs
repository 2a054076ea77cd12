//! Faults on the running [`Stack`]: each lane of the schedule applies its faults at their
//! planned times, keeps each for its span and heals it (PostgreSQL, the servers, the proxy,
//! the payment stand-in, admin adjustments, expiring holds).

use std::sync::Arc;
use std::time::Duration;

use proto::inventory::v1 as inv;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Code;

use super::proxy::ProxyMode;
use super::schedule::{Fault, Planned};
use super::stack::{Stack, lock};

impl Stack {
    /// Applies `fault`, keeps it for its span (cut short when `stop` flips), then heals it.
    async fn inject(&self, index: usize, fault: &Fault, stop: &mut watch::Receiver<bool>) {
        self.note(fault);
        let result = self.apply(index, fault).await;
        match result {
            Ok(()) => self.count(fault.kind()),
            Err(err) => self.error(format!("applying {fault}: {err:#}")),
        }
        wait_or_stop(fault.span(), stop).await;
        if let Err(err) = self.heal(fault).await {
            self.error(format!("healing {fault}: {err:#}"));
        }
    }

    async fn apply(&self, index: usize, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::KillOrder { .. } => lock(&self.order).kill(),
            Fault::KillInventory { .. } => lock(&self.inventory).kill(),
            Fault::RestartPostgres { crash: true, .. } => self.cluster.kill().await,
            Fault::RestartPostgres { crash: false, .. } => self.cluster.stop().await,
            Fault::ProxyDelay { ms, .. } => {
                self.proxy.set_mode(ProxyMode::Delay(*ms));
                Ok(())
            }
            Fault::ProxyCut => {
                let n = self.proxy.cut();
                self.note(format!("  cut {n} connection(s)"));
                Ok(())
            }
            Fault::ProxyPartition { .. } => {
                self.proxy.set_mode(ProxyMode::Refuse);
                self.proxy.cut();
                Ok(())
            }
            Fault::PaymentLatency { ms, .. } => {
                self.payment_faults().await?.set_latency_ms(*ms);
                Ok(())
            }
            Fault::PaymentFailNext { n } => {
                self.payment_faults().await?.fail_next_n(*n);
                Ok(())
            }
            Fault::PaymentFailAfterApply { n } => {
                self.payment_faults().await?.fail_after_apply_next_n(*n);
                Ok(())
            }
            Fault::PaymentOutage { .. } => {
                self.payment_faults().await?.set_fail_all(true);
                Ok(())
            }
            Fault::PaymentDeclines { over_minor, .. } => {
                self.payment.restart(Some(*over_minor)).await
            }
            Fault::Adjust { hot, delta } => self.adjust(index, *hot, *delta).await,
            Fault::ExpireHolds => self.expire_holds().await,
        }
    }

    async fn heal(&self, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::KillOrder { .. } => lock(&self.order).spawn(),
            Fault::KillInventory { .. } => lock(&self.inventory).spawn(),
            Fault::RestartPostgres { .. } => self.cluster.start().await,
            Fault::ProxyDelay { .. } | Fault::ProxyPartition { .. } => {
                self.proxy.set_mode(ProxyMode::Pass);
                Ok(())
            }
            Fault::PaymentLatency { .. } => {
                self.payment_faults().await?.set_latency_ms(0);
                Ok(())
            }
            Fault::PaymentOutage { .. } => {
                self.payment_faults().await?.set_fail_all(false);
                Ok(())
            }
            Fault::PaymentDeclines { .. } => self.payment.restart(None).await,
            Fault::ProxyCut
            | Fault::PaymentFailNext { .. }
            | Fault::PaymentFailAfterApply { .. }
            | Fault::Adjust { .. }
            | Fault::ExpireHolds => Ok(()),
        }
    }

    async fn payment_faults(&self) -> anyhow::Result<dev_standins::Faults> {
        self.payment.faults().await.ok_or_else(|| anyhow::anyhow!("payment stand-in not running"))
    }

    /// AdjustStock with a key of its own, retried on transient errors (same key) for a while.
    async fn adjust(&self, index: usize, hot: usize, delta: i32) -> anyhow::Result<()> {
        let sku = self.hot.get(hot).cloned().unwrap_or_default();
        let req = inv::AdjustStockRequest {
            sku: sku.clone(),
            warehouse_id: String::new(),
            delta,
            reason: "chaos admin adjustment".to_owned(),
            idempotency_key: format!("chaos-adjust-{index}"),
        };
        let mut client = self.inventory_client()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut call = tonic::Request::new(req.clone());
            call.set_timeout(Duration::from_secs(3));
            match client.adjust_stock(call).await {
                Ok(item) => {
                    let item = item.into_inner();
                    self.note(format!(
                        "  {sku} now on_hand {} reserved {}",
                        item.on_hand, item.reserved
                    ));
                    return Ok(());
                }
                // Taking away more than is free is refused; that is a fine outcome.
                Err(status) if status.code() == Code::FailedPrecondition => {
                    self.note(format!("  refused: {}", status.message()));
                    return Ok(());
                }
                Err(status) if Instant::now() < deadline && is_transient(status.code()) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => anyhow::bail!("AdjustStock {sku}: {status}"),
            }
        }
    }

    /// Every PENDING hold expires now (retried while PostgreSQL is restarting).
    async fn expire_holds(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = sqlx::query(
                "update inventory.reservations set expires_at = now()
                  where status = 'PENDING' and expires_at > now()",
            )
            .execute(&self.db.pool)
            .await;
            match result {
                Ok(done) => {
                    self.note(format!("  {} hold(s) expired", done.rows_affected()));
                    return Ok(());
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Whether a call failed for a reason that passes (retried with the same key).
fn is_transient(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
}

/// Sleeps `span`, or less when `stop` turns true.
async fn wait_or_stop(span: Duration, stop: &mut watch::Receiver<bool>) {
    if *stop.borrow() || span.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(span) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Runs one lane's faults at their planned offsets from `start`.
pub(super) async fn run_lane(
    stack: Arc<Stack>,
    faults: Vec<(usize, Planned)>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    for (index, planned) in faults {
        let at = start + planned.at;
        if Instant::now() > at + Duration::from_secs(1) {
            stack.note(format!(
                "  ({:?} lane is {} ms behind its schedule)",
                planned.lane,
                (Instant::now() - at).as_millis()
            ));
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        stack.inject(index, &planned.fault, &mut stop).await;
    }
}
