//! One WebSocket: the connection's thread becomes its reader, and a second
//! thread is its writer.
//!
//! - The reader decodes frames with tungstenite and hands text to the
//!   session. tungstenite answers pings and close frames by writing on its
//!   own; the reader's stream passes those bytes to the outbox as `Raw`.
//! - The writer frames queued messages itself (server frames are unmasked,
//!   so a header and the payload), coalesces whatever is queued into one
//!   `write`, and ends the connection on `Close`, `Finish`, or a write error.
//! - Every write holds the outbox's write lock. The reader writes a small
//!   reply itself when nothing is queued (`Outbox::send`), so a keepalive
//!   ping does not wake the writer thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::http::Response;
use super::live::Live;
use super::outbox::{Outbound, Outbox, QueueLimits};
use super::{Ctx, Shutdown as ServerShutdown};
use crate::logfmt;
use crate::metrics::{ConnGuard, ConnKind, Proto, Refusal};
use crate::protocol::query::Route;
use crate::protocol::ws_frame;
use crate::session::{v03::V03Session, v04_ws::V04WsSession};
use crate::sync::sink::Sink;

/// How long the writer waits for the client's close reply after sending a close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

enum Session {
    V03(V03Session),
    V04(V04WsSession),
}

impl Session {
    fn handle_text(&mut self, text: &str) {
        match self {
            Session::V03(s) => s.handle_text(text),
            Session::V04(s) => s.handle_text(text),
        }
    }
}

/// What a WebSocket keeps of its upgrade request.
pub struct Upgrade<'a> {
    pub route: Route,
    pub store_id: &'a str,
    /// The client's `Sec-WebSocket-Key`.
    pub key: &'a str,
    /// Bytes read past the upgrade request.
    pub leftover: Vec<u8>,
    /// The token's `exp` (Unix seconds), for a signed token: past it (and
    /// the leeway) the socket is closed at its next message. Clients ping
    /// every 10 s (0.4) or 25 s (0.3), so that is soon after.
    pub expires: Option<u64>,
}

/// Runs a WebSocket to its end. Returns after both threads are done.
pub fn serve(
    ctx: &Arc<Ctx>,
    stream: Arc<TcpStream>,
    upgrade: Upgrade<'_>,
    peer: &str,
    shutdown: &ServerShutdown,
    live: &Arc<Live>,
    kind: &ConnGuard<'_>,
) {
    let route = upgrade.route;
    let expires = upgrade
        .expires
        .map(|e| e.saturating_add(crate::auth::LEEWAY_SECS));
    let Some(mut open) = open(ctx, stream, upgrade, peer, live, kind) else {
        return;
    };
    let why = read_loop(&mut open.ws, &mut open.session, route, shutdown, expires);
    let Open {
        session,
        outbox,
        writer,
        ..
    } = open;
    drop(session); // detach from the store before the socket goes away
    if shutdown.is_triggered() {
        outbox.close(1001, "server shutting down");
    } else if why == TOKEN_EXPIRED {
        // 1008: policy violation; the client reconnects and needs a new token.
        outbox.close(1008, "token expired");
    }
    // The writer ends after what is queued (bounded by the write timeout),
    // at once if the socket is dead.
    outbox.finish();
    let _ = writer.join();
    log::info!("ws closed {} reason={}", outbox.label, logfmt::value(&why));
}

/// An open WebSocket, as its reader loop needs it.
struct Open<'a> {
    ws: Box<WebSocket<ReaderIo>>,
    session: Session,
    outbox: Arc<Outbox>,
    writer: std::thread::JoinHandle<()>,
    _counted: super::live::Guard<'a>,
}

