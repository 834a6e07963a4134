//! The README's "Upgrading", as far as one binary can show it: an event log
//! written at an older schema version (SQLite's first step; PostgreSQL's
//! version 1) is brought to the current one by `livestore-sync migrate`,
//! its events untouched, and then served; a log of a newer version than the
//! binary knows is refused by `migrate` and by the server, and left as it
//! was. (`tests/storage_sqlite.rs` migrates step by step over steps of its
//! own; `tests/storage_postgres.rs` checks what version 2 changes;
//! `tests/startup_errors.rs` the server's refusal in detail.)
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use livestore_sync::storage::postgres::{SCHEMA_SQL, SCHEMA_VERSION};
use livestore_sync::storage::sqlite::SCHEMA_STEPS;

// There is an older version to come from.
const _: () = assert!(SCHEMA_VERSION >= 2 && SCHEMA_STEPS.len() >= 2);

fn livestore_sync(db_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_livestore-sync"))
        .args(args)
        .args(["--database-url", db_url])
        .env_remove("DATABASE_URL")
        .env_remove("DATA_DIR")
        .env_remove("STATE_DIRECTORY")
        .env("LOG_LEVEL", "warn")
        .output()
        .expect("run livestore-sync")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The raw args of event `seq` (an old log's, to be served unchanged).
fn args(seq: i64) -> String {
    format!(r#"{{"z":{seq}, "a":"written before the upgrade"}}"#)
}

/// The seqNums and raw args a 0.3 client pulls from the server at `addr`.
fn pulled(addr: std::net::SocketAddr, store: &str) -> Vec<(i64, String)> {
    let mut ws = Ws::v03(addr, store);
    ws.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r"}"#);
    let raw = ws.recv_text();
    let page: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(page["remaining"], 0, "{raw}");
    // Each args' raw text, found in the page where its event begins.
    (1..=seqs(&page["batch"]).len() as i64)
        .map(|seq| {
            let a = args(seq);
            assert!(
                raw.contains(&format!(r#""args":{a},"seqNum":{seq}"#)),
                "event {seq} not served as written: {raw}"
            );
            (seq, a)
        })
        .collect()
}

/// Starts a server on `db_url`, pulls `store`, checks the three old events.
fn served(db_url: &str, store: &str) {
    let server = ServerProcess::start(db_url, &["--auth-token", TOKEN]);
    let got = pulled(server.addr, store);
    assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2, 3]);
    // And it takes new pushes after them.
    let mut ws = Ws::v03(server.addr, store);
    ws.push_v03_acked("after", &events(4, 1, "new"));
}

#[test]
fn migrate_brings_a_sqlite_log_of_schema_step_1_to_the_current_one() {
    let _w = watchdog("upgrade_sqlite", Duration::from_secs(60));
    let dir = TempDir::new("upgrade_sqlite");
    {
        // What the first release wrote: step 1 only, and a store in it.
        let c = rusqlite::Connection::open(dir.db()).unwrap();
        c.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; BEGIN; {} PRAGMA user_version = 1; COMMIT;",
            SCHEMA_STEPS[0]
        ))
        .unwrap();
        c.execute(
            "INSERT INTO stores (store_id, head, backend_id, created_at) VALUES ('old', 3, 'old-backend', 0)",
            [],
        )
        .unwrap();
        for seq in 1..=3i64 {
            c.execute(
                "INSERT INTO events (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id) \
                 VALUES ('old', ?1, ?2, 'v1.TodoCreated', ?3, 1700000000000000, 'c', 's')",
                rusqlite::params![seq, seq - 1, args(seq)],
            )
            .unwrap();
        }
    }
    let url = dir.db_url();
    let out = livestore_sync(&url, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("schema version {} (", SCHEMA_STEPS.len())),
        "{}",
        text(&out)
    );
    let c = rusqlite::Connection::open(dir.db()).unwrap();
    let version: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_STEPS.len() as i64);
    let changes: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'changes'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(changes, 1, "step 2's table is there");
    drop(c);
    let out = livestore_sync(&url, &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    served(&url, "old");
}

#[test]
fn migrate_brings_a_postgresql_log_of_version_1_to_the_current_one() {
    let _w = watchdog("upgrade_pg", Duration::from_secs(60));
    let db = TestDb::create("upgrade_pg");
    {
        let mut c = db.client();
        // What the first release applied: schema.sql up to version 2.
        let v1 = SCHEMA_SQL.split("-- Version 2").next().unwrap();
        c.batch_execute(v1).unwrap();
        c.batch_execute(
            "INSERT INTO stores (store_id, head, backend_id) VALUES ('old', 3, 'old-backend')",
        )
        .unwrap();
        for seq in 1..=3i64 {
            c.execute(
                "INSERT INTO events (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id) \
                 VALUES ('old', $1, $2, 'v1.TodoCreated', $3::text::json, now(), 'c', 's')",
                &[&seq, &(seq - 1), &args(seq)],
            )
            .unwrap();
        }
    }
    let out = livestore_sync(&db.url, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("schema version {SCHEMA_VERSION} (")),
        "{}",
        text(&out)
    );
    let versions: Vec<i32> = db
        .client()
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let out = livestore_sync(&db.url, &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    served(&db.url, "old");
}

#[test]
fn a_log_of_a_newer_version_is_refused_and_left_as_it_was() {
    let _w = watchdog("upgrade_newer", Duration::from_secs(60));
    let newer = SCHEMA_STEPS.len() as i64 + 1;
    let dir = TempDir::new("upgrade_newer");
    let url = dir.db_url();
    assert!(livestore_sync(&url, &["migrate"]).status.success());
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let pg = TestDb::create("upgrade_newer");
    assert!(livestore_sync(&pg.url, &["migrate"]).status.success());
    pg.client()
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    for url in [&url, &pg.url] {
        for what in [&["migrate"][..], &["stores", "list"][..]] {
            let out = livestore_sync(url, what);
            assert_eq!(out.status.code(), Some(1), "{what:?}: {}", text(&out));
            assert!(
                text(&out).contains("newer than this livestore-sync knows")
                    && text(&out).contains("See README, \"Upgrading\""),
                "{what:?}: {}",
                text(&out)
            );
        }
        let (status, log) = run_to_exit(
            {
                let mut cmd = server_command();
                cmd.args(["--database-url", url]);
                cmd
            },
            Duration::from_secs(20),
        );
        assert!(!status.success());
        assert!(
            log.contains("newer than this livestore-sync knows"),
            "{log}"
        );
    }
    let version: i64 = rusqlite::Connection::open(dir.db())
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, newer, "left as it was");
    let max: i32 = pg
        .client()
        .query_one("SELECT max(version) FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(max, SCHEMA_VERSION + 1, "left as it was");
}
