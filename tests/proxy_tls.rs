//! TLS through the committed proxy configurations (`docs/deploy/nginx.conf`,
//! `docs/deploy/Caddyfile`), as a user copies them: the proxy terminates
//! TLS with a throwaway CA's certificate (`tests/common/proxy.rs`) in front
//! of three instances on one PostgreSQL, and
//!
//! - the real LiveStore clients, told to trust that CA through
//!   `NODE_EXTRA_CA_CERTS` (nothing else: an untrusted certificate fails
//!   them), converge over `wss://` (0.3.1 and 0.4.0 WebSocket writers
//!   racing) and `https://` (a 0.4.0 HTTP reader);
//! - a wrong auth token is refused at the upgrade through the proxy: Node's
//!   TLS client gets the server's `401` and its text, not a `502`, while
//!   the same request with the right token gets `101`;
//! - `/health` answers over the verified TLS connection, and nginx's
//!   plain-HTTP server redirects to `https://`;
//! - the committed nginx timeouts stay above the clients' ping intervals
//!   and the server's own idle timeout (a machine cannot wait out two
//!   minutes of silence in every run; this reads the numbers instead).
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::node::*;
use common::*;
use serde_json::Value;

/// The CA the proxy's certificate chains to.
fn ca(d: &Deployment) -> &Path {
    &d.proxy.tls.as_ref().expect("started over TLS").ca
}

/// A WebSocket upgrade request as the clients send it, made by Node's own
/// TLS client (trusting the test CA): `{"status": 101}` when upgraded, else
/// the status and body of the answer, or `{"error": …}`.
const UPGRADE_JS: &str = r#"
const https = require('node:https')
const req = https.request(process.argv[1], {
  headers: {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  },
})
const done = (v) => { console.log(JSON.stringify(v)); process.exit(0) }
req.on('upgrade', (res, socket) => { socket.destroy(); done({ status: res.statusCode }) })
req.on('response', (res) => {
  let body = ''
  res.setEncoding('utf8')
  res.on('data', (d) => { body += d })
  res.on('end', () => done({ status: res.statusCode, body }))
})
req.on('error', (e) => done({ error: String(e) }))
setTimeout(() => done({ error: 'no answer within 10 s' }), 10000)
req.end()
"#;

fn upgrade(d: &Deployment, path: &str) -> Value {
    let out = Command::new("node")
        .args(["-e", UPGRADE_JS])
        .arg(format!("https://{}{path}", d.proxy.addr))
        .env("NODE_EXTRA_CA_CERTS", ca(d))
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "node printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn clients_converge_over_tls(kind: ProxyKind) {
    let tag = format!("proxy_tls_{}", kind.name());
    let _w = watchdog("proxy_tls", Duration::from_secs(170));
    prepare_clients("v03");
    prepare_clients("v04");
    let d = Deployment::start(kind, &tag, E2E_TOKEN, E2E_ADMIN_SECRET, true);

    let (status, body) = https_get(d.proxy.addr, ca(&d), "/health")
        .unwrap_or_else(|| panic!("no answer over TLS\n{}", d.context()));
    assert_eq!(status, 200, "/health over TLS: {body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["notices"], "ok", "{body}");

    let store = format!("tls-{}-{}", kind.name(), std::process::id());
    // The refusal reaches the client through the proxy; the right token,
    // through the same proxy, is upgraded (so the 401 is the token's).
    for (name, path) in [
        ("0.3", v03_path(&store, E2E_WRONG_TOKEN)),
        ("0.4", v04_path(&store, E2E_WRONG_TOKEN, "ws")),
    ] {
        let got = upgrade(&d, &path);
        assert_eq!(
            (&got["status"], &got["body"]),
            (&Value::from(401), &Value::from("Invalid auth token")),
            "{name} upgrade with a wrong token through {}: {got}\n{}",
            kind.name(),
            d.context()
        );
    }
    for path in [
        v03_path(&store, E2E_TOKEN),
        v04_path(&store, E2E_TOKEN, "ws"),
    ] {
        let got = upgrade(&d, &path);
        assert_eq!(got["status"], 101, "{got}\n{}", d.context());
    }

    if let Some(plain) = d.proxy.redirect_addr {
        let (status, headers, _) = http(plain, "GET", "/health", &[], "");
        assert_eq!(status, 301);
        let location = header(&headers, "location").unwrap_or_default();
        assert!(location.starts_with("https://"), "{location}");
    }

    let (writers, all_ids) = d.race_writers(&store, "writer-t");
    let reader = ClientSpec::reader(Kind::V04Http, "carol04ht", all_ids.len());
    for r in run_all(&d, &d.log, &store, &[reader]) {
        assert_converged(&r, &all_ids, &d);
    }
    assert_database(&d.log, &store, &writers, &d);
}

#[test]
fn nginx_real_clients_converge_over_wss_and_https() {
    clients_converge_over_tls(ProxyKind::Nginx);
}

#[test]
fn caddy_real_clients_converge_over_wss_and_https() {
    clients_converge_over_tls(ProxyKind::Caddy);
}

/// The seconds of an nginx directive in the committed nginx.conf.
fn nginx_seconds(conf: &str, directive: &str) -> u64 {
    let line = conf
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{directive} ")))
        .unwrap_or_else(|| panic!("nginx.conf sets no {directive}"));
    line.trim_start_matches(directive)
        .trim()
        .trim_end_matches(';')
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}: expected seconds like `120s`"))
}

#[test]
fn nginx_timeouts_are_above_the_pings_and_the_servers_idle_timeout() {
    let conf = std::fs::read_to_string(ProxyKind::Nginx.config_path()).unwrap();
    let idle = livestore_sync::config::Config::default()
        .limits
        .ws_idle_timeout
        .as_secs();
    // 0.4 clients ping every 10 s, 0.3 clients every 25 s.
    assert!(idle > 25, "the server's idle timeout {idle} s");
    for directive in ["proxy_read_timeout", "proxy_send_timeout", "send_timeout"] {
        let secs = nginx_seconds(&conf, directive);
        assert!(
            secs > idle,
            "{directive} {secs}s: nginx would end quiet WebSockets before the server's own {idle} s"
        );
    }
}
