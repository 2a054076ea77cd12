//! `shopctl events watch` against real servers: the events an inventory's stock changes
//! wrote, in log order, as NDJSON or table lines; `--type` filters; an unknown type is refused
//! naming the field; a stream the server ends names the position to resume from; the order
//! service's log is for operators (the admin token).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use common::auth::AdminAuthSettings;
use security::Secret;
use serde_json::Value;
use shopctl::cli::{Cli, Command};
use shopctl::error::CliError;
use system_tests::{TestInventory, TestSystem};

/// Long enough for the relay (50 ms rounds) on a loaded machine; a hang fails instead.
const WATCH_BOUND: Duration = Duration::from_secs(30);

/// Where the watch prints: shared, so the test can read it while the watch runs.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl Printed {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into()
    }
}

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `shopctl --inventory-url <addr> events watch ARGS...` into `out`, as the binary does
/// into stdout (bounded by [`WATCH_BOUND`]).
async fn watch_into(
    addr: SocketAddr,
    args: &[&str],
    out: &mut Printed,
) -> anyhow::Result<Result<(), CliError>> {
    let url = format!("http://{addr}");
    shopctl_into(&["--inventory-url", &url], args, out).await
}

/// Runs `shopctl GLOBAL... events watch ARGS...` into `out`.
async fn shopctl_into(
    global: &[&str],
    args: &[&str],
    out: &mut Printed,
) -> anyhow::Result<Result<(), CliError>> {
    let mut all = vec!["shopctl"];
    all.extend_from_slice(global);
    all.extend_from_slice(&["events", "watch"]);
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all)?;
    let Command::Events(command) = cli.command else { anyhow::bail!("not an events command") };
    let run = shopctl::events::run(&cli.global, command, out);
    Ok(tokio::time::timeout(WATCH_BOUND, run).await?)
}

/// [`watch_into`] a fresh buffer, which is returned with the outcome.
async fn watch(
    inv: &TestInventory,
    args: &[&str],
) -> anyhow::Result<(Result<(), CliError>, String)> {
    let mut out = Printed::default();
    let outcome = watch_into(inv.addr, args, &mut out).await?;
    Ok((outcome, out.text()))
}

/// NDJSON: one JSON object per line.
fn events(ndjson: &str) -> anyhow::Result<Vec<Value>> {
    ndjson.lines().map(|line| Ok(serde_json::from_str(line)?)).collect()
}

