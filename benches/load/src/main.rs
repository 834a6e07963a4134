//! `livestore-sync-bench`: load generator and benchmark for livestore-sync,
//! or any server of the `@livestore/sync-cf` WebSocket protocols 0.3/0.4.
//!
//! It speaks the wire protocol itself (it is not the npm client), so it runs
//! against any compatible URL. Each scenario verifies what it measured and
//! prints one JSON line on stdout; see `--help` and the modules under
//! `scenarios/`.
#![forbid(unsafe_code)]

/// Logs a line to stderr (stdout carries only the JSON lines).
macro_rules! info {
    ($($t:tt)*) => { eprintln!("[bench] {}", format!($($t)*)) };
}

mod cli;
mod conn;
mod events;
mod floors;
#[cfg(test)]
mod mock;
mod proto;
mod report;
mod scenarios;
mod shape;
mod stats;
mod util;

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{Args, USAGE};
use crate::conn::Target;
use crate::floors::{floor_json, Floors};
use crate::proto::{BaseUrl, Proto};
use crate::report::Report;
use crate::scenarios::{cold_pull, fan_out, hot_store, idle, push, race, reconnect_storm, Ctx};

const DEFAULT_COPY_COLUMNS: &str =
    "seq_num, parent_seq_num, name, args, created_at, client_id, session_id";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match Args::parse(&argv) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e),
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => usage_error(&e),
    }
}

fn usage_error(e: &str) -> ExitCode {
    eprintln!("livestore-sync-bench: {e}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Runs the command; `Ok(all checks passed)`, `Err` for bad usage.
fn run(args: &Args) -> Result<bool, String> {
    if args.command == "floor-server" {
        // The shape floor's server (a child of the bench; see shape.rs).
        let port = args.u64_or("port", 0)? as u16;
        args.finish()?;
        shape::serve(port)?;
        return Ok(true);
    }
    let is_smoke = args.command == "smoke";
    let protocols: Vec<Proto> = match args.opt_str("protocol") {
        Some(p) if p == "both" => vec![Proto::V03, Proto::V04],
        Some(p) => vec![Proto::parse(&p)?],
        None if is_smoke => vec![Proto::V03, Proto::V04],
        None => vec![Proto::V04],
    };
    let token = args.str_or("auth-token", "insecure-token-change-me");
    let payload = (token != "none").then(|| json!({ "authToken": token }).to_string());
    let timeout = args.secs_or("timeout-secs", 30.0)?;
    let floors = Floors::new(
        args.opt_str("database-url"),
        args.usize_or("floor-samples", if is_smoke { 200 } else { 2000 })?,
        args.str_or("events-table", "events"),
        args.str_or("copy-columns", DEFAULT_COPY_COLUMNS),
    );
    let server_pid = args.opt_u64("server-pid")?.map(|p| p as u32);
    let store_prefix = args.str_or("store-prefix", "bench");
    let url = args.opt_str("url");
    let spread_addrs = args.usize_or("spread-addrs", 1)?;
    if !(1..=254).contains(&spread_addrs) {
        return Err("--spread-addrs must be between 1 and 254".into());
    }

    if args.command == "floors" {
        args.finish()?;
        return Ok(run_floors(&floors));
    }

    // Scenario parameters are read before anything runs, so a bad flag
    // fails at once.
    enum Plan {
        One(Box<dyn Fn(&Ctx) -> Report>),
        Smoke,
    }
    let plan = match args.command.as_str() {
        "cold-pull" => {
            let p = cold_pull::Params::from_args(args)?;
            Plan::One(Box::new(move |c| cold_pull::run(c, &p)))
        }
        "push" => {
            let p = push::Params::from_args(args)?;
            Plan::One(Box::new(move |c| push::run(c, &p)))
        }
        "fan-out" => {
            let p = fan_out::Params::from_args(args)?;
            Plan::One(Box::new(move |c| fan_out::run(c, &p)))
        }
        "idle" => {
            let p = idle::Params::from_args(args)?;
            Plan::One(Box::new(move |c| idle::run(c, &p)))
        }
        "connect" => {
            let p = idle::Params::connect_from_args(args)?;
            Plan::One(Box::new(move |c| idle::run(c, &p)))
        }
        "reconnect-storm" => {
            let p = reconnect_storm::Params::from_args(args)?;
            Plan::One(Box::new(move |c| reconnect_storm::run(c, &p)))
        }
        "race" => {
            let p = race::Params::from_args(args)?;
            Plan::One(Box::new(move |c| race::run(c, &p)))
        }
        "hot-store" => {
            let p = hot_store::Params::from_args(args)?;
            Plan::One(Box::new(move |c| hot_store::run(c, &p)))
        }
        "smoke" => Plan::Smoke,
        other => return Err(format!("unknown scenario {other:?}")),
    };
    args.finish()?;
    let url = url.ok_or("--url is required")?;
    let base = BaseUrl::parse(&url)?;

    let mut ctx = Ctx {
        target: Target {
            base,
            proto: protocols[0],
            payload,
            timeout,
            spread_addrs: spread_addrs as u8,
        },
        floors,
        server_pid,
        store_prefix,
    };
    let mut all_ok = true;
    for proto in protocols {
        ctx.target.proto = proto;
        let reports: Vec<Report> = match &plan {
            Plan::One(f) => vec![emit(f(&ctx))],
            Plan::Smoke => smoke(&ctx),
        };
        for r in reports {
            all_ok &= r.ok();
        }
    }
    if is_smoke {
        info!(
            "smoke: {}",
            if all_ok {
                "every check passed"
            } else {
                "FAILED"
            }
        );
    }
    Ok(all_ok)
}

/// Runs a scenario, prints its line, and logs a failure.
fn emit(r: Report) -> Report {
    r.print();
    if !r.ok() {
        info!(
            "{} failed: {}",
            r.to_json()["scenario"],
            r.to_json()["failures"]
        );
    }
    r
}

/// Every scenario at a tiny size (correctness only).
fn smoke(ctx: &Ctx) -> Vec<Report> {
    info!("smoke: protocol {}", ctx.target.proto.as_str());
    vec![
        emit(cold_pull::run(ctx, &cold_pull::Params::smoke())),
        emit(push::run(ctx, &push::Params::smoke())),
        emit(fan_out::run(ctx, &fan_out::Params::smoke())),
        emit(idle::run(ctx, &idle::Params::smoke())),
        emit(reconnect_storm::run(ctx, &reconnect_storm::Params::smoke())),
        emit(race::run(ctx, &race::Params::smoke())),
        emit(hot_store::run(ctx, &hot_store::Params::smoke())),
    ]
}

/// The `floors` command: the floors alone, one JSON line.
fn run_floors(f: &Floors) -> bool {
    let ws = f.ws();
    let pg = f.pg_insert();
    let line = json!({
        "scenario": "floors",
        "ok": ws.is_ok() && !matches!(pg, Some(Err(_))),
        "ws_loopback": floor_json(&ws, |w| w.json.clone()),
        "pg_insert": pg.as_ref().map(|p| floor_json(p, |p| p.json.clone())),
        "notes": if f.db_url.is_none() { vec!["PostgreSQL floors skipped: no --database-url"] } else { vec![] },
    });
    println!("{line}");
    line["ok"].as_bool().unwrap_or(false)
}
