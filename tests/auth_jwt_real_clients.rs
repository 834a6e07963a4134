//! Signed tokens (JWT) with the REAL LiveStore clients: a 0.4 WebSocket writer and a 0.4 HTTP
//! reader whose tokens grant the store sync it (the HTTP client's token is checked on each of its
//! requests); a 0.3 client whose token grants only another store never syncs (its upgrade gets
//! `403`). The server has no static token that would let them in otherwise.
//!
//! Needs Node.js >= 20 and npm; without them these tests FAIL, they never skip.
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::node::*;
use common::{watchdog, EventLog, ServerProcess};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "real-clients-jwt-secret";

fn token(claims: Value) -> &'static str {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    Box::leak(
        encode(&Header::new(Algorithm::HS256), &claims, &key)
            .unwrap()
            .into_boxed_str(),
    )
}

#[test]
fn real_clients_sync_with_a_jwt_for_their_store_only() {
    let _w = watchdog("jwt_real_clients", Duration::from_secs(300));
    prepare_clients("v04");
    prepare_clients("v03");
    let db = EventLog::sqlite("jwt-real");
    let server = ServerProcess::start(&db.url(), &["--jwt-secret", SECRET]);
    let store = format!("team-7_todos-{}", std::process::id());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;

    let mut writer = ClientSpec::writer(Kind::V04Ws, "jwt-writer", EVENTS_PER_WRITER);
    writer.token = token(json!({"stores": [store], "exp": exp}));
    let w = spawn_client(&server, &store, &writer).finish();
    let ids: BTreeSet<String> = writer.own_ids().into_iter().collect();
    assert_converged(&w, &ids, &server);

    let mut reader = ClientSpec::reader(Kind::V04Http, "jwt-reader", EVENTS_PER_WRITER);
    reader.token = token(json!({"store_prefix": "team-7_", "exp": exp}));
    let r = spawn_client(&server, &store, &reader).finish();
    assert_converged(&r, &ids, &server);

    let mut other = ClientSpec::wrong_token(Kind::V03, "jwt-other-store");
    other.token = token(json!({"stores": ["another-store"], "exp": exp}));
    let o = spawn_client(&server, &store, &other).finish();
    let ctx = || format!("{}\n{}", o.ctx(), server.context());
    assert!(o.report.is_some(), "no JSON report\n{}", ctx());
    assert_eq!(o.field("synced"), &Value::Bool(false), "{}", ctx());
    assert_eq!(o.field("foreignCount").as_u64(), Some(0), "{}", ctx());
    assert!(
        server.logged("status=403 reason=\"Forbidden: the auth token does not grant store"),
        "{}",
        ctx()
    );
    for t in [writer.token, reader.token, other.token] {
        assert!(!server.logged(t), "a token in the server's log");
    }
    assert_eq!(db.rows(&store).len(), EVENTS_PER_WRITER);
}
