//! 0.3 admin messages: `AdminInfoReq` and `AdminResetRoomReq`, checked
//! against the admin secret; a reset wipes the store and closes its sockets.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

fn admin(ws: &mut Ws, tag: &str, id: &str, secret: &str) {
    ws.send(json!({"_tag": tag, "requestId": id, "adminSecret": secret}));
}

/// Pushes events `from..from+n` over a 0.3 socket and consumes the ack and
/// the socket's own broadcast.
fn v03_fill(ws: &mut Ws, id: &str, from: i64, n: i64) {
    ws.push_v03_acked(id, &events(from, n, "A"));
}

/// Opens a live 0.4 pull `0` and returns the backend id of its first chunk
/// (which must hold events `1..=n`).
fn v04_live_pull(ws: &mut Ws, store: &str, n: i64) -> String {
    ws.send_text(&v04_pull("0", "SyncWsRpc.Pull", store, Some(true), NONE));
    let m = ws.recv();
    assert_eq!(m["_tag"], "Chunk", "{m}");
    assert_eq!(seqs(&m["values"][0]["batch"]), (1..=n).collect::<Vec<_>>());
    m["values"][0]["backendId"].as_str().unwrap().to_string()
}

fn store_row(srv: &TestServer, store: &str) -> (i64, String) {
    srv.db.store_row(store)
}

#[test]
fn admin_info_needs_the_secret_and_reports_the_store() {
    let _w = watchdog("admin_info", Duration::from_secs(30));
    let srv = TestServer::start("admin_info");
    let mut adm = Ws::v03(srv.addr, "s");
    v03_fill(&mut adm, "p", 1, 3);
    let mut new = Ws::v04(srv.addr, "s");
    let bid = v04_live_pull(&mut new, "s", 3);
    let _elsewhere = Ws::v03(srv.addr, "t");

    for secret in ["wrong", "", "test-admin ", "TEST-ADMIN"] {
        admin(&mut adm, "WSMessage.AdminInfoReq", "i0", secret);
        assert_eq!(
            adm.recv(),
            json!({"_tag": "WSMessage.Error", "requestId": "i0", "message": "Invalid admin secret"}),
            "secret {secret:?}"
        );
    }

    admin(&mut adm, "WSMessage.AdminInfoReq", "i1", ADMIN);
    let m = adm.recv();
    assert_eq!(m["_tag"], "WSMessage.AdminInfoRes", "{m}");
    assert_eq!(m["requestId"], "i1", "{m}");
    let info = &m["info"];
    let do_id = info["durableObjectId"]
        .as_str()
        .unwrap_or_else(|| panic!("durableObjectId is a string: {m}"));
    assert!(!do_id.is_empty());
    assert_eq!(info["head"], 3, "{m}");
    assert_eq!(info["eventCount"], 3, "{m}");
    // The admin's own 0.3 socket and the 0.4 one; not the other store's.
    assert_eq!(info["connectedSockets"], 2, "{m}");
    assert_eq!(info["backendId"], bid, "{m}");

    // The id is stable for the store.
    admin(&mut adm, "WSMessage.AdminInfoReq", "i2", ADMIN);
    assert_eq!(adm.recv()["info"]["durableObjectId"], do_id);
}

#[test]
fn admin_reset_with_a_wrong_secret_changes_nothing() {
    let _w = watchdog("admin_reset_refused", Duration::from_secs(30));
    let srv = TestServer::start("admin_reset_no");
    let mut adm = Ws::v03(srv.addr, "s");
    v03_fill(&mut adm, "p", 1, 3);
    let mut new = Ws::v04(srv.addr, "s");
    let bid = v04_live_pull(&mut new, "s", 3);

    admin(&mut adm, "WSMessage.AdminResetRoomReq", "r", "wrong");
    assert_eq!(
        adm.recv(),
        json!({"_tag": "WSMessage.Error", "requestId": "r", "message": "Invalid admin secret"})
    );
    // Admin messages are 0.3 only: on a 0.4 socket even the right secret is ignored.
    new.send(
        json!({"_tag": "WSMessage.AdminResetRoomReq", "requestId": "r", "adminSecret": ADMIN}),
    );
    assert_eq!(new.recv_within(QUIET), None);

    assert_eq!(srv.db.event_rows("s"), 3);
    assert_eq!(store_row(&srv, "s"), (3, bid));
    adm.ping_v03();
    new.ping_v04();
    v03_fill(&mut adm, "p2", 4, 1);
    assert_eq!(new.recv()["_tag"], "Chunk");
}

