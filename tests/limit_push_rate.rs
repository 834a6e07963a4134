//! PUSHES_PER_SECOND: a connection pushing faster than the limit is slowed,
//! not refused: every push is acknowledged and stored, in order, and the
//! burst takes at least the time the token bucket allows. (A lower bound
//! only: a loaded machine makes it slower, never faster.)
mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn pushes_past_the_rate_wait_and_all_succeed() {
    let _w = watchdog("limit_push_rate", Duration::from_secs(60));
    let srv = TestServer::start_with("push_rate", |c| c.limits.pushes_per_second = 10);
    let mut ws = Ws::v04(srv.addr, "r");
    // 10 at once (a second's worth), then one every 100 ms: 30 pushes take
    // at least 2 s.
    let started = Instant::now();
    for i in 1..=30 {
        let id = format!("p{i}");
        ws.send_text(&v04_push(
            &id,
            "SyncWsRpc.Push",
            "r",
            &events(i, 1, "c"),
            NONE,
        ));
        assert_eq!(ws.recv(), push_ok(&id));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900), "30 pushes in {took:?}");
    assert_eq!(srv.db.event_rows("r"), 30);

    // The same over 0.3, on a connection of its own (its own bucket).
    let mut ws = Ws::v03(srv.addr, "r3");
    let started = Instant::now();
    for i in 1..=25 {
        ws.push_v03_acked(&format!("q{i}"), &events(i, 1, "c"));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1400), "25 pushes in {took:?}");
    assert_eq!(srv.db.event_rows("r3"), 25);
}
