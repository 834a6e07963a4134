//! The HTTP/1.1 request reader (`server::http::Conn`), fed from memory in
//! reads of generated sizes (a request split anywhere, as TCP may), and the
//! chunked response writer read back by it.
//!
//! Properties: any bytes end in requests or one refusal, never a panic, a
//! loop, a body past the limit or a buffer past its bound; generated
//! requests (Content-Length or chunked, with extensions and trailers,
//! several per connection) are read back exactly, however the bytes are
//! split; a streamed (chunked) response reads back as the bytes written.

use std::io::{self, Read};

use livestore_sync::server::http::{Conn, ReadError, Request, Response};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use crate::support::{accepted, mutated, run};

/// The body limit the reader gets (small, so limits are hit).
const MAX_BODY: usize = 2048;
/// The reader's bound on a head, and its read size: what it may buffer is
/// a head, a body and a read more.
const MAX_HEAD: usize = 16 * 1024;
const READ: usize = 4096;

/// Bytes handed out in reads of the given sizes (cycled; 0 never, so a
/// short read is not an end), then end of stream, or an error.
struct Feed {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
    end: End,
}

#[derive(Debug, Clone, Copy)]
enum End {
    Eof,
    /// A read timeout (what an idle keep-alive socket gives).
    TimedOut,
    Reset,
}

/// Bytes in memory have no clock: a head deadline does not apply.
impl livestore_sync::server::http::Source for Feed {
    fn set_read_timeout(&self, _: Option<std::time::Duration>) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.bytes.len() {
            return match self.end {
                End::Eof => Ok(0),
                End::TimedOut => Err(io::ErrorKind::WouldBlock.into()),
                End::Reset => Err(io::ErrorKind::ConnectionReset.into()),
            };
        }
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

enum Outcome {
    Request(Request),
    Refused(u16, &'static str),
    Closed,
    Io,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Request(r) => write!(
                f,
                "{} {}?{} body {} bytes",
                r.method,
                r.path,
                r.query,
                r.body.len()
            ),
            Outcome::Refused(status, why) => write!(f, "refused: {status} {why}"),
            Outcome::Closed => write!(f, "closed"),
            Outcome::Io => write!(f, "I/O error"),
        }
    }
}

/// Reads every request in `bytes`; checks the reader's bounds at each step.
fn read_all(bytes: Vec<u8>, sizes: Vec<usize>, end: End) -> Result<Vec<Outcome>, TestCaseError> {
    let len = bytes.len();
    let mut conn = Conn::over(Feed {
        bytes,
        at: 0,
        sizes,
        turn: 0,
        end,
    });
    let mut out = Vec::new();
    loop {
        let r = conn.read_request(MAX_BODY);
        prop_assert!(
            conn.buf.len() <= MAX_HEAD + MAX_BODY + 2 * READ,
            "buffered {} bytes",
            conn.buf.len()
        );
        match r {
            Ok(req) => {
                accepted();
                prop_assert!(req.body.len() <= MAX_BODY);
                out.push(Outcome::Request(req));
                // Each request takes at least its request line.
                prop_assert!(out.len() <= len / 4 + 1, "more requests than bytes allow");
            }
            Err(ReadError::Bad(status, why)) => {
                prop_assert!([400, 413, 431].contains(&status), "status {}", status);
                out.push(Outcome::Refused(status, why));
                return Ok(out);
            }
            Err(ReadError::Closed) => {
                out.push(Outcome::Closed);
                return Ok(out);
            }
            Err(ReadError::Io(_)) => {
                out.push(Outcome::Io);
                return Ok(out);
            }
        }
    }
}

fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![READ]),
        prop::collection::vec(1usize..8, 1..6),
        prop::collection::vec(1usize..5000, 1..6),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![3 => Just(End::Eof), 1 => Just(End::TimedOut), 1 => Just(End::Reset)]
}

#[derive(Debug, Clone)]
enum Framing {
    None,
    Length,
    /// The body cut at these points; each chunk with an extension or not;
    /// trailer lines.
    Chunked(Vec<Index>, Vec<bool>, Vec<String>, bool),
}

