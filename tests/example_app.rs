//! The example app (`examples/todo`, LiveStore 0.4 with `makeWsSync`) in headless Chromium: two
//! independent clients (each its own Chromium profile), one adds an item and the other shows it;
//! the server is killed, one page adds an item offline, the server starts again on the same port and
//! database, and both pages catch up by themselves; then one page ticks an item off and the other
//! shows it done. The database must hold exactly those five events, in order, from two clients.
//!
//! The browser work is `examples/todo/e2e/two-pages.mjs` (Playwright driving Debian's Chromium);
//! this test prepares the app (`npm ci` from the committed lockfile, `vite build` when the sources
//! are newer than `dist/`), owns the server and its database, stops and starts the server when the
//! script asks, and checks the script's report and the database.
//!
//! Needs Node.js >= 20 with npm, and Chromium at /usr/bin/chromium (`apt-get install chromium`; or
//! set `CHROMIUM` to another binary). Without them this test FAILS, it never skips.
//! Screenshots of both pages at each stage land in `<target>/example-app-screenshots/`.
//! `SHOW_SERVER_LOG=1` echoes the server's log, `SHOW_CLIENT_LOG=1` the browser script's.

mod common;

use common::{watchdog, ServerProcess, TestDb};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Not the server's default token: proves the page passes its `token` setting through.
const TOKEN: &str = "example-app-token";
/// How long the script waits for any one thing to show in a page.
const PAGE_TIMEOUT_MS: u64 = 60_000;
/// How long the whole script may run before it is stopped.
const SCRIPT_LIMIT: Duration = Duration::from_secs(200);
/// The items the script adds, in the order it adds them (A, B, A while the server is down, B after).
const ITEMS: [&str; 4] = [
    "first item, added in A",
    "reply, added in B",
    "added in A while the server was down",
    "added in B after the restart",
];

fn app_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/todo")
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("example-app-screenshots")
}

