//! The committed units under a real systemd: the hardening leaves the
//! server working.
//!
//! The test boots the machine's own systemd as PID 1 of new pid, mount,
//! UTS, IPC and cgroup namespaces, with a private `/run`, `/var/lib`,
//! `/tmp`, … (tmpfs) and a target that starts nothing but journald, so
//! none of the machine's services is started and nothing it writes
//! outlives the test. Then, with the committed `livestore-sync.service`
//! (a drop-in only sets the settings, the binary of this build, and a 2 s
//! watchdog) and `livestore-sync.socket`:
//!
//! - `systemctl start` returns once the server said `READY=1`, and the
//!   hardening settings are in force;
//! - a WebSocket push is stored in the state directory (SQLite, threads,
//!   TCP) and `/health` answers;
//! - journald files warnings at priority 4 and info at 6, without our
//!   timestamps;
//! - the watchdog is fed, and a frozen server (SIGSTOP) is restarted by it;
//! - `systemctl stop` ends it cleanly (exit 0);
//! - on PostgreSQL too;
//! - socket activation: the first client starts the server through the
//!   socket unit.
//!
//! It needs root (namespaces, mounts) and the systemd package; without
//! root it fails unless `LSS_ALLOW_NO_SYSTEMD=1` is set.
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SYSTEMD: &str = "/lib/systemd/systemd";

/// What runs inside the namespaces before systemd: private mounts over
/// everything systemd or the service would write, the units, then systemd.
const INNER: &str = r#"#!/bin/bash
set -euo pipefail
W=$1
mount --make-rprivate /
# The units and the binary, copied before /tmp (where W lives) is hidden.
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /run/lss
cp -r "$W"/units/. /run/systemd/system/
cp "$W"/livestore-sync /run/lss/livestore-sync
chmod 755 /run/lss /run/lss/livestore-sync
for d in /var/lib /var/log/journal /var/tmp /var/cache /tmp; do
  if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
mount -t tmpfs tmpfs /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# Nothing of the machine's: no network targets, no /dev/log, no audit.
for u in network-online.target network.target systemd-journald-dev-log.socket \
         systemd-journald-audit.socket; do
  ln -sf /dev/null "/run/systemd/system/$u"
done
cat > /run/systemd/system/lss-test.target <<T
[Unit]
DefaultDependencies=no
Wants=systemd-journald.service
T
exec env container=lss-test /lib/systemd/systemd --system --unit=lss-test.target \
  --log-target=null --show-status=no
"#;

/// A cgroup2 mount of this machine (hybrid: `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("no cgroup2 filesystem mounted")
}

/// systemd booted in its namespaces; torn down (and its cgroup removed)
/// however the test ends.
struct Booted {
    unshare: Child,
    /// systemd's pid as this process sees it.
    pid: u32,
    cgroup: PathBuf,
}

