//! A subscriber that stops reading fills its bounded queue and is dropped;
//! pushes keep being acknowledged and other subscribers keep receiving.
mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_socket_that_stops_reading_is_dropped_and_nobody_else_waits() {
    let _w = watchdog("slow_client", Duration::from_secs(60));
    let srv = TestServer::start_with("slow", |c| c.limits.outbound_queue = 4);
    let mut slow = Ws::v03(srv.addr, "s");
    let mut fast = Ws::v03(srv.addr, "s");
    let mut pusher = Ws::v03(srv.addr, "s");
    for ws in [&mut slow, &mut fast, &mut pusher] {
        ws.ping_v03();
    }
    // ~100 kB per push: socket buffers fill after a few MB, then the queue.
    let big = "x".repeat(100_000);
    let pushes = 300;
    let started = Instant::now();
    for i in 1..=pushes {
        let batch = format!(
            r#"[{{"name":"big","args":{{"blob":"{big}","i":{i}}},"seqNum":{i},"parentSeqNum":{},"clientId":"p","sessionId":"s"}}]"#,
            i - 1
        );
        pusher.send_text(&v03_push(&format!("p{i}"), &batch));
        let ack = pusher.recv();
        assert_eq!(ack["_tag"], "WSMessage.PushAck", "push {i}: {ack}");
        assert_eq!(pusher.recv()["requestId"]["context"], "push");
        let b = fast.recv();
        assert_eq!(b["batch"][0]["eventEncoded"]["seqNum"], i);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the pushes were not held up by the slow socket"
    );
    // The slow socket got a prefix of the broadcasts, then its connection was cut.
    let mut received = 0;
    loop {
        match slow.ws.read() {
            Ok(tungstenite::Message::Text(_)) => received += 1,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("slow socket still open after {received}")
            }
            Err(_) => break,
        }
    }
    assert!(
        received < pushes,
        "slow socket received {received} of {pushes}: it was not dropped"
    );
    // Counted once, as a full queue, and listed on the status page.
    let auth = format!("Bearer {ADMIN}");
    let (_, _, metrics) = http(srv.addr, "GET", "/metrics", &[("Authorization", &auth)], "");
    assert!(
        metrics.contains("livestore_slow_consumers_dropped_total{reason=\"queue_full\"} 1\n"),
        "{metrics}"
    );
    let (_, _, page) = http(srv.addr, "GET", "/status", &[("Authorization", &auth)], "");
    assert!(page.contains("outbound queue full"), "{page}");
}
