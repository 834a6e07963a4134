//! Running the server as a service: start-up in order, systemd's notify
//! protocol and socket activation, and start-up failures that say what to
//! do.
//!
//! [`run`] is the whole life of `livestore-sync` serving:
//!
//! 1. the logger (journald's format when stderr is the journal);
//! 2. the listening socket systemd passed, if any (`activation.rs`: first,
//!    while no other thread runs);
//! 3. the event log (SQLite or PostgreSQL), which must answer;
//! 4. the listener: the passed socket, or `HOST:PORT` bound here;
//! 5. `READY=1` when the accept loop starts; `WATCHDOG=1` every half
//!    `WATCHDOG_USEC` while it runs; `STOPPING=1` on SIGTERM/SIGINT
//!    (`notify.rs`);
//! 6. serve until a signal, then exit 0.
//!
//! Any failure before serving is one log line naming the address, the
//! cause and what to do, and exit status 1.

pub mod activation;
pub mod hints;
pub mod notify;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::server::{Alive, Liveness, Server};
use crate::storage::postgres::PoolOptions;
use crate::storage::{self, Backend};
use notify::Notifier;

/// Serves with `config` until SIGTERM/SIGINT; the process's exit status.
pub fn run(config: Config) -> ExitCode {
    crate::logger::init(config.log_level);
    crate::server::log_panics();
    for name in config.default_secrets_in_use() {
        log::warn!("!!! {name} has its well-known default value: anyone can use this server. Set {name} before exposing it. !!!");
    }
    // Bad key settings stop the start: serving without the checks the
    // operator asked for is worse than not serving.
    if let Err(e) = crate::auth::Auth::from_config(&config) {
        log::error!("{e}");
        return ExitCode::FAILURE;
    }
    // Before any thread starts (it edits the environment).
    let passed = match activation::take_listener() {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let notifier = Arc::new(Notifier::from_env());

    let pool = PoolOptions {
        min_idle: config.db_pool_min,
        max_size: config.db_pool_max,
        connection_timeout: config.db_pool_timeout,
    };
    let (storage, description) =
        match Backend::choose(config.database_url.as_deref(), &config.data_dir)
            .and_then(|backend| storage::open(&backend, &pool))
        {
            Ok(opened) => opened,
            Err(e) => {
                // The storage's messages name the file or address, the
                // cause and what to do.
                log::error!("{}", e.0);
                return ExitCode::FAILURE;
            }
        };
    // Opening it read and wrote it (SQLite: schema steps, a row of meta, a
    // reader; PostgreSQL: connections and schema.sql): it answers.
    log::info!("event log: {description}");

    let listener = match passed {
        Some(l) => {
            log::info!("serving the socket systemd passed (socket activation)");
            l
        }
        None => match std::net::TcpListener::bind((config.host.as_str(), config.port)) {
            Ok(l) => l,
            Err(e) => {
                let addr = if config.host.contains(':') {
                    format!("[{}]:{}", config.host, config.port)
                } else {
                    format!("{}:{}", config.host, config.port)
                };
                log::error!("{}", hints::cannot_listen(&addr, &e));
                return ExitCode::FAILURE;
            }
        },
    };
    let mut server = Server::from_listener(listener, config, storage);

    let handle = server.shutdown_handle();
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let notifier = notifier.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("received signal {sig}: shutting down");
                notifier.send("STOPPING=1\nSTATUS=shutting down");
                handle.trigger();
            }
        });
    }

    if notifier.is_enabled() {
        if let Some(interval) = notify::watchdog_interval_from_env() {
            spawn_watchdog(notifier.clone(), server.liveness(), interval);
        }
    }
    {
        let notifier = notifier.clone();
        server.on_ready(move |addr| {
            notifier.send(&format!(
                "READY=1\nSTATUS=serving on {addr}, event log: {description}"
            ));
        });
    }

    server.run();
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// Sends `WATCHDOG=1` every half `interval` while the accept loop runs and
/// is not stuck; stops when it has ended. systemd restarts the service
/// when the pings stop for `interval` (`WatchdogSec=`).
///
/// The database's health is not asked: a PostgreSQL restart is something
/// the server rides out (its connections come back), and a restart of the
/// server would not help.
fn spawn_watchdog(notifier: Arc<Notifier>, liveness: Liveness, interval: Duration) {
    let period = interval / 2;
    log::info!("systemd watchdog: pinging every {period:?}");
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut stuck_logged = false;
            loop {
                std::thread::sleep(period);
                match liveness.check(period.min(Duration::from_secs(1))) {
                    Alive::Serving => {
                        stuck_logged = false;
                        notifier.send("WATCHDOG=1");
                    }
                    Alive::Starting => {}
                    Alive::Stuck => {
                        if !stuck_logged {
                            log::error!(
                                "systemd watchdog: the accept loop is stuck; not pinging (systemd restarts the service)"
                            );
                            stuck_logged = true;
                        }
                    }
                    Alive::Ended => return,
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the systemd watchdog thread: {e}");
    }
}
