//! The operator's command line (`livestore-sync stores|export|import|check|
//! migrate …`), run as the real binary against a real PostgreSQL database
//! and a real SQLite file: every command on both backends
//! (`postgres::<case>` and `sqlite::<case>`), and each error path with its
//! message, exit code and "nothing was written".
mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use livestore_sync::model::{Event, StoredEvent};
use livestore_sync::storage::postgres::PoolOptions;
use livestore_sync::storage::{self, Backend, Storage};
use serde_json::Value;

/// What a command printed and how it ended.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }
    fn failed(self) -> Out {
        assert_eq!(self.code, 1, "{self:#?}");
        assert!(
            self.stderr.starts_with("livestore-sync: ") || !self.stdout.is_empty(),
            "{self:#?}"
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// `livestore-sync <args>` against `url`, with `stdin` fed in.
fn run_with_stdin(url: &str, args: &[&str], stdin: &[u8]) -> Out {
    use std::io::Write;
    let mut child = tool_command(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livestore-sync");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    feeder.join().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn run(url: &str, args: &[&str]) -> Out {
    run_with_stdin(url, args, b"")
}

/// The test's own handle on the log (dropped before a command that must
/// take SQLite's instance lock; commands also work beside it).
fn open(url: &str) -> Arc<dyn Storage> {
    let pool = PoolOptions {
        min_idle: 0,
        max_size: 2,
        connection_timeout: Duration::from_secs(5),
    };
    let backend = Backend::choose(Some(url), Path::new(".")).unwrap();
    storage::open_for_tool(&backend, &pool).unwrap().0
}

fn event(seq: i64, args: Option<&str>) -> Event {
    Event {
        name: "v1.TodoCreated".into(),
        args: args.map(Into::into),
        seq_num: seq,
        parent_seq_num: seq - 1,
        client_id: "client-a".into(),
        session_id: "session-1".into(),
    }
}

/// Args that catch a server or a tool that re-encodes JSON.
const TRICKY: &[Option<&str>] = &[
    Some(r#"{"zeta":1,"alpha":{"b":[1,2.50,1e3],"a":null}}"#),
    Some(r#"{"text":"ünïcödé \"quoted\" \\ \u00e9 😀","id":"x"}"#),
    Some("null"),
    None,
    Some("12345678901234567890"),
    Some("[]"),
];

/// Appends `n` events to `store` (args cycling through [`TRICKY`]), each
/// batch at its own time.
fn fill(s: &dyn Storage, store: &str, n: i64) {
    let head = s.open_store(store).unwrap().head;
    let batch: Vec<Event> = (head + 1..=head + n)
        .map(|i| event(i, TRICKY[(i as usize) % TRICKY.len()]))
        .collect();
    for chunk in batch.chunks(50) {
        let at =
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + chunk[0].seq_num as u64);
        s.append(store, chunk[0].parent_seq_num, chunk, at).unwrap();
    }
}

fn all_events(s: &dyn Storage, store: &str) -> Vec<StoredEvent> {
    s.read(store, 0, i64::MAX, 1_000_000).unwrap()
}

/// Where a case keeps its log.
trait Fixture {
    fn url(&self) -> String;
    /// Runs one SQL statement directly on the log (to damage it for `check`).
    fn sql(&self, sql: &str);
}

struct Pg(TestDb);
impl Fixture for Pg {
    fn url(&self) -> String {
        self.0.url.clone()
    }
    fn sql(&self, sql: &str) {
        self.0.client().batch_execute(sql).unwrap();
    }
}

struct Lite(TempDir);
impl Fixture for Lite {
    fn url(&self) -> String {
        self.0.db_url()
    }
    fn sql(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.0.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch(sql).unwrap();
    }
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let _w = watchdog(stringify!($case), Duration::from_secs(180));
                    super::$case(&Pg(TestDb::create("cli")));
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let _w = watchdog(stringify!($case), Duration::from_secs(180));
                    super::$case(&Lite(TempDir::new(stringify!($case))));
                }
            )*
        }
    };
}

cases!(
    stores_list_and_info_show_every_store_and_create_none,
    reset_and_delete_change_only_their_store,
    export_then_import_gives_the_same_file_byte_for_byte,
    import_refuses_bad_files_and_writes_nothing,
    import_into_a_non_empty_store_needs_replace,
    check_finds_each_kind_of_damage,
    migrate_prints_the_schema_version,
);

