//! What one server counts, for `GET /metrics` (the Prometheus text format)
//! and the `/status` page: counters, gauges and two histograms, the events
//! appended per second over the last minute, and a short list of the latest
//! refusals and errors.
//!
//! A leaf room: the core, the sessions and the server all count here, and
//! none of them depends on another for it. Each server has its own
//! [`Metrics`] (reached through `sync::hub::Hub::metrics`), so servers in one
//! process (the tests) do not mix their figures.
//!
//! Hot paths stay cheap: every counter is one atomic add on a handle
//! resolved when the server starts (no label lookup per event); a push
//! observes each histogram once (a short mutex in `prometheus-client`), and
//! the fan-out adds its deliveries once per push, not once per subscriber.
//! Every name, type and label is documented in `docs/metrics.md`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latest refusals and errors kept for the status page.
pub const RECENT: usize = 50;

/// Longest reason or source text an entry keeps (a client controls some of it).
const RECENT_TEXT: usize = 200;

/// Bucket bounds of both latency histograms, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

type Labels = Vec<(&'static str, &'static str)>;

/// A sync protocol and its transport, as the labels `protocol` and `transport` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// LiveStore 0.3 (`makeCfSync`), WebSocket.
    V03,
    /// LiveStore 0.4 `makeWsSync`.
    V04Ws,
    /// LiveStore 0.4 `makeHttpSync`.
    V04Http,
}

impl Proto {
    const ALL: [Proto; 3] = [Proto::V03, Proto::V04Ws, Proto::V04Http];

    /// `(protocol, transport)` label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Proto::V03 => ("0.3", "websocket"),
            Proto::V04Ws => ("0.4", "websocket"),
            Proto::V04Http => ("0.4", "http"),
        }
    }
}

/// What an open TCP connection is serving: plain HTTP until it makes a sync
/// request, then that protocol's (`livestore_connections_open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// HTTP without a sync request yet (health checks, `/metrics`, admin).
    Http,
    /// A sync protocol: a WebSocket, or a keep-alive connection that made a
    /// 0.4 HTTP sync request.
    Sync(Proto),
}

impl ConnKind {
    const ALL: [ConnKind; 4] = [
        ConnKind::Http,
        ConnKind::Sync(Proto::V03),
        ConnKind::Sync(Proto::V04Ws),
        ConnKind::Sync(Proto::V04Http),
    ];

    fn index(self) -> usize {
        match self {
            ConnKind::Http => 0,
            ConnKind::Sync(Proto::V03) => 1,
            ConnKind::Sync(Proto::V04Ws) => 2,
            ConnKind::Sync(Proto::V04Http) => 3,
        }
    }

    /// `(protocol, transport)` label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            ConnKind::Http => ("none", "http"),
            ConnKind::Sync(p) => p.labels(),
        }
    }
}

/// Why a connection, request or upgrade was refused (`livestore_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `MAX_CONNECTIONS` are open: `503` at accept.
    TooManyConnections,
    /// `MAX_CONNECTIONS_PER_IP` are open from the client's address: `429` at accept.
    TooManyFromAddress,
    /// No thread could be started for the connection.
    NoThread,
    /// Not a well-formed HTTP request (or too large): `400`/`413`/`431`.
    BadHttpRequest,
    /// A sync request with bad parameters or body: `400`/`405`.
    BadSyncRequest,
    /// A sync request without a token that grants its store: `401` or `403`.
    BadAuthToken,
    /// A sync URL without a WebSocket upgrade: `426`.
    NotWebsocket,
    /// The upgrade's store could not be loaded: `503`.
    StorageUnavailable,
    /// `/admin`, `/metrics` or `/status` without the admin secret: `401`/`403`.
    AdminUnauthorised,
}

impl Refusal {
    const ALL: [Refusal; 9] = [
        Refusal::TooManyConnections,
        Refusal::TooManyFromAddress,
        Refusal::NoThread,
        Refusal::BadHttpRequest,
        Refusal::BadSyncRequest,
        Refusal::BadAuthToken,
        Refusal::NotWebsocket,
        Refusal::StorageUnavailable,
        Refusal::AdminUnauthorised,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::TooManyFromAddress => "too_many_from_address",
            Refusal::NoThread => "no_thread",
            Refusal::BadHttpRequest => "bad_http_request",
            Refusal::BadSyncRequest => "bad_sync_request",
            Refusal::BadAuthToken => "bad_auth_token",
            Refusal::NotWebsocket => "not_websocket",
            Refusal::StorageUnavailable => "storage_unavailable",
            Refusal::AdminUnauthorised => "admin_unauthorised",
        }
    }
}

