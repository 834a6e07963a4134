//! The operator's command line: `livestore-sync <command>` next to the
//! server (`livestore-sync` alone, or `serve`, runs the server).
//!
//! Every command opens the event log the way the server does
//! (`DATABASE_URL` / `DATA_DIR`, same flags) through
//! [`storage::open_for_tool`], so it works on SQLite while a server runs on
//! the same file, and on a PostgreSQL that servers share. Writes (reset,
//! delete, import) reach running servers through the storage's own notices
//! (PostgreSQL `NOTIFY`; on SQLite a `changes` row the server polls).
//!
//! Exit codes: 0 done, 1 the command failed or `check` found a problem,
//! 2 the command line itself was wrong.
//!
//! This room uses `archive`, `storage`, `model` and `timefmt`; nothing of the
//! server or the sync core.

mod check;
mod fastapi;
mod progress;
mod stores;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::storage::postgres::PoolOptions;
use crate::storage::{self, Backend, Storage};

/// The commands this module runs; anything else is the server's.
pub const COMMANDS: &[&str] = &[
    "stores",
    "export",
    "import",
    "copy",
    "check",
    "migrate",
    "import-fastapi",
];

/// One line per command, for the server's `--help`.
pub const SUMMARY: &str = "\
Commands (livestore-sync <command> --help for each):
  serve                      run the server (the default; takes the settings above)
  stores list|info|reset|delete
                             look into a store, or reset or delete one
  export ID [FILE]           write a store as a file (LiveStore's format or NDJSON)
  import ID [FILE]           load a store from such a file
  copy --from URL --to URL   copy stores between SQLite and PostgreSQL
  check [ID...]              check every store's log: contiguous, chained, head consistent
  migrate                    apply the schema and print its version
  import-fastapi --from URL  copy stores from the original Python/FastAPI server's PostgreSQL
";

/// Whether `first` (the first argument) names one of these commands.
pub fn is_command(first: &str) -> bool {
    COMMANDS.contains(&first)
}

#[derive(Parser, Debug)]
#[command(
    name = "livestore-sync",
    version,
    about = "Inspect, check, back up and move the stores of a livestore-sync event log",
    after_help = "The event log is chosen as the server chooses it: DATABASE_URL, else SQLite in \
                  DATA_DIR (default $STATE_DIRECTORY, else ./data). Commands work while servers run."
)]
struct Tool {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which event log to open: the server's own settings.
#[derive(clap::Args, Debug, Clone)]
struct DbArgs {
    /// postgresql://… or sqlite:///path/file.db (unset: SQLite in DATA_DIR)
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Directory of the SQLite database (livestore.db) when DATABASE_URL is unset
    #[arg(long, env = "DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List stores, show one, reset one or delete one
    #[command(subcommand)]
    Stores(StoresCommand),
    /// Write a store's events to FILE (stdout when omitted or `-`)
    Export {
        /// The store id
        id: String,
        file: Option<PathBuf>,
        /// `livestore`: the file `livestore sync export` writes (one JSON document);
        /// `ndjson`: a header line, then one event per line (for large stores)
        #[arg(long, value_enum, default_value_t = FileFormat::Livestore)]
        format: FileFormat,
    },
    /// Load a store from FILE (stdin when omitted or `-`); either format, detected
    Import {
        /// The store id to write
        id: String,
        file: Option<PathBuf>,
        /// Replace the store's events if it has any (its backendId changes:
        /// clients that hold the old history reset)
        #[arg(long)]
        replace: bool,
        /// Import even if the file was exported from a store with another id
        #[arg(long)]
        force: bool,
        /// Keep the backendId the file records (NDJSON exports of this server):
        /// only for restoring the very store the file came from
        #[arg(long)]
        keep_backend_id: bool,
    },
    /// Copy stores from one event log to another (SQLite and PostgreSQL, both ways)
    Copy {
        /// Source: postgresql://… or sqlite:///path/file.db
        #[arg(long)]
        from: String,
        /// Target: postgresql://… or sqlite:///path/file.db
        #[arg(long)]
        to: String,
        /// Only these stores (repeatable); all stores by default
        #[arg(long = "store", value_name = "ID")]
        stores: Vec<String>,
        /// Overwrite target stores that hold other events
        #[arg(long)]
        replace: bool,
    },
    /// Check stores (all by default): events 1..head contiguous, parents chained,
    /// head and backendId consistent. Exits 1 on a problem
    Check {
        ids: Vec<String>,
        /// One JSON object per store on stdout
        #[arg(long)]
        json: bool,
    },
    /// Apply the schema (creating the database if needed) and print its version
    Migrate,
    /// Copy stores from the original Python/FastAPI server's PostgreSQL
    /// (tables eventlog_<version>_<sanitised store id>)
    ImportFastapi {
        /// The FastAPI server's database: postgresql://…
        #[arg(long)]
        from: String,
        /// A JSON file mapping table names (or their store-id part) to store ids:
        /// {"eventlog_7_my_app": "my-app"}. Needed where a sanitised name is ambiguous
        #[arg(long, value_name = "FILE")]
        map: Option<PathBuf>,
        /// Only list what would be imported
        #[arg(long)]
        dry_run: bool,
        /// Overwrite target stores that hold events
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand, Debug)]
enum StoresCommand {
    /// Every store: id, head, events, bytes, last write, backendId
    List {
        #[arg(long)]
        json: bool,
    },
    /// One store
    Info {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete the store's events and give it a new backendId; running servers
    /// close its sockets (clients reconnect and start over)
    Reset { id: String },
    /// Delete the store; running servers close its sockets
    Delete { id: String },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FileFormat {
    Livestore,
    Ndjson,
}

impl From<FileFormat> for crate::archive::Format {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Livestore => crate::archive::Format::LiveStore,
            FileFormat::Ndjson => crate::archive::Format::Ndjson,
        }
    }
}

/// A command's failure, printed as `livestore-sync: <message>`; exit 1.
#[derive(Debug)]
pub struct Failed(pub String);

impl<E: std::fmt::Display> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed(e.to_string())
    }
}

