//! The REAL, unmodified LiveStore npm clients (0.3.1 `makeCfSync`, 0.4.0 `makeWsSync` /
//! `makeHttpSync`) run headless in Node (`tests/e2e/`): installing them, running them against a
//! server or a proxy in front of several, and checking what they and the database end up with.
//! Used by `tests/real_clients.rs` (one server) and `tests/proxy.rs` (instances behind a proxy).
//! Also the real `@livestore/cli` 0.4.0 (`tests/e2e/cli`): its `sync import --dry-run` check of an
//! export file, and its export's pretty-printed form (`tests/livestore_cli.rs`).
//!
//! When a client folder has no installed `node_modules`, `prepare_clients` runs
//! `npm ci --no-audit --no-fund` there itself (once, serialized). Node >= 20 and npm must be on the
//! PATH: without them these tests FAIL, they never skip. `SHOW_CLIENT_LOG=1` echoes the clients'
//! stderr.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use super::db::EventLog;
use super::server::ServerProcess;

/// Where the clients connect, and what to show when one of them fails.
pub trait Target {
    fn addr(&self) -> SocketAddr;
    /// The tails of the logs that explain a failure.
    fn context(&self) -> String;
    /// Over TLS: the CA certificate the clients are to trust (given to Node as
    /// `NODE_EXTRA_CA_CERTS`); they then use `wss://` and `https://` URLs.
    fn tls_ca(&self) -> Option<&Path> {
        None
    }
}

impl Target for ServerProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn context(&self) -> String {
        format!(
            "server log (tail):\n{}",
            tail(&self.log.lock().join("\n"), 60)
        )
    }
}

pub const E2E_TOKEN: &str = "e2e-good-token";
pub const E2E_WRONG_TOKEN: &str = "e2e-wrong-token";
pub const E2E_ADMIN_SECRET: &str = "e2e-admin-secret";
/// Events each writing client commits.
pub const EVENTS_PER_WRITER: usize = 10;
/// How long a client may take to converge (from its process start, including boot).
pub const CLIENT_TIMEOUT_MS: u64 = 45_000;
/// How long the wrong-token client runs before it reports.
pub const NOSYNC_RUN_MS: u64 = 4_000;
/// `livePull.pollInterval` of the 0.4 HTTP client (its default is 5 s).
pub const HTTP_POLL_MS: u64 = 500;
/// How long the concurrent writers may take to boot before they are released together.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The line a `--wait-go` client prints to stderr once it has booted.
pub const READY_MARKER: &str = "E2E-READY";
/// The line a client prints to stderr when its first push leaves (`tests/e2e/probe.mjs`).
pub const PUSHED_MARKER: &str = "E2E-PUSHED";
/// How long the released writers may take to send their first push.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Node / npm preparation
// ---------------------------------------------------------------------------------------------

pub fn e2e_dir(gen: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
        .join(gen)
}

/// Fails (never skips) unless Node.js >= 20 is on the PATH; `who` names
/// the tests that need it.
pub fn require_node(who: &str) {
    let node = tool_version("node").unwrap_or_else(|e| {
        panic!("{who} need Node.js >= 20 on the PATH ({e}); install Node.js 20+ and npm")
    });
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(major >= 20, "{who} need Node.js >= 20, found {node}");
}

