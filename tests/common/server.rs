//! The server under test: the binary as a child process ([`ServerProcess`])
//! or in this process ([`TestServer`]), and a watchdog so that a hang fails
//! the test quickly instead of stalling CI.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::db::TestDb;

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

/// The `livestore-sync` binary on 127.0.0.1 with a free port, logging at
/// info, and none of the storage settings of the environment the tests run
/// in (`DATABASE_URL`, `DATA_DIR`, `STATE_DIRECTORY`): without more flags it
/// keeps its SQLite log in `./data` of its working directory.
pub fn server_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestore-sync"));
    cmd.args(["--host", "127.0.0.1", "--port", "0"])
        .env("LOG_LEVEL", "info")
        .env_remove("DATABASE_URL")
        .env_remove("DATA_DIR")
        .env_remove("STATE_DIRECTORY");
    cmd
}

/// `livestore-sync` as the operator's command line, on the event log at
/// `url` (`DATABASE_URL`; none of the environment's other storage settings).
pub fn tool_command(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestore-sync"));
    cmd.env("DATABASE_URL", url)
        .env_remove("DATA_DIR")
        .env_remove("STATE_DIRECTORY");
    cmd
}

/// Runs `livestore-sync <args>` on `url`, which must succeed; its stdout
/// and stderr together.
pub fn run_tool(url: &str, args: &[&str]) -> String {
    let out = tool_command(url)
        .args(args)
        .output()
        .expect("run livestore-sync");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "livestore-sync {args:?}: {text}");
    text
}

/// Runs `cmd` (see [`server_command`]) expecting it to exit by itself (a
/// refused start); its status and what it wrote to stderr.
pub fn run_to_exit(mut cmd: Command, within: Duration) -> (ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livestore-sync");
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "livestore-sync still running after {within:?}; it was expected to refuse to start"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

impl ServerProcess {
    /// Starts `livestore-sync` on 127.0.0.1 with a free port against `db_url`
    /// (`postgresql://…` or `sqlite:///…`), and waits for its `listening on`
    /// line. `extra` are more flags.
    pub fn start(db_url: &str, extra: &[&str]) -> ServerProcess {
        Self::start_on_port(db_url, 0, extra)
    }

    /// Like [`ServerProcess::start`], on the given port (0: a free one), e.g. to
    /// start a server again where its clients expect it after stopping it.
    pub fn start_on_port(db_url: &str, port: u16, extra: &[&str]) -> ServerProcess {
        let mut cmd = server_command();
        // A later flag wins over server_command's `--port 0`.
        cmd.args(["--port", &port.to_string(), "--database-url", db_url])
            .args(extra);
        Self::start_command(cmd)
    }

    /// Starts `cmd` (see [`server_command`]) and waits for its `listening on` line.
    pub fn start_command(mut cmd: Command) -> ServerProcess {
        let mut child = cmd
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
            .unwrap_or_else(|_| {
                panic!(
                    "server did not print `listening on <addr>` within 20 s; its log:\n{}",
                    log.lock().join("\n")
                )
            });
        ServerProcess { addr, child, log }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Sends SIGTERM (the way systemd and docker stop it).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit; panics if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait for the server") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server still running {within:?} later"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a line of the server's log so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().iter().any(|l| l.contains(text))
    }

    /// Waits until the server's log has a line containing `text`.
    pub fn wait_for_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logged(text) {
            assert!(
                Instant::now() < deadline,
                "the server did not log `{text}` within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
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
    /// PostgreSQL, or SQLite with `TEST_BACKEND=sqlite`.
    pub db: super::db::EventLog,
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
        let db = super::db::EventLog::from_env(tag);
        let mut config = test_config(&db.url());
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
        database_url: Some(db_url.to_string()),
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

/// Opens the storage of `config` (the same choice as the binary makes) and runs a server on a free loopback port
/// in a thread of this process.
pub fn serve(
    config: livestore_sync::config::Config,
) -> (
    SocketAddr,
    livestore_sync::server::ShutdownHandle,
    std::thread::JoinHandle<usize>,
) {
    use livestore_sync::storage::{open, postgres::PoolOptions, Backend};
    if std::env::var_os("SHOW_SERVER_LOG").is_some() {
        livestore_sync::logger::init(log::LevelFilter::Debug);
    }
    let pool = PoolOptions {
        min_idle: config.db_pool_min,
        max_size: config.db_pool_max,
        connection_timeout: config.db_pool_timeout,
    };
    let backend =
        Backend::choose(config.database_url.as_deref(), &config.data_dir).expect("backend");
    let (storage, _) = open(&backend, &pool).expect("storage");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = livestore_sync::server::Server::from_listener(listener, config, storage);
    let handle = server.shutdown_handle();
    (addr, handle, std::thread::spawn(move || server.run()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a process that
/// must be told its port (a proxy, a PostgreSQL cluster, a unit's `%i`).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}
