//! The floor of the shape: what a minimal server of the same shape as
//! livestore-sync does on this machine, measured in the same run.
//!
//! The shape server ([`serve`], run as a child process of the bench,
//! `livestore-sync-bench floor-server`, so its RSS and CPU are its own) is
//! a blocking listener, one reader thread (256 KiB stack) and one writer
//! thread (64 KiB stack) per WebSocket, the writer fed by a crossbeam
//! channel, like the server. It has no database, no protocol and no
//! per-store state. Text frames it understands:
//!
//! * `ping`: the reader answers `pong` itself, under the socket's write
//!   lock, without waking the writer (as the server's outbox does);
//! * `sub`: the connection joins the subscribers, answered `subbed`;
//! * `push`: the reader sends one pre-encoded event frame (a 0.3 broadcast
//!   of one 200-byte event) to every subscriber's writer channel, then
//!   `ack` to its own writer.
//!
//! Floors measured against it:
//! * idle ([`idle_floor`]): N connections pinging every `interval`: the
//!   process's RSS per connection, its CPU % of one core over the idle
//!   window, threads and mappings;
//! * fan-out ([`fan_out_floor`]): S subscribers, one pusher, K pushes each
//!   after the previous ack and paced to the push rate the server's run
//!   reached: push-to-delivery latency p50/p99/max, with
//!   tungstenite clients configured as the bench's (`Conn::open`: nodelay,
//!   64 KiB read buffer, no write buffer).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::events::{make_chain, write_batch_json};
use crate::stats::{ms, rate, round1, round3, Samples};
use crate::util;

const READER_STACK: usize = 256 * 1024;
const WRITER_STACK: usize = 64 * 1024;

/// The event frame the shape server broadcasts (a 0.3 broadcast of one event).
fn event_frame() -> String {
    let mut batch = String::new();
    write_batch_json(&mut batch, &make_chain("shape-pusher", 0, 1, 200));
    format!(
        r#"{{"_tag":"WSMessage.PushBroadcast","batch":{batch},"metadata":{{"_tag":"Some","value":{{"createdAt":"2026-12-02T00:00:00.000Z"}}}}}}"#
    )
}

/// Runs the shape server on 0.0.0.0:`port` (0: any); prints
/// `listening on PORT` on stdout; exits when stdin closes (the bench died).
pub fn serve(port: u16) -> Result<(), String> {
    let listener =
        TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("floor server bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("listening on {port}");
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
        std::process::exit(0);
    });
    let frame = Message::text(event_frame());
    let subs: Arc<Mutex<Vec<Sender<Message>>>> = Arc::new(Mutex::new(Vec::new()));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors: do not spin.
                eprintln!("floor server: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (subs, frame) = (subs.clone(), frame.clone());
        let spawned = std::thread::Builder::new()
            .name("shape-reader".into())
            .stack_size(READER_STACK)
            .spawn(move || reader(stream, subs, frame));
        if let Err(e) = spawned {
            eprintln!("floor server: spawning a reader: {e}");
        }
    }
    Ok(())
}

/// One socket shared by the reader and the writer (one descriptor per
/// connection, as the server's `Arc<TcpStream>`).
struct Shared(Arc<TcpStream>);

impl std::io::Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

fn reader(stream: TcpStream, subs: Arc<Mutex<Vec<Sender<Message>>>>, frame: Message) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let write_half = Shared(stream.clone());
    let stream = Shared(stream);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(config)) else {
        return;
    };
    // Every write goes through this lock, so frames never interleave: the
    // writer thread's broadcasts, and the reader's own pongs, which it
    // writes itself without waking the writer (as the server does).
    let out = Arc::new(Mutex::new(WebSocket::from_raw_socket(
        write_half,
        Role::Server,
        Some(config),
    )));
    let (tx, rx) = unbounded::<Message>();
    let writer_out = out.clone();
    let writer = std::thread::Builder::new()
        .name("shape-writer".into())
        .stack_size(WRITER_STACK)
        .spawn(move || {
            for m in rx {
                if writer_out.lock().send(m).is_err() {
                    return;
                }
            }
        });
    if writer.is_err() {
        return;
    }
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => match t.as_str() {
                "ping" if out.lock().send(Message::text("pong")).is_err() => break,
                "ping" => {}
                "sub" => {
                    subs.lock().push(tx.clone());
                    let _ = tx.send(Message::text("subbed"));
                }
                "push" => {
                    subs.lock().retain(|s| s.send(frame.clone()).is_ok());
                    let _ = tx.send(Message::text("ack"));
                }
                _ => {}
            },
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // The writer ends when every sender is gone (subscribers: at the next
    // broadcast, or with the process).
}

