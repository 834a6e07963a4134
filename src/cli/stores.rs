//! `stores list | info | reset | delete`.

use super::{Failed, StoresCommand};
use crate::model::new_backend_id;
use crate::storage::{Storage, StoreSummary};
use crate::timefmt::iso8601;

pub(super) fn run(storage: &dyn Storage, cmd: StoresCommand) -> Result<(), Failed> {
    match cmd {
        StoresCommand::List { json } => {
            let stores = storage.list_stores()?;
            if json {
                let all: Vec<_> = stores.iter().map(StoreSummary::to_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                print!("{}", table(&stores));
            }
        }
        StoresCommand::Info { id, json } => {
            let s = summary(storage, &id)?;
            if json {
                println!("{}", s.to_json());
            } else {
                println!("store:      {}", s.store_id);
                println!("head:       {}", s.head);
                println!("events:     {}", s.events);
                println!("bytes:      {}", s.bytes);
                println!("last write: {}", last_write(&s));
                println!("backendId:  {}", s.backend_id);
            }
        }
        StoresCommand::Reset { id } => {
            let before = summary(storage, &id)?;
            let backend_id = new_backend_id();
            storage.reset(&id, &backend_id)?;
            println!(
                "store {:?} reset: {} events deleted, backendId {} -> {backend_id}",
                id, before.events, before.backend_id
            );
        }
        StoresCommand::Delete { id } => {
            let before = summary(storage, &id)?;
            if !storage.delete_store(&id)? {
                return Err(Failed(format!("no store {id:?}")));
            }
            println!("store {:?} deleted ({} events)", id, before.events);
        }
    }
    Ok(())
}

/// The store, or a clear "no store" failure (a typo must not create one).
pub(super) fn summary(storage: &dyn Storage, id: &str) -> Result<StoreSummary, Failed> {
    storage.store_summary(id)?.ok_or_else(|| {
        Failed(format!(
            "no store {id:?} (`livestore-sync stores list` shows the stores there are)"
        ))
    })
}

fn last_write(s: &StoreSummary) -> String {
    s.last_write.map(iso8601).unwrap_or_else(|| "-".into())
}

/// Aligned columns; store ids are printed as JSON strings so that spaces
/// and control characters in them stay visible.
fn table(stores: &[StoreSummary]) -> String {
    let rows: Vec<[String; 6]> = stores
        .iter()
        .map(|s| {
            [
                serde_json::to_string(&s.store_id).expect("a string"),
                s.head.to_string(),
                s.events.to_string(),
                s.bytes.to_string(),
                last_write(s),
                s.backend_id.clone(),
            ]
        })
        .collect();
    let header = [
        "STORE",
        "HEAD",
        "EVENTS",
        "BYTES",
        "LAST WRITE",
        "BACKEND ID",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned, text left-aligned.
            if (1..=3).contains(&i) {
                l.push_str(&format!("{cell:>w$}  "));
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    out.push_str(&format!("{} stores\n", stores.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_table_aligns_and_quotes_ids() {
        let s = |id: &str, head| StoreSummary {
            store_id: id.into(),
            head,
            events: head,
            bytes: head * 10,
            last_write: (head > 0).then(|| UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            backend_id: "b1".into(),
        };
        let t = table(&[s("a b", 12), s("long-store-id", 0)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[1].starts_with("\"a b\" "), "{t}");
        assert!(lines[1].contains(" 12 "), "{t}");
        assert!(lines[1].contains("2023-11-14T22:13:20"), "{t}");
        assert!(lines[2].contains("  -  "), "{t}");
        // Columns line up: HEAD's right edge is the same on every line.
        let edge = |l: &str, cell: &str| l.find(cell).unwrap() + cell.len();
        assert_eq!(edge(lines[0], "HEAD"), edge(lines[1], "12"));
        assert_eq!(lines[3], "2 stores");
    }
}
