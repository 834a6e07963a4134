//! Reconnect storm: N clients connected and synced on one store drop their
//! sockets at once (no close handshake, like a network drop), E new events
//! are pushed, then all reconnect at once and pull from their cursor. Time
//! until every client is synced. Verifies each client got exactly the E new
//! events, in order, as pushed.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::json;

use super::{open_many, seed_store, Ctx, READ_BUF, SMALL_READ_BUF};
use crate::cli::Args;
use crate::conn::{Conn, PushOutcome};
use crate::events::{diff_event, make_chain, Event};
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ms, ratio, Samples};
use crate::util;

pub struct Params {
    pub clients: usize,
    pub events: usize,
    pub seed_events: usize,
    pub open_threads: usize,
    /// Threads that reconnect (each takes its share of the clients).
    pub concurrency: usize,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        let clients = a.count_or("clients", 1000)?;
        Ok(Params {
            clients,
            events: a.count_or("events", 100)?,
            seed_events: a.usize_or("seed-events", 100)?,
            open_threads: a.count_or("open-threads", 64)?,
            concurrency: a.count_or("concurrency", clients.min(1000))?,
        })
    }

    pub fn smoke() -> Params {
        Params {
            clients: 20,
            events: 30,
            seed_events: 10,
            open_threads: 4,
            concurrency: 20,
        }
    }
}

const PUSHER: &str = "storm-pusher";

struct Client {
    backend_id: Option<String>,
    cursor: u64,
}

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new("reconnect_storm", ctx.target.proto.as_str());
    r.param("clients", p.clients);
    r.param("events", p.events);
    r.param("seed_events", p.seed_events);
    r.param("concurrency", p.concurrency);
    let store = ctx.store_id("storm");
    r.param("store_id", store.as_str());
    let before = super::server_threads_fds(ctx);
    if let Err(e) = run_inner(ctx, p, &store, &mut r) {
        r.fail(e);
    }
    super::report_leftovers(ctx, &mut r, before);
    r
}

fn run_inner(ctx: &Ctx, p: &Params, store: &str, r: &mut Report) -> Result<(), String> {
    util::ensure_fd_room(p.clients as u64 + 2)?;
    let h0 = p.seed_events as u64;
    seed_store(ctx, store, 0, p.seed_events, 100, 200, PUSHER)?;

    info!("reconnect-storm: {} clients connect and sync", p.clients);
    let stores = Arc::new(vec![store.to_string()]);
    let opened = open_many(
        ctx,
        p.clients,
        p.open_threads,
        SMALL_READ_BUF,
        stores,
        p.seed_events,
    );
    if let Some(f) = opened.failure_summary(p.clients) {
        return Err(f);
    }
    let mut pusher = Conn::open(&ctx.target, store, READ_BUF)?;
    pusher.pull(0, true, ctx.target.deadline())?;

    // Everyone drops at once.
    let clients: Vec<Client> = opened
        .conns
        .iter()
        .map(|c| Client {
            backend_id: c.backend_id.clone(),
            cursor: c.check.last,
        })
        .collect();
    let t_drop = Instant::now();
    for c in opened.conns {
        c.abort();
    }
    r.result("drop_ms", ms(t_drop.elapsed()));
    if let Some(c) = clients.iter().find(|c| c.cursor != h0) {
        return Err(format!(
            "a client was synced to e{} instead of e{h0}",
            c.cursor
        ));
    }

    // New events while they are away.
    let new_events = make_chain(PUSHER, h0, p.events, 200);
    for chunk in new_events.chunks(50) {
        match pusher.push(chunk, ctx.target.deadline())? {
            PushOutcome::Acked => {}
            PushOutcome::Rejected(e) => {
                return Err(format!("push of e{} refused: {e}", chunk[0].seq_num))
            }
        }
    }
    pusher.close();

    // Everyone reconnects at once and pulls from its cursor.
    info!("reconnect-storm: {} clients reconnect", p.clients);
    let threads = p.concurrency.min(p.clients);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let release = Arc::new(Barrier::new(threads + 1));
    let expected = Arc::new(new_events);
    let mut shares: Vec<Vec<Client>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, c) in clients.into_iter().enumerate() {
        shares[i % threads].push(c);
    }
    let handles: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(t, share)| {
            let (barrier, release, expected) = (barrier.clone(), release.clone(), expected.clone());
            let target = ctx.target.clone();
            let store = store.to_string();
            util::spawn(format!("storm-{t}"), move || {
                let mut lat = Samples::new();
                let mut done = Vec::new();
                let mut problems = Vec::new();
                let mut keep = Vec::new();
                barrier.wait();
                for c in share {
                    let t0 = Instant::now();
                    match reconnect(&target, &store, &c, &expected) {
                        Ok(conn) => {
                            lat.add(t0.elapsed());
                            done.push(Instant::now());
                            keep.push(conn);
                        }
                        Err(e) if problems.len() < 3 => problems.push(e),
                        Err(_) => {}
                    }
                }
                // Stay connected until everyone is done, as real clients would.
                release.wait();
                for c in keep {
                    c.close();
                }
                (lat, done, problems)
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    release.wait();
    let mut lat = Samples::new();
    let mut last = t0;
    let mut synced = 0usize;
    for h in handles {
        let (l, done, problems) = h.join().map_err(|_| "a storm thread panicked")?;
        synced += done.len();
        last = done.into_iter().fold(last, Instant::max);
        lat.extend(l);
        for pr in problems {
            r.fail(pr);
        }
    }
    let all = last - t0;
    r.result("synced", synced);
    r.result("all_synced_ms", ms(all));
    r.result("client_sync", lat.summary());
    r.check(synced == p.clients, || {
        format!("{synced} of {} clients synced", p.clients)
    });

    // Floor: a loopback WebSocket handshake plus one round trip per client.
    let ws = ctx.floors.ws();
    if let Ok(w) = &ws {
        r.ratio(
            "client_sync_p50_vs_ws_handshake_plus_rtt_p50",
            ratio(lat.pct(50.0), Some(w.handshake_p50_ms + w.rtt_p50_ms)),
        );
    }
    r.floor = Some(json!({ "ws_loopback": floor_json(&ws, |f| f.json.clone()) }));
    Ok(())
}

/// Reconnects one client and pulls from its cursor; checks it got exactly
/// the new events.
fn reconnect(
    target: &crate::conn::Target,
    store: &str,
    c: &Client,
    expected: &[Event],
) -> Result<Conn, String> {
    let mut conn = Conn::open(target, store, SMALL_READ_BUF)?;
    conn.backend_id = c.backend_id.clone();
    let pulled = conn.pull(c.cursor, true, target.deadline())?;
    if pulled.events.len() != expected.len() {
        return Err(format!(
            "caught up with {} events, expected {}",
            pulled.events.len(),
            expected.len()
        ));
    }
    if let Some(d) = expected
        .iter()
        .zip(&pulled.events)
        .find_map(|(e, g)| diff_event(e, g))
    {
        return Err(d);
    }
    if !conn.ok() {
        return Err(format!("stream problems: {:?}", conn.all_problems()));
    }
    Ok(conn)
}