/// Opens the session, answers 101 and starts the writer; `None` if the
/// socket could not be opened (already answered or gone). Kept out of line:
/// its locals would otherwise stay on the reader's stack under every pull,
/// whose PostgreSQL read is the deepest point of that stack (resident pages
/// count per 4 KiB, per idle socket).
#[inline(never)]
fn open<'a>(
    ctx: &Arc<Ctx>,
    stream: Arc<TcpStream>,
    upgrade: Upgrade<'_>,
    peer: &str,
    live: &'a Arc<Live>,
    kind: &ConnGuard<'_>,
) -> Option<Open<'a>> {
    let Upgrade {
        route,
        store_id,
        key,
        leftover,
        ..
    } = upgrade;
    let limits = &ctx.config.limits;
    let protocol = if route == Route::V03 { "0.3" } else { "0.4-ws" };
    let label = format!(
        "store={} peer={} protocol={protocol}",
        logfmt::quoted(store_id),
        logfmt::value(peer)
    );
    let queue = QueueLimits {
        capacity: limits.outbound_queue,
        max_bytes: limits.max_queued_bytes,
        reply_timeout: limits.write_timeout,
    };
    let (outbox, rx) = Outbox::new(
        queue,
        Some(stream.clone()),
        label,
        ctx.env.hub.metrics().clone(),
    );
    let label = &outbox.label;
    let sink: Arc<dyn Sink> = outbox.clone();

    // Open the session before answering 101, so a database failure is a 503
    // the client retries with backoff, not an accepted-then-closed socket.
    let env = ctx.env.clone();
    let opened = match route {
        Route::V03 => V03Session::open(env, store_id, sink).map(Session::V03),
        _ => V04WsSession::open(env, store_id, sink).map(Session::V04),
    };
    let session = match opened {
        Ok(s) => s,
        Err(e) => {
            log::error!(
                "refused upgrade {label} status=503 reason={}",
                logfmt::value(&e.to_string())
            );
            let m = ctx.metrics();
            m.refused(Refusal::StorageUnavailable, label);
            m.error(&format!("upgrade refused: {e}"), label);
            let _ = Response::text(503, "Storage unavailable, try again").write_to(&*stream, false);
            return None;
        }
    };
    // Counted before the 101 goes out: a client that sees the socket open
    // also sees it in the counts.
    let counted = live.websocket();
    kind.set(ConnKind::Sync(if route == Route::V03 {
        Proto::V03
    } else {
        Proto::V04Ws
    }));
    if (&*stream)
        .write_all(switching_protocols(key).as_bytes())
        .is_err()
    {
        return None;
    }
    log::info!("ws open {label}");

    let writer_stream = stream.clone();
    let writer_outbox = outbox.clone();
    let writer_live = live.clone();
    let writer = std::thread::Builder::new()
        .name("ws-writer".into())
        .stack_size(limits.writer_stack)
        .spawn(move || {
            let _thread = writer_live.thread();
            write_loop(&rx, &writer_stream, &writer_outbox)
        });
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            log::error!(
                "ws failed {label} reason={}",
                logfmt::value(&format!("cannot start writer thread: {e}"))
            );
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        }
    };

    let _ = stream.set_read_timeout(Some(limits.ws_idle_timeout));
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    // Nothing but pong and close replies is written through tungstenite, so
    // its write buffer stays empty; its read buffer is sized per socket.
    let config = WebSocketConfig::default()
        .read_buffer_size(limits.ws_read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes));
    let io = ReaderIo {
        stream: stream.clone(),
        outbox: outbox.clone(),
    };
    let ws = Box::new(WebSocket::from_partially_read(
        io,
        leftover,
        Role::Server,
        Some(config),
    ));
    Some(Open {
        ws,
        session,
        outbox,
        writer,
        _counted: counted,
    })
}

/// The `101` answer to an upgrade request with this `Sec-WebSocket-Key`.
fn switching_protocols(key: &str) -> String {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
}

const TOKEN_EXPIRED: &str = "token expired";

fn read_loop(
    ws: &mut WebSocket<ReaderIo>,
    session: &mut Session,
    route: Route,
    shutdown: &ServerShutdown,
    expires: Option<u64>,
) -> String {
    loop {
        let read = ws.read();
        // Checked before the message is handled: an expired token pushes
        // nothing more.
        if expires.is_some_and(|e| super::routes::unix_now() >= e) {
            return TOKEN_EXPIRED.into();
        }
        match read {
            Ok(Message::Text(text)) => session.handle_text(text.as_str()),
            // 0.4 clients accept binary UTF-8 JSON, so accept it from them too;
            // 0.3 ignores binary frames (as the reference does).
            Ok(Message::Binary(bytes)) if route != Route::V03 => {
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    session.handle_text(text);
                }
            }
            Ok(Message::Close(frame)) => {
                // tungstenite queued the close reply; the next read flushes it.
                if let Some(f) = frame {
                    log::debug!(
                        "ws close frame code={} reason={}",
                        u16::from(f.code),
                        logfmt::value(&f.reason)
                    );
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return "closed by client".into()
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return "idle timeout".into();
            }
            Err(_) if shutdown.is_triggered() => return "server shutting down".into(),
            Err(tungstenite::Error::Protocol(e)) => return format!("protocol error: {e}"),
            Err(tungstenite::Error::Capacity(e)) => return format!("message too large: {e}"),
            Err(e) => return format!("connection lost: {e}"),
        }
    }
}

