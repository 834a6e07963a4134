//! What only the SQLite storage promises: one instance per file (the lock
//! file), its schema versions, its durability settings, readers that a
//! writer never blocks, and clear refusals when the file cannot be written
//! (read-only, moved away, disk full). The promises every backend keeps are
//! in `storage_contract.rs`.
//!
//! The read-only and full-disk tests mount a filesystem for real (tests run
//! as root, and `chmod` does not stop root); see `common::fs`.
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use livestore_sync::model::Event;
use livestore_sync::storage::sqlite::{
    classify, lock_path, migrate, SqliteOptions, SqliteStorage, SCHEMA_STEPS,
};
use livestore_sync::storage::{AppendError, Storage};
use livestore_sync::sync::hub::Hub;
use livestore_sync::sync::store::PushError;
use livestore_sync::sync::Limits;
use rusqlite::{Connection, OpenFlags};

fn open(path: &std::path::Path) -> Result<SqliteStorage, String> {
    SqliteStorage::open(path, SqliteOptions::default()).map_err(|e| e.0)
}

/// Opens `path` once the previous instance's lock is gone: within a moment,
/// because other tests of this process spawn `mount`, and a child holds a
/// copy of every descriptor, the lock file's too, from its fork to its exec.
fn open_when_free(path: &std::path::Path) -> SqliteStorage {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open(path) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline && e.starts_with("another livestore-sync") => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("the lock should be free: {e}"),
        }
    }
}

fn batch(from: i64, n: i64, client: &str) -> Vec<Event> {
    serde_json::from_str(&events(from, n, client)).unwrap()
}

#[test]
fn a_second_instance_on_the_same_file_is_refused_until_the_first_is_gone() {
    let _w = watchdog("sqlite_lock", Duration::from_secs(30));
    let dir = TempDir::new("lock");
    let first = open(&dir.db()).unwrap();
    first.open_store("s").unwrap();
    // The same file however it is named: the lock follows the real path.
    let other_name = dir.path().join(".").join("livestore.db");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    for path in [dir.db(), other_name, link.join("livestore.db")] {
        let err = open(&path)
            .err()
            .expect("a second instance must be refused");
        let db = dir.db().canonicalize().unwrap();
        assert_eq!(
            err,
            format!(
                "another livestore-sync is using {} (lock file {}, held by process {}); SQLite \
                 serves one instance — for several instances use PostgreSQL, see README",
                db.display(),
                lock_path(&db).display(),
                std::process::id()
            )
        );
    }
    // Refused before touching the database: the first one goes on.
    first
        .append("s", 0, &batch(1, 1, "c"), SystemTime::now())
        .unwrap();
    drop(first);
    // The lock goes with the first instance. (Within a moment: other tests
    // of this process spawn `mount`, and a child holds a copy of every
    // descriptor, the lock file's too, from its fork to its exec. The
    // server itself never spawns a process.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = loop {
        match open(&dir.db()) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline && e.starts_with("another livestore-sync") => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("the lock should go with the first instance: {e}"),
        }
    };
    assert_eq!(second.open_store("s").unwrap().head, 1);
}

#[test]
fn an_older_schema_is_migrated_step_by_step_and_a_newer_one_refused() {
    let _w = watchdog("sqlite_migrate", Duration::from_secs(30));
    let dir = TempDir::new("migrate");
    let st = open(&dir.db()).unwrap();
    st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 3, "c"), SystemTime::now())
        .unwrap();
    drop(st);
    let version = |c: &Connection| -> i64 {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    let c = Connection::open(dir.db()).unwrap();
    assert_eq!(version(&c), SCHEMA_STEPS.len() as i64);

    // A next version: only the missing step runs, the events stay.
    let mut steps: Vec<&str> = SCHEMA_STEPS.to_vec();
    steps.push("ALTER TABLE stores ADD COLUMN note TEXT; UPDATE stores SET note = 'migrated';");
    migrate(&c, &steps, &dir.db()).unwrap();
    assert_eq!(version(&c), steps.len() as i64);
    let note: String = c
        .query_row("SELECT note FROM stores WHERE store_id = 's'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(note, "migrated");
    let events: i64 = c
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 3);
    // Applying again changes nothing (no step runs twice).
    migrate(&c, &steps, &dir.db()).unwrap();

    // A step that fails leaves the version and the schema as they were.
    let mut broken = steps.clone();
    broken.push("CREATE TABLE half_done (x); THIS IS NOT SQL;");
    let err = migrate(&c, &broken, &dir.db()).unwrap_err();
    assert!(err.0.contains("schema step"), "{err}");
    assert_eq!(version(&c), steps.len() as i64);
    let half: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(half, 0, "a failed step is rolled back whole");
    drop(c);

    // This server knows fewer steps than the file has: it refuses the file
    // (a newer server wrote it) instead of serving it half understood.
    let err = open(&dir.db()).err().expect("a newer schema is refused");
    assert!(
        err.contains(&format!(
            "has schema version {}, newer than this livestore-sync knows ({})",
            steps.len(),
            SCHEMA_STEPS.len()
        )),
        "{err}"
    );

    // An empty file (version 0) gets the whole schema.
    let fresh = TempDir::new("migrate_fresh");
    std::fs::write(fresh.db(), b"").unwrap();
    let st = open(&fresh.db()).unwrap();
    assert_eq!(st.open_store("s").unwrap().head, 0);
}

