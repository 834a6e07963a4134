//! Cold pull: seed a store with N events, then time one fresh client's full
//! pull until the last page. Verifies the count, the order, the chain and
//! that every event comes back exactly as pushed.

use std::time::Instant;

use serde_json::json;

use super::{seed_store, Ctx, READ_BUF};
use crate::cli::Args;
use crate::conn::Conn;
use crate::events::{diff_event, make_chain};
use crate::floors::floor_json;
use crate::report::Report;
use crate::stats::{ms, rate, ratio, round1};

pub struct Params {
    pub events: usize,
    pub args_bytes: usize,
    pub seed_batch: usize,
}

impl Params {
    pub fn from_args(a: &Args) -> Result<Params, String> {
        Ok(Params {
            events: a.usize_or("events", 100_000)?,
            args_bytes: a.usize_or("args-bytes", 200)?,
            seed_batch: a.count_or("seed-batch", 100)?.min(100),
        })
    }

    pub fn smoke() -> Params {
        Params {
            events: 250,
            args_bytes: 200,
            seed_batch: 100,
        }
    }
}

const CLIENT: &str = "seed";

pub fn run(ctx: &Ctx, p: &Params) -> Report {
    let mut r = Report::new("cold_pull", ctx.target.proto.as_str());
    r.param("events", p.events);
    r.param("args_bytes", p.args_bytes);
    r.param("seed_batch", p.seed_batch);
    let store = ctx.store_id("coldpull");
    r.param("store_id", store.as_str());
    if let Err(e) = run_inner(ctx, p, &store, &mut r) {
        r.fail(e);
    }
    r
}

fn run_inner(ctx: &Ctx, p: &Params, store: &str, r: &mut Report) -> Result<(), String> {
    info!("cold-pull: seeding {store} with {} events", p.events);
    let seed = seed_store(ctx, store, 0, p.events, p.seed_batch, p.args_bytes, CLIENT)?;
    r.result("seed_ms", ms(seed));
    r.result("seed_events_per_s", round1(rate(p.events as f64, seed)));

    info!("cold-pull: pulling with a fresh client");
    let t_connect = Instant::now();
    let mut conn = Conn::open(&ctx.target, store, READ_BUF)?;
    let connect = t_connect.elapsed();
    let t0 = Instant::now();
    // A real client's pull: live (0.4), from the beginning.
    let pulled = conn.pull(0, true, ctx.deadline_x(20))?;
    let took = t0.elapsed();

    let eps = rate(pulled.events.len() as f64, took);
    let mbps = rate(pulled.bytes as f64 / 1e6, took);
    r.result("connect_ms", ms(connect));
    r.result("pull_ms", ms(took));
    r.result("events", pulled.events.len());
    r.result("pages", pulled.pages);
    r.result("bytes", pulled.bytes);
    r.result("events_per_s", round1(eps));
    r.result("mb_per_s", round1(mbps));

    // Verification: all N, in order, chained, exactly as pushed.
    r.check(pulled.events.len() == p.events, || {
        format!(
            "pulled {} events, expected {}",
            pulled.events.len(),
            p.events
        )
    });
    r.check(conn.ok(), || {
        format!("stream problems: {:?}", conn.all_problems())
    });
    let expected = make_chain(CLIENT, 0, p.events, p.args_bytes);
    let mismatches: Vec<String> = expected
        .iter()
        .zip(&pulled.events)
        .filter_map(|(e, g)| diff_event(e, g))
        .take(3)
        .collect();
    r.check(mismatches.is_empty(), || {
        format!("events not returned as pushed: {mismatches:?}")
    });
    let min_pages = p.events.div_ceil(100).max(1);
    r.check(pulled.pages >= min_pages, || {
        format!(
            "{} pages for {} events (pages hold ≤100)",
            pulled.pages, p.events
        )
    });
    conn.close();

    // Floor: PostgreSQL reading the same rows.
    match ctx.floors.pg_copy(store) {
        None => {
            r.floor = None;
            r.note("PostgreSQL floors skipped: no --database-url");
        }
        Some(res) => {
            if let Ok(f) = &res {
                if f.rows != p.events as u64 {
                    r.note(format!(
                        "COPY floor read {} rows, expected {} (is --events-table right?)",
                        f.rows, p.events
                    ));
                }
                r.ratio(
                    "events_per_s_vs_pg_copy",
                    ratio(Some(eps), Some(f.events_per_s)),
                );
                r.ratio("mb_per_s_vs_pg_copy", ratio(Some(mbps), Some(f.mb_per_s)));
            }
            r.floor = Some(json!({ "pg_copy": floor_json(&res, |f| f.json.clone()) }));
        }
    }
    Ok(())
}