/// The reader's side of the socket as tungstenite sees it: reads from the
/// socket, and writes (pong and close replies) into the writer's queue.
/// tungstenite writes its whole out-buffer (complete frames) per `write`
/// call and, after a close reply, does not call `flush`: so each write is
/// queued at once.
struct ReaderIo {
    stream: Arc<TcpStream>,
    outbox: Arc<Outbox>,
}

impl Read for ReaderIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.stream).read(buf)
    }
}

impl Write for ReaderIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Written at once when the writer is idle; a full queue means the
        // socket is being dropped anyway, so this never waits.
        let _ = self.outbox.send(Outbound::Raw(buf.into()), Duration::ZERO);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Coalesce queued messages up to this many bytes per write.
const COALESCE: usize = 256 * 1024;
/// Largest write buffer an idle socket keeps; a larger one (a pull page) is
/// given back once the queue is empty, so thousands of idle sockets stay small.
const IDLE_BUF: usize = 1024;

/// One queued live chunk: its stream's head, its values, the tail.
type Wrapped = Box<(Arc<str>, Arc<str>, &'static str)>;

/// Live chunks of one 0.4 pull stream queued back to back, as one `Chunk`
/// with all their `values` (the real client accepts several; see
/// docs of sync-cf 0.4, "one `Chunk` frame may carry several PullResponses").
/// A writer that falls behind a burst of pushes then writes one frame, and
/// its client answers one `Ack`, instead of one per push. Only neighbours in
/// the queue are merged, and only those of the same stream (the same head,
/// by pointer: a new pull of the same id has its own), so the order of
/// everything on the socket stays as queued.
#[derive(Default)]
struct Chunks {
    parts: Vec<Wrapped>,
    /// Payload bytes of the merged chunk so far.
    len: usize,
}

/// A merged chunk grows to at most this payload (a single larger one is
/// written as it is).
const MERGE_MAX: usize = 256 * 1024;

impl Chunks {
    /// Takes `w` into the chunk being merged, first writing that chunk out
    /// to `out` if `w` belongs to another stream or would make it too large.
    fn add(&mut self, w: Wrapped, out: &mut Vec<u8>) {
        if let Some(first) = self.parts.first() {
            let fits = self.len + 1 + w.1.len() <= MERGE_MAX;
            if !(fits && Arc::ptr_eq(&first.0, &w.0) && first.2 == w.2) {
                self.flush(out);
            }
        }
        self.len += if self.parts.is_empty() {
            w.0.len() + w.1.len() + w.2.len()
        } else {
            1 + w.1.len()
        };
        self.parts.push(w);
    }

    /// Writes the merged chunk (if any) to `out` as one text frame.
    fn flush(&mut self, out: &mut Vec<u8>) {
        let Some(first) = self.parts.first() else {
            return;
        };
        let (head, tail) = (first.0.clone(), first.2);
        out.reserve(self.len + 10);
        ws_frame::header(out, ws_frame::OP_TEXT, self.len);
        out.extend_from_slice(head.as_bytes());
        for (i, w) in self.parts.drain(..).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(w.1.as_bytes());
        }
        out.extend_from_slice(tail.as_bytes());
        self.len = 0;
    }
}

/// The writer's next message, or `None` past `deadline` or once the queue
/// is disconnected. crossbeam's blocking receive spins, yields a few times,
/// then sleeps: the yields catch the next message of a burst (the broadcast
/// after an ack, the next pull page) without a sleep and a wake-up. A
/// writer that parked right after its spin had half the context switches
/// and twice the fan-out latency on a quiet machine (BENCHMARKS.md, issue
/// 14, "Tried and reverted").
fn next_message(rx: &Receiver<Outbound>, deadline: Option<Instant>) -> Option<Outbound> {
    match deadline {
        None => rx.recv().ok(),
        Some(d) => rx.recv_deadline(d).ok(),
    }
}

