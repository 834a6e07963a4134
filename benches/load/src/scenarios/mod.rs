//! One module per scenario. Each has a `Params` (from the command line, or
//! tiny for `smoke`) and a `run` that returns the [`Report`] it verified.

pub mod cold_pull;
pub mod fan_out;
pub mod hot_store;
pub mod idle;
pub mod push;
pub mod race;
pub mod reconnect_storm;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::conn::{Conn, PushOutcome, Target};
use crate::events::make_chain;
use crate::floors::Floors;
use crate::stats::Samples;
use crate::util;

/// What every scenario gets: where to connect, the floors, the server pid.
pub struct Ctx {
    pub target: Target,
    pub floors: Floors,
    pub server_pid: Option<u32>,
    pub store_prefix: String,
}

impl Ctx {
    pub fn store_id(&self, scenario: &str) -> String {
        crate::util::unique_store_id(&self.store_prefix, scenario)
    }

    /// Deadline for an operation that may take `n` times the usual.
    pub fn deadline_x(&self, n: u32) -> Instant {
        Instant::now() + self.target.timeout * n
    }
}

/// The server's thread count and open descriptors, when its pid is known.
pub fn server_threads_fds(ctx: &Ctx) -> Option<(u64, u64)> {
    let pid = ctx.server_pid?;
    Some((util::thread_count(pid)?, util::fd_count(pid)?))
}

/// After every client of a scenario has gone: waits up to 10 s for the
/// server's thread count to come back to `before`, then reports threads and
/// descriptors before and after. Threads that stay are connections that
/// never ended (a leak), so they fail the run. Descriptors are reported
/// only: the database pool may have grown meanwhile.
pub fn report_leftovers(ctx: &Ctx, r: &mut crate::report::Report, before: Option<(u64, u64)>) {
    let Some((threads0, fds0)) = before else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = server_threads_fds(ctx);
    while after.is_some_and(|(t, _)| t > threads0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = server_threads_fds(ctx);
    }
    r.result("server_threads_before_clients", threads0);
    r.result("server_fds_before_clients", fds0);
    r.result("server_threads_after_clients_left", after.map(|a| a.0));
    r.result("server_fds_after_clients_left", after.map(|a| a.1));
    if let Some((threads1, _)) = after {
        r.check(threads1 <= threads0, || {
            format!(
                "the server kept {} threads after every client left",
                threads1 - threads0
            )
        });
    }
}

/// tungstenite read buffer of an ordinary bench connection.
pub const READ_BUF: usize = 64 * 1024;
/// Read buffer for scenarios that open thousands of connections.
pub const SMALL_READ_BUF: usize = 4 * 1024;

/// Pushes `count` events onto the empty-or-`head` store `store_id` in
/// sequential batches of `batch` (each after the previous ack), from a
/// connection that does not pull. Returns the time it took.
pub fn seed_store(
    ctx: &Ctx,
    store_id: &str,
    head: u64,
    count: usize,
    batch: usize,
    args_bytes: usize,
    client_id: &str,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    if count == 0 {
        return Ok(Duration::ZERO);
    }
    let mut conn = Conn::open(&ctx.target, store_id, READ_BUF)?;
    let mut parent = head;
    let mut left = count;
    let mut last_log = Instant::now();
    while left > 0 {
        let n = left.min(batch);
        let events = make_chain(client_id, parent, n, args_bytes);
        match conn.push(&events, ctx.target.deadline())? {
            PushOutcome::Acked => {}
            PushOutcome::Rejected(e) => {
                return Err(format!(
                    "seeding {store_id}: push of e{} refused: {e}",
                    parent + 1
                ))
            }
        }
        parent += n as u64;
        left -= n;
        if last_log.elapsed() > Duration::from_secs(5) {
            info!("seeding {store_id}: {} / {count} events", count - left);
            last_log = Instant::now();
        }
    }
    conn.close();
    Ok(t0.elapsed())
}

/// Connections opened by [`open_many`].
pub struct Opened {
    pub conns: Vec<Conn>,
    /// When each connection finished its initial pull, sorted.
    pub done_at: Vec<Instant>,
    /// Connect + handshake + initial pull, per connection.
    pub latencies: Samples,
    /// The first few errors of connections that failed.
    pub errors: Vec<String>,
}

impl Opened {
    /// One line for a report: how many failed, and the first errors.
    pub fn failure_summary(&self, wanted: usize) -> Option<String> {
        (self.conns.len() != wanted).then(|| {
            let mut first = self.errors.clone();
            first.sort();
            first.dedup();
            first.truncate(4);
            format!(
                "{} of {wanted} connections opened; first errors: {first:?}",
                self.conns.len()
            )
        })
    }
}

