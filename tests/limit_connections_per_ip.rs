//! MAX_CONNECTIONS_PER_IP: past it, a new connection from that address gets
//! `429` with a plain reason and is closed; other addresses, and this
//! machine's own 127.0.0.1 (a proxy on the same host), are not held back; a
//! closed connection frees its place.
mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn one_address_gets_429_past_its_limit_and_others_are_served() {
    let _w = watchdog("limit_connections_per_ip", Duration::from_secs(60));
    let srv = TestServer::start_with("per_ip", |c| c.limits.max_connections_per_ip = 3);
    let held: Vec<_> = (0..3)
        .map(|_| connect_from([127, 0, 0, 2], srv.addr))
        .collect();
    // Accepted and counted: three connections besides the /health asking.
    wait_open_connections(srv.addr, 3, Duration::from_secs(10));

    let (status, body) = get_on(connect_from([127, 0, 0, 2], srv.addr), "/health");
    assert_eq!(
        (status, body.as_str()),
        (429, "Too many connections from your address")
    );
    // Another address, and 127.0.0.1, are served.
    assert_eq!(
        get_on(connect_from([127, 0, 0, 3], srv.addr), "/health").0,
        200
    );
    for _ in 0..5 {
        assert_eq!(
            get_on(connect_from([127, 0, 0, 1], srv.addr), "/health").0,
            200
        );
    }
    // One closes: its place is free again once the server has seen it go.
    drop(held);
    wait_open_connections(srv.addr, 0, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = get_on(connect_from([127, 0, 0, 2], srv.addr), "/health");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the others closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let auth = format!("Bearer {ADMIN}");
    let (_, _, metrics) = http(srv.addr, "GET", "/metrics", &[("Authorization", &auth)], "");
    assert!(
        metrics.contains("livestore_refused_total{reason=\"too_many_from_address\"} 1\n"),
        "{metrics}"
    );
}