impl Drop for Booted {
    fn drop(&mut self) {
        // Killing a pid namespace's init ends every process in it.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // Empty now; deepest first.
        for _ in 0..50 {
            let _ = Command::new("find")
                .arg(&self.cgroup)
                .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                .stderr(Stdio::null())
                .status();
            if !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Booted {
    fn boot(work: &Path) -> Booted {
        let inner = work.join("inner.sh");
        std::fs::write(&inner, INNER).unwrap();
        let cgroup = cgroup2_root().join(format!("lss-test-{}", std::process::id()));
        std::fs::create_dir_all(&cgroup).unwrap();
        // The shell moves itself into the cgroup, whose subtree becomes the
        // new cgroup namespace's root: systemd's cgroups stay under it.
        let unshare = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec unshare --pid --mount --uts --ipc --cgroup \
                 --fork --mount-proc bash {} {}",
                cgroup.display(),
                inner.display(),
                work.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run unshare");
        let mut booted = Booted {
            pid: 0,
            unshare,
            cgroup,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        booted.pid = loop {
            // unshare's child (it forked), which execs systemd.
            let children = Command::new("pgrep")
                .args(["-P", &booted.unshare.id().to_string()])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    break pid;
                }
            }
            if let Ok(Some(status)) = booted.unshare.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                let _ = booted
                    .unshare
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("the namespaces did not start systemd ({status}): {err}");
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Up when it has finished starting lss-test.target.
        loop {
            let state = booted.ctl_output(&["is-system-running"]);
            if matches!(state.trim(), "running" | "degraded") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "systemd in the namespace is `{}` after 30 s",
                state.trim()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        booted
    }

    /// A command run inside the namespaces.
    fn inside(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-a", program]);
        c
    }

    fn ctl_output(&self, args: &[&str]) -> String {
        let out = self.inside("systemctl").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl args…`, which must succeed.
    fn ctl(&self, args: &[&str]) {
        let out = self.inside("systemctl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "systemctl {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.journal("livestore-sync.service")
        );
    }

    /// One property of a unit.
    fn show(&self, unit: &str, property: &str) -> String {
        self.ctl_output(&["show", unit, "-p", property, "--value"])
            .trim()
            .to_string()
    }

    /// The unit's journal, one JSON object a line.
    fn journal_json(&self, unit: &str) -> Vec<serde_json::Value> {
        let out = self
            .inside("journalctl")
            .args(["-u", unit, "-o", "json", "--no-pager"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn journal(&self, unit: &str) -> String {
        let out = self
            .inside("journalctl")
            .args(["-u", unit, "--no-pager"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a drop-in for `unit` inside the namespaces and reloads.
    fn drop_in(&self, unit: &str, name: &str, text: &str) {
        let dir = format!("/run/systemd/system/{unit}.d");
        let status = self
            .inside("sh")
            .arg("-c")
            .arg(format!("mkdir -p {dir} && cat > {dir}/{name}.conf"))
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(status.success());
        self.ctl(&["daemon-reload"]);
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within 30 s\n{}",
                self.journal("livestore-sync.service")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn may_boot_systemd() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !root {
        if std::env::var_os("LSS_ALLOW_NO_SYSTEMD").is_some() {
            eprintln!(
                "SKIPPED (LSS_ALLOW_NO_SYSTEMD is set): booting systemd in namespaces needs root"
            );
            return false;
        }
        panic!("this test boots systemd in namespaces and needs root (or set LSS_ALLOW_NO_SYSTEMD=1 to skip it)");
    }
    assert!(
        Path::new(SYSTEMD).exists(),
        "{SYSTEMD} is missing: install it with `apt-get install -y systemd`"
    );
    true
}

/// The settings drop-in: the server's environment, this build's binary,
/// a 2 s watchdog, and no ordering after the machine's boot targets.
fn settings(port: u16, database_url: Option<&str>) -> String {
    let db = database_url
        .map(|u| format!("Environment=DATABASE_URL={u}\n"))
        .unwrap_or_default();
    format!(
        "[Unit]\nDefaultDependencies=no\n[Service]\nEnvironmentFile=\n\
         Environment=AUTH_TOKEN={TOKEN} ADMIN_SECRET=live-admin HOST=127.0.0.1 PORT={port} LOG_LEVEL=info\n\
         {db}ExecStart=\nExecStart=/run/lss/livestore-sync\nWatchdogSec=2\n"
    )
}

#[test]
fn the_hardened_units_run_the_server_under_systemd() {
    if !may_boot_systemd() {
        return;
    }
    let _w = watchdog("systemd_live", Duration::from_secs(240));
    let work = TempDir::new("systemd_live");
    let units = work.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for u in ["livestore-sync.service", "livestore-sync.socket"] {
        std::fs::copy(committed.join(u), units.join(u)).unwrap();
    }
    std::fs::copy(
        env!("CARGO_BIN_EXE_livestore-sync"),
        work.path().join("livestore-sync"),
    )
    .unwrap();
    let sd = Booted::boot(work.path());
    let service = "livestore-sync.service";

    // Started: `systemctl start` of a Type=notify unit returns after READY=1.
    let port = free_port();
    sd.drop_in(service, "test", &settings(port, None));
    sd.ctl(&["start", service]);
    assert_eq!(sd.show(service, "ActiveState"), "active");
    let status = sd.show(service, "StatusText");
    assert!(
        status.starts_with(&format!(
            "serving on 127.0.0.1:{port}, event log: SQLite /var/lib/private/livestore-sync/"
        )),
        "{status}"
    );
    for (property, value) in [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateUsers", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(sd.show(service, property), value, "{property}");
    }
    let mut families: Vec<String> = sd
        .show(service, "RestrictAddressFamilies")
        .split_whitespace()
        .map(String::from)
        .collect();
    families.sort();
    assert_eq!(families, ["AF_INET", "AF_INET6", "AF_UNIX"]);

    // Serving: TCP, threads, the state directory.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ws = Ws::v03(addr, "live");
    ws.push_v03_acked("r1", &events(1, 3, "c"));
    drop(ws);
    let (code, _, body) = http(addr, "GET", "/health", &[], "");
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = http(addr, "GET", &v03_path("live", "not-the-token"), &[], "");
    assert_eq!(code, 401);

    // journald: our priorities, journald's timestamps.
    sd.wait_until("the refusal in the journal", || {
        sd.journal("livestore-sync.service")
            .contains("refused request")
    });
    let entries = sd.journal_json(service);
    let priority_of = |text: &str| -> String {
        entries
            .iter()
            .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(text)))
            .map(|e| e["PRIORITY"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no journal entry with `{text}`: {entries:#?}"))
    };
    assert_eq!(priority_of("listening on 127.0.0.1:"), "6");
    assert_eq!(priority_of("refused request store=\"live\""), "4");
    for e in &entries {
        let m = e["MESSAGE"].as_str().unwrap_or("");
        assert!(
            !m.starts_with('<') && !m.starts_with("20"),
            "a prefix or timestamp left in the message: {m:?}"
        );
    }

    // The watchdog is fed: its timestamp moves on, twice.
    let fed = || sd.show(service, "WatchdogTimestampMonotonic");
    let first = fed();
    sd.wait_until("a first WATCHDOG=1", || fed() != first);
    let second = fed();
    sd.wait_until("a second WATCHDOG=1", || fed() != second);
    assert_eq!(sd.show(service, "NRestarts"), "0");
    // A frozen server is not: systemd kills it and starts it again.
    let frozen = sd.show(service, "MainPID");
    let ok = sd
        .inside("kill")
        .args(["-STOP", &frozen])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    sd.wait_until("a restart by the watchdog", || {
        sd.show(service, "NRestarts") == "1" && sd.show(service, "ActiveState") == "active"
    });
    assert_ne!(sd.show(service, "MainPID"), frozen);
    let (code, _, body) = http(addr, "GET", "/health", &[], "");
    assert_eq!(code, 200, "{body}");

    // A clean stop.
    sd.ctl(&["stop", service]);
    assert_eq!(sd.show(service, "Result"), "success");
    assert_eq!(sd.show(service, "ExecMainStatus"), "0");

    // On PostgreSQL.
    let db = TestDb::create("systemd_live");
    sd.drop_in(service, "test", &settings(port, Some(&db.url)));
    sd.ctl(&["start", service]);
    let mut ws = Ws::v03(addr, "live-pg");
    ws.push_v03_acked("r1", &events(1, 2, "c"));
    drop(ws);
    assert_eq!(db.event_rows("live-pg"), 2);
    sd.ctl(&["stop", service]);
    assert_eq!(sd.show(service, "Result"), "success");

    // Socket activation: the socket unit holds another port; the first
    // client starts the server on it.
    let socket_port = free_port();
    sd.drop_in(service, "test", &settings(port, None));
    sd.drop_in(
        "livestore-sync.socket",
        "test",
        &format!("[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=\nListenStream=127.0.0.1:{socket_port}\n"),
    );
    sd.ctl(&["start", "livestore-sync.socket"]);
    assert_eq!(sd.show(service, "ActiveState"), "inactive");
    let activated: SocketAddr = format!("127.0.0.1:{socket_port}").parse().unwrap();
    let mut ws = Ws::v03(activated, "live-socket");
    ws.push_v03_acked("r1", &events(1, 2, "c"));
    drop(ws);
    assert_eq!(sd.show(service, "ActiveState"), "active");
    assert!(
        sd.show(service, "StatusText")
            .starts_with(&format!("serving on 127.0.0.1:{socket_port},")),
        "{}",
        sd.show(service, "StatusText")
    );
    assert!(sd
        .journal(service)
        .contains("serving the socket systemd passed"));
    sd.ctl(&["stop", "livestore-sync.socket", service]);
    assert_eq!(sd.show(service, "Result"), "success");
}
