//! A blocking WebSocket client connection that speaks either protocol.
//!
//! One [`Conn`] is one socket to one store. It offers the operations the
//! scenarios need (pull, push, ping, wait for live events) and checks the
//! stream contract on everything it receives: every event delivered on the
//! connection, first by its pull and then live, must follow the previous one
//! (no duplicates, no gaps, ascending). What it saw wrong is kept in
//! [`Conn::problems`] and [`Conn::check`] for the scenario to report.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::events::{Event, StreamCheck};
use crate::proto::{self, BaseUrl, Incoming, Proto};

/// Where and how to connect: shared by every connection of a run.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: BaseUrl,
    pub proto: Proto,
    /// The sync payload as JSON text (`{"authToken":…}`), if any.
    pub payload: Option<String>,
    /// Default timeout of one operation.
    pub timeout: Duration,
    /// Spread connections over this many loopback destination addresses
    /// (127.0.0.1..127.0.0.N, on the URL's port; the server must listen on
    /// 0.0.0.0): one destination address gives at most the ephemeral port
    /// range (about 28,000) of connections. 1: connect to the URL's host.
    pub spread_addrs: u8,
}

impl Target {
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }
}

/// Events received live (a 0.3 broadcast, or a 0.4 chunk of a live pull
/// after its backlog), with the time the frame was read.
#[derive(Debug, Clone)]
pub struct LiveBatch {
    pub at: Instant,
    pub events: Vec<Event>,
}

/// What a pull returned.
#[derive(Debug, Default)]
pub struct PullResult {
    pub events: Vec<Event>,
    /// PullRes frames (0.3) or PullResponses (0.4) received.
    pub pages: usize,
    /// Bytes of all text frames read while the pull ran.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Acked,
    /// The server refused the batch (0.3 `Error`, 0.4 `Exit` Failure); the text.
    Rejected(String),
}

#[derive(Debug)]
enum Pull03 {
    NotStarted,
    /// A PullReq is out; broadcasts are stashed as the real client does.
    InProgress {
        first_page_seen: bool,
        stash: Vec<LiveBatch>,
    },
    Done,
}

pub struct Conn {
    ws: WebSocket<TcpStream>,
    proto: Proto,
    store_id: String,
    payload: Option<String>,
    id_prefix: String,
    next_id: u64,
    /// 0.4 backendId, from the last pull.
    pub backend_id: Option<String>,
    /// Decoded messages not yet routed.
    inbox: VecDeque<(Instant, Incoming)>,
    /// Routed messages that nobody waited for yet (e.g. a push answer that
    /// arrived while waiting for live events).
    held: VecDeque<Incoming>,
    live: VecDeque<LiveBatch>,
    pull03: Pull03,
    /// 0.4 ids of live pulls whose backlog has ended.
    live_ids: Vec<String>,
    /// Checks every event delivered on this connection since the last pull started.
    pub check: StreamCheck,
    pub bytes_in: u64,
    pub frames_in: u64,
    /// Protocol violations seen (first few).
    pub problems: Vec<String>,
    /// Pages or answers for unknown request ids that were ignored.
    pub ignored: u64,
}

