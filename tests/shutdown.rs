//! SIGTERM: the binary stops accepting, closes WebSockets with 1001 after
//! their in-flight request, and exits 0.
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_closes_sockets_with_1001_and_exits_zero() {
    let _w = watchdog("sigterm", Duration::from_secs(60));
    let db = TestDb::create("shutdown");
    let mut srv = ServerProcess::start(&db.url, &["--auth-token", TOKEN]);
    let mut v03 = Ws::v03(srv.addr, "s");
    let mut v04 = Ws::v04(srv.addr, "s");
    v04.send_text(r#"{"_tag":"Ping"}"#);
    assert_eq!(v04.recv()["_tag"], "Pong");
    // A push in flight when the signal arrives is finished and answered.
    v03.send_text(&v03_push("p1", &events(1, 50, "A")));
    let status = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let mut acked = false;
    let code = loop {
        match v03.ws.read() {
            Ok(tungstenite::Message::Text(t)) => acked |= t.as_str().contains("PushAck"),
            Ok(tungstenite::Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(e) => panic!("socket ended without a close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1001));
    assert_eq!(v04.expect_close(), Some(1001));
    let stored: i64 = db
        .client()
        .query_one("SELECT count(*) FROM events", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, if acked { 50 } else { 0 }, "acked ⇔ stored");

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(srv.addr).is_err(),
        "no longer accepting"
    );
    assert!(srv.log.lock().iter().any(|l| l.contains("shutting down")));
}
