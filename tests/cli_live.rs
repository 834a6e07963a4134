//! The command line beside a running server: `stores reset`, `stores delete`
//! and `import` run as their own process reach the server's sockets
//! (PostgreSQL: `NOTIFY`; SQLite: the `changes` table the server polls),
//! and nothing else is disturbed. Both backends: `postgres::<case>`,
//! `sqlite::<case>`.
mod common;

use std::time::Duration;

use common::*;

fn start(log: &EventLog) -> ServerProcess {
    ServerProcess::start(
        &log.url(),
        &["--auth-token", TOKEN, "--admin-secret", ADMIN],
    )
}

/// A 0.4 socket with a live pull on `store` open; the backend id it was told
/// and the events of its first chunk.
fn v04_live(srv: &ServerProcess, store: &str) -> (Ws, String, Vec<i64>) {
    let mut ws = Ws::v04(srv.addr, store);
    ws.send_text(&v04_pull("0", "SyncWsRpc.Pull", store, Some(true), NONE));
    let m = ws.recv();
    assert_eq!(m["_tag"], "Chunk", "{m}");
    let bid = m["values"][0]["backendId"].as_str().unwrap().to_string();
    (ws, bid, seqs(&m["values"][0]["batch"]))
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let _w = watchdog(stringify!($case), Duration::from_secs(120));
                    super::$case(EventLog::postgres("cli-live"));
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let _w = watchdog(stringify!($case), Duration::from_secs(120));
                    super::$case(EventLog::sqlite(stringify!($case)));
                }
            )*
        }
    };
}

cases!(
    a_reset_from_the_command_line_closes_the_store_sockets_and_only_those,
    a_delete_from_the_command_line_closes_the_store_sockets,
    an_import_reaches_live_subscribers,
);

fn a_reset_from_the_command_line_closes_the_store_sockets_and_only_those(log: EventLog) {
    let srv = start(&log);
    let mut old = Ws::v03(srv.addr, "s");
    old.push_v03_acked("p1", &events(1, 3, "A"));
    let (mut new, bid, batch) = v04_live(&srv, "s");
    assert_eq!(batch, [1, 2, 3]);
    let mut elsewhere = Ws::v03(srv.addr, "t");
    elsewhere.ping_v03();

    let out = run_tool(&log.url(), &["stores", "reset", "s"]);
    assert!(out.contains("3 events deleted"), "{out}");

    assert_eq!(old.expect_close(), Some(4001), "the 0.3 socket is closed");
    assert_eq!(new.expect_close(), Some(4001), "the 0.4 socket is closed");
    // The 0.4 client reconnects and is told the new backend id, with no events.
    let (_again, new_bid, batch) = v04_live(&srv, "s");
    assert_ne!(new_bid, bid);
    assert!(
        out.contains(&new_bid),
        "the server serves the id the command set: {out}"
    );
    assert!(batch.is_empty());
    // Another store's socket is untouched.
    elsewhere.ping_v03();
    // And the store takes pushes from 1 again.
    let mut fresh = Ws::v03(srv.addr, "s");
    fresh.push_v03_acked("p2", &events(1, 1, "B"));
}

fn a_delete_from_the_command_line_closes_the_store_sockets(log: EventLog) {
    let srv = start(&log);
    let mut old = Ws::v03(srv.addr, "gone");
    old.push_v03_acked("p1", &events(1, 2, "A"));
    let (mut new, bid, _) = v04_live(&srv, "gone");
    let mut elsewhere = Ws::v03(srv.addr, "kept");
    elsewhere.push_v03_acked("p1", &events(1, 1, "A"));

    run_tool(&log.url(), &["stores", "delete", "gone"]);
    assert_eq!(old.expect_close(), Some(4001));
    assert_eq!(new.expect_close(), Some(4001));
    let (_again, new_bid, batch) = v04_live(&srv, "gone");
    assert_ne!(new_bid, bid, "a deleted store comes back as a new one");
    assert!(batch.is_empty());
    elsewhere.ping_v03();
    assert_eq!(log.rows("kept").len(), 1);
}

fn an_import_reaches_live_subscribers(log: EventLog) {
    let srv = start(&log);
    // A store with events, exported; then an empty store with a subscriber.
    let mut w = Ws::v03(srv.addr, "src");
    w.push_v03_acked("p1", &events(1, 5, "A"));
    let dir = TempDir::new("cli-live-import");
    let file = dir.path().join("src.json");
    run_tool(&log.url(), &["export", "src", file.to_str().unwrap()]);

    let (mut sub, bid, batch) = v04_live(&srv, "dst");
    assert!(batch.is_empty());
    run_tool(
        &log.url(),
        &["import", "dst", file.to_str().unwrap(), "--force"],
    );
    // The subscriber gets the five events live, under the backend id it holds.
    let mut got = Vec::new();
    while got.len() < 5 {
        let m = sub.recv();
        assert_eq!(m["_tag"], "Chunk", "{m}");
        assert_eq!(m["values"][0]["backendId"], bid.as_str(), "{m}");
        got.extend(seqs(&m["values"][0]["batch"]));
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);
    // The args arrived byte for byte.
    let rows = log.rows("dst");
    assert_eq!(rows[0].args.as_deref(), Some(args_text(1, "A").as_str()));
}
