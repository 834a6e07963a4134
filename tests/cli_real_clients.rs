//! The command line's files against the REAL LiveStore tools, on both backends:
//!
//! - `livestore-sync export` writes a file the real `@livestore/cli` 0.4.0 accepts
//!   (`livestore sync import --dry-run`, LiveStore's own schema);
//! - a file in their format, pretty-printed by their own code, imported with `livestore-sync
//!   import` into a running server, is pulled by a real 0.4.0 client (`makeWsSync`), which
//!   materialises every event.
//!
//! Needs Node.js >= 20 and npm; without them these tests FAIL, they never skip.
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::node::*;
use common::{run_tool, watchdog, EventLog, ServerProcess, TempDir};

/// Events as the real client's test app makes them (`tests/e2e/client-core.mjs`): its
/// materialiser needs `{text, id, meta: {zeta, alpha}}`.
fn client_events(client: &str, n: usize) -> (String, BTreeSet<String>) {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"v1.TodoCreated","args":{},"seqNum":{},"parentSeqNum":{i},"clientId":"{client}","sessionId":"s-{client}"}}"#,
                expected_args(client, i),
                i + 1
            )
        })
        .collect();
    let ids = (0..n).map(|i| format!("{client}-{i:04}")).collect();
    (events.join(",\n"), ids)
}

fn their_file_is_pulled_by_a_real_client_after_our_import(db: EventLog) {
    let _w = watchdog("their_file_pulled", Duration::from_secs(240));
    prepare_clients("v04");
    let store = format!("imported-{}", std::process::id());
    let dir = TempDir::new("cli-real-import");
    let (events, ids) = client_events("old-client", 30);
    let data = dir.path().join("data.json");
    std::fs::write(
        &data,
        format!(
            r#"{{"version":1,"storeId":"{store}","exportedAt":"2026-12-01T10:00:00.000Z","eventCount":30,"events":[{events}]}}"#
        ),
    )
    .unwrap();
    let theirs = dir.path().join("theirs.json");
    livestore_cli_pretty_export(&data, &theirs);
    assert!(
        std::fs::read_to_string(&theirs)
            .unwrap()
            .contains("\"text\": \"todo 0"),
        "their pretty-printed layout"
    );

    // Into a running server: on SQLite the command shares the file with it.
    let server = ServerProcess::start(&db.url(), &["--auth-token", E2E_TOKEN]);
    let out = run_tool(&db.url(), &["import", &store, theirs.to_str().unwrap()]);
    assert!(out.contains("imported 30 events"), "{out}");
    // Stored compact, in the client's key order: what JSON.stringify gave.
    let rows = db.rows(&store);
    assert_eq!(rows.len(), 30);
    assert_eq!(
        rows[7].args.as_deref(),
        Some(expected_args("old-client", 7).as_str())
    );

    let reader = spawn_client(
        &server,
        &store,
        &ClientSpec::reader(Kind::V04Ws, "new-reader", 30),
    )
    .finish();
    assert_converged(&reader, &ids, &server);
}

fn our_export_passes_their_check(db: EventLog) {
    let _w = watchdog("our_export_checked", Duration::from_secs(240));
    prepare_clients("v04");
    let store = format!("exported-{}", std::process::id());
    let server = ServerProcess::start(&db.url(), &["--auth-token", E2E_TOKEN]);
    // A real client writes the store, then our command line exports it.
    let spec = ClientSpec::writer(Kind::V04Ws, "writer", EVENTS_PER_WRITER);
    let writer = spawn_client(&server, &store, &spec).finish();
    let ids: BTreeSet<String> = spec.own_ids().into_iter().collect();
    assert_converged(&writer, &ids, &server);
    let dir = TempDir::new("cli-real-export");
    let file = dir.path().join("export.json");
    run_tool(&db.url(), &["export", &store, file.to_str().unwrap()]);

    let checked = livestore_cli_dry_run(&file, &store);
    assert!(checked.status.success(), "{}", output_text(&checked));
    assert_eq!(
        dry_run_count(&checked),
        Some(EVENTS_PER_WRITER as u64),
        "{}",
        output_text(&checked)
    );
    // Their check can fail: the same file for another store id is refused.
    let other = livestore_cli_dry_run(&file, "another-store");
    assert!(!other.status.success(), "{}", output_text(&other));
}

mod postgres {
    use super::*;
    #[test]
    fn their_file_is_pulled_by_a_real_client_after_our_import() {
        super::their_file_is_pulled_by_a_real_client_after_our_import(EventLog::postgres(
            "cli-real",
        ));
    }
    #[test]
    fn our_export_passes_their_check() {
        super::our_export_passes_their_check(EventLog::postgres("cli-real"));
    }
}

mod sqlite {
    use super::*;
    #[test]
    fn their_file_is_pulled_by_a_real_client_after_our_import() {
        super::their_file_is_pulled_by_a_real_client_after_our_import(EventLog::sqlite(
            "cli-real-import",
        ));
    }
    #[test]
    fn our_export_passes_their_check() {
        super::our_export_passes_their_check(EventLog::sqlite("cli-real-export"));
    }
}
