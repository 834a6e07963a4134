//! Pull pages' storage reads, run on a few shared threads instead of the
//! connection's own.
//!
//! A thread's stack costs what it ever touched, for as long as the thread
//! lives, and an idle WebSocket's reader thread lives for the whole
//! connection. The deepest point of that stack was its first pull's read:
//! the PostgreSQL client's `block_on` frames, or SQLite's virtual machine
//! and, on a fresh read connection, its parser. Read here, those frames
//! (and, on PostgreSQL, the stored head each pull reads first) are
//! touched on a handful of threads; the reader waits for the rows
//! (one hand-off each way, a few microseconds against a read of a page).
//!
//! Workers start on demand up to [`MAX_WORKERS`]; a read waits for a free
//! one beyond that (the storage's own connection pool bounds concurrent
//! reads anyway). If no worker can be started (the OS refuses a thread),
//! the read runs on the caller's thread, as before. A panic in the storage
//! goes on unwinding on the caller's thread, so it ends that connection as
//! it would have.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};

use crate::model::{StoreMeta, StoredEvent};
use crate::storage::{Storage, StorageError};

/// Threads reading at most at once.
pub const MAX_WORKERS: usize = 8;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Sender<Job>,
    queue: Receiver<Job>,
    workers: AtomicUsize,
    idle: AtomicUsize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = crossbeam_channel::unbounded();
        Pool {
            jobs,
            queue,
            workers: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        }
    })
}

impl Pool {
    /// Makes sure a worker will take the next job: true if one is idle or
    /// was started, or all are busy (the job waits its turn).
    fn worker_for_next(&'static self) -> bool {
        if self.idle.load(Ordering::SeqCst) > 0 {
            return true;
        }
        let n = self.workers.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_WORKERS {
            self.workers.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        let queue = self.queue.clone();
        let started = std::thread::Builder::new()
            .name("storage-read".into())
            .spawn(move || loop {
                self.idle.fetch_add(1, Ordering::SeqCst);
                let job = queue.recv();
                self.idle.fetch_sub(1, Ordering::SeqCst);
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        if started.is_err() {
            self.workers.fetch_sub(1, Ordering::SeqCst);
            return self.workers.load(Ordering::SeqCst) > 0;
        }
        true
    }
}

/// [`Storage::read`] on a shared reading thread; the caller waits for it.
pub fn read(
    storage: &Arc<dyn Storage>,
    store_id: &str,
    after: i64,
    up_to: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StorageError> {
    let store_id = store_id.to_string();
    run(storage, move |s| s.read(&store_id, after, up_to, limit))
}

/// [`Storage::open_store`] (a store's stored head) on a shared reading thread.
pub fn open_store(storage: &Arc<dyn Storage>, store_id: &str) -> Result<StoreMeta, StorageError> {
    let store_id = store_id.to_string();
    run(storage, move |s| s.open_store(&store_id))
}

/// Runs `f` on a shared reading thread and waits for its answer.
fn run<T: Send + 'static>(
    storage: &Arc<dyn Storage>,
    f: impl FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let pool = pool();
    if !pool.worker_for_next() {
        return f(&**storage);
    }
    let (done, answer) = crossbeam_channel::bounded::<std::thread::Result<_>>(1);
    let storage = storage.clone();
    let job: Job = Box::new(move || {
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| f(&*storage)));
        let _ = done.send(answer);
    });
    if pool.jobs.send(job).is_err() {
        unreachable!("the pool keeps its own receiver");
    }
    match answer.recv() {
        Ok(Ok(answer)) => answer,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(StorageError("the storage read was lost".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;
    use crate::sync::testing::MemStorage;
    use std::time::SystemTime;

    fn event(seq_num: i64) -> Event {
        Event {
            seq_num,
            parent_seq_num: seq_num - 1,
            name: "e".into(),
            args: Some("{}".into()),
            client_id: "c".into(),
            session_id: "s".into(),
        }
    }

    #[test]
    fn reads_on_a_pool_thread_what_the_storage_has() {
        let st = MemStorage::default();
        st.open_store("s").unwrap();
        let events: Vec<Event> = (1..=5).map(event).collect();
        st.append("s", 0, &events, SystemTime::now()).unwrap();
        let st: Arc<dyn Storage> = Arc::new(st);
        let rows = read(&st, "s", 1, 4, 10).unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.event.seq_num).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        // Many at once: each caller gets its own answer.
        std::thread::scope(|s| {
            for after in 0..20 {
                let st = st.clone();
                s.spawn(move || {
                    let rows = read(&st, "s", after % 5, 5, 10).unwrap();
                    assert_eq!(rows.len() as i64, 5 - after % 5);
                });
            }
        });
        assert!(pool().workers.load(Ordering::SeqCst) <= MAX_WORKERS);
    }
}