#[test]
fn the_durability_pragmas_are_in_force() {
    let _w = watchdog("sqlite_pragmas", Duration::from_secs(30));
    let dir = TempDir::new("pragmas");
    let st = open(&dir.db()).unwrap();
    let p: std::collections::BTreeMap<String, String> = st.pragmas().unwrap().into_iter().collect();
    let get = |k: &str| p.get(k).map(String::as_str);
    // WAL, and a commit waits for the WAL's fsync (synchronous=FULL is 2).
    assert_eq!(get("writer.journal_mode"), Some("wal"), "{p:?}");
    assert_eq!(get("writer.synchronous"), Some("2"), "{p:?}");
    assert_eq!(get("writer.query_only"), Some("0"), "{p:?}");
    assert_eq!(get("writer.busy_timeout"), Some("5000"), "{p:?}");
    assert_eq!(get("reader.journal_mode"), Some("wal"), "{p:?}");
    assert_eq!(
        get("reader.readonly"),
        Some("1"),
        "readers cannot write: {p:?}"
    );
    // WAL mode is recorded in the file itself.
    drop(st);
    let c = Connection::open(dir.db()).unwrap();
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn readers_are_not_blocked_by_a_writer() {
    let _w = watchdog("sqlite_readers", Duration::from_secs(30));
    let dir = TempDir::new("readers");
    let st = Arc::new(open(&dir.db()).unwrap());
    st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 5, "c"), SystemTime::now())
        .unwrap();
    // Another connection holds SQLite's write lock with an uncommitted row.
    let other = Connection::open(dir.db()).unwrap();
    other
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO events VALUES ('s', 6, 5, 'uncommitted', NULL, 0, 'x', 'y');",
        )
        .unwrap();
    // So the server's writer is stuck: this append waits for the lock
    // (busy_timeout, 5 s), holding the writer connection meanwhile.
    let appending = {
        let st = st.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = st.append("s", 5, &batch(6, 1, "c"), SystemTime::now());
            (r, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !appending.is_finished(),
        "the append should be waiting for the lock"
    );
    // Reads go on meanwhile, and see only what is committed.
    let t = Instant::now();
    let read = st.read("s", 0, 100, 100).unwrap();
    assert_eq!(read.len(), 5);
    assert_eq!(st.open_store("s").unwrap().head, 5);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "reads waited {:?} for the writer",
        t.elapsed()
    );
    other.execute_batch("ROLLBACK").unwrap();
    let (r, waited) = appending.join().unwrap();
    r.unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(st.read("s", 0, 100, 100).unwrap().len(), 6);
}

/// The database file read-only for the server (a read-only mount of the
/// file itself: what an operator gets when the file belongs to another user
/// or sits on a read-only filesystem): refused at start, clearly. And a
/// read-only directory: refused too.
#[test]
fn a_read_only_database_is_refused_at_start() {
    let _w = watchdog("sqlite_read_only", Duration::from_secs(30));
    let dir = TempDir::new("ro");
    let st = open(&dir.db()).unwrap();
    st.open_store("s").unwrap();
    drop(st);
    // The file alone read-only, its directory writable.
    let Some(m) = mount_or_explain(Mount::read_only_bind(&dir.db(), &dir.db())) else {
        return;
    };
    assert!(
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.db())
            .is_err(),
        "the mount should make the file read-only even for root"
    );
    let err = open(&dir.db()).err().expect("a read-only file is refused");
    assert_eq!(
        err,
        format!(
            "database file is read-only: {} (livestore-sync needs to write it and its directory: \
             check the owner and mode, and that the filesystem is mounted read-write). \
             See README, \"Where the events live\"",
            dir.db().canonicalize().unwrap().display()
        )
    );
    drop(m);
    // The whole directory read-only.
    let ro = dir.path().join("ro");
    let Some(_m) = mount_or_explain(Mount::read_only_bind(dir.path(), &ro)) else {
        return;
    };
    let err = open(&ro.join("livestore.db")).err().expect("refused");
    assert!(err.contains("read-only"), "{err}");
    // Nothing was left locked: the writable path still opens.
    open_when_free(&dir.db());
}

