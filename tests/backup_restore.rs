//! docs/backup.md, run as written: each backup is taken from a running
//! server while a client pushes to it, restored into a fresh place, and a
//! server started on the restored log must serve exactly what the source had
//! at some moment of the backup: a prefix of the source's log, at least what
//! was acknowledged before the backup started, every event with its `args`
//! byte for byte and its `createdAt`, and each store's `backendId`.
//!
//! The commands are the doc's own: its code blocks marked `backup-test=NAME`
//! are run with `bash -euo pipefail` (the doc names the variables each one
//! needs; the test sets them, and puts the `livestore-sync` binary on the
//! `PATH`). The tools they call (`pg_dump`, `pg_restore`, `createdb`,
//! `sqlite3`) must be installed: a missing one fails the test (`.ci/run`
//! installs `sqlite3`; the PostgreSQL client comes with PostgreSQL).
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde::Deserialize;
use serde_json::value::RawValue;

const DOC: &str = "docs/backup.md";
/// The store a client pushes to during the backup.
const BUSY: &str = "busy store";
/// A store written before, untouched during the backup.
const QUIET: &str = "quiet/store";
const BATCH: i64 = 10;

/// The code blocks of docs/backup.md marked `backup-test=NAME`, by name.
fn doc_blocks() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut blocks = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("```").and_then(|info| {
            info.split_whitespace()
                .find_map(|w| w.strip_prefix("backup-test="))
        }) else {
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let dup = blocks.insert(name.to_string(), body.join("\n") + "\n");
        assert!(dup.is_none(), "{DOC}: two blocks named backup-test={name}");
    }
    blocks
}

