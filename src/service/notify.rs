//! systemd's notify protocol (sd_notify(3)), without libsystemd: each
//! message is one datagram of `KEY=value` lines sent to the unix socket
//! named by `NOTIFY_SOCKET` (a path, or an abstract name written with a
//! leading `@`). systemd reads the sender's pid from the socket's
//! credentials, so any thread of this process may send.
//!
//! What we send: `READY=1` (with a `STATUS=`) once the listener is up and
//! the event log answered, `WATCHDOG=1` every half `WATCHDOG_USEC` while
//! the accept loop lives, `STOPPING=1` when a signal asks us to stop.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where `sd_notify` messages go; a no-op when `NOTIFY_SOCKET` is unset.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Only the first failed send is logged (the watchdog sends often).
    failed: AtomicBool,
}

impl Notifier {
    /// From this process's `NOTIFY_SOCKET`.
    pub fn from_env() -> Notifier {
        Self::new(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// Towards `notify_socket` (the variable's value); `None` or an empty
    /// value: nobody listens, every send does nothing.
    pub fn new(notify_socket: Option<&std::ffi::OsStr>) -> Notifier {
        let target = notify_socket
            .filter(|s| !s.is_empty())
            .and_then(|s| match address(s) {
                Ok(addr) => match UnixDatagram::unbound() {
                    Ok(sock) => Some((sock, addr)),
                    Err(e) => {
                        log::warn!("NOTIFY_SOCKET: cannot create a unix datagram socket: {e}");
                        None
                    }
                },
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET={}: {e}; not notifying systemd", s.display());
                    None
                }
            });
        Notifier {
            target,
            failed: AtomicBool::new(false),
        }
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message (`KEY=value` lines). A failure is logged once and
    /// otherwise ignored: the server serves whether systemd hears it or not.
    pub fn send(&self, message: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(message.as_bytes(), addr) {
            if !self.failed.swap(true, Ordering::Relaxed) {
                log::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
            }
        }
    }
}

/// The socket address `NOTIFY_SOCKET` names: `@name` is the abstract name
/// `name`, `/path` a socket file.
pub fn address(value: &std::ffi::OsStr) -> Result<SocketAddr, String> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(|e| e.to_string()),
        Some(b'/') => SocketAddr::from_pathname(value).map_err(|e| e.to_string()),
        _ => Err("neither an absolute path nor an abstract name (@…)".into()),
    }
}

/// How often systemd wants `WATCHDOG=1`: `WATCHDOG_USEC`, when
/// `WATCHDOG_PID` is unset or names this process (sd_watchdog_enabled(3)).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// This process's watchdog interval, from its environment.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_watchdog_interval_is_ours_only_when_the_pid_matches() {
        let d = Some(Duration::from_secs(30));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), d);
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), d);
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn notify_socket_names_a_path_or_an_abstract_socket() {
        let a = address(OsStr::new("@lss/notify")).unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"lss/notify"[..]));
        let p = address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(address(OsStr::new("relative")).is_err());
        assert!(address(OsStr::new("vsock:2:1234")).is_err());
    }

    /// A real abstract datagram socket receives what is sent.
    #[test]
    fn messages_reach_an_abstract_socket() {
        let name = format!("lss-notify-unit-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        let n = Notifier::new(Some(OsStr::new(&format!("@{name}"))));
        assert!(n.is_enabled());
        n.send("READY=1\nSTATUS=up");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
        // Unset: nothing to do, and nothing fails.
        let off = Notifier::new(None);
        assert!(!off.is_enabled());
        off.send("READY=1");
    }
}
