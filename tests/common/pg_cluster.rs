//! A throwaway PostgreSQL cluster of the installed PostgreSQL: `initdb` in
//! a temporary directory, its own port on 127.0.0.1 and its own socket
//! directory, trust authentication, the superuser `postgres`. Started,
//! stopped and restarted at will; stopped and removed on drop.
//!
//! For tests that do to PostgreSQL what would break the other tests on the
//! shared one (restart it, refuse logins), and for running the tests where
//! no PostgreSQL answers on the default address:
//!
//! ```ignore
//! let pg = PgCluster::start();
//! let url = pg.url("livestore"); // the server creates the database
//! pg.restart();
//! ```
//!
//! The binaries: `PG_BIN_DIR` if set, else `pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin`, else `initdb` on the PATH. PostgreSQL
//! refuses to run as root, so as root the cluster belongs to the `postgres`
//! user and every command runs through `runuser -u postgres`.
//!
//! A test process aborted by its watchdog cannot stop its cluster; the next
//! `PgCluster::start` stops and removes clusters whose process is gone.
//! The same goes for a cluster shared by a whole test binary through a
//! `static` (statics are never dropped): it outlives the binary until the
//! next start removes it, so such a harness should stop it itself.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::server::free_port;

/// What the directories are called: `lss-pg-<pid>-<n>` in the temp dir.
const PREFIX: &str = "lss-pg-";

pub struct PgCluster {
    pub port: u16,
    /// Holds `data/`, the log and the socket.
    dir: PathBuf,
    bin: PathBuf,
    /// `Some("postgres")` when this process runs as root.
    run_as: Option<String>,
}

impl PgCluster {
    /// Creates and starts a cluster; panics with what is missing if it
    /// cannot.
    pub fn start() -> PgCluster {
        remove_orphans();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let out = Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(&dir)
                .output()
                .expect("run chown");
            assert!(
                out.status.success(),
                "as root the cluster runs as `{user}`, which needs to exist \
                 (the postgresql package creates it): chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let cluster = PgCluster {
            port: free_port(),
            dir,
            bin: bin_dir(),
            run_as,
        };
        let data = cluster.data();
        cluster.run_ok(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                // No fsync: a test cluster need not survive a power cut.
                "--no-sync",
            ],
        );
        cluster.start_server();
        cluster
    }

    /// For a cluster shared by a whole test binary (a `static`, never
    /// dropped): a small shell process outlives this one and stops and
    /// removes the cluster once this process is gone, so `cargo test`
    /// leaves nothing running.
    pub fn remove_when_this_process_ends(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.run_as {
            Some(u) => format!(
                "runuser -u {u} -- '{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                self.data()
            ),
            None => format!(
                "'{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                self.data()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        let mut reaper = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the cluster's reaper");
        // It is meant to outlive this process; a thread reaps it should it end first.
        std::thread::spawn(move || reaper.wait());
    }

    /// A URL for database `db` (which need not exist yet) as `postgres`.
    pub fn url(&self, db: &str) -> String {
        self.url_as("postgres", db)
    }

    /// A URL for database `db` as `user`.
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to the `postgres` database as the superuser.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}\n{}", self.log_tail(20)))
    }

    /// Starts the server (after [`stop`](Self::stop)); returns once it
    /// accepts connections.
    pub fn start_server(&self) {
        let (data, log, opts) = (self.data(), self.log_path(), self.options());
        self.run_ok(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        );
    }

    /// Stops the server: `mode` is `smart`, `fast` (sessions are ended, a
    /// clean shutdown) or `immediate` (like a crash).
    pub fn stop(&self, mode: &str) {
        self.run_ok("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"]);
    }

    /// `pg_ctl restart -m fast`: every session is ended, and the server is
    /// back, accepting connections, when this returns.
    pub fn restart(&self) {
        let (data, opts) = (self.data(), self.options());
        self.run_ok(
            "pg_ctl",
            &[
                "-D", &data, "-o", &opts, "-m", "fast", "-w", "-t", "60", "restart",
            ],
        );
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "test cluster log (tail):\n{}",
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log_path(&self) -> String {
        self.dir.join("log").display().to_string()
    }

    /// The server's settings: this port, loopback only, the socket in our
    /// directory (not /var/run/postgresql, which may not be ours).
    fn options(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        )
    }

    /// Runs `tool` and returns its exit status and output. The output goes
    /// through a file, not a pipe: the server that `pg_ctl start` leaves
    /// running keeps a descriptor of its parent's output open, so reading
    /// a pipe to its end would wait for the server to stop.
    fn run(&self, tool: &str, args: &[&str]) -> (ExitStatus, String) {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out_path = self.dir.join("command.out");
        let out = std::fs::File::create(&out_path).expect("create command.out");
        let status = cmd
            .args(args)
            .current_dir(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        (
            status,
            std::fs::read_to_string(&out_path).unwrap_or_default(),
        )
    }

    fn run_ok(&self, tool: &str, args: &[&str]) {
        let (status, output) = self.run(tool, args);
        assert!(
            status.success(),
            "{tool} {args:?}: {status}\n{output}\n{}",
            self.log_tail(20)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process runs as root (`Uid:` of /proc/self/status; no
/// libc binding needed).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Where `initdb` and `pg_ctl` are.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return dir;
        }
    }
    // Debian keeps them off the PATH, one directory per major version.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_initdb(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return dir;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| has_initdb(d))
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries (initdb, pg_ctl) found: install them \
                 (`apt-get install -y postgresql`) or set PG_BIN_DIR"
            )
        })
}

/// Stops and removes the clusters of test processes that are gone (a
/// watchdog abort skips `Drop`).
fn remove_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let orphan = PgCluster {
            port: 0,
            dir: e.path(),
            bin: bin_dir(),
            run_as: is_root().then(|| "postgres".to_string()),
        };
        drop(orphan); // pg_ctl stop -m immediate, then the directory goes
    }
}