// ---------------------------------------------------------------------------------------------
// Preparation: Chromium, Node, the app's packages and its build
// ---------------------------------------------------------------------------------------------

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "the example-app test needs Chromium at {}; install it with `apt-get install chromium` \
         (Debian's package), or set CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let started = Instant::now();
    eprintln!(
        "example_app: running `{program} {}` in {}",
        args.join(" "),
        dir.display()
    );
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` (install Node.js 20+ and npm): {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed in {} ({}):\n{}\n{}",
        args.join(" "),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("example_app: took {:?}", started.elapsed());
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the files under `path`.
fn newest(path: &Path) -> SystemTime {
    let mut t = modified(path).unwrap_or(SystemTime::UNIX_EPOCH);
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir").flatten() {
            t = t.max(newest(&entry.path()));
        }
    }
    t
}

/// `npm ci` when the installed packages are missing or older than the lockfile, and `vite build`
/// when `dist/` is missing or older than the app's sources.
fn prepare_app() {
    common::node::require_node("the example-app tests");

    let dir = app_dir();
    let lock = modified(&dir.join("package-lock.json")).expect("examples/todo/package-lock.json");
    // npm writes node_modules/.package-lock.json at the end of a successful install.
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if !matches!(installed, Some(t) if t >= lock) {
        run(&dir, "npm", &["ci", "--no-audit", "--no-fund"]);
    }

    let built = modified(&dir.join("dist/index.html"));
    let sources = [
        "src",
        "index.html",
        "vite.config.ts",
        "tsconfig.json",
        "package-lock.json",
    ]
    .iter()
    .map(|p| newest(&dir.join(p)))
    .max()
    .unwrap();
    if !matches!(built, Some(t) if t >= sources) {
        run(&dir, "npm", &["run", "build"]);
    }
}

// ---------------------------------------------------------------------------------------------
// The browser script
// ---------------------------------------------------------------------------------------------

/// The running `two-pages.mjs`; stopped (SIGTERM, so Playwright closes its browsers) on drop.
struct Script {
    child: Child,
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn server_tail(server: Option<&ServerProcess>) -> String {
    match server {
        Some(s) => {
            let log = s.log.lock();
            let from = log.len().saturating_sub(40);
            format!("server log (tail):\n{}", log[from..].join("\n"))
        }
        None => "server: not running".into(),
    }
}

#[test]
fn two_browsers_sync_through_the_server_across_a_restart() {
    let started = Instant::now();
    let _dog = watchdog("example_app", Duration::from_secs(420));
    let chromium = chromium();
    prepare_app();
    let prepared = started.elapsed();

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("create the screenshot dir");

    let db = TestDb::create("example_app");
    let flags = ["--auth-token", TOKEN];
    let mut server = Some(ServerProcess::start(&db.url, &flags));
    let port = server.as_ref().unwrap().addr.port();
    let store_id = format!(
        "example-app-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );

    let mut child = Command::new("node")
        .arg("e2e/two-pages.mjs")
        .arg(format!("--server=ws://127.0.0.1:{port}"))
        .arg(format!("--token={TOKEN}"))
        .arg(format!("--store={store_id}"))
        .arg(format!("--screenshots={}", shots.display()))
        .arg(format!("--chromium={}", chromium.display()))
        .arg(format!("--timeout-ms={PAGE_TIMEOUT_MS}"))
        .current_dir(app_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node e2e/two-pages.mjs");
    let mut to_script = child.stdin.take().unwrap();
    let from_script = BufReader::new(child.stdout.take().unwrap());
    let mut script_err = child.stderr.take().unwrap();
    let script = Script { child };
    // The script's own log: shown when the test fails, echoed as it comes with SHOW_CLIENT_LOG=1.
    let echo = std::env::var_os("SHOW_CLIENT_LOG").is_some();
    let err_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(&mut script_err)
            .lines()
            .map_while(Result::ok)
        {
            if echo {
                eprintln!("{line}");
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });

    // Answer the script's requests to stop and start the server; its last line is its report.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in from_script.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut report: Option<Value> = None;
    let mut stopped_with = None;
    let mut restarted = false;
    let deadline = Instant::now() + SCRIPT_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                drop(script);
                panic!(
                    "the browser script ran longer than {SCRIPT_LIMIT:?}\n{}\nscript log:\n{}",
                    server_tail(server.as_ref()),
                    err_thread.join().unwrap_or_default()
                );
            }
        };
        match line.trim() {
            "E2E-STOP-SERVER" => {
                // Kill it (SIGKILL: no goodbye to the clients), then check what it had persisted:
                // the two items added while it ran.
                drop(server.take());
                stopped_with = Some(db.event_rows(&store_id));
                writeln!(to_script, "stopped").expect("answer the script");
            }
            "E2E-START-SERVER" => {
                let s = ServerProcess::start_on_port(&db.url, port, &flags);
                assert_eq!(s.addr.port(), port, "the server started on another port");
                server = Some(s);
                restarted = true;
                writeln!(to_script, "started").expect("answer the script");
            }
            l if l.starts_with('{') => report = serde_json::from_str(l).ok(),
            l => eprintln!("example_app: unexpected line from the script: {l}"),
        }
    }
    let mut script = script;
    let exit = script.child.wait().expect("wait for the script");
    let script_log = err_thread.join().unwrap_or_default();
    let server_log = server_tail(server.as_ref());
    let ctx = || format!("script exit: {exit}\nscript log:\n{script_log}\n{server_log}");

    // The script's verdict: every wait in it succeeded, and both pages show exactly the four items.
    let report = report.unwrap_or_else(|| panic!("the script printed no report\n{}", ctx()));
    assert_eq!(
        report["error"],
        Value::Null,
        "the browser script failed\n{}",
        ctx()
    );
    assert!(exit.success(), "the browser script failed\n{}", ctx());
    assert_eq!(
        stopped_with,
        Some(2),
        "events in the database when the server was killed (A's and B's first items)\n{}",
        ctx()
    );
    assert!(restarted, "the server was never started again\n{}", ctx());
    let mut expected: Vec<&str> = ITEMS.to_vec();
    expected.sort();
    for page in ["A", "B"] {
        let p = &report["pages"][page];
        let mut items: Vec<&str> = p["items"]
            .as_array()
            .unwrap_or_else(|| panic!("page {page}: no items in the report\n{}", ctx()))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        items.sort();
        assert_eq!(items, expected, "page {page}: items shown\n{}", ctx());
        assert_eq!(p["count"], 4, "page {page}: the count shown\n{}", ctx());
        assert_eq!(
            p["completed"],
            serde_json::json!([ITEMS[0]]),
            "page {page}: items shown done\n{}",
            ctx()
        );
        assert_eq!(p["status"], "connected", "page {page}: status\n{}", ctx());
    }
    let screenshots: Vec<&str> = report["screenshots"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(screenshots.len(), 6, "screenshots taken\n{}", ctx());
    for s in &screenshots {
        let bytes = std::fs::read(s).unwrap_or_else(|e| panic!("screenshot {s}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{s} is not a PNG");
    }

    // The database: the four items as four events, in the order they were added, then A ticking
    // the first off; seq_nums 1..5, A's three from one client and B's two from another.
    let rows = db
        .client()
        .query(
            "SELECT seq_num, parent_seq_num, name, args::text, client_id FROM events \
             WHERE store_id = $1 ORDER BY seq_num",
            &[&store_id],
        )
        .expect("read the events");
    let dump = rows
        .iter()
        .map(|r| {
            format!(
                "    seq={} parent={} name={} client={} args={}",
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(4),
                r.get::<_, Option<String>>(3).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(rows.len(), 5, "events in the database:\n{dump}");
    assert_eq!(db.all_event_rows(), 5, "events of all stores:\n{dump}");
    let mut clients = Vec::new();
    let mut args = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<_, i64>(0), i as i64 + 1, "seq_num:\n{dump}");
        assert_eq!(row.get::<_, i64>(1), i as i64, "parent_seq_num:\n{dump}");
        let a: Value = serde_json::from_str(&row.get::<_, Option<String>>(3).unwrap_or_default())
            .unwrap_or_else(|e| panic!("args are not JSON ({e}):\n{dump}"));
        args.push(a);
        clients.push(row.get::<_, String>(4));
    }
    for (i, text) in ITEMS.iter().enumerate() {
        assert_eq!(
            rows[i].get::<_, String>(2),
            "v1.TodoCreated",
            "name:\n{dump}"
        );
        assert_eq!(args[i]["text"], *text, "event {} text:\n{dump}", i + 1);
    }
    assert_eq!(
        rows[4].get::<_, String>(2),
        "v1.TodoToggled",
        "name:\n{dump}"
    );
    assert_eq!(args[4]["id"], args[0]["id"], "the item ticked off:\n{dump}");
    assert_eq!(args[4]["completed"], true, "ticked off as done:\n{dump}");
    assert_eq!(
        clients[0], clients[2],
        "A's events come from one client:\n{dump}"
    );
    assert_eq!(
        clients[0], clients[4],
        "A's events come from one client:\n{dump}"
    );
    assert_eq!(
        clients[1], clients[3],
        "B's events come from one client:\n{dump}"
    );
    assert_ne!(
        clients[0], clients[1],
        "A and B are different clients:\n{dump}"
    );

    eprintln!(
        "example_app: passed in {:?} (preparing the app {prepared:?}); steps: {}",
        started.elapsed(),
        report["steps"]
            .as_array()
            .map(|s| s
                .iter()
                .map(|s| format!("{} {}ms", s["name"].as_str().unwrap_or("?"), s["ms"]))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    eprintln!("example_app: screenshots in {}", shots.display());
}