/// The shape server as a child process; killed on drop.
struct ShapeServer {
    child: Child,
    port: u16,
}

impl ShapeServer {
    fn start() -> Result<ShapeServer, String> {
        // This very binary, even when a rebuild replaced the file meanwhile.
        let exe = std::path::PathBuf::from("/proc/self/exe");
        let mut child = Command::new(exe)
            .args(["floor-server", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the floor server: {e}"))?;
        let mut line = String::new();
        let out = child.stdout.take().ok_or("floor server: no stdout")?;
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("floor server said {line:?}"))?;
        Ok(ShapeServer { child, port })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ShapeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(port: u16, last_octet: u8, read_buf: usize) -> Result<WebSocket<TcpStream>, String> {
    let addr = SocketAddr::from(([127, 0, 0, last_octet], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(30))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buf)
        .write_buffer_size(0);
    let (ws, _) = tungstenite::client::client_with_config(
        format!("ws://127.0.0.1:{port}/"),
        stream,
        Some(config),
    )
    .map_err(|e| format!("floor server handshake: {e}"))?;
    Ok(ws)
}

/// Sends `text` and reads until a text frame equal to `want`.
fn ask(ws: &mut WebSocket<TcpStream>, text: &str, want: &str) -> Result<(), String> {
    ws.send(Message::text(text)).map_err(|e| e.to_string())?;
    loop {
        match ws.read().map_err(|e| e.to_string())? {
            Message::Text(t) if t.as_str() == want => return Ok(()),
            _ => {}
        }
    }
}

/// Fan-out floor: `subscribers` subscribers, `pushes` pushes, push `i`
/// sent no earlier than `i × push_interval` after the start (the push rate
/// the server's scenario reached: the floor's pushes are acked without a
/// database commit, and unpaced they would measure queueing behind an
/// unbounded push rate instead of the delivery path).
pub fn fan_out_floor(
    subscribers: usize,
    pushes: usize,
    push_interval: Duration,
) -> Result<Value, String> {
    let server = ShapeServer::start()?;
    let mut subs = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let mut ws = client(server.port, 1, 64 * 1024)?;
        ask(&mut ws, "sub", "subbed")?;
        subs.push(ws);
    }
    let barrier = Arc::new(Barrier::new(subscribers + 1));
    let handles: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            let barrier = barrier.clone();
            util::spawn(format!("shape-sub-{i}"), move || {
                barrier.wait();
                let mut at = Vec::with_capacity(pushes);
                while at.len() < pushes {
                    match ws.read() {
                        Ok(Message::Text(_)) => at.push(Instant::now()),
                        Ok(_) => {}
                        Err(e) => return Err(format!("floor subscriber: {e}")),
                    }
                }
                let _ = ws.close(None);
                Ok(at)
            })
        })
        .collect();
    let mut pusher = client(server.port, 1, 64 * 1024)?;
    let mut sent = Vec::with_capacity(pushes);
    barrier.wait();
    let t0 = Instant::now();
    for i in 0..pushes {
        let at = t0 + push_interval * i as u32;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        sent.push(Instant::now());
        ask(&mut pusher, "push", "ack")?;
    }
    let mut lat = Samples::new();
    let mut last = t0;
    for h in handles {
        let at = h.join().map_err(|_| "a floor subscriber panicked")??;
        for (a, s) in at.iter().zip(&sent) {
            lat.add(a.saturating_duration_since(*s));
            last = last.max(*a);
        }
    }
    let deliveries = lat.len();
    Ok(json!({
        "subscribers": subscribers,
        "pushes": pushes,
        "push_interval_ms": round3(ms(push_interval)),
        "delivery_latency": lat.summary(),
        "deliveries_per_s": round1(rate(deliveries as f64, last - t0)),
    }))
}

