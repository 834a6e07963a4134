//! A connection that vanishes right after sending a push never leaves the
//! store locked: a push sent whole before the client left is stored whole,
//! and half a push frame cut by a TCP reset stores nothing.
mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::json;

/// The store's events as (seq_num, client_id, args text), in order.
fn rows(srv: &TestServer) -> Vec<(i64, String, String)> {
    srv.db
        .rows("s")
        .into_iter()
        .map(|r| (r.seq, r.client_id, r.args.unwrap_or_default()))
        .collect()
}

/// Events 1..=5 exactly as client `client` pushed them.
fn batch_of(client: &str) -> Vec<(i64, String, String)> {
    (1..=5)
        .map(|i| (i, client.to_string(), args_text(i, client)))
        .collect()
}

#[test]
fn connections_dropping_mid_push_leave_the_store_usable() {
    let _w = watchdog("dropped_mid_push", Duration::from_secs(60));
    let srv = TestServer::start("dropped");
    // Twenty clients each send a whole push of events 1..=5 on parent 0 and
    // end the connection at once (FIN, no close frame). The data arrives
    // before the FIN and nothing is written to a client before the first
    // push is stored, so at least that first push is read: exactly one batch
    // wins, whole; the others are refused for their stale parent.
    let threads: Vec<_> = (0..20)
        .map(|k| {
            let addr = srv.addr;
            std::thread::spawn(move || {
                let mut ws = Ws::v03(addr, "s");
                ws.send_text(&v03_push(
                    &format!("gone{k}"),
                    &events(1, 5, &format!("G{k}")),
                ));
                ws.ws.get_mut().flush().unwrap();
                ws.ws.get_ref().shutdown(std::net::Shutdown::Both).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Once the server has ended all twenty sockets, it has handled every
    // push it read. A new client then learns the head by pulling.
    wait_open_connections(srv.addr, 0, Duration::from_secs(10));
    let mut c = Ws::v03(srv.addr, "s");
    c.send(json!({"_tag": "WSMessage.PullReq", "requestId": "r"}));
    let page = c.recv();
    assert_eq!(page["remaining"], 0);
    assert_eq!(seqs(&page["batch"]), vec![1, 2, 3, 4, 5], "{page}");
    let winner = page["batch"][0]["eventEncoded"]["clientId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rows(&srv), batch_of(&winner), "one client's batch, whole");

    // Ten clients cut a push of events 6..=10 halfway through its frame
    // with a TCP reset: nothing of it may be stored.
    for k in 0..10 {
        let mut s = raw_ws(srv.addr, &v03_path("s", TOKEN));
        let frame = masked_text(&v03_push(&format!("half{k}"), &events(6, 5, "H")));
        s.write_all(&frame[..frame.len() / 2]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        reset(s);
    }
    // `c` stays open; the ten are gone.
    wait_open_connections(srv.addr, 1, Duration::from_secs(10));
    // The store is usable at the same head: a push on top of event 5 is accepted.
    c.send_text(&v03_push("after", &events(6, 2, "C")));
    assert_eq!(
        c.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "after"})
    );
    let mut expected = batch_of(&winner);
    expected.extend((6..=7).map(|i| (i, "C".to_string(), args_text(i, "C"))));
    assert_eq!(rows(&srv), expected);
}