#[derive(Debug, Clone)]
struct GenRequest {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
    http10: bool,
    close: bool,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn gen_request() -> impl Strategy<Value = GenRequest> {
    let framing = prop_oneof![
        Just(Framing::None),
        Just(Framing::Length),
        (
            prop::collection::vec(any::<Index>(), 0..5),
            prop::collection::vec(any::<bool>(), 6),
            prop::collection::vec("[A-Za-z]{1,8}: [ -~]{0,20}", 0..3),
            any::<bool>()
        )
            .prop_map(|(cuts, ext, trailers, upper)| Framing::Chunked(cuts, ext, trailers, upper)),
    ];
    (
        prop_oneof![
            Just("GET".to_string()),
            Just("POST".to_string()),
            Just("OPTIONS".to_string()),
            token()
        ],
        "/[!$&'()*+,;=:@%A-Za-z0-9._~/-]{0,30}",
        prop::option::of("[!$&'()*+,;=:@%A-Za-z0-9._~/?-]{0,40}"),
        prop::collection::vec(
            (token(), "[ -~\t\u{80}-\u{ff}]{0,30}").prop_filter(
                "not a framing header",
                |(k, _)| {
                    !k.eq_ignore_ascii_case("content-length")
                        && !k.eq_ignore_ascii_case("transfer-encoding")
                        && !k.eq_ignore_ascii_case("connection")
                },
            ),
            0..6,
        ),
        prop::collection::vec(any::<u8>(), 0..300),
        framing,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(method, path, query, headers, body, framing, http10, close)| GenRequest {
                method,
                path,
                query,
                headers,
                body,
                framing,
                http10,
                close,
            },
        )
}

impl GenRequest {
    fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    fn body_sent(&self) -> &[u8] {
        match self.framing {
            Framing::None => &[],
            _ => &self.body,
        }
    }

