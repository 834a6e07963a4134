//! A small in-process 0.3 server for the bench's own tests: correct by
//! default, with faults to switch on, so the tests can show that every
//! scenario passes against a correct server and fails against a broken one.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::Message;

/// Misbehaviours the mock can show.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Accept every push whatever its parent (two winners in a race).
    pub no_parent_check: bool,
    /// Send every broadcast twice.
    pub duplicate_broadcast: bool,
    /// Off-by-one `remaining` on pull pages.
    pub wrong_remaining: bool,
    /// Reorder the keys of `args` (as a jsonb column would).
    pub reorder_args: bool,
}

#[derive(Default)]
struct Store {
    head: u64,
    /// Raw JSON of each stored event, in order.
    events: Vec<(u64, String)>,
    subscribers: Vec<Sender<String>>,
}

type Stores = Arc<Mutex<HashMap<String, Store>>>;

/// Starts the mock on 127.0.0.1 and returns its port.
pub fn start(faults: Faults) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stores: Stores = Arc::default();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let stores = stores.clone();
            std::thread::spawn(move || serve(s, stores, faults));
        }
    });
    port
}

fn store_of(uri: &str) -> Option<String> {
    let q = uri.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix("storeId="))
        .map(|s| s.replace('+', " "))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Req<'a> {
    #[serde(rename = "_tag")]
    tag: String,
    #[serde(borrow)]
    request_id: &'a RawValue,
    #[serde(default)]
    cursor: Option<u64>,
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seq {
    seq_num: u64,
    parent_seq_num: u64,
}

fn item(raw: &str) -> String {
    format!(
        r#"{{"eventEncoded":{raw},"metadata":{{"_tag":"Some","value":{{"createdAt":"2025-01-01T00:00:00.000Z"}}}}}}"#
    )
}

fn page(ctx: &str, id: &str, items: &[String], remaining: u64) -> String {
    format!(
        r#"{{"_tag":"WSMessage.PullRes","batch":[{}],"requestId":{{"context":"{ctx}","requestId":{id}}},"remaining":{remaining}}}"#,
        items.join(",")
    )
}

#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
fn serve(stream: TcpStream, stores: Stores, faults: Faults) {
    let mut store_id = String::new();
    let cb = |req: &Request, resp: Response| {
        store_id = store_of(&req.uri().to_string()).unwrap_or_default();
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, cb) else {
        return;
    };
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let (tx, rx): (Sender<String>, Receiver<String>) = unbounded();
    stores
        .lock()
        .entry(store_id.clone())
        .or_default()
        .subscribers
        .push(tx);
    loop {
        while let Ok(out) = rx.try_recv() {
            if ws.send(Message::text(out)).is_err() {
                return;
            }
        }
        let text = match ws.read() {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) => return,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let Ok(req) = serde_json::from_str::<Req>(&text) else {
            continue;
        };
        let id = req.request_id.get();
        let mut out = Vec::new();
        match req.tag.as_str() {
            "WSMessage.Ping" => {
                out.push(r#"{"_tag":"WSMessage.Pong","requestId":"ping"}"#.to_string())
            }
            "WSMessage.PullReq" => {
                let st = stores.lock();
                let items: Vec<String> = st[&store_id]
                    .events
                    .iter()
                    .filter(|(s, _)| *s > req.cursor.unwrap_or(0))
                    .map(|(_, raw)| item(raw))
                    .collect();
                if items.is_empty() {
                    out.push(page("pull", id, &[], 0));
                }
                let mut left = items.len() as u64;
                for chunk in items.chunks(100) {
                    left -= chunk.len() as u64;
                    let shown = if faults.wrong_remaining && left > 0 {
                        left + 1
                    } else {
                        left
                    };
                    out.push(page("pull", id, chunk, shown));
                }
            }
            "WSMessage.PushReq" => {
                let batch = req.batch.unwrap_or_default();
                let mut st = stores.lock();
                let s = st.get_mut(&store_id).unwrap();
                let first: Option<Seq> = batch
                    .first()
                    .and_then(|e| serde_json::from_str(e.get()).ok());
                match first {
                    Some(f) if f.parent_seq_num != s.head && !faults.no_parent_check => out.push(format!(
                        r#"{{"_tag":"WSMessage.Error","requestId":{id},"message":"Invalid parent event number. Received e{} but expected e{}"}}"#,
                        f.parent_seq_num, s.head
                    )),
                    _ => {
                        let mut items = Vec::new();
                        for e in &batch {
                            let seq: Seq = serde_json::from_str(e.get()).unwrap();
                            let raw = if faults.reorder_args {
                                // serde_json's map sorts keys.
                                serde_json::to_string(&serde_json::from_str::<serde_json::Value>(e.get()).unwrap())
                                    .unwrap()
                            } else {
                                e.get().to_string()
                            };
                            items.push(item(&raw));
                            s.events.push((seq.seq_num, raw));
                            s.head = s.head.max(seq.seq_num);
                        }
                        out.push(format!(r#"{{"_tag":"WSMessage.PushAck","requestId":{id}}}"#));
                        if !items.is_empty() {
                            let b = page("push", id, &items, 0);
                            let copies = if faults.duplicate_broadcast { 2 } else { 1 };
                            s.subscribers.retain(|sub| (0..copies).all(|_| sub.send(b.clone()).is_ok()));
                        }
                    }
                }
            }
            _ => {}
        }
        for o in out {
            if ws.send(Message::text(o)).is_err() {
                return;
            }
        }
    }
}
