//! A fresh PostgreSQL database per test, and the queries the tests make on it.

use std::sync::atomic::{AtomicU32, Ordering};

/// Where the tests find PostgreSQL: `TEST_DATABASE_URL`; else the local
/// server at 127.0.0.1:5432 if one answers; else a throwaway cluster of the
/// installed PostgreSQL that this test binary starts (once) and that is
/// removed when the binary ends. So `cargo test` passes where PostgreSQL is
/// installed but not running or configured.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return url;
    }
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
        if std::net::TcpStream::connect_timeout(&local, std::time::Duration::from_secs(2)).is_ok() {
            return "postgresql://postgres@127.0.0.1:5432/postgres".to_string();
        }
        let cluster = super::pg_cluster::PgCluster::start();
        cluster.remove_when_this_process_ends();
        eprintln!(
            "no PostgreSQL at 127.0.0.1:5432 and no TEST_DATABASE_URL: using a throwaway cluster on port {}",
            cluster.port
        );
        let url = cluster.url("postgres");
        // Shared by every test of this binary; the reaper removes it.
        std::mem::forget(cluster);
        url
    })
    .clone()
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates `lss_test_<tag>_<pid>_<n>` on the server named by `TEST_DATABASE_URL`.
    pub fn create(tag: &str) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("lss_test_{}_{}_{}", tag, std::process::id(), n)
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let admin = admin_url();
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {admin}: {e} (set TEST_DATABASE_URL)")
        });
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop old test database");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = replace_db_name(&admin, &name);
        TestDb { name, url }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test database")
    }

    /// The one `bigint` a query such as `SELECT count(*) …` returns.
    pub fn count(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> i64 {
        self.client()
            .query_one(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// How many events `store` has in the database.
    pub fn event_rows(&self, store: &str) -> i64 {
        self.count("SELECT count(*) FROM events WHERE store_id = $1", &[&store])
    }

    /// How many events all stores have.
    pub fn all_event_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM events", &[])
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Replaces the database name (the path) of a `postgresql://` URL.
pub fn replace_db_name(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `LOCK TABLE events` held in an open transaction until released (or
/// dropped): every statement of the server on `events` waits meanwhile,
/// visibly in `pg_stat_activity`. That turns a race (a push landing during a
/// pull, during shutdown, before another push) into a fixed order.
pub struct EventsLock {
    client: postgres::Client,
}

impl EventsLock {
    /// Ends the transaction: the waiting statements go on.
    pub fn release(mut self) {
        self.client
            .batch_execute("ROLLBACK")
            .expect("release the lock");
    }
}

impl TestDb {
    /// Takes `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`: reads and writes
    /// of events both wait.
    pub fn lock_events(&self) -> EventsLock {
        let mut client = self.client();
        client
            .batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            .expect("lock events");
        EventsLock { client }
    }

    /// How many statements containing `fragment` wait for a lock in this
    /// database (statements of the server, not of this test).
    pub fn lock_waiters(&self, fragment: &str) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE $1",
            &[&format!("%{fragment}%")],
        )
    }

    /// Waits until `n` statements containing `fragment` wait for a lock in
    /// this database (the server reached them); panics after `within`.
    pub fn wait_for_lock_waiters(&self, fragment: &str, n: i64, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let waiting = self.lock_waiters(fragment);
            if waiting >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{waiting} statement(s) like `{fragment}` wait for the lock after {within:?}, expected {n}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// What the server's push statement contains (see `APPEND_SQL`).
pub const APPEND_SQL_FRAGMENT: &str = "INSERT INTO events";
/// What the server's page read contains (see `READ_SQL`).
pub const READ_SQL_FRAGMENT: &str = "FROM events WHERE store_id";

/// The event log of a test's server: a fresh PostgreSQL database or a
/// fresh SQLite file, with what the end-to-end checks need of either.
pub enum EventLog {
    Postgres(TestDb),
    Sqlite(super::fs::TempDir),
}

/// One stored event, as both backends keep it (`args` as its raw text).
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub seq: i64,
    pub parent: i64,
    pub name: String,
    pub args: Option<String>,
    pub client_id: String,
    pub session_id: String,
}

/// Appends held back until released (see [`EventLog::hold_appends`]).
pub enum AppendHold {
    Postgres(EventsLock),
    /// A transaction holding SQLite's write lock; the server's writer
    /// waits for it (busy timeout 5 s).
    Sqlite(rusqlite::Connection),
}

impl AppendHold {
    pub fn release(self) {
        match self {
            AppendHold::Postgres(l) => l.release(),
            AppendHold::Sqlite(c) => c.execute_batch("ROLLBACK").expect("release"),
        }
    }
}

impl EventLog {
    pub fn postgres(tag: &str) -> EventLog {
        EventLog::Postgres(TestDb::create(tag))
    }

    pub fn sqlite(tag: &str) -> EventLog {
        EventLog::Sqlite(super::fs::TempDir::new(tag))
    }

    /// For the server's `--database-url`.
    pub fn url(&self) -> String {
        match self {
            EventLog::Postgres(db) => db.url.clone(),
            EventLog::Sqlite(dir) => dir.db_url(),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            EventLog::Postgres(_) => "PostgreSQL",
            EventLog::Sqlite(_) => "SQLite",
        }
    }

    fn sqlite_conn(dir: &super::fs::TempDir) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(dir.db()).expect("open the SQLite log");
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }

    /// The store's events by seq_num.
    pub fn rows(&self, store: &str) -> Vec<StoredRow> {
        match self {
            EventLog::Postgres(db) => db
                .client()
                .query(
                    "SELECT seq_num, parent_seq_num, name, args::text, client_id, session_id \
                     FROM events WHERE store_id = $1 ORDER BY seq_num",
                    &[&store],
                )
                .expect("query events")
                .iter()
                .map(|r| StoredRow {
                    seq: r.get(0),
                    parent: r.get(1),
                    name: r.get(2),
                    args: r.get(3),
                    client_id: r.get(4),
                    session_id: r.get(5),
                })
                .collect(),
            EventLog::Sqlite(dir) => {
                let c = Self::sqlite_conn(dir);
                let mut st = c
                    .prepare(
                        "SELECT seq_num, parent_seq_num, name, args, client_id, session_id \
                         FROM events WHERE store_id = ?1 ORDER BY seq_num",
                    )
                    .expect("prepare");
                let rows = st
                    .query_map([store], |r| {
                        Ok(StoredRow {
                            seq: r.get(0)?,
                            parent: r.get(1)?,
                            name: r.get(2)?,
                            args: r.get(3)?,
                            client_id: r.get(4)?,
                            session_id: r.get(5)?,
                        })
                    })
                    .expect("query events");
                rows.map(|r| r.expect("row")).collect()
            }
        }
    }

    /// The backend `TEST_BACKEND` names (`sqlite`; anything else or unset:
    /// PostgreSQL). CI runs the protocol suites once with each.
    pub fn from_env(tag: &str) -> EventLog {
        match std::env::var("TEST_BACKEND").as_deref() {
            Ok("sqlite") => EventLog::sqlite(tag),
            _ => EventLog::postgres(tag),
        }
    }

    /// The PostgreSQL database, for a test about PostgreSQL itself (locks,
    /// connections); such a test does not run with `TEST_BACKEND=sqlite`.
    pub fn pg(&self) -> &TestDb {
        match self {
            EventLog::Postgres(db) => db,
            EventLog::Sqlite(_) => {
                panic!("this test checks PostgreSQL itself; run it without TEST_BACKEND=sqlite")
            }
        }
    }

    /// Every store id, sorted.
    pub fn store_ids(&self) -> Vec<String> {
        match self {
            EventLog::Postgres(db) => db
                .client()
                .query("SELECT store_id FROM stores ORDER BY store_id", &[])
                .expect("stores")
                .iter()
                .map(|r| r.get(0))
                .collect(),
            EventLog::Sqlite(dir) => {
                let c = Self::sqlite_conn(dir);
                let mut st = c
                    .prepare("SELECT store_id FROM stores ORDER BY store_id")
                    .unwrap();
                let ids = st.query_map([], |r| r.get(0)).unwrap();
                ids.map(|r| r.unwrap()).collect()
            }
        }
    }

    /// The store's head and backend id as stored.
    pub fn store_row(&self, store: &str) -> (i64, String) {
        match self {
            EventLog::Postgres(db) => {
                let row = db
                    .client()
                    .query_one(
                        "SELECT head, backend_id FROM stores WHERE store_id = $1",
                        &[&store],
                    )
                    .expect("store row");
                (row.get(0), row.get(1))
            }
            EventLog::Sqlite(dir) => Self::sqlite_conn(dir)
                .query_row(
                    "SELECT head, backend_id FROM stores WHERE store_id = ?1",
                    [store],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("store row"),
        }
    }

    /// Events of one store.
    pub fn event_rows(&self, store: &str) -> i64 {
        self.rows(store).len() as i64
    }

    /// A `SELECT count(*) …` with no parameters, on either backend (both
    /// name their tables `stores` and `events`).
    pub fn count(&self, sql: &str) -> i64 {
        match self {
            EventLog::Postgres(db) => db.count(sql, &[]),
            EventLog::Sqlite(dir) => Self::sqlite_conn(dir)
                .query_row(sql, [], |r| r.get(0))
                .expect("count"),
        }
    }

    /// The store's backend id as stored.
    pub fn backend_id(&self, store: &str) -> String {
        match self {
            EventLog::Postgres(db) => db
                .client()
                .query_one(
                    "SELECT backend_id FROM stores WHERE store_id = $1",
                    &[&store],
                )
                .expect("backend id")
                .get(0),
            EventLog::Sqlite(dir) => Self::sqlite_conn(dir)
                .query_row(
                    "SELECT backend_id FROM stores WHERE store_id = ?1",
                    [store],
                    |r| r.get(0),
                )
                .expect("backend id"),
        }
    }

    /// Events of every store.
    pub fn all_event_rows(&self) -> i64 {
        match self {
            EventLog::Postgres(db) => db.all_event_rows(),
            EventLog::Sqlite(dir) => Self::sqlite_conn(dir)
                .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .expect("count events"),
        }
    }

    /// Holds every append of the server until released: the racing
    /// writers' first pushes then reach the store before either commits.
    pub fn hold_appends(&self) -> AppendHold {
        match self {
            EventLog::Postgres(db) => AppendHold::Postgres(db.lock_events()),
            EventLog::Sqlite(dir) => {
                let c = Self::sqlite_conn(dir);
                c.execute_batch("BEGIN IMMEDIATE")
                    .expect("take the write lock");
                AppendHold::Sqlite(c)
            }
        }
    }

    /// Waits until an append is held. PostgreSQL shows the waiting
    /// statement; SQLite does not, so a pause long enough for a push that
    /// has left the client to reach the server's writer.
    pub fn wait_for_held_append(&self, deadline: std::time::Instant) -> bool {
        match self {
            EventLog::Postgres(db) => {
                while db.lock_waiters(APPEND_SQL_FRAGMENT) == 0 {
                    if std::time::Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                true
            }
            EventLog::Sqlite(_) => {
                std::thread::sleep(std::time::Duration::from_millis(500));
                true
            }
        }
    }
}
