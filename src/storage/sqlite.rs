//! The embedded SQLite storage: one file, nothing to install, one instance.
//!
//! - **One writer.** Every write goes through one connection behind a mutex
//!   (SQLite has one writer per database anyway). Appends are *group
//!   committed*: an appender queues its batch; if nobody is committing, it
//!   commits everything queued in one `BEGIN IMMEDIATE … COMMIT`, each batch
//!   in its own savepoint (so each gets its own `Ok` or `Conflict`), and sets
//!   every result only after the `COMMIT` returned. The others wait meanwhile
//!   and are woken together; one of those still queued commits next.
//! - **Many readers.** Reads use a small pool of read-only connections: in
//!   WAL mode they read the last committed state while the writer writes.
//! - **Durable acks.** `journal_mode=WAL`, `synchronous=FULL`: a commit
//!   returns after the WAL is fsynced, so an acknowledged push survives a
//!   process crash and a power loss (given a disk that honours fsync).
//! - **One instance.** A lock file next to the database (`<db>-lock`, an
//!   exclusive `flock` held for the life of the storage) keeps a second
//!   server off the file; several instances need PostgreSQL. The command
//!   line may share the file with the running server
//!   ([`SqliteOptions::share_when_locked`]).
//! - **Changes from elsewhere.** Every reset, delete and import writes a row
//!   of `changes` in its transaction; [`SqliteStorage`]'s `watch` polls
//!   `PRAGMA data_version` and reads the rows another process wrote.
//! - **The schema** is [`SCHEMA_STEPS`], one step per version, recorded in
//!   `PRAGMA user_version`.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Condvar, Mutex};
use rusqlite::{ffi, Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::{
    AppendError, ImportChain, ImportError, Notice, Storage, StorageError, StoreSummary, Watch,
};
use crate::model::{new_backend_id, Event, StoreMeta, StoredEvent};
use crate::timefmt::{from_micros, to_micros};

/// The schema, one step per version: step `i` takes `PRAGMA user_version`
/// from `i` to `i + 1`. A step is never edited once shipped; a change is a
/// new step at the end.
///
/// - `stores`: head and backend id per store. `store_id` is `TEXT` with
///   SQLite's default `BINARY` collation: compared byte for byte.
/// - `events`: `args` is the client's JSON text as received (`NULL`: the
///   event had no `args`); `created_at` is microseconds since the Unix
///   epoch. `WITHOUT ROWID`: the rows live in the primary key's b-tree, the
///   order both an append and a page of a pull walk.
/// - `meta`: facts about the file (which server created it; the health
///   probe's write).
/// - `changes` (step 2): one row per reset, delete or import, written in its
///   transaction, so that a server learns what the command line did (see
///   `watch`). `instance` is the writer's random tag (its own rows are
///   skipped), `kind` one of [`CHANGE_RESET`], [`CHANGE_DELETE`],
///   [`CHANGE_APPEND`], `value` the new backend id or head, `at`
///   microseconds since the Unix epoch; rows older than an hour are pruned.
///   `AUTOINCREMENT`: an id is never used twice, even after pruning, so a
///   watcher's "rows after the last I saw" never skips one.
pub const SCHEMA_STEPS: &[&str] = &[
    "
CREATE TABLE stores (
    store_id   TEXT    NOT NULL PRIMARY KEY,
    head       INTEGER NOT NULL DEFAULT 0,
    backend_id TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE events (
    store_id       TEXT    NOT NULL,
    seq_num        INTEGER NOT NULL,
    parent_seq_num INTEGER NOT NULL,
    name           TEXT    NOT NULL,
    args           TEXT,
    created_at     INTEGER NOT NULL,
    client_id      TEXT    NOT NULL,
    session_id     TEXT    NOT NULL,
    PRIMARY KEY (store_id, seq_num)
) WITHOUT ROWID;
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
",
    "
CREATE TABLE changes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT    NOT NULL,
    store_id TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    at       INTEGER NOT NULL
);
",
];

/// A `changes` row's kind: the store was reset; `value` is the new backend id.
pub const CHANGE_RESET: &str = "reset";
/// A `changes` row's kind: the store was deleted; `value` is empty.
pub const CHANGE_DELETE: &str = "delete";
/// A `changes` row's kind: events were written (an import); `value` is the new head.
pub const CHANGE_APPEND: &str = "append";

/// How long a `changes` row is kept: a watcher reads it within a poll; one
/// that was away longer resyncs every store anyway.
const CHANGES_KEPT: Duration = Duration::from_secs(3600);

/// How often a watch looks for changes (`PRAGMA data_version`: no I/O).
const WATCH_POLL: Duration = Duration::from_millis(250);

/// The file name inside `DATA_DIR`.
pub const DB_FILE_NAME: &str = "livestore.db";

/// Idle read connections kept open; more are opened when more threads
/// read at once (and closed when they are done).
const IDLE_READERS: usize = 8;

/// How long a connection waits for a lock SQLite holds briefly (WAL
/// recovery, a checkpoint's end) before it reports the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Once the WAL has been checkpointed, it is truncated to this size.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

const APPEND_HEAD_SQL: &str = "UPDATE stores SET head = ?3 WHERE store_id = ?1 AND head = ?2";
const APPEND_EVENT_SQL: &str = "INSERT INTO events \
     (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const HEAD_SQL: &str = "SELECT head FROM stores WHERE store_id = ?1";
const META_SQL: &str = "SELECT head, backend_id FROM stores WHERE store_id = ?1";
/// `LIMIT +?4`, not `LIMIT ?4`: SQLite (3.54) reads a bare bound `LIMIT`
/// into the plan and marks the statement to be prepared again whenever that
/// parameter is bound; the unary plus keeps the value out of the plan. With
/// the read connections' `SQLITE_DBCONFIG_ENABLE_QPSG` (see `open_reader`),
/// a cached read is no longer prepared again on every call.
const READ_SQL: &str = "\
SELECT seq_num, parent_seq_num, name, args, client_id, session_id, created_at
FROM events WHERE store_id = ?1 AND seq_num > ?2 AND seq_num <= ?3
ORDER BY seq_num LIMIT +?4";
/// A store's summary; `length(CAST(x AS BLOB))` counts bytes (`length` of
/// text counts characters).
const SUMMARY_SQL: &str = "\
SELECT s.store_id, s.head, s.backend_id, count(e.seq_num),
       coalesce(sum(length(CAST(e.name AS BLOB)) + coalesce(length(CAST(e.args AS BLOB)), 0)
                    + length(CAST(e.client_id AS BLOB)) + length(CAST(e.session_id AS BLOB))), 0),
       max(e.created_at)
FROM stores s LEFT JOIN events e ON e.store_id = s.store_id";

/// Settings of the SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Commit the appends that queued up while the writer was busy in one
    /// transaction (one fsync for all). Off: one transaction per append.
    pub group_commit: bool,
    /// When another process (a running server) holds the instance lock:
    /// open the file anyway, without the lock and without migrating, if its
    /// schema version is the one this binary knows (the command line). Off
    /// (the server): refuse.
    pub share_when_locked: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            group_commit: true,
            share_when_locked: false,
        }
    }
}

