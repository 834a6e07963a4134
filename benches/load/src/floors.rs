//! The floors: what the layers under the server can do on this machine,
//! measured in the same run, so every scenario can say how far above them
//! the server is.
//!
//! * PostgreSQL insert: one connection inserting 50-row batches into a
//!   scratch table, one commit per batch.
//! * PostgreSQL read: `COPY (SELECT … FROM events WHERE store_id = … ORDER BY
//!   seq_num) TO STDOUT` of the store a scenario just wrote.
//! * Loopback WebSocket: handshake and round trip against an in-process
//!   tungstenite echo server.

use std::cell::OnceCell;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::events::make_chain;
use crate::stats::{ms, rate, round1, Samples};

/// Loopback WebSocket floor.
#[derive(Debug, Clone)]
pub struct WsFloor {
    pub handshake_p50_ms: f64,
    pub rtt_p50_ms: f64,
    pub rtt_p99_ms: f64,
    pub json: Value,
}

/// PostgreSQL insert floor.
#[derive(Debug, Clone)]
pub struct PgInsertFloor {
    pub events_per_s: f64,
    pub commit_p50_ms: f64,
    pub json: Value,
}

/// PostgreSQL COPY floor of one store.
#[derive(Debug, Clone)]
pub struct PgCopyFloor {
    pub rows: u64,
    pub events_per_s: f64,
    pub mb_per_s: f64,
    pub json: Value,
}

/// Floors measured once per run and shared by the scenarios.
pub struct Floors {
    pub db_url: Option<String>,
    pub ws_samples: usize,
    pub events_table: String,
    pub copy_columns: String,
    ws: OnceCell<Result<WsFloor, String>>,
    pg_insert: OnceCell<Result<PgInsertFloor, String>>,
}

/// Batches of the insert floor (× 50 rows).
const INSERT_FLOOR_BATCHES: usize = 200;
const INSERT_FLOOR_BATCH_SIZE: usize = 50;

impl Floors {
    pub fn new(
        db_url: Option<String>,
        ws_samples: usize,
        events_table: String,
        copy_columns: String,
    ) -> Floors {
        Floors {
            db_url,
            ws_samples,
            events_table,
            copy_columns,
            ws: OnceCell::new(),
            pg_insert: OnceCell::new(),
        }
    }

    /// A smaller version for smoke runs.
    pub fn ws(&self) -> Result<WsFloor, String> {
        self.ws.get_or_init(|| ws_floor(self.ws_samples)).clone()
    }

    /// `None` without `--database-url`.
    pub fn pg_insert(&self) -> Option<Result<PgInsertFloor, String>> {
        let url = self.db_url.as_ref()?;
        Some(
            self.pg_insert
                .get_or_init(|| {
                    pg_insert_floor(url, INSERT_FLOOR_BATCHES, INSERT_FLOOR_BATCH_SIZE, 200)
                })
                .clone(),
        )
    }

    /// `None` without `--database-url`.
    pub fn pg_copy(&self, store_id: &str) -> Option<Result<PgCopyFloor, String>> {
        let url = self.db_url.as_ref()?;
        Some(pg_copy_floor(
            url,
            &self.events_table,
            &self.copy_columns,
            store_id,
        ))
    }
}

/// Wraps a floor result as JSON: the numbers, or `{"error": …}`.
pub fn floor_json<T>(r: &Result<T, String>, json: impl Fn(&T) -> Value) -> Value {
    match r {
        Ok(v) => json(v),
        Err(e) => json!({ "error": e }),
    }
}

// ---------------------------------------------------------------------------
// Loopback WebSocket
// ---------------------------------------------------------------------------

/// Starts an echo server on 127.0.0.1 (one thread per connection, like our
/// server) and returns its port. The threads live until the process ends.
pub fn start_echo_server() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("echo server bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::Builder::new()
        .name("echo-accept".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || echo(stream));
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(port)
}

fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn ws_client(port: u16) -> Result<WebSocket<TcpStream>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
        .map_err(|e| format!("echo handshake: {e}"))?;
    Ok(ws)
}

/// Handshake time (connect + upgrade) and round trip of a ping-sized text
/// frame against the in-process echo server.
pub fn ws_floor(samples: usize) -> Result<WsFloor, String> {
    let port = start_echo_server()?;
    let mut hs = Samples::new();
    for _ in 0..50 {
        let t0 = Instant::now();
        let ws = ws_client(port)?;
        hs.add(t0.elapsed());
        drop(ws);
    }
    let mut ws = ws_client(port)?;
    let mut rtt = Samples::new();
    let frame = r#"{"_tag":"Ping"}"#;
    for _ in 0..samples.max(1) {
        let t0 = Instant::now();
        ws.send(Message::text(frame)).map_err(|e| e.to_string())?;
        loop {
            match ws.read().map_err(|e| format!("echo read: {e}"))? {
                Message::Text(t) if t.as_str() == frame => break,
                Message::Text(t) => return Err(format!("echo server answered {t:?}")),
                _ => {}
            }
        }
        rtt.add(t0.elapsed());
    }
    let _ = ws.close(None);
    Ok(WsFloor {
        handshake_p50_ms: hs.pct(50.0).unwrap_or(0.0),
        rtt_p50_ms: rtt.pct(50.0).unwrap_or(0.0),
        rtt_p99_ms: rtt.pct(99.0).unwrap_or(0.0),
        json: json!({ "handshake": hs.summary(), "round_trip": rtt.summary() }),
    })
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

fn pg_connect(url: &str) -> Result<postgres::Client, String> {
    postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("connecting to PostgreSQL: {e}"))
}

