//! Idle connections: N sockets that did their initial pull and then only
//! ping every 10 s. Measures the server's RSS per connection and its CPU
//! over the idle window (from /proc/<--server-pid>), the time to open the
//! first 1,000 and 10,000 connections and all of them (`--open-threads`
//! at a time, default 64), and the ping round trip. Verifies every socket
//! opened (none refused), pulled the store's events, answered every ping
//! and received nothing else.
//!
//! `connect` is the same scenario with no idle window (`--idle-secs 0`) and
//! 10,000 connections by default: its figure is `open_first_10000.ms`
//! (the target: 10,000 connections established in <= 5 s, 64 at a
//! time). Past about 28,000 connections, give `--spread-addrs N`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{open_many, seed_store, Ctx, SMALL_READ_BUF};
use crate::cli::Args;
use crate::conn::Conn;
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ms, rate, ratio, round1, round3, Samples};
use crate::util;

pub struct Params {
    /// "idle" or "connect" (the report's scenario name).
    pub name: &'static str,
    pub connections: usize,
    pub stores: usize,
    pub seed_events: usize,
    pub idle: Duration,
    pub ping_interval: Duration,
    pub open_threads: usize,
    /// Connections per pinging thread.
    pub per_worker: usize,
    /// Also measure the shape floor (a minimal thread-per-connection
    /// server, see shape.rs) at the same size, after the scenario.
    pub shape_floor: bool,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        Self::from_args_as(a, "idle")
    }

    /// `connect`: 10,000 connections, 64 at a time, no idle window.
    pub fn connect_from_args(a: &Args) -> Result<Params, String> {
        Self::from_args_as(a, "connect")
    }

    fn from_args_as(a: &Args, name: &'static str) -> Result<Params, String> {
        let connect = name == "connect";
        let p = Params {
            name,
            connections: a.count_or("connections", 10_000)?,
            stores: a.count_or("stores", 100)?,
            seed_events: a.usize_or("seed-events", 10)?,
            idle: a.secs_or("idle-secs", if connect { 0.0 } else { 30.0 })?,
            ping_interval: a.secs_or("ping-interval-secs", 10.0)?,
            open_threads: a.count_or("open-threads", 64)?,
            per_worker: a.count_or("conns-per-thread", 250)?,
            shape_floor: a.opt_str("shape-floor").is_some(),
        };
        if p.ping_interval.is_zero() {
            return Err("--ping-interval-secs must be > 0".into());
        }
        Ok(p)
    }

    pub fn smoke() -> Params {
        Params {
            name: "idle",
            connections: 20,
            stores: 2,
            seed_events: 3,
            idle: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            open_threads: 4,
            per_worker: 5,
            shape_floor: false,
        }
    }
}

/// The server's RSS in KiB, when its pid is known.
fn rss(ctx: &Ctx, r: &mut Report) -> Option<u64> {
    let pid = ctx.server_pid?;
    match util::rss_kib(pid) {
        Ok(v) => Some(v),
        Err(e) => {
            r.note(format!("reading the server's RSS: {e}"));
            None
        }
    }
}

/// The server's thread count and number of memory mappings, when its pid is known.
fn threads_and_maps(ctx: &Ctx) -> (Option<u64>, Option<u64>) {
    match ctx.server_pid {
        Some(pid) if util::process_alive(pid) => (util::thread_count(pid), util::map_count(pid)),
        _ => (None, None),
    }
}

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new(p.name, ctx.target.proto.as_str());
    r.param("connections", p.connections);
    r.param("stores", p.stores);
    r.param("seed_events", p.seed_events);
    r.param("idle_secs", p.idle.as_secs_f64());
    r.param("ping_interval_secs", p.ping_interval.as_secs_f64());
    r.param("open_threads", p.open_threads);
    r.param("spread_addrs", ctx.target.spread_addrs);
    r.param("server_pid", ctx.server_pid);
    if ctx.server_pid.is_none() {
        r.note("no --server-pid: server RSS and CPU not measured");
    }
    let before = super::server_threads_fds(ctx);
    if let Err(e) = run_inner(ctx, p, &mut r) {
        r.fail(e);
    }
    super::report_leftovers(ctx, &mut r, before);
    r
}