fn stores_list_and_info_show_every_store_and_create_none(f: &dyn Fixture) {
    let url = f.url();
    {
        let s = open(&url);
        fill(&*s, "alpha", 7);
        s.open_store("empty store").unwrap();
    }
    let list = run(&url, &["stores", "list", "--json"]).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["storeId"], "alpha");
    assert_eq!(list[0]["head"], 7);
    assert_eq!(list[0]["events"], 7);
    assert!(list[0]["bytes"].as_i64().unwrap() > 7 * 20, "{list:?}");
    assert!(list[0]["lastWrite"]
        .as_str()
        .unwrap()
        .starts_with("2023-11-14T22:13:20"));
    assert_eq!(list[1]["storeId"], "empty store");
    assert_eq!(list[1]["events"], 0);
    assert_eq!(list[1]["lastWrite"], Value::Null);
    assert!(!list[1]["backendId"].as_str().unwrap().is_empty());

    let table = run(&url, &["stores", "list"]).ok().stdout;
    assert!(table.starts_with("STORE"), "{table}");
    assert!(table.contains("\"empty store\""), "{table}");
    assert!(table.ends_with("2 stores\n"), "{table}");

    let info = run(&url, &["stores", "info", "alpha", "--json"])
        .ok()
        .json();
    assert_eq!(info, list[0]);
    let text = run(&url, &["stores", "info", "alpha"]).ok().stdout;
    assert!(text.contains("head:       7"), "{text}");

    let missing = run(&url, &["stores", "info", "nope"]).failed();
    assert!(missing.stderr.contains("no store \"nope\""), "{missing:?}");
    let list = run(&url, &["stores", "list", "--json"]).ok().json();
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "info on a missing store created it"
    );
}