/// Why a push was refused (`livestore_pushes_rejected_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRejected {
    /// Its parent is not the head: another client pushed first.
    WrongParent,
    /// Its events do not chain one to the next.
    BrokenChain,
    /// A 0.4 client of another incarnation of the store.
    BackendIdMismatch,
    /// Storage failed; nothing was written.
    StorageError,
    /// The request could not be decoded, or named another store (0.4).
    InvalidRequest,
    /// Over `MAX_PUSH_EVENTS` or `MAX_PUSH_BYTES`; nothing was written.
    TooLarge,
}

impl PushRejected {
    const ALL: [PushRejected; 6] = [
        PushRejected::WrongParent,
        PushRejected::BrokenChain,
        PushRejected::BackendIdMismatch,
        PushRejected::StorageError,
        PushRejected::InvalidRequest,
        PushRejected::TooLarge,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            PushRejected::WrongParent => "wrong_parent",
            PushRejected::BrokenChain => "broken_chain",
            PushRejected::BackendIdMismatch => "backend_id_mismatch",
            PushRejected::StorageError => "storage_error",
            PushRejected::InvalidRequest => "invalid_request",
            PushRejected::TooLarge => "too_large",
        }
    }
}

/// Why a socket was dropped as a slow consumer (`livestore_slow_consumers_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowDrop {
    /// A broadcast found its queue full.
    QueueFull,
    /// Its own reply (a pull page) waited for room longer than the write timeout.
    ReplyTimeout,
}

/// The kind of an entry of [`Metrics::recent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentKind {
    /// A connection, request or upgrade refused.
    Refused,
    /// A socket dropped as too slow.
    Dropped,
    /// Something failed on our side (storage, a handler).
    Error,
}

impl IncidentKind {
    pub fn label(self) -> &'static str {
        match self {
            IncidentKind::Refused => "refused",
            IncidentKind::Dropped => "dropped",
            IncidentKind::Error => "error",
        }
    }
}

/// One refusal or error, as the status page lists it. Never a token or
/// secret: callers pass a reason and the peer (or a connection's log label).
#[derive(Debug, Clone)]
pub struct Incident {
    pub at: SystemTime,
    pub kind: IncidentKind,
    pub reason: String,
    /// The peer address, or a connection's `store=… peer=… protocol=…` label.
    pub source: String,
}

/// Pool figures of the storage, read at each scrape (see `storage::PoolState`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pool {
    pub in_use: u64,
    pub idle: u64,
    pub waiting: u64,
    pub max: u64,
}

/// Figures the server reads from elsewhere just before it renders.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub stores_in_memory: u64,
    /// Connection and writer threads alive (`server::live`).
    pub connection_threads: u64,
    pub pool: Option<Pool>,
}