/// Opens `n` connections with `threads` threads (each opens one socket
/// after the other); connection `i` goes to store `store_for(i)` and does a
/// live pull from the beginning that must return `expect_events` events.
pub fn open_many(
    ctx: &Ctx,
    n: usize,
    threads: usize,
    read_buf: usize,
    stores: Arc<Vec<String>>,
    expect_events: usize,
) -> Opened {
    let next = Arc::new(AtomicUsize::new(0));
    let opened = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let handles: Vec<_> = (0..threads.min(n))
        .map(|t| {
            let (next, opened, stores) = (next.clone(), opened.clone(), stores.clone());
            let target = ctx.target.clone();
            util::spawn(format!("open-{t}"), move || {
                let mut lat = Samples::new();
                let mut done = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t0 = Instant::now();
                    let res = Conn::open(&target, &stores[i % stores.len()], read_buf).and_then(
                        |mut c| {
                            let pulled = c.pull(0, true, target.deadline())?;
                            if pulled.events.len() != expect_events {
                                return Err(format!(
                                    "initial pull gave {} events, expected {expect_events}",
                                    pulled.events.len()
                                ));
                            }
                            Ok(c)
                        },
                    );
                    match res {
                        Ok(c) => {
                            lat.add(t0.elapsed());
                            done.push(Instant::now());
                            let mut o = opened.lock();
                            o.push(c);
                            if o.len() % 1000 == 0 {
                                info!("{} connections open", o.len());
                            }
                        }
                        Err(e) if errors.len() < 3 => errors.push(format!("connection {i}: {e}")),
                        Err(_) => {}
                    }
                }
                (lat, done, errors)
            })
        })
        .collect();
    let mut out = Opened {
        conns: Vec::new(),
        done_at: Vec::new(),
        latencies: Samples::new(),
        errors: Vec::new(),
    };
    for h in handles {
        match h.join() {
            Ok((lat, done, errors)) => {
                out.latencies.extend(lat);
                out.done_at.extend(done);
                out.errors.extend(errors);
            }
            Err(_) => out.errors.push("an opener thread panicked".into()),
        }
    }
    out.done_at.sort();
    out.conns = std::mem::take(&mut *opened.lock());
    out
}

#[cfg(test)]
mod tests {
    //! The scenarios against the in-process mock server: all pass when it
    //! behaves, and the matching check fails when it does not.
    use std::time::Duration;

    use super::*;
    use crate::mock::{self, Faults};
    use crate::proto::{BaseUrl, Proto};
    use crate::report::Report;

    fn ctx(faults: Faults) -> Ctx {
        let port = mock::start(faults);
        Ctx {
            target: Target {
                base: BaseUrl::parse(&format!("ws://127.0.0.1:{port}")).unwrap(),
                proto: Proto::V03,
                payload: Some(r#"{"authToken":"t"}"#.into()),
                timeout: Duration::from_secs(5),
                spread_addrs: 1,
            },
            floors: Floors::new(None, 20, "events".into(), "*".into()),
            server_pid: None,
            store_prefix: "test".into(),
        }
    }

    fn assert_ok(r: Report) {
        let j = r.to_json();
        assert!(r.ok(), "{}", j);
    }

    fn failures(r: &Report) -> String {
        assert!(!r.ok(), "expected a failure: {}", r.to_json());
        r.to_json()["failures"].to_string()
    }

    #[test]
    fn every_scenario_passes_against_a_correct_server() {
        let c = ctx(Faults::default());
        assert_ok(cold_pull::run(&c, &cold_pull::Params::smoke()));
        assert_ok(push::run(&c, &push::Params::smoke()));
        assert_ok(fan_out::run(&c, &fan_out::Params::smoke()));
        let mut idle = idle::Params::smoke();
        idle.idle = Duration::from_millis(1200);
        assert_ok(idle::run(&c, &idle));
        assert_ok(reconnect_storm::run(&c, &reconnect_storm::Params::smoke()));
        assert_ok(race::run(&c, &race::Params::smoke()));
        assert_ok(hot_store::run(&c, &hot_store::Params::smoke()));
    }

    #[test]
    fn race_fails_when_two_pushes_win() {
        let c = ctx(Faults {
            no_parent_check: true,
            ..Faults::default()
        });
        let f = failures(&race::run(&c, &race::Params::smoke()));
        assert!(f.contains("pushes accepted, expected exactly 1"), "{f}");
    }

    #[test]
    fn fan_out_and_push_fail_on_duplicate_deliveries() {
        let c = ctx(Faults {
            duplicate_broadcast: true,
            ..Faults::default()
        });
        let f = failures(&fan_out::run(&c, &fan_out::Params::smoke()));
        assert!(f.contains("duplicate"), "{f}");
        let f = failures(&push::run(&c, &push::Params::smoke()));
        assert!(f.contains("duplicate"), "{f}");
        let f = failures(&hot_store::run(&c, &hot_store::Params::smoke()));
        assert!(f.contains("duplicate"), "{f}");
    }

    #[test]
    fn hot_store_fails_when_two_pushes_win_a_seq_num() {
        let c = ctx(Faults {
            no_parent_check: true,
            ..Faults::default()
        });
        let f = failures(&hot_store::run(&c, &hot_store::Params::smoke()));
        assert!(
            f.contains("accepted twice") || f.contains("duplicate"),
            "{f}"
        );
    }

    #[test]
    fn cold_pull_fails_on_wrong_remaining_or_reordered_args() {
        let c = ctx(Faults {
            wrong_remaining: true,
            ..Faults::default()
        });
        let f = failures(&cold_pull::run(&c, &cold_pull::Params::smoke()));
        assert!(f.contains("remaining"), "{f}");
        let c = ctx(Faults {
            reorder_args: true,
            ..Faults::default()
        });
        let f = failures(&cold_pull::run(&c, &cold_pull::Params::smoke()));
        assert!(f.contains("not returned as pushed"), "{f}");
    }
}
