//! The high-availability stack of `scripts/ha` (two PostgreSQL nodes under Patroni, etcd,
//! HAProxy in front) for failover tests: started on its own ports, reset when dropped.

use std::path::PathBuf;
use std::process::Command;

/// A running stack; dropping it stops it and deletes its directory.
pub struct HaStack {
    port: u16,
    sync: bool,
    /// Patroni's maximum_lag_on_failover, in bytes (None: the script's default).
    max_lag: Option<u64>,
    url: String,
}

impl HaStack {
    /// Starts a fresh stack whose HAProxy listens on `port` (the stack takes `port` to
    /// `port + 22`), with a synchronous standby when `sync`.
    pub async fn start(port: u16, sync: bool) -> anyhow::Result<Self> {
        Self::start_with_max_lag(port, sync, None).await
    }

    /// [`HaStack::start`], a standby further behind than `max_lag` bytes never promoted.
    pub async fn start_with_max_lag(
        port: u16,
        sync: bool,
        max_lag: Option<u64>,
    ) -> anyhow::Result<Self> {
        let mut stack = Self { port, sync, max_lag, url: String::new() };
        stack.run(&["reset"]).await?;
        stack.url = stack.run(&["start"]).await?.trim().to_owned();
        Ok(stack)
    }

    /// The primary's stable URL (HAProxy), database `postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The standbys' URL (HAProxy's replica port), database `postgres`.
    pub fn replica_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port + 3)
    }

    /// Turns Patroni's maintenance mode on or off: while on, Patroni leaves the nodes alone
    /// (it would otherwise resume a standby's paused replay at once).
    pub async fn maintenance(&self, on: bool) -> anyhow::Result<()> {
        self.run(&["maintenance", if on { "on" } else { "off" }]).await.map(drop)
    }

    /// SIGKILLs the primary node (Patroni and its postmaster); returns its name.
    pub async fn kill_primary(&self) -> anyhow::Result<String> {
        Ok(self.run(&["kill-primary"]).await?.trim().to_owned())
    }

    /// Waits until HAProxy routes to a primary again; returns its node's name.
    pub async fn wait_primary(&self) -> anyhow::Result<String> {
        Ok(self.run(&["wait-primary"]).await?.trim().to_owned())
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.command(args);
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        anyhow::ensure!(
            output.status.success(),
            "scripts/ha {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    fn command(&self, args: &[&str]) -> Command {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = Command::new("bash");
        command
            .arg(root.join("scripts/ha"))
            .args(args)
            .env("HA_PORT", self.port.to_string())
            .env("HA_SYNC", if self.sync { "on" } else { "off" });
        if let Some(bytes) = self.max_lag {
            command.env("HA_MAX_LAG", bytes.to_string());
        }
        command
    }
}

impl Drop for HaStack {
    fn drop(&mut self) {
        let _ = self.command(&["reset"]).output();
    }
}
