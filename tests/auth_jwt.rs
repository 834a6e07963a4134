//! Who may use which store, over real sockets against the real binary: a
//! signed token (JWT) for store A opens A over 0.3, 0.4 WebSocket and 0.4
//! HTTP, from `syncPayload.authToken` and from `Authorization: Bearer`; for
//! store B it gets `403` before any upgrade (never a `101` then a close); an
//! expired one gets `401`. No token or secret shows in the server's log.
//! The claim and signature cases one by one are unit tests in `src/auth.rs`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "jwt-test-secret-never-logged";
const STATIC: &str = "static-backend-token-never-logged";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: serde_json::Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

/// Where the token goes.
#[derive(Clone, Copy, Debug)]
enum From {
    Payload,
    Bearer,
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    V03,
    V04Ws,
    V04Http,
}

fn path(t: Transport, store: &str, token: &str, from: From) -> String {
    match (t, from) {
        (Transport::V03, From::Payload) => v03_path(store, token),
        (Transport::V04Ws, From::Payload) => v04_path(store, token, "ws"),
        (Transport::V04Http, From::Payload) => v04_path(store, token, "http"),
        (Transport::V03, From::Bearer) => format!("/websocket?storeId={}", form_encode(store)),
        (Transport::V04Ws, From::Bearer) => {
            format!("/?storeId={}&transport=ws", form_encode(store))
        }
        (Transport::V04Http, From::Bearer) => {
            format!("/?storeId={}&transport=http", form_encode(store))
        }
    }
}

/// `Ok(())` when the store answers a ping; `Err((status, body))` when the
/// request is refused (over WebSocket: an HTTP answer to the upgrade, never
/// a `101`).
fn try_use(
    addr: SocketAddr,
    t: Transport,
    store: &str,
    token: &str,
    from: From,
) -> Result<(), (u16, String)> {
    let p = path(t, store, token, from);
    let bearer = format!("Bearer {token}");
    let headers: Vec<(&str, &str)> = match from {
        From::Bearer => vec![("Authorization", bearer.as_str())],
        From::Payload => vec![],
    };
    match t {
        Transport::V04Http => {
            let body = json!({"_tag": "Request", "id": "0", "tag": "SyncHttpRpc.Ping",
                              "payload": {"storeId": store}, "headers": []})
            .to_string();
            let mut h = headers.clone();
            h.push(("Content-Type", "application/json"));
            let (status, _, body) = http(addr, "POST", &p, &h, &body);
            match status {
                200 => Ok(()),
                s => Err((s, body)),
            }
        }
        Transport::V03 | Transport::V04Ws => {
            use tungstenite::client::IntoClientRequest;
            let mut req = format!("ws://{addr}{p}").into_client_request().unwrap();
            for (k, v) in &headers {
                req.headers_mut()
                    .insert(*k, tungstenite::http::HeaderValue::from_str(v).unwrap());
            }
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            match tungstenite::client::client(req, stream) {
                Ok((ws, _)) => {
                    let mut ws = Ws { ws };
                    match t {
                        Transport::V03 => ws.ping_v03(),
                        _ => ws.ping_v04(),
                    }
                    Ok(())
                }
                Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                    let body = resp
                        .body()
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    Err((resp.status().as_u16(), body))
                }
                Err(e) => panic!("{t:?} {p}: expected an HTTP answer, got {e:?}"),
            }
        }
    }
}

const ALL: [Transport; 3] = [Transport::V03, Transport::V04Ws, Transport::V04Http];

#[test]
fn a_jwt_opens_its_stores_only_on_every_transport_and_never_shows_in_the_log() {
    let _w = watchdog("jwt_stores", Duration::from_secs(120));
    let dir = TempDir::new("jwt_stores");
    let server = ServerProcess::start(
        &dir.db_url(),
        &[
            "--jwt-secret",
            SECRET,
            "--auth-token",
            STATIC,
            "--log-level",
            "debug",
        ],
    );
    let addr = server.addr;
    let team = hs256(json!({"stores": ["a"], "store_prefix": "team-1/", "exp": now() + 3600}));
    let expired = hs256(json!({"stores": ["a"], "exp": now() - 3600}));
    let wrong_key = {
        let key = EncodingKey::from_secret(b"another-secret");
        encode(
            &Header::new(Algorithm::HS256),
            &json!({"stores": ["a"], "exp": now() + 3600}),
            &key,
        )
        .unwrap()
    };
    for t in ALL {
        for from in [From::Payload, From::Bearer] {
            let case = format!("{t:?} from {from:?}");
            assert_eq!(try_use(addr, t, "a", &team, from), Ok(()), "{case}");
            assert_eq!(try_use(addr, t, "team-1/x", &team, from), Ok(()), "{case}");
            assert_eq!(
                try_use(addr, t, "b", &team, from),
                Err((
                    403,
                    "Forbidden: the auth token does not grant store `b`".into()
                )),
                "{case}"
            );
            assert_eq!(
                try_use(addr, t, "a", &expired, from),
                Err((401, "Invalid auth token: expired (exp)".into())),
                "{case}"
            );
            assert_eq!(
                try_use(addr, t, "a", &wrong_key, from),
                Err((
                    401,
                    "Invalid auth token: bad signature or unknown key".into()
                )),
                "{case}"
            );
            // A static token set on purpose opens every store, as before.
            assert_eq!(try_use(addr, t, "b", STATIC, from), Ok(()), "{case}");
        }
        // The default token is off once a JWT key is set.
        assert_eq!(
            try_use(addr, t, "a", "insecure-token-change-me", From::Payload).map_err(|e| e.0),
            Err(401),
            "{t:?}"
        );
    }
    // A header wins over the payload: a good payload token does not save a
    // bad Bearer one (a proxy's header is what counts).
    let (status, _, _) = http(
        addr,
        "GET",
        &v04_path("a", &team, "ws"),
        &[("Authorization", "Bearer nope")],
        "",
    );
    assert_eq!(status, 401);

    server.wait_for_log("refused request", Duration::from_secs(10));
    assert!(server.logged("status=403"), "{:?}", server.log.lock());
    for secret in [SECRET, STATIC, &team, &expired, &wrong_key] {
        assert!(
            !server.logged(secret),
            "a secret or token in the log: {secret}"
        );
    }
    // No piece of a token either (its signature, its claims).
    for part in team.split('.') {
        assert!(!server.logged(part), "a token part in the log: {part}");
    }
}

