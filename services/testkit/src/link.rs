//! A network link between two regions, in userspace: a TCP proxy that delays
//! every byte by a one-way latency and can be partitioned. The kernel here has
//! no netem; this stands in for it in tests and in the local multi-region rig
//! (`ordercast-link`).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Most bytes one direction of a connection holds in its delay line; past
/// that its reader waits, as a sender waits on a full TCP window. At 40 ms
/// that still lets 400 MB/s through.
const IN_FLIGHT: usize = 16 << 20;

/// Most bytes one read takes.
const READ_SIZE: usize = 64 << 10;

/// What a [`Link`] does with the connections through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Forwards, after the delay.
    Open,
    /// A partition that refuses: open connections are closed and new ones
    /// closed as soon as they are accepted, so clients fail at once rather
    /// than hang.
    Cut,
    /// A partition that hangs: connections stay open and nothing gets
    /// through, either way.
    Blackhole,
}

impl LinkState {
    /// `open`, `cut` or `blackhole`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Open => "open",
            LinkState::Cut => "cut",
            LinkState::Blackhole => "blackhole",
        }
    }
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TCP proxy from a local address to an upstream one that delays each
/// direction by a one-way latency and can be cut or blackholed. Every
/// accepted connection gets its own connection upstream.
///
/// Bytes read at `t` are written to the other side at `t + delay`, in order;
/// the delay does not limit throughput (up to 16 MiB wait in each direction's
/// delay line). A half-close is passed on after the
/// delay too. [`cut`](Link::cut) closes every connection on both sides and
/// closes new ones as they come; [`blackhole`](Link::blackhole) keeps them
/// open and drops whatever they send, without contacting upstream for new
/// ones. [`heal`](Link::heal) forwards new connections again and closes the
/// blackholed ones: the bytes they lost would leave their protocols out of
/// step, so their clients reconnect, as after a timeout.
///
/// Dropping the link stops it and closes its connections.
pub struct Link {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: DropGuard,
}

/// What the link's tasks share.
struct Shared {
    upstream: SocketAddr,
    /// Cancelled when the link is dropped; the parent of every `conns`.
    stop: CancellationToken,
    control: Mutex<Control>,
}

struct Control {
    state: LinkState,
    delay: Duration,
    /// Cancelling it closes every connection accepted since it was made.
    conns: CancellationToken,
}

impl Link {
    /// Binds `listen` (port 0 picks one, see [`addr`](Link::addr)) and
    /// forwards every connection to `upstream` with `delay` each way.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> io::Result<Link> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            upstream,
            control: Mutex::new(Control {
                state: LinkState::Open,
                delay,
                conns: stop.child_token(),
            }),
            stop: stop.clone(),
        });
        tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Link {
            addr,
            shared,
            _stop: stop.drop_guard(),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current one-way delay.
    pub fn delay(&self) -> Duration {
        self.shared.control().delay
    }

    /// Delays data read from now on by `delay` (data already on its way keeps
    /// its time).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.control().delay = delay;
    }

    /// Open, cut or blackholed.
    pub fn state(&self) -> LinkState {
        self.shared.control().state
    }

    /// Partitions it, refusing: closes every connection on both sides now,
    /// and each new one as soon as it is accepted.
    pub fn cut(&self) {
        let mut control = self.shared.control();
        control.state = LinkState::Cut;
        self.shared.close_all(&mut control);
    }

    /// Partitions it, hanging: connections stay open but nothing is
    /// forwarded, and new ones are accepted but never reach upstream.
    pub fn blackhole(&self) {
        self.shared.control().state = LinkState::Blackhole;
    }

    /// Forwards new connections again. Closes the connections that were open
    /// while it was blackholed (see [`Link`]).
    pub fn heal(&self) {
        let mut control = self.shared.control();
        if control.state == LinkState::Blackhole {
            self.shared.close_all(&mut control);
        }
        control.state = LinkState::Open;
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("state", &self.state())
            .field("delay", &self.delay())
            .finish()
    }
}

impl Shared {
    /// The control block; no code panics while holding it, so a poisoned
    /// lock still holds consistent values.
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> LinkState {
        self.control().state
    }

