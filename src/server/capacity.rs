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
    limit_in(&fs::read_to_string("/proc/self/limits").ok()?, name)
}

/// [`limit`] on the text of a `/proc/self/limits`.
fn limit_in(text: &str, name: &str) -> Option<usize> {
    let row = text.lines().find(|l| l.starts_with(name))?;
    row[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "vm.max_map_count";
    const NOFILE: &str = "the open-files limit (LimitNOFILE / ulimit -n)";
    const THREADS: &str = "the thread limit (TasksMax / ulimit -u / kernel.threads-max)";

    fn cap(connections: usize, limited_by: &'static str) -> Option<Capacity> {
        Some(Capacity {
            connections,
            limited_by,
        })
    }

    #[test]
    fn default_max_map_count_allows_about_8000() {
        // (65,530 - 2,000 reserved) / 8 maps per connection.
        assert_eq!(
            from_limits(Some(65_530), Some(1_048_576), Some(127_462)),
            cap(7_941, MAPS)
        );
        assert_eq!(from_limits(Some(65_530), None, None), cap(7_941, MAPS));
    }

    #[test]
    fn a_smaller_open_files_limit_wins() {
        // 20,000 - 200 reserved descriptors.
        assert_eq!(
            from_limits(Some(262_144), Some(20_000), Some(127_462)),
            cap(19_800, NOFILE)
        );
        assert_eq!(from_limits(None, Some(1_024), None), cap(824, NOFILE));
    }

    #[test]
    fn a_smaller_thread_limit_wins() {
        // (4,000 - 200 reserved) / 2 threads per connection.
        assert_eq!(
            from_limits(Some(65_530), Some(65_536), Some(4_000)),
            cap(1_900, THREADS)
        );
        assert_eq!(from_limits(None, None, Some(4_000)), cap(1_900, THREADS));
    }

    #[test]
    fn limits_below_the_reserve_allow_nothing_and_none_is_no_cap() {
        assert_eq!(
            from_limits(Some(1_000), Some(150), Some(100)).map(|c| c.connections),
            Some(0)
        );
        assert_eq!(from_limits(None, None, None), None);
    }

    #[test]
    fn proc_self_limits_rows() {
        let text = "\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max stack size            8388608              unlimited            bytes
Max processes             96362                127462               processes
Max open files            20000                1048576              files
Max locked memory         8388608              8388608              bytes
Max address space         unlimited            unlimited            bytes
";
        // The soft limit, not the hard one.
        assert_eq!(limit_in(text, "Max processes"), Some(96_362));
        assert_eq!(limit_in(text, "Max open files"), Some(20_000));
        assert_eq!(limit_in(text, "Max address space"), None);
        assert_eq!(limit_in(text, "Max pending signals"), None);
        assert_eq!(limit_in("", "Max open files"), None);
    }
}