    /// Whether the reader says to close after it.
    fn closes(&self) -> bool {
        self.close || self.http10
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method,
            self.target(),
            if self.http10 { 0 } else { 1 }
        )
        .into_bytes();
        for (k, v) in &self.headers {
            out.extend(k.as_bytes());
            out.extend(b": ");
            // Header values are bytes on the wire (Latin-1 here).
            out.extend(v.chars().map(|c| c as u32 as u8));
            out.extend(b"\r\n");
        }
        if self.close {
            out.extend(b"Connection: close\r\n");
        }
        match &self.framing {
            Framing::None => out.extend(b"\r\n"),
            Framing::Length => {
                out.extend(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
                out.extend(&self.body);
            }
            Framing::Chunked(cuts, ext, trailers, upper) => {
                out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut points: Vec<usize> =
                    cuts.iter().map(|i| i.index(self.body.len() + 1)).collect();
                points.push(0);
                points.push(self.body.len());
                points.sort_unstable();
                points.dedup();
                for (n, w) in points.windows(2).enumerate() {
                    let chunk = &self.body[w[0]..w[1]];
                    let size = if *upper {
                        format!("{:X}", chunk.len())
                    } else {
                        format!("{:x}", chunk.len())
                    };
                    out.extend(size.as_bytes());
                    if ext[n % ext.len()] {
                        out.extend(b";name=\"v;x\"");
                    }
                    out.extend(b"\r\n");
                    out.extend(chunk);
                    out.extend(b"\r\n");
                }
                out.extend(b"0\r\n");
                for t in trailers {
                    out.extend(t.as_bytes());
                    out.extend(b"\r\n");
                }
                out.extend(b"\r\n");
            }
        }
        out
    }
}

#[test]
fn generated_requests_read_back_however_the_bytes_are_split() {
    let strategy = (
        prop::collection::vec(gen_request(), 1..4),
        read_sizes(),
        end(),
    );
    run("http_round_trip", 1_500, strategy, |(reqs, sizes, end)| {
        // Requests after one that closes are never read.
        let last = reqs
            .iter()
            .position(GenRequest::closes)
            .unwrap_or(reqs.len() - 1);
        let reqs = &reqs[..=last];
        let bytes: Vec<u8> = reqs.iter().flat_map(GenRequest::bytes).collect();
        let got = read_all(bytes, sizes, end)?;
        for (want, got) in reqs.iter().zip(&got) {
            let Outcome::Request(r) = got else {
                return Err(TestCaseError::fail(format!("{want:?} read as {got:?}")));
            };
            prop_assert_eq!(&r.method, &want.method);
            prop_assert_eq!(&r.path, &want.path);
            prop_assert_eq!(
                &r.query,
                &want
                    .query
                    .as_deref()
                    .map_or(String::new(), |q| { q.to_string() })
            );
            prop_assert_eq!(r.body.as_slice(), want.body_sent());
            prop_assert_eq!(r.close, want.closes());
            for (k, v) in &want.headers {
                // httparse trims the value's surrounding whitespace.
                let v: String = v.chars().collect();
                let v = v.trim_matches([' ', '\t']);
                prop_assert!(
                    r.headers
                        .iter()
                        .any(|(rk, rv)| rk == k && (rv == v || !v.is_ascii())),
                    "header {}: {:?} not in {:?}",
                    k,
                    v,
                    r.headers
                );
            }
        }
        // Then the connection's end, as the source ended.
        prop_assert_eq!(got.len(), reqs.len() + 1, "{:?}", got);
        match (end, got.last().unwrap()) {
            (End::Eof | End::TimedOut, Outcome::Closed) | (End::Reset, Outcome::Io) => {}
            (end, o) => return Err(TestCaseError::fail(format!("{end:?} ended as {o:?}"))),
        }
        Ok(())
    });
}

/// Real requests: the sync requests the clients made, a 0.4 HTTP push,
/// keep-alive pairs, chunked bodies with trailers.
fn seeds() -> Vec<String> {
    let mut s: Vec<String> = ["frames-v03.log", "frames-v04.log"]
        .iter()
        .flat_map(|f| crate::support::captured(f, "meta", "open"))
        .take(3)
        .map(|target| {
            format!(
                "GET {target} HTTP/1.1\r\nHost: localhost:8787\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nuser-agent: node\r\n\r\n"
            )
        })
        .collect();
    let push = crate::support::captured("frames-v04.log", "c2s", "text")
        .into_iter()
        .find(|f| f.contains("SyncWsRpc.Push"))
        .unwrap()
        .replace("SyncWsRpc", "SyncHttpRpc");
    s.push(format!(
        "POST /?storeId=s&transport=http HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nContent-Length: {}\r\n\r\n{push}GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        push.len()
    ));
    s.push(format!(
        "POST /?storeId=s&transport=http HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x};a=b\r\n{push}\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nOPTIONS / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        push.len()
    ));
    s.push("GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello".to_string());
    s
}

#[test]
fn any_bytes_end_in_requests_or_one_refusal() {
    let strategy = (
        prop_oneof![
            6 => mutated(seeds()),
            1 => prop::collection::vec(any::<u8>(), 0..200),
        ],
        read_sizes(),
        end(),
    );
    run("http_mutated", 4_000, strategy, |(bytes, sizes, end)| {
        read_all(bytes, sizes, end).map(|_| ())
    });
}

#[test]
fn streamed_responses_read_back_as_written() {
    let strategy = (
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..3000), any::<bool>()),
            0..6,
        ),
        read_sizes(),
    );
    run("http_streamed", 1_000, strategy, |(pieces, sizes)| {
        let written: Vec<u8> = pieces.iter().flat_map(|(p, _)| p.clone()).collect();
        let mut out = Vec::new();
        Response::streamed(200, "text/plain", move |w| {
            for (p, flush) in &pieces {
                w.write_all(p)?;
                if *flush {
                    w.flush()?;
                }
            }
            Ok(())
        })
        .write_to(&mut out, true)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // As a request (our reader reads requests): the status line swapped.
        let head_end = out.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let mut bytes = b"POST / HTTP/1.1\r\n".to_vec();
        bytes.extend(&out[head_end..]);
        let max = written.len().max(1);
        let mut conn = Conn::over(Feed {
            bytes,
            at: 0,
            sizes,
            turn: 0,
            end: End::Eof,
        });
        let r = conn
            .read_request(max)
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(r.body, written);
        prop_assert!(matches!(conn.read_request(max), Err(ReadError::Closed)));
        Ok(())
    });
}
