//! The h2load cross-check of `check`: nghttp2's `h2load` (a C load generator, one thread,
//! one event loop) replays one gRPC-framed CheckInventoryAvailability request over
//! `connections` HTTP/2 connections with `streams` requests in flight on each. It tells
//! whether our own load generator, not the server, limits the `check` figure.
//!
//! h2load speaks HTTP/2, not gRPC: it counts a `200` as success and cannot read the
//! `grpc-status` trailer. So the same request is first sent once through the gRPC client and
//! must be answered properly; a server that then fails calls would still answer `200` with
//! an error trailer, which is why the rows also say how many the loadgen's own run failed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::histogram::{Outcome, Stats};

/// The gRPC path of CheckInventoryAvailability.
pub const CHECK_PATH: &str = "/inventory.v1.InventoryService/CheckInventoryAvailability";

/// A gRPC length-prefixed message: flag 0 (not compressed), the length as 4 big-endian
/// bytes, then the protobuf encoding.
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    // A protobuf message larger than 4 GiB cannot be encoded in the first place.
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// How h2load runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `http://host:port` of the server.
    pub url: String,
    /// The file holding the framed request.
    pub data: PathBuf,
    /// Where h2load writes one line per request (start, status, microseconds).
    pub log: PathBuf,
    pub connections: usize,
    /// Requests in flight per connection.
    pub streams: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

impl Plan {
    /// h2load's arguments: timing-based run, one thread, gRPC headers, the request as POST
    /// data.
    pub fn args(&self) -> Vec<String> {
        let secs = |d: Duration| format!("{}s", d.as_secs().max(1));
        let mut args = vec![
            "-c".to_owned(),
            self.connections.max(1).to_string(),
            "-m".into(),
            self.streams.max(1).to_string(),
            "-t".into(),
            "1".into(),
            "-D".into(),
            secs(self.duration),
        ];
        if !self.warmup.is_zero() {
            args.push(format!("--warm-up-time={}", secs(self.warmup)));
        }
        args.extend([
            "-H".into(),
            "content-type: application/grpc".into(),
            "-H".into(),
            "te: trailers".into(),
            "-d".into(),
            self.data.display().to_string(),
            format!("--log-file={}", self.log.display()),
            format!("{}{CHECK_PATH}", self.url.trim_end_matches('/')),
        ]);
        args
    }
}

/// What h2load printed about its measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The whole run, warm-up included (`finished in ...`).
    pub elapsed: Duration,
    /// `req/s` as h2load computed it.
    pub req_per_s: f64,
    pub done: u64,
    pub succeeded: u64,
    /// Failed + errored + timed out.
    pub failed: u64,
}

/// Parses h2load's `finished in 5.00s, 16702.40 req/s, ...` and `requests: N total, ...`
/// lines.
pub fn parse_summary(text: &str) -> anyhow::Result<Summary> {
    let finished = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("finished in "))
        .ok_or_else(|| anyhow::anyhow!("h2load printed no `finished in` line"))?;
    let mut parts = finished.split(',').map(str::trim);
    let elapsed = parts
        .next()
        .and_then(duration_of)
        .ok_or_else(|| anyhow::anyhow!("h2load: cannot read the time in {finished:?}"))?;
    let req_per_s = parts
        .next()
        .and_then(|p| p.strip_suffix(" req/s"))
        .and_then(|p| p.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("h2load: cannot read req/s in {finished:?}"))?;
    let requests = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests: "))
        .ok_or_else(|| anyhow::anyhow!("h2load printed no `requests:` line"))?;
    let count = |name: &str| -> anyhow::Result<u64> {
        requests
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_suffix(name).map(str::trim))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("h2load: no `{name}` count in {requests:?}"))
    };
    Ok(Summary {
        elapsed,
        req_per_s,
        done: count("done")?,
        succeeded: count("succeeded")?,
        failed: count("failed")? + count("errored")? + count("timeout")?,
    })
}

impl Summary {
    /// The measured window: h2load counts and logs only the requests of its main duration
    /// (after the warm-up) and divides by that duration, so done / req/s gives it back.
    pub fn window(&self) -> Duration {
        if self.req_per_s > 0.0 {
            Duration::from_secs_f64(self.done as f64 / self.req_per_s)
        } else {
            self.elapsed
        }
    }
}

