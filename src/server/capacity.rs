//! How many connections this process can hold before the OS refuses a
//! thread or a file descriptor.
//!
//! Each WebSocket costs two threads, and each thread four memory mappings
//! (its stack and guard page, and the signal stack and guard page Rust's
//! runtime gives every thread), so `vm.max_map_count` (65,530 by default)
//! caps a process at about 8,000 WebSockets. Past such a limit thread
//! creation fails inside the runtime and aborts the process; so the server
//! refuses connections (`503`) before it gets there. Every thread also
//! takes a process id (`kernel.pid_max`, 32,768 on many machines), counts
//! against `kernel.threads-max` (machine-wide, sized from RAM at boot),
//! `ulimit -u`, and the cgroup's `pids.max` (systemd's `TasksMax`). The
//! server logs each limit it read, and what it allows, at start.

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

/// The limits read at start; `None` where one cannot be read or is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsLimits {
    /// `vm.max_map_count`: memory mappings per process.
    pub max_map_count: Option<usize>,
    /// The open-files soft limit (`LimitNOFILE`, `ulimit -n`).
    pub nofile: Option<usize>,
    /// The processes-per-user soft limit (`ulimit -u`; counts threads).
    pub nproc: Option<usize>,
    /// `kernel.threads-max`: threads on the whole machine.
    pub threads_max: Option<usize>,
    /// `kernel.pid_max`: every thread takes a process id.
    pub pid_max: Option<usize>,
    /// The cgroup's `pids.max` (`TasksMax` under systemd): the smallest
    /// of this process's cgroup and its parents.
    pub pids_max: Option<usize>,
}

const MAPS: &str = "vm.max_map_count";
const NOFILE: &str = "the open-files limit (LimitNOFILE / ulimit -n)";
const NPROC: &str = "the process limit (ulimit -u)";
const THREADS_MAX: &str = "kernel.threads-max";
const PID_MAX: &str = "kernel.pid_max";
const PIDS_MAX: &str = "the cgroup's pids.max (TasksMax)";

impl OsLimits {
    /// Reads the limits from `/proc` and `/sys/fs/cgroup`.
    pub fn read() -> OsLimits {
        OsLimits {
            max_map_count: read_number("/proc/sys/vm/max_map_count"),
            nofile: limit("Max open files"),
            nproc: limit("Max processes"),
            threads_max: read_number("/proc/sys/kernel/threads-max"),
            pid_max: read_number("/proc/sys/kernel/pid_max"),
            pids_max: cgroup_pids_max(),
        }
    }

    /// Each limit read, its value, and the connections it allows.
    pub fn each(&self) -> Vec<(&'static str, usize, usize)> {
        fn maps(m: usize) -> usize {
            m.saturating_sub(RESERVE) / MAPS_PER_CONNECTION
        }
        fn files(n: usize) -> usize {
            n.saturating_sub(RESERVE / 10)
        }
        fn threads(t: usize) -> usize {
            t.saturating_sub(RESERVE / 10) / 2
        }
        type Row = (&'static str, Option<usize>, fn(usize) -> usize);
        let rows: [Row; 6] = [
            (MAPS, self.max_map_count, maps),
            (NOFILE, self.nofile, files),
            (NPROC, self.nproc, threads),
            (THREADS_MAX, self.threads_max, threads),
            (PID_MAX, self.pid_max, threads),
            (PIDS_MAX, self.pids_max, threads),
        ];
        rows.into_iter()
            .filter_map(|(name, v, allows)| v.map(|v| (name, v, allows(v))))
            .collect()
    }

    /// The tightest limit, or `None` if none could be read.
    pub fn capacity(&self) -> Option<Capacity> {
        self.each()
            .into_iter()
            .min_by_key(|(_, _, n)| *n)
            .map(|(limited_by, _, connections)| Capacity {
                connections,
                limited_by,
            })
    }

    /// One log line's worth: each limit, its value and what it allows.
    pub fn describe(&self) -> String {
        let rows: Vec<String> = self
            .each()
            .into_iter()
            .map(|(name, v, n)| format!("{name}={v} ({n} connections)"))
            .collect();
        if rows.is_empty() {
            "none readable".into()
        } else {
            rows.join(", ")
        }
    }
}

/// Reads the limits from `/proc`; `None` where they cannot be read.
pub fn os_capacity() -> Option<Capacity> {
    OsLimits::read().capacity()
}

/// The smallest `pids.max` of this process's cgroup and its parents
/// (cgroup v2, or v1's `pids` controller); `max` is no limit.
fn cgroup_pids_max() -> Option<usize> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let (root, path) = cgroup_pids_path(&text)?;
    let mut dir = std::path::PathBuf::from(root);
    let mut min = read_number(&dir.join("pids.max").to_string_lossy());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        let here = read_number(&dir.join("pids.max").to_string_lossy());
        min = match (min, here) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    min
}

