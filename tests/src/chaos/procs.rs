//! The real server binaries as child processes: spawned from `target/<profile>/` (beside the
//! test binary), killed with SIGKILL, and started again on the same port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The executable `name` that cargo built beside the running test binary.
pub fn target_binary(name: &str) -> anyhow::Result<PathBuf> {
    // Test binaries live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("no target dir above {}", exe.display()))?;
    let bin = dir.join(name);
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build the servers first with `cargo build --bins` (same profile)",
        bin.display()
    );
    Ok(bin)
}

/// One server binary with its environment, run (and re-run) as a child process whose output
/// goes to `<log_dir>/<name>-<generation>.log`.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    bin: PathBuf,
    envs: Vec<(String, String)>,
    log_dir: PathBuf,
    child: Option<Child>,
    generation: u32,
    /// Exits nobody asked for (e.g. a panic), as "name-generation: status".
    unexpected_exits: Vec<String>,
}

impl Server {
    /// A server of binary `name` with `envs`; not started.
    pub fn new(
        name: &'static str,
        envs: Vec<(String, String)>,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            name,
            bin: target_binary(name)?,
            envs,
            log_dir: log_dir.to_owned(),
            child: None,
            generation: 0,
            unexpected_exits: Vec::new(),
        })
    }

    /// Starts the binary (a new generation, with its own log file).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        self.note_exit();
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        self.generation += 1;
        let log =
            File::create(self.log_dir.join(format!("{}-{}.log", self.name, self.generation)))?;
        let child = Command::new(&self.bin)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap; nothing when it is not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.note_exit();
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it unless it runs.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.note_exit();
        if self.child.is_none() { self.spawn() } else { Ok(()) }
    }

    /// How many times it was started.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Exits nobody asked for, noticed so far.
    pub fn unexpected_exits(&mut self) -> Vec<String> {
        self.note_exit();
        self.unexpected_exits.clone()
    }

    /// Records (and forgets) a child that exited by itself.
    fn note_exit(&mut self) {
        let exited = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(err)) => Some(format!("wait failed: {err}")),
            Some(Ok(None)) | None => None,
        };
        if let Some(status) = exited {
            self.child = None;
            self.unexpected_exits.push(format!(
                "{} (start #{}) exited by itself: {status}; log {}",
                self.name,
                self.generation,
                self.log_dir.join(format!("{}-{}.log", self.name, self.generation)).display()
            ));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