    /// Closes every open connection; later ones get a fresh token.
    fn close_all(&self, control: &mut Control) {
        control.conns.cancel();
        control.conns = self.stop.child_token();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            // Out of file descriptors, say: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // The state and the token are read together, so a cut that comes
        // after this closes the connection too.
        let (state, conns) = {
            let control = shared.control();
            (control.state, control.conns.clone())
        };
        match state {
            LinkState::Cut => drop(client),
            LinkState::Blackhole => {
                tokio::spawn(conns.run_until_cancelled_owned(swallow(client)));
            }
            LinkState::Open => {
                tokio::spawn(conns.run_until_cancelled_owned(proxy(client, shared.clone())));
            }
        }
    }
}

/// A blackholed new connection: reads and drops until the client leaves.
async fn swallow(mut client: TcpStream) {
    let mut buf = vec![0; READ_SIZE];
    while let Ok(1..) = client.read(&mut buf).await {}
}

/// One connection: connects upstream and pipes both ways until both
/// directions end or either fails; then both sockets close.
async fn proxy(client: TcpStream, shared: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    // Delay is the link's business, not Nagle's.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let _ = tokio::try_join!(
        pipe(client_read, upstream_write, &shared),
        pipe(upstream_read, client_write, &shared),
    );
}

/// A chunk on its way: its bytes (`None` for end of stream), when to write
/// them, and its share of [`IN_FLIGHT`].
type Chunk = (Instant, Option<Bytes>, tokio::sync::OwnedSemaphorePermit);

