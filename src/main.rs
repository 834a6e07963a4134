//! The `livestore-sync` binary. `livestore-sync [serve] [settings]`: read
//! the configuration, then serve (`service::run`: open the event log, SQLite
//! by default or PostgreSQL with a `postgresql://` DATABASE_URL; serve until
//! SIGTERM/SIGINT; exit 0). `livestore-sync <command>` (stores, export,
//! import, …): the operator's commands, see `cli`.

use std::process::ExitCode;

use livestore_sync::config::{Cli, Config};

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
    livestore_sync::service::run(config)
}
