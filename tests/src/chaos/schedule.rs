//! The fault schedule: a pure function of the seed and the run's length, so the same seed
//! replays the same faults at the same offsets.
//!
//! Faults run on four lanes side by side; within a lane they run one after the other (each
//! heals before the next starts): processes (kill -9 of the order or inventory server, a
//! PostgreSQL restart or crash), the order -> inventory network (proxy), the payment stand-in,
//! and admin work: stock adjustments (not faults, but they exercise the stock invariant's
//! adjustments) and expiring every pending hold at once (a stall longer than a hold's life).

use std::fmt;
use std::time::Duration;

use super::rng::Rng;

/// Where a fault runs; lanes run concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    Processes,
    Network,
    Payment,
    Admin,
}

impl Lane {
    /// Every lane, in a fixed order (each draws from its own stream of the seed).
    pub const ALL: [Lane; 4] = [Lane::Processes, Lane::Network, Lane::Payment, Lane::Admin];

    fn stream(self) -> u64 {
        match self {
            Self::Processes => 1,
            Self::Network => 2,
            Self::Payment => 3,
            Self::Admin => 4,
        }
    }
}

/// One injected fault (or admin change) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the order server; start it again after `down`.
    KillOrder { down: Duration },
    /// SIGKILL the inventory server; start it again after `down`.
    KillInventory { down: Duration },
    /// Stop PostgreSQL (fast shutdown, or SIGKILL when `crash`); start it after `down`.
    RestartPostgres { down: Duration, crash: bool },
    /// Delay every order <-> inventory chunk by `ms` for `window`.
    ProxyDelay { ms: u64, window: Duration },
    /// Reset every open order -> inventory connection.
    ProxyCut,
    /// Cut, and refuse new order -> inventory connections for `window`.
    ProxyPartition { window: Duration },
    /// Delay every payment call by `ms` for `window`.
    PaymentLatency { ms: u64, window: Duration },
    /// The next `n` payment calls fail UNAVAILABLE without doing anything.
    PaymentFailNext { n: u32 },
    /// The next `n` payment calls are applied, then answer UNAVAILABLE (outcome unknown).
    PaymentFailAfterApply { n: u32 },
    /// Every payment call fails UNAVAILABLE for `window`.
    PaymentOutage { window: Duration },
    /// Restart the payment stand-in declining charges over `over_minor` for `window`.
    PaymentDeclines { over_minor: i64, window: Duration },
    /// AdjustStock of hot SKU number `hot` by `delta` (an admin change, not a fault).
    Adjust { hot: usize, delta: i32 },
    /// Moves the expiry of every PENDING hold to now, as if its order had stalled past the
    /// hold's lifetime (at least a minute, too long for a short run to reach by itself).
    ExpireHolds,
}

impl Fault {
    /// The name faults are counted under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KillOrder { .. } => "kill_order_server",
            Self::KillInventory { .. } => "kill_inventory_server",
            Self::RestartPostgres { crash: false, .. } => "restart_postgres",
            Self::RestartPostgres { crash: true, .. } => "crash_postgres",
            Self::ProxyDelay { .. } => "proxy_delay",
            Self::ProxyCut => "proxy_cut",
            Self::ProxyPartition { .. } => "proxy_partition",
            Self::PaymentLatency { .. } => "payment_latency",
            Self::PaymentFailNext { .. } => "payment_fail_next",
            Self::PaymentFailAfterApply { .. } => "payment_fail_after_apply",
            Self::PaymentOutage { .. } => "payment_outage",
            Self::PaymentDeclines { .. } => "payment_declines",
            Self::Adjust { .. } => "admin_adjust",
            Self::ExpireHolds => "expire_pending_holds",
        }
    }

    /// How long the fault lasts once applied (0 for one-shot faults).
    pub fn span(&self) -> Duration {
        match self {
            Self::KillOrder { down } | Self::KillInventory { down } => *down,
            Self::RestartPostgres { down, .. } => *down,
            Self::ProxyDelay { window, .. }
            | Self::ProxyPartition { window }
            | Self::PaymentLatency { window, .. }
            | Self::PaymentOutage { window }
            | Self::PaymentDeclines { window, .. } => *window,
            Self::ProxyCut
            | Self::PaymentFailNext { .. }
            | Self::PaymentFailAfterApply { .. }
            | Self::Adjust { .. }
            | Self::ExpireHolds => Duration::ZERO,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Self::KillOrder { down } => write!(f, "kill -9 order-service, down {} ms", ms(down)),
            Self::KillInventory { down } => {
                write!(f, "kill -9 inventory-service, down {} ms", ms(down))
            }
            Self::RestartPostgres { down, crash } => write!(
                f,
                "{} PostgreSQL, down {} ms",
                if *crash { "kill -9" } else { "stop (fast)" },
                ms(down)
            ),
            Self::ProxyDelay { ms: d, window } => {
                write!(f, "delay order->inventory {d} ms/chunk for {} ms", ms(window))
            }
            Self::ProxyCut => write!(f, "cut order->inventory connections"),
            Self::ProxyPartition { window } => {
                write!(f, "partition order->inventory for {} ms", ms(window))
            }
            Self::PaymentLatency { ms: d, window } => {
                write!(f, "payment latency {d} ms for {} ms", ms(window))
            }
            Self::PaymentFailNext { n } => write!(f, "payment fails the next {n} calls"),
            Self::PaymentFailAfterApply { n } => {
                write!(f, "payment applies then fails the next {n} calls")
            }
            Self::PaymentOutage { window } => write!(f, "payment outage for {} ms", ms(window)),
            Self::PaymentDeclines { over_minor, window } => {
                write!(f, "payment declines over {over_minor} for {} ms", ms(window))
            }
            Self::Adjust { hot, delta } => write!(f, "AdjustStock HOT-{hot} by {delta:+}"),
            Self::ExpireHolds => write!(f, "expire every PENDING hold now"),
        }
    }
}

