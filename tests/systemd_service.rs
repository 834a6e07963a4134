//! The binary under systemd's protocols, each played for real:
//!
//! - notify: a unix datagram socket of the test's own is `NOTIFY_SOCKET`;
//!   `READY=1` comes only when `/health` answers, `WATCHDOG=1` repeatedly
//!   with `WATCHDOG_USEC` set, `STOPPING=1` on SIGTERM; without a notify
//!   socket (or with a dead one) the server serves as ever;
//! - journald: with `JOURNAL_STREAM` naming its stderr, every line starts
//!   with a priority (`<6>` …) and has no timestamp of ours;
//! - socket activation: `systemd-socket-activate` opens the port and execs
//!   the binary with the socket as fd 3; real WebSocket and HTTP clients
//!   connect through it.
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use common::*;

/// A notify socket of the test's own, as systemd has one.
struct NotifySocket {
    sock: UnixDatagram,
    /// The value for `NOTIFY_SOCKET`.
    env: String,
}

impl NotifySocket {
    /// An abstract socket (`@name`).
    fn abstract_name(tag: &str) -> NotifySocket {
        let name = format!("lss-test-notify-{tag}-{}", std::process::id());
        let sock = UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap())
            .expect("bind the abstract notify socket");
        Self::ready(sock, format!("@{name}"))
    }

    /// A socket file at `path`.
    fn path(path: &std::path::Path) -> NotifySocket {
        let sock = UnixDatagram::bind(path).expect("bind the notify socket");
        Self::ready(sock, path.display().to_string())
    }

    fn ready(sock: UnixDatagram, env: String) -> NotifySocket {
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        NotifySocket { sock, env }
    }

    /// The next message; panics if none comes within 20 s.
    fn recv(&self, log: &Log) -> String {
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => String::from_utf8(buf[..n].to_vec()).expect("UTF-8 message"),
            Err(e) => panic!(
                "no notify message within 20 s ({e}); the server's log:\n{}",
                log.text()
            ),
        }
    }
}

/// What a child wrote to stderr, line by line, as it goes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn follow(&self, stderr: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().push(line);
            }
        })
    }
    fn text(&self) -> String {
        self.0.lock().join("\n")
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().clone()
    }
    fn wait_for(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.0.lock().iter().any(|l| l.contains(text)) {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not log `{text}` within 20 s:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Kills the child however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(mut cmd: Command, log: &Log) -> Running {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livestore-sync");
    log.follow(child.stderr.take().unwrap());
    Running(child)
}

/// `serving on ADDR, …` in a `READY=1` message's `STATUS=`.
fn serving_addr(ready: &str) -> SocketAddr {
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("READY without STATUS: {ready:?}"));
    status
        .strip_prefix("serving on ")
        .and_then(|s| s.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("STATUS names no address: {status:?}"))
}

#[test]
fn notify_ready_when_health_answers_watchdog_while_serving_stopping_on_sigterm() {
    let _w = watchdog("notify", Duration::from_secs(90));
    let dir = TempDir::new("notify");
    let notify = NotifySocket::abstract_name("ready");
    let mut cmd = server_command();
    cmd.args(["--database-url", &dir.db_url(), "--auth-token", TOKEN])
        .env("NOTIFY_SOCKET", &notify.env)
        // 200 ms: a ping every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID");
    let log = Log::default();
    let mut srv = spawn(cmd, &log);

    // The first message is READY=1; the instant it is read, /health answers.
    let ready = notify.recv(&log);
    assert!(
        ready.lines().any(|l| l == "READY=1"),
        "first message: {ready:?}"
    );
    let addr = serving_addr(&ready);
    let (status, _, body) = http(addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");

    // WATCHDOG=1, again and again, while it serves.
    for _ in 0..3 {
        assert_eq!(notify.recv(&log), "WATCHDOG=1");
    }

    srv.sigterm();
    let mut after = Vec::new();
    loop {
        let m = notify.recv(&log);
        if m.lines().any(|l| l == "STOPPING=1") {
            break;
        }
        after.push(m);
    }
    assert!(
        after.iter().all(|m| m == "WATCHDOG=1"),
        "before STOPPING=1: {after:?}"
    );
    let status = srv.wait_exit();
    assert!(status.success(), "exit {status}\n{}", log.text());
}

/// No notify socket, or one nobody listens on: the server starts, serves
/// and stops as it always did (the dead socket is logged once).
#[test]
fn without_a_notify_socket_nothing_changes() {
    let _w = watchdog("no_notify", Duration::from_secs(90));
    for notify_socket in [None, Some("/nonexistent/notify.sock")] {
        let dir = TempDir::new("no_notify");
        let mut cmd = server_command();
        cmd.args(["--database-url", &dir.db_url()])
            .env("WATCHDOG_USEC", "200000")
            .env_remove("NOTIFY_SOCKET");
        if let Some(s) = notify_socket {
            cmd.env("NOTIFY_SOCKET", s);
        }
        let mut srv = ServerProcess::start_command(cmd);
        let (status, _, body) = http(srv.addr, "GET", "/health", &[], "");
        assert_eq!(status, 200, "{body}");
        if notify_socket.is_some() {
            srv.wait_for_log(
                "cannot notify systemd (NOTIFY_SOCKET)",
                Duration::from_secs(10),
            );
        }
        srv.sigterm();
        let status = srv.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "exit {status}");
        assert!(srv.logged("stopped"));
    }
}

/// Whether `line` holds an ISO-8601 timestamp (`2025-01-02T03:04`).
fn has_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.windows(11).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && w[4] == b'-'
            && w[5..7].iter().all(u8::is_ascii_digit)
            && w[7] == b'-'
            && w[8..10].iter().all(u8::is_ascii_digit)
            && w[10] == b'T'
    })
}