#[test]
fn admin_reset_wipes_the_store_and_closes_its_sockets_only() {
    let _w = watchdog("admin_reset", Duration::from_secs(30));
    let srv = TestServer::start("admin_reset");
    let mut adm = Ws::v03(srv.addr, "s");
    v03_fill(&mut adm, "p", 1, 5);
    let mut old = Ws::v03(srv.addr, "s");
    old.ping_v03();
    let mut new = Ws::v04(srv.addr, "s");
    let old_bid = v04_live_pull(&mut new, "s", 5);

    // Another store, with both kinds of sockets and some events.
    let mut other03 = Ws::v03(srv.addr, "t");
    v03_fill(&mut other03, "q", 1, 2);
    let mut other04 = Ws::v04(srv.addr, "t");
    let other_bid = v04_live_pull(&mut other04, "t", 2);

    admin(&mut adm, "WSMessage.AdminResetRoomReq", "reset", ADMIN);
    assert_eq!(
        adm.recv(),
        json!({"_tag": "WSMessage.AdminResetRoomRes", "requestId": "reset"})
    );
    // Every socket of the store gets a close frame (not just a dropped connection).
    for (name, ws) in [("admin", &mut adm), ("0.3", &mut old), ("0.4", &mut new)] {
        let code = ws.expect_close();
        assert!(code.is_some(), "{name} socket: no close frame");
    }

    // The store is empty, at head 0, with a new backend id.
    assert_eq!(srv.db.event_rows("s"), 0);
    let (head, new_bid) = store_row(&srv, "s");
    assert_eq!(head, 0);
    assert_ne!(new_bid, old_bid);

    // The other store is untouched, its sockets still open and live.
    assert_eq!(srv.db.event_rows("t"), 2);
    assert_eq!(store_row(&srv, "t"), (2, other_bid.clone()));
    other03.ping_v03();
    other04.ping_v04();
    assert_eq!(other03.recv_within(QUIET), None);
    assert_eq!(other04.recv_within(QUIET), None);
    v03_fill(&mut other03, "q2", 3, 1);
    let m = other04.recv();
    assert_eq!(seqs(&m["values"][0]["batch"]), vec![3]);

    // A fresh 0.4 pull sees an empty store under the new backend id.
    let mut fresh04 = Ws::v04(srv.addr, "s");
    fresh04.send_text(&v04_pull("0", "SyncWsRpc.Pull", "s", Some(true), NONE));
    let m = fresh04.recv();
    assert_eq!(
        m["values"][0],
        json!({"batch": [], "pageInfo": {"_tag": "NoMore"}, "backendId": new_bid})
    );
    // A 0.4 client holding the old history is told so.
    fresh04.send_text(&v04_pull(
        "1",
        "SyncWsRpc.Pull",
        "s",
        Some(true),
        &some_cursor(&old_bid, 5),
    ));
    let m: Value = fresh04.recv();
    assert_eq!(
        m["exit"]["cause"]["error"],
        json!({"_tag": "BackendIdMismatchError", "expected": new_bid, "received": old_bid}),
        "{m}"
    );

    // A new 0.3 socket starts again at parent 0, and the 0.4 pull hears it.
    let mut fresh03 = Ws::v03(srv.addr, "s");
    fresh03.send_text(&v03_push("again", &events(1, 2, "N")));
    assert_eq!(
        fresh03.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "again"})
    );
    assert_eq!(seqs(&fresh03.recv()["batch"]), vec![1, 2]);
    let m = fresh04.recv();
    assert_eq!(m["requestId"], "0", "{m}");
    assert_eq!(seqs(&m["values"][0]["batch"]), vec![1, 2]);
    assert_eq!(m["values"][0]["backendId"], new_bid);
    assert_eq!(srv.db.event_rows("s"), 2);
}
