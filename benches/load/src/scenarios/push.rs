//! Push: C clients on C stores, each pushes K sequential batches of B events
//! (the next one after the ack). Measures events/s over all clients and the
//! ack latency. Verifies every push was acked, every client got its own
//! events back on its live stream, and each store holds exactly K×B events
//! in order (read back by a fresh client).

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::json;

use super::{Ctx, READ_BUF};
use crate::cli::Args;
use crate::conn::{Conn, PushOutcome};
use crate::events::{diff_event, make_chain};
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ms, rate, ratio, round1, Samples};
use crate::util;

pub struct Params {
    pub clients: usize,
    pub batches: usize,
    pub batch_size: usize,
    pub args_bytes: usize,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        Ok(Params {
            clients: a.count_or("clients", 4)?,
            batches: a.count_or("batches", 50)?,
            batch_size: a.count_or("batch-size", 50)?,
            args_bytes: a.usize_or("args-bytes", 200)?,
        })
    }

    pub fn smoke() -> Params {
        Params {
            clients: 2,
            batches: 3,
            batch_size: 50,
            args_bytes: 200,
        }
    }
}

struct ClientResult {
    latencies: Samples,
    acked_batches: usize,
    done_at: Instant,
    problems: Vec<String>,
}

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new("push", ctx.target.proto.as_str());
    r.param("clients", p.clients);
    r.param("stores", p.clients);
    r.param("batches", p.batches);
    r.param("batch_size", p.batch_size);
    r.param("args_bytes", p.args_bytes);
    if let Err(e) = run_inner(ctx, p, &mut r) {
        r.fail(e);
    }
    r
}

fn run_inner(ctx: &Ctx, p: &Params, r: &mut Report) -> Result<(), String> {
    let stores: Vec<String> = (0..p.clients)
        .map(|i| format!("{}-{i}", ctx.store_id("push")))
        .collect();
    // Connect and sync every client first; time only the pushing.
    let mut conns = Vec::new();
    for s in &stores {
        let mut c = Conn::open(&ctx.target, s, READ_BUF)?;
        let pulled = c.pull(0, true, ctx.target.deadline())?;
        if !pulled.events.is_empty() {
            return Err(format!("fresh store {s} is not empty"));
        }
        conns.push(c);
    }
    info!(
        "push: {} clients × {} batches × {} events",
        p.clients, p.batches, p.batch_size
    );
    let barrier = Arc::new(Barrier::new(p.clients + 1));
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let barrier = barrier.clone();
            let target = ctx.target.clone();
            let (batches, size, args) = (p.batches, p.batch_size, p.args_bytes);
            util::spawn(format!("push-{i}"), move || {
                let client = format!("pusher-{i}");
                let mut res = ClientResult {
                    latencies: Samples::new(),
                    acked_batches: 0,
                    done_at: Instant::now(),
                    problems: Vec::new(),
                };
                barrier.wait();
                let mut parent = 0u64;
                for _ in 0..batches {
                    let events = make_chain(&client, parent, size, args);
                    let t = Instant::now();
                    match conn.push(&events, target.deadline()) {
                        Ok(PushOutcome::Acked) => res.latencies.add(t.elapsed()),
                        Ok(PushOutcome::Rejected(e)) => {
                            res.problems
                                .push(format!("{client}: push of e{} refused: {e}", parent + 1));
                            break;
                        }
                        Err(e) => {
                            res.problems.push(format!("{client}: {e}"));
                            break;
                        }
                    }
                    res.acked_batches += 1;
                    parent += size as u64;
                }
                res.done_at = Instant::now();
                // Every pushed event must come back on the live stream (the
                // pusher's confirmation), in order.
                if let Err(e) = conn.live_until(parent, target.timeout) {
                    res.problems.push(format!("{client}: echo: {e}"));
                }
                if !conn.ok() {
                    res.problems.push(format!(
                        "{client}: stream problems: {:?}",
                        conn.all_problems()
                    ));
                }
                conn.close();
                res
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let mut lat = Samples::new();
    let mut acked = 0;
    let mut end = t0;
    for h in handles {
        let res = h.join().map_err(|_| "a push thread panicked")?;
        lat.extend(res.latencies);
        acked += res.acked_batches;
        end = end.max(res.done_at);
        for pr in res.problems {
            r.fail(pr);
        }
    }
    let wall = end - t0;
    let events = (acked * p.batch_size) as f64;
    let eps = rate(events, wall);
    r.result("wall_ms", ms(wall));
    r.result("acked_batches", acked);
    r.result("events", events as u64);
    r.result("events_per_s", round1(eps));
    r.result("ack_latency", lat.summary());
    r.check(acked == p.clients * p.batches, || {
        format!("{acked} of {} batches acked", p.clients * p.batches)
    });

    // Read every store back with a fresh (non-live) pull.
    for (i, s) in stores.iter().enumerate() {
        let mut c = Conn::open(&ctx.target, s, READ_BUF)?;
        let pulled = c.pull(0, false, ctx.deadline_x(4))?;
        let expected = make_chain(
            &format!("pusher-{i}"),
            0,
            p.batches * p.batch_size,
            p.args_bytes,
        );
        r.check(pulled.events.len() == expected.len(), || {
            format!(
                "store {s} holds {} events, expected {}",
                pulled.events.len(),
                expected.len()
            )
        });
        let diffs: Vec<String> = expected
            .iter()
            .zip(&pulled.events)
            .filter_map(|(e, g)| diff_event(e, g))
            .take(2)
            .collect();
        r.check(diffs.is_empty(), || format!("store {s}: {diffs:?}"));
        r.check(c.ok(), || {
            format!("store {s} read-back: {:?}", c.all_problems())
        });
        c.close();
    }

    // Floors: PostgreSQL committing 50-row batches, plus the WebSocket round trip.
    match ctx.floors.pg_insert() {
        None => r.note("PostgreSQL floors skipped: no --database-url"),
        Some(pg) => {
            let ws = ctx.floors.ws();
            if let Ok(f) = &pg {
                r.ratio(
                    "events_per_s_vs_pg_insert",
                    ratio(Some(eps), Some(f.events_per_s)),
                );
                let floor_ack = ws.as_ref().ok().map(|w| f.commit_p50_ms + w.rtt_p50_ms);
                r.ratio(
                    "ack_p50_vs_commit_p50_plus_ws_rtt_p50",
                    ratio(lat.pct(50.0), floor_ack),
                );
            }
            r.floor = Some(json!({
                "pg_insert": floor_json(&pg, |f| f.json.clone()),
                "ws_loopback": floor_json(&ws, |f| f.json.clone()),
            }));
        }
    }
    Ok(())
}