/// An operator moves or deletes the database file while the server runs.
/// SQLite in WAL mode would go on committing into the file nobody will
/// open again; the storage refuses instead, and /health says why.
#[test]
fn a_database_file_moved_away_refuses_pushes_and_acks_nothing() {
    let _w = watchdog("sqlite_moved", Duration::from_secs(30));
    let dir = TempDir::new("moved");
    let st = Arc::new(open(&dir.db()).unwrap());
    let hub = Hub::new(st.clone(), Limits::default());
    let store = hub.store("s");
    store.push("p", batch(1, 2, "c"), None, || {}).unwrap();
    st.health().unwrap();
    std::fs::rename(dir.db(), dir.path().join("moved.db")).unwrap();
    let err = store
        .push("p", batch(3, 1, "c"), None, || panic!("must not ack"))
        .unwrap_err();
    let PushError::Storage(e) = err else {
        panic!("{err:?}")
    };
    assert!(e.0.contains("was deleted or moved while in use"), "{e}");
    let health = st.health().unwrap_err();
    assert!(
        health.0.contains("was deleted or moved while in use"),
        "{health}"
    );
    assert!(st.reset("s", "X").is_err(), "no write at all");
    // What was committed before the move is still readable (the server's
    // connections hold the old file); the refused push is nowhere. (The
    // WAL, named after the old path, stays behind: moving the file back
    // while the server is stopped recovers it.)
    assert_eq!(
        st.read("s", 0, 100, 100).unwrap().len(),
        2,
        "the refused push is nowhere"
    );
}

/// A real full disk (a small tmpfs): pushes are refused with "disk full",
/// nothing refused is stored, everything acknowledged is, /health reports
/// it, and it all works again once there is room.
#[test]
fn a_full_disk_refuses_pushes_acks_nothing_and_recovers() {
    let _w = watchdog("sqlite_full", Duration::from_secs(60));
    let dir = TempDir::new("full");
    let Some(m) = mount_or_explain(Mount::tmpfs(&dir.path().join("fs"), 2 << 20)) else {
        return;
    };
    let db = m.path.join("livestore.db");
    // Room to free later.
    std::fs::write(m.path.join("ballast"), vec![1u8; 512 << 10]).unwrap();
    let st = Arc::new(open(&db).unwrap());
    let hub = Hub::new(st.clone(), Limits::default());
    let store = hub.store("s");
    let mut head = 0;
    let refusal = loop {
        assert!(head < 100_000, "the disk never filled");
        let mut acked = false;
        match store.push("p", batch(head + 1, 50, "c"), None, || acked = true) {
            Ok(()) => {
                assert!(acked);
                head += 50;
            }
            Err(e) => {
                assert!(!acked, "a refused push was acknowledged");
                break e;
            }
        }
    };
    let PushError::Storage(e) = refusal else {
        panic!("{refusal:?}")
    };
    assert!(e.0.starts_with("disk full: cannot write"), "{e}");
    assert!(head > 0, "some pushes fit");
    // Still full: refused again, and health says so (its probe writes).
    // A probe is one page: it may still fit in what the refused push had
    // already added to the WAL file before it failed (where it depends on
    // the file's layout), and each probe that fits uses up some of that
    // room; within a few probes there is none left.
    assert!(store
        .push("p", batch(head + 1, 50, "c"), None, || panic!(
            "must not ack"
        ))
        .is_err());
    let mut probes = 0;
    let health = loop {
        probes += 1;
        match st.health() {
            Ok(()) if probes < 100 => continue,
            Ok(()) => break None,
            Err(e) => break Some(e.0),
        }
    };
    assert!(
        health.as_deref().is_some_and(|h| h.contains("disk full")),
        "{health:?} after {probes} probes"
    );
    assert_eq!(st.open_store("s").unwrap().head, head);
    assert_eq!(
        st.read("s", head, i64::MAX, 100).unwrap().len(),
        0,
        "nothing refused is stored"
    );
    // Room again: pushes go on from the same head, health recovers.
    std::fs::remove_file(m.path.join("ballast")).unwrap();
    store
        .push("p", batch(head + 1, 50, "c"), None, || {})
        .unwrap();
    head += 50;
    st.health().unwrap();
    drop((store, hub, st));
    // Everything acknowledged is in the file, contiguous, as pushed.
    let st = open_when_free(&db);
    assert_eq!(st.open_store("s").unwrap().head, head);
    let mut all = Vec::new();
    while (all.len() as i64) < head {
        let page = st.read("s", all.len() as i64, head, 1000).unwrap();
        assert!(!page.is_empty());
        all.extend(page.into_iter().map(|e| e.event));
    }
    assert_eq!(all, batch(1, head, "c"));
}

