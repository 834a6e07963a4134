//! A connection that vanishes right after sending a push never leaves the
//! store locked, and what it pushed is either fully stored or not at all.
mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn connections_dropping_mid_push_leave_the_store_usable() {
    let _w = watchdog("dropped_mid_push", Duration::from_secs(60));
    let srv = TestServer::start("dropped");
    // Twenty clients each send a push (all on parent 0 but the first to win)
    // and cut the TCP connection at once, without a close frame.
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
    // A new client learns the head by pulling and pushes on top of it.
    let mut c = Ws::v03(srv.addr, "s");
    c.send(json!({"_tag": "WSMessage.PullReq", "requestId": "r"}));
    let page = c.recv();
    assert_eq!(page["remaining"], 0);
    let head = page["batch"]
        .as_array()
        .unwrap()
        .last()
        .map_or(0, |e| e["eventEncoded"]["seqNum"].as_i64().unwrap());
    assert!(
        head == 0 || head == 5,
        "all or nothing of one batch: head {head}"
    );
    c.send_text(&v03_push("after", &events(head + 1, 2, "C")));
    assert_eq!(
        c.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "after"})
    );
    let rows: Vec<i64> = srv
        .db
        .client()
        .query("SELECT seq_num FROM events ORDER BY seq_num", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, (1..=head + 2).collect::<Vec<_>>());
}
