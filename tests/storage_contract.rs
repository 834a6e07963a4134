//! The storage contract: what every backend promises the core, one function
//! per promise, each run against PostgreSQL (a fresh database per test) and
//! SQLite (a fresh directory per test): `postgres::<promise>` and
//! `sqlite::<promise>`. Backend-only checks live in `storage_postgres.rs`
//! and `storage_sqlite.rs`.
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use livestore_sync::model::{ChainError, Event, StoreMeta, StoredEvent};
use livestore_sync::storage::postgres::{PgStorage, PoolOptions};
use livestore_sync::storage::sqlite::{SqliteOptions, SqliteStorage, SCHEMA_STEPS};
use livestore_sync::storage::{
    open_for_tool, AppendError, Backend, ImportError, Notice, Storage, StoreSummary,
};
use livestore_sync::sync::hub::Hub;
use livestore_sync::sync::pull::Progress;
use livestore_sync::sync::store::PushError;
use livestore_sync::sync::Limits;

/// Where a backend keeps its data for one test.
trait Fixture {
    /// A storage over this test's data. Called again, it is a new instance
    /// over the same data (the caller drops the previous one first: SQLite
    /// serves one instance at a time).
    fn open(&self) -> Arc<dyn Storage>;

    /// A second handle on the same data while the first is open, the way
    /// the command line opens it next to a running server.
    fn open_tool(&self) -> Arc<dyn Storage>;

    /// The schema version a freshly opened storage is at.
    fn schema_version(&self) -> i64;
}

fn pool() -> PoolOptions {
    PoolOptions {
        min_idle: 1,
        max_size: 8,
        connection_timeout: Duration::from_secs(5),
    }
}

struct Pg(TestDb);

impl Fixture for Pg {
    fn open(&self) -> Arc<dyn Storage> {
        Arc::new(PgStorage::connect(&self.0.url, &pool()).unwrap())
    }

    fn open_tool(&self) -> Arc<dyn Storage> {
        open_for_tool(&Backend::Postgres(self.0.url.clone()), &pool())
            .unwrap()
            .0
    }

    fn schema_version(&self) -> i64 {
        // The last `schema_version` row schema.sql inserts.
        2
    }
}

struct Lite(TempDir);

impl Fixture for Lite {
    fn open(&self) -> Arc<dyn Storage> {
        Arc::new(SqliteStorage::open(&self.0.db(), SqliteOptions::default()).unwrap())
    }

    fn open_tool(&self) -> Arc<dyn Storage> {
        let (st, description) = open_for_tool(&Backend::Sqlite(self.0.db()), &pool()).unwrap();
        assert!(
            description.contains("a running server holds its lock"),
            "the first handle holds the lock: {description}"
        );
        st
    }

    fn schema_version(&self) -> i64 {
        SCHEMA_STEPS.len() as i64
    }
}

/// `postgres::<promise>` and `sqlite::<promise>` for every promise named.
macro_rules! contract {
    ($($promise:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[test]
                fn $promise() {
                    let _w = watchdog(stringify!($promise), Duration::from_secs(120));
                    super::$promise(&Pg(TestDb::create("contract")));
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[test]
                fn $promise() {
                    let _w = watchdog(stringify!($promise), Duration::from_secs(120));
                    super::$promise(&Lite(TempDir::new(stringify!($promise))));
                }
            )*
        }
    };
}

contract!(
    a_new_store_starts_at_zero_with_a_lasting_backend_id,
    appended_events_read_back_exactly,
    args_are_stored_and_read_back_byte_for_byte,
    store_ids_are_exact_strings,
    a_stale_head_is_a_conflict_and_writes_nothing,
    reads_are_bounded_and_ascending,
    reset_gives_a_new_backend_id_and_deletes_the_events,
    concurrent_appenders_keep_every_log_contiguous_and_every_ack_true,
    acknowledged_events_are_there_after_reopening,
    the_core_pushes_and_pulls_through_it,
    health_answers,
    summaries_count_events_bytes_and_the_last_write_in_byte_order,
    a_summary_never_creates_a_store,
    delete_removes_a_store_and_its_next_use_starts_afresh,
    import_into_an_empty_store_keeps_or_sets_the_backend_id,
    import_keeps_every_field_created_at_and_args_byte_for_byte,
    import_into_a_store_with_events_is_refused_and_writes_nothing,
    import_with_replace_replaces_the_log_and_the_backend_id,
    a_broken_chain_rolls_the_whole_import_back,
    a_source_error_rolls_the_whole_import_back,
    schema_version_is_the_current_one,
    another_handles_reset_delete_and_import_reach_the_watch,
);

fn batch(from: i64, n: i64, client: &str) -> Vec<Event> {
    serde_json::from_str(&events(from, n, client)).unwrap()
}

