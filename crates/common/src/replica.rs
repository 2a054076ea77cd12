//! Reads that may come from a replica: a second pool (`READ_DATABASE_URL`) used only while
//! the replica is known to be at most `READ_MAX_STALENESS_MS` behind the primary, else the
//! primary answers. Writes, and reads that must see their own writes, never come here.
//!
//! Staleness is measured, not guessed from timestamps: every tick the primary's WAL position
//! is sampled with the time, and the replica's replayed position says which samples it has
//! caught up with. The replica then holds everything the primary had committed at the newest
//! such sample, so a read now is at most `now - that sample` old. (An idle primary writes no
//! WAL, so its replica stays fresh; `pg_last_xact_replay_timestamp()` would read as growing
//! lag there.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::{register_counter_vec, register_int_gauge};
use crate::settings::DatabaseSettings;

/// Reads answered, by the pool that answered them.
pub static READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "db_reads_total",
        "Reads that may use a replica, by the pool that answered: replica or primary.",
        &["pool"],
    )
});

/// The replica's measured staleness (milliseconds; -1 while it cannot be measured).
pub static STALENESS_MS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "db_read_replica_staleness_milliseconds",
        "How far behind the primary the read replica is at most (-1: unknown, reads use the \
         primary).",
    )
});

/// How often the replica's position is compared with the primary's.
const TICK: Duration = Duration::from_millis(200);

/// The pool picked for one read.
#[derive(Debug, Clone, Copy)]
pub struct Picked<'a> {
    /// Where every statement of the read goes.
    pub pool: &'a PgPool,
    /// It is the replica (which may lag up to the bound), not the primary.
    pub replica: bool,
}

/// Picks the pool of each read.
#[derive(Debug, Clone)]
pub struct ReadPools {
    primary: PgPool,
    replica: Option<Arc<Replica>>,
}

#[derive(Debug)]
struct Replica {
    pool: PgPool,
    max_staleness: Duration,
    /// Set by the watcher: the last measurement was within `max_staleness`.
    fresh: AtomicBool,
    /// The last measurement, in milliseconds (u64::MAX: unknown).
    staleness_ms: AtomicU64,
}

impl ReadPools {
    /// The read pools of `primary`: with `READ_DATABASE_URL`, a lazy replica pool (the same
    /// pool settings) used within `READ_MAX_STALENESS_MS`; run its [`ReadPools::watch`].
    pub fn from_settings(
        settings: &DatabaseSettings,
        primary: PgPool,
    ) -> Result<Self, sqlx::Error> {
        Ok(match &settings.read_database_url {
            None => Self::primary_only(primary),
            Some(url) => Self::with_replica(
                primary,
                crate::db::connect_lazy_to(settings, url)?,
                Duration::from_millis(settings.read_max_staleness_ms),
            ),
        })
    }

    /// Every read on the primary (no replica configured).
    pub fn primary_only(primary: PgPool) -> Self {
        Self::init_metrics();
        Self { primary, replica: None }
    }

    /// Reads on `replica` while it is within `max_staleness`; [`ReadPools::watch`] must run
    /// for it to be used at all (until its first measurement, reads use the primary).
    pub fn with_replica(primary: PgPool, replica: PgPool, max_staleness: Duration) -> Self {
        Self::init_metrics();
        let replica = Replica {
            pool: replica,
            max_staleness,
            fresh: AtomicBool::new(false),
            staleness_ms: AtomicU64::new(u64::MAX),
        };
        Self { primary, replica: Some(Arc::new(replica)) }
    }

    fn init_metrics() {
        for pool in ["replica", "primary"] {
            READS.with_label_values(&[pool]);
        }
        STALENESS_MS.set(-1);
    }

    /// The pool one read should use now (the same for every statement of that read).
    pub fn pool(&self) -> &PgPool {
        self.pick().pool
    }