/// The errors SQLite really gives for a read-only file and a full database
/// read as such (the mapping the two tests above rely on, without a mount).
#[test]
fn sqlite_errors_read_clearly() {
    let dir = TempDir::new("errors");
    let st = open(&dir.db()).unwrap();
    drop(st);
    let ro = Connection::open_with_flags(dir.db(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let e = ro
        .execute("INSERT INTO meta VALUES ('k', 'v')", [])
        .unwrap_err();
    let msg = classify(&dir.db(), "appending events", e).0;
    assert!(
        msg.starts_with(&format!(
            "database file is read-only: {}",
            dir.db().display()
        )),
        "{msg}"
    );
    // SQLITE_FULL for real: the database may not grow past its pages.
    let c = Connection::open(dir.db()).unwrap();
    c.execute_batch("PRAGMA max_page_count = 1").unwrap_or(());
    let pages: i64 = c
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    c.pragma_update(None, "max_page_count", pages).unwrap();
    let e = c
        .execute(
            "INSERT INTO meta VALUES ('big', ?1)",
            [("x".repeat(1 << 20)).as_str()],
        )
        .unwrap_err();
    let msg = classify(&dir.db(), "appending events", e).0;
    assert!(msg.starts_with("disk full: cannot write"), "{msg}");
}

#[test]
fn concurrent_appends_share_commits_and_keep_their_own_results() {
    // Sixteen appenders on one store at once, several rounds: batches that
    // arrive while a commit runs are committed together; in a group, the
    // ones on a stale head get Conflict and exactly one is stored per round.
    let _w = watchdog("sqlite_group", Duration::from_secs(30));
    let dir = TempDir::new("group");
    let st = Arc::new(open(&dir.db()).unwrap());
    st.open_store("s").unwrap();
    let rounds = 20;
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (st, barrier) = (st.clone(), barrier.clone());
            std::thread::spawn(move || {
                (0..rounds)
                    .map(|r| {
                        barrier.wait();
                        let head = r * 3;
                        let result = st.append(
                            "s",
                            head,
                            &batch(head + 1, 3, &format!("t{t}")),
                            SystemTime::now(),
                        );
                        barrier.wait();
                        result
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<_>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in 0..rounds as usize {
        let round: Vec<_> = results.iter().map(|t| &t[r]).collect();
        assert_eq!(round.iter().filter(|r| r.is_ok()).count(), 1, "{round:?}");
        let head = (r as i64 + 1) * 3;
        assert!(
            round.iter().all(|x| match x {
                Ok(()) => true,
                Err(AppendError::Conflict { head: h }) => *h == head,
                Err(_) => false,
            }),
            "{round:?}"
        );
    }
    assert_eq!(
        st.read("s", 0, 1000, 1000).unwrap().len(),
        rounds as usize * 3
    );
    let (commits, appends) = st.commit_counts();
    assert_eq!(appends, 16 * rounds as u64);
    assert!(
        commits < appends,
        "{appends} appends in {commits} commits: none shared a commit"
    );
}

fn tool_pool() -> livestore_sync::storage::postgres::PoolOptions {
    livestore_sync::storage::postgres::PoolOptions {
        min_idle: 0,
        max_size: 1,
        connection_timeout: Duration::from_secs(5),
    }
}

/// The command line's storage (`storage::open_for_tool`).
fn open_tool(db: &std::path::Path) -> Result<(Arc<dyn Storage>, String), String> {
    livestore_sync::storage::open_for_tool(
        &livestore_sync::storage::Backend::Sqlite(db.to_path_buf()),
        &tool_pool(),
    )
    .map_err(|e| e.0)
}

fn user_version(db: &std::path::Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Holds `db`'s instance lock the way a running server does.
fn hold_lock(db: &std::path::Path) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(db))
        .unwrap();
    f.try_lock().unwrap();
    f
}

/// With no server running, the command line takes the lock for its whole
/// life (a server started meanwhile is refused), creates a missing file
/// (and its directory) and migrates it, as a server would.
#[test]
fn the_tool_without_a_server_holds_the_lock_and_migrates() {
    let _w = watchdog("sqlite_tool_alone", Duration::from_secs(30));
    let dir = TempDir::new("tool_alone");
    let db = dir.path().join("sub").join("livestore.db");
    let (tool, description) = open_tool(&db).unwrap();
    assert!(!description.contains("running server"), "{description}");
    assert_eq!(tool.schema_version().unwrap(), SCHEMA_STEPS.len() as i64);
    assert_eq!(user_version(&db), SCHEMA_STEPS.len() as i64);
    let err = open(&db).err().expect("no server starts mid-command");
    assert!(err.starts_with("another livestore-sync is using"), "{err}");
    tool.import("s", None, false, &mut std::iter::empty())
        .unwrap();
    drop(tool);
    let server = open_when_free(&db);
    assert_eq!(server.open_store("s").unwrap().head, 0);
}

/// Next to a running server the command line never migrates: a file at
/// another schema version is refused with what to do, and left as it is.
/// Without the server, the same file is migrated.
#[test]
fn the_tool_next_to_a_server_refuses_another_schema_version_and_migrates_nothing() {
    let _w = watchdog("sqlite_tool_version", Duration::from_secs(30));
    let dir = TempDir::new("tool_version");
    let db = dir.db();
    let c = Connection::open(&db).unwrap();
    migrate(&c, &SCHEMA_STEPS[..1], &db).unwrap();
    drop(c);
    let server = hold_lock(&db);
    let err = open_tool(&db).err().expect("an older file is refused");
    assert!(
        err.contains(&format!(
            "has schema version 1 and this livestore-sync knows {}",
            SCHEMA_STEPS.len()
        )) && err.contains("stop the server to migrate"),
        "{err}"
    );
    assert_eq!(user_version(&db), 1, "not migrated");
    // A newer file too.
    let c = Connection::open(&db).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = open_tool(&db).err().expect("a newer file is refused");
    assert!(err.contains("has schema version 99"), "{err}");
    let c = Connection::open(&db).unwrap();
    c.pragma_update(None, "user_version", 1).unwrap();
    drop(c);
    // A file that is not there is not created behind a running server.
    let missing = dir.path().join("missing.db");
    let _other = hold_lock(&missing);
    let err = open_tool(&missing).err().expect("refused");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists());
    // Once the server is gone, the tool migrates like a server.
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (tool, description) = loop {
        match open_tool(&db) {
            Ok(t) if !t.1.contains("running server") => break t,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => panic!("the lock should be free: {:?}", other.map(|t| t.1)),
        }
    };
    assert!(!description.contains("running server"), "{description}");
    assert_eq!(tool.schema_version().unwrap(), SCHEMA_STEPS.len() as i64);
}

/// The command line writing next to a running server cannot fork a log:
/// the head is checked inside the write transaction, whoever writes.
#[test]
fn the_tool_next_to_a_server_cannot_fork_a_log() {
    let _w = watchdog("sqlite_tool_fork", Duration::from_secs(30));
    let dir = TempDir::new("tool_fork");
    let server = Arc::new(open(&dir.db()).unwrap());
    let hub = Hub::new(server.clone(), Limits::default());
    let store = hub.store("s");
    store.push("p", batch(1, 3, "S"), None, || {}).unwrap();
    let (tool, _) = open_tool(&dir.db()).unwrap();
    assert!(matches!(
        tool.append("s", 0, &batch(1, 2, "T"), SystemTime::now()),
        Err(AppendError::Conflict { head: 3 })
    ));
    tool.append("s", 3, &batch(4, 1, "T"), SystemTime::now())
        .unwrap();
    // The server's cached head (3) is stale: its push on it is refused.
    let err = store
        .push("p", batch(4, 1, "S"), None, || panic!("must not ack"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PushError::Chain(livestore_sync::model::ChainError::WrongParent { head: 4, .. })
        ),
        "{err:?}"
    );
    store.push("p", batch(5, 1, "S"), None, || {}).unwrap();
    // An import refuses a store with events, whoever holds the lock.
    assert!(matches!(
        tool.import("s", None, false, &mut std::iter::empty()),
        Err(livestore_sync::storage::ImportError::NotEmpty { head: 5 })
    ));
    let clients: Vec<String> = server
        .read("s", 0, 100, 100)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}{}", e.event.seq_num, e.event.client_id))
        .collect();
    assert_eq!(clients, ["1S", "2S", "3S", "4T", "5S"]);
}