/// One server's figures. Cheap to count into from any thread.
pub struct Metrics {
    registry: Registry,
    connections: [Gauge; 4],
    refused: [Counter; 9],
    pushes_accepted: [Counter; 3],
    pushes_rejected: [[Counter; 6]; 3],
    pull_pages: [Counter; 3],
    pull_events: [Counter; 3],
    events_appended: Counter,
    deliveries: Counter,
    slow_dropped: [Counter; 2],
    push_commit: Histogram,
    push_fanout: Histogram,
    stores_in_memory: Gauge,
    connection_threads: Gauge,
    /// In use, idle.
    pool: [Gauge; 2],
    pool_waiting: Gauge,
    pool_max: Gauge,
    per_second: PerSecond,
    recent: Mutex<VecDeque<Incident>>,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn proto_labels(p: Proto) -> Labels {
    let (protocol, transport) = p.labels();
    vec![("protocol", protocol), ("transport", transport)]
}

impl Metrics {
    /// Every series exists from the start (at 0), so a dashboard shows a
    /// flat line rather than nothing, and `/metrics` always has every name.
    pub fn new() -> Metrics {
        let mut r = Registry::default();

        let connections_family = Family::<Labels, Gauge>::default();
        r.register(
            "livestore_connections_open",
            "Open TCP connections by what they serve: protocol none is plain HTTP",
            connections_family.clone(),
        );
        let connections = ConnKind::ALL.map(|k| {
            let (protocol, transport) = k.labels();
            connections_family
                .get_or_create_owned(&vec![("protocol", protocol), ("transport", transport)])
        });

        let refused_family = Family::<Labels, Counter>::default();
        r.register(
            "livestore_refused",
            "Connections, requests and upgrades refused, by reason",
            refused_family.clone(),
        );
        let refused =
            Refusal::ALL.map(|x| refused_family.get_or_create_owned(&vec![("reason", x.label())]));

        let accepted_family = Family::<Labels, Counter>::default();
        r.register(
            "livestore_pushes_accepted",
            "Pushes accepted (persisted and acknowledged)",
            accepted_family.clone(),
        );
        let pushes_accepted =
            Proto::ALL.map(|p| accepted_family.get_or_create_owned(&proto_labels(p)));

        let rejected_family = Family::<Labels, Counter>::default();
        r.register(
            "livestore_pushes_rejected",
            "Pushes refused, by reason",
            rejected_family.clone(),
        );
        let pushes_rejected = Proto::ALL.map(|p| {
            PushRejected::ALL.map(|why| {
                let mut l = proto_labels(p);
                l.push(("reason", why.label()));
                rejected_family.get_or_create_owned(&l)
            })
        });

        let pages_family = Family::<Labels, Counter>::default();
        r.register(
            "livestore_pull_pages",
            "Pull answer pages sent (backlog, not live batches)",
            pages_family.clone(),
        );
        let pull_pages = Proto::ALL.map(|p| pages_family.get_or_create_owned(&proto_labels(p)));

        let pulled_family = Family::<Labels, Counter>::default();
        r.register(
            "livestore_pull_events",
            "Events sent in pull answer pages",
            pulled_family.clone(),
        );
        let pull_events = Proto::ALL.map(|p| pulled_family.get_or_create_owned(&proto_labels(p)));

        let events_appended = Counter::default();
        r.register(
            "livestore_events_appended",
            "Events appended to the log by pushes to this server",
            events_appended.clone(),
        );
        let deliveries = Counter::default();
        r.register(
            "livestore_broadcast_deliveries",
            "Live batches queued for subscribers: one per subscriber per batch",
            deliveries.clone(),
        );

        let slow_family = Family::<Labels, Counter>::default();
        r.register(
            "livestore_slow_consumers_dropped",
            "WebSockets dropped because they did not read fast enough, by reason",
            slow_family.clone(),
        );
        let slow_dropped = [
            slow_family.get_or_create_owned(&vec![("reason", "queue_full")]),
            slow_family.get_or_create_owned(&vec![("reason", "reply_timeout")]),
        ];

        let push_commit = Histogram::new(LATENCY_BUCKETS);
        r.register(
            "livestore_push_commit_seconds",
            "Time to write an accepted push to storage (the append and its commit)",
            push_commit.clone(),
        );
        let push_fanout = Histogram::new(LATENCY_BUCKETS);
        r.register(
            "livestore_push_fanout_seconds",
            "Time from a push reaching its store until its batch is queued for every subscriber (pushes with subscribers)",
            push_fanout.clone(),
        );

        let stores_in_memory = Gauge::default();
        r.register(
            "livestore_stores_in_memory",
            "Store entries held in memory",
            stores_in_memory.clone(),
        );
        let connection_threads = Gauge::default();
        r.register(
            "livestore_connection_threads",
            "Connection reader and WebSocket writer threads alive",
            connection_threads.clone(),
        );
        let pool_family = Family::<Labels, Gauge>::default();
        r.register(
            "livestore_db_pool_connections",
            "Database connections of the pool, in use or idle",
            pool_family.clone(),
        );
        let pool = ["in_use", "idle"]
            .map(|state| pool_family.get_or_create_owned(&vec![("state", state)]));
        let pool_waiting = Gauge::default();
        r.register(
            "livestore_db_pool_waiting",
            "Threads waiting for a database connection (SQLite: appends queued for the writer)",
            pool_waiting.clone(),
        );
        let pool_max = Gauge::default();
        r.register(
            "livestore_db_pool_max",
            "Most database connections the pool opens",
            pool_max.clone(),
        );

        let build = Family::<Labels, Gauge>::default();
        r.register(
            "livestore_build_info",
            "Always 1; the server's version is the label",
            build.clone(),
        );
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        r.register_collector(Box::new(ProcessCollector));

        Metrics {
            registry: r,
            connections,
            refused,
            pushes_accepted,
            pushes_rejected,
            pull_pages,
            pull_events,
            events_appended,
            deliveries,
            slow_dropped,
            push_commit,
            push_fanout,
            stores_in_memory,
            connection_threads,
            pool,
            pool_waiting,
            pool_max,
            per_second: PerSecond::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            started: SystemTime::now(),
        }
    }

