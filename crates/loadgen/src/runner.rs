//! The two drivers.
//!
//! - Closed loop: `workers` tasks each send the next request as soon as the previous one
//!   answered, for a warm-up and then a measured window. It finds the maximum throughput at
//!   that concurrency; its latencies are service times under saturation.
//! - Open loop: requests start at a constant rate whatever the server does. A dedicated
//!   scheduler thread sleeps until each request's intended start (OS timer, ~50 us slack
//!   rather than the async runtime's 1 ms tick), then hands it to the runtime; latency runs
//!   from the intended start, so a server that falls behind is charged for every request
//!   that queued behind it (no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastrand::Rng;
use tokio::sync::Semaphore;

use crate::cpu::{CpuSample, CpuUse};
use crate::histogram::{Outcome, Stats};
use crate::lanes;
use crate::rate::{Schedule, latency_from_intended};
use crate::scenarios::Workload;

/// What a driver measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub stats: Stats,
    /// The window the throughput is computed over.
    pub window: Duration,
    /// The load generator's CPU over the whole run (warm-up included).
    pub cpu: CpuUse,
    /// Open loop only: how late the scheduler handed requests over (included in latency).
    pub dispatch_lag: Option<Stats>,
    /// Every call made, warm-up included (for per-operation costs over the whole run).
    pub calls: u64,
}

impl Measured {
    /// Operations per second that completed without error.
    pub fn ops_per_s(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 { (self.stats.ok + self.stats.refused) as f64 / secs } else { 0.0 }
    }
}

/// Closed-loop settings.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    pub workers: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub seed: u64,
}

/// Runs `work` back to back on `workers` tasks; records operations that start inside the
/// measured window (after the warm-up).
pub async fn closed_loop<W: Workload>(work: Arc<W>, cfg: ClosedLoop) -> anyhow::Result<Measured> {
    let cpu0 = CpuSample::now()?;
    let measure_from = Instant::now() + cfg.warmup;
    let end = measure_from + cfg.window;
    let mut tasks = Vec::with_capacity(cfg.workers.max(1));
    for worker in 0..cfg.workers.max(1) {
        let work = Arc::clone(&work);
        // On the lane of the connection it uses (slot `worker`).
        tasks.push(lanes::spawn(worker, async move {
            let mut rng = Rng::with_seed(cfg.seed.wrapping_add(worker as u64));
            let mut stats = Stats::new();
            let mut calls = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let outcome = work.call(worker, &mut rng).await;
                calls += 1;
                if t0 >= measure_from {
                    stats.record(outcome, t0.elapsed());
                }
            }
            (stats, calls)
        }));
    }
    let mut stats = Stats::new();
    let mut calls = 0;
    for task in tasks {
        let (s, n) = task.await?;
        stats.merge(&s);
        calls += n;
    }
    let cpu = cpu0.until(&CpuSample::now()?);
    Ok(Measured { stats, window: cfg.window, cpu, dispatch_lag: None, calls })
}

/// Open-loop settings.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    pub rate_per_s: f64,
    pub window: Duration,
    /// Most requests in flight at once; past it the scheduler waits (and the wait counts).
    pub max_in_flight: usize,
    /// Connections to spread requests over.
    pub slots: usize,
    pub seed: u64,
}