/// A file's identity: the path must keep naming the file the server opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(path: &Path) -> std::io::Result<FileId> {
    let m = std::fs::metadata(path)?;
    Ok(FileId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// The appends waiting for the next commit, and whether someone is
/// committing (then the others wait for `committed`).
#[derive(Default)]
struct Group {
    queue: Vec<Arc<Job>>,
    committing: bool,
}

/// One append waiting for a commit.
struct Job {
    store_id: String,
    expected_head: i64,
    events: Vec<Event>,
    created_at: i64,
    /// Set by whoever committed (or failed) it, before the writer is released.
    result: Mutex<Option<Result<(), AppendError>>>,
}

pub struct SqliteStorage {
    path: PathBuf,
    /// The database file and its WAL as opened: checked before each commit.
    files: [(PathBuf, FileId); 2],
    options: SqliteOptions,
    group: Mutex<Group>,
    /// Commits of appends and appends committed, for [`SqliteStorage::commit_counts`].
    commits: std::sync::atomic::AtomicU64,
    committed_appends: std::sync::atomic::AtomicU64,
    /// Signalled when a group is committed (or failed): its appenders
    /// return, and one of those still queued becomes the next committer.
    committed: Condvar,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Readers checked out of `readers` (for `pool_state`).
    readers_in_use: std::sync::atomic::AtomicU64,
    /// Tags this storage's `changes` rows, so its own watch skips them.
    instance: String,
    /// Dropped last: the lock is released after the connections closed.
    /// `None`: shared with the server that holds it (the command line).
    lock: Option<File>,
}

impl SqliteStorage {
    /// Opens (creating if missing) the database at `path`, whose directory
    /// must exist; takes the instance lock first, then applies the schema.
    ///
    /// With [`SqliteOptions::share_when_locked`] and the lock held by
    /// another process, opens the existing file without the lock and
    /// without migrating, and refuses a schema version other than
    /// [`SCHEMA_STEPS`]'s.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStorage, StorageError> {
        let path = absolute(path)?;
        let lock = match try_instance_lock(&path)? {
            Lock::Held(file) => Some(file),
            Lock::Busy { holder } if options.share_when_locked => {
                // Not created here: the server holds the lock of a file
                // that should be there.
                if !path.exists() {
                    return Err(StorageError(format!(
                        "{} does not exist, but a livestore-sync holds its lock file{holder}",
                        path.display()
                    )));
                }
                None
            }
            Lock::Busy { holder } => {
                return Err(StorageError(format!(
                    "another livestore-sync is using {} (lock file {}{holder}); SQLite serves one \
                     instance — for several instances use PostgreSQL, see README",
                    path.display(),
                    lock_path(&path).display()
                )))
            }
        };
        let writer = open_writer(&path)?;
        if lock.is_some() {
            migrate(&writer, SCHEMA_STEPS, &path)?;
            writer
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('created_by', ?1) ON CONFLICT (key) DO NOTHING",
                    [concat!("livestore-sync ", env!("CARGO_PKG_VERSION"))],
                )
                .map_err(|e| classify(&path, "writing meta", e))?;
        } else {
            let found = user_version(&writer, &path)?;
            let known = SCHEMA_STEPS.len() as i64;
            if found != known {
                return Err(StorageError(format!(
                    "{} has schema version {found} and this livestore-sync knows {known}, but a \
                     running livestore-sync holds its lock ({}): stop the server to migrate, or \
                     use the livestore-sync that matches the file",
                    path.display(),
                    lock_path(&path).display()
                )));
            }
        }
        let wal = wal_path(&path);
        let files = [
            (
                path.clone(),
                file_id(&path).map_err(|e| io_err(&path, "stat", e))?,
            ),
            (
                wal.clone(),
                file_id(&wal).map_err(|e| io_err(&wal, "stat", e))?,
            ),
        ];
        let storage = SqliteStorage {
            files,
            options,
            group: Mutex::new(Group::default()),
            commits: Default::default(),
            committed_appends: Default::default(),
            committed: Condvar::new(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            readers_in_use: Default::default(),
            instance: new_backend_id(),
            path,
            lock,
        };
        // Fail at start, not at the first pull, if readers cannot open.
        let r = storage.reader()?;
        drop(r);
        Ok(storage)
    }

    /// The database file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this storage holds the instance lock (false: it shares the
    /// file with the running server that does).
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }

    /// The settings in force on the writer and on a reader, as `(pragma,
    /// value)`: a diagnostic (the durability promises depend on them).
    pub fn pragmas(&self) -> Result<Vec<(String, String)>, StorageError> {
        let mut out = Vec::new();
        let get = |c: &Connection, who: &str, p: &str, out: &mut Vec<(String, String)>| {
            let v = c
                .pragma_query_value(None, p, |r| {
                    r.get::<_, rusqlite::types::Value>(0).map(|v| match v {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                })
                .map_err(|e| classify(&self.path, "reading pragmas", e))?;
            out.push((format!("{who}.{p}"), v));
            Ok::<_, StorageError>(())
        };
        {
            let w = self.writer.lock();
            for p in ["journal_mode", "synchronous", "busy_timeout", "query_only"] {
                get(&w, "writer", p, &mut out)?;
            }
        }
        let r = self.reader()?;
        for p in ["journal_mode", "synchronous", "busy_timeout"] {
            get(r.conn(), "reader", p, &mut out)?;
        }
        let ro = r
            .conn()
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| classify(&self.path, "reading pragmas", e))?;
        out.push(("reader.readonly".into(), (ro as i32).to_string()));
        Ok(out)
    }

    /// A read connection from the pool (opened when none is idle).
    fn reader(&self) -> Result<Reader<'_>, StorageError> {
        let idle = self.readers.lock().pop();
        let conn = match idle {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        self.readers_in_use
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Reader {
            storage: self,
            conn: Some(conn),
        })
    }

    /// Refuses to write when the path no longer names the database file (or
    /// its WAL) the server opened: SQLite in WAL mode would go on committing
    /// into a deleted or replaced file, and every later ack would be a lie.
    fn check_files(&self) -> Result<(), StorageError> {
        for (p, id) in &self.files {
            match file_id(p) {
                Ok(now) if now == *id => {}
                Ok(_) => {
                    return Err(StorageError(format!(
                        "database file {} was replaced while in use; restart livestore-sync",
                        p.display()
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StorageError(format!(
                        "database file {} was deleted or moved while in use; restart livestore-sync",
                        p.display()
                    )))
                }
                Err(e) => return Err(io_err(p, "stat", e)),
            }
        }
        Ok(())
    }

    /// Runs `jobs` in one transaction (each in a savepoint) and sets every
    /// job's result, only after the `COMMIT` has returned.
    fn commit_group(&self, w: &Connection, jobs: &[Arc<Job>]) {
        let set_all = |jobs: &[Arc<Job>], e: &StorageError| {
            for j in jobs {
                *j.result.lock() = Some(Err(AppendError::Storage(StorageError(e.0.clone()))));
            }
        };
        if let Err(e) = self.check_files() {
            return set_all(jobs, &e);
        }
        if let Err(e) = w.execute_batch("BEGIN IMMEDIATE") {
            return set_all(jobs, &classify(&self.path, "appending events", e));
        }
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let r = append_in_savepoint(w, job, &self.path);
            if w.is_autocommit() {
                // SQLite ended the whole transaction on an error (disk
                // full, I/O): nothing of this group is stored.
                let e = match r {
                    Err(AppendError::Storage(e)) => e,
                    _ => StorageError(format!(
                        "appending events: the transaction on {} was rolled back",
                        self.path.display()
                    )),
                };
                return set_all(jobs, &e);
            }
            results.push(r);
        }
        if let Err(e) = w.execute_batch("COMMIT") {
            let e = classify(&self.path, "committing events", e);
            if !w.is_autocommit() {
                let _ = w.execute_batch("ROLLBACK");
            }
            // Not stored: nobody is acknowledged, and a conflict's head was
            // read inside the transaction that just failed.
            return set_all(jobs, &e);
        }
        use std::sync::atomic::Ordering::Relaxed;
        self.commits.fetch_add(1, Relaxed);
        self.committed_appends.fetch_add(jobs.len() as u64, Relaxed);
        for (job, r) in jobs.iter().zip(results) {
            *job.result.lock() = Some(r);
        }
    }

    /// How many append transactions were committed, and how many appends
    /// (each with its own result) they held: a diagnostic of group commit.
    pub fn commit_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commits.load(Relaxed),
            self.committed_appends.load(Relaxed),
        )
    }

    /// One write transaction on the writer connection, outside the group.
    fn write<T>(
        &self,
        context: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        self.check_files()?;
        let w = self.writer.lock();
        w.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| classify(&self.path, context, e))?;
        let out = f(&w).and_then(|v| w.execute_batch("COMMIT").map(|()| v));
        out.map_err(|e| {
            if !w.is_autocommit() {
                let _ = w.execute_batch("ROLLBACK");
            }
            classify(&self.path, context, e)
        })
    }
}