#[test]
fn public_keys_from_a_pem_file_and_a_jwks_file() {
    let _w = watchdog("jwt_keys", Duration::from_secs(120));
    let claims = json!({"stores": ["k"], "exp": now() + 600});
    let ed =
        EncodingKey::from_ed_pem(&std::fs::read(fixture("ed25519-private.pem")).unwrap()).unwrap();
    let ed_token = encode(&Header::new(Algorithm::EdDSA), &claims, &ed).unwrap();
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let rsa_token = encode(&header, &claims, &rsa).unwrap();

    let dir = TempDir::new("jwt_keys");
    let pem = fixture("ed25519-public.pem");
    let server = ServerProcess::start(
        &dir.db_url(),
        &["--jwt-public-key-file", pem.to_str().unwrap()],
    );
    assert_eq!(
        try_use(server.addr, Transport::V04Ws, "k", &ed_token, From::Bearer),
        Ok(())
    );
    assert_eq!(
        try_use(
            server.addr,
            Transport::V04Ws,
            "k",
            &rsa_token,
            From::Payload
        )
        .map_err(|e| e.0),
        Err(401)
    );
    drop(server);

    let dir = TempDir::new("jwt_jwks");
    let jwks = fixture("jwks.json");
    let server = ServerProcess::start(&dir.db_url(), &["--jwt-jwks-file", jwks.to_str().unwrap()]);
    for token in [&ed_token, &rsa_token] {
        assert_eq!(
            try_use(server.addr, Transport::V03, "k", token, From::Payload),
            Ok(())
        );
        assert_eq!(
            try_use(
                server.addr,
                Transport::V04Http,
                "other",
                token,
                From::Bearer
            )
            .map_err(|e| e.0),
            Err(403)
        );
    }
}

#[test]
fn bad_key_settings_stop_the_start() {
    let _w = watchdog("jwt_bad_keys", Duration::from_secs(60));
    let dir = TempDir::new("jwt_bad_keys");
    let mut cmd = server_command();
    cmd.args(["--database-url", &dir.db_url()]).args([
        "--jwt-public-key-file",
        fixture("jwks.json").to_str().unwrap(),
    ]);
    let (status, err) = run_to_exit(cmd, Duration::from_secs(20));
    assert!(!status.success());
    assert!(
        err.contains("JWT_PUBLIC_KEY_FILE:") && err.contains("is not an RSA or Ed25519 public key"),
        "{err}"
    );
}

#[test]
fn an_open_websocket_is_closed_once_its_token_expired() {
    let _w = watchdog("jwt_expiry_close", Duration::from_secs(120));
    let dir = TempDir::new("jwt_expiry");
    let server = ServerProcess::start(&dir.db_url(), &["--jwt-secret", SECRET]);
    for (t, p) in [
        (Transport::V04Ws, "/?storeId=e&transport=ws"),
        (Transport::V03, "/websocket?storeId=e"),
    ] {
        // Valid for about 2 s more: 60 s of leeway past `exp`.
        let short = hs256(json!({"stores": ["e"], "exp": now() + 2 - 60}));
        let mut ws = Ws::connect(
            server.addr,
            &format!("{p}&payload={}", payload_param(&short)),
        );
        let ping = match t {
            Transport::V03 => r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#,
            _ => r#"{"_tag":"Ping"}"#,
        };
        // Ping until the server closes (the watchdog bounds the wait).
        let code = 'outer: loop {
            ws.send_text(ping);
            loop {
                match ws.ws.read() {
                    Ok(tungstenite::Message::Text(_)) => break,
                    Ok(tungstenite::Message::Close(f)) => {
                        break 'outer f.map(|f| (u16::from(f.code), f.reason.to_string()))
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{t:?}: the socket ended without a close frame: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(code, Some((1008, "token expired".to_string())), "{t:?}");
    }
    server.wait_for_log("reason=\"token expired\"", Duration::from_secs(10));
}