fn run_inner(ctx: &Ctx, p: &Params, r: &mut Report) -> Result<(), String> {
    util::ensure_fd_room(p.connections as u64)?;
    let base = ctx.store_id("idle");
    let stores: Vec<String> = (0..p.stores).map(|i| format!("{base}-{i}")).collect();
    for s in &stores {
        seed_store(ctx, s, 0, p.seed_events, 100, 200, "idle-seed")?;
    }
    let rss_before = rss(ctx, r);
    let (threads_before, maps_before) = threads_and_maps(ctx);

    // Open: `open_threads` threads connect and pull, one socket after the other.
    info!(
        "idle: opening {} connections with {} threads",
        p.connections, p.open_threads
    );
    let t_open = Instant::now();
    let mut opened = open_many(
        ctx,
        p.connections,
        p.open_threads,
        SMALL_READ_BUF,
        Arc::new(stores),
        p.seed_events,
    );
    let open_all = t_open.elapsed();
    let times: Vec<Duration> = opened.done_at.iter().map(|t| *t - t_open).collect();
    if let Some(f) = opened.failure_summary(p.connections) {
        r.fail(f);
    }
    let conns = std::mem::take(&mut opened.conns);
    let mut open_lat = opened.latencies;
    let n_open = conns.len();
    r.result("opened", n_open);
    // Connections that failed to open (refused, reset, timed out, upgrade
    // refused): the target is none.
    r.result("open_failed", p.connections - n_open);
    r.result("open_all_ms", ms(open_all));
    r.result("open_per_s", round1(rate(n_open as f64, open_all)));
    // Time until the first K (or all, when fewer) had finished their initial pull.
    for k in [1000usize, 10_000] {
        let first_k = k.min(times.len());
        r.result(
            &format!("open_first_{k}"),
            json!({ "n": first_k, "ms": times.get(first_k.wrapping_sub(1)).map(|d| ms(*d)) }),
        );
    }
    r.result("open_one_latency", open_lat.summary());
    if open_all > Duration::from_secs(60) {
        r.note(format!(
            "opening took {:.0} s: the first sockets stayed silent that long before their first ping; \
             a server idle timeout shorter than that drops them (livestore-sync: WS_IDLE_TIMEOUT_SECS, 90 s)",
            open_all.as_secs_f64()
        ));
    }
    // The bench's own load: it must hold N sockets itself.
    let me = std::process::id();
    r.result("bench_rss_open_kib", util::rss_kib(me).ok());
    r.result("bench_threads_open", util::thread_count(me));

    std::thread::sleep(Duration::from_secs(1));
    let rss_open = rss(ctx, r);
    let (threads_open, maps_open) = threads_and_maps(ctx);

    // Idle window: each worker pings its connections spread evenly over the interval.
    info!(
        "idle: {n_open} connections idle for {:?}, pinging every {:?}",
        p.idle, p.ping_interval
    );
    let cpu0 = ctx.server_pid.and_then(|pid| util::cpu_ticks(pid).ok());
    let t_idle = Instant::now();
    let end = t_idle + p.idle;
    let mut workers = Vec::new();
    let mut rest = conns;
    let mut w = 0;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(p.per_worker));
        let mine = std::mem::replace(&mut rest, tail);
        let (interval, timeout) = (p.ping_interval, ctx.target.timeout);
        workers.push(util::spawn(format!("idle-{w}"), move || {
            ping_worker(mine, t_idle, end, interval, timeout)
        }));
        w += 1;
    }
    let mut rtt = Samples::new();
    let mut failures = 0u64;
    let mut worker_problems = Vec::new();
    let mut idle_conns = Vec::new();
    for h in workers {
        let (s, f, problems, conns) = h.join().map_err(|_| "an idle thread panicked")?;
        rtt.extend(s);
        failures += f;
        worker_problems.extend(problems);
        idle_conns.push(conns);
    }
    let window = t_idle.elapsed();
    // The window ends here, before any socket is closed: the server's work
    // for 10,000 closes is not idle time.
    let cpu1 = ctx.server_pid.and_then(|pid| util::cpu_ticks(pid).ok());
    let rss_idle = rss(ctx, r);
    for conns in idle_conns {
        worker_problems.extend(check_and_close(conns, p.seed_events as u64));
    }
    if let Some(pid) = ctx.server_pid {
        r.check(util::process_alive(pid), || {
            format!("the server process {pid} is gone (it died during the run)")
        });
    }
    r.check(failures == 0, || format!("{failures} pings failed"));
    for pr in worker_problems.into_iter().take(5) {
        r.fail(pr);
    }

    r.result("pings", rtt.len());
    r.result("ping_failures", failures);
    r.result("ping_rtt", rtt.summary());
    r.check(!rtt.is_empty() || p.idle < p.ping_interval, || {
        "no ping was answered".into()
    });

    let per_conn = |a: Option<u64>, b: Option<u64>| -> Value {
        match (a, b) {
            (Some(a), Some(b)) if n_open > 0 => {
                json!(round3((b as f64 - a as f64) / n_open as f64))
            }
            _ => Value::Null,
        }
    };
    r.result("server_rss_before_kib", rss_before);
    r.result("server_rss_open_kib", rss_open);
    r.result("server_rss_after_idle_kib", rss_idle);
    r.result("server_rss_per_conn_kib", per_conn(rss_before, rss_open));
    r.result(
        "server_rss_per_conn_after_idle_kib",
        per_conn(rss_before, rss_idle),
    );
    // Threads and memory mappings: vm.max_map_count bounds the mappings
    // of a process, so it bounds how many connections a thread-per-connection
    // server can hold.
    r.result("server_threads_before", threads_before);
    r.result("server_threads_open", threads_open);
    r.result("server_maps_before", maps_before);
    r.result("server_maps_open", maps_open);
    r.result("server_maps_per_conn", per_conn(maps_before, maps_open));
    r.result("vm_max_map_count", util::max_map_count());
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => {
            let secs = (b - a) as f64 / util::clock_ticks_per_sec() as f64;
            r.result("server_cpu_secs", round3(secs));
            // No idle window (`connect`): no idle CPU figure.
            (!p.idle.is_zero()).then(|| round3(secs / window.as_secs_f64() * 100.0))
        }
        _ => None,
    };
    r.result("server_idle_cpu_pct_of_one_core", cpu);
    r.result("idle_window_ms", ms(window));

    let ws = ctx.floors.ws();
    if let Ok(w) = &ws {
        r.ratio(
            "ping_p99_vs_ws_rtt_p99",
            ratio(rtt.pct(99.0), Some(w.rtt_p99_ms)),
        );
    }
    let mut floor = json!({ "ws_loopback": floor_json(&ws, |f| f.json.clone()) });
    if p.shape_floor {
        info!("idle: the shape floor at {} connections", p.connections);
        let shape = crate::shape::idle_floor(
            p.connections,
            ctx.target.spread_addrs,
            p.open_threads,
            p.idle,
            p.ping_interval,
        );
        if let Ok(f) = &shape {
            if let (Some(ours), Some(floor)) = (
                per_conn(rss_before, rss_open).as_f64(),
                f["rss_per_conn_kib"].as_f64(),
            ) {
                r.ratio(
                    "rss_per_conn_vs_shape_floor",
                    ratio(Some(ours), Some(floor)),
                );
            }
        }
        floor["shape_idle"] = floor_json(&shape, |f| f.clone());
    }
    r.floor = Some(floor);
    Ok(())
}