/// Runs the server with stderr a pipe and `JOURNAL_STREAM` set to that
/// pipe's `device:inode` (`matching`) or to something else; makes it log at
/// every level it logs by default (warnings, info, a refused request);
/// stops it. Every line of its stderr.
fn journal_run(matching: bool) -> Vec<String> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let dir = TempDir::new("journal");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let meta = std::fs::File::from(writer.as_fd().try_clone_to_owned().unwrap())
        .metadata()
        .unwrap();
    let stream = if matching {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    let mut cmd = server_command();
    // Default secrets: the start-up warnings.
    cmd.args(["--database-url", &dir.db_url()])
        .env_remove("AUTH_TOKEN")
        .env_remove("ADMIN_SECRET")
        .env("JOURNAL_STREAM", stream)
        .stdout(Stdio::null())
        .stderr(writer);
    let log = Log::default();
    let child = cmd.spawn().expect("spawn livestore-sync");
    drop(cmd); // our copy of the pipe's write end: EOF when the child exits
    let follower = log.follow(reader);
    let mut srv = Running(child);
    log.wait_for("listening on ");
    let addr: SocketAddr = log
        .lines()
        .iter()
        .find_map(|l| {
            l.split("listening on ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap();
    let wrong_token = "wrong-token-must-not-be-logged";
    let (status, _, _) = http(
        addr,
        "GET",
        &v03_path("journal store", wrong_token),
        &[],
        "",
    );
    assert_eq!(status, 401);
    log.wait_for("refused request");
    srv.sigterm();
    assert!(srv.wait_exit().success(), "{}", log.text());
    follower.join().unwrap();
    let lines = log.lines();
    assert!(
        lines.iter().all(|l| !l.contains(wrong_token)),
        "a token in the log:\n{}",
        log.text()
    );
    let refused = lines
        .iter()
        .find(|l| l.contains("refused request"))
        .unwrap();
    assert!(
        refused.contains("refused request store=\"journal store\" peer=127.0.0.1:")
            && refused.contains(
                " protocol=0.3 method=GET path=/websocket status=401 reason=\"Invalid auth token\""
            ),
        "{refused}"
    );
    lines
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let _w = watchdog("journal", Duration::from_secs(90));
    let lines = journal_run(true);
    assert!(lines.len() >= 5, "{lines:#?}");
    for l in &lines {
        let p = l.strip_prefix('<').and_then(|r| r.split_once('>'));
        assert!(
            matches!(p, Some(("3" | "4" | "6" | "7", _))),
            "no priority prefix: {l:?}\n{lines:#?}"
        );
        assert!(!has_timestamp(l), "a timestamp under journald: {l:?}");
    }
    let starts = |p: &str, text: &str| lines.iter().any(|l| l.starts_with(p) && l.contains(text));
    assert!(starts(
        "<4>",
        "!!! AUTH_TOKEN has its well-known default value"
    ));
    assert!(starts("<6>", "listening on 127.0.0.1:"));
    assert!(starts("<4>", "refused request store="));
    assert!(starts("<6>", "stopped"));
}

/// `JOURNAL_STREAM` inherited by a process whose stderr is elsewhere:
/// plain lines with timestamps.
#[test]
fn journal_stream_naming_another_file_keeps_plain_lines() {
    let _w = watchdog("journal_other", Duration::from_secs(90));
    let lines = journal_run(false);
    for l in &lines {
        assert!(has_timestamp(l), "no timestamp: {l:?}");
        assert!(!l.starts_with('<'), "{l:?}");
    }
}

fn systemd_socket_activate() -> &'static str {
    const TOOL: &str = "/usr/bin/systemd-socket-activate";
    assert!(
        std::path::Path::new(TOOL).exists(),
        "{TOOL} is missing: install it with `apt-get install -y systemd` (only the tool is needed)"
    );
    TOOL
}

/// `systemd-socket-activate` opens the port, waits for the first client
/// and execs the server with the socket as fd 3. The server serves it (not
/// `--port`, which the test holds: binding it would fail), says READY on a
/// notify socket file, and real WebSocket and HTTP clients get answers.
#[test]
fn socket_activation_serves_the_passed_socket() {
    let _w = watchdog("socket_activation", Duration::from_secs(90));
    let tool = systemd_socket_activate();
    let dir = TempDir::new("activation");
    let notify = NotifySocket::path(&dir.path().join("notify.sock"));
    let port = free_port();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port().to_string();
    let mut cmd = Command::new(tool);
    cmd.args(["-l", &format!("127.0.0.1:{port}")])
        .args(["-E", &format!("NOTIFY_SOCKET={}", notify.env)])
        .args(["-E", "LOG_LEVEL=info"])
        .arg(env!("CARGO_BIN_EXE_livestore-sync"))
        .args(["--database-url", &dir.db_url(), "--auth-token", TOKEN])
        .args(["--host", "127.0.0.1", "--port", &held_port]);
    let log = Log::default();
    let mut srv = spawn(cmd, &log);
    log.wait_for(&format!("Listening on 127.0.0.1:{port}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // The first client starts the server.
    let mut ws = Ws::v03(addr, "activated");
    ws.push_v03_acked("r1", &events(1, 2, "c"));
    let (status, _, body) = http(addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    let ready = notify.recv(&log);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert_eq!(serving_addr(&ready), addr);
    assert!(
        log.text().contains("serving the socket systemd passed"),
        "{}",
        log.text()
    );
    drop(ws);

    srv.sigterm();
    let status = srv.wait_exit();
    assert!(status.success(), "exit {status}\n{}", log.text());
    drop(held);
}
