//! Hot store: S live subscribers and P concurrent pushers on one store.
//! The pushers race on the same head, as real clients do: each pushes one
//! event on the head it has seen; a refused pusher waits until the event
//! that beat it has reached it (its live pull), rebases on the new head and
//! pushes again. Each pusher stops after K accepted events, so the store
//! ends at e(P·K).
//!
//! Verifies that the accepted events form one chain e1..e(P·K) (exactly one
//! accepted push per seqNum) and that every subscriber received every one
//! of them exactly once, in order, as pushed. Measures deliveries/s,
//! accepted events/s, refusals, and the delivery latency (from sending the
//! push that was accepted to a subscriber reading the event).

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::json;

use super::fan_out::spawn_subscriber;
use super::race::rejection_kind;
use super::{open_many, Ctx, READ_BUF, SMALL_READ_BUF};
use crate::cli::Args;
use crate::conn::{Conn, PushOutcome};
use crate::events::{diff_event, make_chain, Event};
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ms, rate, ratio, round1, Samples};
use crate::util;

pub struct Params {
    pub subscribers: usize,
    pub pushers: usize,
    /// Accepted events per pusher.
    pub events_per_pusher: usize,
    pub args_bytes: usize,
    pub open_threads: usize,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        Ok(Params {
            subscribers: a.count_or("subscribers", 1000)?,
            pushers: a.count_or("pushers", 10)?,
            events_per_pusher: a.count_or("events-per-pusher", 50)?,
            args_bytes: a.usize_or("args-bytes", 200)?,
            open_threads: a.count_or("open-threads", 64)?,
        })
    }

    pub fn smoke() -> Params {
        Params {
            subscribers: 6,
            pushers: 3,
            events_per_pusher: 5,
            args_bytes: 200,
            open_threads: 4,
        }
    }
}

/// What one pusher did.
struct PusherResult {
    /// Its accepted events, with the time the accepted push was sent.
    accepted: Vec<(Event, Instant)>,
    attempts: u64,
    refusals: BTreeMap<String, u64>,
    problems: Vec<String>,
}

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new("hot_store", ctx.target.proto.as_str());
    r.param("subscribers", p.subscribers);
    r.param("pushers", p.pushers);
    r.param("events_per_pusher", p.events_per_pusher);
    r.param("args_bytes", p.args_bytes);
    let store = ctx.store_id("hot");
    r.param("store_id", store.as_str());
    let before = super::server_threads_fds(ctx);
    if let Err(e) = run_inner(ctx, p, &store, &mut r) {
        r.fail(e);
    }
    super::report_leftovers(ctx, &mut r, before);
    r
}

fn pusher_id(i: usize) -> String {
    format!("hot-pusher-{i}")
}

