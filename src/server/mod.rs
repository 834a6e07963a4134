//! Sockets and threads: a blocking accept loop, one OS thread per
//! connection, graceful shutdown.
//!
//! A connection's thread reads HTTP requests and answers them
//! (`routes.rs`); a valid sync upgrade turns it into a WebSocket reader
//! with a writer thread beside it (`ws.rs`). A panic in one connection's
//! thread ends that connection only (store mutexes are `parking_lot`'s,
//! which do not poison, and the session detaches itself on unwind).

pub mod admin;
pub mod capacity;
pub mod http;
pub mod live;
pub mod outbox;
pub mod routes;
pub mod status;
pub mod ws;

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::Config;
use crate::logfmt;
use crate::metrics::{ConnGuard, Metrics, Refusal};
use crate::session::Env;
use crate::storage::Storage;
use crate::sync::hub::Hub;
use http::{Conn, ReadError, Response};
use live::Live;
use routes::Action;

/// What every connection needs: the sessions' environment and the settings.
pub struct Ctx {
    pub env: Arc<Env>,
    pub config: Config,
    /// Notices of other processes' changes (other instances on PostgreSQL,
    /// the command line on SQLite).
    pub watch: Option<crate::storage::Watch>,
    /// Who is logged in to the status page.
    pub logins: status::Logins,
    /// Where the events live, for the status page (never a password).
    pub storage_description: String,
    /// Who may use which store.
    pub auth: crate::auth::Auth,
}

/// Makes every panic of the process one log line: the thread's name, where,
/// and the message (cut at 500 bytes), instead of Rust's default text on
/// stderr. A connection's `catch_unwind` then logs how the connection ended.
/// Nothing of a request goes in: no URL, no token (no code puts one in a
/// panic message). Installed once by the service at start.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        let mut end = message.len().min(500);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        log::error!(
            "panic thread={} at={} message={}",
            logfmt::value(std::thread::current().name().unwrap_or("unnamed")),
            logfmt::value(&at),
            logfmt::value(&message[..end])
        );
    }));
}

impl Ctx {
    fn new(storage: Arc<dyn Storage>, config: Config) -> Arc<Ctx> {
        let l = &config.limits;
        let core = crate::sync::Limits {
            read_rows: l.storage_read_rows,
            max_held_bytes: l.max_held_bytes,
            max_stores: l.max_stores,
        };
        let metrics = Arc::new(Metrics::new());
        let env = Env {
            hub: Hub::with_metrics(storage.clone(), core, metrics),
            admin_secret: config.admin_secret.clone(),
            ack_window: l.ack_window,
            max_pull_streams: l.max_pull_streams,
            max_http_pull_bytes: l.max_http_pull_bytes,
            test_panic: crate::session::TestPanic::from_vars(
                std::env::var("LSS_TEST_PANIC_ON_STORE").ok(),
                std::env::var("LSS_TEST_PANIC_AT").ok(),
            ),
            max_push_events: l.max_push_events,
            max_push_bytes: l.max_push_bytes,
            pushes_per_second: l.pushes_per_second,
        };
        if let Some(t) = &env.test_panic {
            log::warn!(
                "TEST-ONLY panic hook armed: pushes to store={} panic ({:?}); never set LSS_TEST_PANIC_* in service",
                logfmt::value(&t.store),
                t.at
            );
        }
        let env = Arc::new(env);
        // Other processes' appends, resets, deletes and imports reach this
        // one's sockets. Weak: the watch's thread outlives the server by up
        // to a poll after `stop`, and must not keep the storage open (on
        // SQLite the instance lock goes with it: a server started again in
        // the same process would be refused meanwhile).
        let watch = {
            let env = Arc::downgrade(&env);
            storage.watch(Box::new(move |notice| {
                if let Some(env) = env.upgrade() {
                    env.hub.apply(notice)
                }
            }))
        };
        let storage_description =
            crate::storage::Backend::choose(config.database_url.as_deref(), &config.data_dir)
                .map_or_else(|e| e.to_string(), |b| b.describe());
        // `service::run` refuses to start with bad key settings; a server
        // built here anyway (tests, embedders) fails closed.
        let auth = crate::auth::Auth::from_config(&config).unwrap_or_else(|e| {
            log::error!("token settings not loaded, every sync request is refused: {e}");
            crate::auth::Auth::refuse_all()
        });
        Arc::new(Ctx {
            auth,
            env,
            config,
            watch,
            logins: status::Logins::default(),
            storage_description,
        })
    }

    /// Where everything of this server counts.
    pub fn metrics(&self) -> &Metrics {
        self.env.hub.metrics()
    }
}

