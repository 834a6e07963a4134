//! Plain HTTP routes, sync-request validation before any upgrade, and CORS.
mod common;

use std::time::Duration;

use common::*;

#[test]
fn info_health_and_not_found() {
    let _w = watchdog("info_health", Duration::from_secs(30));
    let srv = TestServer::start("routes_info");

    let (status, headers, body) = http(srv.addr, "GET", "/", &[], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let info: serde_json::Value = serde_json::from_str(&body).expect("GET / is JSON");
    assert_eq!(info["name"], "livestore-sync");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let protocols = info["protocols"].as_array().expect("protocols array");
    let versions: Vec<&str> = protocols
        .iter()
        .map(|p| p["livestore"].as_str().unwrap())
        .collect();
    assert!(
        versions.contains(&"0.3") && versions.contains(&"0.4"),
        "{body}"
    );

    let (status, headers, body) = http(srv.addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let health: serde_json::Value = serde_json::from_str(&body).expect("health is JSON");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "ok");

    for path in ["/nope", "/health/x", "/sync"] {
        let (status, headers, body) = http(srv.addr, "GET", path, &[], "");
        assert_eq!((status, body.as_str()), (404, "Not found"), "{path}");
        assert!(is_plain_text(&headers), "{path}: {headers:?}");
    }
}

#[test]
fn bad_sync_params_get_400_and_bad_tokens_401_with_a_readable_body() {
    let _w = watchdog("bad_params", Duration::from_secs(30));
    let srv = TestServer::start("routes_400");
    let good = payload_param(TOKEN);
    let token_cases: Vec<(String, &str)> = vec![
        (v03_path("s", "wrong"), "Invalid auth token"),
        (v04_path("s", "wrong", "ws"), "Invalid auth token"),
        (v04_path("s", "wrong", "http"), "Invalid auth token"),
        (
            "/websocket?storeId=s".to_string(),
            "Invalid auth token: syncPayload.authToken is missing",
        ),
    ];
    for (path, expected) in &token_cases {
        let (status, headers, body) = http(srv.addr, "GET", path, &[], "");
        assert_eq!((status, body.as_str()), (401, *expected), "{path}");
        assert!(is_plain_text(&headers), "{path}: {headers:?}");
    }
    let cases: Vec<(String, &str)> = vec![
        (
            format!("/websocket?payload={good}"),
            "Invalid search params: storeId is required",
        ),
        (
            format!("/?payload={good}&transport=ws"),
            "Invalid search params: storeId is required",
        ),
        (
            format!("/?storeId=a&storeId=b&payload={good}&transport=ws"),
            "Invalid search params: storeId must be given once",
        ),
        (
            format!("/websocket?storeId=a&payload={good}&storeId=a"),
            "Invalid search params: storeId must be given once",
        ),
        (
            "/?storeId=s&payload=%25ZZ&transport=ws".to_string(),
            "Invalid search params: payload is not valid percent-encoded UTF-8",
        ),
        (
            format!("/?storeId=%FF&payload={good}&transport=ws"),
            "Invalid search params: storeId is not valid percent-encoded UTF-8",
        ),
        (
            format!("/?storeId=s&payload={good}&transport=do-rpc"),
            "Invalid search params: transport must be ws or http, got `do-rpc`",
        ),
    ];
    for (path, expected) in &cases {
        let (status, headers, body) = http(srv.addr, "GET", path, &[], "");
        assert_eq!((status, body.as_str()), (400, *expected), "{path}");
        assert!(is_plain_text(&headers), "{path}: {headers:?}");
    }
    // Payload that is not JSON: the parser's message follows the prefix.
    for payload in ["%257B", "not%2520json", ""] {
        let path = format!("/?storeId=s&payload={payload}&transport=ws");
        let (status, headers, body) = http(srv.addr, "GET", &path, &[], "");
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.starts_with("Invalid search params: payload is not JSON ("),
            "{path}: {body}"
        );
        assert!(is_plain_text(&headers));
    }
    // A POST for the HTTP transport is checked the same way.
    let (status, _, body) = http(
        srv.addr,
        "POST",
        &v04_path("s", "wrong", "http"),
        &[("Content-Type", "application/json")],
        r#"{"_tag":"Request","id":"0","tag":"SyncHttpRpc.Ping","payload":{"storeId":"s"},"headers":[]}"#,
    );
    assert_eq!((status, body.as_str()), (401, "Invalid auth token"));
    // Nothing was created for any refused request.
    assert_eq!(srv.db.count("SELECT count(*) FROM stores"), 0);
}

