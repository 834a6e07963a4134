//! A minimal HTTP/1.1 client: one request per connection, and the parts of
//! an answer the tests look at.

use std::net::SocketAddr;
use std::time::Duration;

/// A minimal HTTP/1.1 client: one request on a new connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&String::from_utf8(raw).unwrap())
}

pub fn parse_response(raw: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The value of header `name` (any case), if the answer has it.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether the answer is `text/plain` (with any parameters).
pub fn is_plain_text(headers: &[(String, String)]) -> bool {
    header(headers, "content-type").is_some_and(|c| c.starts_with("text/plain"))
}

/// The server's own live counts (`connections`, `websockets`, `threads`),
/// from `/health`; this request is one of the connections.
pub fn open_counts(addr: SocketAddr) -> serde_json::Value {
    let (status, _, body) = http(addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["open"].clone()
}

/// Waits until the server has `n` connections open besides the `/health`
/// request asking (the others have ended: a WebSocket's reader handled all
/// it read first); panics after `within`. Connections are counted from
/// their accept, so none is missed that the client already sees open.
pub fn wait_open_connections(addr: SocketAddr, n: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let open = open_counts(addr);
        if open["connections"] == n + 1 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after {within:?}: {open}, expected {n} connection(s) besides this request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
