//! What the command line changes reaches a running server: storage opened
//! with `storage::open_for_tool` in this (test) process, next to a server
//! process on the same data, resets, deletes and imports a store; the
//! server closes that store's sockets or delivers the imported events to
//! them, and leaves the other stores alone. Each test runs on SQLite (the
//! `changes` table, read by the server's watch) and on PostgreSQL (NOTIFY).
mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use livestore_sync::model::{Event, StoredEvent};
use livestore_sync::storage::postgres::PoolOptions;
use livestore_sync::storage::{open_for_tool, Backend, Storage};
use serde_json::{json, Value};

/// A server on `log`, and the command line's storage next to it.
fn server_and_tool(log: &EventLog) -> (ServerProcess, Arc<dyn Storage>) {
    let srv = ServerProcess::start(&log.url(), &["--auth-token", TOKEN]);
    let backend = match log {
        EventLog::Postgres(db) => Backend::Postgres(db.url.clone()),
        EventLog::Sqlite(dir) => Backend::Sqlite(dir.db()),
    };
    let pool = PoolOptions {
        min_idle: 0,
        max_size: 2,
        connection_timeout: Duration::from_secs(5),
    };
    let (tool, description) = open_for_tool(&backend, &pool).unwrap();
    if let EventLog::Sqlite(_) = log {
        assert!(
            description.contains("a running server holds its lock"),
            "{description}"
        );
    }
    (srv, tool)
}

/// A 0.4 live pull from the start of an empty store; returns its backend id.
fn v04_live_empty(ws: &mut Ws, store: &str) -> String {
    ws.send_text(&v04_pull("0", "SyncWsRpc.Pull", store, Some(true), NONE));
    let m = ws.recv();
    assert_eq!(m["_tag"], "Chunk", "{m}");
    assert_eq!(m["values"][0]["batch"], json!([]), "{m}");
    m["values"][0]["backendId"].as_str().unwrap().to_string()
}

/// The first answer of a fresh 0.4 pull of `store`: (seq nums, backend id).
fn v04_fresh_pull(addr: std::net::SocketAddr, store: &str) -> (Vec<i64>, String) {
    let mut ws = Ws::v04(addr, store);
    ws.send_text(&v04_pull("0", "SyncWsRpc.Pull", store, Some(false), NONE));
    let m: Value = ws.recv();
    assert_eq!(m["_tag"], "Chunk", "{m}");
    (
        seqs(&m["values"][0]["batch"]),
        m["values"][0]["backendId"].as_str().unwrap().to_string(),
    )
}

fn source(from: i64, n: i64, client: &str) -> impl Iterator<Item = Result<StoredEvent, String>> {
    let events: Vec<Event> = serde_json::from_str(&events(from, n, client)).unwrap();
    events.into_iter().map(|event| {
        Ok(StoredEvent {
            event,
            created_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        })
    })
}

fn a_reset_closes_the_stores_sockets_only(log: EventLog) {
    let (srv, tool) = server_and_tool(&log);
    let mut old03 = Ws::v03(srv.addr, "s");
    old03.push_v03_acked("p", &events(1, 3, "A"));
    let mut old04 = Ws::v04(srv.addr, "s");
    old04.send_text(&v04_pull("0", "SyncWsRpc.Pull", "s", Some(true), NONE));
    assert_eq!(seqs(&old04.recv()["values"][0]["batch"]), vec![1, 2, 3]);
    let mut other = Ws::v03(srv.addr, "t");
    other.ping_v03();

    tool.reset("s", "FROM-THE-TOOL").unwrap();
    assert_eq!(old03.expect_close(), Some(4001), "0.3 socket of the store");
    assert_eq!(old04.expect_close(), Some(4001), "0.4 socket of the store");
    // The other store's socket is still open and live.
    other.ping_v03();
    other.push_v03_acked("q", &events(1, 1, "B"));
    // Reconnecting clients see the new incarnation.
    assert_eq!(
        v04_fresh_pull(srv.addr, "s"),
        (vec![], "FROM-THE-TOOL".to_string())
    );
    let mut again = Ws::v03(srv.addr, "s");
    again.push_v03_acked("p2", &events(1, 1, "C"));
}