    /// When this server's figures started.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Counts an open connection as `Http` until the guard drops.
    pub fn connection(&self) -> ConnGuard<'_> {
        self.connections[ConnKind::Http.index()].inc();
        ConnGuard {
            metrics: self,
            kind: Cell::new(ConnKind::Http),
        }
    }

    /// Open connections of one kind.
    pub fn connections_open(&self, kind: ConnKind) -> i64 {
        self.connections[kind.index()].get()
    }

    pub fn refused(&self, why: Refusal, source: &str) {
        self.refused[why as usize].inc();
        self.record(IncidentKind::Refused, why.label(), source);
    }

    pub fn refused_count(&self, why: Refusal) -> u64 {
        self.refused[why as usize].get()
    }

    pub fn push_accepted(&self, p: Proto) {
        self.pushes_accepted[p as usize].inc();
    }

    pub fn pushes_accepted(&self, p: Proto) -> u64 {
        self.pushes_accepted[p as usize].get()
    }

    pub fn push_rejected(&self, p: Proto, why: PushRejected) {
        self.pushes_rejected[p as usize][why.index()].inc();
    }

    pub fn pushes_rejected(&self, p: Proto, why: PushRejected) -> u64 {
        self.pushes_rejected[p as usize][why.index()].get()
    }

    /// A pull answer page of `events` events went out.
    pub fn pull_page(&self, p: Proto, events: usize) {
        self.pull_pages[p as usize].inc();
        self.pull_events[p as usize].inc_by(events as u64);
    }

    /// An accepted push appended `events` events at `at`; it took
    /// `commit` to write.
    pub fn appended(&self, events: usize, at: SystemTime, commit: Duration) {
        self.events_appended.inc_by(events as u64);
        self.per_second.add(at, events as u64);
        self.push_commit.observe(commit.as_secs_f64());
    }

    pub fn events_appended(&self) -> u64 {
        self.events_appended.get()
    }

    /// A push's batch is queued for every subscriber, `since` it reached its store.
    pub fn fanned_out(&self, since: Duration) {
        self.push_fanout.observe(since.as_secs_f64());
    }

    /// `n` live batches were queued for subscribers.
    pub fn delivered(&self, n: usize) {
        if n > 0 {
            self.deliveries.inc_by(n as u64);
        }
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.get()
    }

    /// A socket was dropped as too slow; `source` is its log label.
    pub fn slow_consumer(&self, why: SlowDrop, reason: &str, source: &str) {
        self.slow_dropped[why as usize].inc();
        self.record(IncidentKind::Dropped, reason, source);
    }

    pub fn slow_consumers(&self, why: SlowDrop) -> u64 {
        self.slow_dropped[why as usize].get()
    }

    /// Something failed on our side: kept in the recent list.
    pub fn error(&self, reason: &str, source: &str) {
        self.record(IncidentKind::Error, reason, source);
    }

    fn record(&self, kind: IncidentKind, reason: &str, source: &str) {
        let entry = Incident {
            at: SystemTime::now(),
            kind,
            reason: clip(reason),
            source: clip(source),
        };
        let mut recent = self.recent.lock();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(entry);
    }

    /// The latest refusals and errors, newest first.
    pub fn recent(&self) -> Vec<Incident> {
        self.recent.lock().iter().rev().cloned().collect()
    }

    /// Events appended per second, averaged over the last 60 whole seconds
    /// before `now`.
    pub fn events_per_second(&self, now: SystemTime) -> f64 {
        self.per_second.last_minute(now) as f64 / 60.0
    }

