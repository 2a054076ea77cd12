//! Charts of a results file, as SVG (plotters, SVG backend only: text is drawn by whatever
//! shows the file, so no font is needed here):
//! - `latency.svg`: p50 / p99 / p99.9 of every closed-loop row, horizontal bars, log scale;
//! - `throughput.svg`: service vs anchor ops/s of every row with an anchor, log scale, with
//!   the ratio written beside each pair;
//! - `flash-sale.svg`: units sold over time in the flash sale (when the results hold one).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{self, ResultRow};

const WIDTH: u32 = 1000;
const ROW_PX: u32 = 34;
const LABELS_PX: u32 = 230;
const P50: RGBColor = RGBColor(0x4c, 0x78, 0xa8);
const P99: RGBColor = RGBColor(0xf5, 0x85, 0x18);
const P999: RGBColor = RGBColor(0xe4, 0x57, 0x56);
const SERVICE: RGBColor = RGBColor(0x4c, 0x78, 0xa8);
const ANCHOR: RGBColor = RGBColor(0x9d, 0x9d, 0x9d);

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing {path}: {message}")]
pub struct ChartError {
    path: String,
    message: String,
}

fn failed(path: &Path, e: impl std::fmt::Display) -> ChartError {
    ChartError { path: path.display().to_string(), message: e.to_string() }
}

/// Writes every chart the rows allow into `dir` (created if needed); returns the files.
pub fn write_all(rows: &[ResultRow], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let latency = dir.join("latency.svg");
    if latency_chart(rows, &latency)? {
        written.push(latency);
    }
    let throughput = dir.join("throughput.svg");
    if throughput_chart(rows, &throughput)? {
        written.push(throughput);
    }
    let sale = dir.join("flash-sale.svg");
    if flash_sale_chart(rows, &sale)? {
        written.push(sale);
    }
    Ok(written)
}

/// The rows one bar group each stands for: closed-loop rows (one per scenario and repeat).
fn closed(rows: &[ResultRow]) -> Vec<&ResultRow> {
    rows.iter().filter(|r| r.mode == "closed" && r.ops > 0).collect()
}

/// A log axis from a bit below the smallest to a bit above the largest value.
fn log_range(values: impl Iterator<Item = f64>) -> Option<std::ops::Range<f64>> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo <= hi).then(|| (lo / 2.0)..(hi * 3.0))
}

/// Horizontal grouped bars on a log x axis: one group per label, one bar per series.
struct Bars<'a> {
    title: &'a str,
    x_desc: &'a str,
    labels: Vec<String>,
    /// (name, colour, one value per label; None = no bar).
    series: Vec<(&'a str, RGBColor, Vec<Option<f64>>)>,
    /// Text written right of each group (e.g. the ratio).
    notes: Vec<String>,
}

impl Bars<'_> {
    fn draw(&self, path: &Path) -> Result<bool, ChartError> {
        let all = self.series.iter().flat_map(|(_, _, v)| v.iter().flatten().copied());
        let Some(x_range) = log_range(all) else {
            return Ok(false);
        };
        let n = self.labels.len();
        let height = 110 + ROW_PX * u32::try_from(n).unwrap_or(u32::MAX / ROW_PX).max(1);
        let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(path, e))?;
        self.plot(&root, x_range).map_err(|e| failed(path, e))?;
        root.present().map_err(|e| failed(path, e))?;
        Ok(true)
    }

    fn plot(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
        x_range: std::ops::Range<f64>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let n = self.labels.len() as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(LABELS_PX)
            .right_y_label_area_size(70)
            .build_cartesian_2d(x_range.clone().log_scale(), 0.0..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(self.x_desc)
            .x_label_formatter(&|v| report::ops(*v))
            .draw()?;
        let groups = self.series.len().max(1) as f64;
        let bar = 0.8 / groups;
        for (k, (name, colour, values)) in self.series.iter().enumerate() {
            let colour = *colour;
            let rects = values.iter().enumerate().filter_map(|(i, v)| {
                let v = (*v)?;
                // Row 0 at the top: the y axis grows upwards.
                let top = n - i as f64 - 0.1 - bar * k as f64;
                Some(Rectangle::new([(x_range.start, top - bar), (v, top)], colour.filled()))
            });
            chart.draw_series(rects)?.label(*name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
            });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        let left = ("sans-serif", 13)
            .into_font()
            .into_text_style(root)
            .pos(Pos::new(HPos::Right, VPos::Center));
        let right = ("sans-serif", 12)
            .into_font()
            .into_text_style(root)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, label) in self.labels.iter().enumerate() {
            let middle = n - i as f64 - 0.5;
            let (x, y) = chart.backend_coord(&(x_range.start, middle));
            root.draw(&Text::new(label.clone(), (x - 8, y), left.clone()))?;
            if let Some(note) = self.notes.get(i).filter(|t| !t.is_empty()) {
                let (x, y) = chart.backend_coord(&(x_range.end, middle));
                root.draw(&Text::new(note.clone(), (x + 6, y), right.clone()))?;
            }
        }
        Ok(())
    }
}