#[test]
fn valid_token_without_upgrade_gets_426() {
    let _w = watchdog("no_upgrade", Duration::from_secs(30));
    let srv = TestServer::start("routes_426");
    for path in [v03_path("s", TOKEN), v04_path("s", TOKEN, "ws")] {
        let (status, headers, body) = http(srv.addr, "GET", &path, &[], "");
        assert_eq!(status, 426, "{path}: {body}");
        assert_eq!(header(&headers, "upgrade"), Some("websocket"), "{path}");
        assert!(body.contains("Upgrade: websocket"), "{body}");
        // `Upgrade: websocket` alone (no Connection: upgrade, no key) is not a handshake either.
        let (status, _, _) = http(srv.addr, "GET", &path, &[("Upgrade", "websocket")], "");
        assert_eq!(status, 426, "{path}");
    }
}

#[test]
fn http_transport_refuses_get_with_405() {
    let _w = watchdog("http_405", Duration::from_secs(30));
    let srv = TestServer::start("routes_405");
    let (status, headers, body) = http(srv.addr, "GET", &v04_path("s", TOKEN, "http"), &[], "");
    assert_eq!(status, 405, "{body}");
    assert!(
        header(&headers, "allow").is_some_and(|a| a.contains("POST")),
        "{headers:?}"
    );
    assert!(is_plain_text(&headers));
}

#[test]
fn refused_websocket_handshake_is_an_http_error_never_a_101() {
    let _w = watchdog("refused_handshake", Duration::from_secs(30));
    let srv = TestServer::start("routes_refused");
    let cases = [
        (v03_path("s", "wrong"), 401, "Invalid auth token"),
        (v04_path("s", "wrong", "ws"), 401, "Invalid auth token"),
        (
            format!("/?payload={}&transport=ws", payload_param(TOKEN)),
            400,
            "Invalid search params: storeId is required",
        ),
    ];
    for (path, code, expected) in cases {
        match Ws::try_connect(srv.addr, &path) {
            Ok(_) => panic!("{path}: the upgrade was accepted"),
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), code, "{path}");
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                assert_eq!(body.as_deref(), Some(expected), "{path}");
            }
            Err(e) => panic!("{path}: expected an HTTP error, got {e}"),
        }
    }
    // The same server accepts a good one.
    let mut ok = Ws::v04(srv.addr, "s");
    ok.send_text(r#"{"_tag":"Ping"}"#);
    assert_eq!(ok.recv_text(), r#"{"_tag":"Pong"}"#);
}

#[test]
fn cors_any_origin() {
    let _w = watchdog("cors_any", Duration::from_secs(30));
    let srv = TestServer::start("routes_cors_any");
    let path = v04_path("s", TOKEN, "http");
    let (status, headers, body) = http(
        srv.addr,
        "OPTIONS",
        &path,
        &[
            ("Origin", "https://somewhere.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type,x-livestore-store-id,authorization",
            ),
        ],
        "",
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, "");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    let methods = header(&headers, "access-control-allow-methods").expect("allow-methods");
    for m in ["GET", "POST", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some("content-type,x-livestore-store-id,authorization")
    );
    // Without Access-Control-Request-Headers: `*`.
    let (status, headers, _) = http(
        srv.addr,
        "OPTIONS",
        "/anything",
        &[("Origin", "https://somewhere.example")],
        "",
    );
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-headers"), Some("*"));
    // Ordinary responses, errors included, carry the header too.
    for (method, path) in [
        ("GET", "/".to_string()),
        ("GET", "/nope".to_string()),
        ("GET", v03_path("s", "wrong")),
    ] {
        let (_, headers, _) = http(
            srv.addr,
            method,
            &path,
            &[("Origin", "https://somewhere.example")],
            "",
        );
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
}

#[test]
fn cors_restricted_to_configured_origins() {
    let _w = watchdog("cors_list", Duration::from_secs(30));
    let srv = TestServer::start_with("routes_cors_list", |c| {
        c.cors_origins = vec!["https://app.example".into()]
    });
    let path = v04_path("s", TOKEN, "http");
    let preflight = |origin: &str| {
        http(
            srv.addr,
            "OPTIONS",
            &path,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            "",
        )
    };
    let (status, headers, _) = preflight("https://app.example");
    assert_eq!(status, 204);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(header(&headers, "vary").is_some_and(|v| v.contains("Origin")));
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some("content-type")
    );
    assert!(header(&headers, "access-control-allow-methods").is_some());

    let (status, headers, _) = preflight("https://evil.example");
    assert_eq!(status, 204);
    for h in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert_eq!(header(&headers, h), None, "{h} sent to a foreign origin");
    }

    let (_, headers, _) = http(
        srv.addr,
        "GET",
        "/",
        &[("Origin", "https://app.example")],
        "",
    );
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let (_, headers, _) = http(
        srv.addr,
        "GET",
        "/",
        &[("Origin", "https://evil.example")],
        "",
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let (_, headers, _) = http(srv.addr, "GET", "/", &[], "");
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}