    /// The text for `GET /metrics`, with `snapshot`'s figures.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.stores_in_memory.set(snapshot.stores_in_memory as i64);
        self.connection_threads
            .set(snapshot.connection_threads as i64);
        let pool = snapshot.pool.unwrap_or_default();
        self.pool[0].set(pool.in_use as i64);
        self.pool[1].set(pool.idle as i64);
        self.pool_waiting.set(pool.waiting as i64);
        self.pool_max.set(pool.max as i64);
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

fn clip(s: &str) -> String {
    if s.len() <= RECENT_TEXT {
        return s.to_string();
    }
    let mut end = RECENT_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Counts an open connection under its current kind; moves it when it
/// turns out to serve a sync protocol; uncounts it when dropped (also on
/// unwind). Lives on the connection's own thread.
pub struct ConnGuard<'a> {
    metrics: &'a Metrics,
    kind: Cell<ConnKind>,
}

impl ConnGuard<'_> {
    pub fn set(&self, kind: ConnKind) {
        let old = self.kind.replace(kind);
        if old != kind {
            self.metrics.connections[kind.index()].inc();
            self.metrics.connections[old.index()].dec();
        }
    }

    pub fn kind(&self) -> ConnKind {
        self.kind.get()
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.metrics.connections[self.kind.get().index()].dec();
    }
}

/// Events per second of wall-clock time, for the last minute: one slot per
/// second, each holding its second (high 32 bits) and its count (low 32),
/// updated with one compare-and-swap per push, no lock.
struct PerSecond {
    slots: [AtomicU64; 64],
}

