//! Keeps docs/troubleshooting.md honest: every warning and error the server
//! logs and every refusal text it answers with must be in it.
//!
//! The extractor reads `src/` (not the test modules) and takes the first
//! string literal of each call below. A format string is cut at its
//! `{…}` placeholders; each piece of 4 characters or more (whitespace
//! collapsed) must be in the doc, so the doc quotes each message with its
//! values replaced by examples, as an operator sees it. A literal with no
//! such piece (`"{e}"`: a message passed through) is not checked here; the
//! doc covers those messages where they are made.
//!
//! | call | what it is |
//! |---|---|
//! | `log::warn!(`, `log::error!(` | a warning or error line in the log |
//! | `Response::text(`, `ReadError::Bad(` | an HTTP refusal's body |
//! | `error(` | an admin API error (`{"error": …}`), a 0.3 `WSMessage.Error` |
//! | `exit_die(` | a 0.4 request's failure (`Die`) |
//! | `.close(`, `close_all_with(` | a WebSocket close frame's reason |
//! | `.kill(`, `.kill_slow(` | why a socket was dropped (`ws dropped … reason=…`) |
//! | `StorageError(` | a storage failure: pushes, pulls, `/health`, start-up |
//! | `write!(f,` in `protocol/query.rs`, `model/chain.rs`, `auth.rs` | a refused sync request (400, 401, 403); a refused push |
//! | `ActivationError(`, `format!(` in `service/hints.rs` | a start-up failure |

use std::path::{Path, PathBuf};

const DOC: &str = "docs/troubleshooting.md";

/// Call patterns, and the files (path suffixes) they are limited to.
const CALLS: &[(&str, &[&str])] = &[
    ("log::warn!(", &[]),
    ("log::error!(", &[]),
    ("Response::text(", &[]),
    ("ReadError::Bad(", &[]),
    ("error(", &[]),
    ("exit_die(", &[]),
    (".close(", &[]),
    ("close_all_with(", &[]),
    (".kill(", &[]),
    (".kill_slow(", &[]),
    ("StorageError(", &[]),
    (
        "write!(f,",
        &["src/protocol/query.rs", "src/model/chain.rs", "src/auth.rs"],
    ),
    ("ActivationError(", &[]),
    ("format!(", &["src/service/hints.rs"]),
];

/// Folders whose messages belong to docs/operations.md (the command line
/// and its files), not to a running server's troubleshooting.
const NOT_THE_SERVER: &[&str] = &["src/cli/", "src/archive/"];