/// Idle floor: `n` connections spread over `spread` loopback addresses,
/// opened `open_threads` at a time, each pinging every `interval` for `idle`.
pub fn idle_floor(
    n: usize,
    spread: u8,
    open_threads: usize,
    idle: Duration,
    interval: Duration,
) -> Result<Value, String> {
    util::ensure_fd_room(n as u64)?;
    let server = ShapeServer::start()?;
    let pid = server.pid();
    std::thread::sleep(Duration::from_millis(200));
    let rss0 = util::rss_kib(pid)?;
    let (threads0, maps0) = (util::thread_count(pid), util::map_count(pid));
    let next = Arc::new(AtomicUsize::new(0));
    let port = server.port;
    let t_open = Instant::now();
    let openers: Vec<_> = (0..open_threads.min(n))
        .map(|t| {
            let next = next.clone();
            util::spawn(format!("shape-open-{t}"), move || {
                let mut mine = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let octet = 1 + (i % spread.max(1) as usize) as u8;
                    match client(port, octet, 4096).and_then(|mut ws| {
                        ask(&mut ws, "ping", "pong")?;
                        Ok(ws)
                    }) {
                        Ok(ws) => mine.push(ws),
                        Err(e) if errors.len() < 3 => errors.push(e),
                        Err(_) => {}
                    }
                }
                (mine, errors)
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for h in openers {
        let (mine, e) = h.join().map_err(|_| "a floor opener panicked")?;
        conns.extend(mine);
        errors.extend(e);
    }
    let open_ms = ms(t_open.elapsed());
    let opened = conns.len();
    std::thread::sleep(Duration::from_secs(1));
    let rss1 = util::rss_kib(pid)?;
    let (threads1, maps1) = (util::thread_count(pid), util::map_count(pid));

    // Idle: each worker pings its share, spread over the interval.
    let cpu0 = util::cpu_ticks(pid)?;
    let t_idle = Instant::now();
    let end = t_idle + idle;
    let mut workers = Vec::new();
    while !conns.is_empty() {
        let mut mine = conns.split_off(conns.len().saturating_sub(250));
        workers.push(util::spawn("shape-ping".into(), move || {
            let mut rtt = Samples::new();
            let mut failed = 0u64;
            let m = mine.len() as u32;
            'rounds: for round in 0u32.. {
                for (j, ws) in mine.iter_mut().enumerate() {
                    let at = t_idle + interval * round + interval * j as u32 / m;
                    if at >= end {
                        break 'rounds;
                    }
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    let t = Instant::now();
                    match ask(ws, "ping", "pong") {
                        Ok(()) => rtt.add(t.elapsed()),
                        Err(_) => failed += 1,
                    }
                }
            }
            (rtt, failed, mine)
        }));
    }
    let mut rtt = Samples::new();
    let mut failed = 0u64;
    let mut keep = Vec::new();
    for w in workers {
        let (r, f, mine) = w.join().map_err(|_| "a floor ping thread panicked")?;
        rtt.extend(r);
        failed += f;
        keep.push(mine);
    }
    let window = t_idle.elapsed();
    let cpu1 = util::cpu_ticks(pid)?;
    drop(keep);
    drop(server);
    let per = |a: u64, b: u64| round3((b as f64 - a as f64) / opened.max(1) as f64);
    let cpu_secs = (cpu1 - cpu0) as f64 / util::clock_ticks_per_sec() as f64;
    Ok(json!({
        "connections": n,
        "opened": opened,
        "open_failed": n - opened,
        "open_errors": errors.into_iter().take(3).collect::<Vec<_>>(),
        "open_all_ms": open_ms,
        "rss_before_kib": rss0,
        "rss_open_kib": rss1,
        "rss_per_conn_kib": per(rss0, rss1),
        "threads_open": threads1,
        "threads_before": threads0,
        "maps_per_conn": match (maps0, maps1) { (Some(a), Some(b)) => json!(per(a, b)), _ => Value::Null },
        "idle_cpu_pct_of_one_core": (!idle.is_zero()).then(|| round3(cpu_secs / window.as_secs_f64() * 100.0)),
        "pings": rtt.len(),
        "ping_failures": failed,
        "ping_rtt": rtt.summary(),
        "stacks": { "reader_kib": READER_STACK / 1024, "writer_kib": WRITER_STACK / 1024 },
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_frame_is_json() {
        let f = super::event_frame();
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["batch"][0]["seqNum"], 1);
    }
}