static CONN_SERIAL: AtomicU64 = AtomicU64::new(0);

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Conn {
    /// Opens a socket to `store_id` and does the WebSocket handshake.
    /// `read_buffer` is tungstenite's read buffer (keep it small when
    /// opening thousands of connections).
    pub fn open(t: &Target, store_id: &str, read_buffer: usize) -> Result<Conn, String> {
        let url = t.base.connect_url(t.proto, store_id, t.payload.as_deref());
        let serial = CONN_SERIAL.fetch_add(1, Ordering::Relaxed);
        let addr = if t.spread_addrs > 1 {
            // Round robin over 127.0.0.1..=127.0.0.N.
            let last = 1 + (serial % u64::from(t.spread_addrs)) as u8;
            SocketAddr::from(([127, 0, 0, last], t.base.port))
        } else {
            (t.base.host.as_str(), t.base.port)
                .to_socket_addrs()
                .map_err(|e| format!("resolving {}: {e}", t.base.host))?
                .next()
                .ok_or_else(|| format!("{} resolves to nothing", t.base.host))?
        };
        let stream = TcpStream::connect_timeout(&addr, t.timeout)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(t.timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(t.timeout))
            .map_err(|e| e.to_string())?;
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(0);
        let (ws, _resp) =
            tungstenite::client::client_with_config(url.as_str(), stream, Some(config)).map_err(
                |e| match e {
                    HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
                        let body = resp
                            .body()
                            .as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        format!("upgrade refused: HTTP {} {}", resp.status(), body.trim())
                    }
                    HandshakeError::Failure(e) => format!("handshake failed: {e}"),
                    HandshakeError::Interrupted(_) => "handshake timed out".to_string(),
                },
            )?;
        Ok(Conn {
            ws,
            proto: t.proto,
            store_id: store_id.to_string(),
            payload: t.payload.clone(),
            id_prefix: format!("b{serial}x"),
            next_id: 0,
            backend_id: None,
            inbox: VecDeque::new(),
            held: VecDeque::new(),
            live: VecDeque::new(),
            pull03: Pull03::NotStarted,
            live_ids: Vec::new(),
            check: StreamCheck::default(),
            bytes_in: 0,
            frames_in: 0,
            problems: Vec::new(),
            ignored: 0,
        })
    }

    /// True when nothing went wrong on this connection.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.check.ok()
    }

    /// Everything that went wrong, for a report.
    pub fn all_problems(&self) -> Vec<String> {
        let mut v = self.problems.clone();
        v.extend(self.check.problems.iter().cloned());
        v
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < 10 {
            self.problems.push(p);
        }
    }

    fn new_id(&mut self) -> String {
        let n = self.next_id;
        self.next_id += 1;
        match self.proto {
            // Opaque strings; unique per connection is all that matters.
            Proto::V03 => format!("{}{}", self.id_prefix, n),
            // The real 0.4 client sends a decimal counter.
            Proto::V04 => n.to_string(),
        }
    }

    fn send_text(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .map_err(|e| format!("send failed: {e}"))
    }

    /// Reads one text frame, or `None` at the deadline.
    fn read_text(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<(Instant, tungstenite::Utf8Bytes)>, String> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.ws
                .get_mut()
                .set_read_timeout(Some(wait))
                .map_err(|e| e.to_string())?;
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    self.frames_in += 1;
                    self.bytes_in += t.len() as u64;
                    return Ok(Some((Instant::now(), t)));
                }
                Ok(Message::Binary(b)) => {
                    self.problem(
                        "server sent a binary frame (the protocol uses text frames)".into(),
                    );
                    self.frames_in += 1;
                    self.bytes_in += b.len() as u64;
                    if let Ok(t) = tungstenite::Utf8Bytes::try_from(b) {
                        return Ok(Some((Instant::now(), t)));
                    }
                }
                Ok(Message::Close(frame)) => {
                    return Err(format!("server closed the connection ({frame:?})"));
                }
                Ok(_) => {} // WebSocket ping/pong frames: tungstenite answers them.
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }

    /// Next decoded message (not routed), or `None` at the deadline.
    fn recv(&mut self, deadline: Instant) -> Result<Option<(Instant, Incoming)>, String> {
        loop {
            if let Some(x) = self.inbox.pop_front() {
                return Ok(Some(x));
            }
            let Some((at, text)) = self.read_text(deadline)? else {
                return Ok(None);
            };
            match self.proto {
                Proto::V03 => match proto::parse_v03(&text) {
                    Ok(m) => self.inbox.push_back((at, m)),
                    Err(e) => self.problem(e),
                },
                Proto::V04 => match proto::parse_v04(&text) {
                    Ok(ms) => {
                        // Flow control: the client acks each Chunk once it has it.
                        if let Some(Incoming::Page { request_id, .. }) = ms.first() {
                            let ack = proto::ack_v04(request_id);
                            self.send_text(ack)?;
                        }
                        self.inbox.extend(ms.into_iter().map(|m| (at, m)));
                    }
                    Err(e) => self.problem(e),
                },
            }
        }
    }

    /// Takes live deliveries out of the message flow; returns the rest.
    fn route(&mut self, at: Instant, m: Incoming) -> Option<Incoming> {
        match (self.proto, m) {
            (
                Proto::V03,
                Incoming::Page {
                    broadcast: true,
                    events,
                    metadata_ok,
                    ..
                },
            ) => {
                if !metadata_ok {
                    self.problem("broadcast item without a valid metadata Option".into());
                }
                match &mut self.pull03 {
                    Pull03::NotStarted => self.ignored += 1,
                    Pull03::InProgress {
                        first_page_seen,
                        stash,
                        ..
                    } => {
                        let between_pages = *first_page_seen;
                        stash.push(LiveBatch { at, events });
                        if between_pages {
                            self.problem(
                                "a broadcast arrived between two pages of a pull answer".into(),
                            );
                        }
                    }
                    Pull03::Done => self.deliver_live(LiveBatch { at, events }),
                }
                None
            }
            (
                Proto::V04,
                Incoming::Page {
                    request_id,
                    events,
                    remaining,
                    metadata_ok,
                    ..
                },
            ) if self.live_ids.contains(&request_id) => {
                if !metadata_ok {
                    self.problem("live item without a valid metadata Option".into());
                }
                if remaining != Some(0) {
                    self.problem(format!(
                        "live PullResponse with pageInfo remaining {remaining:?} (expected NoMore)"
                    ));
                }
                self.deliver_live(LiveBatch { at, events });
                None
            }
            (_, m) => Some(m),
        }
    }

    fn deliver_live(&mut self, b: LiveBatch) {
        for e in &b.events {
            self.check.observe(e);
        }
        if !b.events.is_empty() {
            self.live.push_back(b);
        }
    }

    /// Waits for the first routed message that `want` accepts; others are
    /// held for later waiters.
    fn wait_for(
        &mut self,
        deadline: Instant,
        want: impl Fn(&Incoming) -> bool,
    ) -> Result<Option<Incoming>, String> {
        if let Some(pos) = self.held.iter().position(&want) {
            return Ok(self.held.remove(pos));
        }
        loop {
            let Some((at, m)) = self.recv(deadline)? else {
                return Ok(None);
            };
            let Some(m) = self.route(at, m) else { continue };
            if want(&m) {
                return Ok(Some(m));
            }
            self.hold(m);
        }
    }

    fn hold(&mut self, m: Incoming) {
        match m {
            Incoming::Defect { defect } => self.problem(format!("server sent a Defect: {defect}")),
            Incoming::Other(raw) => self.problem(format!("unexpected message: {raw}")),
            m => {
                if self.held.len() >= 1000 {
                    self.held.pop_front();
                    self.problem("more than 1000 unclaimed messages".into());
                }
                self.held.push_back(m)
            }
        }
    }

    /// Pulls everything after `cursor` (0: from the beginning) and returns
    /// when the last page has arrived. With `live`, the connection then keeps
    /// receiving new events (0.4: a live pull; 0.3: every socket gets the
    /// broadcasts anyway).
    pub fn pull(
        &mut self,
        cursor: u64,
        live: bool,
        deadline: Instant,
    ) -> Result<PullResult, String> {
        let old = std::mem::replace(&mut self.check, StreamCheck::after(cursor));
        self.problems.extend(old.problems);
        let bytes_before = self.bytes_in;
        let id = self.new_id();
        let req = match self.proto {
            Proto::V03 => {
                self.pull03 = Pull03::InProgress {
                    first_page_seen: false,
                    stash: Vec::new(),
                };
                proto::pull_req_v03(&id, cursor)
            }
            Proto::V04 => {
                let c = if cursor > 0 {
                    let b = self
                        .backend_id
                        .clone()
                        .ok_or("a 0.4 pull from a cursor needs a backendId")?;
                    Some((b, cursor))
                } else {
                    None
                };
                proto::pull_req_v04(
                    &id,
                    &self.store_id,
                    self.payload.as_deref(),
                    live,
                    c.as_ref().map(|(b, s)| (b.as_str(), *s)),
                )
            }
        };
        self.send_text(req)?;
        let mut out = PullResult::default();
        // Expected `remaining` of the next page once the first one told the total.
        let mut expect_remaining: Option<u64> = None;
        loop {
            let m = self
                .wait_for(deadline, |m| match m {
                    Incoming::Page {
                        request_id,
                        broadcast: false,
                        ..
                    } => *request_id == id,
                    Incoming::Error { request_id, .. } | Incoming::Exit { request_id, .. } => {
                        *request_id == id
                    }
                    _ => false,
                })?
                .ok_or_else(|| {
                    format!(
                        "pull: no last page within the timeout ({} events so far)",
                        out.events.len()
                    )
                })?;
            match m {
                Incoming::Page {
                    events,
                    remaining,
                    backend_id,
                    metadata_ok,
                    ..
                } => {
                    out.pages += 1;
                    if let Pull03::InProgress {
                        first_page_seen, ..
                    } = &mut self.pull03
                    {
                        *first_page_seen = true;
                    }
                    if !metadata_ok {
                        self.problem("pull item without a valid metadata Option".into());
                    }
                    if events.len() > 100 {
                        self.problem(format!(
                            "pull page of {} events (the protocol allows ≤100)",
                            events.len()
                        ));
                    }
                    if let Some(b) = backend_id {
                        self.backend_id = Some(b);
                    }
                    if let (Some(exp), Some(rem)) = (expect_remaining, remaining) {
                        let should = exp.saturating_sub(events.len() as u64);
                        if rem != should {
                            self.problem(format!(
                                "pull page says remaining {rem}, expected {should}"
                            ));
                        }
                    }
                    expect_remaining = remaining;
                    for e in &events {
                        self.check.observe(e);
                    }
                    out.events.extend(events);
                    if remaining == Some(0) {
                        break;
                    }
                }
                Incoming::Error { message, .. } => return Err(format!("pull refused: {message}")),
                Incoming::Exit { result, .. } => {
                    return Err(format!("pull ended before its last page: {result:?}"));
                }
                _ => unreachable!(),
            }
        }
        match self.proto {
            Proto::V03 => {
                // As the real client: stashed broadcasts newer than the pull
                // answer are delivered, older ones were already in it.
                if let Pull03::InProgress { stash, .. } =
                    std::mem::replace(&mut self.pull03, Pull03::Done)
                {
                    for mut b in stash {
                        let last = self.check.last;
                        b.events.retain(|e| e.seq_num > last);
                        self.deliver_live(b);
                    }
                }
            }
            Proto::V04 if live => self.live_ids.push(id),
            Proto::V04 => {
                let m = self
                    .wait_for(
                        deadline,
                        |m| matches!(m, Incoming::Exit { request_id, .. } if *request_id == id),
                    )?
                    .ok_or("non-live pull: no Exit after the last page")?;
                if let Incoming::Exit { result: Err(e), .. } = m {
                    return Err(format!("non-live pull ended with a failure: {e}"));
                }
            }
        }
        out.bytes = self.bytes_in - bytes_before;
        Ok(out)
    }

    /// Sends a push and returns its request id (answer: [`Conn::await_push`]).
    pub fn send_push(&mut self, batch: &[Event]) -> Result<String, String> {
        let id = self.new_id();
        let req = match self.proto {
            Proto::V03 => proto::push_req_v03(&id, batch),
            Proto::V04 => proto::push_req_v04(
                &id,
                &self.store_id,
                self.payload.as_deref(),
                batch,
                self.backend_id.as_deref(),
            ),
        };
        self.send_text(req)?;
        Ok(id)
    }

    /// Waits for the answer to the push `id`.
    pub fn await_push(&mut self, id: &str, deadline: Instant) -> Result<PushOutcome, String> {
        let m = self
            .wait_for(deadline, |m| match m {
                Incoming::PushAck { request_id }
                | Incoming::Error { request_id, .. }
                | Incoming::Exit { request_id, .. } => request_id == id,
                _ => false,
            })?
            .ok_or_else(|| format!("push {id}: no answer within the timeout"))?;
        Ok(match m {
            Incoming::PushAck { .. } | Incoming::Exit { result: Ok(()), .. } => PushOutcome::Acked,
            Incoming::Error { message, .. } => PushOutcome::Rejected(message),
            Incoming::Exit { result: Err(e), .. } => PushOutcome::Rejected(e),
            _ => unreachable!(),
        })
    }

    /// Pushes and waits for the answer.
    pub fn push(&mut self, batch: &[Event], deadline: Instant) -> Result<PushOutcome, String> {
        let id = self.send_push(batch)?;
        self.await_push(&id, deadline)
    }

    /// Sends a keepalive ping and returns the round-trip time.
    pub fn ping(&mut self, deadline: Instant) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.send_text(proto::ping_frame(self.proto).to_string())?;
        self.wait_for(deadline, |m| matches!(m, Incoming::Pong))?
            .ok_or("no Pong within the timeout")?;
        Ok(t0.elapsed())
    }

    /// The next batch of live events, or `None` at the deadline.
    pub fn next_live(&mut self, deadline: Instant) -> Result<Option<LiveBatch>, String> {
        loop {
            if let Some(b) = self.live.pop_front() {
                return Ok(Some(b));
            }
            let Some((at, m)) = self.recv(deadline)? else {
                return Ok(None);
            };
            if let Some(m) = self.route(at, m) {
                self.hold(m);
            }
        }
    }

    /// Live events until `seq_num` has been delivered; fails when nothing
    /// arrives for `idle`. Returns them with their arrival times.
    pub fn live_until(&mut self, seq_num: u64, idle: Duration) -> Result<Vec<LiveBatch>, String> {
        let mut out = Vec::new();
        while self.check.last < seq_num || !self.live.is_empty() {
            match self.next_live(Instant::now() + idle)? {
                Some(b) => out.push(b),
                None => {
                    return Err(format!(
                        "waited for e{seq_num} but the connection's stream stopped at e{} ({:?} without events)",
                        self.check.last, idle
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Drops the socket without a close handshake (a network drop).
    pub fn abort(self) {
        let _ = self.ws.get_ref().shutdown(Shutdown::Both);
    }

    /// Closes politely (close frame; does not wait for the answer).
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}
