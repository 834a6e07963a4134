//! How many connections this process can hold before the OS refuses a
//! thread or a file descriptor.
//!
//! Each WebSocket costs two threads, and each thread four memory mappings
//! (its stack and guard page, and the signal stack and guard page Rust's
//! runtime gives every thread), so `vm.max_map_count` (65,530 by default)
//! caps a process at about 8,000 WebSockets. Past such a limit thread
//! creation fails inside the runtime and aborts the process; so the server
//! refuses connections (`503`) before it gets there.

use std::fs;

/// Memory mappings one connection needs at most (two threads).
pub const MAPS_PER_CONNECTION: usize = 8;
/// Mappings, descriptors and threads kept for everything else
/// (libraries, heap arenas, the database pool, the accept loop).
const RESERVE: usize = 2_000;

/// The connection cap the OS allows, and what sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub connections: usize,
    pub limited_by: &'static str,
}

/// Reads the limits from `/proc`; `None` where they cannot be read.
pub fn os_capacity() -> Option<Capacity> {
    let max_map_count = read_number("/proc/sys/vm/max_map_count");
    let nofile = limit("Max open files");
    let nproc = limit("Max processes");
    let threads_max = read_number("/proc/sys/kernel/threads-max");
    from_limits(
        max_map_count,
        nofile,
        nproc.into_iter().chain(threads_max).min(),
    )
}

fn from_limits(
    max_map_count: Option<usize>,
    nofile: Option<usize>,
    threads: Option<usize>,
) -> Option<Capacity> {
    let candidates = [
        max_map_count.map(|m| {
            (
                m.saturating_sub(RESERVE) / MAPS_PER_CONNECTION,
                "vm.max_map_count",
            )
        }),
        nofile.map(|n| {
            (
                n.saturating_sub(RESERVE / 10),
                "the open-files limit (LimitNOFILE / ulimit -n)",
            )
        }),
        threads.map(|t| {
            (
                t.saturating_sub(RESERVE / 10) / 2,
                "the thread limit (TasksMax / ulimit -u / kernel.threads-max)",
            )
        }),
    ];
    candidates
        .into_iter()
        .flatten()
        .min_by_key(|(n, _)| *n)
        .map(|(connections, limited_by)| Capacity {
            connections,
            limited_by,
        })
}

fn read_number(path: &str) -> Option<usize> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The soft limit of a `/proc/self/limits` row (`unlimited`: none).
fn limit(name: &str) -> Option<usize> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let row = text.lines().find(|l| l.starts_with(name))?;
    row[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_wins() {
        let c = from_limits(Some(65_530), Some(65_536), Some(96_365)).unwrap();
        assert_eq!(
            c,
            Capacity {
                connections: (65_530 - RESERVE) / 8,
                limited_by: "vm.max_map_count"
            }
        );
        let c = from_limits(Some(262_144), Some(20_000), None).unwrap();
        assert_eq!(
            c.limited_by,
            "the open-files limit (LimitNOFILE / ulimit -n)"
        );
        assert_eq!(from_limits(None, None, None), None);
    }

    #[test]
    fn this_machine_has_readable_limits() {
        assert!(os_capacity().is_some_and(|c| c.connections > 0));
    }
}
