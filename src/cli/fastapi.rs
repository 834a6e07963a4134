//! `import-fastapi --from URL`: stores of the original Python/FastAPI
//! server, which keeps one PostgreSQL table per store,
//! `eventlog_<version>_<sanitised store id>` (`seq_num`, `parent_seq_num`,
//! `name`, `args jsonb`, `created_at`, `client_id`, `session_id`), the id
//! sanitised by replacing every character outside `[a-zA-Z0-9]` with `_`.
//!
//! The sanitised name is lossy (`a-b` and `a_b` share `eventlog_7_a_b`), so
//! the store id is taken from a mapping file where one is given, else the
//! table's suffix as written. `jsonb` already lost the key order of every
//! `args` (docs/operations.md, "Moving from the FastAPI server").

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::progress::Progress;
use super::Failed;
use crate::model::{Event, StoredEvent};
use crate::storage::{ImportError, Storage};

pub(super) struct Options {
    pub map: Option<PathBuf>,
    pub replace: bool,
}

/// One FastAPI event-log table and the store it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Table {
    pub schema: String,
    pub name: String,
    pub version: u32,
    /// The part after `eventlog_<version>_`.
    pub suffix: String,
}

/// `eventlog_<version>_<suffix>` → (version, suffix).
pub(super) fn parse_table_name(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("eventlog_")?;
    let (version, suffix) = rest.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || suffix.is_empty() {
        return None;
    }
    Some((version.parse().ok()?, suffix))
}

/// What the FastAPI server made of a store id.
pub(super) fn sanitise(store_id: &str) -> String {
    store_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The plan: which table becomes which store, and what is left out and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub imports: Vec<(Table, String)>,
    /// (table, why it is not imported)
    pub skipped: Vec<(String, String)>,
    /// Store ids taken from a suffix with `_` in it: the original id may
    /// have had another character there.
    pub guessed: Vec<String>,
    /// Tables that would land in one store id.
    pub collisions: Vec<(String, Vec<String>)>,
}

/// Maps tables to store ids: the newest version of each suffix; the store id
/// from `map` (keyed by table name or by suffix), else the suffix. Mapping
/// keys that match no table are reported as skipped.
pub(super) fn plan(tables: Vec<Table>, map: &BTreeMap<String, String>) -> Plan {
    let mut plan = Plan::default();
    let mut newest: BTreeMap<String, Table> = BTreeMap::new();
    for t in tables {
        match newest.get(&t.suffix) {
            Some(have) if have.version >= t.version => plan.skipped.push((
                t.name.clone(),
                format!("an older version than {}", have.name),
            )),
            _ => {
                if let Some(old) = newest.insert(t.suffix.clone(), t) {
                    let newer = &newest[&old.suffix].name;
                    plan.skipped
                        .push((old.name.clone(), format!("an older version than {newer}")));
                }
            }
        }
    }
    let mut by_store: BTreeMap<String, Vec<Table>> = BTreeMap::new();
    for t in newest.into_values() {
        let store = match map.get(&t.name).or_else(|| map.get(&t.suffix)) {
            Some(id) => {
                if sanitise(id) != t.suffix {
                    plan.guessed.push(format!(
                        "{}: the map says {id:?}, which the FastAPI server would have stored as {}",
                        t.name,
                        sanitise(id)
                    ));
                }
                id.clone()
            }
            None => {
                if t.suffix.contains('_') {
                    plan.guessed.push(format!(
                        "{}: store id {:?} taken from the table name; each `_` may stand for \
                         another character in the id your clients use (give it in --map)",
                        t.name, t.suffix
                    ));
                }
                t.suffix.clone()
            }
        };
        by_store.entry(store).or_default().push(t);
    }
    for (store, tables) in by_store {
        if tables.len() > 1 {
            plan.collisions
                .push((store, tables.into_iter().map(|t| t.name).collect()));
        } else {
            let t = tables.into_iter().next().expect("one");
            plan.imports.push((t, store));
        }
    }
    for key in map.keys() {
        let used = plan
            .imports
            .iter()
            .any(|(t, _)| &t.name == key || &t.suffix == key)
            || plan.collisions.iter().any(|(_, ts)| ts.contains(key));
        if !used {
            plan.skipped
                .push((key.clone(), "named in --map but no such table".into()));
        }
    }
    plan
}

