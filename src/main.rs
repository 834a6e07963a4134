//! The `livestore-sync` binary. `livestore-sync [serve] [settings]`: read the
//! configuration, open the event log (SQLite by default, PostgreSQL with a
//! `postgresql://` DATABASE_URL), serve until SIGTERM/SIGINT, exit 0.
//! `livestore-sync <command>` (stores, export, import, …): see `cli`.

use std::process::ExitCode;

use livestore_sync::config::{Cli, Config};
use livestore_sync::server::Server;
use livestore_sync::storage::postgres::PoolOptions;
use livestore_sync::storage::{self, Backend};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `livestore-sync stores list`, `export`, …: the operator's commands.
    if args
        .first()
        .is_some_and(|a| livestore_sync::cli::is_command(a))
    {
        return livestore_sync::cli::run(args);
    }
    if args.first().is_some_and(|a| a == "serve") {
        args.remove(0);
    }
    let config = match Config::from_env_and_args(|k| std::env::var(k).ok(), args) {
        Ok(Cli::Run(c)) => *c,
        Ok(Cli::Help(text)) => {
            print!("{text}\n{}", livestore_sync::cli::SUMMARY);
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            println!("livestore-sync {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("livestore-sync: {e}");
            return ExitCode::from(2);
        }
    };
    livestore_sync::logger::init(config.log_level);
    for name in config.default_secrets_in_use() {
        log::warn!("!!! {name} has its well-known default value: anyone can use this server. Set {name} before exposing it. !!!");
    }

    let pool = PoolOptions {
        min_idle: config.db_pool_min,
        max_size: config.db_pool_max,
        connection_timeout: config.db_pool_timeout,
    };
    let storage = match Backend::choose(config.database_url.as_deref(), &config.data_dir)
        .and_then(|backend| storage::open(&backend, &pool))
    {
        Ok((s, description)) => {
            log::info!("event log: {description}");
            s
        }
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::bind(config.clone(), storage) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen on {}:{}: {e}", config.host, config.port);
            return ExitCode::FAILURE;
        }
    };

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
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("received signal {sig}: shutting down");
            handle.trigger();
        }
    });

    server.run();
    log::info!("stopped");
    ExitCode::SUCCESS
}
