//! Small helpers: unique ids, /proc readings, threads.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// A random number from the standard library's per-process hash keys.
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `<prefix>-<scenario>-<unix seconds>-<random>`: unique per run, so the
/// bench can run again and again against one long-running server.
pub fn unique_store_id(prefix: &str, scenario: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{prefix}-{scenario}-{secs}-{:08x}", random_u64() as u32)
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    parse_vmrss(&s).ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

pub fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Whether a process exists and has not exited (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| !matches!(st.trim().chars().next(), Some('Z' | 'X'))),
        Err(_) => false,
    }
}

/// `Threads:` of a process.
pub fn thread_count(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Open file descriptors of a process (entries of /proc/<pid>/fd).
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Number of memory mappings of a process (lines of /proc/<pid>/maps); the
/// kernel refuses new ones past `vm.max_map_count`, and every thread costs
/// a few (stack, guard page, signal stack).
pub fn map_count(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(s.lines().count() as u64)
}

/// `vm.max_map_count`.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    parse_stat_ticks(&s).ok_or_else(|| format!("cannot parse /proc/{pid}/stat"))
}

/// Fields 14 and 15 of /proc/<pid>/stat; the command name (field 2) may
/// contain spaces and parentheses, so count from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`AT_CLKTCK` from /proc/self/auxv; 100 if unreadable).
pub fn clock_ticks_per_sec() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|b| parse_auxv_clktck(&b))
        .unwrap_or(100)
}

pub fn parse_auxv_clktck(auxv: &[u8]) -> Option<u64> {
    const AT_CLKTCK: u64 = 17;
    auxv.chunks_exact(16).find_map(|pair| {
        let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
        let val = u64::from_ne_bytes(pair[8..].try_into().ok()?);
        (key == AT_CLKTCK && val > 0).then_some(val)
    })
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Fails early, with the fix, when `needed` sockets will not fit.
pub fn ensure_fd_room(needed: u64) -> Result<(), String> {
    match open_files_limit() {
        Some(limit) if limit < needed + 64 => Err(format!(
            "this run opens {needed} sockets but the open-files limit is {limit}: raise it first (`ulimit -n {}`), \
             for the server too",
            (needed + 1024).max(65536)
        )),
        _ => Ok(()),
    }
}

/// Spawns a named thread with a small stack (the bench runs thousands).
pub fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawning a thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_are_unique_and_prefixed() {
        let a = unique_store_id("bench", "push");
        let b = unique_store_id("bench", "push");
        assert!(a.starts_with("bench-push-"));
        assert_ne!(a, b);
    }

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            parse_vmrss("Name:\tx\nVmRSS:\t   12345 kB\nVmSwap: 0 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_vmrss("Name: x\n"), None);
        let stat = "1234 (my (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        assert_eq!(parse_stat_ticks(stat), Some(280));
        let mut aux = Vec::new();
        for (k, v) in [(6u64, 4096u64), (17, 100), (0, 0)] {
            aux.extend_from_slice(&k.to_ne_bytes());
            aux.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv_clktck(&aux), Some(100));
        // This process.
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        cpu_ticks(me).unwrap();
        assert!(clock_ticks_per_sec() > 0);
        assert!(open_files_limit().unwrap() > 0);
        assert!(thread_count(me).unwrap() >= 1);
        assert!(process_alive(me));
        assert!(!process_alive(u32::MAX));
        assert!(map_count(me).unwrap() > 5);
    }
}
