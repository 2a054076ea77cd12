//! Result rows: what `scripts/bench` prints as a table and writes to
//! `target/bench/results.json` (a JSON list of these objects).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One measured scenario (one closed-loop run, or one open-loop rate).
///
/// The first nine fields are the published contract of `results.json`; the rest add
/// context and may grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub scenario: String,
    pub service_ops_per_s: f64,
    pub anchor_ops_per_s: Option<f64>,
    pub ratio: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
    pub rss_mib: Option<f64>,
    /// `closed` (max throughput) or `open 50%` (constant rate, that share of the max).
    #[serde(default)]
    pub mode: String,
    /// Which pgbench anchor the ratio is taken against.
    #[serde(default)]
    pub anchor: Option<String>,
    /// Concurrent workers (closed loop) or the in-flight cap (open loop).
    #[serde(default)]
    pub clients: usize,
    /// Measured window in seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// Operations measured.
    #[serde(default)]
    pub ops: u64,
    /// Expected business refusals among them (sell-out).
    #[serde(default)]
    pub refused: u64,
    /// Cores the load generator itself kept busy.
    #[serde(default)]
    pub loadgen_cpu_cores: f64,
    /// The load generator's CPU per call, microseconds (its whole run, warm-up included, over
    /// every call it made).
    #[serde(default)]
    pub loadgen_cpu_us_per_call: Option<f64>,
    /// Invariant violations found right after this run (None: not checked).
    #[serde(default)]
    pub invariant_violations: Option<u64>,
    /// Transactions that wrote, per operation (cluster-wide xid count).
    #[serde(default)]
    pub write_tx_per_op: Option<f64>,
    /// WAL bytes per operation.
    #[serde(default)]
    pub wal_bytes_per_op: Option<f64>,
    /// Cores the server processes kept busy.
    #[serde(default)]
    pub server_cpu_cores: Option<f64>,
    /// Cores PostgreSQL kept busy.
    #[serde(default)]
    pub postgres_cpu_cores: Option<f64>,
    /// 1-minute load average at the end of the phase (other work on the machine).
    #[serde(default)]
    pub load_avg: Option<f64>,
    /// Free-form remarks: error kinds, correctness checks, medians of repeats.
    #[serde(default)]
    pub notes: Vec<String>,
    /// flash-sale: when each unit sold, milliseconds after the sale's start, earliest first
    /// (the sold-over-time chart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sold_at_ms: Vec<f64>,
}

/// The rows in `path`; none when the file does not exist or is empty.
pub fn read_rows(path: &Path) -> anyhow::Result<Vec<ResultRow>> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Vec::new()),
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a list of result rows: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Appends `rows` to the list in `path` (created with its directory if needed), replacing
/// the file in one rename so a reader never sees half a list.
pub fn append_rows(path: &Path, rows: &[ResultRow]) -> anyhow::Result<()> {
    let mut all = read_rows(path)?;
    all.extend_from_slice(rows);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&all)? + "\n")?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

const HEADERS: [&str; 12] = [
    "scenario",
    "mode",
    "service ops/s",
    "anchor",
    "anchor ops/s",
    "ratio",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "errors",
    "server RSS MiB",
    "loadgen CPU",
];

/// The rows as a Markdown table (readable in a terminal, pasteable into BENCHMARKS.md):
/// text columns left-aligned, numbers right-aligned, `n/a` where there is no value.
pub fn format_table(rows: &[ResultRow]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(row_cells).collect();
    markdown(&HEADERS, &cells, &[0, 1, 3])
}

const COST_HEADERS: [&str; 10] = [
    "scenario",
    "mode",
    "ops/s",
    "write tx/op",
    "WAL KiB/op",
    "server cores",
    "postgres cores",
    "loadgen cores",
    "CPU ms/op",
    "load avg",
];

/// Where the time went: per-operation database work and the cores each party used.
pub fn format_costs(rows: &[ResultRow]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(cost_cells).collect();
    markdown(&COST_HEADERS, &cells, &[0, 1])
}

fn cost_cells(row: &ResultRow) -> Vec<String> {
    let opt =
        |v: Option<f64>, digits: usize| v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"));
    let cpu_ms_per_op = match (row.server_cpu_cores, row.postgres_cpu_cores) {
        (Some(s), Some(p)) if row.service_ops_per_s > 0.0 => {
            Some((s + p + row.loadgen_cpu_cores) / row.service_ops_per_s * 1000.0)
        }
        _ => None,
    };
    vec![
        row.scenario.clone(),
        row.mode.clone(),
        ops(row.service_ops_per_s),
        opt(row.write_tx_per_op, 2),
        opt(row.wal_bytes_per_op.map(|b| b / 1024.0), 2),
        opt(row.server_cpu_cores, 2),
        opt(row.postgres_cpu_cores, 2),
        format!("{:.2}", row.loadgen_cpu_cores),
        opt(cpu_ms_per_op, 3),
        opt(row.load_avg, 1),
    ]
}

/// A Markdown table with padded columns; columns not in `text_columns` are right-aligned.
fn markdown(headers: &[&str], cells: &[Vec<String>], text_columns: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |i: usize| !text_columns.contains(&i);
    let line = |texts: &[String]| {
        let mut out = String::from("|");
        for (i, text) in texts.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(text.chars().count()));
            if numeric(i) {
                out.push_str(&format!(" {pad}{text} |"));
            } else {
                out.push_str(&format!(" {text}{pad} |"));
            }
        }
        out
    };
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&header);
    out.push('\n');
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(w.saturating_sub(1).max(1));
        if numeric(i) {
            out.push_str(&format!(" {dashes}: |"));
        } else {
            out.push_str(&format!(" {dashes}- |"));
        }
    }
    out.push('\n');
    for row in cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

