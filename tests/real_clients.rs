//! End-to-end tests with the REAL, unmodified LiveStore npm clients (0.3.1 `makeCfSync`, 0.4.0
//! `makeWsSync` / `makeHttpSync`) run headless in Node against the built server binary.
//!
//! The clients live in `tests/e2e/v03` and `tests/e2e/v04` (`client.mjs`, pinned `package.json` and
//! `package-lock.json`). When a client folder has no installed `node_modules`, the harness runs
//! `npm ci --no-audit --no-fund` there itself (once, serialized). Node >= 20 and npm must be on the
//! PATH: without them these tests FAIL, they never skip.
//!
//! Every scenario gets its own PostgreSQL database and server process, so the `#[test]`s run in
//! parallel. `SHOW_SERVER_LOG=1` echoes the server's log, `SHOW_CLIENT_LOG=1` the clients' stderr.

mod common;

use common::{watchdog, ServerProcess, TestDb, APPEND_SQL_FRAGMENT};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-good-token";
const WRONG_TOKEN: &str = "e2e-wrong-token";
const ADMIN_SECRET: &str = "e2e-admin-secret";
/// Events each writing client commits.
const EVENTS_PER_WRITER: usize = 10;
/// How long a client may take to converge (from its process start, including boot).
const CLIENT_TIMEOUT_MS: u64 = 45_000;
/// How long the wrong-token client runs before it reports.
const NOSYNC_RUN_MS: u64 = 4_000;
/// `livePull.pollInterval` of the 0.4 HTTP client (its default is 5 s).
const HTTP_POLL_MS: u64 = 500;
/// How long the concurrent writers may take to boot before they are released together.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The line a `--wait-go` client prints to stderr once it has booted.
const READY_MARKER: &str = "E2E-READY";
/// The line a client prints to stderr when its first push leaves (`tests/e2e/probe.mjs`).
const PUSHED_MARKER: &str = "E2E-PUSHED";
/// How long the released writers may take to send their first push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Node / npm preparation
// ---------------------------------------------------------------------------------------------

fn e2e_dir(gen: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
        .join(gen)
}

fn tool_version(tool: &str) -> Result<String, String> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(out) => Err(format!(
            "`{tool} --version` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run `{tool}`: {e}")),
    }
}

/// Checks node and npm, and installs the client folder's `node_modules` from its lockfile if
/// needed. Serialized by a static mutex so that parallel tests do not run `npm ci` concurrently.
fn prepare_clients(gen: &str) {
    static NPM: Mutex<()> = Mutex::new(());
    let _guard = NPM.lock().unwrap_or_else(|e| e.into_inner());

    let node = tool_version("node").unwrap_or_else(|e| {
        panic!("the real-client e2e tests need Node.js >= 20 on the PATH ({e}); install Node.js 20+ and npm")
    });
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "the real-client e2e tests need Node.js >= 20, found {node}"
    );

    let dir = e2e_dir(gen);
    // npm writes node_modules/.package-lock.json at the end of a successful install.
    let installed = dir
        .join("node_modules")
        .join(".package-lock.json")
        .is_file()
        && dir
            .join("node_modules")
            .join("@livestore")
            .join("sync-cf")
            .join("package.json")
            .is_file();
    if installed {
        return;
    }
    let npm = tool_version("npm").unwrap_or_else(|e| {
        panic!(
            "{}/node_modules is missing and npm is not usable ({e}); install npm",
            dir.display()
        )
    });
    eprintln!(
        "real_clients: running `npm ci --no-audit --no-fund` in {} (npm {npm})",
        dir.display()
    );
    let started = Instant::now();
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ci in {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "`npm ci` failed in {} ({}):\n{}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "real_clients: npm ci in {} took {:?}",
        dir.display(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Running one client
// ---------------------------------------------------------------------------------------------

/// Which real client to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// 0.3.1 `makeCfSync` (WebSocket, base URL + `/websocket`).
    V03,
    /// 0.4.0 `makeWsSync`.
    V04Ws,
    /// 0.4.0 `makeHttpSync`.
    V04Http,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::V03 => "v03",
            Kind::V04Ws | Kind::V04Http => "v04",
        }
    }

    fn url(self, server: &ServerProcess) -> String {
        match self {
            Kind::V03 | Kind::V04Ws => server.ws_url(),
            Kind::V04Http => server.http_url(),
        }
    }
}

