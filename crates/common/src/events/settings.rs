//! The event log's settings, flattened into both servers' settings.

use std::time::Duration;

/// `EVENTS_*`: how the relay and the watchers run.
#[derive(Debug, Clone, clap::Args)]
pub struct EventSettings {
    /// How often the relay moves committed outbox rows into the event log (milliseconds,
    /// at least 5): the most a watcher waits for a new event beyond its commit.
    #[arg(long, env = "EVENTS_RELAY_INTERVAL_MS", default_value_t = 50)]
    pub events_relay_interval_ms: u64,

    /// Most outbox rows one relay transaction numbers.
    #[arg(long, env = "EVENTS_RELAY_BATCH", default_value_t = 2_000)]
    pub events_relay_batch: u32,

    /// Most WatchEvents streams open at once on this server; one more is RESOURCE_EXHAUSTED.
    #[arg(long, env = "EVENTS_MAX_WATCHERS", default_value_t = 64)]
    pub events_max_watchers: u32,

    /// Events queued per watcher beyond what HTTP/2 flow control holds.
    #[arg(long, env = "EVENTS_BUFFER", default_value_t = 256)]
    pub events_buffer: u32,

    /// How long a watcher's queue may stay full before its stream ends RESOURCE_EXHAUSTED
    /// (the consumer resumes from its last position), milliseconds.
    #[arg(long, env = "EVENTS_SLOW_CONSUMER_TIMEOUT_MS", default_value_t = 30_000)]
    pub events_slow_consumer_timeout_ms: u64,

    /// Events are kept this many days after they were logged (0: forever); older positions
    /// are OUT_OF_RANGE to WatchEvents. Removed by the retention rounds (RETENTION_*).
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 35)]
    pub event_retention_days: u32,
}

impl EventSettings {
    /// The relay's pause between rounds.
    pub fn relay_interval(&self) -> Duration {
        Duration::from_millis(self.events_relay_interval_ms.max(5))
    }

    /// How long a full queue is tolerated.
    pub fn slow_consumer_timeout(&self) -> Duration {
        Duration::from_millis(self.events_slow_consumer_timeout_ms.max(1))
    }

    /// The keep period of events, if any.
    pub fn retention(&self) -> Option<Duration> {
        (self.event_retention_days > 0)
            .then(|| Duration::from_secs(u64::from(self.event_retention_days) * 86_400))
    }
}

impl Default for EventSettings {
    /// The documented defaults (as `--help` shows them).
    fn default() -> Self {
        Self {
            events_relay_interval_ms: 50,
            events_relay_batch: 2_000,
            events_max_watchers: 64,
            events_buffer: 256,
            events_slow_consumer_timeout_ms: 30_000,
            event_retention_days: 35,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        events: EventSettings,
    }

    #[test]
    fn the_default_is_what_help_documents() {
        let Ok(cli) = Cli::try_parse_from(["server"]) else { panic!("no defaults") };
        let parsed = format!("{:?}", cli.events);
        assert_eq!(parsed, format!("{:?}", EventSettings::default()));
    }
}
