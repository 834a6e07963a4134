//! What only the PostgreSQL storage promises, against a real server: the
//! database refuses forks when several instances share it, the schema
//! applies idempotently and migrates, a missing database is created, pull
//! pages walk the primary key. The promises every backend keeps are in
//! `storage_contract.rs`.
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use livestore_sync::model::{ChainError, Event};
use livestore_sync::storage::postgres::{PgStorage, PoolOptions, SCHEMA_SQL};
use livestore_sync::storage::{AppendError, Storage};
use livestore_sync::sync::hub::Hub;
use livestore_sync::sync::store::PushError;
use livestore_sync::sync::Limits;

fn pool() -> PoolOptions {
    PoolOptions {
        min_idle: 1,
        max_size: 4,
        connection_timeout: Duration::from_secs(5),
    }
}

fn batch(from: i64, n: i64, client: &str) -> Vec<Event> {
    serde_json::from_str(&events(from, n, client)).unwrap()
}

#[test]
fn a_second_instance_with_a_stale_head_gets_a_conflict_not_a_fork() {
    let _w = watchdog("stale_instance", Duration::from_secs(30));
    let db = TestDb::create("storage_fork");
    let one = PgStorage::connect(&db.url, &pool()).unwrap();
    let two = PgStorage::connect(&db.url, &pool()).unwrap();
    assert_eq!(one.open_store("s").unwrap().head, 0);
    assert_eq!(two.open_store("s").unwrap().head, 0);
    one.append("s", 0, &batch(1, 3, "A"), SystemTime::now())
        .unwrap();
    match two.append("s", 0, &batch(1, 2, "B"), SystemTime::now()) {
        Err(AppendError::Conflict { head }) => assert_eq!(head, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A batch whose seq_nums are taken is refused even if the head matched.
    match one.append("s", 3, &batch(3, 1, "C"), SystemTime::now()) {
        Err(AppendError::Conflict { head }) => assert_eq!(head, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let rows: Vec<(i64, String)> = db
        .client()
        .query(
            "SELECT seq_num, client_id FROM events ORDER BY seq_num",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, "A".into()), (2, "A".into()), (3, "A".into())]
    );
}

#[test]
fn two_hubs_on_one_database_never_fork_and_the_stale_one_catches_up() {
    let _w = watchdog("two_hubs", Duration::from_secs(30));
    let db = TestDb::create("storage_hubs");
    let hub = || {
        let storage = PgStorage::connect(&db.url, &pool()).unwrap();
        Hub::new(Arc::new(storage), Limits::default())
    };
    let (h1, h2) = (hub(), hub());
    let (s1, s2) = (h1.store("s"), h2.store("s"));
    // Both load head 0 into memory.
    assert_eq!(s1.meta().unwrap().head, 0);
    assert_eq!(s2.meta().unwrap().head, 0);
    s1.push("p1", batch(1, 2, "A"), None, || {}).unwrap();
    // A push on the stale head (parent 0) is refused: no fork.
    let err = s2
        .push("p2", batch(1, 1, "B"), None, || panic!("must not ack"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PushError::Chain(ChainError::WrongParent { head: 2, parent: 0 })
        ),
        "{err:?}"
    );
    // A push on the head instance one moved (parent 2, ahead of what
    // instance two had cached) is accepted: two reads the head from
    // storage before judging it. (It used to be refused with "Invalid
    // parent event number".)
    s1.push("p3", batch(3, 1, "A"), None, || {}).unwrap();
    s2.push("p4", batch(4, 1, "B"), None, || {}).unwrap();
    assert_eq!(db.all_event_rows(), 4);
    // Instance one learns of it from the log.
    s1.appended_elsewhere(4).unwrap();
    assert_eq!(s1.meta().unwrap().head, 4);
    s1.push("p5", batch(5, 1, "A"), None, || {}).unwrap();
}

/// Two instances opening the same new store at once: the second one's
/// insert waits for the first one's, then finds the row taken, and must
/// still read the row (its statement's snapshot predates that commit).
/// Before the fix: "opening store: query returned an unexpected number of
/// rows", and the client's upgrade was refused with 503.
#[test]
fn an_instance_opening_a_store_another_is_creating_gets_its_row() {
    let _w = watchdog("open_race", Duration::from_secs(30));
    let db = TestDb::create("open_race");
    let storage = Arc::new(PgStorage::connect(&db.url, &pool()).unwrap());
    // The other instance, mid-insert: its row is not committed yet.
    let mut other = db.client();
    other
        .batch_execute("BEGIN; INSERT INTO stores (store_id, backend_id) VALUES ('s', 'OTHER')")
        .unwrap();
    let opening = {
        let storage = storage.clone();
        std::thread::spawn(move || storage.open_store("s"))
    };
    db.wait_for_lock_waiters("INSERT INTO stores", 1, Duration::from_secs(10));
    other.batch_execute("COMMIT").unwrap();
    let meta = opening.join().unwrap().expect("open_store");
    assert_eq!((meta.head, meta.backend_id.as_str()), (0, "OTHER"));
}

#[test]
fn args_live_in_a_json_column_not_jsonb() {
    // jsonb would reorder keys; the byte-for-byte promise itself is in
    // storage_contract.rs, for every backend.
    let _w = watchdog("args_json", Duration::from_secs(30));
    let db = TestDb::create("storage_args");
    let _st = PgStorage::connect(&db.url, &pool()).unwrap();
    let col: String = db
        .client()
        .query_one("SELECT data_type FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'args'", &[])
        .unwrap()
        .get(0);
    assert_eq!(col, "json");
}

#[test]
fn schema_applies_twice_and_a_missing_database_is_created() {
    let _w = watchdog("schema", Duration::from_secs(30));
    let name = format!("lss_test_created_{}", std::process::id());
    let url = replace_db_name(&admin_url(), &name);
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    let a = PgStorage::connect(&url, &pool()).expect("creates the database");
    let b = PgStorage::connect(&url, &pool()).expect("schema applies again");
    let id_a = a.open_store("s").unwrap().backend_id;
    assert_eq!(
        b.open_store("s").unwrap().backend_id,
        id_a,
        "backend id is stable across instances"
    );
    b.health().unwrap();
    drop((a, b));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
}

#[test]
fn a_version_1_database_loses_the_events_foreign_key() {
    let _w = watchdog("schema v2", Duration::from_secs(30));
    let db = TestDb::create("schema_v2");
    let mut c = db.client();
    // The shipped version 1 only: everything before the version 2 step.
    let v1 = SCHEMA_SQL.split("-- Version 2").next().unwrap();
    c.batch_execute(v1).unwrap();
    let fks = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'f'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(fks(&mut c), 1, "version 1 has the foreign key");
    let st = PgStorage::connect(&db.url, &pool()).expect("schema applies over version 1");
    assert_eq!(fks(&mut c), 0, "version 2 drops it");
    let versions: Vec<i32> = c
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2]);
    // Appends still need their store row: the statement that moves the head
    // inserts nothing for a store that was never opened.
    assert!(st
        .append("never-opened", 0, &batch(1, 1, "c"), SystemTime::now())
        .is_err());
    assert_eq!(db.all_event_rows(), 0);
}