/// Where this process's `pids` cgroup is, from `/proc/self/cgroup`: the
/// hierarchy's mount point and the path under it.
fn cgroup_pids_path(text: &str) -> Option<(&'static str, &str)> {
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if controllers.split(',').any(|c| c == "pids") {
            return Some(("/sys/fs/cgroup/pids", path));
        }
        if controllers.is_empty() {
            v2 = Some(("/sys/fs/cgroup", path));
        }
    }
    v2
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

    fn cap(connections: usize, limited_by: &'static str) -> Option<Capacity> {
        Some(Capacity {
            connections,
            limited_by,
        })
    }

    fn from_limits(
        max_map_count: Option<usize>,
        nofile: Option<usize>,
        threads_max: Option<usize>,
    ) -> Option<Capacity> {
        OsLimits {
            max_map_count,
            nofile,
            threads_max,
            ..OsLimits::default()
        }
        .capacity()
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
            cap(1_900, THREADS_MAX)
        );
        assert_eq!(
            from_limits(None, None, Some(4_000)),
            cap(1_900, THREADS_MAX)
        );
    }

    #[test]
    fn each_thread_limit_is_named() {
        // This machine's pid_max of 32,768: every thread takes a pid.
        let l = OsLimits {
            max_map_count: Some(524_288),
            nofile: Some(65_536),
            nproc: Some(96_362),
            threads_max: Some(192_729),
            pid_max: Some(32_768),
            pids_max: None,
        };
        assert_eq!(l.capacity(), cap(16_284, PID_MAX));
        let l = OsLimits {
            pid_max: Some(4_194_304),
            pids_max: Some(10_000),
            ..l
        };
        assert_eq!(l.capacity(), cap(4_900, PIDS_MAX));
        let l = OsLimits {
            pids_max: None,
            nproc: Some(3_000),
            ..l
        };
        assert_eq!(l.capacity(), cap(1_400, NPROC));
        let text = l.describe();
        for name in [MAPS, NOFILE, NPROC, THREADS_MAX, PID_MAX] {
            assert!(text.contains(name), "{text}");
        }
        assert!(text.contains("kernel.pid_max=4194304 (2097052 connections)"));
        assert_eq!(OsLimits::default().describe(), "none readable");
    }

    #[test]
    fn what_a_vps_needs_for_50000() {
        // The values as shipped: the sysctl drop-in and the unit's
        // LimitNOFILE (TasksMax=infinity: no pids.max), read from the files,
        // so lowering either below 50,000 connections fails here.
        let dir = env!("CARGO_MANIFEST_DIR");
        let conf = fs::read_to_string(format!("{dir}/systemd/99-livestore-sync.conf")).unwrap();
        let unit = fs::read_to_string(format!("{dir}/systemd/livestore-sync.service")).unwrap();
        let setting = |text: &str, key: &str, sep: char| -> Option<usize> {
            text.lines()
                .filter_map(|l| l.split_once(sep))
                .find(|(k, _)| k.trim() == key)
                .and_then(|(_, v)| v.trim().parse().ok())
        };
        let l = OsLimits {
            max_map_count: setting(&conf, "vm.max_map_count", '='),
            nofile: setting(&unit, "LimitNOFILE", '='),
            nproc: None,
            threads_max: setting(&conf, "kernel.threads-max", '='),
            pid_max: setting(&conf, "kernel.pid_max", '='),
            pids_max: None,
        };
        assert!(
            l.max_map_count
                .and(l.nofile)
                .and(l.threads_max)
                .and(l.pid_max)
                .is_some(),
            "{l:?}"
        );
        assert!(l.capacity().unwrap().connections >= 50_000, "{l:?}");
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
    fn the_pids_cgroup_of_either_version() {
        let v1 = "9:name=systemd:/\n8:pids:/system.slice/x.service\n4:memory:/m\n0::/\n";
        assert_eq!(
            cgroup_pids_path(v1),
            Some(("/sys/fs/cgroup/pids", "/system.slice/x.service"))
        );
        let v2 = "0::/system.slice/livestore-sync.service\n";
        assert_eq!(
            cgroup_pids_path(v2),
            Some(("/sys/fs/cgroup", "/system.slice/livestore-sync.service"))
        );
        assert_eq!(cgroup_pids_path("4:memory:/m\n"), None);
        // Whatever this machine has, reading it does not fail.
        let _ = OsLimits::read().describe();
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
