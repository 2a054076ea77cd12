//! `loadgen run`: one scenario, closed loop (repeated, median kept), then open loop at the
//! requested fractions of the closed-loop throughput; a result row per phase, each with the
//! servers' peak RSS and the invariant check that followed it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use sqlx::PgPool;

use crate::anchors;
use crate::conn::Channels;
use crate::h2load;
use crate::invariants;
use crate::probe::{self, Costs, Probe};
use crate::report::{self, ResultRow};
use crate::rss;
use crate::run_args::{EXIT_VIOLATIONS, RunArgs};
use crate::runner::{self, ClosedLoop, Measured, OpenLoop};
use crate::scenarios::check::Check;
use crate::scenarios::flash_sale::FlashSale;
use crate::scenarios::mixed::Mixed;
use crate::scenarios::order::CreateOrder;
use crate::scenarios::reserve::{Pick, References, Reserve};
use crate::scenarios::sellout::SellOut;
use crate::scenarios::{Scenario, Workload};

/// Everything a phase needs besides the workload.
struct Context {
    args: RunArgs,
    anchors: BTreeMap<String, f64>,
    pool: Option<PgPool>,
    probe: Probe,
    /// Whether peak RSS readings cover the current phase only (else: since start).
    rss_per_phase: bool,
    violations: u64,
    seed: u64,
}

/// Runs the scenario of `args`; exit 3 when an invariant or the sell-out check failed.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let anchors = anchors::parse(&args.anchor)?;
    let pool = match args.database_url.as_deref() {
        Some(url) => {
            Some(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?)
        }
        None => None,
    };
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let probe = Probe::new(pool.clone(), args.rss_pid.clone()).await;
    let mut ctx = Context { args, anchors, pool, probe, rss_per_phase: false, violations: 0, seed };
    let run_id = format!(
        "{}-{}",
        id_safe(&ctx.args.label()),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let references = Arc::new(References::new(&run_id));
    let deadline = ctx.args.deadline();
    let nskus = ctx.args.skus;

    match ctx.args.scenario {
        Scenario::Check => {
            let inventory = inventory(&ctx).await?;
            drive(&mut ctx, Check { inventory, nskus, deadline }).await?;
        }
        Scenario::ReserveUniform | Scenario::ReserveHot | Scenario::ReserveHotOnly => {
            let pick = match ctx.args.scenario {
                Scenario::ReserveHot => Pick::HotPlusTwo,
                Scenario::ReserveHotOnly => Pick::HotOnly,
                _ => Pick::Uniform,
            };
            let inventory = inventory(&ctx).await?;
            drive(&mut ctx, Reserve { inventory, nskus, pick, references, deadline }).await?;
        }
        Scenario::Mixed => {
            let inventory = inventory(&ctx).await?;
            drive(&mut ctx, Mixed { inventory, nskus, references, deadline }).await?;
        }
        Scenario::CreateOrder => {
            let orders = connect(&ctx, &ctx.args.order_url).await?;
            drive(&mut ctx, CreateOrder { orders, nskus, keys: references, deadline }).await?;
        }
        Scenario::SellOut => sell_out(&mut ctx, &run_id).await?,
        Scenario::FlashSale => flash_sale(&mut ctx, &run_id).await?,
        Scenario::CheckH2load => h2load_check(&mut ctx, &run_id).await?,
    }
    if let Some(pool) = ctx.pool.take() {
        pool.close().await;
    }
    Ok(if ctx.violations == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_VIOLATIONS) })
}

/// A label as the stem of references and keys: labels name configurations freely
/// (`check/inventory x2`), references take letters, digits, `-` and `_`.
fn id_safe(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect()
}

async fn inventory(ctx: &Context) -> anyhow::Result<Channels> {
    connect(ctx, &ctx.args.inventory_url).await
}

/// `--channels` connections to `url` over `--transport`.
async fn connect(ctx: &Context, url: &str) -> anyhow::Result<Channels> {
    Channels::connect_with(url, ctx.args.channels, ctx.args.transport, ctx.args.deadline()).await
}

