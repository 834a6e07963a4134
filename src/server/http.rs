//! HTTP/1.1 on one connection: read a request (head parsed by `httparse`,
//! body by `Content-Length` or chunked), write a response, keep the
//! connection alive for the next one.
//!
//! Why not tiny_http: a WebSocket needs its `TcpStream` itself (cloned for
//! a separate writer thread, socket options set), and tiny_http's
//! `Request::upgrade` only hands out one boxed stream. Owning the accept
//! loop and this small parser keeps HTTP and WebSocket on one port with
//! one thread per connection (docs/ARCHITECTURE.md).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Largest request head (request line + headers).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 32;

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// HTTP/1.0 without keep-alive, or `Connection: close`.
    pub close: bool,
}

impl Request {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True if a comma-separated header contains `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Why no request could be read. The connection is closed after it; the
/// variants that carry a status get that answer first.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (or timed out) between requests: nothing to answer.
    Closed,
    /// Malformed or too large: answer with this status and close.
    Bad(u16, &'static str),
    Io(io::Error),
}

/// A connection's read side with bytes read ahead of the current request.
/// Generic over the byte source so the fuzz tests (`tests/fuzz/http.rs`)
/// can feed it from memory, in reads of any size; the server's is a socket.
pub struct Conn<R> {
    pub stream: R,
    pub buf: Vec<u8>,
    /// `REQUEST_HEAD_TIMEOUT_SECS`: the whole head must arrive within it
    /// (a per-read timeout alone lets a client trickle a byte per read).
    head_timeout: Option<Duration>,
    /// The socket's read timeout between requests (keep-alive), restored
    /// after a head's deadline shortened it.
    idle: Option<Duration>,
    /// No request read yet: the head's clock runs from the opening.
    first: bool,
}

/// What a [`Conn`] reads from: a socket, whose read timeout the head
/// deadline shortens, or (the fuzz tests) bytes in memory, which have no
/// clock and ignore it.
pub trait Source: Read {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Source for &TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl<'a> Conn<&'a TcpStream> {
    /// A reader without a head deadline (the socket's own timeouts apply).
    pub fn new(stream: &'a TcpStream) -> Conn<&'a TcpStream> {
        Conn::over(stream)
    }

    /// A reader whose heads must arrive within `head_timeout`, from the
    /// opening for the first request and from its first byte for later
    /// ones; between requests the socket waits up to `idle`.
    pub fn with_head_timeout(
        stream: &'a TcpStream,
        head_timeout: Duration,
        idle: Duration,
    ) -> Conn<&'a TcpStream> {
        Conn {
            head_timeout: Some(head_timeout),
            idle: Some(idle),
            ..Conn::new(stream)
        }
    }
}

impl<R: Source> Conn<R> {
    /// Reads requests from any byte source.
    pub fn over(stream: R) -> Conn<R> {
        Conn {
            stream,
            buf: Vec::new(),
            head_timeout: None,
            idle: None,
            first: true,
        }
    }

    /// `fill`, but no later than `deadline`: past it, `408`.
    fn fill_by(&mut self, deadline: Option<Instant>) -> Result<usize, ReadError> {
        const LATE: ReadError = ReadError::Bad(408, "Request head not received in time");
        let Some(deadline) = deadline else {
            return self.fill();
        };
        // Nothing sent at all (a browser's speculative connection): closed
        // without an answer, like an idle keep-alive connection.
        let late = |buf: &[u8]| {
            if buf.is_empty() {
                ReadError::Closed
            } else {
                LATE
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late(&self.buf));
        }
        let wait = self.idle.map_or(left, |idle| idle.min(left));
        let _ = self.stream.set_read_timeout(Some(wait));
        match self.fill() {
            Err(ReadError::Closed) if Instant::now() >= deadline => Err(late(&self.buf)),
            other => other,
        }
    }

    /// Reads more bytes into `buf` (directly: a stack buffer would stay
    /// resident in every connection thread's stack).
    fn fill(&mut self) -> Result<usize, ReadError> {
        let len = self.buf.len();
        self.buf.resize(len + 4096, 0);
        let result = self.stream.read(&mut self.buf[len..]);
        self.buf.truncate(len + *result.as_ref().unwrap_or(&0));
        match result {
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(ReadError::Closed)
            }
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// Reads the next request; `max_body` bounds its body.
    pub fn read_request(&mut self, max_body: usize) -> Result<Request, ReadError> {
        let mut deadline = None;
        let started = self.first || !self.buf.is_empty();
        self.first = false;
        if let Some(t) = self.head_timeout.filter(|_| started) {
            deadline = Some(Instant::now() + t);
        }
        let request = self.read_head_and_body(max_body, &mut deadline);
        // Still set: the head failed part-way; leave the socket as it was.
        if deadline.is_some() {
            let _ = self.stream.set_read_timeout(self.idle);
        }
        request
    }

    fn read_head_and_body(
        &mut self,
        max_body: usize,
        deadline: &mut Option<Instant>,
    ) -> Result<Request, ReadError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let (path, query) = match req.path.unwrap_or("/").split_once('?') {
                        Some((p, q)) => (p.to_string(), q.to_string()),
                        None => (req.path.unwrap_or("/").to_string(), String::new()),
                    };
                    let mut request = Request {
                        method: req.method.unwrap_or("GET").to_string(),
                        path,
                        query,
                        headers: req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                        close: false,
                    };
                    let http10 = req.version == Some(0);
                    request.close = request.header_has_token("connection", "close")
                        || (http10 && !request.header_has_token("connection", "keep-alive"));
                    self.buf.drain(..head_len);
                    if deadline.take().is_some() {
                        // The body is bounded per read, like an idle wait.
                        let _ = self.stream.set_read_timeout(self.idle);
                    }
                    self.read_body(&mut request, max_body)?;
                    return Ok(request);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(ReadError::Bad(431, "Request header fields too large"));
                    }
                    if deadline.is_none() && !self.buf.is_empty() {
                        *deadline = self.head_timeout.map(|t| Instant::now() + t);
                    }
                    if self.fill_by(*deadline)? == 0 {
                        return Err(if self.buf.is_empty() {
                            ReadError::Closed
                        } else {
                            ReadError::Bad(400, "Incomplete request")
                        });
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ReadError::Bad(431, "Too many headers"))
                }
                Err(_) => return Err(ReadError::Bad(400, "Malformed request")),
            }
        }
    }

    fn read_body(&mut self, req: &mut Request, max_body: usize) -> Result<(), ReadError> {
        // Only `chunked` alone, without a Content-Length beside it: any other
        // coding leaves the body's end unknown, and two framings are a
        // smuggling attempt (RFC 9112 6.1, 6.3).
        let mut codings = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(coding) = codings.next() {
            if !coding.eq_ignore_ascii_case("chunked")
                || codings.next().is_some()
                || req.header("content-length").is_some()
            {
                return Err(ReadError::Bad(400, "Unsupported Transfer-Encoding"));
            }
            return self.read_chunked(req, max_body);
        }
        // Digits only (`parse` would take a `+`), the same in every copy of
        // the header; more digits than a usize holds is merely too large.
        let mut len = None;
        for (_, v) in req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReadError::Bad(400, "Invalid Content-Length"));
            }
            let n = v.parse::<usize>().unwrap_or(usize::MAX);
            if len.is_some_and(|l| l != n) {
                return Err(ReadError::Bad(400, "Invalid Content-Length"));
            }
            len = Some(n);
        }
        let len = len.unwrap_or(0);
        if len > max_body {
            return Err(ReadError::Bad(413, "Request body too large"));
        }
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(ReadError::Bad(400, "Incomplete body"));
            }
        }
        req.body = self.buf.drain(..len).collect();
        Ok(())
    }

    fn read_chunked(&mut self, req: &mut Request, max_body: usize) -> Result<(), ReadError> {
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.buf.len() > MAX_HEAD || self.fill()? == 0 {
                    return Err(ReadError::Bad(400, "Invalid chunked body"));
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_hex = line.split(';').next().unwrap_or("").trim();
            // Hex digits only: `from_str_radix` would also take a `+`.
            let size = Some(size_hex)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| usize::from_str_radix(h, 16).ok())
                .ok_or(ReadError::Bad(400, "Invalid chunk size"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Skip trailers up to the empty line, no more of them than
                // a head may have.
                let mut skipped = 0;
                loop {
                    let pending = self.buf.windows(2).position(|w| w == b"\r\n");
                    if skipped + pending.map_or(self.buf.len(), |i| i + 2) > MAX_HEAD {
                        return Err(ReadError::Bad(431, "Trailer fields too large"));
                    }
                    if let Some(i) = pending {
                        skipped += i + 2;
                        self.buf.drain(..i + 2);
                        if i == 0 {
                            return Ok(());
                        }
                    } else if self.fill()? == 0 {
                        return Err(ReadError::Bad(400, "Invalid chunked body"));
                    }
                }
            }
            // `size` is the peer's: a sum that does not fit is no size at all.
            let total = req
                .body
                .len()
                .checked_add(size)
                .ok_or(ReadError::Bad(400, "Invalid chunk size"))?;
            if total > max_body {
                return Err(ReadError::Bad(413, "Request body too large"));
            }
            // The chunk and its CRLF (`size + 2` could still overflow).
            while self.buf.len().saturating_sub(size) < 2 {
                if self.fill()? == 0 {
                    return Err(ReadError::Bad(400, "Incomplete chunk"));
                }
            }
            if self.buf[size..size + 2] != *b"\r\n" {
                return Err(ReadError::Bad(400, "Invalid chunked body"));
            }
            req.body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }
}

/// Writes a streamed body (see [`Response::streamed`]).
pub type BodyWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// A response to write.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// A body written as it is produced (chunked), instead of `body`.
    pub stream: Option<BodyWriter>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("streamed", &self.stream.is_some())
            .finish()
    }
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.into(),
            stream: None,
        }
    }

    /// A body too large to build in memory (an export): `write` produces it
    /// and it goes out with `Transfer-Encoding: chunked`. If `write` fails
    /// the connection is closed without the final chunk, so the client sees
    /// a broken answer rather than a complete-looking partial one.
    pub fn streamed(
        status: u16,
        content_type: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
    ) -> Response {
        Response {
            stream: Some(Box::new(write)),
            ..Response::new(status, content_type, Vec::new())
        }
    }

    /// A plain-text answer (what clients log when a connection fails).
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "application/json", body.into())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes status line, headers, `Content-Length` and body in one write
    /// (or the head, then the streamed body in chunks).
    pub fn write_to(self, mut out: impl Write, keep_alive: bool) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        if self.stream.is_some() {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut bytes = head.into_bytes();
        if let Some(write) = self.stream {
            out.write_all(&bytes)?;
            let mut chunks = io::BufWriter::with_capacity(64 * 1024, Chunked(&mut out));
            write(&mut chunks)?;
            chunks.flush()?;
            drop(chunks);
            out.write_all(b"0\r\n\r\n")?;
            return out.flush();
        }
        bytes.extend_from_slice(&self.body);
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// Frames every write as one HTTP/1.1 chunk (behind a `BufWriter`, so
/// chunks are about its capacity).
struct Chunked<W: Write>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .write_all(format!("{:x}\r\n", buf.len()).as_bytes())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Sends `raw` over a real loopback socket and parses what arrives.
    fn parse(raw: &[u8]) -> Vec<Result<Request, String>> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = raw.to_vec();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            // The server may refuse and close before reading it all.
            let _ = s.write_all(&raw);
        });
        let (stream, _) = listener.accept().unwrap();
        let mut conn = Conn::new(&stream);
        let mut out = Vec::new();
        loop {
            match conn.read_request(1024) {
                Ok(r) => out.push(Ok(r)),
                Err(ReadError::Closed) => break,
                Err(ReadError::Bad(s, m)) => {
                    out.push(Err(format!("{s} {m}")));
                    break;
                }
                Err(ReadError::Io(e)) => panic!("{e}"),
            }
        }
        drop(conn);
        drop(stream); // unblocks a client still writing what was refused
        client.join().unwrap();
        out
    }

    /// The error the first request of `raw` gets, or its body.
    fn first(raw: &[u8]) -> Result<Vec<u8>, String> {
        parse(raw).remove(0).map(|r| r.body)
    }

    #[test]
    fn keep_alive_requests_with_bodies() {
        let reqs = parse(
            b"POST /sync?storeId=a&transport=http HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /health HTTP/1.1\r\nHost: x\r\n\r\n\
POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!(reqs.len(), 3);
        let r0 = reqs[0].as_ref().unwrap();
        assert_eq!(
            (r0.method.as_str(), r0.path.as_str(), r0.query.as_str()),
            ("POST", "/sync", "storeId=a&transport=http")
        );
        assert_eq!(r0.body, b"hello");
        assert!(!r0.close);
        let r1 = reqs[1].as_ref().unwrap();
        assert_eq!((r1.path.as_str(), r1.body.len()), ("/health", 0));
        let r2 = reqs[2].as_ref().unwrap();
        assert_eq!(r2.body, b"abcde");
        assert!(r2.close);
    }

    #[test]
    fn oversized_and_malformed_requests_are_refused() {
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")[0]
                .as_ref()
                .unwrap_err(),
            "413 Request body too large"
        );
        assert_eq!(
            parse(b"NOT HTTP\r\n\r\n")[0].as_ref().unwrap_err(),
            "400 Malformed request"
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")[0]
                .as_ref()
                .unwrap_err(),
            "400 Invalid Content-Length"
        );
    }

    #[test]
    fn chunk_sizes_that_overflow_are_bad_requests() {
        // 3 + 0xffff_ffff_ffff_ffff does not fit in a usize.
        assert_eq!(
            first(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nffffffffffffffff\r\n"),
            Err("400 Invalid chunk size".into())
        );
        // One chunk too large, or chunks adding up past the limit: 413.
        assert_eq!(
            first(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"),
            Err("413 Request body too large".into())
        );
        assert_eq!(
            first(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3fe\r\n"),
            Err("413 Request body too large".into())
        );
        // Exactly the limit (1024) is accepted.
        let mut raw =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3fd\r\n".to_vec();
        raw.extend([b'x'; 0x3fd]);
        raw.extend(b"\r\n0\r\n\r\n");
        assert_eq!(first(&raw).map(|b| b.len()), Ok(1024));
    }

    #[test]
    fn chunks_are_framed_strictly() {
        let chunked = |body: &str| {
            first(format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes())
        };
        // Extensions are ignored; upper-case hex is hex.
        assert_eq!(
            chunked("A;name=\"v;x\"\r\n0123456789\r\n0\r\n\r\n"),
            Ok(b"0123456789".to_vec())
        );
        // The chunk's data must end with CRLF, not with any two bytes.
        assert_eq!(
            chunked("3\r\nabcXY0\r\n\r\n"),
            Err("400 Invalid chunked body".into())
        );
        assert_eq!(
            chunked("3\r\nabcd\r\n0\r\n\r\n"),
            Err("400 Invalid chunked body".into())
        );
        // A chunk size is hex digits only.
        for size in ["+3", "0x3", "", " ", "-0", "3 3"] {
            assert_eq!(
                chunked(&format!("{size}\r\nabc\r\n0\r\n\r\n")),
                Err("400 Invalid chunk size".into()),
                "{size:?}"
            );
        }
    }

    #[test]
    fn trailers_are_bounded_like_the_head() {
        let with_trailers = |lines: usize| {
            let mut raw =
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n".to_vec();
            for i in 0..lines {
                raw.extend(format!("T{i}: {}\r\n", "y".repeat(1000)).as_bytes());
            }
            raw.extend(b"\r\nGET /next HTTP/1.1\r\n\r\n");
            parse(&raw)
        };
        let ok = with_trailers(10);
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].as_ref().unwrap().body, b"x");
        assert_eq!(ok[1].as_ref().unwrap().path, "/next");
        // 20 lines of 1 KB each: past MAX_HEAD (16 KiB) though every line ends.
        assert_eq!(
            with_trailers(20)[0].as_ref().unwrap_err(),
            "431 Trailer fields too large"
        );
        // One line that never ends is refused once it passes the bound,
        // not buffered until the peer stops sending.
        let mut raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: ".to_vec();
        raw.extend([b'y'; 20_000]);
        assert_eq!(first(&raw), Err("431 Trailer fields too large".into()));
    }

    #[test]
    fn content_length_is_digits_and_agrees_with_itself() {
        let with =
            |headers: &str| first(format!("POST / HTTP/1.1\r\n{headers}\r\n\r\nhello").as_bytes());
        assert_eq!(with("Content-Length: 5"), Ok(b"hello".to_vec()));
        assert_eq!(
            with("Content-Length: 5\r\ncontent-length: 5"),
            Ok(b"hello".to_vec())
        );
        // `parse::<usize>` alone would take "+5"; two lengths that differ
        // leave the body's end to whoever reads which one.
        for bad in [
            "Content-Length: +5",
            "Content-Length: ",
            "Content-Length: 5\r\nContent-Length: 0",
            "Content-Length: 0\r\nContent-Length: 5",
        ] {
            assert_eq!(
                with(bad),
                Err("400 Invalid Content-Length".into()),
                "{bad:?}"
            );
        }
        // Too large is refused from the head alone, before any body is
        // read or allocated, even past what a usize holds.
        for huge in ["18446744073709551615", "99999999999999999999999"] {
            assert_eq!(
                first(format!("POST / HTTP/1.1\r\nContent-Length: {huge}\r\n\r\n").as_bytes()),
                Err("413 Request body too large".into()),
                "{huge}"
            );
        }
    }

    #[test]
    fn transfer_encoding_is_chunked_alone() {
        let with = |headers: &str| {
            parse(format!("POST / HTTP/1.1\r\n{headers}\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n").as_bytes())
        };
        let ok = with("Transfer-Encoding: Chunked");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].as_ref().unwrap().body, b"abc");
        // A body whose end this reader cannot find (a coding other than
        // chunked, or chunked not last) or that has two framings (RFC 9112
        // 6.1: a smuggling attempt) is refused, not read as something else.
        for bad in [
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked, gzip",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: chunked\r\nContent-Length: 3",
            "Content-Length: 0\r\nTransfer-Encoding: chunked",
        ] {
            let reqs = with(bad);
            assert_eq!(reqs.len(), 1, "{bad:?}");
            assert_eq!(
                reqs[0].as_ref().unwrap_err(),
                "400 Unsupported Transfer-Encoding",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn http10_closes_by_default() {
        let reqs = parse(b"GET / HTTP/1.0\r\n\r\n");
        assert!(reqs[0].as_ref().unwrap().close);
    }

    #[test]
    fn headers_and_tokens() {
        let r = parse(b"GET /websocket HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUPGRADE: WebSocket\r\n\r\n");
        let r = r[0].as_ref().unwrap();
        assert!(r.header_has_token("connection", "upgrade"));
        assert_eq!(r.header("upgrade"), Some("WebSocket"));
    }

    #[test]
    fn responses_carry_length_and_connection() {
        let mut out = Vec::new();
        Response::text(400, "Invalid auth token")
            .with_header("X-A", "1")
            .write_to(&mut out, false)
            .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(s.contains("Content-Length: 18\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\nInvalid auth token"));
    }

    #[test]
    fn a_streamed_body_goes_out_in_chunks_and_reads_back() {
        let mut out = Vec::new();
        let big = "x".repeat(1000);
        let body = big.clone();
        // Each flush ends a chunk: four chunks of 250 bytes (0xfa).
        Response::streamed(200, "text/plain", move |w| {
            for piece in body.as_bytes().chunks(250) {
                w.write_all(piece)?;
                w.flush()?;
            }
            Ok(())
        })
        .write_to(&mut out, true)
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out).matches("\r\nfa\r\n").count(),
            4
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("Transfer-Encoding: chunked\r\n"),
            "{}",
            &text[..200]
        );
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("\r\n0\r\n\r\n"));
        // Our own request reader de-chunks it back to the same bytes.
        let as_request = [
            b"POST / HTTP/1.1\r\n".as_slice(),
            &out[out.windows(2).position(|w| w == b"\r\n").unwrap() + 2..],
        ]
        .concat();
        let reqs = parse(&as_request);
        assert_eq!(reqs[0].as_ref().unwrap().body, big.as_bytes());
    }

    #[test]
    fn a_failed_stream_sends_no_final_chunk() {
        let mut out = Vec::new();
        let r = Response::streamed(200, "text/plain", |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("storage gone"))
        })
        .write_to(&mut out, true);
        assert!(r.is_err());
        assert!(!String::from_utf8(out).unwrap().ends_with("0\r\n\r\n"));
    }
}