fn write_loop(rx: &Receiver<Outbound>, stream: &TcpStream, outbox: &Outbox) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunks = Chunks::default();
    let mut closing = false;
    let mut close_deadline = None;
    'outer: while let Some(first) = next_message(rx, close_deadline) {
        // A dead socket (killed, or a write failed) takes no more writes.
        if outbox.is_dead() {
            break;
        }
        // Held until the batch is written: a reply the reader writes itself
        // (see `Outbox::send`) never jumps ahead of messages taken here.
        let guard = outbox.lock_writes();
        let mut next = Some(first);
        let mut finish = false;
        while let Some(msg) = next.take() {
            outbox.taken(&msg);
            match msg {
                Outbound::Finish => finish = true,
                // After our close frame, nothing else may be sent.
                _ if closing => {}
                Outbound::Wrapped(w) => chunks.add(w, &mut buf),
                Outbound::Close(..) => {
                    chunks.flush(&mut buf);
                    msg.encode(&mut buf);
                    closing = true;
                    close_deadline = Some(Instant::now() + CLOSE_WAIT);
                }
                _ => {
                    chunks.flush(&mut buf);
                    msg.encode(&mut buf);
                }
            }
            if finish || buf.len() + chunks.len >= COALESCE {
                break;
            }
            next = rx.try_recv().ok();
        }
        chunks.flush(&mut buf);
        if !buf.is_empty() {
            if outbox.write_locked(&guard, stream, &buf).is_err() {
                break 'outer;
            }
            buf.clear();
            if buf.capacity() > IDLE_BUF && rx.is_empty() {
                buf = Vec::new();
                chunks.parts = Vec::new();
            }
        }
        drop(guard);
        if finish {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn live(head: &Arc<str>, body: &str) -> Wrapped {
        Box::new((head.clone(), body.into(), "]}"))
    }

    /// The text frames in `bytes` (server frames: unmasked), as JSON.
    fn frames(mut bytes: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0], 0x81);
            let (len, at) = match bytes[1] {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push(serde_json::from_slice(&bytes[at..at + len]).unwrap());
            bytes = &bytes[at + len..];
        }
        out
    }

    #[test]
    fn queued_live_chunks_of_one_stream_go_out_as_one_chunk() {
        let a: Arc<str> = r#"{"_tag":"Chunk","requestId":"0","values":["#.into();
        let b: Arc<str> = r#"{"_tag":"Chunk","requestId":"1","values":["#.into();
        // A new stream of the same id has its own head: never merged.
        let a2: Arc<str> = r#"{"_tag":"Chunk","requestId":"0","values":["#.into();
        let mut c = Chunks::default();
        let mut out = Vec::new();
        c.add(live(&a, r#"{"n":1}"#), &mut out);
        c.add(live(&a, r#"{"n":2},{"n":3}"#), &mut out);
        c.add(live(&a, r#"{"n":4}"#), &mut out);
        c.add(live(&b, r#"{"n":5}"#), &mut out);
        c.add(live(&a, r#"{"n":6}"#), &mut out);
        c.add(live(&a2, r#"{"n":7}"#), &mut out);
        c.flush(&mut out);
        c.flush(&mut out); // nothing left: nothing written
        let got = frames(&out);
        let values = |v: &Value| -> Vec<i64> {
            v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["n"].as_i64().unwrap())
                .collect()
        };
        let ids: Vec<&str> = got
            .iter()
            .map(|v| v["requestId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["0", "1", "0", "0"]);
        assert_eq!(values(&got[0]), [1, 2, 3, 4]);
        assert_eq!(values(&got[1]), [5]);
        assert_eq!(values(&got[2]), [6]);
        assert_eq!(values(&got[3]), [7]);
        assert!(c.parts.is_empty() && c.len == 0);
    }

    #[test]
    fn a_merged_chunk_stays_within_its_bound() {
        let a: Arc<str> = r#"{"_tag":"Chunk","requestId":"0","values":["#.into();
        let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(MERGE_MAX / 2));
        let mut c = Chunks::default();
        let mut out = Vec::new();
        for _ in 0..3 {
            c.add(live(&a, &big), &mut out);
        }
        c.flush(&mut out);
        let got = frames(&out);
        assert_eq!(got.len(), 3);
        // A single chunk over the bound still goes out, alone.
        let huge = format!(r#"{{"x":"{}"}}"#, "y".repeat(MERGE_MAX));
        let mut out = Vec::new();
        c.add(live(&a, r#"{"x":"1"}"#), &mut out);
        c.add(live(&a, &huge), &mut out);
        c.add(live(&a, r#"{"x":"2"}"#), &mut out);
        c.flush(&mut out);
        let got = frames(&out);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["values"].as_array().unwrap().len(), 1);
    }
}