/// Closed loop (median of the repeats), then each open-loop fraction.
async fn drive<W: Workload>(ctx: &mut Context, work: W) -> anyhow::Result<()> {
    let work = Arc::new(work);
    if !ctx.args.rate.is_empty() {
        for &rate in &ctx.args.rate.clone() {
            open_phase(ctx, &work, rate, format!("rate {}", report::ops(rate))).await?;
        }
        return Ok(());
    }
    let mut runs: Vec<Measured> = Vec::new();
    reset_rss(ctx);
    let before = ctx.probe.snapshot().await;
    for r in 0..ctx.args.repeat.max(1) {
        let cfg = ClosedLoop {
            workers: ctx.args.clients,
            warmup: ctx.args.warmup(),
            window: ctx.args.window(),
            seed: ctx.seed.wrapping_add(r as u64 * 1_000_003),
        };
        runs.push(runner::closed_loop(Arc::clone(&work), cfg).await?);
    }
    let calls = runs.iter().map(|m| m.calls).sum();
    let costs = probe::costs(&before, &ctx.probe.snapshot().await, calls);
    let all: Vec<f64> = runs.iter().map(Measured::ops_per_s).collect();
    runs.sort_by(|a, b| a.ops_per_s().total_cmp(&b.ops_per_s()));
    let median = runs.swap_remove(runs.len() / 2);
    let max_ops = median.ops_per_s();
    let mut notes = Vec::new();
    if all.len() > 1 {
        let list: Vec<String> = all.iter().map(|v| report::ops(*v)).collect();
        notes.push(format!("median of {} runs: {} ops/s", all.len(), list.join(" / ")));
    }
    let anchor = anchors::for_scenario(ctx.args.scenario, &ctx.anchors);
    let row = build_row(ctx, "closed".into(), &median, anchor, ctx.args.clients, costs, notes);
    finish_phase(ctx, row).await?;

    for &fraction in &ctx.args.open_loop.clone() {
        let rate = max_ops * fraction;
        if !(rate.is_finite() && rate > 0.0) {
            eprintln!("open loop at {fraction}: no closed-loop throughput to scale; skipped");
            continue;
        }
        open_phase(ctx, &work, rate, format!("open {:.0}%", fraction * 100.0)).await?;
    }
    Ok(())
}

/// One open-loop phase at `rate` ops/s, its row labelled `mode`.
async fn open_phase<W: Workload>(
    ctx: &mut Context,
    work: &Arc<W>,
    rate: f64,
    mode: String,
) -> anyhow::Result<()> {
    let cfg = OpenLoop {
        rate_per_s: rate,
        window: ctx.args.open_window(),
        max_in_flight: ctx.args.max_in_flight,
        slots: ctx.args.channels.max(1),
        seed: ctx.seed ^ rate.to_bits(),
    };
    reset_rss(ctx);
    let before = ctx.probe.snapshot().await;
    let measured = runner::open_loop(Arc::clone(work), cfg).await?;
    let costs = probe::costs(&before, &ctx.probe.snapshot().await, measured.calls);
    let mut notes = vec![format!("offered {} ops/s", report::ops(rate))];
    if let Some(lag) = &measured.dispatch_lag {
        notes.push(format!(
            "scheduler lag p50 {} ms, p99 {} ms (included in latency)",
            report::ms(lag.quantile_ms(0.5)),
            report::ms(lag.quantile_ms(0.99))
        ));
    }
    let row = build_row(ctx, mode, &measured, None, ctx.args.max_in_flight, costs, notes);
    finish_phase(ctx, row).await
}

