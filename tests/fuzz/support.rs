//! What every target shares: how many inputs to run (`FUZZ_CASES`), the
//! seed (`FUZZ_SEED`), the one-line report, and the two ways inputs are
//! made besides plain generation: byte mutations of captured frames, and
//! JSON-aware mutations (a node of a real frame replaced by another value).

use std::cell::Cell;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::Value;

/// Inputs per target: `FUZZ_CASES`, or `default` (the short run CI makes
/// as part of `cargo test`).
pub fn cases(default: u32) -> u32 {
    match std::env::var("FUZZ_CASES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("FUZZ_CASES must be a count, got {v:?}")),
        Err(_) => default,
    }
}

/// `FUZZ_SEED` (a number), or a fixed seed: CI runs the same inputs every
/// time, so a red run is reproducible and not a coin toss.
pub fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("FUZZ_SEED must be a number, got {v:?}"))
        })
        .unwrap_or(13)
}

/// Runs `test` on `cases(default_cases)` inputs drawn from `strategy`. A
/// failure (an assertion or a panic) is shrunk to a small input and fails
/// the test with it; a pass prints one line: the target, how many inputs,
/// "0 panics", the time.
pub fn run<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = cases(default_cases);
    let seed = seed();
    // Each target its own stream of inputs from the one seed.
    let target_seed = name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let config = Config {
        cases,
        // Failures become unit tests next to the code (docs/fuzzing.md);
        // no regression files.
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(target_seed),
        max_shrink_iters: 10_000,
        ..Config::default()
    };
    let inputs = AtomicU64::new(0);
    // Proptest runs the cases on this thread.
    ACCEPTED.with(|a| a.set(0));
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        inputs.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    if let Err(e) = result {
        panic!("fuzz {name} (FUZZ_SEED={seed}): {e}");
    }
    let accepted = match ACCEPTED.with(Cell::get) {
        0 => String::new(),
        n => format!("; {n} accepted"),
    };
    println!(
        "fuzz {name}: {} inputs, 0 panics, {:.1} s (FUZZ_SEED={seed}{accepted})",
        inputs.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
}

thread_local! {
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// Counts an input the code under test accepted (a frame decoded to a
/// message, bytes read as a request, a query parsed): the report says how
/// many inputs got past the first check, not only that nothing panicked.
pub fn accepted() {
    ACCEPTED.with(|a| a.set(a.get() + 1));
}

/// The captured frames (real npm clients against the reference server).
pub fn captured(file: &str, dir: &str, kind: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/frames/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("fixture line is JSON"))
        .filter(|v| v["dir"] == dir && v["type"] == kind)
        .filter_map(|v| v["data"].as_str().map(str::to_string))
        .collect()
}

/// Tokens that matter to a JSON decoder, spliced into frames.
const TOKENS: &[&str] = &[
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-",
    "0",
    "-0",
    "1e999",
    "1.5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "\u{ff}",
    "\"_tag\"",
    "\"Some\"",
    "\"None\"",
    "\"value\"",
    "\"seqNum\"",
    "\"parentSeqNum\"",
    "\"batch\"",
    "\"args\"",
    "\"requestId\"",
    "\"cursor\"",
    "%",
    "%25",
    "%2",
    "+",
    "&",
    "=",
    "\r\n",
    "\r\n\r\n",
    "0\r\n",
    ";",
    " ",
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `edits` to `bytes` in order.
pub fn apply(mut bytes: Vec<u8>, edits: &[Mutation]) -> Vec<u8> {
    for m in edits {
        // Positions 0..=len, so an edit can also append.
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::Flip(i, bit) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Set(i, b) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Token(i, t) => {
                let i = at(i, bytes.len());
                let t = TOKENS[t.index(TOKENS.len())].as_bytes();
                bytes.splice(i..i, t.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Duplicate(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Truncate(i) => {
                let i = at(i, bytes.len());
                bytes.truncate(i);
            }
            _ => {}
        }
    }
    bytes
}

/// One of `seeds`, with 1 to 8 byte edits.
pub fn mutated(seeds: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty());
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..8),
    )
        .prop_map(|(seed, edits)| apply(seed.into_bytes(), &edits))
}

/// The bytes as text the way a WebSocket text frame arrives: tungstenite
/// refuses invalid UTF-8, so a decoder only ever sees valid text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Field names the decoders look for (so generated objects hit them).
const KEYS: &[&str] = &[
    "_tag",
    "requestId",
    "id",
    "tag",
    "payload",
    "batch",
    "cursor",
    "storeId",
    "live",
    "backendId",
    "eventSequenceNumber",
    "value",
    "name",
    "args",
    "seqNum",
    "parentSeqNum",
    "clientId",
    "sessionId",
    "adminSecret",
    "authToken",
];