/// The committer's turn: when it ends (also by a panic), the next one may
/// commit and every waiting appender wakes up; all at once, not one after
/// another. A panic mid-commit must not leave the flag set (every later
/// push would wait forever) nor the writer inside a transaction.
struct Committing<'a> {
    storage: &'a SqliteStorage,
    jobs: &'a [Arc<Job>],
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let w = self.storage.writer.lock();
            if !w.is_autocommit() {
                let _ = w.execute_batch("ROLLBACK");
            }
            for j in self.jobs {
                let mut r = j.result.lock();
                if r.is_none() {
                    *r = Some(Err(AppendError::Storage(StorageError(
                        "appending events: the commit panicked (a bug; see the log)".into(),
                    ))));
                }
            }
        }
        self.storage.group.lock().committing = false;
        self.storage.committed.notify_all();
    }
}

/// A pooled read connection; back to the pool on drop unless it failed.
struct Reader<'a> {
    storage: &'a SqliteStorage,
    conn: Option<Connection>,
}

impl Reader<'_> {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }

    /// Drops the connection instead of pooling it (after an error).
    fn discard(mut self) {
        self.conn.take();
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.storage
            .readers_in_use
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(c) = self.conn.take() {
            let mut idle = self.storage.readers.lock();
            if idle.len() < IDLE_READERS {
                idle.push(c);
            }
        }
    }
}