impl Default for PerSecond {
    fn default() -> Self {
        PerSecond {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PerSecond {
    fn add(&self, at: SystemTime, n: u64) {
        let sec = unix_secs(at) & 0xffff_ffff;
        let slot = &self.slots[(sec % 64) as usize];
        let mut cur = slot.load(Relaxed);
        loop {
            let next = if cur >> 32 == sec {
                let count = (cur & 0xffff_ffff).saturating_add(n).min(0xffff_ffff);
                (sec << 32) | count
            } else if cur >> 32 > sec {
                // A newer second already took the slot (a late add): drop it.
                return;
            } else {
                (sec << 32) | n.min(0xffff_ffff)
            };
            match slot.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Events in the 60 whole seconds before `now`'s second.
    fn last_minute(&self, now: SystemTime) -> u64 {
        let now = unix_secs(now) & 0xffff_ffff;
        self.slots
            .iter()
            .map(|s| s.load(Relaxed))
            .filter(|v| {
                let sec = v >> 32;
                sec < now && now - sec <= 60
            })
            .map(|v| v & 0xffff_ffff)
            .sum()
    }
}

/// The process's memory, threads, file descriptors and CPU time, read from
/// `/proc/self` at each scrape, under the names Prometheus's own clients use.
#[derive(Debug)]
struct ProcessCollector;

/// What [`ProcessCollector`] reads; `None` where `/proc` did not say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/self/stat` (`sysconf(_SC_CLK_TCK)`;
/// 100 on every Linux architecture this builds for, and reading it needs
/// `unsafe` libc).
const CLK_TCK: f64 = 100.0;

impl ProcessStats {
    pub fn read() -> ProcessStats {
        let mut s = ProcessStats::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            };
            s.resident_bytes = kib("VmRSS:").map(|k| k * 1024);
            s.virtual_bytes = kib("VmSize:").map(|k| k * 1024);
            s.threads = kib("Threads:");
        }
        s.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            s.max_fds = limits
                .lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok());
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            // utime, stime and starttime are fields 14, 15 and 22 (1-based; the
            // state, field 3, is the first after the name).
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
            if let (Some(u), Some(k)) = (field(14), field(15)) {
                s.cpu_seconds = Some((u + k) / CLK_TCK);
            }
            let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
            if let (Some(start), Some(boot)) = (field(22), boot) {
                s.start_time_seconds = Some(boot + start / CLK_TCK);
            }
        }
        s
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = ProcessStats::read();
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes,
            ),
            ("process_threads", "OS threads of the process", s.threads),
            ("process_open_fds", "Open file descriptors", s.open_fds),
            (
                "process_max_fds",
                "Limit of open file descriptors (soft)",
                s.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v as i64);
                let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
                g.encode(m)?;
            }
        }
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        if let Some(v) = s.start_time_seconds {
            let g = ConstGauge::new(v);
            let m = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                None,
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn every_series_is_there_from_the_start_and_counts() {
        let m = Metrics::new();
        let text = m.render(&Snapshot::default());
        assert_eq!(
            value(
                &text,
                r#"livestore_connections_open{protocol="0.3",transport="websocket"}"#
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                r#"livestore_pushes_rejected_total{protocol="0.4",transport="http",reason="wrong_parent"}"#
            ),
            Some(0.0),
            "{text}"
        );
        assert!(text.contains("# TYPE livestore_push_commit_seconds histogram"));
        assert!(text.contains("# TYPE livestore_events_appended_total counter"));
        assert!(text.contains("process_resident_memory_bytes "), "{text}");

        m.push_accepted(Proto::V04Ws);
        m.push_rejected(Proto::V03, PushRejected::WrongParent);
        m.appended(3, SystemTime::now(), Duration::from_millis(2));
        m.refused(Refusal::BadAuthToken, "1.2.3.4:5");
        let text = m.render(&Snapshot {
            stores_in_memory: 7,
            connection_threads: 3,
            pool: Some(Pool {
                in_use: 2,
                idle: 3,
                waiting: 1,
                max: 8,
            }),
        });
        for (series, v) in [
            (
                r#"livestore_pushes_accepted_total{protocol="0.4",transport="websocket"}"#,
                1.0,
            ),
            (
                r#"livestore_pushes_rejected_total{protocol="0.3",transport="websocket",reason="wrong_parent"}"#,
                1.0,
            ),
            ("livestore_events_appended_total", 3.0),
            ("livestore_push_commit_seconds_count", 1.0),
            (r#"livestore_push_commit_seconds_bucket{le="0.0025"}"#, 1.0),
            (r#"livestore_push_commit_seconds_bucket{le="0.001"}"#, 0.0),
            (r#"livestore_refused_total{reason="bad_auth_token"}"#, 1.0),
            ("livestore_stores_in_memory", 7.0),
            (r#"livestore_db_pool_connections{state="in_use"}"#, 2.0),
            (r#"livestore_db_pool_connections{state="idle"}"#, 3.0),
            ("livestore_db_pool_waiting", 1.0),
        ] {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
    }

    #[test]
    fn a_connection_moves_between_kinds_and_is_uncounted_on_drop() {
        let m = Metrics::new();
        let g = m.connection();
        assert_eq!(m.connections_open(ConnKind::Http), 1);
        g.set(ConnKind::Sync(Proto::V04Http));
        g.set(ConnKind::Sync(Proto::V04Http));
        assert_eq!(m.connections_open(ConnKind::Http), 0);
        assert_eq!(m.connections_open(ConnKind::Sync(Proto::V04Http)), 1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let g2 = m.connection();
            g2.set(ConnKind::Sync(Proto::V03));
            panic!("handler bug");
        }));
        assert!(r.is_err());
        assert_eq!(m.connections_open(ConnKind::Sync(Proto::V03)), 0);
        drop(g);
        for k in ConnKind::ALL {
            assert_eq!(m.connections_open(k), 0, "{k:?}");
        }
    }

    #[test]
    fn the_recent_list_is_bounded_newest_first_and_clipped() {
        let m = Metrics::new();
        for i in 0..RECENT + 5 {
            m.error(&format!("failure {i}"), "peer");
        }
        let recent = m.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].reason, format!("failure {}", RECENT + 4));
        assert_eq!(recent[RECENT - 1].reason, "failure 5");
        m.error(&"é".repeat(300), "peer");
        let long = &m.recent()[0].reason;
        assert!(long.len() <= RECENT_TEXT + "…".len(), "{}", long.len());
    }

    #[test]
    fn events_per_second_counts_the_last_sixty_whole_seconds() {
        let p = PerSecond::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t + Duration::from_secs(s);
        p.add(at(0), 100); // 61 s before `now`: too old
        p.add(at(1), 10);
        p.add(at(1), 5);
        p.add(at(30), 20);
        p.add(at(60), 7);
        p.add(at(61), 1_000); // `now`'s own second: not whole yet
        assert_eq!(p.last_minute(at(61)), 42);
        // 64 seconds later the slot of second 1 is reused for second 65.
        p.add(at(65), 3);
        assert_eq!(p.last_minute(at(66)), 20 + 7 + 1_000 + 3);
        // A late add for a second whose slot a newer second took is dropped.
        p.add(at(1), 50);
        assert_eq!(p.last_minute(at(66)), 20 + 7 + 1_000 + 3);
    }

    #[test]
    fn process_stats_are_read_from_proc() {
        let s = ProcessStats::read();
        assert!(s.resident_bytes.unwrap() > 0);
        assert!(s.threads.unwrap() >= 1);
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
        assert!(s.cpu_seconds.unwrap() >= 0.0);
        let now = unix_secs(SystemTime::now()) as f64;
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}