/// Inserts `batches` batches of `batch_size` event rows into a scratch table
/// shaped like the server's `events` table, one transaction per batch.
pub fn pg_insert_floor(
    url: &str,
    batches: usize,
    batch_size: usize,
    args_bytes: usize,
) -> Result<PgInsertFloor, String> {
    let mut c = pg_connect(url)?;
    let table = format!(
        "lss_bench_floor_{}_{}",
        std::process::id(),
        crate::util::random_u64() % 1_000_000
    );
    c.batch_execute(&format!(
        "CREATE TABLE {table} (
            store_id text NOT NULL, seq_num bigint NOT NULL, parent_seq_num bigint NOT NULL,
            name text NOT NULL, args json, created_at timestamptz NOT NULL,
            client_id text NOT NULL, session_id text NOT NULL,
            PRIMARY KEY (store_id, seq_num))"
    ))
    .map_err(|e| format!("creating the scratch table: {e}"))?;
    let result = (|| {
        let mut sql = format!(
            "INSERT INTO {table} (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id) VALUES "
        );
        for i in 0..batch_size {
            let b = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${}::text::json,now(),${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let stmt = c
            .prepare(&sql)
            .map_err(|e| format!("preparing the insert: {e}"))?;
        let store = "floor".to_string();
        let mut lat = Samples::new();
        let t0 = Instant::now();
        for b in 0..batches {
            let chain = make_chain(
                "floor-client",
                (b * batch_size) as u64,
                batch_size,
                args_bytes,
            );
            let rows: Vec<(i64, i64, String)> = chain
                .iter()
                .map(|e| {
                    (
                        e.seq_num as i64,
                        e.parent_seq_num as i64,
                        e.args.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(batch_size * 7);
            for (e, r) in chain.iter().zip(&rows) {
                params.extend_from_slice(&[
                    &store,
                    &r.0,
                    &r.1,
                    &e.name,
                    &r.2,
                    &e.client_id,
                    &e.session_id,
                ]);
            }
            let t = Instant::now();
            let mut tx = c.transaction().map_err(|e| e.to_string())?;
            tx.execute(&stmt, &params)
                .map_err(|e| format!("insert: {e}"))?;
            tx.commit().map_err(|e| format!("commit: {e}"))?;
            lat.add(t.elapsed());
        }
        let total = t0.elapsed();
        let events = (batches * batch_size) as f64;
        Ok(PgInsertFloor {
            events_per_s: rate(events, total),
            commit_p50_ms: lat.pct(50.0).unwrap_or(0.0),
            json: json!({
                "batches": batches,
                "batch_size": batch_size,
                "events_per_s": round1(rate(events, total)),
                "batch_commit": lat.summary(),
            }),
        })
    })();
    let _ = c.batch_execute(&format!("DROP TABLE IF EXISTS {table}"));
    result
}

/// Doubles single quotes for a SQL string literal.
pub fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Reads one store's rows in order with COPY, as fast as PostgreSQL hands
/// them out.
pub fn pg_copy_floor(
    url: &str,
    table: &str,
    columns: &str,
    store_id: &str,
) -> Result<PgCopyFloor, String> {
    let mut c = pg_connect(url)?;
    let sql = format!(
        "COPY (SELECT {columns} FROM {table} WHERE store_id = {} ORDER BY seq_num) TO STDOUT",
        sql_literal(store_id)
    );
    let t0 = Instant::now();
    let mut reader = c.copy_out(sql.as_str()).map_err(|e| format!("COPY: {e}"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let (mut bytes, mut rows) = (0u64, 0u64);
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("COPY read: {e}"))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        rows += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    drop(reader);
    let d = t0.elapsed();
    let eps = rate(rows as f64, d);
    let mbps = rate(bytes as f64 / 1e6, d);
    Ok(PgCopyFloor {
        rows,
        events_per_s: eps,
        mb_per_s: mbps,
        json: json!({
            "rows": rows, "bytes": bytes, "ms": ms(d),
            "events_per_s": round1(eps), "mb_per_s": round1(mbps),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_floor_measures_something() {
        let f = ws_floor(50).unwrap();
        assert!(f.rtt_p50_ms > 0.0);
        assert!(f.rtt_p99_ms >= f.rtt_p50_ms);
        assert_eq!(f.json["round_trip"]["n"], 50);
        assert_eq!(f.json["handshake"]["n"], 50);
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(sql_literal("a'b"), "'a''b'");
    }

    /// Needs PostgreSQL where the other tests find it: `TEST_DATABASE_URL`,
    /// default the local server (it never skips itself).
    #[test]
    fn pg_floors_against_a_real_database() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_string());
        let f = pg_insert_floor(&url, 3, 50, 200).unwrap();
        assert!(f.events_per_s > 0.0);
        assert_eq!(f.json["batch_commit"]["n"], 3);
        let mut c = pg_connect(&url).unwrap();
        let t = format!("lss_bench_copytest_{}", std::process::id());
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (store_id text, seq_num bigint, x text);
             INSERT INTO {t} SELECT 'it''s', g, 'line\nbreak' FROM generate_series(1, 120) g;
             INSERT INTO {t} VALUES ('other', 1, 'y');"
        ))
        .unwrap();
        let copy = pg_copy_floor(&url, &t, "seq_num, x", "it's");
        c.batch_execute(&format!("DROP TABLE {t}")).unwrap();
        assert_eq!(copy.unwrap().rows, 120);
    }
}