/// The stats behind `m`, even if a task panicked while holding the lock (its counts are
/// still the best there is).
fn lock(m: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts `work` at a constant rate for the window and waits for every request to answer.
pub async fn open_loop<W: Workload>(work: Arc<W>, cfg: OpenLoop) -> anyhow::Result<Measured> {
    let schedule = Schedule::new(cfg.rate_per_s, cfg.window)?;
    let handle = tokio::runtime::Handle::current();
    // Each request records its own outcome under a lock that is almost never contended: no
    // channel and no collector task to wake per request (that wake-up cost as much CPU as
    // the call itself at a few thousand calls per second).
    let stats = Arc::new(Mutex::new(Stats::new()));
    let cap = cfg.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
    let in_flight = Arc::new(Semaphore::new(cap));

    let cpu0 = CpuSample::now()?;
    let start = Instant::now();
    let (sched_stats, sched_flight) = (Arc::clone(&stats), Arc::clone(&in_flight));
    // Request i runs on the lane of its connection (slot i % slots).
    let slots = cfg.slots.max(1);
    let lane_of: Vec<tokio::runtime::Handle> =
        (0..slots).map(|slot| lanes::handle(slot, &handle)).collect();
    let scheduler = std::thread::Builder::new().name("open-loop".into()).spawn(move || {
        let mut lag = Stats::new();
        for i in 0..schedule.total() {
            let intended = schedule.intended(start, i);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            let Ok(permit) = handle.block_on(Arc::clone(&sched_flight).acquire_owned()) else {
                break;
            };
            lag.record(Outcome::Ok, latency_from_intended(intended, Instant::now()));
            let mut rng = Rng::with_seed(cfg.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let slot = i as usize % slots;
            let call = work.call(slot, &mut rng);
            let stats = Arc::clone(&sched_stats);
            lane_of[slot].spawn(async move {
                let outcome = call.await;
                let latency = latency_from_intended(intended, Instant::now());
                lock(&stats).record(outcome, latency);
                drop(permit);
            });
        }
        lag
    })?;
    let lag = tokio::task::spawn_blocking(move || scheduler.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the open-loop scheduler thread panicked"))?;
    // Every request holds a permit until it recorded its outcome: all permits back = all done.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    drop(in_flight.acquire_many(all).await?);
    let stats = std::mem::take(&mut *lock(&stats));
    let window = start.elapsed().max(cfg.window);
    let cpu = cpu0.until(&CpuSample::now()?);
    let calls = stats.count();
    Ok(Measured { stats, window, cpu, dispatch_lag: Some(lag), calls })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Answers after a fixed delay; counts calls.
    struct Sleepy {
        delay: Duration,
        calls: AtomicU64,
    }

    impl Workload for Sleepy {
        fn call(
            &self,
            _slot: usize,
            _rng: &mut Rng,
        ) -> impl Future<Output = Outcome> + Send + 'static {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let delay = self.delay;
            async move {
                tokio::time::sleep(delay).await;
                Outcome::Ok
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_sends_the_scheduled_count() {
        let work = Arc::new(Sleepy { delay: Duration::from_millis(2), calls: AtomicU64::new(0) });
        let cfg = OpenLoop {
            rate_per_s: 200.0,
            window: Duration::from_millis(500),
            max_in_flight: 64,
            slots: 2,
            seed: 1,
        };
        let m = open_loop(Arc::clone(&work), cfg).await.unwrap();
        assert_eq!(work.calls.load(Ordering::Relaxed), 100);
        assert_eq!(m.stats.count(), 100);
        assert!(m.stats.quantile_ms(0.5) >= 2.0);
        assert!(m.dispatch_lag.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_charges_queueing_to_latency() {
        // One request in flight at a time, each taking 20 ms, scheduled every 5 ms: the
        // backlog grows, and latency from the intended start grows with it.
        let work = Arc::new(Sleepy { delay: Duration::from_millis(20), calls: AtomicU64::new(0) });
        let cfg = OpenLoop {
            rate_per_s: 200.0,
            window: Duration::from_millis(200),
            max_in_flight: 1,
            slots: 1,
            seed: 1,
        };
        let m = open_loop(work, cfg).await.unwrap();
        assert_eq!(m.stats.count(), 40);
        // The last request was meant to start at 195 ms but waited for 39 before it.
        assert!(m.stats.quantile_ms(1.0) > 500.0, "{}", m.stats.quantile_ms(1.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_keeps_workers_busy() {
        let work = Arc::new(Sleepy { delay: Duration::from_millis(5), calls: AtomicU64::new(0) });
        let cfg = ClosedLoop {
            workers: 4,
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(300),
            seed: 1,
        };
        let m = closed_loop(work, cfg).await.unwrap();
        // 4 workers, ~5 ms each: ~800/s at most; timer granularity makes it less.
        let ops = m.ops_per_s();
        assert!((100.0..=850.0).contains(&ops), "{ops}");
        assert_eq!(m.stats.errors, 0);
    }
}
