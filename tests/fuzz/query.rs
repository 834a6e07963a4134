//! The sync request's query string and its payload.
//!
//! Properties: `route` and `parse` never panic on any query; parameters
//! encoded the way the clients encode them (`URLSearchParams`, the payload
//! `encodeURIComponent`-ed first) decode to what was encoded; percent
//! decoding inverts percent encoding; the auth check accepts exactly the
//! configured token.

use livestore_sync::auth::{Auth, Decision};
use livestore_sync::config::Config;
use livestore_sync::protocol::query::{self, ct_eq, percent_decode, ParamError, Route};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

use crate::support::{accepted, captured, json_value, mutated, run, text};

/// `application/x-www-form-urlencoded` as `URLSearchParams` writes it.
fn form_encode(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        match b {
            b'*' | b'-' | b'.' | b'_' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `encodeURIComponent`.
fn uri_component(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')'
            | b'0'..=b'9'
            | b'A'..=b'Z'
            | b'a'..=b'z' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query strings the real clients sent.
fn seeds() -> Vec<String> {
    let mut q: Vec<String> = ["frames-v03.log", "frames-v04.log", "frames-v03-badauth.log"]
        .iter()
        .flat_map(|f| captured(f, "meta", "open"))
        .map(|path| {
            path.split_once('?')
                .map_or(path.clone(), |(_, q)| q.to_string())
        })
        .collect();
    q.dedup();
    q
}

/// The auth of a server whose `AUTH_TOKEN` is `tokens` (no JWT keys).
fn shared_token(tokens: &str) -> Auth {
    let config = Config {
        auth_token: tokens.to_string(),
        ..Config::default()
    };
    Auth::from_config(&config).unwrap_or_else(|_| Auth::refuse_all())
}

/// Decodes `q` every way the server does; checks what must hold whatever `q` is.
fn check_any(path: &str, q: &str) -> Result<(), TestCaseError> {
    let route = query::route(path, q);
    for r in [Route::V03, Route::V04Ws, Route::V04Http] {
        if let Ok(p) = query::parse(r, q) {
            if r == Route::V03 {
                accepted();
            }
            prop_assert_eq!(p.route, r);
            // The shared-token mode with its default token.
            let token = p
                .payload
                .as_ref()
                .and_then(|v| v.get("authToken"))
                .and_then(Value::as_str);
            prop_assert_eq!(p.auth_token(), token);
            let decision = shared_token("insecure-token-change-me").check(&p.store_id, token, 0);
            match (token, decision) {
                (Some("insecure-token-change-me"), Decision::Allow { .. }) => {}
                (_, Decision::Refuse(r)) if token != Some("insecure-token-change-me") => {
                    prop_assert_eq!(r.status, 401)
                }
                (t, d) => prop_assert!(false, "token {:?}: {:?}", t, d),
            }
        }
    }
    // Every refusal has its text (what the client logs).
    if let Some(r) = route {
        if let Err(e) = query::parse(r, q) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

#[test]
fn any_query_decodes_without_panic() {
    let strategy = (
        prop_oneof![
            Just("/websocket".to_string()),
            Just("/".to_string()),
            ".{0,12}"
        ],
        prop_oneof![
            4 => mutated(seeds()).prop_map(|b| text(&b)),
            1 => "[a-zA-Z%0-9=&+;.]{0,40}",
            1 => ".{0,40}",
        ],
    );
    run("query_mutated", 4_000, strategy, |(path, q)| {
        check_any(&path, &q)
    });
}

#[derive(Debug, Clone)]
struct Params {
    store_id: String,
    /// The payload's JSON text (JSON.stringify's output, or any JSON).
    payload: Option<String>,
    transport: Option<String>,
    extra: Vec<(String, String)>,
    order: Vec<usize>,
}

fn params() -> impl Strategy<Value = Params> {
    let payload = prop_oneof![
        ".{0,16}".prop_map(|t| serde_json::json!({ "authToken": t }).to_string()),
        json_value().prop_map(|v| v.to_string()),
    ];
    (
        prop_oneof![3 => ".{0,16}", 1 => Just(String::new()), 1 => "[ +%&=]{1,4}"],
        prop::option::of(payload),
        prop::option::of(prop_oneof![
            Just("ws".to_string()),
            Just("http".to_string()),
            ".{0,4}"
        ]),
        prop::collection::vec(("[a-z]{1,6}", ".{0,6}"), 0..3),
        Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_map(|(store_id, payload, transport, extra, order)| Params {
            store_id,
            payload,
            transport,
            extra,
            order,
        })
}

#[test]
fn client_encoded_parameters_decode_to_what_was_encoded() {
    run("query_round_trip", 3_000, params(), |p| {
        let mut pairs = vec![Some(format!(
            "storeId={}",
            form_encode(p.store_id.as_bytes())
        ))];
        pairs.push(
            p.payload
                .as_ref()
                .map(|j| format!("payload={}", form_encode(uri_component(j).as_bytes()))),
        );
        pairs.push(
            p.transport
                .as_ref()
                .map(|t| format!("transport={}", form_encode(t.as_bytes()))),
        );
        for (k, v) in &p.extra {
            // Other names only: a repeated known name is another property.
            if !["storeId", "payload", "transport"].contains(&k.as_str()) {
                pairs.push(Some(format!("{k}={}", form_encode(v.as_bytes()))));
            }
        }
        let mut ordered: Vec<String> = p
            .order
            .iter()
            .filter_map(|&i| pairs.get(i).cloned().flatten())
            .collect();
        ordered.extend(pairs.iter().skip(6).flatten().cloned());
        let q = ordered.join("&");
        let route = query::route("/sync/websocket", &q);
        let want_route = match p.transport.as_deref() {
            None => Route::V03,
            Some("http") => Route::V04Http,
            Some(_) => Route::V04Ws,
        };
        prop_assert_eq!(route, Some(want_route), "{}", q);
        let parsed = query::parse(want_route, &q);
        match p.transport.as_deref() {
            Some(t) if t != "ws" && t != "http" => {
                prop_assert_eq!(parsed, Err(ParamError::UnknownTransport(t.to_string())));
                return Ok(());
            }
            _ => {}
        }
        let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e}: {q}")))?;
        prop_assert_eq!(&parsed.store_id, &p.store_id);
        let want: Option<Value> = p
            .payload
            .as_deref()
            .map(|j| serde_json::from_str(j).expect("generated JSON"));
        prop_assert_eq!(&parsed.payload, &want);
        // A parameter given twice is refused whichever it is.
        let twice = format!("{q}&storeId=x");
        prop_assert_eq!(
            query::parse(want_route, &twice),
            Err(ParamError::RepeatedParam("storeId"))
        );
        check_any("/sync/websocket", &q)
    });
}

#[test]
fn percent_decoding_inverts_encoding_and_auth_is_exact() {
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..64),
        ".{0,24}",
        prop_oneof![".{0,12}", Just("insecure-token-change-me".to_string())],
        ".{0,12}",
    );
    run(
        "percent_and_auth",
        4_000,
        strategy,
        |(bytes, junk, token, expected)| {
            let encoded = form_encode(&bytes);
            prop_assert_eq!(percent_decode(&encoded, true), Some(bytes.clone()));
            // `+` is a space only in the form layer.
            let plus = percent_decode(&encoded, false).unwrap();
            prop_assert_eq!(plus.len(), bytes.len());
            if let Some(d) = percent_decode(&junk, true) {
                prop_assert!(d.len() <= junk.len());
            }
            prop_assert_eq!(
                ct_eq(token.as_bytes(), expected.as_bytes()),
                token == expected
            );
            let q = format!(
                "storeId=s&payload={}",
                form_encode(
                    uri_component(&serde_json::json!({ "authToken": token }).to_string())
                        .as_bytes()
                )
            );
            let p = query::parse(Route::V03, &q).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // AUTH_TOKEN is a comma-separated list of trimmed tokens.
            let listed = expected
                .split(',')
                .map(str::trim)
                .any(|t| !t.is_empty() && t == token);
            prop_assert_eq!(
                matches!(
                    shared_token(&expected).check("s", p.auth_token(), 0),
                    Decision::Allow { .. }
                ),
                listed,
                "{:?} vs {:?}",
                token,
                expected
            );
            Ok(())
        },
    );
}