fn position(event: &Value) -> u64 {
    event["position"].as_str().and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// `(onHand, reserved, available)` of a stock.changed event.
fn levels(event: &Value) -> (i64, i64, i64) {
    let p = &event["stockChanged"];
    let n = |key: &str| p[key].as_i64().unwrap_or(-1);
    (n("onHand"), n("reserved"), n("available"))
}

/// Stock set, adjusted, then held: 4 events, positions 1 to 4 (the hold and its stock row
/// change in one statement: its two events in either order).
async fn stock_set_adjusted_and_held() -> anyhow::Result<TestInventory> {
    let inv = TestInventory::start().await?;
    inv.stock("MUG", 10).await?;
    inv.client
        .clone()
        .adjust_stock(proto::inventory::v1::AdjustStockRequest {
            sku: "MUG".into(),
            delta: 5,
            reason: "restock".into(),
            ..Default::default()
        })
        .await?;
    let held = inv.reserve("o-1", &[("MUG", 3)]).await?;
    anyhow::ensure!(held.success, "{}", held.message);
    Ok(inv)
}

#[tokio::test]
async fn shopctl_events_watch_prints_stock_changes_in_log_order() -> anyhow::Result<()> {
    let inv = stock_set_adjusted_and_held().await?;
    let (outcome, printed) = watch(&inv, &["--from", "0", "--count", "4", "--json"]).await?;
    outcome.map_err(|e| anyhow::anyhow!(e.report()))?;
    let events = events(&printed)?;
    assert_eq!(events.iter().map(position).collect::<Vec<_>>(), [1, 2, 3, 4], "{printed}");

    for (event, want) in events[..2].iter().zip([(10, 0, 10), (15, 0, 15)]) {
        assert_eq!(event["type"], "stock.changed", "{event}");
        assert_eq!(event["aggregateId"], "MUG/default", "{event}");
        assert_eq!(event["stockChanged"]["sku"], "MUG", "{event}");
        assert_eq!(event["stockChanged"]["warehouseId"], "default", "{event}");
        assert_eq!(levels(event), want, "{event}");
        let occurred_at = event["occurredAt"].as_str().unwrap_or_default();
        assert!(occurred_at.ends_with('Z') && occurred_at.contains('T'), "{event}");
    }
    // The hold writes two events in one transaction: its own and its stock row's.
    let held = events.iter().find(|e| e["type"] == "reservation.created");
    let held = held.ok_or_else(|| anyhow::anyhow!("no reservation.created: {printed}"))?;
    assert_eq!(held["reservationChanged"]["status"], "PENDING", "{held}");
    assert_eq!(held["reservationChanged"]["referenceId"], "o-1", "{held}");
    assert_eq!(held["reservationChanged"]["lines"][0]["quantity"], 3, "{held}");
    let reserved = events[2..].iter().find(|e| e["type"] == "stock.changed");
    let reserved = reserved.ok_or_else(|| anyhow::anyhow!("no stock.changed: {printed}"))?;
    assert_eq!(levels(reserved), (15, 3, 12), "{reserved}");

    // The same log as table lines: a header, then one line per event.
    let (outcome, printed) = watch(&inv, &["--from", "0", "--count", "2"]).await?;
    outcome.map_err(|e| anyhow::anyhow!(e.report()))?;
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert!(lines[0].starts_with("POSITION  TYPE"), "{printed}");
    assert!(lines[1].trim_start().starts_with("1  stock.changed"), "{printed}");
    assert!(lines[2].trim_start().starts_with("2  stock.changed"), "{printed}");
    assert!(lines[2].contains("MUG/default"), "{printed}");
    assert!(lines[2].ends_with("on_hand=15 reserved=0 available=15"), "{printed}");
    Ok(())
}

#[tokio::test]
async fn shopctl_events_watch_type_filters_and_an_unknown_type_names_the_field()
-> anyhow::Result<()> {
    let inv = stock_set_adjusted_and_held().await?;
    let (outcome, printed) =
        watch(&inv, &["--from", "0", "--type", "stock.changed", "--count", "3", "--json"]).await?;
    outcome.map_err(|e| anyhow::anyhow!(e.report()))?;
    let events = events(&printed)?;
    assert_eq!(events.len(), 3, "{printed}");
    assert!(events.iter().all(|e| e["type"] == "stock.changed"), "{printed}");
    // Positions are the log's: the hold's own event (3 or 4) is skipped, not renumbered.
    let positions: Vec<u64> = events.iter().map(position).collect();
    assert_eq!(positions[..2], [1, 2], "{printed}");
    assert!([3, 4].contains(&positions[2]), "{printed}");
    assert_eq!(levels(&events[2]), (15, 3, 12), "{printed}");

    // Refused before anything is printed (not even the table's header).
    let (outcome, printed) = watch(&inv, &["--type", "stock.exploded"]).await?;
    let err = outcome.expect_err("an unknown type");
    let report = err.report();
    assert_eq!(err.exit_code(), 2, "INVALID_ARGUMENT: {report}");
    assert!(report.starts_with("error: INVALID_ARGUMENT:"), "{report}");
    assert!(report.contains("types[0]"), "{report}");
    assert_eq!(printed, "");
    Ok(())
}

/// Without --from a watch starts at the newest event; a stream the server ends names the last
/// position printed, to resume from.
#[tokio::test]
async fn shopctl_events_watch_from_now_and_resume_after_the_server_ends_it() -> anyhow::Result<()> {
    let mut inv = stock_set_adjusted_and_held().await?;
    // The 4 events are logged (a watch from 0 sees them), so "from now" is after 4.
    let (outcome, _) = watch(&inv, &["--from", "0", "--count", "4"]).await?;
    outcome.map_err(|e| anyhow::anyhow!(e.report()))?;
    let mut out = Printed::default();
    let watching = watch_into(inv.addr, &["--count", "1", "--json"], &mut out);
    // Changes until the watch has seen one (it may open after the first few).
    let changing = async {
        for on_hand in 20.. {
            inv.stock("MUG", on_hand).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    };
    let outcome = tokio::select! {
        outcome = watching => outcome?,
        failed = changing => return Err(failed.err().unwrap_or_else(|| anyhow::anyhow!("stopped"))),
    };
    outcome.map_err(|e| anyhow::anyhow!(e.report()))?;
    let seen = events(&out.text())?;
    assert_eq!(seen.len(), 1, "{}", out.text());
    assert!(position(&seen[0]) > 4, "{}", out.text());
    assert!(levels(&seen[0]).0 >= 20, "{}", out.text());

    // A watch without --count, ended by the server's shutdown once it printed 2 events.
    let mut out = Printed::default();
    let printed = out.clone();
    let watching = watch_into(inv.addr, &["--from", "0", "--json"], &mut out);
    let (outcome, server) = tokio::join!(watching, async {
        let waited = tokio::time::Instant::now();
        while printed.text().lines().count() < 2 && waited.elapsed() < WATCH_BOUND {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        inv.begin_stop()
    });
    let err = outcome?.expect_err("the server ended the stream");
    if let Some(server) = server {
        server.await??;
    }
    let report = err.report();
    let last = events(&out.text())?.last().map(position).unwrap_or(0);
    assert!(last >= 2, "{}", out.text());
    assert!(
        report.contains(&format!("  last position: {last} (resume with --from {last})")),
        "{report}"
    );
    assert_ne!(err.exit_code(), 0, "{report}");
    Ok(())
}

/// The order service's log is an operator's: refused without the admin token, streamed with it.
#[tokio::test]
async fn shopctl_events_watch_of_the_order_service_sends_the_admin_token() -> anyhow::Result<()> {
    const TOKEN: &str = "w4tch-t0ken";
    let mut sys = TestSystem::without_order_server(5).await?;
    sys.order_settings.admin =
        AdminAuthSettings { admin_token: Some(Secret::new(TOKEN)), ..Default::default() };
    sys.start_order_server().await?;
    let order = sys.order("alice", &[("p-widget", 2)]).await??;
    assert_eq!(order.status, "CONFIRMED", "{order:?}");

    let url = format!("http://{}", sys.orders[0].addr);
    let args = [
        "--service",
        "order",
        "--from",
        "0",
        "--type",
        "order.created",
        "--type",
        "order.confirmed",
        "--count",
        "2",
        "--json",
    ];
    let mut out = Printed::default();
    let refused = shopctl_into(&["--order-url", &url], &args, &mut out).await?;
    let err = refused.expect_err("no admin token");
    assert!(err.report().starts_with("error: UNAUTHENTICATED"), "{}", err.report());
    assert_eq!(out.text(), "");

    let watched = shopctl_into(&["--order-url", &url, "--token", TOKEN], &args, &mut out).await?;
    watched.map_err(|e| anyhow::anyhow!(e.report()))?;
    let printed = out.text();
    let events = events(&printed)?;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
    assert_eq!(types, ["order.created", "order.confirmed"], "{printed}");
    assert!(events.iter().all(|e| e["aggregateId"] == order.id.as_str()), "{printed}");
    let created = &events[0]["orderCreated"];
    assert_eq!(created["userId"], "alice", "{printed}");
    assert_eq!(created["totalAmountMinor"], order.total_amount_minor.to_string(), "{printed}");
    assert_eq!(created["lines"][0]["sku"], "WIDGET", "{printed}");
    assert_eq!(events[1]["orderStatusChanged"]["status"], "CONFIRMED", "{printed}");
    assert!(position(&events[0]) < position(&events[1]), "{printed}");
    Ok(())
}
