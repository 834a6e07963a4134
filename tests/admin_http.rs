//! The admin API over HTTP (`/admin/stores…`): the bearer secret, and list,
//! info, reset, delete and export on a running server, on the backend
//! `TEST_BACKEND` names.
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const SECRET: &str = "a-long-admin-secret-for-the-test";

fn start(log: &EventLog, secret: &str) -> ServerProcess {
    ServerProcess::start(
        &log.url(),
        &["--auth-token", TOKEN, "--admin-secret", secret],
    )
}

fn admin(srv: &ServerProcess, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let auth = format!("Bearer {SECRET}");
    http(srv.addr, method, path, &[("Authorization", &auth)], "")
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The body of a chunked answer.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

#[test]
fn the_admin_api_needs_the_bearer_secret() {
    let _w = watchdog("admin_auth", Duration::from_secs(60));
    let log = EventLog::from_env("admin-http-auth");
    let srv = start(&log, SECRET);
    for (headers, why) in [
        (vec![], "no header"),
        (vec![("Authorization", "Bearer wrong")], "wrong secret"),
        (
            vec![("Authorization", "Bearer a-long-admin-secret-for-the-tes")],
            "a prefix",
        ),
        (vec![("Authorization", SECRET)], "no scheme"),
        (
            vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
            "another scheme",
        ),
    ] {
        let (status, h, body) = http(srv.addr, "GET", "/admin/stores", &headers, "");
        assert_eq!(status, 401, "{why}: {body}");
        assert!(
            header(&h, "www-authenticate")
                .unwrap()
                .starts_with("Bearer"),
            "{why}"
        );
    }
    // Never in the URL.
    let (status, _, _) = http(
        srv.addr,
        "GET",
        &format!("/admin/stores?secret={SECRET}"),
        &[],
        "",
    );
    assert_eq!(status, 401);
    let (status, _, body) = admin(&srv, "GET", "/admin/stores");
    assert_eq!(status, 200, "{body}");
    // `bearer` is case-insensitive (RFC 6750 uses the auth-scheme rules).
    let lower = format!("bearer {SECRET}");
    assert_eq!(
        http(
            srv.addr,
            "GET",
            "/admin/stores",
            &[("Authorization", &lower)],
            ""
        )
        .0,
        200
    );
    // The secret never reaches the log, not even from refused requests.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!srv.logged(SECRET), "the admin secret was logged");
    assert!(
        srv.logged("refused admin GET /admin/stores"),
        "refusals are logged"
    );
}

#[test]
fn the_admin_api_is_off_while_the_secret_is_the_default() {
    let _w = watchdog("admin_default", Duration::from_secs(60));
    let log = EventLog::from_env("admin-http-default");
    let srv = ServerProcess::start(&log.url(), &[]);
    let auth = format!("Bearer {}", livestore_sync::config::DEFAULT_ADMIN_SECRET);
    let (status, _, body) = http(
        srv.addr,
        "GET",
        "/admin/stores",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ADMIN_SECRET"), "{body}");
}

#[test]
fn list_info_reset_delete_and_export_over_http() {
    let _w = watchdog("admin_ops", Duration::from_secs(90));
    let log = EventLog::from_env("admin-http-ops");
    let srv = start(&log, SECRET);
    let mut a = Ws::v03(srv.addr, "a/b c");
    a.push_v03_acked("p", &events(1, 4, "A"));
    let mut other = Ws::v03(srv.addr, "other");
    other.push_v03_acked("p", &events(1, 2, "A"));

    let (status, _, body) = admin(&srv, "GET", "/admin/stores");
    assert_eq!(status, 200, "{body}");
    let list = json(&body);
    let stores = list["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2, "{list}");
    assert_eq!(stores[0]["storeId"], "a/b c");
    assert_eq!(stores[0]["head"], 4);
    assert_eq!(stores[0]["events"], 4);
    assert_eq!(stores[0]["sockets"], 1);

    // Any store id, percent-encoded in the path.
    let (status, _, body) = admin(&srv, "GET", "/admin/stores/a%2Fb%20c");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body), stores[0]);
    assert_eq!(admin(&srv, "GET", "/admin/stores/missing").0, 404);
    assert_eq!(admin(&srv, "GET", "/admin/stores/bad%zz").0, 400);
    assert_eq!(admin(&srv, "PUT", "/admin/stores/other").0, 405);
    assert_eq!(admin(&srv, "GET", "/admin/nothing-here").0, 404);

    // Export: the same file the command line writes, streamed.
    let (status, h, body) = admin(&srv, "GET", "/admin/stores/a%2Fb%20c/export");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "transfer-encoding"), Some("chunked"));
    let file = json(&dechunk(&body));
    assert_eq!(file["version"], 1);
    assert_eq!(file["storeId"], "a/b c");
    assert_eq!(file["eventCount"], 4);
    let raw = dechunk(&body);
    assert!(
        raw.contains(&args_text(3, "A")),
        "args byte for byte: {raw}"
    );
    let (_, _, body) = admin(&srv, "GET", "/admin/stores/other/export?format=ndjson");
    let nd = dechunk(&body);
    assert_eq!(nd.lines().count(), 3, "{nd}");
    assert_eq!(
        admin(&srv, "GET", "/admin/stores/other/export?format=xml").0,
        400
    );

    // Reset: the answer names the new backend id; the store's socket closes,
    // the other store's does not.
    let (status, _, body) = admin(&srv, "POST", "/admin/stores/a%2Fb%20c/reset");
    assert_eq!(status, 200, "{body}");
    let r = json(&body);
    assert_eq!(r["deletedEvents"], 4);
    assert_eq!(a.expect_close(), Some(4001));
    assert_eq!(
        log.store_row("a/b c"),
        (0, r["backendId"].as_str().unwrap().to_string())
    );
    other.ping_v03();

    // Delete.
    let (status, _, body) = admin(&srv, "DELETE", "/admin/stores/other");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["deletedEvents"], 2);
    assert_eq!(other.expect_close(), Some(4001));
    assert_eq!(admin(&srv, "DELETE", "/admin/stores/other").0, 404);
    let (_, _, body) = admin(&srv, "GET", "/admin/stores");
    let ids: Vec<Value> = json(&body)["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storeId"].clone())
        .collect();
    assert_eq!(ids, [Value::from("a/b c")]);
}
