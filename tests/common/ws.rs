//! WebSocket clients: [`Ws`] (tungstenite, blocking, with a read timeout)
//! and raw sockets for what a well-behaved client never does (half a frame,
//! a TCP reset).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::server::TOKEN;
use super::urls::{v03_path, v04_path};

/// A blocking WebSocket test client with a read timeout.
pub struct Ws {
    pub ws: tungstenite::WebSocket<TcpStream>,
}

impl Ws {
    /// Connects to `path` (with query) on `addr`; panics if refused.
    pub fn connect(addr: SocketAddr, path: &str) -> Ws {
        Self::try_connect(addr, path).unwrap_or_else(|e| panic!("connect {path}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr, path: &str) -> Result<Ws, tungstenite::Error> {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tungstenite::client::client(url, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("handshake interrupted"),
        })?;
        Ok(Ws { ws })
    }

    pub fn v03(addr: SocketAddr, store: &str) -> Ws {
        Self::connect(addr, &v03_path(store, TOKEN))
    }

    pub fn v04(addr: SocketAddr, store: &str) -> Ws {
        Self::connect(addr, &v04_path(store, TOKEN, "ws"))
    }

    pub fn send(&mut self, v: serde_json::Value) {
        self.send_text(&v.to_string());
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(tungstenite::Message::text(text))
            .expect("send");
    }

    /// The next text message as JSON (panics on timeout or close).
    pub fn recv(&mut self) -> serde_json::Value {
        loop {
            match self.ws.read().expect("read") {
                tungstenite::Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).expect("server sent JSON")
                }
                tungstenite::Message::Close(f) => panic!("closed by server: {f:?}"),
                _ => {}
            }
        }
    }

    /// The next message within `timeout`, or `None` if nothing arrived.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        self.ws.get_ref().set_read_timeout(Some(timeout)).unwrap();
        let out = match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(other) => panic!("unexpected message {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("read: {e}"),
        };
        self.ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        out
    }

    /// The text messages that arrive until the socket ends (close frame or error).
    pub fn until_closed(&mut self) -> Vec<serde_json::Value> {
        let mut got = Vec::new();
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    got.push(serde_json::from_str(t.as_str()).unwrap())
                }
                Ok(tungstenite::Message::Close(_)) | Err(_) => return got,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the server closes; returns the close code (None: no close frame).
    pub fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next text message as its raw text (panics on timeout or close).
    pub fn recv_text(&mut self) -> String {
        loop {
            match self.ws.read().expect("read") {
                tungstenite::Message::Text(t) => return t.as_str().to_string(),
                tungstenite::Message::Close(f) => panic!("closed by server: {f:?}"),
                _ => {}
            }
        }
    }

    /// A 0.3 `WSMessage.Ping`, answered by its `Pong` (the socket is open
    /// and subscribed once this returns).
    pub fn ping_v03(&mut self) {
        self.send_text(r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#);
        assert_eq!(
            self.recv(),
            serde_json::json!({"_tag": "WSMessage.Pong", "requestId": "ping"})
        );
    }

    /// A 0.4 `Ping`, answered by its `Pong`, to the byte.
    pub fn ping_v04(&mut self) {
        self.send_text(r#"{"_tag":"Ping"}"#);
        assert_eq!(self.recv_text(), r#"{"_tag":"Pong"}"#);
    }

    /// A 0.3 push that must be accepted: the `PushAck`, then the pusher's
    /// own broadcast of it (returned).
    pub fn push_v03_acked(&mut self, request_id: &str, batch: &str) -> serde_json::Value {
        self.send_text(&super::frames::v03_push(request_id, batch));
        assert_eq!(
            self.recv(),
            serde_json::json!({"_tag": "WSMessage.PushAck", "requestId": request_id})
        );
        let own = self.recv();
        assert_eq!(own["_tag"], "WSMessage.PullRes", "{own}");
        own
    }

    /// Reads a 0.3 socket until a `PushAck` (skipping broadcasts); panics on
    /// a `WSMessage.Error`.
    pub fn await_v03_ack(&mut self) {
        loop {
            let m = self.recv();
            if m["_tag"] == "WSMessage.PushAck" {
                return;
            }
            assert_ne!(m["_tag"], "WSMessage.Error", "{m}");
        }
    }
}

/// A client frame: masked, as RFC 6455 requires of clients.
pub fn masked_text(text: &str) -> Vec<u8> {
    let p = text.as_bytes();
    let mask = [0x5a, 0x13, 0xc7, 0x2e];
    let mut out = vec![0x81];
    if p.len() < 126 {
        out.push(0x80 | p.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// An upgraded socket, read up to the end of the `101` answer.
pub fn raw_ws(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Closes with a TCP reset (SO_LINGER 0): unread data is discarded and the
/// server's next read or write fails with ECONNRESET or EPIPE.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}