/// p50 / p99 / p99.9 of every closed-loop row. False when there is nothing to draw.
pub fn latency_chart(rows: &[ResultRow], path: &Path) -> Result<bool, ChartError> {
    let rows = closed(rows);
    let pick = |f: fn(&ResultRow) -> f64| rows.iter().map(|r| Some(f(r))).collect::<Vec<_>>();
    Bars {
        title: "Latency per scenario (closed loop; log scale)",
        x_desc: "milliseconds",
        labels: rows.iter().map(|r| r.scenario.clone()).collect(),
        series: vec![
            ("p50", P50, pick(|r| r.p50_ms)),
            ("p99", P99, pick(|r| r.p99_ms)),
            ("p99.9", P999, pick(|r| r.p999_ms)),
        ],
        notes: Vec::new(),
    }
    .draw(path)
}

/// Service vs anchor ops/s of every row with an anchor, the ratio beside each pair.
pub fn throughput_chart(rows: &[ResultRow], path: &Path) -> Result<bool, ChartError> {
    let rows: Vec<&ResultRow> = rows.iter().filter(|r| r.anchor_ops_per_s.is_some()).collect();
    Bars {
        title: "Service vs its raw-SQL anchor (ops/s; log scale)",
        x_desc: "operations per second",
        labels: rows
            .iter()
            .map(|r| format!("{} / {}", r.scenario, r.anchor.as_deref().unwrap_or("anchor")))
            .collect(),
        series: vec![
            ("service", SERVICE, rows.iter().map(|r| Some(r.service_ops_per_s)).collect()),
            ("anchor (pgbench)", ANCHOR, rows.iter().map(|r| r.anchor_ops_per_s).collect()),
        ],
        notes: rows
            .iter()
            .map(|r| r.ratio.map_or_else(String::new, |x| format!("{x:.2}x")))
            .collect(),
    }
    .draw(path)
}

