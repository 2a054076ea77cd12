//! The load generator's own CPU time, from `getrusage(RUSAGE_SELF)` (user + system, all
//! threads). It shares the machine's cores with the servers and PostgreSQL, so every result
//! says how much of them it took.

use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;

/// CPU time used so far by this process, and when it was read.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    cpu: Duration,
    at: Instant,
}

/// CPU used between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUse {
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

impl CpuUse {
    /// Cores kept busy on average (1.0 = one core fully used).
    pub fn cores(&self) -> f64 {
        if self.wall_s > 0.0 { self.cpu_s / self.wall_s } else { 0.0 }
    }
}

impl CpuSample {
    /// Reads this process's CPU time now.
    pub fn now() -> anyhow::Result<Self> {
        Self::of(UsageWho::RUSAGE_SELF)
    }

    /// Reads the CPU time of this process's children that ended and were waited for (an
    /// external load generator such as h2load, measured around its run).
    pub fn children_now() -> anyhow::Result<Self> {
        Self::of(UsageWho::RUSAGE_CHILDREN)
    }

    fn of(who: UsageWho) -> anyhow::Result<Self> {
        let usage = getrusage(who)?;
        let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
        Ok(Self { cpu: Duration::from_micros(u64::try_from(micros)?), at: Instant::now() })
    }

    /// CPU and wall time from `self` to `later`.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        CpuUse {
            cpu_s: later.cpu.saturating_sub(self.cpu).as_secs_f64(),
            wall_s: later.at.saturating_duration_since(self.at).as_secs_f64(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_shows_up_as_cpu() {
        let before = CpuSample::now().unwrap();
        let mut x: u64 = 1;
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = before.until(&CpuSample::now().unwrap());
        assert!(used.wall_s >= 0.05);
        assert!(used.cpu_s > 0.0, "{used:?}");
        assert!(used.cores() > 0.0 && used.cores() < 64.0, "{used:?}");
    }

    #[test]
    fn no_wall_time_is_no_cores() {
        assert_eq!(CpuUse { cpu_s: 1.0, wall_s: 0.0 }.cores(), 0.0);
        assert_eq!(CpuUse { cpu_s: 1.0, wall_s: 4.0 }.cores(), 0.25);
    }
}