fn an_import_reaches_the_stores_live_subscribers(log: EventLog) {
    let (srv, tool) = server_and_tool(&log);
    let mut sub03 = Ws::v03(srv.addr, "s");
    sub03.ping_v03();
    let mut sub04 = Ws::v04(srv.addr, "s");
    let backend_id = v04_live_empty(&mut sub04, "s");

    // Into the empty store, keeping its backend id: nobody is closed, the
    // events are delivered live.
    assert_eq!(
        tool.import("s", None, false, &mut source(1, 5, "T"))
            .unwrap(),
        5
    );
    let m = sub03.recv();
    assert_eq!(m["_tag"], "WSMessage.PullRes", "{m}");
    assert_eq!(seqs(&m["batch"]), vec![1, 2, 3, 4, 5], "{m}");
    let m = sub04.recv();
    assert_eq!(m["_tag"], "Chunk", "{m}");
    assert_eq!(seqs(&m["values"][0]["batch"]), vec![1, 2, 3, 4, 5], "{m}");
    assert_eq!(m["values"][0]["backendId"], backend_id.as_str(), "{m}");
    // The server goes on from the imported head.
    sub03.push_v03_acked("p", &events(6, 1, "A"));
    assert_eq!(seqs(&sub04.recv()["values"][0]["batch"]), vec![6]);

    // Replacing the history: the store's sockets are closed, and a
    // reconnecting client sees the imported log under the new backend id.
    tool.import("s", Some("IMPORTED"), true, &mut source(1, 2, "U"))
        .unwrap();
    assert_eq!(sub03.expect_close(), Some(4001));
    assert_eq!(sub04.expect_close(), Some(4001));
    assert_eq!(
        v04_fresh_pull(srv.addr, "s"),
        (vec![1, 2], "IMPORTED".to_string())
    );
    let mut again = Ws::v03(srv.addr, "s");
    again.push_v03_acked("p2", &events(3, 1, "A"));
}

fn a_delete_closes_the_stores_sockets_and_it_comes_back_empty(log: EventLog) {
    let (srv, tool) = server_and_tool(&log);
    let mut old03 = Ws::v03(srv.addr, "s");
    old03.push_v03_acked("p", &events(1, 3, "A"));
    let (_, old_backend_id) = v04_fresh_pull(srv.addr, "s");
    let mut other = Ws::v03(srv.addr, "t");
    other.ping_v03();

    assert!(tool.delete_store("s").unwrap());
    assert_eq!(old03.expect_close(), Some(4001));
    other.ping_v03();
    let (events_now, backend_id) = v04_fresh_pull(srv.addr, "s");
    assert_eq!(events_now, Vec::<i64>::new());
    assert_ne!(backend_id, old_backend_id, "a new incarnation");
    let mut again = Ws::v03(srv.addr, "s");
    again.push_v03_acked("p2", &events(1, 1, "B"));
    assert_eq!(
        tool.store_summary("s")
            .unwrap()
            .map(|s| (s.head, s.backend_id)),
        Some((1, backend_id))
    );
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    let _w = super::watchdog(stringify!($case), std::time::Duration::from_secs(90));
                    super::$case(super::EventLog::sqlite(stringify!($case)));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $case() {
                    let _w = super::watchdog(stringify!($case), std::time::Duration::from_secs(90));
                    super::$case(super::EventLog::postgres(stringify!($case)));
                }
            )*
        }
    };
}

on_both_backends!(
    a_reset_closes_the_stores_sockets_only,
    an_import_reaches_the_stores_live_subscribers,
    a_delete_closes_the_stores_sockets_and_it_comes_back_empty,
);
