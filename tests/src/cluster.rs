//! A private, throwaway PostgreSQL cluster per test, for tests that stop, restart or kill the
//! database under running servers (the shared cluster of `scripts/test` must stay up).
//!
//! The cluster lives in a fresh directory under `/tmp`, listens on a free loopback port and
//! is deleted when the [`Cluster`] is dropped. As root it runs as the `postgres` system user
//! (initdb refuses root), like `scripts/pg`; binaries are found like `scripts/pg` finds them:
//! `PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use test_support::binary::free_port;
use tokio::process::Command;

use crate::TestDb;

/// The system user that owns the cluster when the tests run as root.
const OS_OWNER: &str = "postgres";

/// A running (or deliberately stopped) private PostgreSQL cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run the server binaries as this user (Some when we are root).
    owner: Option<&'static str>,
}

impl Cluster {
    /// initdb in a new directory under `/tmp`, then start the cluster on a free port.
    pub async fn create() -> anyhow::Result<Self> {
        let bin = find_bindir()?;
        let owner = is_root().then_some(OS_OWNER);
        // Not $TMPDIR: the owner must be able to reach it, and the socket path must stay short.
        let dir = PathBuf::from("/tmp").join(format!("pg-{}", uuid::Uuid::new_v4().simple()));
        let cluster = Self {
            data: dir.join("data"),
            log: dir.join("server.log"),
            dir,
            bin,
            port: free_port()?,
            owner,
        };
        // Created by the owner, so the owner can write in it (/tmp is world-writable).
        cluster.run_owner("mkdir", &["-p".as_ref(), cluster.dir.join("run").as_os_str()]).await?;
        let initdb = cluster.bin.join("initdb");
        let data = cluster.data.as_os_str();
        let args: [&std::ffi::OsStr; 8] = [
            "-D".as_ref(),
            data,
            "-U".as_ref(),
            "postgres".as_ref(),
            "-A".as_ref(),
            "trust".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--locale=C".as_ref(),
        ];
        cluster.run_owner(&initdb, &args).await?;
        cluster.write_conf()?;
        cluster.start().await?;
        Ok(cluster)
    }

    /// The loopback port the cluster listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log (every start appends to it).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A URL of database `database` as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh database in the cluster (running) for one test.
    pub async fn create_database(&self) -> anyhow::Result<TestDb> {
        let admin = PgConnectOptions::from_str(&self.url("postgres"))?;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await?;
        // The name is ours (a UUID), never input, so formatting it into DDL is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let options = admin.database(&name);
        let url = options.to_url_lossy().to_string();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(TestDb { name, url, pool })
    }

    /// Starts the cluster on its port and data and waits until it accepts connections.
    /// Retries for a while: after [`Self::kill`] the old backends may still hold the shared
    /// memory for a moment.
    pub async fn start(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let result = self
                .pg_ctl(&[
                    "-l".as_ref(),
                    self.log.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "30".as_ref(),
                    "start".as_ref(),
                ])
                .await;
            match result {
                Ok(()) => return Ok(()),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => {
                    return Err(err.context(format!(
                        "starting PostgreSQL on port {} (log: {})",
                        self.port,
                        self.log.display()
                    )));
                }
            }
        }
    }

    /// Fast shutdown (sessions are terminated, the data is consistent); waits for it.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl(&[
            "-m".as_ref(),
            "fast".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            "60".as_ref(),
            "stop".as_ref(),
        ])
        .await
    }

    /// SIGKILL to the postmaster and every process it forked: a crash, recovered from the
    /// WAL at the next [`Self::start`].
    pub async fn kill(&self) -> anyhow::Result<()> {
        let Some(pid) = self.postmaster_pid() else {
            anyhow::bail!("PostgreSQL is not running (no postmaster.pid)");
        };
        // All at once, as a machine crash would; its children are found before the kill
        // (afterwards they are reparented). Backends that exited meanwhile make `kill` fail
        // for them only, so its status says nothing: wait for the postmaster to be gone.
        let mut victims = children_of(pid);
        victims.push(pid);
        let _ = send_kill(&victims).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while is_alive(pid) {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "PostgreSQL (pid {pid}) survived SIGKILL"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Whether the postmaster is alive.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(is_alive)
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn write_conf(&self) -> anyhow::Result<()> {
        use std::io::Write;
        // Appended as root, the file keeps its owner; later settings win.
        let mut conf =
            std::fs::OpenOptions::new().append(true).open(self.data.join("postgresql.conf"))?;
        let run = self.dir.join("run");
        write!(
            conf,
            "\n# system-tests private cluster\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{run}'\n\
             max_connections = 200\n\
             shared_buffers = 32MB\n\
             # Only an OS crash loses unsynced data; a killed server recovers from the WAL.\n\
             fsync = off\n\
             full_page_writes = off\n\
             synchronous_commit = on\n\
             logging_collector = off\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n\
             timezone = 'UTC'\n",
            port = self.port,
            run = run.display(),
        )?;
        Ok(())
    }

    async fn pg_ctl(&self, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
        let mut all: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), self.data.as_os_str()];
        all.extend_from_slice(args);
        self.run_owner(&self.bin.join("pg_ctl"), &all).await
    }

    /// Runs `program args` as the cluster owner; fails with its output when it fails.
    async fn run_owner(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&std::ffi::OsStr],
    ) -> anyhow::Result<()> {
        let mut cmd = match self.owner {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program.as_ref());
                cmd
            }
            None => Command::new(program.as_ref()),
        };
        // The owner may not be allowed into our working directory.
        cmd.args(args).current_dir("/").stdin(Stdio::null());
        let out = cmd.output().await?;
        anyhow::ensure!(
            out.status.success(),
            "{} {:?} failed ({}): {}{}",
            program.as_ref().to_string_lossy(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.is_running() {
            let pg_ctl = self.bin.join("pg_ctl");
            let mut cmd = match self.owner {
                Some(user) => {
                    let mut cmd = std::process::Command::new("runuser");
                    cmd.args(["-u", user, "--"]).arg(&pg_ctl);
                    cmd
                }
                None => std::process::Command::new(&pg_ctl),
            };
            let _ = cmd
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "20", "stop"])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILL to `pids` (as root, or as their owner).
async fn send_kill(pids: &[u32]) -> std::io::Result<std::process::ExitStatus> {
    if pids.is_empty() {
        return Ok(std::process::ExitStatus::default());
    }
    Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
}

/// Whether this process runs as root (the owner of `/proc/self` is our effective uid).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn has_initdb(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

/// The PostgreSQL bin directory, found as `scripts/pg` finds it.
fn find_bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        anyhow::ensure!(has_initdb(&dir), "PG_BIN={} has no initdb/pg_ctl", dir.display());
        return Ok(dir);
    }
    if let Ok(out) = std::process::Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&dir) {
            return Ok(dir);
        }
    }
    // Newest major version first.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_string_lossy().split('.').next()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_initdb(bin))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow::anyhow!(
            "PostgreSQL server binaries not found (PG_BIN, pg_config --bindir, \
             /usr/lib/postgresql/*/bin); `scripts/pg bindir` installs them"
        )
    })
}

/// The field after the command name in `/proc/<pid>/stat`: (state, ppid).
fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Alive and not a zombie.
fn is_alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The live processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| proc_state(child).is_some_and(|(s, ppid)| ppid == pid && s != 'Z'))
        .collect()
}
