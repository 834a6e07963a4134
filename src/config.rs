//! Every setting and limit in one place: environment variable, command-line
//! flag, default, and one line on what it does. `--help` prints this table.
//!
//! Precedence: a flag beats the environment, the environment beats the default.

use std::fmt::Write as _;
use std::time::Duration;

/// The defaults of the original FastAPI design this server replaces; using
/// either in production is a mistake, so `main` warns loudly.
pub const DEFAULT_AUTH_TOKEN: &str = "insecure-token-change-me";
pub const DEFAULT_ADMIN_SECRET: &str = "change-me-admin-secret";
/// Where the SQLite database lives when neither `DATA_DIR` nor systemd's
/// `STATE_DIRECTORY` says (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "./data";

/// All settings of one server instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// `None` (unset or empty): the embedded SQLite database in `data_dir`.
    /// `postgresql://…`/`postgres://…`: PostgreSQL (the database is created
    /// if it does not exist). `sqlite:///path/file.db`: that SQLite file.
    pub database_url: Option<String>,
    /// Where the SQLite database (`livestore.db`) lives when `database_url`
    /// is unset; created if missing. Default `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`), else `./data`.
    pub data_dir: std::path::PathBuf,
    /// Static tokens (one, or a comma-separated list), each opening every
    /// store: clients send one as `syncPayload.authToken` or `Authorization:
    /// Bearer`. With a JWT key set, the default value is not accepted.
    pub auth_token: String,
    /// HS256 secret of signed tokens (JWT); see `auth.rs` for the claims.
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA: RS256, Ed25519: EdDSA) of signed tokens.
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// JWK set (RSA and Ed25519 keys, matched by `kid`) of signed tokens.
    pub jwt_jwks_file: Option<std::path::PathBuf>,
    /// When set, a signed token's `aud` must hold it.
    pub jwt_audience: Option<String>,
    /// When set, a signed token's `iss` must equal it.
    pub jwt_issuer: Option<String>,
    /// Admin messages (0.3 `AdminInfoReq`, `AdminResetRoomReq`) must carry this.
    pub admin_secret: String,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on (0 lets the OS choose; the chosen one is logged).
    pub port: u16,
    /// Idle PostgreSQL connections kept open.
    pub db_pool_min: u32,
    /// Most PostgreSQL connections open at once.
    pub db_pool_max: u32,
    /// How long a request waits for a free PostgreSQL connection.
    pub db_pool_timeout: Duration,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: log::LevelFilter,
    /// Origins allowed to call the HTTP endpoints from a browser: `*`, or a
    /// comma-separated list of exact origins, or empty to send no CORS headers.
    pub cors_origins: Vec<String>,
    /// Who may read `GET /metrics` (see [`MetricsAccess`]).
    pub metrics: MetricsAccess,
    /// Limits that size memory and time per connection.
    pub limits: Limits,
}

/// Who may read `GET /metrics`. The `/status` page always needs the admin secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Only with `Authorization: Bearer <ADMIN_SECRET>` (the default).
    Admin,
    /// Anyone who can reach the port (keep the port private, or let a proxy
    /// restrict the path).
    Public,
    /// `404`: no metrics at all.
    Off,
}

impl std::str::FromStr for MetricsAccess {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        match v.trim() {
            "admin" => Ok(MetricsAccess::Admin),
            "public" => Ok(MetricsAccess::Public),
            "off" => Ok(MetricsAccess::Off),
            other => Err(format!("`{other}` is not one of public, admin, off")),
        }
    }
}