/// Pings each connection once per `interval`, spread evenly, until `end`.
/// Returns the round trips, the number of failed pings, problems, and the
/// connections (still open).
fn ping_worker(
    mut conns: Vec<Conn>,
    start: Instant,
    end: Instant,
    interval: Duration,
    timeout: Duration,
) -> (Samples, u64, Vec<String>, Vec<Conn>) {
    let mut rtt = Samples::new();
    let mut failed = 0u64;
    let mut problems = Vec::new();
    let m = conns.len() as u32;
    let mut dead = vec![false; conns.len()];
    'rounds: for round in 0u32.. {
        for j in 0..conns.len() {
            let at = start + interval * round + interval * j as u32 / m;
            if at >= end {
                break 'rounds;
            }
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if dead[j] {
                continue;
            }
            match conns[j].ping(Instant::now() + timeout) {
                Ok(d) => rtt.add(d),
                Err(e) => {
                    failed += 1;
                    dead[j] = true;
                    if problems.len() < 3 {
                        problems.push(format!("ping: {e}"));
                    }
                }
            }
        }
    }
    (rtt, failed, problems, conns)
}

/// Checks that each connection received exactly the seeded events and
/// nothing else, then closes it. Returns up to three problems.
fn check_and_close(conns: Vec<Conn>, seed: u64) -> Vec<String> {
    let mut problems = Vec::new();
    for c in conns {
        if (c.check.delivered != seed || !c.ok()) && problems.len() < 3 {
            problems.push(format!(
                "an idle connection got {} events (expected {seed}) / {:?}",
                c.check.delivered,
                c.all_problems()
            ));
        }
        c.close();
    }
    problems
}