fn read_map(path: &Option<PathBuf>) -> Result<BTreeMap<String, String>, Failed> {
    let Some(path) = path else {
        return Ok(BTreeMap::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failed(format!("cannot read the map {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Failed(format!(
            "the map {} must be one JSON object of table name (or its store-id part) to store id: {e}",
            path.display()
        ))
    })
}

fn list_tables(client: &mut postgres::Client) -> Result<Vec<Table>, Failed> {
    let rows = client
        .query(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables
             WHERE table_name LIKE 'eventlog\\_%' AND table_type = 'BASE TABLE'
               AND table_schema NOT IN ('pg_catalog', 'information_schema')
             ORDER BY table_schema, table_name",
            &[],
        )
        .map_err(|e| Failed(format!("listing the FastAPI tables: {e}")))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let schema: String = r.get(0);
            let name: String = r.get(1);
            let (version, suffix) = parse_table_name(&name)?;
            let suffix = suffix.to_string();
            Some(Table {
                schema,
                name,
                version,
                suffix,
            })
        })
        .collect())
}

/// A PostgreSQL identifier, quoted.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(super) fn run(
    from: &str,
    target: Option<&dyn Storage>,
    options: &Options,
) -> Result<ExitCode, Failed> {
    let map = read_map(&options.map)?;
    let described = crate::storage::Backend::Postgres(from.to_string()).describe();
    let mut client = postgres::Client::connect(from, postgres::NoTls).map_err(|e| {
        Failed(format!(
            "cannot connect to the FastAPI database ({described}): {e}"
        ))
    })?;
    let plan = plan(list_tables(&mut client)?, &map);
    for (table, why) in &plan.skipped {
        println!("skipped    {table}: {why}");
    }
    for (store, tables) in &plan.collisions {
        println!(
            "COLLISION  {} all map to store {store:?}: not imported; name them apart in --map",
            tables.join(", ")
        );
    }
    for note in &plan.guessed {
        println!("note       {note}");
    }
    let mut failed = plan.collisions.len();
    for (table, store) in &plan.imports {
        let Some(target) = target else {
            println!("would copy {} -> store {store:?}", table.name);
            continue;
        };
        match copy_table(&mut client, table, store, target, options.replace) {
            Ok(n) => println!("copied     {} -> store {store:?}: {n} events", table.name),
            Err(Failed(e)) => {
                failed += 1;
                println!("FAILED     {} -> store {store:?}: {e}", table.name);
            }
        }
    }
    println!(
        "{} tables: {} {}, {failed} failed or colliding",
        plan.imports.len() + plan.collisions.len(),
        plan.imports.len() - (failed - plan.collisions.len()),
        if target.is_some() {
            "copied"
        } else {
            "to copy"
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn copy_table(
    client: &mut postgres::Client,
    table: &Table,
    store: &str,
    target: &dyn Storage,
    replace: bool,
) -> Result<u64, Failed> {
    let from = format!("{}.{}", ident(&table.schema), ident(&table.name));
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM {from}"), &[])
        .map_err(|e| Failed(format!("counting {from}: {e}")))?
        .get(0);
    // jsonb's text has spaces after `:` and `,`; it is compacted (the
    // values, and jsonb's key order, stay as they are).
    let sql = format!(
        "SELECT seq_num::bigint, parent_seq_num::bigint, name::text, args::text,
                (extract(epoch FROM created_at::timestamptz) * 1000000)::bigint,
                client_id::text, session_id::text
         FROM {from} ORDER BY seq_num"
    );
    let mut tx = client
        .transaction()
        .map_err(|e| Failed(format!("reading {from}: {e}")))?;
    let rows = tx
        .query_raw(sql.as_str(), std::iter::empty::<i32>())
        .map_err(|e| Failed(format!("reading {from}: {e}")))?;
    let progress = Progress::new(total.max(0) as u64, &table.name);
    let mut rows = postgres::fallible_iterator::FallibleIterator::iterator(rows);
    let mut events = std::iter::from_fn(|| {
        let row = match rows.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(format!("reading {from}: {e}"))),
        };
        progress.inc(1);
        let micros: i64 = row.get(4);
        let args: Option<String> = row.get(3);
        Some(Ok(StoredEvent {
            event: Event {
                seq_num: row.get(0),
                parent_seq_num: row.get(1),
                name: row.get(2),
                args: args.map(|a| {
                    crate::archive::compact_json(&a)
                        .into_owned()
                        .into_boxed_str()
                }),
                client_id: row.get(5),
                session_id: row.get(6),
            },
            created_at: std::time::UNIX_EPOCH
                + std::time::Duration::from_micros(micros.max(0) as u64),
        }))
    });
    let n = target
        .import(store, None, replace, &mut events)
        .map_err(|e| match e {
            ImportError::NotEmpty { head } => Failed(format!(
                "store {store:?} already has events (head {head}); nothing copied. Use --replace"
            )),
            ImportError::Chain(m) => Failed(format!("{from} does not chain: {m}; nothing copied")),
            ImportError::Source(m) => Failed(format!("{m}; nothing copied")),
            ImportError::Storage(e) => Failed(format!("{e}; nothing copied")),
        })?;
    progress.finish();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Table {
        let (version, suffix) = parse_table_name(name).unwrap();
        Table {
            schema: "public".into(),
            name: name.into(),
            version,
            suffix: suffix.into(),
        }
    }

    #[test]
    fn table_names_and_sanitising() {
        assert_eq!(parse_table_name("eventlog_7_my_app"), Some((7, "my_app")));
        assert_eq!(parse_table_name("eventlog_12_x"), Some((12, "x")));
        for bad in [
            "eventlog_x_y",
            "eventlog__y",
            "eventlog_7_",
            "events",
            "eventlog_7",
        ] {
            assert_eq!(parse_table_name(bad), None, "{bad}");
        }
        // The reference implementation's own example (0.3 spec).
        assert_eq!(sanitise("conf-cz00erbg5q/ü x"), "conf_cz00erbg5q___x");
    }

    #[test]
    fn the_newest_version_wins_and_the_map_names_stores() {
        let map: BTreeMap<String, String> = [
            ("eventlog_7_a_b".to_string(), "a-b".to_string()),
            ("plain".to_string(), "plain".to_string()),
            ("eventlog_7_gone".to_string(), "x".to_string()),
        ]
        .into();
        let p = plan(
            vec![
                t("eventlog_6_a_b"),
                t("eventlog_7_a_b"),
                t("eventlog_7_plain"),
                t("eventlog_7_c_d"),
            ],
            &map,
        );
        let imports: Vec<(&str, &str)> = p
            .imports
            .iter()
            .map(|(t, s)| (t.name.as_str(), s.as_str()))
            .collect();
        assert_eq!(
            imports,
            [
                ("eventlog_7_a_b", "a-b"),
                ("eventlog_7_c_d", "c_d"),
                ("eventlog_7_plain", "plain")
            ]
        );
        assert!(p
            .skipped
            .iter()
            .any(|(n, why)| n == "eventlog_6_a_b" && why.contains("older")));
        assert!(p.skipped.iter().any(|(n, _)| n == "eventlog_7_gone"));
        // c_d was guessed; a-b was mapped and is consistent.
        assert_eq!(p.guessed.len(), 1, "{:?}", p.guessed);
        assert!(p.guessed[0].contains("eventlog_7_c_d"));
        assert!(p.collisions.is_empty());
    }

    #[test]
    fn two_tables_for_one_store_collide_and_neither_is_imported() {
        let map: BTreeMap<String, String> = [
            ("x_1".to_string(), "same".to_string()),
            ("x_2".to_string(), "same".to_string()),
        ]
        .into();
        let p = plan(vec![t("eventlog_7_x_1"), t("eventlog_7_x_2")], &map);
        assert!(p.imports.is_empty());
        assert_eq!(
            p.collisions,
            [(
                "same".to_string(),
                vec!["eventlog_7_x_1".to_string(), "eventlog_7_x_2".to_string()]
            )]
        );
    }
}