/// Per-connection limits. Each one trades memory or latency for robustness;
/// the defaults are sized so that 10,000 idle WebSockets fit in about half a
/// GiB of RAM (see docs/ARCHITECTURE.md, "Memory per connection").
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open TCP connections (HTTP and WebSocket together). Past it, a new
    /// connection gets `503` and is closed. Default 50,000 (lowered at start
    /// to what the OS limits allow, see `server::capacity`).
    pub max_connections: usize,
    /// Open TCP connections from one client address. Past it, a new
    /// connection gets `429` (`Too many connections from your address`) and
    /// is closed. `127.0.0.1` and `::1` are not counted: a proxy on the same
    /// machine connects from there for every client (a proxy elsewhere: set
    /// this to `0`, no limit, or to `MAX_CONNECTIONS`). Default 1,000.
    pub max_connections_per_ip: usize,
    /// Time from a connection's opening (or, between keep-alive requests,
    /// from a request's first byte) until its request head (request line and
    /// headers) has arrived. Past it: `408` and the connection is closed, so
    /// a client trickling bytes (slow-loris) holds a thread this long at
    /// most. Default 10 s.
    pub request_head_timeout: Duration,
    /// Largest WebSocket message and HTTP body accepted, in bytes. LiveStore
    /// never splits a push by bytes, so this bounds the largest push. Default 32 MiB.
    pub max_message_bytes: usize,
    /// Events in one push. A larger push is refused with the protocol's push
    /// error (0.3 `WSMessage.Error`, 0.4 `UnknownError`), nothing stored.
    /// LiveStore batches at most 100 (0.4) or 50 (0.3). Default 1,000.
    pub max_push_events: usize,
    /// Bytes of one push's message (the WebSocket message or HTTP body);
    /// refused like `max_push_events`. Below `max_message_bytes`, which ends
    /// the socket instead. Default 16 MiB.
    pub max_push_bytes: usize,
    /// Pushes per second one connection may send (a token bucket holding
    /// one second's worth). A faster push is not refused: the connection's
    /// reader waits until it is due, so the pusher is slowed and nothing is
    /// lost. On 0.4 HTTP every POST of a keep-alive connection counts. `0`:
    /// no limit. Default 100.
    pub pushes_per_second: u32,
    /// Messages queued for one WebSocket's writer thread before the socket
    /// counts as too slow and is dropped (the client reconnects and pulls).
    /// The queue's blocks are allocated as messages arrive, so a larger bound
    /// costs an idle socket nothing. 64 dropped healthy subscribers in a
    /// 100-subscriber fan-out on two cores (their writer threads did not run
    /// for 64 pushes; BENCHMARKS.md). Default 128.
    pub outbound_queue: usize,
    /// Bytes queued for one WebSocket's writer before the socket counts as
    /// too slow (broadcasts) or its own reply waits (pull pages). A single
    /// larger message is still taken when nothing else is queued. Without
    /// it, a 0.3 pull could queue 128 pages of ~900 kB. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// Live batches one subscription holds (estimated JSON bytes) while its
    /// pull answer is being sent (a 0.4 client that stops sending `Ack`s
    /// stays there); past it they are dropped and read from the log when
    /// the answer ends. Default 4 MiB.
    pub max_held_bytes: usize,
    /// Store entries kept in memory; past it, entries no socket uses are
    /// forgotten (reloaded from storage on next use). Default 10,000.
    pub max_stores: usize,
    /// Open 0.4 pull streams per WebSocket; one more is answered with a
    /// per-request failure. Real clients keep one or two. Default 8.
    pub max_pull_streams: usize,
    /// Bytes of one 0.4 HTTP pull answer (built in memory before it is
    /// sent). A larger backlog ends with `MoreKnown` and the client's next
    /// poll (every 5 s) continues from its last event. Default 16 MiB.
    pub max_http_pull_bytes: usize,
    /// Backlog chunks of one 0.4 pull sent ahead of the client's `Ack`s.
    /// The reference server uses 1; more hides round trips (a 10,000-event
    /// pull, medians of 5: 269k events/s at 4, 309k at 16; BENCHMARKS.md,
    /// first session). Default 16.
    pub ack_window: usize,
    /// Rows read from storage per query while serving a pull. Default 1,000.
    pub storage_read_rows: usize,
    /// Stack of a connection's reader thread (it runs the handlers and the
    /// PostgreSQL calls). Only touched pages cost memory. Default 256 KiB.
    pub reader_stack: usize,
    /// Stack of a WebSocket's writer thread (it only frames and writes).
    /// Default 64 KiB.
    pub writer_stack: usize,
    /// tungstenite's read buffer per WebSocket: reserved up front and filled
    /// with zeros before each read, so every socket holds this much; a read
    /// syscall takes at most this many bytes (bigger frames grow the buffer
    /// to their size). Default 2 KiB; tungstenite's own default of 128 KiB
    /// would cost 128 KiB per idle socket.
    pub ws_read_buffer: usize,
    /// A WebSocket that sends nothing for this long is closed (clients ping
    /// every 10 s (0.4) or 25 s (0.3)). Default 90 s.
    pub ws_idle_timeout: Duration,
    /// A write that blocks this long drops the socket. Default 30 s.
    pub write_timeout: Duration,
    /// An idle keep-alive HTTP connection is closed after this. Default 60 s.
    pub http_keep_alive: Duration,
    /// How long shutdown waits for connections to finish. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 50_000,
            max_connections_per_ip: 1_000,
            request_head_timeout: Duration::from_secs(10),
            max_message_bytes: 32 * 1024 * 1024,
            max_push_events: 1_000,
            max_push_bytes: 16 << 20,
            pushes_per_second: 100,
            outbound_queue: 128,
            max_queued_bytes: 16 << 20,
            max_held_bytes: 4 << 20,
            max_stores: 10_000,
            max_pull_streams: 8,
            max_http_pull_bytes: 16 << 20,
            ack_window: 16,
            storage_read_rows: 1000,
            reader_stack: 256 * 1024,
            writer_stack: 64 * 1024,
            ws_read_buffer: 2048,
            ws_idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(30),
            http_keep_alive: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            data_dir: DEFAULT_DATA_DIR.into(),
            auth_token: DEFAULT_AUTH_TOKEN.to_string(),
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_jwks_file: None,
            jwt_audience: None,
            jwt_issuer: None,
            admin_secret: DEFAULT_ADMIN_SECRET.to_string(),
            host: "0.0.0.0".to_string(),
            port: 8000,
            db_pool_min: 5,
            db_pool_max: 20,
            db_pool_timeout: Duration::from_secs(10),
            log_level: log::LevelFilter::Info,
            cors_origins: vec!["*".to_string()],
            metrics: MetricsAccess::Admin,
            limits: Limits::default(),
        }
    }
}