/// The flash sale: one row, its correctness check folded into errors and notes.
async fn sell_out(ctx: &mut Context, run_id: &str) -> anyhow::Result<()> {
    let sale = SellOut {
        inventory: connect(ctx, &ctx.args.inventory_url).await?,
        buyers: ctx.args.buyers(),
        attempts_per_buyer: ctx.args.attempts_per_buyer,
        stock: ctx.args.stock,
        deadline: ctx.args.deadline(),
    };
    reset_rss(ctx);
    let before = ctx.probe.snapshot().await;
    let result = sale.run(run_id).await?;
    let costs = probe::costs(&before, &ctx.probe.snapshot().await, result.stats.count());
    let measured = Measured {
        stats: result.stats.clone(),
        window: result.elapsed,
        cpu: result.cpu,
        dispatch_lag: None,
        calls: result.stats.count(),
    };
    let mut notes = vec![format!(
        "{}: sold {} of {}, {} clean refusals, stock after: on_hand {} reserved {}",
        result.sku,
        result.sold,
        sale.stock,
        result.stats.refused,
        result.on_hand_after,
        result.reserved_after
    )];
    notes.extend(result.violations.iter().map(|v| format!("VIOLATION: {v}")));
    let mut row = build_row(ctx, "closed".into(), &measured, None, sale.buyers, costs, notes);
    // Broken promises count as errors too, even when every call answered.
    row.errors += result.violations.len() as u64;
    if !result.violations.is_empty() {
        for v in &result.violations {
            eprintln!("sell-out VIOLATION: {v}");
        }
        ctx.violations += result.violations.len() as u64;
    }
    finish_phase(ctx, row).await
}