fn reset_and_delete_change_only_their_store(f: &dyn Fixture) {
    let url = f.url();
    let (old_a, old_b) = {
        let s = open(&url);
        fill(&*s, "a", 5);
        fill(&*s, "b", 3);
        (
            s.open_store("a").unwrap().backend_id,
            s.open_store("b").unwrap().backend_id,
        )
    };
    let out = run(&url, &["stores", "reset", "a"]).ok();
    assert!(out.stdout.contains("5 events deleted"), "{out:?}");
    let a = run(&url, &["stores", "info", "a", "--json"]).ok().json();
    assert_eq!(
        (a["head"].as_i64(), a["events"].as_i64()),
        (Some(0), Some(0))
    );
    assert_ne!(a["backendId"], old_a.as_str());
    assert!(
        out.stdout.contains(a["backendId"].as_str().unwrap()),
        "{out:?}"
    );

    run(&url, &["stores", "delete", "b"]).ok();
    let list = run(&url, &["stores", "list", "--json"]).ok().json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storeId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a"]);
    // Used again, b starts over with a new backend id.
    let s = open(&url);
    let b = s.open_store("b").unwrap();
    assert_eq!(b.head, 0);
    assert_ne!(b.backend_id, old_b);
    drop(s);

    for cmd in ["reset", "delete"] {
        let out = run(&url, &["stores", cmd, "never-was"]).failed();
        assert!(out.stderr.contains("no store \"never-was\""), "{out:?}");
    }
    let list = run(&url, &["stores", "list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2, "a and b (reopened) only");
}

/// `exportedAt` aside (it is the time of the export).
fn without_exported_at(text: &str) -> String {
    let re_start = text.find("\"exportedAt\":").expect("exportedAt");
    let rest = &text[re_start..];
    let end = rest.find(',').unwrap();
    format!("{}{}", &text[..re_start], &rest[end..])
}

fn export_then_import_gives_the_same_file_byte_for_byte(f: &dyn Fixture) {
    let url = f.url();
    let dir = TempDir::new("cli-export");
    {
        let s = open(&url);
        fill(&*s, "src", 120);
    }
    for format in ["livestore", "ndjson"] {
        let before = all_events(&*open(&url), "src");
        let first = dir.path().join(format!("first.{format}"));
        let second = dir.path().join(format!("second.{format}"));
        let out = run(
            &url,
            &["export", "src", first.to_str().unwrap(), "--format", format],
        )
        .ok();
        assert!(out.stderr.contains("exported 120 events"), "{out:?}");
        // Not a terminal: no progress bar, only the summary line.
        assert!(
            !out.stderr.contains('\r') && !out.stderr.contains('\x1b'),
            "{out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(!dir.path().join(format!("first.{format}.partial")).exists());
        run(&url, &["stores", "delete", "src"]).ok();
        // A restore keeps the backend id only when asked (NDJSON records it).
        let mut args = vec!["import", "src", first.to_str().unwrap()];
        if format == "ndjson" {
            args.push("--keep-backend-id");
        }
        let out = run(&url, &args).ok();
        assert!(out.stderr.contains("imported 120 events"), "{out:?}");
        run(
            &url,
            &[
                "export",
                "src",
                second.to_str().unwrap(),
                "--format",
                format,
            ],
        )
        .ok();
        let (a, b) = (
            std::fs::read_to_string(&first).unwrap(),
            std::fs::read_to_string(&second).unwrap(),
        );
        assert_eq!(without_exported_at(&a), without_exported_at(&b), "{format}");
        for args in TRICKY.iter().flatten() {
            assert!(
                a.contains(args),
                "{format}: {args} not verbatim in the file"
            );
        }
        // Every event went through, args byte for byte; NDJSON keeps each
        // event's created_at too (LiveStore's format has no such field).
        let after = all_events(&*open(&url), "src");
        assert_eq!(after.len(), before.len());
        for (x, y) in before.iter().zip(&after) {
            assert_eq!(x.event, y.event);
            if format == "ndjson" {
                assert_eq!(x.created_at, y.created_at);
            }
        }
    }

    // stdout → stdin, into another store id (--force: the file names "src").
    let exported = run(&url, &["export", "src"]).ok().stdout;
    let refused = run_with_stdin(&url, &["import", "other"], exported.as_bytes()).failed();
    assert!(
        refused.stderr.contains("src") && refused.stderr.contains("other"),
        "{refused:?}"
    );
    run_with_stdin(&url, &["import", "other", "--force"], exported.as_bytes()).ok();
    let other = run(&url, &["stores", "info", "other", "--json"])
        .ok()
        .json();
    assert_eq!(other["head"], 120);
}

fn import_refuses_bad_files_and_writes_nothing(f: &dyn Fixture) {
    let url = f.url();
    let dir = TempDir::new("cli-bad");
    {
        let s = open(&url);
        fill(&*s, "src", 10);
    }
    let good = dir.path().join("good.json");
    run(&url, &["export", "src", good.to_str().unwrap()]).ok();
    let text = std::fs::read_to_string(&good).unwrap();
    let bad = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let cases = [
        (bad("truncated.json", &text[..text.len() / 2]), ""),
        (bad("not-json.json", "this is not an export\n"), ""),
        (
            bad(
                "gap.json",
                &text.replacen(
                    "\"seqNum\":5,\"parentSeqNum\":4",
                    "\"seqNum\":6,\"parentSeqNum\":4",
                    1,
                ),
            ),
            "",
        ),
        (
            bad(
                "count.json",
                &text.replacen("\"eventCount\":10", "\"eventCount\":11", 1),
            ),
            "",
        ),
    ];
    for (path, _) in &cases {
        // --force: the files name store "src"; each must fail for its own fault.
        let out = run(&url, &["import", "dst", path.to_str().unwrap(), "--force"]).failed();
        assert!(
            out.stderr.contains("nothing was imported"),
            "{path:?}: {out:?}"
        );
        let list = run(&url, &["stores", "list", "--json"]).ok().json();
        assert_eq!(
            list.as_array().unwrap().len(),
            1,
            "{path:?} created the store: {list}"
        );
    }
    // The gap is named.
    let out = run(
        &url,
        &["import", "dst", cases[2].0.to_str().unwrap(), "--force"],
    )
    .failed();
    assert!(
        out.stderr.contains("broken event chain at seqNum 6"),
        "{out:?}"
    );
    // A store-id mismatch without --force.
    let out = run(&url, &["import", "dst", good.to_str().unwrap()]).failed();
    assert!(
        out.stderr.contains("store \"src\", not of store \"dst\""),
        "{out:?}"
    );
    // A missing file.
    let out = run(&url, &["import", "src2", "/nonexistent/file.json"]).failed();
    assert!(out.stderr.contains("/nonexistent/file.json"), "{out:?}");
    assert_eq!(
        run(&url, &["stores", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn import_into_a_non_empty_store_needs_replace(f: &dyn Fixture) {
    let url = f.url();
    let dir = TempDir::new("cli-replace");
    let file = dir.path().join("x.json");
    let old_backend = {
        let s = open(&url);
        fill(&*s, "x", 4);
        fill(&*s, "y", 9);
        s.open_store("y").unwrap().backend_id
    };
    run(&url, &["export", "x", file.to_str().unwrap()]).ok();
    let out = run(&url, &["import", "y", file.to_str().unwrap(), "--force"]).failed();
    assert!(out.stderr.contains("already has 9 events"), "{out:?}");
    assert!(out.stderr.contains("--replace"), "{out:?}");
    let y = run(&url, &["stores", "info", "y", "--json"]).ok().json();
    assert_eq!(
        (y["head"].as_i64(), y["backendId"].as_str()),
        (Some(9), Some(old_backend.as_str()))
    );

    run(
        &url,
        &[
            "import",
            "y",
            file.to_str().unwrap(),
            "--force",
            "--replace",
        ],
    )
    .ok();
    let y = run(&url, &["stores", "info", "y", "--json"]).ok().json();
    assert_eq!(y["head"], 4);
    assert_ne!(
        y["backendId"],
        old_backend.as_str(),
        "a replaced store gets a new backendId"
    );
}

fn check_finds_each_kind_of_damage(f: &dyn Fixture) {
    let url = f.url();
    {
        let s = open(&url);
        fill(&*s, "sound", 30);
        fill(&*s, "gap", 30);
        fill(&*s, "short", 30);
    }
    let out = run(&url, &["check"]).ok();
    assert!(
        out.stdout.contains("3 stores checked, 0 with problems"),
        "{out:?}"
    );

    f.sql("DELETE FROM events WHERE store_id = 'gap' AND seq_num = 12");
    f.sql("UPDATE stores SET head = 31 WHERE store_id = 'short'");
    let out = run(&url, &["check"]).failed();
    assert!(out.stdout.contains("e12..e12 are missing"), "{out:?}");
    assert!(
        out.stdout
            .contains("the head is e31 but the log ends at e30"),
        "{out:?}"
    );
    assert!(out.stdout.contains("ok       \"sound\""), "{out:?}");
    assert!(
        out.stdout.contains("3 stores checked, 2 with problems"),
        "{out:?}"
    );

    // Only the stores named; a missing one is a problem.
    run(&url, &["check", "sound"]).ok();
    let out = run(&url, &["check", "sound", "nope", "--json"]).failed();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["ok"], false);
    assert_eq!(lines[1]["problems"][0], "no such store");
}

fn migrate_prints_the_schema_version(f: &dyn Fixture) {
    let url = f.url();
    let out = run(&url, &["migrate"]).ok();
    let version = {
        let s = open(&url);
        s.schema_version().unwrap()
    };
    assert!(version >= 2, "{version}");
    assert!(
        out.stdout
            .starts_with(&format!("schema version {version} (")),
        "{out:?}"
    );
    // Twice is fine.
    run(&url, &["migrate"]).ok();
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_commands() {
    let out = run(
        "sqlite:///nonexistent-dir-for-usage/x.db",
        &["stores", "frobnicate"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = run("", &["export"]);
    assert_eq!(out.code, 2, "{out:?}");
    let help = run("", &["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    for cmd in [
        "stores list",
        "export ID",
        "import ID",
        "copy --from",
        "check",
        "migrate",
        "import-fastapi",
    ] {
        assert!(
            help.stdout.contains(cmd),
            "{cmd} missing from --help:\n{}",
            help.stdout
        );
    }
    let help = run("", &["import", "--help"]);
    assert!(
        help.stdout.contains("--replace") && help.stdout.contains("--force"),
        "{help:?}"
    );
}

#[test]
fn copy_moves_stores_both_ways_and_a_rerun_skips_identical_ones() {
    let _w = watchdog("copy", Duration::from_secs(180));
    let pg = TestDb::create("cli-copy");
    let lite = TempDir::new("cli-copy");
    let (pg_url, lite_url) = (pg.url.clone(), lite.db_url());
    let originals = {
        let s = open(&pg_url);
        fill(&*s, "one", 250);
        fill(&*s, "two", 3);
        s.open_store("empty").unwrap();
        ["one", "two", "empty"].map(|id| (s.open_store(id).unwrap(), all_events(&*s, id)))
    };
    let out = run("", &["copy", "--from", &pg_url, "--to", &lite_url]).ok();
    assert!(
        out.stdout.contains("copied     \"one\": 250 events"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("3 stores: 3 copied or identical, 0 failed"),
        "{out:?}"
    );
    {
        let t = open(&lite_url);
        for (id, (meta, events)) in ["one", "two", "empty"].iter().zip(&originals) {
            assert_eq!(
                &t.open_store(id).unwrap(),
                meta,
                "{id}: head and backendId moved"
            );
            assert_eq!(
                &all_events(&*t, id),
                events,
                "{id}: events, args and created_at"
            );
        }
    }
    let again = run("", &["copy", "--from", &pg_url, "--to", &lite_url]).ok();
    assert!(
        again.stdout.contains("identical  \"one\": skipped"),
        "{again:?}"
    );
    assert!(!again.stdout.contains("copied     "), "{again:?}");

    // The source grew: that store is brought up to date. The target
    // diverged: that store fails, nothing of it is overwritten, the others
    // are still done; --replace overwrites.
    {
        let t = open(&lite_url);
        fill(&*t, "two", 1);
    }
    let s = open(&pg_url);
    fill(&*s, "one", 5);
    drop(s);
    let out = run("", &["copy", "--from", &pg_url, "--to", &lite_url]).failed();
    assert!(
        out.stdout.contains("updated    \"one\": 250 -> 255 events"),
        "{out:?}"
    );
    assert!(out.stdout.contains("FAILED     \"two\""), "{out:?}");
    assert!(out.stdout.contains("--replace"), "{out:?}");
    let t = open(&lite_url);
    assert_eq!(
        t.open_store("two").unwrap().head,
        4,
        "the failed store was not touched"
    );
    drop(t);
    run(
        "",
        &[
            "copy",
            "--from",
            &pg_url,
            "--to",
            &lite_url,
            "--store",
            "two",
            "--replace",
        ],
    )
    .ok();

    // And back: SQLite → a fresh PostgreSQL database, one store.
    let back = TestDb::create("cli-copy-back");
    run(
        "",
        &[
            "copy", "--from", &lite_url, "--to", &back.url, "--store", "one",
        ],
    )
    .ok();
    let b = open(&back.url);
    assert_eq!(b.list_stores().unwrap().len(), 1);
    assert_eq!(all_events(&*b, "one").len(), 255);
    assert_eq!(
        b.open_store("one").unwrap(),
        originals[0].0.clone().with_head(255)
    );
}

/// `StoreMeta` with another head (the backend id stays).
trait WithHead {
    fn with_head(self, head: i64) -> Self;
}
impl WithHead for livestore_sync::model::StoreMeta {
    fn with_head(mut self, head: i64) -> Self {
        self.head = head;
        self
    }
}

#[test]
fn import_fastapi_copies_its_tables_and_reports_ambiguous_names() {
    let _w = watchdog("import_fastapi", Duration::from_secs(180));
    let source = TestDb::create("cli-fastapi-src");
    let mut c = source.client();
    // The FastAPI server's layout: one table per store, args as jsonb.
    for table in [
        "eventlog_7_my_app",
        "eventlog_6_my_app",
        "eventlog_7_team_a",
        "eventlog_7_x1",
        "eventlog_7_x_1",
    ] {
        c.batch_execute(&format!(
            "CREATE TABLE {table} (seq_num integer PRIMARY KEY, parent_seq_num integer NOT NULL,
               name text NOT NULL, args jsonb, created_at timestamptz NOT NULL DEFAULT now(),
               client_id text NOT NULL, session_id text NOT NULL)"
        ))
        .unwrap();
    }
    for i in 1..=40 {
        c.execute(
            "INSERT INTO eventlog_7_my_app VALUES ($1, $2, 'v1.TodoCreated', $3::text::jsonb, '2024-05-06 07:08:09.123456+00', 'c', 's')",
            &[&i, &(i - 1), &format!(r#"{{"text": "todo {i}", "id": "t{i}"}}"#)],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO eventlog_6_my_app VALUES (1, 0, 'old', NULL, now(), 'c', 's')",
        &[],
    )
    .unwrap();
    c.execute("INSERT INTO eventlog_7_team_a VALUES (1, 0, 'n', 'null', now(), 'c', 's'), (2, 1, 'n', NULL, now(), 'c', 's')", &[]).unwrap();
    drop(c);
    let dir = TempDir::new("cli-fastapi");
    let map = dir.path().join("map.json");
    std::fs::write(
        &map,
        r#"{"eventlog_7_team_a": "team-a", "x1": "x", "x_1": "x"}"#,
    )
    .unwrap();

    for target in [
        EventLog::postgres("cli-fastapi-dst"),
        EventLog::sqlite("cli-fastapi-dst"),
    ] {
        let url = target.url();
        let dry = run(
            &url,
            &[
                "import-fastapi",
                "--from",
                &source.url,
                "--map",
                map.to_str().unwrap(),
                "--dry-run",
            ],
        );
        assert!(
            dry.stdout
                .contains("would copy eventlog_7_my_app -> store \"my_app\""),
            "{dry:?}"
        );
        let out = run(
            &url,
            &[
                "import-fastapi",
                "--from",
                &source.url,
                "--map",
                map.to_str().unwrap(),
            ],
        )
        .failed();
        assert!(
            out.stdout
                .contains("copied     eventlog_7_my_app -> store \"my_app\": 40 events"),
            "{out:?}"
        );
        assert!(
            out.stdout
                .contains("copied     eventlog_7_team_a -> store \"team-a\": 2 events"),
            "{out:?}"
        );
        assert!(
            out.stdout
                .contains("skipped    eventlog_6_my_app: an older version"),
            "{out:?}"
        );
        // Two tables named onto one store: neither imported, exit 1.
        assert!(
            out.stdout
                .contains("COLLISION  eventlog_7_x1, eventlog_7_x_1 all map to store \"x\""),
            "{out:?}"
        );
        // my_app was taken from the table name: its `_` may be another character.
        assert!(
            out.stdout.contains("note       eventlog_7_my_app"),
            "{out:?}"
        );
        let rows = target.rows("my_app");
        assert_eq!(rows.len(), 40);
        // jsonb's order (shorter keys first) and compact: what its text was, minus spaces.
        assert_eq!(
            rows[0].args.as_deref(),
            Some(r#"{"id":"t1","text":"todo 1"}"#)
        );
        assert_eq!(rows[39].seq, 40);
        let team = target.rows("team-a");
        assert_eq!(team[0].args.as_deref(), Some("null"));
        assert_eq!(team[1].args, None);
        let s = open(&url);
        assert!(s.store_summary("x").unwrap().is_none());
        let t = all_events(&*s, "my_app")[0].created_at;
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_micros(),
            1_714_979_289_123_456
        );
        drop(s);
        // Again: my_app is not empty now, so it fails unless --replace.
        let out = run(&url, &["import-fastapi", "--from", &source.url]).failed();
        assert!(
            out.stdout.contains("FAILED     eventlog_7_my_app"),
            "{out:?}"
        );
        let _ = SystemTime::now();
    }
}

/// On a terminal (a pty from util-linux's `script`), long work shows a
/// progress bar on stderr; the quiet side is checked with every export above.
#[test]
fn progress_shows_on_a_terminal() {
    let _w = watchdog("progress_terminal", Duration::from_secs(120));
    let dir = TempDir::new("cli-progress");
    let url = dir.db_url();
    {
        let s = open(&url);
        fill(&*s, "big", 5_000);
    }
    let out_file = dir.path().join("big.json");
    let command = format!(
        "{} export big {}",
        env!("CARGO_BIN_EXE_livestore-sync"),
        out_file.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DATABASE_URL", &url)
        .env_remove("DATA_DIR")
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("run script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("exporting ["),
        "no progress bar on a terminal: {text:?}"
    );
    assert!(text.contains("/5000 events"), "{text:?}");
    assert!(out_file.exists());
}
