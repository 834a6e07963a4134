//! Sockets from another loopback address than 127.0.0.1 (the server does
//! not count 127.0.0.1 against `MAX_CONNECTIONS_PER_IP`: a proxy on the same
//! machine connects from there), and HTTP over a socket already open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A TCP connection to `addr` from `from` (e.g. `127.0.0.2`; all of
/// 127.0.0.0/8 is this machine on Linux).
pub fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local = SocketAddr::from((from, 0));
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `GET path` with `Connection: close` on `s` and reads the answer to
/// its end: `(status, body)`.
pub fn get_on(mut s: TcpStream, path: &str) -> (u16, String) {
    // The server may have answered and closed before this write.
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let (status, _, body) = super::http::parse_response(&String::from_utf8_lossy(&raw));
    (status, body)
}