/// Shared shutdown state: once triggered, the accept loop stops and
/// connections end after their current request.
pub struct Shutdown {
    triggered: AtomicBool,
    /// Where to connect to wake the blocked `accept`.
    wake_addr: SocketAddr,
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }
}

/// A handle that stops the server from another thread (signal handler, tests).
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Shutdown>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        if !self.0.triggered.swap(true, Ordering::SeqCst) {
            // Wake the accept loop; it sees the flag and stops.
            let _ = TcpStream::connect_timeout(&self.0.wake_addr, Duration::from_secs(1));
        }
    }
}

/// Open connections, so shutdown can end them and wait for them.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<TcpStream>>>,
    empty: Condvar,
    /// Open connections per client address (`MAX_CONNECTIONS_PER_IP`).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; uncounted when dropped
/// (the connection's thread ends, or could not start).
struct IpSlot {
    registry: Arc<Registry>,
    ip: IpAddr,
}

impl IpSlot {
    /// Counts a connection from `ip`, or `None` when `max` are open from it.
    fn take(registry: &Arc<Registry>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut per_ip = registry.per_ip.lock();
        let n = per_ip.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            registry: registry.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut per_ip = self.registry.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Whether connections from `ip` count against `MAX_CONNECTIONS_PER_IP`:
/// not from this machine's own `127.0.0.1` / `::1`, where a proxy on the
/// same host connects from for all its clients.
fn counted_per_ip(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip != IpAddr::from([127, 0, 0, 1]) && ip != IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}

/// Whether the accept loop runs: not yet, now, or no more.
const NOT_YET: u8 = 0;
const ACCEPTING: u8 = 1;
const ENDED: u8 = 2;

/// What a watchdog may ask of a running server (see [`Server::liveness`]).
#[derive(Clone)]
pub struct Liveness {
    accepting: Arc<std::sync::atomic::AtomicU8>,
    registry: Arc<Registry>,
}

/// The answer of [`Liveness::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alive {
    /// The accept loop has not started yet.
    Starting,
    /// The accept loop runs and the connection registry it takes for every
    /// connection can be taken (no thread holds it stuck).
    Serving,
    /// The accept loop runs but the registry stayed locked for the whole
    /// wait: connections are not being accepted.
    Stuck,
    /// The accept loop has ended (shutdown, or it panicked).
    Ended,
}

impl Liveness {
    /// Checks, waiting at most `wait` for the registry.
    pub fn check(&self, wait: Duration) -> Alive {
        match self.accepting.load(Ordering::SeqCst) {
            NOT_YET => Alive::Starting,
            ACCEPTING => match self.registry.conns.try_lock_for(wait) {
                Some(_) => Alive::Serving,
                None => Alive::Stuck,
            },
            _ => Alive::Ended,
        }
    }
}

/// Marks the accept loop ended however `run` leaves (a panic too).
struct AcceptLoop(Arc<std::sync::atomic::AtomicU8>);

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.0.store(ENDED, Ordering::SeqCst);
    }
}

/// Called once when the accept loop starts (see [`Server::on_ready`]).
type ReadyHook = Box<dyn FnOnce(SocketAddr) + Send>;

/// A bound server, not yet running.
pub struct Server {
    ctx: Arc<Ctx>,
    listener: TcpListener,
    shutdown: Arc<Shutdown>,
    registry: Arc<Registry>,
    live: Arc<Live>,
    accepting: Arc<std::sync::atomic::AtomicU8>,
    on_ready: Option<ReadyHook>,
}

impl Server {
    /// Binds `config.host:config.port` over an already opened storage.
    pub fn bind(config: Config, storage: Arc<dyn Storage>) -> std::io::Result<Server> {
        let listener = TcpListener::bind((config.host.as_str(), config.port))?;
        Ok(Self::from_listener(listener, config, storage))
    }

