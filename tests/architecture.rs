//! The rooms of `src/` depend one way: each uses only the rooms below it
//! (docs/ARCHITECTURE.md, "Rooms"). This test reads every source file and
//! fails when a room names one it may not (`crate::<room>` anywhere in it,
//! imports and paths alike).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each room and the rooms it may use.
const ROOMS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("timefmt", &[]),
    ("config", &[]),
    ("logfmt", &[]),
    // What every room counts into (`/metrics`, `/status`): a leaf, so the
    // core counts without knowing the server.
    ("metrics", &[]),
    ("logger", &["timefmt"]),
    ("storage", &["model", "timefmt"]),
    ("archive", &["model", "timefmt"]),
    ("protocol", &["model", "timefmt"]),
    ("sync", &["model", "storage", "timefmt", "metrics"]),
    // Who may use which store: tokens and keys from the settings.
    ("auth", &["config", "protocol"]),
    (
        "session",
        &["protocol", "sync", "storage", "model", "logfmt", "metrics"],
    ),
    (
        "server",
        &[
            "session", "protocol", "sync", "storage", "archive", "model", "config", "timefmt",
            "logfmt", "metrics", "auth",
        ],
    ),
    (
        "service",
        &["server", "storage", "config", "logger", "auth"],
    ),
    // The operator's commands: storage and files, never the server or the core.
    ("cli", &["archive", "storage", "model", "config", "timefmt"]),
];

/// The room a file belongs to: its first path component under `src/`
/// (`src/sync/store.rs` → `sync`, `src/config.rs` → `config`).
fn room_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// Every `crate::<name>` a source text names.
fn named_rooms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
            rest = after;
        }
        // `use crate::{a, b}` names several at once.
        if let Some(i) = code.find("crate::{") {
            let inner = &code[i + "crate::{".len()..];
            let inner = inner.split('}').next().unwrap_or("");
            for part in inner.split(',') {
                let name = part.trim().split("::").next().unwrap_or("").to_string();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// `(file, room it names that it may not)` for every file given.
fn violations(files: &[(PathBuf, String)]) -> Vec<(PathBuf, String)> {
    let allowed: BTreeMap<&str, &[&str]> = ROOMS.iter().copied().collect();
    let mut out = Vec::new();
    for (rel, text) in files {
        let Some(room) = room_of(rel) else { continue };
        // The crate root and the binaries may use every room.
        if matches!(room.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let may = allowed
            .get(room.as_str())
            .unwrap_or_else(|| panic!("{}: room `{room}` is not in ROOMS", rel.display()));
        for named in named_rooms(text) {
            if named != room && !may.contains(&named.as_str()) {
                out.push((rel.clone(), named));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn sources(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.strip_prefix(base).unwrap().to_path_buf(), text));
        }
    }
}

#[test]
fn rooms_use_only_the_rooms_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let found = violations(&files);
    assert!(
        found.is_empty(),
        "rooms naming rooms they may not use (see docs/ARCHITECTURE.md):\n{}",
        found
            .iter()
            .map(|(f, r)| format!("  {} uses crate::{r}", f.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_check_catches_an_upward_or_sideways_import() {
    let files = vec![
        (
            PathBuf::from("sync/store.rs"),
            "use crate::server::outbox::Outbox;\nuse crate::model::Event;".to_string(),
        ),
        (
            PathBuf::from("protocol/v04.rs"),
            "fn f() { crate::sync::pull::Backlog::new(); }".to_string(),
        ),
        (
            PathBuf::from("storage/mod.rs"),
            "use crate::{model::Event, sync::hub::Hub};".to_string(),
        ),
        (
            PathBuf::from("session/v03.rs"),
            "// crate::server in a comment is fine\nuse crate::protocol::v03;".to_string(),
        ),
    ];
    assert_eq!(
        violations(&files),
        vec![
            (PathBuf::from("protocol/v04.rs"), "sync".to_string()),
            (PathBuf::from("storage/mod.rs"), "sync".to_string()),
            (PathBuf::from("sync/store.rs"), "server".to_string()),
        ]
    );
}