/// A fault at its offset from the start of the fault phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub lane: Lane,
    pub at: Duration,
    pub fault: Fault,
}

fn ms(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.range(lo, hi))
}

fn draw(lane: Lane, rng: &mut Rng, hot_skus: usize) -> Fault {
    let roll = rng.range(0, 99);
    match lane {
        Lane::Processes => match roll {
            0..=34 => Fault::KillOrder { down: ms(rng, 0, 1_500) },
            35..=69 => Fault::KillInventory { down: ms(rng, 0, 1_500) },
            _ => Fault::RestartPostgres { down: ms(rng, 300, 3_000), crash: rng.chance(40) },
        },
        Lane::Network => match roll {
            0..=39 => Fault::ProxyDelay { ms: rng.range(20, 700), window: ms(rng, 1_000, 4_000) },
            40..=69 => Fault::ProxyCut,
            _ => Fault::ProxyPartition { window: ms(rng, 500, 3_000) },
        },
        Lane::Payment => match roll {
            0..=24 => {
                Fault::PaymentLatency { ms: rng.range(100, 1_800), window: ms(rng, 1_000, 4_000) }
            }
            25..=44 => Fault::PaymentFailNext { n: u32::try_from(rng.range(1, 6)).unwrap_or(1) },
            45..=64 => {
                Fault::PaymentFailAfterApply { n: u32::try_from(rng.range(1, 4)).unwrap_or(1) }
            }
            65..=79 => Fault::PaymentOutage { window: ms(rng, 500, 3_000) },
            _ => Fault::PaymentDeclines {
                over_minor: i64::try_from(rng.range(300, 2_000)).unwrap_or(1_000),
                window: ms(rng, 1_000, 4_000),
            },
        },
        Lane::Admin => match roll {
            0..=34 => Fault::ExpireHolds,
            _ => {
                let hot = rng.index(hot_skus);
                let delta = if rng.chance(80) {
                    i32::try_from(rng.range(5, 20)).unwrap_or(5)
                } else {
                    -i32::try_from(rng.range(1, 3)).unwrap_or(1)
                };
                Fault::Adjust { hot, delta }
            }
        },
    }
}

fn gap(lane: Lane, rng: &mut Rng) -> Duration {
    match lane {
        Lane::Processes => ms(rng, 2_000, 6_000),
        Lane::Network | Lane::Payment => ms(rng, 1_000, 4_000),
        Lane::Admin => ms(rng, 3_000, 9_000),
    }
}

/// Every fault of a run of `length` from `seed`, ordered by offset. Each lane starts after
/// a first gap, and a fault starts only after the previous one of its lane has healed.
pub fn plan(seed: u64, length: Duration, hot_skus: usize) -> Vec<Planned> {
    let mut all = Vec::new();
    for lane in Lane::ALL {
        let mut rng = Rng::derive(seed, lane.stream());
        let mut at = gap(lane, &mut rng);
        while at < length {
            let fault = draw(lane, &mut rng, hot_skus.max(1));
            let span = fault.span();
            all.push(Planned { lane, at, fault });
            at += span + gap(lane, &mut rng);
        }
    }
    all.sort_by_key(|p| (p.at, p.lane));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        let length = Duration::from_secs(60);
        assert_eq!(plan(7, length, 3), plan(7, length, 3));
        assert_ne!(plan(7, length, 3), plan(8, length, 3));
        let schedule = plan(7, length, 3);
        assert!(schedule.iter().all(|p| p.at < length));
        for lane in Lane::ALL {
            assert!(schedule.iter().any(|p| p.lane == lane), "{lane:?} has faults");
        }
    }
}