    /// Serves on a listener the caller opened (or received from systemd).
    pub fn from_listener(
        listener: TcpListener,
        config: Config,
        storage: Arc<dyn Storage>,
    ) -> Server {
        let mut wake_addr = listener
            .local_addr()
            .expect("bound listener has an address");
        if wake_addr.ip().is_unspecified() {
            wake_addr.set_ip(if wake_addr.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let shutdown = Arc::new(Shutdown {
            triggered: AtomicBool::new(false),
            wake_addr,
        });
        Server {
            ctx: Ctx::new(storage, config),
            listener,
            shutdown,
            registry: Arc::default(),
            live: Arc::default(),
            accepting: Arc::default(),
            on_ready: None,
        }
    }

    /// `ready` is called with the listening address when the accept loop
    /// starts, after the "listening on" line: from then on a connection
    /// is answered (systemd's `READY=1` is sent from here).
    pub fn on_ready(&mut self, ready: impl FnOnce(SocketAddr) + Send + 'static) {
        self.on_ready = Some(Box::new(ready));
    }

    /// A handle telling whether the accept loop runs (for a watchdog).
    pub fn liveness(&self) -> Liveness {
        Liveness {
            accepting: self.accepting.clone(),
            registry: self.registry.clone(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// What is open right now (connections, WebSockets, threads).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Accepts connections until shut down, then ends every connection
    /// (WebSockets get a 1001 close frame after their in-flight request) and
    /// waits up to the shutdown grace period for them. Returns the number of
    /// connections still open when it gave up waiting.
    pub fn run(mut self) -> usize {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut limits = self.ctx.config.limits.clone();
        let os = capacity::OsLimits::read();
        log::info!("limits read at start: {}", os.describe());
        if let Some(cap) = os.capacity() {
            if cap.connections < limits.max_connections {
                log::warn!(
                    "MAX_CONNECTIONS lowered from {} to {}: {} allows no more (see README, \"Many connections\")",
                    limits.max_connections,
                    cap.connections,
                    cap.limited_by
                );
                limits.max_connections = cap.connections;
            }
        }
        log::info!(
            "listening on {} (up to {} connections)",
            self.local_addr(),
            limits.max_connections
        );
        self.accepting.store(ACCEPTING, Ordering::SeqCst);
        let accept_loop = AcceptLoop(self.accepting.clone());
        if let Some(ready) = self.on_ready.take() {
            ready(self.local_addr());
        }
        for incoming in self.listener.incoming() {
            if self.shutdown.is_triggered() {
                break;
            }
            let stream = match incoming {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    log::error!("accept failed reason={}", logfmt::value(&e.to_string()));
                    self.ctx.metrics().error(&format!("accept failed: {e}"), "");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into());
            if self.registry.conns.lock().len() >= limits.max_connections {
                log::warn!(
                    "refused connection peer={} status=503 reason=\"{} connections open (MAX_CONNECTIONS)\"",
                    logfmt::value(&peer),
                    limits.max_connections
                );
                self.ctx
                    .metrics()
                    .refused(Refusal::TooManyConnections, &peer);
                let _ = Response::text(503, "Too many connections").write_to(&stream, false);
                continue;
            }
            let ip = stream.peer_addr().map(|a| a.ip().to_canonical());
            let ip = ip
                .ok()
                .filter(|ip| limits.max_connections_per_ip > 0 && counted_per_ip(*ip));
            let ip_slot = match ip {
                None => None,
                Some(ip) => match IpSlot::take(&self.registry, ip, limits.max_connections_per_ip) {
                    Some(slot) => Some(slot),
                    None => {
                        log::warn!(
                            "refused connection peer={} status=429 reason=\"{} connections open from this address (MAX_CONNECTIONS_PER_IP)\"",
                            logfmt::value(&peer),
                            limits.max_connections_per_ip
                        );
                        self.ctx
                            .metrics()
                            .refused(Refusal::TooManyFromAddress, &peer);
                        let _ = Response::text(429, "Too many connections from your address")
                            .write_to(&stream, false);
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let stream = Arc::new(stream);
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            self.registry.conns.lock().insert(id, stream.clone());
            let peer_for_error = peer.clone();
            let (ctx, shutdown, registry, live) = (
                self.ctx.clone(),
                self.shutdown.clone(),
                self.registry.clone(),
                self.live.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("conn".into())
                .stack_size(limits.reader_stack)
                .spawn(move || {
                    let _ip_slot = ip_slot;
                    let _thread = live.thread();
                    let conn = live.connection();
                    let kind = ctx.metrics().connection();
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        serve_connection(&ctx, &stream, &peer, &shutdown, &live, &kind)
                    }));
                    if result.is_err() {
                        log::error!(
                            "connection closed peer={} reason=\"handler panicked\"",
                            logfmt::value(&peer)
                        );
                        ctx.metrics().error("handler panicked", &peer);
                        let _ = stream.shutdown(NetShutdown::Both);
                    }
                    drop((conn, kind));
                    log::debug!(
                        "connection ended peer={}; {}",
                        logfmt::value(&peer),
                        live.counts()
                    );
                    let mut conns = registry.conns.lock();
                    conns.remove(&id);
                    if conns.is_empty() {
                        registry.empty.notify_all();
                    }
                });
            if let Err(e) = spawned {
                log::error!(
                    "refused connection reason={}",
                    logfmt::value(&format!("cannot start a thread: {e}"))
                );
                self.ctx
                    .metrics()
                    .refused(Refusal::NoThread, &peer_for_error);
                self.registry.conns.lock().remove(&id);
            }
        }
        drop(accept_loop);
        // Stop accepting: from here on new connections are refused by the kernel.
        let registry = self.registry.clone();
        if let Some(w) = &self.ctx.watch {
            w.stop();
        }
        drop(self);
        drain(&registry, limits.shutdown_grace)
    }
}

/// Ends every open connection and waits for them, up to `grace`.
fn drain(registry: &Registry, grace: Duration) -> usize {
    {
        let open: Vec<Arc<TcpStream>> = registry.conns.lock().values().cloned().collect();
        log::info!("shutting down: {} connection(s) open", open.len());
        // Reads end at once; a request being handled finishes and is answered.
        for s in &open {
            let _ = s.shutdown(NetShutdown::Read);
        }
    }
    let deadline = Instant::now() + grace;
    let mut conns = registry.conns.lock();
    while !conns.is_empty() {
        if registry.empty.wait_until(&mut conns, deadline).timed_out() {
            break;
        }
    }
    let left = conns.len();
    for s in conns.values() {
        let _ = s.shutdown(NetShutdown::Both);
    }
    if left > 0 {
        log::warn!("shutdown: {left} connection(s) did not finish within {grace:?}");
    }
    left
}

/// One TCP connection: HTTP requests until it closes or upgrades.
/// Plain HTTP connections are logged at debug level (health checks and
/// 0.4 HTTP polling would flood the log); WebSockets at info (`ws.rs`).
fn serve_connection(
    ctx: &Arc<Ctx>,
    stream: &Arc<TcpStream>,
    peer: &str,
    shutdown: &Shutdown,
    live: &Arc<Live>,
    kind: &ConnGuard<'_>,
) {
    let peer_field = logfmt::value(peer);
    log::debug!("http open peer={peer_field}");
    let mut served = 0u64;
    let why = serve_http(ctx, stream, peer, shutdown, live, kind, &mut served);
    log::debug!(
        "http closed peer={peer_field} requests={served} reason={}",
        logfmt::value(why)
    );
}

fn serve_http(
    ctx: &Arc<Ctx>,
    stream: &Arc<TcpStream>,
    peer: &str,
    shutdown: &Shutdown,
    live: &Arc<Live>,
    kind: &ConnGuard<'_>,
    served: &mut u64,
) -> &'static str {
    let limits = &ctx.config.limits;
    let _ = stream.set_read_timeout(Some(limits.http_keep_alive));
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let mut conn =
        Conn::with_head_timeout(stream, limits.request_head_timeout, limits.http_keep_alive);
    let mut pace = crate::session::Pace::new(limits.pushes_per_second);
    loop {
        let req = match conn.read_request(limits.max_message_bytes) {
            Ok(r) => r,
            Err(ReadError::Closed) => return "closed by peer or idle",
            Err(ReadError::Bad(status, msg)) => {
                log::warn!(
                    "bad request peer={} status={status} reason={}",
                    logfmt::value(peer),
                    logfmt::value(msg)
                );
                ctx.metrics().refused(Refusal::BadHttpRequest, peer);
                let _ = Response::text(status, msg).write_to(&**stream, false);
                return "bad request";
            }
            Err(ReadError::Io(e)) => {
                log::debug!(
                    "http read failed peer={} reason={}",
                    logfmt::value(peer),
                    logfmt::value(&e.to_string())
                );
                return "read error";
            }
        };
        *served += 1;
        if req.method == "POST" {
            pace.wait(); // PUSHES_PER_SECOND: 0.4 HTTP pushes (and pulls)
        }
        match routes::route(ctx, &req, peer, live, kind) {
            Action::Respond(resp) => {
                let keep_alive = !req.close && !shutdown.is_triggered();
                if resp.write_to(&**stream, keep_alive).is_err() {
                    return "write error";
                }
                if !keep_alive {
                    return "not kept alive";
                }
            }
            Action::Upgrade {
                params,
                key,
                expires,
            } => {
                // Only what the socket needs lives on: the read-ahead buffer
                // (4 KiB), the request and the sync payload would otherwise
                // stay allocated for the socket's whole life.
                let leftover = conn.buf.as_slice().to_vec();
                let (route, store_id) = (params.route, params.store_id);
                drop((conn, req, params.payload));
                let upgrade = ws::Upgrade {
                    route,
                    store_id: &store_id,
                    key: &key,
                    leftover,
                    expires,
                };
                ws::serve(ctx, stream.clone(), upgrade, peer, shutdown, live, kind);
                return "upgraded to WebSocket";
            }
        }
    }
}
