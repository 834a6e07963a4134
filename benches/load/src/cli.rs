//! Command-line parsing: `livestore-sync-bench <scenario> [--flag value]…`.
//!
//! Flags are read by the scenario that needs them; any flag left unread is
//! an error, so a typo does not silently run with a default.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

pub const USAGE: &str = "\
livestore-sync-bench: load generator for livestore-sync (and any @livestore/sync-cf server).

USAGE: livestore-sync-bench <SCENARIO> --url ws://HOST:PORT [OPTIONS]

Scenarios (each prints one JSON line on stdout; logs go to stderr):
  cold-pull        seed a store, time one fresh client's full pull
                   --events 100000 --args-bytes 200 --seed-batch 100
  push             C clients on C stores push K sequential batches
                   --clients 4 --batches 50 --batch-size 50 --args-bytes 200
  fan-out          S live subscribers, one pusher, K single-event pushes
                   --subscribers 100 --pushes 200 --args-bytes 200
                   [--subscriber-url ws://…] (subscribers on another instance)
  idle             N idle sockets pinging every 10 s; server RSS/CPU
                   --connections 10000 --stores 100 --idle-secs 30 --ping-interval-secs 10
                   --open-threads 64 --server-pid PID [--spread-addrs N]
                   reports the time to open the first 1,000 / 10,000 / all;
                   fails on any connection that did not open
  connect          idle without the idle window: --connections 10000 --open-threads 64
                   (figure: open_first_10000.ms; target <= 5 s)
  reconnect-storm  N synced clients drop, events are pushed, all reconnect
                   --clients 1000 --events 100 --seed-events 100
  race             C clients push on the same parent at once, R rounds
                   --clients 20 --rounds 10
  hot-store        S live subscribers, P pushers racing on one store's head (a refused
                   pusher rebases and pushes again); every subscriber must get every
                   accepted event once, in order
                   --subscribers 1000 --pushers 10 --events-per-pusher 50 --args-bytes 200
  floors           only the floors (PostgreSQL and loopback WebSocket)
  smoke            every scenario at tiny sizes; exit 1 if any check fails
                   (--protocol defaults to both 0.3 and 0.4 here)

