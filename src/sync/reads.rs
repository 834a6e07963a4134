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
//! Workers start on demand up to [`MAX_WORKERS`] and end after
//! [`IDLE_EXIT`] without work; a read waits for a free one beyond that (the storage's own connection pool bounds concurrent
//! reads anyway). If no worker can be started (the OS refuses a thread),
//! the read runs on the caller's thread, as before. A panic in the storage
//! goes on unwinding on the caller's thread, so it ends that connection as
//! it would have.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::model::{StoreMeta, StoredEvent};
use crate::storage::{Storage, StorageError};

/// Threads reading at most at once.
pub const MAX_WORKERS: usize = 8;
/// A worker with nothing to read for this long ends (a later read starts
/// another): an idle server keeps no extra threads.
const IDLE_EXIT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    workers: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

impl Pool {
    /// Queues `job` for a worker, starting one if none is idle and fewer
    /// than [`MAX_WORKERS`] run. Gives the job back if no worker runs and
    /// none can be started.
    fn submit(&'static self, job: Job) -> Result<(), Job> {
        let mut st = self.state.lock();
        if st.idle == 0 && st.workers < MAX_WORKERS {
            let started = std::thread::Builder::new()
                .name("storage-read".into())
                .spawn(move || self.work());
            match started {
                Ok(_) => st.workers += 1,
                Err(_) if st.workers == 0 => return Err(job),
                Err(_) => {}
            }
        }
        st.jobs.push_back(job);
        self.work.notify_one();
        Ok(())
    }

    /// A worker's life: jobs until none came for [`IDLE_EXIT`]. Decided
    /// under the lock jobs are queued under, so no job is left behind.
    fn work(&self) {
        let mut st = self.state.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job();
                st = self.state.lock();
                continue;
            }
            st.idle += 1;
            let timed_out = self.work.wait_for(&mut st, IDLE_EXIT).timed_out();
            st.idle -= 1;
            if timed_out && st.jobs.is_empty() {
                st.workers -= 1;
                return;
            }
        }
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
    let (done, answer) = crossbeam_channel::bounded::<std::thread::Result<_>>(1);
    let storage = storage.clone();
    let job: Job = Box::new(move || {
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| f(&*storage)));
        let _ = done.send(answer);
    });
    if let Err(job) = pool().submit(job) {
        // No thread to be had: read here, as before.
        job();
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
        assert!(pool().state.lock().workers <= MAX_WORKERS);
    }
}
