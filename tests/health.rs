//! `/health` says whether PostgreSQL answers: 503 while it does not, 200
//! again once it does, without restarting the server.
mod common;

use std::time::Duration;

use common::*;

#[test]
fn health_follows_the_database() {
    let _w = watchdog("health", Duration::from_secs(60));
    let srv = TestServer::start_with("health", |c| c.db_pool_timeout = Duration::from_secs(1));
    let (status, _, body) = http(srv.addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((&v["status"], &v["database"]), (&"ok".into(), &"ok".into()));
    // The connection asking is the only one open, served by one thread.
    assert_eq!(
        v["open"],
        serde_json::json!({"connections": 1, "websockets": 0, "threads": 1})
    );

    // Take the database away: refuse new connections and end the open ones.
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
    let name = srv.db.pg().name.clone();
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .unwrap();
    let (status, headers, body) = http(srv.addr, "GET", "/health", &[], "");
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unavailable");
    // The server itself is still up and answering.
    assert_eq!(http(srv.addr, "GET", "/", &[], "").0, 200);

    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .unwrap();
    // Recovers without a restart, once the pool and the listener of other
    // instances' notices (reconnecting with a backoff of up to 5 s) are back.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = http(srv.addr, "GET", "/health", &[], "");
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["notices"], "ok", "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health did not recover: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