fn append_in_savepoint(w: &Connection, job: &Job, path: &Path) -> Result<(), AppendError> {
    let Some(last) = job.events.last() else {
        return Ok(());
    };
    let storage = |e: rusqlite::Error| AppendError::Storage(classify(path, "appending events", e));
    w.execute_batch("SAVEPOINT append").map_err(storage)?;
    let outcome = (|| {
        let moved = w
            .prepare_cached(APPEND_HEAD_SQL)?
            .execute(rusqlite::params![
                job.store_id,
                job.expected_head,
                last.seq_num
            ])?;
        if moved != 1 {
            return Ok(false);
        }
        let mut insert = w.prepare_cached(APPEND_EVENT_SQL)?;
        for e in &job.events {
            insert.execute(rusqlite::params![
                job.store_id,
                e.seq_num,
                e.parent_seq_num,
                e.name,
                e.args.as_deref(),
                job.created_at,
                e.client_id,
                e.session_id,
            ])?;
        }
        Ok(true)
    })();
    match outcome {
        Ok(true) => w.execute_batch("RELEASE append").map_err(storage),
        // The head moved, or a seq_num is taken (the primary key): nothing
        // of this batch stays, the others of the group are not touched.
        Ok(false)
        | Err(rusqlite::Error::SqliteFailure(
            ffi::Error {
                code: ErrorCode::ConstraintViolation,
                ..
            },
            _,
        )) => {
            w.execute_batch("ROLLBACK TO append; RELEASE append")
                .map_err(storage)?;
            let head = w
                .prepare_cached(HEAD_SQL)
                .and_then(|mut s| s.query_row([&job.store_id], |r| r.get(0)).optional())
                .map_err(storage)?
                .unwrap_or(0);
            Err(AppendError::Conflict { head })
        }
        Err(e) => {
            if !w.is_autocommit() {
                let _ = w.execute_batch("ROLLBACK TO append; RELEASE append");
            }
            Err(storage(e))
        }
    }
}

impl Storage for SqliteStorage {
    fn open_store(&self, store_id: &str) -> Result<StoreMeta, StorageError> {
        let meta = |c: &Connection| {
            c.prepare_cached(META_SQL)?
                .query_row([store_id], |r| {
                    Ok(StoreMeta {
                        head: r.get(0)?,
                        backend_id: r.get(1)?,
                    })
                })
                .optional()
        };
        // Known stores are a read: no writer needed.
        let r = self.reader()?;
        match meta(r.conn()) {
            Ok(Some(m)) => return Ok(m),
            Ok(None) => drop(r),
            Err(e) => {
                r.discard();
                return Err(classify(&self.path, "opening store", e));
            }
        }
        let fresh = new_backend_id();
        let now = to_micros(SystemTime::now());
        self.write("opening store", |w| {
            w.execute(
                "INSERT INTO stores (store_id, head, backend_id, created_at) VALUES (?1, 0, ?2, ?3)
                 ON CONFLICT (store_id) DO NOTHING",
                rusqlite::params![store_id, fresh, now],
            )?;
            meta(w)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
        })
    }

