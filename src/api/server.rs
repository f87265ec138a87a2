//! The HTTP server's accept loop: every socket gets time limits, and the number of sockets has a
//! cap below the process's open-file limit, so idle or trickling connections can neither pin
//! memory nor use up the descriptors that intake, the store and the modem need.
//!
//! - **Header timeout** (`http.header_timeout`): hyper closes a connection whose request head has
//!   not fully arrived in time. Its clock starts whenever the server waits for a head, so it is
//!   also the idle keep-alive limit between requests.
//! - **Body timeout** (`http.body_timeout`): the body must be complete this long after its head
//!   ([`TimedBody`]); a late body fails the read and the handler answers 4xx. Writing the answer
//!   is bounded by the same time ([`WriteTimeout`]), against clients that never read.
//! - **Connection cap** (`http.max_connections`): at the cap, a new connection takes the slot of
//!   a connection that has no request in hand (idle, or still sending its head or body), which is
//!   closed: the oldest one of the client address that holds the most such connections. A
//!   slowloris flood from one address therefore displaces only itself, even while its
//!   connections are younger than a real sender's, and a sender on another address (the
//!   Alertmanager host, a reverse proxy) keeps its connections. A flood from the sender's own
//!   address can still close the sender's connection before its head is read; a sender retries
//!   such a reset. Only when every slot is serving a complete request is the new connection
//!   closed at once. Either is logged (at most every few seconds) and counted in `/metrics`.
//!
//! axum's own `serve` has none of these knobs; the router is the same.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// Descriptors kept back from the connection cap for everything else the daemon opens: SQLite
/// and its WAL, the modem, the UDP socket, logs, SMTP and outbound connections.
pub const RESERVED_FDS: usize = 128;

/// How often a full-cap warning may be logged; the counts in between go into the next line.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The time limits and the connection cap, from `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The limits `[http]` asks for.
    pub fn from_config(http: &HttpConfig) -> Limits {
        Limits {
            header_timeout: http.header_timeout,
            body_timeout: http.body_timeout,
            max_connections: http.max_connections,
        }
    }

    /// Makes room for the connection cap in the open-file limit: raises the soft limit towards
    /// the hard one if needed, and if that is still too small lowers the cap (with a warning)
    /// so that the cap is always reached before the descriptors run out.
    pub fn fit_open_file_limit(mut self) -> Limits {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let want = (self.max_connections + RESERVED_FDS) as u64;
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return self;
        };
        let mut soft = soft;
        if soft < want {
            let raised = want.min(hard);
            if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
                soft = raised;
            }
        }
        let room = usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(RESERVED_FDS);
        if room < self.max_connections {
            tracing::warn!(
                max_connections = self.max_connections,
                open_file_limit = soft,
                using = room.max(1),
                "http.max_connections does not fit the open-file limit (LimitNOFILE); using less"
            );
            self.max_connections = room.max(1);
        }
        self
    }
}

/// Where a connection stands, for choosing which one to close at the cap: no request in hand
/// (new, sending its head, or idle between requests). Closed first.
const WAITING: u8 = 0;
/// A request head has arrived and its body is on the way. Closed only when no connection is
/// [`WAITING`]: a real sender sends its head at once, so this protects it from a flood of
/// half-sent heads.
const READING_BODY: u8 = 1;
/// A complete write (or heartbeat ping) is being answered: never closed for room.
const BUSY: u8 = 2;
const EVICTED: u8 = 3;
/// A complete read (a GET or HEAD that changes nothing) is being answered. Closed only when no
/// connection is [`WAITING`] or [`READING_BODY`]: dropping it loses nothing but an answer its
/// client asks for again, whereas a flood of slow reads (a thousand connections asking for
/// `/metrics` and never reading the answers) that could not be closed would lock every real
/// sender out.
const ANSWERING_READ: u8 = 4;

/// One connection's shared state: its phase, its client's address and the signal that closes it.
#[derive(Debug)]
struct ConnState {
    phase: AtomicU8,
    client: IpAddr,
    evict: CancellationToken,
}