/// `5.00s`, `830.12ms` or `120us` as a duration.
fn duration_of(text: &str) -> Option<Duration> {
    let (number, unit_s) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    let secs = number.trim().parse::<f64>().ok()? * unit_s;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Latencies of h2load's log file (tab-separated: start in microseconds since the epoch, HTTP
/// status, microseconds to the end of the response). A `200` counts as done; any other
/// status (h2load writes `-1` for a request that got no response) as an error.
pub fn read_log(text: &str) -> Stats {
    let mut stats = Stats::new();
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (Some(_start), Some(status), Some(us)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Ok(us) = us.trim().parse::<u64>() else {
            continue;
        };
        let outcome = if status.trim() == "200" {
            Outcome::Ok
        } else {
            Outcome::Error(format!("h2load status {}", status.trim()))
        };
        stats.record(outcome, Duration::from_micros(us));
    }
    stats
}

/// Whether h2load can be run (on PATH).
pub fn available() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join("h2load")))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message as _;
    use proto::inventory::v1 as pb;

    use super::*;

    #[test]
    fn frames_carry_flag_length_and_the_message() {
        let req = pb::CheckInventoryAvailabilityRequest {
            items: vec![pb::AvailabilityCheckItem {
                product_id: String::new(),
                variant_id: None,
                sku: "SKU-000001".into(),
                quantity: 1,
            }],
        };
        let frame = grpc_frame(&req);
        let body = req.encode_to_vec();
        assert_eq!(frame[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize,
            body.len()
        );
        assert_eq!(&frame[5..], body.as_slice());
        let back = pb::CheckInventoryAvailabilityRequest::decode(&frame[5..]).unwrap();
        assert_eq!(back, req);
        // An empty message is a bare 5-byte prefix.
        let empty = grpc_frame(&pb::CheckInventoryAvailabilityRequest { items: vec![] });
        assert_eq!(empty, vec![0, 0, 0, 0, 0]);
    }

    #[test]
    fn arguments_name_grpc_headers_and_the_check_path() {
        let plan = Plan {
            url: "http://127.0.0.1:5051/".into(),
            data: "/tmp/req.bin".into(),
            log: "/tmp/h2.log".into(),
            connections: 8,
            streams: 16,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
        };
        let args = plan.args();
        let joined = args.join(" ");
        assert!(joined.starts_with("-c 8 -m 16 -t 1 -D 5s --warm-up-time=1s"), "{joined}");
        assert!(joined.contains("-H content-type: application/grpc -H te: trailers"));
        assert!(joined.contains("-d /tmp/req.bin --log-file=/tmp/h2.log"));
        assert_eq!(
            args.last().unwrap(),
            "http://127.0.0.1:5051/inventory.v1.InventoryService/CheckInventoryAvailability"
        );
        let no_warmup = Plan { warmup: Duration::ZERO, ..plan };
        assert!(!no_warmup.args().join(" ").contains("warm-up"));
    }

    const OUTPUT: &str = "starting benchmark...
Warm-up started for thread #0.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.

finished in 5.00s, 16702.40 req/s, 1.94MB/s
requests: 83512 total, 83520 started, 83512 done, 83500 succeeded, 10 failed, 2 errored, 0 timeout
status codes: 83500 2xx, 0 3xx, 0 4xx, 0 5xx
";

    #[test]
    fn the_summary_is_read_from_the_output() {
        let s = parse_summary(OUTPUT).unwrap();
        assert_eq!(s.elapsed, Duration::from_secs(5));
        assert!((s.req_per_s - 16_702.4).abs() < 1e-9);
        // 83,512 requests at 16,702.4 req/s: a 5.0 s main window (a 1 s warm-up would
        // show as `finished in 6.00s`).
        assert!((s.window().as_secs_f64() - 5.0).abs() < 1e-3, "{:?}", s.window());
        assert_eq!((s.done, s.succeeded, s.failed), (83_512, 83_500, 12));
        let ms = parse_summary(&OUTPUT.replace("5.00s", "830.50ms")).unwrap();
        assert_eq!(ms.elapsed, Duration::from_micros(830_500));
        assert!(parse_summary("connect: refused").is_err());
        assert!(parse_summary("finished in 5.00s, fast req/s\nrequests: 1 done").is_err());
    }

    #[test]
    fn the_log_gives_latencies_and_failures() {
        let log = "1764000000000000\t200\t480\n1764000000000100\t200\t520\n\
                   1764000000000200\t-1\t10000000\nnot a line\n";
        let stats = read_log(log);
        assert_eq!((stats.ok, stats.errors), (2, 1));
        assert!((0.47..=0.49).contains(&stats.quantile_ms(0.3)), "{}", stats.quantile_ms(0.3));
        assert_eq!(stats.error_kinds(), vec![("h2load status -1".to_owned(), 1)]);
    }
}
