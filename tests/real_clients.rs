//! End-to-end tests with the REAL, unmodified LiveStore npm clients (0.3.1 `makeCfSync`, 0.4.0
//! `makeWsSync` / `makeHttpSync`) run headless in Node against the built server binary.
//!
//! The clients live in `tests/e2e/v03` and `tests/e2e/v04` (`client.mjs`, pinned `package.json` and
//! `package-lock.json`). When a client folder has no installed `node_modules`, the harness runs
//! `npm ci --no-audit --no-fund` there itself (once, serialized). Node >= 20 and npm must be on the
//! PATH: without them these tests FAIL, they never skip.
//!
//! Running and checking the clients: `tests/common/node.rs` (shared with `tests/proxy.rs`).
//!
//! Every scenario runs twice, once on each backend (`…_postgres` and `…_sqlite`), each with its own
//! event log (a fresh PostgreSQL database, or a SQLite file in a fresh directory) and server
//! process, so the `#[test]`s run in parallel. The writers' race is forced on both: the test holds
//! the store's appends (PostgreSQL: a table lock; SQLite: the write lock) until both writers' first
//! pushes have left. `SHOW_SERVER_LOG=1` echoes the server's log, `SHOW_CLIENT_LOG=1` the clients' stderr.

mod common;

use common::node::*;
use common::{watchdog, EventLog, ServerProcess};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

fn server_log(server: &ServerProcess) -> Vec<String> {
    server.log.lock().clone()
}

fn server_ctx(server: &ServerProcess) -> String {
    server.context()
}

/// A wrong-token client must not have received anything from the server.
fn assert_not_synced(r: &ClientResult, server: &ServerProcess) {
    let ctx = || format!("{}\n{}", r.ctx(), server_ctx(server));
    assert!(r.report.is_some(), "no JSON report on stdout\n{}", ctx());
    assert_eq!(r.field("error"), &Value::Null, "client crashed\n{}", ctx());
    assert_eq!(
        r.field("synced"),
        &Value::Bool(false),
        "wrong-token client synced\n{}",
        ctx()
    );
    assert_eq!(
        r.field("foreignCount").as_u64(),
        Some(0),
        "wrong-token client got rows from the server\n{}",
        ctx()
    );
    assert_eq!(
        r.field("upstreamHead").as_u64(),
        Some(0),
        "wrong-token client has an upstream head\n{}",
        ctx()
    );
    // Its own local events stay pending: they were never accepted.
    assert_eq!(
        r.field("pendingCount").as_u64(),
        Some(r.spec.commit as u64),
        "pending events\n{}",
        ctx()
    );
    assert_eq!(r.exit, Some(0), "client exit code\n{}", ctx());
}

/// The server must have logged the refused attempts. What this relies on: at least one log line
/// holding the number 401 as a separate token (e.g. `... 401 ...`, `status=401`, `(401)`) and the
/// words `auth token` (the refusal reason), and every such line naming the store
/// (`refused request store="…" peer=… … status=401 reason="Invalid auth token"`). Every test has its own
/// server, and only the wrong-token clients are refused, so this cannot match someone else's refusal.
fn assert_refusals_logged(server: &ServerProcess, store_id: &str) -> (usize, usize) {
    let log = server_log(server);
    let refused: Vec<&String> = log
        .iter()
        .filter(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .any(|tok| tok == "401")
                && l.to_ascii_lowercase().contains("auth token")
        })
        .collect();
    assert!(
        !refused.is_empty(),
        "the server did not log a refused (HTTP 401, auth token) request for store `{store_id}`\n{}",
        server_ctx(server)
    );
    let naming_store = refused
        .iter()
        .filter(|l| l.contains(&format!("store={store_id:?}")))
        .count();
    assert_eq!(
        naming_store,
        refused.len(),
        "every refusal line names the store `{store_id}`\n{}",
        server_ctx(server)
    );
    (refused.len(), naming_store)
}

// ---------------------------------------------------------------------------------------------
// The scenario shared by all tests
// ---------------------------------------------------------------------------------------------