/// Every event of `store`, in pages of 1,000.
fn all(st: &dyn Storage, store: &str) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.event.seq_num);
        let page = st.read(store, after, i64::MAX, 1000).unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn seqs(v: &[StoredEvent]) -> Vec<i64> {
    v.iter().map(|e| e.event.seq_num).collect()
}

/// A time with whole microseconds (both backends keep microseconds).
fn at(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros)
}

fn a_new_store_starts_at_zero_with_a_lasting_backend_id(f: &dyn Fixture) {
    let st = f.open();
    let meta = st.open_store("s").unwrap();
    assert_eq!(meta.head, 0);
    assert_eq!(meta.backend_id.len(), 21, "{meta:?}");
    assert_eq!(
        st.open_store("s").unwrap(),
        meta,
        "opening again changes nothing"
    );
    let other = st.open_store("t").unwrap();
    assert_ne!(other.backend_id, meta.backend_id, "each store has its own");
    st.append("s", 0, &batch(1, 2, "c"), SystemTime::now())
        .unwrap();
    drop(st);
    let st = f.open();
    let again = st.open_store("s").unwrap();
    assert_eq!((again.head, again.backend_id), (2, meta.backend_id));
}

fn appended_events_read_back_exactly(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("s").unwrap();
    // An empty append is nothing.
    st.append("s", 0, &[], SystemTime::now()).unwrap();
    assert_eq!(st.open_store("s").unwrap().head, 0);
    let (a, b) = (batch(1, 3, "A"), batch(4, 2, "B"));
    st.append("s", 0, &a, at(1_700_000_000_123_456)).unwrap();
    st.append("s", 3, &b, at(1_700_000_001_000_001)).unwrap();
    let back = st.read("s", 0, 5, 100).unwrap();
    let expect: Vec<StoredEvent> = a
        .into_iter()
        .map(|event| StoredEvent {
            event,
            created_at: at(1_700_000_000_123_456),
        })
        .chain(b.into_iter().map(|event| StoredEvent {
            event,
            created_at: at(1_700_000_001_000_001),
        }))
        .collect();
    assert_eq!(back, expect);
    assert_eq!(st.open_store("s").unwrap().head, 5);
    // One append of 5,000 events: all or nothing, in one go.
    st.append("s", 5, &batch(6, 5000, "C"), SystemTime::now())
        .unwrap();
    assert_eq!(seqs(&all(&*st, "s")), (1..=5005).collect::<Vec<_>>());
}

fn args_are_stored_and_read_back_byte_for_byte(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("s").unwrap();
    let big = format!(r#"{{"blob":"{}","z":0}}"#, "é\\n\\u0000x".repeat(100_000));
    let args = [
        // Key order, spaces, number spellings and escapes, as sent.
        r#"{"zeta": 1, "alpha":{"y":[1.50,2e3,-0,12345678901234567890],"x":"\u00e9"}}"#.to_string(),
        "null".to_string(),
        "{\n\t\"a\" :\r\n [ ] }".to_string(),
        r#""a string with \"quotes\" and 😀""#.to_string(),
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]".to_string(),
        big,
    ];
    let mut events: Vec<Event> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let i = i as i64 + 1;
            serde_json::from_str(&format!(
                r#"{{"name":"n","args":{a},"seqNum":{i},"parentSeqNum":{},"clientId":"c","sessionId":"s"}}"#,
                i - 1
            ))
            .unwrap()
        })
        .collect();
    let n = events.len() as i64;
    events.push(
        serde_json::from_str(&format!(
            r#"{{"name":"n","seqNum":{},"parentSeqNum":{n},"clientId":"c","sessionId":"s"}}"#,
            n + 1
        ))
        .unwrap(),
    );
    st.append("s", 0, &events, SystemTime::now()).unwrap();
    let back = st.read("s", 0, n + 1, 100).unwrap();
    for (i, a) in args.iter().enumerate() {
        assert_eq!(back[i].event.args.as_deref(), Some(a.as_str()), "args #{i}");
    }
    assert_eq!(
        back[1].event.args.as_deref(),
        Some("null"),
        "JSON null stays"
    );
    assert!(
        back[n as usize].event.args.is_none(),
        "absent args stay absent"
    );
    assert_eq!(
        back.into_iter().map(|e| e.event).collect::<Vec<_>>(),
        events
    );
}

fn store_ids_are_exact_strings(f: &dyn Fixture) {
    let st = f.open();
    let long = "x".repeat(10_000);
    let ids = [
        "a-b",
        "a_b",
        "A-B",
        "a-b ",
        " a-b",
        "a%2Db",
        "é",        // U+00E9
        "e\u{301}", // e + combining acute: looks the same, other bytes
        "😀 store",
        "日本語/ストア",
        "",
        long.as_str(),
    ];
    for (i, id) in ids.iter().enumerate() {
        st.open_store(id).unwrap();
        st.append(
            id,
            0,
            &batch(1, i as i64 + 1, &format!("c{i}")),
            SystemTime::now(),
        )
        .unwrap_or_else(|e| panic!("store {id:?}: {e:?}"));
    }
    let mut backend_ids = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let meta = st.open_store(id).unwrap();
        assert_eq!(meta.head, i as i64 + 1, "store {id:?}");
        assert!(
            backend_ids.insert(meta.backend_id),
            "store {id:?} shares a backend id"
        );
        let back = all(&*st, id);
        assert_eq!(back.len(), i + 1, "store {id:?}");
        assert!(
            back.iter().all(|e| e.event.client_id == format!("c{i}")),
            "store {id:?} holds another store's events"
        );
    }
    assert!(st.read("A-b", 0, 100, 100).unwrap().is_empty());
}