#[derive(Clone, Debug)]
struct ClientSpec {
    kind: Kind,
    client_id: String,
    token: &'static str,
    commit: usize,
    expect: usize,
    /// `false`: `--mode=nosync` (run for a fixed time, must NOT sync).
    sync: bool,
    /// `--wait-go`: boot, then wait for the harness to release it before committing.
    wait_go: bool,
}

impl ClientSpec {
    fn writer(kind: Kind, client_id: &str, expect: usize) -> Self {
        ClientSpec {
            kind,
            client_id: client_id.into(),
            token: TOKEN,
            commit: EVENTS_PER_WRITER,
            expect,
            sync: true,
            wait_go: false,
        }
    }
    fn reader(kind: Kind, client_id: &str, expect: usize) -> Self {
        ClientSpec {
            kind,
            client_id: client_id.into(),
            token: TOKEN,
            commit: 0,
            expect,
            sync: true,
            wait_go: false,
        }
    }
    fn wrong_token(kind: Kind, client_id: &str) -> Self {
        ClientSpec {
            kind,
            client_id: client_id.into(),
            token: WRONG_TOKEN,
            commit: 2,
            expect: 0,
            sync: false,
            wait_go: false,
        }
    }
    fn own_ids(&self) -> Vec<String> {
        (0..self.commit)
            .map(|i| format!("{}-{i:04}", self.client_id))
            .collect()
    }
}

struct RunningClient {
    spec: ClientSpec,
    child: std::process::Child,
    /// `--wait-go` clients: their stdin, to send the go line.
    stdin: Option<std::process::ChildStdin>,
    /// Receives `()` once the client printed `READY_MARKER` (dropped without a message if it exits).
    ready: mpsc::Receiver<()>,
    /// Likewise for `PUSHED_MARKER`.
    pushed: mpsc::Receiver<()>,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
    started: Instant,
}

#[derive(Debug)]
struct ClientResult {
    spec: ClientSpec,
    exit: Option<i32>,
    report: Option<Value>,
    stdout: String,
    stderr: String,
    wall: Duration,
}

impl ClientResult {
    /// Context for assertion messages: the client's report and the tail of its stderr.
    fn ctx(&self) -> String {
        format!(
            "client {} ({:?}) exit={:?} after {:?}\n  stdout: {}\n  stderr (tail):\n{}",
            self.spec.client_id,
            self.spec.kind,
            self.exit,
            self.wall,
            self.stdout.trim(),
            tail(&self.stderr, 40)
        )
    }

    fn field(&self, key: &str) -> &Value {
        self.report
            .as_ref()
            .and_then(|r| r.get(key))
            .unwrap_or(&Value::Null)
    }

