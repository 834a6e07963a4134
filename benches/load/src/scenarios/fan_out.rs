//! Fan-out: S live subscribers on one store, one pusher, K single-event
//! pushes (each after the previous ack). Measures push-to-delivery latency
//! over all deliveries and deliveries/s. Verifies every subscriber received
//! every event exactly once, in order, as pushed.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::json;

use super::{Ctx, READ_BUF};
use crate::cli::Args;
use crate::conn::{Conn, PushOutcome};
use crate::events::{diff_event, make_chain, Event};
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ms, rate, ratio, round1, Samples};
use crate::util;

pub struct Params {
    pub subscribers: usize,
    pub pushes: usize,
    pub args_bytes: usize,
    /// Subscribers connect here instead of `--url` (another instance on the
    /// same PostgreSQL: cross-instance fan-out).
    pub subscriber_url: Option<String>,
    /// Also measure the shape floor's fan-out (a minimal thread-per-connection
    /// server broadcasting a pre-encoded frame, see shape.rs) at the same size.
    pub shape_floor: bool,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        Ok(Params {
            subscribers: a.count_or("subscribers", 100)?,
            pushes: a.count_or("pushes", 200)?,
            args_bytes: a.usize_or("args-bytes", 200)?,
            subscriber_url: a.opt_str("subscriber-url"),
            shape_floor: a.opt_str("shape-floor").is_some(),
        })
    }

    pub fn smoke() -> Params {
        Params {
            subscribers: 5,
            pushes: 10,
            args_bytes: 200,
            subscriber_url: None,
            shape_floor: false,
        }
    }
}

const PUSHER: &str = "fanout-pusher";

/// What one live subscriber received.
pub(super) struct SubResult {
    /// (seqNum, arrival) of every delivered event.
    pub arrivals: Vec<(u64, Instant)>,
    pub events: Vec<Event>,
    pub problems: Vec<String>,
}

/// A thread for subscriber `i` (thread name `{name}-{i}`): waits at
/// `barrier`, then takes live batches until `total` events arrived (or
/// `idle` passed without one), then closes its socket.
pub(super) fn spawn_subscriber(
    name: &str,
    i: usize,
    mut conn: Conn,
    barrier: Arc<Barrier>,
    total: u64,
    idle: std::time::Duration,
) -> std::thread::JoinHandle<SubResult> {
    util::spawn(format!("{name}-{i}"), move || {
        let mut res = SubResult {
            arrivals: Vec::new(),
            events: Vec::new(),
            problems: Vec::new(),
        };
        barrier.wait();
        match conn.live_until(total, idle) {
            Ok(batches) => {
                for b in batches {
                    for e in b.events {
                        res.arrivals.push((e.seq_num, b.at));
                        res.events.push(e);
                    }
                }
            }
            Err(e) => res.problems.push(format!("subscriber {i}: {e}")),
        }
        if !conn.ok() {
            res.problems
                .push(format!("subscriber {i}: {:?}", conn.all_problems()));
        }
        conn.close();
        res
    })
}

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new("fan_out", ctx.target.proto.as_str());
    r.param("subscribers", p.subscribers);
    r.param("pushes", p.pushes);
    r.param("args_bytes", p.args_bytes);
    r.param("cross_instance", p.subscriber_url.is_some());
    let store = ctx.store_id("fanout");
    r.param("store_id", store.as_str());
    if let Err(e) = run_inner(ctx, p, &store, &mut r) {
        r.fail(e);
    }
    r
}