/// Runs the doc's block `name` in `cwd` with `vars` (and nothing of the
/// environment's storage settings); panics with its output if it fails.
fn run_block(name: &str, cwd: &Path, vars: &[(&str, &str)]) -> String {
    let blocks = doc_blocks();
    let script = blocks
        .get(name)
        .unwrap_or_else(|| panic!("{DOC} has no block marked backup-test={name}"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_livestore-sync"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .env("LOG_LEVEL", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("PG")
            || ["DATABASE_URL", "DATA_DIR", "STATE_DIRECTORY"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bash");
    let text = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{DOC}, block backup-test={name} failed ({}):\n{script}\n{text}",
        out.status
    );
    eprintln!("[{name}]\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Args that only a byte-for-byte copy keeps: keys out of order, spaces,
/// a number JSON.parse would rewrite, escapes and non-ASCII text.
fn args(seq: i64) -> String {
    format!(
        r#"{{"zeta": {seq}, "alpha":"todo {seq} — é ✓ \"q\"\n", "n":1.50, "list":[ 2 ,{{"b":1,"a":0}}]}}"#
    )
}

fn batch(from: i64, n: i64) -> String {
    let items: Vec<String> = (from..from + n)
        .map(|i| {
            format!(
                r#"{{"name":"v1.TodoCreated","args":{},"seqNum":{i},"parentSeqNum":{},"clientId":"backup-test","sessionId":"s"}}"#,
                args(i),
                i - 1
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Pushes `n` events to `store` in batches (each acknowledged).
fn fill(addr: SocketAddr, store: &str, n: i64) {
    let mut ws = Ws::v03(addr, store);
    for from in (1..=n).step_by(BATCH as usize) {
        ws.push_v03_acked(
            &format!("fill{from}"),
            &batch(from, BATCH.min(n - from + 1)),
        );
    }
}

/// A client pushing batches to [`BUSY`] until stopped; `acked` is the last
/// acknowledged seqNum.
struct Pusher {
    acked: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Pusher {
    fn start(addr: SocketAddr) -> Pusher {
        let acked = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut ws = Ws::v03(addr, BUSY);
            let mut from = 1;
            while !s.load(Ordering::SeqCst) {
                ws.push_v03_acked(&format!("p{from}"), &batch(from, BATCH));
                from += BATCH;
                a.store(from - 1, Ordering::SeqCst);
            }
        });
        Pusher {
            acked,
            stop,
            thread,
        }
    }

    fn acked(&self) -> i64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` events are acknowledged.
    fn wait_for(&self, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked() < n {
            assert!(!self.thread.is_finished(), "the pusher died");
            assert!(
                Instant::now() < deadline,
                "only {} events acknowledged",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops after the push in flight; the last acknowledged seqNum.
    fn stop(self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the pusher panicked");
        self.acked.load(Ordering::SeqCst)
    }
}

#[derive(Deserialize)]
struct PullRes<'a> {
    #[serde(borrow)]
    batch: Vec<Item<'a>>,
    remaining: i64,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "eventEncoded", borrow)]
    event: Ev<'a>,
    #[serde(borrow)]
    metadata: &'a RawValue,
}

#[derive(Deserialize)]
struct Ev<'a> {
    #[serde(rename = "seqNum")]
    seq: i64,
    #[serde(borrow)]
    args: &'a RawValue,
}

/// One event as a client receives it: seqNum, the raw text of `args`, the
/// raw text of `metadata` (which holds `createdAt`).
type Pulled = (i64, String, String);

/// Every event of `store` as a 0.3 client pulls it from the server at `addr`.
fn pull_all(addr: SocketAddr, store: &str) -> Vec<Pulled> {
    let mut ws = Ws::v03(addr, store);
    ws.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"all"}"#);
    let mut out = Vec::new();
    loop {
        let text = ws.recv_text();
        let page: PullRes = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        out.extend(page.batch.iter().map(|i| {
            (
                i.event.seq,
                i.event.args.get().to_string(),
                i.metadata.get().to_string(),
            )
        }));
        if page.remaining == 0 {
            return out;
        }
    }
}

/// The store's backendId, as `livestore-sync stores info --json` reads it.
fn backend_id(db_url: &str, store: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_livestore-sync"))
        .args(["stores", "info", store, "--json", "--database-url", db_url])
        .env_remove("DATABASE_URL")
        .env_remove("DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["backendId"].as_str().expect("backendId").to_string()
}

/// What the source served, to compare the restored server with.
struct Source {
    /// Every event of each store after the pushes stopped.
    logs: BTreeMap<&'static str, Vec<Pulled>>,
    backend_ids: BTreeMap<&'static str, String>,
    /// Events of [`BUSY`] acknowledged before the backup started.
    before_backup: i64,
}

/// Runs the source server on `source_url`, fills [`QUIET`], and runs
/// `backup` while a client pushes to [`BUSY`]; pushes go on after it.
fn serve_and_back_up(source_url: &str, backup: impl FnOnce()) -> Source {
    let server = ServerProcess::start(source_url, &["--auth-token", TOKEN]);
    fill(server.addr, QUIET, 25);
    let pusher = Pusher::start(server.addr);
    pusher.wait_for(300);
    let before_backup = pusher.acked();
    backup();
    let after_backup = pusher.acked();
    pusher.wait_for(after_backup + 2 * BATCH);
    let last = pusher.stop();
    eprintln!("acknowledged: {before_backup} events of {BUSY:?} before the backup, {after_backup} after it, {last} in all");
    let mut logs = BTreeMap::new();
    let mut backend_ids = BTreeMap::new();
    for store in [BUSY, QUIET] {
        logs.insert(store, pull_all(server.addr, store));
        backend_ids.insert(store, backend_id(source_url, store));
    }
    // What the client pushed is what the source serves, to the byte.
    let busy = &logs[BUSY];
    assert_eq!(busy.len() as i64, last);
    for (i, (seq, a, _)) in busy.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        assert_eq!(a, &args(*seq), "args as pushed");
    }
    Source {
        logs,
        backend_ids,
        before_backup,
    }
}

/// A server on the restored log serves a prefix of each source store's log,
/// byte for byte; all of [`QUIET`] and at least what [`BUSY`] had before
/// the backup; with the source's backendIds.
fn check_restored(restored_url: &str, source: &Source, stores: &[&'static str]) {
    for store in stores {
        assert_eq!(
            backend_id(restored_url, store),
            source.backend_ids[store],
            "{store:?}: the restored store keeps its backendId"
        );
    }
    let server = ServerProcess::start(restored_url, &["--auth-token", TOKEN]);
    for store in stores {
        let got = pull_all(server.addr, store);
        let src = &source.logs[store];
        let at_least = if *store == BUSY {
            source.before_backup as usize
        } else {
            src.len()
        };
        assert!(
            got.len() >= at_least && got.len() <= src.len(),
            "{store:?}: restored {} events; the source had {at_least} before the backup and {} after",
            got.len(),
            src.len()
        );
        assert!(
            got[..] == src[..got.len()],
            "{store:?}: the restored events differ from the source's (seqNum, args, createdAt)"
        );
        eprintln!("{store:?}: {} events restored of {}", got.len(), src.len());
    }
}

#[test]
fn pg_dump_while_serving_restores_into_a_fresh_database() {
    let _w = watchdog("backup_pg_dump", Duration::from_secs(120));
    let source_db = TestDb::create("backup_src");
    let restored_db = TestDb::create("backup_restored");
    // The doc's createdb makes it.
    postgres::Client::connect(&admin_url(), postgres::NoTls)
        .unwrap()
        .batch_execute(&format!("DROP DATABASE {}", restored_db.name))
        .unwrap();
    let work = TempDir::new("backup_pg");
    let source = serve_and_back_up(&source_db.url, || {
        run_block(
            "pg-backup",
            work.path(),
            &[("DATABASE_URL", &source_db.url)],
        );
    });
    let out = run_block(
        "pg-restore",
        work.path(),
        &[
            ("DATABASE_URL", &source_db.url),
            ("RESTORED_DB", &restored_db.name),
            ("RESTORED_URL", &restored_db.url),
        ],
    );
    assert!(out.contains("2 stores checked, 0 with problems"), "{out}");
    check_restored(&restored_db.url, &source, &[BUSY, QUIET]);
}

#[test]
fn sqlite_vacuum_into_while_serving_restores_into_a_fresh_directory() {
    let _w = watchdog("backup_sqlite", Duration::from_secs(120));
    let source_dir = TempDir::new("backup_src");
    let restored_dir = TempDir::new("backup_restored");
    let work = TempDir::new("backup_sqlite");
    let backup = work.path().join("livestore-backup.db");
    let backup = backup.to_str().unwrap();
    let data_dir = source_dir.path().to_str().unwrap();
    let source = serve_and_back_up(&source_dir.db_url(), || {
        let out = run_block(
            "sqlite-backup",
            work.path(),
            &[("DATA_DIR", data_dir), ("BACKUP", backup)],
        );
        assert_eq!(out, "ok\n", "SQLite's integrity check of the copy");
    });
    let out = run_block(
        "sqlite-restore",
        work.path(),
        &[
            ("DATA_DIR", restored_dir.path().to_str().unwrap()),
            ("BACKUP", backup),
        ],
    );
    assert!(out.contains("2 stores checked, 0 with problems"), "{out}");
    check_restored(&restored_dir.db_url(), &source, &[BUSY, QUIET]);
}

#[test]
fn export_while_serving_imports_into_a_fresh_event_log_of_the_other_backend() {
    let _w = watchdog("backup_export", Duration::from_secs(120));
    let source_dir = TempDir::new("export_src");
    let restored_db = TestDb::create("export_restored");
    let work = TempDir::new("backup_export");
    let source_url = source_dir.db_url();
    let source = serve_and_back_up(&source_url, || {
        run_block(
            "export-backup",
            work.path(),
            &[("DATABASE_URL", &source_url), ("STORE", BUSY)],
        );
    });
    let out = run_block(
        "export-restore",
        work.path(),
        &[("DATABASE_URL", &restored_db.url), ("STORE", BUSY)],
    );
    assert!(out.contains("1 stores checked, 0 with problems"), "{out}");
    check_restored(&restored_db.url, &source, &[BUSY]);
}

#[test]
fn the_doc_has_every_block_the_test_runs() {
    let blocks = doc_blocks();
    let names: Vec<&str> = blocks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "export-backup",
            "export-restore",
            "pg-backup",
            "pg-restore",
            "sqlite-backup",
            "sqlite-restore"
        ]
    );
    // Each names the tool it is about, so an emptied block cannot pass.
    for (name, tool) in [
        ("pg-backup", "pg_dump"),
        ("pg-restore", "pg_restore"),
        ("sqlite-backup", "VACUUM INTO"),
        ("sqlite-restore", "livestore-sync check"),
        ("export-backup", "livestore-sync export"),
        ("export-restore", "livestore-sync import"),
    ] {
        assert!(blocks[name].contains(tool), "{name}: {}", blocks[name]);
    }
}
