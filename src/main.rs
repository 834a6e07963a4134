//! The `livestore-sync` binary: read the configuration, then serve
//! (`service::run`: open the event log, SQLite by default or PostgreSQL
//! with a `postgresql://` DATABASE_URL; serve until SIGTERM/SIGINT; exit 0).

use std::process::ExitCode;

use livestore_sync::config::{Cli, Config};

fn main() -> ExitCode {
    let config =
        match Config::from_env_and_args(|k| std::env::var(k).ok(), std::env::args().skip(1)) {
            Ok(Cli::Run(c)) => *c,
            Ok(Cli::Help(text)) => {
                print!("{text}");
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
