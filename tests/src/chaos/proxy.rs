//! A fault-injecting TCP proxy for the order -> inventory connection: pass traffic through,
//! delay every chunk, cut every open connection, or refuse new ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the proxy waits for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the proxy does with traffic, as the scheduler sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward everything at once.
    Pass,
    /// Hold every forwarded chunk this many milliseconds.
    Delay(u64),
    /// Reset every new connection at once (open ones keep going).
    Refuse,
}

#[derive(Debug)]
struct State {
    target: SocketAddr,
    delay_ms: AtomicU64,
    refuse: AtomicBool,
    /// Bumped by [`Proxy::cut`]; every open connection watches it.
    cut: watch::Sender<u64>,
    open: AtomicU64,
    accepted: AtomicU64,
}

/// A running proxy on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            target,
            delay_ms: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            cut: watch::channel(0).0,
            open: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Self { addr, state, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode for new traffic (a delay applies to open connections too).
    pub fn set_mode(&self, mode: ProxyMode) {
        let (delay, refuse) = match mode {
            ProxyMode::Pass => (0, false),
            ProxyMode::Delay(ms) => (ms, false),
            ProxyMode::Refuse => (0, true),
        };
        self.state.delay_ms.store(delay, Ordering::SeqCst);
        self.state.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Resets every open connection; returns how many were open.
    pub fn cut(&self) -> u64 {
        let open = self.state.open.load(Ordering::SeqCst);
        self.state.cut.send_modify(|generation| *generation += 1);
        open
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.state.cut.send_modify(|generation| *generation += 1);
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        if state.refuse.load(Ordering::SeqCst) {
            reset(&client);
            continue;
        }
        tokio::spawn(serve(client, Arc::clone(&state)));
    }
}

/// Drops with RST instead of FIN: what a peer sees from a cut connection.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

async fn serve(mut client: TcpStream, state: Arc<State>) {
    let mut cut = state.cut.subscribe();
    cut.mark_unchanged();
    let mut upstream =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(state.target)).await {
            Ok(Ok(stream)) => stream,
            _ => {
                reset(&client);
                return;
            }
        };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    state.open.fetch_add(1, Ordering::SeqCst);
    let was_cut = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        tokio::select! {
            () = pump(&mut client_read, &mut upstream_write, &state) => false,
            () = pump(&mut upstream_read, &mut client_write, &state) => false,
            _ = cut.changed() => true,
        }
    };
    state.open.fetch_sub(1, Ordering::SeqCst);
    if was_cut {
        reset(&client);
        reset(&upstream);
    }
}

/// Copies `from` to `to` chunk by chunk, holding each chunk for the current delay, until
/// either side closes or fails.
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    state: &State,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Ok(addr)
    }

    async fn roundtrip(addr: SocketAddr) -> anyhow::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn passes_delays_refuses_and_cuts() -> anyhow::Result<()> {
        let proxy = Proxy::start(echo_server().await?).await?;
        assert_eq!(roundtrip(proxy.addr()).await?, b"ping");

        proxy.set_mode(ProxyMode::Delay(150));
        let started = std::time::Instant::now();
        assert_eq!(roundtrip(proxy.addr()).await?, b"ping");
        assert!(started.elapsed() >= Duration::from_millis(300), "both directions delayed");

        proxy.set_mode(ProxyMode::Refuse);
        assert!(roundtrip(proxy.addr()).await.is_err(), "new connections are reset");

        proxy.set_mode(ProxyMode::Pass);
        let mut open = TcpStream::connect(proxy.addr()).await?;
        open.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await?;
        assert_eq!(proxy.cut(), 1);
        let mut rest = Vec::new();
        let after_cut = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = open.write_all(b"more").await;
            open.read_to_end(&mut rest).await
        })
        .await?;
        assert!(after_cut.is_err() || rest.is_empty(), "the cut connection is closed");
        Ok(())
    }
}
