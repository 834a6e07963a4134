//! REQUEST_HEAD_TIMEOUT_SECS: a request head trickled a byte at a time
//! (slow-loris) gets `408` and the connection is closed once the whole head
//! has taken longer than the limit, though every single read came well
//! within the keep-alive timeout. A connection that sends nothing at all is
//! closed without an answer.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn a_trickled_head_gets_408_and_a_silent_connection_is_closed() {
    let _w = watchdog("limit_request_head", Duration::from_secs(60));
    let srv = TestServer::start_with("head_timeout", |c| {
        c.limits.request_head_timeout = Duration::from_secs(1);
    });
    // Before the limit: one byte every 100 ms never lets a read time out
    // (HTTP_KEEP_ALIVE is 60 s); only the head's deadline ends it.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let mut sent = 0;
    let trickle = std::thread::spawn({
        let mut s = s.try_clone().unwrap();
        move || {
            while s.write_all(b"X").is_ok() && sent < 200 {
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            sent
        }
    });
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let (status, _, body) = parse_response(&String::from_utf8_lossy(&raw));
    assert_eq!(
        (status, body.as_str()),
        (408, "Request head not received in time")
    );
    assert!(
        trickle.join().unwrap() < 200,
        "the trickler was never cut off"
    );

    // Nothing sent: closed without a word.
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut raw = Vec::new();
    silent.read_to_end(&mut raw).unwrap();
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));

    // A whole head in time is served, on a connection kept alive past the
    // limit between its requests.
    let mut ok = TcpStream::connect(srv.addr).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    ok.write_all(get).unwrap();
    let mut buf = [0u8; 4096];
    let n = ok.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(1500));
    ok.write_all(get).unwrap();
    let n = ok.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