/// Units sold over time in the (last) flash sale of the rows. False when there was none.
pub fn flash_sale_chart(rows: &[ResultRow], path: &Path) -> Result<bool, ChartError> {
    let Some(row) = rows.iter().rev().find(|r| !r.sold_at_ms.is_empty()) else {
        return Ok(false);
    };
    let sold = &row.sold_at_ms;
    let end_s = sold.last().copied().unwrap_or(0.0) / 1000.0;
    let root = SVGBackend::new(path, (WIDTH, 480)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let title = format!(
            "Flash sale: {} units sold in {:.2} s by {} buyers (CreateOrder, one unit each)",
            sold.len(),
            end_s,
            row.clients
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..(end_s * 1.05).max(0.01), 0.0..(sold.len() as f64 * 1.05))?;
        chart
            .configure_mesh()
            .x_desc("seconds after the first order")
            .y_desc("units sold")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        // A step per sale: the count rises by one at each sale's time.
        let steps = std::iter::once((0.0, 0.0))
            .chain(sold.iter().enumerate().map(|(i, ms)| (ms / 1000.0, (i + 1) as f64)));
        chart.draw_series(LineSeries::new(steps, SERVICE.stroke_width(2)))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| failed(path, e))?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(scenario: &str, mode: &str, ops: f64, anchor: Option<f64>) -> ResultRow {
        ResultRow {
            scenario: scenario.into(),
            service_ops_per_s: ops,
            anchor_ops_per_s: anchor,
            ratio: anchor.map(|a| ops / a),
            p50_ms: 0.8,
            p99_ms: 4.5,
            p999_ms: 12.0,
            errors: 0,
            rss_mib: Some(14.0),
            mode: mode.into(),
            anchor: anchor.map(|_| "C_availability".to_owned()),
            clients: 8,
            duration_s: 5.0,
            ops: 1000,
            refused: 0,
            loadgen_cpu_cores: 0.2,
            loadgen_cpu_us_per_call: Some(50.0),
            invariant_violations: Some(0),
            write_tx_per_op: None,
            wal_bytes_per_op: None,
            server_cpu_cores: None,
            postgres_cpu_cores: None,
            load_avg: None,
            notes: vec![],
            sold_at_ms: vec![],
        }
    }

    /// A well-formed SVG document: one root, every opened element closed, nothing after it.
    fn assert_svg(path: &Path, must_mention: &[&str]) {
        let text = std::fs::read_to_string(path).unwrap();
        let body = text.trim();
        assert!(body.starts_with("<svg") || body.starts_with("<?xml"), "{}", &body[..40]);
        assert!(body.ends_with("</svg>"), "ends with {}", &body[body.len() - 20..]);
        assert_eq!(body.matches("<svg").count(), 1);
        // Opening tags that are not self-closing must be closed.
        let opened = body.matches("<text").count() + body.matches("<g").count();
        let closed = body.matches("</text>").count() + body.matches("</g>").count();
        assert_eq!(opened, closed, "{}", path.display());
        for word in must_mention {
            assert!(body.contains(word), "{} does not mention {word}", path.display());
        }
    }

    #[test]
    fn charts_are_valid_svg_files() {
        let dir = std::env::temp_dir().join(format!("loadgen-charts-{}", std::process::id()));
        let mut sale = row("flash-sale", "closed", 900.0, None);
        sale.sold_at_ms = (1..=1000).map(|i| f64::from(i) * 1.5).collect();
        sale.clients = 256;
        let rows = vec![
            row("check", "closed", 11_000.0, Some(68_000.0)),
            row("check", "open 50%", 5_500.0, None),
            row("check/h2load 8x16", "closed", 40_000.0, Some(68_000.0)),
            row("create-order/pay0ms", "closed", 300.0, None),
            sale,
        ];
        let written = write_all(&rows, &dir).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["latency.svg", "throughput.svg", "flash-sale.svg"]);
        assert_svg(
            &dir.join("latency.svg"),
            &["check/h2load 8x16", "create-order/pay0ms", "p99.9"],
        );
        assert_svg(&dir.join("throughput.svg"), &["check / C_availability", "0.16x", "anchor"]);
        assert_svg(&dir.join("flash-sale.svg"), &["1000 units sold in 1.50 s", "256 buyers"]);
        // The open-loop row is not a bar of its own.
        let latency = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
        assert!(!latency.contains("open 50%"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_to_draw_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("loadgen-charts-none-{}", std::process::id()));
        assert!(write_all(&[], &dir).unwrap().is_empty());
        let only_open = [row("check", "open 50%", 10.0, None)];
        assert!(write_all(&only_open, &dir).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_axes_span_every_value() {
        let r = log_range([0.5, 20.0, 0.0, f64::NAN].into_iter()).unwrap();
        assert!(r.start < 0.5 && r.end > 20.0, "{r:?}");
        assert!(log_range([0.0].into_iter()).is_none());
    }
}