Common options:
  --url URL              server base URL (ws:// or http://; no TLS)
  --protocol 0.3|0.4     wire protocol (default 0.4; smoke: both)
  --auth-token TOKEN     sync payload {\"authToken\":TOKEN} (default insecure-token-change-me;
                         'none' sends no payload)
  --timeout-secs S       timeout of one operation (default 30)
  --spread-addrs N       connect to 127.0.0.1..127.0.0.N (round robin) on the URL's
                         port instead of the URL's host, to get past one destination
                         address's ephemeral ports (the server listens on 0.0.0.0)
  --database-url URL     PostgreSQL of the server, for the floors (without it the
                         PostgreSQL floors are skipped: \"floor\": null)
  --server-pid PID       the server's pid, for RSS and CPU (idle scenario)
  --store-prefix P       prefix of the store ids this run creates (default bench)
  --shape-floor          (idle, fan-out) also measure the shape floor at the same size:
                         a minimal server of the server's shape (reader + writer thread
                         per socket, 256/64 KiB stacks, crossbeam channels; no database),
                         run as a child process (`floor-server`); under floor.shape_*
  --floor-samples N      loopback WebSocket round trips for the floor (default 2000)
  --events-table T       table the COPY floor reads (default events)
  --copy-columns COLS    columns the COPY floor selects (default the event columns)

Exit status: 0 when every check passed, 1 when a check failed, 2 on bad usage.
";

pub struct Args {
    pub command: String,
    flags: BTreeMap<String, String>,
    used: RefCell<HashSet<String>>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut it = argv.iter().peekable();
        let mut command = None;
        let mut flags = BTreeMap::new();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let (name, value) = match name.split_once('=') {
                    Some((n, v)) => (n.to_string(), v.to_string()),
                    None => match it.peek() {
                        Some(v) if !v.starts_with("--") => {
                            (name.to_string(), it.next().unwrap().clone())
                        }
                        _ => (name.to_string(), "true".to_string()),
                    },
                };
                if name == "help" {
                    return Err(String::new());
                }
                if flags.insert(name.clone(), value).is_some() {
                    return Err(format!("--{name} given twice"));
                }
            } else if command.is_none() {
                command = Some(a.clone());
            } else {
                return Err(format!("unexpected argument {a:?}"));
            }
        }
        let command = command.ok_or("no scenario given")?;
        Ok(Args {
            command,
            flags,
            used: RefCell::new(HashSet::new()),
        })
    }

    pub fn opt_str(&self, name: &str) -> Option<String> {
        self.used.borrow_mut().insert(name.to_string());
        self.flags.get(name).cloned()
    }

    pub fn str_or(&self, name: &str, default: &str) -> String {
        self.opt_str(name).unwrap_or_else(|| default.to_string())
    }

    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.opt_str(name) {
            None => Ok(None),
            Some(v) => v
                .replace('_', "")
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("--{name}: {v:?} is not a number")),
        }
    }

    pub fn u64_or(&self, name: &str, default: u64) -> Result<u64, String> {
        Ok(self.opt_u64(name)?.unwrap_or(default))
    }

    pub fn usize_or(&self, name: &str, default: usize) -> Result<usize, String> {
        Ok(self.u64_or(name, default as u64)? as usize)
    }

    /// A positive count (0 is refused).
    pub fn count_or(&self, name: &str, default: usize) -> Result<usize, String> {
        let v = self.usize_or(name, default)?;
        if v == 0 {
            return Err(format!("--{name} must be at least 1"));
        }
        Ok(v)
    }

    pub fn secs_or(&self, name: &str, default: f64) -> Result<Duration, String> {
        match self.opt_str(name) {
            None => Ok(Duration::from_secs_f64(default)),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("--{name}: {v:?} is not a number of seconds")),
        }
    }

    /// Errors on flags nobody read.
    pub fn finish(&self) -> Result<(), String> {
        let used = self.used.borrow();
        let unknown: Vec<String> = self
            .flags
            .keys()
            .filter(|k| !used.contains(*k))
            .map(|k| format!("--{k}"))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unknown option(s) for `{}`: {}",
                self.command,
                unknown.join(" ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags_in_both_spellings() {
        let a = Args::parse(&argv(
            "push --url ws://h:1 --clients=3 --verbose --batches 7",
        ))
        .unwrap();
        assert_eq!(a.command, "push");
        assert_eq!(a.opt_str("url").as_deref(), Some("ws://h:1"));
        assert_eq!(a.usize_or("clients", 4).unwrap(), 3);
        assert_eq!(a.opt_str("verbose").as_deref(), Some("true"));
        assert_eq!(a.u64_or("batches", 1).unwrap(), 7);
        assert_eq!(a.u64_or("missing", 9).unwrap(), 9);
        a.finish().unwrap();
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let a = Args::parse(&argv("race --rounds x --typo 1")).unwrap();
        assert!(a.u64_or("rounds", 1).is_err());
        assert!(a.finish().unwrap_err().contains("--typo"));
        assert!(Args::parse(&argv("race --a 1 --a 2")).is_err());
        assert!(Args::parse(&argv("--url x")).is_err());
        let a = Args::parse(&argv("idle --connections 0 --idle-secs 1.5")).unwrap();
        assert!(a.count_or("connections", 5).is_err());
        assert_eq!(
            a.secs_or("idle-secs", 30.0).unwrap(),
            Duration::from_millis(1500)
        );
        let a = Args::parse(&argv("cold-pull --events 100_000")).unwrap();
        assert_eq!(a.u64_or("events", 1).unwrap(), 100_000);
    }
}
