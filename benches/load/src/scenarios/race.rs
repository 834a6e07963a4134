//! Race: C clients on one store push an event on the same parent at the
//! same moment (a barrier), R rounds. Verifies that exactly one push wins
//! each round, all others are refused, and every client receives the
//! winner's event exactly once (and nothing else). Measures the round
//! latency: from the barrier to the last client having its answer and the
//! winner's event.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use crossbeam_channel::unbounded;
use serde_json::json;

use super::{Ctx, READ_BUF};
use crate::cli::Args;
use crate::conn::{Conn, PushOutcome};
use crate::events::{diff_event, make_chain, Event};
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ratio, Samples};
use crate::util;

pub struct Params {
    pub clients: usize,
    pub rounds: usize,
    pub args_bytes: usize,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        let p = Params {
            clients: a.count_or("clients", 20)?,
            rounds: a.count_or("rounds", 10)?,
            args_bytes: a.usize_or("args-bytes", 200)?,
        };
        if p.clients < 2 {
            return Err("--clients must be at least 2 for a race".into());
        }
        Ok(p)
    }

    pub fn smoke() -> Params {
        Params {
            clients: 4,
            rounds: 3,
            args_bytes: 200,
        }
    }
}

/// What one client saw in one round.
struct Turn {
    client: usize,
    round: usize,
    start: Instant,
    end: Instant,
    pushed: Event,
    outcome: Result<PushOutcome, String>,
    /// Events delivered to this client during the round.
    delivered: Vec<Event>,
    error: Option<String>,
}

/// A refusal reduced to its kind: the 0.4 error tag, or the 0.3 message
/// with its numbers replaced by `#`.
pub(crate) fn rejection_kind(m: &str) -> String {
    let m = match m.split_once(": {") {
        Some((tag, _)) => tag,
        None => m,
    };
    let mut out = String::new();
    for c in m.chars().take(100) {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn racer_id(i: usize) -> String {
    format!("racer-{i}")
}

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new("race", ctx.target.proto.as_str());
    r.param("clients", p.clients);
    r.param("rounds", p.rounds);
    let store = ctx.store_id("race");
    r.param("store_id", store.as_str());
    if let Err(e) = run_inner(ctx, p, &store, &mut r) {
        r.fail(e);
    }
    r
}

fn run_inner(ctx: &Ctx, p: &Params, store: &str, r: &mut Report) -> Result<(), String> {
    info!("race: {} clients × {} rounds", p.clients, p.rounds);
    let mut conns = Vec::new();
    for _ in 0..p.clients {
        let mut c = Conn::open(&ctx.target, store, READ_BUF)?;
        c.pull(0, true, ctx.target.deadline())?;
        conns.push(c);
    }
    let barrier = Arc::new(Barrier::new(p.clients));
    let (tx, rx) = unbounded::<Turn>();
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            let target = ctx.target.clone();
            let (rounds, args) = (p.rounds, p.args_bytes);
            util::spawn(format!("racer-{i}"), move || {
                for round in 0..rounds {
                    // Each client builds on what it has seen (normally: one event per round).
                    let head = conn.check.last;
                    let pushed = make_chain(&racer_id(i), head, 1, args).remove(0);
                    barrier.wait();
                    let start = Instant::now();
                    let outcome = conn
                        .send_push(std::slice::from_ref(&pushed))
                        .and_then(|id| conn.await_push(&id, target.deadline()));
                    let mut error = None;
                    let mut delivered = Vec::new();
                    match conn.live_until(head + 1, target.timeout) {
                        Ok(batches) => delivered.extend(batches.into_iter().flat_map(|b| b.events)),
                        Err(e) => error = Some(e),
                    }
                    let end = Instant::now();
                    let turn = Turn {
                        client: i,
                        round,
                        start,
                        end,
                        pushed,
                        outcome,
                        delivered,
                        error,
                    };
                    if tx.send(turn).is_err() {
                        break;
                    }
                }
                let problems = conn.all_problems();
                conn.close();
                problems
            })
        })
        .collect();
    drop(tx);

    let mut turns: Vec<Vec<Turn>> = (0..p.rounds).map(|_| Vec::new()).collect();
    for t in rx.iter() {
        turns[t.round].push(t);
    }
    for (i, h) in handles.into_iter().enumerate() {
        let problems = h.join().map_err(|_| "a racer thread panicked")?;
        r.check(problems.is_empty(), || format!("racer {i}: {problems:?}"));
    }

    let mut round_lat = Samples::new();
    let mut rejections = std::collections::BTreeMap::<String, u64>::new();
    let mut winners = Vec::new();
    for (round, ts) in turns.iter().enumerate() {
        r.check(ts.len() == p.clients, || {
            format!(
                "round {round}: {} of {} clients reported",
                ts.len(),
                p.clients
            )
        });
        let won: Vec<&Turn> = ts
            .iter()
            .filter(|t| matches!(t.outcome, Ok(PushOutcome::Acked)))
            .collect();
        r.check(won.len() == 1, || {
            format!(
                "round {round}: {} pushes accepted, expected exactly 1",
                won.len()
            )
        });
        for t in ts {
            match &t.outcome {
                Ok(PushOutcome::Rejected(m)) => {
                    *rejections.entry(rejection_kind(m)).or_default() += 1;
                }
                Err(e) => r.fail(format!("round {round}, client {}: {e}", t.client)),
                Ok(PushOutcome::Acked) => {}
            }
            if let Some(e) = &t.error {
                r.fail(format!("round {round}, client {}: {e}", t.client));
            }
        }
        if let [w] = won[..] {
            winners.push(w.client);
            for t in ts {
                let once =
                    t.delivered.len() == 1 && diff_event(&w.pushed, &t.delivered[0]).is_none();
                r.check(once, || {
                    let got: Vec<(u64, &str)> = t.delivered.iter().map(|e| (e.seq_num, e.client_id.as_str())).collect();
                    format!(
                        "round {round}: client {} received {got:?}, expected only the winner's e{} from {}",
                        t.client,
                        w.pushed.seq_num,
                        w.pushed.client_id
                    )
                });
            }
        }
        if let (Some(s), Some(e)) = (
            ts.iter().map(|t| t.start).min(),
            ts.iter().map(|t| t.end).max(),
        ) {
            round_lat.add(e - s);
        }
    }
    r.result("round_latency", round_lat.summary());
    r.result("winners", winners);
    r.result("rejections", json!(rejections));

    match ctx.floors.pg_insert() {
        None => r.note("PostgreSQL floors skipped: no --database-url"),
        Some(pg) => {
            let ws = ctx.floors.ws();
            if let (Ok(f), Ok(w)) = (&pg, &ws) {
                r.ratio(
                    "round_p50_vs_commit_p50_plus_ws_rtt_p50",
                    ratio(round_lat.pct(50.0), Some(f.commit_p50_ms + w.rtt_p50_ms)),
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

#[cfg(test)]
mod tests {
    use super::rejection_kind;

    #[test]
    fn rejections_are_grouped_by_kind() {
        assert_eq!(
            rejection_kind("Invalid parent event number. Received e12 but expected e13"),
            "Invalid parent event number. Received e# but expected e#"
        );
        assert_eq!(
            rejection_kind(
                r#"ServerAheadError: {"_tag":"ServerAheadError","minimumExpectedNum":3,"providedNum":2}"#
            ),
            "ServerAheadError"
        );
    }
}