/// One pusher: K accepted events, rebasing after every refusal.
fn push_loop(
    mut conn: Conn,
    i: usize,
    k: usize,
    args_bytes: usize,
    timeout: Duration,
    barrier: Arc<Barrier>,
) -> PusherResult {
    let mut res = PusherResult {
        accepted: Vec::with_capacity(k),
        attempts: 0,
        refusals: BTreeMap::new(),
        problems: Vec::new(),
    };
    barrier.wait();
    while res.accepted.len() < k {
        // Build on what this client has seen.
        let head = conn.check.last;
        let ev = make_chain(&pusher_id(i), head, 1, args_bytes).remove(0);
        let sent = Instant::now();
        res.attempts += 1;
        let step = match conn.push(std::slice::from_ref(&ev), sent + timeout) {
            Ok(PushOutcome::Acked) => {
                let seq = ev.seq_num;
                res.accepted.push((ev, sent));
                // Its own event comes back on its live stream.
                conn.live_until(seq, timeout).map(|_| ())
            }
            Ok(PushOutcome::Rejected(m)) => {
                *res.refusals.entry(rejection_kind(&m)).or_default() += 1;
                // Rebase: wait for what beat it.
                conn.live_until(head + 1, timeout).map(|_| ())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = step {
            res.problems.push(format!("pusher {i}, after e{head}: {e}"));
            break;
        }
    }
    if !conn.ok() {
        res.problems
            .push(format!("pusher {i}: {:?}", conn.all_problems()));
    }
    conn.close();
    res
}

fn run_inner(ctx: &Ctx, p: &Params, store: &str, r: &mut Report) -> Result<(), String> {
    util::ensure_fd_room((p.subscribers + p.pushers) as u64)?;
    let total = (p.pushers * p.events_per_pusher) as u64;
    info!(
        "hot-store: {} subscribers, {} pushers × {} events",
        p.subscribers, p.pushers, p.events_per_pusher
    );
    let opened = open_many(
        ctx,
        p.subscribers,
        p.open_threads,
        SMALL_READ_BUF,
        Arc::new(vec![store.to_string()]),
        0,
    );
    if let Some(f) = opened.failure_summary(p.subscribers) {
        return Err(f);
    }
    let mut pushers = Vec::new();
    for _ in 0..p.pushers {
        let mut c = Conn::open(&ctx.target, store, READ_BUF)?;
        c.pull(0, true, ctx.target.deadline())?;
        pushers.push(c);
    }
    let barrier = Arc::new(Barrier::new(p.subscribers + p.pushers + 1));
    let idle = ctx.target.timeout;
    let subs: Vec<_> = opened
        .conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| spawn_subscriber("hot-sub", i, conn, barrier.clone(), total, idle))
        .collect();
    let pushes: Vec<_> = pushers
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let barrier = barrier.clone();
            let (k, args) = (p.events_per_pusher, p.args_bytes);
            util::spawn(format!("hot-push-{i}"), move || {
                push_loop(conn, i, k, args, idle, barrier)
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();

    // The accepted chain: exactly one accepted push per seqNum.
    let mut by_seq: Vec<Option<(Event, Instant)>> = vec![None; total as usize];
    let mut attempts = 0u64;
    let mut refusals = BTreeMap::<String, u64>::new();
    let mut last_sent = t0;
    let mut per_pusher = Vec::new();
    for h in pushes {
        let res = h.join().map_err(|_| "a pusher thread panicked")?;
        attempts += res.attempts;
        for (kind, n) in res.refusals {
            *refusals.entry(kind).or_default() += n;
        }
        for pr in res.problems.into_iter().take(3) {
            r.fail(pr);
        }
        per_pusher.push(res.accepted.len());
        for (ev, sent) in res.accepted {
            last_sent = last_sent.max(sent);
            let slot = (ev.seq_num as usize)
                .checked_sub(1)
                .and_then(|i| by_seq.get_mut(i));
            match slot {
                Some(s @ None) => *s = Some((ev, sent)),
                Some(Some((first, _))) => r.fail(format!(
                    "e{} accepted twice (from {} and {})",
                    ev.seq_num, first.client_id, ev.client_id
                )),
                None => r.fail(format!("e{} accepted beyond e{total}", ev.seq_num)),
            }
        }
    }
    let push_phase = t0.elapsed();
    let missing = by_seq.iter().filter(|s| s.is_none()).count();
    r.check(missing == 0, || {
        format!("{missing} of e1..e{total} were never accepted")
    });

    let mut lat = Samples::new();
    let mut last_arrival = t0;
    let mut deliveries = 0u64;
    let mut bad_subs = 0usize;
    for h in subs {
        let res = h.join().map_err(|_| "a subscriber thread panicked")?;
        let mut sub_ok = res.problems.is_empty() && res.events.len() as u64 == total;
        for pr in res.problems.into_iter().take(2) {
            r.fail(pr);
        }
        for (i, got) in res.events.iter().enumerate() {
            let diff = match by_seq.get(i) {
                Some(Some((want, _))) => diff_event(want, got),
                _ => Some(format!("e{} was delivered but not accepted", got.seq_num)),
            };
            if let Some(d) = diff {
                sub_ok = false;
                r.fail(format!("a subscriber's event {}: {d}", i + 1));
                break;
            }
        }
        if !sub_ok {
            bad_subs += 1;
        }
        for (seq, at) in res.arrivals {
            deliveries += 1;
            last_arrival = last_arrival.max(at);
            if let Some(Some((_, sent))) = by_seq.get((seq as usize).wrapping_sub(1)) {
                lat.add(at.saturating_duration_since(*sent));
            }
        }
    }
    r.check(bad_subs == 0, || {
        format!(
            "{bad_subs} of {} subscribers did not receive e1..e{total} exactly once, in order, as pushed",
            p.subscribers
        )
    });
    let expected = total * p.subscribers as u64;
    r.check(deliveries == expected, || {
        format!("{deliveries} deliveries, expected {expected}")
    });
    let span = last_arrival - t0;
    let refused: u64 = refusals.values().sum();
    r.result("accepted", total as usize - missing);
    r.result("push_attempts", attempts);
    r.result("refusals", refused);
    r.result("refusal_kinds", json!(refusals));
    r.result("accepted_per_pusher", json!(per_pusher));
    r.result("push_phase_ms", ms(push_phase));
    r.result(
        "accepted_per_s",
        round1(rate((total as usize - missing) as f64, push_phase)),
    );
    r.result("deliveries", deliveries);
    r.result("delivery_span_ms", ms(span));
    r.result("deliveries_per_s", round1(rate(deliveries as f64, span)));
    r.result("delivery_latency", lat.summary());
    let _ = last_sent;

    let ws = ctx.floors.ws();
    if let Ok(w) = &ws {
        r.ratio(
            "latency_p50_vs_ws_rtt_p50",
            ratio(lat.pct(50.0), Some(w.rtt_p50_ms)),
        );
    }
    let mut floor = json!({ "ws_loopback": floor_json(&ws, |f| f.json.clone()) });
    if let Some(pg) = ctx.floors.pg_insert() {
        floor["pg_insert"] = floor_json(&pg, |f| f.json.clone());
    }
    r.floor = Some(floor);
    Ok(())
}