fn run_inner(ctx: &Ctx, p: &Params, store: &str, r: &mut Report) -> Result<(), String> {
    info!(
        "fan-out: {} subscribers, {} pushes",
        p.subscribers, p.pushes
    );
    // Subscribers connect and finish their initial pull before the pushing starts.
    let sub_target = match &p.subscriber_url {
        Some(url) => crate::conn::Target {
            base: crate::proto::BaseUrl::parse(url)?,
            ..ctx.target.clone()
        },
        None => ctx.target.clone(),
    };
    let mut subs = Vec::new();
    for _ in 0..p.subscribers {
        let mut c = Conn::open(&sub_target, store, READ_BUF)?;
        c.pull(0, true, ctx.target.deadline())?;
        subs.push(c);
    }
    let k = p.pushes as u64;
    let barrier = Arc::new(Barrier::new(p.subscribers + 1));
    let handles: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, conn)| spawn_subscriber("sub", i, conn, barrier.clone(), k, ctx.target.timeout))
        .collect();

    let mut pusher = Conn::open(&ctx.target, store, READ_BUF)?;
    let expected = make_chain(PUSHER, 0, p.pushes, p.args_bytes);
    // Send time of each push, by seqNum - 1.
    let mut sent: Vec<Option<Instant>> = vec![None; p.pushes];
    barrier.wait();
    let t0 = Instant::now();
    let mut acks = Samples::new();
    let mut push_error = None;
    for (i, e) in expected.iter().enumerate() {
        let t = Instant::now();
        sent[i] = Some(t);
        match pusher.push(std::slice::from_ref(e), ctx.target.deadline()) {
            Ok(PushOutcome::Acked) => acks.add(t.elapsed()),
            Ok(PushOutcome::Rejected(m)) => {
                push_error = Some(format!("push of e{} refused: {m}", e.seq_num));
                break;
            }
            Err(m) => {
                push_error = Some(format!("push of e{}: {m}", e.seq_num));
                break;
            }
        }
    }
    let push_done = t0.elapsed();
    if let Some(e) = push_error {
        r.fail(e);
    }

    let mut lat = Samples::new();
    let mut last_arrival = t0;
    let mut deliveries = 0u64;
    for h in handles {
        let res = h.join().map_err(|_| "a subscriber thread panicked")?;
        for pr in res.problems {
            r.fail(pr);
        }
        r.check(res.events.len() == p.pushes, || {
            format!(
                "a subscriber received {} events, expected {}",
                res.events.len(),
                p.pushes
            )
        });
        let diffs: Vec<String> = expected
            .iter()
            .zip(&res.events)
            .filter_map(|(e, g)| diff_event(e, g))
            .take(2)
            .collect();
        r.check(diffs.is_empty(), || {
            format!("delivered events differ: {diffs:?}")
        });
        for (seq, at) in res.arrivals {
            deliveries += 1;
            last_arrival = last_arrival.max(at);
            if let Some(Some(s)) = sent.get((seq as usize).wrapping_sub(1)) {
                lat.add(at.saturating_duration_since(*s));
            }
        }
    }
    pusher.close();
    let span = last_arrival - t0;
    r.result("deliveries", deliveries);
    r.result("push_phase_ms", ms(push_done));
    r.result("delivery_span_ms", ms(span));
    r.result("deliveries_per_s", round1(rate(deliveries as f64, span)));
    r.result("delivery_latency", lat.summary());
    r.result("push_ack_latency", acks.summary());
    r.check(deliveries == (p.subscribers * p.pushes) as u64, || {
        format!(
            "{deliveries} deliveries, expected {}",
            p.subscribers * p.pushes
        )
    });

    // Floors: a loopback WebSocket round trip and, with a database, one
    // PostgreSQL commit (each push is committed before it is delivered).
    let ws = ctx.floors.ws();
    if let Ok(w) = &ws {
        r.ratio(
            "latency_p50_vs_ws_rtt_p50",
            ratio(lat.pct(50.0), Some(w.rtt_p50_ms)),
        );
        r.ratio(
            "latency_p99_vs_ws_rtt_p99",
            ratio(lat.pct(99.0), Some(w.rtt_p99_ms)),
        );
    }
    let mut floor = json!({ "ws_loopback": floor_json(&ws, |f| f.json.clone()) });
    match ctx.floors.pg_insert() {
        None => r.note("PostgreSQL floor skipped: no --database-url"),
        Some(pg) => {
            if let (Ok(f), Ok(w)) = (&pg, &ws) {
                r.ratio(
                    "latency_p50_vs_commit_p50_plus_ws_rtt_p50",
                    ratio(lat.pct(50.0), Some(f.commit_p50_ms + w.rtt_p50_ms)),
                );
            }
            floor["pg_insert"] = floor_json(&pg, |f| f.json.clone());
        }
    }
    if p.shape_floor {
        // At the push rate this run reached.
        let interval = push_done / p.pushes.max(1) as u32;
        let shape = crate::shape::fan_out_floor(p.subscribers, p.pushes, interval);
        if let Ok(f) = &shape {
            r.ratio(
                "latency_p99_vs_shape_floor_p99",
                ratio(lat.pct(99.0), f["delivery_latency"]["p99_ms"].as_f64()),
            );
        }
        floor["shape_fan_out"] = floor_json(&shape, |f| f.clone());
    }
    r.floor = Some(floor);
    Ok(())
}
