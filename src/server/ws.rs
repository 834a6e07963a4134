//! One WebSocket: the connection's thread becomes its reader, and a second
//! thread is its writer.
//!
//! - The reader decodes frames with tungstenite and hands text to the
//!   session. tungstenite answers pings and close frames by writing on its
//!   own; the reader's stream therefore does not write to the socket: it
//!   collects those bytes and queues them on the outbox as `Raw`.
//! - The writer is the only thread that writes to the socket. It frames
//!   queued messages itself (server frames are unmasked, so a header and the
//!   payload), coalesces whatever is queued into one `write`, and ends the
//!   connection on `Close`, `Finish`, or a write error.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::http::Response;
use super::Shutdown as ServerShutdown;
use crate::protocol::query::{Route, SyncParams};
use crate::session::{v03::V03Session, v04_ws::V04WsSession, Ctx};
use crate::sync::outbox::{Outbound, Outbox};

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

/// Runs a WebSocket to its end. `leftover` holds bytes read past the
/// upgrade request. Returns after both threads are done.
pub fn serve(
    ctx: &Arc<Ctx>,
    stream: Arc<TcpStream>,
    leftover: Vec<u8>,
    params: SyncParams,
    key: &str,
    peer: &str,
    shutdown: &ServerShutdown,
) {
    let limits = &ctx.config.limits;
    let proto = if params.route == Route::V03 {
        "0.3"
    } else {
        "0.4"
    };
    let label = format!("ws store={:?} peer={peer} proto={proto}", params.store_id);
    let (outbox, rx) = Outbox::new(limits.outbound_queue, Some(stream.clone()), label.clone());

    // Open the session before answering 101, so a database failure is a 503
    // the client retries with backoff, not an accepted-then-closed socket.
    let opened = match params.route {
        Route::V03 => {
            V03Session::open(ctx.clone(), &params.store_id, outbox.clone()).map(Session::V03)
        }
        _ => V04WsSession::open(ctx.clone(), &params.store_id, outbox.clone()).map(Session::V04),
    };
    let mut session = match opened {
        Ok(s) => s,
        Err(e) => {
            log::error!("{label}: refused upgrade: 503 {e}");
            let _ = Response::text(503, "Storage unavailable, try again").write_to(&*stream, false);
            return;
        }
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
    if (&*stream).write_all(head.as_bytes()).is_err() {
        return;
    }
    log::info!("{label} open");

    let writer_stream = stream.clone();
    let writer_outbox = outbox.clone();
    let writer = std::thread::Builder::new()
        .name("ws-writer".into())
        .stack_size(limits.writer_stack)
        .spawn(move || write_loop(&rx, &writer_stream, &writer_outbox));
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            log::error!("{label}: cannot start writer thread: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            return;
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
    let mut ws = WebSocket::from_partially_read(io, leftover, Role::Server, Some(config));

    let why = read_loop(&mut ws, &mut session, params.route, shutdown);
    drop(session); // detach from the store before the socket goes away
    if shutdown.is_triggered() {
        outbox.close(1001, "server shutting down");
    }
    if outbox
        .send(Outbound::Finish, Duration::from_secs(1))
        .is_err()
    {
        let _ = stream.shutdown(Shutdown::Both);
    }
    let _ = writer.join();
    log::info!("{label} closed: {why}");
}

fn read_loop(
    ws: &mut WebSocket<ReaderIo>,
    session: &mut Session,
    route: Route,
    shutdown: &ServerShutdown,
) -> String {
    loop {
        match ws.read() {
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
                    log::debug!("client close {} {}", u16::from(f.code), f.reason);
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
        // A full queue means the socket is being dropped anyway.
        let _ = self.outbox.try_send(Outbound::Raw(buf.into()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends a server (unmasked) frame header for a payload of `len` bytes.
fn frame_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
/// Coalesce queued messages up to this many bytes per write.
const COALESCE: usize = 256 * 1024;
/// Largest write buffer an idle socket keeps.
const IDLE_BUF: usize = 4096;

fn encode(out: &mut Vec<u8>, msg: &Outbound) {
    match msg {
        Outbound::Text(t) => {
            frame_header(out, OP_TEXT, t.len());
            out.extend_from_slice(t.as_bytes());
        }
        Outbound::Static(t) => {
            frame_header(out, OP_TEXT, t.len());
            out.extend_from_slice(t.as_bytes());
        }
        Outbound::Wrapped(w) => {
            let (head, body, tail) = &**w;
            frame_header(out, OP_TEXT, head.len() + body.len() + tail.len());
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(body.as_bytes());
            out.extend_from_slice(tail.as_bytes());
        }
        Outbound::Raw(bytes) => out.extend_from_slice(bytes),
        Outbound::Close(code, reason) => {
            frame_header(out, OP_CLOSE, 2 + reason.len());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
        Outbound::Finish => {}
    }
}

fn write_loop(rx: &Receiver<Outbound>, mut stream: &TcpStream, outbox: &Outbox) {
    let mut buf: Vec<u8> = Vec::new();
    let mut closing = false;
    'outer: loop {
        let first = if closing {
            match rx.recv_timeout(CLOSE_WAIT) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        let mut next = Some(first);
        let mut finish = false;
        while let Some(msg) = next.take() {
            match msg {
                Outbound::Finish => finish = true,
                // After our close frame, nothing else may be sent.
                _ if closing => {}
                Outbound::Close(..) => {
                    encode(&mut buf, &msg);
                    closing = true;
                }
                _ => encode(&mut buf, &msg),
            }
            if finish || buf.len() >= COALESCE {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            if let Err(e) = stream.write_all(&buf) {
                outbox.kill(&format!("write failed: {e}"));
                break 'outer;
            }
            buf.clear();
            // Going idle: give back what a large pull page needed, so that
            // thousands of idle sockets stay small.
            if buf.capacity() > IDLE_BUF && rx.is_empty() {
                buf = Vec::new();
            }
        }
        if finish {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        let mut b = Vec::new();
        frame_header(&mut b, OP_TEXT, 5);
        assert_eq!(b, [0x81, 5]);
        b.clear();
        frame_header(&mut b, OP_TEXT, 300);
        assert_eq!(b, [0x81, 126, 1, 44]);
        b.clear();
        frame_header(&mut b, OP_TEXT, 70_000);
        assert_eq!(b, [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn frames_decode_with_tungstenite() {
        // Our frames, read back by tungstenite as a client.
        let mut bytes = Vec::new();
        encode(&mut bytes, &Outbound::Text("hello".into()));
        encode(
            &mut bytes,
            &Outbound::Wrapped(Box::new(("[".into(), "1,2".into(), "]"))),
        );
        encode(&mut bytes, &Outbound::Close(1001, "bye"));
        let mut ws = WebSocket::from_raw_socket(io::Cursor::new(bytes), Role::Client, None);
        assert_eq!(ws.read().unwrap(), Message::Text("hello".into()));
        assert_eq!(ws.read().unwrap(), Message::Text("[1,2]".into()));
        match ws.read().unwrap() {
            Message::Close(Some(f)) => {
                assert_eq!((u16::from(f.code), f.reason.as_str()), (1001, "bye"))
            }
            other => panic!("{other:?}"),
        }
    }
}
