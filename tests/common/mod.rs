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
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e} (set TEST_DATABASE_URL)"));
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"))
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
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
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
    let host_end = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
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
            .args(["--host", "127.0.0.1", "--port", "0", "--database-url", db_url])
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
                    if let (Some(tx), Ok(addr)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
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