/// `check`'s request replayed by h2load: one row, with h2load's own CPU in the load
/// generator's column and the loadgen's `check` figure of the same results file beside it.
async fn h2load_check(ctx: &mut Context, run_id: &str) -> anyhow::Result<()> {
    if !h2load::available() {
        anyhow::bail!("h2load not found on PATH (Debian: apt-get install nghttp2-client)");
    }
    if crate::conn::replicas(&ctx.args.inventory_url)?.len() > 1 {
        anyhow::bail!("check-h2load replays to one server: give --inventory-url one address");
    }
    let mut rng = fastrand::Rng::with_seed(ctx.seed);
    let req = crate::scenarios::check::request(&mut rng, ctx.args.skus);
    // h2load cannot read grpc-status: prove the request is answered properly first.
    let inventory = inventory(ctx).await?;
    let first =
        crate::scenarios::check::send(inventory.inventory(0), req.clone(), ctx.args.deadline())
            .await;
    if first != crate::histogram::Outcome::Ok {
        anyhow::bail!("the check request h2load would replay is not answered properly: {first:?}");
    }
    let dir = std::env::temp_dir();
    let plan = h2load::Plan {
        url: ctx.args.inventory_url.clone(),
        data: dir.join(format!("loadgen-{run_id}.grpc")),
        log: dir.join(format!("loadgen-{run_id}.h2load.log")),
        connections: ctx.args.clients,
        streams: ctx.args.h2load_streams,
        warmup: ctx.args.warmup(),
        duration: ctx.args.window(),
    };
    std::fs::write(&plan.data, h2load::grpc_frame(&req))?;
    reset_rss(ctx);
    let before = ctx.probe.snapshot().await;
    let cpu0 = crate::cpu::CpuSample::children_now()?;
    let output = tokio::process::Command::new("h2load").args(plan.args()).output().await;
    let cpu = cpu0.until(&crate::cpu::CpuSample::children_now()?);
    let log = std::fs::read_to_string(&plan.log).unwrap_or_default();
    let _ = std::fs::remove_file(&plan.data);
    let _ = std::fs::remove_file(&plan.log);
    let output = output.map_err(|e| anyhow::anyhow!("cannot run h2load: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        anyhow::bail!(
            "h2load exited with {}: {}{}",
            output.status,
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = h2load::parse_summary(&text)?;
    let stats = h2load::read_log(&log);
    let costs = probe::costs(&before, &ctx.probe.snapshot().await, stats.count());
    let measured =
        Measured { stats, window: summary.window(), cpu, dispatch_lag: None, calls: summary.done };
    let mut notes = vec![format!(
        "h2load {} connections x {} streams: {} req/s by its own count ({} done, {} failed); \
         the load generator columns are h2load's CPU",
        plan.connections,
        plan.streams,
        report::ops(summary.req_per_s),
        summary.done,
        summary.failed
    )];
    if let Some(path) = &ctx.args.results
        && let Some(own) = report::read_rows(path)?
            .into_iter()
            .rev()
            .find(|r| r.scenario == Scenario::Check.name() && r.mode == "closed")
        && own.service_ops_per_s > 0.0
    {
        notes.push(format!(
            "loadgen's check ({} workers): {} ops/s; h2load / loadgen = {:.2}x",
            own.clients,
            report::ops(own.service_ops_per_s),
            measured.ops_per_s() / own.service_ops_per_s
        ));
    }
    let anchor = anchors::for_scenario(ctx.args.scenario, &ctx.anchors);
    let clients = plan.connections * plan.streams.max(1);
    let mut row = build_row(ctx, "closed".into(), &measured, anchor, clients, costs, notes);
    row.errors += summary.failed;
    finish_phase(ctx, row).await
}

/// The flash sale through CreateOrder: one row with the sale's times, its correctness check
/// folded into errors and notes, and the time of every sale for the chart.
async fn flash_sale(ctx: &mut Context, run_id: &str) -> anyhow::Result<()> {
    let sale = FlashSale {
        orders: connect(ctx, &ctx.args.order_url).await?,
        inventory: connect(ctx, &ctx.args.inventory_url).await?,
        buyers: ctx.args.buyers(),
        stock: ctx.args.stock,
        deadline: ctx.args.deadline(),
    };
    reset_rss(ctx);
    let before = ctx.probe.snapshot().await;
    let result = sale.run(run_id, ctx.pool.as_ref()).await?;
    let book = &result.book;
    let costs = probe::costs(&before, &ctx.probe.snapshot().await, book.stats.count());
    let measured = Measured {
        stats: book.stats.clone(),
        window: result.elapsed,
        cpu: result.cpu,
        dispatch_lag: None,
        calls: book.stats.count(),
    };
    let sold_out = book.sold_out_after().map_or_else(
        || "nothing sold".to_owned(),
        |t| {
            format!(
                "sold out after {:.2} s ({} confirmed orders/s)",
                t.as_secs_f64(),
                report::ops(book.sold() as f64 / t.as_secs_f64().max(1e-9))
            )
        },
    );
    let mut notes = vec![
        format!(
            "{}: {} CONFIRMED of {} units, {sold_out}; refusals: {} INVENTORY_UNAVAILABLE, {} REJECTED; \
             stock after: on_hand {} reserved {}",
            crate::scenarios::flash_sale::SKU,
            book.sold(),
            sale.stock,
            book.refused_unavailable,
            book.refused_rejected,
            result.on_hand_after,
            result.reserved_after
        ),
        format!(
            "confirmed orders: p50 {} ms, p99 {} ms",
            report::ms(book.sold_stats.quantile_ms(0.5)),
            report::ms(book.sold_stats.quantile_ms(0.99))
        ),
    ];
    if let Some(a) = result.audit {
        notes.push(format!(
            "database: {} CONFIRMED, {} REJECTED, {} other orders of the sale's buyers",
            a.confirmed, a.rejected, a.other
        ));
    }
    notes.extend(result.violations.iter().map(|v| format!("VIOLATION: {v}")));
    let mut row = build_row(ctx, "closed".into(), &measured, None, sale.buyers, costs, notes);
    row.sold_at_ms = book.sold_at_ms();
    // Broken promises count as errors too, even when every call answered.
    row.errors += result.violations.len() as u64;
    if !result.violations.is_empty() {
        for v in &result.violations {
            eprintln!("flash-sale VIOLATION: {v}");
        }
        ctx.violations += result.violations.len() as u64;
    }
    finish_phase(ctx, row).await
}

/// Starts each server's peak-RSS reading afresh, so a row shows its own phase's peak; when
/// that is not allowed the rows show the peak since the server started (and say so).
fn reset_rss(ctx: &mut Context) {
    ctx.rss_per_phase = rss::reset_peaks(&ctx.args.rss_pid);
}

fn build_row(
    ctx: &Context,
    mode: String,
    m: &Measured,
    anchor: Option<(String, f64)>,
    clients: usize,
    costs: Costs,
    mut notes: Vec<String>,
) -> ResultRow {
    let service = m.ops_per_s();
    let peaks = rss::peak_rss_mib(&ctx.args.rss_pid);
    if peaks.len() > 1 {
        let each: Vec<String> = peaks
            .iter()
            .map(|(pid, mib)| match mib {
                Some(m) => format!("pid {pid}: {m:.1} MiB"),
                None => format!("pid {pid}: gone"),
            })
            .collect();
        notes.push(format!("peak RSS {}", each.join(", ")));
    }
    if !ctx.args.rss_pid.is_empty() && !ctx.rss_per_phase {
        notes.push("peak RSS since the server started (could not reset it per phase)".into());
    }
    for (kind, n) in m.stats.error_kinds().into_iter().take(3) {
        notes.push(format!("{n} x {kind}"));
    }
    ResultRow {
        scenario: ctx.args.label(),
        service_ops_per_s: service,
        ratio: anchor.as_ref().map(|(_, tps)| service / tps),
        anchor_ops_per_s: anchor.as_ref().map(|(_, tps)| *tps),
        anchor: anchor.map(|(name, _)| name),
        p50_ms: m.stats.quantile_ms(0.5),
        p99_ms: m.stats.quantile_ms(0.99),
        p999_ms: m.stats.quantile_ms(0.999),
        errors: m.stats.errors,
        rss_mib: rss::max_mib(&peaks),
        mode,
        clients,
        duration_s: m.window.as_secs_f64(),
        ops: m.stats.count(),
        refused: m.stats.refused,
        loadgen_cpu_cores: m.cpu.cores(),
        loadgen_cpu_us_per_call: (m.calls > 0).then(|| m.cpu.cpu_s / m.calls as f64 * 1e6),
        invariant_violations: None,
        write_tx_per_op: costs.write_tx_per_op,
        wal_bytes_per_op: costs.wal_bytes_per_op,
        server_cpu_cores: (!ctx.args.rss_pid.is_empty()).then_some(costs.server_cores),
        postgres_cpu_cores: costs.postgres_cores,
        load_avg: probe::load_average(),
        notes,
        sold_at_ms: Vec::new(),
    }
}

/// Checks the invariants, prints the row and appends it to the results file.
async fn finish_phase(ctx: &mut Context, mut row: ResultRow) -> anyhow::Result<()> {
    if let Some(pool) = &ctx.pool {
        let findings = invariants::check(pool).await?;
        let total = invariants::total(&findings);
        row.invariant_violations = Some(total);
        if total > 0 {
            eprintln!(
                "INVARIANT VIOLATIONS after {} ({}):\n{}",
                row.scenario,
                row.mode,
                invariants::describe(&findings)
            );
            ctx.violations += total;
        }
    }
    let opt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{} [{}]: {} ops/s, p50 {} ms, p99 {} ms, p99.9 {} ms, errors {}, invariants {}, \
         cores: loadgen {:.2} ({} us/call) servers {} postgres {}, write tx/op {}, load avg {}{}",
        row.scenario,
        row.mode,
        report::ops(row.service_ops_per_s),
        report::ms(row.p50_ms),
        report::ms(row.p99_ms),
        report::ms(row.p999_ms),
        row.errors,
        row.invariant_violations.map_or_else(
            || "not checked".into(),
            |v| { if v == 0 { "ok".to_owned() } else { format!("{v} VIOLATIONS") } }
        ),
        row.loadgen_cpu_cores,
        row.loadgen_cpu_us_per_call.map_or_else(|| "n/a".into(), |v| format!("{v:.1}")),
        opt(row.server_cpu_cores),
        opt(row.postgres_cpu_cores),
        opt(row.write_tx_per_op),
        opt(row.load_avg),
        if row.notes.is_empty() { String::new() } else { format!(" ({})", row.notes.join("; ")) }
    );
    if let Some(path) = &ctx.args.results {
        report::append_rows(path, std::slice::from_ref(&row))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::id_safe;

    #[test]
    fn a_label_becomes_a_valid_reference_stem() {
        assert_eq!(id_safe("reserve-uniform/inventory x2"), "reserve-uniform-inventory-x2");
        assert_eq!(id_safe("create-order/pay0ms"), "create-order-pay0ms");
    }
}
