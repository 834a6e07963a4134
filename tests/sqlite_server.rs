//! The server binary on SQLite, as an operator runs it: the default place
//! of the log, one instance per file, a refusal to start on a read-only
//! file, and `kill -9` under push load losing no acknowledged event.
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;

/// Waits for `/health` to answer 200 with the database ok.
fn healthy(srv: &ServerProcess) {
    let (status, _, body) = http(srv.addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["database"], "ok", "{body}");
}

#[test]
fn without_a_database_url_the_log_is_sqlite_in_data() {
    let _w = watchdog("sqlite_default", Duration::from_secs(60));
    let dir = TempDir::new("default");
    let cwd = dir.path().canonicalize().unwrap();
    // `cargo run` on a fresh machine: no DATABASE_URL, no DATA_DIR.
    let mut cmd = server_command();
    cmd.current_dir(&cwd).args(["--auth-token", TOKEN]);
    let srv = ServerProcess::start_command(cmd);
    let db = cwd.join("data").join("livestore.db");
    assert!(
        srv.logged(&format!(
            "event log: SQLite {} (WAL, synchronous=FULL)",
            db.display()
        )),
        "{:?}",
        srv.log.lock()
    );
    healthy(&srv);
    let mut ws = Ws::v03(srv.addr, "s");
    ws.push_v03_acked("r1", &events(1, 3, "c"));
    drop((ws, srv));
    let c = Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM events WHERE store_id = 's'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);

    // systemd's StateDirectory= sets STATE_DIRECTORY: the log goes there.
    let state = cwd.join("state");
    std::fs::create_dir(&state).unwrap();
    let mut cmd = server_command();
    cmd.current_dir(&cwd).env("STATE_DIRECTORY", &state);
    let srv = ServerProcess::start_command(cmd);
    srv.wait_for_log(
        &format!("event log: SQLite {}/livestore.db", state.display()),
        Duration::from_secs(5),
    );
}

#[test]
fn a_second_server_on_the_same_file_refuses_to_start() {
    let _w = watchdog("sqlite_second", Duration::from_secs(60));
    let dir = TempDir::new("second");
    let first = ServerProcess::start(&dir.db_url(), &["--auth-token", TOKEN]);
    let mut cmd = server_command();
    cmd.args(["--database-url", &dir.db_url()]);
    let (status, stderr) = run_to_exit(cmd, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let db = dir.db().canonicalize().unwrap();
    assert!(
        stderr.contains(&format!(
            "another livestore-sync is using {} (lock file {}-lock, held by process {}); \
             SQLite serves one instance — for several instances use PostgreSQL, see README",
            db.display(),
            db.display(),
            first.child.id()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    healthy(&first);
}

#[test]
fn a_server_on_a_read_only_database_refuses_to_start() {
    let _w = watchdog("sqlite_ro_server", Duration::from_secs(60));
    let dir = TempDir::new("ro_server");
    drop(ServerProcess::start(
        &dir.db_url(),
        &["--auth-token", TOKEN],
    ));
    let Some(_m) = mount_or_explain(Mount::read_only_bind(&dir.db(), &dir.db())) else {
        return;
    };
    let mut cmd = server_command();
    cmd.args(["--database-url", &dir.db_url()]);
    let (status, stderr) = run_to_exit(cmd, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "database file is read-only: {}",
            dir.db().canonicalize().unwrap().display()
        )),
        "{stderr}"
    );
}

/// The database file moved away under a running server: the next push is
/// refused over the wire with the reason (no ack, no broadcast), and
/// `/health` answers 503 with it.
#[test]
fn a_database_moved_away_shows_in_refused_pushes_and_health() {
    let _w = watchdog("sqlite_moved_server", Duration::from_secs(60));
    let dir = TempDir::new("moved_server");
    let srv = ServerProcess::start(&dir.db_url(), &["--auth-token", TOKEN]);
    let mut ws = Ws::v03(srv.addr, "s");
    ws.push_v03_acked("r1", &events(1, 2, "c"));
    healthy(&srv);
    std::fs::rename(dir.db(), dir.path().join("elsewhere.db")).unwrap();
    ws.send_text(&v03_push("r2", &events(3, 1, "c")));
    let answer = ws.recv();
    assert_eq!(answer["_tag"], "WSMessage.Error", "{answer}");
    assert_eq!(answer["requestId"], "r2", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("was deleted or moved while in use"),
        "{answer}"
    );
    assert_eq!(
        ws.recv_within(Duration::from_millis(300)),
        None,
        "no ack, no broadcast"
    );
    let (status, _, body) = http(srv.addr, "GET", "/health", &[], "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("was deleted or moved while in use"), "{body}");
}

/// A real full disk under the server (DATA_DIR on a 2 MiB tmpfs): the
/// push that does not fit is refused over the wire with "disk full",
/// `/health` says so, and every push acknowledged before is in the file.
#[test]
fn a_full_disk_shows_in_refused_pushes_and_health() {
    let _w = watchdog("sqlite_full_server", Duration::from_secs(60));
    let dir = TempDir::new("full_server");
    let Some(m) = mount_or_explain(Mount::tmpfs(&dir.path().join("fs"), 2 << 20)) else {
        return;
    };
    let data = m.path.to_str().unwrap().to_string();
    let mut srv = ServerProcess::start_command({
        let mut cmd = server_command();
        cmd.args(["--data-dir", &data, "--auth-token", TOKEN]);
        cmd
    });
    let mut ws = Ws::v03(srv.addr, "s");
    let mut head = 0;
    let refusal = loop {
        assert!(head < 100_000, "the disk never filled");
        ws.send_text(&v03_push(&format!("r{head}"), &events(head + 1, 50, "c")));
        let answer = ws.recv();
        match answer["_tag"].as_str() {
            Some("WSMessage.PushAck") => {
                let own = ws.recv();
                assert_eq!(own["_tag"], "WSMessage.PullRes", "{own}");
                head += 50;
            }
            _ => break answer,
        }
    };
    assert_eq!(refusal["_tag"], "WSMessage.Error", "{refusal}");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("disk full: cannot write")),
        "{refusal}"
    );
    assert!(head > 0);
    // A health probe writes one page: it may still fit in what the refused
    // push had already added to the WAL file (where depends on the file's
    // layout); each probe that fits uses up some of that room.
    let (mut status, mut body, mut probes) = (200, String::new(), 0);
    while status == 200 && probes < 100 {
        (status, _, body) = http(srv.addr, "GET", "/health", &[], "");
        probes += 1;
    }
    assert_eq!(status, 503, "after {probes} probes: {body}");
    assert!(body.contains("disk full"), "{body}");
    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(20)).success());
    let c = Connection::open(m.path.join("livestore.db")).unwrap();
    let (n, max): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(max(seq_num), 0) FROM events WHERE store_id = 's'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (n, max),
        (head, head),
        "every ack stored, nothing refused stored"
    );
}

