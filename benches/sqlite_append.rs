//! SQLite append throughput in-process (no sockets): threads appending
//! 50-event batches (about 200-byte args) in a loop, each to its own store,
//! with and without group commit. `cargo bench --bench sqlite_append [-- SECONDS]`
//! (default 3 s per case); the database is a scratch file in the system's
//! temp dir (put TMPDIR on the disk you want to measure).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use livestore_sync::model::Event;
use livestore_sync::storage::sqlite::{SqliteOptions, SqliteStorage};
use livestore_sync::storage::Storage;

fn batch(from: i64, n: i64, client: &str) -> Vec<Event> {
    (from..from + n)
        .map(|i| Event {
            name: "v1.TodoCreated".into(),
            args: Some(
                format!(
                    r#"{{"text":"todo {i} {}","id":"{client}-{i}","nested":{{"zeta":1,"alpha":[2,{{"b":1,"a":0}}]}}}}"#,
                    "x".repeat(120)
                )
                .into(),
            ),
            seq_num: i,
            parent_seq_num: i - 1,
            client_id: client.into(),
            session_id: "s".into(),
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; the first number is the seconds.
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    for group_commit in [false, true] {
        for threads in [1usize, 4] {
            let dir: PathBuf = std::env::temp_dir().join(format!(
                "lss-sqlite-bench-{}-{group_commit}-{threads}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let st = Arc::new(
                SqliteStorage::open(
                    &dir.join("livestore.db"),
                    SqliteOptions {
                        group_commit,
                        ..Default::default()
                    },
                )
                .unwrap(),
            );
            let start = Instant::now();
            let deadline = start + Duration::from_secs_f64(secs);
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let st = st.clone();
                    std::thread::spawn(move || {
                        let store = format!("store-{t}");
                        st.open_store(&store).unwrap();
                        let (mut head, mut latencies) = (0i64, Vec::new());
                        while Instant::now() < deadline {
                            let b = batch(head + 1, 50, "c");
                            let t0 = Instant::now();
                            st.append(&store, head, &b, SystemTime::now()).unwrap();
                            latencies.push(t0.elapsed());
                            head += 50;
                        }
                        (head, latencies)
                    })
                })
                .collect();
            let (mut events, mut lat) = (0, Vec::new());
            for w in workers {
                let (n, l) = w.join().unwrap();
                events += n;
                lat.extend(l);
            }
            let elapsed = start.elapsed().as_secs_f64();
            lat.sort();
            let ms = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
            println!(
                "group_commit={group_commit:<5} threads={threads}: {:>7.0} events/s ({} batches; append p50 {:.2} ms, p99 {:.2} ms)",
                events as f64 / elapsed,
                lat.len(),
                ms(0.5),
                ms(0.99)
            );
            drop(st);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