#[derive(Debug)]
struct Found {
    at: String,
    call: &'static str,
    literal: String,
    fragments: Vec<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without its test module (`#[cfg(test)]` then `mod …`,
/// at the end of a file by this project's habit), and without whole test
/// files (`testing.rs`, `tests.rs`).
fn production_code(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    if name == "testing.rs" || name == "tests.rs" {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = (0..lines.len())
        .find(|&i| {
            lines[i].trim() == "#[cfg(test)]"
                && lines[i + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.trim_start().starts_with("mod "))
        })
        .unwrap_or(lines.len());
    lines[..cut].join("\n")
}

/// A Rust string literal starting at `s[0]` (`"…"`, `r"…"`, `r#"…"#`): its
/// value and its length in `s`.
fn literal(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    if b[0] == b'r' {
        let hashes = s[1..].bytes().take_while(|&c| c == b'#').count();
        if b.get(1 + hashes) != Some(&b'"') {
            return None;
        }
        let start = 2 + hashes;
        let end_marker = format!("\"{}", "#".repeat(hashes));
        let end = s[start..].find(&end_marker)? + start;
        return Some((s[start..end].to_string(), end + end_marker.len()));
    }
    if b[0] != b'"' {
        return None;
    }
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 2)),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    // \u{…}
                    let mut hex = String::new();
                    for (_, h) in chars.by_ref() {
                        match h {
                            '{' => {}
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                '\n' => {
                    // A line continuation: the newline and the next line's
                    // leading whitespace are not part of the string.
                    let rest = &s[1 + i + 2..];
                    let skip = rest.len() - rest.trim_start().len();
                    for _ in 0..rest[..skip].chars().count() {
                        chars.next();
                    }
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// The first string literal between the call's `(` (the last byte of the
/// pattern) and its matching `)`.
fn first_literal(call_args: &str) -> Option<String> {
    let mut depth = 1;
    let mut i = 0;
    let b = call_args.as_bytes();
    while i < b.len() {
        let starts_literal =
            b[i] == b'"' || (b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')));
        let in_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts_literal && !(b[i] == b'r' && in_ident) {
            return literal(&call_args[i..]).map(|(v, _)| v);
        }
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            b'\'' => {
                // A char literal such as '"' must not start a string.
                if let Some(end) = call_args[i + 1..].find('\'') {
                    if end <= 4 {
                        i += end + 1;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The pieces of a format string between its placeholders that have 4
/// characters or more.
fn fragments(format: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                pieces.last_mut().unwrap().push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                pieces.last_mut().unwrap().push('}');
            }
            '{' => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                pieces.push(String::new());
            }
            c => pieces.last_mut().unwrap().push(c),
        }
    }
    pieces
        .into_iter()
        .map(|p| collapse(&p))
        .filter(|p| p.chars().count() >= 4)
        .collect()
}

fn extract() -> Vec<Found> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if NOT_THE_SERVER.iter().any(|d| rel.starts_with(d)) {
            // The command line logs nothing itself; if it starts to, its
            // lines belong in the doc too.
            let code = production_code(&path);
            assert!(
                !code.contains("log::warn!(") && !code.contains("log::error!("),
                "{rel} logs warnings or errors: extend this test to check them"
            );
            continue;
        }
        let code = production_code(&path);
        for &(call, only) in CALLS {
            if !only.is_empty() && !only.iter().any(|o| rel.ends_with(o)) {
                continue;
            }
            for (at, _) in code.match_indices(call) {
                // `error(` as a word of its own: not `PullError(`, `log::error!(`.
                let before = code[..at].chars().next_back();
                if call.starts_with(|c: char| c.is_alphabetic())
                    && before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                {
                    continue;
                }
                let line = code[..at].lines().count().max(1);
                let Some(lit) = first_literal(&code[at + call.len()..]) else {
                    continue;
                };
                found.push(Found {
                    at: format!("{rel}:{line}"),
                    call,
                    fragments: fragments(&lit),
                    literal: lit,
                });
            }
        }
    }
    found
}

#[test]
fn every_logged_warning_and_error_and_every_refusal_text_is_in_the_doc() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let doc = collapse(&std::fs::read_to_string(&doc_path).unwrap());
    let found = extract();
    // The extractor still finds what it is for (a broken one would pass
    // everything): lines known to exist, of several kinds.
    let fragments: Vec<&str> = found
        .iter()
        .flat_map(|f| f.fragments.iter().map(String::as_str))
        .collect();
    for known in [
        "refused request",
        "Too many connections",
        "Invalid auth token",
        "cross-instance notices down:",
        "pull failed, reconnect",
        "outbound queue full (client too slow)",
        "Invalid parent event number. Received e",
    ] {
        assert!(
            fragments.iter().any(|f| f.contains(known)),
            "the extractor no longer finds {known:?}: {fragments:#?}"
        );
    }
    assert!(
        fragments.len() >= 50,
        "only {} fragments found",
        fragments.len()
    );
    let missing: Vec<String> = found
        .iter()
        .filter_map(|f| {
            let absent: Vec<&String> = f
                .fragments
                .iter()
                .filter(|frag| !doc.contains(frag.as_str()))
                .collect();
            (!absent.is_empty()).then(|| {
                format!(
                    "{} ({}): {:?}\n      literal: {:?}",
                    f.at, f.call, absent, f.literal
                )
            })
        })
        .collect();
    if std::env::var_os("SHOW_FRAGMENTS").is_some() {
        for f in &found {
            eprintln!("{} {} {:?}", f.at, f.call, f.fragments);
        }
    }
    assert!(
        missing.is_empty(),
        "{DOC} does not mention {} message(s) of src/ (each by the fragment shown; \
         quote it, say what it means and what to do):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn the_extractor_reads_literals_as_rust_does() {
    assert_eq!(literal(r#""a\"b" x"#), Some(("a\"b".to_string(), 6)));
    assert_eq!(
        literal("\"one \\\n        two\""),
        Some(("one two".to_string(), 19))
    );
    assert_eq!(
        literal(r###"r#"x"y"# z"###).map(|l| l.0),
        Some("x\"y".to_string())
    );
    assert_eq!(
        first_literal(r#"503, "Too many connections").write_to(&s)"#),
        Some("Too many connections".to_string())
    );
    assert_eq!(first_literal("status, msg).write_to(&s)"), None);
    assert_eq!(
        first_literal(r#"&format!("cannot start: {e}"))"#),
        Some("cannot start: {e}".to_string())
    );
    assert_eq!(
        fragments("ws dropped {} reason={}"),
        ["ws dropped", "reason="]
    );
    assert_eq!(
        fragments("{} has {{v}} {found}, newer than   this\n livestore-sync knows ({k})"),
        ["has {v}", ", newer than this livestore-sync knows ("]
    );
    assert!(fragments("{e}: {x}").is_empty());
}
