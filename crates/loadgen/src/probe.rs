//! What a phase cost beyond latency: write transactions and WAL per operation (exact, from
//! PostgreSQL's xid counter and WAL position, cluster-wide), and the CPU the servers and
//! PostgreSQL's processes burned, so a result shows where the two cores went.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::procstat;

/// Where to look.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pool: Option<PgPool>,
    postmaster: Option<u32>,
    servers: Vec<u32>,
}

/// Counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    next_xid: Option<i64>,
    wal_bytes: Option<i64>,
    servers_cpu: Duration,
    postgres_cpu: Option<Duration>,
}

/// A phase's costs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Costs {
    /// Transactions that wrote (took an xid), per operation.
    pub write_tx_per_op: Option<f64>,
    /// WAL bytes per operation.
    pub wal_bytes_per_op: Option<f64>,
    /// Cores the server processes kept busy.
    pub server_cores: f64,
    /// Cores the PostgreSQL cluster (postmaster + backends + workers) kept busy.
    pub postgres_cores: Option<f64>,
}

impl Probe {
    /// A probe of the database behind `pool` (its postmaster found through a backend's
    /// parent) and of the `servers` processes.
    pub async fn new(pool: Option<PgPool>, servers: Vec<u32>) -> Self {
        let mut postmaster = None;
        if let Some(pool) = &pool
            && let Ok(backend) =
                sqlx::query_scalar::<_, i32>("select pg_backend_pid()").fetch_one(pool).await
        {
            // Only when the database runs on this machine (its backend is visible here).
            postmaster = u32::try_from(backend).ok().and_then(procstat::parent_of);
        }
        Self { pool, postmaster, servers }
    }

    /// Reads every counter now. Counters that cannot be read are left out.
    pub async fn snapshot(&self) -> Snapshot {
        let (mut next_xid, mut wal_bytes) = (None, None);
        if let Some(pool) = &self.pool
            && let Ok((xid, wal)) = sqlx::query_as::<_, (i64, i64)>(
                "select pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                        (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
            )
            .fetch_one(pool)
            .await
        {
            next_xid = Some(xid);
            wal_bytes = Some(wal);
        }
        Snapshot {
            at: Instant::now(),
            next_xid,
            wal_bytes,
            servers_cpu: self.servers.iter().filter_map(|&p| procstat::cpu_of(p)).sum(),
            postgres_cpu: self.postmaster.map(procstat::cpu_of_tree),
        }
    }
}

/// Costs between two snapshots spanning `calls` operations.
pub fn costs(before: &Snapshot, after: &Snapshot, calls: u64) -> Costs {
    let wall = after.at.saturating_duration_since(before.at).as_secs_f64();
    let per_op = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) if calls > 0 => Some((b - a) as f64 / calls as f64),
        _ => None,
    };
    let cores = |d: Duration| if wall > 0.0 { d.as_secs_f64() / wall } else { 0.0 };
    Costs {
        write_tx_per_op: per_op(before.next_xid, after.next_xid),
        wal_bytes_per_op: per_op(before.wal_bytes, after.wal_bytes),
        server_cores: cores(after.servers_cpu.saturating_sub(before.servers_cpu)),
        postgres_cores: match (before.postgres_cpu, after.postgres_cpu) {
            (Some(a), Some(b)) => Some(cores(b.saturating_sub(a))),
            _ => None,
        },
    }
}

/// The 1-minute load average (other work on the machine shows up here).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(at: Instant, xid: i64, wal: i64, servers_ms: u64, pg_ms: u64) -> Snapshot {
        Snapshot {
            at,
            next_xid: Some(xid),
            wal_bytes: Some(wal),
            servers_cpu: Duration::from_millis(servers_ms),
            postgres_cpu: Some(Duration::from_millis(pg_ms)),
        }
    }

    #[test]
    fn costs_are_per_operation_and_per_second() {
        let t0 = Instant::now();
        let a = snap(t0, 1_000, 10_000, 500, 1_000);
        let b = snap(t0 + Duration::from_secs(2), 3_000, 1_010_000, 1_500, 4_000);
        let c = costs(&a, &b, 1_000);
        assert_eq!(c.write_tx_per_op, Some(2.0));
        assert_eq!(c.wal_bytes_per_op, Some(1_000.0));
        assert!((c.server_cores - 0.5).abs() < 1e-9);
        assert!((c.postgres_cores.unwrap_or_default() - 1.5).abs() < 1e-9);
        let none = costs(&a, &b, 0);
        assert_eq!(none.write_tx_per_op, None);
    }

    #[test]
    fn load_average_reads() {
        assert!(load_average().is_some());
    }
}