impl ConnState {
    fn new(client: IpAddr) -> ConnState {
        ConnState {
            phase: AtomicU8::new(WAITING),
            client,
            evict: CancellationToken::new(),
        }
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn advance(&self, from: u8, to: u8) -> bool {
        self.phase
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A request head has arrived; its body (if any) is to come.
    fn head_arrived(&self) {
        self.advance(WAITING, READING_BODY);
    }

    /// The request in hand is complete (head and whole body): it will be answered.
    fn request_complete(&self) {
        if !self.advance(READING_BODY, BUSY) {
            self.advance(WAITING, BUSY);
        }
    }

    /// The request in hand is a complete read: it will be answered, and may be dropped for room.
    fn read_complete(&self) {
        self.advance(WAITING, ANSWERING_READ);
    }

    /// The answer is out; the connection waits for the client again.
    fn answered(&self) {
        for from in [BUSY, ANSWERING_READ, READING_BODY] {
            if self.advance(from, WAITING) {
                return;
            }
        }
    }

    /// Claims the connection for closing if it is in `phase`.
    fn try_evict(&self, phase: u8) -> bool {
        let won = self.advance(phase, EVICTED);
        if won {
            self.evict.cancel();
        }
        won
    }
}

/// The open connections, oldest first. Owned by the accept loop and shared only with the
/// connections' [`Slot`]s (which remove themselves), so the lock is never held across an await.
struct Slots {
    max: usize,
    metrics: Metrics,
    inner: Mutex<SlotsInner>,
}

#[derive(Default)]
struct SlotsInner {
    next_id: u64,
    open: Open,
    evicted_since_warning: u64,
    refused_since_warning: u64,
    last_warning: Option<Instant>,
}

/// A connection's place among the open ones; gives it back when dropped.
struct Slot {
    id: u64,
    state: Arc<ConnState>,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.open.remove(self.id);
        self.slots.metrics.http_connections_open(inner.open.len());
    }
}

/// What [`Slots::admit`] did to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Free,
    Evicted,
    Refused,
}