/// Strings the decoders compare against.
const TAGS: &[&str] = &[
    "WSMessage.PullReq",
    "WSMessage.PushReq",
    "WSMessage.Ping",
    "WSMessage.AdminInfoReq",
    "WSMessage.AdminResetRoomReq",
    "ping",
    "Request",
    "Ack",
    "Interrupt",
    "Ping",
    "Eof",
    "SyncWsRpc.Pull",
    "SyncWsRpc.Push",
    "SyncHttpRpc.Pull",
    "SyncHttpRpc.Push",
    "SyncHttpRpc.Ping",
    "Some",
    "None",
    "",
];

/// Numbers at the edges of what the decoders accept.
fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            0i64,
            1,
            -1,
            2,
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            i64::MIN + 1
        ])
        .prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        prop::sample::select(vec![0.5, -0.0, 1e300, -1e300, 9.3e18, -9.3e18, 2.5])
            .prop_map(Value::from),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        prop::sample::select(TAGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, small, with objects keyed mostly by the protocol's field names.
pub fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => ".{0,6}",
    ];
    json_leaf().prop_recursive(4, 32, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every node of `v` (a path of object keys and array indexes).
fn nodes(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Step::At(i));
                nodes(x, path, out);
                path.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                path.push(Step::Key(k.clone()));
                nodes(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    At(usize),
    Key(String),
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::At(i) => &mut v[*i],
        Step::Key(k) => &mut v[k.as_str()],
    })
}

/// One JSON-aware edit: replace a node, remove it (from its object or
/// array), or add a key beside it.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    Replace(Index, Value),
    Remove(Index),
    AddKey(Index, String, Value),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        1 => any::<Index>().prop_map(JsonEdit::Remove),
        1 => (any::<Index>(), prop::sample::select(KEYS), json_leaf())
            .prop_map(|(i, k, v)| JsonEdit::AddKey(i, k.to_string(), v)),
    ]
}

/// Applies JSON-aware edits to the value.
pub fn apply_json(mut v: Value, edits: &[JsonEdit]) -> Value {
    for edit in edits {
        let mut all = Vec::new();
        nodes(&v, &mut Vec::new(), &mut all);
        match edit {
            JsonEdit::Replace(i, new) => {
                let path = &all[i.index(all.len())];
                *node_mut(&mut v, path) = new.clone();
            }
            JsonEdit::Remove(i) => {
                let path = &all[i.index(all.len())];
                if let Some((last, parent)) = path.split_last() {
                    match (node_mut(&mut v, parent), last) {
                        (Value::Array(a), Step::At(i)) => {
                            a.remove(*i);
                        }
                        (Value::Object(o), Step::Key(k)) => {
                            o.remove(k);
                        }
                        _ => {}
                    }
                }
            }
            JsonEdit::AddKey(i, k, new) => {
                let path = &all[i.index(all.len())];
                if let Value::Object(o) = node_mut(&mut v, path) {
                    o.insert(k.clone(), new.clone());
                }
            }
        }
    }
    v
}

/// One of `seeds` (JSON texts) with 1 to 4 JSON-aware edits, as text.
pub fn json_mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let values: Vec<Value> = seeds
        .iter()
        .map(|s| serde_json::from_str(s).expect("seed is JSON"))
        .collect();
    (
        prop::sample::select(values),
        prop::collection::vec(json_edit(), 1..4),
    )
        .prop_map(|(v, edits)| apply_json(v, &edits).to_string())
}

/// JSON text of any value with its keys in the generated order and
/// whitespace and number spellings varied: text a decoder must keep byte
/// for byte where it keeps raw JSON (`args`).
pub fn json_text() -> impl Strategy<Value = String> {
    let ws = prop::sample::select(vec!["", "", "", " ", "\n", "\t", "  \r\n "]);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "-0",
            "1.50",
            "1e5",
            "1E+5",
            "0.1e-3",
            "-12.0",
            "1e400",
            "123456789012345678901234567890"
        ])
        .prop_map(str::to_string),
        ".{0,8}".prop_map(|s| Value::from(s).to_string()),
        // Escapes a re-serialisation would spell differently.
        prop::sample::select(vec![r#""\u00e9\/""#, r#""\ud83d\ude00""#, r#""a\u0000b""#])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        let ws = ws.clone();
        prop_oneof![
            (
                prop::collection::vec(inner.clone(), 0..4),
                ws.clone(),
                ws.clone()
            )
                .prop_map(|(items, a, b)| format!("[{a}{}{b}]", items.join(&format!("{b},{a}")))),
            (
                prop::collection::vec(
                    (prop::sample::select(KEYS).prop_map(str::to_string), inner),
                    0..4
                ),
                ws.clone(),
                ws
            )
                .prop_map(|(entries, a, b)| {
                    let body: Vec<String> = entries
                        .iter()
                        .map(|(k, v)| format!("{a}\"{k}\"{b}:{a}{v}{b}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
        ]
    })
}
