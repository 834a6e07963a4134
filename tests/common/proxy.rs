//! The real reverse proxies (nginx, Caddy) as child processes, each run
//! with the committed configuration from `docs/deploy/` with only its
//! addresses changed: the three upstreams, the listen port, and what a
//! test needs of its own (files in a temporary directory, no admin API).
//! Missing proxies fail the test with what to install: a deployment test
//! that skips proves nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::server::free_port;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Nginx,
    Caddy,
}

impl ProxyKind {
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Caddy => "caddy",
        }
    }

    /// The committed configuration this proxy runs with.
    pub fn config_path(self) -> PathBuf {
        let file = match self {
            ProxyKind::Nginx => "nginx.conf",
            ProxyKind::Caddy => "Caddyfile",
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("docs/deploy")
            .join(file)
    }
}

/// The upstream addresses the committed configurations name; a test
/// replaces each with one of its instances.
pub const CONFIG_UPSTREAMS: [&str; 3] = ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"];

/// A proxy process in front of three instances; stopped (and its
/// directory removed) on drop.
pub struct Proxy {
    pub kind: ProxyKind,
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
    /// Caddy's log (its stderr); nginx writes `error.log` in `dir`.
    log: Arc<Mutex<Vec<String>>>,
}

/// `name` on the PATH or in the sbin directories (nginx lives in
/// /usr/sbin, which a non-root PATH may lack).
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Replaces `from` by `to` in `text`, which must hold it exactly `n` times
/// (a changed committed config fails here, not in some later timeout).
fn replace_n(text: &str, from: &str, to: &str, n: usize, file: &Path) -> String {
    let found = text.matches(from).count();
    assert_eq!(
        found,
        n,
        "{}: expected `{from}` {n} time(s), found {found}; update tests/common/proxy.rs",
        file.display()
    );
    text.replace(from, to)
}

impl Proxy {
    /// Starts `kind` on a free port of 127.0.0.1 in front of `upstreams`
    /// (three, like the committed configuration) and waits until `/health`
    /// answers 200 through it.
    pub fn start(kind: ProxyKind, upstreams: &[SocketAddr]) -> Proxy {
        assert_eq!(upstreams.len(), 3, "the configurations balance 3 instances");
        let bin = find_binary(kind.name()).unwrap_or_else(|| {
            panic!(
                "{name} is not installed, and the deployment tests run the real proxy: \
                 install it with `apt-get install -y {name}` (.ci/run does)",
                name = kind.name()
            )
        });
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("lss-{}-{}-{n}", kind.name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let src = kind.config_path();
        let mut config = std::fs::read_to_string(&src).unwrap();
        for (from, to) in CONFIG_UPSTREAMS.iter().zip(upstreams) {
            config = replace_n(&config, from, &to.to_string(), 1, &src);
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut child = match kind {
            ProxyKind::Nginx => {
                let site = replace_n(
                    &config,
                    "listen 80;",
                    &format!("listen 127.0.0.1:{port};"),
                    1,
                    &src,
                );
                std::fs::write(dir.join("site.conf"), site).unwrap();
                // The committed file is an http-level snippet (conf.d); the
                // main file around it keeps every path in `dir`.
                let d = dir.display();
                let main = format!(
                    "pid {d}/nginx.pid;\n\
                     error_log {d}/error.log info;\n\
                     worker_processes 1;\n\
                     events {{ worker_connections 1024; }}\n\
                     http {{\n\
                     \x20 log_format lss '$time_local \"$request_method $uri\" $status \
                     upstream=$upstream_addr $upstream_status';\n\
                     \x20 access_log {d}/access.log lss;\n\
                     \x20 client_body_temp_path {d}/client_body;\n\
                     \x20 proxy_temp_path {d}/proxy;\n\
                     \x20 fastcgi_temp_path {d}/fastcgi;\n\
                     \x20 uwsgi_temp_path {d}/uwsgi;\n\
                     \x20 scgi_temp_path {d}/scgi;\n\
                     \x20 include {d}/site.conf;\n\
                     }}\n"
                );
                std::fs::write(dir.join("nginx.conf"), main).unwrap();
                Command::new(&bin)
                    .arg("-p")
                    .arg(&dir)
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .args(["-g", "daemon off;"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
            }
            ProxyKind::Caddy => {
                // No admin API (nothing reloads this one), listen on
                // loopback only, plain HTTP instead of the site's TLS.
                let site = replace_n(
                    &config,
                    "\nsync.example.com {\n",
                    &format!("\nhttp://:{port} {{\n\tbind 127.0.0.1\n"),
                    1,
                    &src,
                );
                let file = dir.join("Caddyfile");
                std::fs::write(&file, format!("{{\n\tadmin off\n}}\n\n{site}")).unwrap();
                let mut child = Command::new(&bin)
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&file)
                    // Caddy keeps state under these; not in the real home.
                    .env("HOME", &dir)
                    .env("XDG_DATA_HOME", dir.join("data"))
                    .env("XDG_CONFIG_HOME", dir.join("config"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
                let stderr = child.stderr.take().unwrap();
                let log2 = log.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(stderr)
                        .lines()
                        .map_while(Result::ok)
                    {
                        if std::env::var_os("SHOW_PROXY_LOG").is_some() {
                            eprintln!("[caddy] {line}");
                        }
                        log2.lock().push(line);
                    }
                });
                child
            }
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let failed = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(format!("exited at start ({status})"));
            }
            if let Some(200) = health_status(addr) {
                break None;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break Some("did not answer /health with 200 within 20 s".to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let p = Proxy {
            kind,
            addr,
            child,
            dir,
            log,
        };
        if let Some(why) = failed {
            panic!("{} {why}:\n{}", kind.name(), p.log_tail(40));
        }
        p
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last `n` lines of the proxy's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let lines: Vec<String> = match self.kind {
            ProxyKind::Caddy => self.log.lock().clone(),
            ProxyKind::Nginx => std::fs::read_to_string(self.dir.join("error.log"))
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect(),
        };
        let from = lines.len().saturating_sub(n);
        format!(
            "{} log (tail):\n{}",
            self.kind.name(),
            lines[from..]
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

/// The status of `GET /health` at `addr`, or `None` if nothing answered.
fn health_status(addr: SocketAddr) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: nginx's master stops its workers on TERM,
        // while a killed master would leave them running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("KEEP_PROXY_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
