//! Shared helpers for the integration tests: a fresh PostgreSQL database per
//! test, the server binary started on a free port, and a watchdog so that a
//! hang fails the test quickly instead of stalling CI.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Where the tests find PostgreSQL: `TEST_DATABASE_URL`, default the local server.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates `lss_test_<tag>_<pid>_<n>` on the server named by `TEST_DATABASE_URL`.
    pub fn create(tag: &str) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("lss_test_{}_{}_{}", tag, std::process::id(), n)
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let admin = admin_url();
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {admin}: {e} (set TEST_DATABASE_URL)")
        });
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop old test database");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = replace_db_name(&admin, &name);
        TestDb { name, url }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Replaces the database name (the path) of a `postgresql://` URL.
pub fn replace_db_name(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Aborts the whole test process if it is still alive after `limit`, so a
/// deadlock fails fast with a message instead of hanging until CI's timeout.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("watchdog: test `{name}` still running after {limit:?}; aborting");
            std::process::abort();
        }
    });
    Watchdog { done: Some(tx) }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

/// The server binary running as a child process; killed on drop.
pub struct ServerProcess {
    pub addr: SocketAddr,
    pub child: Child,
    pub log: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `livestore-sync` on 127.0.0.1 with a free port against `db_url`,
    /// and waits for its `listening on` line. `extra` are more flags.
    pub fn start(db_url: &str, extra: &[&str]) -> ServerProcess {
        let bin = env!("CARGO_BIN_EXE_livestore-sync");
        let mut child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--database-url",
                db_url,
            ])
            .args(extra)
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn livestore-sync");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    if let (Some(tx), Ok(addr)) = (
                        tx.take(),
                        rest.split_whitespace()
                            .next()
                            .unwrap_or("")
                            .parse::<SocketAddr>(),
                    ) {
                        let _ = tx.send(addr);
                    }
                }
                if std::env::var_os("SHOW_SERVER_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
                log2.lock().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server did not print `listening on <addr>` within 20 s");
        ServerProcess { addr, child, log }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server running in this test process on a free loopback port, over a
/// fresh database. Shut down (and joined) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: TestDb,
    handle: Option<livestore_sync::server::ShutdownHandle>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

pub const TOKEN: &str = "test-token";
pub const ADMIN: &str = "test-admin";

impl TestServer {
    pub fn start(tag: &str) -> TestServer {
        Self::start_with(tag, |_| {})
    }

    /// Starts with the test defaults, adjusted by `tweak`.
    pub fn start_with(
        tag: &str,
        tweak: impl FnOnce(&mut livestore_sync::config::Config),
    ) -> TestServer {
        let db = TestDb::create(tag);
        let mut config = test_config(&db.url);
        tweak(&mut config);
        let (addr, handle, thread) = serve(config);
        TestServer {
            addr,
            db,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    /// Stops the server and returns how many connections it had to abandon.
    pub fn stop(&mut self) -> usize {
        if let Some(h) = self.handle.take() {
            h.trigger();
        }
        self.thread
            .take()
            .map(|t| t.join().expect("server thread"))
            .unwrap_or(0)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The settings every in-process test server starts from, over `db_url`.
pub fn test_config(db_url: &str) -> livestore_sync::config::Config {
    livestore_sync::config::Config {
        database_url: db_url.to_string(),
        auth_token: TOKEN.into(),
        admin_secret: ADMIN.into(),
        host: "127.0.0.1".into(),
        port: 0,
        db_pool_min: 1,
        db_pool_max: 8,
        db_pool_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Opens the storage of `config` and runs a server on a free loopback port
/// in a thread of this process.
pub fn serve(
    config: livestore_sync::config::Config,
) -> (
    SocketAddr,
    livestore_sync::server::ShutdownHandle,
    std::thread::JoinHandle<usize>,
) {
    use livestore_sync::storage::postgres::{PgStorage, PoolOptions};
    if std::env::var_os("SHOW_SERVER_LOG").is_some() {
        livestore_sync::logger::init(log::LevelFilter::Debug);
    }
    let pool = PoolOptions {
        min_idle: config.db_pool_min,
        max_size: config.db_pool_max,
        connection_timeout: config.db_pool_timeout,
    };
    let storage =
        std::sync::Arc::new(PgStorage::connect(&config.database_url, &pool).expect("storage"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = livestore_sync::server::Server::from_listener(listener, config, storage);
    let handle = server.shutdown_handle();
    (addr, handle, std::thread::spawn(move || server.run()))
}

/// `payload` query value for `{"authToken": token}`, double-encoded as the clients do.
pub fn payload_param(token: &str) -> String {
    let json = serde_json::json!({ "authToken": token }).to_string();
    form_encode(&uri_component(&json))
}

/// JavaScript's `encodeURIComponent`.
pub fn uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `URLSearchParams` value encoding.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query a 0.3 client sends for `store` with `token`.
pub fn v03_path(store: &str, token: &str) -> String {
    format!(
        "/websocket?storeId={}&payload={}",
        form_encode(store),
        payload_param(token)
    )
}

/// The query a 0.4 client sends (`transport` is `ws` or `http`).
pub fn v04_path(store: &str, token: &str, transport: &str) -> String {
    format!(
        "/?storeId={}&payload={}&transport={transport}",
        form_encode(store),
        payload_param(token)
    )
}

/// A blocking WebSocket test client with a read timeout.
pub struct Ws {
    pub ws: tungstenite::WebSocket<std::net::TcpStream>,
}

impl Ws {
    /// Connects to `path` (with query) on `addr`; panics if refused.
    pub fn connect(addr: SocketAddr, path: &str) -> Ws {
        Self::try_connect(addr, path).unwrap_or_else(|e| panic!("connect {path}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr, path: &str) -> Result<Ws, tungstenite::Error> {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tungstenite::client::client(url, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("handshake interrupted"),
        })?;
        Ok(Ws { ws })
    }

    pub fn v03(addr: SocketAddr, store: &str) -> Ws {
        Self::connect(addr, &v03_path(store, TOKEN))
    }

    pub fn v04(addr: SocketAddr, store: &str) -> Ws {
        Self::connect(addr, &v04_path(store, TOKEN, "ws"))
    }

    pub fn send(&mut self, v: serde_json::Value) {
        self.send_text(&v.to_string());
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(tungstenite::Message::text(text))
            .expect("send");
    }

    /// The next text message as JSON (panics on timeout or close).
    pub fn recv(&mut self) -> serde_json::Value {
        loop {
            match self.ws.read().expect("read") {
                tungstenite::Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).expect("server sent JSON")
                }
                tungstenite::Message::Close(f) => panic!("closed by server: {f:?}"),
                _ => {}
            }
        }
    }

    /// The next message within `timeout`, or `None` if nothing arrived.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        self.ws.get_ref().set_read_timeout(Some(timeout)).unwrap();
        let out = match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(other) => panic!("unexpected message {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("read: {e}"),
        };
        self.ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        out
    }

    /// Reads until the server closes; returns the close code (None: no close frame).
    pub fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Events `from..from+n` chaining from `from - 1`, as raw JSON text (a
/// `serde_json::Value` would sort the keys), with args whose keys are
/// deliberately not sorted.
pub fn events(from: i64, n: i64, client: &str) -> String {
    let items: Vec<String> = (from..from + n)
        .map(|i| {
            format!(
                r#"{{"name":"v1.TodoCreated","args":{},"seqNum":{i},"parentSeqNum":{},"clientId":"{client}","sessionId":"s"}}"#,
                args_text(i, client),
                i - 1
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A 0.3 `PushReq` frame.
pub fn v03_push(request_id: &str, batch: &str) -> String {
    format!(r#"{{"_tag":"WSMessage.PushReq","requestId":"{request_id}","batch":{batch}}}"#)
}

/// A 0.4 `Push` request; `backend_id` is the raw Option JSON (`{"_tag":"None"}` …).
pub fn v04_push(id: &str, tag: &str, store: &str, batch: &str, backend_id: &str) -> String {
    format!(
        r#"{{"_tag":"Request","id":"{id}","tag":"{tag}","payload":{{"storeId":{},"payload":{{"authToken":"{TOKEN}"}},"batch":{batch},"backendId":{backend_id}}},"headers":[]}}"#,
        serde_json::Value::from(store)
    )
}

/// The raw text of one event's args as `events` builds it.
pub fn args_text(i: i64, client: &str) -> String {
    format!(
        r#"{{"text":"todo {i}","id":"{client}-{i}","nested":{{"zeta":1,"alpha":[2,{{"b":1,"a":0}}]}}}}"#
    )
}

/// A minimal HTTP/1.1 client: one request on a new connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&String::from_utf8(raw).unwrap())
}

pub fn parse_response(raw: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

impl Ws {
    /// The next text message as its raw text (panics on timeout or close).
    pub fn recv_text(&mut self) -> String {
        loop {
            match self.ws.read().expect("read") {
                tungstenite::Message::Text(t) => return t.as_str().to_string(),
                tungstenite::Message::Close(f) => panic!("closed by server: {f:?}"),
                _ => {}
            }
        }
    }
}

/// A 0.4 `Pull` request. `live` is `Some(b)` for `SyncWsRpc.Pull` (the field
/// is left out with `None`, as `SyncHttpRpc.Pull` does); `cursor` is the raw
/// Option JSON (`{"_tag":"None"}` …).
pub fn v04_pull(id: &str, tag: &str, store: &str, live: Option<bool>, cursor: &str) -> String {
    let live = match live {
        Some(b) => format!(r#","live":{b}"#),
        None => String::new(),
    };
    format!(
        r#"{{"_tag":"Request","id":"{id}","tag":"{tag}","payload":{{"storeId":{},"payload":{{"authToken":"{TOKEN}"}}{live},"cursor":{cursor}}},"headers":[]}}"#,
        serde_json::Value::from(store)
    )
}

/// `{"_tag":"Some","value":{"backendId":…,"eventSequenceNumber":…}}`.
pub fn some_cursor(backend_id: &str, seq: i64) -> String {
    format!(
        r#"{{"_tag":"Some","value":{{"backendId":{},"eventSequenceNumber":{seq}}}}}"#,
        serde_json::Value::from(backend_id)
    )
}

/// `{"_tag":"Some","value":backend_id}` (a push's `backendId`).
pub fn some_str(s: &str) -> String {
    format!(
        r#"{{"_tag":"Some","value":{}}}"#,
        serde_json::Value::from(s)
    )
}

pub const NONE: &str = r#"{"_tag":"None"}"#;

/// The seqNums of the events in a 0.4 `PullResponse` or 0.3 `PullRes` batch.
pub fn seqs(batch: &serde_json::Value) -> Vec<i64> {
    batch
        .as_array()
        .expect("batch is an array")
        .iter()
        .map(|e| e["eventEncoded"]["seqNum"].as_i64().expect("seqNum"))
        .collect()
}