struct Scenario {
    tag: &'static str,
    /// Commit `EVENTS_PER_WRITER` events each, concurrently; all must converge to the union.
    writers: Vec<(Kind, &'static str)>,
    /// Fresh clients started afterwards; they must pull everything.
    readers: Vec<(Kind, &'static str)>,
    /// Clients with a wrong token, run next to the readers; must never sync.
    wrong_token: Vec<(Kind, &'static str)>,
}

/// Which event log the scenario's server keeps.
#[derive(Clone, Copy)]
enum Backend {
    Postgres,
    Sqlite,
}

fn run_scenario(sc: Scenario, backend: Backend) {
    let started = Instant::now();
    let _dog = watchdog(sc.tag, Duration::from_secs(170));
    let kinds: BTreeSet<&str> = sc
        .writers
        .iter()
        .chain(&sc.readers)
        .chain(&sc.wrong_token)
        .map(|(k, _)| k.dir())
        .collect();
    for gen in kinds {
        prepare_clients(gen);
    }

    let db = match backend {
        Backend::Postgres => EventLog::postgres(sc.tag),
        Backend::Sqlite => EventLog::sqlite(sc.tag),
    };
    eprintln!("[{}] on {}", sc.tag, db.backend());
    let server = ServerProcess::start(
        &db.url(),
        &[
            "--auth-token",
            E2E_TOKEN,
            "--admin-secret",
            E2E_ADMIN_SECRET,
        ],
    );
    let store_id = format!("e2e-{}-{}", sc.tag.replace('_', "-"), std::process::id());
    let total = sc.writers.len() * EVENTS_PER_WRITER;

    // 1. Concurrent writers. They boot, then are released together and commit all their events at
    //    once, so their first pushes race: the server must reject the stale one and the loser must
    //    rebase.
    let writers: Vec<ClientSpec> = sc
        .writers
        .iter()
        .map(|(k, id)| ClientSpec {
            wait_go: true,
            ..ClientSpec::writer(*k, id, total)
        })
        .collect();
    let all_ids: BTreeSet<String> = writers.iter().flat_map(|w| w.own_ids()).collect();
    let t = Instant::now();
    // The store exists before the writers race: their appends are held
    // then, and on SQLite the hold (the write lock) would also hold the
    // creation of the store's row, failing the clients' upgrades instead.
    let body = common::v04_pull("0", "SyncHttpRpc.Pull", &store_id, None, common::NONE)
        .replace(common::TOKEN, E2E_TOKEN);
    let path = common::v04_path(&store_id, E2E_TOKEN, "http");
    let (status, _, text) = common::http(server.addr, "POST", &path, &[], &body);
    assert_eq!(status, 200, "creating the store: {text}");
    let results = run_all(&server, &db, &store_id, &writers);
    for r in &results {
        assert_converged(r, &all_ids, &server);
    }
    // They raced: each pushed, and the server refused at least one stale push (the loser's first),
    // after which the loser rebased; assert_converged and assert_database check the outcome.
    let pushes = |r: &ClientResult| r.field("pushes").as_u64().unwrap_or(0);
    let rejected = |r: &ClientResult| r.field("rejectedPushes").as_u64().unwrap_or(0);
    for r in &results {
        assert!(
            pushes(r) >= 1,
            "writer pushed nothing\n{}\n{}",
            r.ctx(),
            server_ctx(&server)
        );
    }
    assert!(
        results.iter().map(rejected).sum::<u64>() >= 1,
        "no writer had a push refused: the writers did not race\n{}\n{}",
        results
            .iter()
            .map(ClientResult::ctx)
            .collect::<Vec<_>>()
            .join("\n"),
        server_ctx(&server)
    );
    eprintln!(
        "[{}] {} writers converged on {total} events in {:?} ({})",
        sc.tag,
        writers.len(),
        t.elapsed(),
        results
            .iter()
            .map(|r| format!(
                "{}: {} pushes, {} refused, done after {}ms",
                r.spec.client_id,
                pushes(r),
                rejected(r),
                r.field("elapsedMs")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 2. Fresh readers and wrong-token clients, side by side (the store now has data to leak).
    let mut second: Vec<ClientSpec> = sc
        .readers
        .iter()
        .map(|(k, id)| ClientSpec::reader(*k, id, total))
        .collect();
    second.extend(
        sc.wrong_token
            .iter()
            .map(|(k, id)| ClientSpec::wrong_token(*k, id)),
    );
    let t = Instant::now();
    let results = run_all(&server, &db, &store_id, &second);
    for r in &results {
        if r.spec.sync {
            assert_converged(r, &all_ids, &server);
        } else {
            assert_not_synced(r, &server);
        }
    }
    eprintln!(
        "[{}] readers / wrong-token clients done in {:?}",
        sc.tag,
        t.elapsed()
    );
    if !sc.wrong_token.is_empty() {
        let (n, naming_store) = assert_refusals_logged(&server, &store_id);
        eprintln!(
            "[{}] server logged {n} refused (401, auth token) requests; {naming_store} of them name the store",
            sc.tag
        );
    }

    // 3. The database.
    assert_database(&db, &store_id, &writers, &server);
    eprintln!("[{}] passed in {:?}", sc.tag, started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

fn v03_cf_sync_two_writers_fresh_reader_wrong_token() -> Scenario {
    Scenario {
        tag: "e2e_v03",
        writers: vec![(Kind::V03, "alice03"), (Kind::V03, "bob03")],
        readers: vec![(Kind::V03, "carol03")],
        wrong_token: vec![(Kind::V03, "mallory03")],
    }
}

#[test]
fn v03_cf_sync_two_writers_fresh_reader_wrong_token_postgres() {
    run_scenario(
        v03_cf_sync_two_writers_fresh_reader_wrong_token(),
        Backend::Postgres,
    );
}

#[test]
fn v03_cf_sync_two_writers_fresh_reader_wrong_token_sqlite() {
    run_scenario(
        v03_cf_sync_two_writers_fresh_reader_wrong_token(),
        Backend::Sqlite,
    );
}

fn v04_ws_sync_two_writers_fresh_reader_wrong_token() -> Scenario {
    Scenario {
        tag: "e2e_v04ws",
        writers: vec![(Kind::V04Ws, "alice04w"), (Kind::V04Ws, "bob04w")],
        readers: vec![(Kind::V04Ws, "carol04w")],
        wrong_token: vec![(Kind::V04Ws, "mallory04w")],
    }
}

#[test]
fn v04_ws_sync_two_writers_fresh_reader_wrong_token_postgres() {
    run_scenario(
        v04_ws_sync_two_writers_fresh_reader_wrong_token(),
        Backend::Postgres,
    );
}

#[test]
fn v04_ws_sync_two_writers_fresh_reader_wrong_token_sqlite() {
    run_scenario(
        v04_ws_sync_two_writers_fresh_reader_wrong_token(),
        Backend::Sqlite,
    );
}

fn v04_http_sync_two_writers_fresh_reader_wrong_token() -> Scenario {
    Scenario {
        tag: "e2e_v04http",
        writers: vec![(Kind::V04Http, "alice04h"), (Kind::V04Http, "bob04h")],
        readers: vec![(Kind::V04Http, "carol04h")],
        wrong_token: vec![(Kind::V04Http, "mallory04h")],
    }
}

#[test]
fn v04_http_sync_two_writers_fresh_reader_wrong_token_postgres() {
    run_scenario(
        v04_http_sync_two_writers_fresh_reader_wrong_token(),
        Backend::Postgres,
    );
}

#[test]
fn v04_http_sync_two_writers_fresh_reader_wrong_token_sqlite() {
    run_scenario(
        v04_http_sync_two_writers_fresh_reader_wrong_token(),
        Backend::Sqlite,
    );
}

fn mixed_v03_and_v04_ws_on_one_store() -> Scenario {
    Scenario {
        tag: "e2e_mixed",
        writers: vec![(Kind::V03, "alice03m"), (Kind::V04Ws, "bob04m")],
        readers: vec![(Kind::V03, "carol03m"), (Kind::V04Ws, "dave04m")],
        wrong_token: vec![],
    }
}

#[test]
fn mixed_v03_and_v04_ws_on_one_store_postgres() {
    run_scenario(mixed_v03_and_v04_ws_on_one_store(), Backend::Postgres);
}

#[test]
fn mixed_v03_and_v04_ws_on_one_store_sqlite() {
    run_scenario(mixed_v03_and_v04_ws_on_one_store(), Backend::Sqlite);
}