impl Slots {
    fn new(max: usize, metrics: Metrics) -> Slots {
        Slots {
            max,
            metrics,
            inner: Mutex::new(SlotsInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotsInner> {
        // A panic while holding this lock cannot leave the map half-changed (each change is one
        // call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `client`: a free one, or the one of a connection without
    /// a request head (closed now), else of one still sending a body, else of one answering a
    /// read, or none when every connection is answering a write. Among the candidates in a phase, the victim is the
    /// oldest connection of the address holding the most connections (see [`Open::victim`]).
    fn admit(self: &Arc<Self>, client: IpAddr) -> (Option<Slot>, Admission) {
        let mut inner = self.lock();
        let mut admission = Admission::Free;
        if inner.open.len() >= self.max {
            let evicted = [WAITING, READING_BODY, ANSWERING_READ]
                .into_iter()
                .find_map(|phase| {
                    // A candidate may move on (its head arrives) between the choice and the
                    // eviction; choose again then. Each retry sees one candidate fewer.
                    loop {
                        let (id, state) = inner.open.victim(phase)?;
                        if state.try_evict(phase) {
                            return Some(id);
                        }
                    }
                });
            match evicted {
                Some(id) => {
                    inner.open.remove(id);
                    inner.evicted_since_warning += 1;
                    self.metrics.http_connection_evicted();
                    admission = Admission::Evicted;
                }
                None => {
                    inner.refused_since_warning += 1;
                    self.metrics.http_connection_refused();
                    self.warn(&mut inner);
                    return (None, Admission::Refused);
                }
            }
            self.warn(&mut inner);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let state = Arc::new(ConnState::new(client));
        inner.open.insert(id, state.clone());
        self.metrics.http_connections_open(inner.open.len());
        let slot = Slot {
            id,
            state,
            slots: self.clone(),
        };
        (Some(slot), admission)
    }

    /// Logs that the cap is being hit, at most every [`WARN_EVERY`].
    fn warn(&self, inner: &mut SlotsInner) {
        if inner.last_warning.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        inner.last_warning = Some(Instant::now());
        tracing::warn!(
            max_connections = self.max,
            evicted = inner.evicted_since_warning,
            refused = inner.refused_since_warning,
            "http.max_connections reached: closing idle or unfinished connections to make room"
        );
        inner.evicted_since_warning = 0;
        inner.refused_since_warning = 0;
    }
}

/// The open connections, oldest first, and each client address's share of them.
#[derive(Default)]
struct Open {
    all: BTreeMap<u64, Arc<ConnState>>,
    by_client: HashMap<IpAddr, BTreeSet<u64>>,
}

impl Open {
    fn len(&self) -> usize {
        self.all.len()
    }

    fn insert(&mut self, id: u64, state: Arc<ConnState>) {
        self.by_client.entry(state.client).or_default().insert(id);
        self.all.insert(id, state);
    }

    fn remove(&mut self, id: u64) {
        let Some(state) = self.all.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_client.get_mut(&state.client) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_client.remove(&state.client);
            }
        }
    }

    /// The connection to close for room among those in `phase`: the oldest one in that phase of
    /// the client address that holds the most connections (the next address if that one has
    /// none in `phase`). Fairness by address is what keeps a flood from one host from closing a
    /// sender's connections on another, however young the flood's connections are.
    fn victim(&self, phase: u8) -> Option<(u64, Arc<ConnState>)> {
        let mut clients: Vec<&BTreeSet<u64>> = self.by_client.values().collect();
        // Most connections first; ties to the address with the older connection.
        clients.sort_by(|a, b| b.len().cmp(&a.len()).then(a.first().cmp(&b.first())));
        clients.into_iter().find_map(|ids| {
            ids.iter().find_map(|id| {
                let state = self.all.get(id)?;
                (state.phase() == phase).then(|| (*id, state.clone()))
            })
        })
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {0:?} (http.body_timeout)")]
    TimedOut(Duration),
    #[error("cannot read the request body: {0}")]
    Read(#[source] hyper::Error),
}

/// A request body that fails once `body_timeout` has passed since its head arrived, and marks
/// its connection busy once it is complete.
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
    state: Arc<ConnState>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.state.request_complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.state.request_complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Read(e)))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut(this.limit)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose writes fail when the client has taken nothing for `limit`: an answer nobody
/// reads must not hold a connection (and its buffers) for ever. Reads pass through; their time
/// limits are the header and body timeouts.
struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Turns a pending write into an error once it has been pending for `limit`.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took no data for http.body_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.bound(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.bound(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bound(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.bound(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The listen backlog: connections the kernel completes before we accept them. A flood fills
/// the default (1024) faster than the accept loop drains it on a busy box, and a real sender's
/// connection attempt is then dropped and retried a second later; the kernel caps this at
/// `net.core.somaxconn` (4096 on current kernels).
const BACKLOG: u32 = 4096;

/// Binds the HTTP listener with a deep backlog (see [`BACKLOG`]).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` with `limits` until `shutdown` is cancelled; then stops accepting,
/// lets requests in hand finish (each bounded by the body timeout) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Slots::new(limits.max_connections, metrics));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE/ENFILE and the like: the cap should prevent them; back off briefly
                // instead of spinning, and say so.
                tracing::error!(error = %e, "http: cannot accept a connection");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let (Some(slot), _) = slots.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            limits,
            slot,
            shutdown.clone(),
        ));
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Says, at most once a minute, that connections are closed because the system clock reads
/// before 1970: the API cannot answer until the clock is set (the pager itself goes on).
fn clock_before_1970() {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        tracing::error!("the system clock reads before 1970: HTTP connections are closed unanswered until it is set (set the clock, or let NTP reach a server)");
    }
}

/// Serves one connection until it closes, is evicted for room, or shutdown asks it to finish.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    slot: Slot,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteTimeout::new(stream, limits.body_timeout));
    let state = slot.state.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let state = state.clone();
        let mut app = app.clone();
        if request.body().is_end_stream() {
            if super::guard::changes_state(request.method(), request.uri().path()) {
                state.request_complete();
            } else {
                state.read_complete();
            }
        } else {
            state.head_arrived();
        }
        let mut request = request.map(|inner| TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
            limit: limits.body_timeout,
            state: state.clone(),
        });
        // Handlers that need the client's address (login throttling) read it as axum's own
        // ConnectInfo.
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let answer = tower_service::Service::call(&mut app, request).await;
            state.answered();
            answer
        }
    });
    if std::time::SystemTime::now() < std::time::UNIX_EPOCH {
        // hyper dates every answer with `httpdate`, which panics on a clock before 1970 (a
        // board that lost its time), whatever the builder says: close instead, and say why.
        clock_before_1970();
        return;
    }
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "http connection ended with an error");
            }
        }
        // Closed for room: it had no complete request in hand, or a read whose answer its client
        // asks for again, so nothing is lost.
        _ = slot.state.evict.cancelled() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.body_timeout, conn).await;
        }
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const FLOOD: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn slots(max: usize) -> Arc<Slots> {
        Arc::new(Slots::new(max, Metrics::new(crate::clock::system_now())))
    }

    #[test]
    fn at_the_cap_the_oldest_waiting_connection_makes_room() {
        let s = slots(2);
        let (a, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Free);
        let (b, _) = s.admit(SENDER);
        let (a, b) = (a.unwrap(), b.unwrap());
        // `a` is answering a request; `b` has sent half a head.
        a.state.request_complete();
        let (c, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        assert!(b.state.evict.is_cancelled(), "the waiting one was closed");
        assert!(!a.state.evict.is_cancelled(), "the busy one was kept");
        // Both remaining are busy now: the next one is refused.
        let c = c.unwrap();
        c.state.request_complete();
        let (d, how) = s.admit(SENDER);
        assert!(d.is_none());
        assert_eq!(how, Admission::Refused);
        // An answered connection waits again and can make room.
        a.state.answered();
        let (e, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        assert!(a.state.evict.is_cancelled());
        drop((b, e));
        assert_eq!(s.lock().open.len(), 1, "c is still open");
    }

    #[test]
    fn a_flood_of_reads_being_answered_makes_room_for_a_sender_but_writes_never_do() {
        let s = slots(3);
        let flood: Vec<Slot> = (0..2).map(|_| s.admit(FLOOD).0.unwrap()).collect();
        let (write, _) = s.admit(SENDER);
        let write = write.unwrap();
        // Every connection has a complete request in hand: two reads from the flood (a slow
        // `/metrics` each, its answer never read), one alert from the sender.
        for f in &flood {
            f.state.read_complete();
        }
        write.state.request_complete();
        let (next, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        let next = next.unwrap();
        assert!(
            flood[0].state.evict.is_cancelled(),
            "the flood's oldest read"
        );
        assert!(
            !write.state.evict.is_cancelled(),
            "a write in hand is never dropped"
        );
        next.state.request_complete();
        let (third, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        assert!(
            flood[1].state.evict.is_cancelled(),
            "the flood's other read"
        );
        // With only writes left in hand, a newcomer is refused rather than drop one.
        let third = third.unwrap();
        third.state.request_complete();
        let (refused, how) = s.admit(FLOOD);
        assert!(refused.is_none());
        assert_eq!(how, Admission::Refused);
        assert!(!write.state.evict.is_cancelled() && !next.state.evict.is_cancelled());
    }

    #[test]
    fn a_connection_with_its_head_in_is_closed_only_after_every_headless_one() {
        let s = slots(3);
        let (a, _) = s.admit(SENDER);
        let (b, _) = s.admit(SENDER);
        let (c, _) = s.admit(SENDER);
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        // `a`, the oldest, has sent its head and is sending a body; `b` and `c` half a head.
        a.state.head_arrived();
        let (_d, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        assert!(b.state.evict.is_cancelled() && !a.state.evict.is_cancelled());
        let (_e, _) = s.admit(SENDER);
        assert!(c.state.evict.is_cancelled() && !a.state.evict.is_cancelled());
        // Now only `a` and the two new (headless) ones remain: the new ones go first.
        let (_f, _) = s.admit(SENDER);
        assert!(!a.state.evict.is_cancelled());
        // `_d` was closed for `_f`; with `_e` and `_f` both busy, `a` is next.
        _e.as_ref().unwrap().state.request_complete();
        _f.as_ref().unwrap().state.request_complete();
        let (_g, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        assert!(a.state.evict.is_cancelled());
    }

    #[test]
    fn an_evicted_connection_cannot_become_busy() {
        let state = ConnState::new(SENDER);
        assert!(state.try_evict(WAITING));
        state.head_arrived();
        state.request_complete();
        assert_eq!(state.phase.load(Ordering::Acquire), EVICTED);
        assert!(!state.try_evict(WAITING), "evicted once");
    }

    #[test]
    fn a_dropped_slot_frees_its_place() {
        let s = slots(1);
        let (a, _) = s.admit(SENDER);
        a.unwrap().state.request_complete();
        // `a` was dropped above: its place is free without evicting anything.
        let (b, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Free);
        assert!(b.is_some());
    }

    #[test]
    fn a_flood_from_one_address_displaces_only_itself() {
        let s = slots(4);
        // The sender connects first and has not sent its head yet; then a flood fills the cap.
        let (sender, _) = s.admit(SENDER);
        let sender = sender.unwrap();
        let flood: Vec<_> = (0..3).map(|_| s.admit(FLOOD).0.unwrap()).collect();
        // Many more flood connections: each one closes an older flood connection, never the
        // sender's, although the sender's is the oldest waiting connection of all.
        let more: Vec<_> = (0..10)
            .map(|_| {
                let (slot, how) = s.admit(FLOOD);
                assert_eq!(how, Admission::Evicted);
                slot.unwrap()
            })
            .collect();
        assert!(!sender.state.evict.is_cancelled(), "the sender was kept");
        assert!(flood.iter().all(|f| f.state.evict.is_cancelled()));
        // A second sender connection at the cap also takes a flood connection's place.
        let (second, how) = s.admit(SENDER);
        assert_eq!(how, Admission::Evicted);
        assert!(!sender.state.evict.is_cancelled());
        drop((second, more));
    }

    #[test]
    fn the_victim_is_the_oldest_of_the_biggest_holder() {
        let mut open = Open::default();
        for (id, client) in [(1, SENDER), (2, FLOOD), (3, FLOOD), (4, SENDER)] {
            open.insert(id, Arc::new(ConnState::new(client)));
        }
        let victim = |open: &Open, phase| open.victim(phase).map(|(id, _)| id);
        // Two each: the tie goes to the address with the older connection.
        assert_eq!(victim(&open, WAITING), Some(1));
        open.insert(5, Arc::new(ConnState::new(FLOOD)));
        assert_eq!(victim(&open, WAITING), Some(2));
        // The biggest holder's oldest connection in the asked phase; another address's when
        // the biggest holder has none in that phase.
        for id in [2, 3, 5] {
            open.all[&id].head_arrived();
        }
        assert_eq!(victim(&open, WAITING), Some(1));
        assert_eq!(victim(&open, READING_BODY), Some(2));
        assert_eq!(victim(&open, BUSY), None);
        open.remove(2);
        open.remove(3);
        open.remove(5);
        assert!(
            !open.by_client.contains_key(&FLOOD),
            "an address without connections is forgotten"
        );
        assert_eq!(open.len(), 2);
    }
}
