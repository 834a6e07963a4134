//! The real reverse proxies (nginx, Caddy) as child processes, each run
//! with the committed configuration from `docs/deploy/` with only its
//! addresses changed: the three upstreams, the listen port, and what a
//! test needs of its own (files in a temporary directory, no admin API,
//! a throwaway CA's certificate instead of the site's). Over TLS
//! ([`Proxy::start_tls`], what the committed files serve) or plain HTTP
//! ([`Proxy::start`], the TLS taken out: the multi-instance tests' raw
//! WebSocket clients speak no TLS).
//! Missing proxies (or openssl) fail the test with what to install: a
//! deployment test that skips proves nothing.

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

/// The certificate lines of the committed nginx.conf (certbot's layout); a
/// test puts its throwaway certificate's paths in their place.
pub const NGINX_CERT: &str = "/etc/letsencrypt/live/sync.example.com/fullchain.pem";
pub const NGINX_KEY: &str = "/etc/letsencrypt/live/sync.example.com/privkey.pem";

/// A throwaway certificate authority and a server certificate it signed
/// for `127.0.0.1` and `localhost` (openssl; valid for two days).
pub struct TestCerts {
    /// The CA's certificate: what clients are told to trust
    /// (`NODE_EXTRA_CA_CERTS`, `openssl s_client -CAfile`).
    pub ca: PathBuf,
    /// The server's certificate and key, for the proxy.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    /// Generates them in `dir`.
    pub fn generate(dir: &Path) -> TestCerts {
        let openssl = find_binary("openssl").unwrap_or_else(|| {
            panic!("openssl is not installed, and the TLS tests make their certificates with it: apt-get install -y openssl")
        });
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=livestore-sync test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// A proxy process in front of three instances; stopped (and its
/// directory removed) on drop.
pub struct Proxy {
    pub kind: ProxyKind,
    pub addr: SocketAddr,
    /// Over TLS: the CA that signed the proxy's certificate.
    pub tls: Option<TestCerts>,
    /// nginx's plain-HTTP server, which redirects to https://.
    pub redirect_addr: Option<SocketAddr>,
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
    /// (three, like the committed configuration), plain HTTP, and waits
    /// until `/health` answers 200 through it.
    pub fn start(kind: ProxyKind, upstreams: &[SocketAddr]) -> Proxy {
        Self::start_with(kind, upstreams, false)
    }

    /// Like [`Proxy::start`], over TLS with a throwaway CA's certificate
    /// ([`Proxy::tls`]): clients use `wss://` and `https://` URLs.
    pub fn start_tls(kind: ProxyKind, upstreams: &[SocketAddr]) -> Proxy {
        Self::start_with(kind, upstreams, true)
    }

    fn start_with(kind: ProxyKind, upstreams: &[SocketAddr], tls: bool) -> Proxy {
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
        let certs = TestCerts::generate(&dir);
        let mut redirect_addr = None;
        let src = kind.config_path();
        let mut config = std::fs::read_to_string(&src).unwrap();
        for (from, to) in CONFIG_UPSTREAMS.iter().zip(upstreams) {
            config = replace_n(&config, from, &to.to_string(), 1, &src);
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut child = match kind {
            ProxyKind::Nginx => {
                let listen = if tls { " ssl" } else { "" };
                let site = replace_n(
                    &config,
                    "listen 443 ssl;",
                    &format!("listen 127.0.0.1:{port}{listen};"),
                    1,
                    &src,
                );
                // The plain-HTTP server that redirects to https://.
                let redirect = free_port();
                redirect_addr = Some(SocketAddr::from(([127, 0, 0, 1], redirect)));
                let site = replace_n(
                    &site,
                    "listen 80;",
                    &format!("listen 127.0.0.1:{redirect};"),
                    1,
                    &src,
                );
                let site = replace_n(
                    &site,
                    NGINX_CERT,
                    &certs.cert.display().to_string(),
                    1,
                    &src,
                );
                let site = replace_n(&site, NGINX_KEY, &certs.key.display().to_string(), 1, &src);
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
                // loopback only; over TLS with the test's certificate
                // instead of one from an ACME CA, and no redirect server
                // on port 80; otherwise plain HTTP.
                let address = if tls {
                    format!(
                        "https://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n\ttls {} {}\n",
                        certs.cert.display(),
                        certs.key.display()
                    )
                } else {
                    format!("http://:{port} {{\n\tbind 127.0.0.1\n")
                };
                let site = replace_n(
                    &config,
                    "\nsync.example.com {\n",
                    &format!("\n{address}"),
                    1,
                    &src,
                );
                let file = dir.join("Caddyfile");
                std::fs::write(
                    &file,
                    format!("{{\n\tadmin off\n\tauto_https disable_redirects\n}}\n\n{site}"),
                )
                .unwrap();
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
            let status = if tls {
                https_get(addr, &certs.ca, "/health").map(|(status, _)| status)
            } else {
                health_status(addr)
            };
            if let Some(200) = status {
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
            tls: tls.then_some(certs),
            redirect_addr,
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
        let s = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{s}://{}", self.addr)
    }

    pub fn http_url(&self) -> String {
        let s = if self.tls.is_some() { "https" } else { "http" };
        format!("{s}://{}", self.addr)
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

/// `GET path` over TLS at `addr` with `openssl s_client`, trusting only
/// `ca` and checking the certificate names 127.0.0.1: the status and the
/// body, or `None` if the handshake or the request failed (or took over
/// 10 s).
pub fn https_get(addr: SocketAddr, ca: &Path, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let openssl = find_binary("openssl")?;
    let mut child = Command::new(openssl)
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
        ])
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // stdin stays open until the answer is read: s_client would end the
    // TLS session when its input ends, perhaps before the answer.
    let mut stdin = child.stdin.take()?;
    let _ = stdin.write_all(request.as_bytes());
    let mut stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(Duration::from_secs(10)).ok();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8(out?).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
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

/// Three instances on one PostgreSQL behind a proxy (`tests/proxy.rs`,
/// `tests/proxy_tls.rs`), the clients' [`Target`](super::node::Target).
pub struct Deployment {
    /// Always PostgreSQL: several instances share it.
    pub log: super::db::EventLog,
    pub servers: Vec<super::server::ServerProcess>,
    pub proxy: Proxy,
}

impl Deployment {
    /// Starts the instances with `token` and `admin`, then `kind` in front
    /// of them, over TLS when `tls`.
    pub fn start(kind: ProxyKind, tag: &str, token: &str, admin: &str, tls: bool) -> Deployment {
        let log = super::db::EventLog::postgres(tag);
        let servers: Vec<super::server::ServerProcess> = (0..3)
            .map(|_| {
                super::server::ServerProcess::start(
                    &log.url(),
                    &["--auth-token", token, "--admin-secret", admin],
                )
            })
            .collect();
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let proxy = Proxy::start_with(kind, &addrs, tls);
        Deployment {
            log,
            servers,
            proxy,
        }
    }

    pub fn db(&self) -> &super::db::TestDb {
        self.log.pg()
    }
}

impl super::node::Target for Deployment {
    fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }
    fn context(&self) -> String {
        let servers: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("instance {i} ({}): {}", s.addr, s.context()))
            .collect();
        format!("{}\n{}", self.proxy.log_tail(40), servers.join("\n"))
    }
    fn tls_ca(&self) -> Option<&Path> {
        self.proxy.tls.as_ref().map(|t| t.ca.as_path())
    }
}

impl Deployment {
    /// A real 0.3 and a real 0.4 WebSocket writer (`{prefix}03`,
    /// `{prefix}04`), released together so that their first pushes race,
    /// converge on `store` through the proxy; at least one push is refused
    /// (they did race). WebSockets only, so that nothing else takes a turn
    /// of the round robin between their two connections. Returns the
    /// writers and every id they wrote.
    pub fn race_writers(
        &self,
        store: &str,
        prefix: &str,
    ) -> (
        Vec<super::node::ClientSpec>,
        std::collections::BTreeSet<String>,
    ) {
        use super::node::{assert_converged, run_all, ClientSpec, Kind, Target, EVENTS_PER_WRITER};
        let writers: Vec<ClientSpec> = [(Kind::V03, "03"), (Kind::V04Ws, "04")]
            .into_iter()
            .map(|(k, suffix)| ClientSpec {
                wait_go: true,
                ..ClientSpec::writer(k, &format!("{prefix}{suffix}"), 2 * EVENTS_PER_WRITER)
            })
            .collect();
        let all_ids: std::collections::BTreeSet<String> =
            writers.iter().flat_map(|w| w.own_ids()).collect();
        let results = run_all(self, &self.log, store, &writers);
        for r in &results {
            assert_converged(r, &all_ids, self);
        }
        let refused: u64 = results
            .iter()
            .map(|r| r.field("rejectedPushes").as_u64().unwrap_or(0))
            .sum();
        assert!(refused >= 1, "the writers did not race\n{}", self.context());
        (writers, all_ids)
    }
}
