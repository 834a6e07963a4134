//! SIGTERM: the binary stops accepting, finishes the request each WebSocket
//! has in flight (a push is stored and acked), closes the WebSockets with
//! 1001, and exits 0.
mod common;

use std::time::Duration;

use common::*;

#[test]
fn sigterm_finishes_the_push_in_flight_closes_with_1001_and_exits_zero() {
    let _w = watchdog("sigterm", Duration::from_secs(60));
    let db = TestDb::create("shutdown");
    let mut srv = ServerProcess::start(&db.url, &["--auth-token", TOKEN]);
    let mut v03 = Ws::v03(srv.addr, "s");
    let mut v04 = Ws::v04(srv.addr, "s");
    v04.ping_v04();
    // One push acked before the signal.
    v03.push_v03_acked("p1", &events(1, 50, "A"));

    // A second push held in flight: the server has read it and its INSERT
    // waits for our lock when SIGTERM arrives (not merely sent: a push the
    // server never read before shutting down would prove nothing).
    let lock = db.lock_events();
    v03.send_text(&v03_push("p2", &events(51, 50, "A")));
    db.wait_for_lock_waiters(APPEND_SQL_FRAGMENT, 1, Duration::from_secs(10));
    srv.sigterm();
    // The server is shutting down with the push still waiting; then it may go on.
    srv.wait_for_log("shutting down:", Duration::from_secs(10));
    lock.release();

    let mut texts = Vec::new();
    let code = loop {
        match v03.ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                texts.push(serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap())
            }
            Ok(tungstenite::Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(e) => panic!("socket ended without a close frame: {e}; got {texts:?}"),
        }
    };
    assert_eq!(
        texts.first(),
        Some(&serde_json::json!({"_tag": "WSMessage.PushAck", "requestId": "p2"})),
        "the push in flight was answered before the close: {texts:?}"
    );
    assert_eq!(code, Some(1001), "{texts:?}");
    assert_eq!(v04.expect_close(), Some(1001));
    // Both acked pushes are stored, whole and in order.
    let rows: Vec<i64> = db
        .client()
        .query("SELECT seq_num FROM events ORDER BY seq_num", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, (1..=100).collect::<Vec<_>>());

    let exit = srv.wait_exit(Duration::from_secs(15));
    assert_eq!(exit.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(srv.addr).is_err(),
        "no longer accepting"
    );
}