    /// The pool one read should use now, and whether it is the replica (a read that must
    /// not miss a row just written asks [`ReadPools::primary`] when the replica lacks it).
    pub fn pick(&self) -> Picked<'_> {
        match &self.replica {
            Some(r) if r.fresh.load(Ordering::Acquire) => {
                READS.with_label_values(&["replica"]).inc();
                Picked { pool: &r.pool, replica: true }
            }
            _ => self.primary(),
        }
    }

    /// The primary, for a read that must see the latest commit (counted as a primary read).
    pub fn primary(&self) -> Picked<'_> {
        READS.with_label_values(&["primary"]).inc();
        Picked { pool: &self.primary, replica: false }
    }

    /// The last measured staleness of the replica (None: none configured or not measured).
    pub fn staleness(&self) -> Option<Duration> {
        let ms = self.replica.as_ref()?.staleness_ms.load(Ordering::Acquire);
        (ms != u64::MAX).then(|| Duration::from_millis(ms))
    }

    /// Measures the replica's staleness every tick until `stop`; a replica that cannot be
    /// read (down, not a standby, failing over) counts as stale. Returns at once without a
    /// replica.
    pub async fn watch(self, stop: CancellationToken) {
        let Some(replica) = self.replica.clone() else { return };
        let mut samples = Samples::default();
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let staleness = measure(&self.primary, &replica.pool, &mut samples).await;
            let fresh = staleness.is_some_and(|s| s <= replica.max_staleness);
            if fresh != replica.fresh.swap(fresh, Ordering::AcqRel) {
                tracing::info!(fresh, staleness_ms = ?staleness.map(|s| s.as_millis()), "read replica {}", if fresh { "in use" } else { "not used: too stale or unreachable" });
            }
            let ms =
                staleness.map_or(u64::MAX, |s| u64::try_from(s.as_millis()).unwrap_or(u64::MAX));
            replica.staleness_ms.store(ms, Ordering::Release);
            STALENESS_MS.set(if ms == u64::MAX {
                -1
            } else {
                i64::try_from(ms).unwrap_or(i64::MAX)
            });
        }
    }
}

/// The primary's WAL positions with when they were read, oldest first.
#[derive(Debug, Default)]
struct Samples(VecDeque<(Instant, u64)>);

impl Samples {
    /// How long the replica at `replayed` is behind at most: the age of the newest sample
    /// it has replayed, or of the oldest kept when it has replayed none (a lower bound,
    /// stale anyway once samples reach back that far).
    fn staleness(&self, replayed: u64, now: Instant) -> Option<Duration> {
        let caught_up = self.0.iter().rev().find(|(_, lsn)| *lsn <= replayed);
        let (at, _) = caught_up.or(self.0.front())?;
        Some(now.saturating_duration_since(*at))
    }

    /// Records a sample, keeping only what a bound of a minute can need.
    fn push(&mut self, at: Instant, lsn: u64) {
        self.0.push_back((at, lsn));
        while self.0.front().is_some_and(|(t, _)| at.saturating_duration_since(*t) > KEEP) {
            self.0.pop_front();
        }
    }
}

/// How far back samples are kept (past it, a replica that caught up with none is stale).
const KEEP: Duration = Duration::from_secs(60);

/// One tick: samples the primary, then reads the replica's replayed position.
async fn measure(primary: &PgPool, replica: &PgPool, samples: &mut Samples) -> Option<Duration> {
    let now = Instant::now();
    match sqlx::query_scalar::<_, String>("select pg_current_wal_lsn()::text")
        .fetch_one(primary)
        .await
    {
        Ok(lsn) => samples.push(now, parse_lsn(&lsn)?),
        Err(err) => tracing::debug!(error = %err, "primary WAL position unreadable"),
    }
    let replayed: Option<String> = match sqlx::query_scalar("select pg_last_wal_replay_lsn()::text")
        .fetch_one(replica)
        .await
    {
        Ok(lsn) => lsn,
        Err(err) => {
            tracing::debug!(error = %err, "read replica unreachable");
            return None;
        }
    };
    // Null: the replica answers but is no standby (promoted, or misconfigured).
    samples.staleness(parse_lsn(&replayed?)?, Instant::now())
}

/// `16/B374D848` -> its 64-bit position.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_as_positions() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[test]
    fn staleness_is_the_age_of_the_newest_sample_replayed() {
        let start = Instant::now();
        let mut samples = Samples::default();
        for (ms, lsn) in [(0, 100), (200, 150), (400, 150), (600, 300)] {
            samples.push(start + Duration::from_millis(ms), lsn);
        }
        let now = start + Duration::from_millis(700);
        assert_eq!(samples.staleness(300, now), Some(Duration::from_millis(100)));
        // Caught up with the position of 400 ms (and 200 ms): 300 ms old.
        assert_eq!(samples.staleness(299, now), Some(Duration::from_millis(300)));
        // Behind every sample: at least as old as the oldest.
        assert_eq!(samples.staleness(50, now), Some(Duration::from_millis(700)));
        assert_eq!(Samples::default().staleness(50, now), None);
    }
}