/// One setting as the user sees it: env var, flag, default, help line.
struct Setting {
    env: &'static str,
    flag: &'static str,
    default: String,
    help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

fn settings() -> Vec<Setting> {
    let d = Config::default();
    let l = &d.limits;
    macro_rules! s {
        ($env:literal, $flag:literal, $default:expr, $help:literal, $apply:expr) => {
            Setting {
                env: $env,
                flag: $flag,
                default: $default.to_string(),
                help: $help,
                apply: $apply,
            }
        };
    }
    vec![
        s!(
            "DATABASE_URL",
            "--database-url",
            "(unset: SQLite in DATA_DIR)",
            "postgresql://… (created if missing) or sqlite:///path/file.db",
            |c, v| {
                c.database_url = Some(v.trim().to_string()).filter(|v| !v.is_empty());
                Ok(())
            }
        ),
        s!(
            "DATA_DIR",
            "--data-dir",
            "$STATE_DIRECTORY, else ./data",
            "directory of the SQLite database (livestore.db) when DATABASE_URL is unset",
            |c, v| {
                if v.trim().is_empty() {
                    return Err("needs a directory".into());
                }
                c.data_dir = v.into();
                Ok(())
            }
        ),
        s!(
            "AUTH_TOKEN",
            "--auth-token",
            d.auth_token,
            "static token(s), comma-separated, each opening every store (syncPayload.authToken or Authorization: Bearer)",
            |c, v| {
                c.auth_token = v.to_string();
                Ok(())
            }
        ),
        s!(
            "JWT_SECRET",
            "--jwt-secret",
            "(unset)",
            "HS256 secret of signed tokens (JWT) naming the stores they grant",
            |c, v| {
                c.jwt_secret = Some(v.to_string()).filter(|v| !v.is_empty());
                Ok(())
            }
        ),
        s!(
            "JWT_PUBLIC_KEY_FILE",
            "--jwt-public-key-file",
            "(unset)",
            "PEM public key of signed tokens: RSA (RS256) or Ed25519 (EdDSA)",
            |c, v| {
                c.jwt_public_key_file = Some(v.trim()).filter(|v| !v.is_empty()).map(Into::into);
                Ok(())
            }
        ),
        s!(
            "JWT_JWKS_FILE",
            "--jwt-jwks-file",
            "(unset)",
            "JWK set file of signed tokens' public keys (RS256, EdDSA; by kid)",
            |c, v| {
                c.jwt_jwks_file = Some(v.trim()).filter(|v| !v.is_empty()).map(Into::into);
                Ok(())
            }
        ),
        s!(
            "JWT_AUDIENCE",
            "--jwt-audience",
            "(unset: aud not allowed)",
            "a signed token's aud must hold this",
            |c, v| {
                c.jwt_audience = Some(v.trim().to_string()).filter(|v| !v.is_empty());
                Ok(())
            }
        ),
        s!(
            "JWT_ISSUER",
            "--jwt-issuer",
            "(unset: any)",
            "a signed token's iss must equal this",
            |c, v| {
                c.jwt_issuer = Some(v.trim().to_string()).filter(|v| !v.is_empty());
                Ok(())
            }
        ),
        s!(
            "ADMIN_SECRET",
            "--admin-secret",
            d.admin_secret,
            "secret for 0.3 admin messages (info, reset)",
            |c, v| {
                c.admin_secret = v.to_string();
                Ok(())
            }
        ),
        s!("HOST", "--host", d.host, "address to listen on", |c, v| {
            c.host = v.to_string();
            Ok(())
        }),
        s!(
            "PORT",
            "--port",
            d.port,
            "port to listen on (0: any free port)",
            |c, v| {
                c.port = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "DB_POOL_MIN",
            "--db-pool-min",
            d.db_pool_min,
            "idle PostgreSQL connections kept open (PostgreSQL only)",
            |c, v| {
                c.db_pool_min = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "DB_POOL_MAX",
            "--db-pool-max",
            d.db_pool_max,
            "most PostgreSQL connections at once (PostgreSQL only)",
            |c, v| {
                c.db_pool_max = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "LOG_LEVEL",
            "--log-level",
            "info",
            "error, warn, info, debug or trace",
            |c, v| {
                c.log_level = v.parse().map_err(|_| format!("unknown log level `{v}`"))?;
                Ok(())
            }
        ),
        s!(
            "CORS_ORIGINS",
            "--cors-origins",
            "*",
            "origins allowed from browsers: *, a comma list, or empty for none",
            |c, v| {
                c.cors_origins = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                Ok(())
            }
        ),
        s!(
            "METRICS",
            "--metrics",
            "admin",
            "who may read GET /metrics: admin (Bearer ADMIN_SECRET), public, or off",
            |c, v| {
                c.metrics = v.parse()?;
                Ok(())
            }
        ),
        s!(
            "MAX_CONNECTIONS",
            "--max-connections",
            l.max_connections,
            "open connections before new ones get 503",
            |c, v| {
                c.limits.max_connections = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "MAX_CONNECTIONS_PER_IP",
            "--max-connections-per-ip",
            l.max_connections_per_ip,
            "open connections from one address before new ones get 429 (0: no limit; not 127.0.0.1, ::1)",
            |c, v| {
                c.limits.max_connections_per_ip = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "REQUEST_HEAD_TIMEOUT_SECS",
            "--request-head-timeout-secs",
            l.request_head_timeout.as_secs(),
            "seconds a request head may take to arrive before 408",
            |c, v| {
                c.limits.request_head_timeout = Duration::from_secs(parse::<u64>(v)?.max(1));
                Ok(())
            }
        ),
        s!(
            "MAX_PUSH_EVENTS",
            "--max-push-events",
            l.max_push_events,
            "events in one push; a larger push is refused",
            |c, v| {
                c.limits.max_push_events = parse::<usize>(v)?.max(1);
                Ok(())
            }
        ),
        s!(
            "MAX_PUSH_BYTES",
            "--max-push-bytes",
            l.max_push_bytes,
            "bytes of one push message; a larger push is refused",
            |c, v| {
                c.limits.max_push_bytes = parse::<usize>(v)?.max(1);
                Ok(())
            }
        ),
        s!(
            "PUSHES_PER_SECOND",
            "--pushes-per-second",
            l.pushes_per_second,
            "pushes per second per connection; faster ones wait (0: no limit)",
            |c, v| {
                c.limits.pushes_per_second = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "MAX_MESSAGE_BYTES",
            "--max-message-bytes",
            l.max_message_bytes,
            "largest WebSocket message / HTTP body",
            |c, v| {
                c.limits.max_message_bytes = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "OUTBOUND_QUEUE",
            "--outbound-queue",
            l.outbound_queue,
            "messages queued per socket before it is dropped as too slow",
            |c, v| {
                c.limits.outbound_queue = parse::<usize>(v)?.max(2);
                Ok(())
            }
        ),
        s!(
            "MAX_QUEUED_BYTES",
            "--max-queued-bytes",
            l.max_queued_bytes,
            "bytes queued per socket before it is dropped as too slow",
            |c, v| {
                c.limits.max_queued_bytes = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "MAX_HELD_BYTES",
            "--max-held-bytes",
            l.max_held_bytes,
            "live events a pull holds while its answer goes out; past it they are re-read",
            |c, v| {
                c.limits.max_held_bytes = parse(v)?;
                Ok(())
            }
        ),
        s!(
            "MAX_STORES",
            "--max-stores",
            l.max_stores,
            "store entries kept in memory; unused ones past it are forgotten",
            |c, v| {
                c.limits.max_stores = parse::<usize>(v)?.max(1);
                Ok(())
            }
        ),
        s!(
            "MAX_PULL_STREAMS",
            "--max-pull-streams",
            l.max_pull_streams,
            "open 0.4 pull streams per WebSocket",
            |c, v| {
                c.limits.max_pull_streams = parse::<usize>(v)?.max(1);
                Ok(())
            }
        ),
        s!(
            "MAX_HTTP_PULL_BYTES",
            "--max-http-pull-bytes",
            l.max_http_pull_bytes,
            "bytes of one 0.4 HTTP pull answer; the client polls for the rest",
            |c, v| {
                c.limits.max_http_pull_bytes = parse::<usize>(v)?.max(1);
                Ok(())
            }
        ),
        s!(
            "ACK_WINDOW",
            "--ack-window",
            l.ack_window,
            "0.4 backlog chunks sent ahead of the client's Acks",
            |c, v| {
                c.limits.ack_window = parse::<usize>(v)?.max(1);
                Ok(())
            }
        ),
        s!(
            "WS_IDLE_TIMEOUT_SECS",
            "--ws-idle-timeout-secs",
            l.ws_idle_timeout.as_secs(),
            "close a WebSocket silent this long",
            |c, v| {
                c.limits.ws_idle_timeout = Duration::from_secs(parse(v)?);
                Ok(())
            }
        ),
        s!(
            "SHUTDOWN_GRACE_SECS",
            "--shutdown-grace-secs",
            l.shutdown_grace.as_secs(),
            "how long shutdown waits for connections",
            |c, v| {
                c.limits.shutdown_grace = Duration::from_secs(parse(v)?);
                Ok(())
            }
        ),
    ]
}

fn parse<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a valid value"))
}

/// What the command line asked for.
pub enum Cli {
    Run(Box<Config>),
    Help(String),
    Version,
}

impl Config {
    /// Reads the environment (through `env`) and then the flags in `args`
    /// (without the program name).
    pub fn from_env_and_args(
        env: impl Fn(&str) -> Option<String>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Cli, String> {
        let settings = settings();
        let mut config = Config::default();
        // systemd's `StateDirectory=` (its first path when it names several);
        // DATA_DIR and --data-dir still win.
        if let Some(dir) = env("STATE_DIRECTORY") {
            if let Some(first) = dir.split(':').next().filter(|d| !d.is_empty()) {
                config.data_dir = first.into();
            }
        }
        for s in &settings {
            if let Some(v) = env(s.env) {
                (s.apply)(&mut config, &v).map_err(|e| format!("{}: {e}", s.env))?;
            }
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(Cli::Help(help_text()));
            }
            if arg == "--version" || arg == "-V" {
                return Ok(Cli::Version);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let s = settings
                .iter()
                .find(|s| s.flag == flag)
                .ok_or_else(|| format!("unknown argument `{arg}` (see --help)"))?;
            let value = match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
            };
            (s.apply)(&mut config, &value).map_err(|e| format!("{flag}: {e}"))?;
        }
        Ok(Cli::Run(Box::new(config)))
    }

    /// Whether a JWT key is set (signed tokens are accepted).
    pub fn jwt_configured(&self) -> bool {
        self.jwt_secret.is_some()
            || self.jwt_public_key_file.is_some()
            || self.jwt_jwks_file.is_some()
    }

    /// The settings that still hold a well-known default secret.
    pub fn default_secrets_in_use(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        // With a JWT key set, the default static token is not accepted.
        let default_token = self
            .auth_token
            .split(',')
            .any(|t| t.trim() == DEFAULT_AUTH_TOKEN);
        if default_token && !self.jwt_configured() {
            out.push("AUTH_TOKEN");
        }
        if self.admin_secret == DEFAULT_ADMIN_SECRET {
            out.push("ADMIN_SECRET");
        }
        out
    }
}

/// The `--help` text: every setting with its env var and default.
pub fn help_text() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "livestore-sync {}: sync server for LiveStore apps (sync-cf 0.3 and 0.4) on SQLite or PostgreSQL\n",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "Usage: livestore-sync [serve] [--flag value]...\n       livestore-sync <command> [...]   (commands below)\n"
    );
    let _ = writeln!(
        out,
        "Each setting is read from the environment, then from its flag.\n"
    );
    for s in settings() {
        let _ = writeln!(out, "  {:<26} {:<22} {}", s.flag, s.env, s.help);
        let _ = writeln!(
            out,
            "  {:<26} {:<22} default: {}",
            "",
            "",
            if s.default.is_empty() {
                "(empty)"
            } else {
                &s.default
            }
        );
    }
    let _ = writeln!(out, "\n  --help                     print this text\n  --version                  print the version");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(env: &[(&str, &str)], args: &[&str]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match Config::from_env_and_args(
            |k| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone()),
            args.iter().map(|s| s.to_string()),
        )? {
            Cli::Run(c) => Ok(*c),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn defaults_match_the_original_design() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!((c.db_pool_min, c.db_pool_max), (5, 20));
        assert_eq!(
            c.default_secrets_in_use(),
            vec!["AUTH_TOKEN", "ADMIN_SECRET"]
        );
    }

    #[test]
    fn flags_beat_environment() {
        let c = run(
            &[("PORT", "9000"), ("AUTH_TOKEN", "env")],
            &["--port", "9001", "--auth-token=flag"],
        )
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.auth_token, "flag");
        assert_eq!(c.default_secrets_in_use(), vec!["ADMIN_SECRET"]);
    }

    #[test]
    fn the_database_is_sqlite_in_the_data_dir_unless_a_url_says_otherwise() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.database_url, None);
        assert_eq!(c.data_dir, std::path::PathBuf::from("./data"));
        // systemd's StateDirectory= sets STATE_DIRECTORY (its first path
        // when several); DATA_DIR beats it, the flag beats both.
        let state = [("STATE_DIRECTORY", "/var/lib/livestore-sync:/var/lib/other")];
        assert_eq!(
            run(&state, &[]).unwrap().data_dir,
            std::path::PathBuf::from("/var/lib/livestore-sync")
        );
        let both = [state[0], ("DATA_DIR", "/srv/ls")];
        assert_eq!(
            run(&both, &[]).unwrap().data_dir,
            std::path::PathBuf::from("/srv/ls")
        );
        assert_eq!(
            run(&both, &["--data-dir", "/mnt/x"]).unwrap().data_dir,
            std::path::PathBuf::from("/mnt/x")
        );
        // An empty DATABASE_URL (as env files write it) is unset.
        assert_eq!(
            run(&[("DATABASE_URL", "")], &[]).unwrap().database_url,
            None
        );
        let pg = "postgresql://u@h/db";
        assert_eq!(
            run(&[("DATABASE_URL", pg)], &[])
                .unwrap()
                .database_url
                .as_deref(),
            Some(pg)
        );
        assert!(run(&[], &["--data-dir", ""]).is_err());
    }

    #[test]
    fn metrics_access_is_admin_unless_set() {
        assert_eq!(run(&[], &[]).unwrap().metrics, MetricsAccess::Admin);
        let public = run(&[("METRICS", "public")], &[]).unwrap();
        assert_eq!(public.metrics, MetricsAccess::Public);
        let off = run(&[("METRICS", "public")], &["--metrics", "off"]).unwrap();
        assert_eq!(off.metrics, MetricsAccess::Off);
        assert!(run(&[("METRICS", "everyone")], &[]).is_err());
    }

    #[test]
    fn jwt_settings_and_the_default_token_warning() {
        let c = run(&[("JWT_SECRET", "s"), ("JWT_AUDIENCE", " ")], &[]).unwrap();
        assert_eq!(c.jwt_secret.as_deref(), Some("s"));
        assert_eq!(c.jwt_audience, None, "blank is unset");
        assert!(c.jwt_configured());
        // The default token is refused with a JWT key set: no warning for it.
        assert_eq!(c.default_secrets_in_use(), vec!["ADMIN_SECRET"]);
        let c = run(
            &[],
            &["--jwt-jwks-file", "/k.json", "--jwt-issuer=https://i"],
        )
        .unwrap();
        assert_eq!(c.jwt_jwks_file, Some("/k.json".into()));
        assert_eq!(c.jwt_issuer.as_deref(), Some("https://i"));
        let c = run(&[("JWT_SECRET", "")], &[]).unwrap();
        assert!(!c.jwt_configured());
        // A list holding the default still warns.
        let c = run(&[("AUTH_TOKEN", "a,insecure-token-change-me")], &[]).unwrap();
        assert!(c.default_secrets_in_use().contains(&"AUTH_TOKEN"));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(run(&[("PORT", "eighty")], &[]).is_err());
        assert!(run(&[], &["--nope"]).is_err());
        assert!(run(&[], &["--port"]).is_err());
    }

    #[test]
    fn help_lists_every_setting_with_its_help_and_default() {
        // Spelled out here, not taken from `settings()`: the README's
        // table, what a user who runs `--help` is promised.
        let documented = [
            (
                "--database-url",
                "DATABASE_URL",
                "(unset: SQLite in DATA_DIR)",
            ),
            ("--data-dir", "DATA_DIR", "$STATE_DIRECTORY, else ./data"),
            ("--auth-token", "AUTH_TOKEN", "insecure-token-change-me"),
            ("--jwt-secret", "JWT_SECRET", "(unset)"),
            ("--jwt-public-key-file", "JWT_PUBLIC_KEY_FILE", "(unset)"),
            ("--jwt-jwks-file", "JWT_JWKS_FILE", "(unset)"),
            ("--jwt-audience", "JWT_AUDIENCE", "(unset: aud not allowed)"),
            ("--jwt-issuer", "JWT_ISSUER", "(unset: any)"),
            ("--admin-secret", "ADMIN_SECRET", "change-me-admin-secret"),
            ("--host", "HOST", "0.0.0.0"),
            ("--port", "PORT", "8000"),
            ("--db-pool-min", "DB_POOL_MIN", "5"),
            ("--db-pool-max", "DB_POOL_MAX", "20"),
            ("--log-level", "LOG_LEVEL", "info"),
            ("--cors-origins", "CORS_ORIGINS", "*"),
            ("--metrics", "METRICS", "admin"),
            ("--max-connections", "MAX_CONNECTIONS", "50000"),
            ("--max-connections-per-ip", "MAX_CONNECTIONS_PER_IP", "1000"),
            (
                "--request-head-timeout-secs",
                "REQUEST_HEAD_TIMEOUT_SECS",
                "10",
            ),
            ("--max-push-events", "MAX_PUSH_EVENTS", "1000"),
            ("--max-push-bytes", "MAX_PUSH_BYTES", "16777216"),
            ("--pushes-per-second", "PUSHES_PER_SECOND", "100"),
            ("--max-message-bytes", "MAX_MESSAGE_BYTES", "33554432"),
            ("--outbound-queue", "OUTBOUND_QUEUE", "128"),
            ("--max-queued-bytes", "MAX_QUEUED_BYTES", "16777216"),
            ("--max-held-bytes", "MAX_HELD_BYTES", "4194304"),
            ("--max-stores", "MAX_STORES", "10000"),
            ("--max-pull-streams", "MAX_PULL_STREAMS", "8"),
            ("--max-http-pull-bytes", "MAX_HTTP_PULL_BYTES", "16777216"),
            ("--ack-window", "ACK_WINDOW", "16"),
            ("--ws-idle-timeout-secs", "WS_IDLE_TIMEOUT_SECS", "90"),
            ("--shutdown-grace-secs", "SHUTDOWN_GRACE_SECS", "10"),
        ];
        let h = help_text();
        let lines: Vec<&str> = h.lines().collect();
        for (flag, env, default) in documented {
            // `  --flag  ENV  help text`, then `  default: value`.
            let at = lines.iter().position(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(flag) && words.next() == Some(env) && words.next().is_some()
            });
            let Some(at) = at else {
                panic!("no `{flag} {env} <help>` line in --help:\n{h}");
            };
            assert_eq!(
                lines.get(at + 1).map(|l| l.trim()),
                Some(format!("default: {default}").as_str()),
                "{flag}"
            );
        }
        for flag in ["--help", "--version"] {
            assert!(
                lines.iter().any(|l| l.trim_start().starts_with(flag)),
                "{flag}"
            );
        }
    }
}