    fn append(
        &self,
        store_id: &str,
        expected_head: i64,
        events: &[Event],
        created_at: SystemTime,
    ) -> Result<(), AppendError> {
        if events.is_empty() {
            return Ok(());
        }
        let job = Arc::new(Job {
            store_id: store_id.to_string(),
            expected_head,
            events: events.to_vec(),
            created_at: to_micros(created_at),
            result: Mutex::new(None),
        });
        if !self.options.group_commit {
            let w = self.writer.lock();
            self.commit_group(&w, std::slice::from_ref(&job));
        } else {
            let mut g = self.group.lock();
            g.queue.push(job.clone());
            // Wait while someone else commits; when nobody does and this
            // job is still queued, commit everything queued.
            while job.result.lock().is_none() {
                if g.committing {
                    self.committed.wait(&mut g);
                    continue;
                }
                g.committing = true;
                let jobs = std::mem::take(&mut g.queue);
                drop(g);
                let committing = Committing {
                    storage: self,
                    jobs: &jobs,
                };
                self.commit_group(&self.writer.lock(), &jobs);
                drop(committing);
                g = self.group.lock();
            }
        }
        let result = job.result.lock().take();
        result.expect("the committer sets every result before it lets go of the writer")
    }

    fn read(
        &self,
        store_id: &str,
        after: i64,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        if up_to <= after || limit == 0 {
            return Ok(Vec::new());
        }
        let r = self.reader()?;
        let rows = (|| {
            let mut s = r.conn().prepare_cached(READ_SQL)?;
            let rows = s.query_map(
                rusqlite::params![store_id, after, up_to, limit as i64],
                |row| {
                    Ok(StoredEvent {
                        event: Event {
                            seq_num: row.get(0)?,
                            parent_seq_num: row.get(1)?,
                            name: row.get(2)?,
                            args: row.get::<_, Option<String>>(3)?.map(String::into_boxed_str),
                            client_id: row.get(4)?,
                            session_id: row.get(5)?,
                        },
                        created_at: from_micros(row.get(6)?),
                    })
                },
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        rows.map_err(|e| {
            let e = classify(&self.path, "reading events", e);
            r.discard();
            e
        })
    }

    fn reset(&self, store_id: &str, new_backend_id: &str) -> Result<(), StorageError> {
        let now = to_micros(SystemTime::now());
        self.write("resetting store", |w| {
            w.execute("DELETE FROM events WHERE store_id = ?1", [store_id])?;
            w.execute(
                "INSERT INTO stores (store_id, head, backend_id, created_at) VALUES (?1, 0, ?2, ?3)
                 ON CONFLICT (store_id) DO UPDATE SET head = 0, backend_id = excluded.backend_id",
                rusqlite::params![store_id, new_backend_id, now],
            )?;
            record_change(w, &self.instance, store_id, CHANGE_RESET, new_backend_id)
        })
    }

    fn list_stores(&self) -> Result<Vec<StoreSummary>, StorageError> {
        self.summaries(
            &format!("{SUMMARY_SQL} GROUP BY s.store_id ORDER BY s.store_id"),
            None,
        )
    }

    fn store_summary(&self, store_id: &str) -> Result<Option<StoreSummary>, StorageError> {
        let mut found = self.summaries(
            &format!("{SUMMARY_SQL} WHERE s.store_id = ?1 GROUP BY s.store_id"),
            Some(store_id),
        )?;
        Ok(found.pop())
    }

    fn delete_store(&self, store_id: &str) -> Result<bool, StorageError> {
        self.write("deleting store", |w| {
            // The events go with their row in one transaction; no append
            // of this file can come between (one writer at a time).
            let existed = w.execute("DELETE FROM stores WHERE store_id = ?1", [store_id])? > 0;
            w.execute("DELETE FROM events WHERE store_id = ?1", [store_id])?;
            if existed {
                record_change(w, &self.instance, store_id, CHANGE_DELETE, "")?;
            }
            Ok(existed)
        })
    }

    fn import(
        &self,
        store_id: &str,
        backend_id: Option<&str>,
        replace: bool,
        events: &mut dyn Iterator<Item = Result<StoredEvent, String>>,
    ) -> Result<u64, ImportError> {
        const CONTEXT: &str = "importing a store";
        self.check_files()?;
        let w = self.writer.lock();
        let sql = |e| ImportError::Storage(classify(&self.path, CONTEXT, e));
        w.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let written = self
            .import_in(&w, store_id, backend_id, replace, events)
            .and_then(|n| w.execute_batch("COMMIT").map(|()| n).map_err(sql));
        if written.is_err() && !w.is_autocommit() {
            let _ = w.execute_batch("ROLLBACK");
        }
        written
    }

    fn schema_version(&self) -> Result<i64, StorageError> {
        let r = self.reader()?;
        user_version(r.conn(), &self.path)
    }

    fn pool_state(&self) -> Option<super::PoolState> {
        Some(super::PoolState {
            in_use: self
                .readers_in_use
                .load(std::sync::atomic::Ordering::Relaxed),
            idle: self.readers.lock().len() as u64,
            waiting: self.group.lock().queue.len() as u64,
            max: 0,
        })
    }

    /// Polls `PRAGMA data_version` on a read connection of its own every
    /// 250 ms; when another connection committed, reads the `changes` rows
    /// past the last one seen and delivers those of other processes. Down
    /// (for `/health`) while it cannot read; back up, it resyncs.
    fn watch(&self, deliver: Box<dyn Fn(Notice) + Send + Sync>) -> Option<Watch> {
        let watch = Watch::default();
        let watcher = Watcher {
            path: self.path.clone(),
            instance: self.instance.clone(),
            watch: watch.clone(),
            deliver,
        };
        // Positioned before returning: every change committed from here
        // on is delivered.
        let cursor = match Cursor::open(&self.path) {
            Ok(c) => {
                watch.set_up(true);
                Some(c)
            }
            Err(e) => {
                log::error!(
                    "watching {} for changes: {e}; retrying",
                    self.path.display()
                );
                None
            }
        };
        let spawned = std::thread::Builder::new()
            .name("sqlite-watch".into())
            .spawn(move || watcher.run(cursor));
        if let Err(e) = spawned {
            log::error!("cannot start the SQLite watch thread: {e}");
        }
        Some(watch)
    }

    /// The file is still where it was opened, a reader reads, and the
    /// writer commits a one-row write (so a read-only or failing disk
    /// shows here, not only in refused pushes).
    fn health(&self) -> Result<(), StorageError> {
        self.check_files()?;
        let r = self.reader()?;
        if let Err(e) = r.conn().query_row(
            "SELECT count(*) FROM (SELECT 1 FROM stores LIMIT 1)",
            [],
            |r| r.get::<_, i64>(0),
        ) {
            r.discard();
            return Err(classify(&self.path, "health check (read)", e));
        }
        drop(r);
        let now = to_micros(SystemTime::now()).to_string();
        self.write("health check (write)", |w| {
            w.execute(
                "INSERT INTO meta (key, value) VALUES ('health_probe', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [now],
            )
            .map(drop)
        })
    }
}

impl SqliteStorage {
    /// Summaries by `sql` (a [`SUMMARY_SQL`] with `?1` the store id, if given).
    fn summaries(
        &self,
        sql: &str,
        store_id: Option<&str>,
    ) -> Result<Vec<StoreSummary>, StorageError> {
        let r = self.reader()?;
        let rows = (|| {
            let mut s = r.conn().prepare(sql)?;
            let map = |row: &rusqlite::Row<'_>| {
                Ok(StoreSummary {
                    store_id: row.get(0)?,
                    head: row.get(1)?,
                    backend_id: row.get(2)?,
                    events: row.get(3)?,
                    bytes: row.get(4)?,
                    last_write: row.get::<_, Option<i64>>(5)?.map(from_micros),
                })
            };
            let rows: rusqlite::Result<Vec<StoreSummary>> = match store_id {
                Some(id) => s.query_map([id], map)?.collect(),
                None => s.query_map([], map)?.collect(),
            };
            rows
        })();
        rows.map_err(|e: rusqlite::Error| {
            let e = classify(&self.path, "summarising stores", e);
            r.discard();
            e
        })
    }

    /// The body of `import`, inside the transaction the caller commits or
    /// rolls back.
    fn import_in(
        &self,
        w: &Connection,
        store_id: &str,
        backend_id: Option<&str>,
        replace: bool,
        events: &mut dyn Iterator<Item = Result<StoredEvent, String>>,
    ) -> Result<u64, ImportError> {
        let sql = |e| ImportError::Storage(classify(&self.path, "importing a store", e));
        let existing: Option<(i64, String)> = w
            .query_row(META_SQL, [store_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sql)?;
        let has_events: bool = w
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE store_id = ?1)",
                [store_id],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let head = existing.as_ref().map_or(0, |e| e.0);
        if (head > 0 || has_events) && !replace {
            return Err(ImportError::NotEmpty { head });
        }
        if replace {
            w.execute("DELETE FROM events WHERE store_id = ?1", [store_id])
                .map_err(sql)?;
        }
        let mut chain = ImportChain::default();
        {
            let mut insert = w.prepare_cached(APPEND_EVENT_SQL).map_err(sql)?;
            for item in events {
                let stored = item.map_err(ImportError::Source)?;
                chain.next(&stored.event)?;
                let e = &stored.event;
                insert
                    .execute(rusqlite::params![
                        store_id,
                        e.seq_num,
                        e.parent_seq_num,
                        e.name,
                        e.args.as_deref(),
                        to_micros(stored.created_at),
                        e.client_id,
                        e.session_id,
                    ])
                    .map_err(sql)?;
            }
        }
        let old_backend_id = existing.map(|e| e.1);
        let backend_id = match (backend_id, &old_backend_id) {
            (Some(given), _) => given.to_string(),
            (None, Some(old)) if !replace => old.clone(),
            _ => new_backend_id(),
        };
        w.execute(
            "INSERT INTO stores (store_id, head, backend_id, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (store_id) DO UPDATE SET head = excluded.head, backend_id = excluded.backend_id",
            rusqlite::params![store_id, chain.head(), backend_id, to_micros(SystemTime::now())],
        )
        .map_err(sql)?;
        if replace || old_backend_id.as_deref() != Some(backend_id.as_str()) {
            record_change(w, &self.instance, store_id, CHANGE_RESET, &backend_id).map_err(sql)?;
        }
        if chain.head() > 0 {
            record_change(
                w,
                &self.instance,
                store_id,
                CHANGE_APPEND,
                &chain.head().to_string(),
            )
            .map_err(sql)?;
        }
        Ok(chain.count())
    }
}

/// Writes a `changes` row (in the caller's transaction) and prunes the
/// rows older than [`CHANGES_KEPT`]; the new row is the newest, so it stays.
fn record_change(
    w: &Connection,
    instance: &str,
    store_id: &str,
    kind: &str,
    value: &str,
) -> rusqlite::Result<()> {
    let now = to_micros(SystemTime::now());
    w.prepare_cached(
        "INSERT INTO changes (instance, store_id, kind, value, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(rusqlite::params![instance, store_id, kind, value, now])?;
    w.prepare_cached("DELETE FROM changes WHERE at < ?1")?
        .execute([now - CHANGES_KEPT.as_micros() as i64])?;
    Ok(())
}

/// A `changes` row as a notice; `None` for a kind this binary does not know.
fn change_notice(kind: &str, store_id: String, value: String) -> Option<Notice> {
    match kind {
        CHANGE_RESET => Some(Notice::Reset {
            store_id,
            backend_id: value,
        }),
        CHANGE_DELETE => Some(Notice::Deleted { store_id }),
        CHANGE_APPEND => Some(Notice::Appended {
            store_id,
            head: value.parse().ok()?,
        }),
        _ => None,
    }
}

/// Where a watch is: its read connection, the `data_version` it last saw,
/// and the last `changes` row it read.
struct Cursor {
    conn: Connection,
    data_version: i64,
    last: i64,
}

impl Cursor {
    /// At the current end of `changes`.
    fn open(path: &Path) -> Result<Cursor, StorageError> {
        let conn = open_reader(path)?;
        let e = |e| classify(path, "watching for changes", e);
        // data_version first: a commit after it shows at the next poll.
        let data_version = conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(e)?;
        let last = conn
            .query_row("SELECT coalesce(max(id), 0) FROM changes", [], |r| r.get(0))
            .map_err(e)?;
        Ok(Cursor {
            conn,
            data_version,
            last,
        })
    }

    /// The rows other connections committed since the last call: (instance,
    /// store id, kind, value) in order. Reads `changes` only when
    /// `data_version` moved.
    fn poll(&mut self, path: &Path) -> Result<Vec<(String, String, String, String)>, StorageError> {
        let e = |e| classify(path, "watching for changes", e);
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(e)?;
        if version == self.data_version {
            return Ok(Vec::new());
        }
        self.data_version = version;
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT id, instance, store_id, kind, value FROM changes WHERE id > ?1 ORDER BY id",
            )
            .map_err(e)?;
        let rows = s
            .query_map([self.last], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(e)?;
        if let Some((id, _)) = rows.last() {
            self.last = *id;
        }
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    }
}

/// The watch's thread: polls, delivers, and after a failure reopens with
/// backoff and resyncs (what it missed meanwhile is not read row by row).
struct Watcher {
    path: PathBuf,
    instance: String,
    watch: Watch,
    deliver: Box<dyn Fn(Notice) + Send + Sync>,
}

impl Watcher {
    fn run(self, mut cursor: Option<Cursor>) {
        let mut backoff = WATCH_POLL;
        loop {
            // In steps of one poll, so a stop is seen within one.
            let mut pause = if cursor.is_some() {
                WATCH_POLL
            } else {
                backoff
            };
            while !self.watch.is_stopped() && !pause.is_zero() {
                let step = pause.min(WATCH_POLL);
                std::thread::sleep(step);
                pause -= step;
            }
            if self.watch.is_stopped() {
                return;
            }
            let c = match cursor.as_mut() {
                Some(c) => c,
                None => match Cursor::open(&self.path) {
                    Ok(c) => {
                        log::info!("watching {} again; resyncing", self.path.display());
                        backoff = WATCH_POLL;
                        self.watch.set_up(true);
                        (self.deliver)(Notice::Resync);
                        cursor.insert(c)
                    }
                    Err(e) => {
                        if self.watch.is_up() {
                            log::error!("changes from other processes: {e}; retrying");
                        }
                        self.watch.set_up(false);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            match c.poll(&self.path) {
                Ok(rows) => {
                    for (instance, store_id, kind, value) in rows {
                        if instance == self.instance {
                            continue;
                        }
                        if let Some(notice) = change_notice(&kind, store_id, value) {
                            (self.deliver)(notice);
                        }
                    }
                }
                Err(e) => {
                    log::error!("changes from other processes: {e}; retrying");
                    self.watch.set_up(false);
                    cursor = None;
                }
            }
        }
    }
}

fn user_version(c: &Connection, path: &Path) -> Result<i64, StorageError> {
    c.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| classify(path, "reading the schema version", e))
}

/// Applies the steps of `steps` the database at `conn` lacks, each in its
/// own transaction with its `user_version`. Refuses a database whose
/// version is newer than `steps` knows (written by a newer server).
/// Public for the tests, which migrate over steps of their own.
pub fn migrate(conn: &Connection, steps: &[&str], path: &Path) -> Result<(), StorageError> {
    let known = steps.len() as i64;
    let found = user_version(conn, path)?;
    if found > known {
        return Err(StorageError(format!(
            "{} has schema version {found}, newer than this livestore-sync knows ({known}): \
             it was written by a newer version; run that one (or newer). See README, \"Upgrading\"",
            path.display()
        )));
    }
    for (i, step) in steps.iter().enumerate().skip(found as usize) {
        let to = i as i64 + 1;
        let context = format!("applying schema step {to}");
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| classify(path, &context, e))?;
        // Nothing else migrates meanwhile: the instance lock is held.
        let applied = conn
            .execute_batch(step)
            .and_then(|()| conn.pragma_update(None, "user_version", to))
            .and_then(|()| conn.execute_batch("COMMIT"));
        if let Err(e) = applied {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(classify(path, &context, e));
        }
    }
    Ok(())
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// The lock file's path for database `db`: `<db>-lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-lock");
    PathBuf::from(s)
}

/// `path` made absolute with its directory resolved (symlinks, `..`), so
/// one file has one lock file however it is named.
fn absolute(path: &Path) -> Result<PathBuf, StorageError> {
    let name = path
        .file_name()
        .ok_or_else(|| StorageError(format!("{} is not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| io_err(dir, "database directory", e))?;
    Ok(dir.join(name))
}

/// The instance lock, as [`try_instance_lock`] found it.
enum Lock {
    /// Taken: held until the file is closed.
    Held(File),
    /// Another process holds it; `holder` is `", held by process N"` when
    /// the file says so (for messages), else empty.
    Busy { holder: String },
}

/// Takes the exclusive lock on `<db>-lock` (creating it), or says who
/// holds it.
fn try_instance_lock(db: &Path) -> Result<Lock, StorageError> {
    let lock_path = lock_path(db);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io_err(&lock_path, "cannot create the lock file", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map(|pid| format!(", held by process {pid}"))
                .unwrap_or_default();
            return Ok(Lock::Busy { holder });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(io_err(&lock_path, "cannot lock the lock file", e))
        }
    }
    // Who holds it, for the message above (informative only: the lock is
    // the flock, not the content).
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(Lock::Held(file))
}

fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(path, "opening the database", e))?;
    // SQLite opens a file it may not write read-only without saying so.
    if c.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(StorageError(format!(
            "database file is read-only: {} (livestore-sync needs to write it and its directory: \
             check the owner and mode, and that the filesystem is mounted read-write). \
             See README, \"Where the events live\"",
            path.display()
        )));
    }
    c.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, "setting busy_timeout", e))?;
    let mode: String = c
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| classify(path, "setting journal_mode=WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError(format!(
            "{}: SQLite could not switch to WAL mode (journal_mode is {mode}); \
             WAL needs a local filesystem with shared memory (not NFS)",
            path.display()
        )));
    }
    c.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT};"
    ))
    .map_err(|e| classify(path, "setting synchronous=FULL", e))?;
    Ok(c)
}

fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(path, "opening a read connection", e))?;
    c.busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| c.execute_batch("PRAGMA synchronous = FULL"))
        // Plans that do not change with the bound values: without it every
        // read of a cached statement was prepared again on its first step
        // (`sqlite3Reprepare`, about 86,000 instructions, two thirds of a
        // pull's read under callgrind), since a new binding of a range or
        // `LIMIT` parameter expires the plan. These reads are primary-key
        // range scans whatever the values.
        .and_then(|()| {
            c.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
        })
        .map_err(|e| classify(path, "opening a read connection", e))?;
    Ok(c)
}

fn io_err(path: &Path, context: &str, e: std::io::Error) -> StorageError {
    let hint = match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            format!(". {}", super::DATA_DIR_HINT)
        }
        std::io::ErrorKind::StorageFull => " (disk full)".to_string(),
        _ => String::new(),
    };
    StorageError(format!(
        "{context}: {}: {}{hint}",
        path.display(),
        super::io_cause(&e)
    ))
}

/// A SQLite error as an operator should read it: what is wrong, with which
/// file, then SQLite's own words.
pub fn classify(path: &Path, context: &str, e: rusqlite::Error) -> StorageError {
    let p = path.display();
    let Some(ffi::Error {
        code,
        extended_code,
    }) = e.sqlite_error().copied()
    else {
        return StorageError(format!("{context}: {e} ({p})"));
    };
    let what = match code {
        ErrorCode::DiskFull => format!("disk full: cannot write {p}"),
        ErrorCode::ReadOnly if extended_code == ffi::SQLITE_READONLY_DBMOVED => {
            format!("database file {p} was moved or deleted while in use")
        }
        ErrorCode::ReadOnly if extended_code == ffi::SQLITE_READONLY_DIRECTORY => {
            format!("database directory of {p} is read-only")
        }
        ErrorCode::ReadOnly => format!("database file is read-only: {p}"),
        ErrorCode::SystemIoFailure => format!("disk I/O error on {p}"),
        ErrorCode::PermissionDenied => format!("permission denied on {p}"),
        ErrorCode::CannotOpen => format!("cannot open database file {p}"),
        ErrorCode::DatabaseCorrupt => format!("database file {p} is corrupt"),
        ErrorCode::NotADatabase => format!("{p} is not a SQLite database"),
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            format!("database {p} is locked by another connection")
        }
        _ => return StorageError(format!("{context}: {e} ({p})")),
    };
    StorageError(format!("{what} ({context}: {e})"))
}