fn a_stale_head_is_a_conflict_and_writes_nothing(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 3, "A"), SystemTime::now())
        .unwrap();
    match st.append("s", 0, &batch(1, 2, "B"), SystemTime::now()) {
        Err(AppendError::Conflict { head }) => assert_eq!(head, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match st.append("s", 1, &batch(2, 1, "B"), SystemTime::now()) {
        Err(AppendError::Conflict { head }) => assert_eq!(head, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // An expected head ahead of the stored one would leave a gap.
    match st.append("s", 5, &batch(6, 1, "B"), SystemTime::now()) {
        Err(AppendError::Conflict { head }) => assert_eq!(head, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A batch whose seq_nums are taken is refused even if the head matched.
    match st.append("s", 3, &batch(3, 2, "C"), SystemTime::now()) {
        Err(AppendError::Conflict { head }) => assert_eq!(head, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A store never opened has no head to move: nothing is written.
    assert!(st
        .append("never-opened", 0, &batch(1, 1, "D"), SystemTime::now())
        .is_err());
    let back = all(&*st, "s");
    assert_eq!(
        back.iter()
            .map(|e| (e.event.seq_num, e.event.client_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "A"), (2, "A"), (3, "A")]
    );
    assert_eq!(st.open_store("s").unwrap().head, 3);
    assert!(all(&*st, "never-opened").is_empty());
    // The store goes on from its real head.
    st.append("s", 3, &batch(4, 1, "E"), SystemTime::now())
        .unwrap();
}

fn reads_are_bounded_and_ascending(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("s").unwrap();
    st.open_store("t").unwrap();
    // In several appends, so that the rows are not stored in one piece.
    for k in 0..5 {
        st.append("s", k * 2, &batch(k * 2 + 1, 2, "A"), SystemTime::now())
            .unwrap();
        st.append("t", k, &batch(k + 1, 1, "B"), SystemTime::now())
            .unwrap();
    }
    let r = |after, up_to, limit| seqs(&st.read("s", after, up_to, limit).unwrap());
    assert_eq!(r(3, 8, 3), vec![4, 5, 6]);
    assert_eq!(r(3, 8, 100), vec![4, 5, 6, 7, 8]);
    assert_eq!(r(8, 20, 100), vec![9, 10]);
    assert_eq!(r(0, 10, 1), vec![1]);
    assert_eq!(r(10, 20, 100), Vec::<i64>::new());
    assert_eq!(r(5, 5, 100), Vec::<i64>::new());
    assert_eq!(r(6, 2, 100), Vec::<i64>::new());
    assert_eq!(r(0, 10, 0), Vec::<i64>::new());
    assert_eq!(
        seqs(&st.read("t", 0, 100, 100).unwrap()),
        vec![1, 2, 3, 4, 5]
    );
    assert!(st.read("nobody", 0, 100, 100).unwrap().is_empty());
}

fn reset_gives_a_new_backend_id_and_deletes_the_events(f: &dyn Fixture) {
    let st = f.open();
    let before = st.open_store("s").unwrap();
    st.open_store("t").unwrap();
    st.append("s", 0, &batch(1, 10, "A"), SystemTime::now())
        .unwrap();
    st.append("t", 0, &batch(1, 2, "A"), SystemTime::now())
        .unwrap();
    st.reset("s", "NEW").unwrap();
    let after = st.open_store("s").unwrap();
    assert_eq!((after.head, after.backend_id.as_str()), (0, "NEW"));
    assert_ne!(before.backend_id, after.backend_id);
    assert!(all(&*st, "s").is_empty());
    assert_eq!(seqs(&all(&*st, "t")), vec![1, 2], "other stores untouched");
    // The log starts again at 1, and a push on the old head is refused.
    assert!(matches!(
        st.append("s", 10, &batch(11, 1, "A"), SystemTime::now()),
        Err(AppendError::Conflict { head: 0 })
    ));
    st.append("s", 0, &batch(1, 1, "B"), SystemTime::now())
        .unwrap();
    // Resetting a store nobody opened creates it, empty.
    st.reset("fresh", "F").unwrap();
    drop(st);
    let st = f.open();
    assert_eq!(st.open_store("s").unwrap().backend_id, "NEW");
    assert_eq!(seqs(&all(&*st, "s")), vec![1]);
    assert_eq!(st.open_store("fresh").unwrap().backend_id, "F");
}

/// Four threads race on two stores, each appending on the head it last
/// saw (adopting the conflict's head when refused). Every store's log ends
/// up 1..=head without a gap, and every acknowledged batch is in it, whole,
/// as its appender sent it.
fn concurrent_appenders_keep_every_log_contiguous_and_every_ack_true(f: &dyn Fixture) {
    let st = f.open();
    for s in ["s0", "s1"] {
        st.open_store(s).unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let st = st.clone();
            std::thread::spawn(move || {
                let store = format!("s{}", t % 2);
                let mut head = 0;
                let mut acked = Vec::new();
                let (mut conflicts, mut i) = (0, 0);
                while acked.len() < 40 {
                    i += 1;
                    let n = 1 + (i % 7);
                    let client = format!("t{t}-{i}");
                    match st.append(
                        &store,
                        head,
                        &batch(head + 1, n, &client),
                        SystemTime::now(),
                    ) {
                        Ok(()) => {
                            acked.push((head + 1, n, client));
                            head += n;
                        }
                        Err(AppendError::Conflict { head: h }) => {
                            assert!(h > head, "a conflict moves the head forward");
                            head = h;
                            conflicts += 1;
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                (store, acked, conflicts)
            })
        })
        .collect();
    let mut acked: BTreeMap<String, Vec<(i64, i64, String)>> = BTreeMap::new();
    let mut conflicts = 0;
    for t in threads {
        let (store, a, c) = t.join().unwrap();
        acked.entry(store).or_default().extend(a);
        conflicts += c;
    }
    assert!(conflicts > 0, "the appenders never raced");
    for (store, batches) in &acked {
        let log = all(&*st, store);
        let total: i64 = batches.iter().map(|b| b.1).sum();
        assert_eq!(seqs(&log), (1..=total).collect::<Vec<_>>(), "{store}");
        assert!(log
            .iter()
            .all(|e| e.event.parent_seq_num == e.event.seq_num - 1));
        assert_eq!(st.open_store(store).unwrap().head, total);
        for (from, n, client) in batches {
            let got = &log[*from as usize - 1..(*from + *n) as usize - 1];
            assert_eq!(
                got.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
                batch(*from, *n, client),
                "{store}: the batch acked at {from}"
            );
        }
    }
}

fn acknowledged_events_are_there_after_reopening(f: &dyn Fixture) {
    let st = f.open();
    let mut ids = Vec::new();
    for s in ["a", "b", "c"] {
        ids.push(st.open_store(s).unwrap().backend_id);
        for k in 0..20 {
            st.append(s, k * 5, &batch(k * 5 + 1, 5, s), SystemTime::now())
                .unwrap();
        }
    }
    drop(st);
    let st = f.open();
    for (s, id) in ["a", "b", "c"].into_iter().zip(ids) {
        let meta = st.open_store(s).unwrap();
        assert_eq!((meta.head, meta.backend_id), (100, id));
        assert_eq!(
            all(&*st, s)
                .into_iter()
                .map(|e| e.event)
                .collect::<Vec<_>>(),
            batch(1, 100, s)
        );
    }
}

/// The core (`sync::hub::Hub`) over the storage: pushes are judged against
/// the stored head, a pull reads them back in pages, and a new hub over
/// reopened storage goes on from where the log is.
fn the_core_pushes_and_pulls_through_it(f: &dyn Fixture) {
    let st = f.open();
    let hub = Hub::new(st.clone(), Limits::default());
    let store = hub.store("s");
    let backend_id = store.meta().unwrap().backend_id;
    let mut acks = 0;
    for k in 0..5 {
        store
            .push("p", batch(k * 50 + 1, 50, "A"), Some(&backend_id), || {
                acks += 1
            })
            .unwrap();
    }
    assert_eq!(acks, 5);
    let err = store
        .push("q", batch(1, 1, "B"), None, || panic!("must not ack"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PushError::Chain(ChainError::WrongParent {
                head: 250,
                parent: 0
            })
        ),
        "{err:?}"
    );
    let pull_all = |hub: &Hub, from: i64| {
        let mut pull = hub.store("s").pull(from, None, None).unwrap();
        let mut pages = Vec::new();
        loop {
            let step = pull
                .send_next(|p| {
                    pages.push((seqs(&p.events), p.remaining));
                    Ok(())
                })
                .unwrap();
            if step == Progress::Done {
                return pages;
            }
        }
    };
    let pages = pull_all(&hub, 20);
    assert_eq!(
        pages.iter().map(|(s, r)| (s.len(), *r)).collect::<Vec<_>>(),
        vec![(100, 130), (100, 30), (30, 0)]
    );
    assert_eq!(
        pages.into_iter().flat_map(|(s, _)| s).collect::<Vec<_>>(),
        (21..=250).collect::<Vec<_>>()
    );
    drop((store, hub, st));
    let st = f.open();
    let hub = Hub::new(st.clone(), Limits::default());
    let store = hub.store("s");
    assert_eq!(store.meta().unwrap().head, 250);
    store
        .push("p", batch(251, 1, "A"), Some(&backend_id), || {})
        .unwrap();
    assert_eq!(
        st.read("s", 0, 1000, 1000).unwrap().len(),
        251,
        "in storage, not only in the hub"
    );
}

fn health_answers(f: &dyn Fixture) {
    let st = f.open();
    st.health().unwrap();
    st.open_store("s").unwrap();
    st.health().unwrap();
}

/// `events` as an import reads them, each created at `at(base + seq)`.
fn source(events: Vec<Event>, base: u64) -> impl Iterator<Item = Result<StoredEvent, String>> {
    stored(events, base).into_iter().map(Ok)
}

fn stored(events: Vec<Event>, base: u64) -> Vec<StoredEvent> {
    events
        .into_iter()
        .map(|event| StoredEvent {
            created_at: at(base + event.seq_num as u64),
            event,
        })
        .collect()
}

/// What a summary counts as an event's bytes.
fn bytes(events: &[Event]) -> i64 {
    events
        .iter()
        .map(|e| {
            (e.name.len()
                + e.args.as_deref().map_or(0, str::len)
                + e.client_id.len()
                + e.session_id.len()) as i64
        })
        .sum()
}

/// An event with these fields, chaining to `seq - 1`.
fn event(seq: i64, name: &str, args: Option<&str>, client: &str, session: &str) -> Event {
    let args = args.map_or(String::new(), |a| format!(r#""args":{a},"#));
    serde_json::from_str(&format!(
        r#"{{"name":{},{args}"seqNum":{seq},"parentSeqNum":{},"clientId":{},"sessionId":{}}}"#,
        serde_json::Value::from(name),
        seq - 1,
        serde_json::Value::from(client),
        serde_json::Value::from(session),
    ))
    .unwrap()
}

fn summaries_count_events_bytes_and_the_last_write_in_byte_order(f: &dyn Fixture) {
    let st = f.open();
    assert_eq!(st.list_stores().unwrap(), vec![]);
    // Multi-byte text everywhere: bytes are counted, not characters.
    let a = vec![
        event(1, "v1.Créé", Some(r#"{"t":"😀 é"}"#), "clïent", "séssion"),
        event(2, "n", None, "c", "s"),
        event(3, "n", Some("null"), "", ""),
    ];
    let b = batch(1, 4, "B");
    // Ids whose byte order differs from a locale's order.
    for id in ["b", "é", "a", "B", "z", "empty"] {
        st.open_store(id).unwrap();
    }
    st.append("a", 0, &a[..2], at(1_700_000_000_000_001))
        .unwrap();
    st.append("a", 2, &a[2..], at(1_700_000_000_000_002))
        .unwrap();
    st.append("b", 0, &b, at(1_600_000_000_000_000)).unwrap();
    let list = st.list_stores().unwrap();
    assert_eq!(
        list.iter().map(|s| s.store_id.as_str()).collect::<Vec<_>>(),
        vec!["B", "a", "b", "empty", "z", "é"]
    );
    let find = |id: &str| list.iter().find(|s| s.store_id == id).unwrap().clone();
    let summary_a = StoreSummary {
        store_id: "a".into(),
        head: 3,
        events: 3,
        bytes: bytes(&a),
        last_write: Some(at(1_700_000_000_000_002)),
        backend_id: st.open_store("a").unwrap().backend_id,
    };
    assert_eq!(find("a"), summary_a);
    // Bytes, not characters (those would be 40).
    assert_eq!(summary_a.bytes, 9 + 15 + 7 + 8 + 3 + 5, "{summary_a:?}");
    assert_eq!(
        (find("b").events, find("b").bytes, find("b").last_write),
        (4, bytes(&b), Some(at(1_600_000_000_000_000)))
    );
    let empty = find("empty");
    assert_eq!(
        (empty.head, empty.events, empty.bytes, empty.last_write),
        (0, 0, 0, None)
    );
    assert_eq!(empty.backend_id, st.open_store("empty").unwrap().backend_id);
    // One store's summary is the same as its row in the list.
    for s in &list {
        assert_eq!(st.store_summary(&s.store_id).unwrap().as_ref(), Some(s));
    }
}

fn a_summary_never_creates_a_store(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("there").unwrap();
    assert_eq!(st.store_summary("nobody").unwrap(), None);
    assert_eq!(st.store_summary("").unwrap(), None);
    assert_eq!(
        st.list_stores()
            .unwrap()
            .into_iter()
            .map(|s| s.store_id)
            .collect::<Vec<_>>(),
        vec!["there".to_string()]
    );
}

fn delete_removes_a_store_and_its_next_use_starts_afresh(f: &dyn Fixture) {
    let st = f.open();
    let before = st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 5, "A"), SystemTime::now())
        .unwrap();
    st.open_store("t").unwrap();
    st.append("t", 0, &batch(1, 2, "A"), SystemTime::now())
        .unwrap();
    assert!(st.delete_store("s").unwrap());
    assert_eq!(st.store_summary("s").unwrap(), None);
    assert!(all(&*st, "s").is_empty());
    assert!(!st.delete_store("s").unwrap(), "nothing left to delete");
    assert!(!st.delete_store("never").unwrap());
    assert_eq!(
        st.list_stores()
            .unwrap()
            .into_iter()
            .map(|s| s.store_id)
            .collect::<Vec<_>>(),
        vec!["t".to_string()],
        "deleting a missing store creates nothing"
    );
    assert_eq!(seqs(&all(&*st, "t")), vec![1, 2], "other stores untouched");
    // An append on the old head finds no store to move.
    assert!(st
        .append("s", 5, &batch(6, 1, "A"), SystemTime::now())
        .is_err());
    assert!(all(&*st, "s").is_empty());
    let after = st.open_store("s").unwrap();
    assert_eq!(after.head, 0);
    assert_eq!(after.backend_id.len(), 21);
    assert_ne!(after.backend_id, before.backend_id);
    st.append("s", 0, &batch(1, 1, "B"), SystemTime::now())
        .unwrap();
    drop(st);
    let st = f.open();
    assert_eq!(st.open_store("s").unwrap(), meta(1, &after.backend_id));
}

/// A store's expected head and backend id.
fn meta(head: i64, backend_id: &str) -> StoreMeta {
    StoreMeta {
        head,
        backend_id: backend_id.to_string(),
    }
}

fn import_into_an_empty_store_keeps_or_sets_the_backend_id(f: &dyn Fixture) {
    let st = f.open();
    // An existing empty store keeps its backend id.
    let kept = st.open_store("kept").unwrap().backend_id;
    assert_eq!(
        st.import("kept", None, false, &mut source(batch(1, 3, "A"), 0))
            .unwrap(),
        3
    );
    assert_eq!(st.open_store("kept").unwrap(), meta(3, &kept));
    // A given one is taken.
    st.open_store("given").unwrap();
    st.import(
        "given",
        Some("GIVEN"),
        false,
        &mut source(batch(1, 2, "A"), 0),
    )
    .unwrap();
    assert_eq!(st.open_store("given").unwrap(), meta(2, "GIVEN"));
    // A store that did not exist is created, with a new one or the given one.
    st.import("new", None, false, &mut source(batch(1, 1, "A"), 0))
        .unwrap();
    let new = st.open_store("new").unwrap();
    assert_eq!(new.head, 1);
    assert_eq!(new.backend_id.len(), 21);
    assert!(![kept.as_str(), "GIVEN"].contains(&new.backend_id.as_str()));
    st.import(
        "new-given",
        Some("NG"),
        false,
        &mut source(batch(1, 1, "A"), 0),
    )
    .unwrap();
    assert_eq!(st.open_store("new-given").unwrap(), meta(1, "NG"));
    // No events: an empty store (created if missing).
    assert_eq!(
        st.import("none", Some("N0"), false, &mut std::iter::empty())
            .unwrap(),
        0
    );
    assert_eq!(st.open_store("none").unwrap(), meta(0, "N0"));
    // An imported store goes on like any other.
    st.append("kept", 3, &batch(4, 1, "B"), SystemTime::now())
        .unwrap();
    assert!(matches!(
        st.append("kept", 3, &batch(4, 1, "C"), SystemTime::now()),
        Err(AppendError::Conflict { head: 4 })
    ));
    drop(st);
    let st = f.open();
    assert_eq!(seqs(&all(&*st, "kept")), vec![1, 2, 3, 4]);
    assert_eq!(st.open_store("kept").unwrap(), meta(4, &kept));
}

fn import_keeps_every_field_created_at_and_args_byte_for_byte(f: &dyn Fixture) {
    let st = f.open();
    let big = format!(r#"{{"blob":"{}","z":0}}"#, "é\\n\\u0000x".repeat(50_000));
    let args = [
        Some(r#"{"zeta": 1, "alpha":{"y":[1.50,2e3,-0,12345678901234567890],"x":"\u00e9"}}"#),
        Some("null"),
        None,
        Some("{\n\t\"a\" :\r\n [ ] }"),
        Some(r#""a string with \"quotes\" and 😀""#),
        Some(big.as_str()),
    ];
    // More than one chunk of a PostgreSQL import, with distinct times.
    let mut events: Vec<Event> = (1..=2_500)
        .map(|i| {
            let a = args[(i as usize) % args.len()];
            event(i, &format!("n{}", i % 7), a, &format!("c{i}"), "sé")
        })
        .collect();
    events.truncate(2_500);
    let want = stored(events.clone(), 1_700_000_000_000_000);
    let n = st
        .import("s", None, false, &mut want.clone().into_iter().map(Ok))
        .unwrap();
    assert_eq!(n, 2_500);
    drop(st);
    let st = f.open();
    let back = all(&*st, "s");
    assert_eq!(back.len(), want.len());
    for (got, want) in back.iter().zip(&want) {
        assert_eq!(got, want, "seq {}", want.event.seq_num);
    }
    let summary = st.store_summary("s").unwrap().unwrap();
    assert_eq!(
        (
            summary.head,
            summary.events,
            summary.bytes,
            summary.last_write
        ),
        (
            2_500,
            2_500,
            bytes(&events),
            Some(at(1_700_000_000_000_000 + 2_500))
        )
    );
}

fn import_into_a_store_with_events_is_refused_and_writes_nothing(f: &dyn Fixture) {
    let st = f.open();
    let before_meta = st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 3, "A"), at(1_000)).unwrap();
    let before = all(&*st, "s");
    let mut pulled = 0;
    let mut events = source(batch(1, 5, "B"), 0).inspect(|_| pulled += 1);
    match st.import("s", Some("OTHER"), false, &mut events) {
        Err(ImportError::NotEmpty { head }) => assert_eq!(head, 3),
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    drop(events);
    assert_eq!(pulled, 0, "refused before reading the source");
    assert_eq!(all(&*st, "s"), before);
    assert_eq!(
        st.open_store("s").unwrap(),
        meta(3, &before_meta.backend_id)
    );
}

fn import_with_replace_replaces_the_log_and_the_backend_id(f: &dyn Fixture) {
    let st = f.open();
    let old = st.open_store("s").unwrap().backend_id;
    st.append("s", 0, &batch(1, 10, "A"), SystemTime::now())
        .unwrap();
    st.open_store("t").unwrap();
    st.append("t", 0, &batch(1, 2, "A"), SystemTime::now())
        .unwrap();
    let n = st
        .import("s", None, true, &mut source(batch(1, 4, "B"), 0))
        .unwrap();
    assert_eq!(n, 4);
    let replaced = st.open_store("s").unwrap();
    assert_eq!(replaced.head, 4);
    assert_ne!(replaced.backend_id, old, "a new history, a new backend id");
    assert_eq!(
        all(&*st, "s")
            .into_iter()
            .map(|e| e.event)
            .collect::<Vec<_>>(),
        batch(1, 4, "B")
    );
    assert_eq!(seqs(&all(&*st, "t")), vec![1, 2], "other stores untouched");
    // With a given backend id, and with nothing: an emptied store.
    st.import("s", Some("GIVEN"), true, &mut source(batch(1, 12, "C"), 0))
        .unwrap();
    assert_eq!(st.open_store("s").unwrap(), meta(12, "GIVEN"));
    st.import("s", Some("EMPTY"), true, &mut std::iter::empty())
        .unwrap();
    assert_eq!(st.open_store("s").unwrap(), meta(0, "EMPTY"));
    assert!(all(&*st, "s").is_empty());
    // Replace into a store that does not exist: created.
    st.import("u", Some("U"), true, &mut source(batch(1, 1, "D"), 0))
        .unwrap();
    assert_eq!(st.open_store("u").unwrap(), meta(1, "U"));
}

/// The store as it is: its meta and every event.
fn snapshot(st: &dyn Storage, id: &str) -> (Option<StoreSummary>, Vec<StoredEvent>) {
    (st.store_summary(id).unwrap(), all(st, id))
}

fn a_broken_chain_rolls_the_whole_import_back(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 3, "A"), SystemTime::now())
        .unwrap();
    let before = snapshot(&*st, "s");
    let broken = |at_seq: i64, how: &str| -> Vec<Event> {
        let mut v = batch(1, 3_000, "B");
        let e = &mut v[at_seq as usize - 1];
        match how {
            // 1, 2, …, k-1, k+1: a gap.
            "gap" => {
                e.seq_num += 1;
                e.parent_seq_num += 1;
            }
            // seqNum k with parent k-2.
            "parent" => e.parent_seq_num -= 1,
            // seqNum k+5 with parent k-1.
            "seq" => e.seq_num += 5,
            _ => unreachable!(),
        }
        v
    };
    for (at_seq, how) in [(2_500, "gap"), (1, "parent"), (7, "seq"), (1, "seq")] {
        for (store, replace) in [("s", true), ("fresh", false)] {
            let r = st.import(
                store,
                Some("X"),
                replace,
                &mut source(broken(at_seq, how), 0),
            );
            match r {
                Err(ImportError::Chain(why)) => {
                    assert!(why.contains("seqNum"), "{why}");
                    assert!(
                        why.contains(&format!("expected seqNum {at_seq} ")),
                        "{how} at {at_seq}: {why}"
                    );
                }
                other => panic!("{how} at {at_seq}: expected Chain, got {other:?}"),
            }
        }
        assert_eq!(snapshot(&*st, "s"), before, "{how} at {at_seq}");
        assert_eq!(snapshot(&*st, "fresh"), (None, vec![]), "{how} at {at_seq}");
    }
    // A first event that is not 1 is refused too.
    let from_5: Vec<Event> = batch(5, 2, "C");
    assert!(matches!(
        st.import("fresh", None, false, &mut source(from_5, 0)),
        Err(ImportError::Chain(_))
    ));
    assert_eq!(snapshot(&*st, "fresh"), (None, vec![]));
}

fn a_source_error_rolls_the_whole_import_back(f: &dyn Fixture) {
    let st = f.open();
    st.open_store("s").unwrap();
    st.append("s", 0, &batch(1, 3, "A"), SystemTime::now())
        .unwrap();
    let before = snapshot(&*st, "s");
    for (store, replace) in [("s", true), ("fresh", false)] {
        let mut events = source(batch(1, 2_500, "B"), 0)
            .take(2_200)
            .chain(std::iter::once(Err("line 2201: not JSON".to_string())))
            .chain(source(batch(2_201, 10, "B"), 0));
        match st.import(store, None, replace, &mut events) {
            Err(ImportError::Source(why)) => assert_eq!(why, "line 2201: not JSON"),
            other => panic!("expected Source, got {other:?}"),
        }
    }
    assert_eq!(snapshot(&*st, "s"), before);
    assert_eq!(snapshot(&*st, "fresh"), (None, vec![]));
    // Nothing is left half done: the same import without the error works.
    st.import("fresh", None, false, &mut source(batch(1, 5, "B"), 0))
        .unwrap();
    assert_eq!(seqs(&all(&*st, "fresh")), vec![1, 2, 3, 4, 5]);
}

fn schema_version_is_the_current_one(f: &dyn Fixture) {
    let st = f.open();
    assert_eq!(st.schema_version().unwrap(), f.schema_version());
    let tool = {
        drop(st);
        f.open()
    };
    assert_eq!(tool.schema_version().unwrap(), f.schema_version());
}

/// The first handle watches (a server); a second one (the command line)
/// resets, deletes and imports: each reaches the watch, in order, and the
/// first handle's own changes do not.
fn another_handles_reset_delete_and_import_reach_the_watch(f: &dyn Fixture) {
    let server = f.open();
    server.open_store("s").unwrap();
    server
        .append("s", 0, &batch(1, 3, "A"), SystemTime::now())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = parking_lot::Mutex::new(tx);
    let watch = server
        .watch(Box::new(move |n| {
            let _ = tx.lock().send(n);
        }))
        .expect("every backend watches");
    assert!(watch.is_up());
    // Its own reset: not delivered (the next notice is the tool's).
    server.reset("s", "OWN").unwrap();
    server
        .append("s", 0, &batch(1, 2, "A"), SystemTime::now())
        .unwrap();
    let tool = f.open_tool();
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a notice within 30 s")
    };
    tool.reset("s", "R1").unwrap();
    assert_eq!(
        next(),
        Notice::Reset {
            store_id: "s".into(),
            backend_id: "R1".into()
        }
    );
    assert!(tool.delete_store("s").unwrap());
    assert_eq!(
        next(),
        Notice::Deleted {
            store_id: "s".into()
        }
    );
    // Deleting nothing tells nobody; importing into a new store: its
    // backend id, then its head.
    assert!(!tool.delete_store("s").unwrap());
    tool.import("s", Some("I1"), false, &mut source(batch(1, 4, "T"), 0))
        .unwrap();
    assert_eq!(
        next(),
        Notice::Reset {
            store_id: "s".into(),
            backend_id: "I1".into()
        }
    );
    assert_eq!(
        next(),
        Notice::Appended {
            store_id: "s".into(),
            head: 4
        }
    );
    // Into an empty store that keeps its backend id: only the head.
    let kept = tool.open_store("e").unwrap().backend_id;
    tool.import("e", None, false, &mut source(batch(1, 2, "T"), 0))
        .unwrap();
    assert_eq!(
        next(),
        Notice::Appended {
            store_id: "e".into(),
            head: 2
        }
    );
    assert_eq!(server.open_store("e").unwrap(), meta(2, &kept));
    // Replacing: a reset even with the same backend id (another history).
    tool.import("e", Some(&kept), true, &mut source(batch(1, 1, "U"), 0))
        .unwrap();
    assert_eq!(
        next(),
        Notice::Reset {
            store_id: "e".into(),
            backend_id: kept.clone()
        }
    );
    assert_eq!(
        next(),
        Notice::Appended {
            store_id: "e".into(),
            head: 1
        }
    );
    // What the tool wrote is what the server reads.
    assert_eq!(server.open_store("s").unwrap(), meta(4, "I1"));
    assert_eq!(
        all(&*server, "s")
            .into_iter()
            .map(|e| e.event)
            .collect::<Vec<_>>(),
        batch(1, 4, "T")
    );
    watch.stop();
}