/// Runs `livestore-sync <args>` where `args[0]` is a command of [`COMMANDS`].
/// `env` reads the environment (`STATE_DIRECTORY` for the default data
/// directory; clap reads `DATABASE_URL` and `DATA_DIR` itself).
pub fn run(args: Vec<String>) -> ExitCode {
    let tool = match Tool::try_parse_from(std::iter::once("livestore-sync".to_string()).chain(args))
    {
        Ok(t) => t,
        Err(e) => {
            // --help and --version come here too (exit 0).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match execute(tool) {
        Ok(code) => code,
        Err(Failed(msg)) => {
            eprintln!("livestore-sync: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn execute(tool: Tool) -> Result<ExitCode, Failed> {
    let db = tool.db;
    match tool.command {
        Command::Stores(cmd) => {
            let storage = open(&db)?;
            stores::run(&*storage, cmd)?;
        }
        Command::Export { id, file, format } => {
            let storage = open(&db)?;
            transfer::export(&*storage, &id, file.as_deref(), format.into())?;
        }
        Command::Import {
            id,
            file,
            replace,
            force,
            keep_backend_id,
        } => {
            let storage = open(&db)?;
            let options = transfer::ImportOptions {
                replace,
                force,
                keep_backend_id,
            };
            transfer::import(&*storage, &id, file.as_deref(), options)?;
        }
        Command::Copy {
            from,
            to,
            stores,
            replace,
        } => {
            let source = open_url(&from)?;
            let target = open_url(&to)?;
            return transfer::copy(&*source, &*target, &stores, replace);
        }
        Command::Check { ids, json } => {
            let storage = open(&db)?;
            return check::run(&*storage, &ids, json);
        }
        Command::Migrate => {
            let (storage, description) = open_described(&db)?;
            println!(
                "schema version {} ({description})",
                storage.schema_version()?
            );
        }
        Command::ImportFastapi {
            from,
            map,
            dry_run,
            replace,
        } => {
            let target = if dry_run { None } else { Some(open(&db)?) };
            // A dry run opens no target: `run` only lists the plan.
            let options = fastapi::Options { map, replace };
            return fastapi::run(&from, target.as_deref(), &options);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A small pool: a command uses one connection at a time.
fn pool() -> PoolOptions {
    PoolOptions {
        min_idle: 0,
        max_size: 2,
        connection_timeout: Duration::from_secs(10),
    }
}

fn open_described(db: &DbArgs) -> Result<(std::sync::Arc<dyn Storage>, String), Failed> {
    let data_dir = match &db.data_dir {
        Some(d) => d.clone(),
        None => std::env::var("STATE_DIRECTORY")
            .ok()
            .and_then(|d| d.split(':').next().map(PathBuf::from))
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| crate::config::DEFAULT_DATA_DIR.into()),
    };
    let backend = Backend::choose(db.database_url.as_deref(), &data_dir)?;
    Ok(storage::open_for_tool(&backend, &pool())?)
}

fn open(db: &DbArgs) -> Result<std::sync::Arc<dyn Storage>, Failed> {
    open_described(db).map(|(s, _)| s)
}

/// `copy`'s `--from` / `--to`: a URL, never the environment's.
fn open_url(url: &str) -> Result<std::sync::Arc<dyn Storage>, Failed> {
    if url.trim().is_empty() {
        return Err(Failed(
            "copy needs a URL for --from and --to (postgresql://… or sqlite:///path/file.db)"
                .into(),
        ));
    }
    let backend = Backend::choose(Some(url), std::path::Path::new("."))?;
    Ok(storage::open_for_tool(&backend, &pool())?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Tool::command().debug_assert();
    }

    #[test]
    fn every_command_is_dispatched_here_and_listed_in_the_summary() {
        use clap::CommandFactory;
        let names: Vec<String> = Tool::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(names, COMMANDS);
        for name in COMMANDS {
            assert!(SUMMARY.contains(name), "{name} missing from SUMMARY");
        }
        assert!(!is_command("serve") && !is_command("--port"));
    }

    #[test]
    fn flags_parse() {
        let t = Tool::try_parse_from([
            "x",
            "copy",
            "--from",
            "sqlite:a.db",
            "--to",
            "postgres://h/d",
            "--store",
            "a",
            "--store",
            "b",
        ])
        .unwrap();
        match t.command {
            Command::Copy { stores, .. } => assert_eq!(stores, ["a", "b"]),
            other => panic!("{other:?}"),
        }
        let t = Tool::try_parse_from(["x", "export", "s", "--format", "ndjson"]).unwrap();
        assert!(matches!(
            t.command,
            Command::Export {
                format: FileFormat::Ndjson,
                file: None,
                ..
            }
        ));
        assert!(Tool::try_parse_from(["x", "export"]).is_err());
        assert!(Tool::try_parse_from(["x", "stores", "frobnicate"]).is_err());
    }
}
