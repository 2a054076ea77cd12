//! Running a server's executable the way its tests do: free loopback ports, the test
//! cluster's admin database, `--help`, a start that must be refused, and a clean stop on
//! SIGTERM with the logs it wrote.

use std::ffi::OsStr;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A loopback port free right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The admin database of the cluster `scripts/test` starts (`TEST_DATABASE_URL`).
pub fn test_database_url() -> String {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        panic!("TEST_DATABASE_URL is not set: run the tests through scripts/test");
    };
    url
}

/// `bin migrate` against a fresh database of the test cluster: exits 0 having applied
/// `schema`'s migrations, and a second run finds nothing to do and exits 0 again; against a
/// database nobody listens on it exits non-zero.
pub fn migrate_subcommand_migrates(bin: &str, schema: &str) {
    use sqlx::Connection as _;
    let admin = test_database_url();
    let Some((base, _)) = admin.rsplit_once('/') else { panic!("no database in {admin}") };
    let name = format!("migrate_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{base}/{name}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let admin_sql = |sql: String| {
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin connection");
            // Names made here from a UUID: nothing a caller supplies.
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("admin statement");
        });
    };
    admin_sql(format!("create database {name}"));
    let migrate = || {
        let out = Command::new(bin).arg("migrate").env("DATABASE_URL", &url).output();
        out.expect("run migrate")
    };
    let first = migrate();
    assert!(first.status.success(), "{bin} migrate: {first:?}");
    let applied: i64 = runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        let sql = format!("select count(*) from {schema}._sqlx_migrations where success");
        let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        query.fetch_one(&mut conn).await.expect("migration history")
    });
    assert!(applied > 0, "no migration recorded in {schema}._sqlx_migrations");
    let again = migrate();
    assert!(again.status.success(), "{bin} migrate, second run: {again:?}");
    admin_sql(format!("drop database {name} with (force)"));
    let down = offline(bin).arg("migrate").output().expect("run");
    assert!(!down.status.success(), "migrate against no database succeeded: {down:?}");
}

/// `bin --help` names the first-argument subcommands, `healthcheck` and `migrate`.
pub fn help_lists_the_subcommands(bin: &str) {
    let help = help(bin, [("DATABASE_URL", "postgres://app@db/shop")]);
    for word in ["healthcheck [--ready] [ADDR]", "migrate", "RUN_MIGRATIONS=false"] {
        assert!(help.contains(word), "{bin} --help does not mention {word}:\n{help}");
    }
}

/// What `bin --help` prints, with `env` set (it must succeed).
pub fn help(
    bin: &str,
    env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
) -> String {
    let out = Command::new(bin).arg("--help").envs(env).output().expect("run --help");
    assert!(out.status.success(), "{bin} --help: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `bin` set up to start against a database nobody listens on, with its listeners on port 0:
/// what a test of a refused start adds its settings to.
pub fn offline(bin: &str) -> Command {
    let mut command = Command::new(bin);
    command
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/none")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0");
    command
}

/// Runs `command`, which must refuse to start; returns what it printed on stderr.
pub fn refused(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(!out.status.success(), "started: {command:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// [`offline`] `bin` with `env`, which must refuse to start; returns what it printed on stderr.
pub fn refused_start(
    bin: &str,
    env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
) -> String {
    refused(offline(bin).envs(env))
}

/// A server executable a test started on free loopback ports against the test cluster's admin
/// database, its logs (stderr) on a pipe; killed if the test ends before [`Self::stop`].
pub struct Server {
    child: Option<Child>,
    grpc_port: u16,
}

impl Server {
    /// Starts `bin` with JSON logs on free gRPC and metrics ports against the admin database
    /// (never migrated: every test run shares it), then `env` on top.
    pub fn start(
        bin: &str,
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> Self {
        let database_url = test_database_url();
        let grpc_port = free_port().expect("a free port");
        let child = Command::new(bin)
            .env("DATABASE_URL", database_url)
            .env("GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port().expect("a free port")))
            // The admin database is shared by every test run: never migrate it.
            .env("RUN_MIGRATIONS", "false")
            .env("LOG_FORMAT", "json")
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        Self { child: Some(child), grpc_port }
    }

    /// `127.0.0.1:<port>` of its gRPC listener.
    pub fn grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// Waits until its gRPC port accepts connections (at most 30 s).
    pub fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.grpc_port)).is_err() {
            assert!(Instant::now() < deadline, "server never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns its status and everything it logged.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("a running child");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
        kill(pid, Signal::SIGTERM).expect("signal");
        let status = child.wait().expect("wait");
        let mut logs = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut logs);
        }
        (status, logs)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed before `stop` leaves no server behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `bin` with `env` (see [`Server::start`]), waits until it listens, sends SIGTERM and
/// expects exit 0, JSON logs only, and a log line about the shutdown.
pub fn assert_sigterm_stops_cleanly(
    bin: &str,
    env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
) {
    let server = Server::start(bin, env);
    server.wait_listening();
    let (status, logs) = server.stop();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(logs.contains("SIGTERM") || logs.contains("shutting down"), "{logs}");
    assert!(
        logs.lines().all(|l| l.trim().is_empty() || l.starts_with('{')),
        "LOG_FORMAT=json: {logs}"
    );
}