pub fn tool_version(tool: &str) -> Result<String, String> {
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
pub fn prepare_clients(gen: &str) {
    npm_ci_once(
        &e2e_dir(gen),
        "@livestore/sync-cf",
        "the real-client e2e tests",
    );
}

/// Runs `npm ci --no-audit --no-fund` in `dir` unless its `node_modules` is installed (npm's
/// `.package-lock.json` and `marker_package` are there). Fails, never skips, without Node >= 20
/// and npm; `who` names the tests that need them. One install at a time in this process.
pub fn npm_ci_once(dir: &Path, marker_package: &str, who: &str) {
    static NPM: Mutex<()> = Mutex::new(());
    let _guard = NPM.lock().unwrap_or_else(|e| e.into_inner());

    require_node(who);

    // npm writes node_modules/.package-lock.json at the end of a successful install.
    let modules = dir.join("node_modules");
    let installed = modules.join(".package-lock.json").is_file()
        && modules.join(marker_package).join("package.json").is_file();
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
        "running `npm ci --no-audit --no-fund` in {} (npm {npm})",
        dir.display()
    );
    let started = Instant::now();
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
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
    eprintln!("npm ci in {} took {:?}", dir.display(), started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The real `@livestore/cli` 0.4.0 (tests/e2e/cli)
// ---------------------------------------------------------------------------------------------

/// Installs `tests/e2e/cli` (the real `@livestore/cli` 0.4.0) if needed.
pub fn prepare_livestore_cli() {
    npm_ci_once(
        &e2e_dir("cli"),
        "@livestore/cli",
        "the @livestore/cli checks",
    );
}

/// `livestore sync import --dry-run FILE --store-id STORE_ID`: LiveStore's own check of an export
/// file (their `ExportFileSchema`, and the store id unless `--force`), without connecting
/// anywhere. Exit code 0 when accepted; its stdout then says how many events
/// ([`dry_run_count`]). Installs the CLI first if needed.
///
/// `--config` is required but never loaded in a dry run (`commands/import-export.ts` returns
/// before it connects), so a path that does not exist is given: if a later CLI loads it, this
/// fails loudly instead of checking against some backend.
pub fn livestore_cli_dry_run(path: &Path, store_id: &str) -> Output {
    prepare_livestore_cli();
    let dir = e2e_dir("cli");
    Command::new("node")
        .arg(dir.join("node_modules/@livestore/cli/dist/bin.js"))
        .args(["sync", "import", "--dry-run", "--config"])
        .arg(dir.join("not-loaded-in-dry-run.mjs"))
        .arg("--store-id")
        .arg(store_id)
        .arg(path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run node for `livestore sync import --dry-run`")
}

/// The count in a successful dry run's "Dry run complete. N events would be imported."
pub fn dry_run_count(out: &Output) -> Option<u64> {
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Dry run complete. ")?
            .strip_suffix(" events would be imported.")?
            .parse()
            .ok()
    })
}

/// A dry run's exit code, stdout and stderr, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `out` as `livestore sync export` writes a file (their `ExportFileSchema`, their
/// pretty-printing; `tests/e2e/cli/pretty-export.mjs`) from `data`, an export's JSON with the
/// events to put in it. Returns, per event, the `JSON.stringify(args)` Node gives (`None` for an
/// event without args): the text a LiveStore client compares. Panics if Node refuses `data`.
pub fn livestore_cli_pretty_export(data: &Path, out: &Path) -> Vec<Option<String>> {
    prepare_livestore_cli();
    let run = Command::new("node")
        .arg("pretty-export.mjs")
        .arg(data)
        .arg(out)
        .current_dir(e2e_dir("cli"))
        .stdin(Stdio::null())
        .output()
        .expect("run node pretty-export.mjs");
    assert!(
        run.status.success(),
        "pretty-export.mjs failed\n{}",
        output_text(&run)
    );
    String::from_utf8(run.stdout)
        .expect("utf-8 from node")
        .lines()
        .map(|l| (l != "<absent>").then(|| l.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Running one client
// ---------------------------------------------------------------------------------------------

/// Which real client to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 0.3.1 `makeCfSync` (WebSocket, base URL + `/websocket`).
    V03,
    /// 0.4.0 `makeWsSync`.
    V04Ws,
    /// 0.4.0 `makeHttpSync`.
    V04Http,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::V03 => "v03",
            Kind::V04Ws | Kind::V04Http => "v04",
        }
    }

    /// The URL a client of this kind is given for a server at `addr`.
    pub fn url(self, addr: SocketAddr) -> String {
        match self {
            Kind::V03 | Kind::V04Ws => format!("ws://{addr}"),
            Kind::V04Http => format!("http://{addr}"),
        }
    }

    /// The same over TLS (`wss://`, `https://`).
    pub fn tls_url(self, addr: SocketAddr) -> String {
        match self {
            Kind::V03 | Kind::V04Ws => format!("wss://{addr}"),
            Kind::V04Http => format!("https://{addr}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub kind: Kind,
    pub client_id: String,
    pub token: &'static str,
    pub commit: usize,
    pub expect: usize,
    /// `false`: `--mode=nosync` (run for a fixed time, must NOT sync).
    pub sync: bool,
    /// `--wait-go`: boot, then wait for the harness to release it before committing.
    pub wait_go: bool,
}

impl ClientSpec {
    pub fn writer(kind: Kind, client_id: &str, expect: usize) -> Self {
        ClientSpec {
            kind,
            client_id: client_id.into(),
            token: E2E_TOKEN,
            commit: EVENTS_PER_WRITER,
            expect,
            sync: true,
            wait_go: false,
        }
    }
    pub fn reader(kind: Kind, client_id: &str, expect: usize) -> Self {
        ClientSpec {
            kind,
            client_id: client_id.into(),
            token: E2E_TOKEN,
            commit: 0,
            expect,
            sync: true,
            wait_go: false,
        }
    }
    pub fn wrong_token(kind: Kind, client_id: &str) -> Self {
        ClientSpec {
            kind,
            client_id: client_id.into(),
            token: E2E_WRONG_TOKEN,
            commit: 2,
            expect: 0,
            sync: false,
            wait_go: false,
        }
    }
    pub fn own_ids(&self) -> Vec<String> {
        (0..self.commit)
            .map(|i| format!("{}-{i:04}", self.client_id))
            .collect()
    }
}

pub struct RunningClient {
    pub spec: ClientSpec,
    pub child: std::process::Child,
    /// `--wait-go` clients: their stdin, to send the go line.
    pub stdin: Option<std::process::ChildStdin>,
    /// Receives `()` once the client printed `READY_MARKER` (dropped without a message if it exits).
    pub ready: mpsc::Receiver<()>,
    /// Likewise for `PUSHED_MARKER`.
    pub pushed: mpsc::Receiver<()>,
    pub stdout: std::thread::JoinHandle<String>,
    pub stderr: std::thread::JoinHandle<String>,
    pub started: Instant,
}

#[derive(Debug)]
pub struct ClientResult {
    pub spec: ClientSpec,
    pub exit: Option<i32>,
    pub report: Option<Value>,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl ClientResult {
    /// Context for assertion messages: the client's report and the tail of its stderr.
    pub fn ctx(&self) -> String {
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

    pub fn field(&self, key: &str) -> &Value {
        self.report
            .as_ref()
            .and_then(|r| r.get(key))
            .unwrap_or(&Value::Null)
    }

    pub fn ids(&self) -> BTreeSet<String> {
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

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn spawn_client(target: &dyn Target, store_id: &str, spec: &ClientSpec) -> RunningClient {
    let dir = e2e_dir(spec.kind.dir());
    let mut cmd = Command::new("node");
    let url = match target.tls_ca() {
        Some(ca) => {
            cmd.env("NODE_EXTRA_CA_CERTS", ca);
            spec.kind.tls_url(target.addr())
        }
        None => spec.kind.url(target.addr()),
    };
    cmd.arg("--experimental-websocket")
        .arg("client.mjs")
        .arg(format!("--url={url}"))
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
    pub fn finish(mut self) -> ClientResult {
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
pub fn run_all(
    target: &dyn Target,
    db: &EventLog,
    store_id: &str,
    specs: &[ClientSpec],
) -> Vec<ClientResult> {
    let mut running: Vec<RunningClient> = specs
        .iter()
        .map(|s| spawn_client(target, store_id, s))
        .collect();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    for i in 0..running.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if running[i].spec.wait_go && running[i].ready.recv_timeout(left).is_err() {
            let id = running[i].spec.client_id.clone();
            abort(
                target,
                running,
                &format!("client {id} did not boot (no `{READY_MARKER}`) within {BOOT_TIMEOUT:?}"),
            );
        }
    }
    let writers = running.iter().filter(|c| c.spec.wait_go).count();
    let lock = (writers > 1).then(|| db.hold_appends());
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
                    target,
                    running,
                    &format!(
                        "client {id} sent no push (no `{PUSHED_MARKER}`) within {PUSH_TIMEOUT:?}"
                    ),
                );
            }
        }
        // Every writer's first push has left; one of them holds the store, waiting to insert.
        if !db.wait_for_held_append(deadline) {
            lock.release();
            abort(target, running, "no push reached the database");
        }
        lock.release();
    }
    running.into_iter().map(RunningClient::finish).collect()
}

/// Kills every client and fails with their output and the server's.
pub fn abort(target: &dyn Target, mut running: Vec<RunningClient>, why: &str) -> ! {
    for c in &mut running {
        let _ = c.child.kill();
    }
    let ctx: Vec<String> = running.into_iter().map(|c| c.finish().ctx()).collect();
    panic!("{why}\n{}\n{}", ctx.join("\n"), target.context());
}

/// A client that must have converged to exactly `expected_ids`.
pub fn assert_converged(r: &ClientResult, expected_ids: &BTreeSet<String>, target: &dyn Target) {
    let n = expected_ids.len() as u64;
    let ctx = || format!("{}\n{}", r.ctx(), target.context());
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

/// The exact args text a client sends for event `i` (what `JSON.stringify` produces).
pub fn expected_args(client_id: &str, i: usize) -> String {
    format!(
        r#"{{"text":"todo {i} from {client_id}","id":"{client_id}-{i:04}","meta":{{"zeta":"z-{client_id}","alpha":{i}}}}}"#
    )
}

/// Checks the event log in PostgreSQL for `store_id`: exactly the writers' events, seq_num 1..N
/// contiguous with matching parents, no duplicate, args byte-identical to what the clients sent.
pub fn assert_database(db: &EventLog, store_id: &str, writers: &[ClientSpec], target: &dyn Target) {
    let rows = db.rows(store_id);
    let dump = || {
        rows.iter()
            .map(|r| {
                format!(
                    "    seq={} parent={} name={} client={} args={}",
                    r.seq,
                    r.parent,
                    r.name,
                    r.client_id,
                    r.args.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let _ = target;
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
        let (seq, parent, name) = (r.seq, r.parent, r.name.clone());
        let session_id = Some(r.session_id.clone());
        let args = r.args.clone().unwrap_or_default();
        let client_id = r.client_id.clone();
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