/// One direction: a reader that stamps what it reads with a deadline, and a
/// writer that writes each chunk at its deadline.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    shared: &Shared,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Chunk>();
    let budget = Arc::new(Semaphore::new(IN_FLIGHT));
    // Owns `tx`, so the writer sees the channel close when the reader ends.
    let read = async move {
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(READ_SIZE);
            let n = from.read_buf(&mut buf).await?;
            let (state, delay) = {
                let control = shared.control();
                (control.state, control.delay)
            };
            let deadline = Instant::now() + delay;
            let bytes = buf.split().freeze();
            if state == LinkState::Blackhole {
                // Dropped; an end of stream is not passed on either.
                if n == 0 {
                    return Ok(());
                }
                continue;
            }
            // n <= READ_SIZE, which fits.
            let permit = budget.clone().acquire_many_owned(n as u32).await;
            let permit = permit.map_err(io::Error::other)?;
            let chunk = (n > 0).then_some(bytes);
            let eof = chunk.is_none();
            if tx.send((deadline, chunk, permit)).is_err() || eof {
                return Ok(());
            }
        }
    };
    let write = async {
        while let Some((deadline, chunk, _permit)) = rx.recv().await {
            if deadline > Instant::now() {
                tokio::time::sleep_until(deadline).await;
            }
            if shared.state() == LinkState::Blackhole {
                continue;
            }
            match chunk {
                Some(bytes) => to.write_all(&bytes).await?,
                None => {
                    to.shutdown().await?;
                    break;
                }
            }
        }
        Ok::<_, io::Error>(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::eventually;

    const WAIT: Duration = Duration::from_secs(10);

    /// An echo server on 127.0.0.1 that counts the connections it accepted
    /// and reports each one that ended.
    struct Echo {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        closed: mpsc::UnboundedReceiver<()>,
    }

    async fn echo() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                    let _ = closed_tx.send(());
                });
            }
        });
        Echo {
            addr,
            accepted,
            closed,
        }
    }

    async fn link(to: &Echo, delay: Duration) -> Link {
        Link::start("127.0.0.1:0".parse().unwrap(), to.addr, delay)
            .await
            .unwrap()
    }

    /// Sends `msg` and waits for it to come back, reading as it writes.
    async fn round_trip(conn: &mut TcpStream, msg: &[u8]) {
        let (mut r, mut w) = conn.split();
        let mut back = vec![0; msg.len()];
        let (written, read) = tokio::time::timeout(WAIT, async {
            tokio::join!(w.write_all(msg), r.read_exact(&mut back))
        })
        .await
        .expect("echo came back");
        written.unwrap();
        read.unwrap();
        assert!(back == msg, "echo differs");
    }

    /// The connection ends (end of stream or reset) within [`WAIT`].
    async fn assert_closed(conn: &mut TcpStream) {
        let mut buf = [0; 64];
        match tokio::time::timeout(WAIT, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {}
            Ok(Ok(n)) => panic!("read {n} bytes from a connection that should be closed"),
            Err(_) => panic!("connection still open after {WAIT:?}"),
        }
    }

    /// Nothing arrives on `conn` for 200 ms.
    async fn assert_silent(conn: &mut TcpStream) {
        let mut buf = [0; 64];
        let read = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await;
        assert!(read.is_err(), "read completed: {read:?}");
    }

    #[tokio::test]
    async fn link_forwards_both_ways_and_passes_on_a_half_close() {
        let echo = echo().await;
        let link = link(&echo, Duration::ZERO).await;
        let mut conn = TcpStream::connect(link.addr()).await.unwrap();
        round_trip(&mut conn, b"hello").await;
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        round_trip(&mut conn, &big).await;

        // Our end of stream reaches the server, whose own comes back.
        conn.shutdown().await.unwrap();
        assert_closed(&mut conn).await;
        assert_eq!(link.state(), LinkState::Open);
    }

    #[tokio::test]
    async fn link_delays_each_direction() {
        let echo = echo().await;
        let delay = Duration::from_millis(100);
        let link = link(&echo, delay).await;
        let mut conn = TcpStream::connect(link.addr()).await.unwrap();
        let started = Instant::now();
        round_trip(&mut conn, b"ping").await;
        assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
        // Many reads in flight at once, in order.
        let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        round_trip(&mut conn, &big).await;

        let longer = Duration::from_millis(250);
        link.set_delay(longer);
        assert_eq!(link.delay(), longer);
        let started = Instant::now();
        round_trip(&mut conn, b"ping").await;
        assert!(started.elapsed() >= 2 * longer, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn link_cut_closes_both_sides_and_refuses_until_healed() {
        let mut echo = echo().await;
        let link = link(&echo, Duration::ZERO).await;
        let mut conn = TcpStream::connect(link.addr()).await.unwrap();
        round_trip(&mut conn, b"before").await;

        link.cut();
        assert_eq!(link.state(), LinkState::Cut);
        assert_closed(&mut conn).await;
        tokio::time::timeout(WAIT, echo.closed.recv())
            .await
            .expect("upstream side closed");

        let mut refused = TcpStream::connect(link.addr()).await.unwrap();
        assert_closed(&mut refused).await;
        assert_eq!(echo.accepted.load(Ordering::SeqCst), 1);

        link.heal();
        assert_eq!(link.state(), LinkState::Open);
        let mut conn = TcpStream::connect(link.addr()).await.unwrap();
        round_trip(&mut conn, b"after").await;
    }

    #[tokio::test]
    async fn link_blackhole_forwards_nothing_until_healed() {
        let echo = echo().await;
        let link = link(&echo, Duration::ZERO).await;
        let mut open = TcpStream::connect(link.addr()).await.unwrap();
        round_trip(&mut open, b"before").await;

        link.blackhole();
        assert_eq!(link.state(), LinkState::Blackhole);
        open.write_all(b"lost").await.unwrap();
        assert_silent(&mut open).await;

        let mut new = TcpStream::connect(link.addr()).await.unwrap();
        new.write_all(b"lost too").await.unwrap();
        assert_silent(&mut new).await;
        assert_eq!(
            echo.accepted.load(Ordering::SeqCst),
            1,
            "upstream contacted"
        );

        link.heal();
        assert_eq!(link.state(), LinkState::Open);
        // The blackholed connections are closed; new ones go through.
        assert_closed(&mut open).await;
        assert_closed(&mut new).await;
        let mut conn = TcpStream::connect(link.addr()).await.unwrap();
        round_trip(&mut conn, b"after").await;
    }

    #[tokio::test]
    async fn link_dropped_closes_its_connections_and_its_port() {
        let echo = echo().await;
        let link = link(&echo, Duration::ZERO).await;
        let addr = link.addr();
        let mut conn = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut conn, b"hello").await;

        drop(link);
        assert_closed(&mut conn).await;
        eventually("the port to refuse", WAIT, || async {
            TcpStream::connect(addr).await.is_err().then_some(())
        })
        .await;
    }
}