/// One acknowledged batch: where it starts, how long, who sent it.
type Acked = (i64, i64, String);

/// Pushes 20-event batches to `store` over 0.3, each on the last acked
/// head, until the connection dies. Returns whether a push was in flight
/// (sent, not acknowledged) when it died.
fn push_until_killed(
    addr: std::net::SocketAddr,
    store: String,
    acked: Arc<Mutex<BTreeMap<String, Vec<Acked>>>>,
    count: Arc<AtomicUsize>,
) -> bool {
    let mut ws = Ws::v03(addr, &store);
    let mut head = 0;
    for k in 0.. {
        let client = format!("{store}-b{k}");
        let n = 20;
        let frame = v03_push(&format!("r{k}"), &events(head + 1, n, &client));
        if ws.ws.send(tungstenite::Message::text(frame)).is_err() {
            return true;
        }
        loop {
            match ws.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["_tag"].as_str() {
                        Some("WSMessage.PushAck") => break,
                        Some("WSMessage.Error") => panic!("{store}: push refused: {v}"),
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(_) => return true,
            }
        }
        acked
            .lock()
            .unwrap()
            .entry(store.clone())
            .or_default()
            .push((head + 1, n, client));
        count.fetch_add(1, Ordering::SeqCst);
        head += n;
    }
    unreachable!()
}

#[test]
fn sigkill_under_push_load_loses_no_acknowledged_event() {
    let _w = watchdog("sqlite_sigkill", Duration::from_secs(120));
    let dir = TempDir::new("sigkill");
    let mut srv = ServerProcess::start(&dir.db_url(), &["--auth-token", TOKEN]);
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..4)
        .map(|i| {
            let (acked, count, addr) = (acked.clone(), count.clone(), srv.addr);
            std::thread::spawn(move || push_until_killed(addr, format!("k{i}"), acked, count))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 200 {
        assert!(Instant::now() < deadline, "too few pushes acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    // kill -9, mid-stream: the clients are still pushing.
    srv.child.kill().unwrap();
    let status = srv.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let in_flight = pushers
        .into_iter()
        .map(|p| p.join().unwrap())
        .filter(|&f| f)
        .count();
    assert!(in_flight > 0, "no push was in flight at the kill");

    // Every acknowledged event is in the file, byte for byte, and every
    // store's log is contiguous.
    let acked = acked.lock().unwrap().clone();
    let c = Connection::open(dir.db()).unwrap();
    let mut heads = BTreeMap::new();
    for (store, batches) in &acked {
        let mut q = c
            .prepare(
                "SELECT seq_num, parent_seq_num, name, args, client_id, session_id \
                 FROM events WHERE store_id = ?1 ORDER BY seq_num",
            )
            .unwrap();
        let rows: Vec<(i64, i64, String, Option<String>, String, String)> = q
            .query_map([store], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            seqs,
            (1..=rows.len() as i64).collect::<Vec<_>>(),
            "{store}: a gap"
        );
        let head: i64 = c
            .query_row(
                "SELECT head FROM stores WHERE store_id = ?1",
                [store],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(head, rows.len() as i64, "{store}: head and log agree");
        for (from, n, client) in batches {
            for seq in *from..from + n {
                let row = rows
                    .get(seq as usize - 1)
                    .unwrap_or_else(|| panic!("{store}: acknowledged event {seq} is lost"));
                assert_eq!(
                    row,
                    &(
                        seq,
                        seq - 1,
                        "v1.TodoCreated".to_string(),
                        Some(args_text(seq, client)),
                        client.clone(),
                        "s".to_string()
                    ),
                    "{store}: event {seq}"
                );
            }
        }
        heads.insert(store.clone(), head);
    }
    assert_eq!(acked.len(), 4);
    drop(c);

    // The lock died with the process: a new server starts on the file and
    // goes on from the stored heads.
    let srv = ServerProcess::start(&dir.db_url(), &["--auth-token", TOKEN]);
    for (store, head) in heads {
        let mut ws = Ws::v03(srv.addr, &store);
        ws.push_v03_acked("after", &events(head + 1, 1, "after"));
    }
}