#[test]
fn pull_pages_walk_the_primary_key_even_without_statistics() {
    let _w = watchdog("plan", Duration::from_secs(60));
    let db = TestDb::create("storage_plan");
    let st = PgStorage::connect(&db.url, &pool()).unwrap();
    // A never analysed table (autovacuum may be off) holding other stores
    // too: the shape in which the planner was seen sorting the whole rest
    // of the log for every page.
    for s in ["a", "s", "z"] {
        st.open_store(s).unwrap();
        db.client()
            .batch_execute(&format!(
                "INSERT INTO events SELECT '{s}', g, g - 1, 'n', '{{\"a\":1}}', now(), 'c', 's' FROM generate_series(1, 100000) g;
                 UPDATE stores SET head = 100000 WHERE store_id = '{s}'"
            ))
            .unwrap();
    }
    for (after, up_to) in [(0, 100_000), (50_000, 100_000), (99_000, 100_000)] {
        let plan = st.explain_read("s", after, up_to, 1000).unwrap();
        assert!(
            plan.contains("Index Scan using events_pkey")
                || plan.contains("Index Only Scan using events_pkey"),
            "{plan}"
        );
        assert!(
            !plan.contains("Sort"),
            "a page must not sort the rest of the log:\n{plan}"
        );
    }
}