fn row_cells(row: &ResultRow) -> Vec<String> {
    vec![
        row.scenario.clone(),
        row.mode.clone(),
        ops(row.service_ops_per_s),
        row.anchor.clone().unwrap_or_else(|| "n/a".into()),
        row.anchor_ops_per_s.map_or_else(|| "n/a".into(), ops),
        row.ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}x")),
        ms(row.p50_ms),
        ms(row.p99_ms),
        ms(row.p999_ms),
        row.errors.to_string(),
        row.rss_mib.map_or_else(|| "n/a".into(), |m| format!("{m:.1}")),
        format!("{:.2} cores", row.loadgen_cpu_cores),
    ]
}

/// Operations per second: whole numbers with thousands separators, one decimal below 100.
pub fn ops(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    if value < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{value:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Milliseconds with the precision that matters at that size.
pub fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(scenario: &str) -> ResultRow {
        ResultRow {
            scenario: scenario.into(),
            service_ops_per_s: 2_420.4,
            anchor_ops_per_s: Some(4_036.0),
            ratio: Some(2_420.4 / 4_036.0),
            p50_ms: 3.214,
            p99_ms: 12.46,
            p999_ms: 130.2,
            errors: 0,
            rss_mib: Some(23.04),
            mode: "closed".into(),
            anchor: Some("A_fn_reserve".into()),
            clients: 8,
            duration_s: 10.0,
            ops: 24_204,
            refused: 0,
            loadgen_cpu_cores: 0.314,
            loadgen_cpu_us_per_call: Some(30.0),
            invariant_violations: Some(0),
            write_tx_per_op: Some(1.0),
            wal_bytes_per_op: Some(1536.0),
            server_cpu_cores: Some(0.5),
            postgres_cpu_cores: Some(0.9),
            load_avg: Some(2.25),
            notes: vec![],
            sold_at_ms: vec![],
        }
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(ops(26_324.4), "26,324");
        assert_eq!(ops(1_000_000.0), "1,000,000");
        assert_eq!(ops(999.6), "1,000");
        assert_eq!(ops(100.0), "100");
        assert_eq!(ops(45.26), "45.3");
        assert_eq!(ops(f64::NAN), "n/a");
        assert_eq!(ms(0.304), "0.30");
        assert_eq!(ms(13.34), "13.3");
        assert_eq!(ms(250.4), "250");
    }

    #[test]
    fn table_is_markdown_with_aligned_columns() {
        let mut open = row("create-order/pay0ms");
        open.mode = "open 50%".into();
        open.anchor = None;
        open.anchor_ops_per_s = None;
        open.ratio = None;
        open.rss_mib = None;
        open.errors = 3;
        let table = format_table(&[row("reserve-uniform"), open]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("| scenario "));
        assert!(lines[1].starts_with("| ---"));
        assert!(lines[1].contains("-: |"), "numbers are right-aligned: {}", lines[1]);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
        assert_eq!(
            lines[2],
            "| reserve-uniform     | closed   |         2,420 | A_fn_reserve |        4,036 | \
             0.60x |   3.21 |   12.5 |      130 |      0 |           23.0 |  0.31 cores |"
        );
        assert!(lines[3].contains("| open 50% |"));
        assert!(lines[3].contains("| n/a          |          n/a |   n/a |"), "{}", lines[3]);
        assert!(lines[3].contains("|      3 |            n/a |"), "{}", lines[3]);
    }

    #[test]
    fn costs_table_shows_work_per_operation() {
        let mut no_db = row("sell-out");
        no_db.postgres_cpu_cores = None;
        no_db.write_tx_per_op = None;
        let table = format_costs(&[row("reserve-uniform"), no_db]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        // (0.5 + 0.9 + 0.314) cores / 2,420.4 ops/s = 0.708 ms of CPU per operation.
        assert!(lines[2].contains(" 0.708 |"), "{}", lines[2]);
        assert!(lines[2].contains("|        1.00 |       1.50 |"), "{}", lines[2]);
        assert!(lines[3].contains("n/a"), "{}", lines[3]);
        assert!(
            lines[2].ends_with("|      2.2 |") || lines[2].ends_with("|      2.3 |"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn rows_round_trip_through_the_results_file() {
        let dir = std::env::temp_dir().join(format!("loadgen-report-{}", std::process::id()));
        let path = dir.join("nested/results.json");
        assert!(read_rows(&path).unwrap().is_empty());
        append_rows(&path, &[row("check")]).unwrap();
        append_rows(&path, &[row("mixed"), row("sell-out")]).unwrap();
        let rows = read_rows(&path).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.scenario.as_str()).collect::<Vec<_>>(),
            ["check", "mixed", "sell-out"]
        );
        assert_eq!(rows[0], row("check"));
        // The published keys are all there, under their exact names.
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for key in [
            "scenario",
            "service_ops_per_s",
            "anchor_ops_per_s",
            "ratio",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "errors",
            "rss_mib",
        ] {
            assert!(json[0].get(key).is_some(), "missing {key}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_minimal_row_reads_with_defaults() {
        let text = r#"[{"scenario":"check","service_ops_per_s":1.0,"anchor_ops_per_s":null,
            "ratio":null,"p50_ms":1.0,"p99_ms":2.0,"p999_ms":3.0,"errors":0,"rss_mib":null}]"#;
        let dir = std::env::temp_dir().join(format!("loadgen-min-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        std::fs::write(&path, text).unwrap();
        let rows = read_rows(&path).unwrap();
        assert_eq!(rows[0].mode, "");
        assert_eq!(rows[0].notes, Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