    fn ids(&self) -> BTreeSet<String> {
        self.field("ids")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn spawn_client(server: &ServerProcess, store_id: &str, spec: &ClientSpec) -> RunningClient {
    let dir = e2e_dir(spec.kind.dir());
    let mut cmd = Command::new("node");
    cmd.arg("--experimental-websocket")
        .arg("client.mjs")
        .arg(format!("--url={}", spec.kind.url(server)))
        .arg(format!("--store={store_id}"))
        .arg(format!("--token={}", spec.token))
        .arg(format!("--client={}", spec.client_id))
        .arg(format!("--commit={}", spec.commit))
        .arg(format!("--expect={}", spec.expect))
        .arg(format!("--timeout-ms={CLIENT_TIMEOUT_MS}"))
        .arg(format!(
            "--mode={}",
            if spec.sync { "sync" } else { "nosync" }
        ))
        .arg(format!("--run-ms={NOSYNC_RUN_MS}"));
    if spec.wait_go {
        cmd.arg("--wait-go");
    }
    match spec.kind {
        Kind::V03 => {}
        Kind::V04Ws => {
            cmd.arg("--transport=ws");
        }
        Kind::V04Http => {
            cmd.arg("--transport=http")
                .arg(format!("--poll-ms={HTTP_POLL_MS}"));
        }
    }
    cmd.current_dir(&dir)
        .stdin(if spec.wait_go {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` for {}: {e}", spec.client_id));
    let stdin = child.stdin.take();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let echo = std::env::var_os("SHOW_CLIENT_LOG").is_some();
    let name = spec.client_id.clone();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let (ready_tx, ready) = mpsc::channel();
    let (pushed_tx, pushed) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut markers = [
            (READY_MARKER, Some(ready_tx)),
            (PUSHED_MARKER, Some(pushed_tx)),
        ];
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if echo {
                        for l in String::from_utf8_lossy(&buf[..n]).lines() {
                            eprintln!("[{name}] {l}");
                        }
                    }
                    all.extend_from_slice(&buf[..n]);
                    for (marker, tx) in &mut markers {
                        if tx.is_some() && all.windows(marker.len()).any(|w| w == marker.as_bytes())
                        {
                            let _ = tx.take().unwrap().send(());
                        }
                    }
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    RunningClient {
        spec: spec.clone(),
        child,
        stdin,
        ready,
        pushed,
        stdout,
        stderr,
        started: Instant::now(),
    }
}

impl RunningClient {
    /// Waits for the client to exit (killing it if it overruns its own timeout by 30 s).
    fn finish(mut self) -> ClientResult {
        let limit = Duration::from_millis(CLIENT_TIMEOUT_MS.max(NOSYNC_RUN_MS) + 30_000);
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for node") {
                break Some(st);
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        let report = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        ClientResult {
            spec: self.spec,
            exit: status.and_then(|s| s.code()),
            report,
            stdout,
            stderr,
            wall: self.started.elapsed(),
        }
    }
}

/// Runs the clients side by side and waits for all of them. The `--wait-go` ones (the writers) are
/// released together (one line on their stdin) once every one of them has booted, and made to race:
/// the database holds the first push to arrive until every writer's first push has left, so all
/// but one of those first pushes carry a stale parent and must be refused, and their clients
/// rebase. Left to timing, a writer could see the other's events before pushing and never race.
fn run_all(
    server: &ServerProcess,
    db: &TestDb,
    store_id: &str,
    specs: &[ClientSpec],
) -> Vec<ClientResult> {
    let mut running: Vec<RunningClient> = specs
        .iter()
        .map(|s| spawn_client(server, store_id, s))
        .collect();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    for i in 0..running.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if running[i].spec.wait_go && running[i].ready.recv_timeout(left).is_err() {
            let id = running[i].spec.client_id.clone();
            abort(
                server,
                running,
                &format!("client {id} did not boot (no `{READY_MARKER}`) within {BOOT_TIMEOUT:?}"),
            );
        }
    }
    let writers = running.iter().filter(|c| c.spec.wait_go).count();
    let lock = (writers > 1).then(|| db.lock_events());
    // Released with a common start instant a little ahead, so that the latency of delivering the
    // go line does not skew them.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 300;
    for c in &mut running {
        if let Some(mut stdin) = c.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(format!("go {at}\n").as_bytes());
        }
    }
    if let Some(lock) = lock {
        let deadline = Instant::now() + PUSH_TIMEOUT;
        for i in 0..running.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if running[i].spec.wait_go && running[i].pushed.recv_timeout(left).is_err() {
                let id = running[i].spec.client_id.clone();
                lock.release();
                abort(
                    server,
                    running,
                    &format!(
                        "client {id} sent no push (no `{PUSHED_MARKER}`) within {PUSH_TIMEOUT:?}"
                    ),
                );
            }
        }
        // Every writer's first push has left; one of them holds the store, waiting to insert.
        while db.lock_waiters(APPEND_SQL_FRAGMENT) == 0 {
            if Instant::now() > deadline {
                lock.release();
                abort(server, running, "no push reached the database");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        lock.release();
    }
    running.into_iter().map(RunningClient::finish).collect()
}

/// Kills every client and fails with their output and the server's.
fn abort(server: &ServerProcess, mut running: Vec<RunningClient>, why: &str) -> ! {
    for c in &mut running {
        let _ = c.child.kill();
    }
    let ctx: Vec<String> = running.into_iter().map(|c| c.finish().ctx()).collect();
    panic!("{why}\n{}\n{}", ctx.join("\n"), server_ctx(server));
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

fn server_log(server: &ServerProcess) -> Vec<String> {
    server.log.lock().clone()
}

fn server_ctx(server: &ServerProcess) -> String {
    format!(
        "server log (tail):\n{}",
        tail(&server_log(server).join("\n"), 60)
    )
}

/// A client that must have converged to exactly `expected_ids`.
fn assert_converged(r: &ClientResult, expected_ids: &BTreeSet<String>, server: &ServerProcess) {
    let n = expected_ids.len() as u64;
    let ctx = || format!("{}\n{}", r.ctx(), server_ctx(server));
    assert!(r.report.is_some(), "no JSON report on stdout\n{}", ctx());
    assert_eq!(r.field("error"), &Value::Null, "client crashed\n{}", ctx());
    assert_eq!(
        r.field("timedOut"),
        &Value::Bool(false),
        "client timed out before syncing\n{}",
        ctx()
    );
    assert_eq!(
        r.field("synced"),
        &Value::Bool(true),
        "client did not sync\n{}",
        ctx()
    );
    assert_eq!(r.exit, Some(0), "client exit code\n{}", ctx());
    assert_eq!(&r.ids(), expected_ids, "rows the client sees\n{}", ctx());
    assert_eq!(
        r.field("count").as_u64(),
        Some(n),
        "row count (a duplicate row would show here)\n{}",
        ctx()
    );
    assert_eq!(
        r.field("pendingCount").as_u64(),
        Some(0),
        "pending events\n{}",
        ctx()
    );
    assert_eq!(
        r.field("upstreamHead").as_u64(),
        Some(n),
        "upstream head\n{}",
        ctx()
    );
}

/// A wrong-token client must not have received anything from the server.
fn assert_not_synced(r: &ClientResult, server: &ServerProcess) {
    let ctx = || format!("{}\n{}", r.ctx(), server_ctx(server));
    assert!(r.report.is_some(), "no JSON report on stdout\n{}", ctx());
    assert_eq!(r.field("error"), &Value::Null, "client crashed\n{}", ctx());
    assert_eq!(
        r.field("synced"),
        &Value::Bool(false),
        "wrong-token client synced\n{}",
        ctx()
    );
    assert_eq!(
        r.field("foreignCount").as_u64(),
        Some(0),
        "wrong-token client got rows from the server\n{}",
        ctx()
    );
    assert_eq!(
        r.field("upstreamHead").as_u64(),
        Some(0),
        "wrong-token client has an upstream head\n{}",
        ctx()
    );
    // Its own local events stay pending: they were never accepted.
    assert_eq!(
        r.field("pendingCount").as_u64(),
        Some(r.spec.commit as u64),
        "pending events\n{}",
        ctx()
    );
    assert_eq!(r.exit, Some(0), "client exit code\n{}", ctx());
}

/// The server must have logged the refused attempts. What this relies on: at least one log line
/// holding the number 400 as a separate token (e.g. `... 400 ...`, `status=400`, `(400)`) and the
/// words `auth token` (the refusal reason), and every such line naming the store
/// (`refused GET /websocket store="…" peer=…: 400 Invalid auth token`). Every test has its own
/// server, and only the wrong-token clients are refused, so this cannot match someone else's refusal.
fn assert_refusals_logged(server: &ServerProcess, store_id: &str) -> (usize, usize) {
    let log = server_log(server);
    let refused: Vec<&String> = log
        .iter()
        .filter(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .any(|tok| tok == "400")
                && l.to_ascii_lowercase().contains("auth token")
        })
        .collect();
    assert!(
        !refused.is_empty(),
        "the server did not log a refused (HTTP 400, auth token) request for store `{store_id}`\n{}",
        server_ctx(server)
    );
    let naming_store = refused
        .iter()
        .filter(|l| l.contains(&format!("store={store_id:?}")))
        .count();
    assert_eq!(
        naming_store,
        refused.len(),
        "every refusal line names the store `{store_id}`\n{}",
        server_ctx(server)
    );
    (refused.len(), naming_store)
}

/// The exact args text a client sends for event `i` (what `JSON.stringify` produces).
fn expected_args(client_id: &str, i: usize) -> String {
    format!(
        r#"{{"text":"todo {i} from {client_id}","id":"{client_id}-{i:04}","meta":{{"zeta":"z-{client_id}","alpha":{i}}}}}"#
    )
}

/// Checks the event log in PostgreSQL for `store_id`: exactly the writers' events, seq_num 1..N
/// contiguous with matching parents, no duplicate, args byte-identical to what the clients sent.
fn assert_database(db: &TestDb, store_id: &str, writers: &[ClientSpec], server: &ServerProcess) {
    let mut client = db.client();
    let rows = client
        .query(
            "SELECT seq_num, parent_seq_num, name, args::text, client_id, session_id \
             FROM events WHERE store_id = $1 ORDER BY seq_num",
            &[&store_id],
        )
        .unwrap_or_else(|e| panic!("query events: {e}\n{}", server_ctx(server)));
    let dump = || {
        rows.iter()
            .map(|r| {
                format!(
                    "    seq={} parent={} name={} client={} args={}",
                    r.get::<_, i64>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, String>(2),
                    r.get::<_, Option<String>>(4).unwrap_or_default(),
                    r.get::<_, Option<String>>(3).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expected: BTreeSet<(String, String)> = writers
        .iter()
        .flat_map(|w| {
            (0..w.commit).map(move |i| (w.client_id.clone(), expected_args(&w.client_id, i)))
        })
        .collect();
    assert_eq!(
        rows.len(),
        expected.len(),
        "number of events stored for the store\n{}",
        dump()
    );

    let mut seen = BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        let seq: i64 = r.get(0);
        let parent: i64 = r.get(1);
        let name: String = r.get(2);
        let args: Option<String> = r.get(3);
        let client_id: Option<String> = r.get(4);
        let session_id: Option<String> = r.get(5);
        let args = args.unwrap_or_default();
        let client_id = client_id.unwrap_or_default();
        assert_eq!(
            seq,
            i as i64 + 1,
            "seq_nums must be 1..N contiguous\n{}",
            dump()
        );
        assert_eq!(
            parent,
            i as i64,
            "parent_seq_num must be seq_num - 1\n{}",
            dump()
        );
        assert_eq!(name, "v1.TodoCreated", "event name\n{}", dump());
        assert_eq!(
            session_id.as_deref(),
            Some("static"),
            "session_id (node adapter default)\n{}",
            dump()
        );
        assert!(
            args.starts_with(r#"{"text":"#),
            "args key order changed (must start with {{\"text\":)\n{}",
            dump()
        );
        assert!(
            expected.contains(&(client_id.clone(), args.clone())),
            "event seq={seq} is not byte-identical to anything a client sent: client_id={client_id} args={args}\n{}",
            dump()
        );
        assert!(
            seen.insert((client_id, args)),
            "duplicated event (same args twice)\n{}",
            dump()
        );
    }
    assert_eq!(
        seen,
        expected,
        "stored events vs. committed events\n{}",
        dump()
    );

    // The wrong-token clients' events (and anything else) must not be anywhere in the table.
    assert_eq!(
        db.all_event_rows() as usize,
        expected.len(),
        "events stored in total (all stores)\n{}",
        dump()
    );
}

// ---------------------------------------------------------------------------------------------
// The scenario shared by all tests
// ---------------------------------------------------------------------------------------------

struct Scenario {
    tag: &'static str,
    /// Commit `EVENTS_PER_WRITER` events each, concurrently; all must converge to the union.
    writers: Vec<(Kind, &'static str)>,
    /// Fresh clients started afterwards; they must pull everything.
    readers: Vec<(Kind, &'static str)>,
    /// Clients with a wrong token, run next to the readers; must never sync.
    wrong_token: Vec<(Kind, &'static str)>,
}

fn run_scenario(sc: Scenario) {
    let started = Instant::now();
    let _dog = watchdog(sc.tag, Duration::from_secs(170));
    let kinds: BTreeSet<&str> = sc
        .writers
        .iter()
        .chain(&sc.readers)
        .chain(&sc.wrong_token)
        .map(|(k, _)| k.dir())
        .collect();
    for gen in kinds {
        prepare_clients(gen);
    }

    let db = TestDb::create(sc.tag);
    let server = ServerProcess::start(
        &db.url,
        &["--auth-token", TOKEN, "--admin-secret", ADMIN_SECRET],
    );
    let store_id = format!("e2e-{}-{}", sc.tag.replace('_', "-"), std::process::id());
    let total = sc.writers.len() * EVENTS_PER_WRITER;

    // 1. Concurrent writers. They boot, then are released together and commit all their events at
    //    once, so their first pushes race: the server must reject the stale one and the loser must
    //    rebase.
    let writers: Vec<ClientSpec> = sc
        .writers
        .iter()
        .map(|(k, id)| ClientSpec {
            wait_go: true,
            ..ClientSpec::writer(*k, id, total)
        })
        .collect();
    let all_ids: BTreeSet<String> = writers.iter().flat_map(|w| w.own_ids()).collect();
    let t = Instant::now();
    let results = run_all(&server, &db, &store_id, &writers);
    for r in &results {
        assert_converged(r, &all_ids, &server);
    }
    // They raced: each pushed, and the server refused at least one stale push (the loser's first),
    // after which the loser rebased; assert_converged and assert_database check the outcome.
    let pushes = |r: &ClientResult| r.field("pushes").as_u64().unwrap_or(0);
    let rejected = |r: &ClientResult| r.field("rejectedPushes").as_u64().unwrap_or(0);
    for r in &results {
        assert!(
            pushes(r) >= 1,
            "writer pushed nothing\n{}\n{}",
            r.ctx(),
            server_ctx(&server)
        );
    }
    assert!(
        results.iter().map(rejected).sum::<u64>() >= 1,
        "no writer had a push refused: the writers did not race\n{}\n{}",
        results
            .iter()
            .map(ClientResult::ctx)
            .collect::<Vec<_>>()
            .join("\n"),
        server_ctx(&server)
    );
    eprintln!(
        "[{}] {} writers converged on {total} events in {:?} ({})",
        sc.tag,
        writers.len(),
        t.elapsed(),
        results
            .iter()
            .map(|r| format!(
                "{}: {} pushes, {} refused, done after {}ms",
                r.spec.client_id,
                pushes(r),
                rejected(r),
                r.field("elapsedMs")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 2. Fresh readers and wrong-token clients, side by side (the store now has data to leak).
    let mut second: Vec<ClientSpec> = sc
        .readers
        .iter()
        .map(|(k, id)| ClientSpec::reader(*k, id, total))
        .collect();
    second.extend(
        sc.wrong_token
            .iter()
            .map(|(k, id)| ClientSpec::wrong_token(*k, id)),
    );
    let t = Instant::now();
    let results = run_all(&server, &db, &store_id, &second);
    for r in &results {
        if r.spec.sync {
            assert_converged(r, &all_ids, &server);
        } else {
            assert_not_synced(r, &server);
        }
    }
    eprintln!(
        "[{}] readers / wrong-token clients done in {:?}",
        sc.tag,
        t.elapsed()
    );
    if !sc.wrong_token.is_empty() {
        let (n, naming_store) = assert_refusals_logged(&server, &store_id);
        eprintln!(
            "[{}] server logged {n} refused (400, auth token) requests; {naming_store} of them name the store",
            sc.tag
        );
    }

    // 3. The database.
    assert_database(&db, &store_id, &writers, &server);
    eprintln!("[{}] passed in {:?}", sc.tag, started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn v03_cf_sync_two_writers_fresh_reader_wrong_token() {
    run_scenario(Scenario {
        tag: "e2e_v03",
        writers: vec![(Kind::V03, "alice03"), (Kind::V03, "bob03")],
        readers: vec![(Kind::V03, "carol03")],
        wrong_token: vec![(Kind::V03, "mallory03")],
    });
}

#[test]
fn v04_ws_sync_two_writers_fresh_reader_wrong_token() {
    run_scenario(Scenario {
        tag: "e2e_v04ws",
        writers: vec![(Kind::V04Ws, "alice04w"), (Kind::V04Ws, "bob04w")],
        readers: vec![(Kind::V04Ws, "carol04w")],
        wrong_token: vec![(Kind::V04Ws, "mallory04w")],
    });
}

#[test]
fn v04_http_sync_two_writers_fresh_reader_wrong_token() {
    run_scenario(Scenario {
        tag: "e2e_v04http",
        writers: vec![(Kind::V04Http, "alice04h"), (Kind::V04Http, "bob04h")],
        readers: vec![(Kind::V04Http, "carol04h")],
        wrong_token: vec![(Kind::V04Http, "mallory04h")],
    });
}

#[test]
fn mixed_v03_and_v04_ws_on_one_store() {
    run_scenario(Scenario {
        tag: "e2e_mixed",
        writers: vec![(Kind::V03, "alice03m"), (Kind::V04Ws, "bob04m")],
        readers: vec![(Kind::V03, "carol03m"), (Kind::V04Ws, "dave04m")],
        wrong_token: vec![],
    });
}
